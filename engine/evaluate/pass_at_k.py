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
