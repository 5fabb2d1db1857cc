"""Samplers driven by the exact denoiser of a Gaussian mixture must reproduce the mixture.

Tolerances (10,000 samples, 2-D mixture ``oracle.example_2d``): component weights within 0.03,
mean within 0.05, covariance entries within 0.08, mean log-likelihood under the true mixture within
0.25 nats of the data's own. The Monte-Carlo error alone is about 0.01 for the weights and means.
"""
import pytest
import torch

from ddpm_lib import diffusion as D
from ddpm_lib import nets
from ddpm_lib import oracle as O
from ddpm_lib import sampling as smp
from ddpm_lib import schedules as S

N = 10_000


@pytest.fixture(scope="module")
def setup():
    gm = O.example_2d()
    sched = S.linear(1000)
    diff = D.Diffusion(sched, "eps", "fixed_small", clip_denoised=False)
    data = gm.sample(N, torch.Generator().manual_seed(123))[0]
    return gm, sched, diff, data


def assert_matches_mixture(gm, x, data, weights=None):
    comp = gm.responsibilities(x, 1.0).argmax(1)
    freq = torch.bincount(comp, minlength=gm.K).double() / len(x)
    w = gm.weights if weights is None else weights
    assert (freq - w).abs().max().item() < 0.03, (freq, w)
    ref_mean = (w[:, None] * gm.means).sum(0)
    assert (x.mean(0) - ref_mean).abs().max().item() < 0.05
    ref_data = data
    assert (torch.cov(x.T) - torch.cov(ref_data.T)).abs().max().item() < 0.08
    assert abs(gm.log_prob(x).mean().item() - gm.log_prob(ref_data).mean().item()) < 0.25


@pytest.mark.parametrize("name,spacing,sampler", [
    ("ancestral, 1000 steps", None, smp.ancestral),
    ("ancestral respaced, 100 steps", "100", smp.ancestral),
    ("DDIM eta=0, 50 steps", "ddim50", smp.ddim),
])
def test_oracle_samplers_reproduce_the_mixture(setup, name, spacing, sampler):
    gm, sched, diff, data = setup
    d = diff.respace(spacing) if spacing else diff
    g = torch.Generator().manual_seed(7)
    x = sampler(gm.model(sched), d, smp.noise_like((N, 2), g), generator=g)
    assert_matches_mixture(gm, x, data)


def test_a_wrong_denoiser_fails_the_same_check(setup):
    """The check above can fail: a denoiser for another mixture does not pass it."""
    gm, sched, diff, data = setup
    other = O.GaussianMixture(gm.weights.flip(0), gm.means, gm.covs)
    g = torch.Generator().manual_seed(7)
    x = smp.ddim(other.model(sched), diff.respace("ddim50"), smp.noise_like((N, 2), g))
    with pytest.raises(AssertionError):
        assert_matches_mixture(gm, x, data)


def test_samplers_are_deterministic_given_a_generator(setup):
    gm, sched, diff, _ = setup
    d = diff.respace("20")
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(5)
        runs.append(smp.ancestral(gm.model(sched), d, smp.noise_like((64, 2), g), generator=g))
    assert torch.equal(runs[0], runs[1])


def test_step_generators_yield_the_chain(setup):
    gm, sched, diff, _ = setup
    d = diff.respace("10")
    g = torch.Generator().manual_seed(0)
    xT = smp.noise_like((32, 2), g)
    steps = list(smp.ddim_steps(gm.model(sched), d, xT, eta=0.0))
    assert [i for i, _, _ in steps] == list(range(9, -1, -1))
    assert torch.equal(steps[-1][1], smp.ddim(gm.model(sched), d, xT))
    # at the last step the state equals the predicted x_0 (DDIM with eta = 0 lands on it)
    assert torch.allclose(steps[-1][1], steps[-1][2])


def test_ddim_eta_one_matches_ancestral_marginals(setup):
    gm, sched, diff, data = setup
    g = torch.Generator().manual_seed(9)
    d = diff.respace("100")
    x = smp.ddim(gm.model(sched), d, smp.noise_like((N, 2), g), eta=1.0, generator=g)
    assert_matches_mixture(gm, x, data)
    with pytest.raises(ValueError):
        next(smp.ddim_steps(gm.model(sched), d, x, eta=1.5))


