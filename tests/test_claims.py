"""The verdict calculus, the paired / clustered / both-sets statistics and the typed seam
(ddpm_lib.claims, ddpm_lib.stats): each test fails on the second edition's behaviour."""
from __future__ import annotations

import dataclasses
import json
import sys

from conftest import ROOT
from ddpm_lib import claims as C
from ddpm_lib import metrics, notebook, stats
from ddpm_lib.stats import Interval

import numpy as np  # noqa: E402  (ddpm_lib before torch: its OpenMP guard)
import pytest  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))


def _iv(est, lo, hi, n=2000, method="bootstrap-paired"):
    return Interval(est, lo, hi, n, method=method)


# ---- the calculus ---------------------------------------------------------------------------
def test_a_conjunction_takes_its_weakest_part():
    assert C.weakest("yes", "not significant") == "not significant"  # the second edition said "partly"
    assert C.weakest("yes", "no") == "no"  # ... and "partly" here too
    assert C.weakest("not significant", "no", "yes") == "no"
    assert C.weakest("yes", "did not train") == "did not train"
    assert C.weakest("yes", "yes") == "yes"
    with pytest.raises(ValueError, match="parts must be among"):
        C.weakest("yes", "n/a")
    with pytest.raises(ValueError, match="weakest part"):  # a row cannot claim more than its parts give
        C.Claim("c", "p", "o", "s", "yes", kind="paper", parts={"falls": "yes", "rises": "not significant"})
    with pytest.raises(ValueError, match="holds must be one of"):  # no "partly" in a third-edition row
        C.Claim("c", "p", "o", "s", "partly", kind="paper")
    assert C.Claim("c", "p", "o", "s", "partly").holds == "partly"  # an old, kind-less row still reads


def test_supports_equivalence_and_the_smallest_detectable_effect():
    assert C.supports(_iv(-1, -2, -0.1), "<") == "yes" and C.supports(_iv(-1, -2, -0.1), ">") == "no"
    assert C.supports(_iv(0.2, -1, 1.5), "<") == "not significant"
    assert C.equivalent(_iv(0.1, -0.2, 0.4), 0.5) == "yes"
    assert C.equivalent(_iv(1.0, 0.7, 1.3), 0.5) == "no"
    with pytest.raises(C.CannotDecide):  # a margin below the half-width can never pass: refused
        C.equivalent(_iv(0.0, -3.0, 3.0), 1.0)
    d = _iv(0.0, -1.96, 1.96)  # standard error 1
    assert C.mde(d) == pytest.approx(1.96 + 0.8416, abs=1e-3)
    assert "2.8" in C.not_significant_why(d)
    assert C.can_decide(0.5, 1.0) and not C.can_decide(2.0, 1.0)


def test_holm_corrects_a_family():
    p = {"a": 0.01, "b": 0.02, "c": 0.04}
    assert C.holm(p) == {"a": True, "b": True, "c": True}  # 0.01 <= .05/3, .02 <= .05/2, .04 <= .05
    assert C.holm({"a": 0.02, "b": 0.03, "c": 0.04}) == {"a": False, "b": False, "c": False}  # .02 > .0167
    fam = {"x": Interval(-1, -2, -0.1, 5, p=0.02), "y": Interval(-1, -2, -0.1, 5, p=0.03)}
    assert C.holm_verdicts(fam, "<") == {"x": "yes", "y": "yes"}  # .02 <= .025, .03 <= .05
    fam["z"] = Interval(-1, -2, -0.1, 5, p=0.03)
    assert C.holm_verdicts(fam, "<") == {"x": "not significant", "y": "not significant", "z": "not significant"}


