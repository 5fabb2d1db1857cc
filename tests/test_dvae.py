"""DALL-E's discrete VAE (nets.dvae, objectives.DVAEObjective): the density, the shapes, the
schedules, and that a short run learns to reconstruct with the relaxed-vs-hard gap it should have."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import math

import numpy as np
import pytest
import torch

from ddpm_lib import objectives as OBJ, train as TR
from ddpm_lib.nets import dvae as V


def test_logit_laplace_is_a_density_on_the_unit_interval():
    y = torch.linspace(1e-6, 1 - 1e-6, 400_001, dtype=torch.float64)
    for mu, log_b in ((0.0, 0.0), (1.5, -1.0), (-2.0, 0.5)):
        nll = V.logit_laplace_nll(y, torch.full_like(y, mu), torch.full_like(y, log_b), eps=0.0)
        mass = torch.trapezoid(torch.exp(-nll), y).item()
        assert mass == pytest.approx(1.0, abs=2e-3), (mu, log_b, mass)


def test_pixel_map_round_trip_and_range():
    x = torch.rand(1000)
    y = V.map_pixels(x)
    assert y.min() >= 0.1 and y.max() <= 0.9
    torch.testing.assert_close(V.unmap_pixels(y), x)


def test_shapes_and_argmax_codes():
    cfg = V.DVAEConfig(image_size=16, channels=3, codes=32, levels=2, width=32)
    net = V.DVAE(cfg)
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    assert net.logits(x).shape == (5, 32, 4, 4) and cfg.grid == 4
    codes = net.encode(x)
    assert codes.shape == (5, 4, 4) and codes.dtype == torch.long and codes.max() < 32
    img = net.decode_codes(codes)
    assert img.shape == x.shape and img.min() >= -1 and img.max() <= 1
    with pytest.raises(ValueError, match="divisible"):
        V.DVAEConfig(image_size=10, levels=2)


def test_schedules_are_half_cosine_ramps():
    obj = OBJ.DVAEObjective(beta=6.6, beta_steps=100, tau_start=1.0, tau_end=1 / 16, tau_steps=200)
    assert obj.schedule(0) == (0.0, 1.0)
    b, t = obj.schedule(100)
    assert b == pytest.approx(6.6) and 1 / 16 < t < 1.0
    assert obj.schedule(50)[0] == pytest.approx(3.3)  # the midpoint of a half-cosine
    assert obj.schedule(10_000) == (6.6, 1 / 16)
    assert OBJ.DVAEObjective(tau_end=1.0).schedule(5)[1] == 1.0  # tau_steps = 0: a fixed temperature
    assert V.perplexity(torch.arange(8), 8) == pytest.approx(8.0)
    assert V.perplexity(torch.zeros(8, dtype=torch.long), 8) == pytest.approx(1.0)


def test_a_short_run_reconstructs_and_the_hard_elb_is_close_to_the_relaxed_one_at_low_tau():
    g = torch.Generator().manual_seed(0)
    # 4 kinds of 8x8 images: a bright square in one of four quadrants, with pixel noise
    n = 512
    kind = torch.randint(0, 4, (n,), generator=g)
    x = torch.full((n, 1, 8, 8), -0.8)
    for k in range(4):
        r, c = divmod(k, 2)
        x[kind == k, :, 4 * r:4 * r + 4, 4 * c:4 * c + 4] = 0.8
    x = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    cfg = V.DVAEConfig(image_size=8, channels=1, codes=16, levels=2, width=32)
    obj = OBJ.DVAEObjective(beta=1.0, beta_steps=20, tau_start=1.0, tau_end=1 / 16, tau_steps=150)
    tcfg = TR.TrainConfig(train_images=200 * 32, batch_size=32, lr=2e-3, ema_decay=0.0, seed=0)
    net = V.DVAE(cfg)
    before = ((net.decode_codes(net.encode(x)) - x) ** 2).mean().item()
    res = TR.train(net, obj, x, tcfg, progress=False)
    net = res.net.eval()
    after = ((net.decode_codes(net.encode(x)) - x) ** 2).mean().item()
    assert after < 0.25 * before, (before, after)
    assert V.perplexity(net.encode(x), 16) > 2.0
    elb = OBJ.dvae_elb(net, x, tau=1 / 16, generator=torch.Generator().manual_seed(1), draws=3)
    gap = (elb["hard"] - elb["relaxed"]).mean().item()
    assert math.isfinite(gap) and abs(gap) < 0.25 * elb["hard"].abs().mean().item()
    losses = np.asarray([h["loss"] for h in res.log if "loss" in h])
    assert losses[-10:].mean() < losses[:10].mean()


def test_the_hard_elb_is_the_relaxed_sample_at_zero_temperature_and_argmax_when_q_is_sure():
    torch.manual_seed(0)
    net = V.DVAE(V.DVAEConfig(image_size=8, channels=3, codes=8, levels=1, width=16))
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    obj = OBJ.DVAEObjective(likelihood="gaussian", sigma=0.2)
    g = torch.Generator().manual_seed(3)
    cold = OBJ.dvae_elb(net, x, tau=1e-4, generator=g, objective=obj, draws=2)
    assert torch.allclose(cold["hard"], cold["relaxed"], atol=1e-4)
    warm = OBJ.dvae_elb(net, x, tau=1.0, generator=g, objective=obj, draws=2)
    assert not torch.allclose(warm["hard"], warm["relaxed"], atol=1e-3)
    with torch.no_grad():  # code 3 leads by 100 nats: every Gumbel draw (at most 23) picks it
        net.encoder[-1].weight.zero_()
        net.encoder[-1].bias.zero_()
        net.encoder[-1].bias[3] = 100.0
    sure = OBJ.dvae_elb(net, x, tau=1.0, generator=g, objective=obj, draws=3)
    assert torch.allclose(sure["hard"], sure["argmax"])
    with pytest.raises(ValueError, match="draws"):
        OBJ.dvae_elb(net, x, tau=1.0, draws=0)


def test_the_gaussian_likelihood_is_a_fixed_sigma_normal_at_the_decoded_point():
    torch.manual_seed(0)
    net = V.DVAE(V.DVAEConfig(image_size=8, channels=3, codes=8, levels=1, width=16))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    logits = net.logits(x)
    z = torch.softmax(logits, 1)
    obj = OBJ.DVAEObjective(likelihood="gaussian", sigma=0.2)
    nll, kl = obj.terms(net, x, logits, z)
    mu, _ = net.decode(z)
    mean = V.unmap_pixels(torch.sigmoid(mu)) * 2 - 1
    want = -torch.distributions.Normal(mean, 0.2).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(nll, want, atol=1e-3) and (kl >= -1e-5).all()
    # the default likelihood is the paper's, and its cache key is unchanged by the new option
    assert "likelihood" not in OBJ.DVAEObjective().config() and obj.config()["likelihood"] == "gaussian"
    ll, _ = OBJ.DVAEObjective().terms(net, x, logits, z)
    assert not torch.allclose(ll, nll)
    with pytest.raises(ValueError, match="valid: logit_laplace, gaussian"):
        OBJ.DVAEObjective(likelihood="laplace")
