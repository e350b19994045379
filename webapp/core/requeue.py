"""Runs left queued when the last embedded process stopped, sent to the workers again.

Embedded mode's broker lives in memory: a run queued before the process stopped (from a page, or
by a command such as `benchmark --queue` or `train_round` that ran with no worker up) lost its
message with it, and nothing would ever take the run. Server mode's broker (Redis) keeps its
messages, so this is for embedded start-up only. Sending a run twice is harmless: each kind's
worker claims a run QUEUED -> RUNNING exactly once.
"""
from __future__ import annotations

from importlib import import_module

# (the kind's model, the function that queues one of its runs): every kind a worker takes.
KINDS = (
    ("webapp.puzzles.models.GenerationRun", "webapp.puzzles.generation_runs.enqueue"),
    ("webapp.training.models.TrainingRun", "webapp.training.rounds._enqueue"),
    ("webapp.evaluation.models.BenchmarkRun", "webapp.evaluation.benchmark_runs._enqueue"),
    ("webapp.studies.models.Study", "webapp.studies.study_runs._enqueue"),
    ("webapp.distill.models.TraceRun", "webapp.distill.trace_runs._enqueue"),
)


def _attribute(dotted: str):
    module, name = dotted.rsplit(".", 1)
    return getattr(import_module(module), name)


def requeue_left_runs() -> dict[str, int]:
    """Send every QUEUED run of every kind to its worker, oldest first; {model name: count}."""
    sent = {}
    for model_path, enqueue_path in KINDS:
        model, enqueue = _attribute(model_path), _attribute(enqueue_path)
        runs = list(model.objects.filter(status=model.Status.QUEUED, cancel_requested=False).order_by("pk"))
        for run in runs:
            enqueue(run)  # outside a transaction, on_commit sends at once
        if runs:
            sent[model.__name__] = len(runs)
    return sent


def queued_for_whom() -> str:
    """What a command that queued a run tells its user about who will take it."""
    from django.conf import settings

    if settings.EMBEDDED:
        return " (embedded mode: the main job, `manage.py up`, takes it when it runs or next starts)"
    return " for the workers"
