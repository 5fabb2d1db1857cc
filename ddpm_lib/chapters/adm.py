"""Chapter 04 (ADM, classifier guidance): measurements that need more than one line, and the claims.

Numbers arrive as ``stats.Interval`` objects; the notebook stores them with ``as_dict()``.
Paper numbers from ../shared/reference/chapters-04-09.md section 1.1 (checked against the paper).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import diffusion, metrics, stats
from ..notebook import Claim
from .common import HIGHER, LOWER, aggregate, iv, paired_diff, why, within, within_band  # noqa: F401

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


def hits(extractor, samples: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """1 where the independent in-domain network reads a sample as the class it was asked for."""
    return metrics.conditional_hits(extractor, samples, labels).numpy()


def eps_temperature(model, tau: float, channels: int):
    """ADM App. G's second knob: divide the predicted eps by ``tau`` (variance channels untouched)."""

    def scaled(x, t):
        out = model(x, t)
        return torch.cat([out[:, :channels] / tau, out[:, channels:]], dim=1)

    return scaled


paired_rate_diff = paired_diff  # hit rates on the same sample rows (same labels, same initial noise)


def pair(ev_a, ev_b, metric: str = "fd") -> stats.Interval:
    """Paired bootstrap interval of metric(a) - metric(b) (evaluations at equal n and seed)."""
    return stats.diff_ci(getattr(ev_a, metric), ev_a.replicates[metric], getattr(ev_b, metric),
                         ev_b.replicates[metric])


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------
def floor_note(c: dict, holds: str) -> str:
    """Why guidance cannot lower FD: the unguided conditional model already scores the real-vs-real floor."""
    if holds == "yes" or "c0_fd" not in c:
        return ""
    c0 = iv(c["c0_fd"])
    if c0.lo > c["fd_floor"]:
        return ""
    return (f"; the unguided conditional model's FD {c0} already contains the real-vs-real floor "
            f"{c['fd_floor']:.3g}, so at this scale there is no FD left for guidance to win")


