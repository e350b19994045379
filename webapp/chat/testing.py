"""Running a reply's code against its conversation's task in the sandbox, and what follows:
the dialog study's measures, and a training example when a repair is verified."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from engine.codechat.checks import job_for, reply_code
from webapp.chat.model_replies import broadcast
from webapp.chat.models import Conversation, Message
from webapp.chat.threads import model_history
from webapp.datasets.models import TrainingExample

NO_CODE = {"status": "error", "detail": "the reply has no code block to test", "tests": []}


def after_reply(message_id: int) -> None:
    """Keep the reply's code; in a conversation with tests, test it (on the verify queue)."""
    reply = Message.objects.select_related("conversation").get(pk=message_id)
    if reply.status not in (Message.Status.COMPLETE, Message.Status.CANCELLED):
        return
    conversation = reply.conversation
    code = reply_code(conversation.kind, reply.content, conversation.entry_point, list(conversation.tests or [])) or ""
    Message.objects.filter(pk=message_id).update(code=code)
    if not conversation.has_tests:
        return
    if code:
        schedule_tests(message_id)
    else:
        reply.code = code
        record_verdict(reply, dict(NO_CODE))


def schedule_tests(message_id: int) -> None:
    from webapp.chat.tasks import chat_tests

    Message.objects.filter(pk=message_id).update(verdict={"status": "running", "detail": "", "tests": []})
    broadcast(Message.objects.get(pk=message_id).conversation_id,
              {"kind": "tests", "message": message_id, "status": "running"})
    transaction.on_commit(lambda: chat_tests.delay(message_id))


def run_tests(message_id: int) -> dict:
    """Run the reply's code in the sandbox against the task (a puzzle: `sat`)."""
    from webapp.core.verification import sandbox

    reply = Message.objects.select_related("conversation").get(pk=message_id)
    conversation = reply.conversation
    if not reply.code:
        return record_verdict(reply, dict(NO_CODE))
    job = job_for(conversation.kind, reply.code, tests=conversation.tests, sat=conversation.sat,
                  setup=conversation.setup, job_id=f"message-{message_id}")
    verdict = sandbox().verify(job).as_dict()
    return record_verdict(reply, verdict)


def record_verdict(reply: Message, verdict: dict) -> dict:
    with transaction.atomic():
        Message.objects.filter(pk=reply.pk).update(verdict=verdict, tested_at=timezone.now())
        conversation = Conversation.objects.select_for_update().get(pk=reply.conversation_id)
        conversation.turns = max(conversation.turns, reply.turn)
        if verdict.get("status") == "passed":
            conversation.solved = True
            if conversation.first_success_turn is None or reply.turn < conversation.first_success_turn:
                conversation.first_success_turn = reply.turn
        conversation.save(update_fields=["turns", "solved", "first_success_turn", "updated_at"])
        reply.verdict = verdict
        if (verdict.get("status") == "passed" and reply.kind == Message.Kind.REPAIR
                and reply.status == Message.Status.COMPLETE):  # a stopped reply is not what the model would write
            keep_repair(reply)
    broadcast(reply.conversation_id, {"kind": "tests", "message": reply.pk, "status": verdict.get("status"),
                                      "solved": conversation.solved, "turns": conversation.turns,
                                      "first_success_turn": conversation.first_success_turn})
    return verdict


def keep_repair(reply: Message) -> TrainingExample:
    """A repair the sandbox verified becomes training data (once per reply): the ledger row holds the
    messages the model was given for it (`model_history`, as the reply's stream used them)."""
    feedback = Message.objects.filter(pk=reply.parent_id).values_list("content", flat=True).first() or ""
    example, _ = TrainingExample.objects.get_or_create(source_message=reply, defaults={
        "provenance": TrainingExample.Provenance.HUMAN_FEEDBACK_REPAIR,
        "prompt": model_history(reply), "completion": reply.content, "code": reply.code,
        "feedback": feedback, "model_name": reply.model_name, "verdict": reply.verdict or {},
        "turn": reply.turn, "created_by": reply.owner, "task_source": reply.conversation.source or "",
    })
    return example
