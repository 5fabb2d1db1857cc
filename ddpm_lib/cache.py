"""The weights cache: safetensors files keyed by a hash of the configuration that produced them.

* ``cache_dir()``: ``$DDPM_CACHE`` if set, else ``~/.cache/ddpm_lib``.
* ``config_hash(obj)``: a stable hash of dataclasses, dicts, lists and scalars (sorted keys), so a
  changed configuration never finds a stale file.
* ``save_tensors`` / ``load_tensors``: safetensors plus a JSON sidecar of metadata, written
  atomically (temporary file, fsync, rename), so a killed run never leaves half a checkpoint.

Nothing here unpickles: safetensors holds only tensors, the sidecar only JSON.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def cache_dir(sub: str | None = None) -> Path:
    base = Path(os.environ.get("DDPM_CACHE") or Path.home() / ".cache" / "ddpm_lib")
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canonical(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__, **{f.name: _canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return {"__tensor__": hashlib.sha256(obj.detach().cpu().contiguous().numpy().tobytes()).hexdigest(),
                "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, float):
        return repr(obj)
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    raise TypeError(f"cannot hash a {type(obj).__name__} into a cache key; use dataclasses, dicts, lists and scalars")


def config_hash(obj, length: int = 16) -> str:
    blob = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write ``path`` (.safetensors) and ``path``.json atomically; the JSON is written last."""
    path = Path(path)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    _atomic_write(path, lambda tmp: save_file(flat, tmp))
    _atomic_write(path.with_suffix(path.suffix + ".json"),
                  lambda tmp: Path(tmp).write_text(json.dumps(meta or {}, indent=1, default=str)))


def load_tensors(path: str | Path, device="cpu") -> tuple[dict[str, torch.Tensor], dict]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    side = path.with_suffix(path.suffix + ".json")
    meta = json.loads(side.read_text()) if side.exists() else {}
    return load_file(str(path), device=str(device)), meta


def exists(path: str | Path) -> bool:
    """A checkpoint counts only when both the tensors and their metadata were written."""
    path = Path(path)
    return path.exists() and path.with_suffix(path.suffix + ".json").exists()
