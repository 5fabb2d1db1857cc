"""Named presets (smoke / cpu / gpu) of every chapter, as frozen dataclasses.

``get(chapter, profile, **overrides)`` returns the chapter's config. ``profile="auto"`` means the
``DDPM_PROFILE`` environment variable when it is set, else ``gpu`` when CUDA is available, else ``cpu``.
Overrides replace single fields; an unknown chapter, profile or field raises a ValueError that lists
the valid ones. Budgets: smoke <= ~90 s on a 2-core CPU (CI), cpu <= ~20 min on a 2-core CPU,
gpu ~5 min on one H100-class GPU (two chapters per 15-minute device session), estimated from counted
FLOPs and launched operations by ``ddpm_lib.budget`` (``python -m ddpm_lib.budget`` prints them;
untested: no gpu run has been recorded yet).
"""
from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass

PROFILES = ("smoke", "cpu", "gpu", "auto")


def resolve(profile: str | None = "auto") -> str:
    """``auto`` (or None) -> DDPM_PROFILE if set, else gpu with CUDA, else cpu."""
    if profile in (None, "", "auto"):
        env = os.environ.get("DDPM_PROFILE", "").strip()
        if env:
            if env not in PROFILES or env == "auto":
                raise ValueError(f"DDPM_PROFILE={env!r} is not a profile; valid choices: {list(PROFILES[:3])}")
            return env
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; valid choices: {list(PROFILES)}")
    return profile


GPU_ON_CPU = "DDPM_ALLOW_GPU_PROFILE_ON_CPU"  # =1: run the gpu profile without CUDA anyway (a code-path check)


def require_device(profile: str) -> None:
    """Refuse the gpu profile where torch sees no CUDA device: it is sized for one GPU and runs for hours
    on a CPU (chapter 04: about 4 hours for the first of 14 models). ``DDPM_ALLOW_GPU_PROFILE_ON_CPU=1``
    overrides (tools/device_session.sh's DEVICE=cpu dry run sets it)."""
    if profile != "gpu" or os.environ.get(GPU_ON_CPU, "").strip() == "1":
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"profile gpu needs a CUDA GPU and torch sees none: on this machine the gpu profile runs for "
                         f"hours. Use the cpu profile (or smoke), or set {GPU_ON_CPU}=1 to run it here anyway")


# --------------------------------------------------------------------------------------------
# A preset's rules: a field's own in its metadata (``ruled``), the cross-field ones in its class's
# ``__post_init__``; so every preset, and every preset with parameters set, is checked as a whole
# when it is made (``get``: at a notebook's start, before any work)
# --------------------------------------------------------------------------------------------
# A numeric field's range (every number in a tuple field too): positive unless its field says otherwise.
POSITIVE, ZERO_OK, FRACTION, OPEN_FRACTION = "> 0", ">= 0", "in [0, 1)", "in (0, 1)"
BOUNDS = {POSITIVE: lambda v: v > 0, ZERO_OK: lambda v: v >= 0, FRACTION: lambda v: 0 <= v < 1,
          OPEN_FRACTION: lambda v: 0 < v < 1}


def ruled(default, *, bound: str = POSITIVE, min=None, nonempty: bool = False, contains: tuple = (), why: str = ""):
    """A preset field with its rule beside it: its numbers' ``bound`` (one of BOUNDS: a field that may
    be 0, a fraction), a lower bound ``min`` (inclusive), a tuple that must be ``nonempty`` or hold the
    members ``contains``; ``why`` names what needs it. Metadata only: the field's value, and so every
    cache key, is unchanged."""
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {list(BOUNDS)}, got {bound!r}")
    return dataclasses.field(default=default, metadata=dict(bound=bound, min=min, nonempty=nonempty,
                                                            contains=tuple(contains), why=why))


def bound_of(chapter: str, name: str) -> str:
    """The range a parameter's numbers must lie in (``seed``: >= 0; any field not ruled: > 0)."""
    if name == "seed":
        return ZERO_OK
    field = {f.name: f for f in dataclasses.fields(type(_presets(chapter)["cpu"]))}.get(name)
    return field.metadata.get("bound", POSITIVE) if field is not None else POSITIVE


def check(cfg) -> None:
    """Every ``ruled`` field of ``cfg``; raises a ValueError naming the parameter and what it allows."""
    for f in dataclasses.fields(cfg):
        m, v = f.metadata, getattr(cfg, f.name)
        why = f" ({m['why']})" if m.get("why") else ""
        bound = m.get("bound")
        numbers = [x for x in (v if isinstance(v, tuple) else (v,))
                   if isinstance(x, (int, float)) and not isinstance(x, bool)]
        if bound and not all(BOUNDS[bound](x) for x in numbers):
            raise ValueError(f"parameter {f.name} must be {bound}{why}, got {v!r}")
        if m.get("min") is not None and v is not None and v < m["min"]:
            raise ValueError(f"parameter {f.name} must be >= {m['min']}{why}, got {v!r}")
        if m.get("nonempty") and not v:
            raise ValueError(f"parameter {f.name} must not be empty{why}, got {v!r}")
        missing = [c for c in m.get("contains", ()) if c not in v]
        if missing:
            raise ValueError(f"parameter {f.name} must contain {', '.join(map(repr, missing))}{why}, got {v!r}")


def swept(cfg, name: str, sweep: str) -> None:
    """``name``'s value must be one of the values of the tuple field ``sweep`` (a claim reads that run)."""
    v, values = getattr(cfg, name), getattr(cfg, sweep)
    if v not in values:
        raise ValueError(f"parameter {name} must be one of the swept {sweep} {list(values)}, got {v!r}")


def above_one(cfg, name: str) -> None:
    """The tuple field ``name`` holds a scale above 1 (the claims compare the largest against s = 1)."""
    if max(getattr(cfg, name)) <= 1:
        raise ValueError(f"parameter {name} must contain a scale above 1 (the claims compare the largest with s = 1), "
                         f"got {getattr(cfg, name)!r}")


def divides(cfg, name: str, of: str) -> None:
    """``name`` divides the field ``of`` (attention heads of a width)."""
    v, width = getattr(cfg, name), getattr(cfg, of)
    if width % v:
        ok = [d for d in range(1, min(width, 16) + 1) if width % d == 0]
        raise ValueError(f"parameter {name} must divide {of} = {width} (the attention heads split it evenly; "
                         f"e.g. {ok}), got {v!r}")


# GroupNorm groups of nets.unet's presets (nets.unet.PRESETS; profiles imports nothing of the library's,
# a test checks that the two agree): a UNet's channels must be multiples of them
UNET_GROUPS = {"tiny8": 8, "small16": 8, "small32": 8, "ddpm_cifar10": 32}


def unet_channels(cfg, *names: str) -> None:
    """``cfg.unet`` is a known UNet preset and each channel count in ``names`` (0: off) a multiple of its groups."""
    if cfg.unet not in UNET_GROUPS:
        raise ValueError(f"parameter unet must be one of {sorted(UNET_GROUPS)}, got {cfg.unet!r}")
    g = UNET_GROUPS[cfg.unet]
    for name in names:
        v = getattr(cfg, name)
        if v and v % g:
            raise ValueError(f"parameter {name} must be a multiple of {g} (the GroupNorm groups of unet {cfg.unet!r}; "
                             f"e.g. {max(g, v // g * g)} or {(v // g + 1) * g}), got {v!r}")


