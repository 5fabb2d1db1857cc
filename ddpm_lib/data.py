"""Every dataset of the book behind one call: ``load(name, split, image_size, n, seed, **kw) -> Data``.

Offline built-ins (always available, no network):

* ``toy2d:<name>``: moons, eight_gaussians (alias 8gaussians), swiss_roll, checkerboard; points
  in R^2 standardised to about unit variance per coordinate.
* ``gmm`` / ``gmm:ring`` and ``gmm:example``: samples of the ``oracle`` mixtures, which travel with
  the data in ``meta["mixture"]`` so the exact denoiser applies.
* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits, a fixed stratified 1437/360 split.
* ``shapes``: procedural RGB scenes (shape, colour, size, position, background) with attribute
  labels and captions, rendered from a counter-based hash of (seed, split, index), so scene i is
  the same image whatever n, start or batch asked for it. The text-to-image data of the later chapters.

Online and local:

* any Hugging Face ``datasets`` id (mnist, fashion_mnist, cifar10, ...). Without a network the call
  fails within seconds with ``DatasetUnavailable`` (naming the offline datasets) unless the dataset
  is already in the local ``datasets`` cache; it never waits on the library's retries.
* a local directory: an image folder (class subfolders, or flat; optional train/ and test/) or a
  ``save_to_disk`` directory, converted exactly like a Hub dataset.

Images are float32 (N, C, H, W) in [-1, 1]; 2-D points are (N, 2). Repeated calls with the same
arguments return the same in-process ``Data`` object (local directories are re-read): treat it as
read-only; ``clear_memo()`` drops the memo.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import math
import os
import re
import socket
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange, reduce

from . import oracle

SPLITS = ("train", "test")
TOY2D = ("moons", "eight_gaussians", "swiss_roll", "checkerboard")
TOY2D_ALIASES = {"8gaussians": "eight_gaussians"}
GMMS = ("ring", "example")
OFFLINE = [*(f"toy2d:{t}" for t in TOY2D), "gmm", "gmm:example", "digits", "shapes"]
DEFAULT_N = {"train": 10_000, "test": 2_000}  # for the generated datasets
RESIZE_MODES = ("bilinear", "nearest")


class DatasetUnavailable(RuntimeError):
    """The dataset lives on the Hugging Face Hub, the Hub cannot be reached and it is not cached."""


def names(hub: bool = True) -> list[str]:
    """The offline names, then (``hub=True``) the Hub ids whose columns are mapped in ``HUB_COLUMNS``."""
    return list(OFFLINE) + (sorted(HUB_COLUMNS) if hub else [])


# --------------------------------------------------------------------------------------------
# The container
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Data:
    """A dataset held in memory; every per-example field has length N and is indexed together."""

    name: str
    x: torch.Tensor  # (N, C, H, W) in [-1, 1], or (N, d) points
    y: torch.Tensor | None = None  # (N,) long
    classes: list[str] | None = None  # names of the values of y
    captions: list[str] | None = None  # short: "a red circle"
    captions_long: list[str] | None = None  # descriptive: "a small red circle at the top left on ..."
    attrs: dict[str, torch.Tensor] | None = None  # attribute -> (N,) long
    attr_values: dict[str, list[str]] | None = None  # attribute -> names of its values
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        for k, v in self._per_example().items():
            if len(v) != len(self.x):
                raise ValueError(f"{k} has {len(v)} entries but x has {len(self.x)}")

    def _per_example(self) -> dict:
        fields = {"y": self.y, "captions": self.captions, "captions_long": self.captions_long}
        fields.update({f"attrs[{k}]": v for k, v in (self.attrs or {}).items()})
        return {k: v for k, v in fields.items() if v is not None}

    def __len__(self) -> int:
        return len(self.x)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """(C, H, W) for images, (d,) for points."""
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes is not None else 0

    def subset(self, idx) -> "Data":
        """The examples at ``idx`` (a slice, a list, a long or a bool tensor), all fields kept aligned."""
        idx = _as_index(idx, len(self))
        rows = idx.tolist()
        pick = lambda seq: None if seq is None else [seq[i] for i in rows]  # noqa: E731
        return dataclasses.replace(
            self, x=self.x[idx], y=None if self.y is None else self.y[idx],
            captions=pick(self.captions), captions_long=pick(self.captions_long),
            attrs=None if self.attrs is None else {k: v[idx] for k, v in self.attrs.items()},
            meta=dict(self.meta))

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True, drop_last: bool = True):
        """One epoch of ``Data`` subsets of ``batch_size`` examples (``batch.x``, ``batch.y``, ...).

        The order is a ``torch.randperm`` drawn from ``generator`` when ``shuffle``; with
        ``drop_last`` the final short batch is skipped.
        """
        if batch_size < 1 or (drop_last and batch_size > len(self)):
            raise ValueError(f"batch_size must be in 1..{len(self)} with drop_last, got {batch_size}")
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        stop = len(self) - len(self) % batch_size if drop_last else len(self)
        for i in range(0, stop, batch_size):
            yield self.subset(order[i:i + batch_size])

    def to(self, device) -> "Data":
        """The same data with x, y and attrs on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        attrs = None if self.attrs is None else {k: v.to(device) for k, v in self.attrs.items()}
        return dataclasses.replace(self, x=move(self.x), y=move(self.y), attrs=attrs)


