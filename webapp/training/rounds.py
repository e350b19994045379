"""Training rounds: snapshot the verified data → evaluate the active model → fine-tune → evaluate
the new model → promote it only if it is better (engine.evaluate.promotion).

Only one round runs at a time (TrainingRun.lock_slot, a unique column). `run_round` is what the
`gpu` worker's task calls; it claims the run, so a redelivered task does not train it twice, and
it picks up at the stage it reached, training from the last sealed checkpoint: a worker killed
mid-round loses at most the steps since that checkpoint. The active model is only touched by a
successful promotion. `run_round` also runs in-process for the command line.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from engine.config import ConfigError, Problems, StrictConfig
from engine.datasets.mbpp import mbpp_validation
from engine.evaluate.humaneval_eval import PROMPTS as HUMANEVAL_PROMPTS
from engine.evaluate.humaneval_eval import evaluate_humaneval, load_humaneval
from engine.evaluate.p3_eval import P3EvalConfig, evaluate_p3, held_out_puzzles
from engine.evaluate.promotion import Origin, decide
from engine.evaluate.suite.registry import benchmark_class as get_benchmark_class
from engine.evaluate.suite.registry import get_benchmark
from engine.evaluate.suite.registry import names as suite_names
from engine.evaluate.suite.runner import RunSettings, run_benchmark
from engine.lm.generation import CancelToken
from engine.lm.loading import BACKENDS
from engine.sandbox.verdict import short
from engine.training.distill import REPORTED as DISTILL_REPORTED
from engine.training.distill import DistillConfig, train_distill
from engine.training.grounding import GroundingConfig
from engine.training.packing import TrainingText
from engine.training.precision import training_precision
from engine.training.rl import REPORTED, VALIDATION, RLConfig, train_rl
from engine.training.rl_rollout import choose_sampler
from engine.training.sft import SFTConfig, TrainingError, train_sft, training_device
from engine.training.tasks import CodeTask
from webapp.accounts.roles import is_trainer
from webapp.core.heartbeat import RowHeartbeat
from webapp.core.verification import sandbox
from webapp.refusals import Conflict, NotAllowed, config_from
from webapp.serving import model_store, versions
from webapp.serving.models import ModelVersion
from webapp.training import training_data
from webapp.training.models import TrainingRun, code_results, code_title

log = logging.getLogger(__name__)
HEARTBEAT_S = 5.0
METHODS = ("sft", "rl", "distill")
PROMOTE_IF = ("better", "not-worse")  # the gate's rule: RoundConfig.promote_if
TRAIN_FROM = ("active", "origin")  # which weights a round starts from: RoundConfig.train_from
CHAT_PROMPT = "instruct"  # the code benchmarks' chat-form prompt: RoundConfig.chat_check
VERIFY_WAIT_S = 300.0  # one RL step's batch of checks on the verify queue


class RoundRefused(Conflict):
    """A round cannot start or resume now; the message is for the person who asked."""


@dataclass(frozen=True)
class RoundConfig(StrictConfig):
    KIND = "round settings"

    sources: tuple[str, ...] = training_data.DEFAULT_SOURCES
    data: str = "all"  # "own": only what this project's models wrote; "references" / "unverified": controls
    # "sft": fine-tune on verified data; "rl": GRPO on tasks, rewarded in the sandbox; "distill": learn
    # the teacher's kept traces (reasoning, then code) with the structure-aware loss
    method: str = "sft"
    sft: dict = field(default_factory=dict)  # SFTConfig fields
    distill: dict = field(default_factory=dict)  # DistillConfig fields beyond SFTConfig's (structure_weight)
    rl: dict = field(default_factory=dict)  # RLConfig fields (method "rl")
    grounding: dict = field(default_factory=dict)  # GroundingConfig fields: the RL reward's levels
    rl_sources: tuple[str, ...] = training_data.RL_SOURCES
    rl_tasks: int = 0  # the first N tasks (0: all)
    p3_eval: dict = field(default_factory=lambda: {"samples": 10, "subset": 0})  # P3EvalConfig fields
    # The forgetting check: greedy pass@1 on a code benchmark's validation set (engine.evaluate.suite),
    # first N tasks (0: skip). Test sets are reported on the Benchmarks page, never gated on.
    code_benchmark: str = "mbpp-validation"
    code_problems: int = 90
    code_prompt: str = ""  # "" = the benchmark's default prompt
    # The same check again in the chat form (the benchmark's `instruct` prompt: chat template, the
    # reply's code block), the form chat users see: a round can keep the completion form and lose this
    # one (the references control: MBPP validation 5 -> 4 of 90 in the 3-shot form, 9 -> 1 in the chat
    # form; docs/experiments.md). Skipped where code_prompt is already `instruct` or the benchmark has none.
    chat_check: bool = True
    humaneval_problems: int = 0  # older rounds gated on HumanEval (a test set): now reported only, if > 0
    humaneval_prompt: str = "instruct"  # engine.evaluate.humaneval_eval.PROMPTS
    # Test benchmarks queued on the Benchmarks page after a promotion (comma-separated; "" = none):
    # reported across versions, never gated on.
    report_benchmarks: str = "humaneval-plus"
    report_limit: int = 0  # only the first N tasks of each report benchmark (0: all)
    # Smaller interpolation α to fall back on, in order (comma-separated, e.g. "0.5, 0.25"): when the
    # gate rejects the model published at the trainer's `interpolation`, the round makes the next
    # point start + α·(trained − start) from the same training and gates it too, until one passes or
    # the list ends. Each point costs one evaluation, no training (docs/experiments.md: the verified
    # recipe is rejected at α = 1 and 0.5 on the chat form and passes at 0.25).
    interpolation_fallbacks: str = ""
    metric_k: int = 10
    # better: promoted only on a gain (a higher pass@k, or the same pass@k and a higher pass@1);
    # not-worse: also on a tie, or a drop of up to `margin`
    promote_if: str = "better"
    # active: fine-tune the active version further; origin: start again from the lineage's first
    # version (the base) on all the data so far, as the paper's iterations do (TRAIN_INCREMENTAL=0 in
    # its babysit.sh), so a round does not stack more epochs on data its start has already seen
    train_from: str = "active"
    margin: float = 0.0  # allowed drop of pass@k, absolute (0.01 = one point), with promote_if not-worse
    code_margin: float = 0.02  # allowed drop of HumanEval pass@1, absolute (the forgetting check)
    # auto: llama.cpp on a CPU where it is installed (the packaged model through its checked f16 copy,
    # trained versions through theirs), else transformers in fp32 (bf16 on a GPU)
    eval_backend: str = "auto"
    # Only "none": the gate decides on these figures, and int8 (torch dynamic, transformers) is not
    # equal to full precision on this model (benchmarks/quantization_quality.py). Kept as a field so
    # the configs of earlier rounds still load; an int8 one is refused with the reason.
    eval_quantize: str = "none"
    min_examples: int = 1

    def __post_init__(self):
        problems = Problems()
        unknown = [s for s in self.sources if s not in training_data.SOURCES]
        if unknown or not self.sources:
            problems.add("sources", f"data sources must be among {', '.join(training_data.SOURCES)}")
        if self.data not in training_data.DATA:
            problems.add("data", f"data must be one of {', '.join(training_data.DATA)}")
        if self.method not in METHODS:
            problems.add("method", f"method must be one of {', '.join(METHODS)}")
        if not self.rl_sources or any(source not in training_data.RL_SOURCES for source in self.rl_sources):
            problems.add("rl_sources", f"RL task sources must be among {', '.join(training_data.RL_SOURCES)}")
        supervised = {"validate_every": "sft_validate_every", "patience": "sft_patience"}  # the form's names
        for nested, renamed in ((self.sft_config, supervised), (self.distill_config, supervised), (self.eval_config, {}),
                                (self.grounding_config, {}),
                                (self.rl_config, {"max_steps": "rl_max_steps", "learning_rate": "rl_learning_rate",
                                                  "max_minutes": "rl_max_minutes"})):
            try:
                nested()
            except ConfigError as exc:
                for name, message in exc.errors.items():
                    problems.add(renamed.get(name, name), message)
        samples = self.p3_eval.get("samples", P3EvalConfig.samples)
        if isinstance(samples, int) and self.metric_k > samples:
            problems.add("metric_k", f"pass@{self.metric_k} needs at least {self.metric_k} samples per puzzle")
        if self.promote_if not in PROMOTE_IF:
            problems.add("promote_if", f"promote_if must be one of {', '.join(PROMOTE_IF)}")
        if self.train_from not in TRAIN_FROM:
            problems.add("train_from", f"train_from must be one of {', '.join(TRAIN_FROM)}")
        if not 0 <= self.margin < 1:
            problems.add("margin", "margin must be at least 0 and below 1 (0.01 = one point of pass@k)")
        if not 0 <= self.code_margin < 1:
            problems.add("code_margin", "code_margin must be at least 0 and below 1 (0.01 = one point of pass@1)")
        if self.eval_quantize != "none":
            problems.add("eval_quantize", "a round evaluates at full precision only: its gate decides on the figures, "
                                          "and int8 is not equal to full precision on this model (7 of 60 "
                                          "sanitized-MBPP tasks in fp32, 0 in int8: benchmarks/quantization_quality.py)")
        if self.eval_backend not in BACKENDS:
            problems.add("eval_backend", f"eval_backend must be one of {', '.join(BACKENDS)}")
        if self.min_examples < 1:
            problems.add("min_examples", "min_examples must be at least 1")
        if self.humaneval_prompt not in HUMANEVAL_PROMPTS:
            problems.add("humaneval_prompt", f"humaneval_prompt must be one of {', '.join(HUMANEVAL_PROMPTS)}")
        if self.code_benchmark not in suite_names() or get_benchmark_class(self.code_benchmark).split != "validation":
            problems.add("code_benchmark", "code_benchmark must be a validation benchmark: "
                         + ", ".join(n for n in suite_names() if get_benchmark_class(n).split == "validation"))
        elif self.code_prompt and self.code_prompt not in get_benchmark_class(self.code_benchmark).prompts:
            problems.add("code_prompt", f"code_prompt must be one of {', '.join(get_benchmark_class(self.code_benchmark).prompts)}")
        if not isinstance(self.chat_check, bool):
            problems.add("chat_check", "chat_check must be true or false")
        tests = [n for n in suite_names() if get_benchmark_class(n).split == "test"]
        if any(name not in tests for name in self.report_list()):
            problems.add("report_benchmarks", "report_benchmarks must be test benchmarks among " + ", ".join(tests))
        if self.report_limit < 0:
            problems.add("report_limit", "report_limit must be at least 0 (0: every task)")
        if self.code_problems < 0:
            problems.add("code_problems", "code_problems must be at least 0 (0 skips the forgetting check)")
        if self.humaneval_problems < 0:
            problems.add("humaneval_problems", "humaneval_problems must be at least 0 (0 skips the HumanEval check)")
        self._check_fallbacks(problems)
        problems.raise_any()

    def _check_fallbacks(self, problems: Problems) -> None:
        try:
            alphas = self.interpolations()
        except ValueError:
            problems.add("interpolation_fallbacks", "fallback α must be numbers separated by commas, e.g. 0.5, 0.25")
            return
        if alphas[0] is None:  # the trainer's own settings were refused above, with their reason
            return
        if any(not 0 < later < earlier for earlier, later in zip(alphas, alphas[1:])):
            problems.add("interpolation_fallbacks", f"fallback α must each be above 0 and below the one before "
                         f"(the published model is at α {alphas[0]:g})")

    def interpolations(self) -> list:
        """The α the round publishes, in the order it tries them: the trainer's `interpolation`, then
        the fallbacks (None first where the trainer's settings are invalid)."""
        fallbacks = [float(value) for value in self.interpolation_fallbacks.split(",") if value.strip()]
        try:
            first = self.trainer_config().interpolation
        except ConfigError:
            first = None
        return [first] + fallbacks

    def trainer_config(self):
        return {"rl": self.rl_config, "distill": self.distill_config}.get(self.method, self.sft_config)()

    def code_prompts(self) -> list[str]:
        """The prompts the forgetting check runs with, in order: code_prompt, then the chat form where
        the benchmark has one (MBPP's do; an execution-prediction set does not)."""
        if not self.code_problems:
            return []
        prompts = get_benchmark_class(self.code_benchmark).prompts
        first = self.code_prompt or prompts[0]
        return [first] + ([CHAT_PROMPT] if self.chat_check and CHAT_PROMPT in prompts and first != CHAT_PROMPT else [])

    def report_list(self) -> list[str]:
        return [name.strip() for name in self.report_benchmarks.split(",") if name.strip()]

    @classmethod
    def _convert(cls, data: dict) -> dict:
        for name in ("sources", "rl_sources"):
            if name in data:
                data[name] = tuple(data[name])
        return data

    def sft_config(self) -> SFTConfig:
        return SFTConfig.from_dict(self.sft)

    def distill_config(self) -> DistillConfig:
        """The SFT settings of the form (method, epochs, batch, ...) and the distill-only ones."""
        return DistillConfig.from_dict({**self.sft, **self.distill})

    def rl_config(self) -> RLConfig:
        return RLConfig.from_dict(self.rl)

    def grounding_config(self) -> GroundingConfig:
        return GroundingConfig.from_dict(self.grounding).check()

    def eval_config(self) -> P3EvalConfig:
        # The gate selects on P3's validation split (train problems held out), never on the test split.
        return P3EvalConfig.from_dict({"split": "validation", **self.p3_eval,
                                       "ks": tuple(sorted({1, self.metric_k, 10, 100}))})

    def as_dict(self) -> dict:
        return {**super().as_dict(), "sources": list(self.sources), "rl_sources": list(self.rl_sources)}


# -- starting, cancelling, resuming -----------------------------------------------------------------
def _claim_lock(run: TrainingRun) -> None:
    try:
        with transaction.atomic():
            TrainingRun.objects.filter(pk=run.pk).update(lock_slot=True)
    except IntegrityError:
        raise RoundRefused(_busy_message()) from None


def _busy_message() -> str:
    active = TrainingRun.objects.filter(lock_slot=True).first()
    which = f"round {active.pk} is {active.status}" if active else "another round is running"
    return f"{which}; only one training round runs at a time. Wait for it or cancel it."


def start_round(user, settings_: dict, trigger: str = TrainingRun.Trigger.FORM, enqueue: bool = True) -> TrainingRun:
    """Queue a round (trainers only; `user=None` for the schedule and commands). Raises
    NotAllowed, Invalid (bad settings) or RoundRefused (one is already running)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can start training rounds")
    config = config_from(RoundConfig, settings_)
    reap_stalled()
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(created_by=user, trigger=trigger, config=config.as_dict(),
                                             base_version=versions.active_version())
    except IntegrityError:
        raise RoundRefused(_busy_message()) from None
    if enqueue:
        _enqueue(run)
    return run


def _enqueue(run: TrainingRun) -> None:
    from webapp.training.tasks import training_round

    transaction.on_commit(lambda: training_round.delay(run.pk))


def cancel_round(user, run: TrainingRun) -> None:
    """Stop at the next training step or evaluation chunk; a queued round stops at once."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can cancel training rounds")
    if not TrainingRun.objects.filter(pk=run.pk, status__in=TrainingRun.ACTIVE).update(cancel_requested=True):
        run.refresh_from_db()
        raise Conflict(f"round {run.pk} is already {run.status}")
    _finish(TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.Status.QUEUED), TrainingRun.Status.CANCELLED,
            error="cancelled before it started")


