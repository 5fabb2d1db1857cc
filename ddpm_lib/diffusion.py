"""The discrete-time Gaussian diffusion of DDPM and Improved DDPM.

Pieces, each a short function:

* the forward process q(x_t | x_0) (DDPM Eq. 4) and the posterior q(x_{t-1} | x_t, x_0) (Eq. 6-7);
* ``Parametrization``: what a network's output means (eps, x0, v, mu), each with its regression
  target and its conversions to and from x_0;
* ``p_mean_variance``: a network's output to the mean and variance of p(x_{t-1} | x_t), for each
  parametrization and each variance choice (fixed small, fixed large, learned,
  learned range);
* the losses, each returning one value per example: ``loss_simple`` (DDPM Eq. 14),
  ``loss_vlb`` (Eq. 5 in bits/dim) and ``loss_hybrid`` (Improved DDPM Sec. 3.1);
* ``nll_bpd``: the exact variational bound in bits/dim over the whole chain, with its per-step terms.

A *model* here is any function ``model(x_t, t) -> output`` where ``x_t`` is float64 and ``t`` holds the
*original* step indices (``schedule.original_t``): a network wrapped by ``nets.as_model``, the exact
denoiser of ``oracle``, or a guidance wrapper from ``sampling``.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import torch

from . import schedules as S

VARIANCES = ("fixed_small", "fixed_large", "learned", "learned_range")
LOSSES = ("simple", "vlb", "hybrid")

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Diffusion:
    """A schedule plus what the network's output means: ``param`` and ``var``.

    ``clip_denoised`` clips the predicted x_0 to [-1, 1] when forming the reverse mean (images);
    set it False for unbounded data such as the 2-D toys.
    """

    schedule: S.Schedule
    param: str = "eps"
    var: str = "fixed_small"
    clip_denoised: bool = True

    def __post_init__(self):
        if self.param not in PARAMETRIZATIONS:
            raise ValueError(f"unknown parametrization {self.param!r}; valid choices: {list(PARAMETRIZATIONS)}")
        if self.var not in VARIANCES:
            raise ValueError(f"unknown variance {self.var!r}; valid choices: {list(VARIANCES)}")

    @property
    def parametrization(self) -> "Parametrization":
        return PARAMETRIZATIONS[self.param]

    @property
    def T(self) -> int:
        return self.schedule.T

    @property
    def learns_variance(self) -> bool:
        return self.var in ("learned", "learned_range")

    def out_channels(self, channels: int) -> int:
        """Channels the network must output: doubled when it also predicts the variance."""
        return 2 * channels if self.learns_variance else channels

    def respace(self, spacing: int | str | Sequence[int]) -> "Diffusion":
        """The same model on a subset of the steps (Improved DDPM Sec. 4).

        ``spacing``: a number of steps n, evenly strided (n >= T is the chain itself, unchanged), or
        any form of ``schedules.space_timesteps`` ("50", "ddim50", "10,20,30", step indices).
        eps, x0 and v predictions mean the same thing on any chain (they relate x_t to x_0 through
        alpha_bar_t, which respacing keeps); a predicted mean (``mu``) or a raw log-variance
        (``learned``) belongs to one step of the chain it was trained on, so those refuse.
        """
        if isinstance(spacing, bool):
            raise TypeError("respace takes a number of steps, a spacing string or step indices, not a bool")
        if isinstance(spacing, numbers.Integral):
            if spacing >= self.T:
                return self
            spacing = str(int(spacing))
        if self.parametrization.predicts_mean or self.var == "learned":
            raise ValueError(f"a {'mu-prediction' if self.parametrization.predicts_mean else 'raw learned variance'} is tied to "
                             f"the step size it was trained on and cannot be respaced; respace eps/x0/v models "
                             f"with fixed_small, fixed_large or learned_range variance")
        return replace(self, schedule=self.schedule.respace(spacing))


def _mean_flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).mean(dim=1)


# --------------------------------------------------------------------------------------------
# Forward process and posterior
# --------------------------------------------------------------------------------------------
def q_sample(sched: S.Schedule, x0: torch.Tensor, t: torch.Tensor,
             eps: torch.Tensor) -> torch.Tensor:
    """Eq. 4: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
    in x0's dtype."""
    signal = sched.at("sqrt_alpha_bar", t, x0)
    noise = sched.at("sqrt_one_minus_alpha_bar", t, x0)
    return (signal * x0 + noise * eps).to(x0.dtype)


