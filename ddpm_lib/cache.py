"""The weights cache: safetensors files keyed by a hash of the configuration that produced them.

* ``cache_dir()``: ``$DDPM_CACHE`` if set, else ``~/.cache/ddpm_lib``.
* ``config_hash(obj)``: a stable hash of dataclasses, dicts, lists and scalars (sorted keys), so a
  changed configuration never finds a stale file.
* ``save_tensors`` / ``load_tensors``: one safetensors file per checkpoint. Its metadata (step,
  optimizer groups, ...) and a SHA-256 of the tensors live in the file's own header, so tensors and
  metadata are one unit, written atomically (temporary file, fsync, one rename): a killed run leaves
  either the old checkpoint or the new one, never a mix.
* On load the file is verified (it parses, its checksum matches, every float is finite); a file that
  fails raises ``CorruptCheckpoint`` naming the path and the remedy. ``quarantine`` moves such a file
  aside so the caller can retrain.
* ``run_lock(dir)``: an exclusive lock, so two processes training the same run take turns (the
  second then loads what the first finished) instead of interleaving writes.

Nothing here unpickles: safetensors holds only tensors, the header only JSON.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

META_KEY = "ddpm_lib.meta"
SHA_KEY = "ddpm_lib.sha256"


def cache_dir(sub: str | None = None) -> Path:
    base = Path(os.environ.get("DDPM_CACHE") or Path.home() / ".cache" / "ddpm_lib")
    path = base / sub if sub else base
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canonical(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__, **{f.name: _canonical(getattr(obj, f.name))
                                                   for f in dataclasses.fields(obj) if not _omitted(obj, f)}}
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


OMIT_DEFAULT = {"omit_default": True}  # dataclass field metadata: see ``_omitted``


def _omitted(obj, f) -> bool:
    """A field added to a config after weights were cached under it carries ``metadata=OMIT_DEFAULT``:
    at its default value it is left out of the key, so every config that existed before keeps its
    hash (its cached weights and its seeded initial weights)."""
    return bool(f.metadata.get("omit_default")) and f.default is not dataclasses.MISSING \
        and getattr(obj, f.name) == f.default


def config_hash(obj, length: int = 16) -> str:
    blob = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:length]


def seed_of(obj) -> int:
    """A 63-bit seed derived from a configuration (for inits that must depend on the config only)."""
    return int(config_hash(obj), 16) % (2**63 - 1)


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------
TMP_SUFFIX = ".tmp"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_orphans(directory: str | Path, every: bool = False) -> list[Path]:
    """Delete temporary files left in ``directory`` by killed writers: those whose writer's pid (in
    the name) is no longer alive on this machine, or, with ``every`` (a caller holding the
    directory's ``run_lock``), all of them. Returns what was removed."""
    removed = []
    for p in Path(directory).glob(f"*{TMP_SUFFIX}"):
        try:
            pid = int(p.name[:-len(TMP_SUFFIX)].rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            pid = None  # an older writer's name, without a pid
        if every or (pid is not None and pid != os.getpid() and not _pid_alive(pid)):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def _disk_full(e: OSError, path: Path) -> OSError:
    free = shutil.disk_usage(path.parent).free / 1e6 if path.parent.exists() else float("nan")
    return OSError(e.errno, f"no space left to write {path} ({free:.0f} MB free on that disk): free some space, "
                            f"or point DDPM_CACHE at another disk; nothing was replaced")


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise _disk_full(e, path) from e
        raise
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# --------------------------------------------------------------------------------------------
# Checkpoint files
# --------------------------------------------------------------------------------------------
class CorruptCheckpoint(ValueError):
    """A cached file that cannot be trusted: truncated, altered, or holding non-finite numbers."""

    def __init__(self, path: Path, why: str):
        self.path, self.why = Path(path), why
        super().__init__(f"corrupt checkpoint {path}: {why}. Delete it (rm '{path}') and re-run; "
                         "train_cached and the feature-net cache move such a file aside and retrain by themselves")


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of ``tensors`` (sorted by name)."""
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write ``path`` (.safetensors) atomically, with ``meta`` and a checksum in the file's header."""
    path = Path(path)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta or {}, default=str), SHA_KEY: checksum(flat)}
    _atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=header))


def load_tensors(path: str | Path, device="cpu", verify: bool = True) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of a checkpoint, verified: raises ``CorruptCheckpoint`` naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path), device="cpu")
    except Exception as e:  # SafetensorError, OSError on a truncated or garbled file
        raise CorruptCheckpoint(path, f"it cannot be read ({e.__class__.__name__}: {e})") from e
    if META_KEY in header:
        meta = json.loads(header[META_KEY])
    else:  # files written before the metadata moved into the header: a JSON sidecar
        side = path.with_suffix(path.suffix + ".json")
        if not side.exists():
            raise CorruptCheckpoint(path, "it carries no metadata")
        meta = json.loads(side.read_text())
    if verify:
        if SHA_KEY in header and checksum(tensors) != header[SHA_KEY]:
            raise CorruptCheckpoint(path, "its tensors do not match the checksum written with them")
        bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
        if bad:
            raise CorruptCheckpoint(path, f"non-finite values in {bad[:3]}{' ...' if len(bad) > 3 else ''}")
    return {k: v.to(device) for k, v in tensors.items()}, meta


def exists(path: str | Path) -> bool:
    """A checkpoint file is there (written in one rename, so it is whole unless damaged later)."""
    return Path(path).exists()


def quarantine(path: str | Path, why: str = "") -> Path:
    """Move a corrupt file aside (``<name>.corrupt-<time>``), loudly, so that the caller can retrain."""
    path = Path(path)
    dest = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(path, dest)
    side = path.with_suffix(path.suffix + ".json")
    if side.exists():
        os.replace(side, dest.with_name(dest.name + ".json"))
    print(f"WARNING: {path} is corrupt ({why}); moved it to {dest.name} and starting again from scratch",
          file=sys.stderr)
    return dest


# --------------------------------------------------------------------------------------------
# One writer per run directory
# --------------------------------------------------------------------------------------------
@contextlib.contextmanager
def run_lock(directory: str | Path):
    """Hold an exclusive lock on ``directory`` (a ``.lock`` file in it) for the duration; a second
    process asking for it waits, saying so once. A no-op where ``fcntl`` does not exist."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(directory / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is training {directory.name} ...", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
