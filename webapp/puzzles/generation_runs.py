"""Self-play generation runs: the engine's stages, one Celery task each, on the right queue.

Each batch walks generate (gpu) → filter (verify) → solve (gpu) → verify (verify). A stage saves
its output in the batch's row and names the next; a redelivered or repeated task finds the
stage already done and only passes the baton on. Puzzles and attempts are written in one
transaction when a batch finishes, so a killed worker loses at most the batch in progress, and
`resume_run` carries on from the stage that was interrupted. `run_inline` drives the same steps
in this process (the headless command).
"""
from __future__ import annotations

import logging
from dataclasses import asdict
from types import SimpleNamespace

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from engine.sandbox.verdict import short
from engine.selfplay import pipeline
from engine.selfplay.filters import Candidate
from engine.selfplay.p3 import load_p3, one_per_problem
from engine.selfplay.seeds import SEED_PUZZLES
from webapp.accounts.roles import is_trainer
from webapp.core.heartbeat import RowHeartbeat
from webapp.core.verification import sandbox
from webapp.puzzles.catalogue import mark_kept, refresh_stats
from webapp.puzzles.models import Attempt, GenerationBatch, GenerationRun, Puzzle
from webapp.refusals import Conflict, NotAllowed, config_from
from webapp.serving.model_worker import describe_model
from webapp.serving.models import ModelVersion
from webapp.serving.teacher import teacher_model
from webapp.serving.versions import attributable, iteration

log = logging.getLogger(__name__)
NEXT = {"generate": "filter", "filter": "solve", "solve": "verify", "verify": "done"}
GPU_STAGES = ("generate", "solve")
ACTIVE = GenerationRun.ACTIVE


class RunRefused(Conflict):
    """A run cannot be started or resumed now (the reason is for the person who asked)."""

    status = 400  # what the generation pages have always answered (training rounds answer 409)


def prompt_examples() -> list:
    """Training puzzles for the generation prompt: P3's train problems (one instance each, when the
    data is there) and the shipped seeds. The test split never reaches a prompt (TestSplitLeak)."""
    examples = [SimpleNamespace(sat=s.sat, sol=s.sol, split="train") for s in SEED_PUZZLES]
    try:
        examples += [p for p in one_per_problem(load_p3(settings.AUTODIDACT_BENCHMARK_DATA / "p3"))
                     if p.split == "train"]
    except FileNotFoundError:
        log.warning("P3 data not found; the generation prompt uses the seed puzzles only")
    return examples


# Any fixed 64-bit number, the same in every process: the key of the lock below.
ONE_RUN_LOCK = 0x4155544F_47454E31


def _lock_runs() -> None:
    """Inside a transaction: wait until no other transaction is starting or resuming a run, so
    two concurrent requests cannot both find no active run (a row lock locks nothing when there is
    no row). PostgreSQL: an advisory lock held to commit; SQLite's immediate transactions already
    serialise writers."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ONE_RUN_LOCK])


def start_run(user, settings_: dict) -> GenerationRun:
    """Queue a run (trainers only; one active run at a time). Raises NotAllowed, Invalid (bad
    settings) or RunRefused."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can start generation runs")
    config = config_from(pipeline.SelfPlayConfig, settings_)

    with transaction.atomic():
        _lock_runs()
        active = GenerationRun.objects.filter(status__in=ACTIVE).first()
        if active is not None:
            raise RunRefused(f"generation run {active.pk} is still {active.status}; wait for it or cancel it")
        run = GenerationRun.objects.create(created_by=user, config=config.as_dict(),
                                           model_name=describe_model().get("model", ""),
                                           counts=pipeline.new_counts())
    return run


def cancel_run(user, run: GenerationRun) -> None:
    """Stop the run at its next step (trainers only; a run not yet started stops at once)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can cancel generation runs")
    if not GenerationRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(cancel_requested=True):
        run.refresh_from_db()
        raise Conflict(f"the run is already {run.status}")
    GenerationRun.finish(GenerationRun.objects.filter(pk=run.pk, status__in=ACTIVE, stage=""),
                         GenerationRun.Status.CANCELLED)


def next_step(run: GenerationRun) -> tuple[int, str] | None:
    """Where the run stands: the first unfinished batch and its stage."""
    last = run.batch_rows.order_by("-index").first()
    if last is None:
        return 0, "generate"
    if last.stage != "done":
        return last.index, last.stage
    if last.index + 1 < run.batches:
        return last.index + 1, "generate"
    return None


def resume_run(user, run: GenerationRun) -> GenerationRun:
    """Carry on a failed, cancelled or stalled run from the stage that did not finish."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can resume generation runs")
    if not run.resumable:
        raise RunRefused("the run is still going" if run.is_active else f"the run has {run.status}")
    with transaction.atomic():
        _lock_runs()
        other = GenerationRun.objects.filter(status__in=ACTIVE).exclude(pk=run.pk).first()
        if other is not None and not other.is_stalled():
            raise RunRefused(f"generation run {other.pk} is {other.status}; one run at a time")
        if not GenerationRun.reopen(run.pk):
            raise RunRefused("the run changed meanwhile; reload the page")
    run.refresh_from_db()
    return run


