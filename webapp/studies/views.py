"""The Studies pages: the list and the form that starts a replay, each study's per-turn curve for
every feedback kind (and the people's, once live dialogs finish), the error-rate reductions, a
drill-down into each task's dialogs with diffs between turns, JSONL export, and taking part.
Model and person text reaches the page only through Django's escaping."""
from __future__ import annotations

import json

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.codechat.feedback import KINDS
from webapp.accounts.roles import is_trainer
from webapp.chat.models import Message
from webapp.chat.rendering import code_diff
from webapp.chat.threads import thread
from webapp.core.charts import line_chart
from webapp.core.refusal_responses import refusal_response
from webapp.core.run_views import RunPages
from webapp.refusals import Conflict, Refused
from webapp.serving import chat_models
from webapp.studies import live, study_runs
from webapp.studies.models import LiveDialog, Study

BACK = ("studies:index", "Back to studies")
LABELS = {"tests": "tests (which call, what came back)", "hint": "hint (feedback model)",
          "none": "none (“try again”)", "live": "people (live)"}


def _pct(value) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}"


def curve_rows(study: Study, live_arm: dict | None) -> list[dict]:
    """One row per arm: solved rate at each turn, the error-rate reduction and its interval."""
    arms = dict((study.summary or {}).get("summary") or {})
    if live_arm:
        arms["live"] = live_arm
    rows = []
    for kind, arm in arms.items():
        low, high = arm.get("error_reduction_interval") or [None, None]
        against = arm.get("against_none") or {}
        rows.append({"kind": kind, "label": LABELS.get(kind, kind), "rates": [_pct(r) for r in arm["solved_rate_by_turn"]],
                     "reduction": _pct(arm.get("error_reduction")), "low": _pct(low), "high": _pct(high),
                     "mean_turn": arm.get("mean_first_success_turn"), "dialogs": arm.get("dialogs"),
                     "against": against and {"difference": _pct(against.get("difference")),
                                             "interval": [_pct(x) for x in against.get("interval") or []],
                                             "p": against.get("sign_test_p")},
                     "points": list(enumerate(arm["solved_rate_by_turn"]))})
    return rows


def _chart(rows: list[dict], turns: int):
    series = [{"name": row["label"], "points": row["points"]} for row in rows]
    if not series:
        return None
    return line_chart(series, "feedback turn", "solved (all tasks)", y_range=(0, 1), percent=True,
                      x_ticks={t: str(t) for t in range(turns + 1)})


def _task_cells(study: Study) -> list[dict]:
    kinds = list((study.summary or {}).get("summary") or {})
    cells = []
    for row in study.task_rows.only("task_id", "position", "turn0", "arms"):
        firsts = {kind: next((t["turn"] for t in row.arms.get(kind, []) if t.get("status") == "passed"), None)
                  for kind in kinds}
        cells.append({"task_id": row.task_id, "first": row.solved_first, "status": row.turn0.get("status", ""),
                      "kinds": [(kind, firsts[kind]) for kind in kinds]})
    return cells


@require_http_methods(["GET", "POST"])
def index(request):
    error, status, posted = "", 200, {}
    if request.method == "POST":
        posted = request.POST
        try:
            study = study_runs.start_study(
                request.user, request.POST.get("chat_model", ""), study_runs.form_settings(request.POST),
                request.POST.get("title", ""), request.POST.get("show_reference") == "on",
                request.POST.get("feedback", "auto"))
            return redirect("studies:run", study.pk)
        except Refused as exc:
            error, status = exc.reason, exc.status
    context = {"studies": Study.objects.select_related("created_by")[:50], "can_start": is_trainer(request.user),
               "chat_models": chat_models.available(), "kinds": KINDS, "error": error, "posted": posted,
               "defaults": study_runs.StudyConfig(), "writers": study_runs.FEEDBACK_WRITERS,
               "may_take_part": live.may_take_part(request.user)}
    return render(request, "studies/index.html", context, status=status)


def _panel_context(request, study: Study) -> dict:
    summary = study.summary or {}
    rows = live.live_rows(study)
    curves = curve_rows(study, live.live_result(study, rows)) if summary else []
    return {"summary": summary, "curves": curves, "chart": _chart(curves, study.turns), "turn_range": range(study.turns + 1),
            "failed": len(summary.get("failed") or []), "live_rows": rows,
            "may_take_part": live.may_take_part(request.user) and study.status == Study.Status.SUCCEEDED}


