"""Verdict helpers shared by the chapters' claims: how a measured interval becomes yes / no / partly /
not significant, stated the same way in every chapter."""
from __future__ import annotations

import numpy as np

from .. import stats

iv = stats.Interval.of
# stats.compare(difference, 0) -> verdict, for a claim that the difference is negative / positive
LOWER = {"lower": "yes", "higher": "no", "not significant": "not significant"}
HIGHER = {"higher": "yes", "lower": "no", "not significant": "not significant"}


def within(d: stats.Interval, margin: float) -> str:
    """An equivalence test: 'yes' when the whole interval of a difference lies below ``margin``, 'no'
    when it lies above, 'not significant' when it straddles it (too wide to decide at this n)."""
    return "yes" if d.hi < margin else ("no" if d.lo > margin else "not significant")


def within_band(d: stats.Interval, margin: float) -> str:
    """Two-sided equivalence: 'yes' when the interval of a difference lies inside (-margin, margin), 'no'
    when it lies wholly outside it, 'not significant' otherwise."""
    if -margin < d.lo and d.hi < margin:
        return "yes"
    return "no" if d.lo > margin or d.hi < -margin else "not significant"


def aggregate(parts: dict) -> str:
    """One verdict from the verdicts of a claim's parts: yes if all pass, no if some fail and none
    pass, partly if some pass and some fail, else not significant."""
    v = list(parts.values())
    if all(x == "yes" for x in v):
        return "yes"
    if "yes" in v and "no" in v:
        return "partly"
    if "no" in v and "yes" not in v:
        return "no"
    return "not significant" if "yes" not in v else "partly"


def why(parts: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in parts.items() if v != "yes")


def combo(evals: dict, weights: dict) -> stats.Interval:
    """Interval of sum_k w_k FD_k from paired bootstrap replicates (``metrics.evaluate(bootstrap=B)``
    with equal n and seed): e.g. a difference of differences between two schedules."""
    est = sum(w * evals[k].fd for k, w in weights.items())
    reps = sum(w * np.asarray(evals[k].replicates["fd"]) for k, w in weights.items())
    return stats.percentile(est, reps, centre=True)


def paired_diff(a, b) -> stats.Interval:
    """Mean of a - b over paired rows (the same images, noise or sample rows in both): a t-interval
    of the per-row differences."""
    return stats.mean_ci(np.subtract(a, b))
