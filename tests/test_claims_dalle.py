"""Chapter 05's claims (ddpm_lib.chapters.dalle) as rules over its typed record: each verdict of the
calculus, the weakest part of the reranking curve, the did-not-train gates (the book's FD rule on
the transformer's samples for the claims about caption match, on each dVAE arm's reconstructions
for the dVAE rows; on caption following for the blur claim, which is about FD), training seeds,
the likelihood row as the chapter's deviation, the paired colour test, the text-weight row where
no second transformer is trained, and the re-derivation of the first record."""
from __future__ import annotations

import json

import pytest
from conftest import ROOT
from ddpm_lib import claims as C
from ddpm_lib import stats
from ddpm_lib.chapters import dalle as CH
from ddpm_lib.stats import Interval

import numpy as np  # noqa: E402  (ddpm_lib before numpy/torch: its OpenMP guard)


def I(est, lo, hi, n=2000, method="t-paired"):  # noqa: E743
    return Interval(est, lo, hi, n, method=method)


POS, NEG, NS = I(0.1, 0.05, 0.15), I(-0.1, -0.15, -0.05), I(0.01, -0.02, 0.04)


def record(**kw) -> CH.Record:
    """A record on which every claim of the chapter holds."""
    r = CH.Record(
        setting="test", dvae_setting="test", codes=64, sigma=0.1, colour_ll=I(0.01, 0.0, 0.02, 1000, "t"),
        colour_gauss=I(0.78, 0.75, 0.81, 1000, "t"), likelihood_colour=I(-0.77, -0.8, -0.74, method="bootstrap-paired"),
        dvae_seeds=3, elb_draws=5, fd_ratio_dvae={CH.MAIN: 6.5, CH.ZERO: 7.0, CH.FIXED: 8.0},
        usage_diff=I(10.0, 9.0, 11.0, 3, "seeds"), recon_diff=I(-0.001, -0.0015, -0.0005, 3, "seeds"),
        tau_end=1 / 16, gap_annealed=I(0.02, 0.015, 0.025, 3, "seeds"), gap_fixed=I(9.6, 8.8, 10.3, 1000, "t"),
        match_own=I(0.78, 0.77, 0.79, 1000, "t"),
        match_shuffled=I(0.09, 0.08, 0.10, 1000, "t"), match_vs_shuffled=I(0.69, 0.68, 0.70),
        text_weight=0.125, ablation_text_weight=0.5, image_ce_diff=NEG, text_ce_diff=POS, match_weight_diff=NS,
        n_max=32, gain_total=POS, gain_first=POS, gain_last=NS, gain_last_minus_first=NEG,
        gain_reranker=I(6.8, 5.5, 8.0), gain_judge=I(4.8, 3.6, 6.0), own_minus_judge=I(2.0, 1.1, 2.8),
        blur_sigma=1.0, blur_ratio_samples=I(-14.0, -16.0, -12.0, method="bootstrap-paired"),
        blur_ratio_recon=I(-15.0, -17.0, -13.0, method="bootstrap-paired"),
        fd_samples=I(60, 55, 65, method="bootstrap"), fd_recon=I(50, 46, 54, method="bootstrap"),
        fd_floor=7.8, fd_uniform=I(619, 593, 644, method="bootstrap"))
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def rows(r) -> dict:
    return {c.name: c for c in CH.claims(r)}


def test_every_rule_holds_where_the_record_shows_the_effects_and_kinds_are_stated():
    out = rows(record())
    assert list(out) == [f.__name__ for f in CH.RULES]
    assert {k: c.holds for k, c in out.items() if c.holds != "yes"} == {"headline": "n/a"}
    kinds = {k: c.kind for k, c in out.items()}
    assert kinds["gaussian_likelihood_deviation"] == "deviation"
    assert kinds["transformer_follows_captions"] == kinds["reranker_overstates_its_gain"] == "check"
    assert kinds["text_weight_lowers_image_ce"] == kinds["blur_hides_the_bottleneck"] == "extension"
    # training outcomes from one dVAE / transformer per arm are provisional; the dVAE rows have 3 seeds
    for k in ("gaussian_likelihood_deviation", "text_weight_lowers_image_ce"):
        assert out[k].seeds == 1 and out[k].provisional, k
    for k in ("kl_weight_more_codes", "kl_weight_lower_recon", "tau_annealing_closes_gap"):
        assert out[k].seeds == 3 and not out[k].provisional, k
    two = rows(record(dvae_seeds=2))
    assert two["kl_weight_more_codes"].provisional and "2 training seeds" in two["kl_weight_more_codes"].\
        provisional_because[0]


def test_the_likelihood_deviation_is_decided_on_paired_colour_reads():
    rng = np.random.default_rng(0)
    gauss = rng.random(1000) < 0.78
    ll = gauss & (rng.random(1000) < 0.02)  # the logit-Laplace dVAE loses nearly every object
    d = stats.paired_rate_diff(ll, gauss)
    assert d.p < 1e-10 and rows(record(likelihood_colour=d))["gaussian_likelihood_deviation"].holds == "yes"
    close = stats.paired_rate_diff(gauss, gauss)  # the same reads: no reason to depart
    assert rows(record(likelihood_colour=close))["gaussian_likelihood_deviation"].holds == "no"


def test_yes_no_and_not_significant_with_the_smallest_detectable_effect():
    assert rows(record(usage_diff=I(-3.0, -4.0, -2.0, 3, "seeds")))["kl_weight_more_codes"].holds == "no"
    row = rows(record(recon_diff=I(0.0001, -0.002, 0.0022, 3, "seeds")))["kl_weight_lower_recon"]
    assert row.holds == "not significant" and "could detect an effect of about" in row.why
    assert rows(record(image_ce_diff=NS))["text_weight_lowers_image_ce"].holds == "not significant"


