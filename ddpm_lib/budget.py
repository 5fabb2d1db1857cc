"""How long a chapter's preset should take on one H100-class GPU: an estimate from counted FLOPs.

``seconds(chapter, cfg)`` adds, over the work the chapter does with ``cfg`` (every model it trains and
the sampling, bounds and generation that dominate its evaluation, as listed in ``WORK``), the time of
each step, the larger of

* compute: the step's FLOPs, counted by ``nets.cost`` (torch's FlopCounterMode on one forward call;
  a training step is 3x the forward: backward ~2x) times the batch, at ``RATE`` = 30% of the H100's
  dense bf16 peak (989 TFLOP/s), ~297 TFLOP/s sustained;
* a launch floor: the aten operations the step dispatches (counted on the CPU: forward, and backward
  for a training step) times ``LAUNCH_S`` (10 us each, eager PyTorch's dispatch and kernel launch on
  a busy host), plus ``STEP_S`` (1 ms) per optimizer step for fused AdamW, clipping, EMA and the batch.
  Small models never reach the compute rate; this is what bounds them;

plus ``OVERHEAD_S`` (30 s: kernel start, imports, CUDA set-up, data, metrics and figures). The rate,
the per-operation cost and the overheads are stated constants, not measurements on a GPU: no GPU has
run these presets yet, so every estimate is printed as untested until a gpu record exists
(``book/results/gpu/<chapter>.json``). Left out as small next to what is counted: text encoders of the
text UNets (<= 4 layers of width <= 128 over <= 24 tokens), CLIP guidance's image tower, the feature
statistics and bootstrap replicates, and the per-token launches of KV-cache generation (counted as one
forward over the whole sequence: a few seconds at most). A text UNet stands in as the plain UNet with its cross-attention
(``context_dim``); a captioner as a GPT over its prefix and caption tokens. A chapter's list mirrors
its notebook: a model added there belongs here too (the tests bound every gpu preset's estimate).

    python -m ddpm_lib.budget                  # every chapter's gpu estimate
    python -m ddpm_lib.budget 02 09 --items    # with their items (steps, seconds, compute- or launch-bound)
    python -m ddpm_lib.budget 02 --profile cpu # another profile's preset (its seconds on the H100)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import nets, profiles

PEAK_FLOPS = 989e12  # H100 SXM, dense bf16
UTILISATION = 0.30  # sustained share of the peak a well-fed model reaches (stated, not measured)
RATE = PEAK_FLOPS * UTILISATION  # ~297 TFLOP/s
LAUNCH_S = 10e-6  # seconds per dispatched aten operation in eager mode (stated)
STEP_S = 1e-3  # seconds per optimizer step beyond the network: fused AdamW, clipping, EMA, batch (stated)
OVERHEAD_S = 30.0  # per chapter: kernel start, imports, CUDA set-up, data, metrics, figures (stated)
BUDGET_S = 300.0  # the gpu preset's target: about 5 minutes (two chapters per 15-minute device session)
SAMPLE_BATCH = 256  # sampling.sample_batched's default batch


@dataclass(frozen=True)
class Work:
    """``examples`` through one network, ``batch`` at a time, ``passes`` times over (sampling steps),
    ``calls`` network calls per step (2 for classifier-free guidance). A training step is forward,
    backward and an optimizer step, plus ``forwards`` calls without gradient (a teacher, a target)."""

    what: str
    net: Callable[[], nn.Module]
    inputs: Callable[[int], tuple]  # batch size -> the positional arguments of one call
    key: str  # identifies the network's shape (the cost probe is cached by it)
    examples: int
    batch: int
    train: bool = False
    passes: int = 1
    calls: float = 1.0
    forwards: float = 0.0

    @property
    def steps(self) -> int:
        return math.ceil(self.examples / self.batch) * self.passes


class _OpCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        return func(*args, **(kwargs or {}))


_PROBES: dict[str, dict] = {}


def _probe(key: str, build: Callable[[], nn.Module], inputs: Callable[[int], tuple]) -> dict:
    """Forward FLOPs per example (``nets.cost``) and the operations of a forward and of a training step,
    on the CPU at batch 2, once per network shape (``key``)."""
    if key not in _PROBES:
        with torch.random.fork_rng(devices=[]):  # the caller's random streams stay as they were
            torch.manual_seed(0)
            _PROBES[key] = _measure(build, inputs)
    return _PROBES[key]


def _measure(build, inputs) -> dict:
    net = build()
    args = inputs(2)
    flops = nets.cost(net, *args)["flops_per_example"]
    counts = {}
    for train in (False, True):
        net.train(train)
        with torch.set_grad_enabled(train), _OpCounter() as c:
            out = net(*args)
            if train:
                leaves = [o for o in (out.values() if isinstance(out, dict) else
                                      out if isinstance(out, (tuple, list)) else [out]) if torch.is_tensor(o)]
                sum(o.float().pow(2).mean() for o in leaves).backward()
        counts[train] = c.ops
    return dict(flops=flops, ops_forward=counts[False], ops_train=counts[True], params=nets.count_params(net))


def item_seconds(w: Work) -> dict:
    """One item's estimate: its steps, the compute and launch-floor seconds of a step, and the total."""
    p = _probe(w.key, w.net, w.inputs)
    forwards = (3 + w.forwards) if w.train else w.calls  # forward-equivalents per step (backward ~2x forward)
    compute = p["flops"] * min(w.batch, w.examples) * forwards / RATE
    ops = p["ops_train"] + w.forwards * p["ops_forward"] if w.train else w.calls * p["ops_forward"]
    floor = ops * LAUNCH_S + (STEP_S if w.train else 0.0)
    step = max(compute, floor)
    return dict(what=w.what, steps=w.steps, flops_per_example=p["flops"], params=p["params"], compute_s=compute,
                floor_s=floor, bound="compute" if compute >= floor else "launch", seconds=w.steps * step)


