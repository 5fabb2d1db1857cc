"""Chapter 04 (ADM, classifier guidance): measurements that need more than one line, the chapter's
typed record (what its claims read) and its claims, one rule per row (ddpm_lib.claims).

Paper numbers from ../shared/reference/chapters-04-09.md section 1.1 (checked against the paper).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .. import claims as C
from .. import diffusion, metrics, stats
from ..claims import Claim, shifted, why_parts
from ..stats import Interval

iv = Interval.of  # for display: an Interval, or one back from its as_dict()

# Table 4 (ImageNet 256, 2M iterations): (conditional, scale) -> FID, precision, recall
PAPER_TABLE4 = {
    ("unconditional", 0.0): (26.21, 0.61, 0.63), ("unconditional", 1.0): (33.03, 0.56, 0.65),
    ("unconditional", 10.0): (12.00, 0.76, 0.44), ("conditional", 0.0): (10.94, 0.69, 0.63),
    ("conditional", 1.0): (4.59, 0.82, 0.52), ("conditional", 10.0): (9.11, 0.88, 0.32),
}
# Tables 1 and 3 (ImageNet 128, FID at 700K iterations, change against the row's baseline)
PAPER_ARCH = {
    "addition + GroupNorm": "15.08 (Table 3)",
    "AdaGN": "13.06 (Table 3): -2.02",
    "AdaGN, BigGAN up/down": "-1.20 (Table 1)",
    "AdaGN, up/down, more attention": "-0.72 (32,16,8) and -0.54 (4 heads) (Table 1)",
    "AdaGN, up/down, rescaled residual": "+0.16 (Table 1)",
}


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def heldout_loss(model, diff, x: torch.Tensor, n_t: int, seed: int = 0, batch: int = 512,
                 y: torch.Tensor | None = None) -> np.ndarray:
    """Held-out L_simple per image on a fixed grid: ``n_t`` steps evenly spread over [0, T), one
    noise draw per (image, step) from ``seed``; the same grid and noise for every model, so that
    per-image differences between models pair up. ``model(x_t, t)`` -> eps (the first C channels), or
    ``model(x_t, t, y=labels)`` when labels ``y`` are given (sliced with the batch).
    Returns (N,) mean squared errors."""
    T, C = diff.T, x.shape[1]
    ts = torch.linspace(0, T - 1, n_t).round().long()
    g = torch.Generator().manual_seed(seed)
    total = torch.zeros(len(x), dtype=torch.float64)
    for t in ts:
        eps = torch.randn(x.shape, generator=g).to(x)
        for i in range(0, len(x), batch):
            xb, eb = x[i:i + batch], eps[i:i + batch]
            tt = torch.full((len(xb),), int(t), dtype=torch.long, device=x.device)
            x_t = diffusion.q_sample(diff.schedule, xb, tt, eb).to(xb.dtype)
            out = (model(x_t, tt) if y is None else model(x_t, tt, y=y[i:i + batch]))[:, :C]
            total[i:i + len(xb)] += ((out.double() - eb.double()) ** 2).flatten(1).mean(1).cpu()
    return (total / n_t).numpy()


@torch.no_grad()
def accuracy_by_t(classifier, diff, x: torch.Tensor, y: torch.Tensor, n_t: int, seed: int = 0):
    """Accuracy of a noisy classifier on x_t for ``n_t`` steps evenly spread over [0, T): returns
    (steps, per-step hit arrays (n_t, N)) with one noise draw per (image, step) from ``seed``."""
    ts = torch.linspace(0, diff.T - 1, n_t).round().long()
    g = torch.Generator().manual_seed(seed)
    hits = []
    for t in ts:
        eps = torch.randn(x.shape, generator=g).to(x)
        tt = torch.full((len(x),), int(t), dtype=torch.long, device=x.device)
        x_t = diffusion.q_sample(diff.schedule, x, tt, eps).to(x.dtype)
        hits.append((classifier(x_t, tt.to(x.dtype)).argmax(1) == y).double().cpu().numpy())
    return ts.numpy(), np.stack(hits)


@torch.no_grad()
def confidence(classifier, x0: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """The guiding classifier's own p(y | x_0) at t = 0 on finished samples, per sample."""
    x0 = x0.to(next(classifier.parameters()))
    t = torch.zeros(len(x0), device=x0.device, dtype=x0.dtype)
    p = torch.softmax(classifier(x0, t).float(), dim=-1)
    return p[torch.arange(len(x0)), y.to(x0.device)].double().cpu().numpy()


def hits(extractor, samples: torch.Tensor, labels: torch.Tensor, head: str | None = None) -> np.ndarray:
    """1 where the independent in-domain network reads a sample as the class it was asked for (``head``:
    the attribute head that reads the class, for a multi-head network)."""
    return metrics.conditional_hits(extractor, samples, labels, head).numpy()


def eps_temperature(model, tau: float, channels: int):
    """ADM App. G's second knob: divide the predicted eps by ``tau`` (variance channels untouched)."""

    def scaled(x, t):
        out = model(x, t)
        return torch.cat([out[:, :channels] / tau, out[:, channels:]], dim=1)

    return scaled


def pair(ev_a, ev_b, metric: str = "fd") -> stats.Interval:
    """Paired bootstrap interval of metric(a) - metric(b) (evaluations at equal n and seed)."""
    return stats.diff_ci(getattr(ev_a, metric), ev_a.replicates[metric], getattr(ev_b, metric),
                         ev_b.replicates[metric])


# --------------------------------------------------------------------------------------------
# The record: what the claims read (filled cell by cell by the notebook, stored whole)
# --------------------------------------------------------------------------------------------
Models = tuple[str, float]  # (model, guidance scale): "unconditional" / "conditional", s


