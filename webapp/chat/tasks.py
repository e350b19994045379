"""Chat tasks: replies run on the model worker, their tests on a verify worker, the reaper on beat."""
from celery import shared_task


@shared_task(name="gpu.chat_reply")
def chat_reply(message_id: int) -> str:
    from webapp.chat.model_replies import reply_params, runtime_for, stream_reply
    from webapp.chat.testing import after_reply
    from webapp.serving.model_runtime import runtime

    status = stream_reply(message_id, lambda: runtime_for(message_id, runtime), reply_params()).status
    after_reply(message_id)
    return status


@shared_task(name="verify.chat_tests")
def chat_tests(message_id: int) -> str:
    from webapp.chat.testing import run_tests

    return run_tests(message_id).get("status", "error")


@shared_task(name="chat.reap_stale_replies")
def reap_stale_replies() -> int:
    from webapp.chat.model_replies import reap_stale_replies as reap

    return reap()
