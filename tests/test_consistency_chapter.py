"""Chapter 09's pieces (ddpm_lib.chapters.consistency): the exact teacher of a Gaussian mixture in sigma and
TrigFlow form, the seed-noise intervals of the text's 2-D comparisons, the presets (the claims:
test_claims_consistency.py)."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import math

import pytest
import torch

from ddpm_lib import oracle, profiles
from ddpm_lib.chapters import consistency as CH


def test_exact_teacher_matches_the_oracle_in_both_forms():
    gm = oracle.ring(8, radius=1.0, std=0.08)
    D = CH.ExactDenoiser(gm)
    g = torch.Generator().manual_seed(0)
    x, s = torch.randn(40, 2, generator=g, dtype=torch.float64) * 2, torch.rand(40, generator=g, dtype=torch.float64) * 3 + 0.01
    ref = torch.stack([gm.x0_mean(x[i:i + 1] / math.sqrt(1 + s[i] ** 2), float(1 / (1 + s[i] ** 2)))[0] for i in range(40)])
    assert torch.allclose(D(x, s), ref, atol=1e-10)
    # TrigFlow form: cos t x_t - sigma_d sin t F = the exact x0 at sigma = sigma_d tan t, x_sigma = x_t / cos t
    sd, t = 0.7, torch.rand(40, generator=g, dtype=torch.float64) * 1.5 + 0.01
    x_t = x * 0.7
    F = CH.ExactTrigFlow(gm, sd).F(x_t, t)
    x0 = torch.cos(t)[:, None] * x_t - sd * torch.sin(t)[:, None] * F
    assert torch.allclose(x0, D(x_t / torch.cos(t)[:, None], sd * torch.tan(t)), atol=1e-8)
    skewed = oracle.GaussianMixture(means=torch.zeros(1, 2, dtype=torch.float64),
                                    covs=torch.tensor([[[1.0, 0.5], [0.5, 1.0]]], dtype=torch.float64),
                                    weights=torch.ones(1, dtype=torch.float64))
    with pytest.raises(ValueError, match="isotropic"):
        CH.ExactDenoiser(skewed)


def _runs(name, sws, failed=None):
    return [dict(arm=name, seed=k, sw={1: v}, failed=(failed or [False] * len(sws))[k], diverged=False) for k, v in enumerate(sws)]


def test_seed_noise_intervals_and_verdicts():
    toy = {"a": _runs("a", [0.10, 0.12]), "b": _runs("b", [0.20, 0.22]), "c": _runs("c", [0.5, 0.9], [True, True])}
    sd, df = CH.seed_noise(toy)
    assert df == 2 and sd == pytest.approx(math.sqrt(0.0002))  # the failed arm is not pooled
    c = CH.sw_compare(toy["a"], toy["b"], (sd, df))
    iv = c["interval"]
    assert iv["est"] == pytest.approx(-0.10) and iv["hi"] < 0 and c["per_seed"] == pytest.approx([-0.1, -0.1])
    assert CH.toy_verdict(c) == "yes" and CH.toy_verdict(c, lower_is_claim=False) == "no"
    wide = CH.sw_compare(toy["a"], toy["b"], (0.2, 2))  # the same means with a large seed noise: undecided
    assert CH.toy_verdict(wide) == "not significant"
    nan = CH.sw_compare(toy["a"], _runs("d", [float("nan"), 0.1]), (sd, df))
    assert nan["interval"] is None and CH.toy_verdict(nan) == "not significant"
    with pytest.raises(ValueError, match="seed noise"):
        CH.seed_noise({"a": _runs("a", [0.1])})


def test_presets_check_their_fields():
    cpu = profiles.get("09_consistency", "cpu")
    assert cpu.toy_seeds >= 2 and cpu.metric_bias and profiles.get("09_consistency", "smoke").metric_bias
    with pytest.raises(ValueError, match="cd_steps"):
        profiles.get("09_consistency", "smoke", cd_steps=(1, 9))
    with pytest.raises(ValueError, match="t_mid"):
        profiles.get("09_consistency", "smoke", t_mid=2.0)
    with pytest.raises(ValueError, match="toy_seeds"):
        profiles.get("09_consistency", "smoke", toy_seeds=1)
    with pytest.raises(ValueError, match="toy_warmup"):
        profiles.get("09_consistency", "smoke", toy_warmup=1.5)
