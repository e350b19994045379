"""Verified pairs as JSON lines, one training example per line, ready for `datasets.load_dataset
("json", ...)`. Only pairs that may be trained on: current, solved, not rejected or flagged by a
reviewer, never from the test split."""
from __future__ import annotations

import json
from collections.abc import Iterator

from engine.selfplay.training_text import training_example
from webapp.puzzles.models import Attempt


def pairs(sources: list[str] | None = None):
    rows = Attempt.objects.training_pairs().select_related("puzzle").order_by("puzzle_id", "id")
    if sources:
        rows = rows.filter(puzzle__source__in=sources)
    return rows


def record(attempt: Attempt) -> dict:
    puzzle = attempt.puzzle
    return {"puzzle_id": puzzle.pk, "name": puzzle.name, "source": puzzle.source, "split": puzzle.split,
            "version": puzzle.version, "sat": puzzle.sat, "answer_type": puzzle.answer_type, "solution": attempt.code,
            "text": training_example(puzzle.sat, attempt.code), "origin": attempt.origin,
            "model": attempt.model_name or puzzle.model_name, "style": attempt.style, "sampling": attempt.sampling,
            "puzzle_model": puzzle.model_name, "puzzle_sampling": puzzle.sampling,
            "review_state": puzzle.review_state, "verdict": attempt.verdict.get("status", attempt.status)}


def iter_jsonl(sources: list[str] | None = None) -> Iterator[str]:
    for attempt in pairs(sources).iterator(chunk_size=500):
        yield json.dumps(record(attempt)) + "\n"