def _as_index(idx, n: int) -> torch.Tensor:
    if isinstance(idx, slice):
        return torch.arange(n)[idx]
    idx = torch.as_tensor(idx)
    if idx.dtype == torch.bool:
        return idx.nonzero().squeeze(1)
    return idx.long().reshape(-1)


# --------------------------------------------------------------------------------------------
# load
# --------------------------------------------------------------------------------------------
def load(name: str, split: str = "train", image_size: int | None = None, n: int | None = None,
         seed: int = 0, **kw) -> Data:
    """Load dataset ``name``: an offline name, ``toy2d:<name>``, ``gmm:<name>``, a Hub id, or a
    directory (a directory that exists is always read as local, even if it looks like a Hub id).

    ``image_size``: resize images to a square image_size x image_size (None: native size; shapes
    default 32). ``n``: the number of examples (generated datasets: default 10,000 train / 2,000
    test; fixed datasets: the first n, default all). ``seed``: the stream of the generated datasets
    (toy2d, gmm, shapes); the fixed datasets ignore it. Keywords, by dataset:

    * shapes: ``objects`` (1 or 2), ``label`` (attribute returned as y, default "shape"),
      ``jitter`` (True), ``start`` (index of the first scene, 0), ``supersample`` (None: automatic);
    * gmm / gmm:ring: the arguments of ``oracle.ring`` (k, radius, std, labels);
    * digits, Hub ids, directories: ``resize`` ("bilinear" with antialias, or "nearest").
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if n is not None and n < 1:
        raise ValueError(f"n must be a positive number of examples or None, got {n}")
    path = _local_path(name)
    if path is not None:
        return _load_local(path, split, image_size, n, **kw)
    args = (name, split, image_size, n, seed, tuple(sorted(kw.items())))
    try:
        hash(args)
    except TypeError:  # an unhashable keyword: load without the memo
        return _dispatch(*args)
    return _memo(*args)


def _dispatch(name, split, image_size, n, seed, kw_items) -> Data:
    kw = dict(kw_items)
    family, _, sub = name.partition(":")
    if family == "toy2d":
        return _toy2d(sub, split, _points_only(name, image_size, n), seed, **kw)
    if family == "gmm":
        return _gmm(sub or "ring", split, _points_only(name, image_size, n), seed, **kw)
    if name == "digits":
        return _digits(split, image_size, n, **kw)
    if name == "shapes":
        return _shapes(split, 32 if image_size is None else image_size, n, seed, **kw)
    if _HUB_ID.fullmatch(name) and not _near_offline_name(name):
        return _load_hub(name, split, image_size, n, **kw)
    raise ValueError(f"unknown dataset {name!r}; {_choices()}")


_memo = functools.lru_cache(maxsize=8)(_dispatch)


def clear_memo() -> None:
    """Forget the datasets held in memory by earlier ``load`` calls."""
    _memo.cache_clear()


def _choices() -> str:
    return (f"valid: {', '.join(OFFLINE)}, or the forms 'toy2d:<name>' ({', '.join(TOY2D)}), "
            f"'gmm:<name>' ({', '.join(GMMS)}), '<hub id>' (e.g. mnist, fashion_mnist, cifar10) "
            "and '<local path>' (an image folder or a save_to_disk directory)")


def _near_offline_name(name: str) -> bool:
    """'shape', 'digit', 'toy2d': typos of offline names are errors, not Hub look-ups."""
    return "/" not in name and bool(difflib.get_close_matches(name, OFFLINE + ["toy2d", "gmm"], cutoff=0.8))


def _points_only(name: str, image_size, n):
    """n, after checking that no image_size was asked of a dataset of 2-D points."""
    if image_size is not None:
        raise ValueError(f"{name} holds 2-D points; image_size applies only to image datasets")
    return n


def _stream(*parts) -> int:
    """A 63-bit seed from the parts (name, split, seed), stable across runs and platforms."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _count(split: str, n: int | None) -> int:
    return DEFAULT_N[split] if n is None else n


