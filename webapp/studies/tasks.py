"""Study tasks: a replay samples with the model, so it goes to the `gpu` queue."""
from celery import shared_task


@shared_task(name="gpu.study_run")
def run_study(study_id: int) -> str:
    from webapp.studies.study_runs import execute

    study = execute(study_id)
    return study.status if study else "taken by another worker"
