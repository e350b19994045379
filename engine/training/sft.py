"""Supervised fine-tuning on verified data with the `transformers` Trainer: full or LoRA (`peft`),
CPU or CUDA, packed blocks, a fixed seed, gradient accumulation, checkpoints sealed atomically
(checkpoints.py) and resumed from the last whole one, progress (loss, tokens/s, ETA) through a
callback, and cancellation between optimizer steps.

The result is always a plain Hugging Face checkpoint folder (LoRA adapters are merged), so every
backend and worker serves a trained model the way it serves any local checkpoint."""
from __future__ import annotations

import errno
import json
import shutil
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.config import Problems, StrictConfig
from engine.lm.generation import CancelToken
from engine.lm.throughput import tokens_per_s
from engine.training.checkpoints import CheckpointDir, seal
from engine.training.early_stopping import greedy_answers, validation_callback, validation_update
from engine.training.grounding import GroundingConfig, Verify
from engine.training.packing import BlockDataset, TrainingText, drop_long, pack, snapshot_hash
from engine.training.precision import PRECISIONS, training_precision
from engine.training.tasks import CodeTask

METHODS = ("full", "lora")


class TrainingError(RuntimeError):
    """A round that cannot train, with a message meant for the run page."""


@dataclass(frozen=True)
class TrainerSettings(StrictConfig):
    """What every kind of round's training shares: full or LoRA, the device, the seed, checkpoints."""

    method: str = "full"  # "full" or "lora"
    learning_rate: float = 5e-5
    seed: int = 0
    save_steps: int = 50
    keep_checkpoints: int = 2
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    device: str = "auto"  # "auto", "cpu" or "cuda"
    # "auto": bf16 mixed precision where the device multiplies bf16 natively (CUDA; a CPU with
    # AVX512-BF16 or AMX), else fp32; or "fp32" / "bf16" as asked (engine/training/precision.py).
    precision: str = "auto"
    # A wall-clock budget for this training call (0: none): at the first step that ends past it,
    # training stops and the model of that step is sealed, so two methods can be compared on the
    # same time. A resumed call gets the budget again.
    max_minutes: float = 0.0
    # Early stopping on held-out tasks (early_stopping.py), where the caller gives validation tasks:
    # every `validate_every` steps (0: never) the model answers the first `validation_tasks` of them;
    # after `patience` validations without a better one training stops, and the best model is kept.
    validate_every: int = 0
    patience: int = 2
    validation_tasks: int = 30
    # The model sealed is start + interpolation × (trained − start) (interpolation.py, WiSE-FT):
    # 1 keeps the trained model; below 1 trades some of what training taught for what the start
    # could do.
    interpolation: float = 1.0

    def common_problems(self) -> Problems:
        problems = Problems()
        if self.method not in METHODS:
            problems.add("method", f"method must be one of {', '.join(METHODS)} (got {self.method!r})")
        for name in ("save_steps", "keep_checkpoints", "lora_r"):
            if int(getattr(self, name)) < 1:
                problems.add(name, f"{name} must be at least 1")
        if not 0 < self.learning_rate < 1:
            problems.add("learning_rate", "learning_rate must be between 0 and 1")
        if self.device not in ("auto", "cpu", "cuda"):
            problems.add("device", "device must be auto, cpu or cuda")
        if self.precision not in PRECISIONS:
            problems.add("precision", f"precision must be one of {', '.join(PRECISIONS)}")
        if self.max_minutes < 0:
            problems.add("max_minutes", "max_minutes must be at least 0 (0: no time budget)")
        for name in ("validate_every", "validation_tasks"):
            if int(getattr(self, name)) < 0:
                problems.add(name, f"{name} must be at least 0")
        if self.patience < 1:
            problems.add("patience", "patience must be at least 1")
        if not 0 < self.interpolation <= 1:
            problems.add("interpolation", "interpolation must be above 0 and at most 1 (1: the trained model as it is)")
        return problems

    def lora(self):
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules="all-linear", task_type="CAUSAL_LM")