def _take_first(total: int, n: int | None, what: str) -> int:
    if n is not None and n > total:
        raise ValueError(f"n={n} but {what} holds {total} examples")
    return total if n is None else n


# --------------------------------------------------------------------------------------------
# 2-D toys and Gaussian mixtures
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _digits_split() -> dict:
    """scikit-learn's bundled digits with a fixed stratified split: 1437 train, 360 test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    train, test = train_test_split(np.arange(len(d.target)), test_size=360, stratify=d.target, random_state=0)
    return {"images": d.images, "target": d.target, "train": train, "test": test}


def _digits(split: str, image_size: int | None, n: int | None, resize: str = "bilinear") -> Data:
    """``digits``: values 0..16 mapped to [-1, 1], upsampled with ``_resize`` and put on the 8-bit
    grid (the 17 levels of the source are not on it); C = 1; n = the first n."""
    d = _digits_split()
    rows = d[split][:_take_first(len(d[split]), n, f"digits {split}")]
    x = torch.as_tensor(d["images"][rows], dtype=torch.float32)[:, None] / 8 - 1  # (N, 1, 8, 8)
    x = _resize(x, image_size, resize)
    y = torch.as_tensor(d["target"][rows], dtype=torch.long)
    return Data("digits", x, y, classes=[str(k) for k in range(10)],
                meta={"source": "sklearn.datasets.load_digits", "split": split,
                      "split_sizes": {s: len(d[s]) for s in SPLITS}})


def _resize(x: torch.Tensor, image_size: int | None, mode: str = "bilinear") -> torch.Tensor:
    """Resize (N, C, H, W) to image_size x image_size: bilinear with antialias (exact for a
    downsample, smooth for an upsample) or nearest ("nearest-exact": each pixel a block)."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"unknown resize {mode!r}; valid: {', '.join(RESIZE_MODES)}")
    if image_size is None or tuple(x.shape[-2:]) == (image_size, image_size):
        return to_8bit_grid(x)
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}")
    if mode == "nearest":
        return to_8bit_grid(F.interpolate(x, size=(image_size, image_size), mode="nearest-exact"))
    out = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return to_8bit_grid(out.clamp(-1, 1))


def to_8bit_grid(x: torch.Tensor) -> torch.Tensor:
    """Round [-1, 1] images to the 256 levels -1 + 2k/255 of 8-bit data. Every image data set ends
    here (after resizing or rendering): the discretised decoder of the bound (DDPM Eq. 13) assigns
    probability to these bins, so bits/dim are discrete NLLs only on this grid."""
    return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1


