"""Starting, running, cancelling and resuming replayed dialog studies. The work is the engine's
`run_study` (engine/codechat/dialog_study.py) on the `gpu` queue; this loads the models, keeps the
stage current, and stores every task's transcript and the summary at the end. A study samples the
model at full precision (engine.lm.loading.load_full_precision), as a benchmark run does."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from engine.codechat.dialog_study import StudyConfig, run_study, study_tasks
from engine.config import ConfigError
from engine.sandbox.verdict import short
from webapp.accounts.roles import is_trainer
from webapp.core.heartbeat import RowHeartbeat
from webapp.core.verification import sandbox
from webapp.refusals import Conflict, Invalid, NotAllowed, config_from, form_numbers
from webapp.serving import chat_models
from webapp.studies.models import Study, StudyTask

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
FEEDBACK_WRITERS = ("auto", "teacher", "student")  # or a packaged model's name
DEFAULT_WRITER = "qwen2.5-coder-0.5b-instruct"


def start_study(user, chat_model: str = "", settings_: dict | None = None, title: str = "",
                show_reference: bool = False, feedback: str = "auto", enqueue: bool = True) -> Study:
    """Queue a replay of the study on `chat_model` (the chat's choice of model). Trainers only;
    raises NotAllowed or Invalid (bad settings, no data, no feedback model for hints)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can start studies")
    config = config_from(StudyConfig, settings_ or {})
    try:
        config.check()
    except ConfigError as exc:
        raise Invalid(str(exc), fields=exc.errors) from None
    try:
        total = len(study_tasks(settings.AUTODIDACT_BENCHMARK_DATA, config.split, config.limit))
    except FileNotFoundError as exc:
        raise Invalid(str(exc)) from None
    model = chat_models.resolve(chat_model)
    feedback = (feedback or "auto").strip()
    if feedback == "teacher" and not settings.AUTODIDACT_TEACHER_URL:
        raise Invalid("no teacher endpoint is configured (AUTODIDACT_TEACHER_URL)", fields={"feedback": "no teacher"})
    if feedback not in FEEDBACK_WRITERS:
        from engine.lm.packaged_models import PACKAGED

        if feedback not in PACKAGED:
            raise Invalid(f"the feedback writer must be one of {', '.join(FEEDBACK_WRITERS)} or a packaged model",
                          fields={"feedback": "unknown feedback writer"})
    study = Study.objects.create(created_by=user, chat_model=model.value, show_reference=show_reference,
                                 title=title.strip()[:200], tasks_total=total,
                                 config={**config.as_dict(), "kinds": list(config.kinds), "feedback": feedback})
    if enqueue:
        _enqueue(study)
    return study


FORM_NUMBERS = {"turns": int, "limit": int, "max_tokens": int, "temperature": float, "repair_temperature": float,
                "seed": int}


def form_settings(post) -> dict:
    """The study settings a form filled in (empty fields: the defaults); raises Invalid."""
    values = form_numbers(post, FORM_NUMBERS)
    kinds = post.getlist("kinds") if hasattr(post, "getlist") else post.get("kinds")
    if kinds:
        values["kinds"] = list(kinds)
    if (post.get("split") or "").strip():
        values["split"] = post["split"].strip()
    return values


def _enqueue(study: Study) -> None:
    from webapp.studies.tasks import run_study as task

    transaction.on_commit(lambda: task.delay(study.pk))


def cancel_study(user, study: Study) -> None:
    """Stop before the next turn (a study not yet started stops at once)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can cancel studies")
    if not Study.request_cancel(study.pk):
        study.refresh_from_db()
        raise Conflict(f"the study is already {study.status}")


def resume_study(user, study: Study) -> Study:
    """Run a failed, cancelled or stalled study again, from its first turn (a replay is one piece)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can resume studies")
    if not study.resumable:
        raise Conflict("the study is still going" if study.is_active else f"the study has {study.status}")
    if study.live_dialogs.exists():
        raise Conflict("people have given feedback in this study; start a new study instead")
    if not Study.reopen(study.pk):
        raise Conflict("the study changed meanwhile; reload the page")
    study.refresh_from_db()
    return study


def after_resume(study: Study) -> None:
    _enqueue(study)


def load_student(study: Study):
    spec = chat_models.resolve(study.chat_model).spec if study.chat_model else ""
    if not study.chat_model:
        from webapp.serving import versions

        active = versions.active_version()
        spec = active.spec if active else settings.AUTODIDACT_MODEL
    from webapp.serving.model_store import load_full_precision_version

    return load_full_precision_version(spec)


def load_feedback_writer(study: Study, student):
    """The model that writes `hint`s: a packaged model served as packaged (a tool, not under study),
    the teacher endpoint, or the student itself."""
    if "hint" not in study.config.get("kinds", []):
        return None
    wanted = study.config.get("feedback", "auto")
    if wanted == "teacher":
        from engine.lm.openai_endpoint import Endpoint, EndpointModel

        return EndpointModel(Endpoint(settings.AUTODIDACT_TEACHER_URL, settings.AUTODIDACT_TEACHER_MODEL,
                                      settings.AUTODIDACT_TEACHER_KEY))
    if wanted == "auto":
        from engine.lm.packaged_models import installed

        wanted = DEFAULT_WRITER if installed(DEFAULT_WRITER) else "student"
    if wanted == "student":
        return student
    from engine.lm.loading import load_model

    return load_model(wanted, "auto")


def execute(study_id: int, model=None, feedback_model=None) -> Study | None:
    """Run the replay to its end in this process; None if another worker has it."""
    if not Study.claim(study_id):
        return None
    study = Study.objects.get(pk=study_id)
    try:
        with RowHeartbeat(Study, study.pk, lambda rows: rows.filter(cancel_requested=True).exists(),
                          HEARTBEAT_S) as beat:
            _execute(study, model, feedback_model, beat)
    except Exception as exc:  # the study records why; the worker goes on
        log.exception("study %s failed", study.pk)
        Study.finish(Study.objects.filter(pk=study.pk), Study.Status.FAILED,
                     error=short(f"{type(exc).__name__}: {exc}", 2000))
    study.refresh_from_db()
    return study


def _describe(model) -> dict:
    return {"name": getattr(model, "name", "?"), "backend": getattr(model, "backend", "endpoint"),
            "quantization": getattr(model, "quantization", "?"), "device": getattr(model, "device", "")}


def _execute(study: Study, model, feedback_model, beat: RowHeartbeat) -> None:
    config = StudyConfig.from_known(study.config).check()
    tasks = study_tasks(settings.AUTODIDACT_BENCHMARK_DATA, config.split, config.limit)
    Study.objects.filter(pk=study.pk).update(stage="loading model")
    model = model or load_student(study)
    writer = feedback_model if feedback_model is not None else load_feedback_writer(study, model)
    Study.objects.filter(pk=study.pk).update(
        model_info={**_describe(model), "chat_model": study.chat_model or "served"},
        feedback_info=_describe(writer) if writer is not None else {}, stage="turn 0")
    study.task_rows.all().delete()  # a resumed study starts again

    def progress(text: str) -> None:
        following = int(text.split(":")[0].split()[-1]) + 1 if text.startswith("turn") else 0
        Study.objects.filter(pk=study.pk).update(stage=f"turn {following}" if following <= config.turns else "")

    verify = sandbox().verify_many
    result = run_study(model, tasks, config, lambda jobs: verify(jobs), writer, progress=progress, cancel=beat.cancel)
    by_id = {task.task_id: task for task in tasks}
    StudyTask.objects.bulk_create([
        StudyTask(study=study, task_id=row["task_id"], position=index, text=row["text"], tests=row["tests"],
                  setup=by_id[row["task_id"]].setup, reference=by_id[row["task_id"]].code, turn0=row["turn0"],
                  arms=row["arms"])
        for index, row in enumerate(result.pop("transcripts"))])
    status = Study.Status.CANCELLED if result["cancelled"] else Study.Status.SUCCEEDED
    Study.finish(Study.objects.filter(pk=study.pk), status, summary=result, stage="",
                 error="cancelled; the turns done are kept" if result["cancelled"] else "")
