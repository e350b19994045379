"""Starting, running, cancelling and resuming benchmark runs. The work itself is the engine's
`run_benchmark`; this stores each finished task as it comes (a resumed run skips them) and the
summary at the end. A run evaluates at full precision (engine.lm.loading.load_full_precision)."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from engine.config import ConfigError
from engine.evaluate import paired
from engine.evaluate.suite.registry import get_benchmark, names
from engine.evaluate.suite.runner import RunSettings, run_benchmark
from engine.sandbox.verdict import short
from webapp.accounts.roles import is_trainer
from webapp.core.heartbeat import RowHeartbeat
from webapp.core.verification import sandbox
from webapp.evaluation.models import BenchmarkRun, BenchmarkTask
from webapp.refusals import Conflict, Invalid, NotAllowed, config_from, form_numbers
from webapp.serving import versions
from webapp.serving.models import ModelVersion

log = logging.getLogger(__name__)
ACTIVE = BenchmarkRun.ACTIVE
HEARTBEAT_S = 5.0


def start_run(user, benchmark: str, version: ModelVersion | None = None, settings_: dict | None = None,
              enqueue: bool = True, packaged: str = "") -> BenchmarkRun:
    """Queue a run of `benchmark` on `version` (default: the active one), or on the `packaged`
    model of that name. Trainers only; raises NotAllowed or Invalid (an unknown benchmark or model,
    bad settings, missing data)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can start benchmark runs")
    if packaged:
        _check_packaged(packaged, version)
    if benchmark not in names():
        raise Invalid(f"unknown benchmark {benchmark!r}; choose one of {', '.join(names())}",
                      fields={"benchmark": "unknown benchmark"})
    requested = config_from(RunSettings, settings_ or {})
    try:
        suite = get_benchmark(benchmark, settings.AUTODIDACT_BENCHMARK_DATA, requested.prompt)
        config = requested.resolved(suite)
        total = len(suite.tasks()[:config.limit or None])
    except ConfigError as exc:
        raise Invalid(str(exc), fields=exc.errors) from None
    except (ValueError, FileNotFoundError) as exc:
        raise Invalid(str(exc)) from None
    if not packaged:
        version = version or versions.active_version()
    run = BenchmarkRun.objects.create(created_by=user, benchmark=benchmark, version=version, packaged=packaged,
                                      config=_stored(config), tasks_total=total)
    if enqueue:
        _enqueue(run)
    return run


def _check_packaged(name: str, version: ModelVersion | None) -> None:
    from engine.lm.packaged_models import PACKAGED, installed

    if version is not None:
        raise Invalid("choose a model version or a packaged model, not both", fields={"version": "one model"})
    if name not in PACKAGED:
        raise Invalid(f"unknown packaged model {name!r}; choose one of {', '.join(PACKAGED)}",
                      fields={"version": "unknown model"})
    if installed(name) is None:
        raise Invalid(f"{name} is not fetched here: `python -m engine.lm.packaged_models fetch {name}`",
                      fields={"version": "not fetched"})


def fetched_packaged() -> list[tuple[str, str]]:
    """(name, display name) of the packaged models fetched here, for the start form."""
    from engine.lm.packaged_models import PACKAGED, installed

    return [(name, model.display_name) for name, model in PACKAGED.items() if installed(name) is not None]


FORM_NUMBERS = {"n": int, "temperature": float, "top_k": int, "top_p": float, "max_tokens": int, "seed": int,
                "limit": int}


def form_settings(post) -> dict:
    """The run settings a form filled in (empty fields: the benchmark's defaults); raises Invalid."""
    values = form_numbers(post, FORM_NUMBERS)
    if (post.get("prompt") or "").strip():
        values["prompt"] = post["prompt"].strip()
    ks = (post.get("ks") or "").replace(",", " ").split()
    if ks:
        try:
            values["ks"] = [int(k) for k in ks]
        except ValueError:
            raise Invalid("k must be whole numbers, e.g. 1, 10", fields={"ks": "must be whole numbers"}) from None
    return values


def _stored(config: RunSettings) -> dict:
    return {**config.as_dict(), "ks": list(config.ks)}


def _enqueue(run: BenchmarkRun) -> None:
    from webapp.evaluation.tasks import run_benchmark as task

    transaction.on_commit(lambda: task.delay(run.pk))


def cancel_run(user, run: BenchmarkRun) -> None:
    """Stop at the next chunk of tasks (a run not yet started stops at once); what is done is kept."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can cancel benchmark runs")
    if not BenchmarkRun.request_cancel(run.pk):
        run.refresh_from_db()
        raise Conflict(f"the run is already {run.status}")


def resume_run(user, run: BenchmarkRun) -> BenchmarkRun:
    """Carry on a failed, cancelled or stalled run: the tasks it finished are kept, not rerun."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can resume benchmark runs")
    if not run.resumable:
        raise Conflict("the run is still going" if run.is_active else f"the run has {run.status}")
    if not BenchmarkRun.reopen(run.pk):
        raise Conflict("the run changed meanwhile; reload the page")
    run.refresh_from_db()
    return run


