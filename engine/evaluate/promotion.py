"""Whether a newly trained model replaces the active one: only if it is not worse on the held-out
metric by more than a margin, nor worse on the code benchmark (the forgetting check, on a validation set) by
more than its own margin, and each comparison is like for like (same named set, same sampling
settings, same prompt), since a pass@10 on 50 puzzles says nothing against one on 228. A version
trained from a trained version is also held to the lineage's first version (`origin`): otherwise
rounds that each lose a little within the margin drift without limit (two rounds took MBPP
validation from 5.6% to 3.3% with a 2.0-point margin, each round within it)."""
from __future__ import annotations

from dataclasses import dataclass

COMPARED_SETTINGS = ("samples", "temperature", "top_k", "top_p", "max_tokens", "style", "subset", "seed", "split")


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class Origin:
    """The lineage's first version as the gate measured it: its name, P3 result and code result."""
    name: str
    p3: dict
    code: dict | None = None


def comparable(before: dict, after: dict) -> str | None:
    """Why two P3 evaluations cannot be compared, or None if they can."""
    if before.get("dataset") != after.get("dataset"):
        return f"evaluated on different sets ({before.get('dataset')} vs {after.get('dataset')})"
    for name in COMPARED_SETTINGS:
        if (before.get("config") or {}).get(name) != (after.get("config") or {}).get(name):
            return f"evaluated with different {name}"
    return None


def code_comparable(before: dict, after: dict) -> str | None:
    """Why two code-benchmark results cannot be compared, or None if they can."""
    for name in ("benchmark", "problems", "prompt"):
        if before.get(name) != after.get(name):
            return f"{after.get('title', 'HumanEval')} evaluated with different {name} " \
                   f"({before.get(name)} vs {after.get(name)})"
    return None


def decide(before: dict, after: dict, k: int = 10, margin: float = 0.0, code_before: dict | None = None,
           code_after: dict | None = None, code_margin: float = 0.02, origin: Origin | None = None) -> Decision:
    """`before`/`after`: P3EvalResult.as_dict() of the active and the new model; `margin` in
    absolute pass@k (0.01 = one point). With `code_before`/`code_after` (dicts with pass_at_1,
    problems, prompt and the benchmark's name and title) the new model must also keep the code
    benchmark's pass@1 within `code_margin`. With `origin` (when the active model is itself a
    trained version) the same two checks are made against the lineage's first version too."""
    decision = _decide_pair(before, after, k, margin, code_before, code_after, code_margin)
    if not decision.promote or origin is None:
        return decision
    drift = _decide_pair(origin.p3, after, k, margin, origin.code, code_after, code_margin)
    against = f"against {origin.name} (the lineage's first version)"
    if not drift.promote:
        verdict, why = drift.reason.split(": ", 1)
        return Decision(False, f"{verdict} {against}: {why.replace('the active model', origin.name)}")
    return Decision(True, f"{decision.reason}; {against}: {drift.reason.removeprefix('promoted: ')}")


def _decide_pair(before: dict, after: dict, k: int, margin: float, code_before: dict | None,
                 code_after: dict | None, code_margin: float) -> Decision:
    decision = _decide_p3(before, after, k, margin)
    if not decision.promote or not code_before or not code_after:
        return decision
    problem = code_comparable(code_before, code_after)
    if problem:
        return Decision(False, f"not promoted: {problem}")
    old, new = code_before["pass_at_1"], code_after["pass_at_1"]
    code = f"{code_after.get('title', 'HumanEval')} pass@1 {old:.1%} → {new:.1%}"
    if new + 1e-12 < old - code_margin:
        return Decision(False, f"rejected: {code}, lost more than {code_margin:.1%} on the code benchmark "
                               f"({decision.reason.removeprefix('promoted: ')})")
    return Decision(True, f"{decision.reason}; {code} (allowed drop {code_margin:.1%})")


def _decide_p3(before: dict, after: dict, k: int, margin: float) -> Decision:
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
