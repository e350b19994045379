"""Benchmark tasks: a run samples with the model, so it goes to the `gpu` queue."""
from celery import shared_task


@shared_task(name="gpu.benchmark_run")
def run_benchmark(run_id: int) -> str:
    from webapp.evaluation.benchmark_runs import execute

    run = execute(run_id)
    return run.status if run else "taken by another worker"