# --------------------------------------------------------------------------------------------
# Chapter presets
# --------------------------------------------------------------------------------------------
PRESETS: dict[str, dict[str, object]] = {}  # chapter -> {"smoke", "cpu", "gpu"}, each under its dataclass


def register(chapter: str, smoke, cpu, gpu) -> None:
    """Add a chapter's presets (all three must be instances of one frozen dataclass)."""
    if not (type(smoke) is type(cpu) is type(gpu)) or not dataclasses.is_dataclass(smoke):
        raise TypeError("presets must be instances of one dataclass")
    PRESETS[chapter] = {"smoke": smoke, "cpu": cpu, "gpu": gpu}


@dataclass(frozen=True)
class ForwardProcess:
    """00_forward_process: the forward process made visible."""

    T: int = 1000
    n_toy: int = 2000  # points of the 2-D toy
    toy: str = "toy2d:moons"
    image_data: str = "digits"
    image_size: int = 16
    n_images: int = 8  # images shown along t
    n_snapshots: int = 6  # noise levels shown


register(
    "00_forward_process",
    smoke=ForwardProcess(n_toy=500, n_images=4),
    cpu=ForwardProcess(),
    gpu=ForwardProcess(n_toy=5000, image_size=32),
)


@dataclass(frozen=True)
class IGPTChapter:
    """01_igpt: a palette, an autoregressive GPT (two sizes) and a BERT-style model on the same token
    sequences of two-object ``shapes`` scenes; linear probes by layer, across snapshots and model
    sizes, and fine-tuning."""

    image_size: int = 16  # shapes scenes, image_size**2 tokens
    objects: int = 2  # objects per scene (the second drawn over the first)
    label: str = "shape"  # the attribute probed (of the first object); raw pixels read it poorly
    k: int = 12  # palette size
    palette_ks: tuple[int, ...] = ruled((2, 4, 8, 16, 32, 64), nonempty=True)
    n_train: int = 3000
    n_test: int = 1000
    n_layer: int = 4
    n_embd: int = 64
    n_head: int = 4
    small_layer: int = 2  # the second model size (Fig. 3's cross-model comparison)
    small_embd: int = 32
    dropout: float = ruled(0.0, bound=FRACTION)
    # per model; ~0.3 s per step of the 4x64 GPT on 2 idle cores (BERT 1.0x, fine-tuning AR 1.2x / BERT 2x).
    # Record at 750 steps with both 500-step fine-tunes: 1,270 s (GPT 230, small GPT 56, BERT 231, fine-tunes
    # 179 and 302, feature net 23, the rest evaluation); without the BERT fine-tune and with a 750-step AR
    # fine-tune: 1,270 - 302 + 90 = ~1,060 s (estimate)
    train_images: int = 750 * 32  # issue 35: 1000 -> 750 steps per model for the 20-min budget
    batch_size: int = 32
    lr: float = 2e-3
    warmup_images: int = ruled(2000, bound=ZERO_OK)
    checkpoints: int = 4  # snapshots per model for the loss-probe relation
    # labelled sequences seen by each fine-tune: 3x the second edition's 250 * 32, whose fine-tunes ended below
    # their own probes with train L_clf above the probe's. Measured before the third edition (1000-step
    # pretraining): the AR fine-tune read 41.0 / 46.0 / 48.9 / 47.9% at 1x / 2x / 3x / 4x against its probe's
    # 45.0%, train L_clf 1.08 / 0.96 / 0.84 / 0.87 against the probe's 1.02. The third edition's records: 3x
    # with both fine-tunes, 24 min (over the 20-min budget); 2x (750-step pretraining), 21 min, where the AR
    # fine-tune missed its did-not-train gate by 0.001 nats (train L_clf 0.990, its probe's 0.989). Now 3x for
    # the AR fine-tune, paid for by running the BERT fine-tune (302 s: two passes per step) only where
    # finetune_bert is set
    finetune_images: int = 750 * 32
    # fine-tune BERT too (the "BERT catches up" claim): off in the cpu profile, where it never trained (8,000
    # and 16,000 labelled sequences) and cost a quarter of the chapter's budget
    finetune_bert: bool = False
    finetune_lr: float = 5e-4
    gen_weight: float = 1.0  # weight of L_gen in the fine-tuning loss L_clf + gen_weight * L_gen
    n_samples: int = 32
    probe_C: float = 0.5  # inverse L2 strength of the logistic-regression probe
    reader_images: int | None = None  # the palette test's attribute reader: images seen; None: its fixed recipe

    def __post_init__(self):
        check(self)
        divides(self, "n_head", "n_embd")


register(
    "01_igpt",
    smoke=IGPTChapter(palette_ks=(2, 8), k=8, n_train=300, n_test=200, n_layer=2, n_embd=32, small_layer=1,
                      small_embd=16, train_images=30 * 32, warmup_images=0, checkpoints=2,
                      finetune_images=10 * 32, finetune_bert=True, n_samples=8, reader_images=2000),
    cpu=IGPTChapter(),
    # one GPU: the same scenes at 32x32 (1,024 tokens, as iGPT's CIFAR-10 models) with a wider GPT
    # (untested: never run on a GPU; ~5 min by ddpm_lib.budget)
    gpu=IGPTChapter(image_size=32, k=16, n_train=20_000, n_test=2000, n_layer=8, n_embd=256, n_head=8,
                    small_layer=4, small_embd=128, train_images=8_000 * 64, batch_size=64, lr=5e-4,
                    warmup_images=50_000, checkpoints=5, finetune_images=2000 * 64, finetune_bert=True,
                    n_samples=64),
)


