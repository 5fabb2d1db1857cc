"""Chapter 03's claims (ddpm_lib.chapters.improved): its rules on synthetic records (yes / no / not
significant / n/a), conjunctions taking their weakest part, paper rows apart from the book's
extensions, the importance-sampling gate, and the re-derivation of a record written before the
typed seam."""
from __future__ import annotations

import json

import ddpm_lib  # noqa: F401  (before torch)
from ddpm_lib import claims as C
from ddpm_lib.chapters import improved as CH
from ddpm_lib.stats import Interval

import pytest  # noqa: E402
import torch  # noqa: E402

from test_claims_ddpm import rederive_old  # noqa: E402

KEYS = [(s, l) for s in CH.SCHEDULES for l in ("L_simple", "L_hybrid", "L_vlb")]


def _iv(est, half, n=2000, method="bootstrap-paired"):
    return Interval(est, est - half, est + half, n, method=method)


def _record(bounds=None, fds=None, fd_half=1.0, is_from=None, **kw) -> CH.Record:
    """A run shaped like the recorded one: every bound difference paired and narrow (+-0.01), every
    FD difference paired with half-width ``fd_half``; L_vlb with importance sampling from batch
    ``is_from`` (default: from the start, as the paper trains it)."""
    bounds = {**dict(zip(KEYS, (4.96, 4.82, 4.50, 4.80, 4.72, 4.40))), **(bounds or {})}
    fds = {**dict(zip(KEYS, (10.6, 11.4, 23.6, 7.4, 7.5, 26.4))), **(fds or {})}
    table = {k: dict(bound=Interval(bounds[k], bounds[k] - 0.02, bounds[k] + 0.02, 5, method="t"),
                     fd=_iv(fds[k], 5.0, method="bootstrap"), fd_floor=4.45,
                     **({"importance_from_step": is_from or 0} if k[1] == "L_vlb" else {})) for k in KEYS}
    pairs = [(a, b) for a in KEYS for b in KEYS if a != b]
    few, mid, full = 10, 50, 1000
    sweep_fd = {(n, k): _iv(10.0, 5.0, method="bootstrap") for n in (CH.SMALL, CH.LARGE, CH.HYBRID, CH.DDIM)
                for k in (few, mid, full)}
    defaults = dict(
        profile="cpu", setting="s", T=1000, table=table, table_steps=500,
        bound_diff={(a, b): _iv(bounds[a] - bounds[b], 0.01, n=5, method="t-paired") for a, b in pairs},
        fd_diff={(a, b): _iv(fds[a] - fds[b], fd_half) for a, b in pairs},
        is_warm_at=400, is_steps=1200, is_bound_diff=_iv(-0.05, 0.01, n=5, method="t-paired"),
        is_gradnoise_ratio=Interval(0.03, 0.006, 0.15, 24),
        step_counts=[few, 25, mid, 100, full], sweep_fd=sweep_fd,
        sweep_diff={((CH.HYBRID, mid), (CH.HYBRID, full)): _iv(-0.9, 1.0),
                    ((CH.SMALL, mid), (CH.HYBRID, mid)): _iv(3.0, 1.0),
                    **{((CH.DDIM, few), (n, few)): _iv(-4.0, 1.0) for n in (CH.SMALL, CH.LARGE, CH.HYBRID)}},
        skip_fraction=0.2, skip_fd={(s, f): _iv(10.0, 5.0, method="bootstrap") for s in CH.SCHEDULES
                                    for f in (0.0, 0.2)},
        skip_cost={"linear": _iv(0.2, 1.0), "cosine": _iv(5.0, 1.0)}, skip_contrast=_iv(4.8, 1.5),
        first_steps=50, share_first=Interval(0.77, 0.76, 0.78, 64, method="t"), share_first_unclipped=0.48)
    return CH.Record(**{**defaults, **kw})


def _named(rows):
    return {r.name: r for r in rows}


def test_a_clear_run_holds_and_paper_rows_are_apart_from_extensions():
    rows = _named(CH.claims(_record()))
    # importance sampling throughout: the paper's L_vlb row decides, the book's late-IS row is not shown
    assert [r.name for r in CH.claims(_record())] == [f.__name__ for f in CH.RULES
                                                      if f.__name__ != "vlb_late_is_best_bound_worst_fd"]
    assert {n for n, r in rows.items() if r.kind == "extension"} == {"cosine_better_bound_vlb",
                                                                     "skip_cosine_costs_more"}
    assert all(rows[n].holds == "yes" for n in ("cosine_better_bound", "hybrid_better_bound_same_fd",
                                                "vlb_best_bound_worst_samples", "is_better_bound",
                                                "fewer_steps_learned_variance", "fixed_small_degrades",
                                                "ddim_best_few_steps", "skip_linear_costs_little",
                                                "skip_cosine_costs_more", "first_steps_carry_bound"))
    assert rows["cosine_better_bound"].provisional and not rows["first_steps_carry_bound"].provisional
    assert rows["cifar10_nll"].holds == "n/a" and "4.4" in rows["cifar10_nll"].ours


