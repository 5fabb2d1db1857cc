"""Noise schedules, respacing and noise-level samplers.

Everything here is float64 arithmetic on the time grid; nothing knows a network.

* ``Schedule`` holds the betas of a discrete chain and every quantity derived from them
  (alpha_bar, the posterior coefficients of DDPM Eq. 7, ...), plus ``timestep_map``: for a respaced
  chain, the index of each retained step in the original chain, so that a network trained on T
  steps is still called with its own t.
* ``linear`` / ``cosine`` build the two schedules of DDPM and Improved DDPM from one helper,
  ``from_alpha_bar``, which turns any alpha_bar(t) into betas (Improved DDPM Eq. 17).
* ``respace`` keeps a subset of steps ("50", "10,15,20", "ddim50") and recomputes betas from the
  retained alpha_bar (Improved DDPM Sec. 4).
* Samplers of t: uniform, the L_vlb importance sampler (Improved DDPM Sec. 3.3), lognormal sigma (EDM).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

SCHEDULES = ("linear", "cosine")


# --------------------------------------------------------------------------------------------
# The schedule
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Schedule:
    """A discrete diffusion chain of ``T`` steps, indexed t = 0..T-1 (the paper's t = 1..T).

    All tensors are float64 on the CPU; ``at(name, t, x)`` gathers one of them at integer steps
    ``t`` and broadcasts it against ``x`` (and moves it to ``x``'s device, keeping float64).
    """

    betas: torch.Tensor
    timestep_map: torch.Tensor  # (T,) long: original step index of each retained step
    name: str = "custom"
    derived: dict = field(init=False, repr=False)

    def __post_init__(self):
        b = torch.as_tensor(self.betas, dtype=torch.float64).clone()
        if b.ndim != 1 or len(b) == 0:
            raise ValueError("betas must be a non-empty 1-D sequence")
        if not bool(((b > 0) & (b <= 1)).all()):
            raise ValueError("every beta must lie in (0, 1]")
        object.__setattr__(self, "betas", b)
        object.__setattr__(self, "timestep_map", torch.as_tensor(self.timestep_map, dtype=torch.long))
        alphas = 1.0 - b
        alpha_bar = torch.cumprod(alphas, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        # DDPM Eq. 7: q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I)
        beta_tilde = b * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        # beta_tilde is 0 at the first step: clip its log by reusing the second value (as
        # improved-diffusion does), so that log-variance interpolation stays finite.
        log_beta_tilde = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]])) if len(b) > 1 else torch.log(b)
        d = dict(
            alphas=alphas,
            alpha_bar=alpha_bar,
            alpha_bar_prev=alpha_bar_prev,
            sqrt_alpha_bar=alpha_bar.sqrt(),
            sqrt_one_minus_alpha_bar=(1.0 - alpha_bar).sqrt(),
            sqrt_recip_alpha_bar=(1.0 / alpha_bar).sqrt(),
            sqrt_recipm1_alpha_bar=(1.0 / alpha_bar - 1.0).sqrt(),
            beta_tilde=beta_tilde,
            log_beta_tilde_clipped=log_beta_tilde,
            log_betas=torch.log(b),
            # Eq. 7: mu_tilde = coef_x0 * x_0 + coef_xt * x_t
            posterior_coef_x0=b * alpha_bar_prev.sqrt() / (1.0 - alpha_bar),
            posterior_coef_xt=(1.0 - alpha_bar_prev) * alphas.sqrt() / (1.0 - alpha_bar),
        )
        object.__setattr__(self, "derived", d)

    # ---- access ---------------------------------------------------------------------------
    @property
    def T(self) -> int:
        return len(self.betas)

    def __len__(self) -> int:
        return self.T

    def __getattr__(self, name):  # alpha_bar, beta_tilde, ... as attributes
        derived = self.__dict__.get("derived")
        if derived is not None and name in derived:
            return derived[name]
        raise AttributeError(name)

    def at(self, name: str, t: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Gather quantity ``name`` at steps ``t`` (B,), shaped (B, 1, ..., 1) like ``x``."""
        v = getattr(self, name) if name in ("betas",) else self.derived[name]
        t = torch.as_tensor(t, dtype=torch.long)
        out = v[t.cpu()]
        if x is not None:
            out = out.to(x.device).reshape(-1, *([1] * (x.ndim - 1)))
        return out

    def original_t(self, t: torch.Tensor) -> torch.Tensor:
        """Map steps of this (possibly respaced) chain to the original chain's step indices."""
        t = torch.as_tensor(t, dtype=torch.long)
        return self.timestep_map[t.cpu()].to(t.device)

    def index_of(self, t_orig: torch.Tensor) -> torch.Tensor:
        """Inverse of ``original_t``: the index of original steps in this chain (must be retained)."""
        t_orig = torch.as_tensor(t_orig, dtype=torch.long)
        idx = torch.searchsorted(self.timestep_map, t_orig.cpu())
        idx = idx.clamp(max=self.T - 1)
        if not bool((self.timestep_map[idx] == t_orig.cpu()).all()):
            raise ValueError("a step is not part of this respaced chain")
        return idx.to(t_orig.device)

    # ---- views -----------------------------------------------------------------------------
    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) at every step."""
        return self.alpha_bar / (1.0 - self.alpha_bar)

    def sigmas(self) -> torch.Tensor:
        """The variance-exploding view: x_t / sqrt(alpha_bar) = x_0 + sigma * eps."""
        return alpha_bar_to_sigma(self.alpha_bar)

    def respace(self, spacing: str | Sequence[int]) -> "Schedule":
        return respace(self, spacing)

    def __repr__(self) -> str:
        return f"Schedule({self.name}, T={self.T})"


# --------------------------------------------------------------------------------------------
# Building schedules
# --------------------------------------------------------------------------------------------
def from_alpha_bar(alpha_bar_fn: Callable[[np.ndarray], np.ndarray], T: int, max_beta: float = 0.999,
                   name: str = "custom") -> Schedule:
    """Betas from a continuous alpha_bar(s), s in [0, 1]: beta_t = 1 - abar(t+1/T) / abar(t/T).

    Improved DDPM Eq. 17, with beta clipped at ``max_beta`` to avoid singularities near s = 1.
    """
    s = np.arange(T + 1, dtype=np.float64) / T
    a = np.asarray(alpha_bar_fn(s), dtype=np.float64)
    betas = np.minimum(1.0 - a[1:] / a[:-1], max_beta)
    return Schedule(torch.from_numpy(betas), torch.arange(T), name=name)


def linear(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's linear schedule, 1e-4 to 0.02 at T = 1000, both ends scaled by 1000 / T.

    Written as its alpha_bar function (a product of linearly spaced alphas) so that both named
    schedules come out of ``from_alpha_bar``. Below T = 50 the scaled end value reaches 1 (alpha_bar
    would hit 0), so betas are clipped at 0.999 as in the cosine schedule.
    """
    _check_T(T)
    scale = 1000.0 / T
    betas = np.linspace(scale * beta_start, scale * beta_end, T, dtype=np.float64)
    abar = np.concatenate([[1.0], np.cumprod(1.0 - betas)])

    def alpha_bar_fn(s):  # exact at the grid points s = k / T
        return abar[np.rint(np.asarray(s) * T).astype(int)]

    return from_alpha_bar(alpha_bar_fn, T, max_beta=0.999, name="linear")


def cosine_alpha_bar(s: np.ndarray, offset: float = 0.008) -> np.ndarray:
    """Improved DDPM Eq. 17: f(s) / f(0), with
    f(s) = cos^2(((s + offset) / (1 + offset)) * pi / 2)."""
    f = lambda u: np.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2
    return f(np.asarray(s, dtype=np.float64)) / f(0.0)


def cosine(T: int = 1000, offset: float = 0.008) -> Schedule:
    """The cosine schedule of Improved DDPM (s = 0.008, betas clipped at 0.999)."""
    _check_T(T)
    return from_alpha_bar(lambda s: cosine_alpha_bar(s, offset), T, max_beta=0.999, name="cosine")


def named(name: str, T: int = 1000) -> Schedule:
    """``linear`` or ``cosine`` by name."""
    builders = {"linear": linear, "cosine": cosine}
    if name not in builders:
        raise ValueError(f"unknown schedule {name!r}; valid choices: {sorted(builders)}")
    return builders[name](T)


def _check_T(T):
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be a positive integer, got {T!r}")


# --------------------------------------------------------------------------------------------
# Respacing (Improved DDPM Sec. 4)
# --------------------------------------------------------------------------------------------
def space_timesteps(T: int, spacing: str | Sequence[int]) -> list[int]:
    """Which of the T steps to keep.

    ``spacing`` is one of:
      * "N": N steps, evenly strided over the whole chain (the same as "N" sections of one);
      * "a,b,c": split the chain into len(...) equal sections and keep a, b, c steps in them,
        evenly strided within each section (first and last step of the section included);
      * "ddimN": every (T // N)-th step starting at 0, the DDIM paper's stride;
      * a sequence of step indices.
    """
    if not isinstance(spacing, str):
        steps = sorted({int(s) for s in spacing})
        if not steps or steps[0] < 0 or steps[-1] >= T:
            raise ValueError(f"step indices must lie in [0, {T - 1}]")
        return steps
    spec = spacing.strip()
    if spec.startswith("ddim"):
        try:
            n = int(spec[4:])
        except ValueError:
            raise ValueError(_spacing_help(spacing)) from None
        if n < 1 or n > T:
            raise ValueError(f"cannot keep {n} of {T} steps; ask for 1 to {T}")
        stride = T // n
        steps = list(range(0, T, stride))[:n]
        return steps
    try:
        counts = [int(c) for c in spec.split(",")]
    except ValueError:
        raise ValueError(_spacing_help(spacing)) from None
    if any(c < 1 for c in counts):
        raise ValueError(_spacing_help(spacing))
    size, extra = divmod(T, len(counts))
    start, steps = 0, []
    for i, n in enumerate(counts):
        length = size + (1 if i < extra else 0)
        if n > length:
            raise ValueError(f"cannot keep {n} steps from a section of {length} (T = {T}, spacing {spacing!r})")
        stride = 1.0 if n <= 1 else (length - 1) / (n - 1)
        steps += [start + round(stride * k) for k in range(n)]
        start += length
    return sorted(set(steps))


def _spacing_help(spacing) -> str:
    return (f"unknown spacing {spacing!r}; valid forms: 'N' (e.g. '50'), section counts "
            f"'a,b,c' (e.g. '10,15,20'), 'ddimN' (e.g. 'ddim50'), or a list of step indices")


def respace(schedule: Schedule, spacing: str | Sequence[int]) -> Schedule:
    """A chain over a subset S of the steps:
    beta'_i = 1 - alpha_bar[S_i] / alpha_bar[S_{i-1}].

    The retained alpha_bar are unchanged, so a network trained on the full
    chain denoises the respaced one; ``timestep_map`` tells it which original
    t it is at.
    """
    keep = space_timesteps(schedule.T, spacing)
    abar = schedule.alpha_bar[keep]
    prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    betas = 1.0 - abar / prev
    name = f"{schedule.name}[{len(keep)}]"
    return Schedule(betas, schedule.timestep_map[keep], name=name)


# --------------------------------------------------------------------------------------------
# VP <-> VE, and the EDM grid
# --------------------------------------------------------------------------------------------
def alpha_bar_to_sigma(alpha_bar):
    """x_t = sqrt(abar) (x_0 + sigma eps) with sigma = sqrt((1 - abar) / abar)."""
    a = torch.as_tensor(alpha_bar, dtype=torch.float64)
    return ((1.0 - a) / a).sqrt()


def sigma_to_alpha_bar(sigma):
    s = torch.as_tensor(sigma, dtype=torch.float64)
    return 1.0 / (1.0 + s**2)


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
                  append_zero: bool = True) -> torch.Tensor:
    """EDM Eq. 5: sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho, descending."""
    if n < 1:
        raise ValueError("n must be at least 1")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sig, torch.zeros(1, dtype=torch.float64)]) if append_zero else sig