# --------------------------------------------------------------------------------------------
# shapes: procedural scenes
# --------------------------------------------------------------------------------------------
SHAPES = ("circle", "square", "triangle")
COLOURS = {  # RGB in [0, 1]
    "red": (1.0, 0.0, 0.0), "green": (0.0, 0.8, 0.0), "blue": (0.15, 0.35, 1.0), "yellow": (1.0, 1.0, 0.0),
    "magenta": (1.0, 0.0, 1.0), "cyan": (0.0, 1.0, 1.0), "white": (1.0, 1.0, 1.0), "orange": (1.0, 0.5, 0.0),
}
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "dark blue": (0.05, 0.05, 0.3), "dark green": (0.0, 0.25, 0.05),
               "gray": (0.45, 0.45, 0.45)}
SIZES = {"small": 0.1, "large": 0.16}  # circle radius as a fraction of the image side
POSITIONS = ("top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right")
ATTRIBUTES = {"shape": list(SHAPES), "colour": list(COLOURS), "size": list(SIZES),
              "position": list(POSITIONS), "background": list(BACKGROUNDS)}
OBJECT_ATTRIBUTES = ("shape", "colour", "size", "position")
# jitter, when on: centre offset U(-0.02, 0.02), size factor U(0.9, 1.1), rotation U(-10, 10) degrees
JITTER = {"offset": 0.02, "scale": 0.1, "angle": math.radians(10)}


def _uniform(stream: int, index: np.ndarray, field: str, obj: int = 0) -> np.ndarray:
    """Counter-based U[0, 1): a pure function of (stream, index, field, object) via splitmix64,
    so example i never depends on which other examples are drawn."""
    key = _stream(stream, field, obj)
    with np.errstate(over="ignore"):
        z = np.uint64(key) + index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for mult, shift in ((0xBF58476D1CE4E5B9, 30), (0x94D049BB133111EB, 27)):
            z = (z ^ (z >> np.uint64(shift))) * np.uint64(mult)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _draw_scenes(stream: int, index: np.ndarray, objects: int) -> tuple[dict, dict]:
    """Attributes (attr -> long tensor) and jitter (name -> float tensor) of scenes ``index``."""
    def pick(field: str, k: int, obj: int = 0) -> torch.Tensor:  # uniform on 0..k-1
        return torch.as_tensor(np.floor(_uniform(stream, index, field, obj) * k).astype(np.int64))

    attrs, jitter = {"background": pick("background", len(BACKGROUNDS))}, {}
    for o in range(objects):
        sfx = "" if o == 0 else str(o + 1)
        for a in OBJECT_ATTRIBUTES:
            attrs[a + sfx] = pick(a, len(ATTRIBUTES[a]), o)
        if o > 0:  # a later object takes a different cell: shift by 1..8 cells
            attrs["position" + sfx] = (attrs["position"] + 1 + pick("position", 8, o)) % 9
        for j in ("dx", "dy", "scale", "angle"):
            jitter[j + sfx] = torch.as_tensor(2 * _uniform(stream, index, j, o) - 1, dtype=torch.float32)
    return attrs, jitter


def _inside_circle(px, py, r):
    return px**2 + py**2 <= r**2


def _inside_square(px, py, r):  # half side 0.85 r
    return torch.maximum(px.abs(), py.abs()) <= 0.85 * r


def _inside_triangle(px, py, r):  # equilateral, apex up, height 2 r centred on the object
    return (py <= r) & (px.abs() * math.sqrt(3) <= py + r)


_INSIDE = (_inside_circle, _inside_square, _inside_triangle)  # in the order of SHAPES
_REACH = (1.0, 0.85 * math.sqrt(2), math.sqrt(7 / 3))  # farthest point of each shape from its centre, / r


