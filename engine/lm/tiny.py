"""A tiny randomly initialised causal LM for fast tests and dry runs.

It uses the default model's real tokenizer and is saved as an ordinary local checkpoint, so
everything that loads models (this package, training, the workers) treats it like a real one.

    python -m engine.lm.tiny var/tiny-model
"""
from __future__ import annotations

import sys
from pathlib import Path

from engine.lm.model_source import resolve_model_source


def build_tiny_model(folder: str | Path, seed: int = 0, layers: int = 2, hidden: int = 64) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    source = resolve_model_source("")
    tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "var/tiny-model"))
