"""Starting, running, cancelling and resuming trace runs. The work is the engine's `write_traces`
(engine/distill/traces.py) on the `gpu` queue: the teacher (webapp/serving/teacher.py: the
configured endpoint, or the packaged Qwen2.5-Coder GGUF behind a local server) answers through a
content cache, the sandbox checks each batch, and every trace is stored as soon as its batch is
checked, so a resumed run skips the tasks it has and the teacher is not asked twice."""
from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction

from engine.config import ConfigError
from engine.distill.traces import TEACHER_ERROR, UNANSWERED, TraceConfig, trace_tasks, write_traces
from engine.sandbox.verdict import short
from engine.training.tasks import CodeTask
from webapp.accounts.roles import is_reviewer, is_trainer
from webapp.core.heartbeat import RowHeartbeat
from webapp.core.verification import sandbox
from webapp.distill.models import Trace, TraceRun
from webapp.refusals import Conflict, Invalid, NotAllowed, config_from

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
SOURCES = ("mbpp", "p3", "chat")


def run_tasks(sources, limit: int = 0, chat_ids: list[str] | None = None) -> list[CodeTask]:
    """What a run traces: MBPP train tasks and P3 train puzzles from the data folder, then the chat
    tasks with tests whose answer the sandbox verified (never one whose text is a test item), or,
    for a run already started, exactly the chat tasks it took then (`chat_ids`)."""
    from webapp.datasets.chat_tasks import verified_chat_tasks

    tasks = trace_tasks(settings.AUTODIDACT_BENCHMARK_DATA, [s for s in sources if s != "chat"])
    if "chat" in sources:
        chats = [CodeTask(t["task_id"], t["text"], t["tests"], t["setup"], t["source"], t["reference"])
                 for t in verified_chat_tasks()]
        tasks += [t for t in chats if chat_ids is None or t.task_id in chat_ids]
    return tasks[:limit or None]


def start_trace_run(user, settings_: dict | None = None, sources=("mbpp",), limit: int = 0,
                    enqueue: bool = True) -> TraceRun:
    """Queue a trace run over MBPP train tasks, P3 train puzzles and/or verified chat tasks. Trainers only."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can start trace runs")
    config = config_from(TraceConfig, settings_ or {})
    try:
        config.check()
    except ConfigError as exc:
        raise Invalid(str(exc), fields=exc.errors) from None
    sources = tuple(sources or ())
    if not sources or any(source not in SOURCES for source in sources):
        raise Invalid(f"sources must be among {', '.join(SOURCES)}", fields={"sources": "unknown source"})
    if limit < 0:
        raise Invalid("limit must be at least 0", fields={"limit": "must be at least 0"})
    try:
        tasks = run_tasks(sources, limit)
    except FileNotFoundError as exc:
        raise Invalid(str(exc)) from None
    if not tasks:
        raise Invalid("nothing to trace from these sources (chat: no chat task with tests has a verified answer yet)")
    chat_ids = [t.task_id for t in tasks if t.task_id.startswith("chat:")]  # a resume traces the same ones
    run = TraceRun.objects.create(created_by=user, tasks_total=len(tasks),
                                  config={**config.as_dict(), "sources": list(sources), "limit": limit,
                                          **({"chat_tasks": chat_ids} if "chat" in sources else {})})
    if enqueue:
        _enqueue(run)
    return run


def _enqueue(run: TraceRun) -> None:
    from webapp.distill.tasks import run_traces

    transaction.on_commit(lambda: run_traces.delay(run.pk))


def cancel_trace_run(user, run: TraceRun) -> None:
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can cancel trace runs")
    if not TraceRun.request_cancel(run.pk):
        run.refresh_from_db()
        raise Conflict(f"the trace run is already {run.status}")


def resume_trace_run(user, run: TraceRun) -> TraceRun:
    """Go on from the first task without stored traces (answers already paid for come from the cache)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can resume trace runs")
    if not run.resumable:
        raise Conflict("the trace run is still going" if run.is_active else f"the trace run has {run.status}")
    if not TraceRun.reopen(run.pk):
        raise Conflict("the trace run changed meanwhile; reload the page")
    run.refresh_from_db()
    return run


def after_resume(run: TraceRun) -> None:
    _enqueue(run)