def test_cosine_is_a_paper_conjunction_over_lsimple_and_lhybrid_only():
    r = _record(bounds={("cosine", "L_vlb"): 4.80})  # the L_vlb arm worse with cosine: the book's row only
    assert CH.cosine_better_bound(r).holds == "yes"
    assert CH.cosine_better_bound_vlb(r).holds == "no"
    r = _record(bounds={("cosine", "L_hybrid"): 4.825})  # 0.005 +- 0.01: undecided part
    row = CH.cosine_better_bound(r)
    assert row.parts == {"L_simple": "yes", "L_hybrid": "not significant"} and row.holds == "not significant"
    assert "could detect" in row.why
    assert CH.cosine_better_bound(_record(bounds={("cosine", "L_simple"): 5.1})).holds == "no"


def test_hybrid_takes_its_weakest_part_the_second_edition_said_partly():
    row = CH.hybrid_better_bound_same_fd(_record(fd_half=3.2))  # FD margins 2.65 / 1.85 < the half-width
    assert row.parts["linear bound lower"] == "yes" and row.holds == "not significant"
    assert "straddles the margin" in row.why
    assert CH.hybrid_better_bound_same_fd(_record(fds={("cosine", "L_hybrid"): 20.0})).holds == "no"


def test_lvlb_rows_trained_mostly_without_importance_sampling_decide_no_paper_verdict():
    late = _record(is_from=400)  # importance sampling for the last 20% of 500 batches
    rows = _named(CH.claims(late))
    assert rows["vlb_best_bound_worst_samples"].holds == "n/a" and "20%" in rows["vlb_best_bound_worst_samples"].ours
    ext = rows["vlb_late_is_best_bound_worst_fd"]
    assert ext.kind == "extension" and ext.holds == "yes"
    bad = _named(CH.claims(_record(is_from=400, bounds={("cosine", "L_vlb"): 4.80})))
    assert bad["vlb_late_is_best_bound_worst_fd"].holds == "no"  # the recorded run: cosine L_vlb not best
    assert bad["vlb_late_is_best_bound_worst_fd"].parts["cosine: bound below L_simple"] == "not significant"
    assert bad["vlb_best_bound_worst_samples"].holds == "n/a"
    # trained with importance sampling from the start: the paper's row decides, and can fail
    assert CH.vlb_best_bound_worst_samples(_record(bounds={("cosine", "L_vlb"): 4.80})).holds == "no"


def test_importance_sampling_row():
    row = CH.is_better_bound(_record(is_bound_diff=_iv(0.05, 0.003, n=5, method="t-paired")))
    assert row.holds == "no" and "less noisy" in row.why and row.provisional
    ns = CH.is_better_bound(_record(is_bound_diff=_iv(0.0, 0.01, n=5, method="t-paired"),
                                    is_gradnoise_ratio=Interval(0.9, 0.5, 1.5, 24)))
    assert ns.holds == "not significant" and "not measurably less noisy" in ns.why
    assert CH.is_better_bound(_record(is_warm_at=None)).holds == "n/a"  # the sampler never switched on


def test_step_sweep_and_skipping_rows_can_fail():
    r = _record(sweep_diff={**_record().sweep_diff, ((CH.HYBRID, 50), (CH.HYBRID, 1000)): _iv(5.0, 1.0)})
    assert CH.fewer_steps_learned_variance(r).holds == "no"  # margin 2.5
    r = _record(sweep_diff={**_record().sweep_diff, ((CH.HYBRID, 50), (CH.HYBRID, 1000)): _iv(2.0, 2.0)})
    assert CH.fewer_steps_learned_variance(r).holds == "not significant"
    r = _record(sweep_diff={**_record().sweep_diff, ((CH.DDIM, 10), (CH.LARGE, 10)): _iv(-4.0, 6.0)})
    assert CH.ddim_best_few_steps(r).parts[f"vs {CH.LARGE}"] == "not significant"
    assert CH.ddim_best_few_steps(r).holds == "not significant"
    r = _record(skip_cost={"linear": _iv(1.4, 7.4), "cosine": _iv(1.3, 7.0)}, skip_contrast=_iv(-0.1, 11.4))
    wide = CH.skip_linear_costs_little(r)  # the recorded half-width 7.4 against a margin of 2.5: cannot pass
    assert wide.holds == "not significant" and "cannot pass" in wide.why
    assert CH.skip_cosine_costs_more(r).holds == "not significant"
    costly = {"linear": _iv(6.0, 1.0), "cosine": _iv(5.0, 1.0)}
    assert CH.skip_linear_costs_little(_record(skip_cost=costly)).holds == "no"
    assert CH.first_steps_carry_bound(_record(share_first=Interval(0.4, 0.35, 0.45, 64))).holds == "no"


def test_a_record_round_trips_and_a_missing_field_is_named():
    r = _record()
    back = CH.Record.from_json(json.loads(json.dumps(r.to_json())))
    assert back.sweep_diff == r.sweep_diff and back.table == r.table
    assert [c.holds for c in CH.claims(back)] == [c.holds for c in CH.claims(r)]
    with pytest.raises(C.Missing, match="sweep_diff"):
        CH.ddim_best_few_steps(_record(sweep_diff=None))