def estimate(chapter: str, cfg) -> dict:
    """The chapter's estimated seconds on one H100-class GPU for config ``cfg``, with its items."""
    if chapter not in WORK:
        raise ValueError(f"no work list for chapter {chapter!r}; valid choices: {sorted(WORK)}")
    items = [item_seconds(w) for w in WORK[chapter](cfg)]
    total = OVERHEAD_S + sum(i["seconds"] for i in items)
    return dict(chapter=chapter, seconds=total, items=items, overhead_s=OVERHEAD_S)


def seconds(chapter: str, cfg=None, profile: str = "gpu") -> float:
    """Estimated seconds on one H100-class GPU of ``cfg`` (default: the chapter's ``profile`` preset)."""
    return estimate(chapter, cfg if cfg is not None else profiles.get(chapter, profile))["seconds"]


BOOK = Path(__file__).resolve().parents[1]  # the checkout this library sits in


def recorded(chapter: str, root: Path = BOOK) -> bool:
    """Whether the book under ``root`` holds a gpu record of the chapter (book/results/gpu/<chapter>.json)."""
    return (Path(root) / "book" / "results" / "gpu" / f"{chapter}.json").exists()


def card_note(chapter: str, cfg, root: Path = BOOK) -> str:
    """The run card's line: the estimate, how it was made, and whether a gpu run has tested it (a run on
    a GPU without a record yet is the test: its wall time on the card is the measurement)."""
    s = seconds(chapter, cfg)
    if recorded(chapter, root):
        state = "a gpu record exists (book/results/gpu/): compare its wall time"
    elif torch.cuda.is_available():
        state = "untested before this run: the wall time on this card is the first measurement"
    else:
        state = "untested: never run on a GPU"
    return (f"estimated gpu time: {s:.0f} s ({s / 60:.1f} min) on one H100 (counted FLOPs at {RATE / 1e12:.0f} "
            f"TFLOP/s, 30% of the bf16 peak, or {LAUNCH_S * 1e6:.0f} us per launched operation where more; "
            f"{OVERHEAD_S:.0f} s overhead; ddpm_lib.budget); {state}")


# --------------------------------------------------------------------------------------------
# The networks, by shape (proxies where a chapter's network only adds small parts)
# --------------------------------------------------------------------------------------------
def _unet(preset: str, size: int, channels: int, out_channels: int | None = None, **kw):
    from .nets import unet as U

    cfg = U.preset(preset, image_size=size, in_channels=channels, out_channels=out_channels or channels, **kw)

    def inputs(b):
        args = [torch.randn(b, channels, size, size), torch.rand(b) * 999]
        if cfg.num_classes or cfg.context_dim:
            args.append(torch.zeros(b, dtype=torch.long) if cfg.num_classes else None)
        if cfg.context_dim:
            args.append(torch.randn(b, 24, cfg.context_dim))
        return tuple(args)

    return (lambda: U.UNet(cfg)), inputs, repr(cfg)