def resume_round(user, run: TrainingRun, enqueue: bool = True) -> TrainingRun:
    """Continue a failed or cancelled round from where it stopped (its last sealed checkpoint)."""
    if user is not None and not is_trainer(user):
        raise NotAllowed("only trainers can resume training rounds")
    reap_stalled()
    run.refresh_from_db()
    if run.status not in (TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED):
        raise RoundRefused(f"round {run.pk} is {run.status}; only failed or cancelled rounds can be resumed")
    try:  # settings a later release refuses (e.g. int8 evaluation) stop here, not in the worker
        RoundConfig.from_dict(run.config)
    except ConfigError as exc:
        raise RoundRefused(f"round {run.pk} cannot be resumed: its settings are no longer accepted ({exc}). "
                           "Start a new round; its checkpoints stay where they are.") from None
    _claim_lock(run)
    if not TrainingRun.reopen(run.pk):
        raise RoundRefused(f"round {run.pk} changed meanwhile; reload the page")
    run.refresh_from_db()
    if enqueue:
        _enqueue(run)
    return run


def reap_stalled() -> int:
    """Rounds whose worker stopped heartbeating: failed (resumable), the lock released."""
    return _finish(TrainingRun.stalled(), TrainingRun.Status.FAILED,
                   error="the worker stopped during the round (killed or restarted); resume it to continue "
                         "from its last checkpoint. The active model was not changed.")