def _coverage(inside, cx, cy, r, angle, reach: float, image_size: int, ss: int):
    """Fraction of each pixel inside the shape on a W x W pixel window that holds every object of
    the chunk (each within ``reach`` of its centre): test ss x ss points per pixel, average.
    Returns the windows (B, W, W) and their top-left pixels ox, oy (B,)."""
    S = image_size
    W = min(S, math.ceil(2 * reach * S) + 1)
    ox = ((cx - reach) * S).floor().long().clamp(0, S - W)
    oy = ((cy - reach) * S).floor().long().clamp(0, S - W)
    u = (torch.arange(W * ss, dtype=torch.float32) + 0.5) / ss  # sample offsets in the window, in pixels
    dx = (ox[:, None, None] + u[None, None, :]) / S - cx[:, None, None]  # (B, 1, m)
    dy = (oy[:, None, None] + u[None, :, None]) / S - cy[:, None, None]  # (B, m, 1); y points down
    c, s = angle.cos()[:, None, None], angle.sin()[:, None, None]
    px, py = c * dx + s * dy, c * dy - s * dx  # (B, m, m) in the object's frame
    hit = inside(px, py, r[:, None, None]).float()
    return reduce(hit, "b (h s1) (w s2) -> b h w", "mean", s1=ss, s2=ss), ox, oy


