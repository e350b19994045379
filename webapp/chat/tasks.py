"""Chat tasks: replies run on the model worker; the reaper runs on beat."""
from celery import shared_task


@shared_task(name="gpu.chat_reply")
def chat_reply(message_id: int) -> str:
    from webapp.chat.services import stream_reply
    from webapp.core.model_runtime import runtime

    return stream_reply(message_id, runtime.get).status


@shared_task(name="chat.reap_stale_replies")
def reap_stale_replies() -> int:
    from webapp.chat.services import reap_stale_replies as reap

    return reap()