# How a full disk shows through the writers a checkpoint uses (torch's zip writer says only this).
FULL_DISK_SIGNS = ("No space left on device", "StorageFull", "Disk quota exceeded", "unexpected pos",
                   "file write failed")
NEARLY_FULL_BYTES = 64 << 20


@contextmanager
def full_disk_is_clear(folders: CheckpointDir):
    """A write that fails because the disk is full becomes a TrainingError that says so; the
    half-written checkpoint is removed (sealed ones are whole, so a resume starts from the last)."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, TrainingError):
            raise
        full = (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) or (
            any(sign in str(exc) for sign in FULL_DISK_SIGNS) and _nearly_full(folders.root))
        if not full:
            raise
        folders.clear_staging()
        latest = folders.latest()
        raise TrainingError(f"the disk holding {folders.root} is full: a checkpoint could not be written. "
                            f"{'The last whole checkpoint is ' + latest.name if latest else 'No checkpoint was sealed yet'}"
                            "; free some space and resume") from exc


def _nearly_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free < NEARLY_FULL_BYTES
    except OSError:
        return False



@dataclass(frozen=True)
class SFTConfig(TrainerSettings):
    KIND = "training settings"

    epochs: float = 1.0
    max_steps: int = 0  # > 0 overrides epochs
    warmup_steps: int = 10
    batch_size: int = 4
    gradient_accumulation: int = 1
    block_size: int = 512
    max_example_tokens: int = 0  # longer examples are left out (0: keep all); reported as `dropped`
    validation_max_tokens: int = 256  # new tokens of each greedy validation answer

    def __post_init__(self):
        problems = self.common_problems()
        if self.epochs <= 0 and self.max_steps <= 0:
            problems.add("epochs", "train for some epochs or some steps")
        for name in ("batch_size", "gradient_accumulation"):
            if int(getattr(self, name)) < 1:
                problems.add(name, f"{name} must be at least 1")
        if not 8 <= self.block_size <= 32768:
            problems.add("block_size", "block_size must be between 8 and 32768 tokens")
        if self.max_example_tokens < 0:
            problems.add("max_example_tokens", "max_example_tokens must be at least 0")
        if self.validation_max_tokens < 1:
            problems.add("validation_max_tokens", "validation_max_tokens must be at least 1")
        problems.raise_any()


@dataclass
class SFTResult:
    model_dir: str
    steps: int
    epochs: float
    examples: int
    blocks: int
    tokens: int  # real (unpadded) tokens per epoch
    dataset_hash: str
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    final_loss: float | None = None
    seconds: float = 0.0
    tokens_per_s: float = 0.0
    resumed_from: str | None = None
    cancelled: bool = False
    dropped: int = 0  # examples over max_example_tokens, left out
    precision: str = "fp32"  # what the steps ran in: "fp32", or "bf16" (mixed: fp32 weights, bf16 products)
    validation: list[dict] = field(default_factory=list)  # per validation: step, pass rate, mean reward
    best_step: int | None = None  # the step whose model was kept (None: no validation)
    stopped_early: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


Progress = Callable[[dict], None]


def training_device(choice: str) -> str:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device cuda was asked for, but no CUDA GPU is visible to this worker")
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def load_for_training(spec: str, device: str, precision: str = "auto"):
    """Model and tokenizer of any HF id, local checkpoint, .gguf or "" (the packaged default).
    Weights are bfloat16 on CUDA when training in bf16, else float32 (on a CPU, bf16 training keeps
    float32 master weights and runs the products under autocast)."""
    import torch

    from engine.lm.model_source import load_tokenizer, resolve_model_source
    from engine.lm.transformers_imports import build_causal_lm

    source = resolve_model_source(spec)
    extra = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    tokenizer = load_tokenizer(source)
    bf16_weights = device == "cuda" and training_precision(precision, device) == "bf16"
    dtype = torch.bfloat16 if bf16_weights else torch.float32
    model = build_causal_lm(source.path, dtype=dtype, **extra).to(device)
    if source.gguf_file:
        # GGUF weights are dequantized on load: the model is a plain float one, trainable, and must
        # be saved as one (a leftover GGUF quantization config would make the checkpoint unloadable).
        model.hf_quantizer = None
        model.is_quantized = False
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _with_lora(model, config: SFTConfig):
    from peft import get_peft_model

    return get_peft_model(model, config.lora())


def _callback(folders: CheckpointDir, progress: Progress | None, cancel: CancelToken | None,
              tokens_per_step: float, curve: list, report: tuple[str, ...] = (), max_minutes: float = 0.0):
    from transformers import TrainerCallback

    class RoundCallback(TrainerCallback):
        """Seals each checkpoint, reports progress, stops at a cancel between steps, and ends
        training (normally: the model is sealed) at the first step past the time budget."""

        def __init__(self):
            self.started = time.perf_counter()
            self.first_step = None
            self.out_of_time = False

        def on_train_begin(self, args, state, control, **kwargs):
            self.first_step = state.global_step
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if max_minutes and time.perf_counter() - self.started >= max_minutes * 60:
                self.out_of_time = True
                control.should_training_stop = True
            return self._stop_if_cancelled(control)

        @staticmethod
        def _stop_if_cancelled(control):
            if cancel is not None and cancel.cancelled:
                control.should_training_stop = True
                control.should_save = False
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs:
                return
            curve.append((state.global_step, round(float(logs["loss"]), 4)))
            done = state.global_step - (self.first_step or 0)
            elapsed = time.perf_counter() - self.started
            rate = done / elapsed if elapsed > 0 else 0.0
            if progress:
                progress({"step": state.global_step, "max_steps": state.max_steps,
                          "epoch": round(float(state.epoch or 0), 3), "loss": curve[-1][1],
                          "learning_rate": logs.get("learning_rate"),
                          "tokens_per_s": tokens_per_s(done * tokens_per_step, elapsed),
                          "eta_s": self.eta_s(state, rate, elapsed),
                          **{key: round(float(logs[key]), 4) for key in report if key in logs}})
            return self._stop_if_cancelled(control)  # a cancel seen while reporting: no further step

        @staticmethod
        def eta_s(state, rate: float, elapsed: float) -> float | None:
            """Seconds to the last step: the steps left at this rate, or less where a time budget ends
            the run first (the budget's last step starts before it ends, so one step is added)."""
            if not rate:
                return None
            eta = (state.max_steps - state.global_step) / rate
            if max_minutes:
                eta = min(eta, max(0.0, max_minutes * 60 - elapsed) + 1 / rate)
            return round(eta, 1)

        def on_save(self, args, state, control, **kwargs):
            folders.seal_staged(state.global_step)

    return RoundCallback()


def train_sft(base: str, examples: Sequence[TrainingText], out_dir: str | Path, config: SFTConfig,
              progress: Progress | None = None, cancel: CancelToken | None = None,
              resume: bool = True, validation: Sequence[CodeTask] = (), verify: Verify | None = None) -> SFTResult:
    """Fine-tune `base` on `examples`; the trained model lands, whole, in `<out_dir>/model`.
    With `resume`, training continues from the last sealed checkpoint in `out_dir`. With
    `validation` tasks, `verify` (the sandbox) and `config.validate_every`, training stops early
    and keeps its best model on them (early_stopping.py)."""
    if not examples:
        raise TrainingError("no training examples: verify some puzzles or solve some repairs first")

    def blocks(tokenizer):
        trained_on, dropped = drop_long(examples, tokenizer, config.max_example_tokens)
        if not trained_on:
            raise TrainingError(f"every example is longer than max_example_tokens={config.max_example_tokens}")
        return BlockDataset(pack(trained_on, tokenizer, config.block_size, config.seed)), dropped

    return train_blocks(base, examples, out_dir, config, blocks, progress, cancel, resume,
                        validation=validation, verify=verify)


def train_blocks(base: str, examples: Sequence[TrainingText], out_dir: str | Path, config: SFTConfig,
                 make_dataset: Callable, progress: Progress | None = None, cancel: CancelToken | None = None,
                 resume: bool = True, trainer_class=None, report: tuple[str, ...] = (),
                 validation: Sequence[CodeTask] = (), verify: Verify | None = None) -> SFTResult:
    """The supervised loop SFT and distillation share: `make_dataset(tokenizer)` gives (dataset of
    packed blocks, examples left out); `trainer_class` (default: the Trainer) computes the loss."""
    import torch
    from transformers import Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    started = time.perf_counter()
    device = training_device(config.device)
    precision = training_precision(config.precision, device)
    folders = CheckpointDir(out_dir, keep=config.keep_checkpoints)
    if resume and folders.final_model():  # a repeated request after the model was sealed
        return SFTResult(**json.loads((folders.model / "training.json").read_text())["result"])
    folders.clear_staging()
    resume_from = folders.latest() if resume else None
    start_step = int(resume_from.name.split("-")[1]) if resume_from else 0
    try:
        model, tokenizer = load_for_training(base, device, precision)
    except (OSError, ValueError, LookupError) as exc:
        raise TrainingError(f"could not load the base model {base or 'default'!r}: {exc}") from exc
    dataset, dropped = make_dataset(tokenizer)
    if config.method == "lora":
        model = _with_lora(model, config)
    tokens_per_step = dataset.tokens / len(dataset) * config.batch_size * config.gradient_accumulation
    curve: list[tuple[int, float]] = []
    arguments = TrainingArguments(
        output_dir=str(folders.staging), per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation, num_train_epochs=config.epochs,
        max_steps=config.max_steps if config.max_steps > 0 else -1, learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps, lr_scheduler_type="constant_with_warmup", logging_steps=1,
        save_strategy="steps", save_steps=config.save_steps, save_total_limit=None, seed=config.seed,
        data_seed=config.seed, report_to="none", use_cpu=device == "cpu", bf16=precision == "bf16",
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
    )
    callbacks = [_callback(folders, progress, cancel, tokens_per_step, curve, report, config.max_minutes)]
    validating = decoder = None
    if validation and config.validate_every:  # after the round's callback: it sees checkpoints sealed
        if verify is None:
            raise TrainingError("validation needs the sandbox: pass verify with the validation tasks")
        decoder, answer = _validation_answers(base, device, folders.root, config, tokenizer)
        validating = validation_callback(
            folders.root, list(validation)[:config.validation_tasks or None], verify, GroundingConfig(),
            config.validate_every, config.patience, config.validation_max_tokens,
            lambda point: progress and progress(validation_update(point)), cancel, start_step, answer)
        callbacks.append(validating)
    trainer = (trainer_class or Trainer)(model=model, args=arguments, train_dataset=dataset, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # progress goes through `progress`, not stdout
    try:
        with full_disk_is_clear(folders):
            outcome = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except torch.OutOfMemoryError as exc:
        raise TrainingError(f"out of memory on {device} with batch_size={config.batch_size} and "
                            f"block_size={config.block_size}: lower them (and raise gradient_accumulation "
                            "to keep the effective batch)") from exc
    finally:
        if decoder is not None:
            decoder.remove()
    cancelled = bool(cancel is not None and cancel.cancelled)
    best_step = None if cancelled or validating is None else validating.restore_best(trainer.model)
    result = SFTResult(
        str(folders.model), trainer.state.global_step, round(float(trainer.state.epoch or 0), 3), len(examples),
        len(dataset), dataset.tokens, snapshot_hash(examples), curve, curve[-1][1] if curve else None,
        round(time.perf_counter() - started, 1),
        tokens_per_s(tokens_per_step * (outcome.global_step - start_step), outcome.metrics.get("train_runtime", 0)),
        str(resume_from) if resume_from else None, cancelled, dropped, precision,
        validating.stopping.as_list() if validating else [], best_step, bool(validating and validating.stopped_early))
    if not cancelled:
        seal_trained(trainer.model, tokenizer, folders, base, config, {"result": result.as_dict()})
    return result


def _validation_answers(base: str, device: str, folder: Path, config: SFTConfig, tokenizer):
    """Who answers the validation tasks greedily: llama.cpp on an f16 copy of the model where RL's
    sampler would use it (a CPU, a model from a GGUF: several times transformers' speed there), else
    transformers' `generate`. Returns (the llama.cpp copy to remove at the end or None, the answerer)."""
    from engine.training.rl_rollout import LlamaCppRollout, choose_sampler, rollout_like

    if choose_sampler("auto", base, device) == "llama.cpp":
        decoder = LlamaCppRollout(rollout_like(base), folder, config.validation_max_tokens, 1.0, 0, 1.0, config.seed)
        return decoder, lambda model, _, tasks, max_new_tokens, step: decoder.greedy_answers(
            model, tokenizer, tasks, max_new_tokens, step)
    return None, lambda model, _, tasks, max_new_tokens, step: greedy_answers(model, tokenizer, tasks, max_new_tokens)


def seal_trained(trained, tokenizer, folders: CheckpointDir, base: str, config: TrainerSettings, record: dict,
                 extra=None) -> Path:
    """The trained model as a plain checkpoint (LoRA merged, moved back towards its start where
    `config.interpolation` < 1), its record (`training.json`), its
    served GGUF copy and `extra(folder)`'s files, sealed whole into `<out_dir>/model`."""
    from engine.training.interpolation import interpolate_from_start

    if config.method == "lora":
        trained = trained.merge_and_unload()
    interpolate_from_start(trained, base, config.interpolation)
    final = folders.staging / "final"
    with full_disk_is_clear(folders):
        write_servable(trained, tokenizer, final, base, {"training.json": {"base": base, "config": config.as_dict(),
                                                                           **record}}, extra)
        seal(final, folders.model)
    return folders.model


def write_servable(model, tokenizer, folder: Path, base: str, records: dict[str, dict], extra=None) -> dict | None:
    """`model` as a checkpoint in `folder` with its records ({file name: JSON}), `extra(folder)`'s
    files and its served GGUF copy, ready to be sealed into place; the copy's report."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if extra is not None:
        extra(folder)
    for name, record in records.items():
        (folder / name).write_text(json.dumps(record, indent=1))
    return write_served_copy(folder, base)


def write_served_copy(checkpoint: Path, base: str) -> dict | None:
    """A checked GGUF copy of the trained model beside it, so llama.cpp can serve this version
    (engine/lm/gguf_export.py); only for models that descend from a GGUF. Where llama.cpp has bf16
    dot products a checked bf16 copy is written too: puzzle writing loads it (1.19-1.26x the f16
    copy there, docs/experiments.md) while evaluation keeps f16. A failure is recorded in the copy's
    report and leaves the version to f16 or the transformers backend: it never fails the round."""
    from engine.lm import llama_cpp_backend
    from engine.lm.model_source import ModelNotFound, resolve_model_source

    try:
        like = resolve_model_source(base).llama_file
    except ModelNotFound:
        like = None
    if not like or not llama_cpp_backend.available():
        return None
    record = _checked_copy(checkpoint, like, "f16")
    if record.get("passed") and llama_cpp_backend.has_bf16_kernels():
        record["batch_copy"] = _checked_copy(checkpoint, like, "bf16")
    return record


def _checked_copy(checkpoint: Path, like: str, dtype: str) -> dict:
    from engine.lm.gguf_export import ExportError, export_checked, report_name

    try:
        return export_checked(checkpoint, like, dtype)
    except (ExportError, OSError, ValueError, KeyError) as exc:
        record = {"passed": False, "error": f"{type(exc).__name__}: {exc}", "like": like, "type": dtype}
        (checkpoint / report_name(dtype)).write_text(json.dumps(record, indent=1))
        return record
