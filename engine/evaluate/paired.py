"""Before and after, puzzle by puzzle: is a change in pass@k more than the draw?

Two evaluations on the same puzzles are paired. With a small model a few puzzles decide the
score, and a fresh draw of samples moves it by as much as a round of training does, so the bare
difference misleads. This reports which puzzles were gained and lost, the exact two-sided sign
test on those (McNemar's test), and a paired bootstrap interval of the pass@k difference.
"""
from __future__ import annotations

import random
from math import comb

from engine.evaluate.pass_at_k import pass_at_k

BOOTSTRAP_DRAWS = 2000


def sign_test_p(gained: int, lost: int) -> float:
    """Two-sided exact p of `gained` vs `lost` under "each is a coin flip" (1.0 when both are 0)."""
    n = gained + lost
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(gained, lost) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def _by_name(per_puzzle: list[dict]) -> dict[str, tuple[int, int]]:
    return {row["name"]: (int(row["n"]), int(row["c"])) for row in per_puzzle}


def compare(before: list[dict], after: list[dict], k: int = 10, draws: int = BOOTSTRAP_DRAWS,
            seed: int = 0) -> dict:
    """`before`/`after`: per-puzzle rows (`name`, `n` samples, `c` correct) of two evaluations.
    Only puzzles in both count. Raises ValueError when none are shared or k > n."""
    old, new = _by_name(before), _by_name(after)
    names = sorted(old.keys() & new.keys())
    if not names:
        raise ValueError("the two evaluations share no puzzle")
    diffs = [pass_at_k(*new[name], k) - pass_at_k(*old[name], k) for name in names]
    solved_before = {name for name in names if old[name][1] > 0}
    solved_after = {name for name in names if new[name][1] > 0}
    gained, lost = sorted(solved_after - solved_before), sorted(solved_before - solved_after)
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(draws))
    low, high = means[int(0.025 * (draws - 1))], means[int(0.975 * (draws - 1))]
    return {"k": k, "puzzles": len(names), "difference": sum(diffs) / len(diffs), "interval": [low, high],
            "gained": gained, "lost": lost, "kept": len(solved_before & solved_after),
            "sign_test_p": sign_test_p(len(gained), len(lost))}


def summary(comparison: dict) -> str:
    """One line for a report: the change, its 95% interval, and the puzzles behind it."""
    low, high = comparison["interval"]
    return (f"pass@{comparison['k']} {100 * comparison['difference']:+.1f} pts "
            f"(95% CI {100 * low:+.1f} to {100 * high:+.1f}); puzzles gained {len(comparison['gained'])}, "
            f"lost {len(comparison['lost'])}, kept {comparison['kept']}; sign test p = {comparison['sign_test_p']:.2g}")


def compare_results(before: dict, after: dict, k: int = 10) -> dict | None:
    """The comparison of two P3EvalResult dicts, or None where it cannot be made: a side missing
    its per-puzzle rows, different sets, or fewer than k samples per puzzle."""
    rows_before, rows_after = (before or {}).get("per_puzzle"), (after or {}).get("per_puzzle")
    if not rows_before or not rows_after or before.get("dataset") != after.get("dataset"):
        return None
    try:
        return compare(rows_before, rows_after, k)
    except ValueError:
        return None