def _gpt(vocab: int, length: int, layers: int, width: int, heads: int = 4):
    from .nets import transformer as T

    cfg = T.GPTConfig(vocab_size=vocab, block_size=length, n_layer=layers, n_head=heads, n_embd=width)
    return (lambda: T.GPT(cfg)), (lambda b: (torch.randint(0, vocab, (b, length)),)), repr(cfg)


def _encoder(size: int, channels: int, width: int, out_dim: int = 64, **kw):
    from .nets import encoder as E

    cfg = E.EncoderConfig(image_size=size, in_channels=channels, out_dim=out_dim, base_channels=width, **kw)
    t = cfg.time_cond
    return (lambda: E.EncoderUNet(cfg)), (lambda b: (torch.randn(b, channels, size, size),) +
                                          ((torch.rand(b) * 999,) if t else ())), repr(cfg)


def _mlp(width: int, layers: int):
    from .nets import mlp as M

    cfg = M.MLPConfig(width=width, layers=layers)
    return (lambda: M.MLP(cfg)), (lambda b: (torch.randn(b, 2), torch.rand(b))), repr(cfg)


class _Autoencode(nn.Module):
    """A dVAE's training pass: logits, then the decoder on the relaxed (softmax) codes."""

    def __init__(self, dvae):
        super().__init__()
        self.dvae = dvae

    def forward(self, x):
        return self.dvae.decode(self.dvae.logits(x).softmax(1))


def _dvae(size: int, codes: int, levels: int, width: int):
    from .nets import dvae as V

    cfg = V.DVAEConfig(image_size=size, codes=codes, levels=levels, width=width)
    return (lambda: _Autoencode(V.DVAE(cfg))), (lambda b: (torch.randn(b, 3, size, size),)), repr(cfg)


def _feature_net(name: str, size: int, channels: int):
    from . import features
    from .nets import features as NF

    recipe = features.RECIPES.get(name, features.RECIPES["shapes"])
    cfg = NF.FeatureNetConfig(channels, size, (("class", 10),), recipe.width, recipe.feature_dim)
    return (lambda: NF.FeatureNet(cfg)), (lambda b: (torch.randn(b, channels, size, size),)), repr(cfg), recipe


def _reader(size: int):
    from . import scorer

    recipe = scorer.RECIPES[size]
    return (lambda: scorer.ReaderNet(recipe.net)), (lambda b: (torch.randn(b, 3, size, size),)), repr(recipe.net), recipe


def train(what, spec, images, batch, forwards=0.0):
    build, inputs, key = spec[:3]
    return Work(what, build, inputs, key, images, batch, train=True, forwards=forwards)


def run(what, spec, examples, passes=1, batch=SAMPLE_BATCH, calls=1.0):
    build, inputs, key = spec[:3]
    return Work(what, build, inputs, key, examples, batch, passes=passes, calls=calls)


def feature_net(data: str, size: int, channels: int, images: int | None) -> Work:
    spec = _feature_net(data, size, channels)
    return train(f"feature net ({data}, {size} px)", spec, images or spec[3].train_images, spec[3].batch_size)


def reader(size: int, images: int | None) -> Work:
    spec = _reader(size)
    return train(f"attribute reader ({size} px)", spec, images or spec[3].train_images, spec[3].batch_size)


# --------------------------------------------------------------------------------------------
# What each chapter does (the items that dominate its time)
# --------------------------------------------------------------------------------------------
_CHANNELS = {"digits": 1, "mnist": 1, "fashion_mnist": 1}


def _ch(data: str) -> int:
    return _CHANNELS.get(data, 3)


def _w00(c):
    return []  # no network: noise and figures only (the overhead)


