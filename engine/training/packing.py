"""Training texts → fixed-length token blocks, as the paper's run_clm recipe does: every text is
tokenized, followed by the end-of-text token, the stream is concatenated and cut into blocks of
`block_size` (the tail that does not fill a block is padded and masked out of the loss, so no
verified example is silently dropped). Loss is on every real token."""
from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

IGNORE = -100  # label that the loss skips


@dataclass(frozen=True)
class TrainingText:
    """One example: `text` in the P3 f/g/assert format, or `messages` in the chat format."""
    text: str = ""
    messages: tuple[dict, ...] = ()
    source: str = ""  # where it came from (e.g. "attempt:12", "message:40"), for the dataset snapshot

    def render(self, tokenizer) -> str:
        if self.messages:
            return tokenizer.apply_chat_template(list(self.messages), tokenize=False)
        return self.text


def snapshot_hash(examples: Sequence[TrainingText]) -> str:
    """A content hash of the exact data a round trains on (order-insensitive)."""
    digest = hashlib.sha256()
    for line in sorted(json.dumps({"text": e.text, "messages": list(e.messages)}, sort_keys=True)
                       for e in examples):
        digest.update(line.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def drop_long(examples: Sequence[TrainingText], tokenizer, max_tokens: int) -> tuple[list[TrainingText], int]:
    """The examples of at most `max_tokens` tokens (all when 0), and how many were left out: a few
    puzzles with huge literals would otherwise take most of a small round's compute."""
    if not max_tokens:
        return list(examples), 0
    kept = [e for e in examples
            if len(tokenizer(e.render(tokenizer), add_special_tokens=False)["input_ids"]) < max_tokens]
    return kept, len(examples) - len(kept)


def pack(examples: Sequence[TrainingText], tokenizer, block_size: int, seed: int = 0) -> list[dict]:
    """Blocks of {"input_ids", "attention_mask", "labels"}; examples shuffled with `seed` first."""
    if block_size < 8:
        raise ValueError("block_size must be at least 8 tokens")
    if not examples:
        raise ValueError("no training examples")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no end-of-text token to separate packed examples")
    order = list(examples)
    random.Random(seed).shuffle(order)
    stream: list[int] = []
    for example in order:
        stream += tokenizer(example.render(tokenizer), add_special_tokens=False)["input_ids"] + [eos]
    return cut_blocks({"input_ids": stream, "labels": stream}, tokenizer, block_size)


FILL = {"labels": IGNORE, "structure": 0.0}  # what pads a column past the real tokens (input_ids: the pad token)
FLOAT_COLUMNS = ("structure",)  # per-token weights (engine/training/distill.py); the rest are token ids


def cut_blocks(columns: dict[str, list], tokenizer, block_size: int) -> list[dict]:
    """Equal-length token columns (input_ids, labels, any per-token weights), cut into blocks of
    `block_size` with an attention mask; the tail block is padded and masked out of the loss."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total = len(columns["input_ids"])
    blocks = []
    for start in range(0, total, block_size):
        real = min(block_size, total - start)
        padding = block_size - real
        block = {name: values[start:start + real] + [FILL.get(name, pad)] * padding for name, values in columns.items()}
        block["attention_mask"] = [1] * real + [0] * padding
        blocks.append(block)
    return blocks


class BlockDataset:
    """A list of packed blocks as the torch Dataset the Trainer reads (tensors made per item)."""

    def __init__(self, blocks: list[dict]):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict:
        import torch

        return {key: torch.tensor(value, dtype=torch.float32 if key in FLOAT_COLUMNS else torch.long)
                for key, value in self.blocks[index].items()}

    @property
    def tokens(self) -> int:
        return sum(sum(block["attention_mask"]) for block in self.blocks)
