"""Continuous noise levels: diffusion in sigma, as in EDM (Karras et al. 2022) and consistency models.

The data is noised as x = x_0 + sigma n, n ~ N(0, I), for sigma from ~0 to sigma_max (the
variance-exploding view; a VP chain is the same process scaled: x_VP = x / sqrt(1 + sigma^2)).

* A *denoiser* is any function ``denoise(x, sigma) -> x0_hat`` with ``sigma`` a float64 tensor of shape
  (B,): the exact one of ``oracle`` (``vp_denoiser(gm.model(sched), sched)``), a network with EDM's
  preconditioning (``Denoiser``), or a discrete VP eps-network (``vp_denoiser``).
* Preconditioning (EDM Table 1): D(x; sigma) = c_skip x + c_out F(c_in x, c_noise(sigma)), with the
  consistency-model variant (``boundary=True``) whose c_skip, c_out make D(x; sigma_min) = x exactly.
* The probability-flow ODE dx/dsigma = (x - D(x; sigma)) / sigma (EDM Eq. 3 with sigma(t) = t),
  solved by ``euler`` and ``heun`` (EDM Algorithm 1, deterministic) on a descending grid that ends
  at 0 (``schedules.karras_sigmas`` or ``discrete_sigmas`` of a DDPM chain). DDIM (eta = 0) is Euler
  on the chain's sigmas. ``stochastic_iterative`` is the consistency models' multistep sampler.

The sampler state is float64; a network is called in its own dtype (``Denoiser`` casts at the call).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.nn as nn

from .progress import tqdm
from .sampling import noise_like
from .schedules import Schedule

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x, sigma (B,)) -> x0_hat


def _sigma(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma (scalar, (1,) or (B,)) as a float64 (B,) tensor on x's device."""
    if not torch.is_tensor(sigma):  # a Python float stays float64 (torch.as_tensor would make it float32)
        sigma = torch.tensor(sigma, dtype=torch.float64)
    s = sigma.to(x.device, torch.float64)
    return s.reshape(-1).expand(x.shape[0])


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *([1] * (x.ndim - 1)))  # (B, 1, ..., 1)


# --------------------------------------------------------------------------------------------
# Preconditioning (EDM Table 1; consistency models App. C) and EDM's loss weight
# --------------------------------------------------------------------------------------------
def c_skip(sigma, sigma_data: float = 0.5):
    return sigma_data**2 / (sigma**2 + sigma_data**2)  # EDM Table 1


def c_out(sigma, sigma_data: float = 0.5):
    return sigma * sigma_data / (sigma**2 + sigma_data**2) ** 0.5  # EDM Table 1


def c_in(sigma, sigma_data: float = 0.5):
    return 1 / (sigma**2 + sigma_data**2) ** 0.5  # EDM Table 1


def c_skip_boundary(sigma, sigma_data: float = 0.5, sigma_min: float = 0.002):
    """Consistency models (Song et al. 2023, App. C): c_skip(sigma_min) = 1, so f(x, sigma_min) = x."""
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


def c_out_boundary(sigma, sigma_data: float = 0.5, sigma_min: float = 0.002):
    """Consistency models (App. C): c_out(sigma_min) = 0."""
    return (sigma - sigma_min) * sigma_data / (sigma**2 + sigma_data**2) ** 0.5