def _w01(c):
    n = c.image_size ** 2
    big, small = _gpt(c.k, n, c.n_layer, c.n_embd, c.n_head), _gpt(c.k, n, c.small_layer, c.small_embd,
                                                                     max(1, min(c.n_head, c.small_embd // 16)))
    probes = (c.n_train + c.n_test) * (2 + 2 * c.checkpoints)  # every layer's features in one pass per model
    return [train("GPT (AR)", big, c.train_images, c.batch_size), train("GPT (AR, small)", small, c.train_images, c.batch_size),
            train("BERT", big, c.train_images, c.batch_size),
            # BERT's fine-tune runs two passes per step (the whole sequence, the masked one)
            train(f"fine-tunes ({'AR, BERT' if c.finetune_bert else 'AR'})", big,
                  (3 if c.finetune_bert else 1) * c.finetune_images, c.batch_size),
            run("linear probes' features", big, probes), run("samples (KV cache)", big, c.n_samples)]


def _w02(c):
    C = _ch(c.data)
    main = _unet(c.unet, c.image_size, C, base_channels=c.base_channels, num_res_blocks=c.num_res_blocks, dropout=c.dropout)
    Ca = _ch(c.ablation_data)
    abl = _unet(c.ablation_unet, c.ablation_size, Ca, 2 * Ca)
    arms = 3 + 3 * c.ablation_seeds  # three mu-tilde rows (one seed) and three eps rows (ablation_seeds each)
    longer = c.mu_budget_factor > 1  # the mu row retrained at mu_budget_factor x if it did not train
    rows = arms + longer * c.mu_budget_factor
    return [train("main UNet", main, c.train_images, c.batch_size),
            run("main samples", main, c.n_samples, c.sample_steps),
            run("exact bound (all T steps)", main, c.nll_images, c.T),
            run("shared x_t samples", main, 4 * (3 * c.shared_xt_sources + 2 * 4), c.sample_steps),
            train("Table 2 rows", abl, rows * c.ablation_images, 64),
            run("Table 2 samples (full chain)", abl, c.ablation_samples, c.T * (arms + 1 + longer)),
            run("Table 2 bounds", abl, c.ablation_nll_images,
                c.ablation_nll_steps * c.ablation_nll_reps * (arms + longer)),
            feature_net(c.data, c.image_size, C, c.feature_images),
            feature_net(c.ablation_data, c.ablation_size, Ca, c.feature_images)]


def _w03(c):
    C = _ch(c.data)
    net = _unet(c.unet, c.image_size, C, 2 * C, base_channels=c.base_channels)
    # the step sweep: four samplers, the full chain (T steps) for the learned variance only
    sweep = (4 * sum(k for k in c.step_counts if k < c.T) + sum(k for k in c.step_counts if k >= c.T)
             + 2 * len(c.skip_fractions) * min(250, c.T) + 4 * c.table_sample_steps)
    is_evals = 2 * c.snapshots + 2 * (c.is_seeds - 1)  # seed 0's curves, the other seeds' final bounds
    return [train("four models (schedule x loss)", net, 4 * c.train_images, c.batch_size),
            train("importance-sampling pairs (seeds)", net, 2 * c.is_seeds * c.is_images, c.batch_size),
            run("bounds (table; clipped and unclipped from one pass)", net, c.nll_images,
                c.nll_steps * 4 * c.nll_reps),
            run("bounds (importance sampling)", net, c.nll_images, max(8, c.nll_steps // 2) * c.nll_reps * is_evals),
            run("exact bound (all T steps, clipped and unclipped)", net, 64, c.T),
            run("samples: table, step sweep, skips", net, c.n_samples, sweep),
            feature_net(c.data, c.image_size, C, c.feature_images)]


def _w04(c):
    C, K = _ch(c.data), 10
    adm = dict(base_channels=c.base_channels, scale_shift_norm=True, resblock_updown=True)
    unet = _unet(c.unet, c.image_size, C, 2 * C, num_classes=K, **adm)
    from .nets import unet as U

    u = U.preset(c.unet, image_size=c.image_size)
    clf = _encoder(c.image_size, C, c.base_channels, K, channel_mult=u.channel_mult,
                   attention_resolutions=u.attention_resolutions, groups=u.groups)
    n = c.n_samples
    configs = 2 * len(c.scales) + 2 * len(c.temperatures)  # the guidance sweep, temperatures (arch rows: loss only)
    items = [train("unconditional and conditional UNets", unet, 2 * c.train_images, c.batch_size),
             train("noisy classifier", clf, c.clf_images, c.batch_size),
             train(f"architecture rows (5 x {c.arch_seeds} seeds)", unet, 5 * c.arch_seeds * c.arch_images, c.batch_size),
             run("guided and plain samples", unet, n, c.sample_steps * configs, batch=n),
             run("classifier gradients of the guided samples", clf, n, c.sample_steps * 2 * len(c.scales), batch=n, calls=3),
             run("DDIM samples", unet, n, c.ddim_steps * len(c.ddim_scales), batch=n),
             feature_net(c.data, c.image_size, C, c.feature_images)]
    if c.sr_size:
        hi = _unet(c.unet, c.sr_size, C, 2 * C, num_classes=K, **adm)
        sr = _unet(c.unet, c.sr_size, 2 * C, 2 * C, num_classes=K, **adm)
        u_hi = U.preset(c.unet, image_size=c.sr_size)
        clf_hi = _encoder(c.sr_size, C, c.base_channels, K, channel_mult=u_hi.channel_mult,
                          attention_resolutions=u_hi.attention_resolutions, groups=u_hi.groups)
        items += [train("upsampler", sr, c.sr_images, c.batch_size), train(f"{c.sr_size} px UNet", hi, c.sr_images, c.batch_size),
                  train(f"{c.sr_size} px classifier", clf_hi, c.clf_images, c.batch_size),
                  run("stack samples", sr, n, 2 * c.sample_steps, batch=n), run("stack samples (base)", hi, n, 2 * c.sample_steps, batch=n),
                  feature_net(c.data, c.sr_size, C, c.feature_images)]
    return items


def _w05(c):
    dvae = _dvae(c.image_size, c.codes, c.levels, c.dvae_width)
    grid = (c.image_size // 2 ** c.levels) ** 2
    gpt = _gpt(c.codes + 64, c.text_len + grid, c.n_layer, c.n_embd, c.n_head)
    clip = _clip(c)
    text = _gpt(64, c.text_len, 2, 64)
    n_dvae = len(c.betas) * c.dvae_seeds + 2  # the beta arms' seeds, tau fixed, the other likelihood
    n_gpt = 1 + (c.ablation_text_weight is not None)
    return [train(f"dVAEs ({n_dvae})", dvae, n_dvae * c.dvae_images, c.dvae_batch),
            train(f"transformers ({n_gpt})", gpt, n_gpt * c.gpt_images, 64),
            train("CLIPs (2): image towers", clip, 2 * c.clip_images, 128), train("CLIPs (2): text towers", text, 2 * c.clip_images, 128),
            run("generation (KV cache)", gpt, c.n_captions * c.n_rerank + (1 + n_gpt) * c.n_eval, batch=2000),
            reader(c.image_size, c.reader_images), feature_net("shapes", c.image_size, 3, c.feature_images)]


def _text_unet(c, channels=None, size=None):
    return _unet(c.unet, size or c.image_size, 3, 6, base_channels=channels or c.base_channels, context_dim=c.text_width,
                 **({"num_res_blocks": c.num_res_blocks} if hasattr(c, "num_res_blocks") else {}))


def _clip(c, size=None):
    # the image tower with a noise-level input (GLIDE's noised CLIP): torch's FLOP counter fails on the
    # clean tower's learned constant embedding, and the time MLP's cost is negligible
    return _encoder(size or c.image_size, 3, 16, getattr(c, "clip_dim", 64), channel_mult=(1, 2), attention_resolutions=())


def _w06(c):
    net = _text_unet(c)
    n = c.n_samples
    items = [train("text UNet", net, c.train_images, c.batch_size), train("inpainting fine-tune", net, c.inpaint_images, c.batch_size),
             train("CLIPs (guide, judge)", _clip(c), 2 * c.clip_images, 128),
             run("samples: empty, CFG sweep", net, n, c.sample_steps * (1 + len(c.cfg_scales)), calls=2),
             run("samples: CLIP guidance sweep", net, n, c.sample_steps * len(c.clip_scales)),
             run("inpainting", net, c.n_inpaint, 2 * c.sample_steps, calls=2),
             reader(c.image_size, c.reader_images), feature_net("shapes", c.image_size, 3, c.feature_images)]
    if c.big_channels:
        big = _text_unet(c, c.big_channels)
        items += [train("larger text UNet", big, c.train_images, c.batch_size), run("larger model's samples", big, n, c.sample_steps, calls=2)]
    if c.sr_from:
        sr = _unet(c.unet, c.image_size, 6, 6, base_channels=c.base_channels, context_dim=c.text_width)
        items += [train("text upsampler", sr, c.sr_images, c.batch_size), run("upsampled samples", sr, n, sum(c.sr_steps))]
    return items


def _w07(c):
    dec = _text_unet(c)
    N = c.n_captions * c.per_caption
    prior = _gpt(64, 24 + 4, c.prior_layers, c.prior_width)
    items = [train("CLIPs (latent, judge)", _clip(c), 2 * c.clip_images, 128),
             train("decoder and GLIDE baseline", dec, 2 * c.train_images, c.batch_size),
             train("priors (diffusion, AR)", prior, 2 * c.prior_images, c.batch_size),
             run("diffusion prior samples", prior, N * c.candidates, c.prior_steps, calls=2),
             run("decoder samples (13 configurations)", dec, N, 13 * c.sample_steps, calls=2),
             reader(c.image_size, c.reader_images), feature_net("shapes", c.image_size, 3, c.feature_images)]
    if c.sr_from:
        sr = _unet(c.unet, c.image_size, 6, 6, base_channels=c.base_channels)
        items += [train("upsampler", sr, c.sr_images, c.batch_size), run("upsampled samples", sr, N, c.sr_steps)]
    return items


def _w08(c):
    net = _text_unet(c)
    models = 2 + len(c.blends)
    cap = _gpt(64, 64 + 24, c.captioner_layers, c.captioner_width)
    return [train("judge CLIP", _clip(c), c.clip_images, 128),
            train("captioner: pre-training and fine-tunes", cap, c.captioner_images + 2 * c.finetune_images, c.batch_size),
            run("re-captioning (KV cache)", cap, 2 * c.n_train + 2 * c.n_report, batch=500),
            train(f"text-to-image models ({models})", net, models * c.train_images, c.batch_size),
            run("samples (3 prompt sets per model)", net, c.n_prompts, 3 * models * c.sample_steps, calls=2),
            reader(c.image_size, c.reader_images), feature_net("shapes", c.image_size, 3, c.feature_images)]


def _w09(c):
    # chapters.consistency.toy_arms by seed tier: small, family, other
    arms = (2 * len(c.cd_steps) + 7) * c.toy_seeds_small + 5 * c.toy_seeds_family + 7 * c.toy_seeds
    mlp = _mlp(c.toy_width, c.toy_layers)
    C = _ch(c.data)
    net = _unet(c.unet, c.image_size, C, max_period=c.max_period)
    students = 4 + bool(c.scd) + bool(c.metric_bias)
    teacher_nfe = sum(2 * n - 1 for n in c.heun_steps) + 2 * sum(c.euler_steps)
    return [train("2-D arms (+ teacher step, target)", mlp, arms * c.toy_steps * c.toy_batch, c.toy_batch, forwards=2),
            run("2-D arms' samples", mlp, arms * c.toy_eval, 2, batch=c.toy_eval),
            train("TrigFlow teacher", net, c.teacher_images, c.batch_size),
            train("students (+ teacher step, target)", net, students * c.student_images, c.batch_size, forwards=2),
            run("teacher samples (Heun, Euler, ancestral)", net, c.n_samples, teacher_nfe),
            run("students' 1-2 step samples", net, c.n_samples, 3 * students),
            feature_net(c.data, c.image_size, C, c.feature_images)]


WORK: dict[str, Callable] = {"00_forward_process": _w00, "01_igpt": _w01, "02_ddpm": _w02, "03_improved_ddpm": _w03,
                             "04_adm": _w04, "05_dalle": _w05, "06_glide": _w06, "07_unclip": _w07, "08_dalle3": _w08,
                             "09_consistency": _w09}


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chapters", nargs="*", help="chapter names or numbers (default: all)")
    ap.add_argument("--profile", default="gpu", choices=["smoke", "cpu", "gpu"])
    ap.add_argument("--items", action="store_true", help="list each chapter's items")
    a = ap.parse_args(argv)
    names = [n for n in sorted(WORK) if not a.chapters or any(n == q or n.split("_", 1)[0] == q for q in a.chapters)]
    print(f"estimated seconds on one H100 ({a.profile} presets; {RATE / 1e12:.0f} TFLOP/s sustained, "
          f"{LAUNCH_S * 1e6:.0f} us per operation, {STEP_S * 1e3:.0f} ms per optimizer step, {OVERHEAD_S:.0f} s overhead)")
    for name in names:
        e = estimate(name, profiles.get(name, a.profile))
        state = "gpu record exists" if recorded(name) else "untested"
        print(f"{name:20s} {e['seconds']:7.0f} s ({e['seconds'] / 60:4.1f} min)  {state}")
        if a.items:
            for i in e["items"]:
                print(f"    {i['what']:45s} {i['steps']:8d} steps {i['seconds']:7.1f} s  ({i['bound']}-bound; "
                      f"{i['flops_per_example'] / 1e9:.3g} GFLOPs/example fwd, {i['params'] / 1e6:.2f}M params)")


if __name__ == "__main__":
    main()