# --------------------------------------------------------------------------------------------
# Samplers of the noise level
# --------------------------------------------------------------------------------------------
class UniformSampler:
    """t ~ Uniform{0..T-1}, weight 1."""

    def __init__(self, T: int):
        self.T = T

    def probs(self) -> np.ndarray:
        return np.full(self.T, 1.0 / self.T)

    def sample(self, batch: int, generator: torch.Generator | None = None, device=None):
        """Returns (t, weights): E_t[w L_t] with t drawn here equals the uniform average."""
        p = torch.as_tensor(self.probs(), dtype=torch.float64)
        t = torch.multinomial(p, batch, replacement=True, generator=generator)
        w = 1.0 / (self.T * p[t])
        return t.to(device), w.to(device=device, dtype=torch.float32)

    def update(self, t, losses):  # uniform sampling learns nothing
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ImportanceSampler(UniformSampler):
    """Improved DDPM Sec. 3.3: p_t proportional to sqrt(E[L_t^2]) over the last ``history`` losses.

    Uniform until every step holds ``history`` losses, then mixed with ``uniform_prob`` of the
    uniform distribution. ``sample`` returns importance weights 1 / (T p_t), so the weighted loss
    stays an unbiased estimate of the uniform average.
    """

    def __init__(self, T: int, history: int = 10, uniform_prob: float = 0.001):
        super().__init__(T)
        self.history, self.uniform_prob = history, uniform_prob
        self.losses = np.zeros((T, history), dtype=np.float64)
        self.counts = np.zeros(T, dtype=np.int64)
        self.updates = 0  # calls of update (training steps)
        self.warm_at: int | None = None  # the update after which every step held ``history`` losses

    def warmed_up(self) -> bool:
        return bool((self.counts == self.history).all())

    def probs(self) -> np.ndarray:
        if not self.warmed_up():
            return np.full(self.T, 1.0 / self.T)
        w = np.sqrt(np.mean(self.losses**2, axis=-1))
        w = w / w.sum()
        return w * (1 - self.uniform_prob) + self.uniform_prob / self.T

    def update(self, t, losses):
        """Record per-example losses at steps t (a ring buffer of the last ``history`` per step)."""
        t = torch.as_tensor(t).detach().cpu().numpy().astype(int).ravel()
        losses = torch.as_tensor(losses).detach().cpu().double().numpy().ravel()
        for ti, li in zip(t, losses):
            if self.counts[ti] == self.history:
                self.losses[ti, :-1] = self.losses[ti, 1:]
                self.losses[ti, -1] = li
            else:
                self.losses[ti, self.counts[ti]] = li
                self.counts[ti] += 1
        self.updates += 1
        if self.warm_at is None and self.warmed_up():
            self.warm_at = self.updates

    def state_dict(self) -> dict:
        return {"losses": self.losses.tolist(), "counts": self.counts.tolist(), "updates": self.updates,
                "warm_at": self.warm_at}

    def load_state_dict(self, state: dict) -> None:
        self.losses = np.asarray(state["losses"], dtype=np.float64)
        self.counts = np.asarray(state["counts"], dtype=np.int64)
        self.updates, self.warm_at = state.get("updates", 0), state.get("warm_at")


def lognormal_sigma(batch: int, P_mean: float = -1.2, P_std: float = 1.2,
                    generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """EDM's training noise levels: ln sigma ~ N(P_mean, P_std^2)."""
    z = torch.randn(batch, generator=generator, dtype=torch.float64)
    return (P_mean + P_std * z).exp().to(device)


T_SAMPLERS = ("uniform", "importance")


def t_sampler(name: str, T: int):
    """``uniform`` or ``importance`` by name."""
    if name == "uniform":
        return UniformSampler(T)
    if name == "importance":
        return ImportanceSampler(T)
    raise ValueError(f"unknown timestep sampler {name!r}; valid choices: {list(T_SAMPLERS)}")
