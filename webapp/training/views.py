"""Training pages: the rounds (and the form that starts one), a round's live page, and the model
versions with their scores across rounds.

The views are thin: rounds.py and versions.py decide (who may, whether a round may start, what
is promoted) and refuse with webapp.refusals; these read the request, call them and render. A
refusal says why: a 403 with its reason, bad settings a 400 with the form again and what was
typed, a round that cannot start because another one runs a 409 that links to it.
"""
from __future__ import annotations

import math

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.evaluate import paired
from engine.evaluate.p3_eval import P3EvalConfig
from engine.training.distill import DistillConfig
from engine.training.grounding import GroundingConfig
from engine.training.precision import PRECISIONS
from engine.training.rl import RLConfig
from engine.training.sft import METHODS, SFTConfig
from webapp.accounts.roles import is_trainer
from webapp.core.charts import line_chart
from webapp.core.refusal_responses import refusal_response
from webapp.core.run_views import RunPages
from webapp.core.settings_forms import Setting, SettingsForm
from webapp.refusals import Invalid, NotAllowed, Refused
from webapp.serving import versions
from webapp.serving.models import ModelVersion
from webapp.training import rounds
from webapp.training.models import TrainingRun, code_result, code_title
from webapp.training.rounds import RoundConfig, RoundRefused
from webapp.training.training_data import DATA, SOURCES

RUNS_SHOWN = 50
VERSIONS_SHOWN = 100
SOURCE_LABELS = {"selfplay": "Self-play puzzle pairs (verified)",
                 "chat": "The ledger: chat repairs and own answers that passed their tests",
                 "mbpp": "MBPP train tasks (rehearsed, so code answers are not forgotten)",
                 "mbpp-chat": "The same MBPP train tasks in the chat form (so chat answers keep their code block)"}
STAGE_LABELS = dict(TrainingRun.STAGES)
BACK = ("training:runs", "Back to training")