@dataclass
class Record(C.Record):
    setting: str | None = None  # data, budget, samples and sampler of the guidance sweep
    n: int | None = None  # samples per sweep configuration
    # the noisy classifier (Experiment 2)
    chance: float | None = None  # 1 / classes
    clf_quarters: list | None = None  # accuracy on x_t by quarter of the chain, 4 Intervals
    clf_q1_minus_q4: Interval | None = None  # first minus last quarter, paired over images
    clf_q4_below_mid: Interval | None = None  # (first quarter + chance) / 2 minus last quarter, paired over images
    # the guidance sweep (Experiment 3), keyed by (model, scale)
    s_mid: float | None = None  # the paper's moderate scale (1)
    s_hi: float | None = None  # the largest scale (10)
    fd_floor: float | None = None  # real-vs-real FD at n
    fd: dict | None = None  # {(model, s): Interval}
    precision: dict | None = None  # {(model, s): Interval}
    recall: dict | None = None  # {(model, s): Interval}
    accuracy: dict | None = None  # {(model, s): Interval}: the independent network reads the target class
    confidence: dict | None = None  # {(model, s): Interval}: the guiding classifier's own p(y | x_0)
    hits: dict | None = None  # {(model, s): per-sample 0/1 of the independent reading}, same rows everywhere
    u_1_minus_0: Interval | None = None  # FD(U, s_mid) - FD(U, 0), paired bootstrap
    u_hi_minus_0: Interval | None = None  # FD(U, s_hi) - FD(U, 0)
    u_hi_minus_1: Interval | None = None  # FD(U, s_hi) - FD(U, s_mid)
    c_mid_minus_0: Interval | None = None  # FD(C, s_mid) - FD(C, 0)
    c_mid_minus_hi: Interval | None = None  # FD(C, s_mid) - FD(C, s_hi)
    c_mid_minus_uncond: dict | None = None  # {s: FD(C, s_mid) - FD(U, s)}, paired bootstrap
    dp: dict | None = None  # {model: precision(s_hi) - precision(s_mid)}, paired bootstrap
    dr: dict | None = None  # {model: recall(s_hi) - recall(s_mid)}
    gap_u1: Interval | None = None  # U at s_mid: confidence minus independent hit, paired over samples
    acc_u_hi_minus_1: Interval | None = None  # U: independent accuracy s_hi - s_mid, paired over samples
    # memorisation (Experiment 3): nearest training image of samples against that of fresh real images
    memo_threshold: float | None = None  # MEMO_QUANTILE quantile of fresh real images' nearest-training distances
    memo_share: dict | None = None  # {configuration: Wilson Interval of the share of samples below the threshold}
    memo_epochs: float | None = None  # times each training image was seen by a denoiser
    # guided DDIM (Experiment 4)
    ddim_steps: int | None = None
    anc_steps: int | None = None
    ddim_scale: float | None = None
    fd_anc_ref: float | None = None  # FD of the ancestral sampler at s_mid (the margin's base)
    ddim_minus_anc: Interval | None = None  # FD(DDIM, ddim_scale) - FD(ancestral, s_mid), paired bootstrap
    ddim_recall_minus_anc: Interval | None = None  # the same for recall
    # temperature (Experiment 5), at the lowest tau against tau = 1, conditional model unguided
    tau_lo: float | None = None
    temp_dp: dict | None = None  # {knob: Interval}, knob "noise x tau" / "eps / tau"
    temp_dr: dict | None = None  # {knob: Interval}
    # architecture rows (Experiment 6), keyed by the rows' names in ARCH_ROWS
    arch_setting: str | None = None
    arch_seeds: int | None = None  # training seeds per configuration (initialisation, batches and noise varied)
    arch_loss: dict | None = None  # {row: held-out L_simple difference, t over seeds paired by seed, with p}
    arch_losses: dict | None = None  # {configuration: [held-out L_simple per seed]}
    arch_loss_seed0: dict | None = None  # {row: the seed-0 difference, paired over images (the original rule's)}
    arch_fd: dict | None = None  # {row: FD difference, paired bootstrap} (second-edition records only)
    arch_seed: Interval | None = None  # the baseline configuration, seed 1 minus seed 0, paired over images
    # the upsampling stack (Experiment 7; smoke and gpu profiles only)
    stack_setting: str | None = None
    stack_data: str | None = None
    stack_dp: dict | None = None  # {"ADM-U" / "ADM-G": precision change against the direct model}
    stack_dr: dict | None = None  # {"ADM-U" / "ADM-G": recall change}
    upsampling: str | None = None  # the stack's FDs, for the headline row


# --------------------------------------------------------------------------------------------
# Claims: one rule per row
# --------------------------------------------------------------------------------------------
MODELS = ("unconditional", "conditional")
GATE_FD = 10.0  # CHAPTER_GUIDE: unguided FD above 10x the real-vs-real floor: the model did not train
# Claims about FD are gated on another metric: the unguided samples' precision (the share inside the
# real data's k-NN manifold); below this, the model did not train.
GATE_PRECISION = 0.1
GATE_AMENDED = ("gate changed after the record of 2026-11-29: claims about FD are no longer gated on the unguided "
                "FD (the metric they test) but on the unguided precision; under the original gate no model was "
                "gated either")