@dataclass(frozen=True)
class DDPMChapter:
    """02_ddpm. The main model (samples, progressive generation, rate-distortion, interpolation)
    is trained on ``data`` at ``image_size``; the Table 2 ablation trains six small models with one
    shared budget on ``ablation_data`` at ``ablation_size``, the three eps rows ``ablation_seeds``
    times each (every row and seed sampled on the full chain)."""

    T: int = 1000
    data: str = "digits"
    data_fallback: str = "shapes"  # used when ``data`` is a Hub id that cannot be reached
    image_size: int = 16
    unet: str = "small16"  # nets.unet preset; channels follow the data
    base_channels: int = 24
    num_res_blocks: int = 1
    dropout: float = ruled(0.0, bound=FRACTION)
    train_images: int = 600 * 64  # issue 35: 720 -> 600 batches for the 20-min cpu budget
    batch_size: int = 64
    lr: float = 1e-3
    warmup_images: int = ruled(5000, bound=ZERO_OK)
    ema_decay: float = ruled(0.995, bound=FRACTION)
    sample_steps: int = 100  # respaced ancestral steps for the main model's quality numbers (160 before issue 35)
    n_samples: int = 256
    nll_images: int = 32  # held-out images for the exact (all-T-step) bound and rate-distortion
    ablation_data: str = "digits"
    ablation_size: int = 8
    ablation_unet: str = "tiny8"
    ablation_images: int = 256 * 64  # per row, the same for every row (issue 35: 400 -> 256 for the budget)
    ablation_lr: float = 1e-3
    ablation_warmup_images: int = ruled(2000, bound=ZERO_OK)
    ablation_samples: int = 64  # each sampled with all T ancestral steps (issue 35: 96 -> 64 for the 20-min budget)
    ablation_nll_images: int = 128  # held-out images of each row's bound (per-image intervals, paired across rows)
    ablation_nll_steps: int = 64  # stratified estimate of the bound (first and last terms exact)
    ablation_nll_reps: int = 1  # estimates of each held-out image's bound, averaged (intervals: over images, seeds)
    # training seeds of each eps row of Table 2, whose comparisons the claims draw (>= claims.MIN_SEEDS for
    # a claim about a training outcome); the mu-tilde rows train one (they do not learn at this budget)
    ablation_seeds: int = ruled(3, min=1)
    # k > 1: the mu-tilde row on the true bound is retrained with k times the budget if it did not train; 1: not
    # (an exercise since the third edition: 4x costs about 3 minutes on 2 cores)
    mu_budget_factor: int = 1
    shared_xt_sources: int = 32  # held-out images encoded to a shared x_t (4 samples each)
    bootstrap: int = 200  # bootstrap replicates of the main model's FD / KID / precision / recall (no claim reads them)
    # paired bootstrap replicates of Table 2's FDs and of the variance test (metrics.fd_bootstrap: FD only, the
    # features computed once); claim-bearing, so >= claims.MIN_BOOTSTRAP
    fd_bootstrap: int = 2000
    feature_images: int | None = None  # the feature nets' training length in images seen; None: their fixed recipe
    toy_n: int = 5000  # points of the 2-D toy that Fig. 2's chain is drawn on
    progressive_n: int = 32  # images of the progressive-generation figure (Fig. 6)

    def __post_init__(self):
        check(self)
        unet_channels(self, "base_channels")


register(
    "02_ddpm",
    smoke=DDPMChapter(T=100, train_images=30 * 32, batch_size=32, warmup_images=0, sample_steps=20,
                      n_samples=32, nll_images=8, ablation_images=8 * 32, ablation_samples=12, ablation_nll_images=16,
                      ablation_nll_steps=4, ablation_seeds=2, shared_xt_sources=8, bootstrap=20,
                      fd_bootstrap=200, feature_images=1440, ablation_warmup_images=0, toy_n=2000,
                      progressive_n=8),
    cpu=DDPMChapter(),
    # one GPU: CIFAR-10 with DDPM's CIFAR model (far shorter than the paper's 800k steps) where the
    # Hub is reachable, else shapes at 32x32; the ablation at 16x16
    # (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget)
    gpu=DDPMChapter(data="cifar10", image_size=32, unet="ddpm_cifar10", base_channels=128, num_res_blocks=2,
                    dropout=0.1, train_images=3_000 * 128, batch_size=128, lr=2e-4, ema_decay=0.9995,
                    sample_steps=250, n_samples=2000, nll_images=128, ablation_size=16,
                    ablation_unet="small16", ablation_images=400 * 64, ablation_samples=256,
                    ablation_nll_steps=100),
)


@dataclass(frozen=True)
class ImprovedDDPMChapter:
    """03_improved_ddpm. Four models (linear / cosine x L_simple / L_hybrid) with one shared budget,
    plus L_vlb with uniform and importance-sampled t at its own budget; all on ``data`` at ``image_size``."""

    T: int = 1000
    data: str = "digits"
    data_fallback: str = "shapes"
    image_size: int = 8
    unet: str = "tiny8"
    base_channels: int = 32
    train_images: int = 450 * 64  # per model, the same for every model (500 before issue 35's budget cut)
    batch_size: int = 64
    lr: float = 1e-3
    warmup_images: int = ruled(2000, bound=ZERO_OK)
    ema_decay: float = ruled(0.995, bound=FRACTION)
    snapshots: int = 3  # held-out bound along training (seed 0), for the importance-sampling curves
    # per importance-sampling model (warm-up ~370-400 batches: IS for ~35%; 900 before issue 35's budget cut)
    is_images: int = 600 * 64
    is_seeds: int = ruled(3, min=1)  # training seeds per arm of the importance-sampling experiment (init and data order)
    grad_batches: int = 24  # minibatch gradients for the gradient-noise comparison
    nll_steps: int = 100  # stratified estimate of the bound for the table (first and last terms exact)
    # stratified estimates averaged into each held-out image's bound (clipped and unclipped from one set of model
    # calls); intervals are over images, paired by image between models, so one estimate per image suffices
    nll_reps: int = ruled(1, min=1)
    fd_bootstrap: int = ruled(2000, min=1)  # FD's paired bootstrap replicates (metrics.FDBootstrap); claim-bearing
    nll_images: int = 128
    n_samples: int = 128
    table_sample_steps: int = 250  # respaced sampler for the table's FD column
    step_counts: tuple[int, ...] = ruled((10, 25, 50, 1000), nonempty=True)  # 100: issue 35's budget cut
    skip_fractions: tuple[float, ...] = ruled((0.0, 0.2), bound=FRACTION, nonempty=True)  # the paper's ~20% (0.4: issue 35 cut)
    feature_images: int | None = None  # as in DDPMChapter

    def __post_init__(self):
        check(self)
        unet_channels(self, "base_channels")


register(
    "03_improved_ddpm",
    smoke=ImprovedDDPMChapter(T=100, train_images=12 * 32, batch_size=32, warmup_images=0, snapshots=2,
                              is_images=40 * 32, is_seeds=1, grad_batches=6, fd_bootstrap=20,
                              nll_steps=8, nll_images=16, n_samples=16, table_sample_steps=10,
                              step_counts=(5, 10, 100), skip_fractions=(0.0, 0.3), feature_images=1440),
    cpu=ImprovedDDPMChapter(),
    # one GPU: 32x32 (CIFAR-10 where reachable, else shapes), DDPM-sized models are too slow for six
    # rows in 5 minutes, so a 9M parameter UNet with a short budget
    # (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget)
    gpu=ImprovedDDPMChapter(data="cifar10", image_size=32, unet="small32", base_channels=64,
                            train_images=900 * 128, batch_size=128, lr=2e-4, warmup_images=20_000,
                            ema_decay=0.9995, nll_steps=100, nll_images=256, n_samples=512,
                            table_sample_steps=100, step_counts=(10, 25, 50, 100, 250)),
)


