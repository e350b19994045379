"""A model's own passing answers to MBPP train tasks, as ledger rows (see engine.datasets.own_replies)."""
from __future__ import annotations

from django.conf import settings
from django.db import transaction

from engine.datasets.own_replies import kept_replies
from webapp.datasets.models import TrainingExample


def import_replies(result: dict, per_task: int = 2, max_reply_tokens: int = 0) -> tuple[int, int]:
    """(rows added, answers kept): an answer already in the ledger for its task is not added again."""
    replies = kept_replies(result, settings.AUTODIDACT_BENCHMARK_DATA, per_task, max_reply_tokens)
    model = (result.get("model") or {}).get("name", "")
    added = 0
    with transaction.atomic():
        for reply in replies:
            *prompt, answer = reply["messages"]
            _, created = TrainingExample.objects.get_or_create(
                provenance=TrainingExample.Provenance.OWN_REPLY, task_source=f"mbpp:{reply['task_id']}",
                completion=answer["content"],
                defaults={"prompt": prompt, "code": reply["code"], "verdict": reply["verdict"], "model_name": model})
            added += created
    return added, len(replies)
