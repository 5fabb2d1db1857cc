"""Chapter 00 (the forward process): its typed record and its claims.

Nothing in the chapter is learned, so every row is a ``check`` (an identity or an analytic fact the
book verifies), none a reproduction of a measured paper result:

* Eq. 4: the moment recursion of the one-step kernel equals the closed form to float64 round-off
  (< ``MOMENT_TOL``), and the simulated chain's standardised residual is standard normal (every
  mean and std within ``Z_TOL`` standard errors) -- both parts must hold;
* the linear schedule's last quarter is almost pure noise (SNR < ``SNR_NOISE`` on >= 25% of its
  steps) and the cosine schedule reaches that regime at most half as often -- both parts must hold;
* the prior term L_T of the linear schedule lies within a factor 10 of DDPM's 1e-5 bits/dim.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import claims as C

SNR_NOISE = 1e-2  # "almost pure noise": the signal's amplitude is below a tenth of the noise's
MOMENT_TOL = 1e-12  # float64 round-off of a 1,000-step recursion
Z_TOL = 4.0  # standard errors a Monte Carlo mean or std may stray from N(0, 1)
L_T_PAPER = 1e-5  # bits/dim, DDPM Sec. 4 (linear schedule, CIFAR-10)


def snapshots(T: int, n: int) -> np.ndarray:
    """The 0-based steps shown and tested: ``n`` values of t, denser near t = 0 (quadratic spacing)."""
    return np.unique(np.round(np.linspace(0, 1, n) ** 2 * (T - 1)).astype(int))


@dataclass
class Record(C.Record):
    T: int | None = None  # steps of the chain
    toy: str | None = None  # the 2-D data set pushed through the chain
    n_toy: int | None = None  # its points
    n_t: int | None = None  # values of t at which the simulated chain is tested (per schedule)
    n_z: int | None = None  # numbers in one standardised residual (points x 2 coordinates)
    image_data: str | None = None  # the images of the prior term
    image_size: int | None = None
    n_prior_images: int | None = None  # images L_T is averaged over (display only)
    moment_err: float | None = None  # max |recursion - closed form| over t, both schedules, mean and variance
    z_mean_err: float | None = None  # max |mean| of the standardised residual over (schedule, t)
    z_std_err: float | None = None  # max |std - 1| of the same
    noise_fraction: dict | None = None  # {schedule name: share of steps with SNR < SNR_NOISE}
    first_noisy_t: dict | None = None  # {schedule name: first 1-based t with SNR < SNR_NOISE}
    prior_bpd: dict | None = None  # {schedule name: L_T in bits/dim, mean over the images}


def _setting(r: Record) -> str:
    T, toy, n_toy, n_t = r.need("T", "toy", "n_toy", "n_t")
    return f"{toy}, {n_toy} points, {n_t} values of t, both schedules, T={T}"


def _yes(ok: bool) -> str:
    return "yes" if ok else "no"


def closed_form(r: Record) -> C.Claim:
    """Eq. 4: T small Gaussian steps compose into one (exactly, and by simulation)."""
    err, zm, zs, n_z = r.need("moment_err", "z_mean_err", "z_std_err", "n_z")
    se_mean, se_std = 1 / np.sqrt(n_z), 1 / np.sqrt(2 * n_z)  # standard errors for N(0, 1) samples
    parts = {"recursion = closed form": _yes(err < MOMENT_TOL),
             "simulated chain standard normal": _yes(zm < Z_TOL * se_mean and zs < Z_TOL * se_std)}
    holds = C.weakest(*parts.values())
    return C.Claim(
        "q(x_t | x_0) has the closed form of Eq. 4: T small Gaussian steps compose into one",
        "exact (DDPM Eq. 4)",
        f"moments: max error {err:.0e}; simulated chain: max |mean| {zm:.3f}, max |std-1| {zs:.3f} "
        f"({max(zm / se_mean, zs / se_std):.1f} s.e.)",
        _setting(r), holds,
        "" if holds == "yes" else "error beyond float64 rounding or 4 standard errors: a bug",
        kind="check",
        test=f"the moment recursion m_t = sqrt(alpha_t) m_(t-1), v_t = alpha_t v_(t-1) + beta_t equals "
             f"sqrt(abar_t), 1 - abar_t to < {MOMENT_TOL:g} at every t, and the simulated chain's "
             f"(x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t) has |mean| and |std - 1| within {Z_TOL:g} "
             "standard errors of N(0, 1) at every tested (schedule, t); both parts must hold",
        parts=parts)


def linear_tail_is_noise(r: Record) -> C.Claim:
    """Improved DDPM's reason for the cosine schedule: the linear one wastes its end on noise."""
    frac, first = r.need("noise_fraction", "first_noisy_t")
    T = r.need("T")
    lin, cos = frac["linear"], frac["cosine"]
    parts = {"linear: last quarter noise": _yes(lin >= 0.25), "cosine: at most half as much": _yes(cos <= lin / 2)}
    holds = C.weakest(*parts.values())
    return C.Claim(
        "the last quarter of the linear schedule is almost pure noise; cosine adds noise more slowly",
        "qualitative (Improved DDPM Fig. 3 and Sec. 3.2)",
        f"SNR < {SNR_NOISE:g} on {lin:.0%} of linear steps (from t = {first['linear']}), {cos:.0%} of cosine steps",
        f"T={T}, analytic", holds,
        "" if holds == "yes" else "the fractions do not separate the schedules",
        kind="check",
        test=f"the share of steps with SNR < {SNR_NOISE:g} is >= 25% for the linear schedule and at most half "
             "of that for the cosine schedule (exact, no sampling); both parts must hold",
        parts=parts)