# The form: the settings a person may change, where they go, and the bounds the engine does not check
# itself (or checks in other units).
class RoundForm(SettingsForm):
    SETTINGS = (
        Setting("data", "Puzzle pairs", str, "all: every verified pair; own: only what the models wrote; "
                "references and unverified: the self-play paper's controls (P3's references alone; as many pairs "
                "as all, failed attempts kept)", choices=DATA, optional=True),
        Setting("method", "Method", str, "full fine-tuning, or LoRA adapters merged after training", group="sft",
                choices=METHODS),
        Setting("epochs", "Epochs", float, group="sft"),
        Setting("max_steps", "Max steps", int, "0: train for the epochs", low=0, group="sft"),
        Setting("max_minutes", "Time budget (minutes)", float,
                "training stops at the first step past it and keeps that step's model; 0: no budget", low=0.0,
                group="sft", optional=True),
        Setting("learning_rate", "Learning rate", float, group="sft"),
        Setting("batch_size", "Batch size", int, "blocks per device step", group="sft"),
        Setting("gradient_accumulation", "Gradient accumulation", int, "steps per optimizer update", group="sft"),
        Setting("block_size", "Block size", int, "tokens per packed training block", group="sft"),
        Setting("precision", "Precision", str, "auto: bf16 mixed precision where the hardware multiplies bf16 "
                "natively (CUDA, AVX512-BF16 or AMX CPUs), else fp32", group="sft", choices=PRECISIONS, optional=True),
        Setting("sft_validate_every", "Validate every (steps)", int,
                "greedy answers to MBPP validation tasks (511-600) every N steps, checked in the sandbox; the best "
                "model is kept and training stops when it stops improving; 0: off", low=0, group="sft",
                key="validate_every", optional=True),
        Setting("sft_patience", "Patience", int, "validations in a row without improvement before stopping", low=1,
                group="sft", key="patience", optional=True),
        Setting("interpolation", "Interpolation (α)", float, "publish start + α·(trained − start) (WiSE-FT): below 1 "
                "keeps more of what the starting model could do; 1: the trained model as it is", group="sft",
                optional=True),
        Setting("interpolation_fallbacks", "Fallback α", str, "if the gate rejects the published model, try these "
                "smaller α in order (comma-separated, e.g. 0.5, 0.25): each point of the same training is evaluated "
                "and gated, and the first that passes is promoted; empty: none", blank=True),
        Setting("round_method", "Trainer", str, "sft: fine-tune on verified data; rl: GRPO on tasks with tests, "
                "rewarded by the sandbox (the grounding function); distill: learn the teacher's kept traces "
                "(Traces page) with the structure-aware loss", key="method", optional=True, choices=rounds.METHODS),
        Setting("structure_weight", "Structure weight (λ)", float,
                "distill: L = CE + λ·S, S the cross-entropy on the code's syntax and data-flow tokens; 0: CE only",
                low=0.0, high=10.0, group="distill", optional=True),
        Setting("rl_max_steps", "RL steps", int, "GRPO optimizer steps", group="rl", key="max_steps", optional=True),
        Setting("rl_learning_rate", "RL learning rate", float, group="rl", key="learning_rate", optional=True),
        Setting("rl_max_minutes", "RL time budget (minutes)", float,
                "GRPO stops at the first step past it (validation's best policy is still what is kept); 0: no budget",
                low=0.0, group="rl", key="max_minutes", optional=True),
        Setting("num_generations", "Group size", int, "answers sampled per task and compared with each other",
                low=2, group="rl", optional=True),
        Setting("max_completion_length", "Answer tokens", int, "the most tokens of one sampled answer", group="rl",
                optional=True),
        Setting("beta", "KL coefficient", float, "how strongly the policy is kept near the starting model",
                group="rl", optional=True),
        Setting("validate_every", "Validate every (steps)", int,
                "greedy answers to MBPP validation tasks (511-600) every N steps; the best policy is kept and "
                "the round stops when it stops improving; 0: off", low=0, group="rl", optional=True),
        Setting("patience", "Patience", int, "validations in a row without improvement before stopping", low=1,
                group="rl", optional=True),
        Setting("discriminator_weight", "Discriminator weight", float,
                "weight of a classifier's P(reference-like), trained beside the policy; 0: off", low=0.0,
                group="grounding", optional=True),
        Setting("rl_tasks", "RL tasks", int, "the first N tasks (MBPP train, then chat tasks); 0: all", low=0,
                optional=True),
        Setting("samples", "Samples per puzzle (n)", int, "attempts per held-out puzzle", group="p3_eval"),
        Setting("temperature", "Temperature", float, "sampling temperature of the evaluation", low=0.0, high=2.0,
                group="p3_eval"),
        Setting("subset", "Puzzles (subset)", int, "0: all 34 P3 validation puzzles; else a seeded subset", low=0,
                group="p3_eval"),
        Setting("code_problems", "MBPP validation tasks", int,
                "the forgetting check: greedy pass@1 on the first N of MBPP 511-600; 0: skip", low=0),
        Setting("chat_check", "Chat-form code check", str, "on: the forgetting check runs again with the chat "
                "prompt (the reply's code block), the form chat users see; a round may keep the 3-shot form "
                "and lose this one", choices=("on", "off"), optional=True),
        Setting("metric_k", "k for the gate", int, "the gate compares pass@k on P3 validation", low=1),
        Setting("promote_if", "Promote if", str, "better: a higher pass@k (or the same pass@k and a higher "
                "pass@1); not-worse: also on a tie or a drop within the margin", choices=rounds.PROMOTE_IF,
                optional=True),
        Setting("train_from", "Train from", str, "active: fine-tune the active version further; origin: start "
                "again from the lineage's first version on all data so far (the paper's iterations)",
                choices=rounds.TRAIN_FROM, optional=True),
        Setting("margin", "Margin (points)", float, "with not-worse: allowed drop of pass@k, in percentage points",
                low=0.0, high=99.99),
        Setting("code_margin", "Code margin (points)", float,
                "allowed drop of the code benchmark's pass@1 (MBPP validation), in points",
                low=0.0, high=99.99, optional=True),
        Setting("report_benchmarks", "Report after promotion", str,
                "test benchmarks queued on the Benchmarks page for a promoted model (comma-separated; empty: none)",
                blank=True),
        Setting("report_limit", "Report tasks", int, "only the first N tasks of each report benchmark; 0: all",
                low=0, optional=True),
    )
    sources = forms.MultipleChoiceField(choices=[(s, s) for s in SOURCES], error_messages={
        "required": "Choose at least one data source",
        "invalid_choice": f"Data sources must be among {', '.join(SOURCES)}"})

    def settings(self) -> dict:
        values = super().settings()
        values["sources"] = self.cleaned_data["sources"]
        for name in ("margin", "code_margin"):  # points on the page, a fraction in the config
            if name in values:
                values[name] = round(values[name] / 100, 6)
        if "chat_check" in values:
            values["chat_check"] = values["chat_check"] == "on"
        return values

    def typed(self) -> dict:
        return {**super().typed(), "sources": self.data.getlist("sources")}


