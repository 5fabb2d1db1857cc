"""The sigma (EDM) view: preconditioning identities, PF-ODE samplers against exact solutions, DDIM = Euler.

Exact references: the Gaussian-mixture oracle (E[x_0 | x_sigma] = the oracle's posterior mean at
alpha_bar = 1 / (1 + sigma^2) and x_VP = x / sqrt(1 + sigma^2)), and for Gaussian data N(0, S) the
closed-form PF-ODE flow x(sigma_b) = x(sigma_a) sqrt((S + sigma_b^2) / (S + sigma_a^2)).
"""
import pytest
import torch
import torch.nn as nn

from ddpm_lib import diffusion as D
from ddpm_lib import karras as K
from ddpm_lib import metrics
from ddpm_lib import oracle as O
from ddpm_lib import sampling as smp
from ddpm_lib import schedules as S

SIGMAS = torch.logspace(-3, 2, 11, dtype=torch.float64)


def exact_denoiser(gm: O.GaussianMixture, sigma_scale: float = 1.0) -> K.Denoise:
    """E[x_0 | x_0 + sigma n = x]; ``sigma_scale`` != 1 makes a deliberately wrong one."""
    def denoise(x, sigma):
        s = sigma * sigma_scale
        return gm.x0_mean(x / (1 + s[:, None] ** 2).sqrt(), 1 / (1 + s**2))
    return denoise


def gaussian_denoiser(var: torch.Tensor) -> K.Denoise:
    """Data N(0, diag(var)): E[x_0 | x] = var / (var + sigma^2) x."""
    return lambda x, sigma: var / (var + sigma[:, None] ** 2) * x


def gaussian_flow(x, var, sa, sb):
    """The exact PF-ODE map from sigma_a to sigma_b for data N(0, diag(var))."""
    return x * ((var + sb**2) / (var + sa**2)).sqrt()


# ---- (a) DDIM (eta = 0) on a respaced chain is Euler on the chain's sigmas --------------------
@pytest.mark.parametrize("clip", [False, True])
def test_ddim_equals_euler_on_the_chains_sigmas(clip):
    gm, sched = O.example_2d(), S.linear(1000)
    diff = D.Diffusion(sched, "eps", clip_denoised=clip).respace("ddim25")
    model = gm.model(sched)
    x_T = smp.noise_like((500, 2), torch.Generator().manual_seed(0))
    sig = K.discrete_sigmas(diff.schedule)
    ddim = [x for _, x, _ in smp.ddim_steps(model, diff, x_T)]
    clamp = (lambda x0: x0.clamp(-1, 1)) if clip else None
    euler = [x for _, x, _ in K.euler_steps(K.vp_denoiser(model, diff.schedule), x_T * (1 + sig[0] ** 2).sqrt(),
                                            sig, denoised_fn=clamp)]
    # DDIM's state after step i is sqrt(alpha_bar_prev) times Euler's x at the next sigma
    scale = diff.schedule.alpha_bar_prev.flip(0).sqrt()
    err = max((xd - s * xe).abs().max().item() for xd, xe, s in zip(ddim, euler, scale))
    assert len(ddim) == len(euler) == 25
    assert err < 1e-10, err
    # the tolerance means something: the same Euler with a denoiser 1% off in sigma is far away
    off = K.euler(lambda x, s: K.vp_denoiser(model, diff.schedule)(x, s * 1.01), x_T * (1 + sig[0] ** 2).sqrt(), sig,
                  denoised_fn=clamp)
    assert (off - ddim[-1]).abs().max().item() > 1e-4


