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
    # how it was made: "t", "t-paired", "wilson", "bootstrap", "bootstrap-paired", "bootstrap-cluster",
    # "bootstrap-both-sets", "seeds" ("" where unknown: intervals stored before methods were)
    method: str = ""
    p: float | None = None  # two-sided p-value of "the difference is 0", where the interval is of one

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
        d = dict(est=self.est, lo=self.lo, hi=self.hi, n=self.n, level=self.level)
        d.update({k: v for k, v in (("method", self.method), ("p", self.p)) if v not in ("", None)})
        return d

    @classmethod
    def of(cls, d: "dict | Interval | None") -> "Interval | None":
        """An Interval back from ``as_dict()`` (how results files store it); Intervals and None pass."""
        if d is None or isinstance(d, Interval):
            return d
        return cls(d["est"], d["lo"], d["hi"], d["n"], d.get("level", LEVEL), d.get("method", ""), d.get("p"))


def _t_quantile(df: int, level: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + level / 2, df))


def mean_ci(values, level: float = LEVEL, method: str = "t") -> Interval:
    """Mean of independent estimates with a Student-t interval (needs >= 2; use >= 5) and the
    t-test's two-sided p-value of "the mean is 0"."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) < 2:
        raise ValueError(f"mean_ci needs at least 2 independent estimates, got {len(v)}")
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))
    h = _t_quantile(len(v) - 1, level) * se
    p = float(2 * stats.t.sf(abs(m) / se, len(v) - 1)) if se > 0 else (1.0 if m == 0 else 0.0)
    return Interval(m, m - h, m + h, len(v), level, method, p)


def percentile(est: float, replicates, level: float = LEVEL, centre: bool = False,
               method: str = "bootstrap") -> Interval:
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
    p = min(1.0, 2 * min(float((r <= 0).mean()), float((r >= 0).mean())) + 1 / len(r))
    return Interval(float(est), float(min(lo, est)), float(max(hi, est)), len(r), level, method, p)


def rate_ci(hits, level: float = LEVEL, B: int = 2000, seed: int = 0) -> Interval:
    """Share of hits. ``hits``: a 1-D array of 0/1 (independent: Wilson interval) or a 2-D array
    (sources x samples per source: samples of one source are not independent, so the interval is a
    bootstrap over sources)."""
    h = np.asarray(hits, dtype=np.float64)
    if h.ndim == 1:
        return wilson(int(h.sum()), len(h), level)
    return cluster_mean_ci(h, level, B, seed)


def wilson(k: int, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval for k successes in n independent trials."""
    from scipy import stats

    if n < 1:
        raise ValueError("wilson needs n >= 1")
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), n, level, "wilson")


def compare(a: Interval, b: Interval | float, independent: bool = False) -> str:
    """'lower' / 'higher' when ``a``'s interval lies entirely below / above ``b`` (a fixed threshold,
    or an interval), else 'not significant'.

    Two intervals are compared only when their data are independent (``independent=True``: other
    images, other noise, other prompts). Data scored on the same items are paired: their
    difference has its own interval (``paired_rate_diff``, ``paired_mean_diff``, ``diff_ci``),
    compared with 0; the overlap of two separate intervals is then the wrong, conservative test."""
    if isinstance(b, Interval) and not independent:
        raise TypeError("compare() of two intervals is the unpaired test: pass independent=True when the two "
                        "were measured on different items, else compare the paired difference with 0 "
                        "(stats.paired_rate_diff / paired_mean_diff / diff_ci)")
    b_lo, b_hi = (b.lo, b.hi) if isinstance(b, Interval) else (float(b), float(b))
    if a.hi < b_lo:
        return "lower"
    if a.lo > b_hi:
        return "higher"
    return "not significant"


def in_words(d: Interval, higher: str, lower: str, neither: str, than: float = 0.0) -> str:
    """The finding a difference's interval ``d`` supports, in a chapter's words: ``higher`` when it lies
    entirely above ``than`` (0 for a difference), ``lower`` when entirely below, else ``neither``, so
    a sentence never states a direction its interval does not support."""
    return {"higher": higher, "lower": lower}.get(compare(d, than), neither)


