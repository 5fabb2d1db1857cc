"""Chapter 02's claims (ddpm_lib.chapters.ddpm): its gates, its rules on synthetic records (yes /
no / not significant / did not train), conjunctions taking their weakest part, comparisons over
training seeds (and, with one seed, the within-seed paired tests), the equivalence test of the
sampling variance, and the re-derivation of a record written before the typed seam."""
from __future__ import annotations

import json

import ddpm_lib  # noqa: F401  (before torch)
from ddpm_lib import claims as C
from ddpm_lib import stats
from ddpm_lib.chapters import ddpm as CH
from ddpm_lib.stats import Interval

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from conftest import ROOT  # noqa: E402

ROWS = {  # key -> (label, paper FID: None for a blank row)
    ("mu", "learned", "vlb", 1): ("mu L learned", "23.69"),
    ("mu", "fixed_large", "vlb", 1): ("mu L fixed", "13.22"),
    ("mu", "fixed_large", "simple", 1): ("mu mse", None),
    CH.LEARNED: ("eps L learned", None),
    CH.EPS_VLB: ("eps L fixed", "13.51"),
    CH.SIMPLE: ("eps simple", "3.17"),
}
LEARNED = CH.LEARNED
MU_MSE = ("mu", "fixed_large", "simple", 1)
# the second-edition record's numbers (one seed), as the arms' means
FDS = dict(zip(ROWS, (130, 260, 109, 74, 33, 24)))
BOUNDS = dict(zip(ROWS, (58.5, 37.9, 20.6, 7.38, 5.00, 5.01)))


def _iv(est, half, n=2000, method="bootstrap-paired"):
    return Interval(est, est - half, est + half, n, method=method)


def _seed_row(s, bound, fd, spike=1.5, floor=7.0, per_image=None):
    return dict(seed=s, status="trained", nll=Interval(bound, bound - 0.04, bound + 0.04, 256, method="t"),
                nll_per_image=list(per_image), fd=None if fd is None else _iv(fd, 5.0, method="bootstrap"),
                fd_floor=floor, kid=1.0, precision=0.5, recall=0.5, isc=5.0,
                trace=dict(finite=True, spike_ratio=spike, unstable=spike > CH.SPIKE))


def _record(fds=None, bounds=None, spikes=None, n_seeds=3, fd_sd=1.0, bound_sd=0.001, half=4.0,
            **kw) -> CH.Record:
    """A run like the recorded one, with ``n_seeds`` seeds per eps row (one per mu row): the mu rows
    above 8 bits/dim, the blank eps row trained by the bound with a poor FD. Per seed: FD and bound
    jittered by ``fd_sd`` / ``bound_sd``; every seed's FD difference stored, paired, half-width ``half``;
    per-image bounds share one image effect per seed (so rows pair up per image)."""
    fds, bounds, spikes = {**FDS, **(fds or {})}, {**BOUNDS, **(bounds or {})}, spikes or {}
    rng = np.random.default_rng(0)
    images = {s: rng.normal(5.0, 0.3, 64) for s in range(n_seeds)}
    table2, per = {}, {}
    for k, (label, fid) in ROWS.items():
        seeds = range(n_seeds) if k[0] == "eps" else range(1)
        jit = np.random.default_rng(list(ROWS).index(k) + 1)  # stable across processes (no hash())
        rows = []
        for s in seeds:
            b = bounds[k] + bound_sd * jit.normal()
            f = None if fds[k] is None else fds[k] + fd_sd * jit.normal()
            per[k, s] = f
            sp = spikes.get(k, 1.5)
            rows.append(_seed_row(s, b, f, sp[s] if isinstance(sp, tuple) else sp,
                                  per_image=images[s] + (b - 5.0)))
        table2[k] = {"row": label, "paper_is": fid and "x", "paper_fid": fid, "seeds": rows, **CH.aggregate(rows)}
    fd_diff = {}
    for a in ROWS:
        for b in ROWS:
            for s in range(n_seeds):
                if a < b and per.get((a, s)) is not None and per.get((b, s)) is not None:
                    fd_diff.setdefault((a, b), {})[s] = _iv(per[a, s] - per[b, s], half)
    defaults = dict(profile="cpu", setting="s", main_setting="m", T=1000, table2=table2, fd_diff=fd_diff,
                    variance_fd_diff=_iv(0.04, 0.17), learned_sigma={1: 310.0, 1000: 0.9},
                    rate_distortion=dict(lossless=2.82, lossless_ci=Interval(2.82, 2.77, 2.88, 32, method="t"),
                                         decoder_share_ci=Interval(0.533, 0.528, 0.539, 32, method="t"),
                                         rate_at_t1=1.32, decoder_bits=1.51, rmse_at_t1=0.72),
                    progressive=dict(t_coarse_settles=339, t_detail_settles=145,
                                     share_coarse_first=stats.wilson(32, 32)),
                    shared_xt={250: _iv(0.80, 0.1, method="bootstrap-cluster"),
                               500: _iv(0.24, 0.09, method="bootstrap-cluster")},
                    n_classes=10)
    return CH.Record(**{**defaults, **kw})


