"""Pick the backend for a model: llama.cpp for GGUF files on a CPU when it is installed (fast
single-stream), the `transformers` backend otherwise (checkpoints, GPUs, batched sampling)."""
from __future__ import annotations

from engine.lm import llama_cpp_backend
from engine.lm.model_source import resolve_model_source

BACKENDS = ("auto", "transformers", "llama.cpp")


def choose_backend(spec: str = "", backend: str = "auto", quantize: str = "none") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        if backend == "llama.cpp" and not llama_cpp_backend.available():
            raise ValueError("the llama.cpp backend needs llama-cpp-python: pip install -r requirements-llama.txt")
        return backend
    import torch

    source = resolve_model_source(spec)
    if source.gguf_file and quantize == "none" and not torch.cuda.is_available() and llama_cpp_backend.available():
        return "llama.cpp"
    return "transformers"


def load_model(spec: str = "", backend: str = "auto", quantize: str = "none"):
    """A loaded LanguageModel for `spec` (HF id, local checkpoint, GGUF file, "" = packaged default)."""
    chosen = choose_backend(spec, backend, quantize)
    if chosen == "llama.cpp":
        return llama_cpp_backend.LlamaCppModel.load(spec)
    from engine.lm.transformers_backend import TransformersModel

    return TransformersModel.load(spec, quantize=quantize)