def enqueue(run: GenerationRun) -> None:
    """Queue the run's next step on its queue (after the current transaction commits)."""
    from webapp.puzzles.tasks import gpu_step, verify_step

    step = next_step(run)
    if step is None:
        return
    index, stage = step
    task = gpu_step if stage in GPU_STAGES else verify_step
    transaction.on_commit(lambda: task.delay(run.pk, index, stage))


def _watch(run_id: int) -> RowHeartbeat:
    """While a stage runs: the run's heartbeat, and a cancel once it is asked for or the run stopped."""
    return RowHeartbeat(GenerationRun, run_id,
                        lambda rows: not rows.filter(status=GenerationRun.Status.RUNNING, cancel_requested=False).exists(),
                        every_s=1.0)


def _verify(jobs: list[dict]):
    return sandbox().verify_many(jobs)


def run_step(run_id: int, index: int, stage: str, get_model=None) -> bool:
    """Run one stage of one batch if it is still due; True when the run has a next step."""
    run = GenerationRun.objects.get(pk=run_id)
    if run.cancel_requested and run.is_active:
        _finish(run, GenerationRun.Status.CANCELLED)
        return False
    if run.status not in (GenerationRun.Status.QUEUED, GenerationRun.Status.RUNNING):
        return False
    batch, _ = GenerationBatch.objects.get_or_create(run=run, index=index, defaults={"stage": "generate"})
    if batch.stage != stage:
        # Done before: a redelivered task. The step that did it passed the baton on; doing it again
        # would start a second chain. (If it died first, the run stalls and `resume_run` goes on.)
        return False
    if not GenerationRun.move(run.pk, GenerationRun.Status.RUNNING, stage=stage,
                              started_at=run.started_at or timezone.now(), heartbeat_at=timezone.now()):
        run.refresh_from_db()  # a cancel landed after the read above: it wins
        if run.cancel_requested:
            _finish(run, GenerationRun.Status.CANCELLED)
        return False
    config = pipeline.SelfPlayConfig.from_dict(run.config)
    try:
        with _watch(run.pk) as watch:
            data = dict(batch.data)
            if stage == "generate":
                model, version_id = (teacher_model(), None) if config.writer == "teacher" else get_model()
                GenerationRun.objects.filter(pk=run.pk).update(model_name=model.name)
                functions, timing = pipeline.generate(model, prompt_examples(), config, index, watch.cancel)
                data.update(functions=functions, counts=pipeline.new_counts(), writer=model.name,
                            writer_version=attributable(version_id))
            elif stage == "filter":
                counts = pipeline.new_counts()
                seen = set(Puzzle.objects.values_list("fingerprint", flat=True))
                candidates, timing = pipeline.filter_puzzles(data["functions"], seen, _verify, counts)
                data.update(candidates=[asdict(c) for c in candidates], counts=counts)
            elif stage == "solve":
                model, version_id = get_model()
                accepted = [Candidate(**c) for c in data["candidates"] if not c["rejected_by"]]
                sats = [c.sat for c in accepted]
                attempts, timing = pipeline.solve(model, sats, config, index, watch.cancel) if sats \
                    else ([], pipeline.StageTiming())
                attempts = pipeline.with_written(accepted, attempts)
                data.update(attempts=attempts, solver=model.name, solver_version=attributable(version_id))
            else:
                sats = [c["sat"] for c in data["candidates"] if not c["rejected_by"]]
                timing = pipeline.verify_attempts(sats, data["attempts"], _verify, config.verify_timeout_s)
            if watch.cancel.cancelled:
                run.refresh_from_db()
                _finish(run, GenerationRun.Status.CANCELLED)
                return False
    except Exception as exc:
        log.exception("generation run %s, batch %s, stage %s failed", run.pk, index, stage)
        GenerationRun.finish(GenerationRun.objects.filter(pk=run.pk), GenerationRun.Status.FAILED,
                             error=short(f"batch {index + 1}, {stage}: {type(exc).__name__}: {exc}", 1000))
        return False
    data.setdefault("timings", {})[stage] = asdict(timing)
    with transaction.atomic():
        if GenerationBatch.objects.select_for_update().get(pk=batch.pk).stage != stage:
            return False  # the same step, run twice at once, finished first elsewhere
        if stage == "verify":
            _save_batch(run, config, data)
        GenerationBatch.objects.filter(pk=batch.pk).update(stage=NEXT[stage], data=data)
        _total_up(run)
        run.refresh_from_db()
        if next_step(run) is None:
            _finish(run, GenerationRun.Status.SUCCEEDED)
            return False
    return True


