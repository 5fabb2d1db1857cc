"""Schedules, respacing and the noise-level samplers."""
import math

import numpy as np
import pytest
import torch

from ddpm_lib import schedules as S


def test_linear_endpoints_and_rescaling():
    s = S.linear(1000)
    assert s.betas[0].item() == pytest.approx(1e-4, abs=1e-12)
    assert s.betas[-1].item() == pytest.approx(0.02, abs=1e-12)
    assert torch.allclose(s.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), atol=1e-12)
    s250 = S.linear(250)  # scaled by 1000 / T
    assert s250.betas[0].item() == pytest.approx(4e-4) and s250.betas[-1].item() == pytest.approx(0.08)
    # about the same total noise: log alpha_bar at the end within 5%
    assert abs(math.log(s250.alpha_bar[-1].item()) / math.log(s.alpha_bar[-1].item()) - 1) < 0.05


def test_short_linear_schedule_is_clipped():
    s = S.linear(20)  # 0.02 * 1000 / 20 = 1.0 would make alpha_bar exactly 0
    assert s.betas.max().item() == pytest.approx(0.999) and s.alpha_bar[-1].item() > 0


def test_cosine_matches_formula_and_clips():
    T, off = 1000, 0.008
    s = S.cosine(T)
    f = lambda u: math.cos((u + off) / (1 + off) * math.pi / 2) ** 2
    for t in [0, 10, 500, 900]:
        assert s.alpha_bar[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-9)
    assert s.betas.max().item() == pytest.approx(0.999)  # clipped at the last step
    assert s.alpha_bar[-1].item() < 1e-6


def test_derived_quantities():
    s = S.cosine(100)
    assert torch.allclose(s.alpha_bar, torch.cumprod(1 - s.betas, 0))
    assert s.alpha_bar_prev[0].item() == 1.0
    assert s.beta_tilde[0].item() == 0.0
    assert torch.allclose(s.beta_tilde[1:], s.betas[1:] * (1 - s.alpha_bar[:-1]) / (1 - s.alpha_bar[1:]))
    assert torch.allclose(s.sigmas(), ((1 - s.alpha_bar) / s.alpha_bar).sqrt())
    assert torch.allclose(S.sigma_to_alpha_bar(s.sigmas()), s.alpha_bar)


def test_respacing_every_step_is_identity():
    s = S.linear(1000)
    for spec in ["1000", "ddim1000", list(range(1000))]:
        r = s.respace(spec)
        assert torch.allclose(r.betas, s.betas, rtol=1e-10, atol=1e-15)
        assert torch.equal(r.timestep_map, torch.arange(1000))


@pytest.mark.parametrize("spec,n", [("50", 50), ("10,15,20", 45), ("ddim50", 50), ("1", 1), ("25", 25)])
def test_respacing_keeps_retained_alpha_bar(spec, n):
    s = S.cosine(1000)
    r = s.respace(spec)
    assert r.T == n
    assert torch.allclose(r.alpha_bar, s.alpha_bar[r.timestep_map], rtol=1e-12)
    assert r.timestep_map[0].item() == 0  # the cleanest step is always kept
    assert bool((r.timestep_map[1:] > r.timestep_map[:-1]).all())
    assert torch.equal(r.index_of(r.timestep_map), torch.arange(n))


def test_ddim_stride_and_sections():
    assert S.space_timesteps(1000, "ddim50") == list(range(0, 1000, 20))
    steps = S.space_timesteps(300, "10,0,5".replace(",0,", ",1,"))  # 3 sections of 100
    assert steps[:10] == [round(11 * k) for k in range(10)] and len(steps) == 16
    assert S.space_timesteps(1000, "1") == [0]


@pytest.mark.parametrize("bad", ["fifty", "ddimx", "10,a", "0", "2000", "ddim2000", "600,600", [5000]])
def test_bad_spacing_raises_with_choices(bad):
    with pytest.raises(ValueError) as e:
        S.space_timesteps(1000, bad)
    assert any(w in str(e.value) for w in ("valid forms", "cannot keep", "must lie"))


