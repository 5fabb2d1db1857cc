"""The Gaussian diffusion: posterior, parametrizations, losses and the exact bound, against closed forms."""
import math

import numpy as np
import pytest
import torch

from ddpm_lib import diffusion as D
from ddpm_lib import schedules as S


@pytest.fixture(scope="module")
def sched():
    return S.linear(1000)


def _gaussian_conditioning(sched, x0, x_t, t):
    """q(x_{t-1} | x_t, x_0) by conditioning the joint Gaussian of (x_{t-1}, x_t) given x_0."""
    ab_prev = sched.alpha_bar_prev[t].item()
    ab, a = sched.alpha_bar[t].item(), sched.alphas[t].item()
    m_prev, v_prev = math.sqrt(ab_prev) * x0, 1 - ab_prev  # x_{t-1} | x_0
    m_t, v_t = math.sqrt(ab) * x0, 1 - ab  # x_t | x_0
    cov = math.sqrt(a) * v_prev  # Cov(x_{t-1}, x_t | x_0), since x_t = sqrt(a) x_{t-1} + noise
    return m_prev + cov / v_t * (x_t - m_t), v_prev - cov**2 / v_t


def test_posterior_equals_gaussian_conditioning(sched):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 3, dtype=torch.float64, generator=g)
    x_t = torch.randn(8, 3, dtype=torch.float64, generator=g)
    for step in [1, 2, 10, 500, 999]:
        t = torch.full((8,), step)
        mean, var, _ = D.q_posterior(sched, x0, x_t, t)
        m_ref, v_ref = _gaussian_conditioning(sched, x0, x_t, step)
        assert torch.allclose(mean, m_ref, atol=1e-8, rtol=0)
        assert torch.allclose(var, torch.full_like(var, v_ref), atol=1e-8, rtol=0)
    # at t = 0 the posterior is x_0 itself
    mean, var, _ = D.q_posterior(sched, x0, x_t, torch.zeros(8, dtype=torch.long))
    assert torch.allclose(mean, x0, atol=1e-12) and var.abs().max() == 0


def test_q_sample_closed_form_equals_iterating_the_chain():
    sched = S.cosine(50)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(200_000, dtype=torch.float64, generator=g) * 0.5 + 0.3
    x = x0.clone()
    for step in range(50):  # x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) z
        x = (1 - sched.betas[step]).sqrt() * x + sched.betas[step].sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    t = torch.full((200_000,), 49)
    m, v = D.q_mean_variance(sched, x0, t)
    resid = (x - m) / v.sqrt()
    assert abs(resid.mean().item()) < 0.01 and abs(resid.std().item() - 1) < 0.01


@pytest.mark.parametrize("param", D.PARAMETRIZATIONS)
def test_each_parametrization_recovers_posterior_mean(sched, param):
    """A model that outputs the true target in any parametrization gives the true posterior."""
    diff = D.Diffusion(sched, param, "fixed_small", clip_denoised=False)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 2, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 5, 100, 600, 999])
    x_t = D.q_sample(sched, x0, t, eps)
    out = D.target(diff, x0, x_t, t, eps)
    p = D.p_mean_variance(diff, out, x_t, t)
    assert torch.allclose(p["x0"], x0, atol=1e-7)
    assert torch.allclose(p["mean"], D.q_posterior(sched, x0, x_t, t)[0], atol=1e-8)
    assert torch.allclose(p["eps"][1:], eps[1:], atol=1e-6)  # eps is ill-conditioned at t = 0
    assert torch.allclose(D.output_from_x0(diff, x_t, t, x0), out, atol=1e-6)


def test_variance_choices(sched):
    x = torch.zeros(3, 1)
    t = torch.tensor([0, 1, 999])
    small, _ = D.model_variance(D.Diffusion(sched, var="fixed_small"), x, t, None)
    large, _ = D.model_variance(D.Diffusion(sched, var="fixed_large"), x, t, None)
    assert small[1, 0].item() == pytest.approx(sched.beta_tilde[1].item(), rel=1e-12)
    assert small[2, 0].item() == pytest.approx(sched.beta_tilde[999].item(), rel=1e-12)
    assert small[0, 0].item() == pytest.approx(sched.beta_tilde[1].item(), rel=1e-12)  # clipped at t = 0
    assert large[0, 0] == pytest.approx(sched.beta_tilde[1].item())  # fixed large: beta_tilde at t = 0
    assert large[2, 0] == pytest.approx(sched.betas[999].item())
    lr = D.Diffusion(sched, var="learned_range")
    hi, _ = D.model_variance(lr, x, t, torch.ones(3, 1))
    lo, _ = D.model_variance(lr, x, t, -torch.ones(3, 1))
    assert torch.allclose(hi[1:], sched.betas[t[1:]].reshape(-1, 1))
    assert torch.allclose(lo, small)
    mid, _ = D.model_variance(lr, x, t, torch.zeros(3, 1))
    assert torch.allclose(mid, (hi * lo).sqrt())  # geometric mean: interpolation in log space
    learned, logv = D.model_variance(D.Diffusion(sched, var="learned"), x, t, torch.full((3, 1), -3.0))
    assert torch.allclose(learned, torch.full((3, 1), math.exp(-3.0), dtype=torch.float64))


