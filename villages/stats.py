"""Statistics: every confidence interval the testbed reports, in one place.

Percentile bootstraps (``np.random.default_rng(seed)``, so the same data always gives the
same interval) over episodes, paired episodes, clusters (training seeds) and unpaired
samples; Spearman's rank correlation with a bootstrap CI; exact (Clopper-Pearson) binomial
intervals for rates; and the one formatter of an (estimate, lo, hi) triple. Plain numpy:
every layer may use it.
"""

from __future__ import annotations

import math

import numpy as np


def bootstrap_ci(x, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """(mean, lo, hi, n) of ``x`` along axis 0, NaNs dropped (scalars) or kept out per column.

    Percentile bootstrap over the leading axis with ``np.random.default_rng(seed)``, so
    the same data always gives the same interval. ``x`` may be [n] or [n, ...] (then the
    same resamples are used for every column, e.g. a per-tick series). With one value
    the interval is that value; with none, everything is NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[~np.isnan(x)]
    n = x.shape[0]
    if n == 0:
        nan = np.full(x.shape[1:], np.nan) if x.ndim > 1 else math.nan
        return nan, nan, nan, 0
    finite = ~np.isnan(x)
    mean = np.nanmean(x, axis=0) if x.ndim > 1 else float(x.mean())
    if n == 1:
        return mean, mean, mean, 1
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)  # [n_boot, n]
    if x.ndim == 1:
        boot = w @ x / n
    else:
        flat = np.where(finite, x, 0.0).reshape(n, -1)
        cnt = w @ finite.reshape(n, -1)
        with np.errstate(invalid="ignore", divide="ignore"):
            boot = (w @ flat / cnt).reshape((n_boot,) + x.shape[1:])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(boot, [alpha, 1.0 - alpha], axis=0)
    if x.ndim == 1:
        return mean, float(lo), float(hi), n
    return mean, lo, hi, n


def paired_diff_ci(parts, base, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """(mean, lo, hi, n) of the per-episode differences ``a - base``, pooled over ``parts``.

    ``parts``: one array per policy of a group (e.g. one per training seed), each played on
    the same episodes as ``base`` (same scenario, evaluation seeds and episode count), so
    the world-to-world variation both share cancels. Percentile bootstrap over the pooled
    differences (``bootstrap_ci``). A part of another length is an error, not a guess."""
    base = np.asarray(base, dtype=np.float64)
    diffs = []
    for a in parts:
        a = np.asarray(a, dtype=np.float64)
        if a.shape != base.shape:
            raise ValueError(f"paired comparison needs the same episodes: {a.shape} vs {base.shape}")
        diffs.append(a - base)
    return bootstrap_ci(np.concatenate(diffs) if diffs else np.array([]), level, n_boot, seed)


def paired_ratio_ci(num, den, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """(ratio, lo, hi, n): mean(num) / mean(den) over paired episodes (episode i of ``num``
    and of ``den`` share their world seed), with a percentile bootstrap that resamples
    episodes jointly. NaN where ``den`` sums to 0."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    if num.shape != den.shape:
        raise ValueError(f"paired ratio needs the same episodes: {num.shape} vs {den.shape}")
    ok = np.isfinite(num) & np.isfinite(den)
    num, den = num[ok], den[ok]
    n = len(num)
    if n == 0 or den.sum() <= 0:
        return math.nan, math.nan, math.nan, n
    est = float(num.sum() / den.sum())
    if n == 1:
        return est, est, est, 1
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (w @ num) / (w @ den)
    boot[~np.isfinite(boot)] = np.nan
    a = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(boot, [a, 1.0 - a])
    return est, float(lo), float(hi), n


def cluster_ratio_ci(pairs, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """(ratio, lo, hi, n_clusters): the pooled mean(num) / mean(den) over clusters of paired
    episodes (one cluster per training seed), with a two-stage bootstrap: clusters resampled,
    then episodes within each. Seed-to-seed variation is the part a pooled episode bootstrap
    would hide. ``pairs``: [(num, den)] per cluster."""
    pairs = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in pairs]
    pairs = [(a[m], b[m]) for a, b in pairs if (m := np.isfinite(a) & np.isfinite(b)).any()]
    k = len(pairs)
    if k == 0:
        return math.nan, math.nan, math.nan, 0
    num_all = sum(a.sum() for a, _ in pairs)
    den_all = sum(b.sum() for _, b in pairs)
    est = float(num_all / den_all) if den_all > 0 else math.nan
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    sums = []
    for a, b in pairs:  # per cluster: n_boot resampled episode sums
        w = rng.multinomial(len(a), np.full(len(a), 1.0 / len(a)), size=n_boot).astype(np.float64)
        sums.append((w @ a, w @ b))
    num_s = np.stack([x for x, _ in sums], 1)  # [n_boot, k]
    den_s = np.stack([y for _, y in sums], 1)
    pick = rng.integers(0, k, size=(n_boot, k))
    rows = np.arange(n_boot)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = num_s[rows, pick].sum(1) / den_s[rows, pick].sum(1)
    boot[~np.isfinite(boot)] = np.nan
    a = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(boot, [a, 1.0 - a]) if np.isfinite(boot).any() else (math.nan, math.nan)
    return est, float(lo), float(hi), k


def unpaired_diff_ci(a, b, n_boot: int = 2000, seed: int = 0):
    """mean(a) - mean(b) with a percentile bootstrap CI (episodes resampled in each group
    independently: for two sets of episodes that share nothing)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    d = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    lo, hi = np.quantile(d, [0.025, 0.975])
    return a.mean() - b.mean(), float(lo), float(hi)


def unpaired_ratio_ci(a, b, n_boot: int = 2000, seed: int = 0):
    """mean(a) / mean(b) with a percentile bootstrap CI (episodes resampled in each group
    independently: for two sets of episodes that share nothing)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b) or b.mean() == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
    rb = b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = ra / rb
    lo, hi = np.nanquantile(r, [0.025, 0.975])
    return a.mean() / b.mean(), float(lo), float(hi)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            r[tie] = r[tie].mean()
    return r


