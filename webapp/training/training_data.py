"""The verified data a round trains on, read from the database at the moment the round starts:
kept solutions of puzzles that may be trained on (never the test split, never rejected or flagged
ones) in the P3 f/g/assert format, and the training-data ledger's trainable rows (verified chat
repairs, as the messages the model was given and its reply) in the chat format. The round stores
the ids and a content hash."""
from __future__ import annotations

from engine.selfplay.training_text import training_example
from engine.training.packing import TrainingText
from webapp.datasets.models import TrainingExample
from webapp.puzzles.models import Attempt

SOURCES = ("selfplay", "chat")


def puzzle_pairs(since_id: int = 0):
    return Attempt.objects.training_pairs().filter(id__gt=since_id).select_related("puzzle").order_by("id")


def ledger_rows(since_id: int = 0):
    return TrainingExample.objects.filter(id__gt=since_id).trainable()


def ledger_ids(dataset: dict | None) -> list[int]:
    """The ledger rows of a snapshot (snapshots taken before the ledger named chat messages instead)."""
    dataset = dataset or {}
    if "examples" in dataset:
        return list(dataset["examples"])
    messages = dataset.get("messages") or []
    return list(TrainingExample.objects.filter(source_message_id__in=messages).values_list("pk", flat=True))


def collect(sources=SOURCES) -> tuple[list[TrainingText], dict]:
    """Training examples and the snapshot record {"attempts": [ids], "examples": [ledger ids]}."""
    examples, ids = [], {"attempts": [], "examples": []}
    if "selfplay" in sources:
        for attempt in puzzle_pairs():
            examples.append(TrainingText(training_example(attempt.puzzle.sat, attempt.code),
                                         source=f"attempt:{attempt.pk}"))
            ids["attempts"].append(attempt.pk)
    if "chat" in sources:
        for row in ledger_rows():
            examples.append(TrainingText(messages=tuple(row.messages), source=f"example:{row.pk}"))
            ids["examples"].append(row.pk)
    return examples, ids


def new_since(dataset: dict | None) -> int:
    """Verified examples that appeared after a round's snapshot (for the scheduled trigger)."""
    last_attempt = max((dataset or {}).get("attempts") or [0])
    last_example = max(ledger_ids(dataset) or [0])
    return puzzle_pairs(last_attempt).count() + ledger_rows(last_example).count()