def _object_coverage(shape, size, cx, cy, r, angle, image_size: int, ss: int) -> torch.Tensor:
    """Coverage (N, H, W) of one object per scene, rendered by (shape, size) group in chunks, each
    on the smallest window around its objects (a small object touches a few pixels only)."""
    out = torch.zeros(len(shape), image_size, image_size)
    for k, inside in enumerate(_INSIDE):
        for s in range(len(SIZES)):
            group = ((shape == k) & (size == s)).nonzero().squeeze(1)
            if len(group) == 0:
                continue
            reach = float(r[group].max()) * _REACH[k]
            W = min(image_size, math.ceil(2 * reach * image_size) + 1)
            for rows in group.split(max(1, 2**20 // (W * ss) ** 2)):
                win, ox, oy = _coverage(inside, cx[rows], cy[rows], r[rows], angle[rows], reach, image_size, ss)
                w = torch.arange(win.shape[-1])
                out[rows[:, None, None], oy[:, None, None] + w[:, None], ox[:, None, None] + w] = win
    return out


def render_scenes(attrs: dict[str, torch.Tensor], image_size: int = 32, jitter: dict | None = None,
                  supersample: int | None = None) -> torch.Tensor:
    """Render scenes from attribute indices (keys as in ``load("shapes").attrs``), (N, 3, S, S) in [-1, 1].

    ``jitter`` (values in [-1, 1] per object, keys dx, dy, scale, angle, with 2 for the second
    object) perturbs each object within its cell; None renders the canonical scene. Anti-aliased by
    supersampling ``supersample`` x ``supersample`` points per pixel (default: 64 // S, from 2 to 8).
    """
    if not 8 <= image_size <= 64:
        raise ValueError(f"shapes renders 8..64 pixels, got image_size={image_size}")
    ss = supersample or min(8, max(2, 64 // image_size))
    palette = torch.tensor(list(COLOURS.values()))
    img = torch.tensor(list(BACKGROUNDS.values()))[attrs["background"]][:, :, None, None]  # (N, 3, 1, 1)
    img = img.expand(-1, -1, image_size, image_size)
    for sfx in ("", "2"):
        if "shape" + sfx not in attrs:
            continue
        j = {k: (jitter[k + sfx] if jitter else torch.zeros(len(img))) for k in ("dx", "dy", "scale", "angle")}
        pos = attrs["position" + sfx]
        cx = ((pos % 3).float() + 0.5) / 3 + JITTER["offset"] * j["dx"]
        cy = ((pos // 3).float() + 0.5) / 3 + JITTER["offset"] * j["dy"]
        r = torch.tensor(list(SIZES.values()))[attrs["size" + sfx]] * (1 + JITTER["scale"] * j["scale"])
        a = _object_coverage(attrs["shape" + sfx], attrs["size" + sfx], cx, cy, r, JITTER["angle"] * j["angle"],
                             image_size, ss)
        a = a[:, None]  # (N, 1, S, S)
        img = img * (1 - a) + palette[attrs["colour" + sfx]][:, :, None, None] * a  # "over" compositing
    return img * 2 - 1


def _phrase(words: dict[str, list[str]], i: int, sfx: str, long: bool) -> str:
    """'a red circle' (short) or 'a small red circle at the top left' (long) for one object of scene i."""
    w = {a: words[a + sfx][i] for a in OBJECT_ATTRIBUTES}
    text = f"{w['size']} {w['colour']} {w['shape']} at the {w['position']}" if long else f"{w['colour']} {w['shape']}"
    return ("an " if text[0] in "aeiou" else "a ") + text


def captions_of(attrs: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Short ("a red circle and a blue square") and descriptive captions
    ("a small red circle at the top left and ... on a dark blue background") of scenes."""
    words = {k: [ATTRIBUTES[k.rstrip("2")][i] for i in v.tolist()] for k, v in attrs.items()}
    sfxs = [s for s in ("", "2") if "shape" + s in attrs]
    scenes = range(len(attrs["shape"]))
    short = [" and ".join(_phrase(words, i, s, False) for s in sfxs) for i in scenes]
    long = [" and ".join(_phrase(words, i, s, True) for s in sfxs) + f" on a {words['background'][i]} background"
            for i in scenes]
    return short, long


def _shapes(split: str, image_size: int, n: int | None, seed: int, objects: int = 1, label: str = "shape",
            jitter: bool = True, start: int = 0, supersample: int | None = None) -> Data:
    """``shapes``: scenes ``start .. start + n - 1`` of the (seed, split) stream.

    Options: ``objects`` (1 or 2; the second object's attributes are shape2, colour2, size2,
    position2, in a different cell, drawn over the first), ``label`` (the attribute returned as y),
    ``jitter`` (small random offset, scale and rotation of each object), ``start``, ``supersample``.
    """
    if objects not in (1, 2):
        raise ValueError(f"objects must be 1 or 2, got {objects}")
    if start < 0:
        raise ValueError(f"start must be a scene index >= 0, got {start}")
    if not 8 <= image_size <= 64:
        raise ValueError(f"shapes renders 8..64 pixels, got image_size={image_size}")
    index = np.arange(start, start + _count(split, n), dtype=np.int64)
    attrs, jit = _draw_scenes(_stream("shapes", split, seed), index, objects)
    if label not in attrs:
        raise ValueError(f"unknown label {label!r}; valid: {', '.join(attrs)}")
    values = {k: ATTRIBUTES[k.rstrip("2")] for k in attrs}
    short, long = captions_of(attrs)
    x = to_8bit_grid(render_scenes(attrs, image_size, jit if jitter else None, supersample))
    return Data("shapes", x, attrs[label], classes=values[label], captions=short, captions_long=long,
                attrs=attrs, attr_values=values,
                meta={"source": "generated", "split": split, "seed": seed, "start": start, "objects": objects,
                      "jitter": jitter, "label": label, "colours": COLOURS, "backgrounds": BACKGROUNDS})


# --------------------------------------------------------------------------------------------
# Hugging Face datasets: the Hub and local directories
# --------------------------------------------------------------------------------------------
HUB_COLUMNS = {  # id -> (image column, label column); other ids: the first Image and ClassLabel columns
    "mnist": ("image", "label"), "ylecun/mnist": ("image", "label"),
    "fashion_mnist": ("image", "label"), "zalando-datasets/fashion_mnist": ("image", "label"),
    "cifar10": ("img", "label"), "uoft-cs/cifar10": ("img", "label"),
    "cifar100": ("img", "fine_label"), "uoft-cs/cifar100": ("img", "fine_label"),
}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_TRUE = {"1", "true", "yes", "on"}
PROBE_TIMEOUT = 3.0  # seconds
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def _probe_address() -> tuple[str, int]:
    """Where a connection must succeed for the Hub to count as reachable: the HTTPS proxy if one
    is set, else the host of ``HF_ENDPOINT`` (default huggingface.co), port 443 unless given."""
    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") \
        or os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    parts = urlparse(url if "://" in url else "http://" + url)
    return parts.hostname or "huggingface.co", parts.port or (443 if parts.scheme == "https" else 80)


def hub_unreachable_reason(timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if the Hub looks reachable, else why not: an offline variable is set, or one TCP
    connection (name lookup included, in a thread so a stuck resolver cannot hold us) fails within
    ``timeout`` seconds. One try, no retries."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return f"{var} is set"
    host, port = _probe_address()
    error = []

    def connect():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            error.append(e)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    if probe.is_alive():
        return f"no connection to {host}:{port} within {timeout:g} s"
    return f"cannot connect to {host}:{port} ({error[0]})" if error else None


@contextmanager
def _hub_offline(offline: bool):
    """Switch ``datasets`` and ``huggingface_hub`` to offline mode (no requests, so no retries)."""
    import datasets.config as dc
    import huggingface_hub.constants as hc

    saved = (dc.HF_HUB_OFFLINE, dc.HF_DATASETS_OFFLINE, hc.HF_HUB_OFFLINE)
    if offline:
        dc.HF_HUB_OFFLINE = dc.HF_DATASETS_OFFLINE = hc.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        dc.HF_HUB_OFFLINE, dc.HF_DATASETS_OFFLINE, hc.HF_HUB_OFFLINE = saved


def _datasets():
    try:
        import datasets
    except ImportError as e:
        raise ImportError("Hub ids and save_to_disk directories need the datasets library: "
                          "pip install 'ddpm_lib[hub]'") from e
    return datasets


def _load_hub(name: str, split: str, image_size, n, resize: str = "bilinear") -> Data:
    """A Hub id through ``datasets.load_dataset``; offline, only from the local datasets cache."""
    datasets = _datasets()
    reason = hub_unreachable_reason()
    if reason is None and datasets.config.HF_HUB_OFFLINE:
        reason = "the datasets library is in offline mode"
    try:
        with _hub_offline(reason is not None):
            ds = datasets.load_dataset(name, split=split)
    except Exception as e:
        if reason is None:
            raise
        raise DatasetUnavailable(
            f"cannot load {name!r}: the Hugging Face Hub is unreachable ({reason}) and {name!r} is not in "
            f"the local datasets cache, and no local folder {name!r} exists in {Path.cwd()}. Offline datasets: "
            f"{', '.join(OFFLINE)} (also 'toy2d:<name>', 'gmm:<name>'); or pass a local image folder or "
            "save_to_disk directory (as ./name for a relative one).") from e
    return _from_hf(ds, name, split, image_size, n, resize, source=f"hub:{name}")


def _looks_like_path(name: str) -> bool:
    """A name meant as a folder: absolute, ./ ../ ~, a trailing slash, more than one slash (a Hub id
    has one at most), a Windows separator, or 'a/b' where the folder 'a' exists here."""
    head = name.split("/", 1)[0]
    return (name.startswith(("/", "./", "../", "~")) or name.endswith("/") or name.count("/") > 1
            or "\\" in name or ("/" in name and head not in ("", ".") and Path(head).is_dir()))


def _local_path(name: str) -> Path | None:
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if _looks_like_path(name):
        raise ValueError(f"no directory at {name!r} (looked in {path.resolve()}); {_choices()}")
    return None


def _load_local(path: Path, split: str, image_size, n, resize: str = "bilinear") -> Data:
    """A ``save_to_disk`` directory (Dataset or DatasetDict) or an image folder."""
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        datasets = _datasets()
        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"{path} has no split {split!r}; it holds {', '.join(ds)}")
            ds = ds[split]
        elif split != "train":
            raise ValueError(f"{path} holds a single Dataset, read as split 'train'; "
                             "save a DatasetDict to have a test split")
        return _from_hf(ds, str(path), split, image_size, n, resize, source=f"disk:{path}")
    return _image_folder(path, split, image_size, n, resize)


def _columns(name: str, features) -> tuple[str, str | None]:
    """(image column, label column or None): ``HUB_COLUMNS`` first, else by feature type."""
    datasets = _datasets()
    if name in HUB_COLUMNS and all(c in features for c in HUB_COLUMNS[name]):
        return HUB_COLUMNS[name]
    images = [c for c, f in features.items() if isinstance(f, datasets.Image)]
    labels = [c for c, f in features.items() if isinstance(f, datasets.ClassLabel)]
    if not images:
        raise ValueError(f"{name} has no image column; its columns are {', '.join(features)}")
    return images[0], (labels[0] if labels else None)


def _from_hf(ds, name: str, split: str, image_size, n, resize: str, source: str) -> Data:
    """A ``datasets.Dataset`` to ``Data``: the first n rows, images to [-1, 1], labels and class names."""
    datasets = _datasets()
    image_col, label_col = _columns(name, ds.features)
    ds = ds.select(range(_take_first(len(ds), n, f"{name} {split}")))
    x = _pil_to_tensor(list(ds[image_col]), image_size, resize)
    y = classes = None
    if label_col is not None:
        y = torch.as_tensor(np.asarray(ds[label_col]), dtype=torch.long)
        feature = ds.features[label_col]
        classes = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
    return Data(name, x, y, classes=classes,
                meta={"source": source, "split": split, "columns": (image_col, label_col)})


def _pil_to_tensor(images: list, image_size, resize: str) -> torch.Tensor:
    """PIL images to (N, C, H, W) in [-1, 1]: C = 1 if every image is grey, else RGB (alpha dropped).
    Images of different sizes need ``image_size``; each is then resized on its own."""
    grey = all(im.mode in ("1", "L", "I", "I;16", "F") for im in images)
    arrays = [np.asarray(im.convert("L" if grey else "RGB")) for im in images]  # uint8 (H, W) or (H, W, 3)
    if len({a.shape for a in arrays}) > 1:
        if image_size is None:
            raise ValueError("the images have different sizes; pass image_size to resize them")
        return torch.cat([_resize(_uint8_to_unit(a[None]), image_size, resize) for a in arrays])
    return _resize(_uint8_to_unit(np.stack(arrays)), image_size, resize)


def _uint8_to_unit(a: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, H, W, C) to float32 (N, C, H, W) in [-1, 1]."""
    x = torch.tensor(a, dtype=torch.float32) / 127.5 - 1
    return rearrange(x, "n h w c -> n c h w") if x.ndim == 4 else x[:, None]


def _image_folder(root: Path, split: str, image_size, n, resize: str) -> Data:
    """Class subfolders (sorted names = classes) or a flat folder of images (no labels); a
    train/ or test/ subfolder holds that split. Files are taken in a fixed shuffled order, so the
    first n mix the classes."""
    from PIL import Image

    if (root / split).is_dir():
        root = root / split
    elif split != "train" or any((root / s).is_dir() for s in SPLITS):
        raise ValueError(f"{root} has no {split!r} subfolder")
    is_image = lambda p: p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS  # noqa: E731
    subdirs = sorted(d for d in root.iterdir() if d.is_dir())
    files = [(f, k) for k, d in enumerate(subdirs) for f in sorted(d.rglob("*")) if is_image(f)]
    if not subdirs:
        files = [(f, -1) for f in sorted(root.iterdir()) if is_image(f)]
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {root}")
    order = np.random.default_rng(0).permutation(len(files))[:_take_first(len(files), n, str(root))]
    files = [files[i] for i in order]
    images = []
    for f, _ in files:
        with Image.open(f) as im:
            im.load()
            images.append(im)
    y = torch.tensor([k for _, k in files]) if subdirs else None
    return Data(str(root), _pil_to_tensor(images, image_size, resize), y,
                classes=[d.name for d in subdirs] if subdirs else None,
                meta={"source": f"folder:{root}", "split": split})