def _page_context(request, study: Study) -> dict:
    config = dict(study.config or {})
    return {"settings_rows": [(k.replace("_", " "), v) for k, v in config.items()] + [
                ("show reference", study.show_reference)],
            "model_rows": list((study.model_info or {}).items()),
            "feedback_rows": list((study.feedback_info or {}).items()), "task_cells": _task_cells(study)}


RUN_PAGES = RunPages(
    Study, "studies", "studies/run.html", "studies/_run_panel.html", "Study {pk}", BACK,
    may_act=is_trainer, cancel_run=study_runs.cancel_study, resume_run=study_runs.resume_study,
    after_resume=study_runs.after_resume, panel_context=_panel_context, page_context=_page_context,
    stalled_hint="Resume it to run the replay again from its first turn.", related=("created_by",))


def _turns_with_diffs(turn0: dict, turns: list[dict]) -> list[dict]:
    shown, previous = [], turn0.get("code", "")
    for turn in turns:
        diff = code_diff(previous, turn.get("code", ""))
        shown.append({**turn, "diff": diff, "unchanged": not diff})
        previous = turn.get("code", "")
    return shown


def _live_turns(dialog: LiveDialog) -> list[dict]:
    """A live dialog's feedback turns as the replay's records: feedback, reply, code, status."""
    turns, feedback = [], ""
    for message in thread(dialog.conversation):
        if message.kind == Message.Kind.FEEDBACK:
            feedback = message.content
        elif message.kind == Message.Kind.REPAIR:
            turns.append({"turn": message.turn - 1, "feedback": feedback, "reply": message.content,
                          "code": message.code, "status": (message.verdict or {}).get("status", message.status)})
    return turns


@require_GET
def task_detail(request, run_id: int, task_id: int):
    study = get_object_or_404(Study, pk=run_id)
    row = study.task_rows.filter(task_id=task_id).first()
    if row is None:
        raise Http404("no such task in this study")
    arms = [{"kind": kind, "label": LABELS.get(kind, kind), "turns": _turns_with_diffs(row.turn0, turns)}
            for kind, turns in row.arms.items()]
    people = [{"kind": "live", "label": f"{dialog.participant.username} (live)",
               "turns": _turns_with_diffs(row.turn0, _live_turns(dialog))}
              for dialog in row.live_dialogs.select_related("participant", "conversation")]
    return render(request, "studies/task.html", {
        "study": study, "row": row, "arms": arms + people,
        "reference": row.reference if (study.show_reference or is_trainer(request.user)) else None})


@require_POST
def take(request, run_id: int):
    study = get_object_or_404(Study, pk=run_id)
    try:
        dialog = live.take_task(request.user, study)
    except Refused as exc:
        return refusal_response(request, exc, lambda text, status: RUN_PAGES.render_page(request, study, status, text),
                                BACK)
    return redirect("chat:conversation", dialog.conversation_id)


@require_POST
def leave(request, dialog_id: int):
    """Done with this task: on to the next one, or back to the study when none is left."""
    dialog = get_object_or_404(LiveDialog.objects.select_related("study"), pk=dialog_id)
    try:
        live.leave_dialog(request.user, dialog)
        following = live.take_task(request.user, dialog.study)
    except Conflict:
        return redirect("studies:run", dialog.study_id)
    except Refused as exc:
        return refusal_response(request, exc, lambda text, status: RUN_PAGES.render_page(
            request, dialog.study, status, text), BACK)
    return redirect("chat:conversation", following.conversation_id)


@require_GET
def export(request, run_id: int):
    """JSONL: a first line with the settings, models and summary; then one line per replayed task
    (its first attempt and every kind's turns), then one per live dialog."""
    study = get_object_or_404(Study, pk=run_id)

    def lines():
        yield json.dumps({"type": "study", "study": study.pk, "title": study.title, "status": study.status,
                          "settings": study.config, "model": study.model_info, "feedback_model": study.feedback_info,
                          "summary": study.summary, "live": live.live_result(study)}) + "\n"
        for row in study.task_rows.order_by("position").iterator(chunk_size=100):
            yield json.dumps({"type": "replay", "study": study.pk, **row.as_row()}) + "\n"
        for dialog in study.live_dialogs.select_related("participant", "conversation", "task"):
            yield json.dumps({"type": "live", "study": study.pk, "task_id": dialog.task.task_id,
                              "participant": dialog.participant.username, "finished": dialog.finished,
                              "first_success_turn": next((t["turn"] for t in _live_turns(dialog)
                                                          if t["status"] == "passed"), None),
                              "turns": _live_turns(dialog)}) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="study-{study.pk}.jsonl"'
    return response