def test_bad_choices_name_valid_ones(sched):
    with pytest.raises(ValueError, match="eps"):
        D.Diffusion(sched, param="score")
    with pytest.raises(ValueError, match="fixed_small"):
        D.Diffusion(sched, var="tiny")
    with pytest.raises(ValueError, match="hybrid"):
        D.get_loss("l1")


def test_step_size_bound_outputs_refuse_respacing(sched):
    for param, var in [("mu", "fixed_small"), ("eps", "learned")]:
        with pytest.raises(ValueError, match="respace"):
            D.Diffusion(sched, param, var).respace("50")
    assert D.Diffusion(sched, "v", "learned_range").respace("50").T == 50


def test_respace_takes_a_number_of_steps(sched):
    diff = D.Diffusion(sched, "eps", "fixed_small")
    for n in (1, 50, sched.T - 1):
        by_int, by_str = diff.respace(n).schedule, diff.respace(str(n)).schedule
        assert by_int.T == n and torch.equal(by_int.betas, by_str.betas)
        assert torch.equal(by_int.timestep_map, by_str.timestep_map)
    assert diff.respace(np.int64(50)).schedule.T == 50
    # n >= T is the chain itself, even for the outputs that refuse to be respaced
    for d in (diff, D.Diffusion(sched, "mu", "fixed_small"), D.Diffusion(sched, "eps", "learned")):
        assert d.respace(sched.T) is d and d.respace(10 * sched.T) is d
    with pytest.raises(ValueError, match="respace"):
        D.Diffusion(sched, "mu", "fixed_small").respace(50)
    with pytest.raises(ValueError):
        diff.respace(0)
    with pytest.raises(TypeError, match="bool"):
        diff.respace(True)


def test_normal_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    lv1, lv2 = torch.randn(100, generator=g, dtype=torch.float64), torch.randn(100, generator=g, dtype=torch.float64)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(m1, (0.5 * lv1).exp()),
                                            torch.distributions.Normal(m2, (0.5 * lv2).exp()))
    assert torch.allclose(D.normal_kl(m1, lv1, m2, lv2), ref, atol=1e-12)


def test_discretized_gaussian_sums_to_one_over_the_256_bins():
    bins = torch.linspace(-1, 1, 256, dtype=torch.float64)
    for mean, log_scale in [(0.0, -2.0), (0.7, -4.0), (-0.99, -1.0), (0.3, 1.0)]:
        lp = D.discretized_gaussian_log_likelihood(bins, torch.tensor(mean, dtype=torch.float64),
                                                   torch.tensor(log_scale, dtype=torch.float64))
        assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)
        assert bool((lp <= 0).all())


def test_prior_term_is_closed_form_kl():
    sched = S.linear(1000)
    x0 = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    ab = sched.alpha_bar[-1].item()
    ref = 0.5 * (-1 - math.log(1 - ab) + (1 - ab) + ab * x0**2).mean() / math.log(2)
    assert D.prior_bpd(sched, x0).item() == pytest.approx(ref.item(), rel=1e-10)