# ---- (b) Heun driven by the exact denoiser reproduces the mixture ----------------------------
def test_heun_with_the_exact_denoiser_reproduces_the_mixture():
    """Energy distance to fresh mixture samples (N = 4,000 each; two fresh sets: |ED| ~ 1e-3) below
    2.5e-3, while sigma scaled by 1.2 or 2, or the weights of another mixture, land above it."""
    gm, n = O.example_2d(), 4000
    sig = S.karras_sigmas(40)
    z = smp.noise_like((n, 2), torch.Generator().manual_seed(0))
    ref = gm.sample(n, torch.Generator().manual_seed(1))[0]
    calls = []

    def counted(x, s):
        calls.append(1)
        return exact_denoiser(gm)(x, s)

    ed = metrics.energy_distance(K.heun(counted, sig[0] * z, sig), ref)
    assert len(calls) == 2 * 40 - 1  # Algorithm 1: no correction on the last step to sigma = 0
    assert ed < 2.5e-3, ed
    other = O.GaussianMixture(gm.weights.flip(0), gm.means, gm.covs)
    for wrong in (exact_denoiser(gm, 1.2), exact_denoiser(gm, 2.0), exact_denoiser(other)):
        assert metrics.energy_distance(K.heun(wrong, sig[0] * z, sig), ref) > 2.5e-3


def test_heun_is_second_order_and_euler_first_order():
    """On Gaussian data the flow is known: halving the steps cuts Heun's error ~4x and Euler's ~2x."""
    var = torch.tensor([0.25, 0.04], dtype=torch.float64)
    x = 80 * smp.noise_like((64, 2), torch.Generator().manual_seed(0))
    exact = gaussian_flow(x, var, 80.0, 0.002)
    errs = {}
    for name, solver in (("euler", K.euler), ("heun", K.heun)):
        grids = [S.karras_sigmas(n, append_zero=False) for n in (32, 64)]
        errs[name] = [(solver(gaussian_denoiser(var), x, grid) - exact).abs().max().item() for grid in grids]
    # measured: Heun 0.0247 -> 0.0058 (4.3x), Euler 0.138 -> 0.069 (2.0x); |x(sigma_min)| up to 1.6
    assert 3.6 < errs["heun"][0] / errs["heun"][1] < 4.6, errs
    assert 1.8 < errs["euler"][0] / errs["euler"][1] < 2.2, errs
    assert errs["heun"][1] < 0.01, errs


def test_stochastic_iterative_samples_the_data_with_the_exact_consistency_function():
    """f(x, sigma) = the exact flow to sigma_min; re-noising with sqrt(sigma^2 - sigma_min^2) keeps the
    marginal N(0, S + sigma_min^2); dropping the re-noise shrinks it."""
    var, smin = torch.tensor([0.25, 0.04], dtype=torch.float64), 0.002
    f = lambda x, s: gaussian_flow(x, var, s[:, None], smin)  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x = 80 * smp.noise_like((50000, 2), g)
    out = K.stochastic_iterative(f, x, [80.0, 0.8, 0.2], sigma_min=smin, generator=g)
    rel = (out.var(0) / (var + smin**2) - 1).abs().max().item()
    assert rel < 0.04, rel  # Monte-Carlo sd of a variance estimate: sqrt(2 / 50,000) = 0.6%
    no_noise = K.stochastic_iterative(f, x, [80.0, 0.8], sigma_min=0.8)  # re-noise sqrt(0.8^2 - 0.8^2) = 0
    assert (no_noise.var(0) / (var + smin**2) - 1).abs().max().item() > 0.2


# ---- (c) preconditioning ---------------------------------------------------------------------
def test_preconditioning_identities():
    sd, s = 0.5, SIGMAS
    torch.testing.assert_close(K.c_out(s, sd) ** 2 * K.loss_weight(s, sd), torch.ones_like(s), rtol=1e-12, atol=0)
    torch.testing.assert_close(K.c_in(s, sd) ** 2 * (s**2 + sd**2), torch.ones_like(s), rtol=1e-12, atol=0)
    # the effective training target F = (x0 - c_skip (x0 + sigma n)) / c_out has unit variance (EDM App. B.6)
    target_var = ((1 - K.c_skip(s, sd)) ** 2 * sd**2 + K.c_skip(s, sd) ** 2 * s**2) / K.c_out(s, sd) ** 2
    torch.testing.assert_close(target_var, torch.ones_like(s), rtol=1e-12, atol=0)
    # boundary condition: f(x, sigma_min) = x
    assert K.c_skip_boundary(torch.tensor(0.002, dtype=torch.float64), sd, 0.002).item() == 1.0
    assert K.c_out_boundary(torch.tensor(0.002, dtype=torch.float64), sd, 0.002).item() == 0.0
    big = torch.tensor(80.0, dtype=torch.float64)
    assert abs(K.c_skip_boundary(big, sd, 0.002) - K.c_skip(big, sd)) < 1e-6  # the two agree far from sigma_min
    assert K.CM_C_NOISE(torch.tensor([1.0]))[0] == 0 and K.EDM_C_NOISE(torch.tensor([1.0]))[0] == 0
    torch.testing.assert_close(K.CM_C_NOISE(s), 1000 * K.EDM_C_NOISE(s))


