"""The weights cache: safetensors files keyed by a hash of the configuration that produced them.

* ``cache_dir()``: ``$DDPM_CACHE`` if set, else ``~/.cache/ddpm_lib``.
* ``config_hash(obj)``: a stable hash of dataclasses, dicts, lists and scalars (sorted keys), so a
  changed configuration never finds a stale file.
* ``save_tensors`` / ``load_tensors``: one safetensors file per checkpoint. Its metadata (step,
  optimizer groups, ...), a SHA-256 of the tensors and one of the metadata with it live in the file's
  own header, so tensors and metadata are one unit, written atomically (temporary file, fsync, one
  rename): a killed run leaves either the old checkpoint or the new one, never a mix, and at most
  temporary files, which ``remove_orphans`` deletes (ours and safetensors' own ``.tmpXXXXXX``). A
  full disk is said as such, naming the file, whether the OS or safetensors reports it.
* On load the file is verified (it parses, its checksum matches, every float is finite); a file that
  fails raises ``CorruptCheckpoint`` naming the path and the remedy. ``quarantine`` moves such a file
  aside so the caller can retrain.
* ``run_lock(dir)``: an exclusive lock, so two processes training the same run take turns (the
  second then loads what the first finished) instead of interleaving writes; in a read-only cache
  there is no lock to take, and a finished run there loads.

Nothing here unpickles: safetensors holds only tensors, the header only JSON.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

META_KEY = "ddpm_lib.meta"
SHA_KEY = "ddpm_lib.sha256"
HEADER_SHA_KEY = "ddpm_lib.header_sha256"  # over the metadata and the tensors' checksum (files written before it: none)


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
# safetensors' writer first writes ``.tmpXXXXXX`` (six random characters) beside its target, then renames it:
# a writer killed in between leaves that file, whose name carries no pid. Without the directory's lock such a
# file is taken for an orphan only once nothing has written to it for ORPHAN_AGE_S (a live writer's grows).
WRITER_TMP = ".tmp??????"
ORPHAN_AGE_S = 600.0
READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)  # what a write to a read-only folder raises


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
            _unlink(p, removed)
    for p in Path(directory).glob(WRITER_TMP):  # safetensors' own temporary files
        with contextlib.suppress(FileNotFoundError):
            if every or time.time() - p.stat().st_mtime > ORPHAN_AGE_S:
                _unlink(p, removed)
    return removed


def _unlink(p: Path, removed: list[Path]) -> None:
    """Delete ``p`` if it is still there and the disk can be written (a read-only cache keeps its orphans)."""
    try:
        p.unlink()
        removed.append(p)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno not in READ_ONLY:
            raise


def _disk_full(e: Exception, path: Path) -> OSError | None:
    """The error to raise for a write of ``path`` that failed with ``e`` when the disk is full (or the
    quota spent), else None. safetensors reports its I/O errors as its own ``SafetensorError`` whose text
    carries the OS error ("No space left on device (os error 28)"), not as an ``OSError``."""
    codes = (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, OSError):
        code = e.errno
    else:
        found = re.search(r"os error (\d+)", str(e))
        code = int(found.group(1)) if found else None
    if code not in codes:
        return None
    free = shutil.disk_usage(path.parent).free / 1e6 if path.parent.exists() else float("nan")
    return OSError(code, f"no space left to write {path} ({free:.0f} MB free on that disk): free some space, "
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
    except (OSError, SafetensorError) as e:
        full = _disk_full(e, path)
        if full is not None:
            raise full from e
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


def header_checksum(meta_json: str, tensors_sha: str) -> str:
    """SHA-256 over the header's metadata text (step, optimizer groups, loss state, ...) and the tensors'
    checksum: an edited step or optimizer state fails verification like an edited tensor does."""
    return hashlib.sha256(f"{tensors_sha}|{meta_json}".encode()).hexdigest()


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write ``path`` (.safetensors) atomically, with ``meta`` and checksums in the file's header."""
    path = Path(path)
    flat = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta_json, sha = json.dumps(meta or {}, default=str), checksum(flat)
    header = {META_KEY: meta_json, SHA_KEY: sha, HEADER_SHA_KEY: header_checksum(meta_json, sha)}
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
    if verify and HEADER_SHA_KEY in header and \
            header_checksum(header.get(META_KEY, ""), header.get(SHA_KEY, "")) != header[HEADER_SHA_KEY]:
        raise CorruptCheckpoint(path, "its header (step, optimizer state, ...) does not match its checksum")
    if META_KEY in header:
        try:
            meta = json.loads(header[META_KEY])
        except json.JSONDecodeError as e:
            raise CorruptCheckpoint(path, f"its metadata is not JSON ({e})") from e
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
    process asking for it waits, saying so once. Yields True when held; False when ``directory`` cannot
    be written (a cache on a read-only disk: nobody writes there, so there is nothing to take turns on,
    and a finished run in it loads). A no-op where ``fcntl`` does not exist."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        import fcntl
    except ImportError:  # Windows: no lock
        yield True
        return
    except OSError as e:
        if e.errno not in READ_ONLY or not directory.is_dir():
            raise
        yield False
        return
    try:
        f = open(directory / ".lock", "a+")
    except OSError as e:
        if e.errno not in READ_ONLY:
            raise
        yield False
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process that is training {directory.name} ...", file=sys.stderr)
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