def test_cheating_model_makes_every_kl_zero():
    """A model that knows x_0 and returns the true posterior mean with fixed-small variance has
    L_{t-1} = 0 at every step; the total equals the sum of its parts; the decoder term is the
    closed-form cost of a bin under N(x_0, beta_tilde_1) (the clipped variance is wider than a bin)."""
    sched = S.linear(200)
    diff = D.Diffusion(sched, "mu", "fixed_small", clip_denoised=False)
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, (4, 3, 4, 4), generator=g).double() / 127.5 - 1)

    def cheat(x_t, t):
        return D.q_posterior(sched, x0, x_t, t)[0]

    res = D.nll_bpd(cheat, diff, x0, generator=g)
    assert res["terms"][:, 1:].abs().max().item() < 1e-10
    sd = sched.beta_tilde[1].sqrt().item()
    normal = torch.distributions.Normal(0.0, sd)
    inner = normal.cdf(torch.tensor(1 / 255)) - normal.cdf(torch.tensor(-1 / 255))
    edge = normal.cdf(torch.tensor(1 / 255))  # the edge bins are open towards +-inf
    p_bin = torch.where(x0.abs() > 0.999, edge, inner)
    ref = -(p_bin.log2()).reshape(4, -1).mean(1)
    assert torch.allclose(res["terms"][:, 0], ref.double(), rtol=1e-4)
    assert torch.allclose(res["total"], res["prior"] + res["terms"].sum(1))


def test_kl_terms_never_negative_for_arbitrary_models():
    sched = S.cosine(100)
    g = torch.Generator().manual_seed(3)
    x0 = (torch.randint(0, 256, (3, 1, 4, 4), generator=g).double() / 127.5 - 1)
    for param, var in [("eps", "fixed_large"), ("x0", "learned_range"), ("mu", "learned"), ("v", "fixed_small")]:
        diff = D.Diffusion(sched, param, var)
        C = diff.out_channels(1)
        rand = lambda x, t: torch.randn(x.shape[0], C, *x.shape[2:], generator=g, dtype=torch.float64)
        res = D.nll_bpd(rand, diff, x0, generator=g)
        assert res["terms"].min().item() >= -1e-12
        assert torch.allclose(res["total"], res["prior"] + res["terms"].sum(1))
        assert res["total"].min().item() > 0


def test_hybrid_loss_stops_gradient_through_the_mean():
    sched = S.linear(100)
    diff = D.Diffusion(sched, "eps", "learned_range")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 4, 4, generator=g) * 2 - 1
    t = torch.tensor([0, 10, 50, 99])
    eps = torch.randn(x0.shape, generator=g)
    raw = torch.randn(4, 2, 4, 4, generator=g)

    def grads(loss_fn):
        out = raw.clone().requires_grad_(True)
        loss_fn(lambda x, t: out, diff, x0, t, eps).sum().backward()
        return out.grad

    g_hybrid, g_simple = grads(D.loss_hybrid), grads(D.loss_simple)
    assert torch.allclose(g_hybrid[:, :1], g_simple[:, :1], atol=1e-7)  # mean: L_simple only
    assert g_hybrid[:, 1:].abs().sum() > 0 and g_simple[:, 1:].abs().sum() == 0  # variance: L_vlb only
    vlb = D.loss_vlb(lambda x, t: raw, diff, x0, t, eps)
    simple = D.loss_simple(lambda x, t: raw, diff, x0, t, eps)
    hybrid = D.loss_hybrid(lambda x, t: raw, diff, x0, t, eps)
    assert torch.allclose(hybrid, simple + 0.001 * vlb.to(simple.dtype), rtol=1e-5)