def q_mean_variance(sched: S.Schedule, x0: torch.Tensor, t: torch.Tensor):
    """Mean and variance of q(x_t | x_0)."""
    return sched.at("sqrt_alpha_bar", t, x0) * x0, sched.at("sqrt_one_minus_alpha_bar", t, x0) ** 2


def q_posterior(sched: S.Schedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
    """Eq. 6-7: mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0)."""
    mean = sched.at("posterior_coef_x0", t, x_t) * x0 + sched.at("posterior_coef_xt", t, x_t) * x_t
    var = sched.at("beta_tilde", t, x_t)
    logvar = sched.at("log_beta_tilde_clipped", t, x_t)
    return mean, var.expand_as(mean), logvar.expand_as(mean)


# --------------------------------------------------------------------------------------------
# Conversions between parametrizations (all linear in x_t and the prediction)
# --------------------------------------------------------------------------------------------
def x0_from_eps(sched, x_t, t, eps):
    return sched.at("sqrt_recip_alpha_bar", t, x_t) * x_t - sched.at("sqrt_recipm1_alpha_bar", t, x_t) * eps


def eps_from_x0(sched, x_t, t, x0):
    return (sched.at("sqrt_recip_alpha_bar", t, x_t) * x_t - x0) / sched.at("sqrt_recipm1_alpha_bar", t, x_t)


def x0_from_v(sched, x_t, t, v):
    """v = sqrt(abar) eps - sqrt(1 - abar) x_0  =>  x_0 = sqrt(abar) x_t - sqrt(1 - abar) v."""
    return sched.at("sqrt_alpha_bar", t, x_t) * x_t - sched.at("sqrt_one_minus_alpha_bar", t, x_t) * v


def v_from_x0(sched, x_t, t, x0):
    eps = eps_from_x0(sched, x_t, t, x0)
    return sched.at("sqrt_alpha_bar", t, x_t) * eps - sched.at("sqrt_one_minus_alpha_bar", t, x_t) * x0


def x0_from_mu(sched, x_t, t, mu):
    """Invert Eq. 7 for x_0 (coef_x0 > 0 at every step)."""
    return (mu - sched.at("posterior_coef_xt", t, x_t) * x_t) / sched.at("posterior_coef_x0", t, x_t)


@dataclass(frozen=True)
class Parametrization:
    """What a network's output (its mean channels) means: ``target`` is what it regresses on under
    L_simple, given the true x_0 and eps; ``to_x0`` reads the x_0 it predicts; ``from_x0`` is the
    output that would predict a given x_0 (guidance edits x_0, then writes it back). A mean
    prediction (mu) is itself the reverse mean, so ``p_mean_variance`` keeps it unless x_0 is
    edited."""

    name: str
    target: Callable  # (sched, x0, x_t, t, eps) -> output
    to_x0: Callable  # (sched, x_t, t, output) -> x0
    from_x0: Callable  # (sched, x_t, t, x0) -> output
    predicts_mean: bool = False


def _v_target(sched, x0, x_t, t, eps):
    return sched.at("sqrt_alpha_bar", t, x0) * eps - sched.at("sqrt_one_minus_alpha_bar", t, x0) * x0


def _posterior_mean(sched, x_t, t, x0):
    return q_posterior(sched, x0, x_t, t)[0]


PARAMETRIZATIONS = {
    "eps": Parametrization("eps", lambda s, x0, x_t, t, eps: eps, x0_from_eps, eps_from_x0),
    "x0": Parametrization("x0", lambda s, x0, x_t, t, eps: x0, lambda s, x_t, t, o: o,
                          lambda s, x_t, t, x0: x0),
    "v": Parametrization("v", _v_target, x0_from_v, v_from_x0),
    "mu": Parametrization("mu", lambda s, x0, x_t, t, eps: _posterior_mean(s, x_t, t, x0), x0_from_mu,
                          _posterior_mean, predicts_mean=True),
}


def target(diff: Diffusion, x0, x_t, t, eps):
    """What the network regresses on under L_simple for the diffusion's parametrization."""
    return diff.parametrization.target(diff.schedule, x0, x_t, t, eps)


def output_from_x0(diff: Diffusion, x_t, t, x0):
    """The network output (mean channels) that would predict ``x0``: used by guidance wrappers."""
    return diff.parametrization.from_x0(diff.schedule, x_t, t, x0)


def split_output(diff: Diffusion, out: torch.Tensor):
    """(mean part, variance part or None): a learned variance rides in the second half of dim 1."""
    if diff.learns_variance:
        if out.shape[1] % 2:
            raise ValueError(f"a learned variance needs an even channel count, got {out.shape[1]}")
        return out.chunk(2, dim=1)
    return out, None


# --------------------------------------------------------------------------------------------
# The reverse process p(x_{t-1} | x_t)
# --------------------------------------------------------------------------------------------
def model_variance(diff: Diffusion, x_t, t, var_out):
    """(variance, log-variance) of p(x_{t-1} | x_t) for the diffusion's
    variance choice."""
    sched = diff.schedule
    if diff.var == "fixed_small":  # sigma^2 = beta_tilde (DDPM Sec. 3.2)
        logvar = sched.at("log_beta_tilde_clipped", t, x_t).expand_as(x_t)
    elif diff.var == "fixed_large":
        # sigma^2 = beta, with beta_tilde at the first step
        large = (torch.cat([sched.beta_tilde[1:2], sched.betas[1:]])
                 if sched.T > 1 else sched.betas)
        logvar = torch.log(large)[t.cpu()].to(x_t.device)
        logvar = logvar.reshape(-1, *([1] * (x_t.ndim - 1))).expand_as(x_t)
    elif diff.var == "learned":  # the network outputs log sigma^2
        logvar = var_out.double()
    else:
        # learned_range, Improved DDPM Eq. 15: interpolate log beta and
        # log beta_tilde
        frac = (var_out.double() + 1) / 2
        logvar = (frac * sched.at("log_betas", t, x_t)
                  + (1 - frac) * sched.at("log_beta_tilde_clipped", t, x_t))
    return logvar.exp(), logvar


def p_mean_variance(diff: Diffusion, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                    clip_denoised: bool | None = None, denoised_fn=None) -> dict:
    """Model output -> mean, variance, log-variance, predicted x_0 and eps of p(x_{t-1} | x_t).

    ``t`` indexes ``diff.schedule`` (for a respaced chain, the respaced index). ``denoised_fn(x0)``
    edits the predicted x_0 before the clip (inpainting by replacing x_0 in the known region, a custom
    clamp); the mean and eps are then recomputed from the edited x_0 (guided-diffusion's
    ``process_xstart``).
    """
    sched, clip = diff.schedule, diff.clip_denoised if clip_denoised is None else clip_denoised
    x_t = x_t.double()
    mean_out, var_out = split_output(diff, out)
    mean_out = mean_out.double()
    var, logvar = model_variance(diff, x_t, t, var_out)
    param = diff.parametrization
    x0 = param.to_x0(sched, x_t, t, mean_out)
    if denoised_fn is not None:
        x0 = denoised_fn(x0).double()
    x0 = x0.clamp(-1, 1) if clip else x0
    if param.predicts_mean and denoised_fn is None:
        mean = mean_out  # a mean prediction is the reverse mean; only an edited x_0 replaces it
    else:
        mean = q_posterior(sched, x0, x_t, t)[0]
    edited = clip or denoised_fn is not None
    eps = mean_out if (param.name == "eps" and not edited) else eps_from_x0(sched, x_t, t, x0)
    return dict(mean=mean, var=var, logvar=logvar, x0=x0, eps=eps)


def call_model(model: Model, diff: Diffusion, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Call ``model`` at steps ``t`` of ``diff.schedule`` with the original step indices."""
    return model(x_t, diff.schedule.original_t(t))


# --------------------------------------------------------------------------------------------
# KL terms and the discretised decoder (Improved DDPM / guided-diffusion conventions)
# --------------------------------------------------------------------------------------------
def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)), elementwise, in nats."""
    return 0.5 * (-1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2)
                  + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def _std_normal_cdf(x):
    return 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
    """log p(x) for 8-bit data in [-1, 1] under a Gaussian integrated over each bin of width 2/255.

    The edge bins extend to -inf and +inf (DDPM Eq. 13).
    """
    centered = x - mean
    inv_std = torch.exp(-log_scale)
    cdf_plus = _std_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = _std_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(x < -0.999, log_cdf_plus,
                       torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))))