def claims(c: dict, setting: str) -> list[Claim]:
    """The claims of chapter 04 from the measured intervals in ``c`` (built by the notebook)."""
    out = []
    s_hi, s_mid = c["s_hi"], c["s_mid"]
    untrained = set(c.get("did_not_train", ()))
    # 1. the noisy classifier
    q1, q4 = iv(c["clf_q"][0]), iv(c["clf_q"][-1])
    dq = iv(c["clf_q1_minus_q4"])
    v = {"falls (first minus last quartile > 0)": HIGHER[stats.compare(dq, 0.0)],
         "last quartile nearer chance than the first": "yes" if q4.hi < (q1.lo + c["chance"]) / 2 else "no"}
    out.append(Claim(
        "a classifier trained on x_t at every t loses accuracy towards chance as t grows (tests: accuracy in the "
        "first quarter of steps minus the last quarter, paired over images, has a 95% interval above 0; the last "
        "quarter's interval lies below the midpoint between the first quarter and chance)",
        "Sec. 4.1 (noisy classifiers); expected behaviour, no number in the paper",
        f"accuracy by quarter of t: {', '.join(iv(q).fmt(pct=True) for q in c['clf_q'])}; chance {c['chance']:.0%}",
        setting, aggregate(v), why(v)))
    first_sampled = len(out)
    # 2. Table 4, the unconditional model
    u1, u10 = iv(c["fd_u"][1.0]), iv(c["fd_u"][s_hi])
    v = {f"scale {s_hi:g} lowers FD": LOWER[stats.compare(iv(c["u_hi_minus_0"]), 0.0)],
         f"scale {s_hi:g} lowers FD more than scale 1": LOWER[stats.compare(iv(c["u_hi_minus_1"]), 0.0)]}
    out.append(Claim(
        f"guiding an unconditional model: scale 1 barely helps, scale 10 helps a lot (tests: FD(s={s_hi:g}) - FD(s=0) "
        f"and FD(s={s_hi:g}) - FD(s=1) both have 95% intervals below 0; paired bootstrap)",
        "Table 4, ImageNet 256: FID 26.21 (no guidance), 33.03 (s=1), 12.00 (s=10)",
        f"FD s=0 {iv(c['fd_u'][0.0])}, s=1 {u1}, s={s_hi:g} {u10}; FD(s={s_hi:g})-FD(0) {iv(c['u_hi_minus_0'])}, "
        f"FD(s={s_hi:g})-FD(1) {iv(c['u_hi_minus_1'])}", setting, aggregate(v), why(v)))
    # 3. the best setting is conditional + moderate scale
    best = c["best_config"]
    v = {"the sweep's best FD is conditional with 0 < s <= 2": "yes" if best[0] == "conditional" and 0 < best[1] <= 2 else "no",
         f"conditional s={s_mid:g} beats conditional s=0": LOWER[stats.compare(iv(c["c_mid_minus_0"]), 0.0)]}
    out.append(Claim(
        f"a conditional model with guidance at a moderate scale is best (tests, before the sweep: the lowest FD of the "
        f"sweep belongs to the conditional model at a scale in (0, 2]; FD(conditional, s={s_mid:g}) - FD(conditional, "
        "s=0) has a 95% interval below 0)",
        "Table 4: conditional FID 10.94 (s=0) -> 4.59 (s=1) -> 9.11 (s=10); the best row of the table",
        f"best: {best[0]}, s={best[1]:g} (FD {iv(c['best_fd'])}); FD(C, s={s_mid:g}) - FD(C, s=0) = {iv(c['c_mid_minus_0'])}",
        setting, aggregate(v), why(v) + floor_note(c, aggregate(v))))
    # 4. U-shaped FD for the conditional model
    v = {f"FD(s={s_mid:g}) below FD(s=0)": LOWER[stats.compare(iv(c["c_mid_minus_0"]), 0.0)],
         f"FD(s={s_mid:g}) below FD(s={s_hi:g})": LOWER[stats.compare(iv(c["c_mid_minus_hi"]), 0.0)]}
    out.append(Claim(
        f"FD is U-shaped in the scale (tests: for the conditional model FD(s={s_mid:g}) - FD(s=0) and FD(s={s_mid:g}) - "
        f"FD(s={s_hi:g}) both have 95% intervals below 0)",
        "Fig. 4 and Table 4: FID and sFID best at an intermediate scale",
        f"FD(s={s_mid:g}) - FD(0) = {iv(c['c_mid_minus_0'])}; FD(s={s_mid:g}) - FD({s_hi:g}) = {iv(c['c_mid_minus_hi'])}",
        setting, aggregate(v), why(v) + floor_note(c, aggregate(v))))
    # 5. precision up, recall down
    v = {}
    for m in ("unconditional", "conditional"):
        v[f"{m} precision rises"] = HIGHER[stats.compare(iv(c["dp"][m]), 0.0)]
        v[f"{m} recall falls"] = LOWER[stats.compare(iv(c["dr"][m]), 0.0)]
    out.append(Claim(
        f"guidance trades recall for precision (tests: from s=1 to s={s_hi:g}, the precision change has a 95% interval "
        "above 0 and the recall change one below 0, for both models; paired bootstrap)",
        "Table 4 and Fig. 4: conditional P 0.82 -> 0.88, R 0.52 -> 0.32 (s=1 -> 10)",
        "; ".join(f"{m}: dP {iv(c['dp'][m])}, dR {iv(c['dr'][m])}" for m in ("unconditional", "conditional")),
        setting, aggregate(v), why(v)))
    # 6. Sec. 4.3: the classifier's confidence vs what the samples show
    v = {"at s=1 the guiding classifier is more confident than the independent reader's accuracy":
         HIGHER[stats.compare(iv(c["gap_u1"]), 0.0)],
         f"the independent accuracy rises from s=1 to s={s_hi:g}": HIGHER[stats.compare(iv(c["acc_u_hi_minus_1"]), 0.0)]}
    out.append(Claim(
        f"with an unconditional model at s=1 the classifier is fairly confident but the samples often do not show the "
        f"class; a larger scale makes them (tests: mean p(y | x_0) of the guiding classifier minus the independent "
        f"network's accuracy on the same samples has a 95% interval above 0; the independent accuracy at s={s_hi:g} "
        "minus s=1, paired over rows, above 0)",
        "Sec. 4.3: at scale 1 the classifier gives the target class ~50% yet the samples do not match it; larger "
        "scales give nearly 100%",
        f"s=1: classifier confidence {iv(c['conf_u1']).fmt(pct=True)}, independent accuracy "
        f"{iv(c['acc_u1']).fmt(pct=True)}; s={s_hi:g}: {iv(c['conf_uhi']).fmt(pct=True)} and "
        f"{iv(c['acc_uhi']).fmt(pct=True)}", setting, aggregate(v), why(v)))
    # 7. few steps
    d25 = iv(c["ddim_minus_anc"])
    v = {f"within 25% of {c['anc_steps']}-step ancestral": within(d25, 0.25 * c["fd_anc_ref"])}
    out.append(Claim(
        f"guided DDIM with {c['ddim_steps']} steps (Algorithm 2, eps form) comes close to the many-step guided "
        f"ancestral sampler (test: FD(DDIM-{c['ddim_steps']}, s={c['ddim_scale']:g}) - FD(ancestral-{c['anc_steps']}, "
        f"s={s_mid:g}) has a 95% interval below 25% of the latter, 'not significant' when it straddles that margin; "
        "the scales are the paper's ImageNet 256 pair, 1.0 at many steps and 2.5 with DDIM-25)",
        "Table 5, ImageNet 256: ADM-G 4.59 (250 steps, s=1) vs ADM-G 25 steps 5.44 (DDIM, s=2.5)",
        f"difference {d25} (ancestral FD {c['fd_anc_ref']:.3g})", setting, aggregate(v), why(v)))
    # 8. temperature
    v = {}
    for k, (dp, dr) in c["temp"].items():
        v[f"{k}: precision lower"] = LOWER[stats.compare(iv(dp), 0.0)]
        v[f"{k}: recall lower"] = LOWER[stats.compare(iv(dr), 0.0)]
    out.append(Claim(
        "a reduced temperature lowers both precision and recall (tests: for the noise scaled by tau and for eps "
        "divided by tau, at the lowest tau, the changes of precision and of recall against tau = 1 each have 95% "
        "intervals below 0; conditional model, unguided)",
        "App. G: 'low temperatures have both low precision and low recall'; neither knob helps",
        "; ".join(f"{k}: dP {iv(dp)}, dR {iv(dr)}" for k, (dp, dr) in c["temp"].items()), setting,
        aggregate(v), why(v)))
    # a verdict drawn from a model that did not train is no verdict on the paper's claim
    needs = (("unconditional",), ("unconditional", "conditional"), ("conditional",), ("unconditional", "conditional"),
             ("unconditional",), ("conditional",), ("conditional",))
    for i, need in zip(range(first_sampled, len(out)), needs):
        bad = sorted(untrained & set(need))
        if bad:
            cl = out[i]
            out[i] = Claim(cl.claim, cl.paper, cl.ours, cl.setting, "did not train",
                           f"the {' and '.join(bad)} model's unguided FD is above 10x the real-vs-real floor; "
                           f"the test would read '{cl.holds}', which says nothing about the paper's claim")
    # 9-12. architecture rows, on the held-out loss with the seed control
    seed_d = iv(c["arch_seed"])
    for name, paper, expect in (
            ("AdaGN vs addition + GroupNorm", "Table 3: FID 13.06 vs 15.08", "lower"),
            ("BigGAN up/down vs plain resampling", "Table 1: -1.20 FID", "lower"),
            ("attention at every resolution with twice the heads", "Table 1: -0.72 (32,16,8), -0.54 (4 heads)", "lower"),
            ("rescaled residuals (skip + h)/sqrt 2", "Table 1: +0.16 FID (the one change that hurt)", "higher")):
        d, dfd = iv(c["arch"][name]["loss"]), iv(c["arch"][name]["fd"])
        sig = stats.compare(d, 0.0)
        beyond_seed = abs(d.est) > abs(seed_d.hi if seed_d.est >= 0 else seed_d.lo)
        if sig == "not significant":
            holds, note = "not significant", "the held-out loss difference's interval contains 0"
        elif not beyond_seed:
            holds, note = "not significant", (f"significant for these weights, but no larger than the difference "
                                              f"between two training seeds of one configuration ({seed_d})")
        else:
            holds = "yes" if sig == expect else "no"
            note = "" if holds == "yes" else f"the effect has the opposite sign ({sig})"
        out.append(Claim(
            f"{name}: {'improves' if expect == 'lower' else 'does not improve'} the model (test: held-out L_simple on "
            f"a fixed (t, eps) grid, paired over test images, has a 95% interval {'below' if expect == 'lower' else 'above'}"
            " 0, and the difference exceeds the seed-to-seed difference of one configuration; FD shown beside it)",
            paper + " (ImageNet 128, 700K iterations)",
            f"loss difference {d}; FD difference {dfd}; seed-to-seed {seed_d}", c["arch_setting"], holds, note))
    if "stack" in c:  # 13. Table 6 shape
        st = c["stack"]
        v = {"upsampling raises precision": HIGHER[stats.compare(iv(st["ADM-U"]["dp"]), 0.0)],
             "upsampling keeps recall (change within +-0.05)": within_band(iv(st["ADM-U"]["dr"]), 0.05),
             "guidance raises precision": HIGHER[stats.compare(iv(st["ADM-G"]["dp"]), 0.0)],
             "guidance lowers recall": LOWER[stats.compare(iv(st["ADM-G"]["dr"]), 0.0)]}
        meaningful = c.get("stack_data") != "digits"
        out.append(Claim(
            "upsampling improves precision while keeping recall; guidance trades recall for much higher precision "
            "(tests against the direct model at the high resolution: the stack's precision change above 0 and its "
            "recall change inside +-0.05; guidance's precision change above 0 and recall change below 0; paired "
            "bootstrap)", "Table 6, ImageNet 256: ADM P/R 0.69/0.63, ADM-U 0.72/0.63, ADM-G 0.82/0.52",
            "; ".join(f"{k}: dP {iv(x['dp'])}, dR {iv(x['dr'])}" for k, x in st.items()), c["stack_setting"],
            aggregate(v) if meaningful else "n/a",
            why(v) if meaningful else "digits at the high resolution are upsampled 8x8 images: a code-path test only"))
    out.append(Claim(
        "FID 2.97 / 4.59 / 7.72 on ImageNet 128 / 256 / 512, better than BigGAN-deep, with as few as 25 steps; "
        "3.85 at 512 with guidance and upsampling",
        "abstract, Tables 5 and 6", c.get("upsampling", "no upsampling stack in this profile"), setting, "n/a",
        "no ImageNet, no GAN baseline and no Inception network offline; the book's FD uses in-domain features and "
        "compares within a table only"))
    return out
