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

The package, one file per concern: ``core`` (``Data`` and shared helpers), ``registry`` (named
datasets; ``load`` dispatches through it), ``toys`` (toy2d and gmm), ``digits``, ``shapes``, ``hub``
(Hub ids, local directories, the offline probe). A new offline dataset is one new file that calls
``register(name, loader)``, imported below; ``register`` and ``unregister`` are also here for tests
and notebooks. Every name of the former single module stays importable from ``ddpm_lib.data``; to
replace one in a test, patch the submodule that uses it (``monkeypatch.setattr(data.hub, ...)``).
"""
from __future__ import annotations

import functools

from .core import (DEFAULT_N, RESIZE_MODES, SPLITS, Data, _as_index, _count, _points_only, _resize,  # noqa: F401
                   _stream, _take_first, to_8bit_grid)
from .registry import (OFFLINE, ONLINE, Entry, _choices, _entry, _near_offline_name, register,  # noqa: F401
                       registered, unregister)
from .toys import (GMMS, TOY2D, TOY2D_ALIASES, _checkerboard, _eight_gaussians_mixture, _gmm,  # noqa: F401
                   _moons, _swiss_roll, _toy2d)
from .digits import _digits, _digits_split  # noqa: F401
from .shapes import (ATTRIBUTES, BACKGROUNDS, COLOURS, JITTER, OBJECT_ATTRIBUTES, POSITIONS,  # noqa: F401
                     SHAPES, SIZES, _INSIDE, _REACH, _coverage, _draw_scenes, _inside_circle, _inside_square,
                     _inside_triangle, _object_coverage, _phrase, _shapes, _uniform, captions_of, render_scenes)
from .hub import (_HUB_ID, _TRUE, HUB_COLUMNS, IMAGE_EXTENSIONS, PROBE_TIMEOUT,  # noqa: F401
                  DatasetUnavailable, _columns, _datasets, _from_hf, _hub_offline, _image_folder, _load_hub,
                  _load_local, _local_path, _looks_like_path, _pil_to_tensor, _probe_address, _uint8_to_unit,
                  hub_unreachable_reason)


def names(hub: bool = True) -> list[str]:
    """The offline names, then (``hub=True``) the Hub ids whose columns are mapped in ``HUB_COLUMNS``
    and any registered online names."""
    return list(OFFLINE) + (sorted({*HUB_COLUMNS, *ONLINE}) if hub else [])


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
    entry = _entry(name)
    if entry is not None:
        return entry.loader(name, split, image_size, n, seed, **kw)
    if _HUB_ID.fullmatch(name) and not _near_offline_name(name):
        return _load_hub(name, split, image_size, n, **kw)
    raise ValueError(f"unknown dataset {name!r}; {_choices()}")


_memo = functools.lru_cache(maxsize=8)(_dispatch)


def clear_memo() -> None:
    """Forget the datasets held in memory by earlier ``load`` calls."""
    _memo.cache_clear()

