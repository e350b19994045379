"""Resolve, once and on one thread, the `transformers` names this project imports.

transformers 5 exposes its names through a lazy module that is not thread-safe: while one thread
is resolving names (a model preloading in the background), another thread's
`from transformers import Trainer` can fail with "cannot import name 'Trainer'". A model worker
calls `warm()` before it starts any background thread or takes any task; afterwards every such
import finds its name already in the namespace.
"""
from __future__ import annotations

import threading

NAMES = ("AutoConfig", "AutoModelForCausalLM", "AutoTokenizer", "DynamicCache", "LlamaConfig", "LlamaForCausalLM",
         "Trainer", "TrainerCallback", "TrainingArguments")
_lock = threading.Lock()
_warm = False


def warm() -> None:
    """Import every name in NAMES; cheap after the first call (~4 s of CPU for the first)."""
    global _warm
    with _lock:
        if _warm:
            return
        import transformers

        for name in NAMES:
            getattr(transformers, name)
        _warm = True


# transformers builds a model inside process-wide state (its weights first on the meta device), so two
# threads building models at once can get each other's empty weights ("Cannot copy out of meta
# tensor"). In embedded mode the gpu and chat model workers are threads of one process.
_build_lock = threading.RLock()


def build_causal_lm(path: str, **kwargs):
    """`AutoModelForCausalLM.from_pretrained(path, **kwargs)`, one build at a time in this process."""
    from transformers import AutoModelForCausalLM

    with _build_lock:
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