LABELS = {setting.name: setting.label for setting in RoundForm.SETTINGS}
RL_FORM_FIELDS = ("round_method", "rl_tasks")


def _defaults() -> dict:
    config, sft, evaluation = RoundConfig(), SFTConfig(), P3EvalConfig()
    values = {name: getattr(sft, name) for name in ("method", "epochs", "max_steps", "max_minutes", "learning_rate",
                                                     "batch_size", "gradient_accumulation", "block_size", "precision")}
    values["data"] = config.data
    values.update(samples=evaluation.samples, temperature=evaluation.temperature, subset=evaluation.subset,
                  code_problems=config.code_problems, metric_k=config.metric_k, promote_if=config.promote_if,
                  train_from=config.train_from, chat_check="on" if config.chat_check else "off",
                  margin=_number(config.margin * 100), code_margin=_number(config.code_margin * 100),
                  report_benchmarks=config.report_benchmarks, report_limit=config.report_limit,
                  interpolation_fallbacks=config.interpolation_fallbacks)
    values.update(learning_rate=f"{sft.learning_rate:g}", sft_validate_every=sft.validate_every,
                  sft_patience=sft.patience, interpolation=_number(sft.interpolation))
    rl = RLConfig()
    values.update(round_method=config.method, rl_max_steps=rl.max_steps, rl_learning_rate=f"{rl.learning_rate:g}",
                  rl_max_minutes=rl.max_minutes,
                  num_generations=rl.num_generations, max_completion_length=rl.max_completion_length, beta=rl.beta,
                  validate_every=rl.validate_every, patience=rl.patience,
                  rl_tasks=config.rl_tasks, discriminator_weight=GroundingConfig().discriminator_weight,
                  structure_weight=DistillConfig().structure_weight)
    values["sources"] = list(config.sources)
    return values


def _number(value: float):
    return int(value) if float(value).is_integer() else value