def vb_terms(diff: Diffusion, out, x0, x_t, t,
             clip_denoised: bool = False) -> torch.Tensor:
    """L_{t-1} = KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for t > 0 and the
    decoder NLL -log p(x_0|x_1) at t = 0, per example, in bits per dimension
    (DDPM Eq. 5).

    ``clip_denoised``: the reverse process whose bound this is. False (the
    training losses, as in improved-diffusion's ``training_losses``) scores
    the unclipped mean; True scores the process the samplers run, with the
    predicted x_0 clipped to [-1, 1] before the posterior mean is formed (as
    improved-diffusion's ``calc_bpd_loop`` does by default, where the paper's
    NLLs come from)."""
    x0 = x0.double()
    true_mean, _, true_logvar = q_posterior(diff.schedule, x0, x_t.double(), t)
    p = p_mean_variance(diff, out, x_t, t, clip_denoised=clip_denoised)
    kl = _mean_flat(normal_kl(true_mean, true_logvar, p["mean"], p["logvar"]))
    ll = discretized_gaussian_log_likelihood(x0, p["mean"], 0.5 * p["logvar"])
    ln2 = math.log(2.0)  # nats per bit
    return torch.where(t == 0, -_mean_flat(ll) / ln2, kl / ln2)


def prior_bpd(sched: S.Schedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example in bits/dim; no parameters, about 0 for a good schedule."""
    t = torch.full((x0.shape[0],), sched.T - 1, dtype=torch.long, device=x0.device)
    mean, var = q_mean_variance(sched, x0.double(), t)
    kl = normal_kl(mean, torch.log(var).expand_as(mean), torch.zeros_like(mean), torch.zeros_like(mean))
    return _mean_flat(kl) / math.log(2.0)


# --------------------------------------------------------------------------------------------
# Training losses: one value per example; t indexes diff.schedule
# --------------------------------------------------------------------------------------------
def _noisy(diff, x0, t, eps, generator):
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype) if eps is None else eps
    return eps, q_sample(diff.schedule, x0, t, eps)


def loss_simple(model: Model, diff: Diffusion, x0, t, eps=None,
                generator=None) -> torch.Tensor:
    """DDPM Eq. 14: ||target - prediction||^2 averaged over dimensions
    (target by parametrization)."""
    eps, x_t = _noisy(diff, x0, t, eps, generator)
    mean_out, _ = split_output(diff, call_model(model, diff, x_t, t))
    tgt = target(diff, x0, x_t, t, eps).to(mean_out.dtype)
    return _mean_flat((tgt - mean_out) ** 2)


def loss_vlb(model: Model, diff: Diffusion, x0, t, eps=None, generator=None) -> torch.Tensor:
    """The true bound: T * L_t in bits/dim, so that E_t[loss] = sum_t L_t (L_T excluded: no parameters)."""
    eps, x_t = _noisy(diff, x0, t, eps, generator)
    out = call_model(model, diff, x_t, t)
    return diff.T * vb_terms(diff, out, x0, x_t, t)


def loss_hybrid(model: Model, diff: Diffusion, x0, t, eps=None,
                generator=None, lam: float = 0.001) -> torch.Tensor:
    """Improved DDPM Eq. 16: L_simple + lam * L_vlb, the bound seeing the
    mean through a stop-gradient.

    The vlb term only trains the variance (Sec. 3.1). As in improved-diffusion,
    L_vlb is T * L_t, so with T = 1000 and lam = 0.001 each step's KL term
    enters with weight 1.
    """
    eps, x_t = _noisy(diff, x0, t, eps, generator)
    out = call_model(model, diff, x_t, t)
    mean_out, var_out = split_output(diff, out)
    tgt = target(diff, x0, x_t, t, eps).to(mean_out.dtype)
    simple = _mean_flat((tgt - mean_out) ** 2)
    if not diff.learns_variance:
        return simple
    frozen = torch.cat([mean_out.detach(), var_out], dim=1)
    vlb_t = vb_terms(diff, frozen, x0, x_t, t).to(simple.dtype)
    return simple + lam * diff.T * vlb_t


LOSS_FNS = {"simple": loss_simple, "vlb": loss_vlb, "hybrid": loss_hybrid}


def get_loss(name: str):
    if name not in LOSS_FNS:
        raise ValueError(f"unknown loss {name!r}; valid choices: {list(LOSSES)}")
    return LOSS_FNS[name]


# --------------------------------------------------------------------------------------------
# Exact negative log-likelihood over the whole chain
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def nll_bpd(model: Model, diff, x0: torch.Tensor, generator: torch.Generator | None = None,
            progress: bool = False, n_steps: int | None = None, clip_denoised: bool | dict = True):
    """The variational bound L = L_T + sum_{t>1} L_{t-1} + L_0 per example, in bits/dim (DDPM Eq. 5).

    One model call per evaluated step, fresh noise at every step. ``diff`` is a Diffusion, or a dict
    name -> Diffusion sharing schedule and parametrization (e.g. fixed_small vs fixed_large): every
    variant is scored from the same model outputs and a dict of results comes back.

    ``n_steps=None``: exact, all T steps. ``n_steps=K``: an unbiased stratified estimate: the decoder
    term L_0 and the last term L_{T-1} exactly, and one random step from each of at most K strata of
    1..T-2, weighted by its stratum's size (``weights``). The strata grow geometrically with t,
    because the terms fall steeply over the first steps and are flat later (Improved DDPM Fig. 2), so
    the first steps are evaluated (nearly) exactly and the estimate's variance stays small. The last
    step is kept apart because it can be a spike: where beta_T is clipped (cosine, 0.999) an eps
    model's mean at t = T is 1/sqrt(alpha_T) ~ 32 times its eps error, and a random draw from the top
    stratum would almost always miss that term (unbiased, but with a heavy tail).

    ``clip_denoised=True`` (the default, as the Improved DDPM and ADM evaluation code): the bound of
    the reverse process with the predicted x_0 clipped to [-1, 1], the one the samplers run; False:
    of the unclipped process (what the training loss sees). See ``vb_terms``. With a dict of
    variants it may be a dict name -> bool too (the same Diffusion twice, clipped and unclipped,
    both from one set of model calls).

    Each result holds ``total`` (B,), ``prior`` (B,), ``terms`` (B, T) (zero where not evaluated),
    ``weights`` (T,), ``x0_mse`` (B, T): the squared error of the (clipped) predicted x_0 from x_t, for
    rate-distortion plots, and ``clip_denoised``.
    """
    from .progress import tqdm

    diffs = diff if isinstance(diff, dict) else {"_": diff}
    clip = clip_denoised if isinstance(clip_denoised, dict) else dict.fromkeys(diffs, clip_denoised)
    if set(clip) != set(diffs):
        raise ValueError(f"clip_denoised names {sorted(clip)}, the variants are {sorted(diffs)}")
    first = next(iter(diffs.values()))
    B, T = x0.shape[0], first.T
    steps, weights = _bound_steps(T, n_steps, generator)
    res = {k: dict(terms=torch.zeros(B, T, dtype=torch.float64, device=x0.device),
                   x0_mse=torch.zeros(B, T, dtype=torch.float64, device=x0.device)) for k in diffs}
    for i in tqdm(steps, desc="NLL", disable=not progress, leave=False):
        t = torch.full((B,), i, dtype=torch.long, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = q_sample(first.schedule, x0, t, eps)
        out = call_model(model, first, x_t.double(), t)
        for k, d in diffs.items():
            res[k]["terms"][:, i] = vb_terms(d, out, x0, x_t, t, clip_denoised=clip[k])
            pred = p_mean_variance(d, out, x_t, t, clip_denoised=True)["x0"]
            res[k]["x0_mse"][:, i] = _mean_flat((pred - x0.double()) ** 2)
    prior = prior_bpd(first.schedule, x0)
    for k, r in res.items():
        r.update(prior=prior, weights=weights, total=prior + (r["terms"] * weights.to(x0.device)).sum(dim=1),
                 clip_denoised=clip[k])
    return res if isinstance(diff, dict) else res["_"]


def _bound_steps(T: int, n_steps: int | None, generator) -> tuple[list[int], torch.Tensor]:
    """Steps to evaluate (descending) and their weights: all with weight 1, or stratified."""
    if n_steps is None or n_steps >= T - 1:
        return list(range(T - 1, -1, -1)), torch.ones(T, dtype=torch.float64)
    if n_steps < 1:
        raise ValueError("n_steps must be None (exact) or at least 1")
    edges = torch.unique(torch.logspace(0, math.log10(T - 1), n_steps + 1, dtype=torch.float64).round().long())
    weights = torch.zeros(T, dtype=torch.float64)
    weights[0] = weights[T - 1] = 1.0
    steps = [0, T - 1]
    for lo, hi in zip(edges[:-1].tolist(), edges[1:].tolist()):
        g = None if generator is None else _cpu(generator)
        pick = lo + int(torch.randint(0, hi - lo, (1,), generator=g).item())
        steps.append(pick)
        weights[pick] = hi - lo
    return sorted(steps, reverse=True), weights


def _cpu(generator: torch.Generator) -> torch.Generator:
    """A CPU generator for index draws (seeded from ``generator`` if that one lives on a GPU)."""
    if generator.device.type == "cpu":
        return generator
    return torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator,
                                                           device=generator.device).item()))


def rate_distortion(result: dict) -> dict:
    """DDPM Fig. 5 from an ``nll_bpd`` result: progressive lossy compression along the reverse chain.

    The sender transmits x_T (L_T bits/dim), then each latent given the one above it; ``terms[:, i]``
    (i >= 1) is the cost of the latent at step i - 1 given the one at step i. Once the receiver holds
    the latent at step j it has paid ``rate[j]`` = L_T + sum_{i > j} terms[i] bits/dim, and its best
    guess of x_0 is the predicted x_0, whose RMSE on the [0, 255] scale is ``distortion[j]``.
    Both are averaged over the batch; ``lossless`` = rate[0] + terms[0] is the full bound. The rates
    are those of the process ``nll_bpd`` scored (``clip_denoised``, carried through to the result).
    """
    terms = result["terms"].mean(0)  # (T,)
    prior = result["prior"].mean()
    sent_after = torch.flip(torch.cumsum(torch.flip(terms, [0]), 0), [0]) - terms  # sum_{i > j}
    rate = prior + sent_after
    distortion = result["x0_mse"].mean(0).sqrt() * 127.5
    return dict(rate=rate, distortion=distortion, lossless=rate[0] + terms[0],
                clip_denoised=result.get("clip_denoised", True))
