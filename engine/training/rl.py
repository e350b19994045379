"""RL from execution feedback (the RLCF paper's idea, with TRL's GRPO trainer): the policy samples
a group of answers per task, the grounding function (grounding.py) scores each in the sandbox, and
GRPO pushes up the answers that beat their group, with a KL term to the starting policy. Group-
relative advantages need no value model, which suits a 135M-parameter policy on a CPU.

Same shape as SFT (sft.py): full or LoRA, CPU or CUDA, checkpoints sealed atomically and resumed
from the last whole one, progress through a callback (reward and its parts, pass rate, KL),
cancellation between steps, and a plain Hugging Face checkpoint (LoRA merged) as the result."""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.lm.generation import CancelToken
from engine.lm.throughput import tokens_per_s
from engine.training.checkpoints import CheckpointDir
from engine.training.discriminator import Discriminator
from engine.training.early_stopping import validation_callback, validation_update
from engine.training.grounding import GroundingConfig, Verify, reply_item, score_programs
from engine.training.precision import training_precision
from engine.training.rl_rollout import SAMPLERS, LlamaCppRollout, choose_sampler, rollout_like
from engine.training.sft import (
    Progress,
    TrainerSettings,
    TrainingError,
    _callback,
    full_disk_is_clear,
    load_for_training,
    seal_trained,
    training_device,
)
from engine.training.tasks import CodeTask

# What the run page charts, as GRPO and the reward function log them.
REPORTED = ("reward", "reward_std", "kl", "entropy", "completions/mean_length", "grounding/pass_rate",
            "grounding/parse_rate", "grounding/run_rate", "grounding/static_clean_rate", "grounding/execution",
            "discriminator/accuracy", "discriminator/score")
VALIDATION = ("validation/pass_rate", "validation/reward")
DISCRIMINATOR_FILE = "discriminator.pt"


@dataclass(frozen=True)
class RLConfig(TrainerSettings):
    KIND = "RL settings"

    method: str = "lora"
    save_steps: int = 10
    max_steps: int = 50
    learning_rate: float = 1e-5
    num_generations: int = 4  # the group each answer is compared with
    prompts_per_step: int = 2
    max_completion_length: int = 256
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 1.0
    beta: float = 0.04  # the KL coefficient to the starting policy
    validate_every: int = 10  # early stopping on held-out tasks (MBPP 511-600) is on by default for RL
    # Who draws the samples: "llama.cpp" (the policy written as f16 GGUF each step: rl_rollout.py),
    # "transformers" (TRL's model.generate), or "auto": llama.cpp on a CPU where it can, else TRL's.
    sampler: str = "auto"

    def __post_init__(self):
        problems = self.common_problems()
        for name in ("max_steps", "prompts_per_step", "max_completion_length"):
            if int(getattr(self, name)) < 1:
                problems.add(name, f"{name} must be at least 1")
        if self.num_generations < 2:
            problems.add("num_generations", "num_generations must be at least 2 (GRPO compares answers in a group)")
        if not 0 < self.temperature <= 2:
            problems.add("temperature", "temperature must be above 0 and at most 2 (the group needs variety)")
        if self.beta < 0:
            problems.add("beta", "beta must be at least 0")
        if self.sampler not in SAMPLERS:
            problems.add("sampler", f"sampler must be one of {', '.join(SAMPLERS)}")
        problems.raise_any()


@dataclass
class RLResult:
    model_dir: str
    steps: int
    tasks: int
    curve: list[dict] = field(default_factory=list)  # per logged step: reward, its parts, KL
    seconds: float = 0.0
    completion_tokens: int = 0
    tokens_per_s: float = 0.0
    steps_per_hour: float = 0.0
    resumed_from: str | None = None
    cancelled: bool = False
    validation: list[dict] = field(default_factory=list)  # per validation: step, pass rate, mean reward
    best_step: int | None = None  # the step whose policy was kept (None: no validation)
    stopped_early: bool = False
    precision: str = "fp32"  # what the steps ran in (engine/training/precision.py)
    sampler: str = "transformers"  # who drew the samples (rl_rollout.py)
    sampling_seconds: float = 0.0  # of `seconds`, spent drawing samples (llama.cpp sampler only)
    export_seconds: float = 0.0  # of `seconds`, spent writing and loading the policy's GGUF each step

    def as_dict(self) -> dict:
        return asdict(self)


