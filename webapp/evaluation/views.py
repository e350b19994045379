"""The Benchmarks pages: versions × benchmarks, a chart across versions, starting a run, each run's
live page, a task's samples and verdicts, and JSON/JSONL export. Model text reaches the page only
through Django's escaping (samples are shown as text, never as HTML)."""
from __future__ import annotations

import json

from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from engine.evaluate.suite.registry import benchmark_class, names
from webapp.accounts.roles import is_trainer
from webapp.core.charts import line_chart
from webapp.core.run_views import RunPages
from webapp.evaluation import benchmark_runs
from webapp.evaluation.models import BenchmarkRun
from webapp.refusals import Refused
from webapp.serving.models import ModelVersion

BACK = ("evaluation:index", "Back to benchmarks")


def _percent(value) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}"


def _cell(run: BenchmarkRun) -> dict:
    summary = run.summary or {}
    scores, interval = summary.get("pass_at_k") or {}, summary.get("interval") or {}
    low_high = interval.get("1") or [None, None]
    return {"run": run, "pass1": _percent(scores.get("1")), "pass10": _percent(scores.get("10")) if "10" in scores
            else "", "low": _percent(low_high[0]), "high": _percent(low_high[1]), "n": (run.config or {}).get("n"),
            "tasks": summary.get("done"), "quantization": (run.model_info or {}).get("quantization", ""),
            "syntax": _percent((summary.get("structure") or {}).get("syntax_match")),
            "dataflow": _percent((summary.get("structure") or {}).get("dataflow_match")),
            "backend": (run.model_info or {}).get("backend", "")}


def results_table(latest: list[BenchmarkRun]) -> tuple[list[tuple[str, str]], list[dict]]:
    """Columns (benchmark, prompt) and one row per version (or packaged model) with a cell per column."""
    columns = sorted({(run.benchmark, run.prompt) for run in latest},
                     key=lambda c: (names().index(c[0]) if c[0] in names() else 99, c[1]))
    by_model: dict[tuple, dict] = {}
    for run in latest:
        row = by_model.setdefault((run.version_id, run.packaged), {"version": run.version, "packaged": run.packaged,
                                                                  "label": run.model_label, "cells": {}})
        row["cells"][(run.benchmark, run.prompt)] = _cell(run)
    # the versions in order, then the packaged models beside them
    rows = sorted(by_model.values(), key=lambda r: (bool(r["packaged"]), r["version"].pk if r["version"] else 0,
                                                    r["packaged"]))
    for row in rows:
        row["cells"] = [row["cells"].get(column) for column in columns]
    return columns, rows


def _chart(columns, rows):
    series = []
    for index, (benchmark, prompt) in enumerate(columns):
        points = [(row["version"].pk if row["version"] else 0, float(cell["pass1"]) / 100)  # versions only
                  for row in rows if not row["packaged"] and (cell := row["cells"][index]) and cell["pass1"] != "—"]
        if points:
            series.append({"name": f"{benchmark} ({prompt})", "points": points})
    if not series:
        return None
    ticks = {row["version"].pk: row["version"].name.split(" ")[0] for row in rows if row["version"]}
    return line_chart(series, "model version", "pass@1", y_range=(0, 1), percent=True, x_ticks=ticks)


@require_http_methods(["GET", "POST"])
def index(request):
    error, status = "", 200
    if request.method == "POST":
        try:
            chosen = (request.POST.get("version") or "").strip()  # a version's id, or "packaged:NAME"
            version = ModelVersion.objects.filter(pk=chosen).first() if chosen.isdigit() else None
            run = benchmark_runs.start_run(request.user, request.POST.get("benchmark", ""), version,
                                           benchmark_runs.form_settings(request.POST),
                                           packaged=chosen.removeprefix("packaged:") if chosen.startswith("packaged:") else "")
            return redirect("evaluation:run", run.pk)
        except Refused as exc:
            error, status = exc.reason, exc.status
    columns, rows = results_table(benchmark_runs.latest_results())
    context = {"columns": columns, "rows": rows, "chart": _chart(columns, rows),
               "recent": BenchmarkRun.objects.select_related("version", "created_by")[:20],
               "benchmarks": [(name, benchmark_class(name)) for name in names()],
               "versions": ModelVersion.objects.order_by("-pk")[:50], "can_start": is_trainer(request.user),
               "packaged": benchmark_runs.fetched_packaged(),
               "error": error, "posted": request.POST if request.method == "POST" else {}}
    return render(request, "evaluation/index.html", context, status=status)


def _panel_context(request, run: BenchmarkRun) -> dict:
    summary = run.summary or {}
    structure = summary.get("structure") or {}
    return {"summary": summary, "parts": summary.get("parts") or {},
            "structure": structure and {"syntax": _percent(structure.get("syntax_match")),
                                        "dataflow": _percent(structure.get("dataflow_match"))},
            "scores": [(k, _percent(v), [_percent(x) for x in (summary.get("interval") or {}).get(k, [])])
                       for k, v in (summary.get("pass_at_k") or {}).items()]}


def _page_context(request, run: BenchmarkRun) -> dict:
    rows = run.task_rows.order_by("position").only("task_id", "position", "n", "c", "parts")
    return {"settings_rows": [(k.replace("_", " "), v) for k, v in (run.config or {}).items()],
            "task_rows": rows, "model_rows": list((run.model_info or {}).items())}


RUN_PAGES = RunPages(
    BenchmarkRun, "evaluation", "evaluation/run.html", "evaluation/_run_panel.html", "Benchmark run {pk}", BACK,
    may_act=is_trainer, cancel_run=benchmark_runs.cancel_run, resume_run=benchmark_runs.resume_run,
    after_resume=benchmark_runs.after_resume, panel_context=_panel_context, page_context=_page_context,
    stalled_hint="Resume it to carry on: the tasks it finished are kept.", related=("created_by", "version"))


@require_GET
def task_detail(request, run_id: int, position: int):
    run = get_object_or_404(BenchmarkRun.objects.select_related("version"), pk=run_id)
    row = run.task_rows.filter(position=position).first()
    if row is None:
        raise Http404("no such task in this run")
    return render(request, "evaluation/task.html", {"run": run, "row": row})


@require_GET
def export(request, run_id: int, fmt: str):
    """The run as one JSON document (summary, settings, rows) or as JSONL (one task per line)."""
    run = get_object_or_404(BenchmarkRun.objects.select_related("version"), pk=run_id)
    name = f"benchmark-run-{run.pk}-{run.benchmark}"
    if fmt == "jsonl":
        lines = (json.dumps({"run": run.pk, "benchmark": run.benchmark, **row}) + "\n"
                 for row in benchmark_runs.export_rows(run))
        response = StreamingHttpResponse(lines, content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="{name}.jsonl"'
        return response
    if fmt != "json":
        raise Http404("export as json or jsonl")
    document = {"run": run.pk, "benchmark": run.benchmark, "status": run.status, "settings": run.config,
                "model": run.model_info, "version": run.version.name if run.version else None, "packaged": run.packaged or None,
                "summary": run.summary, "rows": list(benchmark_runs.export_rows(run))}
    response = HttpResponse(json.dumps(document), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return response
