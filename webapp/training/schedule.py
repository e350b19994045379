"""The periodic trigger: a round when enough new verified data has arrived since the last one."""
from __future__ import annotations

from webapp.training import training_data
from webapp.training.models import TrainingRun
from webapp.training.rounds import RoundRefused, start_round

AUTO_ROUND_TASK = "training-auto-round"


def new_examples_since_last_round() -> int:
    last = TrainingRun.objects.exclude(dataset={}).order_by("-id").first()
    return training_data.new_since(last.dataset if last else None)


def maybe_start_round(min_new_examples: int, round_settings: dict | None = None) -> str:
    waiting = new_examples_since_last_round()
    if waiting < min_new_examples:
        return f"{waiting} new verified examples; waiting for {min_new_examples}"
    try:
        run = start_round(None, round_settings or {}, trigger=TrainingRun.Trigger.SCHEDULE)
    except RoundRefused as exc:
        return str(exc)
    return f"started round {run.pk} on {waiting} new verified examples"
