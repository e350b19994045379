"""Before and after, puzzle by puzzle: is a change in pass@k more than the draw?

Two evaluations on the same puzzles are paired. With a small model a few puzzles decide the
score, and a fresh draw of samples moves it by as much as a round of training does, so the bare
difference misleads. This reports which puzzles were gained and lost, the exact two-sided sign
test on those (McNemar's test), and a paired bootstrap interval of the pass@k difference that
accounts for both sources of chance: which puzzles were drawn (puzzles are resampled) and which
of each puzzle's n attempts passed (each side's count is redrawn from its own pass rate).
"""
from __future__ import annotations

from math import comb

import numpy as np

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
    means = np.sort(_bootstrap_means([old[name] for name in names], [new[name] for name in names], k, draws, seed))
    low, high = float(means[int(0.025 * (draws - 1))]), float(means[int(0.975 * (draws - 1))])
    return {"k": k, "puzzles": len(names), "difference": sum(diffs) / len(diffs), "interval": [low, high],
            "gained": gained, "lost": lost, "kept": len(solved_before & solved_after),
            "sign_test_p": sign_test_p(len(gained), len(lost))}


def _bootstrap_means(before: list[tuple[int, int]], after: list[tuple[int, int]], k: int, draws: int,
                     seed: int) -> np.ndarray:
    """Mean pass@k differences of `draws` resamples: puzzles drawn with replacement, and each drawn
    puzzle's passed count redrawn on both sides as Binomial(n, c / n), its n attempts resampled."""
    rng = np.random.default_rng(seed)
    n_before, c_before = (np.array(column) for column in zip(*before))
    n_after, c_after = (np.array(column) for column in zip(*after))
    width = int(max(n_before.max(), n_after.max())) + 1
    table = np.zeros((width, width))  # table[n, c] = pass@k(n, c, k)
    for n in set(n_before.tolist()) | set(n_after.tolist()):
        table[n, :n + 1] = [pass_at_k(n, c, k) for c in range(n + 1)]
    picked = rng.integers(0, len(before), size=(draws, len(before)))
    redrawn_before = rng.binomial(n_before[picked], c_before[picked] / n_before[picked])
    redrawn_after = rng.binomial(n_after[picked], c_after[picked] / n_after[picked])
    differences = table[n_after[picked], redrawn_after] - table[n_before[picked], redrawn_before]
    return differences.mean(axis=1)


def compare_scores(before: dict[str, float], after: dict[str, float], draws: int = BOOTSTRAP_DRAWS,
                   seed: int = 0) -> dict:
    """A score each task has on both sides (a syntax or data-flow match, its samples' mean): the mean
    difference over the tasks both have, the tasks that went up and down, and a paired bootstrap
    95% interval with tasks resampled (a task's own samples are not redrawn: exact for greedy n = 1,
    a little narrow for n > 1). Raises ValueError when no task has the score on both sides."""
    names = sorted(before.keys() & after.keys())
    if not names:
        raise ValueError("the two evaluations share no task with this score")
    diffs = np.array([after[name] - before[name] for name in names])
    picked = np.random.default_rng(seed).integers(0, len(names), size=(draws, len(names)))
    means = np.sort(diffs[picked].mean(axis=1))
    return {"tasks": len(names), "before": float(np.mean([before[n] for n in names])),
            "after": float(np.mean([after[n] for n in names])), "difference": float(diffs.mean()),
            "interval": [float(means[int(0.025 * (draws - 1))]), float(means[int(0.975 * (draws - 1))])],
            "up": int((diffs > 0).sum()), "down": int((diffs < 0).sum())}


def score_summary(name: str, comparison: dict) -> str:
    """One line: a per-task score before → after, the change and its 95% interval."""
    low, high = comparison["interval"]
    return (f"{name} {comparison['before']:.3f} -> {comparison['after']:.3f}: {comparison['difference']:+.3f} "
            f"(95% CI {low:+.3f} to {high:+.3f}) over {comparison['tasks']} tasks, {comparison['up']} up, "
            f"{comparison['down']} down")


def summary(comparison: dict, unit: str = "puzzles") -> str:
    """One line for a report: the change, its 95% interval, and the puzzles (or `unit`) behind it."""
    low, high = comparison["interval"]
    return (f"pass@{comparison['k']} {100 * comparison['difference']:+.1f} pts "
            f"(95% CI {100 * low:+.1f} to {100 * high:+.1f}); {unit} gained {len(comparison['gained'])}, "
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