def test_ddim_inversion_returns_the_start_point(setup):
    gm, sched, diff, data = setup
    x0 = data[:500]
    d = diff.respace("ddim200")
    xT = smp.ddim_invert(gm.model(sched), d, x0, fixed_point_iters=10)
    err = (smp.ddim(gm.model(sched), d, xT) - x0).norm(dim=1)
    assert err.max().item() < 1e-3
    # the plain first-order inversion improves with more steps
    plain = [(smp.ddim(gm.model(sched), diff.respace(s), smp.ddim_invert(gm.model(sched), diff.respace(s), x0))
              - x0).norm(dim=1).median().item() for s in ("ddim50", "ddim200")]
    assert plain[1] < plain[0] / 2
    # and the encoding is Gaussian-looking: unit variance per coordinate
    assert 0.7 < xT.std(0).min().item() and xT.std(0).max().item() < 1.3


def test_classifier_free_guidance_at_scale_one_is_conditional_sampling(setup):
    gm, sched, diff, _ = setup
    d = diff.respace("50")
    cond, uncond = gm.model(sched, y=1), gm.model(sched)
    runs = []
    for m in (smp.classifier_free(cond, uncond, 1.0), cond):
        g = torch.Generator().manual_seed(11)
        runs.append(smp.ancestral(m, d, smp.noise_like((256, 2), g), generator=g))
    assert torch.allclose(runs[0], runs[1], atol=1e-10)
    # scale 0 is the unconditional model
    x = torch.randn(16, 2, dtype=torch.float64)
    t = torch.full((16,), 300)
    assert torch.allclose(smp.classifier_free(cond, uncond, 0.0)(x, t), uncond(x, t))


def test_classifier_guidance_eps_form_is_exact_at_scale_one(setup):
    gm, sched, diff, _ = setup
    d = diff.respace("ddim50")
    guided = smp.classifier_guidance(gm.model(sched), gm.classifier_grad(sched, 1), d, 1.0, form="eps")
    x = torch.randn(64, 2, dtype=torch.float64)
    t = d.schedule.timestep_map[torch.randint(0, 50, (64,))]
    assert torch.allclose(guided(x, t), gm.model(sched, y=1)(x, t), atol=1e-8)


def test_classifier_guidance_mean_form_samples_the_class_conditional(setup):
    gm, sched, diff, _ = setup
    y = 1  # two of the three components
    cond_gm = gm.subset(y)
    g = torch.Generator().manual_seed(3)
    data_y = cond_gm.sample(N, g)[0]
    d = diff.respace("250")
    guided = smp.classifier_guidance(gm.model(sched), gm.classifier_grad(sched, y), d, 1.0, form="mean")
    x = smp.ancestral(guided, d, smp.noise_like((N, 2), g), generator=g)
    w = torch.zeros(gm.K, dtype=torch.float64)
    w[gm.labels == y] = cond_gm.weights
    assert_matches_mixture(gm, x, data_y, weights=w)
    # a larger scale sharpens towards the class: fewer samples near the other class
    strong = smp.classifier_guidance(gm.model(sched), gm.classifier_grad(sched, y), diff.respace("100"), 4.0)
    xs = smp.ancestral(strong, diff.respace("100"), smp.noise_like((2000, 2), g), generator=g)
    p_y = gm.class_log_prob(xs, 1.0)[:, y].exp().mean()
    p_y1 = gm.class_log_prob(x[:2000], 1.0)[:, y].exp().mean()
    assert p_y >= p_y1 - 1e-3


def test_guidance_form_is_validated(setup):
    gm, sched, diff, _ = setup
    with pytest.raises(ValueError, match="mean"):
        smp.classifier_guidance(gm.model(sched), gm.classifier_grad(sched, 0), diff, 1.0, form="score")
    with pytest.raises(TypeError, match="sampling.ancestral"):  # a name, not the sampler: say what to pass
        smp.sample_batched("ancestral", gm.model(sched), diff, 1, (2,))


