"""The exact denoiser of a Gaussian mixture, checked against independent computations."""
import math

import pytest
import torch

from ddpm_lib import oracle as O


def test_single_gaussian_has_linear_posterior_mean():
    """For x_0 ~ N(m, s^2 I): E[x_0 | x_t] = m + sqrt(a) s^2 / (a s^2 + 1 - a) (x_t - sqrt(a) m)."""
    m, s2 = torch.tensor([[0.3, -0.7]]), 0.25
    gm = O.GaussianMixture(torch.ones(1), m, torch.tensor([s2]))
    x = torch.randn(10, 2, dtype=torch.float64)
    for a in [0.99, 0.5, 0.01]:
        ref = m + math.sqrt(a) * s2 / (a * s2 + 1 - a) * (x - math.sqrt(a) * m)
        assert torch.allclose(gm.x0_mean(x, a), ref.double(), atol=1e-12)


def test_score_matches_autograd_of_log_prob():
    gm = O.example_2d()
    x = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    for a in [0.9, 0.3]:
        lp = gm.log_prob(x, a).sum()
        (grad,) = torch.autograd.grad(lp, x)
        assert torch.allclose(gm.score(x.detach(), a), grad, atol=1e-9)


def test_class_gradient_matches_autograd():
    gm = O.example_2d()
    x = torch.randn(20, 2, dtype=torch.float64, requires_grad=True)
    a = 0.6
    lp = gm.class_log_prob(x, a)[:, 1].sum()
    (grad,) = torch.autograd.grad(lp, x)
    assert torch.allclose(gm.grad_log_p_y(x.detach(), a, 1), grad, atol=1e-9)


def test_log_prob_integrates_to_one():
    gm = O.ring(k=4, radius=1.0, std=0.3)
    g = torch.linspace(-3, 3, 301, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([xx.ravel(), yy.ravel()], 1)
    mass = gm.log_prob(pts, 1.0).exp().sum() * (g[1] - g[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=1e-3)


def test_sample_moments():
    gm = O.example_2d()
    x, comp, y = gm.sample(100_000, torch.Generator().manual_seed(0))
    assert torch.allclose(x.mean(0), gm.mean(), atol=0.02)
    assert torch.allclose(torch.cov(x.T), gm.cov(), atol=0.03)
    assert torch.equal(y, gm.labels[comp])


def test_noisy_marginal_tends_to_standard_normal():
    gm = O.example_2d()
    x = torch.randn(2000, 2, dtype=torch.float64)
    ref = -0.5 * (x**2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(gm.log_prob(x, 1e-14), ref, atol=1e-6)


def test_rejects_bad_shapes():
    with pytest.raises(ValueError):
        O.GaussianMixture(torch.ones(2), torch.zeros(3, 2), torch.ones(3))