def diff_ci(est_a: float, reps_a, est_b: float, reps_b, level: float = LEVEL, centre: bool = True) -> Interval:
    """Interval of a - b from paired bootstrap replicates (the same resampling of the shared
    reference set in replicate i of both, as ``metrics.evaluate(bootstrap=B, seed=s)`` does),
    re-centred on a - b (see ``percentile``)."""
    ra, rb = np.asarray(reps_a, dtype=np.float64), np.asarray(reps_b, dtype=np.float64)
    if ra.shape != rb.shape:
        raise ValueError(f"paired replicates need equal shapes, got {ra.shape} and {rb.shape}")
    return percentile(est_a - est_b, ra - rb, level, centre, method="bootstrap-paired")


# ---- paired and clustered statistics ------------------------------------------------------------
def paired_rate_diff(hits_a, hits_b, level: float = LEVEL, B: int = 2000, seed: int = 0) -> Interval:
    """Accuracy(a) - accuracy(b) on the same items (per-item 0/1 hits, aligned): a paired bootstrap
    of the per-item differences, with McNemar's exact p-value (only the discordant items count)."""
    a, b = np.asarray(hits_a, dtype=np.float64).ravel(), np.asarray(hits_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired hits need equal lengths, got {len(a)} and {len(b)}")
    d = a - b
    rng = np.random.default_rng(seed)
    reps = d[rng.integers(0, len(d), (B, len(d)))].mean(1)
    out = percentile(float(d.mean()), reps, level, method="bootstrap-paired")
    return Interval(out.est, out.lo, out.hi, out.n, level, out.method, mcnemar_p(a, b))


def mcnemar_p(hits_a, hits_b) -> float:
    """McNemar's exact two-sided p-value: of the items exactly one side got right, is the split
    50/50? (A binomial test on the discordant pairs.)"""
    from scipy import stats

    a, b = np.asarray(hits_a).astype(bool).ravel(), np.asarray(hits_b).astype(bool).ravel()
    n01, n10 = int((~a & b).sum()), int((a & ~b).sum())
    if n01 + n10 == 0:
        return 1.0
    return float(stats.binomtest(n10, n01 + n10, 0.5).pvalue)


def paired_mean_diff(a, b, level: float = LEVEL) -> Interval:
    """Mean of a - b over paired items (the same images, noise or prompts on both sides): a
    t-interval of the per-item differences, with its p-value."""
    return mean_ci(np.subtract(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)), level,
                   method="t-paired")


def cluster_mean_ci(values, level: float = LEVEL, B: int = 2000, seed: int = 0) -> Interval:
    """Mean of samples nested in clusters (rows: clusters such as captions or sources; columns: the
    samples of one cluster), with a bootstrap that resamples clusters, not samples."""
    h = np.asarray(values, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"cluster_mean_ci needs clusters x samples, got shape {h.shape}")
    rng = np.random.default_rng(seed)
    per = h.mean(1)
    reps = per[rng.integers(0, len(per), (B, len(per)))].mean(1)
    return percentile(float(h.mean()), reps, level, method="bootstrap-cluster")


def cluster_diff(a, b, level: float = LEVEL, B: int = 2000, seed: int = 0) -> Interval:
    """Mean(a) - mean(b) for two arms scored on the same clusters (clusters x samples each, rows
    aligned): clusters resampled, the same ones on both sides."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(f"cluster_diff needs two clusters x samples arrays with equal rows, got {a.shape}, {b.shape}")
    d = a.mean(1) - b.mean(1)
    rng = np.random.default_rng(seed)
    reps = d[rng.integers(0, len(d), (B, len(d)))].mean(1)
    return percentile(float(a.mean() - b.mean()), reps, level, method="bootstrap-cluster")


def seeds_diff(a, b=None, level: float = LEVEL) -> Interval:
    """A training outcome over training seeds: the mean of per-seed values ``a`` (b None), or of a -
    b paired by seed (arms that share a seed's initialisation and data order), with a t-interval
    over seeds; ``n`` is the number of seeds."""
    v = np.asarray(a, dtype=np.float64) if b is None else np.subtract(a, b, dtype=np.float64)
    return mean_ci(v, level, method="seeds")


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
