"""Puzzle tasks: self-play steps on the queue each needs (the model on `gpu`, the sandbox on
`verify`), re-verification of an edited puzzle, and the user's own solutions."""
from celery import shared_task


def _follow(run_id: int, index: int, stage: str, get_model=None) -> None:
    from webapp.puzzles.generation_runs import enqueue, run_step
    from webapp.puzzles.models import GenerationRun

    if run_step(run_id, index, stage, get_model):
        enqueue(GenerationRun.objects.get(pk=run_id))


@shared_task(name="gpu.selfplay_step")
def gpu_step(run_id: int, index: int, stage: str) -> None:
    from webapp.serving.model_runtime import runtime

    _follow(run_id, index, stage, runtime.get)


@shared_task(name="verify.selfplay_step")
def verify_step(run_id: int, index: int, stage: str) -> None:
    _follow(run_id, index, stage)


@shared_task(name="verify.puzzle_reverify")
def reverify(puzzle_id: int) -> str:
    from webapp.puzzles.solving import reverify as run

    return run(puzzle_id)
