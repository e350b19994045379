"""Whether a newly trained model replaces the active one: only if it is not worse on the held-out
metric by more than a margin, and the comparison is like for like (same named set, same sampling
settings), since a pass@10 on 50 puzzles says nothing against one on 228."""
from __future__ import annotations

from dataclasses import dataclass

COMPARED_SETTINGS = ("samples", "temperature", "max_tokens", "style", "subset", "seed")


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def comparable(before: dict, after: dict) -> str | None:
    """Why two P3 evaluations cannot be compared, or None if they can."""
    if before.get("dataset") != after.get("dataset"):
        return f"evaluated on different sets ({before.get('dataset')} vs {after.get('dataset')})"
    for name in COMPARED_SETTINGS:
        if (before.get("config") or {}).get(name) != (after.get("config") or {}).get(name):
            return f"evaluated with different {name}"
    return None


def decide(before: dict, after: dict, k: int = 10, margin: float = 0.0) -> Decision:
    """`before`/`after`: P3EvalResult.as_dict() of the active and the new model; `margin` in
    absolute pass@k (0.01 = one point)."""
    problem = comparable(before, after)
    if problem:
        return Decision(False, f"not promoted: {problem}")
    key = str(k)
    if key not in before.get("pass_at_k", {}) or key not in after.get("pass_at_k", {}):
        return Decision(False, f"not promoted: pass@{k} needs at least {k} samples per puzzle")
    old, new = before["pass_at_k"][key], after["pass_at_k"][key]
    verdict = f"pass@{k} {old:.1%} → {new:.1%} on {after.get('dataset')}"
    if new + 1e-12 >= old - margin:
        return Decision(True, f"promoted: {verdict} (allowed drop {margin:.1%})")
    return Decision(False, f"rejected: {verdict}, worse than the active model by more than {margin:.1%}")