def review_trace(user, trace: Trace, verdict: str, note: str = "") -> Trace:
    """A reviewer accepts or rejects a trace (a rejected one is never trained on), or sets it back
    to pending."""
    from django.utils import timezone

    if not is_reviewer(user):
        raise NotAllowed("only reviewers can review traces")
    if verdict not in Trace.Review.values:
        raise Invalid(f"the review must be one of {', '.join(Trace.Review.values)}", fields={"review": "unknown"})
    if verdict != Trace.Review.PENDING and not trace.kept:
        raise Conflict("only kept traces (their code passed) are reviewed; this one is never trained on")
    Trace.objects.filter(pk=trace.pk).update(review=verdict, review_note=note.strip()[:2000],
                                             reviewed_by=user if verdict != Trace.Review.PENDING else None,
                                             reviewed_at=timezone.now() if verdict != Trace.Review.PENDING else None)
    trace.refresh_from_db()
    return trace


def cache_path() -> Path:
    return Path(settings.DATA_DIR) / "traces" / "teacher-cache.jsonl"


def _describe(model) -> dict:
    return {"name": getattr(model, "name", "?"), "backend": getattr(model, "backend", "endpoint"),
            "quantization": getattr(model, "quantization", "as served"),
            "endpoint": bool(settings.AUTODIDACT_TEACHER_URL)}


def execute(run_id: int, teacher=None) -> TraceRun | None:
    """Run to the end in this process; None if another worker has it."""
    if not TraceRun.claim(run_id):
        return None
    run = TraceRun.objects.get(pk=run_id)
    try:
        with RowHeartbeat(TraceRun, run.pk, lambda rows: rows.filter(cancel_requested=True).exists(),
                          HEARTBEAT_S) as beat:
            _execute(run, teacher, beat)
    except Exception as exc:  # the run records why; the worker goes on
        log.exception("trace run %s failed", run.pk)
        TraceRun.finish(TraceRun.objects.filter(pk=run.pk), TraceRun.Status.FAILED,
                        error=short(f"{type(exc).__name__}: {exc}", 2000))
    run.refresh_from_db()
    return run


def _execute(run: TraceRun, teacher, beat: RowHeartbeat) -> None:
    from engine.distill.request_cache import CachedSampler

    config = TraceConfig.from_known(run.config).check()
    tasks = run_tasks(run.config.get("sources", ["mbpp"]), int(run.config.get("limit", 0)), run.config.get("chat_tasks"))
    # Tasks the teacher did not answer (a failed request, a cancel) are asked again: their stored
    # traces go, and the cache answers the samples it already has.
    unanswered = run.traces.filter(status__in=UNANSWERED).values_list("task_id", flat=True)
    run.traces.filter(task_id__in=list(unanswered)).delete()
    done = set(run.traces.values_list("task_id", flat=True).distinct())
    TraceRun.objects.filter(pk=run.pk).update(stage="loading teacher", tasks_done=len(done))
    if teacher is None:
        from webapp.serving.teacher import teacher_model

        teacher = teacher_model()
    cached = CachedSampler(teacher, cache_path())
    TraceRun.objects.filter(pk=run.pk).update(teacher_info=_describe(teacher), stage="tracing")

    def store(traces) -> None:
        Trace.objects.bulk_create([Trace(run=run, task_id=t.task_id, source=t.source, kind=t.kind, sample=t.sample,
                                         prompt=t.prompt, reply=t.reply, reasoning=t.reasoning, code=t.code,
                                         status=t.status, detail=t.detail, tokens=t.tokens, kept=t.kept)
                                   for t in traces], ignore_conflicts=True)
        TraceRun.objects.filter(pk=run.pk).update(tasks_done=run.traces.values("task_id").distinct().count())

    result = write_traces(cached, [t for t in tasks if t.task_id not in done], config, lambda jobs: sandbox().verify_many(jobs),
                          cancel=beat.cancel, teacher_name=getattr(teacher, "name", ""), on_batch=store)
    summary = _summary(run)
    summary.update(cache_hits=cached.hits, asked_teacher=cached.asked)
    unanswered = summary["counts"].get(TEACHER_ERROR, 0)
    status, error = TraceRun.Status.SUCCEEDED, ""
    if result.cancelled:
        status, error = TraceRun.Status.CANCELLED, "cancelled; the traces written are kept"
    elif unanswered:  # an outage must not pass for a finished run: resuming asks those again
        status = TraceRun.Status.FAILED
        error = (f"the teacher did not answer {unanswered} of {summary['asked']} requests (after retries); "
                 "resume to ask them again")
    TraceRun.finish(TraceRun.objects.filter(pk=run.pk), status, summary=summary, stage="", error=error)


def _summary(run: TraceRun) -> dict:
    """Counts over every trace the run stored (a resumed run's earlier batches included)."""
    from django.db.models import Count, Sum

    rows = run.traces.all()
    counts = dict(rows.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {"asked": rows.count(), "kept": rows.filter(kept=True).count(),
            "tasks_with_trace": rows.filter(kept=True).values("task_id").distinct().count(),
            "tokens": rows.aggregate(total=Sum("tokens"))["total"] or 0, "counts": counts}
