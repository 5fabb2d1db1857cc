"""Chapter 00's claims (ddpm_lib.chapters.forward): each rule can fail, conjunctions take their
weakest part, every row is a check, and the old results file re-derives every rule."""
from __future__ import annotations

import json

from conftest import ROOT
from ddpm_lib import claims as C
from ddpm_lib.chapters import forward as CH

import pytest  # noqa: E402


def _rec(**kw) -> CH.Record:
    base = dict(T=1000, toy="toy2d:moons", n_toy=2000, n_t=6, n_z=4000, image_data="digits", image_size=16,
                n_prior_images=1437, moment_err=1e-15, z_mean_err=0.04, z_std_err=0.026,
                noise_fraction={"linear": 0.326, "cosine": 0.064}, first_noisy_t={"linear": 675, "cosine": 937},
                prior_bpd={"linear": 1.6e-5, "cosine": 1e-9})
    return CH.Record(**{**base, **kw})


def test_every_rule_holds_on_a_sound_record_and_is_a_check():
    rows = CH.claims(_rec())
    assert [r.name for r in rows] == ["closed_form", "linear_tail_is_noise", "prior_negligible"]
    assert all(r.holds == "yes" and r.kind == "check" and r.test for r in rows)
    assert C.tally([r.as_dict() for r in rows]) == {}  # checks are not counted as reproductions


def test_closed_form_takes_its_weakest_part():
    # 4 standard errors of a mean over 4,000 numbers: 4 / sqrt(4000) = 0.063
    row = CH.closed_form(_rec(z_mean_err=0.07))
    assert row.holds == "no" and row.parts == {"recursion = closed form": "yes",
                                               "simulated chain standard normal": "no"}
    assert CH.closed_form(_rec(moment_err=1e-9)).holds == "no"  # beyond float64 round-off
    assert CH.closed_form(_rec(z_mean_err=0.07, n_z=400)).holds == "yes"  # the same error from 10x fewer numbers


def test_the_schedule_rule_needs_both_parts():
    assert CH.linear_tail_is_noise(_rec(noise_fraction={"linear": 0.2, "cosine": 0.05})).holds == "no"
    row = CH.linear_tail_is_noise(_rec(noise_fraction={"linear": 0.3, "cosine": 0.2}))
    assert row.holds == "no" and row.parts["linear: last quarter noise"] == "yes"


def test_the_prior_rule_is_a_factor_of_ten():
    assert CH.prior_negligible(_rec(prior_bpd={"linear": 2e-4, "cosine": 0.0})).holds == "no"
    assert CH.prior_negligible(_rec(prior_bpd={"linear": 5e-7, "cosine": 0.0})).holds == "no"
    assert CH.prior_negligible(_rec(prior_bpd={"linear": 9e-5, "cosine": 0.0})).holds == "yes"


def test_a_missing_field_is_named_and_a_misspelt_one_fails():
    with pytest.raises(C.Missing, match="prior_bpd"):
        CH.claims(_rec(prior_bpd=None))
    with pytest.raises(AttributeError, match="no field"):
        _rec().prior_bdp = {}


def test_the_record_round_trips_and_the_old_results_re_derive():
    r = _rec()
    assert CH.Record.from_json(json.loads(json.dumps(r.to_json()))) == r
    payload = json.loads((ROOT / "book" / "results" / "00_forward_process.json").read_text())
    if "record" in payload:  # recorded through the typed seam: stored whole
        old = CH.Record.from_json(payload["record"])
    else:
        old = CH.record_from_numbers(C.decode(payload["numbers"]), payload["run_card"])
        assert old.n_t == 6 and old.n_z == 4000 and old.n_prior_images is None  # not stored: not invented
    assert [c.holds for c in CH.claims(old)] == ["yes", "yes", "yes"]
