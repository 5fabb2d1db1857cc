"""Chapter 02 (DDPM): its typed record, its claims as rules over it, and its prose.

The notebook fills a ``Record`` cell by cell. Table 2's rows are keyed by value,
``(parametrization, variance, loss, budget)`` (budget: the multiple of the shared budget, 1 for the
six rows, ``mu_budget_factor`` for the longer mu-tilde run); each row is a dict with ``nll`` (the
held-out bound over ``ablation_nll_reps`` estimates, an Interval), ``nll_per_image`` (the bound of each
held-out image, averaged over the estimates: the same images and noise in every row, so rows pair up),
``fd`` (an Interval, None without finite samples), ``fd_floor``, ``trace`` and the paper's IS/FID
(``paper_fid`` None for the paper's blank rows).

Gates (../shared/CHAPTER_GUIDE.md): a row **did not train** when its bound is above 8 bits/dim or its
FD above 10x the real-vs-real floor, and a gate never uses the metric its claim is about: claims
about samples (FD) and stability gate on the bound (``bound_gate``), a claim about the bound gates on
FD (``fd_gate``); ``did_not_train`` (either) is for the table and the prose.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import claims as C
from .. import stats
from ..claims import Claim, equivalence, pair_of, why_parts
from ..stats import Interval

UNIFORM_BPD = 8.0  # a uniform coder of 8-bit data: a bound above it did not learn
FD_FLOOR_FACTOR = 10.0  # an FD above 10x the real-vs-real floor did not learn
SPIKE = 10.0  # a training loss in the second half above 10x that half's median is a spike
SIMILAR = 0.25  # "similar" / "as well as": within 25% of the reference row's FD (stated before the record)
CLASSES = {"digits": 10}  # classes of the data sets the chapter's profiles use (ddpm_lib/data/digits.py)

SIMPLE = ("eps", "fixed_large", "simple", 1)  # Table 2, row 6: eps, L_simple
EPS_VLB = ("eps", "fixed_large", "vlb", 1)  # row 5: eps, true bound, fixed Sigma
MU_VLB = ("mu", "fixed_large", "vlb")  # row 2 (any budget): mu-tilde, true bound, fixed Sigma
TABLE2_SETTING = "Table 2 caption: 'unstable to train and generated poor samples with out-of-range scores'"

iv = stats.Interval.of  # a stored interval (``Interval.as_dict()``) back as an Interval


@dataclass
class Record(C.Record):
    """What chapter 02's claims read."""

    profile: str | None = None  # the run's profile (smoke / cpu / gpu)
    setting: str | None = None  # Table 2's setting: data, size, network, budget, samples
    main_setting: str | None = None  # the main model's data and size
    T: int | None = None  # steps of the forward process
    oracle_loglik: list | None = None  # mean log-likelihood under the mixture: [data, oracle-driven samples]
    main: dict | None = None  # the main model's sample metrics (metrics.EvalResult.as_row())
    table2: dict | None = None  # {(param, var, loss, budget): row dict}, see the module's docstring
    fd_diff: dict | None = None  # {(key_a, key_b): FD(a) - FD(b)}, paired bootstrap (stats.diff_ci)
    variance_fd_diff: Interval | None = None  # FD(sigma^2 = beta) - FD(beta_tilde), L_simple row, paired
    rate_distortion: dict | None = None  # lossless, lossless_ci, decoder_share_ci, rate_at_t1, decoder_bits, rmse_at_t1
    progressive: dict | None = None  # t_coarse_settles, t_detail_settles, share_coarse_first (Wilson)
    shared_xt: dict | None = None  # {t: share of samples keeping the source's class}, sources resampled
    n_classes: int | None = None  # classes of the main data set (chance = 1 / n_classes)


