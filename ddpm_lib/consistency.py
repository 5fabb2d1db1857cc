"""Consistency models: Song et al. 2023 (CD, CT), iCT (Song & Dhariwal 2024), sCM (Lu & Song 2025).

A consistency function f(x_sigma, sigma) maps every point of a probability-flow ODE trajectory to the
trajectory's origin, so one evaluation generates. In EDM's sigma form (``karras``) it is parametrised
so that f(x, sigma_min) = x holds exactly: f = c_skip(sigma) x + c_out(sigma) F(c_in x, c_noise), with
the boundary scalings ``karras.Precond(boundary=True)``; ``karras.Denoiser`` with that precond is f.

* ``ConsistencyObjective``: the discrete-time losses. On a grid sigma_min = s_1 < ... < s_N = sigma_max
  (EDM's rho-spacing, ``grid``) an index n and one noise z are drawn; x_{n+1} = x + s_{n+1} z; x_n is
  one step of a teacher's ODE solver from x_{n+1} (**CD**, Euler or Heun) or x + s_n z (**CT**: the
  same z, an unbiased estimate of the teacher's direction as N grows); the loss is
  lambda(s_n) d(f_theta(x_{n+1}, s_{n+1}), f_theta^-(x_n, s_n)) with theta^- a target network
  (``objectives.TargetNetwork``: an EMA with rate mu(k), or iCT's plain stop-gradient, mu = 0). Both
  passes share the dropout masks (the RNG state is replayed). Schedules of N and mu over training
  steps: ``cm_adaptive`` (CM's CT), ``ict_doubling`` (iCT); index distributions uniform or iCT's
  lognormal (``lognormal_index_probs``); weights 1 or iCT's 1 / (s_{n+1} - s_n); distances l2, l1 or
  iCT's pseudo-Huber (``distance``).
* ``TrigFlow`` and ``SCMObjective``: sCM's continuous-time training. x_t = cos t x_0 + sin t z with
  z ~ N(0, sigma_d^2 I), t in [0, pi/2]; f(x_t, t) = cos t x_t - sigma_d sin t F(x_t / sigma_d,
  c_noise(t)). The loss's gradient is that of E ||f_theta - f_theta^- ||^2 as the grid spacing goes to 0,
  which needs df^-/dt along the trajectory: a forward-mode derivative (``torch.func.jvp``) of F. With
  tangent normalisation g / (||g|| + c) and a warm-up of the second term (r: 0 -> 1).
  With a teacher's velocity instead of the one-sample estimate it is sCD. ``TrigFlowObjective`` trains a
  TrigFlow diffusion model (the teacher); ``SigmaForm`` shows a TrigFlow model in EDM's sigma form, so the
  same weights serve EDM's samplers, CD's teacher step and the discrete losses.
* ``sample``: one or more steps (``karras.stochastic_iterative``) for EDM-form models;
  ``TrigFlow.sample`` for TrigFlow models.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

from . import karras as K
from .nets import unwrap
from .objectives import TargetNetwork, TargetObjective
from .schedules import karras_sigmas

DISTANCES = ("l2", "l1", "pseudo_huber")
METRICS = (*DISTANCES, "feature")  # "feature": l2 between a frozen network's features (CM's LPIPS, in shape)
KINDS = ("cd", "ct")
SOLVERS = ("euler", "heun")
INDEX = ("uniform", "lognormal")
WEIGHTS = ("uniform", "ict")


def _check(name: str, value: str, valid) -> None:
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {list(valid)}")


# --------------------------------------------------------------------------------------------
# Distances, grids and schedules
# --------------------------------------------------------------------------------------------
def huber_c(dim: int) -> float:
    """iCT's pseudo-Huber constant for data of ``dim`` numbers: 0.00054 sqrt(d) (0.03 for CIFAR-10)."""
    return 0.00054 * math.sqrt(dim)