def test_provisional_rows_one_seed_or_few_replicates():
    one_seed = C.Claim("c", "p", "o", "s", "yes", kind="paper", seeds=1)
    assert one_seed.provisional and "1 training seed" in notebook.verdict_label(one_seed)
    assert not C.Claim("c", "p", "o", "s", "yes", kind="paper", seeds=3).provisional
    few_b = C.Claim("c", "p", "o", "s", "no", kind="paper", evidence={"d": _iv(1, 0.5, 2, n=200)})
    assert few_b.provisional and "B = 200" in few_b.provisional_because[0]
    assert not C.Claim("c", "p", "o", "s", "no", kind="paper", evidence={"d": _iv(1, 0.5, 2)}).provisional
    assert not C.Claim("c", "p", "o", "s", "did not train", kind="paper", seeds=1).provisional
    with pytest.raises(ValueError, match="kind must be one of"):
        C.Claim("c", "p", "o", "s", "yes", kind="paper claim")
    tally = C.tally([one_seed.as_dict(), C.Claim("c", "p", "o", "s", "yes", kind="check").as_dict()])
    assert tally == {"yes (provisional)": 1}  # checks are not reproductions


def test_a_claims_table_says_provisional_in_the_cell_and_why_in_the_detail():
    one_seed = C.Claim("c", "p", "o", "s", "yes", kind="paper", seeds=1)
    html = notebook.claims_html([one_seed, C.Claim("d", "p", "o", "s", "no", kind="paper", seeds=3)])
    cells = html.split("<td")
    verdict_cell = next(c for c in cells if "claim-holds" in c)
    assert "yes (provisional)</span>" in verdict_cell and "training seed" not in verdict_cell
    assert "<b>provisional</b>: 1 training seed" in html  # the reason, once, in the row's detail
    assert html.count("<b>provisional</b>") == 1  # the three-seed row is not provisional
    assert notebook.verdict_label(one_seed, short=True) == "yes (provisional)"


# ---- paired, clustered and both-sets statistics ----------------------------------------------
def test_paired_accuracies_decide_where_two_separate_intervals_cannot():
    rng = np.random.default_rng(0)
    n = 1000
    a = rng.random(n) < 0.45
    b = a.copy()
    flip = rng.choice(np.flatnonzero(a), 50, replace=False)  # b misses 50 images a gets, nothing else
    b[flip] = False
    wa, wb = stats.rate_ci(a), stats.rate_ci(b)
    assert stats.compare(wa, wb, independent=True) == "not significant"  # the second edition's test
    d = stats.paired_rate_diff(a, b)
    assert d.method == "bootstrap-paired" and d.n == 2000 and d.lo > 0  # paired: clearly better
    assert d.p < 1e-10 and stats.mcnemar_p(a, b) == d.p
    assert stats.mcnemar_p(a, a) == 1.0


def test_nested_samples_resample_the_cluster():
    rng = np.random.default_rng(1)
    per_caption = rng.normal(0, 1, (48, 1))  # captions differ, their 4 samples do not
    x = np.repeat(per_caption, 4, axis=1) + rng.normal(0, 0.01, (48, 4))
    flat = stats.mean_ci(x.ravel())
    clus = stats.cluster_mean_ci(x)
    assert (clus.hi - clus.lo) > 1.7 * (flat.hi - flat.lo)  # samples as if independent: far too narrow
    d = stats.cluster_diff(x + 0.5, x)
    assert d.lo == pytest.approx(0.5, abs=1e-6) and d.method == "bootstrap-cluster"


def test_precision_recall_intervals_move_both_sets():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(200, 4, generator=g), torch.randn(200, 4, generator=g) * 1.1
    ev = metrics.evaluate(None, real, fake, bootstrap=200)
    # recall's manifold is the fake set's: rebuilding it per replicate widens the interval (the
    # second edition resampled only the real points over a fixed fake manifold)
    in_real, in_fake = metrics.pr_indicators(real, fake)
    fixed = np.random.default_rng(0).choice(in_fake.numpy(), (200, 200)).mean(1)
    rec = ev.ci("recall")
    assert (rec.hi - rec.lo) > 1.2 * (np.quantile(fixed, 0.975) - np.quantile(fixed, 0.025))


def test_seed_intervals_are_over_seeds():
    d = stats.seeds_diff([0.30, 0.32, 0.31], [0.40, 0.41, 0.43])
    assert d.method == "seeds" and d.n == 3 and d.hi < 0


# ---- the typed seam ------------------------------------------------------------------------
@dataclasses.dataclass
class _Rec(C.Record):
    fd_diff: Interval | None = None
    sweep: dict | None = None
    label: str | None = None