def test_losses_are_per_example_and_simple_targets_are_right():
    sched = S.linear(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(5, 1, 4, 4, generator=g) * 2 - 1
    t = torch.randint(0, 1000, (5,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    for param in D.PARAMETRIZATIONS:
        diff = D.Diffusion(sched, param)
        perfect = lambda x, tt: D.target(diff, x0, D.q_sample(sched, x0, t, eps), t, eps)
        loss = D.loss_simple(perfect, diff, x0, t, eps)
        assert loss.shape == (5,) and loss.max().item() < 1e-10


def test_stratified_bound_is_unbiased_and_variants_share_one_pass():
    sched = S.linear(100)
    small, large = D.Diffusion(sched, "eps", "fixed_small"), D.Diffusion(sched, "eps", "fixed_large")
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, (64, 1, 2, 2), generator=g).double() / 127.5 - 1)
    w = torch.randn(1, dtype=torch.float64, generator=g)
    model = lambda x, t: 0.3 * x + w  # a fixed, imperfect "network"
    exact = D.nll_bpd(model, {"small": small, "large": large}, x0, generator=g)
    assert set(exact) == {"small", "large"}
    assert not torch.allclose(exact["small"]["total"], exact["large"]["total"])
    single = D.nll_bpd(model, small, x0, generator=torch.Generator().manual_seed(5))
    # the mean over examples of the exact bound is stable across noise draws at this batch size
    assert single["total"].mean().item() == pytest.approx(exact["small"]["total"].mean().item(), rel=0.02)
    est = torch.tensor([D.nll_bpd(model, small, x0, generator=torch.Generator().manual_seed(s), n_steps=10)["total"].mean()
                        for s in range(60)])
    ref = torch.tensor([D.nll_bpd(model, small, x0, generator=torch.Generator().manual_seed(100 + s))["total"].mean()
                        for s in range(5)])
    se = (est.var() / len(est) + ref.var() / len(ref)).sqrt()
    assert (est.mean() - ref.mean()).abs() < 4 * se, (est.mean(), ref.mean(), se)
    # clipped and unclipped from one pass: each equals its own single-variant call
    both = D.nll_bpd(model, {"c": small, "u": small}, x0, generator=torch.Generator().manual_seed(7),
                     clip_denoised={"c": True, "u": False})
    for k, clip in (("c", True), ("u", False)):
        one = D.nll_bpd(model, small, x0, generator=torch.Generator().manual_seed(7), clip_denoised=clip)
        torch.testing.assert_close(both[k]["total"], one["total"])
        assert both[k]["clip_denoised"] is clip
    assert not torch.allclose(both["c"]["total"], both["u"]["total"])
    with pytest.raises(ValueError, match="variants"):
        D.nll_bpd(model, {"c": small}, x0, clip_denoised={"x": True})
    r = D.nll_bpd(model, small, x0, generator=g, n_steps=10)
    evaluated = (r["terms"] != 0).any(0)
    assert 5 <= evaluated.sum().item() <= 12 and r["weights"].sum().item() == 100
    assert torch.equal(evaluated, r["weights"] > 0) and evaluated[:3].all()  # the first steps exactly
    assert evaluated[-1] and r["weights"][-1] == 1  # and the last one, which can be a spike


def test_stratified_bound_never_misses_a_spike_at_the_last_step():
    sched = S.cosine(200)  # beta clipped at 0.999 at the end
    d = D.Diffusion(sched, "eps", "fixed_small")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(16, 1, 2, 2, generator=g).double() * 2 - 1
    ab = torch.as_tensor(sched.alpha_bar)

    def model(x, t):  # the exact eps of x_t given x0, off by 0.05 at the last step only
        eps = (x - ab[t].sqrt().view(-1, 1, 1, 1) * x0) / (1 - ab[t]).sqrt().view(-1, 1, 1, 1)
        return eps + 0.05 * (t == sched.T - 1).double().view(-1, 1, 1, 1)

    # the unclipped process: with x_0 clipped, the amplified eps error at t = T is clipped away (the
    # test below of the clipped bound shows that difference)
    exact = D.nll_bpd(model, d, x0, generator=torch.Generator().manual_seed(1), clip_denoised=False)
    assert exact["terms"][:, -1].mean() > 0.4 * exact["total"].mean()  # the spike is a large part of the bound
    for s in range(5):
        est = D.nll_bpd(model, d, x0, generator=torch.Generator().manual_seed(10 + s), n_steps=8, clip_denoised=False)
        assert est["total"].mean().item() == pytest.approx(exact["total"].mean().item(), rel=0.05)


def test_rate_distortion_bookkeeping():
    terms = torch.tensor([[0.5, 0.1, 0.2, 0.3]], dtype=torch.float64)
    res = dict(terms=terms, prior=torch.tensor([0.05], dtype=torch.float64),
               x0_mse=torch.tensor([[0.0, 0.01, 0.04, 0.09]], dtype=torch.float64))
    rd = D.rate_distortion(res)
    assert torch.allclose(rd["rate"], torch.tensor([0.65, 0.55, 0.35, 0.05], dtype=torch.float64))
    assert rd["lossless"].item() == pytest.approx(1.15)
    assert torch.allclose(rd["distortion"], torch.tensor([0.0, 0.1, 0.2, 0.3], dtype=torch.float64) * 127.5)


# ---- the bound of the clipped reverse process, against a second implementation ---------------------
def _reference_bpd(betas, model, x0, eps_per_step, clip: bool, tanh_cdf: bool = False):
    """The variational bound in bits/dim, written from DDPM Eq. 5-7, 13 and Improved DDPM Eq. 15 with
    numpy in float64, as improved-diffusion's ``calc_bpd_loop`` evaluates it (x_0 clipped when ``clip``;
    its tanh approximation of the normal CDF when ``tanh_cdf``). Only the betas come from the library."""
    import numpy as np
    from math import erf

    b = betas.numpy()
    a = 1 - b
    ab = np.cumprod(a)
    ab_prev = np.append(1.0, ab[:-1])
    post_var = b * (1 - ab_prev) / (1 - ab)
    post_logvar = np.log(np.append(post_var[1], post_var[1:]))
    c1, c2 = b * np.sqrt(ab_prev) / (1 - ab), (1 - ab_prev) * np.sqrt(a) / (1 - ab)
    x = x0.numpy()
    C = x.shape[1]
    if tanh_cdf:
        cdf = lambda z: 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))
    else:
        cdf = np.vectorize(lambda z: 0.5 * (1.0 + erf(z / np.sqrt(2.0))))
    kl = lambda m1, lv1, m2, lv2: 0.5 * (-1 + lv2 - lv1 + np.exp(lv1 - lv2) + (m1 - m2) ** 2 * np.exp(-lv2))
    flat = lambda v: v.reshape(v.shape[0], -1).mean(1)
    total = np.zeros(x.shape[0])
    T = len(b)
    for t in range(T):
        e = eps_per_step[t].numpy()
        x_t = np.sqrt(ab[t]) * x + np.sqrt(1 - ab[t]) * e
        out = model(torch.from_numpy(x_t), torch.full((x.shape[0],), float(t), dtype=torch.float64)).numpy()
        eps_hat, v = out[:, :C], out[:, C:]
        frac = (v + 1) / 2  # learned range (Improved DDPM Eq. 15)
        logvar = frac * np.log(b[t]) + (1 - frac) * post_logvar[t]
        x0_hat = np.sqrt(1 / ab[t]) * x_t - np.sqrt(1 / ab[t] - 1) * eps_hat
        if clip:
            x0_hat = np.clip(x0_hat, -1, 1)
        mean = c1[t] * x0_hat + c2[t] * x_t
        if t == 0:  # discretised decoder (DDPM Eq. 13), edge bins open
            inv = np.exp(-0.5 * logvar)
            up, lo = cdf(inv * (x - mean + 1 / 255)), cdf(inv * (x - mean - 1 / 255))
            logp = np.where(x < -0.999, np.log(np.maximum(up, 1e-12)),
                            np.where(x > 0.999, np.log(np.maximum(1 - lo, 1e-12)), np.log(np.maximum(up - lo, 1e-12))))
            total += -flat(logp) / np.log(2)
        else:
            true_mean = c1[t] * x + c2[t] * x_t
            total += flat(kl(true_mean, post_logvar[t], mean, logvar)) / np.log(2)
    prior = flat(kl(np.sqrt(ab[-1]) * x, np.log(1 - ab[-1]), 0.0, 0.0)) / np.log(2)
    return total + prior


