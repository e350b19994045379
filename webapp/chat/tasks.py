"""Chat tasks: replies run on the chat model worker (queue `chat`, or `gpu` where no chat worker
runs), their tests on a verify worker, the reaper on beat (`default`)."""
from celery import shared_task


@shared_task(bind=True, name="chat.reply")
def chat_reply(self, message_id: int) -> str:
    from webapp.chat.model_replies import reply_params, runtime_for, stream_reply
    from webapp.chat.testing import after_reply
    from webapp.serving.model_runtime import for_queue

    runtime = for_queue((self.request.delivery_info or {}).get("routing_key"))
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