RECORD = "the second-edition cpu record (dd5a6c4+dirty, 2026-11-29)"  # the last record whose verdicts were seen
# Sec. 4.3: at s = 1 the classifier gives the target class "around 50%" while the samples, by eye, do not show
# it: a gap of the order of the confidence itself (~50 points against a matching rate near 0). "Confident but
# wrong" needs at least half of that effect: the guiding classifier's confidence above the independent
# accuracy by more than 25 points (stated from the paper, not from our 3-point gap).
CONFIDENT_MARGIN = 0.25
# Table 5 reads DDIM-25 at 5.44 against 4.59 (250 ancestral steps) as "close" (+18.5%); the margin is 25% of
# our ancestral FD. In the 85e1f30 record (shapes, n = 1,000) that margin (4.78) was below the paired
# interval's half-width (10.5), so 'close' can fail at this n (an interval wholly above the margin) but not
# pass; the row says so.
DDIM_MARGIN = 0.25
DDIM_HALF_EXPECTED = 10.5  # the 85e1f30 record's half-width of FD(DDIM-25) - FD(ancestral-50), n = 1,000
STACK_RECALL_MARGIN = 0.05  # "keeping recall": the change inside +-0.05
ARCH_ROWS = {  # rule name -> (row in the record, paper's number, the change expected in held-out loss)
    "adagn_improves": ("AdaGN vs addition + GroupNorm", "Table 3: FID 13.06 vs 15.08", "<"),
    "biggan_updown_improves": ("BigGAN up/down vs plain resampling", "Table 1: -1.20 FID", "<"),
    "more_attention_improves": ("attention at every resolution with twice the heads",
                                "Table 1: -0.72 (32,16,8), -0.54 (4 heads)", "<"),
    "rescaled_residuals_hurt": ("rescaled residuals (skip + h)/sqrt 2", "Table 1: +0.16 FID (the one change that hurt)",
                                ">"),
}


def pr_parts(dp: dict, dr: dict, p_side: str, r_side: str) -> tuple[dict, dict]:
    """(parts, evidence) of a claim about the changes of precision (``dp``) and recall (``dr``) per
    model or knob: each change on its claimed side of 0."""
    parts, ev = {}, {}
    for k in dp:
        for metric, d, side in (("precision", dp[k], p_side), ("recall", dr[k], r_side)):
            ev[f"{k}: {metric} change"] = d
            parts[f"{k}: {metric} change"] = C.supports(d, side)
    return parts, ev


def untrained(r: Record, models, about_fd: bool) -> list[str]:
    """The models among ``models`` that did not train, judged on a metric other than the claim's:
    claims about FD on the unguided precision, the others on the unguided FD (CHAPTER_GUIDE)."""
    if about_fd:
        prec = r.need("precision")
        return [m for m in models if prec[(m, 0.0)].est < GATE_PRECISION]
    fd, floor = r.need("fd", "fd_floor")
    return [m for m in models if fd[(m, 0.0)].est > GATE_FD * floor]


def gated(row: Claim, bad: list[str], about_fd: bool) -> Claim:
    """The row, or 'did not train' when one of the models it reads did not train."""
    if about_fd:
        row.amended = "; ".join(x for x in (row.amended, GATE_AMENDED) if x)
    if not bad:
        return row
    gate = (f"unguided precision below {GATE_PRECISION:g}" if about_fd else
            f"unguided FD above {GATE_FD:g}x the real-vs-real floor")
    return C.gated(row, f"the {' and '.join(bad)} model did not train ({gate})")


def floor_note(r: Record, holds: str) -> str:
    """Why guidance cannot lower FD: the unguided conditional model already scores the real-vs-real floor."""
    if holds == "yes" or r.fd is None or r.fd_floor is None:
        return ""
    c0 = r.fd[("conditional", 0.0)]
    if c0.lo > r.fd_floor:
        return ""
    return (f"; the unguided conditional model's FD {c0} already contains the real-vs-real floor "
            f"{r.fd_floor:.3g}, so at this scale there is no FD left for guidance to win")


def noisy_classifier_falls(r: Record) -> Claim:
    q, chance, d, mid = r.need("clf_quarters", "chance", "clf_q1_minus_q4", "clf_q4_below_mid")
    ev = {"first minus last quarter": d, "midpoint to chance minus last quarter": mid}
    parts = {k: C.supports(x, ">") for k, x in ev.items()}
    holds = C.weakest(*parts.values())
    return Claim(
        "a classifier trained on x_t at every t loses accuracy towards chance as t grows",
        "Sec. 4.1 (noisy classifiers); expected behaviour, no number in the paper",
        f"accuracy by quarter of t: {', '.join(x.fmt(pct=True) for x in q)}; chance {chance:.0%}; first minus last "
        f"quarter {d}", r.need("setting"), holds, why_parts(parts, ev), kind="check",
        test="accuracy in the first quarter of steps minus the last quarter, paired over images, has a 95% interval "
             "above 0; and the last quarter lies below the midpoint between the first quarter and chance (per-image "
             "difference, paired, above 0)", parts=parts, evidence=ev,
        amended=f"kind changed after {RECORD}: counted there among the paper's rows ('yes'); a behaviour the book "
                "checks, with no number in the paper, it is not a reproduction")


def _uncond_amended(r: Record) -> str:
    """The second edition's one row for both halves of the unconditional model, and its verdict here."""
    orig = C.weakest(C.supports(r.need("u_hi_minus_0"), "<"), C.supports(r.need("u_hi_minus_1"), "<"))
    return (f"test changed after {RECORD}: one row 'scale 1 barely helps, scale 10 helps a lot' (FD(s=10) - FD(0) "
            "and FD(s=10) - FD(s=1) below 0) read 'not significant'; the paper's statement is two findings, s = 1 "
            "worsens FID (26.21 -> 33.03) and s = 10 lowers it, now two rows, rewritten after that record and "
            f"before this one. Under the original rule this run reads '{orig}'")