@pytest.mark.parametrize("clip", [True, False])
def test_nll_bpd_equals_a_second_implementation_of_the_clipped_bound(clip):
    T, B, C = 30, 6, 2
    sched = S.cosine(T)
    diff = D.Diffusion(sched, "eps", "learned_range")

    def model(x, t):  # a fixed network whose x_0 predictions leave [-1, 1], so clipping matters
        return torch.cat([0.8 * torch.tanh(2 * x) + 0.02 * t[:, None, None, None] / T, torch.sin(3 * x)], 1)

    g = torch.Generator().manual_seed(0)
    x0 = torch.randint(0, 256, (B, C, 4, 4), generator=g).double() / 127.5 - 1
    ours = D.nll_bpd(model, diff, x0, generator=torch.Generator().manual_seed(7), clip_denoised=clip)
    g = torch.Generator().manual_seed(7)  # nll_bpd draws eps per step from T-1 down to 0
    eps = {t: torch.randn(x0.shape, generator=g, dtype=x0.dtype) for t in range(T - 1, -1, -1)}
    ref = _reference_bpd(sched.betas, model, x0, eps, clip)
    assert ours["clip_denoised"] is clip
    # float64 round-off; unclipped, x_0 = x_t / sqrt(alpha_bar) amplifies it ~1e4-fold near t = T
    assert np.allclose(ours["total"].numpy(), ref, rtol=1e-12 if clip else 1e-7, atol=1e-9), (ours["total"], ref)
    # improved-diffusion's tanh approximation of the CDF moves only the decoder term, and only a little
    approx = _reference_bpd(sched.betas, model, x0, eps, clip, tanh_cdf=True)
    assert np.abs(approx - ref).max() < 0.05  # measured: 0.011 bits/dim on this deliberately poor model
    if clip:  # and clipping does change the bound of this model
        unclipped = _reference_bpd(sched.betas, model, x0, eps, False)
        assert np.abs(unclipped - ref).max() > 1e-3