@dataclass(frozen=True)
class ADMChapter:
    """04_adm. An unconditional and a class-conditional model, a noisy classifier, the guidance sweep,
    DDIM with the eps-form guidance, temperature, and the architecture rows (their own budget), all on
    ``data`` at ``image_size``; optionally (``sr_size`` > 0) the upsampling stack to ``sr_size``."""

    T: int = 1000
    # one-object shapes scenes, the object's colour as the class (8 classes): shape, size, position and
    # background vary inside a class, and the data are unlimited, so the samples and the real-vs-real floor
    # share n = n_samples (the second edition's digits capped n at their 360 test images, and the unguided
    # conditional model sat at that floor: Table 4 could not be decided)
    data: str = "shapes"
    data_fallback: str = "shapes"
    label: str = "colour"  # the shapes attribute that is the class (other data sets: their own labels)
    n_train: int | None = 24_000  # training scenes (fixed data sets: None, all of them)
    image_size: int = 8
    schedule: str = "linear"  # ADM's ImageNet 128-512 models use the linear schedule
    unet: str = "tiny8"
    base_channels: int = 32
    # each of the unconditional and the conditional model. Set by a pilot before the third edition's record
    # (the conditional model, 50 ancestral steps, 1,000 samples against the floor of 1,000 test scenes, FD
    # floor 4.37): FD 63.6 / 43.0 / 21.4 / 22.3 / 19.8 / 22.0 at 250 / 500 / 750 / 1,000 / 1,250 / 1,500
    # batches, 14.6 / 9.8 / 4.9 / 5.1 / 4.5 / 5.0x the floor, colour read 58 / 85 / 94 / 97 / 97 / 96%. It
    # levels off at ~5x from 750 batches: the budget where the model has learned what it will at this size,
    # well above the floor (the 3-5x)
    train_images: int = 750 * 64
    batch_size: int = 64
    lr: float = 1e-3
    warmup_images: int = ruled(2000, bound=ZERO_OK)
    ema_decay: float = ruled(0.995, bound=FRACTION)
    clf_images: int = 600 * 64  # the noisy classifier (the colour of x_t: an easy label)
    clf_lr: float = 1e-3
    clf_weight_decay: float = 0.05  # ADM's classifiers: 0.05 (0.2 at 64x64)
    # each architecture row and seed (their own, shorter budget): 200 batches (600 in the second edition's
    # single models), cut to pay for 5 configurations x 3 seeds
    arch_images: int = 200 * 64
    # training seeds per architecture configuration (initialisation, batches and noise varied); the rows'
    # intervals are over seeds (claims.MIN_SEEDS = 3; fewer reads provisional)
    arch_seeds: int = ruled(3, min=2, why="the interval over seeds needs two")
    # respaced ancestral steps of the sweep (the paper: 250; the second edition 100 at n = 360): 1,000
    # samples x 50 steps cost ~20 s per configuration on 2 cores
    sample_steps: int = 50
    ddim_steps: int = 25
    # the paper's IN256 scale with DDIM-25 (against 1.0 for its 250 ancestral steps)
    ddim_scales: tuple[float, ...] = ruled((2.5,), nonempty=True)
    # Table 4's scales (the second edition swept 0, 0.5, 1, 2, 4, 10 at n = 360)
    scales: tuple[float, ...] = ruled((0.0, 1.0, 10.0), bound=ZERO_OK, contains=(0.0, 1.0),
                                      why="the claims compare guided samples with s = 0 and s = 1")
    temperatures: tuple[float, ...] = ruled((0.8,), nonempty=True)  # App. G, against tau = 1 (the claim: lowest)
    # per configuration; the floor: as many fresh test images (the test split holds 2,000 shapes scenes)
    n_samples: int = ruled(1000, min=4, why="KID needs 4 samples")
    ref_images: int | None = 1000  # training images the samples are scored against (None: all)
    heldout_images: int | None = 400  # test images of the held-out loss and the classifier's curve (None: all)
    heldout_t: int = 10  # grid of steps for the held-out L_simple of the architecture rows
    clf_t: int = 20  # grid of steps for the classifier's accuracy curve
    bootstrap: int = ruled(2000, min=1)  # FD's paired bootstrap replicates (metrics.FDBootstrap); claim-bearing
    # precision / recall replicates (both k-NN manifolds rebuilt each time, ~0.02 s each at n = 1,000): 2,000
    # for 9 sample sets would cost ~6 min, so their rows read provisional (claims.MIN_BOOTSTRAP)
    pr_bootstrap: int = ruled(500, min=1)
    feature_images: int | None = None  # as in DDPMChapter
    sr_size: int = ruled(0, bound=ZERO_OK)  # > 0: the upsampling stack image_size -> sr_size (Table 6 shape); 0: skipped
    sr_images: int = 1500 * 64  # each model of the upsampling stack

    def __post_init__(self):
        check(self)
        above_one(self, "scales")
        unet_channels(self, "base_channels")


register(
    "04_adm",
    # smoke also runs the upsampling stack (shapes 8 -> 16, a few dozen batches: a code-path test)
    smoke=ADMChapter(T=100, n_train=2000, train_images=40 * 32, batch_size=32, warmup_images=0,
                     clf_images=20 * 32, arch_images=6 * 32, arch_seeds=2, sample_steps=10, ddim_steps=5,
                     scales=(0.0, 1.0, 4.0), temperatures=(0.8,), n_samples=40, ref_images=200,
                     heldout_images=100, heldout_t=4, clf_t=4, bootstrap=20, pr_bootstrap=20,
                     feature_images=640, sr_size=16, sr_images=6 * 32),
    # cpu: the upsampling stack is off: two more denoisers, a classifier and a feature net at 16x16 do not
    # fit the budget next to the sweep at n = 1,000 and the architecture seeds
    cpu=ADMChapter(),
    # one GPU: CIFAR-10 (shapes when the Hub is unreachable) at 16x16 for the guided models (untested:
    # never run on a GPU; sized to ~5 min by ddpm_lib.budget; the architecture rows' 3 seeds x 5 at 300
    # batches each, was 6 models at 600). The upsampling stack 16 -> 32 is off
    # (sr_size=32, sr_images=1500 * 128 turns it on): two more UNets, a classifier and a feature net
    # at 32x32 are estimated at ~4 more minutes
    gpu=ADMChapter(data="cifar10", n_train=None, image_size=16, unet="small16", base_channels=64,
                   train_images=2000 * 128, batch_size=128, lr=2e-4, warmup_images=20_000, ema_decay=0.9995,
                   clf_images=1500 * 128, clf_lr=3e-4, arch_images=300 * 128, sample_steps=250,
                   scales=(0.0, 0.5, 1.0, 2.0, 4.0, 10.0), temperatures=(0.9, 0.8), ddim_scales=(1.0, 2.5),
                   n_samples=1000, ref_images=5000, heldout_images=1000, heldout_t=20, bootstrap=2000,
                   pr_bootstrap=200, sr_size=0, sr_images=1500 * 128),
)


