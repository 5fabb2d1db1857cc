"""Chapter 09 (consistency models): the 2-D ablation arms and their runner, the exact teacher of a
Gaussian mixture in sigma and TrigFlow form, paired bootstrap intervals for sliced Wasserstein
distances over seeds, and the claims with the tests they state."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import consistency as CM, metrics, stats, train as TR
from ..nets import mlp
from ..notebook import Claim
from .common import HIGHER, LOWER, aggregate, iv, why, within


# --------------------------------------------------------------------------------------------
# The exact teacher of a Gaussian mixture
# --------------------------------------------------------------------------------------------
class ExactDenoiser:
    """D(x_sigma; sigma) = E[x_0 | x_0 + sigma n = x_sigma] of an ``oracle.GaussianMixture``: the VP marginal
    with alpha_bar = 1 / (1 + sigma^2) at x_sigma / sqrt(1 + sigma^2). A perfect teacher, so CD's errors are
    the solver's and the student's alone."""

    def __init__(self, gm):
        d = gm.dim
        var = gm.covs.diagonal(dim1=-2, dim2=-1)[:, 0]
        if not torch.allclose(gm.covs, var[:, None, None] * torch.eye(d, dtype=gm.covs.dtype)):
            raise ValueError("ExactDenoiser needs isotropic mixture components (each covariance v_k I)")
        self.gm, self.var = gm, var.double()

    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Vectorised over per-example sigma: with x_0 ~ N(m_k, v_k I), x_sigma | k ~ N(m_k, (v_k + sigma^2) I) and
        E[x_0 | x_sigma, k] = m_k + v_k / (v_k + sigma^2) (x_sigma - m_k)."""
        xs = x.double()
        s2 = torch.as_tensor(sigma, dtype=torch.float64, device=xs.device).reshape(-1, 1).expand(len(xs), 1) ** 2
        m, v, w = self.gm.means.double(), self.var[None, :], self.gm.weights.double()  # (K, d), (1, K), (K,)
        tot = v + s2  # (n, K)
        d2 = ((xs[:, None, :] - m[None]) ** 2).sum(-1)  # (n, K)
        logp = w.log()[None] - 0.5 * d2 / tot - 0.5 * xs.shape[1] * tot.log()
        r = torch.softmax(logp, dim=1)
        cond = m[None] + (v / tot)[:, :, None] * (xs[:, None, :] - m[None])  # (n, K, d)
        return (r[:, :, None] * cond).sum(1).to(x.dtype)