def test_the_second_edition_record_re_derives_what_it_stores():
    _, got, missing = rederive_old(CH, "03_improved_ddpm")
    assert got["cosine_better_bound"] == "yes" and got["cosine_better_bound_vlb"] == "no"
    assert got["hybrid_better_bound_same_fd"] == "not significant"  # "partly" in the second edition
    assert got["vlb_best_bound_worst_samples"] == "n/a" and got["is_better_bound"] == "no"
    assert {m.split(":")[0] for m in missing} >= {
        "fewer_steps_learned_variance", "ddim_best_few_steps", "first_steps_carry_bound"}


def test_gradient_noise_from_the_gram_matrix_equals_the_direct_formula():
    class Quad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

    grads = []

    def objective(net, batch):
        x = batch.x
        loss = ((x @ net.w) ** 2).mean()
        return loss

    net = Quad()
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    got = CH.gradient_noise(net, objective, x, batch_size=8, n_batches=10, seed=3)
    g = torch.Generator().manual_seed(3)
    for k in range(10):
        idx = torch.randint(len(x), (8,), generator=g)
        net.zero_grad()
        objective(net, type("B", (), {"x": x[idx]})()).backward()
        grads.append(net.w.grad.detach().double().clone())
    G = torch.stack(grads)
    m = G.mean(0)
    direct = float(((G - m) ** 2).sum(1).mean() / (m @ m))
    assert got["est"] == pytest.approx(direct, rel=1e-9)
    assert got["lo"] <= got["est"] <= got["hi"]


def test_importance_sampling_row_over_training_seeds_states_the_amended_test():
    seeds = dict(is_seeds=3, is_bound_diff=_iv(-0.03, 0.02, n=3, method="seeds"),
                 is_bound_diff_seed0=_iv(0.05, 0.003, n=5, method="t-paired"),
                 is_p_last={"seed 0": 6.2, "seed 1": 5.8, "seed 2": 7.0})
    row = CH.is_better_bound(_record(**seeds))
    assert row.holds == "yes" and not row.provisional and row.seeds == 3
    assert "over 3 training seeds" in row.ours
    # the mechanism is in the why whatever the verdict, with p_T after warm-up
    assert "times the uniform one" in row.why and "T p_T" in row.why
    # the test changed after a record whose verdict was seen: the row says so, with the original rule's verdict
    assert "one training seed per arm" in row.amended and "+0.0517" in row.amended
    assert "this run's seed 0 alone reads 'no'" in row.amended
    worse = CH.is_better_bound(_record(**{**seeds, "is_bound_diff": _iv(0.05, 0.02, n=3, method="seeds")}))
    assert worse.holds == "no"
    ns = CH.is_better_bound(_record(**{**seeds, "is_bound_diff": _iv(0.01, 0.05, n=3, method="seeds")}))
    assert ns.holds == "not significant" and "could detect" in ns.why
    one = CH.is_better_bound(_record(**{**seeds, "is_seeds": 1}))  # smoke: one seed, provisional
    assert one.provisional and "noise estimates of one seed" in one.ours


def test_skip_equivalence_states_its_sizing_and_refuses_a_margin_below_the_half_width():
    r = _record(skip_n=128, skip_expected_half=7.4, skip_cost={"linear": _iv(0.2, 1.0), "cosine": _iv(5.0, 1.0)})
    row = CH.skip_linear_costs_little(r)  # margin 2.5 > half-width 1.0, inside: yes
    assert row.holds == "yes" and "expected half-width is 7.4" in row.test and row.kind == "paper"
    assert CH.skip_cosine_costs_more(r).kind == "extension"
    wide = CH.skip_linear_costs_little(_record(skip_cost={"linear": _iv(0.2, 3.0), "cosine": _iv(5.0, 1.0)}))
    assert wide.holds == "not significant" and "cannot pass" in wide.why


def test_the_books_lvlb_rows_say_how_often_the_sampler_draws_the_last_step():
    rows = _named(CH.claims(_record(is_from=400, table_p_last={"linear": 3.1, "cosine": 8.4})))
    assert "cosine 8.4 times the uniform rate" in rows["vlb_late_is_best_bound_worst_fd"].why
    assert "T p_T" in rows["cosine_better_bound_vlb"].why
    assert rows["cosine_better_bound_vlb"].kind == rows["vlb_late_is_best_bound_worst_fd"].kind == "extension"


def test_a_table_without_lvlb_rows_names_the_paper_row_and_drops_the_books():
    r = _record()
    r.table = {k: v for k, v in r.table.items() if k[1] != "L_vlb"}
    rows = _named(CH.claims(r))
    assert "cosine_better_bound_vlb" not in rows and "vlb_late_is_best_bound_worst_fd" not in rows
    vlb = rows["vlb_best_bound_worst_samples"]
    assert vlb.holds == "n/a" and vlb.kind == "paper" and "warm-up" in vlb.why
    assert rows["cosine_better_bound"].holds == "yes"  # the paper's rows still decide
