"""Training pages: the rounds (and the form that starts one), a round's live page, and the model
versions with their scores across rounds.

The views are thin: rounds.py and versions.py decide (who may, whether a round may start, what
is promoted); these read the request, call them and render. A refusal says why: PermissionDenied
is a 403 with its reason, bad settings a 400 with the form again and what was typed, a round
that cannot start because another one runs a 409 that links to it.
"""
from __future__ import annotations

import math
import re

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.evaluate import paired
from engine.evaluate.p3_eval import P3EvalConfig
from engine.training.sft import METHODS, SFTConfig
from webapp.accounts.roles import is_trainer
from webapp.training import rounds, versions
from webapp.training.charts import line_chart
from webapp.training.models import ModelVersion, TrainingRun
from webapp.training.rounds import RoundConfig, RoundRefused
from webapp.training.training_data import SOURCES

RUNS_SHOWN = 50
VERSIONS_SHOWN = 100
SOURCE_LABELS = {"selfplay": "Self-play puzzle pairs (verified)", "chat": "Chat repairs that passed their tests"}
STAGES = (("data", "Snapshot the data"), ("eval-before", "Evaluate the active model"), ("train", "Fine-tune"),
          ("eval-after", "Evaluate the new model"), ("decide", "Decide"))
STAGE_LABELS = dict(STAGES)

# The form: name, label, type, where it goes in the settings, help. Minimums the engine does not
# check itself (or checks in other units) are checked here.
FIELDS = (
    ("method", "Method", str, "sft", "full fine-tuning, or LoRA adapters merged after training"),
    ("epochs", "Epochs", float, "sft", ""),
    ("max_steps", "Max steps", int, "sft", "0: train for the epochs"),
    ("learning_rate", "Learning rate", float, "sft", ""),
    ("batch_size", "Batch size", int, "sft", "blocks per device step"),
    ("gradient_accumulation", "Gradient accumulation", int, "sft", "steps per optimizer update"),
    ("block_size", "Block size", int, "sft", "tokens per packed training block"),
    ("samples", "Samples per puzzle (n)", int, "p3_eval", "attempts per held-out puzzle"),
    ("temperature", "Temperature", float, "p3_eval", "sampling temperature of the evaluation"),
    ("subset", "Puzzles (subset)", int, "p3_eval", "0: all 228 held-out test puzzles; else a seeded subset"),
    ("humaneval_problems", "HumanEval problems", int, "", "greedy pass@1 on the first N; 0: skip"),
    ("metric_k", "k for the gate", int, "", "promote only if pass@k does not drop"),
    ("margin", "Margin (points)", float, "", "allowed drop of pass@k, in percentage points"),
)
LABELS = {name: label for name, label, *_ in FIELDS}
BOUNDS = {  # name: (lowest, highest or None)
    "max_steps": (0, None), "subset": (0, None), "humaneval_problems": (0, None), "metric_k": (1, None),
    "temperature": (0.0, 2.0), "margin": (0.0, 99.99),
}


# --- refusals ------------------------------------------------------------------------------------
def _refusal(request, reason: str, status: int) -> HttpResponse:
    """htmx: the reason as text (the page shows it above the panel); otherwise a short page."""
    text = reason[:1].upper() + reason[1:] if reason else "The request was refused."
    if request.htmx:
        return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
    return render(request, "refused.html", {"reason": text, "status": status, "back_url": reverse("training:runs"),
                                            "back_label": "Back to training"}, status=status)


def _readable(text: str) -> str:
    """An engine message with its field names as the form labels them ("batch_size must be at
    least 1" → "Batch size must be at least 1")."""
    clauses = []
    for clause in text.split("; "):
        name = re.match(r"[a-z_]+", clause)
        if name and name.group() in LABELS:
            clause = LABELS[name.group()] + clause[name.end():]
        clauses.append(clause)
    text = "; ".join(clauses)
    return text[:1].upper() + text[1:]


# --- the runs and the form -----------------------------------------------------------------------
def _defaults() -> dict:
    config, sft, evaluation = RoundConfig(), SFTConfig(), P3EvalConfig()
    values = {name: getattr(sft, name) for name in ("method", "epochs", "max_steps", "learning_rate", "batch_size",
                                                     "gradient_accumulation", "block_size")}
    values.update(samples=evaluation.samples, temperature=evaluation.temperature, subset=evaluation.subset,
                  humaneval_problems=config.humaneval_problems, metric_k=config.metric_k,
                  margin=_number(config.margin * 100))
    values["learning_rate"] = f"{sft.learning_rate:g}"
    values["sources"] = list(config.sources)
    return values


