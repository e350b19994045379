"""The unbiased pass@k estimator of Chen et al. (2021): with n samples of a problem of which c are
correct, pass@k = 1 - C(n-c, k) / C(n, k), the chance that k of the n drawn without replacement
contain a correct one. Averaged over problems it is what papers report as pass@k."""
from __future__ import annotations

from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """The estimate for one problem. Computed as a product (no huge binomials): 1 when every
    draw of k must hit a correct sample (n - c < k)."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (got n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem (got n={n})")
    if n - c < k:
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def mean_pass_at_k(results: Iterable[tuple[int, int]], k: int) -> float:
    """pass@k over problems, each given as (n samples, c correct)."""
    results = list(results)
    if not results:
        raise ValueError("no problems to average over")
    return sum(pass_at_k(n, c, k) for n, c in results) / len(results)


def report_ks(n: int, ks: Iterable[int] = (1, 10, 100)) -> list[int]:
    """The standard ks that n samples per problem can estimate."""
    return [k for k in ks if 1 <= k <= n]


def pass_at_k_interval(results: Iterable[tuple[int, int]], k: int, draws: int = 1000,
                       seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of pass@k: problems drawn with replacement and each drawn problem's
    passed count redrawn as Binomial(n, c / n), so both the choice of problems and the draw of the
    n samples show (with greedy n = 1 only the first moves)."""
    import numpy as np

    results = list(results)
    if not results:
        raise ValueError("no problems to average over")
    n, c = (np.array(column) for column in zip(*results))
    table = np.zeros((int(n.max()) + 1, int(n.max()) + 1))
    for size in set(n.tolist()):
        table[size, :size + 1] = [pass_at_k(size, hits, k) for hits in range(size + 1)]
    rng = np.random.default_rng(seed)
    picked = rng.integers(0, len(results), size=(draws, len(results)))
    redrawn = rng.binomial(n[picked], c[picked] / n[picked])
    means = np.sort(table[n[picked], redrawn].mean(axis=1))
    return float(means[int(0.025 * (draws - 1))]), float(means[int(0.975 * (draws - 1))])
