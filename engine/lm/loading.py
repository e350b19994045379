"""Pick the backend for a model: llama.cpp on a CPU when it is installed and the model is a GGUF
file or a trained checkpoint with a checked GGUF copy (fast, at the copy's f16), the `transformers`
backend otherwise (checkpoints without a copy, GPUs, training); and which full-precision copy
batches of samples are drawn from (`batch_weights`)."""
from __future__ import annotations

from engine.lm import llama_cpp_backend
from engine.lm.model_source import resolve_model_source
from engine.lm.weight_types import gguf_weight_type

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
    if source.llama_file and quantize == "none" and not torch.cuda.is_available() and llama_cpp_backend.available():
        return "llama.cpp"
    return "transformers"


def load_model(spec: str = "", backend: str = "auto", quantize: str = "none"):
    """A loaded LanguageModel for `spec` (HF id, local checkpoint, GGUF file, "" = packaged default)."""
    chosen = choose_backend(spec, backend, quantize)
    if chosen == "llama.cpp":
        return llama_cpp_backend.LlamaCppModel.load(spec)
    from engine.lm.transformers_backend import TransformersModel

    return TransformersModel.load(spec, quantize=quantize)


FULL_PRECISION = {"f16", "f32", "bf16"}


BATCH_WEIGHTS = ("auto", "f16", "bf16")


def load_full_precision(spec: str = "", backend: str = "auto", copies_dir: str | None = None, weights: str = "f16"):
    """A model for evaluation, never quantised: on llama.cpp a quantised GGUF (the packaged Q4
    models) is served through its checked `weights` copy (f16: the one made beside the packaged
    models at install, else made once in `copies_dir`), a trained version through its own `weights`
    copy where its seal made one, else its f16 copy; on transformers GGUF weights are dequantised
    as they load (fp32 on CPU, bf16 on CUDA)."""
    chosen = choose_backend(spec, backend)
    if chosen != "llama.cpp":
        from engine.lm.transformers_backend import TransformersModel

        return TransformersModel.load(spec)
    source = resolve_model_source(spec)
    if source.gguf_file and gguf_weight_type(source.llama_file) not in FULL_PRECISION:
        from engine.lm.gguf_export import full_precision_copy
        from engine.lm.packaged_models import installed_copies

        installed = installed_copies()
        spec = str(full_precision_copy(spec, copies_dir or installed, weights, reuse=(installed,)))
    return llama_cpp_backend.LlamaCppModel.load(spec, weights=weights)


def batch_weights(requested: str = "auto") -> str:
    """The copy that writes and solves puzzles (many sequences a step, compute-bound): bf16 where
    llama.cpp was built with bf16 dot products (AVX512_BF16: 1.19-1.26x the f16 copy's generate
    stage, docs/experiments.md), else f16. Evaluations always use f16, so every figure compares."""
    if requested not in BATCH_WEIGHTS:
        raise ValueError(f"unknown batch weights {requested!r}; choose one of {', '.join(BATCH_WEIGHTS)}")
    if requested != "auto":
        return requested
    return "bf16" if llama_cpp_backend.has_bf16_kernels() else "f16"
