"""Intervals and tests behind the claims tables (ddpm_lib.stats, metrics bootstrap, chapter helpers)."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import numpy as np
import pytest
import torch

from ddpm_lib import metrics, stats


def test_mean_ci_covers_the_true_mean_at_its_level():
    rng = np.random.default_rng(0)
    hits = [stats.mean_ci(rng.normal(3.0, 1.0, 5)) for _ in range(2000)]
    coverage = np.mean([h.lo <= 3.0 <= h.hi for h in hits])
    assert 0.93 < coverage < 0.97
    with pytest.raises(ValueError, match="at least 2"):
        stats.mean_ci([1.0])


def test_wilson_matches_a_known_value_and_stays_in_0_1():
    w = stats.wilson(16, 64)  # p = 0.25: Wilson 95% interval [0.160, 0.368]
    assert (round(w.lo, 3), round(w.hi, 3)) == (0.16, 0.368)
    assert stats.wilson(0, 10).lo == 0.0 and stats.wilson(10, 10).hi == 1.0


def test_clustered_rates_are_wider_than_independent_ones():
    rng = np.random.default_rng(1)
    per_source = rng.random(32) < 0.3  # whole sources keep or lose the class together
    hits = np.repeat(per_source[:, None], 4, axis=1).astype(float)
    clustered, naive = stats.rate_ci(hits), stats.rate_ci(hits.ravel())
    assert clustered.hi - clustered.lo > 1.5 * (naive.hi - naive.lo)


def test_compare_says_not_significant_when_intervals_overlap():
    a, b = stats.Interval(1.0, 0.8, 1.2, 5), stats.Interval(1.1, 0.9, 1.3, 5)
    assert stats.compare(a, b, independent=True) == "not significant"
    assert stats.compare(a, 1.5) == "lower" and stats.compare(a, 0.5) == "higher"
    with pytest.raises(TypeError, match="paired"):  # two intervals are the unpaired test: asked for by name
        stats.compare(a, b)


def test_in_words_states_only_the_direction_the_interval_supports():
    words = ("better", "worse", "not significantly different")
    assert stats.in_words(stats.Interval(0.3, 0.1, 0.5, 9), *words) == "better"
    assert stats.in_words(stats.Interval(-0.3, -0.5, -0.1, 9), *words) == "worse"
    assert stats.in_words(stats.Interval(0.3, -0.1, 0.5, 9), *words) == "not significantly different"
    # against a threshold other than 0
    assert stats.in_words(stats.Interval(0.3, 0.1, 0.5, 9), *words, than=0.2) == words[2]


def test_partial_spearman_removes_a_shared_trend():
    steps = np.arange(20)
    rng = np.random.default_rng(2)
    x, y = steps + rng.normal(0, 0.5, 20), steps + rng.normal(0, 0.5, 20)  # both follow training time only
    from scipy.stats import spearmanr

    assert spearmanr(x, y)[0] > 0.9
    assert abs(stats.partial_spearman(x, y, steps)) < 0.5


def test_bootstrap_intervals_are_paired_and_separate_different_generators():
    g = torch.Generator().manual_seed(0)
    real, ref = torch.randn(800, 16, generator=g), torch.randn(200, 16, generator=g)
    same, shifted = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g) + 0.5
    e1 = metrics.evaluate(None, real, same, real_ref=ref, bootstrap=100)
    e2 = metrics.evaluate(None, real, shifted, real_ref=ref, bootstrap=100)
    for m in ("fd", "kid", "precision", "recall", "fd_floor"):
        ci = e1.ci(m)
        assert ci.lo <= getattr(e1, m) <= ci.hi
    d = stats.diff_ci(e2.fd, e2.replicates["fd"], e1.fd, e1.replicates["fd"])
    assert d.lo > 0  # the shifted generator is measurably worse
    floor_vs_same = stats.diff_ci(e1.fd, e1.replicates["fd"], e1.fd_floor, e1.replicates["fd_floor"])
    assert floor_vs_same.lo <= 0 <= floor_vs_same.hi  # a perfect generator is indistinguishable from the floor
    with pytest.raises(ValueError, match="bootstrap > 0"):
        metrics.evaluate(None, real, same).ci("fd")