def _named(rows):
    return {r.name: r for r in rows}


def test_a_run_like_the_recorded_one_with_three_seeds():
    rows = _named(CH.claims(_record()))
    assert [r.name for r in CH.claims(_record())] == [f.__name__ for f in CH.RULES]
    assert all(r.kind == "paper" for r in rows.values())
    best = rows["lsimple_best"]
    assert best.holds == "yes" and best.seeds == 3 and not best.provisional  # three seeds per arm
    assert set(best.parts) == {"eps L fixed", "eps L learned"}  # the bound gate lets the learned row in
    assert all(d.method == "seeds" and d.n == 3 for d in best.evidence.values())
    assert rows["mu_tilde_works"].holds == "did not train" and not rows["mu_tilde_works"].provisional
    # the blank eps row trained by the bound: stable in every seed, so "no"; the mu MSE row is gated out first
    assert rows["blank_rows_unstable"].holds == "no" and set(rows["blank_rows_unstable"].parts) == {"eps L learned"}
    assert "mu mse did not train" in rows["blank_rows_unstable"].ours and rows["blank_rows_unstable"].seeds == 3
    # its FD (74) is above both stable rows: the FD gate does not remove the row the claim predicts poor
    poor = rows["blank_rows_poor_samples"]
    assert poor.holds == "yes" and "sigma^2 = 1" in poor.why and "310 at t = 1" in poor.why
    trade = rows["bound_tradeoff"]
    assert trade.holds == "yes" and trade.seeds == 3
    assert trade.evidence["better NLL"].method == "seeds" and "per seed, paired over images" in trade.ours
    assert rows["variance_similar"].holds == "yes"  # within +-25% of L_simple's FD
    assert rows["code_length_imperceptible"].holds == "yes" and rows["coarse_first"].holds == "yes"
    assert rows["shared_xt_attributes"].holds == "yes" and rows["cifar10_headline"].holds == "n/a"


def test_changed_gates_and_tests_say_what_the_original_rule_reads():
    rows = _named(CH.claims(_record()))
    # the blank eps row is FD-gated under the original rule: "did not train" there, "yes" now
    assert "this run reads 'did not train'" in rows["blank_rows_poor_samples"].amended
    assert "this run reads 'yes'" in rows["lsimple_best"].amended  # only the eps L row compared then
    assert "this run reads 'no'" in rows["blank_rows_unstable"].amended
    assert "this run reads 'yes'" in rows["bound_tradeoff"].amended
    assert "this run reads 'yes'" in rows["variance_similar"].amended  # 0.04 +- 0.17 contains 0
    far = CH.variance_similar(_record(variance_fd_diff=_iv(1.0, 0.5)))  # similar, but not "contains 0"
    assert far.holds == "yes" and "this run reads 'no'" in far.amended
    assert not rows["mu_tilde_works"].amended  # its test did not change


def test_lsimple_best_is_a_conjunction_over_rows_that_trained():
    # L_simple clearly better than the eps L row, undecided against the learned row: not significant
    row = CH.lsimple_best(_record(fds={LEARNED: 26}))
    assert row.parts == {"eps L fixed": "yes", "eps L learned": "not significant"}
    assert row.holds == "not significant" and "could detect" in row.why
    # worse than one row: no
    assert CH.lsimple_best(_record(fds={LEARNED: 10})).holds == "no"
    # the L_simple row above 8 bits/dim: did not train, whatever its FD
    assert CH.lsimple_best(_record(bounds={CH.SIMPLE: 9.0})).holds == "did not train"


