"""Training tasks: a round runs on the `gpu` queue (where the model worker is); the schedule's
trigger and the stall reaper are light and run on the default queue."""
from celery import shared_task


@shared_task(name="gpu.training_round")
def training_round(run_id: int) -> str:
    from webapp.training.rounds import run_round

    run = run_round(run_id)
    return run.status if run is not None else "owned by another worker"


@shared_task(name="training.auto_round")
def auto_round(min_new_examples: int = 200, **round_settings) -> str:
    """Beat: start a round when at least `min_new_examples` verified examples arrived since the
    last round's snapshot (both editable on the periodic task in the admin)."""
    from webapp.training.schedule import maybe_start_round

    return maybe_start_round(min_new_examples, round_settings)


@shared_task(name="training.reap_stalled")
def reap_stalled() -> int:
    from webapp.training.rounds import reap_stalled as reap

    return reap()
