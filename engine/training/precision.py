"""The arithmetic a training step runs in: bf16 mixed precision (fp32 master weights, matrix
products in bf16 under autocast) where the hardware multiplies bf16 natively, fp32 elsewhere.

Why not always one or the other: on a CPU without native bf16 (AVX2, or AVX-512 without its BF16
extension) autocast emulates bf16 and trained several times slower than fp32; on a CPU with
AVX512-BF16 or AMX, and on CUDA, it is the faster one (benchmarks/training_precision.py measures
both on the host it runs on, with the loss each reaches)."""
from __future__ import annotations

PRECISIONS = ("auto", "fp32", "bf16")


def native_bf16(device: str) -> bool:
    """Whether `device` ("cpu" or "cuda") multiplies bf16 matrices in hardware."""
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    return any(bool(getattr(cpu, probe, lambda: False)())
               for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def training_precision(choice: str, device: str) -> str:
    """"bf16" or "fp32": `choice` as asked, or for "auto" the faster of the two on `device`."""
    if choice not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)} (got {choice!r})")
    if choice != "auto":
        return choice
    return "bf16" if native_bf16(device) else "fp32"
