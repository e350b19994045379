"""Weight-space interpolation between a round's starting model and its trained model (WiSE-FT,
Wortsman et al. 2022): start + α·(trained − start).

Why: fine-tuning this small model on puzzle solutions teaches P3 and costs it its code answers
(docs/experiments.md). Interpolating the weights is the cheapest known way to trade between the
two without training again: α = 1 is the trained model, α = 0 the start, and fine-tuned models
often keep much of their gain at α ≈ 0.5 while recovering what the start could do. Any α can be
made later from a sealed version and its start, since the line through them is exact up to float
rounding (an α above 1 extrapolates).
"""
from __future__ import annotations

from pathlib import Path


def check_alpha(alpha: float) -> None:
    if not 0.0 < alpha <= 4.0:
        raise ValueError(f"interpolation must be in (0, 4] (1: the trained model as it is; got {alpha})")


def interpolate_towards(trained, start, alpha: float) -> int:
    """Move `trained`'s floating-point weights (in place) to start + α·(trained − start); returns how
    many tensors changed. Both models must have the same architecture: a missing or reshaped weight
    is an error, not something to skip silently."""
    import torch

    check_alpha(alpha)
    if alpha == 1.0:
        return 0
    start_weights = start.state_dict()
    changed, seen = 0, set()
    with torch.no_grad():
        for name, weight in trained.state_dict().items():
            if name not in start_weights:
                raise ValueError(f"the starting model has no weight {name!r}: not the same architecture")
            origin = start_weights[name]
            if origin.shape != weight.shape:
                raise ValueError(f"{name}: shape {tuple(weight.shape)} against the start's {tuple(origin.shape)}")
            # Tied weights (embeddings and lm_head) share storage: a second visit would see the
            # moved value and move it again, so each storage is moved once.
            if not weight.is_floating_point() or weight.data_ptr() in seen:
                continue
            seen.add(weight.data_ptr())
            moved = origin.to(weight.device, torch.float32).lerp(weight.float(), alpha).to(weight.dtype)
            if not torch.equal(moved, weight):
                weight.copy_(moved)
                changed += 1
    return changed


def interpolate_from_start(trained, base: str, alpha: float) -> int:
    """`interpolate_towards` with the start loaded from `base` (as training loaded it) on the
    trained model's device; the start's copy is freed afterwards."""
    from engine.training.sft import load_for_training

    if alpha == 1.0:
        return 0
    device = next(trained.parameters()).device.type
    start, _ = load_for_training(base, device, "fp32")
    try:
        return interpolate_towards(trained, start, alpha)
    finally:
        del start


def write_interpolated(base: str, model_dir: str | Path, alpha: float, out_dir: str | Path) -> dict:
    """A checkpoint at start + α·(model − start) in `out_dir`, with its checked GGUF copy where the
    start came from a GGUF (engine/lm/gguf_export.py). It is written beside `out_dir` and sealed
    into place whole (engine/training/checkpoints.py), so a process killed mid-write leaves no
    half model where a round would look for one, and the next try starts clean."""
    import shutil

    from engine.training.checkpoints import seal
    from engine.training.sft import load_for_training, write_servable

    check_alpha(alpha)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty")
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)  # debris of a write that was killed
    trained, tokenizer = load_for_training(str(model_dir), "cpu", "fp32")
    record = {"start": base, "trained": str(model_dir), "interpolation": alpha,
              "tensors_moved": interpolate_from_start(trained, base, alpha)}
    copy = write_servable(trained, tokenizer, staging, base, {"interpolation.json": record})
    seal(staging, out)  # an empty `out` (checked above) is replaced
    return {**record, "out": str(out), "served_copy": copy}