def _finish(queryset, status: str, **fields) -> int:
    return TrainingRun.finish(queryset, status, lock_slot=None, **fields)


# -- running ---------------------------------------------------------------------------------------
def _heartbeat(run_id: int) -> RowHeartbeat:
    return RowHeartbeat(TrainingRun, run_id, lambda rows: rows.filter(cancel_requested=True).exists(), HEARTBEAT_S)


def _claim(run_id: int) -> bool:
    """Take a queued round, or one whose worker died, for this process."""
    now = timezone.now()
    claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
        status=TrainingRun.Status.RUNNING, heartbeat_at=now, started_at=now)
    if not claimed:
        claimed = TrainingRun.stalled().filter(pk=run_id).update(heartbeat_at=now)
    return bool(claimed)


class RoundEnded(Exception):
    """The round left the active states under this worker (cancelled, or reaped as stalled)."""


def _update(run: TrainingRun, **fields) -> None:
    if "status" in fields:  # a status change is conditional: a cancel or a reaper that landed first wins
        if not TrainingRun.move(run.pk, **fields):
            run.refresh_from_db()
            if run.cancel_requested:
                _log(run, "cancelled; the active model was not changed")
                _finish(TrainingRun.objects.filter(pk=run.pk), TrainingRun.Status.CANCELLED, error="cancelled")
            raise RoundEnded(run.status)
    else:
        TrainingRun.objects.filter(pk=run.pk).update(**fields)
    for name, value in fields.items():
        setattr(run, name, value)


