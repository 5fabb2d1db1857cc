"""Chapter helpers (ddpm_lib.chapters.adm for 04, .dalle for 05): the held-out loss grid, accuracy by noise level,
the temperature knob and reranking (their claims: tests/test_claims_adm.py, tests/test_claims_dalle.py)."""
from __future__ import annotations

import ddpm_lib  # noqa: F401  (before torch)

import numpy as np
import torch

from ddpm_lib import diffusion as D, schedules as S, stats
from ddpm_lib.chapters import adm as CH

DIFF = D.Diffusion(S.linear(100), "eps", "fixed_large")


def test_heldout_loss_is_paired_and_ranks_a_perfect_model_first():
    x = torch.zeros(32, 1, 4, 4)  # x_0 = 0, so x_t = sqrt(1 - abar) eps and eps is recoverable exactly
    sched = DIFF.schedule

    def perfect(x_t, t):
        return x_t / sched.at("sqrt_one_minus_alpha_bar", t, x_t).to(x_t.dtype)

    def zero(x_t, t):
        return torch.zeros_like(x_t)

    a, b = CH.heldout_loss(perfect, DIFF, x, n_t=5), CH.heldout_loss(zero, DIFF, x, n_t=5)
    assert a.shape == (32,) and a.max() < 1e-8
    assert 0.7 < b.mean() < 1.3  # E[eps^2] = 1
    np.testing.assert_array_equal(b, CH.heldout_loss(zero, DIFF, x, n_t=5))  # same grid, same noise
    assert not np.array_equal(b, CH.heldout_loss(zero, DIFF, x, n_t=5, seed=1))
    d = stats.mean_ci(a - b)
    assert d.hi < 0


def test_accuracy_by_t_falls_to_chance_for_a_sign_reader():
    y = torch.arange(400) % 2
    x = (2.0 * y - 1).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()

    def reader(x_t, t):  # reads the class from the sign of the mean pixel
        m = x_t.mean((1, 2, 3))
        return torch.stack([-m, m], dim=1)

    ts, hits = CH.accuracy_by_t(reader, DIFF, x, y, n_t=4)
    assert list(ts) == [0, 33, 66, 99] and hits.shape == (4, 400)
    assert hits[0].mean() == 1.0
    assert abs(hits[-1].mean() - 0.5) < 0.12  # linear schedule at t = T - 1: almost pure noise


def test_eps_temperature_scales_only_the_eps_channels():
    model = lambda x, t: torch.cat([x, torch.ones_like(x)], dim=1)  # noqa: E731  eps = x, variance = 1
    out = CH.eps_temperature(model, 0.5, channels=1)(torch.full((2, 1, 2, 2), 3.0), torch.zeros(2))
    assert torch.all(out[:, :1] == 6.0) and torch.all(out[:, 1:] == 1.0)


def test_rerank_picks_the_best_of_the_first_n():
    from ddpm_lib.chapters import dalle

    picks = dalle.rerank(torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.2, 0.8]]), [1, 2, 3])
    assert picks[1].tolist() == [0, 0] and picks[2].tolist() == [1, 0] and picks[3].tolist() == [1, 2]


def test_heldout_loss_slices_labels_with_its_batches():
    x, y = torch.zeros(10, 1, 2, 2), torch.arange(10)
    seen = []

    def model(x_t, t, y):
        assert len(y) == len(x_t)
        seen.append(y.clone())
        return torch.zeros_like(x_t)

    CH.heldout_loss(model, DIFF, x, n_t=2, batch=4, y=y)
    assert torch.equal(torch.cat(seen[:3]), y)


def test_chapter_06_holes_seams_and_prompts():
    from ddpm_lib.chapters import glide

    # a hole around each object cell: the centre cell's hole is centred, a corner's is clipped
    m = glide.hole_masks(torch.tensor([4, 0]), 16)
    hole = 1 - m[:, 0]
    assert hole[0, 8, 8] == 1 and hole[0, 0, 0] == 0 and hole[1, 0, 0] == 1 and hole[1, 15, 15] == 0
    assert hole[0].sum() > hole[1].sum() > 0
    # the swapped prompt changes colour and shape, keeps the rest
    a = {"shape": torch.tensor([0, 1, 2]), "colour": torch.tensor([0, 3, 7]), "size": torch.tensor([0, 1, 0]),
         "position": torch.tensor([4, 0, 8]), "background": torch.tensor([1, 2, 3])}
    b = glide.swapped_attrs(a)
    assert (b["shape"] != a["shape"]).all() and (b["colour"] != a["colour"]).all()
    assert all(torch.equal(b[k], a[k]) for k in ("size", "position", "background"))
    # seams: a constant image has none; a fill of another colour steps by that colour's distance
    x = torch.zeros(2, 3, 16, 16)
    x[1] = torch.where(m[1].bool(), torch.tensor(0.0), torch.tensor(0.5))
    s = glide.seam(x, m)
    assert s[0] == 0 and abs(s[1] - 0.5) < 1e-6
    # its claims: tests/test_claims_glide.py
