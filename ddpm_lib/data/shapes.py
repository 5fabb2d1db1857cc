"""``shapes``: procedural RGB scenes (shape, colour, size, position, background) with attribute
labels and captions, rendered from a counter-based hash of (seed, split, index), so scene i is the
same image whatever n, start or batch asked for it. The text-to-image data of the later chapters.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from einops import reduce

from .core import Data, _count, _stream, to_8bit_grid
from .registry import register

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


def _load_shapes(name: str, split: str, image_size, n, seed, **kw) -> Data:
    """The registered loader of ``shapes`` (image_size None: 32)."""
    return _shapes(split, 32 if image_size is None else image_size, n, seed, **kw)


register("shapes", _load_shapes)
