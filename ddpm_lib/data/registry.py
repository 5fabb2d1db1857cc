"""The registry of named datasets: ``load(name)`` dispatches through it.

A new dataset is one file in this package that defines a loader and calls ``register``, imported in
``__init__``. A loader is called as ``loader(name, split, image_size, n, seed, **kw)`` with the name
as the user wrote it and must return a ``Data``; it checks its own options.

* A plain name (``register("digits", loader)``) matches that name only.
* A family (``register("toy2d", loader, variants=TOY2D)``) matches ``"toy2d:<variant>"`` and the bare
  ``"toy2d"``; the loader reads the variant after the colon and rejects an unknown one itself. The
  unknown-name error shows the form ``'toy2d:<name>' (variants...)``.
* ``names``: the concrete names to list (default: the name, or ``family:variant`` for each
  variant). Offline datasets (``offline=True``) are listed in ``OFFLINE``, and a near-miss of one of
  them ("shape") is an error rather than a Hub look-up.

Hub ids and local directories are not registered: ``load`` falls back to them for any other name.
"""
from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Entry:
    """One registered dataset or family of datasets."""

    name: str  # "digits", or the family "toy2d"
    loader: Callable  # loader(name, split, image_size, n, seed, **kw) -> Data
    offline: bool = True
    names: tuple[str, ...] = ()  # the concrete names listed by ``names()`` and in errors
    variants: tuple[str, ...] | None = None  # a family's sub-names; None for a plain name


_REGISTRY: dict[str, Entry] = {}  # name or family -> entry, in registration order
OFFLINE: list[str] = []  # the offline names, in registration order (the same list object always)
ONLINE: list[str] = []  # named datasets that need a network (none are built in; Hub ids need no entry)


def register(name: str, loader: Callable, offline: bool = True, names: Sequence[str] | None = None,
             variants: Sequence[str] | None = None) -> Entry:
    """Make ``load(name)`` (or, with ``variants``, ``load("name:<variant>")``) call ``loader``.

    ``loader(name, split, image_size, n, seed, **kw) -> Data``. Raises ValueError for a name that is
    already registered or holds a colon. See the module docstring for ``names`` and ``offline``.
    """
    if not name or ":" in name:
        raise ValueError(f"a dataset name is non-empty and has no ':' (a family's variants follow it), got {name!r}")
    if name in _REGISTRY:
        raise ValueError(f"dataset {name!r} is already registered; unregister({name!r}) first")
    if names is None:
        names = [name] if variants is None else [f"{name}:{v}" for v in variants]
    entry = Entry(name, loader, offline, tuple(names), None if variants is None else tuple(variants))
    _REGISTRY[name] = entry
    _relist()
    return entry


def unregister(name: str) -> Entry:
    """Remove a registered dataset or family (KeyError if there is none); returns its entry."""
    if name not in _REGISTRY:
        raise KeyError(f"no dataset {name!r} is registered; registered: {', '.join(_REGISTRY)}")
    entry = _REGISTRY.pop(name)
    _relist()
    return entry


def registered() -> dict[str, Entry]:
    """A copy of the registry: name or family -> ``Entry``, in registration order."""
    return dict(_REGISTRY)


def _relist() -> None:
    """Rebuild OFFLINE and ONLINE in place, and drop the memo of ``load``: a name may load otherwise now."""
    OFFLINE[:] = [n for e in _REGISTRY.values() if e.offline for n in e.names]
    ONLINE[:] = [n for e in _REGISTRY.values() if not e.offline for n in e.names]
    package = sys.modules.get(__package__)
    clear_memo = getattr(package, "clear_memo", None)  # absent while the package is being imported
    if clear_memo is not None:
        clear_memo()


def _entry(name: str) -> Entry | None:
    """The entry that loads ``name``: a plain name exactly, a family as 'family' or 'family:<sub>'."""
    entry = _REGISTRY.get(name.partition(":")[0])
    if entry is None or (entry.variants is None and entry.name != name):
        return None
    return entry


def _families(offline_only: bool = False) -> list[Entry]:
    return [e for e in _REGISTRY.values() if e.variants is not None and (e.offline or not offline_only)]


def _choices() -> str:
    forms = "".join(f"'{e.name}:<name>' ({', '.join(e.variants)}), " for e in _families())
    return (f"valid: {', '.join(OFFLINE + ONLINE)}, or the forms {forms}'<hub id>' (e.g. mnist, fashion_mnist, "
            "cifar10) and '<local path>' (an image folder or a save_to_disk directory)")


def _near_offline_name(name: str) -> bool:
    """'shape', 'digit', 'toy2d': typos of offline names are errors, not Hub look-ups."""
    candidates = OFFLINE + [e.name for e in _families(offline_only=True)]
    return "/" not in name and bool(difflib.get_close_matches(name, candidates, cutoff=0.8))
