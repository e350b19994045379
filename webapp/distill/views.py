"""The Traces pages: trace runs (and the form that starts one), every trace to browse with filters,
a trace's page with its review, and the export of the trainable traces as chat JSON lines.
Teacher text reaches the page only through Django's escaping (and Pygments for code)."""
from __future__ import annotations

import json

from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.distill.traces import TraceConfig, student_messages
from webapp.accounts.roles import is_reviewer, is_trainer
from webapp.core.refusal_responses import refusal_response
from webapp.core.run_views import RunPages
from webapp.distill import trace_runs
from webapp.distill.models import Trace, TraceRun
from webapp.refusals import Refused, form_numbers

BACK = ("distill:index", "Back to traces")
PER_PAGE = 50
FORM_NUMBERS = {"samples": int, "max_tokens": int, "temperature": float, "top_k": int, "top_p": float,
                "seed": int, "batch_tasks": int}
SHOWN = {"kept": "kept (passed)", "trainable": "trainable (kept, not rejected)", "all": "all",
         "failed": "not kept"}


def _filtered(request):
    shown = request.GET.get("show", "kept")
    rows = Trace.objects.select_related("run")
    if shown == "kept":
        rows = rows.filter(kept=True)
    elif shown == "trainable":
        rows = rows.trainable()
    elif shown == "failed":
        rows = rows.filter(kept=False)
    review = request.GET.get("review", "")
    if review in Trace.Review.values:
        rows = rows.filter(review=review)
    source = (request.GET.get("source") or "").strip()
    if source:
        rows = rows.filter(source__startswith=source)
    run = (request.GET.get("run") or "").strip()
    if run.isdigit():
        rows = rows.filter(run_id=int(run))
    return rows.order_by("-id"), {"show": shown, "review": review, "source": source, "run": run}


@require_http_methods(["GET", "POST"])
def index(request):
    error, status, posted = "", 200, {}
    if request.method == "POST":
        posted = request.POST
        try:
            run = trace_runs.start_trace_run(request.user, form_numbers(request.POST, FORM_NUMBERS),
                                             request.POST.getlist("sources") or ["mbpp"],
                                             form_numbers(request.POST, {"limit": int}).get("limit", 0))
            return redirect("distill:run", run.pk)
        except Refused as exc:
            error, status = exc.reason, exc.status
    rows, filters = _filtered(request)
    page = Paginator(rows, PER_PAGE).get_page(request.GET.get("page"))
    query = "&".join(f"{key}={value}" for key, value in filters.items() if value)
    context = {"runs": TraceRun.objects.select_related("created_by")[:20], "can_start": is_trainer(request.user),
               "page": page, "filters": filters, "query": query, "shown_choices": SHOWN.items(),
               "reviews": Trace.Review.values, "error": error, "posted": posted, "defaults": TraceConfig(),
               "sources": trace_runs.SOURCES, "trainable": Trace.objects.trainable().count()}
    return render(request, "distill/index.html", context, status=status)


def _panel_context(request, run: TraceRun) -> dict:
    summary = run.summary or {}
    return {"summary": summary, "counts": sorted((summary.get("counts") or {}).items(), key=lambda kv: -kv[1])}


def _page_context(request, run: TraceRun) -> dict:
    return {"settings_rows": [(k.replace("_", " "), v) for k, v in (run.config or {}).items()],
            "teacher_rows": list((run.teacher_info or {}).items())}


RUN_PAGES = RunPages(
    TraceRun, "distill", "distill/run.html", "distill/_run_panel.html", "Trace run {pk}", BACK,
    may_act=is_trainer, cancel_run=trace_runs.cancel_trace_run, resume_run=trace_runs.resume_trace_run,
    after_resume=trace_runs.after_resume, panel_context=_panel_context, page_context=_page_context,
    stalled_hint="Resume it to go on from the first task without traces (answers already given come from the cache).")


def _trace_page(request, trace: Trace, status: int = 200, error: str = ""):
    return render(request, "distill/trace.html", {
        "trace": trace, "may_review": is_reviewer(request.user) and trace.kept, "error": error,
        "siblings": Trace.objects.filter(run=trace.run, task_id=trace.task_id).exclude(pk=trace.pk).order_by("sample"),
        "prompt_text": "\n\n".join(str(m.get("content", "")) for m in trace.prompt or [])}, status=status)


@require_GET
def trace_detail(request, trace_id: int):
    return _trace_page(request, get_object_or_404(Trace.objects.select_related("run", "reviewed_by"), pk=trace_id))


@require_POST
def review(request, trace_id: int):
    trace = get_object_or_404(Trace, pk=trace_id)
    try:
        trace_runs.review_trace(request.user, trace, request.POST.get("review", ""), request.POST.get("note", ""))
    except Refused as exc:
        return refusal_response(request, exc, lambda text, status: _trace_page(request, trace, status, text), BACK)
    return redirect("distill:trace", trace.pk)


@require_GET
def export(request):
    """The trainable traces (kept, not rejected), one chat example a line: the plain task prompt,
    the teacher's reasoning and code as the answer; with the trace's source, teacher run and review."""
    rows = Trace.objects.trainable().select_related("run").order_by("id")
    run = (request.GET.get("run") or "").strip()
    if run.isdigit():
        rows = rows.filter(run_id=int(run))

    def lines():
        for trace in rows.iterator(chunk_size=200):
            yield json.dumps({"messages": student_messages(trace.prompt, trace.reasoning, trace.code),
                              "source": trace.source, "trace": trace.pk, "run": trace.run_id,
                              "teacher": (trace.run.teacher_info or {}).get("name", ""), "review": trace.review},
                             ensure_ascii=False) + "\n"

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = 'attachment; filename="traces.jsonl"'
    return response