# Memorisation: the threshold is the 1st percentile of fresh real images' distances to their nearest training
# image, so a generator that samples the data distribution puts ~1% of its samples below it; a sample set with
# more than 5x that share (5%) sits on training images more than fresh data do. No number in the paper: a check.
MEMO_QUANTILE = 0.01
MEMO_MAX = 0.05


def no_memorisation(r: Record) -> Claim | None:
    if r.memo_share is None:
        return None  # records before the check
    thr, share = r.need("memo_threshold", "memo_share")
    parts = {k: C.below(d, MEMO_MAX) for k, d in share.items()}
    holds = C.weakest(*parts.values())
    epochs = f"; each training image seen {r.memo_epochs:.1f} times" if r.memo_epochs else ""
    return Claim(
        "the samples do not reproduce training images",
        "the paper's nearest-neighbour figures (App.) show samples unlike their closest training images; no number",
        "; ".join(f"{k}: {d.fmt(pct=True)} of samples closer to a training image than "
                  f"{MEMO_QUANTILE:.0%} of fresh real images are" for k, d in share.items()) + epochs,
        r.need("setting"), holds,
        why_parts(parts, share, margins={k: MEMO_MAX for k in share}) if holds != "yes" else "", kind="check",
        test=f"per configuration, the share of samples whose nearest training image (pixel L2) is closer than the "
             f"{MEMO_QUANTILE:.0%} quantile of fresh real images' nearest-training distances (threshold "
             f"{thr:.3g}) has a Wilson 95% interval below {MEMO_MAX:.0%} (fresh data: {MEMO_QUANTILE:.0%})",
        parts=parts, evidence=share)


def uncond_scale10_lowers_fd(r: Record) -> Claim:
    s_hi, s_mid, fd = r.need("s_hi", "s_mid", "fd")
    ev = {f"FD(s={s_hi:g}) - FD(s=0)": r.need("u_hi_minus_0"),
          f"FD(s={s_hi:g}) - FD(s={s_mid:g})": r.need("u_hi_minus_1")}
    parts = {k: C.supports(d, "<") for k, d in ev.items()}
    holds = C.weakest(*parts.values())
    row = Claim(
        f"guiding an unconditional model with a large scale (s={s_hi:g}) lowers its FD",
        "Table 4, ImageNet 256: FID 26.21 (no guidance), 33.03 (s=1), 12.00 (s=10)",
        f"FD s=0 {fd[('unconditional', 0.0)]}, s={s_mid:g} {fd[('unconditional', s_mid)]}, s={s_hi:g} "
        f"{fd[('unconditional', s_hi)]}; " + "; ".join(f"{k} {d}" for k, d in ev.items()), r.need("setting"),
        holds, why_parts(parts, ev), kind="paper",
        test=f"FD(s={s_hi:g}) - FD(s=0) and FD(s={s_hi:g}) - FD(s={s_mid:g}) both have 95% intervals below 0 "
             "(paired bootstrap: same noise, same labels)", parts=parts, evidence=ev, amended=_uncond_amended(r))
    return gated(row, untrained(r, ("unconditional",), about_fd=True), about_fd=True)


def uncond_scale1_worsens_fd(r: Record) -> Claim:
    s_mid, fd, d = r.need("s_mid", "fd", "u_1_minus_0")
    holds = C.supports(d, ">")
    why = {"no": "FD falls at this scale: the paper's unconditional model got worse",
           "not significant": C.not_significant_why(d)}.get(holds, "")
    row = Claim(
        f"guiding an unconditional model at scale {s_mid:g} makes its FD worse",
        "Table 4, ImageNet 256: FID 26.21 (no guidance) -> 33.03 (s=1)",
        f"FD s=0 {fd[('unconditional', 0.0)]}, s={s_mid:g} {fd[('unconditional', s_mid)]}; difference {d}",
        r.need("setting"), holds, why, kind="paper",
        test=f"FD(s={s_mid:g}) - FD(s=0) of the unconditional model has a 95% interval above 0 (paired bootstrap): "
             "the paper's half as the paper states it (FID worse at s=1), not 'barely helps'",
        evidence={f"FD(s={s_mid:g}) - FD(s=0)": d}, amended=_uncond_amended(r))
    return gated(row, untrained(r, ("unconditional",), about_fd=True), about_fd=True)


def conditional_guided_best(r: Record) -> Claim:
    s_mid, s_hi, fd = r.need("s_mid", "s_hi", "fd")
    ev = {"vs conditional s=0": r.need("c_mid_minus_0"), f"vs conditional s={s_hi:g}": r.need("c_mid_minus_hi")}
    ev.update({f"vs unconditional s={s:g}": d for s, d in r.need("c_mid_minus_uncond").items()})
    parts = {k: C.supports(d, "<") for k, d in ev.items()}
    holds = C.weakest(*parts.values())
    row = Claim(
        f"the conditional model guided at a moderate scale (s={s_mid:g}) is the best configuration",
        "Table 4: conditional FID 10.94 (s=0) -> 4.59 (s=1) -> 9.11 (s=10); the best row of the table",
        f"FD(C, s={s_mid:g}) {fd[('conditional', s_mid)]}; differences: "
        + "; ".join(f"{k} {d}" for k, d in ev.items()),
        r.need("setting"), holds, why_parts(parts, ev) + floor_note(r, holds), kind="paper",
        test=f"FD(conditional, s={s_mid:g}) minus FD of each other configuration of Table 4 (conditional s=0 and "
             f"s={s_hi:g}, unconditional at every scale of the sweep) has a 95% interval below 0 (paired bootstrap: "
             "same noise, same labels)", parts=parts, evidence=ev, seeds=1,
        amended=f"test changed after {RECORD}: the 'best configuration' was the argmin of the sweep's point "
                "estimates (a scale in (0, 2]) and FD(C, s=1) - FD(C, s=0) below 0, which read 'no' (the lowest "
                "point estimate was the unguided conditional model); now a paired interval against each row")
    return gated(row, untrained(r, MODELS, about_fd=True), about_fd=True)