class Probe(nn.Module):
    """F(x_in, t) = 2 x_in + t (+ y); records what it was called with."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(2.0, dtype=dtype))
        self.seen = {}

    def forward(self, x, t, y=None):
        self.seen = dict(x=x, t=t, y=y)
        return self.w * x + t[:, None] + (0 if y is None else y[:, None])


@pytest.mark.parametrize("precond", [K.Precond(), K.Precond(boundary=True),
                                     K.Precond(sigma_data=1.0, c_noise=K.EDM_C_NOISE)])
def test_denoiser_is_c_skip_x_plus_c_out_F(precond):
    x = torch.randn(4, 3, dtype=torch.float64)
    sigma = torch.tensor([0.002, 0.1, 1.0, 80.0], dtype=torch.float64)
    net = Probe()
    den = K.Denoiser(net, precond)
    out = den(x, sigma, y=torch.ones(4, dtype=torch.float64))
    skip, cout, cin, cnoise = (v[:, None] for v in precond.scalings(sigma))
    torch.testing.assert_close(net.seen["x"], cin * x, rtol=1e-15, atol=0)
    torch.testing.assert_close(net.seen["t"], cnoise[:, 0], rtol=1e-15, atol=0)
    torch.testing.assert_close(out, skip * x + cout * (2 * cin * x + cnoise + 1), rtol=1e-14, atol=1e-14)
    if precond.boundary:
        assert torch.equal(den(x, torch.full((4,), 0.002, dtype=torch.float64)), x)  # exactly, whatever F
    # a float32 network gets float32 inputs; a float64 state gets a float64 D back
    den32 = K.Denoiser(Probe(torch.float32), precond)
    out32 = den32(x, sigma)
    assert den32.net.seen["x"].dtype == torch.float32 and out32.dtype == torch.float64


def test_edm_loss_of_the_zero_network_is_one():
    """F = 0 makes D = c_skip x, the exact denoiser of Gaussian data N(0, sigma_data^2): its weighted loss
    is 1 at every sigma (Monte Carlo, 20,000 x 2 draws: within 3%). Without lambda it would be c_out^2."""

    class Zero(Probe):
        def forward(self, x, t):
            return 0 * self.w * x

    g = torch.Generator().manual_seed(0)
    x0 = 0.5 * torch.randn(20000, 2, generator=g, dtype=torch.float64)
    for s in (0.01, 0.3, 1.0, 20.0):
        sigma = torch.full((len(x0),), s, dtype=torch.float64)
        loss = K.edm_loss(K.Denoiser(Zero()), x0, sigma, generator=g).mean().item()
        assert abs(loss - 1) < 0.03, (s, loss)


# ---- (d) a discrete VP eps-model in sigma form -----------------------------------------------
def test_vp_denoiser_with_the_exact_eps_is_the_posterior_mean_at_grid_points():
    gm, sched = O.example_2d(), S.linear(1000)
    rs = sched.respace("50")
    den, exact = K.vp_denoiser(gm.model(sched), rs), exact_denoiser(gm)
    sig = K.discrete_sigmas(rs)
    assert len(sig) == 51 and sig[-1] == 0 and bool((sig[1:] < sig[:-1]).all())
    assert sig[0] == rs.sigmas()[-1]
    g = torch.Generator().manual_seed(0)
    errs = []
    for s in sig[:-1]:
        x0 = gm.sample(200, g)[0]
        x = x0 + s * torch.randn(x0.shape, generator=g, dtype=torch.float64)
        sigma = torch.full((200,), s.item(), dtype=torch.float64)
        errs.append((den(x, sigma) - exact(x, sigma)).abs().max().item())
    assert max(errs) < 1e-9, max(errs)
    # between grid points the nearest step is used, so the error is no longer round-off
    mid = (sig[10] * sig[11]).sqrt().item()
    x = mid * torch.randn(200, 2, generator=g, dtype=torch.float64)
    sigma = torch.full((200,), mid, dtype=torch.float64)
    assert (den(x, sigma) - exact(x, sigma)).abs().max().item() > 1e-6


def test_vp_denoiser_interpolates_the_step_in_log_sigma():
    sched = S.linear(1000).respace("20")
    seen = []
    model = lambda x, t: (seen.append(t), torch.zeros_like(x))[1]  # noqa: E731
    ls, tm = sched.sigmas().log(), sched.timestep_map
    x = torch.zeros(3, 2, dtype=torch.float64)
    mid = torch.stack([((ls[k] + ls[k + 1]) / 2).exp() for k in (0, 7, 18)])
    K.vp_denoiser(model, sched, interpolate=True)(x, mid)
    torch.testing.assert_close(seen[-1], (tm[[0, 7, 18]] + tm[[1, 8, 19]]).double() / 2)
    just_above = torch.stack([((0.4 * ls[k] + 0.6 * ls[k + 1])).exp() for k in (0, 7, 18)])
    K.vp_denoiser(model, sched)(x, just_above)
    assert torch.equal(seen[-1], tm[[1, 8, 19]])
    K.vp_denoiser(model, sched)(x, torch.tensor([1e-9, 1e9, sched.sigmas()[5].item()], dtype=torch.float64))
    assert torch.equal(seen[-1], tm[[0, 19, 5]])  # clamped to the chain's ends


# ---- one PF-ODE step for the samplers and the consistency teacher -----------------------------
def test_euler_and_heun_steps_serve_the_samplers_and_the_distillation_teacher():
    """``euler_step`` / ``heun_step`` are the steps of ``euler_steps`` / ``heun_steps`` (float levels,
    float64 state) and of ``ConsistencyObjective.teacher_step`` (per-example float64 levels, state in
    its own dtype): each matches the formula it replaced, written out here, bit for bit."""
    from ddpm_lib import consistency as CM

    def den(x, s):  # a smooth stand-in denoiser, float32 out like a network
        return (torch.tanh(x) / (1 + s.view(-1, *[1] * (x.ndim - 1)).to(x.dtype) ** 2).sqrt()).float()

    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64) * 80
    sig = S.karras_sigmas(6, 0.002, 80.0, 7.0).tolist()
    ref, ref_e = x, x
    for i in range(len(sig) - 1):  # EDM Algorithm 1, as heun_steps / euler_steps wrote it
        sa, sb = sig[i], sig[i + 1]
        d = (ref - den(ref, K._sigma(sa, ref)).double()) / sa
        nxt = ref + (sb - sa) * d
        if sb != 0:
            nxt = ref + (sb - sa) * (d + (nxt - den(nxt, K._sigma(sb, nxt)).double()) / sb) / 2
        ref = nxt
        ref_e = ref_e + (sb - sa) * (ref_e - den(ref_e, K._sigma(sa, ref_e)).double()) / sa
    assert torch.equal(K.heun(den, x, sig), ref) and torch.equal(K.euler(den, x, sig), ref_e)
    for dtype in (torch.float32, torch.float64):
        xt = (x / 20).to(dtype)
        for solver in ("euler", "heun"):
            obj = CM.ConsistencyObjective("cd", teacher=den, solver=solver)
            s_lo, s_hi = obj.pairs(0, torch.rand(4, generator=g))
            b = lambda v: K._bcast(v, xt).to(dtype)  # noqa: E731  (the teacher step as it was written)
            d = (xt - den(xt, s_hi).to(dtype)) / b(s_hi)
            want = xt + b(s_lo - s_hi) * d
            if solver == "heun":
                want = xt + b(s_lo - s_hi) * (d + (want - den(want, s_lo).to(dtype)) / b(s_lo)) / 2
            assert torch.equal(obj.teacher_step(xt, s_hi, s_lo), want), (dtype, solver)