def distance(name: str, a: torch.Tensor, b: torch.Tensor, c: float | None = None) -> torch.Tensor:
    """Per example (B,): ``l2`` mean squared error, ``l1`` mean absolute error, ``pseudo_huber``
    sqrt(||a - b||^2 + c^2) - c (iCT; ``c`` default ``huber_c(d)``)."""
    _check("distance", name, DISTANCES)
    diff = (a - b).reshape(len(a), -1).float()
    if name == "l2":
        return diff.pow(2).mean(1)
    if name == "l1":
        return diff.abs().mean(1)
    c = huber_c(diff.shape[1]) if c is None else c
    return (diff.pow(2).sum(1) + c * c).sqrt() - c


def grid(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The N discretisation points, ascending, float64: s_1 = sigma_min ... s_N = sigma_max (EDM's rho
    spacing, as ``schedules.karras_sigmas`` reversed)."""
    if n < 2:
        raise ValueError(f"a consistency grid needs at least 2 points, got N = {n}")
    return karras_sigmas(n, sigma_min, sigma_max, rho, append_zero=False).flip(0)


def cm_adaptive(step: int, total: int, s0: int = 2, s1: int = 150, mu0: float = 0.9) -> tuple[int, float]:
    """CM's schedules for CT (Song et al. 2023, App. C): N(k) = ceil(sqrt(k / K ((s1 + 1)^2 - s0^2) + s0^2)
    - 1) + 1 grid points and target rate mu(k) = exp(s0 ln(mu0) / (N(k) - 1)): few coarse steps and a fast
    target early, many fine steps and a slow target late."""
    k = min(max(step, 0), total)
    scales = max(math.ceil(math.sqrt(k / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1), 1)
    return scales + 1, math.exp(s0 * math.log(mu0) / scales)


CM_CT_STEPS = 800_000  # CM's CIFAR-10 CT run (cifar10_ve_ct_adaptive: 800k iterations, batch 512)


def rescaled_mu(mu: float, steps: int, paper_steps: int = CM_CT_STEPS) -> float:
    """An EMA rate tuned for a run of ``paper_steps`` carried to a run of ``steps``: the same decay per
    fraction of the run, mu ** (paper_steps / steps). The target's time constant 1 / (1 - mu) is in
    steps, so a schedule made for 800k iterations and run for 800 keeps a target that lags for most
    of the run; rescaled, it lags as long, relative to the run, as in the paper."""
    if steps < 1 or paper_steps < 1:
        raise ValueError(f"steps and paper_steps must be >= 1, got {steps} and {paper_steps}")
    return float(mu) ** (paper_steps / steps)


def ict_doubling(step: int, total: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's curriculum: N(k) = min(s0 2^floor(k / K'), s1) + 1 with K' = floor(K / (log2 floor(s1 / s0) + 1)),
    the number of steps doubling every K' iterations. iCT's K' does not floor the log2: with
    s1 / s0 = 15, K' = floor(K / 4.91), so N reaches s1 + 1 = 151 within K steps."""
    stages = math.log2(math.floor(s1 / s0)) + 1
    k_prime = max(math.floor(total / stages), 1)
    return min(s0 * 2 ** (max(step, 0) // k_prime), s1) + 1


def lognormal_index_probs(sigmas: torch.Tensor, P_mean: float = -1.1, P_std: float = 2.0) -> torch.Tensor:
    """iCT's index distribution over n = 0 .. N-2 (pairs (s_n, s_{n+1}) of the ascending grid):
    p(n) proportional to erf((ln s_{n+1} - P_mean) / (sqrt 2 P_std)) - erf((ln s_n - P_mean) / (sqrt 2 P_std)),
    the lognormal mass between the two levels."""
    e = torch.erf((sigmas.double().log() - P_mean) / (math.sqrt(2) * P_std))
    p = (e[1:] - e[:-1]).clamp_min(0)
    return p / p.sum()


# --------------------------------------------------------------------------------------------
# Discrete-time consistency distillation and training
# --------------------------------------------------------------------------------------------
def _replay(state, fn):
    """Run ``fn`` with the global RNG set to ``state`` (the online pass's), then restore the RNG: the
    target pass then draws the same dropout masks (CM's code saves and restores the RNG state)."""
    cpu, cuda = state
    with torch.random.fork_rng(devices=[cuda[0]] if cuda is not None else []):
        torch.random.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda[1], cuda[0])
        return fn()


def _rng_state(device: torch.device):
    cuda = (device.index or 0, torch.cuda.get_rng_state(device.index or 0)) if device.type == "cuda" else None
    return torch.random.get_rng_state(), cuda


class ConsistencyObjective(TargetObjective):
    """The discrete-time consistency loss (CD or CT, with iCT's options) for ``train``: the trained
    module is f itself (``karras.Denoiser(net, karras.Precond(boundary=True))``).

    ``steps``: N, an int or a function of the training step (``cm_adaptive``, ``ict_doubling``);
    ``mu``: the target network's rate, a float (0: iCT's stop-gradient) or a function of the step;
    ``teacher``: a denoiser ``(x, sigma) -> x0_hat`` for ``kind="cd"`` (``teacher_key`` names it in
    the cache key); ``solver`` its ODE step; ``index`` and ``weighting`` as iCT or CM; ``metric="feature"``
    compares ``feature(x)`` (a frozen, differentiable map to (B, D) features; ``feature_key`` names it),
    LPIPS's role in CM.
    """

    def __init__(self, kind: str = "ct", steps: int | Callable[[int], int] = 18,
                 mu: float | Callable[[int], float] = 0.95, teacher: K.Denoise | None = None, teacher_key: str = "",
                 solver: str = "heun", metric: str = "l2", index: str = "uniform", weighting: str = "uniform",
                 sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0, P_mean: float = -1.1,
                 P_std: float = 2.0, huber: float | None = None, name: str = "",
                 feature: Callable[[torch.Tensor], torch.Tensor] | None = None, feature_key: str = ""):
        for label, value, valid in (("kind", kind, KINDS), ("solver", solver, SOLVERS), ("distance", metric, METRICS),
                                    ("index", index, INDEX), ("weighting", weighting, WEIGHTS)):
            _check(label, value, valid)
        if kind == "cd" and teacher is None:
            raise ValueError("consistency distillation (kind='cd') needs a teacher denoiser")
        if metric == "feature" and feature is None:
            raise ValueError("metric='feature' needs a feature network (feature=...)")
        self.feature, self.feature_key = feature, feature_key
        self.kind, self.steps, self.teacher, self.teacher_key, self.solver = kind, steps, teacher, teacher_key, solver
        self.metric, self.index, self.weighting, self.huber = metric, index, weighting, huber
        self.sigma_min, self.sigma_max, self.rho, self.P_mean, self.P_std = sigma_min, sigma_max, rho, P_mean, P_std
        self.target = TargetNetwork(mu)
        self.name = name  # names callable schedules in the cache key

    def config(self) -> dict:
        sched = lambda v: v if not callable(v) else getattr(v, "__name__", "schedule")  # noqa: E731
        return {"objective": "consistency", "kind": self.kind, "steps": sched(self.steps), "mu": sched(self.target.mu),
                "teacher": self.teacher_key if self.kind == "cd" else None, "solver": self.solver if self.kind == "cd" else None,
                "metric": self.metric if self.metric != "feature" else f"feature:{self.feature_key}",
                "huber": self.huber, "index": self.index, "weighting": self.weighting,
                "sigma": [self.sigma_min, self.sigma_max, self.rho], "lognormal": [self.P_mean, self.P_std], "name": self.name}

    def n_steps(self, step: int) -> int:
        return int(self.steps(step)) if callable(self.steps) else int(self.steps)

    def pairs(self, step: int, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(s_n, s_{n+1}) per example for uniform draws ``u`` in [0, 1), at training step ``step``."""
        sig = grid(self.n_steps(step), self.sigma_min, self.sigma_max, self.rho)
        if self.index == "uniform":
            n = (u.double().cpu() * (len(sig) - 1)).long().clamp(max=len(sig) - 2)
        else:
            cdf = lognormal_index_probs(sig, self.P_mean, self.P_std).cumsum(0)
            n = torch.searchsorted(cdf, u.double().cpu()).clamp(max=len(sig) - 2)
        return sig[n], sig[n + 1]

    @torch.no_grad()
    def teacher_step(self, x: torch.Tensor, s_hi: torch.Tensor,
                     s_lo: torch.Tensor) -> torch.Tensor:
        """One Euler or Heun step of the teacher's PF-ODE
        dx/dsigma = (x - D(x; sigma)) / sigma, from s_hi to s_lo (per
        example)."""
        step = K.euler_step if self.solver == "euler" else K.heun_step
        return step(self.teacher, x, s_hi, s_lo)[0]

    def __call__(self, net, batch):
        x0 = batch.x
        s_lo, s_hi = self.pairs(batch.step, batch.rand())
        s_lo, s_hi = s_lo.to(x0.device), s_hi.to(x0.device)
        z = batch.randn(*x0.shape[1:], dtype=x0.dtype)
        x_hi = x0 + K._bcast(s_hi, x0).to(x0.dtype) * z
        x_lo = (self.teacher_step(x_hi, s_hi, s_lo) if self.kind == "cd"
                else x0 + K._bcast(s_lo, x0).to(x0.dtype) * z)
        state = _rng_state(x0.device)
        online = net(x_hi, s_hi)
        with torch.no_grad():
            target = _replay(state, lambda: self.target.net(x_lo, s_lo))
        if self.metric == "feature":
            d = ((self.feature(online) - self.feature(target))
                 .reshape(len(online), -1).float().pow(2).mean(1))
        else:
            d = distance(self.metric, online, target, self.huber)
        w = (1 / (s_hi - s_lo) if self.weighting == "ict"
             else torch.ones_like(s_hi))
        return ((w.to(d.dtype) * d).mean(),
                {"N": float(self.n_steps(batch.step))})


def consistency_function(net: nn.Module, sigma_data: float = 0.5, sigma_min: float = 0.002,
                         c_noise=K.CM_C_NOISE) -> K.Denoiser:
    """f = c_skip x + c_out F(c_in x, c_noise(sigma)) with f(x, sigma_min) = x (CM App. C)."""
    return K.Denoiser(net, K.Precond(sigma_data=sigma_data, sigma_min=sigma_min, boundary=True, c_noise=c_noise))


@torch.no_grad()
def sample(f: K.Denoise, shape, sigmas=(80.0,), sigma_min: float = 0.002, generator: torch.Generator | None = None,
           device=None) -> torch.Tensor:
    """One step from sigma_max = sigmas[0] (``sigmas=(80.0,)``), or multistep: re-noise to each later sigma
    and map back (CM Algorithm 1)."""
    from .sampling import noise_like

    x = noise_like(tuple(shape), generator, device) * float(sigmas[0])
    return K.stochastic_iterative(f, x, sigmas, sigma_min=sigma_min, generator=generator)


# --------------------------------------------------------------------------------------------
# sCM: TrigFlow and continuous-time consistency training
# --------------------------------------------------------------------------------------------
class TrigFlow(nn.Module):
    """TrigFlow (sCM Sec. 2): x_t = cos t x_0 + sin t z, z ~ N(0, sigma_d^2 I), t in [0, pi/2]. The module
    holds F and gives ``F(x_t, t)`` = F(x_t / sigma_d, c_noise(t)) with c_noise(t) = ``time_scale`` t
    (sCM: c_noise(t) = t; EDM's log(sigma_d tan t) makes sin t d c_noise / dt blow up at pi/2),
    ``denoise`` x_0 = cos t x_t - sigma_d sin t F (a diffusion model's x_0 prediction, and the
    consistency function of a CM)."""

    def __init__(self, net: nn.Module, sigma_d: float = 0.5, time_scale: float = 1.0):
        super().__init__()
        self.net, self.sigma_d, self.time_scale = net, sigma_d, time_scale

    @property
    def cfg(self):
        return {"net": getattr(self.net, "cfg", None), "sigma_d": self.sigma_d, "time_scale": self.time_scale}

    def F(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net_call(x_t / self.sigma_d, t)

    def net_call(self, x_scaled: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """F at an already scaled input (what the JVP differentiates)."""
        return self.net(x_scaled, t * self.time_scale)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, output: str = "x0") -> torch.Tensor:
        """f(x_t, t) = cos t x_t - sigma_d sin t F (``output="x0"``), or F itself (``output="F"``, for the
        losses: through the module's own call, so that a DDP wrapper sees the forward)."""
        if output == "F":
            return self.F(x_t, t.to(x_t.dtype))
        if output != "x0":
            raise ValueError(f"unknown output {output!r}; valid choices: ['x0', 'F']")
        tt = K._bcast(t, x_t).to(x_t.dtype)
        return torch.cos(tt) * x_t - self.sigma_d * torch.sin(tt) * self.F(x_t, t.to(x_t.dtype))

    T_MID = 1.1  # sCM's intermediate time of its 2-step sampler

    def steps(self, nfe: int, t_mid: float = T_MID) -> tuple[float, ...]:
        """sCM's sampling times: t_max = arctan(sigma_max / sigma_d) with sigma_max = 80, then (2 steps)
        ``t_mid``, i.e. sigma = sigma_d tan t_mid in EDM's form."""
        if nfe not in (1, 2):
            raise ValueError(f"nfe must be one of [1, 2] (sCM's samplers), got {nfe!r}")
        t_max = math.atan(80 / self.sigma_d)
        return (t_max,) if nfe == 1 else (t_max, t_mid)

    @torch.no_grad()
    def sample(self, shape, steps: tuple[float, ...] | None = None, generator: torch.Generator | None = None,
               device=None) -> torch.Tensor:
        """x_0 (float64, on the noise's device) from ``steps`` (default: one step from t_max, see
        ``steps``): map the noise to x_0, then re-noise to each later t by x_t = cos t x_0 + sin t z
        and map back. The noise is drawn on ``generator``'s device, step by step, so that a CPU
        generator gives the same samples on any device; the network runs where its weights are."""
        from .sampling import noise_like

        steps = self.steps(1) if steps is None else tuple(steps)
        net_device = next(self.parameters()).device
        x = noise_like(tuple(shape), generator, device) * self.sigma_d
        x0 = None
        for i, t in enumerate(steps):
            if i > 0:
                z = noise_like(tuple(shape), generator, device) * self.sigma_d
                x = math.cos(t) * x0 + math.sin(t) * z
            tt = torch.full((shape[0],), float(t), device=net_device)
            x0 = self(x.float().to(net_device), tt).double().to(x.device)
        return x0

    def draw(self, shape, nfe: int, seed: int, t_mid: float = T_MID) -> torch.Tensor:
        """``sample`` in ``nfe`` steps (``steps``) from a CPU generator seeded by ``seed``, as float32 on
        the CPU: models compared on the same ``shape`` and ``seed`` start from the same noise."""
        return self.sample(shape, self.steps(nfe, t_mid), torch.Generator().manual_seed(seed)).float().cpu()


class SigmaForm(nn.Module):
    """A ``TrigFlow`` model seen in EDM's sigma form: ``(x_sigma, sigma) -> x_0`` with sigma = sigma_d tan t and
    x_t = cos t x_sigma (sCM Sec. 2: TrigFlow is EDM with c_skip = cos t, c_out = -sigma_d sin t,
    c_in = 1 / sigma_d). The same weights are then a denoiser for EDM's Euler / Heun samplers and a teacher
    for CD (``karras``), or a consistency function for the discrete losses and ``sample``: f(x, 0) = x
    exactly, and at sigma_min = 0.002, f = x up to about sigma_min |F| (CM's boundary parametrisation is
    exact at sigma_min itself). ``model`` holds the TrigFlow module."""

    def __init__(self, model: "TrigFlow"):
        super().__init__()
        self.model = model

    @property
    def cfg(self):
        return {"sigma_form": self.model.cfg}

    def steps(self, nfe: int, t_mid: float = TrigFlow.T_MID) -> tuple[float, ...]:
        """The TrigFlow module's sampling times (``TrigFlow.steps``)."""
        return self.model.steps(nfe, t_mid)

    def sample(self, shape, steps=None, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """Sample as the consistency model in TrigFlow time (``TrigFlow.sample``): the same weights."""
        return self.model.sample(shape, steps, generator, device)

    def draw(self, shape, nfe: int, seed: int, t_mid: float = TrigFlow.T_MID) -> torch.Tensor:
        """``TrigFlow.draw``: the same weights, the same samples."""
        return self.model.draw(shape, nfe, seed, t_mid)

    def forward(self, x: torch.Tensor, sigma, **cond) -> torch.Tensor:
        sigma = K._sigma(sigma, x)
        t = torch.atan(sigma.double() / self.model.sigma_d)
        cos = K._bcast(torch.cos(t), x).to(x.dtype)
        dtype = next(self.model.parameters()).dtype
        return self.model((cos * x).to(dtype), t.to(dtype)).to(x.dtype)


class TrigFlowObjective:
    """The diffusion (teacher) loss in TrigFlow (sCM Sec. 2; EDM's loss with its weighting): x_t = cos t x_0 +
    sin t z, z ~ N(0, sigma_d^2 I), with sigma = sigma_d tan t lognormal (EDM's P_mean, P_std); the target of F
    is (cos t z - sin t x_0) / sigma_d, of unit variance at every t, so the loss needs no weight:
    ||F(x_t / sigma_d, t) - target||^2 per example."""

    def __init__(self, sigma_d: float = 0.5, P_mean: float = -1.2, P_std: float = 1.2):
        self.sigma_d, self.P_mean, self.P_std = sigma_d, P_mean, P_std

    def config(self) -> dict:
        return {"objective": "trigflow", "sigma_d": self.sigma_d, "P": [self.P_mean, self.P_std]}

    def __call__(self, net, batch):
        x0 = batch.x
        z = batch.randn(*x0.shape[1:], dtype=x0.dtype) * self.sigma_d
        t = trigflow_times(batch.randn(dtype=torch.float64).reshape(-1), self.sigma_d, self.P_mean, self.P_std).to(x0.device)
        tt = K._bcast(t, x0).to(x0.dtype)
        x_t = torch.cos(tt) * x0 + torch.sin(tt) * z
        target = (torch.cos(tt) * z - torch.sin(tt) * x0) / self.sigma_d
        F = net(x_t, t.to(x0.dtype), output="F")
        return (F - target).reshape(len(x0), -1).pow(2).mean(1).mean()


def trigflow_times(u: torch.Tensor, sigma_d: float = 0.5, P_mean: float = -1.0, P_std: float = 1.4) -> torch.Tensor:
    """sCM's proposal: t = arctan(exp(tau) / sigma_d) with tau ~ N(P_mean, P_std^2); ``u`` standard normal."""
    return torch.atan(torch.exp(P_mean + P_std * u) / sigma_d)


class SCMObjective:
    """sCM's continuous-time consistency training (sCT; Lu & Song 2025, Algorithm 1) for a ``TrigFlow``
    module. Per example: t from ``trigflow_times``, x_t = cos t x_0 + sin t z, the trajectory's
    direction dx_t/dt = cos t z - sin t x_0; the JVP of F^- = stopgrad F along it; the tangent

        g = -cos^2 t (sigma_d F^- - dx_t/dt) - r cos t sin t (x_t + sigma_d dF^-/dt),

    which is cos t times the total derivative df^-/dt; normalised as g / (||g|| + c) (``normalise``);
    r rises from 0 to 1 over ``warmup`` steps; loss ||F_theta - F^- - g||^2 / d, whose gradient at
    theta = theta^- is that of the continuous-time consistency objective. ``logs`` carry ||g|| before
    normalisation (the instability the paper's fixes address). With a ``teacher`` (a TrigFlow diffusion
    model) it is sCD: dx_t/dt is the teacher's PF-ODE velocity sigma_d F_teacher(x_t / sigma_d, t)."""

    def __init__(self, sigma_d: float = 0.5, P_mean: float = -1.0, P_std: float = 1.4, normalise: float | None = 0.1,
                 warmup: int = 0, teacher: "TrigFlow | None" = None, teacher_key: str = ""):
        self.sigma_d, self.P_mean, self.P_std, self.normalise, self.warmup = sigma_d, P_mean, P_std, normalise, warmup
        self.teacher, self.teacher_key = teacher, teacher_key

    def config(self) -> dict:
        return {"objective": "scm", "sigma_d": self.sigma_d, "P": [self.P_mean, self.P_std], "normalise": self.normalise,
                "warmup": self.warmup, "teacher": self.teacher_key if self.teacher is not None else None}

    def velocity(self, x0: torch.Tensor, z: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """dx_t/dt: sCT's one-sample estimate cos t z - sin t x_0, or sCD's teacher PF-ODE velocity
        sigma_d F_teacher(x_t / sigma_d, t)."""
        if self.teacher is None:
            tt = K._bcast(t, x0).to(x0.dtype)
            return torch.cos(tt) * z - torch.sin(tt) * x0
        with torch.no_grad():
            return self.sigma_d * self.teacher.F(x_t, t.to(x_t.dtype)).to(x_t.dtype)

    def tangent(self, model: TrigFlow, x0: torch.Tensor, z: torch.Tensor,
                t: torch.Tensor, r: float = 1.0):
        """(F^-, g, ||g|| before normalisation) at x_t on the trajectory of
        (x0, z); no gradient flows."""
        from .nets.unet import jvp

        tt = K._bcast(t, x0).to(x0.dtype)
        cos, sin = torch.cos(tt), torch.sin(tt)
        x_t = cos * x0 + sin * z
        dxdt = self.velocity(x0, z, x_t, t)
        t_in = t.to(x0.dtype)
        with torch.no_grad():
            # tangents chosen so that the JVP is cos t sin t sigma_d dF/dt,
            # dF/dt the total derivative
            F_m, jf = jvp(model.net_call, (x_t / self.sigma_d, t_in),
                          (cos * sin * dxdt,
                           (torch.cos(t_in) * torch.sin(t_in) * self.sigma_d)))
            F_m, jf = F_m.detach(), jf.detach()
            g = (-cos**2 * (self.sigma_d * F_m - dxdt)
                 - r * (cos * sin * x_t + jf))
            norm = g.reshape(len(g), -1).norm(dim=1)
            if self.normalise is not None:
                g = g / (K._bcast(norm, g) + self.normalise)
        return x_t, F_m, g, norm

    def __call__(self, net, batch):
        x0 = batch.x
        z = batch.randn(*x0.shape[1:], dtype=x0.dtype) * self.sigma_d
        t = trigflow_times(batch.randn(dtype=torch.float64).reshape(-1),
                           self.sigma_d, self.P_mean, self.P_std).to(x0.device)
        r = min(1.0, batch.step / self.warmup) if self.warmup else 1.0
        model = unwrap(net)
        x_t, F_m, g, norm = self.tangent(model, x0, z, t, r)
        F_t = net(x_t, t.to(x0.dtype), output="F")
        loss = (F_t - F_m - g).reshape(len(x0), -1).pow(2).mean(1)
        return loss.mean(), {"tangent_norm": norm.mean(), "r": torch.tensor(r)}