def fd_u_shaped(r: Record) -> Claim:
    s_mid, s_hi = r.need("s_mid", "s_hi")
    ev = {f"FD(s={s_mid:g}) - FD(s=0)": r.need("c_mid_minus_0"),
          f"FD(s={s_mid:g}) - FD(s={s_hi:g})": r.need("c_mid_minus_hi")}
    parts = {k: C.supports(d, "<") for k, d in ev.items()}
    holds = C.weakest(*parts.values())
    row = Claim(
        "the conditional model's FD is U-shaped in the guidance scale",
        "Fig. 4 and Table 4: FID and sFID best at an intermediate scale",
        "; ".join(f"{k} = {d}" for k, d in ev.items()), r.need("setting"), holds,
        why_parts(parts, ev) + floor_note(r, holds), kind="paper",
        test=f"FD(s={s_mid:g}) - FD(s=0) and FD(s={s_mid:g}) - FD(s={s_hi:g}) both have 95% intervals below 0 "
             "(paired bootstrap)", parts=parts, evidence=ev,
        amended=f"verdict calculus changed after {RECORD}: mixed parts read 'partly' there (one yes, one not "
                "significant); a conjunction now takes its weakest part")
    return gated(row, untrained(r, ("conditional",), about_fd=True), about_fd=True)


def guidance_trades_recall_for_precision(r: Record) -> Claim:
    s_mid, s_hi, dp, dr = r.need("s_mid", "s_hi", "dp", "dr")
    parts, ev = pr_parts(dp, dr, ">", "<")
    holds = C.weakest(*parts.values())
    row = Claim(
        "guidance trades recall for precision",
        "Table 4 and Fig. 4: conditional P 0.82 -> 0.88, R 0.52 -> 0.32 (s=1 -> 10)",
        "; ".join(f"{m}: dP {dp[m]}, dR {dr[m]}" for m in MODELS), r.need("setting"), holds, why_parts(parts, ev),
        kind="paper", test=f"from s={s_mid:g} to s={s_hi:g}, the precision change has a 95% interval above 0 and the "
                           "recall change one below 0, for both models (paired bootstrap)", parts=parts, evidence=ev)
    return gated(row, untrained(r, MODELS, about_fd=False), about_fd=False)


def confident_but_wrong(r: Record) -> Claim:
    s_mid, conf, acc, gap = r.need("s_mid", "confidence", "accuracy", "gap_u1")
    holds = C.supports(shifted(gap, CONFIDENT_MARGIN), ">")
    why = {"no": f"the classifier's confidence exceeds the independent accuracy by less than "
                 f"{100 * CONFIDENT_MARGIN:.0f} points: a confident classifier whose samples mostly show the "
                 "class (the paper's samples at ~50% confidence visibly miss it)",
           "not significant": C.not_significant_why(gap, against=f"the threshold {CONFIDENT_MARGIN:g}")
           }.get(holds, "")
    k = ("unconditional", s_mid)
    row = Claim(
        f"with an unconditional model at s={s_mid:g} the classifier is confident but the samples often do not show "
        "the class",
        "Sec. 4.3: at scale 1 the classifier gives the target class ~50% yet the samples do not match it",
        f"s={s_mid:g}: classifier confidence {conf[k].fmt(pct=True)}, independent accuracy {acc[k].fmt(pct=True)}; "
        f"difference {gap}", r.need("setting"), holds, why, kind="paper",
        test=f"the guiding classifier's mean p(y | x_0) minus the independent network's accuracy on the same samples "
             f"(paired over samples) has a 95% interval above {100 * CONFIDENT_MARGIN:.0f} points, half of the "
             "paper's effect (~50% confidence, samples that do not show the class)",
        evidence={"confidence minus accuracy": gap},
        amended=f"test changed after {RECORD}: the gap had to be above 0, which read 'yes' on a 3-point gap "
                f"(81% vs 78%); under the original rule this run reads '{C.supports(gap, '>')}'")
    return gated(row, untrained(r, ("unconditional",), about_fd=False), about_fd=False)


def larger_scale_shows_class(r: Record) -> Claim:
    s_mid, s_hi, acc, d = r.need("s_mid", "s_hi", "accuracy", "acc_u_hi_minus_1")
    holds = C.supports(d, ">")
    row = Claim(
        f"a larger scale (s={s_hi:g}) makes the unconditional model's samples show their class",
        "Sec. 4.3: larger scales give the target class nearly 100% and samples that match it",
        f"independent accuracy s={s_mid:g} {acc[('unconditional', s_mid)].fmt(pct=True)}, s={s_hi:g} "
        f"{acc[('unconditional', s_hi)].fmt(pct=True)}; difference {d}", r.need("setting"), holds,
        C.not_significant_why(d) if holds == "not significant" else "", kind="paper",
        test=f"the independent network's accuracy at s={s_hi:g} minus s={s_mid:g}, paired over sample rows (same noise "
             "and labels; McNemar), has a 95% interval above 0", evidence={"accuracy change": d},
        amended=f"split after {RECORD} from the 'confident but wrong' row, whose conjunction read 'yes' there")
    return gated(row, untrained(r, ("unconditional",), about_fd=False), about_fd=False)


