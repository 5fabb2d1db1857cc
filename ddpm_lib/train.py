"""The training loop: one function, ``train``, for every model in the book.

It trains ``net`` on ``loss_fn(net, batch)`` and owns all infrastructure (rule 7 of the house):
AdamW (fused on CUDA), linear warmup, gradient clipping, EMA, mixed precision on CUDA (bf16 where
the GPU has it, else fp16 with a gradient scaler: Colab's T4 has no bf16), optional
channels_last and torch.compile, a tqdm bar, a JSONL metric log, checkpoints and DDP.

Determinism is by construction, so that a killed run resumes exactly and N processes match one:
* the batch at step s is a pure function of (seed, s): an epoch-wise permutation of the data;
* the randomness a loss draws (noise levels, eps) comes from ``batch.generator``, seeded from
  (seed, s) and identical on every rank; ``batch.randn(...)`` draws for the *global* batch and
  returns this rank's rows, so 2 ranks x 32 rows see exactly the noise of 1 rank x 64 rows;
* torch's global RNG (dropout) is reseeded every step from (seed, s, rank).
* torch's global RNG is forked for the run: the caller's RNG state after ``train`` is the same
  whether the run trained, resumed or loaded (so what a notebook does next never depends on it).
A checkpoint (model, EMA, optimizer moments, step, the objective's own state such as the importance
sampler's history or a target network's weights) is one safetensors file whose header carries the
metadata and a checksum, written atomically (one rename) every ``checkpoint_every_images``, every
``checkpoint_every_s`` seconds of training and at the end. A corrupt checkpoint is moved aside and
the run starts again; so is a corrupt EMA snapshot, and a missing one is recomputed the same way (the
same weights, by construction). One process at a time trains a run directory (a file lock): a second
waits, then loads. A finished run in a cache that cannot be written (a read-only disk) loads: no lock,
no write. A NaN or infinite loss stops the run with an error before the step is applied; the last
good checkpoint stays on disk. Training length is counted in images seen.

``train`` also is the weights cache: with ``run_dir`` under ``cache.cache_dir()`` named by a hash of
(model config, objective, data, training config) — see ``run_dir_for`` — a finished run is loaded,
not retrained, and a changed configuration gets a new directory.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
import torch.nn as nn

from . import cache
from .progress import tqdm


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    train_images: int = 100_000  # length of the run, in images seen (global)
    batch_size: int = 64  # global batch, split evenly over ranks
    lr: float = 2e-4
    warmup_images: int = 0  # linear warmup of the learning rate
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay_t = min(ema_decay, (1 + t) / (10 + t)), so short runs' EMA is usable
    seed: int = 0
    bf16: bool = True  # mixed precision on CUDA: bf16 where supported, else fp16 + grad scaler (ignored on CPU)
    channels_last: bool = False
    compile: bool = False
    checkpoint_every_images: int = 0  # 0: only at the end
    snapshot_every_images: int = 0  # also keep the EMA weights at these points (ema-<images>.safetensors)
    log_every: int = 10  # steps

    def __post_init__(self):
        for name in ("train_images", "batch_size", "lr", "log_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"TrainConfig.{name} must be a positive number, got {v!r}")
        for name in ("warmup_images", "checkpoint_every_images", "snapshot_every_images", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be a number >= 0, got {v!r}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must lie in [0, 1), got {self.ema_decay!r}")

    @property
    def steps(self) -> int:
        return math.ceil(self.train_images / self.batch_size)

    @classmethod
    def from_preset(cls, source, **overrides) -> "TrainConfig":
        """A run's config from a chapter's preset or a model's recipe: the fields of ``PRESET_FIELDS``
        that ``source`` has, then ``overrides`` (the seed, another length, channels_last, ...)."""
        taken = {k: getattr(source, k) for k in PRESET_FIELDS if hasattr(source, k)}
        return cls(**{**taken, **overrides})


# What a preset or recipe may set for its run under the same names (a preset's other fields, such as
# chapter 05's loss weights ``betas``, never reach the optimiser)
PRESET_FIELDS = ("train_images", "batch_size", "lr", "warmup_images", "weight_decay", "ema_decay", "seed",
                 "channels_last")


# --------------------------------------------------------------------------------------------
# Distributed helpers (torchrun sets WORLD_SIZE, RANK, LOCAL_RANK)
# --------------------------------------------------------------------------------------------
def dist_info() -> tuple[int, int]:
    """(rank, world size); initialises the process group under torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def _all_gather(t: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return t
    out = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(out, t.contiguous())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# Batches and their randomness
# --------------------------------------------------------------------------------------------
@dataclass
class Batch:
    """This rank's rows of the global batch at ``step``, plus randomness shared by all ranks."""

    x: torch.Tensor
    y: torch.Tensor | None
    extras: dict
    step: int
    rows: slice  # this rank's rows within the global batch
    global_size: int
    generator: torch.Generator

    def _local(self, t: torch.Tensor) -> torch.Tensor:
        return t[self.rows].to(self.x.device)

    def randn(self, *shape, dtype=torch.float32) -> torch.Tensor:
        """Standard normal noise of per-example ``shape`` for this rank's rows."""
        return self._local(torch.randn(self.global_size, *shape, generator=self.generator, dtype=dtype,
                                       device=self.generator.device))

    def rand(self, *shape) -> torch.Tensor:
        return self._local(torch.rand(self.global_size, *shape, generator=self.generator, device=self.generator.device))

    def randint(self, high: int) -> torch.Tensor:
        return self._local(torch.randint(0, high, (self.global_size,), generator=self.generator,
                                         device=self.generator.device))

    def sample_t(self, sampler) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise levels and importance weights from a ``schedules`` t-sampler, for this rank's rows."""
        t, w = sampler.sample(self.global_size, generator=self._cpu_generator())
        return self._local(t), self._local(w)

    def _cpu_generator(self) -> torch.Generator:
        if self.generator.device.type == "cpu":
            return self.generator
        g = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=self.generator,
                                                            device=self.generator.device).item()))
        return g


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Global indices of the batch at ``step``: consecutive slices of per-epoch permutations."""
    start = step * batch_size
    out, pos = [], start
    while pos < start + batch_size:
        epoch, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = min(n - offset, start + batch_size - pos)
        out.append(perm[offset:offset + take])
        pos += take
    return torch.cat(out)


def _step_seed(seed: int, step: int, salt: int = 0) -> int:
    return (seed * 6_364_136_223_846_793_005 + step * 1_442_695_040_888_963_407 + salt) % (2**63 - 1)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    net: nn.Module  # the raw weights after the last step
    ema: nn.Module  # the exponential moving average (what samplers should use)
    log: list[dict] = field(default_factory=list)
    steps: int = 0
    wall_s: float = 0.0  # time spent training in this call (0 when loaded)
    loaded: bool = False  # True when the finished run came from the cache
    resumed_from: int = 0
    run_dir: Path | None = None

    @property
    def snapshots(self) -> dict[int, Path]:
        """EMA snapshots kept during training (``snapshot_every_images``), by images seen."""
        if self.run_dir is None:
            return {}
        found = {int(p.stem.split("-")[1].split(".")[0]): p for p in self.run_dir.glob("ema-*.safetensors")
                 if cache.exists(p)}
        return dict(sorted(found.items()))

    def losses(self, key: str = "loss") -> tuple[list[int], list[float]]:
        rows = [r for r in self.log if key in r]
        return [r["images"] for r in rows], [r[key] for r in rows]


# --------------------------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------------------------
CKPT = "checkpoint.safetensors"


def _optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = opt.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"optim.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer(opt, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(run_dir: Path, net, ema, opt, step: int, config_key: str, extra: dict,
                    objective_tensors: dict | None = None) -> None:
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    tensors.update({f"objective.{k}": v for k, v in (objective_tensors or {}).items()})
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()})
    opt_t, opt_meta = _optimizer_tensors(opt)
    tensors.update(opt_t)
    meta = dict(step=step, config_key=config_key, optimizer=opt_meta, extra=extra,
                rng="torch's global RNG is reseeded every step from (seed, step, rank)")
    cache.save_tensors(run_dir / CKPT, tensors, meta)


def load_weights(path: Path, net: nn.Module, which: str = "ema") -> nn.Module:
    """Load the ``ema`` or ``model`` weights of a checkpoint into ``net`` (safetensors only)."""
    if which not in ("ema", "model"):
        raise ValueError(f"unknown weights {which!r}; valid choices: ['ema', 'model']")
    tensors, _ = cache.load_tensors(path)  # verified: a corrupt file raises, naming itself
    prefix = which + "."
    net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return net


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------
def _update_ema(ema: nn.Module, net: nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters()):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(ema.buffers(), net.buffers()):
            e.copy_(b)


def _read_log(path: Path, upto: int) -> list[dict]:
    """The rows of ``log.jsonl`` up to step ``upto``. A last line cut short (a crash or a full disk in the
    middle of a write) is left out, said once (training rewrites the file); any other bad line raises,
    naming the file and the line."""
    if not path.exists():
        return []
    lines = [(i, line) for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    rows = []
    for i, line in lines:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == lines[-1][0]:
                print(f"WARNING: {path}: its last line ({i}) was cut short mid-write; left out", file=sys.stderr)
                break
            raise ValueError(f"{path}, line {i}, is not a JSON row ({e}); delete the file to drop the run's "
                             "training log (the weights are in the checkpoint)") from e
    return [r for r in rows if r.get("step", 0) <= upto]


def train(net: nn.Module, loss_fn: Callable, data, cfg: TrainConfig, run_dir: str | Path | None = None,
          config_key: str = "", device: torch.device | str | None = None, progress: bool = True,
          max_steps: int | None = None, desc: str = "train", checkpoint_every_s: float | None = None) -> TrainResult:
    """Train ``net`` on ``loss_fn(net, batch) -> loss`` or ``(loss, logs)`` or ``(loss, logs, per_example)``;
    the objectives and their optional hooks (``bind``, ``after_step``, ``tensors``, ...) are in ``objectives``.

    ``data``: a tensor of inputs, a (x, y) tuple, a (x, y, {name: tensor}) tuple whose named
    per-example tensors reach the loss as ``batch.extras``, or an object with ``.x`` and ``.y`` (``data.Data``).
    ``per_example`` (a dict of per-row tensors) is gathered over ranks and handed to
    ``loss_fn.update(**per_example)`` if the loss has that method (the importance sampler's history).
    ``run_dir``: where checkpoints and the log live; a finished run there is loaded instead of
    trained, an unfinished one resumed. ``config_key`` must match the checkpoint's (else: error).
    ``max_steps`` stops early (the run stays resumable), for chunked training and tests.
    ``checkpoint_every_s``: also checkpoint after this many seconds of training (an interrupted
    notebook then loses at most that much work).
    """
    rank, world = dist_info()
    device = torch.device(device) if device is not None else default_device()
    run_dir = Path(run_dir) if run_dir is not None else None
    lock = cache.run_lock(run_dir) if run_dir is not None and rank == 0 else contextlib.nullcontext(True)
    devices = [device.index or 0] if device.type == "cuda" else []
    with lock as writable, torch.random.fork_rng(devices=devices):  # writable False: a read-only cache, loads only
        if world > 1:
            dist.barrier()  # every rank reads the checkpoint only after rank 0 holds the lock
        if run_dir is not None and rank == 0 and writable:
            cache.remove_orphans(run_dir, every=True)
        return _train(net, loss_fn, data, cfg, run_dir, config_key, device, progress, max_steps, desc,
                      checkpoint_every_s, rank, world, writable=writable)


def _read_only(run_dir: Path, what: str) -> PermissionError:
    return PermissionError(f"{run_dir} cannot be written (a read-only cache) and {what}: point DDPM_CACHE at a "
                           "writable folder (a copy of this cache) to train it")


def _resume_state(run_dir: Path | None, config_key: str, device, writable: bool = True) -> tuple[dict, dict] | None:
    """The checkpoint in ``run_dir`` (tensors, meta), or None; a corrupt one is moved aside (in a
    read-only cache: raised)."""
    if run_dir is None or not cache.exists(run_dir / CKPT):
        return None
    try:
        tensors, meta = cache.load_tensors(run_dir / CKPT, device=device)
    except cache.CorruptCheckpoint as e:
        if not writable:
            raise
        cache.quarantine(run_dir / CKPT, e.why)
        return None
    if meta.get("config_key", "") != config_key:
        raise ValueError(f"the checkpoint in {run_dir} belongs to another configuration "
                         f"({meta.get('config_key')!r} != {config_key!r}); use another run_dir")
    return tensors, meta


def _snapshots_whole(run_dir: Path, cfg: TrainConfig, writable: bool) -> bool:
    """Whether every EMA snapshot a finished run of ``cfg`` wrote is in ``run_dir`` and verifies; a corrupt
    one is moved aside (as a corrupt checkpoint is), so that the caller recomputes the missing points."""
    every = max(1, math.ceil(cfg.snapshot_every_images / cfg.batch_size))
    whole = True
    for done in sorted({*range(every, cfg.steps + 1, every), cfg.steps}):
        path = run_dir / f"ema-{done * cfg.batch_size}.safetensors"
        try:
            cache.load_tensors(path)
        except FileNotFoundError:
            if not writable:
                raise _read_only(run_dir, f"its EMA snapshot {path.name} is missing") from None
            print(f"WARNING: {path} is missing; training the run again to recompute it", file=sys.stderr)
            whole = False
        except cache.CorruptCheckpoint as e:
            if not writable:
                raise
            cache.quarantine(path, e.why)
            whole = False
    return whole


def _train(net, loss_fn, data, cfg, run_dir, config_key, device, progress, max_steps, desc, checkpoint_every_s,
           rank, world, writable: bool = True) -> TrainResult:
    x_all, y_all, extras_all = _unpack(data)
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    net = net.to(device)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    start, log = 0, []
    if hasattr(loss_fn, "bind"):
        loss_fn.bind(net)  # e.g. a target network starts as a copy of the initial weights
    state = _resume_state(run_dir, config_key, device, writable)
    if state is not None and int(state[1]["step"]) >= cfg.steps and cfg.snapshot_every_images and rank == 0 \
            and not _snapshots_whole(run_dir, cfg, writable):
        state = None  # a snapshot is gone: train again from the start (the same weights, by construction)
    if world > 1:  # every rank starts from the same state (rank 0 alone checked the snapshots)
        redo = torch.tensor(float(state is None), device=device)
        dist.broadcast(redo, 0)
        state = None if redo.item() else state
    # a finished run needs no optimizer (the first one built in a process imports torch._dynamo: ~1 s)
    opt = None if state is not None and int(state[1]["step"]) >= cfg.steps else \
        torch.optim.AdamW(net.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                          fused=device.type == "cuda")
    if state is not None:
        tensors, meta = state
        net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        if opt is not None:
            _load_optimizer(opt, tensors, meta["optimizer"])
        if hasattr(loss_fn, "load_state_dict") and meta.get("extra", {}).get("loss_state") is not None:
            loss_fn.load_state_dict(meta["extra"]["loss_state"])
        obj_tensors = {k[10:]: v for k, v in tensors.items() if k.startswith("objective.")}
        if obj_tensors and hasattr(loss_fn, "load_tensors"):
            loss_fn.load_tensors(obj_tensors)
        start = int(meta["step"])
        log = _read_log(run_dir / "log.jsonl", start)
    total = cfg.steps
    end = total if max_steps is None else min(total, start + max_steps)
    result = TrainResult(net=net, ema=ema, log=log, steps=start, resumed_from=start, run_dir=run_dir)
    if start >= total:
        result.loaded = True
        return result
    if not writable:
        raise _read_only(run_dir, f"its run is not finished (step {start} of {total})")

    model = net
    if cfg.compile:
        model = torch.compile(model)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    per_rank = cfg.batch_size // world
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    amp = amp_dtype(device, cfg.bf16)
    autocast = torch.autocast("cuda", dtype=amp) if amp is not None else contextlib.nullcontext()
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    if scaler.is_enabled() and state is not None and meta.get("extra", {}).get("scaler_state"):
        scaler.load_state_dict(meta["extra"]["scaler_state"])
    ckpt_every = max(1, math.ceil(cfg.checkpoint_every_images / cfg.batch_size)) if cfg.checkpoint_every_images else 0
    snap_every = max(1, math.ceil(cfg.snapshot_every_images / cfg.batch_size)) if cfg.snapshot_every_images else 0
    t0 = last_ckpt = time.time()
    bar = tqdm(range(start, end), desc=desc, disable=not progress or rank != 0, initial=0, total=end - start)
    log_file = None
    if run_dir is not None and rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
        log_file = open(run_dir / "log.jsonl", "a")
    try:
        for step in bar:
            torch.manual_seed(_step_seed(cfg.seed, step, 1 + rank))  # dropout and anything global
            idx = batch_indices(step, cfg.batch_size, len(x_all), cfg.seed)[rows]
            gen = torch.Generator(device=device).manual_seed(_step_seed(cfg.seed, step))
            xb = x_all[idx].to(device, non_blocking=True)
            if cfg.channels_last and xb.ndim == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            extras = {k: v[idx].to(device) for k, v in extras_all.items()}
            batch = Batch(x=xb, y=None if y_all is None else y_all[idx].to(device), extras=extras, step=step,
                          rows=rows, global_size=cfg.batch_size, generator=gen)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * min(1.0, (step + 1) * cfg.batch_size / cfg.warmup_images) if cfg.warmup_images else cfg.lr
            with autocast:
                loss, logs, per_example = _normalise(loss_fn(model, batch))
            bad = torch.tensor(0.0 if torch.isfinite(loss.detach()).all() else 1.0, device=device)
            if world > 1:
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)
            if bad.item() > 0:
                where = f"; the last good checkpoint is {run_dir / CKPT}" if run_dir is not None and cache.exists(run_dir / CKPT) else ""
                raise FloatingPointError(f"non-finite loss ({loss.item()}) at step {step} "
                                         f"({step * cfg.batch_size} images): training stopped{where}")
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)  # clip the true gradients (a no-op without fp16)
            gnorm = nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip if cfg.grad_clip else float("inf"))
            scaler.step(opt)  # skips the step when fp16 gradients overflowed
            scaler.update()
            decay = min(cfg.ema_decay, (1 + step) / (10 + step)) if cfg.ema_warmup else cfg.ema_decay
            _update_ema(ema, net, decay)
            if hasattr(loss_fn, "after_step"):
                loss_fn.after_step(step + 1, net)  # e.g. the target network's update
            if per_example and hasattr(loss_fn, "update"):
                loss_fn.update(**{k: _all_gather(v.detach(), world) for k, v in per_example.items()})
            done = step + 1
            if done % cfg.log_every == 0 or done == end:
                vals = {"loss": loss.detach().float(), **{k: torch.as_tensor(v).detach().float() for k, v in logs.items()}}
                if world > 1:
                    for v in vals.values():
                        dist.all_reduce(v)
                        v /= world
                row = dict(step=done, images=done * cfg.batch_size, lr=opt.param_groups[0]["lr"],
                           grad_norm=float(gnorm), time_s=round(time.time() - t0, 3),
                           **{k: float(v) for k, v in vals.items()})
                log.append(row)
                if log_file:
                    log_file.write(json.dumps(row) + "\n")
                    log_file.flush()
                bar.set_postfix(loss=f"{row['loss']:.4f}")
            if run_dir is not None and snap_every and (done % snap_every == 0 or done == total) and rank == 0:
                cache.save_tensors(run_dir / f"ema-{done * cfg.batch_size}.safetensors",
                                   {f"ema.{k}": v for k, v in ema.state_dict().items()}, {"step": done})
            if run_dir is not None and ((ckpt_every and done % ckpt_every == 0) or done == end
                                        or _time_to_checkpoint(last_ckpt, checkpoint_every_s, device, world)):
                _checkpoint(run_dir, net, ema, opt, done, config_key, loss_fn, rank, world, scaler)
                last_ckpt = time.time()
    finally:
        bar.close()
        if log_file:
            log_file.close()
    result.steps, result.wall_s, result.log = end, time.time() - t0, log
    return result


def _time_to_checkpoint(last: float, every_s: float | None, device, world: int) -> bool:
    """Whether ``every_s`` seconds have passed since the last checkpoint (rank 0's clock decides)."""
    if not every_s:
        return False
    due = time.time() - last >= every_s
    if world == 1:
        return due
    flag = torch.tensor(float(due), device=device)
    dist.broadcast(flag, 0)
    return bool(flag.item())


def amp_dtype(device, want: bool = True) -> torch.dtype | None:
    """The autocast dtype for training on ``device``: bf16 on a CUDA GPU that supports it, fp16 (with a
    gradient scaler) on one that does not (T4, V100), None on CPU or when ``want`` is False."""
    device = torch.device(device)
    if device.type != "cuda" or not want:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _checkpoint(run_dir, net, ema, opt, step, config_key, loss_fn, rank, world, scaler=None):
    if rank == 0:
        extra = {"loss_state": loss_fn.state_dict() if hasattr(loss_fn, "state_dict") else None}
        if scaler is not None and scaler.is_enabled():
            extra["scaler_state"] = scaler.state_dict()
        obj_t = loss_fn.tensors() if hasattr(loss_fn, "tensors") else None
        save_checkpoint(run_dir, net, ema, opt, step, config_key, extra, obj_t)
    if world > 1:
        dist.barrier()


def _unpack(data) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """(x, y, extras): ``extras`` are further per-example tensors (caption tokens, embeddings) given
    as the third element of a tuple; they reach the objective as ``batch.extras``."""
    if isinstance(data, torch.Tensor):
        return data, None, {}
    if isinstance(data, (tuple, list)):
        if len(data) > 3 or (len(data) == 3 and not isinstance(data[2], dict)):
            raise TypeError("data as a tuple is (x,), (x, y) or (x, y, {name: per-example tensor})")
        extras = dict(data[2]) if len(data) == 3 else {}
        for k, v in extras.items():
            if not torch.is_tensor(v) or len(v) != len(data[0]):
                raise ValueError(f"extras[{k!r}] must be a tensor with one row per example ({len(data[0])})")
        return data[0], (data[1] if len(data) > 1 else None), extras
    if hasattr(data, "x"):
        return data.x, getattr(data, "y", None), {}
    raise TypeError("data must be a tensor, an (x, y) or (x, y, extras) tuple, or an object with .x and .y")


def _normalise(out) -> tuple[torch.Tensor, dict, dict]:
    if torch.is_tensor(out):
        return out, {}, {}
    if len(out) == 2:
        return out[0], out[1], {}
    return out[0], out[1], out[2]


# --------------------------------------------------------------------------------------------
# The weights cache
# --------------------------------------------------------------------------------------------
def fingerprint(data) -> dict:
    """What identifies a data set for the cache key: a hash of its tensors and its name."""
    x, y, extras = _unpack(data)
    key = {"name": getattr(data, "name", "tensor"), "x": x, "y": y}
    if extras:
        key["extras"] = extras
    return key


def run_dir_for(name: str, **key: Any) -> tuple[Path, str]:
    """(directory under the cache, config key) for a run named ``name`` with configuration ``key``."""
    h = cache.config_hash(key)
    return cache.cache_dir("runs") / f"{name}-{h}", h


class RunLog:
    """What ``train_cached`` did while this log was open: one entry per model (run directory): its
    name, whether it was trained (in any call) or only loaded, the training seconds of all calls, how
    many calls asked for it. A notebook's session opens one at its start and reports it on the run
    card, so that a wall time measured with cached weights says so; a cell interrupted and run again
    asks for its models again, and each still counts once.

    ``log.open()`` makes it the log that ``train_cached`` writes to until another is opened (a
    notebook's cells run one after another); ``with RunLog() as log:`` opens it for a block."""

    def __init__(self):
        self.entries: list[dict] = []
        self._before: RunLog | None = None

    def open(self) -> "RunLog":
        global _open_log
        _open_log = self
        return self

    def __enter__(self) -> "RunLog":
        self._before = _open_log
        return self.open()

    def __exit__(self, *exc) -> None:
        global _open_log
        _open_log = self._before

    def add(self, name: str, res: "TrainResult", run: str) -> None:
        entry = dict(name=name, loaded=res.loaded, resumed_from=res.resumed_from, steps=res.steps,
                     wall_s=round(res.wall_s, 1), run=run, calls=1)
        before = next((e for e in self.entries if e["run"] == run), None)
        if before is None:
            self.entries.append(entry)
        else:  # the same model again (a re-run cell): trained if any call trained it
            before.update(loaded=before["loaded"] and res.loaded, steps=res.steps, calls=before["calls"] + 1,
                          wall_s=round(before["wall_s"] + res.wall_s, 1),
                          resumed_from=res.resumed_from if before["loaded"] else before["resumed_from"])


_open_log: RunLog | None = None  # the log train_cached writes to (RunLog.open)
# 2: network inits seeded from their config, one-file checkpoints (runs cached before are not reused)
CACHE_VERSION = 2
CHECKPOINT_EVERY_S = 300.0


def train_cached(name: str, net: nn.Module, loss_fn, data, cfg: TrainConfig, extra: dict | None = None,
                 load_only: bool = False, **kw) -> TrainResult:
    """``train`` in a cache directory keyed by everything that determines the weights: the network's
    config (``net.cfg``), the objective (``loss_fn.config()``), the data's tensors, the training config
    and ``extra``. Run twice, it loads; change anything, it trains anew.

    The library's networks draw their initial weights from a generator seeded by their config
    (``nets.seeded_init``) and ``train`` draws everything else from (seed, step), so the weights under a
    key never depend on what ran before in the process. Checkpoints every ``checkpoint_every_s``
    (default 300 s): an interrupted notebook resumes on re-run. ``load_only=True`` never trains: it
    raises FileNotFoundError unless the finished run is in the cache."""
    key = dict(model=getattr(net, "cfg", None), objective=loss_fn.config() if hasattr(loss_fn, "config") else None,
               train=cfg, data=fingerprint(data), extra=extra or {}, version=CACHE_VERSION)
    run_dir, h = run_dir_for(name, **key)
    if load_only and not finished(run_dir, cfg):
        raise FileNotFoundError(f"no finished run {name!r} in the cache ({run_dir}) and load_only=True")
    kw.setdefault("checkpoint_every_s", CHECKPOINT_EVERY_S)
    res = train(net, loss_fn, data, cfg, run_dir=run_dir, config_key=h, desc=name, **kw)
    if _open_log is not None:
        _open_log.add(name, res, run_dir.name)
    return res


def finished(run_dir: str | Path, cfg: TrainConfig) -> bool:
    """Whether ``run_dir`` holds the final checkpoint of a run of ``cfg`` (a corrupt one raises
    ``cache.CorruptCheckpoint``)."""
    path = Path(run_dir) / CKPT
    return cache.exists(path) and int(cache.load_tensors(path)[1].get("step", 0)) >= cfg.steps
