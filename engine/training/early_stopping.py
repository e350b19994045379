"""Early stopping on held-out tasks, for RL and supervised rounds alike: every few steps the model
answers held-out validation tasks (MBPP 511-600) greedily, the sandbox scores the answers with the
grounding function, and the round stops once `patience` validations in a row have not beaten the
best one; the best model (the starting one included) is what the round keeps. GRPO's reward and
SFT's loss are measured on the tasks they train on, so they improve while the model memorises them;
only held-out tasks say when to stop.

Better = a higher pass rate, then (the tie-break small models need, whose pass rate sits at 0 for
many steps) a higher mean grounding reward. The best weights are the trainable parameters only
(LoRA adapters, or every weight for full fine-tuning), saved beside the checkpoints so a resumed
round still ends on the best policy; the history is saved with them."""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from engine.training.grounding import GroundingConfig, Verify, reply_item, score_programs
from engine.training.tasks import CodeTask

HISTORY_FILE = "validation.json"


@dataclass(frozen=True)
class ValidationPoint:
    step: int
    pass_rate: float  # answers that pass all their tests
    reward: float  # mean grounding reward
    solved: int
    tasks: int

    def key(self) -> tuple[float, float]:
        return self.pass_rate, self.reward


class EarlyStopping:
    """The selection rule alone: which point is best, and when to stop."""

    def __init__(self, patience: int, history: Sequence[dict] = ()):
        self.patience = patience
        self.history = [ValidationPoint(**point) for point in history]

    @property
    def best(self) -> ValidationPoint | None:
        best = None
        for point in self.history:  # the earliest of equals: no credit for steps that changed nothing
            if best is None or point.key() > best.key():
                best = point
        return best

    def observe(self, point: ValidationPoint) -> bool:
        """Record `point`; True if it is the new best."""
        before = self.best
        self.history.append(point)
        return before is None or point.key() > before.key()

    def should_stop(self) -> bool:
        best = self.best
        return best is not None and sum(point.step > best.step for point in self.history) >= self.patience

    def as_list(self) -> list[dict]:
        return [asdict(point) for point in self.history]


def greedy_answers(model, tokenizer, tasks: Sequence[CodeTask], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """The policy's greedy answer to each task's chat prompt, decoded in left-padded batches."""
    import torch

    answers: list[str] = []
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        for start in range(0, len(tasks), batch_size):
            texts = [tokenizer.apply_chat_template(task.prompt(), tokenize=False, add_generation_prompt=True)
                     for task in tasks[start:start + batch_size]]
            encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            with torch.no_grad():
                output = model.generate(**encoded, do_sample=False, max_new_tokens=max_new_tokens,
                                        pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return answers


def score_answers(tasks: Sequence[CodeTask], answers: Sequence[str], verify: Verify, grounding: GroundingConfig,
                  step: int) -> ValidationPoint:
    items = [reply_item(answer, task.kind, task.tests, task.setup, task.sat) for task, answer in zip(tasks, answers)]
    rewards = score_programs(items, verify, GroundingConfig(**{**grounding.as_dict(), "discriminator_weight": 0.0}))
    solved = sum(r.tests > 0 and r.passed == r.tests for r in rewards)
    count = max(len(rewards), 1)
    return ValidationPoint(step, round(solved / count, 4), round(sum(r.total for r in rewards) / count, 4),
                           solved, len(rewards))


def validation_update(point: ValidationPoint) -> dict:
    """A validation as a point of the run's curve (no loss: it is not a training step)."""
    return {"step": point.step, "validation/pass_rate": point.pass_rate, "validation/reward": point.reward}


def trainable_state(model) -> dict:
    return {name: param.detach().to("cpu", copy=True) for name, param in model.named_parameters() if param.requires_grad}


def _write_atomically(path: Path, write) -> None:
    staging = path.with_name(path.name + ".partial")
    write(staging)
    os.replace(staging, path)


def validation_callback(root: Path, tasks: Sequence[CodeTask], verify: Verify, grounding: GroundingConfig,
                        every: int, patience: int, max_new_tokens: int, report, cancel=None, resumed_at: int = 0,
                        answer=None):
    """A TrainerCallback: validates at the start, every `every` steps and at the end, saves each new
    best's trainable weights (`best-<step>.pt`), stops training when patience runs out. `report`
    is told each point; `restore_best(model)` then puts the best weights back. `answer(model,
    tokenizer, tasks, max_new_tokens, step)` gives the greedy answers (default: transformers'
    `generate`; the llama.cpp sampler's copy of the policy where a round samples with it).

    A round resumed from the checkpoint of step `resumed_at` forgets the validations after it (that
    policy is gone) and keeps the weights of the best one before it: a best's file is removed only
    once a later best is sealed in a checkpoint, so no resume point can need it again."""
    import torch
    from transformers import TrainerCallback

    answering = answer or (lambda model, tokenizer, tasks, max_new_tokens, step:
                           greedy_answers(model, tokenizer, tasks, max_new_tokens))
    history_path = root / HISTORY_FILE
    saved = json.loads(history_path.read_text()) if history_path.is_file() else []
    saved = [point for point in saved if point["step"] <= resumed_at]
    for stale in _best_files(root):
        if stale[0] > resumed_at:
            stale[1].unlink()

    class ValidationCallback(TrainerCallback):
        def __init__(self):
            self.stopping = EarlyStopping(patience, saved)
            self.stopped_early = False

        def _validate(self, model, tokenizer, step: int):
            if any(point.step == step for point in self.stopping.history):
                return  # a resumed round redoes no validation it already has
            answers = answering(model, tokenizer, tasks, max_new_tokens, step)
            point = score_answers(tasks, answers, verify, grounding, step)
            if self.stopping.observe(point):
                state = trainable_state(model)
                _write_atomically(root / f"best-{step}.pt", lambda path: torch.save(state, path))
            _write_atomically(history_path, lambda path: path.write_text(json.dumps(self.stopping.as_list())))
            report(point)

        def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
            if state.global_step == 0:
                self._validate(model, processing_class, 0)

        def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if control.should_training_stop and cancel is not None and cancel.cancelled:
                return control
            if state.global_step % every == 0:
                self._validate(model, processing_class, state.global_step)
                if self.stopping.should_stop():
                    self.stopped_early = True
                    control.should_training_stop = True
            return control

        def on_save(self, args, state, control, **kwargs):
            # Called after the checkpoint of this step is sealed (this callback comes after the
            # round's own): a resume starts here or later, so bests before this one's are not needed.
            sealed = EarlyStopping(patience, [asdict(p) for p in self.stopping.history
                                              if p.step <= state.global_step]).best
            for step, path in _best_files(root):
                if sealed is not None and step < sealed.step:
                    path.unlink()

        def on_train_end(self, args, state, control, model=None, processing_class=None, **kwargs):
            if cancel is None or not cancel.cancelled:  # the last policy is a candidate too
                self._validate(model, processing_class, state.global_step)

        def restore_best(self, model) -> int | None:
            """Load the best point's weights into `model`; its step (None if never validated)."""
            best = self.stopping.best
            if best is None:
                return None
            weights = torch.load(root / f"best-{best.step}.pt", map_location="cpu")
            current = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in weights.items():
                    current[name].copy_(value.to(current[name].device, current[name].dtype))
            return best.step

    return ValidationCallback()


def _best_files(root: Path) -> list[tuple[int, Path]]:
    return sorted((int(path.stem.split("-")[1]), path) for path in root.glob("best-*.pt"))
