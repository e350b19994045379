"""Whether a newly trained model replaces the active one: only if it is better on the held-out
metric (`require_gain`; or, for callers that ask, not worse by more than a margin), not worse on the
code benchmark (the forgetting check, on a validation set) by more than its own margin, and each
comparison is like for like (same named set, same sampling settings, same prompt), since a pass@10
on 50 puzzles says nothing against one on 228. Without the gain rule a round that changes nothing
is promoted: two rounds on one verified pair each tied at pass@10 and were promoted while pass@1
halved. A version trained from a trained version is also held to the lineage's first version
(`origin`), not worse than it: otherwise rounds that each lose a little within the margin drift
without limit (two rounds took MBPP validation from 5.6% to 3.3% with a 2.0-point margin). The code
check may be given in more than one form (the completion prompt and the chat prompt): each must
hold, since a round can keep one and lose the other (the references control kept MBPP validation in
the 3-shot form, 5 → 4 of 90, and lost it in the chat form, 9 → 1)."""
from __future__ import annotations

from dataclasses import dataclass

CodeResults = dict | list[dict] | None  # one code check's result, or several (one per prompt)

COMPARED_SETTINGS = ("samples", "temperature", "top_k", "top_p", "max_tokens", "style", "subset", "seed", "split")


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


@dataclass(frozen=True)
class Origin:
    """The lineage's first version as the gate measured it: its name, P3 result and code result(s)."""
    name: str
    p3: dict
    code: CodeResults = None


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


def decide(before: dict, after: dict, k: int = 10, margin: float = 0.0, code_before: CodeResults = None,
           code_after: CodeResults = None, code_margin: float = 0.02, origin: Origin | None = None,
           require_gain: bool = False) -> Decision:
    """`before`/`after`: P3EvalResult.as_dict() of the active and the new model. With
    `require_gain` the new model must beat the active one: a higher pass@k, or the same pass@k and
    a higher pass@1; otherwise it may drop by up to `margin` in absolute pass@k (0.01 = one point).
    With `code_before`/`code_after` (dicts with pass_at_1, problems, prompt and the benchmark's name
    and title, or a list of them, one per prompt, paired in order) it must also keep each code
    check's pass@1 within `code_margin`. With `origin`
    (when the active model is itself a trained version) it must be no worse than the lineage's
    first version too, by the same margins."""
    decision = _decide_pair(before, after, k, margin, code_before, code_after, code_margin, require_gain)
    if not decision.promote or origin is None:
        return decision
    drift = _decide_pair(origin.p3, after, k, margin, origin.code, code_after, code_margin)
    against = f"against {origin.name} (the lineage's first version)"
    if not drift.promote:
        verdict, why = drift.reason.split(": ", 1)
        return Decision(False, f"{verdict} {against}: {why.replace('the active model', origin.name)}")
    return Decision(True, f"{decision.reason}; {against}: {drift.reason.removeprefix('promoted: ')}")


def _decide_pair(before: dict, after: dict, k: int, margin: float, code_before: CodeResults,
                 code_after: CodeResults, code_margin: float, require_gain: bool = False) -> Decision:
    decision = _decide_p3(before, after, k, margin, require_gain)
    olds, news = _as_list(code_before), _as_list(code_after)
    if not decision.promote or not olds or not news:
        return decision
    if len(olds) != len(news):
        return Decision(False, f"not promoted: the code check was run in {len(olds)} form(s) before and "
                               f"{len(news)} after")
    verdicts = []
    for code_old, code_new in zip(olds, news):
        problem = code_comparable(code_old, code_new)
        if problem:
            return Decision(False, f"not promoted: {problem}")
        old, new = code_old["pass_at_1"], code_new["pass_at_1"]
        form = f" ({code_new['prompt']} prompt)" if len(news) > 1 else ""
        code = f"{code_new.get('title', 'HumanEval')}{form} pass@1 {old:.1%} → {new:.1%}"
        if new + 1e-12 < old - code_margin:
            return Decision(False, f"rejected: {code}, lost more than {code_margin:.1%} on the code benchmark "
                                   f"({decision.reason.removeprefix('promoted: ')})")
        verdicts.append(code)
    return Decision(True, f"{decision.reason}; {'; '.join(verdicts)} (allowed drop {code_margin:.1%})")


def _as_list(results: CodeResults) -> list[dict]:
    if not results:
        return []
    return [results] if isinstance(results, dict) else [result for result in results if result]


def _decide_p3(before: dict, after: dict, k: int, margin: float, require_gain: bool = False) -> Decision:
    problem = comparable(before, after)
    if problem:
        return Decision(False, f"not promoted: {problem}")
    key = str(k)
    if key not in before.get("pass_at_k", {}) or key not in after.get("pass_at_k", {}):
        return Decision(False, f"not promoted: pass@{k} needs at least {k} samples per puzzle")
    old, new = before["pass_at_k"][key], after["pass_at_k"][key]
    verdict = f"pass@{k} {old:.1%} → {new:.1%} on {after.get('dataset')}"
    if require_gain:
        return _decide_gain(before, after, k, old, new, verdict)
    if new + 1e-12 >= old - margin:
        return Decision(True, f"promoted: {verdict} (allowed drop {margin:.1%})")
    return Decision(False, f"rejected: {verdict}, worse than the active model by more than {margin:.1%}")


def _decide_gain(before: dict, after: dict, k: int, old: float, new: float, verdict: str) -> Decision:
    """Better than the active model: a higher pass@k, or at the same pass@k a higher pass@1 (the
    finer measure: n samples per puzzle instead of one bit per puzzle)."""
    if new > old + 1e-12:
        return Decision(True, f"promoted: {verdict} (better)")
    first_old, first_new = before["pass_at_k"].get("1"), after["pass_at_k"].get("1")
    if k != 1 and new >= old - 1e-12 and None not in (first_old, first_new):
        verdict += f", pass@1 {first_old:.1%} → {first_new:.1%}"
        if first_new > first_old + 1e-12:
            return Decision(True, f"promoted: {verdict} (better on pass@1 at the same pass@{k})")
    return Decision(False, f"rejected: {verdict}, not better than the active model (a round is promoted only "
                           "on a gain)")
