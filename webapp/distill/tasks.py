"""Trace runs sample a teacher, so they go to the `gpu` queue."""
from celery import shared_task


@shared_task(name="gpu.trace_run")
def run_traces(run_id: int) -> str:
    from webapp.distill.trace_runs import execute

    run = execute(run_id)
    return run.status if run else "taken by another worker"
