"""Reasoning distillation (the `distill` training method): the student learns the teacher's kept
traces — a task prompt, then reasoning and code — with token cross-entropy on the answer plus the
structure-aware term of structure_loss.py, weighted by `structure_weight` (0: cross-entropy only,
the ablation's baseline).

Same shape as SFT (sft.py), whose machinery it uses: full or LoRA, CPU or CUDA, packed blocks, a
fixed seed, checkpoints sealed and resumed, progress (loss and its two parts) through a callback,
cancellation between steps, a plain checkpoint (LoRA merged) with its served GGUF copy."""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.lm.generation import CancelToken
from engine.training.grounding import Verify
from engine.training.packing import IGNORE, BlockDataset, TrainingText, cut_blocks
from engine.training.sft import Progress, SFTConfig, SFTResult, TrainingError, train_blocks
from engine.training.structure_loss import structure_aware_loss, token_weights
from engine.training.tasks import CodeTask

REPORTED = ("ce", "structure")
_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class DistillConfig(SFTConfig):
    KIND = "distillation settings"

    structure_weight: float = 0.5  # λ in L = CE + λ·S (structure_loss.py)

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.structure_weight <= 10:
            from engine.config import ConfigError

            raise ConfigError({"structure_weight": "structure_weight must be between 0 and 10"})


def encode_example(example: TrainingText, tokenizer) -> dict:
    """{input_ids, labels, structure} for one chat example: labels only on the answer (the prompt
    is not trained on), structure = s_t of each token (0 outside the answer's last code block)."""
    messages = list(example.messages)
    if len(messages) < 2 or messages[-1].get("role") != "assistant":
        raise TrainingError(f"{example.source or 'an example'}: a distillation example is a chat ending in "
                            "the assistant's answer")
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    prefix = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    if not text.startswith(prefix):
        prefix = text[:text.rfind(messages[-1]["content"])]
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    answer = messages[-1]["content"]
    blocks = list(_CODE_BLOCK.finditer(answer))
    answer_start = text.rfind(answer)
    if blocks and answer_start >= 0:
        code = blocks[-1].group(1)
        weights = token_weights(offsets, answer_start + blocks[-1].start(1), code)
    else:
        weights = [0.0] * len(ids)
    labels = [token if start >= len(prefix) else IGNORE for token, (start, _) in zip(ids, offsets)]
    return {"input_ids": ids, "labels": labels, "structure": weights}


def pack_weighted(examples: Sequence[TrainingText], tokenizer, block_size: int, seed: int = 0) -> list[dict]:
    """As packing.pack, with the prompt masked out of the labels and each token's s_t carried along."""
    eos = tokenizer.eos_token_id
    order = list(examples)
    random.Random(seed).shuffle(order)
    columns = {"input_ids": [], "labels": [], "structure": []}
    for example in order:
        encoded = encode_example(example, tokenizer)
        columns["input_ids"] += encoded["input_ids"] + [eos]
        columns["labels"] += encoded["labels"] + [eos]
        columns["structure"] += encoded["structure"] + [0.0]
    return cut_blocks(columns, tokenizer, block_size)


def _trainer_class():
    from transformers import Trainer

    class StructureTrainer(Trainer):
        """The Trainer with L = CE + λ·S as its loss; logs CE and S beside the loss."""

        structure_weight = 0.0
        loss_is_scaled_for_ga = False  # the loss is a micro-batch mean: the Trainer divides it

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._parts: list[tuple[float, float]] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs = dict(inputs)
            weights, labels = inputs.pop("structure"), inputs.pop("labels")
            outputs = model(**inputs)
            loss, ce, structure = structure_aware_loss(outputs.logits, labels, weights, self.structure_weight)
            self._parts.append((float(ce), float(structure)))
            return (loss, outputs) if return_outputs else loss

        def log(self, logs, *args, **kwargs):
            if "loss" in logs and self._parts:
                logs["ce"] = sum(p[0] for p in self._parts) / len(self._parts)
                logs["structure"] = sum(p[1] for p in self._parts) / len(self._parts)
                self._parts.clear()
            super().log(logs, *args, **kwargs)

    return StructureTrainer


def train_distill(base: str, examples: Sequence[TrainingText], out_dir: str | Path, config: DistillConfig,
                  progress: Progress | None = None, cancel: CancelToken | None = None,
                  resume: bool = True, validation: Sequence[CodeTask] = (), verify: Verify | None = None) -> SFTResult:
    """Distil the kept traces (`examples`, chat pairs) into `base`; the model lands in `<out_dir>/model`.
    Validation and early stopping as for SFT (`train_sft`)."""
    if not examples:
        raise TrainingError("no traces to learn from: write and keep some teacher traces first")

    def blocks(tokenizer):
        if not getattr(tokenizer, "is_fast", False):
            raise TrainingError("distillation needs a fast tokenizer (token offsets place the structural weights)")
        return BlockDataset(pack_weighted(examples, tokenizer, config.block_size, config.seed)), 0

    trainer = _trainer_class()
    trainer.structure_weight = config.structure_weight
    return train_blocks(base, examples, out_dir, config, blocks, progress, cancel, resume, trainer, REPORTED,
                        validation, verify)