def ddim25_costs_fd(r: Record) -> Claim:
    """Table 5: guided DDIM-25 is 'close' to the many-step guided ancestral sampler, at a small
    cost in FD (5.44 against 4.59). Two parts, the weakest decides: the few-step sampler costs FD
    (the paired interval above 0), and the cost stays within ``DDIM_MARGIN`` of the ancestral FD
    (the interval below that margin). At n = 360 the interval is wider than the margin
    (``DDIM_HALF_EXPECTED``), so 'close' can fail here (an interval wholly above the margin) but
    cannot pass: the row says so."""
    steps, anc, scale, s_mid, ref, d = r.need("ddim_steps", "anc_steps", "ddim_scale", "s_mid", "fd_anc_ref",
                                               "ddim_minus_anc")
    margin, half = DDIM_MARGIN * ref, (d.hi - d.lo) / 2
    close = f"'close' (within {DDIM_MARGIN:.0%} of the ancestral FD)"
    parts = {"costs FD": C.supports(d, ">"), close: C.below(d, margin)}
    holds = C.weakest(*parts.values())
    notes = [why_parts(parts, {"costs FD": d, close: d}, margins={close: margin})]
    if d.lo > margin:
        notes.append(f"the cost is {d.est / ref:.0%} of the ancestral FD {ref:.3g}, not close")
    if not C.can_decide(half, margin):
        notes.append(f"'close' could fail but not pass at this n: the interval's half-width {half:.3g} is above "
                     f"the margin {margin:.3g}")
    rec = r.ddim_recall_minus_anc
    if rec is not None and rec.hi < 0:
        notes.append(f"DDIM-{steps} also loses recall ({rec})")
    old = C.supports(d, ">")  # the direction alone, the rule of the 2026-12 draft
    row = Claim(
        f"guided DDIM with {steps} steps (Algorithm 2) stays close to the many-step guided ancestral sampler, "
        "at a small cost in FD",
        "Table 5, ImageNet 256: ADM-G 4.59 (250 steps, s=1) vs ADM-G 25 steps 5.44 (DDIM, s=2.5), 'close'",
        f"FD difference {d} (ancestral FD {ref:.3g}, margin {margin:.3g})", r.need("setting"), holds,
        "; ".join(x for x in notes if x), kind="paper",
        test=f"FD(DDIM-{steps}, s={scale:g}) - FD(ancestral-{anc}, s={s_mid:g}), paired bootstrap (the scales are the "
             f"paper's ImageNet 256 pair), has a 95% interval above 0 (costs FD) and below {DDIM_MARGIN:.0%} of the "
             "ancestral FD (close, the paper's +18.5% rounded up); the weakest part decides. At n = 1,000 the "
             f"expected half-width ({DDIM_HALF_EXPECTED:g}, the last record's) is above that margin, so 'close' "
             "can fail but not pass at this n",
        parts=parts, evidence={"FD difference": d},
        amended=f"test changed after {RECORD}: it was 'the difference lies below {DDIM_MARGIN:.0%} of the "
                "ancestral FD' alone, which read 'not significant' while DDIM-25 was significantly worse "
                "(+1.63 [0.10, 3.22]); the 85e1f30 record tested only the direction (costs FD) and read 'yes' with "
                f"DDIM-25's FD at 3.7x the ancestral one; under the direction alone this run reads '{old}', under "
                f"the original rule '{C.below(d, margin)}'")
    return gated(row, untrained(r, ("conditional",), about_fd=True), about_fd=True)


def _partly(parts: dict) -> str:
    """The second edition's verdict of a conjunction: 'partly' where its parts disagree."""
    v = set(parts.values())
    return v.pop() if len(v) == 1 else "partly"


def low_temperature_lowers_precision_and_recall(r: Record) -> Claim:
    tau, dp, dr = r.need("tau_lo", "temp_dp", "temp_dr")
    parts, ev = pr_parts(dp, dr, "<", "<")
    holds = C.weakest(*parts.values())
    row = Claim(
        "a reduced temperature lowers both precision and recall",
        "App. G: 'low temperatures have both low precision and low recall'; neither knob helps",
        "; ".join(f"{k} at tau={tau:g}: dP {dp[k]}, dR {dr[k]}" for k in dp), r.need("setting"), holds,
        why_parts(parts, ev), kind="paper",
        test=f"for the noise scaled by tau and for eps divided by tau, at tau={tau:g}, the changes of precision and of "
             "recall against tau = 1 each have 95% intervals below 0 (paired bootstrap; conditional model, unguided). "
             "A falling precision is the paper's distinctive observation (GAN truncation raises it): a precision "
             "that rises significantly makes the row 'no'",
        parts=parts, evidence=ev,
        amended=f"verdict calculus changed after {RECORD}: recall fell and precision rose under both knobs, read "
                f"'partly' there; a conjunction now takes its weakest part. Under the original reading this run "
                f"reads '{_partly(parts)}'")
    return gated(row, untrained(r, ("conditional",), about_fd=False), about_fd=False)


# the second-edition record's verdicts of the architecture rows (one seed, intervals over test images)
ARCH_RECORDED = {"adagn_improves": "yes", "biggan_updown_improves": "not significant",
                 "more_attention_improves": "not significant", "rescaled_residuals_hurt": "yes"}


