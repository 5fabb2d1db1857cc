"""The container every loader returns, ``Data``, and what the loaders share: the seed streams of
the generated datasets, example counts, resizing, and the 8-bit grid every image dataset ends on.

Images are float32 (N, C, H, W) in [-1, 1]; 2-D points are (N, 2).
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

SPLITS = ("train", "test")
DEFAULT_N = {"train": 10_000, "test": 2_000}  # for the generated datasets
RESIZE_MODES = ("bilinear", "nearest")


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
# helpers of the loaders
# --------------------------------------------------------------------------------------------
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