def _form(values: dict) -> dict:
    rows = RoundForm().rows(values)
    chosen = values.get("sources") or []
    return {"sources": [{"value": s, "label": SOURCE_LABELS.get(s, s), "checked": s in chosen} for s in SOURCES],
            "data_fields": [f for f in rows if f["name"] == "data"],
            "train_fields": [f for f in rows if f["group"] == "sft"],
            "rl_fields": [f for f in rows if f["group"] in ("rl", "grounding") or f["name"] in RL_FORM_FIELDS],
            "distill_fields": [f for f in rows if f["group"] == "distill"],
            "eval_fields": [f for f in rows if f["group"] not in ("sft", "rl", "grounding", "distill")
                            and f["name"] not in (*RL_FORM_FIELDS, "data")]}


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
        return refusal_response(request, NotAllowed("only trainers can start training rounds"), back=BACK)
    form = RoundForm(request.POST)
    try:
        if not form.is_valid():
            return _runs_page(request, 400, form.error_text(), form.typed())
        run = rounds.start_round(request.user, form.settings(), trigger=TrainingRun.Trigger.FORM)
    except Invalid as exc:
        form.refused_by(exc)
        return _runs_page(request, exc.status, form.error_text(), form.typed())
    except RoundRefused as exc:
        return _runs_page(request, exc.status, exc.reason, form.typed(),
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
    he_before, he_after = code_result(before), code_result(after)
    code = code_title(after or before)
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
    if he_before or he_after or (run.config or {}).get("humaneval_problems") or (run.config or {}).get("code_problems"):
        prompt = he_after.get("prompt") or he_before.get("prompt") or "completion"
        row("humaneval", f"{code} pass@1 ({prompt} prompt)", he_before.get("pass_at_1"), he_after.get("pass_at_1"))
        row("humaneval-passed", f"{code} passed", _fraction(he_before, "passed", "problems"),
            _fraction(he_after, "passed", "problems"), kind="text")
    chat_before, chat_after = before.get("code_chat") or {}, after.get("code_chat") or {}
    if chat_before or chat_after:  # where the round measured the chat form
        row("code-chat", f"{code} pass@1 (chat form: {chat_after.get('prompt') or chat_before.get('prompt') or 'instruct'} prompt)",
            chat_before.get("pass_at_1"), chat_after.get("pass_at_1"))
        row("code-chat-passed", f"{code} passed (chat form)", _fraction(chat_before, "passed", "problems"),
            _fraction(chat_after, "passed", "problems"), kind="text")
    row("tokens-per-s", "P3 tokens/s", p3_before.get("tokens_per_s"), p3_after.get("tokens_per_s"), kind="number")
    row("seconds", "Evaluation wall time", _evaluation_time(before), _evaluation_time(after), kind="text")
    version = run.produced_version
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


RL_SERIES = (("reward", "reward (mean)"), ("grounding/execution", "reward part: execution level (mean)"),
             ("discriminator/score", "reward part: discriminator score (mean)"),
             ("grounding/pass_rate", "passes all tests"), ("grounding/run_rate", "runs without error"),
             ("grounding/parse_rate", "parses"), ("grounding/static_clean_rate", "parses, no static errors"),
             ("discriminator/accuracy", "discriminator accuracy"),
             ("validation/pass_rate", "validation: passes all tests (greedy)"),
             ("validation/reward", "validation: mean reward (greedy)"))


def _loss_parts_chart(run: TrainingRun):
    """A distill round's loss parts per step: CE on every answer token, S on the structural ones."""
    history = [p for p in run.rl_curve or [] if "ce" in p]
    if not history:
        return None
    return line_chart([{"name": "CE (all answer tokens)", "points": [(p["step"], p["ce"]) for p in history]},
                       {"name": "S (syntax and data-flow tokens)",
                        "points": [(p["step"], p["structure"]) for p in history if "structure" in p]}],
                      "step", "cross-entropy", title=f"Loss parts of round {run.pk}")


def _validation_chart(run: TrainingRun):
    """A supervised round's validations (an RL round draws them on its reward chart)."""
    history = run.rl_curve or []
    if any("reward" in point for point in history) or not any("validation/pass_rate" in p for p in history):
        return None
    series = [{"name": label, "points": [(p["step"], p[key]) for p in history if key in p]}
              for key, label in RL_SERIES if key.startswith("validation/")]
    return line_chart(series, "step", "rate / reward", y_range=(0, 1), title=f"Validation of round {run.pk}")


def _rl_charts(run: TrainingRun):
    """An RL round's reward and its parts, and its KL to the starting policy, per step."""
    history = run.rl_curve or []
    if not any("reward" in point for point in history):  # validation points carry no reward
        return None, None
    series = [{"name": label, "points": [(p["step"], p[key]) for p in history if key in p]} for key, label in RL_SERIES]
    rewards = line_chart(series, "step", "rate / reward", y_range=(0, 1), title=f"Reward of round {run.pk}")
    kl = line_chart([{"name": "KL to the starting policy", "points": [(p["step"], p["kl"]) for p in history
                                                                      if "kl" in p]}], "step", "KL")
    return rewards, kl


def _panel_context(request, run: TrainingRun) -> dict:
    progress, training, dataset = run.progress or {}, run.training or {}, run.dataset or {}
    figures = []
    if run.is_active and run.stage == "train" and "step" in progress:
        figures = [("step", "Step", f"{progress.get('step', 0)}/{progress.get('max_steps') or '?'}"),
                   ("epoch", "Epoch", progress.get("epoch", "—")),
                   ("loss", "Loss", progress.get("loss", "—")),
                   *([("reward", "Reward", progress["reward"])] if "reward" in progress else []),
                   ("tokens-per-s", "Tokens/s", progress.get("tokens_per_s", "—")),
                   ("eta", "ETA", _duration(progress.get("eta_s")))]
    elif run.is_active and run.stage in ("eval-before", "eval-after") and "total" in progress:
        figures = [("done", "Evaluated", f"{progress.get('done', 0)}/{progress.get('total', 0)} problems")]
    return {
        "figures": figures, "stage_label": STAGE_LABELS.get(run.stage, run.stage),
        "stages": [{"key": key, "label": label, "current": key == run.stage} for key, label in run.STAGES],
        "loss_chart": _loss_chart(run), "comparison": _comparison(run),
        "rl_charts": _rl_charts(run), "rl_samples": progress.get("samples") or [],
        "loss_parts_chart": _loss_parts_chart(run), "validation_chart": _validation_chart(run),
        "training_rows": [(label, training.get(key)) for key, label in (
            ("steps", "Steps"), ("epochs", "Epochs"), ("blocks", "Blocks"), ("tokens", "Tokens per epoch"),
            ("final_loss", "Final loss"), ("tokens_per_s", "Tokens/s"), ("precision", "Precision"),
            ("steps_per_hour", "Steps/h"),
            ("seconds", "Seconds"), ("best_step", "Kept the model of step (best on validation)"),
            ("stopped_early", "Stopped early"),
            ("resumed_from", "Resumed from")) if _shown(training.get(key))],
        "version": run.produced_version,
        "candidates": [{**tried, "alpha": f"{tried['alpha']:g}"} for tried in run.candidates or []],
        "dataset_counts": {"attempts": len(dataset.get("attempts") or []), "traces": len(dataset.get("traces") or []),
                           "failed": len(dataset["failed"]) if "failed" in dataset else None,  # the unverified control
                           "mbpp": len(dataset.get("mbpp") or []), "mbpp_chat": len(dataset.get("mbpp_chat") or []),
                           # a snapshot from before the ledger named the chat messages instead
                           "examples": len(dataset.get("examples", dataset.get("messages")) or [])},
    }


def _shown(value) -> bool:
    """A result row worth a line: step 0 is, an unset field or a False flag is not."""
    return value is not None and value != "" and value is not False


def _page_context(request, run: TrainingRun) -> dict:
    config = run.config or {}
    settings_rows = [("Data sources", ", ".join(config.get("sources") or []))]
    settings_rows += [(LABELS.get(k, k.replace("_", " ")), v) for k, v in (config.get("sft") or {}).items()]
    settings_rows += [(LABELS.get(k, k.replace("_", " ")), v) for k, v in (config.get("p3_eval") or {}).items()]
    for group, prefix in (("rl", "RL "), ("grounding", "reward: "), ("distill", "distill: ")):
        settings_rows += [(prefix + k.replace("_", " "), v) for k, v in (config.get(group) or {}).items()]
    settings_rows += [(LABELS.get(k, k.replace("_", " ")), v) for k, v in config.items()
                      if k not in ("sources", "sft", "p3_eval", "margin", "code_margin", "rl", "grounding", "distill")]
    settings_rows += [(LABELS[k], _number(round(float(config[k]) * 100, 4))) for k in ("margin", "code_margin")
                      if k in config]
    return {"settings_rows": settings_rows}


RUN_PAGES = RunPages(
    TrainingRun, "training", "training/run.html", "training/_run_panel.html", "Training round {pk}", BACK,
    may_act=is_trainer, cancel_run=rounds.cancel_round, resume_run=rounds.resume_round,
    panel_context=_panel_context, page_context=_page_context,
    stalled_hint="It is marked failed shortly; resume it then to carry on from its last checkpoint.",
    related=("created_by", "base_version", "produced_version"))


# --- model versions ------------------------------------------------------------------------------
def _signature(metrics: dict) -> tuple:
    """What makes two evaluations comparable: the same set, sampling, and HumanEval problems and prompt."""
    p3, humaneval = metrics.get("p3") or {}, code_result(metrics)
    config = {k: v for k, v in (p3.get("config") or {}).items() if k not in ("ks", "max_batch_rows")}
    return (p3.get("dataset"), tuple(sorted((k, str(v)) for k, v in config.items())), humaneval.get("benchmark"),
            humaneval.get("problems"), humaneval.get("prompt", "completion"))


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
    """P3 pass@1 and pass@10 and the code checks' pass@1 (both forms) per version, oldest first,
    like-for-like results only."""
    ordered = sorted(rows, key=lambda row: (row["version"].created_at, row["version"].pk))
    series = {"P3 pass@1": [], "P3 pass@10": [], "code pass@1": [], "chat-form code pass@1": []}
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
        for name, found in (("code pass@1", code_result(result)), ("chat-form code pass@1", result.get("code_chat"))):
            if (found or {}).get("pass_at_1") is not None:
                series[name].append((x, found["pass_at_1"]))
    return line_chart([{"name": name, "points": points} for name, points in series.items()], "model version",
                      "score", width=960, height=260, y_range=(0, 1), percent=True, x_ticks=ticks,
                      title="Scores per model version")


def _models_page(request, status: int = 200, error: str = "") -> HttpResponse:
    active = versions.active_version()  # the base model becomes v0 the first time anyone asks
    reference = _reference()
    rows = []
    for version in ModelVersion.objects.select_related("parent", "training_run")[:VERSIONS_SHOWN]:
        metrics, comparable = _measured(version, reference)
        p3 = (metrics or {}).get("p3") or {}
        rows.append({"version": version, "metrics": metrics, "comparable": comparable or reference is None,
                     "dataset": p3.get("dataset", ""), "pass_at_1": percent(p3.get("pass_at_k", {}).get("1")),
                     "pass_at_10": percent(p3.get("pass_at_k", {}).get("10")),
                     "humaneval": percent(code_result(metrics).get("pass_at_1")),
                     "code_chat": percent(((metrics or {}).get("code_chat") or {}).get("pass_at_1")),
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
        versions.promote(version, f"promoted by hand by {request.user.get_username()}", request.user)
    except Refused as exc:
        error = str(exc)  # it may start with a version's name: kept as written
        return refusal_response(request, exc, lambda _, status: _models_page(request, status, error), BACK)
    messages.success(request, f"{version.name} is now the active model; the model worker loads it on its next request.")
    return redirect("training:models")


@require_POST
def rollback(request):
    try:
        version = versions.rollback(request.user)
    except Refused as exc:
        error = str(exc)  # it may start with a version's name: kept as written
        return refusal_response(request, exc, lambda _, status: _models_page(request, status, error), BACK)
    messages.success(request, f"Rolled back: {version.name} is the active model again.")
    return redirect("training:models")