def arch_verdicts(r: Record) -> dict:
    """The architecture family's verdicts: each row's held-out loss difference as a t-interval over
    training seeds (paired by seed), Holm's correction over the four rows (``claims.holm_verdicts``,
    the rows claimed '>' flipped so that the family shares one side). Intervals over test images of
    one seed's weights say nothing about training variance: such rows are not significant."""
    loss = r.need("arch_loss")
    rows = {rule: loss[row] for rule, (row, _, _) in ARCH_ROWS.items()}
    one_seed = [k for k, d in rows.items() if d.method != "seeds"]
    if one_seed:
        return {k: ("not significant", "one training seed per row: its interval over test images says nothing "
                                       "about training variance") for k in rows}
    family = {k: d if ARCH_ROWS[k][2] == "<" else C.flipped(d) for k, d in rows.items()}
    verdicts = C.holm_verdicts(family, "<")
    out = {}
    for k, d in rows.items():
        v = verdicts[k]
        if v == "not significant":
            unadjusted = ("its unadjusted interval excludes 0, but not at the Holm-adjusted level"
                          if d.lo > 0 or d.hi < 0 else C.not_significant_why(d))
            why = f"not significant after Holm's correction over the four rows (p = {d.p:.3g}; {unadjusted})"
        else:
            why = "" if v == "yes" else "the effect has the opposite sign (significant after Holm's correction)"
        out[k] = (v, why)
    return out


def _arch_original(r: Record, rule: str) -> str | None:
    """The verdict under the second edition's rule: seed 0's difference, paired over test images, on
    the claimed side of 0 and larger than the baseline's seed-1-minus-seed-0 difference."""
    if r.arch_loss_seed0 is None or r.arch_seed is None:
        return None
    row, _, side = ARCH_ROWS[rule]
    d, seed = r.arch_loss_seed0[row], r.arch_seed
    v = C.supports(d, side)
    return "not significant" if v != "not significant" and abs(d.est) <= abs(seed.hi if seed.est >= 0 else seed.lo) \
        else v


def _arch(r: Record, rule: str) -> Claim:
    row, paper, side = ARCH_ROWS[rule]
    holds, why = arch_verdicts(r)[rule]
    d = r.need("arch_loss")[row]
    seeds = r.arch_seeds or 1
    ours = f"loss difference {d} over {seeds} seed{'s' if seeds > 1 else ''}"
    if r.arch_fd is not None:
        ours += f"; FD difference {r.arch_fd[row]}"
    if r.arch_seed is not None and seeds == 1:
        ours += f"; seed-to-seed {r.arch_seed}"
    orig = _arch_original(r, rule)
    return Claim(
        f"{row}: {'improves the model' if side == '<' else 'makes the model worse'}",
        paper + " (ImageNet 128, 700K iterations)", ours, r.need("arch_setting"), holds, why,
        kind="paper", seeds=seeds, evidence={"held-out loss difference": d},
        test=f"held-out L_simple on a fixed (t, eps) grid, the row minus its baseline per training seed (seeds vary "
             f"the initialisation, the batches and the noise; paired by seed), has a 95% t-interval over seeds "
             f"{'below' if side == '<' else 'above'} 0 after Holm's correction over the four architecture rows",
        amended=f"test changed after {RECORD}: one training seed per row, intervals over test images and one pair "
                f"of seeds sharing their initial weights as the control; that record read '{ARCH_RECORDED[rule]}'"
                + (f"; under the original rule this run reads '{orig}'" if orig else ""))


def adagn_improves(r: Record) -> Claim:
    return _arch(r, "adagn_improves")


def biggan_updown_improves(r: Record) -> Claim:
    return _arch(r, "biggan_updown_improves")


def more_attention_improves(r: Record) -> Claim:
    return _arch(r, "more_attention_improves")


def rescaled_residuals_hurt(r: Record) -> Claim:
    return _arch(r, "rescaled_residuals_hurt")


def _stack_row(r: Record, claim: str, parts: dict, ev: dict, test: str) -> Claim:
    meaningful = r.stack_data != "digits"
    holds = C.weakest(*parts.values()) if meaningful else "n/a"
    return Claim(
        claim, "Table 6, ImageNet 256: ADM P/R 0.69/0.63, ADM-U 0.72/0.63, ADM-G 0.82/0.52",
        "; ".join(f"{k} {d}" for k, d in ev.items()), r.need("stack_setting"), holds,
        why_parts(parts, ev) if meaningful else "digits at the high resolution are upsampled 8x8 images: a code-path "
                                                "test only", kind="paper", test=test,
        parts=parts if meaningful else {}, evidence=ev)


def upsampling_keeps_recall(r: Record) -> Claim | None:
    if r.stack_dp is None:
        return None  # the stack runs in the smoke and gpu profiles only
    dp, dr = r.stack_dp["ADM-U"], r.stack_dr["ADM-U"]
    ev = {"precision change": dp, "recall change": dr}
    try:
        keep = C.equivalent(dr, STACK_RECALL_MARGIN)
    except C.CannotDecide:
        keep = "not significant"  # the margin is below the interval's half-width: the test cannot pass at this n
    parts = {"precision change": C.supports(dp, ">"), "recall change": keep}
    return _stack_row(r, "upsampling improves precision while keeping recall", parts, ev,
                      "against the direct model at the high resolution: the stack's precision change above 0 and its "
                      f"recall change inside +-{STACK_RECALL_MARGIN:g} (paired bootstrap)")


def guidance_trades_at_high_resolution(r: Record) -> Claim | None:
    if r.stack_dp is None:
        return None
    dp, dr = r.stack_dp["ADM-G"], r.stack_dr["ADM-G"]
    ev = {"precision change": dp, "recall change": dr}
    parts = {"precision change": C.supports(dp, ">"), "recall change": C.supports(dr, "<")}
    return _stack_row(r, "guidance trades off diversity for much higher precision", parts, ev,
                      "against the direct model at the high resolution: the guided model's precision change above 0 "
                      "and its recall change below 0 (paired bootstrap)")