@dataclass(frozen=True)
class DALLEChapter:
    """05_dalle. dVAEs (the likelihood, KL-weight and temperature ablation, the last two over
    ``dvae_seeds`` training seeds), one transformer over caption and image tokens, two small CLIPs
    (a reranker and a judge), the independent reader, on ``shapes`` scenes. The chapter's dVAEs use
    a Gaussian likelihood: measured 2026-11-29, the paper's logit-Laplace dVAE reconstructs the
    background and drops the small objects of these scenes (object colour read in 2-3% of
    reconstructions; a Gaussian one at the same budget: 80%). The code grid is 8x8 (``levels=1``):
    measured 2026-12-06 (pilot script, seed 0, beta 6.6), a 4x4 grid's reconstructions score 22x the
    real-vs-real FD floor (the second edition's record), an 8x8 grid's 14x at 1,000 steps (width 64,
    lr 2e-3, sigma 0.1), 9.6x with sigma 0.05, and 6.4x with sigma 0.05, width 32, lr 4e-3 and 1,500
    steps (beta 0 at that recipe: 6.3x); the shape is read in ~40-50% of reconstructions on any of
    them (real scenes average-pooled to 8x8: 42%)."""

    image_size: int = 16
    objects: int = 1
    n_train: int = 8000
    n_test: int = 1000
    text_len: int = 16  # caption tokens (the longest one-object descriptive caption has 13 words)
    codes: int = 64  # K
    levels: int = 1  # max-pool halvings: an 8x8 code grid at 16x16
    dvae_width: int = 32
    dvae_batch: int = 64
    dvae_images: int = 1500 * 64  # per dVAE
    dvae_lr: float = 4e-3
    dvae_seeds: int = ruled(3, min=2, why="the KL-weight and temperature rows compare training seeds")
    likelihood: str = "gaussian"  # the main dVAEs' likelihood; the other one is trained once, as an ablation
    sigma: float = 0.05  # the Gaussian's standard deviation (pixels in [-1, 1])
    # the KL-weight ablation (tau annealed), each with dvae_seeds seeds; 6.6 is the main dVAE
    betas: tuple[float, ...] = ruled((0.0, 6.6), bound=ZERO_OK, contains=(0.0, 6.6), why="the paper compares beta 6.6 with 0")
    beta_images: int = 100 * 64  # beta's cosine warm-up (the paper: 5,000 of 3M updates)
    tau_end: float = 1 / 16
    tau_images: int = 900 * 64  # tau's cosine anneal 1 -> tau_end (the paper: 150,000 updates)
    elb_draws: int = ruled(5, min=1)  # Gumbel draws per held-out image for the true-vs-relaxed ELB gap
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    gpt_images: int = 900 * 64  # the transformer's training sequences
    gpt_lr: float = 1e-3
    text_weight: float = ruled(1 / 8, bound=FRACTION)
    # a second transformer with this text weight (Sec. 2.2's choice, tested); None: not trained (cpu: its
    # budget pays for the 8x8 grid; the second edition found no significant difference at 4x4)
    ablation_text_weight: float | None = ruled(None, bound=FRACTION)
    clip_images: int = 640 * 128  # per CLIP (reranker and judge)
    n_captions: int = 200  # held-out captions for reranking
    n_rerank: int = 32  # samples per caption
    n_eval: int = 1000  # samples (one per held-out caption) for FD and the blur curve
    ref_images: int = 2000  # training scenes FD compares against (its bootstrap resamples them)
    blur_sigmas: tuple[float, ...] = ruled((0.0, 0.5, 1.0, 2.0), bound=ZERO_OK, contains=(0.0, 1.0),
                                          why="the blur test compares sigma 1 with no blur")
    bootstrap: int = ruled(2000, min=1)
    feature_images: int | None = None  # as in DDPMChapter
    reader_images: int | None = None  # the reader's training length; None: its fixed recipe

    def __post_init__(self):
        check(self)
        divides(self, "n_head", "n_embd")
        if self.likelihood not in ("logit_laplace", "gaussian"):  # objectives.DVAEObjective.LIKELIHOODS
            raise ValueError(f"unknown likelihood {self.likelihood!r}; valid choices: ['logit_laplace', 'gaussian']")
        for name, most in (("ref_images", self.n_train), ("n_eval", self.n_test)):
            if getattr(self, name) > most:
                raise ValueError(f"parameter {name} must be <= {most}, got {getattr(self, name)}")


register(
    "05_dalle",
    smoke=DALLEChapter(n_train=600, n_test=200, dvae_width=32, dvae_images=30 * 32, dvae_seeds=2,
                       beta_images=5 * 32, tau_images=20 * 32, elb_draws=2, n_layer=2, n_embd=32,
                       gpt_images=30 * 32, ablation_text_weight=0.5, clip_images=30 * 64, n_captions=20,
                       n_rerank=8, n_eval=100, ref_images=200, blur_sigmas=(0.0, 1.0), bootstrap=20,
                       feature_images=1440, reader_images=1000),
    cpu=DALLEChapter(),
    # one GPU: 32x32 two-object scenes, K = 512, an 8x8 code grid, a larger transformer
    # (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget)
    gpu=DALLEChapter(image_size=32, objects=2, n_train=40_000, n_test=2000, text_len=24, codes=512, levels=2,
                     dvae_width=128, dvae_lr=2e-3, dvae_images=1500 * 128, beta_images=200 * 128, tau_images=1000 * 128,
                     n_layer=8, n_embd=256, n_head=8, gpt_images=3500 * 128, gpt_lr=5e-4,
                     clip_images=1000 * 256, n_captions=500, n_rerank=64, n_eval=2000),
)


@dataclass(frozen=True)
class GLIDEChapter:
    """06_glide. A text-conditional UNet (GLIDE's two text routes) trained with 20% empty captions, a
    noised CLIP (the guide) and a clean CLIP (the judge), the classifier-free and CLIP guidance sweeps,
    inpainting (the replacement trick against a fine-tuned model with mask channels); optionally a
    larger text model (``big_channels`` > 0, Table 4 in shape) and a text upsampler (``sr_from`` > 0)."""

    image_size: int = 16
    objects: int = 1
    n_train: int = 8000
    n_test: int = 1000
    T: int = 1000
    schedule: str = "cosine"  # GLIDE: squaredcos_cap_v2
    unet: str = "small16"
    base_channels: int = 24
    text_width: int = 64
    text_layers: int = 2
    p_empty: float = ruled(0.2, bound=FRACTION)  # captions replaced by the empty sequence (GLIDE Sec. 4.2)
    # 1,000 batches left the model below caption following (measured: 13% vs 10% empty); 2,500 batches
    # followed captions 65% vs 27% (record of 7364009) at a 1,196 s record, no room in the budget: 2,250
    train_images: int = 2250 * 64
    batch_size: int = 64
    lr: float = 1e-3
    warmup_images: int = ruled(2000, bound=ZERO_OK)
    ema_decay: float = ruled(0.995, bound=FRACTION)
    clip_images: int = 500 * 128  # the noised guide; the judge trains as long
    sample_steps: int = 40  # respaced ancestral steps (GLIDE: 150 for figures, 250 for evaluations)
    cfg_scales: tuple[float, ...] = ruled((1.0, 2.0, 3.0, 5.0), contains=(1.0,),
                                          why="s = 1, the conditional model, is what guidance is compared with")
    clip_scales: tuple[float, ...] = ruled((2.0, 5.0, 10.0, 20.0), nonempty=True)  # lambda, on the s = 1 model
    cfg_claim: float = 3.0  # Table 1's CFG scale, the one the claims compare
    n_samples: int = 256  # per configuration (one per held-out caption)
    inpaint_images: int = 250 * 64  # the inpainting fine-tune, and as long for its control (no mask channels)
    n_inpaint: int = 200
    inpaint_scale: float = 3.0
    big_channels: int = ruled(0, bound=ZERO_OK)  # > 0: a second, wider text model (Table 4 in shape)
    sr_from: int = ruled(0, bound=ZERO_OK)  # > 0: a text-conditional upsampler sr_from -> image_size
    sr_images: int = 600 * 64
    sr_steps: tuple[int, ...] = ruled((10, 50), nonempty=True)  # the upsampler's respaced steps (GLIDE's fast27: 27)
    bootstrap: int = ruled(2000, min=1)  # FD's paired bootstrap (precision and recall: point estimates)
    feature_images: int | None = None  # as in DDPMChapter
    reader_images: int | None = None  # as in DALLEChapter

    def __post_init__(self):
        check(self)
        swept(self, "cfg_claim", "cfg_scales")
        unet_channels(self, "base_channels", "big_channels")