def loss_weight(sigma, sigma_data: float = 0.5):
    """EDM Table 1: lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 = 1 / c_out^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


@dataclass(frozen=True)
class LogSigma:
    """c_noise(sigma) = scale * ln(sigma + tiny): EDM uses scale 0.25 (``EDM_C_NOISE``); the consistency
    models' code uses 1000 * 0.25 with tiny = 1e-44 (``CM_C_NOISE``), the 0..1000-step range that the
    library's UNet time embedding (max period 10,000) was made for."""

    scale: float = 0.25
    tiny: float = 0.0

    def __call__(self, sigma: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.log(sigma + self.tiny)


EDM_C_NOISE = LogSigma(0.25)  # EDM Table 1
CM_C_NOISE = LogSigma(250.0, 1e-44)  # cm/karras_diffusion.py: 1000 * 0.25 * log(sigma + 1e-44)


@dataclass(frozen=True)
class Precond:
    """EDM's preconditioning (``boundary=False``) or the consistency models' (``boundary=True``).

    ``c_noise`` is any function sigma -> network time input (default ``CM_C_NOISE``, which suits the
    library's UNet as configured; EDM's own ``EDM_C_NOISE`` wants a UNet with ``time_scale`` ~1000).
    """

    sigma_data: float = 0.5
    sigma_min: float = 0.002
    boundary: bool = False
    c_noise: Callable[[torch.Tensor], torch.Tensor] = CM_C_NOISE

    def scalings(self, sigma: torch.Tensor):
        """(c_skip, c_out, c_in, c_noise) at sigma, each shaped like sigma."""
        sd = self.sigma_data
        if self.boundary:
            skip, out = c_skip_boundary(sigma, sd, self.sigma_min), c_out_boundary(sigma, sd, self.sigma_min)
        else:
            skip, out = c_skip(sigma, sd), c_out(sigma, sd)
        return skip, out, c_in(sigma, sd), self.c_noise(sigma)


class Denoiser(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x, c_noise(sigma), **cond)  (EDM Eq. 7).

    Coefficients are float64; F sees its input in the network's dtype, and D comes back in x's dtype
    (float64 for a sampler's state, the training dtype inside a loss). ``cond`` (y=..., context=...)
    goes to the network; for a sampler bind it: ``lambda x, s: D(x, s, y=y)``.
    """

    def __init__(self, net: nn.Module, precond: Precond = Precond()):
        super().__init__()
        self.net, self.precond = net, precond

    def forward(self, x: torch.Tensor, sigma, **cond) -> torch.Tensor:
        sigma = _sigma(sigma, x)
        skip, out, inp, noise = self.precond.scalings(sigma)
        skip, out, inp = (_bcast(v, x) for v in (skip, out, inp))
        dtype = next(self.net.parameters()).dtype
        F_x = self.net((inp * x).to(dtype), noise.to(torch.promote_types(dtype, torch.float32)), **cond)
        return skip.to(x.dtype) * x + out.to(x.dtype) * F_x.to(x.dtype)  # EDM Eq. 7


def edm_loss(denoise: Denoise, x0: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor | None = None,
             generator: torch.Generator | None = None, sigma_data: float = 0.5) -> torch.Tensor:
    """EDM Eq. 2 with Table 1's weight, per example: lambda(sigma) mean ||D(x0 + sigma n; sigma) - x0||^2.

    ``sigma`` (B,) e.g. from ``schedules.lognormal_sigma``. For Gaussian data N(0, sigma_data^2 I) the
    exact denoiser's expected loss is 1 at every sigma (the effective target has unit variance).
    """
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    sigma = _sigma(sigma, x0)
    d = denoise(x0 + _bcast(sigma, x0).to(x0.dtype) * noise, sigma)
    return loss_weight(sigma, sigma_data).to(d.dtype) * ((d - x0) ** 2).reshape(len(x0), -1).mean(1)


# --------------------------------------------------------------------------------------------
# The probability-flow ODE in sigma: Euler, Heun (EDM Algorithm 1 with S_churn = 0)
# --------------------------------------------------------------------------------------------
def _level(v, x: torch.Tensor):
    """A noise level (or a difference of two) as the step's arithmetic uses it: a Python float as it is
    (the samplers' float64 state), a per-example tensor (B,) broadcast over x in x's dtype."""
    return _bcast(v, x).to(x.dtype) if torch.is_tensor(v) else v


def _slope(denoise: Denoise, x: torch.Tensor, sigma, denoised_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(dx/dsigma, D(x; sigma)) of the PF-ODE at x, sigma (EDM Eq. 3)."""
    x0 = denoise(x, _sigma(sigma, x)).to(x.dtype)
    if denoised_fn is not None:
        x0 = denoised_fn(x0)
    return (x - x0) / _level(sigma, x), x0  # EDM Eq. 3: dx/dsigma = (x - D(x; sigma)) / sigma


def euler_step(denoise: Denoise, x: torch.Tensor, sigma, sigma_next, *,
               denoised_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Euler step of the PF-ODE from ``sigma`` to ``sigma_next`` (floats, or per-example (B,) float64
    tensors): (x at sigma_next, D(x; sigma)). 1 NFE."""
    d, x0 = _slope(denoise, x, sigma, denoised_fn)
    return x + _level(sigma_next - sigma, x) * d, x0  # Algorithm 1, line 6


def heun_step(denoise: Denoise, x: torch.Tensor, sigma, sigma_next, *,
              denoised_fn=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One Heun step (EDM Algorithm 1, lines 5-8): Euler, then the trapezoidal correction with the slope
    at the Euler point (sigma_next must not be 0). 2 NFE; returns (x at sigma_next, D(x; sigma))."""
    d, x0 = _slope(denoise, x, sigma, denoised_fn)
    h = _level(sigma_next - sigma, x)
    d_next, _ = _slope(denoise, x + h * d, sigma_next, denoised_fn)
    return x + h * (d + d_next) / 2, x0


def _grid(sigmas) -> list[float]:
    s = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1)
    if len(s) < 2 or not bool((s[1:] < s[:-1]).all()):
        raise ValueError("sigmas must be a descending grid of at least two levels (end it with 0 to denoise fully)")
    return s.tolist()


@torch.no_grad()
def euler_steps(denoise: Denoise, x: torch.Tensor, sigmas, *, denoised_fn=None,
                progress: bool = False) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Yield (i, x at sigmas[i + 1], x0_hat at sigmas[i]) after each step; ``x`` starts at sigmas[0]."""
    s, x = _grid(sigmas), x.double()
    for i in tqdm(range(len(s) - 1), desc="Euler", disable=not progress, leave=False):
        x, x0 = euler_step(denoise, x, s[i], s[i + 1], denoised_fn=denoised_fn)
        yield i, x, x0


@torch.no_grad()
def heun_steps(denoise: Denoise, x: torch.Tensor, sigmas, *, denoised_fn=None,
               progress: bool = False) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """EDM Algorithm 1 (deterministic): Heun steps, and an Euler step where sigma_next = 0 (line 7).

    2 NFE per step, 1 on a last step to 0: a grid of n levels plus 0 costs 2n - 1 evaluations.
    """
    s, x = _grid(sigmas), x.double()
    for i in tqdm(range(len(s) - 1), desc="Heun", disable=not progress, leave=False):
        step = heun_step if s[i + 1] != 0 else euler_step
        x, x0 = step(denoise, x, s[i], s[i + 1], denoised_fn=denoised_fn)
        yield i, x, x0


def euler(denoise: Denoise, x: torch.Tensor, sigmas, *, denoised_fn=None, progress: bool = False) -> torch.Tensor:
    """Solve the PF-ODE from x at sigmas[0] down the grid; returns x at sigmas[-1]."""
    for _, x, _ in euler_steps(denoise, x, sigmas, denoised_fn=denoised_fn, progress=progress):
        pass
    return x


def heun(denoise: Denoise, x: torch.Tensor, sigmas, *, denoised_fn=None, progress: bool = False) -> torch.Tensor:
    for _, x, _ in heun_steps(denoise, x, sigmas, denoised_fn=denoised_fn, progress=progress):
        pass
    return x


@torch.no_grad()
def ancestral(denoise: Denoise, x: torch.Tensor, sigmas, *, generator: torch.Generator | None = None,
              progress: bool = False) -> torch.Tensor:
    """DDPM's ancestral sampler in sigma form: each step draws from the forward process's posterior
    q(x_{sigma'} | x_sigma, x0_hat) = N(x0_hat + (sigma'^2 / sigma^2)(x - x0_hat), sigma'^2 (sigma^2 - sigma'^2) / sigma^2)
    (DDPM Eq. 7 in VE variables, x_sigma = x_t / sqrt(alpha_bar_t)), 1 NFE per step; ends at sigmas[-1]."""
    s, x = _grid(sigmas), x.double()
    for i in tqdm(range(len(s) - 1), desc="ancestral", disable=not progress, leave=False):
        x0 = denoise(x, _sigma(s[i], x)).double()
        r = (s[i + 1] / s[i]) ** 2
        x = x0 + r * (x - x0)
        if s[i + 1] > 0:
            x = x + math.sqrt(s[i + 1] ** 2 * (1 - r)) * noise_like(x.shape, generator, x.device)
    return x


@torch.no_grad()
def stochastic_iterative(f: Denoise, x: torch.Tensor, sigmas, *, sigma_min: float = 0.002,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1).

    x0 = f(x, sigmas[0]) with x at sigmas[0] (sigma_max z); then for each later level sigma:
    x = x0 + sqrt(sigma^2 - sigma_min^2) z, x0 = f(x, sigma). ``sigmas`` descending, no final 0.
    """
    s, x = torch.as_tensor(sigmas, dtype=torch.float64).reshape(-1).tolist(), x.double()
    x0 = f(x, _sigma(s[0], x)).double()
    for sig in s[1:]:
        x = x0 + math.sqrt(sig**2 - sigma_min**2) * noise_like(x.shape, generator, x.device)  # Algorithm 1, line 5
        x0 = f(x, _sigma(sig, x)).double()
    return x0


# --------------------------------------------------------------------------------------------
# Discrete VP chains in sigma form
# --------------------------------------------------------------------------------------------
def discrete_sigmas(schedule: Schedule) -> torch.Tensor:
    """The sigmas of a (respaced) DDPM chain, descending, with a final 0: the grid on which Euler
    equals DDIM (eta = 0). sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t)."""
    return torch.cat([schedule.sigmas().flip(0), torch.zeros(1, dtype=torch.float64)])


def vp_denoiser(model, schedule: Schedule, interpolate: bool = False) -> Denoise:
    """A discrete VP eps-model ``model(x_t, t_original) -> eps`` as a denoiser in sigma.

    x_VP = x / sqrt(1 + sigma^2) (since x = x_VP / sqrt(alpha_bar)), x0_hat = x - sigma eps.
    The model is called at the step of ``schedule`` (respaced or not; its original index) whose sigma
    is nearest in log sigma, so at the chain's own sigmas it is exact. ``interpolate=True`` passes a
    fractional original step instead, linear in log sigma between the two neighbours (for networks
    that take a float t; not for ``oracle`` models, which index a table). A learned-variance output
    (2C channels) is read as eps in its first C channels.
    """
    log_s = schedule.sigmas().log()  # ascending in t
    t_map = schedule.timestep_map.double()

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = _sigma(sigma, x)
        ls = sigma.log().cpu()
        n = len(log_s)
        hi = torch.searchsorted(log_s, ls).clamp(min(1, n - 1), n - 1)  # neighbours lo <= sigma <= hi
        lo = (hi - 1).clamp(min=0)
        w = ((ls - log_s[lo]) / (log_s[hi] - log_s[lo]).clamp_min(1e-300)).clamp(0, 1)
        if interpolate:
            t = (t_map[lo] + w * (t_map[hi] - t_map[lo])).to(x.device)
        else:
            t = torch.where(w > 0.5, schedule.timestep_map[hi], schedule.timestep_map[lo]).to(x.device)
        x_vp = x.double() / _bcast((1 + sigma**2).sqrt(), x)
        eps = model(x_vp, t)[:, : x.shape[1]].double()
        return x.double() - _bcast(sigma, x) * eps  # x0_hat = x - sigma eps
    return denoise
