"""Prompt text to token ids, the same for every backend: raw text for completion prompts, the
tokenizer's chat template (with the assistant's turn opened) for chat messages."""
from __future__ import annotations

from engine.lm.generation import Prompt


def encode_prompt(tokenizer, prompt: Prompt) -> list[int]:
    if isinstance(prompt, str):
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]
    encoded = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    return list(encoded["input_ids"] if hasattr(encoded, "keys") else encoded)


def chat_text(tokenizer, messages: list[dict]) -> str:
    """Chat messages as the text the model sees, the assistant's turn opened (so a caller can
    begin the answer itself)."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def token_aligned(tokenizer, text: str, continuation: str = "return") -> str:
    """`text` cut back to the last token boundary it would have if `continuation` followed.

    A prompt that ends in whitespace the tokenizer writes as part of the next word puts a model
    off the text it learned: BPE tokenizers write "\\n    return" as "\\n   " + " return", so after
    a prompt ending "\\n    " a model writes " return", one space too many, and a two-line body no
    longer parses. The characters cut off are the model's to write. Unchanged without offsets."""
    try:
        offsets = tokenizer(text + continuation, add_special_tokens=False,
                            return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, KeyError, TypeError, ValueError):
        return text  # a slow tokenizer: no offsets
    ends = [end for _, end in offsets if end <= len(text)]
    return text[:max(ends)] if ends else text


MIN_SHARED_PREFIX = 16  # tokens; a shorter common prefix is prefilled with each prompt (sharing saves less)


def shared_prefix_length(prompts: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving each at least one token of its own (whose logits
    start its generation)."""
    shortest = min(len(p) for p in prompts)
    length = 0
    while length < shortest - 1 and all(p[length] == prompts[0][length] for p in prompts):
        length += 1
    return length
