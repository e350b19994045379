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