class GroundingReward:
    """TRL reward function: the reply's code, scored by the grounding function in the sandbox.
    Keeps the last batch's breakdown (`last`) and logs the parts' rates with the step. With a
    discriminator, each batch is scored by it first, then it trains one step on the batch's
    references against the batch's programs, and is saved (`save_to`) for a resumed round."""

    __name__ = "grounding"

    def __init__(self, verify: Verify, config: GroundingConfig, discriminator: Discriminator | None = None,
                 save_to: Path | None = None):
        self.verify, self.config = verify, config.check()
        self.discriminator = discriminator if config.discriminator_weight > 0 else None
        self.save_to = save_to
        self.last: list[dict] = []
        self.completion_tokens = 0

    def __call__(self, prompts, completions, tests, setup, kind, sat, reference=None,
                 completion_ids=None, log_metric=None, **kwargs):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        self.completion_tokens += sum(len(ids) for ids in completion_ids or [])
        items = [reply_item(text, task_kind, task_tests, task_setup, task_sat)
                 for text, task_tests, task_setup, task_kind, task_sat in zip(texts, tests, setup, kind, sat)]
        judge = None
        if self.discriminator is not None:
            judge = lambda batch: self.discriminator.score([item["code"] for item in batch])  # noqa: E731
        rewards = score_programs(items, self.verify, self.config, judge)
        self.last = [{"text": text, "kind": item["kind"], **reward.as_dict()}
                     for text, item, reward in zip(texts, items, rewards)]
        log = log_metric or (lambda name, value: None)
        if rewards:
            count = len(rewards)
            log("grounding/pass_rate", sum(r.tests > 0 and r.passed == r.tests for r in rewards) / count)
            log("grounding/parse_rate", sum(r.parses for r in rewards) / count)
            log("grounding/run_rate", sum(r.runs for r in rewards) / count)
            log("grounding/static_clean_rate", sum(r.parses and not r.static_errors for r in rewards) / count)
            log("grounding/execution", sum(r.execution for r in rewards) / count)
        if self.discriminator is not None:
            log("discriminator/score", sum(r.discriminator or 0.0 for r in rewards) / max(len(rewards), 1))
            trained = self.discriminator.train_step(list(dict.fromkeys(r for r in reference or [] if r)),
                                                    [item["code"] for item in items])
            if trained["accuracy"] is not None:
                log("discriminator/accuracy", trained["accuracy"])
            if self.save_to is not None:
                self.discriminator.save(self.save_to)
        return [reward.total for reward in rewards]