def test_sample_batched_takes_the_sampler_and_is_reproducible_from_its_seed(setup):
    gm, sched, diff, _ = setup
    d = diff.respace(20)
    run = lambda sampler, seed=0: smp.sample_batched(sampler, gm.model(sched), d, 5, (2,), seed=seed,  # noqa: E731
                                                     batch_size=2)
    x = run(smp.ddim)
    assert x.shape == (5, 2) and x.dtype == torch.float32
    assert torch.equal(x, run(smp.ddim))
    assert not torch.equal(x, run(smp.ddim, seed=1)) and not torch.equal(x, run(smp.ancestral))
    with pytest.raises(TypeError, match="sampling.ancestral, sampling.ddim"):
        run("ddim")  # a name: the error says what to pass


def test_starting_mid_chain_and_the_ddpm_figures(setup):
    gm, sched, diff, data = setup
    d = diff.respace("100")
    model = gm.model(sched)
    x0 = data[:64]
    # from step 0 the reverse process only removes the tiny first-step noise
    shared = smp.samples_from_shared_xt(model, d, x0, t=0, n=3, seed=1)
    assert shared.shape == (3, 64, 2) and (shared - x0).abs().max() < 0.1
    # from a middle step the samples vary but stay near their source's component; from the top they forget it
    comp = gm.responsibilities(x0, 1.0).argmax(1)
    mid = smp.samples_from_shared_xt(model, d, x0, t=10, n=3, seed=1)  # alpha_bar 0.89
    top = smp.samples_from_shared_xt(model, d, x0, t=99, n=3, seed=1)  # chance: sum of w_k^2 = 0.38
    keep = lambda s: (gm.responsibilities(s.reshape(-1, 2), 1.0).argmax(1) == comp.repeat(3)).double().mean()
    assert keep(mid) > 0.9 and keep(top) < 0.5
    assert (mid[0] - mid[1]).abs().max() > 1e-3
    # interpolation: the end points decode their own latents, the rows differ only through lambda
    lam = [0.0, 0.5, 1.0]
    rows = smp.interpolate(model, d, x0[:32], x0[32:], t=5, lambdas=lam, seed=2)
    assert rows.shape == (3, 32, 2)
    same = lambda s, c: (gm.responsibilities(s, 1.0).argmax(1) == c).double().mean()
    assert same(rows[0], comp[:32]) > 0.9 and same(rows[2], comp[32:]) > 0.9
    with pytest.raises(ValueError, match="start"):
        smp.ancestral(model, d, x0, start=100)


# ---- sampler hooks ---------------------------------------------------------------------------------
def _two_corners():
    """Two tight modes at (-2, -2) and (2, 2): the second coordinate is fixed by the first."""
    return O.GaussianMixture(torch.ones(2), torch.tensor([[-2.0, -2.0], [2.0, 2.0]]), torch.full((2,), 0.05**2))


@pytest.mark.parametrize("sampler", [smp.ancestral, smp.ddim])
def test_denoised_fn_identity_and_clamp_match_the_builtin_paths(sampler):
    gm = O.example_2d()
    sched = S.respace(S.linear(1000), "25")
    diff = D.Diffusion(sched, "eps", "fixed_small", clip_denoised=False)
    clipped = D.Diffusion(sched, "eps", "fixed_small", clip_denoised=True)
    model = gm.model(S.linear(1000))
    x_T = smp.noise_like((500, 2), torch.Generator().manual_seed(0))
    run = lambda d, **h: sampler(model, d, x_T, generator=torch.Generator().manual_seed(1), **h)  # noqa: E731
    assert torch.allclose(run(diff, denoised_fn=lambda x0: x0), run(diff), atol=1e-12)
    assert torch.allclose(run(diff, denoised_fn=lambda x0: x0.clamp(-1, 1)), run(clipped), atol=1e-12)
    assert not torch.allclose(run(diff), run(clipped))  # the clamp changes something on this mixture