def test_tau_annealing_is_an_equivalence_with_a_stated_margin():
    assert CH.TAU_GAP_MARGIN == 0.01  # 99% of the fixed-tau gap closed
    assert rows(record())["tau_annealing_closes_gap"].holds == "yes"  # inside +-0.096, 1% of 9.6
    # the fixed-tau dVAE's gap under the same test: outside the margin
    assert rows(record(gap_annealed=I(9.6, 9.55, 9.65, 3, "seeds")))["tau_annealing_closes_gap"].holds == "no"
    row = rows(record(gap_annealed=I(0.0, -0.2, 0.2, 3, "seeds")))["tau_annealing_closes_gap"]
    assert row.holds == "not significant" and "cannot pass" in row.why  # margin 0.096 < half-width 0.2
    # the 73bb274 record's numbers: yes under both margins
    rec = rows(record(gap_annealed=I(0.0219, 0.0182, 0.0257, 3, "seeds"),
                      gap_fixed=I(9.57, 8.81, 10.3, 1000, "t")))["tau_annealing_closes_gap"]
    assert rec.holds == "yes" and "this run reads 'yes'" in rec.amended
    # 5% of the gap left: closed under the old tenth, not under 1%, and the row says so
    half = rows(record(gap_annealed=I(0.48, 0.42, 0.54, 3, "seeds")))["tau_annealing_closes_gap"]
    assert half.holds == "no" and "this run reads 'yes'" in half.amended


def test_reranking_tests_the_gain_and_shows_the_doublings():
    row = rows(record(gain_total=I(0.015, -0.007, 0.037)))["reranking_improves"]
    assert row.holds == "not significant" and "could detect" in row.why
    assert "not tested" in row.why and "beyond 32" in row.why
    # a falling gain per doubling no longer decides the row (any reranker shows it)
    out = rows(record(gain_last_minus_first=POS))["reranking_improves"]
    assert out.holds == "yes" and "this run reads 'no'" in out.amended
    assert rows(record(gain_total=NEG))["reranking_improves"].holds == "no"


def test_the_gates_use_a_metric_other_than_the_claims():
    untrained = record(fd_samples=I(80, 76, 84, method="bootstrap"))  # 80 > 10 x 7.8: the book's rule
    out = rows(untrained)
    for k in ("transformer_follows_captions", "text_weight_lowers_image_ce", "reranking_improves",
              "reranker_overstates_its_gain"):
        assert out[k].holds == "did not train" and not out[k].provisional, k
    assert out["blur_hides_the_bottleneck"].holds == "yes"  # about FD: not gated on FD
    assert out["kl_weight_more_codes"].holds == "yes"  # the dVAE's rows do not read the transformer
    row = rows(record(match_vs_shuffled=NS))["blur_hides_the_bottleneck"]
    assert row.holds == "did not train" and row.parts["reconstructions: FD/floor change"] == "yes"
    assert "back to the book's rule" in out["transformer_follows_captions"].amended


def test_a_dvae_arm_above_the_fd_gate_is_named_not_compared():
    out = rows(record(fd_ratio_dvae={CH.MAIN: 6.5, CH.ZERO: 14.0, CH.FIXED: 8.0}))
    for k in ("kl_weight_more_codes", "kl_weight_lower_recon"):
        assert out[k].holds == "did not train" and "beta 0 dVAE" in out[k].why and "14x" in out[k].why, k
    assert out["tau_annealing_closes_gap"].holds == "yes"  # reads the annealed beta 6.6 arm only
    out = rows(record(fd_ratio_dvae={CH.MAIN: 10.5, CH.ZERO: 7.0, CH.FIXED: 8.0}))
    assert {k for k, c in out.items() if c.holds == "did not train"} == {
        "kl_weight_more_codes", "kl_weight_lower_recon", "tau_annealing_closes_gap"}
    assert out["transformer_follows_captions"].holds == "yes"  # the transformer's gate is its own


def test_the_text_weight_row_is_na_without_a_second_transformer():
    row = rows(record(ablation_text_weight=None, image_ce_diff=None, text_ce_diff=None,
                      match_weight_diff=None))["text_weight_lowers_image_ce"]
    assert row.holds == "n/a" and "ablation_text_weight" in row.why


def test_blur_is_tested_against_the_floor_not_by_lowering_fd():
    row = rows(record(blur_ratio_recon=I(0.5, 0.2, 0.8, method="bootstrap-paired")))["blur_hides_the_bottleneck"]
    assert row.holds == "no"  # FD falls with blur (blur_recon < 0) but not relative to the floor


def test_the_record_round_trips_and_the_old_results_re_derive_what_they_can():
    r = record(colour_hits={"Gaussian": [1, 0, 1], "logit-Laplace": [0, 0, 0]})
    assert CH.Record.from_json(json.loads(json.dumps(r.to_json()))) == r
    payload = json.loads((ROOT / "book" / "results" / "05_dalle.json").read_text())
    if "record" in payload:
        pytest.skip("05_dalle is recorded through the typed seam: no old numbers to re-derive")
    old = CH.record_from_numbers(C.decode(payload["numbers"]), payload["run_card"])
    got = C.derive(CH.RULES, old, strict=False)
    done = {c.name: c.holds for c in got if isinstance(c, C.Claim)}
    assert done == {"headline": "n/a"}  # the seeds and the gates' FD ratios were not stored
    assert old.colour_ll.est < 0.05 < 0.5 < old.colour_gauss.est and old.likelihood_colour is None