def headline_fid(r: Record) -> Claim:
    return Claim(
        "FID 2.97 / 4.59 / 7.72 on ImageNet 128 / 256 / 512, better than BigGAN-deep, with as few as 25 steps; "
        "3.85 at 512 with guidance and upsampling", "abstract, Tables 5 and 6",
        r.upsampling or "no upsampling stack in this profile", r.need("setting"), "n/a",
        "no ImageNet, no GAN baseline and no Inception network offline; the book's FD uses in-domain features and "
        "compares within a table only", kind="paper",
        test="none offline: the paper's benchmark, baselines and raters are out of reach")


RULES = [noisy_classifier_falls, no_memorisation, uncond_scale10_lowers_fd, uncond_scale1_worsens_fd, conditional_guided_best,
         fd_u_shaped, guidance_trades_recall_for_precision, confident_but_wrong, larger_scale_shows_class,
         ddim25_costs_fd, low_temperature_lowers_precision_and_recall, adagn_improves, biggan_updown_improves,
         more_attention_improves, rescaled_residuals_hurt, upsampling_keeps_recall, guidance_trades_at_high_resolution,
         headline_fid]


def claims(r: Record) -> list[Claim]:
    """The claims of chapter 04 from the record the notebook filled."""
    return C.derive(RULES, r)


# --------------------------------------------------------------------------------------------
# An old results file (written before the typed seam) as a record
# --------------------------------------------------------------------------------------------
def _t_paired(d: dict) -> Interval:
    """An old t-interval of per-item differences (``stats.mean_ci``, stored without method or p), with
    its method and the p-value the symmetric t-interval implies (est / se, se from the half-width)."""
    from scipy import stats as st

    v = Interval.of(d)
    se = (v.hi - v.lo) / (2 * st.t.ppf(0.5 + v.level / 2, v.n - 1))
    p = float(2 * st.t.sf(abs(v.est) / se, v.n - 1)) if se > 0 else (1.0 if v.est == 0 else 0.0)
    return dataclasses.replace(v, method="t-paired", p=p)


def _boot(d: dict, paired: bool = False) -> Interval:
    """An old bootstrap interval (``metrics.evaluate(bootstrap=B)`` / ``stats.diff_ci``), with its method."""
    return dataclasses.replace(Interval.of(d), method="bootstrap-paired" if paired else "bootstrap")


def record_from_numbers(numbers: dict, run_card: dict) -> Record:
    """The record of a results file written before the typed seam (``numbers``: its dict). What it
    does not store stays None: the classifier's paired quarters, the paired FD differences against
    the unconditional configurations, guided DDIM's and the temperatures' paired differences."""
    cfg = run_card.get("config", {})
    sw = numbers["sweep"]
    c = sw["comparisons"]
    r = Record()
    r.n, r.fd_floor, r.s_mid, r.s_hi = sw["n"], sw["fd_floor"], c["s_mid"], c["s_hi"]
    r.setting = (f"{cfg['data']} {cfg['image_size']}x{cfg['image_size']}, T={cfg['T']} {cfg['schedule']}, "
                 f"{cfg['train_images']:,} images per model, {r.n} samples per configuration, {cfg['sample_steps']} "
                 "ancestral steps")
    key = lambda row: (row["model"], float(row["scale"]))  # noqa: E731
    r.fd = {key(x): _boot(x["fd"]) for x in sw["rows"]}
    r.precision = {key(x): _boot(x["precision"]) for x in sw["rows"]}
    r.recall = {key(x): _boot(x["recall"]) for x in sw["rows"]}
    r.accuracy = {key(x): dataclasses.replace(Interval.of(x["accuracy"]), method="wilson") for x in sw["rows"]}
    r.confidence = {key(x): dataclasses.replace(Interval.of(x["confidence"]), method="t") for x in sw["rows"]}
    for f in ("u_1_minus_0", "u_hi_minus_0", "u_hi_minus_1", "c_mid_minus_0", "c_mid_minus_hi"):
        setattr(r, f, _boot(c[f], paired=True))
    r.dp = {m: _boot(v, paired=True) for m, v in c["dp"].items()}
    r.dr = {m: _boot(v, paired=True) for m, v in c["dr"].items()}
    r.gap_u1, r.acc_u_hi_minus_1 = _t_paired(c["gap_u1"]), _t_paired(c["acc_u_hi_minus_1"])
    r.clf_quarters = [dataclasses.replace(Interval.of(q), method="bootstrap-cluster")
                      for q in numbers["classifier"]["quarters"]]
    r.ddim_steps, r.anc_steps = cfg["ddim_steps"], cfg["sample_steps"]
    r.ddim_scale = 2.5 if 2.5 in cfg["ddim_scales"] else max(cfg["ddim_scales"])
    r.fd_anc_ref = r.fd[("conditional", r.s_mid)].est
    r.tau_lo = min(cfg["temperatures"])
    a = numbers["architecture"]
    r.arch_loss = {k: _t_paired(v["loss"]) for k, v in a["pairs"].items()}
    r.arch_fd = {k: _boot(v["fd"], paired=True) for k, v in a["pairs"].items()}
    r.arch_seed = _t_paired(a["seed_to_seed"])
    r.arch_seeds, r.arch_loss_seed0 = 1, dict(r.arch_loss)
    n_loss = next(iter(a["rows"].values()))["loss"]["n"]
    r.arch_setting = (f"{cfg['data']} {cfg['image_size']}x{cfg['image_size']}, {cfg['arch_images']:,} images per row, "
                      f"loss on {n_loss} held-out images x {cfg['heldout_t']} steps")
    if "upsampling" in numbers:  # the stack's paired changes were not stored: its rows cannot be re-derived
        r.upsampling = "; ".join(f"{k}: FD {Interval.of(v['fd'])}" for k, v in numbers["upsampling"].items())
    return r