@pytest.mark.parametrize("hook", ["step_fn", "denoised_fn"])
def test_inpainting_by_replacement_fills_the_unknown_coordinate_from_the_known_one(hook):
    gm = _two_corners()
    sched = S.linear(1000)
    diff = D.Diffusion(S.respace(sched, "100"), "eps", "fixed_small", clip_denoised=False)
    n = 400
    known = torch.zeros(n, 2, dtype=torch.float64)
    known[:, 0] = torch.where(torch.arange(n) % 2 == 0, 2.0, -2.0)  # first coordinate given, second unknown
    mask = torch.tensor([1.0, 0.0]).expand(n, 2)
    g = torch.Generator().manual_seed(4)
    hooks = ({"step_fn": smp.replace_known(diff, known, mask, g)} if hook == "step_fn"
             else {"denoised_fn": smp.keep_known_x0(known, mask)})
    x = smp.ancestral(gm.model(sched), diff, smp.noise_like((n, 2), g), generator=g, **hooks)
    if hook == "step_fn":
        assert torch.equal(x[:, 0], known[:, 0])  # the known region is exactly the given one
    agree = (torch.sign(x[:, 1]) == torch.sign(known[:, 0])).double().mean().item()
    assert agree > 0.9, agree
    free = smp.ancestral(gm.model(sched), diff, smp.noise_like((n, 2), torch.Generator().manual_seed(4)),
                         generator=torch.Generator().manual_seed(5))
    assert (torch.sign(free[:, 1]) == torch.sign(known[:, 0])).double().mean().item() < 0.7  # without the hook: chance


def test_temperature_scales_the_fresh_noise():
    gm = O.GaussianMixture(torch.ones(1), torch.zeros(1, 2), torch.ones(1))  # N(0, I)
    sched = S.linear(1000)
    diff = D.Diffusion(S.respace(sched, "50"), "eps", "fixed_small", clip_denoised=False)
    x_T = smp.noise_like((4000, 2), torch.Generator().manual_seed(0))
    std = {tau: smp.ancestral(gm.model(sched), diff, x_T, generator=torch.Generator().manual_seed(1),
                              temperature=tau).std().item()
           for tau in (1.0, 0.5, 0.0)}
    assert std[1.0] > 0.85  # (50 fixed-small steps shrink N(0, I) a little even at temperature 1)
    assert std[0.0] < std[0.5] < std[1.0] - 0.05
    a = smp.ancestral(gm.model(sched), diff, x_T, generator=torch.Generator().manual_seed(1), temperature=0.0)
    b = smp.ancestral(gm.model(sched), diff, x_T, generator=torch.Generator().manual_seed(2), temperature=0.0)
    assert torch.equal(a, b)  # no fresh noise at temperature 0


def test_guided_by_any_conditioning_equals_the_two_model_form():
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(0.5))

        def forward(self, x, t, tokens=None):
            return x * self.w + tokens.float().sum(1, keepdim=True)

    net = Net()
    tok, empty = torch.tensor([[1, 2], [3, 0]]), torch.zeros(2, 2, dtype=torch.long)
    x, t = torch.randn(2, 1), torch.tensor([3.0, 3.0])
    g = smp.guided_by(net, 3.0, {"tokens": tok}, {"tokens": empty})(x, t)
    want = net(x, t, empty) + 3.0 * (net(x, t, tok) - net(x, t, empty))
    assert torch.allclose(g, want)


def test_coupled_samples_share_their_random_numbers():
    class Zero(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, t, *a, **kw):
            return torch.zeros_like(x) * self.w

    d, m = D.Diffusion(S.linear(100), "eps", "fixed_large").respace(20), nets.as_model(Zero())
    full = smp.coupled_ancestral(m, d, 200, (1, 2, 2), 19, seed=0)
    assert torch.equal(full, smp.coupled_ancestral(m, d, 200, (1, 2, 2), 19, seed=0))
    skip = smp.coupled_ancestral(m, d, 200, (1, 2, 2), 15, seed=0)
    other = smp.coupled_ancestral(m, d, 200, (1, 2, 2), 15, seed=1)
    corr = lambda a, b: float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])  # noqa: E731
    assert corr(full, skip) > 0.5 > abs(corr(full, other))