class ExactTrigFlow:
    """The exact teacher in TrigFlow form for sCD: F(x_t, t) = (cos t x_t - x0_hat) / (sigma_d sin t) with
    x0_hat the exact denoiser at sigma = sigma_d tan t, x_sigma = x_t / cos t."""

    def __init__(self, gm, sigma_d: float):
        self.D, self.sigma_d = ExactDenoiser(gm), sigma_d

    def F(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.double().reshape(-1, 1)
        cos, sin = torch.cos(t), torch.sin(t)
        x0 = self.D(x_t.double() / cos, (self.sigma_d * sin / cos).reshape(-1)).double()
        return ((cos * x_t.double() - x0) / (self.sigma_d * sin)).to(x_t.dtype)


# --------------------------------------------------------------------------------------------
# The 2-D arms
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One 2-D training run: ``family`` cd / ct / scm, the objective's options, the embedding of the MLP."""

    name: str
    group: str
    family: str
    options: dict = field(default_factory=dict)
    emb: str = "positional"
    fourier_scale: float = 16.0


def toy_arms(cd_steps=(6, 18, 54)) -> list[Arm]:
    """The ablation grid: CD (Heun vs Euler at each N; exact teacher), CT (CM's recipe: fixed N = 18 with
    mu = 0.95 and the adaptive N(k), mu(k)), iCT with each of its changes undone in turn, and sCM (sCT
    as recommended; with a scale-16 Fourier embedding; without tangent normalisation; without warm-up;
    sCD with the exact teacher)."""
    arms = [Arm(f"CD {s} N={n}", "cd", "cd", dict(solver=s, steps=n, mu=0.95)) for n in cd_steps for s in ("euler", "heun")]
    arms += [Arm("CT N=18", "ct", "ct", dict(steps=18, mu=0.95)),
             Arm("CT adaptive", "ct", "ct", dict(steps="adaptive", mu="adaptive"))]
    ict = dict(steps="doubling", mu=0.0, metric="pseudo_huber", index="lognormal", weighting="ict")
    arms += [Arm("iCT", "ict", "ct", ict),
             Arm("iCT, EMA target", "ict", "ct", {**ict, "mu": 0.95}),
             Arm("iCT, l2", "ict", "ct", {**ict, "metric": "l2"}),
             Arm("iCT, uniform index", "ict", "ct", {**ict, "index": "uniform", "weighting": "uniform"}),
             Arm("iCT, CM's N(k)", "ict", "ct", {**ict, "steps": "adaptive"})]
    scm = dict(normalise=0.1, warmup=True)
    arms += [Arm("sCT", "scm", "scm", scm),
             Arm("sCT, Fourier 16", "scm", "scm", scm, emb="fourier"),
             Arm("sCT, no normalisation", "scm", "scm", {**scm, "normalise": None}),
             Arm("sCT, no warm-up", "scm", "scm", {**scm, "warmup": False}),
             Arm("sCD", "scm", "scm", {**scm, "teacher": True})]
    return arms


def ct_diagnostic_arm() -> Arm:
    """CM's adaptive CT with iCT's stop-gradient target (mu = 0) in place of its EMA target, everything else
    CM's (N(k), l2, uniform index): if CM's CT fails and this one trains, the EMA target is what stalls it.
    Kept out of the ablation grid (and its pooled seed noise): a diagnostic, judged by failures per seed."""
    return Arm("CT adaptive, stop-gradient", "ct", "ct", dict(steps="adaptive", mu=0.0))


def schedule(value, total: int, kind: str):
    """Named schedules as picklable-free closures with a stable name (for the cache key)."""
    if value == "adaptive":
        fn = (lambda k: CM.cm_adaptive(k, total)[0]) if kind == "steps" else (lambda k: CM.cm_adaptive(k, total)[1])
    elif value == "doubling":
        fn = lambda k: CM.ict_doubling(k, total)  # noqa: E731
    else:
        return value
    fn.__name__ = f"{value}_{kind}_{total}"
    return fn


def toy_objective(arm: Arm, steps: int, sigma_d: float, gm, warmup_steps: int):
    o = dict(arm.options)
    if arm.family == "scm":
        teacher = ExactTrigFlow(gm, sigma_d) if o.pop("teacher", False) else None
        return CM.SCMObjective(sigma_d=sigma_d, normalise=o["normalise"], warmup=warmup_steps if o["warmup"] else 0,
                               teacher=teacher, teacher_key="exact" if teacher else "")
    kind = arm.family
    return CM.ConsistencyObjective(kind, steps=schedule(o.pop("steps"), steps, "steps"),
                                   mu=schedule(o.pop("mu"), steps, "mu"),
                                   teacher=ExactDenoiser(gm) if kind == "cd" else None,
                                   teacher_key="exact" if kind == "cd" else "", name=arm.name, **o)


def toy_model(arm: Arm, sigma_d: float, width: int, layers: int, seed: int):
    net = mlp.MLP(mlp.MLPConfig(width=width, layers=layers, emb=arm.emb, fourier_scale=arm.fourier_scale, seed=seed))
    return CM.TrigFlow(net, sigma_d=sigma_d) if arm.family == "scm" else CM.SigmaForm(CM.TrigFlow(net, sigma_d=sigma_d))


def cm_sample(model, shape, nfe: int, sigma_d: float, seed: int, t_mid: float = 1.1, device=None) -> torch.Tensor:
    """1 or 2 steps from the same noise for every model (a CPU generator seeded by ``seed``): from
    t_max = arctan(80 / sigma_d) (sigma_max = 80), then (2 steps) re-noised to sCM's t_mid, i.e.
    sigma = sigma_d tan t_mid in the EDM form; the two re-noising rules are the same map."""
    g = torch.Generator().manual_seed(seed)
    t_max = math.atan(80 / sigma_d)
    ts = (t_max,) if nfe == 1 else (t_max, t_mid)
    z = [torch.randn(tuple(shape), generator=g, dtype=torch.float64) for _ in ts]
    if isinstance(model, CM.SigmaForm):
        model = model.model
    x, x0 = z[0] * sigma_d, None
    for i, t in enumerate(ts):
        if i > 0:
            x = math.cos(t) * x0 + math.sin(t) * z[i] * sigma_d
        tt = torch.full((shape[0],), float(t), device=device)
        with torch.no_grad():
            x0 = model(x.float().to(device), tt).double().cpu()
    return x0.float()


def toy_sample(model, n: int, nfe: int, sigma_d: float, seed: int, t_mid: float = 1.1) -> torch.Tensor:
    return cm_sample(model, (n, 2), nfe, sigma_d, seed, t_mid)


def run_arm(arm: Arm, data: torch.Tensor, gm, cfg, seed: int, tcfg: TR.TrainConfig, ref: torch.Tensor,
            floor: float, sample_seed: int = 1234, device=None) -> dict:
    """Train one arm (cached) and return its samples at 1 and 2 steps, sliced Wasserstein distances,
    share of samples near a mode, the logs (gradient and tangent norms), and whether it failed (a
    non-finite loss, or a 1-step distance above ``cfg.fail_factor`` times the floor)."""
    sigma_d = float(data.std())
    steps = tcfg.steps
    obj = toy_objective(arm, steps, sigma_d, gm, max(1, int(cfg.toy_warmup * steps)))
    net = toy_model(arm, sigma_d, cfg.toy_width, cfg.toy_layers, seed)
    out = dict(arm=arm.name, group=arm.group, seed=seed, diverged=False)
    try:
        res = TR.train_cached("09_toy", net, obj, (data, None, {}), dataclasses.replace(tcfg, seed=seed),
                              extra={"arm": arm.name}, progress=False, device=device)
    except FloatingPointError as e:
        out.update(diverged=True, failed=True, error=str(e), log=[], sw={1: float("nan"), 2: float("nan")})
        return out
    model = res.ema.cpu()
    out["log"] = [{k: r[k] for k in ("step", "loss", "grad_norm", "tangent_norm", "N") if k in r} for r in res.log]
    out["samples"], out["sw"], out["in_mode"] = {}, {}, {}
    for nfe in (1, 2):
        s = toy_sample(model, len(ref), nfe, sigma_d, sample_seed)
        ok = bool(torch.isfinite(s).all())
        out["samples"][nfe] = s
        out["sw"][nfe] = metrics.sliced_wasserstein(s, ref, n_projections=128) if ok else float("nan")
        out["in_mode"][nfe] = metrics.mode_coverage(s, gm.means, cfg.mode_radius)["in_mode"] if ok else 0.0
    out["failed"] = not (out["sw"][1] <= cfg.fail_factor * floor)
    out["wall_s"] = res.wall_s
    return out


def seed_noise(toy: dict, nfe: int = 1) -> tuple[float, int]:
    """The seed-to-seed standard deviation of an arm's SW, pooled over every arm none of whose seeds
    failed: (sd, degrees of freedom = sum over those arms of seeds - 1). Training noise, which a
    bootstrap over samples does not see."""
    ss, df = 0.0, 0
    for runs in toy.values():
        v = [r["sw"][nfe] for r in runs]
        if len(v) < 2 or any(r["failed"] for r in runs):
            continue
        ss += float(np.var(v, ddof=1)) * (len(v) - 1)
        df += len(v) - 1
    if df == 0:
        raise ValueError("no arm with two or more seeds that all trained: the seed noise cannot be estimated")
    return math.sqrt(ss / df), df


def sw_compare(runs_a: list[dict], runs_b: list[dict], noise: tuple[float, int], nfe: int = 1) -> dict:
    """SW(a) - SW(b) at ``nfe`` steps: the difference of the two arms' seed means, with a 95% t-interval
    whose variance is the pooled seed variance (``seed_noise``) times 1 / S_a + 1 / S_b. A failed seed (a
    non-finite loss) counts with its SW as NaN and makes the interval None. ``per_seed`` lists a - b by
    seed where both ran it."""
    a = [r["sw"][nfe] for r in runs_a]
    b = [r["sw"][nfe] for r in runs_b]
    if not all(map(math.isfinite, a + b)):
        return dict(interval=None, per_seed=[], mean_a=float("nan"), mean_b=float("nan"))
    sd, df = noise
    est = float(np.mean(a) - np.mean(b))
    half = stats._t_quantile(df, stats.LEVEL) * sd * math.sqrt(1 / len(a) + 1 / len(b))
    by_b = {r["seed"]: r["sw"][nfe] for r in runs_b}
    per = [r["sw"][nfe] - by_b[r["seed"]] for r in runs_a if r["seed"] in by_b]
    return dict(interval=stats.Interval(est, est - half, est + half, len(a) + len(b)).as_dict(), per_seed=per,
                mean_a=float(np.mean(a)), mean_b=float(np.mean(b)))


def toy_verdict(c: dict | None, lower_is_claim: bool = True) -> str:
    """'yes' when the interval of SW(a) - SW(b) lies on the claimed side of 0, 'no' on the other side,
    else 'not significant' (also when an arm's loss turned non-finite: no interval)."""
    if c is None or c.get("interval") is None:
        return "not significant"
    return (LOWER if lower_is_claim else HIGHER)[stats.compare(iv(c["interval"]), 0.0)]


# --------------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------------
def _fmt_cmp(c: dict | None) -> str:
    if not c or c.get("interval") is None:
        return "–"
    seeds = ", ".join(f"{p:+.3f}" for p in c["per_seed"])
    return f"{iv(c['interval'])} (by seed: {seeds})"


def fd_verdict(d: dict | None, lower_is_claim: bool = True) -> str:
    if d is None:
        return "not significant"
    return (LOWER if lower_is_claim else HIGHER)[stats.compare(iv(d), 0.0)]


def claims(c: dict, setting_toy: str, setting_digits: str) -> list[Claim]:
    """The chapter's claims from the comparisons ``c`` that the notebook computed (see there for each key):
    2-D comparisons are ``sw_compare`` dicts (``toy_failed``: arms that failed in every seed); digits
    comparisons FD differences with paired bootstrap intervals (``did_not_train``: models whose FD is above
    10x the floor at 1 and 2 steps). A model that did not train is named, not compared."""
    out = []
    dnt = set(c.get("did_not_train", []))
    failed = set(c.get("toy_failed", []))

    def gate(names, claim: Claim, toy_names=()) -> Claim:
        bad = sorted(set(names) & dnt)
        bad_toy = sorted(set(toy_names) & failed)
        if bad or bad_toy:
            claim.holds = "did not train"
            claim.why = "; ".join(
                ([f"digits: {', '.join(bad)} (FD above 10x the real-vs-real floor at 1 and 2 steps)"] if bad else [])
                + ([f"2-D: {', '.join(bad_toy)} (failed in every seed)"] if bad_toy else []))
        return claim

    # 1. CD: 2 steps better than 1, both behind the teacher
    v = {"CD 2-step FD below 1-step": fd_verdict(c["cd_2_minus_1"]),
         "CD 1-step FD above the teacher's": fd_verdict(c["cd1_minus_teacher"], lower_is_claim=False)}
    out.append(gate(("teacher", "CD"), Claim(
        "consistency distillation generates in one step, better in two, and stays behind its teacher (tests on "
        "digits: FD of 2 steps minus 1 step below 0; 1-step FD minus the teacher's Heun FD at the most steps above "
        "0; paired bootstrap intervals)",
        "CM, sCM Table 1: CD (LPIPS) CIFAR-10 FID 3.55 (1 step), 2.93 (2 steps); ImageNet 64 6.20 / 4.70; EDM "
        "teacher 2.04 (CIFAR-10, 35 NFE)",
        f"2 - 1 step {iv(c['cd_2_minus_1'])}; 1 step - teacher {iv(c['cd1_minus_teacher'])}", setting_digits,
        aggregate(v), why(v))))
    # 2. CT behind CD at equal steps
    v = {"CT 1-step FD above CD's": fd_verdict(c["ct_minus_cd"], lower_is_claim=False)}
    out.append(gate(("CT", "CD"), Claim(
        "consistency training (CM's recipe: adaptive N(k), mu(k), l2) is behind distillation after the same "
        "training steps (test on digits: 1-step FD of CT minus CD above 0)",
        "CM Table 1: CT 8.70 (1 step) / 5.83 (2 steps) vs CD 3.55 / 2.93 on CIFAR-10 (LPIPS)",
        f"{iv(c['ct_minus_cd'])}", setting_digits, aggregate(v), why(v))))
    # 3. iCT ahead of CT: on digits against CM's CT; in 2-D against each CT arm that trained
    v, skipped = {}, []
    if "CT" not in dnt and "iCT" not in dnt:
        v["digits: iCT 1-step FD below CT's"] = fd_verdict(c["ict_minus_ct"])
    else:
        skipped.append("digits (" + ", ".join(sorted({"CT", "iCT"} & dnt)) + " did not train)")
    for arm, comp in c["toy_ict_vs_ct"].items():
        if arm in failed or "iCT" in failed:
            skipped.append(f"2-D {arm} (failed in every seed)")
        else:
            v[f"2-D: iCT's 1-step SW below {arm}'s"] = toy_verdict(comp)
    claim = Claim(
        "iCT's changes (stop-gradient target, pseudo-Huber, lognormal index, doubling N, 1/delta-sigma weights) "
        "improve consistency training (tests: digits, 1-step FD of iCT minus CM's CT below 0; 2-D, 1-step sliced "
        "Wasserstein of iCT minus each CT arm below 0; a comparison with a model that did not train is skipped)",
        "iCT abstract: 2.51 / 2.24 (iCT-deep, CIFAR-10, 1 / 2 steps), '3.5x and 4x improvement compared to "
        "prior consistency training' (CT 8.70)",
        f"digits FD {iv(c['ict_minus_ct'])}; 2-D SW " + "; ".join(f"minus {a}: {_fmt_cmp(x)}" for a, x in
                                                                 c["toy_ict_vs_ct"].items()),
        f"{setting_digits}; {setting_toy}", aggregate(v) if v else "did not train",
        "; ".join(filter(None, [why(v), ("skipped: " + ", ".join(skipped)) if skipped else ""])))
    out.append(claim)
    # 4. sCT against iCT on digits
    margin = 0.1 * c["ict2_fd"]
    v = {f"sCT 2-step FD not worse than iCT's by {margin:.2g} (10% of iCT's) or more": within(iv(c["sct2_minus_ict2"]), margin),
         "sCT 1-step FD below iCT's": fd_verdict(c["sct1_minus_ict1"])}
    out.append(gate(("sCT", "iCT"), Claim(
        "continuous-time consistency training (sCT) matches or beats discrete-time iCT (tests on digits: the 2-step "
        "FD of sCT minus iCT lies below 10% of iCT's 2-step FD, an equivalence margin; the 1-step FD of sCT minus "
        "iCT below 0)",
        "sCM Table 1: sCT 2.97 / 2.06 vs iCT 2.83 / 2.46 (CIFAR-10, 1 / 2 steps); ImageNet 64 2.04 / 1.48 vs "
        "4.02 / 3.20",
        f"2-step sCT - iCT {iv(c['sct2_minus_ict2'])}; 1-step {iv(c['sct1_minus_ict1'])}", setting_digits,
        aggregate(v), why(v))))
    # 5. CD: Heun better than Euler at equal N (2-D, exact teacher)
    names = [f"CD {s} N={n}" for n in c["cd_steps"] for s in ("heun", "euler")]
    v = {f"Heun below Euler at N = {n}": toy_verdict(c["toy_heun_vs_euler"][str(n)]) for n in c["cd_steps"]}
    out.append(gate((), Claim(
        "with the same N, a Heun teacher step gives better CD models than an Euler step (2-D, exact teacher: "
        "1-step sliced Wasserstein of Heun minus Euler below 0 at each N)",
        "CM Fig. 3(b-c) (plotted only): Heun uniformly better than Euler at equal N on CIFAR-10",
        "; ".join(f"N = {n}: {_fmt_cmp(c['toy_heun_vs_euler'][str(n)])}" for n in c["cd_steps"]), setting_toy,
        aggregate(v), why(v)), toy_names=names))
    # 6. CT: adaptive schedule vs fixed N
    v = {"CT adaptive below CT N = 18": toy_verdict(c["toy_ct_adaptive_vs_fixed"])}
    out.append(gate((), Claim(
        "CT's adaptive N(k), mu(k) converges faster than a fixed N (2-D: 1-step sliced Wasserstein of adaptive "
        "minus fixed N = 18, mu = 0.95, after the same steps, below 0)",
        "CM Fig. 3(d) (plotted only): adaptive schedules 'converge significantly faster' than fixed N and mu",
        _fmt_cmp(c["toy_ct_adaptive_vs_fixed"]), setting_toy, aggregate(v), why(v)),
        toy_names=("CT adaptive", "CT N=18")))
    # 7. iCT's changes one at a time (a failed undone arm counts as worse)
    v = {}
    for k, x in c["toy_ict_ablation"].items():
        v[f"undoing '{k}' is worse"] = "yes" if f"iCT, {k}" in failed else toy_verdict(x, lower_is_claim=False)
    out.append(gate((), Claim(
        "each of iCT's changes helps: undoing one at a time (EMA target instead of stop-gradient, l2 instead of "
        "pseudo-Huber, uniform instead of lognormal index, CM's N(k) instead of doubling) raises the 1-step sliced "
        "Wasserstein distance (2-D: the undone arm minus iCT above 0; an undone arm that fails counts as worse)",
        "iCT Sec. 3-5, Figs. 2-5 (plotted only): each change improves FID on CIFAR-10",
        "; ".join(f"{k}: {_fmt_cmp(x)}" for k, x in c["toy_ict_ablation"].items()), setting_toy, aggregate(v),
        why(v)), toy_names=("iCT",)))
    # 8. sCM's stabilisers
    fails = c["toy_scm_fails"]
    v = {"the Fourier-16 embedding fails in more seeds than the positional one":
             "yes" if fails["sCT, Fourier 16"][0] > fails["sCT"][0] else "no",
         "without tangent normalisation, worse 1-step SW":
             "yes" if "sCT, no normalisation" in failed else toy_verdict(c["toy_scm_ablation"]["no normalisation"],
                                                                          lower_is_claim=False)}
    out.append(gate((), Claim(
        "sCM's stabilisers matter: a large Fourier scale in the time embedding makes continuous-time training "
        "fail, and normalising the tangent helps (2-D: failures over seeds, Fourier 16 more than positional; 1-step "
        "sliced Wasserstein without normalisation minus with, above 0)",
        "sCM Sec. 4.1, Fig. 5a: Fourier scale 16 unstable, positional embeddings with c_noise = t stable; tangent "
        "normalisation gives 'substantial improvements'",
        "failed seeds: " + ", ".join(f"{k} {f}/{n}" for k, (f, n) in fails.items()) + "; no normalisation - sCT "
        + _fmt_cmp(c["toy_scm_ablation"]["no normalisation"]), setting_toy, aggregate(v), why(v)),
        toy_names=("sCT",)))
    # 9. iCT's metric-bias argument, in shape
    mb = c.get("metric_bias")
    if mb:
        v = {"the feature-distance model's FD gain is larger in its own features than in independent ones":
                 HIGHER[stats.compare(iv(mb["bias"]), 0.0)]}
        out.append(gate(("CD", "CD-feature"), Claim(
            "a model trained with a feature network's distance looks better to that network than to an independent "
            "one (test on digits: relative FD gain of CD with the evaluation network's feature distance over CD with "
            "l2, measured in the evaluation network minus in an independently trained network, above 0)",
            "iCT Sec. 3.3: LPIPS 'causes undesirable bias in evaluation' (LPIPS and the FID Inception network share "
            "ImageNet features), the reason iCT drops it",
            f"gain in own features {iv(mb['gain_own']).fmt(pct=True)}, in independent features "
            f"{iv(mb['gain_indep']).fmt(pct=True)}; difference {iv(mb['bias']).fmt(pct=True)}", setting_digits, aggregate(v),
            why(v))))
    else:
        out.append(Claim(
            "iCT's metric bias: a model trained with a feature distance looks better to that feature network",
            "iCT Sec. 3.3: LPIPS 'causes undesirable bias in evaluation'", "–", setting_digits, "n/a",
            "not run: metric_bias was off for this run (on in every profile's preset)"))
    out.append(Claim(
        "LPIPS-based numbers (CM's CIFAR-10 CD and CT), ImageNet 64 / LSUN, scaling sCD to 1.5B parameters (sCM "
        "Table 2, Fig. 6), FP16 flash-attention JVP, absolute FIDs",
        "CM Tables 1-2; sCM Tables 1-2", "–", setting_digits, "n/a",
        "no LPIPS or Inception weights offline; data sets and scale out of reach of one CPU"))
    return out
