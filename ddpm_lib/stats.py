"""Intervals and tests for the verdicts of the claims tables (../shared/CHAPTER_GUIDE.md).

Every number a verdict compares carries an interval: ``mean_ci`` for repeated estimates (a
stochastic bound estimate, >= 5 repetitions), ``rate_ci`` for a share of hits (clustered when
several samples come from one source), ``percentile`` for bootstrap replicates (``metrics.evaluate``
with ``bootstrap=B`` keeps them). ``compare`` turns two such numbers into "lower" / "higher" /
"not significant"; ``partial_spearman`` removes a shared co-variate from a rank correlation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with a two-sided ``level`` interval [lo, hi] from ``n`` observations or replicates."""

    est: float
    lo: float
    hi: float
    n: int
    level: float = LEVEL

    def __post_init__(self):
        if not (self.lo <= self.est <= self.hi) and all(map(math.isfinite, (self.lo, self.est, self.hi))):
            raise ValueError(f"estimate {self.est} outside its interval [{self.lo}, {self.hi}]")

    def fmt(self, digits: int = 3, scale: float = 1.0, pct: bool = False) -> str:
        """'5.25 [5.21, 5.29]' (or '25% [17%, 34%]' with ``pct``)."""
        if pct:
            return f"{self.est:.0%} [{self.lo:.0%}, {self.hi:.0%}]"
        f = lambda v: f"{v * scale:.{digits}g}"  # noqa: E731
        return f"{f(self.est)} [{f(self.lo)}, {f(self.hi)}]"

    __str__ = fmt

    def as_dict(self) -> dict:
        return dict(est=self.est, lo=self.lo, hi=self.hi, n=self.n, level=self.level)

    @classmethod
    def of(cls, d: "dict | Interval | None") -> "Interval | None":
        """An Interval back from ``as_dict()`` (how results files store it); Intervals and None pass."""
        if d is None or isinstance(d, Interval):
            return d
        return cls(d["est"], d["lo"], d["hi"], d["n"], d.get("level", LEVEL))


def _t_quantile(df: int, level: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def mean_ci(values, level: float = LEVEL) -> Interval:
    """Mean of independent estimates with a Student-t interval (needs >= 2; use >= 5)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) < 2:
        raise ValueError(f"mean_ci needs at least 2 independent estimates, got {len(v)}")
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))
    h = _t_quantile(len(v) - 1, level) * se
    return Interval(m, m - h, m + h, len(v), level)


def percentile(est: float, replicates, level: float = LEVEL, centre: bool = False) -> Interval:
    """A bootstrap percentile interval around ``est`` (widened to contain it).

    ``centre=True`` first shifts the replicates so that their median is ``est``: for statistics
    that resampling with replacement biases (FD and KID: duplicated points shrink the effective n
    and inflate FD), the replicates then give the spread but not the shift."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if len(r) < 20:
        raise ValueError(f"a bootstrap interval needs >= 20 finite replicates, got {len(r)}")
    if centre:
        r = r - (np.median(r) - est)
    lo, hi = np.quantile(r, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(float(est), float(min(lo, est)), float(max(hi, est)), len(r), level)


def rate_ci(hits, level: float = LEVEL, B: int = 2000, seed: int = 0) -> Interval:
    """Share of hits. ``hits``: a 1-D array of 0/1 (independent: Wilson interval) or a 2-D array
    (sources x samples per source: samples of one source are not independent, so the interval is a
    bootstrap over sources)."""
    h = np.asarray(hits, dtype=np.float64)
    if h.ndim == 1:
        return wilson(int(h.sum()), len(h), level)
    rng = np.random.default_rng(seed)
    per_source = h.mean(1)
    reps = per_source[rng.integers(0, len(per_source), (B, len(per_source)))].mean(1)
    return percentile(float(h.mean()), reps, level)


def wilson(k: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval for k successes in n independent trials."""
    from scipy import stats

    if n < 1:
        raise ValueError("wilson needs n >= 1")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), n, level)


def compare(a: Interval, b: Interval | float) -> str:
    """'lower' / 'higher' when ``a``'s interval lies entirely below / above ``b`` (an interval or
    a fixed threshold), else 'not significant'. Non-overlap of two 95% intervals is a conservative
    test (about the 0.5% level for similar widths); use ``diff_ci`` where paired replicates exist."""
    b_lo, b_hi = (b.lo, b.hi) if isinstance(b, Interval) else (float(b), float(b))
    if a.hi < b_lo:
        return "lower"
    if a.lo > b_hi:
        return "higher"
    return "not significant"


def diff_ci(est_a: float, reps_a, est_b: float, reps_b, level: float = LEVEL, centre: bool = True) -> Interval:
    """Interval of a - b from paired bootstrap replicates (the same resampling of the shared
    reference set in replicate i of both, as ``metrics.evaluate(bootstrap=B, seed=s)`` does),
    re-centred on a - b (see ``percentile``)."""
    ra, rb = np.asarray(reps_a, dtype=np.float64), np.asarray(reps_b, dtype=np.float64)
    if ra.shape != rb.shape:
        raise ValueError(f"paired replicates need equal shapes, got {ra.shape} and {rb.shape}")
    return percentile(est_a - est_b, ra - rb, level, centre)


def _ranks(x) -> np.ndarray:
    from scipy import stats

    return stats.rankdata(np.asarray(x, dtype=np.float64))


def partial_spearman(x, y, z) -> float:
    """Spearman correlation of x and y after removing a linear effect of z's ranks from both
    (z: a co-variate such as training steps, which makes any two training curves correlate)."""
    rx, ry, rz = _ranks(x), _ranks(y), _ranks(z)
    A = np.stack([np.ones_like(rz), rz], 1)
    res = lambda v: v - A @ np.linalg.lstsq(A, v, rcond=None)[0]  # noqa: E731
    ex, ey = res(rx), res(ry)
    den = math.sqrt(float(ex @ ex) * float(ey @ ey))
    return float(ex @ ey / den) if den > 0 else float("nan")