register(
    "06_glide",
    # smoke also runs the size comparison and the upsampler (code paths only)
    smoke=GLIDEChapter(n_train=600, n_test=200, T=100, base_channels=16, text_width=32, train_images=30 * 32,
                       batch_size=32, warmup_images=0, clip_images=30 * 64, sample_steps=8,
                       cfg_scales=(1.0, 3.0), clip_scales=(2.0, 20.0), n_samples=48, inpaint_images=10 * 32,
                       n_inpaint=24, big_channels=24, sr_from=8, sr_images=10 * 32, sr_steps=(4, 8),
                       bootstrap=20, feature_images=1440, reader_images=1000),
    cpu=GLIDEChapter(),
    # one GPU: 32x32 two-object scenes, wider models, the size comparison and a 16 -> 32 upsampler
    # (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget)
    gpu=GLIDEChapter(image_size=32, objects=2, n_train=40_000, n_test=2000, unet="small32", base_channels=64,
                     text_width=128, text_layers=4, train_images=3000 * 128, batch_size=128, lr=3e-4,
                     warmup_images=20_000, ema_decay=0.9995, clip_images=1000 * 256, sample_steps=100,
                     n_samples=1000, inpaint_images=600 * 128, n_inpaint=500, big_channels=128,
                     sr_from=16, sr_images=1000 * 128, sr_steps=(27, 100)),
)


@dataclass(frozen=True)
class UnCLIPChapter:
    """07_unclip. A clean CLIP (its image embeddings are the latents) and a judge CLIP; the unCLIP
    decoder (GLIDE's text UNet reading a CLIP image embedding, 10% / 50% dropped); a diffusion prior and
    an autoregressive prior at equal steps; a GLIDE-style baseline with the decoder's recipe and budget;
    on two-object ``shapes`` scenes, where binding is measurable; optionally (``sr_from`` > 0) an upsampler
    trained on blurred low-resolution inputs."""

    image_size: int = 16
    objects: int = 2
    n_train: int = 8000
    n_test: int = 1000
    T: int = 1000
    schedule: str = "cosine"  # unCLIP's decoder and diffusion prior: cosine
    unet: str = "small16"
    base_channels: int = 24
    text_width: int = 64
    text_layers: int = 2
    clip_dim: int = 64
    clip_images: int = 600 * 128  # the latent CLIP; the judge trains as long
    p_drop_z: float = ruled(0.1, bound=FRACTION)  # the decoder's dropped image embeddings (unCLIP Sec. 2.1)
    p_drop_caption: float = ruled(0.5, bound=FRACTION)  # ... and dropped captions
    p_empty: float = ruled(0.2, bound=FRACTION)  # the GLIDE baseline's empty captions (GLIDE Sec. 4.2)
    train_images: int = 1100 * 64  # the decoder and the GLIDE baseline, each (~0.27 s per step on 2 cores)
    batch_size: int = 64
    lr: float = 1e-3
    warmup_images: int = ruled(2000, bound=ZERO_OK)
    ema_decay: float = ruled(0.995, bound=FRACTION)
    prior_width: int = 128
    prior_layers: int = 4
    prior_images: int = 500 * 64  # each prior, equal steps (~0.11 s and ~0.14 s per step on 2 cores)
    prior_lr: float = 1e-3
    p_drop_text: float = ruled(0.1, bound=FRACTION)  # the priors' dropped caption and text embedding
    prior_steps: int = 64  # the diffusion prior's respaced sampling steps (unCLIP: 64)
    candidates: int = 2  # the diffusion prior's draws per caption, the best by <z_i, z_t> kept
    pca_dims: int = 16  # the AR prior's principal components (unCLIP: 319 of 1,024); at most clip_dim and n_train
    # ... and buckets per component (unCLIP: 1,024)
    buckets: int = ruled(32, min=2, why="the AR prior reads the top half of them")
    sample_steps: int = 40  # the decoders' respaced ancestral steps (unCLIP: 250 for the 64 px decoder)
    # decoder guidance (GLIDE's s; s = 1 unguided)
    scales: tuple[float, ...] = ruled((1.0, 3.0, 5.0), bound=ZERO_OK, contains=(1.0,), why="the claims compare guidance with s = 1")
    cfg_claim: float = 3.0  # the scale at which unCLIP and GLIDE are compared on binding
    n_captions: int = 48  # held-out descriptive captions
    # samples per caption
    per_caption: int = ruled(4, min=2, why="within-caption diversity needs two samples of a caption")
    n_variations: int = 6  # images for the variation, interpolation and text-diff figures
    sr_from: int = ruled(0, bound=ZERO_OK)  # > 0: an upsampler sr_from -> image_size trained on blurred low-res inputs (gpu, smoke)
    sr_images: int = 600 * 64
    sr_blur: float = ruled(0.6, bound=ZERO_OK)  # the conditioning blur's sigma in pixels (unCLIP's 64 -> 256 upsampler: 0.6)
    sr_steps: int = 27  # the upsampler's respaced steps (unCLIP: DDIM with 27)
    bootstrap: int = 200
    feature_images: int | None = None  # as in DDPMChapter
    reader_images: int | None = None  # as in DALLEChapter

    def __post_init__(self):
        check(self)
        above_one(self, "scales")
        swept(self, "cfg_claim", "scales")
        unet_channels(self, "base_channels")
        limit = min(self.clip_dim, self.n_train)
        if self.pca_dims > limit:
            raise ValueError(f"parameter pca_dims must be at most {limit} (the principal components of n_train = "
                             f"{self.n_train} embeddings of clip_dim = {self.clip_dim}), got {self.pca_dims!r}")


register(
    "07_unclip",
    smoke=UnCLIPChapter(n_train=600, n_test=200, T=100, base_channels=16, text_width=32, clip_dim=32,
                        clip_images=30 * 64, train_images=30 * 32, batch_size=32, warmup_images=0,
                        prior_width=32, prior_layers=2, prior_images=30 * 32, prior_steps=8, pca_dims=8,
                        buckets=8, sample_steps=8, scales=(1.0, 3.0), n_captions=12, per_caption=2,
                        n_variations=3, sr_from=8, sr_images=10 * 32, sr_steps=4, bootstrap=20,
                        feature_images=1440, reader_images=1000),
    cpu=UnCLIPChapter(),
    # one GPU: 32x32 two-object scenes, wider decoder and baseline, larger priors
    # (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget)
    gpu=UnCLIPChapter(image_size=32, n_train=40_000, n_test=2000, unet="small32", base_channels=64,
                      text_width=128, text_layers=4, clip_dim=128, clip_images=1000 * 256,
                      train_images=2500 * 128, batch_size=128, lr=3e-4, warmup_images=20_000,
                      ema_decay=0.9995, prior_width=256, prior_layers=6, prior_images=2500 * 128,
                      prior_lr=3e-4, pca_dims=48, buckets=64, sample_steps=100, n_captions=250,
                      per_caption=4, sr_from=16, sr_images=1000 * 128),
)


