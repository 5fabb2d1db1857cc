"""Exact denoisers for Gaussian-mixture data: the "perfect network".

If x_0 ~ sum_k pi_k N(m_k, S_k), then x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps is again a mixture,
with components N(sqrt(abar) m_k, C_k), C_k = abar S_k + (1 - abar) I. Every quantity a diffusion
network approximates has a closed form:

* the component posterior r_k(x_t) = pi_k N(x_t; sqrt(abar) m_k, C_k) / p(x_t);
* E[x_0 | x_t] = sum_k r_k (m_k + sqrt(abar) S_k C_k^{-1} (x_t - sqrt(abar) m_k))  (Gaussian conditioning);
* eps*(x_t) = (x_t - sqrt(abar) E[x_0 | x_t]) / sqrt(1 - abar), and the score -eps* / sqrt(1 - abar);
* for a labelled mixture, p(y | x_t) = sum_{k in y} r_k and grad log p(y | x_t).

Samplers driven by these must reproduce the mixture: that is how the tests and the book check them
before any training. Everything is float64.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # the mixture's math is closed form: it needs neither module at run time
    from .diffusion import Diffusion
    from .schedules import Schedule


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, d)
    covs: torch.Tensor  # (K, d, d)
    labels: torch.Tensor | None = None  # (K,) class of each component, or None

    def __post_init__(self):
        w = torch.as_tensor(self.weights, dtype=torch.float64)
        m = torch.as_tensor(self.means, dtype=torch.float64)
        c = torch.as_tensor(self.covs, dtype=torch.float64)
        if c.ndim == 1:  # isotropic scale per component
            c = c[:, None, None] * torch.eye(m.shape[1], dtype=torch.float64)
        if not (w.ndim == 1 and m.shape[0] == w.shape[0] == c.shape[0] and c.shape[1:] == (m.shape[1], m.shape[1])):
            raise ValueError("expected weights (K,), means (K, d) and covs (K, d, d) or (K,)")
        object.__setattr__(self, "weights", w / w.sum())
        object.__setattr__(self, "means", m)
        object.__setattr__(self, "covs", c)
        if self.labels is not None:
            object.__setattr__(self, "labels", torch.as_tensor(self.labels, dtype=torch.long))

    @property
    def K(self) -> int:
        return len(self.weights)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def num_classes(self) -> int:
        return 0 if self.labels is None else int(self.labels.max()) + 1

    # ---- data ------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None):
        """n samples; returns (x (n, d), component (n,), label (n,) or None)."""
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        L = torch.linalg.cholesky(self.covs)  # (K, d, d)
        x = self.means[comp] + torch.einsum("nij,nj->ni", L[comp], z)
        y = self.labels[comp] if self.labels is not None else None
        return x, comp, y

    def mean(self) -> torch.Tensor:
        return (self.weights[:, None] * self.means).sum(0)

    def cov(self) -> torch.Tensor:
        mu = self.mean()
        d = self.means - mu
        return (self.weights[:, None, None] * (self.covs + d[:, :, None] * d[:, None, :])).sum(0)

    def subset(self, y: int) -> "GaussianMixture":
        """The class-conditional mixture p(x_0 | y)."""
        keep = self.labels == y
        return GaussianMixture(self.weights[keep], self.means[keep], self.covs[keep])

    # ---- at noise level alpha_bar ----------------------------------------------------------
    def _component_terms(self, x: torch.Tensor, abar: float):
        """Per-component log N(x; sqrt(abar) m_k, C_k) (n, K) and C_k^{-1}(x - sqrt(abar) m_k) (n, K, d)."""
        d = self.dim
        C = abar * self.covs + (1 - abar) * torch.eye(d, dtype=torch.float64)  # (K, d, d)
        L = torch.linalg.cholesky(C)
        diff = x[:, None, :] - math.sqrt(abar) * self.means[None]  # (n, K, d)
        sol = torch.cholesky_solve(diff.permute(1, 2, 0), L)  # (K, d, n)
        sol = sol.permute(2, 0, 1)  # (n, K, d)
        logdet = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)  # (K,)
        logn = -0.5 * ((diff * sol).sum(-1) + logdet + d * math.log(2 * math.pi))
        return logn, sol

    def log_prob(self, x: torch.Tensor, alpha_bar: float = 1.0) -> torch.Tensor:
        """log p_t(x) of the noisy marginal (alpha_bar = 1: the data)."""
        logn, _ = self._component_terms(x.double(), float(alpha_bar))
        return torch.logsumexp(logn + self.weights.log(), dim=1)

    def responsibilities(self, x: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        logn, _ = self._component_terms(x.double(), float(alpha_bar))
        return torch.softmax(logn + self.weights.log(), dim=1)

    def _grouped(self, fn, x: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        """Apply fn(x_group, abar) to each group of rows that share a noise level."""
        x = x.double()
        alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1).expand(x.shape[0])
        out = torch.empty_like(x)
        for a in torch.unique(alpha_bar):
            rows = alpha_bar == a
            out[rows] = fn(x[rows], float(a))
        return out

    def x0_mean(self, x_t: torch.Tensor, alpha_bar, y: int | None = None) -> torch.Tensor:
        """E[x_0 | x_t] (and E[x_0 | x_t, y] for a class y of a labelled mixture)."""
        gm = self if y is None else self.subset(y)

        def fn(x, a):
            logn, sol = gm._component_terms(x, a)
            r = torch.softmax(logn + gm.weights.log(), dim=1)  # (n, K)
            cond = gm.means[None] + math.sqrt(a) * torch.einsum("kij,nkj->nki", gm.covs, sol)  # (n, K, d)
            return (r[:, :, None] * cond).sum(1)

        return self._grouped(fn, x_t, alpha_bar)

    def eps(self, x_t: torch.Tensor, alpha_bar, y: int | None = None) -> torch.Tensor:
        """The exact noise prediction eps*(x_t) = (x_t - sqrt(abar) E[x_0|x_t]) / sqrt(1 - abar)."""
        a = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, 1)
        return (x_t.double() - a.sqrt() * self.x0_mean(x_t, alpha_bar, y)) / (1 - a).sqrt()

    def score(self, x_t: torch.Tensor, alpha_bar, y: int | None = None) -> torch.Tensor:
        """grad log p_t(x_t) = -eps* / sqrt(1 - abar) (Tweedie)."""
        a = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1, 1)
        return -self.eps(x_t, alpha_bar, y) / (1 - a).sqrt()

    def class_log_prob(self, x_t: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        """log p(y | x_t) for every class, (n, num_classes)."""
        if self.labels is None:
            raise ValueError("this mixture has no labels")
        r = self.responsibilities(x_t, alpha_bar)
        onehot = torch.nn.functional.one_hot(self.labels, self.num_classes).double()  # (K, Y)
        return torch.log((r @ onehot).clamp_min(1e-300))

    def grad_log_p_y(self, x_t: torch.Tensor, alpha_bar, y) -> torch.Tensor:
        """grad_x log p(y | x_t) = score(x_t | y) - score(x_t), exactly."""
        y = torch.as_tensor(y, dtype=torch.long).reshape(-1).expand(x_t.shape[0])
        out = torch.empty_like(x_t, dtype=torch.float64)
        uncond = self.score(x_t, alpha_bar)
        a = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1).expand(x_t.shape[0])
        for c in torch.unique(y):
            rows = y == c
            out[rows] = self.score(x_t[rows], a[rows], int(c)) - uncond[rows]
        return out

    # ---- as model functions for the samplers ----------------------------------------------
    def model(self, schedule: Schedule, diff: Diffusion | None = None, y: int | None = None):
        """The exact denoiser as a model function ``(x_t, t_original) -> output``.

        ``schedule`` is the *original* chain (the one whose step indices the samplers pass in).
        The output is in ``diff``'s parametrization (eps when ``diff`` is None).
        """

        def fn(x, t):
            abar = schedule.alpha_bar[t.cpu()].to(x.device)
            if diff is None or diff.param == "eps":
                return self.eps(x, abar, y)
            x0 = self.x0_mean(x, abar, y)
            i = diff.schedule.index_of(t)
            return diff.parametrization.from_x0(diff.schedule, x.double(), i, x0)

        return fn

    def classifier_grad(self, schedule: Schedule, y):
        """grad log p(y | x_t) at original steps t, for ``sampling.classifier_guidance``."""

        def fn(x, t):
            return self.grad_log_p_y(x, schedule.alpha_bar[t.cpu()].to(x.device), y)

        return fn


def ring(k: int = 8, radius: float = 2.0, std: float = 0.15, labels: bool = True) -> GaussianMixture:
    """``k`` isotropic Gaussians on a circle, equal weights; class = component index mod 2."""
    ang = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
    means = radius * torch.stack([ang.cos(), ang.sin()], 1)
    return GaussianMixture(torch.ones(k), means, torch.full((k,), std**2),
                           labels=(torch.arange(k) % 2) if labels else None)


def example_2d() -> GaussianMixture:
    """A small, deliberately uneven 2-D mixture (unequal weights, anisotropic covariances, 2 classes)."""
    weights = torch.tensor([0.5, 0.3, 0.2])
    means = torch.tensor([[-1.0, -0.5], [1.2, 0.8], [0.6, -1.2]])
    covs = torch.tensor([[[0.10, 0.04], [0.04, 0.05]],
                         [[0.04, 0.00], [0.00, 0.12]],
                         [[0.03, -0.01], [-0.01, 0.03]]])
    return GaussianMixture(weights, means, covs, labels=torch.tensor([0, 1, 1]))