def test_a_record_refuses_a_misspelt_field_and_round_trips():
    r = _Rec()
    with pytest.raises(AttributeError, match="no field 'fd_dif'.*fd_diff"):
        r.fd_dif = 1.0
    r.fd_diff = _iv(-1.0, -2.0, -0.5)
    r.sweep = {("cfg", 3.0): _iv(1, 0, 2), ("cfg", 1.0): [1, 2]}
    assert r.missing() == ["label"]
    with pytest.raises(C.Missing, match="label"):
        r.need("fd_diff", "label")
    back = _Rec.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r and isinstance(back.sweep[("cfg", 3.0)], Interval)
    with pytest.raises(ValueError, match="not in the record"):
        _Rec.from_json({"fd_dif": 1})


def test_derive_names_rows_and_reports_what_an_old_record_lacks():
    def lsimple_best(r):
        return C.Claim("L_simple is best", "p", str(r.need("fd_diff")), "s", C.supports(r.fd_diff, "<"),
                       kind="paper", evidence={"d": r.fd_diff})

    def labelled(r):
        return C.Claim("x", "p", r.need("label"), "s", "n/a", kind="extension")

    r = _Rec(fd_diff=_iv(-1.0, -2.0, -0.5))
    rows = C.derive([lsimple_best, labelled], r, strict=False)
    assert rows[0].name == "lsimple_best" and rows[0].holds == "yes"
    assert isinstance(rows[1], C.Missing) and "labelled" in str(rows[1])
    with pytest.raises(C.Missing):
        C.derive([lsimple_best, labelled], r)


def test_the_chapter_claims_table_colours_every_verdict():
    rows = [C.Claim("c", "p", "o", "s", h, kind="paper") for h in C.VERDICTS]
    page = notebook.claims_html(rows)
    for h in C.VERDICTS:
        cls = notebook.verdict_class(h)
        assert " " not in cls and f"class='claim-holds {cls}'" in page
        assert f"color:{C.VERDICT_COLOURS[h]}" in page


def test_the_claims_table_names_its_setting_once_and_how_many_rows_it_covers():
    same = [C.Claim(c, "p", "o", "ring", "yes", kind="paper") for c in "ab"]
    assert "<b>Setting</b>: ring" in notebook.claims_html(same)
    mixed = same + [C.Claim(c, "p", "o", "digits", "yes", kind="paper") for c in "cd"]
    page = notebook.claims_html(mixed)  # a tie: the first row's setting heads the table
    assert "<b>Setting of 2 of the 4 claims (the others give theirs in their detail)</b>: ring" in page
    assert page.count("<b>setting</b>: digits") == 2 and "<b>setting</b>: ring" not in page


def test_plain_math_reads_as_math_and_leaves_code_names():
    pm = notebook.plain_math
    assert pm("q(x_t | x_0)") == "q(x<sub>t</sub> | x<sub>0</sub>)"
    assert pm("1 / (2 sigma_t^2)") == "1 / (2 σ<sub>t</sub><sup>2</sup>)"
    assert pm("FD(L_simple) <= 8, eps-prediction, mu~, beta_tilde") == \
        "FD(L<sub>simple</sub>) ≤ 8, ε-prediction, μ\u0303, β\u0303"
    assert pm("v_(t-1) +- 2, N/(1-mu), tau=0.8") == "v<sub>t-1</sub> ± 2, N/(1-μ), τ=0.8"
    # code names stay as written: a long subscript, a word before the underscore, a module path
    for code in ("n_prompts", "fixed_large", "consistency.rescaled_mu", "ct_chain_time"):
        assert pm(code) == code
    assert pm("<b>") == "&lt;b&gt;"  # escaped first: no HTML gets through


def test_claims_table_shows_math_but_settings_as_written():
    row = C.Claim("sigma^2 = beta", "p", "x_t", "n_train=24000", "yes", kind="paper", test="eps <= 1")
    page = notebook.claims_html([row, C.Claim("b", "p", "o", "other_set", "no", kind="paper")])
    assert "σ<sup>2</sup> = β" in page and "x<sub>t</sub>" in page and "ε ≤ 1" in page
    assert "n_train=24000" in page and "other_set" in page
