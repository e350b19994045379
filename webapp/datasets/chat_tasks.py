"""Chat tasks that may be learnt from: the conversations with tests whose answer the sandbox
verified (the training-data ledger's trainable rows), once each, never one whose problem and tests
match a test item. An RL round and a trace run both take them (`webapp/training`, `webapp/distill`)."""
from __future__ import annotations

from webapp.datasets.held_out import held_out
from webapp.datasets.models import TrainingExample


def verified_chat_tasks() -> list[dict]:
    """{task_id "chat:N", text, tests, setup, source, reference (the verified answer)} per conversation."""
    index, seen, tasks = held_out(), set(), []
    for row in TrainingExample.objects.trainable().select_related("source_message__conversation"):
        conversation = row.source_message.conversation if row.source_message_id else None
        if conversation is None or not conversation.tests or conversation.pk in seen:
            continue
        seen.add(conversation.pk)
        if index.match("\n\n".join([conversation.problem, *conversation.tests])):
            continue
        tasks.append({"task_id": f"chat:{conversation.pk}", "text": conversation.problem,
                      "tests": list(conversation.tests), "setup": conversation.setup,
                      "source": conversation.source or "user", "reference": row.code})
    return tasks