def after_resume(run: BenchmarkRun) -> None:
    _enqueue(run)


def load_model_for(run: BenchmarkRun):
    from webapp.serving.model_store import load_full_precision_version

    return load_full_precision_version(run.packaged or (run.version.spec if run.version else settings.AUTODIDACT_MODEL))


def execute(run_id: int, model=None) -> BenchmarkRun | None:
    """Run (or continue) a run to its end in this process; None if another worker has it."""
    if not BenchmarkRun.claim(run_id):
        return None
    run = BenchmarkRun.objects.select_related("version").get(pk=run_id)
    try:
        with RowHeartbeat(BenchmarkRun, run.pk, lambda rows: rows.filter(cancel_requested=True).exists(),
                          HEARTBEAT_S) as beat:
            _execute(run, model, beat)
    except Exception as exc:  # the run records why; the worker goes on
        log.exception("benchmark run %s failed", run.pk)
        BenchmarkRun.finish(BenchmarkRun.objects.filter(pk=run.pk), BenchmarkRun.Status.FAILED,
                            error=short(f"{type(exc).__name__}: {exc}", 2000))
    run.refresh_from_db()
    return run


def run_here(run: BenchmarkRun) -> BenchmarkRun:
    """A queued run taken and run to its end in this process (a headless command has no worker to
    take what it queues); where a worker has it already, the run as it stands."""
    return execute(run.pk) or BenchmarkRun.objects.get(pk=run.pk)


def like_run(benchmark: str, version: ModelVersion, config: dict) -> tuple[BenchmarkRun, bool]:
    """`benchmark` on `version` with a stored run's settings (`config`), so two versions are
    compared like with like: the last such run that succeeded, reused (True), else a new one run here."""
    done = BenchmarkRun.objects.filter(benchmark=benchmark, version=version, status=BenchmarkRun.Status.SUCCEEDED)
    same = next((run for run in done.order_by("-pk") if run.config == config), None)
    if same is not None:
        return same, True
    return run_here(start_run(None, benchmark, version, config, enqueue=False)), False


def paired_runs(before: BenchmarkRun, after: BenchmarkRun, k: int = 1) -> dict | None:
    """Two runs task by task (engine/evaluate/paired.py: tasks gained and lost, a paired bootstrap
    interval), over the tasks both have; None where they share none or a task has fewer than k samples."""
    rows = [[{"name": task.task_id, "n": task.n, "c": task.c} for task in run.task_rows.all()]
            for run in (before, after)]
    try:
        return paired.compare(*rows, k)
    except ValueError:
        return None


def _execute(run: BenchmarkRun, model, beat: RowHeartbeat) -> None:
    config = RunSettings.from_dict(run.config)
    suite = get_benchmark(run.benchmark, settings.AUTODIDACT_BENCHMARK_DATA, config.prompt)
    positions = {task.task_id: i for i, task in enumerate(suite.tasks())}
    BenchmarkRun.objects.filter(pk=run.pk).update(stage="loading model")
    model = model or load_model_for(run)
    info = {"name": model.name, "backend": model.backend, "quantization": model.quantization,
            "device": getattr(model, "device", ""), "version": run.version.name if run.version else "", "packaged": run.packaged}
    BenchmarkRun.objects.filter(pk=run.pk).update(model_info=info, stage="sampling")
    done = {row.task_id: row.as_row() for row in run.task_rows.all()}

    def store(row: dict) -> None:
        BenchmarkTask.objects.update_or_create(
            run=run, task_id=row["task_id"],
            defaults={"position": positions[row["task_id"]], "n": row["n"], "c": row["c"], "parts": row["parts"],
                      "samples": row["samples"]})
        BenchmarkRun.objects.filter(pk=run.pk).update(tasks_done=run.task_rows.count())

    verify = sandbox().verify_many
    result = run_benchmark(suite, model, config, lambda jobs: verify(jobs), info, done, on_task=store,
                           cancel=beat.cancel)
    summary = {key: value for key, value in result.as_dict().items() if key != "rows"}  # seconds: this leg only
    status = BenchmarkRun.Status.CANCELLED if result.cancelled else BenchmarkRun.Status.SUCCEEDED
    BenchmarkRun.finish(BenchmarkRun.objects.filter(pk=run.pk), status, summary=summary, stage="",
                        tasks_done=result.done, error="cancelled; finished tasks are kept" if result.cancelled else "")


def export_rows(run: BenchmarkRun):
    """Every task's record, in the benchmark's order (for JSON and JSONL export)."""
    for row in run.task_rows.order_by("position").iterator(chunk_size=200):
        yield row.as_row()


def latest_results() -> list[BenchmarkRun]:
    """The last successful run of each (version or packaged model, benchmark, prompt), newest first."""
    seen, latest = set(), []
    for run in BenchmarkRun.objects.filter(status=BenchmarkRun.Status.SUCCEEDED).select_related("version") \
            .order_by("-finished_at", "-id")[:500]:
        key = (run.version_id, run.packaged, run.benchmark, run.prompt)
        if key not in seen:
            seen.add(key)
            latest.append(run)
    return latest