def test_unknown_schedule_names_choices():
    with pytest.raises(ValueError, match="linear"):
        S.named("sigmoid", 1000)
    with pytest.raises(ValueError, match="importance"):
        S.t_sampler("lossaware", 10)


def test_karras_grid():
    sig = S.karras_sigmas(18, 0.002, 80.0, 7.0)
    assert sig[0].item() == pytest.approx(80.0) and sig[-2].item() == pytest.approx(0.002) and sig[-1] == 0
    assert bool((sig[1:] < sig[:-1]).all())
    # rho = 1 is uniform spacing in sigma
    lin = S.karras_sigmas(5, 1.0, 5.0, rho=1.0, append_zero=False)
    assert torch.allclose(lin, torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0], dtype=torch.float64))


def test_lognormal_sigma_moments():
    g = torch.Generator().manual_seed(0)
    s = S.lognormal_sigma(200_000, -1.2, 1.2, generator=g)
    assert s.log().mean().item() == pytest.approx(-1.2, abs=0.01)
    assert s.log().std().item() == pytest.approx(1.2, abs=0.01)


def test_importance_sampler_uniform_until_history_fills():
    T, H = 5, 10
    imp = S.ImportanceSampler(T, history=H, uniform_prob=0.001)
    rng = np.random.default_rng(0)
    for _ in range(H - 1):  # every step gets H - 1 losses: not warmed up yet
        imp.update(torch.arange(T), torch.tensor(rng.uniform(0, 1, T)))
    assert not imp.warmed_up()
    assert np.allclose(imp.probs(), 1 / T)
    # fill all but the last step: still uniform
    imp.update(torch.arange(T - 1), torch.ones(T - 1))
    assert np.allclose(imp.probs(), 1 / T)
    imp.update(torch.tensor([T - 1]), torch.ones(1))
    assert imp.warmed_up()


def test_importance_sampler_follows_rule():
    T, H = 4, 10
    imp = S.ImportanceSampler(T, history=H, uniform_prob=0.001)
    losses = {0: 1.0, 1: 2.0, 2: 3.0, 3: 4.0}
    for _ in range(H + 3):  # overflow the ring buffer: only the last H count
        for t, l in losses.items():
            imp.update(torch.tensor([t]), torch.tensor([l]))
    # a last burst on step 3 with a different value replaces the oldest entries
    imp.update(torch.tensor([3] * 5), torch.full((5,), 8.0))
    hist3 = np.array([4.0] * 5 + [8.0] * 5)
    rms = np.array([1.0, 2.0, 3.0, math.sqrt(np.mean(hist3**2))])
    expected = rms / rms.sum() * (1 - 0.001) + 0.001 / T
    assert np.allclose(imp.probs(), expected, rtol=1e-12)
    t, w = imp.sample(50_000, generator=torch.Generator().manual_seed(0))
    freq = np.bincount(t.numpy(), minlength=T) / 50_000
    assert np.allclose(freq, expected, atol=0.01)
    assert np.allclose(w.numpy(), 1 / (T * expected[t.numpy()]), rtol=1e-6)
    # the state round-trips (checkpoints keep the history)
    other = S.ImportanceSampler(T, history=H)
    other.load_state_dict(imp.state_dict())
    assert np.allclose(other.probs(), imp.probs())


def test_uniform_sampler_weights_are_one():
    t, w = S.UniformSampler(10).sample(100, generator=torch.Generator().manual_seed(1))
    assert t.min() >= 0 and t.max() < 10 and torch.allclose(w, torch.ones(100))


def test_importance_sampler_logs_when_it_leaves_uniform():
    s = S.ImportanceSampler(4, history=2)
    s.update(torch.tensor([0, 1, 2]), torch.ones(3))
    s.update(torch.tensor([0, 1, 2]), torch.ones(3))
    assert s.warm_at is None and not s.warmed_up()  # step 3 has no loss yet
    s.update(torch.tensor([3, 3]), torch.ones(2))
    assert s.warm_at == 3 and s.updates == 3
    s.update(torch.tensor([0]), torch.ones(1))
    assert s.warm_at == 3
    clone = S.ImportanceSampler(4, history=2)
    clone.load_state_dict(s.state_dict())
    assert (clone.warm_at, clone.updates) == (3, 4)