def _log(run: TrainingRun, message: str) -> None:
    run.log = (run.log + f"{timezone.now():%H:%M:%S} {message}\n")[-20_000:]
    TrainingRun.objects.filter(pk=run.pk).update(log=run.log)
    log.info("round %s: %s", run.pk, message)


def round_dir(run: TrainingRun) -> Path:
    return Path(settings.DATA_DIR) / "models" / f"round-{run.pk}"


def _eval_key(kind: str, config: dict) -> str:
    return kind + ":" + json.dumps(config, sort_keys=True)


def _summary(result: dict) -> dict:
    return {k: v for k, v in result.items() if k not in ("per_puzzle", "per_problem")}


def evaluate_version(spec: str, config: RoundConfig, cancel: CancelToken | None = None,
                     progress=None) -> dict:
    """P3 pass@k and HumanEval greedy pass@1 of a model at full precision (engine.lm.loading.
    load_full_precision)."""
    verify_many = sandbox().verify_many
    model = model_store.load_full_precision_version(spec, config.eval_backend)
    evaluation = config.eval_config()
    name, puzzles = held_out_puzzles(settings.AUTODIDACT_BENCHMARK_DATA / "p3", evaluation.subset, evaluation.seed,
                                     evaluation.split)
    prompts = config.code_prompts()
    total = len(puzzles) + config.code_problems * len(prompts) + config.humaneval_problems
    p3 = evaluate_p3(model, puzzles, evaluation, lambda jobs: verify_many(jobs), name,
                     progress=lambda done, _: progress and progress(done, total), cancel=cancel).as_dict()
    results = {"model": model.name, "backend": model.backend, "quantization": model.quantization, "p3": p3}
    for index, prompt in enumerate(prompts):
        if cancel and cancel.cancelled:
            break
        done_before = len(puzzles) + index * config.code_problems
        results["code_chat" if index else "code"] = code_check(
            model, config, prompt, lambda jobs: verify_many(jobs), cancel,
            lambda done, _, start=done_before: progress and progress(start + done, total))
    if config.humaneval_problems and not (cancel and cancel.cancelled):
        problems = load_humaneval()[:config.humaneval_problems]
        done_before = len(puzzles) + config.code_problems * len(prompts)
        results["humaneval"] = evaluate_humaneval(
            model, problems, lambda jobs: verify_many(jobs), cancel=cancel, prompt=config.humaneval_prompt,
            progress=lambda done, _: progress and progress(done_before + done, total)).as_dict()
    return results


def code_check(model, config: RoundConfig, prompt: str, verify, cancel, progress) -> dict:
    """Greedy pass@1 on the first `code_problems` tasks of the code validation benchmark with `prompt`,
    in the shape the gate and the pages read (pass_at_1, passed, problems, prompt) plus the suite's
    own record."""
    suite = get_benchmark(config.code_benchmark, settings.AUTODIDACT_BENCHMARK_DATA, prompt)
    result = run_benchmark(suite, model, RunSettings(prompt=prompt, limit=config.code_problems),
                           verify, cancel=cancel, progress=progress)
    rows = [{"task_id": row["task_id"], "status": row["samples"][0]["status"]} for row in result.rows]
    return {"benchmark": suite.name, "title": suite.title, "pass_at_1": result.pass_at_k.get("1", 0.0),
            "passed": result.solved, "problems": result.done, "prompt": result.settings["prompt"],
            "settings": result.settings, "interval": result.interval.get("1"), "tokens": result.tokens,
            "seconds": result.seconds, "tokens_per_s": result.as_dict()["tokens_per_s"], "per_problem": rows}


def _evaluate_into(run: TrainingRun, version: ModelVersion, config: RoundConfig, beat: RowHeartbeat,
                   field_name: str) -> dict:
    """Evaluate `version` (or reuse its metrics measured with the same settings) into the run."""
    results = _measured(run, version, config, beat)
    if results:
        _update(run, **{field_name: results})
    return results


def gate_metrics_key(config: RoundConfig) -> str:
    """Where a version's gate figures with these settings are kept in its `metrics`."""
    return _eval_key("round", {"p3": config.eval_config().as_dict(), "humaneval": config.humaneval_problems,
                               "code": [config.code_benchmark, config.code_problems, config.code_prompt]
                               + (["chat"] if len(config.code_prompts()) > 1 else []),
                               "humaneval_prompt": config.humaneval_prompt, "quantize": config.eval_quantize,
                               "backend": config.eval_backend})