def rank_correlation(x, y, level: float = 0.95, n_boot: int = 2000, seed: int = 0):
    """(Spearman's rho, lo, hi, n) of paired values, with a percentile bootstrap over the pairs
    (NaN pairs dropped; NaN where either side is constant)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = len(x)

    def rho(a, b):
        ra, rb = _ranks(a), _ranks(b)
        if ra.std() == 0 or rb.std() == 0:
            return math.nan
        return float(np.corrcoef(ra, rb)[0, 1])

    if n < 3:
        return math.nan, math.nan, math.nan, n
    est = rho(x, y)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    boot = np.array([rho(x[i], y[i]) for i in idx])
    a = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(boot, [a, 1.0 - a]) if np.isfinite(boot).any() else (math.nan, math.nan)
    return est, float(lo), float(hi), n


def episode_weights(n_episodes: int, n_boot: int, seed: int) -> np.ndarray:
    """float[n_boot, n_episodes] multinomial resampling counts (cluster bootstrap over episodes)."""
    r = np.random.default_rng(seed)
    return r.multinomial(n_episodes, np.full(n_episodes, 1.0 / n_episodes), size=n_boot).astype(np.float64)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial CI for k successes in n trials."""
    if n == 0:
        return math.nan, math.nan
    from math import comb

    a = (1 - level) / 2

    def tail_ge(p):  # P(X >= k | p), increasing in p
        return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    def tail_le(p):  # P(X <= k | p), decreasing in p
        return sum(comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(0, k + 1))

    def bisect(f, target, increasing):
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if (f(mid) < target) == increasing:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    lower = 0.0 if k == 0 else bisect(tail_ge, a, True)
    upper = 1.0 if k == n else bisect(tail_le, a, False)
    return lower, upper


def fmt_ci(t, digits: int = 2) -> str:
    """"est [lo, hi]" of an (estimate, lo, hi, ...) tuple; "n/a" without a finite estimate."""
    if t is None or t[0] is None or not np.isfinite(t[0]):
        return "n/a"
    f = f"{{:.{digits}f}}"
    return f"{f.format(t[0])} [{f.format(t[1])}, {f.format(t[2])}]"