def train_rl(base: str, tasks: Sequence[CodeTask], out_dir: str | Path, config: RLConfig, verify: Verify,
             grounding: GroundingConfig | None = None, progress: Progress | None = None,
             cancel: CancelToken | None = None, resume: bool = True,
             validation: Sequence[CodeTask] = ()) -> RLResult:
    """GRPO on `tasks` from `base`; the trained model lands, whole, in `<out_dir>/model`.
    With `resume`, training continues from the last sealed checkpoint in `out_dir`. With
    `validation` tasks and `config.validate_every`, the round stops early and keeps its best
    policy on them (early_stopping.py)."""
    from datasets import Dataset
    from transformers.trainer_callback import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    if not tasks:
        raise TrainingError("no tasks to learn from")
    started = time.perf_counter()
    device = training_device(config.device)
    precision = training_precision(config.precision, device)
    folders = CheckpointDir(out_dir, keep=config.keep_checkpoints)
    if resume and folders.final_model():
        return RLResult(**json.loads((folders.model / "training.json").read_text())["result"])
    folders.clear_staging()
    resume_from = folders.latest() if resume else None
    try:
        model, tokenizer = load_for_training(base, device, precision)
    except (OSError, ValueError, LookupError) as exc:
        raise TrainingError(f"could not load the base model {base or 'default'!r}: {exc}") from exc
    dataset = Dataset.from_list([{"prompt": task.prompt(), "tests": task.tests, "setup": task.setup,
                                  "task_id": task.task_id, "reference": task.reference, "kind": task.kind,
                                  "sat": task.sat} for task in tasks])
    peft_config = config.lora() if config.method == "lora" else None
    grounding = (grounding or GroundingConfig()).check()
    discriminator = None
    if grounding.discriminator_weight > 0:
        saved = folders.root / DISCRIMINATOR_FILE
        discriminator = Discriminator.load(saved) if resume and saved.is_file() else Discriminator(seed=config.seed)
    reward = GroundingReward(verify, grounding, discriminator, folders.root / DISCRIMINATOR_FILE)
    sampler = choose_sampler(config.sampler, base, device)
    rollout = None
    if sampler == "llama.cpp":
        rollout = LlamaCppRollout(rollout_like(base), folders.root, config.max_completion_length, config.temperature,
                                  config.top_k, config.top_p, config.seed)
    arguments = GRPOConfig(
        # One prompt's group a forward/backward pass, the step's groups accumulated (still one generation
        # and one optimizer step a step): without activation checkpointing, passes over all 8 answers
        # peaked at 19.8 GB resident (12.1 GB now) and ran a 23 GB machine out at a long-prompt step.
        output_dir=str(folders.staging), per_device_train_batch_size=config.num_generations,
        gradient_accumulation_steps=config.prompts_per_step, num_generations=config.num_generations,
        max_steps=config.max_steps,
        max_completion_length=config.max_completion_length, temperature=config.temperature, top_k=config.top_k,
        top_p=config.top_p, beta=config.beta, learning_rate=config.learning_rate, logging_steps=1,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=None, seed=config.seed,
        data_seed=config.seed, report_to="none", use_cpu=device == "cpu", bf16=precision == "bf16",
        disable_tqdm=True, dataloader_num_workers=0, log_completions=False,
        # TRL turns this on by default (memory on a GPU); it recomputes every forward in the backward,
        # which a model of this size does not need, and SFT rounds do not do it either.
        activation_checkpointing=False)
    curve: list[dict] = []
    keep = _curve_keeper(curve, progress, reward, time.perf_counter())
    callbacks = [_callback(folders, keep, cancel, 0.0, [], REPORTED, config.max_minutes)]
    start_step = int(resume_from.name.split("-")[1]) if resume_from else 0
    validating = None
    if validation and config.validate_every:  # after the round's callback: it sees checkpoints sealed
        validating = validation_callback(folders.root, list(validation)[:config.validation_tasks or None], verify,
                                         grounding, config.validate_every, config.patience,
                                         config.max_completion_length, lambda point: keep(validation_update(point)),
                                         cancel, start_step, rollout.greedy_answers if rollout else None)
        callbacks.append(validating)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=arguments, train_dataset=dataset,
                          processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks,
                          rollout_func=rollout)
    trainer.remove_callback(PrinterCallback)
    try:
        with full_disk_is_clear(folders):
            trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        if rollout is not None:
            rollout.remove()
    cancelled = bool(cancel is not None and cancel.cancelled)
    seconds = round(time.perf_counter() - started, 1)
    steps = trainer.state.global_step
    best_step = None if cancelled or validating is None else validating.restore_best(trainer.model)
    result = RLResult(str(folders.model), steps, len(tasks), curve, seconds, reward.completion_tokens,
                      tokens_per_s(reward.completion_tokens, seconds),
                      round((steps - start_step) / seconds * 3600, 1) if seconds else 0.0,
                      str(resume_from) if resume_from else None, cancelled,
                      validating.stopping.as_list() if validating else [], best_step,
                      bool(validating and validating.stopped_early), precision, sampler,
                      round(rollout.sample_seconds, 1) if rollout else 0.0,
                      round(rollout.export_seconds, 1) if rollout else 0.0)
    if not cancelled:  # the discriminator is versioned with the model it was trained beside
        seal_trained(trainer.model, tokenizer, folders, base, config,
                     {"method": "rl", "grounding": grounding.as_dict(), "result": result.as_dict()},
                     None if discriminator is None else lambda final: discriminator.save(final / DISCRIMINATOR_FILE))
    return result


SAMPLES_SHOWN = 4
SAMPLE_CHARS = 1200


def _curve_keeper(curve: list[dict], progress: Progress | None, reward: GroundingReward, started: float) -> Progress:
    """Keeps each logged step's figures for the result, and passes them on with the sampling rate
    and a few of the step's programs with their reward breakdown (for the run page)."""
    def keep(update: dict) -> None:
        curve.append({key: update[key] for key in ("step", "loss", *REPORTED, *VALIDATION) if key in update})
        if progress and "loss" not in update:  # a validation point
            progress(update)
        elif progress:
            elapsed = time.perf_counter() - started
            samples = [{**sample, "text": sample["text"][:SAMPLE_CHARS]} for sample in reward.last[:SAMPLES_SHOWN]]
            progress({**update, "tokens_per_s": tokens_per_s(reward.completion_tokens, elapsed), "samples": samples})
    return keep