@dataclass(frozen=True)
class DALLE3Chapter:
    """08_dalle3. Caption sources for the same two-object ``shapes`` scenes (lossy alt-text; short and
    descriptive captions written by a captioner pre-trained on the alt-text and fine-tuned on a small
    labelled subset), identical text-to-image models (chapter 06's recipe, narrower) trained on the
    alt-text, on 95% short captions and on each blend in ``blends`` of descriptive captions, a judge CLIP
    trained on exact captions, prompt upsampling by rule."""

    image_size: int = 16
    objects: int = 2
    n_train: int = 6000  # every one re-captioned twice
    n_test: int = 1000
    T: int = 1000
    schedule: str = "cosine"
    unet: str = "small16"
    base_channels: int = 16
    num_res_blocks: int = 1  # one residual block per level: five models must fit 20 minutes on 2 cores
    channels_last: bool = True  # measured 1.3-1.5x faster on 2 CPU cores for these UNets
    text_width: int = 64
    text_layers: int = 2
    p_empty: float = ruled(0.2, bound=FRACTION)  # empty captions for classifier-free guidance (GLIDE's recipe)
    # per text-to-image model (~0.15 s per step on 2 cores, channels_last); 600 batches (record of 85e02fb)
    # and 1,000 (record of 2e799bc) both left every model at 12-20x the real-vs-real FD floor at n = 500:
    # did not train by the book's gate. A budget that passes it does not fit the cpu profile's 20 minutes
    train_images: int = 1000 * 64
    batch_size: int = 64
    lr: float = 2e-3  # with exact descriptive captions, 600 steps: caption match +10 points over shuffled prompts
    warmup_images: int = ruled(2000, bound=ZERO_OK)
    ema_decay: float = ruled(0.995, bound=FRACTION)
    # shares of descriptive synthetic captions (0.95 required); 1.0 (100% vs 95%) only in smoke and gpu:
    # a fifth model does not fit the cpu budget
    blends: tuple[float, ...] = (0.65, 0.95)
    short_blend: float = 0.95  # the short-synthetic-caption model's share
    p_second: float = ruled(0.5, bound=FRACTION)  # the alt-text generator (captions.alt_text): second object left out
    p_colour: float = ruled(0.3, bound=FRACTION)  # ... a colour left out
    p_wrong: float = ruled(0.1, bound=FRACTION)  # ... a colour wrong
    p_junk: float = ruled(0.3, bound=FRACTION)  # ... filler words added
    captioner_width: int = 64
    captioner_layers: int = 2
    captioner_grid: bool = True  # image tokens = the tower's 8x8 feature map (measured: colours 76% vs 26% pooled)
    captioner_images: int = 300 * 64  # pre-training on every training scene's alt-text
    n_labelled: int = 1000  # scenes with exact captions for the two fine-tunes
    finetune_images: int = 250 * 64  # per fine-tune (short, descriptive)
    captioner_lr: float = 2e-3
    clip_images: int = 400 * 128  # the judge CLIP, on exact short and descriptive captions
    scale: float = 3.0  # classifier-free guidance for every evaluation (GLIDE's s)
    sample_steps: int = 25  # respaced ancestral steps
    # held-out scenes, one sample per prompt and configuration; 500, not 160: the follows-prompts check of
    # the alt-text model on its own alt-text prompts read +0.031 [-0.035, 0.097] at 160 (second edition)
    n_prompts: int = 500
    n_report: int = 500  # held-out scenes for the caption sources' and captioners' report cards
    bootstrap: int = 100
    feature_images: int | None = None  # as in DDPMChapter
    reader_images: int | None = None  # as in DALLEChapter

    def __post_init__(self):
        check(self)
        unet_channels(self, "base_channels")
        if not self.blends or any(not 0.0 < b <= 1.0 for b in self.blends) or 0.95 not in self.blends:
            raise ValueError(f"blends must be shares in (0, 1] and include 0.95 (the paper's blend), got {self.blends}")
        if len(self.blends) < 2:
            raise ValueError(f"blends needs 0.95 and a lower or higher share to compare, got {self.blends}")
        if not 0.0 < self.short_blend <= 1.0:
            raise ValueError(f"short_blend must lie in (0, 1], got {self.short_blend}")
        if self.p_colour + self.p_wrong > 1.0:
            raise ValueError(f"p_colour + p_wrong must be at most 1, got {self.p_colour + self.p_wrong}")


register(
    "08_dalle3",
    smoke=DALLE3Chapter(n_train=600, n_test=200, T=100, text_width=32, train_images=25 * 32, batch_size=32,
                        warmup_images=0, blends=(0.65, 0.95, 1.0), captioner_width=32,
                        captioner_images=20 * 32, n_labelled=200, finetune_images=10 * 32,
                        clip_images=30 * 64, sample_steps=6, n_prompts=32,
                        bootstrap=20, feature_images=1440, reader_images=1000),
    cpu=DALLE3Chapter(),
    # one GPU: 32x32 two-object scenes, chapter 06's gpu model, Fig. 5's 65%, 80% and 95% blends and a
    # 100% one (Fig. 5's fourth, 90%, is left out)
    # (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget)
    gpu=DALLE3Chapter(image_size=32, n_train=40_000, n_test=2000, unet="small32", base_channels=64,
                      num_res_blocks=2, channels_last=False, text_width=128, text_layers=4,
                      train_images=1500 * 128, batch_size=128, lr=3e-4, warmup_images=20_000,
                      ema_decay=0.9995, blends=(0.65, 0.8, 0.95, 1.0), captioner_width=128,
                      captioner_layers=4, captioner_images=1500 * 128, n_labelled=4000,
                      finetune_images=750 * 128, captioner_lr=5e-4, clip_images=1000 * 256,
                      sample_steps=50, n_prompts=1000),
)


