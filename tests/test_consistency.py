"""Consistency models (ddpm_lib.consistency): distances, grids and schedules as the papers and their code
define them; the CD loss of the exact consistency function of Gaussian data (Heun's error below
Euler's); shared dropout masks; the boundary condition; sCM's tangent against finite differences; and
a short training run of each objective through ``train``."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import math

import pytest
import torch
import torch.nn as nn

from ddpm_lib import consistency as CM, train as TR


class TimeMLP(nn.Module):
    """A small MLP F(x, c) for vectors or images (flattened), with a sinusoidal time input."""

    def __init__(self, dim: int, width: int = 32, dropout: float = 0.0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.body = nn.Sequential(nn.Linear(dim + 8, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, width),
                                  nn.SiLU(), nn.Linear(width, dim))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        self.freqs = torch.tensor([0.5, 1.0, 2.0, 4.0])

    def forward(self, x, c):
        shape = x.shape
        c = c.to(x.dtype).reshape(-1, 1) * self.freqs.to(x.dtype)
        h = torch.cat([x.reshape(len(x), -1), torch.sin(c), torch.cos(c)], 1)
        return self.body(h).reshape(shape)


def _batch(x, step=0, seed=0):
    return TR.Batch(x=x, y=None, extras={}, step=step, rows=slice(0, len(x)), global_size=len(x),
                    generator=torch.Generator().manual_seed(seed))


def test_distances_grid_and_schedules():
    a, b = torch.zeros(2, 3, 2, 2), torch.ones(2, 3, 2, 2)
    assert torch.allclose(CM.distance("l2", a, 2 * b), torch.full((2,), 4.0))
    assert torch.allclose(CM.distance("l1", a, 2 * b), torch.full((2,), 2.0))
    assert torch.allclose(CM.distance("pseudo_huber", a, b, c=1.0), torch.full((2,), math.sqrt(13) - 1))
    assert abs(CM.huber_c(3 * 32 * 32) - 0.0299) < 1e-3  # iCT: c = 0.03 on CIFAR-10
    with pytest.raises(ValueError, match="valid choices: \\['l2', 'l1', 'pseudo_huber'\\]"):
        CM.distance("lpips", a, b)
    g = CM.grid(18)
    assert g[0] == pytest.approx(0.002) and g[-1] == pytest.approx(80.0) and bool((g.diff() > 0).all())
    # CM's adaptive schedule (its code): 2 points and mu = 0.9^2 at the start, s1 + 1 points at the end
    assert CM.cm_adaptive(0, 1000) == (2, pytest.approx(0.81))
    n_end, mu_end = CM.cm_adaptive(1000, 1000)
    assert n_end == 151 and mu_end == pytest.approx(math.exp(2 * math.log(0.9) / 150))
    assert [CM.cm_adaptive(k, 1000)[0] for k in (0, 250, 500, 1000)] == sorted({CM.cm_adaptive(k, 1000)[0] for k in (0, 250, 500, 1000)})
    # iCT: 10 -> 1280 steps, doubling every K' = floor(K / 8) iterations
    assert [CM.ict_doubling(k, 1000) for k in (0, 124, 125, 250, 999)] == [11, 11, 21, 41, 1281]
    # a ratio s1 / s0 that is not a power of two: K' = floor(1000 / (log2 15 + 1)) = 203, and N reaches
    # s1 + 1 (flooring the log2 gave K' = 250 and stopped at 81)
    got = [CM.ict_doubling(k, 1000, s0=10, s1=150) for k in (202, 203, 406, 609, 812, 999)]
    assert got == [11, 21, 41, 81, 151, 151]
    # CM's target rate carried to a run 1,000x shorter decays as much per fraction of the run
    mu = CM.cm_adaptive(1000, 1000)[1]
    assert CM.rescaled_mu(mu, 800) == pytest.approx(mu ** 1000) and CM.rescaled_mu(mu, 800_000) == pytest.approx(mu)
    assert (1 - mu) ** -1 > 700 and (1 - CM.rescaled_mu(mu, 800)) ** -1 < 2  # time constants, in steps
    with pytest.raises(ValueError, match="must be >= 1"):
        CM.rescaled_mu(0.9, 0)
    p = CM.lognormal_index_probs(CM.grid(40))
    assert p.sum().item() == pytest.approx(1.0) and len(p) == 39
    mid = (CM.grid(40)[:-1] * CM.grid(40)[1:]).sqrt()
    assert abs(math.log(mid[int(p.argmax())]) - (-1.1)) < 1.0  # the mass sits near exp(P_mean)
    with pytest.raises(ValueError, match="needs a teacher"):
        CM.ConsistencyObjective("cd")
    with pytest.raises(ValueError, match="valid choices: \\['uniform', 'lognormal'\\]"):
        CM.ConsistencyObjective("ct", index="normal")


class ExactF(nn.Module):
    """The exact consistency function of N(0, s^2 I) data: x(sigma) scales as sqrt(s^2 + sigma^2) along
    every PF-ODE trajectory, so f(x, sigma) = x sqrt(s^2 + sigma_min^2) / sqrt(s^2 + sigma^2)."""

    def __init__(self, s=0.5, sigma_min=0.002, wrong=0.0):
        super().__init__()
        self.s, self.sigma_min, self.wrong = s, sigma_min, wrong
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x, sigma):
        k = ((self.s**2 + self.sigma_min**2) / (self.s**2 + sigma.double() ** 2)).sqrt()
        return x * k.reshape(-1, 1).to(x.dtype) * (1 + self.wrong * torch.sin(3 * sigma.log()).reshape(-1, 1).to(x.dtype)) + self.dummy


def test_cd_loss_vanishes_for_the_exact_consistency_function_and_heun_beats_euler():
    s = 0.5
    teacher = lambda x, sigma: x * (s**2 / (s**2 + sigma.double() ** 2)).reshape(-1, 1).to(x.dtype)  # noqa: E731
    x0 = torch.randn(4096, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * s
    losses = {}
    for solver in ("euler", "heun"):
        for wrong in (0.0, 0.05):
            obj = CM.ConsistencyObjective("cd", steps=18, mu=0.0, teacher=teacher, solver=solver)
            f = ExactF(s, wrong=wrong).double()
            obj.bind(f)
            losses[solver, wrong] = float(obj(f, _batch(x0))[0].detach())
    assert losses["heun", 0.0] < losses["euler", 0.0] < losses["euler", 0.05]
    assert losses["heun", 0.0] < 0.05 * losses["heun", 0.05]
    # CT with the same exact f: its target is x + s_n z, unbiased only as N grows, so the loss is not 0
    ct = CM.ConsistencyObjective("ct", steps=18, mu=0.0)
    f = ExactF(s).double()
    ct.bind(f)
    assert float(ct(f, _batch(x0))[0].detach()) > losses["heun", 0.0]


def test_online_and_target_passes_share_dropout_masks_and_the_boundary_holds():
    net = TimeMLP(6, dropout=0.5).train()
    x, c = torch.randn(5, 6), torch.ones(5)
    torch.manual_seed(3)
    state = CM._rng_state(torch.device("cpu"))
    a = net(x, c)
    after = torch.random.get_rng_state()
    b = CM._replay(state, lambda: net(x, c))
    assert torch.equal(a, b) and torch.equal(torch.random.get_rng_state(), after)
    assert not torch.equal(a, net(x, c))  # a new draw differs
    f = CM.consistency_function(TimeMLP(6).eval())
    x = torch.randn(5, 6, dtype=torch.float64)
    assert torch.allclose(f(x, torch.full((5,), 0.002, dtype=torch.float64)), x, atol=1e-12)
    assert not torch.allclose(f(x, torch.full((5,), 1.0, dtype=torch.float64)), x)


def test_scm_tangent_matches_finite_differences_along_the_trajectory():
    torch.manual_seed(0)
    model = CM.TrigFlow(TimeMLP(4).double(), sigma_d=0.5, time_scale=1.0)
    obj = CM.SCMObjective(normalise=None)
    x0, z = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64) * 0.5
    t = torch.tensor([0.2, 0.8, 1.4], dtype=torch.float64)
    x_t, F_m, g, _ = obj.tangent(model, x0, z, t)
    h = 1e-5

    def along(tt):
        c, s_ = torch.cos(tt)[:, None], torch.sin(tt)[:, None]
        xt = c * x0 + s_ * z
        return xt, model.F(xt, tt), model(xt, tt)

    (_, Fp, fp), (_, Fm, fm) = along(t + h), along(t - h)
    dFdt = (Fp - Fm) / (2 * h)
    c, s_ = torch.cos(t)[:, None], torch.sin(t)[:, None]
    assert torch.allclose(F_m, model.F(x_t, t), atol=1e-10)
    # g = cos t df/dt, the total derivative of the consistency function along the trajectory
    assert torch.allclose(g, c * (fp - fm) / (2 * h), atol=1e-6)
    # and its second term holds the JVP: cos t sin t sigma_d dF/dt
    jf = -(g + c**2 * (0.5 * F_m - (c * z - s_ * x0))) - c * s_ * x_t
    assert torch.allclose(jf, c * s_ * 0.5 * dFdt, atol=1e-6)
    # normalisation bounds the tangent
    _, _, gn, norm = CM.SCMObjective(normalise=0.1).tangent(model, x0, z, t)
    assert bool((gn.norm(dim=1) < 1).all()) and torch.allclose(norm, g.norm(dim=1))


@pytest.mark.parametrize("kind", ["ct", "ict", "scm"])
def test_each_objective_trains_through_train(kind):
    data = torch.randn(512, 2) * 0.5 + torch.tensor([1.0, -1.0])
    cfg = TR.TrainConfig(train_images=20 * 64, batch_size=64, lr=1e-3, warmup_images=0, ema_decay=0.9, seed=0, log_every=5)
    if kind == "scm":
        net, obj = CM.TrigFlow(TimeMLP(2)), CM.SCMObjective(warmup=10)
    else:
        net = CM.consistency_function(TimeMLP(2))
        obj = CM.ConsistencyObjective("ct", steps=lambda k: CM.cm_adaptive(k, 20)[0], mu=lambda k: CM.cm_adaptive(k, 20)[1]) \
            if kind == "ct" else CM.ConsistencyObjective("ct", steps=lambda k: CM.ict_doubling(k, 20), mu=0.0,
                                                          metric="pseudo_huber", index="lognormal", weighting="ict")
    res = TR.train(net, obj, (data, None, {}), cfg, progress=False)
    assert len(res.log) == 4 and all(math.isfinite(r["loss"]) for r in res.log)
    # the target network follows the trained one (mu < 1), and stays a separate copy
    if kind != "scm":
        assert obj.target.net is not net
        assert any(not torch.equal(p, q) for p, q in zip(obj.target.net.parameters(), TimeMLP(2).parameters()))
    else:
        assert "tangent_norm" in res.log[-1]
    x = (net.sample((16, 2)) if kind == "scm" else CM.sample(res.ema, (16, 2)))
    assert x.shape == (16, 2) and bool(torch.isfinite(x).all())


def test_mlp_time_embeddings_differ_in_how_fast_they_change():
    from ddpm_lib.nets import mlp

    with pytest.raises(ValueError, match="valid choices: \\['fourier', 'positional'\\]"):
        mlp.MLPConfig(emb="sinusoid")
    x, c = torch.randn(4, 2), torch.linspace(0.1, 1.4, 4)
    speed = {}
    for emb in ("fourier", "positional"):
        net = mlp.MLP(mlp.MLPConfig(emb=emb, fourier_scale=16.0))
        assert net(x, c).shape == (4, 2) and torch.equal(net(x, c), torch.zeros(4, 2))  # zero-initialised output
        _, d = torch.func.jvp(net.embedding, (c,), (torch.ones_like(c),))
        speed[emb] = float(d.norm(dim=1).mean())
    # scale-16 Fourier features change ~100x faster with the noise level than max-period-10 sinusoids
    assert speed["fourier"] > 30 * speed["positional"]


def test_sigma_form_is_edm_preconditioning_and_the_trigflow_loss_is_one_for_gaussian_data():
    sd = 0.7
    net = TimeMLP(3)
    model = CM.TrigFlow(net, sigma_d=sd)
    x, sigma = torch.randn(5, 3) * 2, torch.tensor([0.01, 0.3, 1.0, 4.0, 70.0])
    from ddpm_lib import karras as K

    # TrigFlow at sigma = sigma_d tan t is EDM's preconditioning with c_out negated and c_noise = arctan(sigma / sigma_d)
    s = sigma[:, None].double()
    want = (K.c_skip(s, sd) * x - K.c_out(s, sd) * net((K.c_in(s, sd) * x).float(), torch.atan(sigma / sd))).float()
    assert torch.allclose(CM.SigmaForm(model)(x, sigma), want, atol=1e-5)
    # for data N(0, sigma_d^2 I) the exact TrigFlow model is F = 0, and its loss is 1 per dimension at every t
    data = torch.randn(4096, 3) * sd
    class Zero(nn.Module):
        def forward(self, x, t):
            return torch.zeros_like(x)

    zero = CM.TrigFlow(Zero(), sigma_d=sd)
    loss = CM.TrigFlowObjective(sigma_d=sd)(zero, _batch(data)).item()
    assert abs(loss - 1.0) < 0.05
    assert CM.TrigFlowObjective(sigma_d=sd)(model, _batch(data)).item() > loss  # any other F does worse on average


def test_ancestral_sampler_reaches_the_data_variance_with_the_exact_denoiser():
    from ddpm_lib import karras as K
    from ddpm_lib.schedules import karras_sigmas

    s = 0.6  # data N(0, s^2 I): D(x; sigma) = s^2 / (s^2 + sigma^2) x
    D = lambda x, sigma: x * (s**2 / (s**2 + K._bcast(torch.as_tensor(sigma, dtype=x.dtype), x) ** 2))  # noqa: E731
    errors = {}
    for n in (16, 64, 1024):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(20000, 2, generator=g, dtype=torch.float64) * 80
        errors[n] = (abs(float(K.ancestral(D, x, karras_sigmas(n, 0.002, 80.0), generator=g).std()) - s),
                     abs(float(K.euler(D, x, karras_sigmas(n, 0.002, 80.0)).std()) - s))
    # both first-order samplers under-disperse on a coarse grid (measured: std 0.43 / 0.50 at 16 steps) and converge
    for k in (0, 1):
        assert errors[16][k] > errors[64][k] > errors[1024][k]
        assert errors[1024][k] < 0.015 * s


def test_scd_uses_the_teachers_velocity_and_a_feature_metric_needs_a_network():
    sd = 0.5
    teacher = CM.TrigFlow(TimeMLP(2), sigma_d=sd)
    obj = CM.SCMObjective(sigma_d=sd, teacher=teacher, teacher_key="t")
    x0, z, t = torch.randn(6, 2), torch.randn(6, 2) * sd, torch.rand(6) * 1.5 + 0.01
    x_t = torch.cos(t)[:, None] * x0 + torch.sin(t)[:, None] * z
    assert torch.allclose(obj.velocity(x0, z, x_t, t), sd * teacher.F(x_t, t))
    sct = CM.SCMObjective(sigma_d=sd)
    assert torch.allclose(sct.velocity(x0, z, x_t, t), torch.cos(t)[:, None] * z - torch.sin(t)[:, None] * x0)
    assert obj.config()["teacher"] == "t" and sct.config()["teacher"] is None
    with pytest.raises(ValueError, match="feature network"):
        CM.ConsistencyObjective("ct", metric="feature")
    with pytest.raises(ValueError, match="valid choices: \\['l2', 'l1', 'pseudo_huber', 'feature'\\]"):
        CM.ConsistencyObjective("ct", metric="lpips")
    # with the identity as the feature map, the feature distance is l2
    data = torch.randn(32, 2)
    losses = {}
    for metric in ("l2", "feature"):
        net = CM.consistency_function(TimeMLP(2))
        o = CM.ConsistencyObjective("ct", steps=10, mu=0.0, metric=metric, feature=(lambda v: v) if metric == "feature" else None)
        o.bind(net)
        losses[metric] = o(net, _batch(data, seed=3))[0].item()
    assert losses["l2"] == pytest.approx(losses["feature"], rel=1e-6)


def test_trigflow_samples_in_scms_steps_the_same_through_its_sigma_form():
    torch.manual_seed(0)
    net = CM.TrigFlow(TimeMLP(2), sigma_d=0.7)
    assert net.steps(1) == (math.atan(80 / 0.7),)
    assert net.steps(2, t_mid=1.1) == (math.atan(80 / 0.7), 1.1)
    with pytest.raises(ValueError, match=r"one of \[1, 2\]"):
        net.steps(3)
    draw = lambda m, nfe: m.sample((8, 2), m.steps(nfe), torch.Generator().manual_seed(5))  # noqa: E731
    for nfe in (1, 2):
        a, b = draw(net, nfe), draw(CM.SigmaForm(net), nfe)
        assert a.dtype == torch.float64 and a.shape == (8, 2) and torch.equal(a, b)
    # one step: f(sigma_d z, t_max), the map applied to the seeded noise
    z = torch.randn((8, 2), generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 0.7
    t = torch.full((8,), math.atan(80 / 0.7))
    assert torch.allclose(draw(net, 1), net(z.float(), t).double())
    assert not torch.equal(draw(net, 1), draw(net, 2))  # the second step re-noises and maps again
    # draw: the same, from a seed, as float32 on the CPU, through either form
    for nfe in (1, 2):
        d = net.draw((8, 2), nfe, seed=5)
        assert d.dtype == torch.float32 and torch.equal(d, draw(net, nfe).float())
        assert torch.equal(d, CM.SigmaForm(net).draw((8, 2), nfe, seed=5))