def _measured(run: TrainingRun, version: ModelVersion, config: RoundConfig, beat: RowHeartbeat) -> dict:
    """`version`'s gate figures with this round's settings: kept on the version, so each settings'
    evaluation runs once per version; {} when the round was cancelled."""
    key = gate_metrics_key(config)
    cached = (version.metrics or {}).get(key)
    if cached:
        _log(run, f"{version.name}: reusing its evaluation with the same settings")
        return {**cached, "reused": True}  # its wall time was spent in the round that measured it

    def progress(done, total):
        _update(run, progress={"done": done, "total": total})

    started = time.perf_counter()
    results = evaluate_version(version.spec, config, beat.cancel, progress)
    if beat.cancel.cancelled:
        return {}
    results["seconds"] = round(time.perf_counter() - started, 1)
    code = ", ".join(f"{found.get('pass_at_1')} ({found.get('prompt')} prompt)" for found in code_results(results))
    _log(run, f"{version.name}: P3 pass@k {results['p3']['pass_at_k']} ({results['p3']['solved']}/"
              f"{results['p3']['puzzles']} solved), " + (f"{code_title(results)} pass@1 {code}, " if code else "")
              + f"{results['seconds']} s")
    version.metrics = {**(version.metrics or {}), key: results}
    version.save(update_fields=["metrics"])
    return results


def run_round(run_id: int) -> TrainingRun | None:
    """Run (or continue) a round to its end in this process. Returns None if another process owns it."""
    if not _claim(run_id):
        return None
    run = TrainingRun.objects.get(pk=run_id)
    with _heartbeat(run.pk) as beat:
        try:
            _run_stages(run, beat)
        except RoundEnded:
            pass
        except (TrainingError, ValueError, FileNotFoundError) as exc:
            _log(run, f"failed: {exc}")
            _finish(TrainingRun.objects.filter(pk=run.pk), TrainingRun.Status.FAILED, error=short(str(exc), 2000))
        except Exception as exc:
            log.exception("training round %s failed", run.pk)
            _finish(TrainingRun.objects.filter(pk=run.pk), TrainingRun.Status.FAILED,
                    error=short(f"{type(exc).__name__}: {exc}", 2000))
    run.refresh_from_db()
    return run


# What decides a round's weights besides its start and its data (training is seeded): two rounds
# alike in all three train the same model, so the second is skipped (`_repeats_a_round`).
TRAINING_SETTINGS = ("method", "train_from", "sft", "distill", "rl", "grounding")


def _training_key(run: TrainingRun) -> tuple:
    config = run.config or {}
    base = run.base_version
    start = _start_version(base, config.get("train_from")) if base is not None else None
    settings_ = json.dumps({**{name: config.get(name) for name in TRAINING_SETTINGS},
                            "resolved": _resolved_settings(run, start)}, sort_keys=True)
    return start.pk if start is not None else None, run.dataset_hash, settings_


def _resolved_settings(run: TrainingRun, start: ModelVersion | None) -> dict:
    """What the round's "auto" settings became: as its training recorded them, or, before it trained,
    as this host resolves them. The same settings train another model in bf16 than in fp32 (an AMX
    host and an AVX2 one), or with llama.cpp's samples than with TRL's."""
    if run.training:
        return {name: run.training.get(name) for name in ("precision", "sampler") if name in run.training}
    config = RoundConfig.from_dict(run.config)
    trainer = {"rl": config.rl_config, "distill": config.distill_config}.get(config.method, config.sft_config)()
    try:
        device = training_device(trainer.device)
        resolved = {"precision": training_precision(trainer.precision, device)}
        if config.method == "rl" and start is not None:
            resolved["sampler"] = choose_sampler(trainer.sampler, model_store.local_spec(start.spec), device)
    except (TrainingError, ValueError, OSError) as exc:
        return {"unresolved": str(exc)}  # matches no trained round: the round trains, and fails there clearly
    return resolved


def _repeats_a_round(run: TrainingRun) -> bool:
    """A round that would train what an earlier one trained (the same start, data and settings) ends
    here, before any evaluation, with that round named: in a loop whose round was rejected and whose
    next self-play batch verified nothing new, round 2 retrained round 1's model (its loss curve
    matched step for step) and would have cost as much as round 1."""
    key = _training_key(run)
    earlier = (TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, dataset_hash=run.dataset_hash)
               .exclude(pk=run.pk).select_related("base_version", "produced_version").order_by("-pk"))
    trained = (other for other in earlier if other.produced_version is not None or _kept_the_start(other))
    same = next((other for other in trained if _training_key(other) == key), None)
    if same is None:
        return False
    if same.produced_version is None:
        made, outcome = "trained", "early stopping kept its starting model"
    else:
        made = f"trained {same.produced_version.name}"
        outcome = "promoted" if same.produced_version.status != ModelVersion.Status.REJECTED else "rejected"
    reason = (f"skipped: round {same.pk} {made} from the same start on the same {run.examples} examples with the "
              f"same settings ({outcome}), so this round would train the same model again. New verified data or "
              "other training settings (another training seed, say) make a new round.")
    _end_untrained(run, reason)
    return True


def _end_untrained(run: TrainingRun, reason: str) -> None:
    """The round ends, succeeded, with no new model: `reason` is its log line and its decision."""
    _log(run, reason)
    _finish(TrainingRun.objects.filter(pk=run.pk), TrainingRun.Status.SUCCEEDED, decision=reason)


def _kept_the_start(run: TrainingRun) -> bool:
    """Early stopping kept step 0: no validation beat the model the round started from."""
    return (run.training or {}).get("best_step") == 0