@dataclass(frozen=True)
class ConsistencyChapter:
    """09_consistency. Two tiers: 2-D ablations on a ring of Gaussians whose exact denoiser is the CD
    teacher (an MLP per arm, ``toy_seeds`` seeds each), and digits 8x8 with a TrigFlow diffusion teacher
    (tiny8) from which CD, CT, iCT and sCT (and sCD with ``scd``) are fine-tuned for the same steps."""

    # 2-D tier
    toy_modes: int = 8
    toy_radius: float = 1.0
    toy_std: float = 0.08
    toy_n: int = 20_000  # training points
    toy_eval: int = 4000  # samples per arm and true points for the distances
    toy_width: int = 128
    toy_layers: int = 3
    toy_steps: int = 800  # per arm (~10 ms per step on 2 cores; sCM ~15 ms)
    toy_batch: int = 256
    toy_lr: float = 1e-3
    toy_seeds: int = 2  # per arm outside the 2-D test family (display and the designed CT experiment)
    toy_seeds_family: int = 3  # per arm of the 2-D test family behind a large effect (Arm.seeds = "family")
    toy_seeds_small: int = 5  # per arm behind a small or null effect (Arm.seeds = "small"): Holm needs df
    toy_warmup: float = ruled(0.1, bound=OPEN_FRACTION)  # sCM's tangent warm-up, as a share of the steps
    cd_steps: tuple[int, ...] = (9, 18)  # N of the CD arms (Heun and Euler each)
    mode_radius: float = 0.25
    fail_factor: float = 8.0  # a run "fails" when its 1-step sliced Wasserstein exceeds this times the floor
    # digits tier
    data: str = "digits"
    image_size: int = 8
    unet: str = "tiny8"
    max_period: float = 10.0  # of the time embedding, on TrigFlow's raw t (sCM-mnist's positional embedding)
    batch_size: int = 64
    teacher_images: int = 1200 * 64
    teacher_lr: float = 1e-3
    student_images: int = 500 * 64  # each of CD, CT, iCT, sCT, fine-tuned from the teacher
    student_lr: float = 5e-4
    student_ema: float = ruled(0.99, bound=OPEN_FRACTION)  # the evaluation EMA (the target network is the objective's)
    cd_N: int = 18  # CM's CIFAR-10 CD grid
    scd: bool = False  # also sCD (the teacher's velocity in the tangent)
    metric_bias: bool = True  # iCT's metric-bias experiment: CD with the feature net's distance, a second feature net
    heun_steps: tuple[int, ...] = (2, 3, 5, 10, 18)  # teacher, Heun: 2n - 1 NFE (18 -> 35, EDM's CIFAR-10)
    euler_steps: tuple[int, ...] = (4, 8, 16, 32)  # teacher, Euler (DDIM's update) and ancestral (DDPM's)
    t_mid: float = 1.1  # sCM's 2-step re-noising time (sigma = sigma_d tan t_mid in EDM form)
    n_samples: int = 360  # = the digits test split (the floor's reference set)
    bootstrap: int = 100
    feature_images: int | None = None  # as in DDPMChapter

    def __post_init__(self):
        if self.toy_seeds < 2:
            raise ValueError(f"toy_seeds must be >= 2 (the 2-D intervals use the seed-to-seed spread), got {self.toy_seeds}")
        for name in ("toy_seeds_family", "toy_seeds_small"):
            if getattr(self, name) < self.toy_seeds:
                raise ValueError(f"{name} must be >= toy_seeds ({self.toy_seeds}), got {getattr(self, name)}")
        if not self.cd_steps or min(self.cd_steps) < 2:
            raise ValueError(f"cd_steps must be grid sizes N >= 2, got {self.cd_steps}")
        if self.cd_N < 2:
            raise ValueError(f"cd_N must be >= 2, got {self.cd_N}")
        if min(self.heun_steps, default=0) < 1 or min(self.euler_steps, default=0) < 1:
            raise ValueError("heun_steps and euler_steps must be step counts >= 1")
        if not 0.0 < self.t_mid < 1.5707963:
            raise ValueError(f"t_mid must lie in (0, pi/2), got {self.t_mid}")


register(
    "09_consistency",
    smoke=ConsistencyChapter(toy_n=4000, toy_eval=600, toy_width=64, toy_layers=2, toy_steps=15, toy_batch=128,
                             toy_seeds=2, toy_seeds_family=2, toy_seeds_small=2, cd_steps=(9,),
                             teacher_images=40 * 32, batch_size=32, student_images=8 * 32, scd=True,
                             metric_bias=True, heun_steps=(2, 5), euler_steps=(4,), n_samples=120, bootstrap=20,
                             feature_images=1440),
    cpu=ConsistencyChapter(),
    # one GPU: 4x the 2-D batch (700 steps: the seed tiers of the 2-D tests fill the budget); MNIST at 32x32
    # with small32 (digits at 32x32 when the Hub is out of reach, said on the run card); sCD and the metric-bias
    # experiment on (untested: never run on a GPU; sized to ~5 min by ddpm_lib.budget: the 2-D arms are
    # launch-bound, so a larger batch is free)
    gpu=ConsistencyChapter(toy_steps=700, toy_batch=1024, cd_steps=(9, 18), data="mnist",
                           image_size=32, unet="small32", teacher_images=2000 * 128, batch_size=128,
                           student_images=400 * 128, student_lr=2e-4, student_ema=0.999, scd=True,
                           metric_bias=True, heun_steps=(2, 3, 5, 10, 18, 40), euler_steps=(4, 8, 16, 32, 64),
                           n_samples=2000, bootstrap=200),
)


def chapters() -> list[str]:
    return sorted(PRESETS)


def fields(chapter: str) -> list[str]:
    return [f.name for f in dataclasses.fields(_presets(chapter)["cpu"])]


def _presets(chapter: str) -> dict:
    if chapter not in PRESETS:
        raise ValueError(f"unknown chapter {chapter!r}; valid choices: {chapters()}")
    return PRESETS[chapter]


def get(chapter: str, profile: str | None = "auto", **overrides):
    """The chapter's config for ``profile`` with ``overrides`` applied (None values are ignored),
    each checked by ``validate``."""
    cfg = _presets(chapter)[resolve(profile)]
    overrides = validate(chapter, {k: v for k, v in overrides.items() if v is not None})
    return dataclasses.replace(cfg, **overrides)


SEED_MAX = 2**32 - 1  # seeds of every RNG a chapter uses (numpy's limit; torch's seeds stay below 2**63)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(name: str, value, tp, bound: str = POSITIVE):
    """``value`` as the annotated type ``tp`` (int, float, str, bool, tuple[X, ...], X | None), or a
    ValueError that names the parameter, the expected type and what was given."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(name, value, inner[0], bound)
    if origin is tuple:
        if isinstance(value, str):  # from a command line: -p scales "[0.0, 1.0]", PARAMS="scales=(0.0,1.0)"
            value = _literal(value)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"parameter {name} must be a tuple of {_type_name(args[0])}, got {value!r}; "
                             f"{_how(name, '[0.0, 1.0]')}")
        return tuple(_coerce(name, v, args[0], bound) for v in value)
    if tp is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"  # papermill's -p passes `true` / `false` through as strings
    if tp in (int, float) and isinstance(value, str):  # papermill's -r passes text: -r train_images 100
        number = _literal(value)
        value = number if isinstance(number, (int, float)) and not isinstance(number, bool) else value
    ok = {int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, (int, float)) and not isinstance(value, bool),
          str: isinstance(value, str), bool: isinstance(value, bool)}.get(tp, True)
    if not ok:
        raise ValueError(f"parameter {name} must be {_type_name(tp)}, got {value!r} ({type(value).__name__}); "
                         f"{_how(name, '100' if tp is int else '0.5' if tp is float else 'true')}")
    if name == "seed" and not 0 <= value <= SEED_MAX:
        raise ValueError(f"parameter seed must be in [0, {SEED_MAX}], got {value!r}")
    value = float(value) if tp is float else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not BOUNDS[bound](value):
            raise ValueError(f"parameter {name} must be {bound}, got {value!r}")
    return value


def _literal(text: str):
    """A Python literal written as text (a number, a list, a tuple), else the text itself."""
    import ast

    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _how(name: str, example: str) -> str:
    """The forms that work, for an error message."""
    return (f"e.g. papermill -p {name} '{example}' (or -y '{name}: {example}'), "
            f"make run PARAMS=\"{name}={example}\", run_notebook.py --param '{name}={example}'")


def validate(chapter: str, params: dict) -> dict:
    """Check names, types and ranges of a chapter's parameters (``seed`` and its preset's fields);
    returns them converted (an int where a float is expected, a list where a tuple is)."""
    valid = fields(chapter)
    unknown = sorted(set(params) - set(valid) - {"seed"})
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for chapter {chapter}; valid choices: {['seed', *valid]}")
    hints = typing.get_type_hints(type(_presets(chapter)["cpu"]))
    hints["seed"] = int
    return {k: _coerce(k, v, hints[k], bound_of(chapter, k)) for k, v in params.items()}