def test_seeds_decide_and_their_spread_counts():
    # every seed's own paired bootstrap clears 0, but the seeds disagree (FD gaps 15, 2, 10): the
    # interval over seeds straddles 0, and the seeds decide
    r = _record(fd_sd=0.0)
    for s, gap in enumerate((15.0, 2.0, 10.0)):
        simple = r.table2[CH.SIMPLE]["seeds"][s]["fd"].est
        r.table2[CH.EPS_VLB]["seeds"][s]["fd"] = _iv(simple + gap, 5.0, method="bootstrap")
        r.fd_diff[(CH.SIMPLE, CH.EPS_VLB)][s] = _iv(-gap, 1.0)
    noisy = CH.bound_tradeoff(r)
    assert CH.fd_between(r, CH.EPS_VLB, CH.SIMPLE)[0].n == 3
    assert noisy.parts["worse samples"] == "not significant" and noisy.evidence["worse samples"].est == pytest.approx(9)
    assert "seed 1: 2 [1, 3]" in noisy.ours  # the per-seed paired intervals are shown
    # a bound difference of 0.01 bits/dim survives seed jitter of 0.001, not of 0.05
    assert CH.bound_tradeoff(_record()).parts["better NLL"] == "yes"
    assert CH.bound_tradeoff(_record(bound_sd=0.05)).parts["better NLL"] == "not significant"


def test_one_seed_uses_the_paired_within_seed_tests_and_is_provisional():
    r = _record(n_seeds=1)
    row = CH.bound_tradeoff(r)
    assert row.holds == "yes" and row.seeds == 1 and row.provisional
    assert row.evidence["better NLL"].method == "t-paired" and row.evidence["better NLL"].n == 64
    assert row.evidence["worse samples"].method == "bootstrap-paired"
    # the same per-image bounds shuffled in one row: the image-to-image spread is no longer paired out
    vals = np.array(r.table2[CH.EPS_VLB]["seeds"][0]["nll_per_image"])
    r.table2[CH.EPS_VLB]["seeds"][0]["nll_per_image"] = list(np.random.default_rng(1).permutation(vals))
    assert CH.bound_tradeoff(r).parts["better NLL"] == "not significant"
    best = CH.lsimple_best(_record(n_seeds=1))
    assert best.holds == "yes" and best.provisional and best.seeds == 1
    # with one seed a bootstrap of fewer than 2,000 replicates is provisional too
    few = _record(n_seeds=1)
    few.fd_diff = {k: {s: _iv(d.est, 4.0, n=200) for s, d in v.items()} for k, v in few.fd_diff.items()}
    assert any("B = 200" in w for w in CH.lsimple_best(few).provisional_because)


def test_gates_never_use_the_metric_of_the_claim():
    r = _record()
    learned = r.table2[LEARNED]
    assert CH.bound_gate(learned) == "" and "10x the floor" in CH.fd_gate(learned)
    assert CH.status_of(learned) == "FD > 10x floor" and CH.status_of(r.table2[MU_MSE]) == "did not train"
    assert CH.status_of(r.table2[CH.SIMPLE]) == "trained"
    # a blank row poor by FD but trained by the bound is compared, not gated out
    assert "eps L learned - eps L fixed" in CH.blank_rows_poor_samples(r).parts
    # ... and a claim about the bound sets it aside
    assert CH.bound_tradeoff(_record(fds={CH.EPS_VLB: 300})).parts["better NLL"] == "did not train"
    # no blank row trained by the bound: did not train, for both caption claims
    r = _record(bounds={LEARNED: 9.0})
    assert CH.blank_rows_poor_samples(r).holds == "did not train"
    assert CH.blank_rows_unstable(r).holds == "did not train"  # never learned: not "stable"
    assert CH.did_not_train({"status": "diverged"}).startswith("diverged")


def test_blank_rows_unstable_and_poor_samples_verdicts():
    # one seed of three spikes: the row is unstable
    assert CH.blank_rows_unstable(_record(spikes={LEARNED: (1.5, 30.0, 1.5)})).holds == "yes"
    # the blank row trains and samples as well as a stable row: no
    assert CH.blank_rows_poor_samples(_record(fds={LEARNED: 20})).holds == "no"
    # above L_simple but not clearly above the worst stable row: not significant
    assert CH.blank_rows_poor_samples(_record(fds={LEARNED: 34})).holds == "not significant"
    # both blank rows trained, one spikes and one does not: the conjunction takes the weakest part
    r = _record(bounds={MU_MSE: 6.0}, spikes={LEARNED: 30.0})
    assert CH.blank_rows_unstable(r).parts == {"mu mse": "no", "eps L learned": "yes"}
    assert CH.blank_rows_unstable(r).holds == "no"