def _nothing_trained(run: TrainingRun) -> bool:
    """A round whose early stopping kept its starting model ends here, not promoted: its model is
    that start, weight for weight, so a version, an evaluation (18 minutes on 2 cores) and a gate
    could only tie. The log and the decision say why."""
    if not _kept_the_start(run):
        return False
    _end_untrained(run, "not promoted: early stopping kept the starting model (no validation beat step 0), so the "
                        "round made no new model to evaluate or promote")
    return True


def _cancelled(run: TrainingRun, beat: RowHeartbeat) -> bool:
    if beat.cancel.cancelled:
        _log(run, "cancelled; the active model was not changed")
        _finish(TrainingRun.objects.filter(pk=run.pk), TrainingRun.Status.CANCELLED, error="cancelled")
        return True
    return False


def _run_stages(run: TrainingRun, beat: RowHeartbeat) -> None:
    config = RoundConfig.from_dict(run.config)
    base = run.base_version or versions.active_version()
    # 1. The data, snapshotted once: a resumed round trains on exactly what it started with.
    if config.method == "rl":
        _run_rl_stages(run, config, base, beat)
        return
    distill = config.method == "distill"
    if not run.dataset_hash:
        _update(run, stage="data")
        if distill:
            examples, trace_ids = training_data.distill_examples()
            ids = {"traces": trace_ids}
            missing = "Write teacher traces on the Traces page first."
        else:
            examples, ids = training_data.collect(config.sources, config.data)
            missing = "Run self-play or solve some repairs first."
        if len(examples) < config.min_examples:
            raise TrainingError(f"{len(examples)} verified examples; this round needs at least {config.min_examples}. "
                                + missing)
        from engine.training.packing import snapshot_hash

        _update(run, dataset=ids, examples=len(examples), dataset_hash=snapshot_hash(examples))
        if distill:
            _log(run, f"data: {len(examples)} kept teacher traces (none rejected by a reviewer)")
        else:
            failed = f" ({len(ids['failed'])} failed: the unverified control)" if "failed" in ids else ""
            _log(run, f"data ({config.data}): {len(ids['attempts'])} puzzle pairs{failed}, "
                      f"{len(ids['examples'])} solved repairs, "
                      + (f"{len(ids['mbpp'])} MBPP train tasks rehearsed, " if "mbpp" in ids else "")
                      + (f"{len(ids['mbpp_chat'])} in the chat form, " if "mbpp_chat" in ids else "")
                      + f"{len(ids.get('excluded', {}))} left out as test items")
    else:
        examples = _examples_of(run)
    if not run.training and _repeats_a_round(run):
        return
    if not _evaluated_before(run, config, base, beat):
        return
    # 3. Fine-tune from the active model.
    if not run.training:
        _update(run, stage="train", status=TrainingRun.Status.RUNNING, progress={})
        curve, history = list(run.loss_curve or []), list(run.rl_curve or [])

        def progress(event):
            if "loss" not in event:  # a validation point: on the charts, not the step counter
                history.append({key: event[key] for key in ("step", *VALIDATION) if key in event})
                _update(run, rl_curve=history[-2000:])
                return
            curve.append([event["step"], event["loss"]])
            fields = {}
            if distill:  # the loss's two parts, charted like RL's reward
                history.append({key: event[key] for key in ("step", "loss", *DISTILL_REPORTED) if key in event})
                fields["rl_curve"] = history[-2000:]
            _update(run, progress=event, loss_curve=curve[-2000:], **fields)

        trainer = config.trainer_config()
        start, validation = _start_spec(run, config, base), _validation_tasks(trainer.validate_every)
        train = train_distill if distill else train_sft
        result = train(start, examples, round_dir(run), trainer, progress, beat.cancel, validation=validation,
                       verify=verify_here)
        if _cancelled(run, beat):
            return
        _update(run, training=result.as_dict(), loss_curve=[list(p) for p in result.loss_curve] or curve)
        _log(run, f"trained {result.steps} steps ({result.epochs} epochs) in {result.seconds} s, "
                  f"{result.tokens_per_s} tokens/s in {result.precision}, final loss {result.final_loss}")
        _log_validation(run, result)
        if trainer.interpolation != 1:
            _log(run, f"published start + {trainer.interpolation:g} × (trained − start): weight interpolation "
                      "towards the starting model (WiSE-FT)")
    if not _nothing_trained(run):
        _evaluate_and_decide(run, config, base, beat)


def _validation_tasks(every: int) -> list[CodeTask]:
    """MBPP validation (511-600): what early stopping answers, never trained on, never a test set;
    read only where the round validates (a round without it needs no benchmark data)."""
    if not every:
        return []
    return [CodeTask.from_mbpp(t) for t in mbpp_validation(settings.AUTODIDACT_BENCHMARK_DATA)]


def _log_validation(run: TrainingRun, result) -> None:
    """Which step's model the round kept on validation, where it validated."""
    if result.best_step is None:
        return
    best = next(p for p in result.validation if p["step"] == result.best_step)
    _log(run, f"validation (MBPP 511-600, first {best['tasks']}, greedy): kept the model of step "
              f"{result.best_step} ({best['solved']} solved, mean reward {best['reward']})"
              + (", stopped early" if result.stopped_early else ""))


def _start_spec(run: TrainingRun, config: RoundConfig, base: ModelVersion) -> str:
    """Where training starts: the active version, or with train_from "origin" its lineage's first
    one. The gate still compares the result with the active version, and rollback returns to it."""
    start = _start_version(base, config.train_from)
    if start != base:
        _log(run, f"training from {start.name} (the lineage's first version), not the active {base.name}")
    return model_store.local_spec(start.spec)  # a version another host trained is fetched here


