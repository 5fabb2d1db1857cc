"""``digits``: scikit-learn's 1,797 real 8x8 handwritten digits, a fixed stratified 1437/360 split
(offline; the seed is ignored).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .core import SPLITS, Data, _resize, _take_first
from .registry import register


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


def _load_digits(name: str, split: str, image_size, n, seed, **kw) -> Data:
    """The registered loader of ``digits`` (a fixed dataset: the seed is ignored)."""
    return _digits(split, image_size, n, **kw)


register("digits", _load_digits)