def _save_batch(run: GenerationRun, config: pipeline.SelfPlayConfig, data: dict) -> None:
    """The batch's accepted puzzles with all their attempts; the shortest verified ones kept."""
    accepted = [Candidate(**c) for c in data["candidates"] if not c["rejected_by"]]
    solver = data.get("solver", run.model_name)
    shared = {"top_k": config.top_k, "top_p": config.top_p, "seed": config.seed}
    sampling = {"generation": {"form": config.form, "temperature": config.generation_temperature,
                               "max_new_tokens": config.writing_tokens, "context_tokens": config.context_tokens,
                               **shared},
                "solving": {"temperature": config.solving_temperature, "max_new_tokens": config.solving_tokens,
                            "attempts": config.attempts, "style": config.style, **shared}}
    # The puzzle, and a solution written with it (the pair form), are the writer's; the others the solver's.
    writer = data.get("writer", run.model_name)
    writer_version = ModelVersion.objects.filter(pk=data.get("writer_version")).first()
    written = {"model_name": writer, "model_version": writer_version, "style": "written"}
    solved = {"model_name": solver, "model_version_id": data.get("solver_version"), "style": config.style}
    counts = data["counts"]
    created = []
    for candidate, tries in zip(accepted, data["attempts"]):
        if Puzzle.objects.filter(fingerprint=candidate.fingerprint, is_current=True).exists():
            continue  # another run found the same puzzle meanwhile
        puzzle = Puzzle.objects.create(
            name=f"gen-{run.pk}", sat=candidate.sat, answer_type=candidate.answer_type,
            fingerprint=candidate.fingerprint, source=Puzzle.Source.GENERATED, split=Puzzle.Split.TRAIN,
            status=Puzzle.Status.UNSOLVED, generation_run=run, model_name=writer, sampling=sampling,
            model_version=writer_version, iteration=None if writer_version is None else iteration(writer_version))
        Attempt.objects.bulk_create([
            Attempt(puzzle=puzzle, code=a["solution"] or a["text"], status=a["status"],
                    verdict={"status": a["status"], "detail": a.get("detail", "")},
                    **(written if a.get("by") == "writer" else solved), sampling=sampling["solving"],
                    duration_ms=a.get("duration_ms", 0.0), generation_run=run) for a in tries])
        mark_kept(puzzle, config.max_solutions)
        created.append(puzzle)
        pipeline.tally(counts, tries, puzzle.attempts.filter(kept=True).count())
    refresh_stats([p.pk for p in created])
    for puzzle in created:
        puzzle.name = f"gen-{run.pk}-{puzzle.pk}"
    Puzzle.objects.bulk_update(created, ["name"])


def _total_up(run: GenerationRun) -> None:
    """The run's counts and timings, summed over its batches (only those keys of their data are read,
    not the completions and attempts beside them)."""
    rows = list(run.batch_rows.values_list("stage", "data__counts", "data__timings"))
    counts, timings = pipeline.sum_batches((c, t) for _, c, t in rows)
    done = sum(stage == "done" for stage, _, _ in rows)
    GenerationRun.objects.filter(pk=run.pk).update(counts=counts, timings=timings, batches_done=done)


def _finish(run: GenerationRun, status: str) -> None:
    GenerationRun.finish(GenerationRun.objects.filter(pk=run.pk), status, stage="")


def run_inline(run: GenerationRun, get_model, on_step=None) -> GenerationRun:
    """Drive every remaining step in this process (the headless command); same steps as Celery's."""
    while True:
        run.refresh_from_db()
        step = next_step(run)
        if step is None or not run_step(run.pk, step[0], step[1], get_model):
            break
        if on_step is not None:
            run.refresh_from_db()
            on_step(run)
    run.refresh_from_db()
    return run

