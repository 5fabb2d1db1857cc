"""Hugging Face datasets: Hub ids and local directories, and the probe that makes offline fail fast.

* any Hugging Face ``datasets`` id (mnist, fashion_mnist, cifar10, ...). Without a network the call
  fails within seconds with ``DatasetUnavailable`` (naming the offline datasets) unless the dataset
  is already in the local ``datasets`` cache; it never waits on the library's retries.
* a local directory: an image folder (class subfolders, or flat; optional train/ and test/) or a
  ``save_to_disk`` directory, converted exactly like a Hub dataset.
"""
from __future__ import annotations

import os
import re
import socket
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from einops import rearrange

from .core import SPLITS, Data, _resize, _take_first
from .registry import OFFLINE, _choices, _families


class DatasetUnavailable(RuntimeError):
    """The dataset lives on the Hugging Face Hub, the Hub cannot be reached and it is not cached."""


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
        forms = ", ".join(f"'{family.name}:<name>'" for family in _families(offline_only=True))
        raise DatasetUnavailable(
            f"cannot load {name!r}: the Hugging Face Hub is unreachable ({reason}) and {name!r} is not in "
            f"the local datasets cache, and no local folder {name!r} exists in {Path.cwd()}. Offline datasets: "
            f"{', '.join(OFFLINE)} (also {forms}); or pass a local image folder or "
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
