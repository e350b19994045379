"""The ledger as JSON lines in the chat format (`messages`: what the model was given, then its verified
reply), one row per line: the rows a training round snapshots, with their provenance."""
from __future__ import annotations

import json
from collections.abc import Iterator

from webapp.datasets.models import TrainingExample

FORMAT = "autodidact.ledger/1"


def record(row: TrainingExample) -> dict:
    return {"format": FORMAT, "id": row.pk, "provenance": row.provenance, "messages": row.messages,
            "code": row.code, "feedback": row.feedback, "model": row.model_name, "turn": row.turn,
            "task_source": row.task_source, "trainable": row.trainable, "verdict": row.verdict.get("status"),
            "source_message": row.source_message_id, "created_at": row.created_at.isoformat()}


def rows(everything: bool = False):
    """The trainable rows (what a round trains on), or with `everything` every row, oldest first."""
    return TrainingExample.objects.order_by("id") if everything else TrainingExample.objects.trainable()


def iter_jsonl(everything: bool = False) -> Iterator[str]:
    for row in rows(everything).iterator(chunk_size=500):
        yield json.dumps(record(row), ensure_ascii=False) + "\n"