def test_a_diverged_seed_makes_the_row_unstable_and_gates_its_samples():
    r = _record()
    seeds = [dict(s) for s in r.table2[LEARNED]["seeds"]]
    seeds[2] = dict(seed=2, status="diverged")
    r.table2[LEARNED] = {**r.table2[LEARNED], **CH.aggregate(seeds)}
    assert r.table2[LEARNED]["status"] == "diverged"
    assert CH.blank_rows_unstable(r).parts["eps L learned"] == "yes"
    assert "eps L learned" not in CH.lsimple_best(r).parts  # gated: diverged


def test_aggregate_over_seeds():
    rows = [_seed_row(s, 5.0 + 0.01 * s, 20.0 + s, spike=1.0 + s, per_image=np.full(8, 5.0 + 0.01 * s))
            for s in range(3)]
    a = CH.aggregate(rows)
    assert a["nll"].method == "seeds" and a["nll"].n == 3 and a["nll"].est == pytest.approx(5.01)
    assert a["fd"].method == "seeds" and a["fd"].est == pytest.approx(21.0)
    assert a["trace"]["spike_ratio"] == 3.0 and a["n_seeds"] == 3 and a["status"] == "trained"
    one = CH.aggregate(rows[:1])
    assert one["nll"] == rows[0]["nll"] and one["fd"] == rows[0]["fd"]
    assert "fd" not in CH.aggregate([{**rows[0], "fd": None}])  # no finite samples


def test_mu_tilde_uses_the_longer_run_and_a_non_inferiority_margin():
    long = ("mu", "fixed_large", "vlb", 4)
    r = _record()
    row = _seed_row(0, 6.0, 35.0, per_image=np.full(64, 6.0))
    r.table2[long] = {"row": "long", "paper_is": None, "paper_fid": None, "seeds": [row], **CH.aggregate([row])}
    eps_fd = r.table2[CH.EPS_VLB]["fd"].est  # margin: 25% of it, about 8.25
    for est, want in ((2.0, "yes"), (20.0, "no"), (eps_fd * CH.SIMILAR, "not significant")):
        r.fd_diff[(long, CH.EPS_VLB)] = {0: _iv(est, 3.0)}  # one seed shared: its paired bootstrap
        got = CH.mu_tilde_works(r)
        assert got.holds == want and "long" in got.ours and got.seeds == 1


def test_variance_similar_is_an_equivalence_with_a_stated_margin():
    # stated before the run: the expected half-width is far below the margin (the test can pass) ...
    ref = CH.iv(_record().table2[CH.SIMPLE]["seeds"][0]["fd"]).est
    assert C.can_decide(CH.VARIANCE_HALF_EXPECTED, CH.SIMILAR * ref)
    assert CH.variance_similar(_record()).holds == "yes"
    # ... and a difference beyond the margin fails it
    assert CH.variance_similar(_record(variance_fd_diff=_iv(9.0, 1.0))).holds == "no"  # beyond 25% of ~24
    assert CH.variance_similar(_record(variance_fd_diff=_iv(5.0, 2.0))).holds == "not significant"
    wide = CH.variance_similar(_record(variance_fd_diff=_iv(0.0, 30.0)))  # a test that cannot pass
    assert wide.holds == "not significant" and "cannot pass" in wide.why
    assert "equivalen" in CH.variance_similar(_record()).test and "79%" in CH.variance_similar(_record()).test


def test_the_smaller_claims_can_fail():
    r = _record(rate_distortion=dict(lossless=2.8, lossless_ci=Interval(2.8, 2.7, 2.9, 32),
                                     decoder_share_ci=Interval(0.53, 0.51, 0.55, 32), rate_at_t1=1.3,
                                     decoder_bits=1.5, rmse_at_t1=3.0))
    row = CH.code_length_imperceptible(r)
    assert row.parts["residual imperceptible (RMSE < 2 on 0-255)"] == "no" and row.holds == "no"
    even = dict(t_coarse_settles=1, t_detail_settles=2, share_coarse_first=stats.wilson(16, 32))
    assert CH.coarse_first(_record(progressive=even)).holds == "not significant"
    assert CH.shared_xt_attributes(_record(shared_xt={500: _iv(0.05, 0.02)})).holds == "no"
    assert CH.shared_xt_attributes(_record(shared_xt={})) is None  # no class reader: not tested