def _start_version(base: ModelVersion, train_from: str) -> ModelVersion:
    return lineage_origin(base) if train_from == "origin" else base


def _evaluated_before(run: TrainingRun, config: RoundConfig, base: ModelVersion, beat: RowHeartbeat) -> bool:
    """2. The active model, measured with this round's settings; False when the round was cancelled."""
    if not run.eval_before:
        _update(run, stage="eval-before", status=TrainingRun.Status.EVALUATING)
        _evaluate_into(run, base, config, beat, "eval_before")
        if _cancelled(run, beat):
            return False
    return True


def _evaluate_and_decide(run: TrainingRun, config: RoundConfig, base: ModelVersion, beat: RowHeartbeat) -> None:
    # 4. The new model, measured alike, then the gate; where it rejects and fallback α remain, the
    # next point towards the start, measured and gated in turn (one version per point).
    version = run.produced_version or _produce_version(run, base)
    while True:
        if not run.eval_after:
            _update(run, stage="eval-after", status=TrainingRun.Status.EVALUATING, progress={})
            _evaluate_into(run, version, config, beat, "eval_after")
            if _cancelled(run, beat):
                return
        _update(run, stage="decide")
        decision = _gate(run, config, base, beat)
        if decision is None:  # cancelled while the lineage's first version was measured
            return
        if decision.promote:
            versions.promote(version, decision.reason)
            _report(run, version, config)
            break
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelVersion.Status.REJECTED, reason=decision.reason)
        alphas, tried = config.interpolations(), len(run.candidates or [])
        if tried + 1 >= len(alphas):
            break
        _log(run, f"α {alphas[tried]:g}: {decision.reason}")
        version = _interpolated_candidate(run, config, base, version, decision.reason, alphas[0], alphas[tried],
                                          alphas[tried + 1])
    alphas = config.interpolations()
    _log(run, (f"α {alphas[len(run.candidates or [])]:g}: " if len(alphas) > 1 else "") + decision.reason)
    _finish(TrainingRun.objects.filter(pk=run.pk), TrainingRun.Status.SUCCEEDED, decision=decision.reason)


def _gate(run: TrainingRun, config: RoundConfig, base: ModelVersion, beat: RowHeartbeat):
    """The gate's decision on the run's `eval_after` against `eval_before` (and, for a promotion, against
    the lineage's first version too: no drift); None when the round was cancelled meanwhile."""
    gate = partial(decide, run.eval_before["p3"], run.eval_after["p3"], config.metric_k, config.margin,
                   code_results(run.eval_before), code_results(run.eval_after), config.code_margin,
                   require_gain=config.promote_if == "better")
    decision, origin = gate(), lineage_origin(base)
    if decision.promote and origin != base:
        measured = _measured(run, origin, config, beat)  # measured in an earlier round, as a rule
        if _cancelled(run, beat):
            return None
        decision = gate(origin=Origin(origin.name, measured["p3"], code_results(measured)))
    return decision


def _interpolated_candidate(run: TrainingRun, config: RoundConfig, base: ModelVersion, rejected: ModelVersion,
                            reason: str, published: float, current: float, alpha: float) -> ModelVersion:
    """The round's next candidate: start + α·(trained − start), made from the model the round sealed
    (at α = `published`) and its start, sealed and published like it. The rejected candidate is kept
    in `run.candidates` with its figures; a round killed here makes the point again on resume."""
    from engine.lm.model_store import spec_of
    from engine.training.checkpoints import is_complete
    from engine.training.interpolation import write_interpolated

    key = f"round-{run.pk}/model-alpha-{alpha:g}"
    folder = round_dir(run) / f"model-alpha-{alpha:g}"
    if not is_complete(folder):  # made here, never taken from the store: a key there may be stale
        _log(run, f"trying α {alpha:g}: start + {alpha:g} × (trained − start), from the same training")
        start = model_store.local_spec(_start_version(base, config.train_from).spec)
        sealed = model_store.local_spec(spec_of(f"round-{run.pk}/model"))
        write_interpolated(start, sealed, alpha / published, folder)
    spec = model_store.publish(folder, key)
    tried = [*(run.candidates or []), {"alpha": current, "version": rejected.pk, "name": rejected.name,
                                       "eval_after": _brief(run.eval_after), "decision": reason}]
    with transaction.atomic():
        version = ModelVersion.objects.create(name=f"v{ModelVersion.objects.count()} · round {run.pk} · α {alpha:g}",
                                              parent=base, checkpoint=spec, status=ModelVersion.Status.CANDIDATE)
        _update(run, produced_version=version, eval_after={}, candidates=tried)
    return version


def _brief(result: dict) -> dict:
    """A rejected candidate's gate figures, kept on the run (its full results stay on its version)."""
    code = {found.get("prompt"): found.get("pass_at_1") for found in code_results(result)}
    p3 = result.get("p3") or {}
    return {"p3_pass_at_k": p3.get("pass_at_k"), "p3_solved": p3.get("solved"), "p3_puzzles": p3.get("puzzles"),
            "code_pass_at_1": code, "seconds": result.get("seconds")}


def lineage_origin(version: ModelVersion) -> ModelVersion:
    """The first version of `version`'s lineage (the packaged base, as a rule): parents followed up."""
    seen = {version.pk}
    while version.parent_id and version.parent_id not in seen:
        version = version.parent
        seen.add(version.pk)
    return version


