"""2-D toy datasets and Gaussian mixtures (offline, generated from a seed):

* ``toy2d:<name>``: moons, eight_gaussians (alias 8gaussians), swiss_roll, checkerboard; points
  in R^2 standardised to about unit variance per coordinate.
* ``gmm`` / ``gmm:ring`` and ``gmm:example``: samples of the ``oracle`` mixtures, which travel with
  the data in ``meta["mixture"]`` so the exact denoiser applies.
"""
from __future__ import annotations

import math

import torch

from .. import oracle
from .core import Data, _count, _points_only, _stream
from .registry import register

TOY2D = ("moons", "eight_gaussians", "swiss_roll", "checkerboard")
TOY2D_ALIASES = {"8gaussians": "eight_gaussians"}
GMMS = ("ring", "example")


def _moons(n: int, g: torch.Generator):
    """Two interleaved half circles (the shape of scikit-learn's make_moons), noise 0.1; y = moon.

    Standardised with the exact moments: x has mean 0.5, var 0.75 + 0.01; y mean 0.25,
    var 1/2 - 4/pi^2 + (2/pi - 1/4)^2 + 0.01 (half the moons' offset squared).
    """
    y = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    upper = torch.stack([t.cos(), t.sin()], 1)
    x = torch.where(y[:, None] == 0, upper, torch.tensor([1.0, 0.5], dtype=torch.float64) - upper)
    x = x + 0.1 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    var_y = 0.5 - 4 / math.pi**2 + (2 / math.pi - 0.25) ** 2 + 0.01
    return (x - torch.tensor([0.5, 0.25])) / torch.tensor([0.76, var_y]).sqrt(), y


def _swiss_roll(n: int, g: torch.Generator):
    """(t cos t, t sin t), t ~ U[1.5 pi, 4.5 pi], noise 0.3; mean (2, 2 / (3 pi)), scaled by 6.8."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=g, dtype=torch.float64))
    x = torch.stack([t * t.cos(), t * t.sin()], 1) + 0.3 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return (x - torch.tensor([2.0, 2 / (3 * math.pi)])) / 6.8, None


def _checkerboard(n: int, g: torch.Generator):
    """Uniform on the 8 dark squares of a 4x4 board on [-2, 2]^2 (marginals U[-2, 2], var 4/3)."""
    x1 = 4 * torch.rand(n, generator=g, dtype=torch.float64) - 2
    row = 2 * torch.randint(0, 2, (n,), generator=g) - 2 + torch.floor(x1).long() % 2  # -2..1
    x2 = row + torch.rand(n, generator=g, dtype=torch.float64)
    return torch.stack([x1, x2], 1) / math.sqrt(4 / 3), None


def _eight_gaussians_mixture() -> oracle.GaussianMixture:
    """Eight Gaussians on a circle of radius 2, std 0.25, scaled so each coordinate has unit variance
    (per-coordinate variance r^2 / 2 + s^2)."""
    scale = math.sqrt(2.0**2 / 2 + 0.25**2)
    return oracle.ring(k=8, radius=2.0 / scale, std=0.25 / scale, labels=False)


def _toy2d(which: str, split: str, n, seed, **kw) -> Data:
    """``toy2d:<which>``: y is the moon (moons) or the component (eight_gaussians), else None."""
    which = TOY2D_ALIASES.get(which, which)
    if which not in TOY2D:
        raise ValueError(f"unknown toy2d dataset {which!r}; valid: {', '.join(TOY2D)} (alias 8gaussians)")
    if kw:
        raise TypeError(f"toy2d takes no options, got {sorted(kw)}")
    g = torch.Generator().manual_seed(_stream("toy2d", which, split, seed))
    meta = {"source": "generated", "split": split, "seed": seed}
    if which == "eight_gaussians":
        meta["mixture"] = _eight_gaussians_mixture()
        x, y, _ = meta["mixture"].sample(_count(split, n), generator=g)  # y: the component
    else:
        make = {"moons": _moons, "swiss_roll": _swiss_roll, "checkerboard": _checkerboard}[which]
        x, y = make(_count(split, n), g)
    classes = {"moons": ["upper", "lower"], "eight_gaussians": [str(k) for k in range(8)]}.get(which)
    return Data(f"toy2d:{which}", x.float(), y, classes=classes, meta=meta)


def _gmm(which: str, split: str, n, seed, **kw) -> Data:
    """``gmm``/``gmm:ring`` (``oracle.ring(**kw)``) or ``gmm:example`` (``oracle.example_2d()``).

    y is the component's class label, ``attrs["component"]`` the component itself, and
    ``meta["mixture"]`` the mixture (float64), for the exact oracle.
    """
    if which not in GMMS:
        raise ValueError(f"unknown gmm {which!r}; valid: {', '.join(GMMS)}")
    mixture = oracle.ring(**kw) if which == "ring" else oracle.example_2d(**kw)
    g = torch.Generator().manual_seed(_stream("gmm", which, split, seed))
    x, comp, y = mixture.sample(_count(split, n), generator=g)
    classes = None if y is None else [str(c) for c in range(mixture.num_classes)]
    return Data(f"gmm:{which}", x.float(), y, classes=classes,
                attrs={"component": comp}, attr_values={"component": [str(k) for k in range(mixture.K)]},
                meta={"source": "generated", "split": split, "seed": seed, "mixture": mixture})


def _load_toy2d(name: str, split: str, image_size, n, seed, **kw) -> Data:
    """The registered loader of ``toy2d:<which>``."""
    return _toy2d(name.partition(":")[2], split, _points_only(name, image_size, n), seed, **kw)


def _load_gmm(name: str, split: str, image_size, n, seed, **kw) -> Data:
    """The registered loader of ``gmm`` (= ``gmm:ring``) and ``gmm:<which>``."""
    return _gmm(name.partition(":")[2] or "ring", split, _points_only(name, image_size, n), seed, **kw)


register("toy2d", _load_toy2d, variants=TOY2D)
register("gmm", _load_gmm, variants=GMMS, names=["gmm", "gmm:example"])