def _number(value: float):
    return int(value) if float(value).is_integer() else value


def round_settings(post) -> dict:
    """The form's values as RoundConfig.from_dict wants them; ValueError names the field that is wrong."""
    sources = post.getlist("sources")
    if not sources:
        raise ValueError("Choose at least one data source")
    values = {}
    for name, label, kind, _, _ in FIELDS:
        raw = post.get(name, "").strip()
        if not raw:
            raise ValueError(f"{label} is empty")
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"{label} must be {'a whole number' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{label} must be a number")
        low, high = BOUNDS.get(name, (None, None))
        if low is not None and value < low:
            raise ValueError(f"{label} must be at least {low}")
        if high is not None and value > high:
            raise ValueError(f"{label} must be at most {high}")
        values[name] = value
    settings = {"sources": sources, "sft": {}, "p3_eval": {}}
    for name, _, _, group, _ in FIELDS:
        if group:
            settings[group][name] = values[name]
        else:
            settings[name] = values[name]
    settings["margin"] = round(values["margin"] / 100, 6)
    return settings


def _form(values: dict) -> dict:
    fields = []
    for name, label, kind, group, help_text in FIELDS:
        low, high = BOUNDS.get(name, (None, None))
        if low is None and kind is not str:
            low = 0 if kind is float else 1
        fields.append({"name": name, "label": label, "help": help_text, "kind": kind.__name__,
                       "value": values.get(name, ""), "min": low, "max": high,
                       "step": "any" if kind is float else "1", "group": group or "gate"})
    chosen = values.get("sources") or []
    return {"sources": [{"value": s, "label": SOURCE_LABELS.get(s, s), "checked": s in chosen} for s in SOURCES],
            "methods": METHODS,
            "train_fields": [f for f in fields if f["group"] == "sft"],
            "eval_fields": [f for f in fields if f["group"] != "sft"]}


def _gate(run: TrainingRun) -> dict:
    """pass@k (the gate's k) before and after, for the list."""
    k = str((run.config or {}).get("metric_k", 10))
    before = ((run.eval_before or {}).get("p3") or {}).get("pass_at_k", {}).get(k)
    after = ((run.eval_after or {}).get("p3") or {}).get("pass_at_k", {}).get(k)
    return {"k": k, "before": percent(before), "after": percent(after)}