def prior_negligible(r: Record) -> C.Claim:
    """DDPM Sec. 4: L_T ~ 1e-5 bits/dim, so p(x_T) = N(0, I) needs no parameters."""
    prior, data, size = r.need("prior_bpd", "image_data", "image_size")
    lin = prior["linear"]
    ok = L_T_PAPER / 10 <= lin <= L_T_PAPER * 10
    n = f", {r.n_prior_images} images" if r.n_prior_images is not None else ""
    return C.Claim(
        "the linear schedule leaves almost nothing of x_0 at t = T",
        f"L_T ≈ {L_T_PAPER:g} bits/dim (DDPM Sec. 4, CIFAR-10)",
        f"L_T = {lin:.1e} bits/dim (cosine: {prior['cosine']:.0e})",
        f"{data} {size}x{size}{n}", _yes(ok),
        "" if ok else "not within a factor of 10 of the paper's value",
        kind="check",
        test=f"L_T of the linear schedule (exact KL per image, averaged) lies within a factor 10 of the "
             f"paper's {L_T_PAPER:g} bits/dim")


RULES = [closed_form, linear_tail_is_noise, prior_negligible]


def claims(r: Record) -> list[C.Claim]:
    return C.derive(RULES, r)


def record_from_numbers(numbers: dict, run_card: dict) -> Record:
    """The record of a results file written before the typed seam (its ``numbers`` and run card).
    It stores no count of the prior's images (display only: left None)."""
    cfg = run_card.get("config", {})
    T, n_toy, n_snap = cfg.get("T"), cfg.get("n_toy"), cfg.get("n_snapshots")
    return Record(
        T=T, toy=cfg.get("toy"), n_toy=n_toy,
        n_t=len(snapshots(T, n_snap)) if T and n_snap else None,
        n_z=2 * n_toy if n_toy and str(cfg.get("toy", "")).startswith("toy2d:") else None,  # 2-D points
        image_data=cfg.get("image_data"), image_size=cfg.get("image_size"),
        moment_err=numbers.get("moment_err"), z_mean_err=numbers.get("z_mean_err"),
        z_std_err=numbers.get("z_std_err"), noise_fraction=numbers.get("noise_fraction"),
        first_noisy_t=numbers.get("first_noisy_t"), prior_bpd=numbers.get("prior_bpd"))