def _run_rl_stages(run: TrainingRun, config: RoundConfig, base: ModelVersion, beat: RowHeartbeat) -> None:
    """An RL round: the tasks snapshotted once (text and tests: a resumed round learns from the same
    ones), the active model measured, GRPO with the grounding reward, then the same gate as SFT."""
    from engine.training.packing import snapshot_hash

    if not run.dataset_hash:
        _update(run, stage="data")
        tasks = training_data.rl_tasks(config.rl_sources, config.rl_tasks)
        if len(tasks) < config.min_examples:
            raise TrainingError(f"{len(tasks)} tasks with tests; this round needs at least {config.min_examples}")
        digest = snapshot_hash([TrainingText(json.dumps(task, sort_keys=True)) for task in tasks])
        _update(run, dataset={"rl_tasks": tasks}, examples=len(tasks), dataset_hash=digest)
        _log(run, f"data: {len(tasks)} tasks with tests ({', '.join(config.rl_sources)})")
    if not run.training and _repeats_a_round(run):
        return
    if not _evaluated_before(run, config, base, beat):
        return
    if not run.training:
        _update(run, stage="train", status=TrainingRun.Status.RUNNING, progress={})
        curve, history = list(run.loss_curve or []), list(run.rl_curve or [])

        def progress(event):
            history.append({key: event[key] for key in ("step", "loss", *REPORTED, *VALIDATION) if key in event})
            if "loss" not in event:  # a validation point: on the charts, not the step counter
                _update(run, rl_curve=history[-2000:])
                return
            curve.append([event["step"], event["loss"]])
            _update(run, progress=event, loss_curve=curve[-2000:], rl_curve=history[-2000:])

        tasks = [CodeTask(t["task_id"], t["text"], t["tests"], t.get("setup", ""), t.get("source", ""),
                        t.get("reference", ""), t.get("kind", "tests"), t.get("sat", "")) for t in run.dataset["rl_tasks"]]
        trainer = config.rl_config()
        result = train_rl(_start_spec(run, config, base), tasks, round_dir(run), trainer, verify_on_queue,
                          config.grounding_config(), progress, beat.cancel,
                          validation=_validation_tasks(trainer.validate_every))
        if _cancelled(run, beat):
            return
        _update(run, training=result.as_dict())
        _log(run, f"RL: {result.steps} steps in {result.seconds} s ({result.steps_per_hour} steps/h, "
                  f"{result.tokens_per_s} sampled tokens/s, {result.precision}, sampled by {result.sampler})")
        _log_validation(run, result)
    if not _nothing_trained(run):
        _evaluate_and_decide(run, config, base, beat)


def verify_here(jobs: list[dict]) -> list:
    """A supervised round's validation checks, in the round's own sandbox as its evaluations are: a
    few dozen every N steps, and the headless `selfplay` command runs rounds with no verify worker."""
    return sandbox().verify_many(jobs) if jobs else []


def verify_on_queue(jobs: list[dict]) -> list[dict]:
    """The reward's checks, one batch per step, on the `verify` workers (the sandbox's home)."""
    from celery.exceptions import TimeoutError as CeleryTimeout

    from webapp.core.tasks import verify_batch

    if not jobs:
        return []
    try:
        return verify_batch.delay(jobs).get(timeout=VERIFY_WAIT_S, disable_sync_subtasks=False)
    except CeleryTimeout:
        raise TrainingError(f"no verify worker checked the step's programs within {VERIFY_WAIT_S:.0f} s; "
                            "start one (or resume the round once it runs)") from None


def _report(run: TrainingRun, version: ModelVersion, config: RoundConfig) -> None:
    """Queue the test benchmarks on the promoted version: the Benchmarks page reports them across
    versions (selection already happened on validation). A refusal is logged, never fails the round."""
    from webapp.evaluation.benchmark_runs import start_run

    for name in config.report_list():
        try:
            queued = start_run(None, name, version, {"limit": config.report_limit})
            _log(run, f"queued benchmark run {queued.pk} ({name}) on {version.name}")
        except Exception as exc:  # noqa: BLE001 - a report is not worth failing a promoted round for
            _log(run, f"could not queue {name}: {exc}")


def _produce_version(run: TrainingRun, base: ModelVersion) -> ModelVersion:
    """The round's candidate version, created once (a resumed round finds it on the run)."""
    spec = _publish(run)
    with transaction.atomic():
        version = ModelVersion.objects.create(name=f"v{ModelVersion.objects.count()} · round {run.pk}", parent=base,
                                              checkpoint=spec, status=ModelVersion.Status.CANDIDATE)
        _update(run, produced_version=version)
    return version


def _publish(run: TrainingRun) -> str:
    """The round's sealed model, published to the model store: every host (other GPU workers, the
    evaluation, the chat) loads the version from there, not from this host's data dir."""
    from engine.lm.model_store import spec_of
    from engine.training.checkpoints import is_complete

    key, folder = f"round-{run.pk}/model", round_dir(run) / "model"
    if is_complete(folder):
        spec = model_store.publish(folder, key)
        _log(run, f"published the trained model to the model store as {spec}")
        return spec
    if model_store.published(spec_of(key)):  # sealed and published by the host that trained it
        return spec_of(key)
    raise TrainingError(f"round {run.pk}'s trained model is neither sealed here ({folder}) nor in the model store; "
                        "resume the round on the host that trained it")


def _examples_of(run: TrainingRun):
    """The snapshot's examples again (same ids); a changed hash means the data was edited since."""
    from engine.training.packing import snapshot_hash

    config = RoundConfig.from_dict(run.config)
    if config.method == "distill":
        kept, _ = training_data.distill_examples(list(run.dataset.get("traces", [])))
    else:
        examples, ids = training_data.collect(tuple(config.sources), config.data)
        wanted = {f"attempt:{i}" for i in run.dataset.get("attempts", [])} | {
            f"example:{i}" for i in training_data.ledger_ids(run.dataset)} | training_data.rehearsed_sources(run.dataset)
        kept = [e for e in examples if e.source in wanted]
    if snapshot_hash(kept) != run.dataset_hash:
        _log(run, "note: some snapshot examples changed or were excluded since the round started")
    return kept