def test_a_record_round_trips_and_a_missing_field_is_named():
    r = _record()
    back = CH.Record.from_json(json.loads(json.dumps(r.to_json())))
    assert back.table2[CH.SIMPLE]["fd"] == r.table2[CH.SIMPLE]["fd"]
    assert back.fd_diff[(CH.SIMPLE, CH.EPS_VLB)][1] == r.fd_diff[(CH.SIMPLE, CH.EPS_VLB)][1]
    assert [c.holds for c in CH.claims(back)] == [c.holds for c in CH.claims(r)]
    with pytest.raises(C.Missing, match="fd_diff"):
        CH.lsimple_best(_record(fd_diff={(CH.EPS_VLB, CH.SIMPLE): {0: _iv(9, 4)}}))


def test_the_prose_follows_the_gates():
    r = _record()
    rows = [r.table2[k] for k in ROWS]
    text = CH.see_table2(rows, None, "eps simple")
    assert "**eps simple** has the lowest FD" in text and "mean over 3 training seeds" in text
    assert "mu mse (bound 20.6" in text and "eps L learned** learned by the bound" in text
    d_nll, n, _ = CH.bound_between(r, CH.EPS_VLB, CH.SIMPLE)
    d_fd, _, _ = CH.fd_between(r, CH.EPS_VLB, CH.SIMPLE)
    see = CH.see_tradeoff(r.table2[CH.EPS_VLB], r.table2[CH.SIMPLE], d_nll, d_fd, n)
    assert "better on the bound and worse on samples" in see and "over 3 training seeds" in see


def rederive_old(mod, chapter: str):
    """(record, {rule: verdict}, [why not re-derivable]) from the chapter's second-edition results
    file (skipped once it is re-recorded through the typed seam)."""
    payload = json.loads((ROOT / "book" / "results" / f"{chapter}.json").read_text())
    if not payload.get("numbers"):
        pytest.skip(f"{chapter}'s results are written through the typed seam")
    r = mod.record_from_numbers(C.decode(payload["numbers"]), payload["run_card"])
    rows = C.derive(mod.RULES, r, strict=False)
    return (r, {x.name: x.holds for x in rows if isinstance(x, C.Claim)},
            [str(x) for x in rows if isinstance(x, C.Missing)])


def test_the_second_edition_record_re_derives_what_it_stores():
    r, got, missing = rederive_old(CH, "02_ddpm")
    assert got["mu_tilde_works"] == "did not train" and got["blank_rows_unstable"] == "no"
    assert got["variance_similar"] == "yes" and got["shared_xt_attributes"] == "yes"
    assert any("nll_per_image" in m for m in missing)  # the old record has no per-image bounds
    assert r.table2[CH.SIMPLE]["fd"].method == "bootstrap"


def test_a_row_above_a_uniform_coder_did_not_train():
    ok = dict(nll=stats.Interval(5.0, 4.9, 5.1, 5).as_dict(), fd=stats.Interval(30, 25, 35, 200).as_dict(),
              fd_floor=8.0)
    assert CH.did_not_train(ok) == ""
    bad_bound = {**ok, "nll": stats.Interval(13.6, 13.0, 14.0, 5).as_dict()}
    assert "uniform coder" in CH.did_not_train(bad_bound)
    bad_fd = {**ok, "fd": stats.Interval(155, 140, 170, 200).as_dict()}
    assert "10x the floor" in CH.did_not_train(bad_fd)
    assert CH.did_not_train({"status": "diverged"}).startswith("diverged")


def test_training_trace_flags_spikes_and_non_finite_losses():
    calm = np.r_[np.linspace(2, 1, 50), np.full(50, 1.0)]
    assert not CH.training_trace(calm)["unstable"]
    spiky = calm.copy()
    spiky[80] = 50.0
    assert CH.training_trace(spiky)["unstable"]
    assert CH.training_trace(np.r_[calm, np.nan])["unstable"]