def training_trace(losses) -> dict:
    """Stability of one training run from its logged losses: any non-finite value, and the largest
    loss of the second half relative to that half's median (a spike when above ``SPIKE``)."""
    v = np.asarray(losses, dtype=np.float64)
    half = v[len(v) // 2:]
    finite = bool(np.isfinite(v).all())
    ratio = float(np.nanmax(half) / np.nanmedian(half)) if finite and len(half) else float("inf")
    return dict(finite=finite, spike_ratio=ratio, unstable=(not finite) or ratio > SPIKE)


# ---- gates ----------------------------------------------------------------------------------------
def bound_gate(row: dict | None) -> str:
    """'' when the row learned by its held-out bound, else why not (diverged, bound above a uniform
    8-bit coder, or no finite samples to score): the gate of claims about samples and stability."""
    if row is None:
        return "missing"
    if row.get("status") == "diverged":
        return "diverged (non-finite loss)"
    nll = iv(row.get("nll"))
    if nll is not None and nll.est > UNIFORM_BPD:
        return f"bound {nll.est:.1f} bits/dim > {UNIFORM_BPD:.0f} (worse than a uniform coder)"
    if row.get("fd") is None:
        return "no finite samples"
    return ""


def fd_gate(row: dict | None) -> str:
    """'' when the row's samples are within 10x the real-vs-real floor, else why not: the gate of
    claims about the bound."""
    if row is None:
        return "missing"
    if row.get("status") == "diverged":
        return "diverged (non-finite loss)"
    fd, floor = iv(row.get("fd")), row.get("fd_floor")
    if fd is None:
        return "no finite samples"
    if floor and fd.est > FD_FLOOR_FACTOR * floor:
        return f"FD {fd.est:.0f} > {FD_FLOOR_FACTOR:.0f}x the floor ({floor:.1f})"
    return ""


def did_not_train(row: dict) -> str:
    """'' when the row learned by both gates, else why not (the table's status and the prose)."""
    if row.get("status") == "diverged":
        return "diverged (non-finite loss)"
    why = [w for w in (bound_gate(row), fd_gate(row)) if w]
    return "; ".join(dict.fromkeys(why))


def _fd(row) -> str:
    fd = iv(row.get("fd"))
    return "–" if fd is None else str(fd)


def _label(r: Record, key) -> str:
    return r.table2[key]["row"]


def fd_between(r: Record, a, b) -> Interval:
    """FD(a) - FD(b) of two Table 2 rows, paired (the same resampling of the real sets)."""
    return pair_of(r.need("fd_diff"), a, b, "fd_diff", lambda k: _label(r, k))


# ---- the claims -------------------------------------------------------------------------------------
def lsimple_best(r: Record) -> Claim:
    """Table 2: eps with L_simple gives the best samples of the rows that trained (by the bound)."""
    table2, setting = r.need("table2", "setting")
    claim, paper = ("eps-prediction with L_simple gives the best samples of Table 2",
                    "FID 3.17 vs 13.22 for the best other row (Table 2, CIFAR-10)")
    test = ("for every other row that trained (bound <= 8 bits/dim), the 95% paired bootstrap interval of "
            "FD(L_simple) - FD(row) lies below 0; a conjunction over rows (weakest part)")
    gate = bound_gate(table2.get(SIMPLE))
    others = [k for k in table2 if k != SIMPLE and k[3] == 1 and not bound_gate(table2[k])]
    if gate or not others:
        return Claim(claim, paper, f"L_simple row: {gate}" if gate else "no other row trained", setting,
                     "did not train", gate or "no other row trained at this budget", kind="paper", test=test,
                     seeds=1)
    ev = {_label(r, k): fd_between(r, SIMPLE, k) for k in others}
    parts = {k: C.supports(d, "<") for k, d in ev.items()}
    skipped = [f"{v['row']} ({bound_gate(v)})" for k, v in table2.items() if k[3] == 1 and bound_gate(v)]
    return Claim(claim, paper,
                 f"FD L_simple {_fd(table2[SIMPLE])}; FD(L_simple) - FD(row): "
                 + "; ".join(f"{k} {d}" for k, d in ev.items()),
                 setting, C.weakest(*parts.values()),
                 "; ".join(x for x in (why_parts(parts, ev), "not compared: " + ", ".join(skipped) if skipped
                                       else "") if x),
                 kind="paper", test=test, parts=parts, seeds=1, evidence=ev)


def mu_tilde_works(r: Record) -> Claim:
    """Table 2, row 2: mu-tilde prediction on the true bound with fixed Sigma works as well as eps."""
    table2, setting = r.need("table2", "setting")
    claim, paper = ("mu~-prediction on the true bound with a fixed Sigma samples as well as eps-prediction "
                    "on the same bound", "FID 13.22 (mu~, L, fixed) vs 13.51 (eps, L, fixed); Table 2")
    test = (f"the mu~ row trains (bound <= 8 bits/dim; the longer run if the shared budget failed), and the "
            f"95% paired interval of FD(mu~) - FD(eps, L, fixed) lies below {SIMILAR:.0%} of the eps row's FD "
            "(non-inferiority)")
    cand = [k for k in table2 if k[:3] == MU_VLB]
    ok = [k for k in cand if not bound_gate(table2[k])]
    eps = table2.get(EPS_VLB)
    if not ok or bound_gate(eps):
        why = ("; ".join(f"{_label(r, k)}: {bound_gate(table2[k])}" for k in cand) if not ok else
               f"eps row: {bound_gate(eps)}")
        return Claim(claim, paper, why, setting, "did not train",
                     "a zero-initialised head starts at mu = 0 while the bound weights the error by 1/(2 sigma_t^2) "
                     "(up to ~1e4 at small t): the network must learn an identity map of x_t to ~1% precision, "
                     "which eps-prediction gets for free; our budgets are far too short for it",
                     kind="paper", test=test, seeds=1)
    k = max(ok, key=lambda k: -k[3])  # the shared budget where it trains, else the longer run
    d, margin = fd_between(r, k, EPS_VLB), SIMILAR * iv(eps["fd"]).est
    holds = C.below(d, margin)
    return Claim(claim, paper, f"{_label(r, k)}: FD {_fd(table2[k])}, bound {iv(table2[k]['nll'])} bits/dim; "
                 f"FD(mu~) - FD(eps) {d} (margin {margin:.3g})", setting, holds,
                 C.not_significant_why(d, against=f"the margin {margin:.3g}") if holds == "not significant" else "",
                 kind="paper", test=test, seeds=1, evidence={"FD(mu~) - FD(eps)": d})


def _blank(table2: dict) -> list:
    return [k for k, v in table2.items() if k[3] == 1 and v.get("paper_fid") is None]


def blank_rows_unstable(r: Record) -> Claim:
    """Table 2's caption: the blank rows were unstable to train (tested on the blank rows that trained)."""
    table2, setting = r.need("table2", "setting")
    claim = "the paper's blank Table 2 rows (eps with learned Sigma; unweighted MSE on mu~) are unstable to train"
    test = ("among the blank rows that trained (bound <= 8 bits/dim; the gate comes first), each has a "
            f"non-finite loss or a second-half training loss above {SPIKE:.0f}x that half's median; a "
            "conjunction over rows")
    blank = _blank(table2)
    trained = [k for k in blank if table2[k].get("status") == "diverged" or not bound_gate(table2[k])]
    dead = "; ".join(f"{_label(r, k)} did not train ({bound_gate(table2[k])})" for k in blank if k not in trained)
    if not trained:
        return Claim(claim, TABLE2_SETTING, dead, setting, "did not train",
                     "no blank row trained at this budget, so its stability is not judged", kind="paper",
                     test=test, seeds=1)
    parts = {_label(r, k): "yes" if (table2[k].get("status") == "diverged" or table2[k]["trace"]["unstable"])
             else "no" for k in trained}
    ours = "; ".join(f"{_label(r, k)}: " + ("diverged" if table2[k].get("status") == "diverged" else
                                            f"largest late loss {table2[k]['trace']['spike_ratio']:.1f}x median")
                     for k in trained)
    holds = C.weakest(*parts.values())
    return Claim(claim, TABLE2_SETTING, ours + (f"; {dead}" if dead else ""), setting, holds,
                 "" if holds == "yes" else "rows that trained did so without divergence or spikes at this scale",
                 kind="paper", test=test, parts=parts, seeds=1)


def blank_rows_poor_samples(r: Record) -> Claim:
    """Table 2's caption: the blank rows generated poor samples (tested on the blank rows that trained)."""
    table2, setting = r.need("table2", "setting")
    claim = "the paper's blank Table 2 rows give poor samples"
    test = ("for each blank row that trained (bound <= 8 bits/dim, never an FD gate) and each of the paper's "
            "stable rows that trained, the 95% paired bootstrap interval of FD(blank) - FD(stable) lies above 0; "
            "a conjunction (weakest part)")
    blank = [k for k in _blank(table2) if not bound_gate(table2[k])]
    stable = [k for k, v in table2.items() if k[3] == 1 and v.get("paper_fid") is not None and not bound_gate(v)]
    dead = [f"{_label(r, k)} ({bound_gate(table2[k])})" for k in _blank(table2) if k not in blank]
    if not blank or not stable:
        return Claim(claim, TABLE2_SETTING, "did not train: " + "; ".join(dead), setting, "did not train",
                     "no blank row (or no stable row) trained at this budget, so the comparison is not made",
                     kind="paper", test=test, seeds=1)
    ev = {f"{_label(r, b)} - {_label(r, s)}": fd_between(r, b, s) for b in blank for s in stable}
    parts = {k: C.supports(d, ">") for k, d in ev.items()}
    holds = C.weakest(*parts.values())
    why = why_parts(parts, ev)
    if any(k[1] == "learned" for k in blank):
        why = "; ".join(x for x in (why, "with a learned Sigma the network outputs log sigma^2: its zero-initialised "
                                    "head starts at sigma^2 = 1 at every t, far above beta_t <= 0.02") if x)
    return Claim(claim, TABLE2_SETTING,
                 "; ".join(f"{_label(r, k)}: FD {_fd(table2[k])}" for k in blank)
                 + "; FD(blank) - FD(stable): " + "; ".join(f"{k} {d}" for k, d in ev.items())
                 + (f"; did not train: {', '.join(dead)}" if dead else ""),
                 setting, holds, why, kind="paper", test=test, parts=parts, seeds=1, evidence=ev)


def bound_tradeoff(r: Record) -> Claim:
    """Table 1: training on the true bound gives a better NLL and worse samples than L_simple."""
    table2, setting = r.need("table2", "setting")
    claim, paper = ("training on the true bound L gives a better NLL and worse samples than L_simple",
                    "NLL 3.70 vs 3.75 bits/dim, FID 13.51 vs 3.17 (Table 1)")
    test = ("better NLL: the 95% t-interval over held-out images of bound(L) - bound(L_simple), paired per image "
            "(same images and noise), lies below 0 (gate: both rows' FD within 10x the floor); worse samples: "
            "the 95% paired bootstrap interval of FD(L) - FD(L_simple) lies above 0 (gate: both bounds <= 8 "
            "bits/dim); a conjunction (weakest part)")
    vlb, simple = table2.get(EPS_VLB), table2.get(SIMPLE)
    parts, ev = {}, {}
    fd_why = fd_gate(vlb) or fd_gate(simple)
    if fd_why:
        parts["better NLL"] = "did not train"
    else:
        if "nll_per_image" not in vlb or "nll_per_image" not in simple:
            raise C.Missing("Record lacks table2[...]['nll_per_image'] (per-image bounds; the old record "
                            "stores 5 estimator repetitions on fixed images only)")
        ev["better NLL"] = stats.paired_mean_diff(vlb["nll_per_image"], simple["nll_per_image"])
        parts["better NLL"] = C.supports(ev["better NLL"], "<")
    b_why = bound_gate(vlb) or bound_gate(simple)
    if b_why:
        parts["worse samples"] = "did not train"
    else:
        ev["worse samples"] = fd_between(r, EPS_VLB, SIMPLE)
        parts["worse samples"] = C.supports(ev["worse samples"], ">")
    holds = C.weakest(*parts.values())
    ours = "; ".join(f"{k}: {'bound' if k == 'better NLL' else 'FD'} difference {d}" for k, d in ev.items())
    return Claim(claim, paper, ours or "did not train", setting, holds,
                 "; ".join(x for x in (why_parts(parts, ev), fd_why, b_why) if x),
                 kind="paper", test=test, parts=parts, seeds=1, evidence=ev)


def variance_similar(r: Record) -> Claim:
    """Sec. 3.2: sigma^2 = beta and sigma^2 = beta_tilde give similar samples (an equivalence test)."""
    table2, setting = r.need("table2", "setting")
    claim, paper = ("sigma^2 = beta and sigma^2 = beta_tilde give similar samples",
                    "'both ... had similar results' (Sec. 3.2)")
    test = (f"equivalence: the 95% paired bootstrap interval of FD(beta) - FD(beta_tilde), the L_simple row's "
            f"model sampled both ways from the same noise, lies inside +-{SIMILAR:.0%} of that row's FD")
    gate = bound_gate(table2.get(SIMPLE))
    if gate:
        return Claim(claim, paper, f"L_simple row: {gate}", setting + " (the L_simple row)", "did not train", gate,
                     kind="paper", test=test)
    d = r.need("variance_fd_diff")
    margin = SIMILAR * iv(table2[SIMPLE]["fd"]).est
    holds, why = equivalence(d, margin)
    return Claim(claim, paper, f"FD(beta) - FD(beta_tilde) = {d} (margin +-{margin:.3g})",
                 setting + " (the L_simple row)", holds, why, kind="paper", test=test, evidence={"FD difference": d})


def code_length_imperceptible(r: Record) -> Claim:
    """Sec. 4.3: more than half of the lossless code length describes imperceptible distortions."""
    rd, main_setting = r.need("rate_distortion", "main_setting")
    share = iv(rd["decoder_share_ci"])
    parts = {"last step's share above 50%": C.supports(C.shifted(share, 0.5), ">"),
             "residual imperceptible (RMSE < 2 on 0-255)": "yes" if rd["rmse_at_t1"] < 2.0 else "no"}
    holds = C.weakest(*parts.values())
    return Claim(
        "more than half of the lossless code length describes imperceptible distortions",
        "rate 1.78 and distortion 1.97 bits/dim, RMSE 0.95 on 0-255 (Sec. 4.3, CIFAR-10)",
        f"bound {iv(rd['lossless_ci'])} bits/dim; rate {rd['rate_at_t1']:.2f}, remaining {rd['decoder_bits']:.2f} "
        f"bits/dim (share {share.fmt(pct=True)}), RMSE {rd['rmse_at_t1']:.2f}",
        main_setting + ", exact bound on held-out images", holds,
        "" if holds == "yes" else
        "our data (digits: 17 grey levels, upsampled) has little fine detail to spend bits on",
        kind="paper", parts=parts, evidence={"share - 50%": C.shifted(share, 0.5)},
        test="the last step's share of the bound (95% t-interval over images) lies above 50%, and the residual "
             "RMSE < 2 on 0-255; a conjunction")


def coarse_first(r: Record) -> Claim:
    """Fig. 6: large-scale features appear first, details last."""
    p, main_setting = r.need("progressive", "main_setting")
    share = iv(p["share_coarse_first"])
    holds = C.supports(C.shifted(share, 0.5), ">")
    return Claim("large-scale features appear first, details last", "progressive generation, Fig. 6 (qualitative)",
                 f"coarse first in {share.fmt(pct=True)} of chains; averaged: coarse settles at t = "
                 f"{p['t_coarse_settles']}, detail at t = {p['t_detail_settles']}", main_setting, holds,
                 C.not_significant_why(C.shifted(share, 0.5)) if holds == "not significant" else "",
                 kind="paper", evidence={"share - 50%": C.shifted(share, 0.5)},
                 test="per chain, the coarse part settles (r > 0.9) at a larger t than the detail, in a share of "
                      "chains whose 95% Wilson interval lies above 50%")


def shared_xt_attributes(r: Record) -> Claim | None:
    """Fig. 7: samples that share an intermediate x_t share high-level attributes."""
    agree = r.need("shared_xt")
    if not agree:
        return None  # no class reader in this run
    n_classes, T, main_setting = r.need("n_classes", "T", "main_setting")
    ts = sorted(agree)
    t_mid = min(ts, key=lambda t: abs(t - T // 2))
    chance = 1 / n_classes
    d = C.shifted(iv(agree[t_mid]), chance)
    holds = C.supports(d, ">")
    kept = [t for t in ts if iv(agree[t]).lo > chance]
    return Claim(
        "samples that share an intermediate x_t share high-level attributes", "Fig. 7 (qualitative, CelebA-HQ)",
        "class kept: " + ", ".join(f"t={t}: {iv(agree[t]).fmt(pct=True)}" for t in ts) + f"; chance {chance:.0%}",
        main_setting + ", 4 samples per source", holds,
        "" if holds == "yes" else
        (C.not_significant_why(d) + "; " if holds == "not significant" else "")
        + f"the class survives to t = {max(kept, default=0)} only: little signal is left at T/2 in a 16x16 "
          "digit under the linear schedule",
        kind="paper", evidence={"kept - chance": d},
        test=f"at t = T/2 the share of samples keeping the source's class (95% interval, sources resampled) lies "
             f"above chance (1/{n_classes})")


def cifar10_headline(r: Record) -> Claim:
    """Table 1's CIFAR-10 numbers: not measured at this scale."""
    return Claim("CIFAR-10: FID 3.17, IS 9.46, NLL <= 3.75 bits/dim", "Table 1 (FID against the training set)",
                 "not measured: digits, in-domain features", f"profile {r.need('profile')}", "n/a",
                 "needs CIFAR-10, Inception weights and ~800k training steps of the 35.7M model", kind="paper")


RULES = [lsimple_best, mu_tilde_works, blank_rows_unstable, blank_rows_poor_samples, bound_tradeoff,
         variance_similar, code_length_imperceptible, coarse_first, shared_xt_attributes, cifar10_headline]


def claims(r: Record) -> list[Claim]:
    return C.derive(RULES, r)


def record_from_numbers(numbers: dict, run_card: dict) -> Record:
    """A Record from a results file written before the typed seam (``numbers`` and ``run_card``): what
    it stores, keyed by value; None (or absent per-row fields) where it stores nothing. Intervals get
    the method the notebook of that time used (paired bootstrap for FD differences, t over estimates
    for bounds, Wilson, sources resampled)."""
    def with_method(d, method):
        d = iv(d)
        return None if d is None else Interval(d.est, d.lo, d.hi, d.n, d.level, d.method or method, d.p)

    cfg = run_card.get("config", {})
    rows = [("mu", "learned", "vlb"), ("mu", "fixed_large", "vlb"), ("mu", "fixed_large", "simple"),
            ("eps", "learned", "vlb"), ("eps", "fixed_large", "vlb"), ("eps", "fixed_large", "simple")]
    r = Record(profile=run_card.get("profile"), T=cfg.get("T"))
    if cfg:
        r.setting = (f"{cfg['ablation_data']} {cfg['ablation_size']}x{cfg['ablation_size']}, {cfg['ablation_unet']} "
                     f"UNet, {cfg['ablation_images']:,} images per row, T={cfg['T']}")
        r.main_setting = f"main model, {cfg['data']} {cfg['image_size']}x{cfg['image_size']}"
        r.n_classes = CLASSES.get(cfg["data"]) if not run_card.get("notes") else None
    r.oracle_loglik = numbers.get("oracle_loglik")
    r.main = numbers.get("main")

    def row(old: dict) -> dict:
        out = {k: v for k, v in old.items() if k not in ("paper_IS", "paper_FID", "nll", "fd")}
        out["nll"] = with_method(old.get("nll"), "t")
        out["fd"] = with_method(old.get("fd"), "bootstrap")
        if "paper_FID" in old:
            out["paper_is"] = None if old["paper_IS"] == "unstable" else old["paper_IS"]
            out["paper_fid"] = None if old["paper_FID"] == "unstable" else old["paper_FID"]
        return out

    if "table2" in numbers:
        r.table2 = {(*k, 1): row(old) for k, old in zip(rows, numbers["table2"])}
        long = numbers.get("table2_mu_long")
        if long:
            r.table2[(*rows[1], long["budget_factor"])] = row(long)
    vs = numbers.get("vlb_vs_simple") or {}
    if vs.get("fd_diff") is not None and r.table2 is not None:
        r.fd_diff = {(EPS_VLB, SIMPLE): with_method(vs["fd_diff"], "bootstrap-paired")}
    var = (numbers.get("variance_choice") or {}).get("fd_diff")
    r.variance_fd_diff = with_method(var, "bootstrap-paired")
    rd = numbers.get("rate_distortion")
    if rd:
        r.rate_distortion = {**rd, "lossless_ci": with_method(rd["lossless_ci"], "t"),
                             "decoder_share_ci": with_method(rd["decoder_share_ci"], "t")}
    p = numbers.get("progressive")
    if p:
        r.progressive = {**p, "share_coarse_first": with_method(p["share_coarse_first"], "wilson")}
    agree = numbers.get("shared_xt_class_agreement")
    if agree is not None:
        r.shared_xt = {int(t): with_method(a, "bootstrap-cluster") for t, a in agree.items()}
    return r


def see_table2(table2: list[dict], long_row: dict | None, main_label: str) -> str:
    """The "What we see" paragraph after Table 2."""
    dead = [(r["row"], did_not_train(r)) for r in table2 if did_not_train(r)]
    alive = [r for r in table2 if not did_not_train(r)]
    best = min(alive, key=lambda r: iv(r["fd"]).est) if alive else None
    s = []
    if best is not None:
        s.append(f"Of the rows that trained, **{best['row']}** has the lowest FD ({_fd(best)}; the floor, "
                 f"fresh real digits at the same n, is {best['fd_floor']:.1f})"
                 + (", as in the paper, where L_simple gives FID 3.17." if best["row"] == main_label else
                    f"; in the paper L_simple is best (FID 3.17)."))
    if dead:
        s.append("These rows **did not train** and are not compared: "
                 + "; ".join(f"{k} ({why})" for k, why in dead) + ".")
    if long_row is not None:
        why = did_not_train(long_row)
        s.append(f"Given {long_row['budget_factor']}x the budget, the μ̃ row with the true bound and fixed Σ reaches "
                 f"a bound of {iv(long_row['nll'])} bits/dim and FD {_fd(long_row)}"
                 + (f": it still did not train ({why})." if why else ": it learns, so Table 2's row 2 can be tested."))
    s.append("ε-prediction gets the identity part of the reverse step for free (μ = (x_t − c·ε)/√α_t), "
             "which is why its rows learn in a few hundred steps where μ̃-prediction must first learn to copy x_t.")
    return " ".join(s)


def fmt_iv(d: dict | None, digits: int = 3) -> str:
    return "–" if d is None else iv(d).fmt(digits)


def see_tradeoff(vlb_row: dict, simple_row: dict, nll_diff, fd_diff) -> str:
    """The "What we see" paragraph of the bound-vs-samples comparison (the paper's Table 1)."""
    if did_not_train(vlb_row) or did_not_train(simple_row) or nll_diff is None or fd_diff is None:
        return ("One of the two rows did not train, so the trade-off is not compared: "
                + "; ".join(f"{r['row']}: {did_not_train(r)}" for r in (vlb_row, simple_row) if did_not_train(r)) + ".")
    nll_v, fd_v = stats.compare(nll_diff, 0.0), stats.compare(fd_diff, 0.0)
    return (f"Bound(L) − bound(L_simple) = {nll_diff} bits/dim (paired over the same noise) and FD(L) − FD(L_simple) "
            f"= {fd_diff} (paired bootstrap). The paper has the bound-trained model better on NLL (3.70 vs 3.75) and "
            f"worse on FID (13.51 vs 3.17). Here the bound-trained model is "
            + {"lower": "better on the bound", "higher": "worse on the bound",
               "not significant": "not distinguishable on the bound"}[nll_v]
            + " and "
            + {"lower": "better on samples", "higher": "worse on samples",
               "not significant": "not distinguishable on samples"}[fd_v]
            + "."
            + ("" if nll_v == "lower" else
               " At a few hundred steps the bound's heavy weights at small t slow the ε-network as a whole, "
               "which is one reason a short run need not show the paper's NLL advantage."))