def percent(value) -> str | None:
    """0.0437 → "4.4%"; None stays None (not measured)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return f"{value * 100:.1f}%"


def _runs_page(request, status: int = 200, error: str = "", values: dict | None = None,
               busy: TrainingRun | None = None) -> HttpResponse:
    runs = list(TrainingRun.objects.select_related("created_by", "produced_version")[:RUNS_SHOWN])
    for run in runs:
        run.percent = round(run.fraction * 100)
        run.gate = _gate(run)
    context = {"trainer": is_trainer(request.user), "runs": runs, "error": error, "busy": busy,
               "active": next((run for run in runs if run.is_active), None),
               **_form(values if values is not None else _defaults())}
    return render(request, "training/list.html", context, status=status)


@require_http_methods(["GET", "POST"])
def runs(request):
    if request.method == "GET":
        return _runs_page(request)
    if not is_trainer(request.user):  # before the settings: a refusal says who may, not what is wrong
        return _refusal(request, "only trainers can start training rounds", 403)
    values = {name: request.POST.get(name, "") for name in LABELS}
    values["sources"] = request.POST.getlist("sources")
    try:
        run = rounds.start_round(request.user, round_settings(request.POST), trigger=TrainingRun.Trigger.FORM)
    except PermissionDenied as exc:
        return _refusal(request, str(exc), 403)
    except ValueError as exc:
        return _runs_page(request, 400, _readable(str(exc)), values)
    except RoundRefused as exc:
        return _runs_page(request, 409, _readable(str(exc)), values,
                          busy=TrainingRun.objects.filter(lock_slot=True).first())
    return redirect("training:run", run.pk)


# --- a run's page --------------------------------------------------------------------------------
def _duration(seconds) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(round(float(seconds))))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours} h {minutes:02d} min" if hours else (f"{minutes} min {secs:02d} s" if minutes else f"{secs} s")


def _comparison(run: TrainingRun) -> dict:
    """The before/after table: rows of (label, before, after, better)."""
    before, after = run.eval_before or {}, run.eval_after or {}
    p3_before, p3_after = before.get("p3") or {}, after.get("p3") or {}
    he_before, he_after = before.get("humaneval") or {}, after.get("humaneval") or {}
    gate_k = str((run.config or {}).get("metric_k", 10))
    ks = sorted(set(p3_before.get("pass_at_k", {})) | set(p3_after.get("pass_at_k", {})), key=int)
    rows = []

    def row(key, label, old, new, kind="percent", gate=False):
        better = None
        if isinstance(old, (int, float)) and isinstance(new, (int, float)) and kind == "percent":
            better = "up" if new > old else ("down" if new < old else "same")
        show = {"percent": percent, "number": lambda v: None if v is None else f"{v:g}", "text": lambda v: v}[kind]
        rows.append({"key": key, "label": label, "before": show(old), "after": show(new), "gate": gate,
                     "better": better})

    for k in ks:
        row(f"pass-{k}", f"P3 pass@{k}", p3_before.get("pass_at_k", {}).get(k), p3_after.get("pass_at_k", {}).get(k),
            gate=k == gate_k)
    row("solved", "P3 solved", _fraction(p3_before), _fraction(p3_after), kind="text")
    if he_before or he_after or (run.config or {}).get("humaneval_problems"):
        row("humaneval", "HumanEval pass@1", he_before.get("pass_at_1"), he_after.get("pass_at_1"))
        row("humaneval-passed", "HumanEval passed", _fraction(he_before, "passed", "problems"),
            _fraction(he_after, "passed", "problems"), kind="text")
    row("tokens-per-s", "P3 tokens/s", p3_before.get("tokens_per_s"), p3_after.get("tokens_per_s"), kind="number")
    row("seconds", "Evaluation wall time", _evaluation_time(before), _evaluation_time(after), kind="text")
    version = getattr(run, "produced_version", None)
    change = paired.compare_results(p3_before, p3_after, int(gate_k))
    return {"rows": rows, "paired": paired.summary(change) if change else "",
            "model_before": (run.base_version.name if run.base_version else before.get("model", "")) if before else "",
            "model_after": (version.name if version else after.get("model", "")) if after else "",
            "dataset": p3_after.get("dataset") or p3_before.get("dataset") or "", "gate_k": gate_k,
            "any": bool(before or after)}


def _evaluation_time(evaluation: dict) -> str | None:
    """A reused evaluation took its time in the round that measured it, not in this one."""
    if evaluation.get("seconds") is None:
        return None
    spent = _duration(evaluation["seconds"])
    return f"reused (took {spent} when measured)" if evaluation.get("reused") else spent


def _fraction(result: dict, part: str = "solved", whole: str = "puzzles") -> str | None:
    if not result or whole not in result:
        return None
    return f"{result.get(part, 0)}/{result[whole]}"


def _loss_chart(run: TrainingRun):
    return line_chart([{"name": "training loss", "points": run.loss_curve or []}], "step", "loss",
                      title=f"Training loss of round {run.pk}")


def _run_context(request, run: TrainingRun) -> dict:
    trainer = is_trainer(request.user)
    progress = run.progress or {}
    training = run.training or {}
    figures = []
    if run.is_active and run.stage == "train" and "step" in progress:
        figures = [("step", "Step", f"{progress.get('step', 0)}/{progress.get('max_steps') or '?'}"),
                   ("epoch", "Epoch", progress.get("epoch", "—")),
                   ("loss", "Loss", progress.get("loss", "—")),
                   ("tokens-per-s", "Tokens/s", progress.get("tokens_per_s", "—")),
                   ("eta", "ETA", _duration(progress.get("eta_s")))]
    elif run.is_active and run.stage in ("eval-before", "eval-after") and "total" in progress:
        figures = [("done", "Evaluated", f"{progress.get('done', 0)}/{progress.get('total', 0)} problems")]
    version = getattr(run, "produced_version", None)
    return {
        "run": run, "percent": round(run.fraction * 100), "polling": run.is_active,
        "stalled": rounds.is_stalled(run), "stalled_after_s": int(rounds.STALLED_AFTER_S), "figures": figures,
        "stage_label": STAGE_LABELS.get(run.stage, run.stage),
        "stages": [{"key": key, "label": label, "current": key == run.stage} for key, label in STAGES],
        "loss_chart": _loss_chart(run), "comparison": _comparison(run),
        "training_rows": [(label, training.get(key)) for key, label in (
            ("steps", "Steps"), ("epochs", "Epochs"), ("blocks", "Blocks"), ("tokens", "Tokens per epoch"),
            ("final_loss", "Final loss"), ("tokens_per_s", "Tokens/s"), ("seconds", "Seconds"),
            ("resumed_from", "Resumed from")) if training.get(key) not in (None, "")],
        "version": version,
        "dataset_counts": {"attempts": len((run.dataset or {}).get("attempts") or []),
                           "messages": len((run.dataset or {}).get("messages") or [])},
        "can_cancel": trainer and run.is_active and not run.cancel_requested,
        "can_resume": trainer and run.status in (TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED),
        "trainer": trainer,
    }


def _run(run_id: int) -> TrainingRun:
    return get_object_or_404(TrainingRun.objects.select_related("created_by", "base_version", "produced_version"),
                             pk=run_id)


def _run_page(request, run: TrainingRun, status: int = 200, error: str = "") -> HttpResponse:
    config = run.config or {}
    settings_rows = [("Data sources", ", ".join(config.get("sources") or []))]
    settings_rows += [(LABELS.get(k, k.replace("_", " ")), v) for k, v in (config.get("sft") or {}).items()]
    settings_rows += [(LABELS.get(k, k.replace("_", " ")), v) for k, v in (config.get("p3_eval") or {}).items()]
    settings_rows += [(LABELS.get(k, k.replace("_", " ")), v) for k, v in config.items()
                      if k not in ("sources", "sft", "p3_eval") and k != "margin"]
    if "margin" in config:
        settings_rows.append((LABELS["margin"], _number(round(float(config["margin"]) * 100, 4))))
    context = {**_run_context(request, run), "settings_rows": settings_rows, "action_error": error}
    return render(request, "training/run.html", context, status=status)


@require_GET
def run_page(request, run_id: int):
    return _run_page(request, _run(run_id))


@require_GET
@never_cache
def run_progress(request, run_id: int):
    """The live part of the run page; htmx polls it every 2 s while the round is active."""
    return render(request, "training/_run_panel.html", _run_context(request, _run(run_id)))


def _after_action(request, run: TrainingRun) -> HttpResponse:
    if request.htmx:
        return render(request, "training/_run_panel.html", _run_context(request, _run(run.pk)))
    return redirect("training:run", run.pk)


@require_POST
def cancel(request, run_id: int):
    run = _run(run_id)
    if not is_trainer(request.user):
        return _refusal(request, "only trainers can cancel training rounds", 403)
    if not run.is_active:
        reason = f"round {run.pk} is already {run.status}"
        return _refusal(request, reason, 409) if request.htmx else _run_page(request, run, 409, _readable(reason))
    try:
        rounds.cancel_round(request.user, run)
    except PermissionDenied as exc:
        return _refusal(request, str(exc), 403)
    return _after_action(request, run)


@require_POST
def resume(request, run_id: int):
    run = _run(run_id)
    try:
        run = rounds.resume_round(request.user, run)
    except PermissionDenied as exc:
        return _refusal(request, str(exc), 403)
    except RoundRefused as exc:
        reason = _readable(str(exc))
        return _refusal(request, reason, 409) if request.htmx else _run_page(request, _run(run_id), 409, reason)
    return _after_action(request, run)


# --- model versions ------------------------------------------------------------------------------
def _signature(metrics: dict) -> tuple:
    """What makes two evaluations comparable: the same set, sampling and HumanEval problems."""
    p3 = metrics.get("p3") or {}
    config = {k: v for k, v in (p3.get("config") or {}).items() if k not in ("ks", "max_batch_rows")}
    return (p3.get("dataset"), tuple(sorted((k, str(v)) for k, v in config.items())),
            (metrics.get("humaneval") or {}).get("problems"))


def _reference() -> tuple | None:
    """The settings of the newest round that measured something: the versions are compared on them."""
    for before, after in TrainingRun.objects.exclude(eval_before={}).values_list("eval_before", "eval_after")[:20]:
        for result in (after, before):
            if result and result.get("p3"):
                return _signature(result)
    return None


def _measured(version: ModelVersion, reference: tuple | None) -> tuple[dict | None, bool]:
    """Its evaluation with the reference settings, else its largest other one (flagged)."""
    results = [m for m in (version.metrics or {}).values() if isinstance(m, dict) and m.get("p3")]
    for result in results:
        if reference is not None and _signature(result) == reference:
            return result, True
    if not results:
        return None, False
    return max(results, key=lambda m: (m["p3"].get("puzzles", 0), m["p3"].get("config", {}).get("samples", 0))), False


def _short_name(name: str) -> str:
    head = name.split(" · ", 1)[0]
    return head if len(head) <= 14 else head[:13] + "…"


def _versions_chart(rows: list[dict]):
    """pass@1, pass@10 and HumanEval pass@1 per version, oldest first, like-for-like results only."""
    ordered = sorted(rows, key=lambda row: (row["version"].created_at, row["version"].pk))
    series = {"P3 pass@1": [], "P3 pass@10": [], "HumanEval pass@1": []}
    ticks = {}
    for x, row in enumerate(ordered):
        ticks[x] = _short_name(row["version"].name)
        result = row["metrics"] if row["comparable"] else None
        if not result:
            continue
        pass_at_k = result["p3"].get("pass_at_k", {})
        for k in ("1", "10"):
            if k in pass_at_k:
                series[f"P3 pass@{k}"].append((x, pass_at_k[k]))
        if (result.get("humaneval") or {}).get("pass_at_1") is not None:
            series["HumanEval pass@1"].append((x, result["humaneval"]["pass_at_1"]))
    return line_chart([{"name": name, "points": points} for name, points in series.items()], "model version",
                      "score", width=960, height=260, y_range=(0, 1), percent=True, x_ticks=ticks,
                      title="Scores per model version")


def _models_page(request, status: int = 200, error: str = "") -> HttpResponse:
    active = versions.active_version()  # the base model becomes v0 the first time anyone asks
    reference = _reference()
    rows = []
    for version in ModelVersion.objects.select_related("parent", "created_by_run")[:VERSIONS_SHOWN]:
        metrics, comparable = _measured(version, reference)
        p3 = (metrics or {}).get("p3") or {}
        rows.append({"version": version, "metrics": metrics, "comparable": comparable or reference is None,
                     "dataset": p3.get("dataset", ""), "pass_at_1": percent(p3.get("pass_at_k", {}).get("1")),
                     "pass_at_10": percent(p3.get("pass_at_k", {}).get("10")),
                     "humaneval": percent(((metrics or {}).get("humaneval") or {}).get("pass_at_1")),
                     "can_promote": version.status != ModelVersion.Status.ACTIVE,
                     "can_rollback": version.is_active and version.parent_id is not None})
    context = {"rows": rows, "active": active, "admin": request.user.is_staff, "error": error,
               "chart": _versions_chart(rows), "reference_set": reference[0] if reference else ""}
    return render(request, "training/models.html", context, status=status)


@require_GET
def models(request):
    return _models_page(request)


@require_POST
def promote(request, version_id: int):
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        if version.is_active:
            raise ValueError(f"{version.name} is already the active model")
        versions.promote(version, f"promoted by hand by {request.user.get_username()}", request.user)
    except PermissionDenied as exc:
        return _refusal(request, str(exc), 403)
    except ValueError as exc:
        return _models_page(request, 400, str(exc))  # it may start with a version's name: kept as written
    messages.success(request, f"{version.name} is now the active model; the model worker loads it on its next request.")
    return redirect("training:models")


@require_POST
def rollback(request):
    try:
        version = versions.rollback(request.user)
    except PermissionDenied as exc:
        return _refusal(request, str(exc), 403)
    except ValueError as exc:
        return _models_page(request, 400, str(exc))  # it may start with a version's name: kept as written
    messages.success(request, f"Rolled back: {version.name} is the active model again.")
    return redirect("training:models")
