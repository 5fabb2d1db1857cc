"""Feature networks by name, for the sample-quality metrics of ``ddpm_lib.metrics``.

* ``get_extractor(name)``: ``"inception"`` (pool3, 2048-d; only where ``pytorch-fid`` and its
  weights file are already on disk) or an *in-domain* network per data set (``"digits"``,
  ``"shapes"``, ``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``): a small GroupNorm CNN
  (``nets.features.FeatureNet``) trained by a fixed recipe on the real training split. Its
  penultimate layer gives the features of "FID_clf", its heads score conditional samples
  (``metrics.conditional_accuracy``, ``metrics.attribute_accuracy``).
* ``FeatureNetRecipe`` and ``RECIPES``: the training recipe of each data set, its length in images seen.
  The network trains like every other model of the book, through ``train.train_cached`` (so it is
  cached, resumable and keyed by network, objective, data and recipe) with ``FeatureObjective``:
  the summed cross-entropy of the heads on randomly translated images. The extractor uses the EMA
  weights. Its held-out accuracy per head is measured once after training and kept next to the run
  (``features.json``), with the rest of its metadata, in ``FeatureExtractor.meta``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from . import data as D
from . import train as TR
from .metrics import FeatureExtractor
from .nets.features import FeatureNet, FeatureNetConfig
from .objectives import ClassifierObjective


# --------------------------------------------------------------------------------------------
# Recipes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureNetRecipe:
    """The fixed training recipe of an in-domain feature network; every field joins the cache key.

    ``n_train=None`` uses the whole training split, ``n_test=None`` the loader's default test split.
    ``shift`` is the augmentation: a random translation by up to that many pixels (edges
    replicated); 0 turns it off. Training length and warmup are in images seen.
    """

    width: int = 16  # channels of the first stage; doubled at each downsampling
    feature_dim: int = 128  # the penultimate layer: the features
    train_images: int = 20_000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_images: int = 1000
    weight_decay: float = 1e-4
    ema_decay: float = 0.999
    shift: int = 1
    n_train: int | None = None
    n_test: int | None = None  # held-out images for the accuracy (None: the loader's default)
    seed: int = 0


# One recipe per data set, each as long as the epoch-based recipe it replaced (epochs x training
# split). digits and shapes train in about 10 s on one CPU thread at 16x16; the online sets (60k /
# 50k images) are meant for a GPU session or a long CPU run (their recipes are not measured here).
# Measured over three seeds (EMA weights): batch 32 at lr 1e-3 beats batch 64 at 2e-3 on shapes'
# hardest head, the shape of a small object (0.962-0.967 of held-out scenes, not 0.952-0.954; at
# lr 5e-4 0.953-0.958). On digits every setting reads 0.994-1.0 of the test digits, but only the
# smaller lr keeps uniform noise off the real manifold in feature space (k-NN precision of noise
# images 0.004-0.016 at lr 5e-4, 0.04-0.06 at 1e-3, 0.12-0.22 at batch 64 and 2e-3).
RECIPES: dict[str, FeatureNetRecipe] = {
    "digits": FeatureNetRecipe(train_images=15 * 1440, lr=5e-4),  # the 1,437 training digits, 15 times
    "shapes": FeatureNetRecipe(train_images=32_000, n_train=8000, shift=0),  # position is an attribute: no shifts
    "mnist": FeatureNetRecipe(width=32, train_images=3 * 60_000),
    "fashion_mnist": FeatureNetRecipe(width=32, train_images=5 * 60_000),
    "cifar10": FeatureNetRecipe(width=48, train_images=15 * 50_000, shift=2),
}
DEFAULT_SIZE = {"digits": 16, "shapes": 16, "mnist": 28, "fashion_mnist": 28, "cifar10": 32}
EXTRACTORS = ("inception", *RECIPES)


# --------------------------------------------------------------------------------------------
# The objective: classification of randomly translated images
# --------------------------------------------------------------------------------------------
def random_shift(x: torch.Tensor, shift: int, batch: TR.Batch) -> torch.Tensor:
    """Translate each image of ``x`` (B, C, H, W) by up to ``shift`` pixels in each direction (edges
    replicated); the offsets come from ``batch``'s shared generator."""
    if shift == 0:
        return x
    _, _, h, w = x.shape
    pad = F.pad(x, (shift,) * 4, mode="replicate")  # (B, C, H + 2 shift, W + 2 shift)
    dy, dx = batch.randint(2 * shift + 1), batch.randint(2 * shift + 1)  # (B,) offsets in [0, 2 shift]
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (B, W)
    b = torch.arange(len(x), device=x.device)
    out = pad[b[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)
    return rearrange(out, "b h w c -> b c h w")


class FeatureObjective(ClassifierObjective):
    """``ClassifierObjective`` (cross-entropy summed over heads; ``y`` is (N, heads) in the order of
    the network's heads) on images randomly translated by up to ``shift`` pixels."""

    def __init__(self, shift: int = 0):
        self.shift = shift

    def config(self) -> dict:
        return {**super().config(), "shift": self.shift}

    def __call__(self, net, batch):
        if self.shift:
            batch = dataclasses.replace(batch, x=random_shift(batch.x, self.shift, batch))
        return super().__call__(net, batch)


# --------------------------------------------------------------------------------------------
# In-domain networks: data, training, the cached result
# --------------------------------------------------------------------------------------------
def _targets(d: D.Data) -> tuple[torch.Tensor, tuple[tuple[str, int], ...], str | None]:
    """(y (N, heads) long, heads as (name, classes) pairs, the head that reads ``d.y``): every
    attribute when the data set has them (shapes), else the class."""
    if d.attrs:
        heads = tuple((k, len(d.attr_values[k]) if d.attr_values and k in d.attr_values else int(v.max()) + 1)
                      for k, v in d.attrs.items())
        label_head = next((k for k, v in d.attrs.items() if d.y is not None and torch.equal(v.long(), d.y.long())), None)
        return torch.stack([d.attrs[k].long() for k, _ in heads], 1), heads, label_head
    if d.y is None:
        raise ValueError("a feature network needs labelled data (y or attrs)")
    n_classes = len(d.classes) if d.classes else int(d.y.max()) + 1
    return d.y.long()[:, None], (("class", n_classes),), "class"


@torch.no_grad()
def head_accuracy(net: FeatureNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict[str, float]:
    """Accuracy of each head of ``net`` on images ``x`` with targets ``y`` (N, heads)."""
    net.eval()
    device = next(net.parameters()).device
    logits = [net(x[i:i + batch_size].to(device)) for i in range(0, len(x), batch_size)]
    return {k: float((torch.cat([p[k] for p in logits]).argmax(1).cpu() == y[:, i]).double().mean())
            for i, k in enumerate(net.heads)}


META_FILE = "features.json"


def _in_domain(name: str, image_size: int | None, recipe: FeatureNetRecipe | None, device, train: bool,
               progress: bool, threads: int | None) -> FeatureExtractor:
    image_size = image_size or DEFAULT_SIZE[name]
    recipe = recipe or RECIPES[name]
    tr = D.load(name, split="train", image_size=image_size, n=recipe.n_train, seed=recipe.seed)
    x = tr.x.float()
    y, heads, label_head = _targets(tr)
    net = FeatureNet(FeatureNetConfig(x.shape[1], image_size, heads, recipe.width, recipe.feature_dim))
    cfg = TR.TrainConfig.from_preset(recipe)
    old = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        res = TR.train_cached(f"features-{name}{image_size}", net, FeatureObjective(recipe.shift), (x, y), cfg,
                              extra={"dataset": name, "recipe": recipe}, load_only=not train,
                              device=device, progress=progress)
        meta = _meta(res, name, tr, heads, label_head, recipe)
    finally:
        torch.set_num_threads(old)
    return FeatureExtractor(name, res.ema, image_size, x.shape[1], meta, trained_now=not res.loaded, device=device)


def _meta(res: TR.TrainResult, name: str, tr: D.Data, heads, label_head, recipe: FeatureNetRecipe) -> dict:
    """The extractor's metadata, with the held-out accuracy per head: read from the run's
    ``features.json``, or measured (and written there) when the run was trained now or has none."""
    path = Path(res.run_dir) / META_FILE
    if res.loaded and path.exists():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            pass  # a damaged file: measure again
    t0 = time.perf_counter()
    te = D.load(name, split="test", image_size=tr.x.shape[-1], n=recipe.n_test, seed=recipe.seed)
    y_test, _, _ = _targets(te)
    meta = dict(dataset=name, image_size=tr.x.shape[-1], channels=tr.x.shape[1], heads=dict(heads),
                label_head=label_head, accuracy=head_accuracy(res.ema, te.x.float(), y_test), weights="ema",
                n_train=len(tr.x), n_test=len(te.x), train_seconds=round(res.wall_s, 2),
                eval_seconds=round(time.perf_counter() - t0, 2), recipe=dataclasses.asdict(recipe),
                attr_values=tr.attr_values or None, classes=list(tr.classes) if tr.classes is not None else None)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # (cache.remove_orphans' names)
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(path)  # one rename: a reader sees the old file or the new one
    return meta


# --------------------------------------------------------------------------------------------
# Inception (optional)
# --------------------------------------------------------------------------------------------
class InceptionExtractor(FeatureExtractor):
    """pool3 (2048-d) of the FID Inception network from ``pytorch-fid``; images are quantized to
    256 levels first, as the ADM evaluator feeds uint8 images. No logits: ``predict`` raises."""

    def __init__(self, net: nn.Module, device="cpu"):
        super().__init__("inception", net, 299, 3, {}, device=device)

    def prepare(self, x):  # the network resizes to 299 itself
        x = torch.as_tensor(x).to(self.device, torch.float32)
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return torch.round((x.clamp(-1, 1) + 1) * 127.5) / 255.0  # [0, 1] on the uint8 grid

    def _features(self, x):
        return self.net(x)[0].flatten(1)  # (B, 2048)

    def _logits(self, x):
        raise NotImplementedError("the FID Inception network gives features only")


def _inception(device) -> InceptionExtractor:
    """The pytorch-fid Inception, only if the package is importable *and* its weights file is already
    in the torch hub cache; never downloads."""
    alternatives = f"use an in-domain feature network instead: {list(RECIPES)}"
    try:
        from pytorch_fid import inception as pfi
    except ImportError:
        raise RuntimeError("Inception features need the `pytorch-fid` package (pip install pytorch-fid) and its "
                           f"weights on disk; {alternatives}") from None
    weights = Path(torch.hub.get_dir()) / "checkpoints" / pfi.FID_WEIGHTS_URL.rsplit("/", 1)[-1]
    if not weights.exists():
        raise RuntimeError(f"Inception weights not found at {weights}; this library never downloads them. "
                           "Fetch them once where a network is available (running pytorch-fid once does), "
                           f"or {alternatives}")
    net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True)
    return InceptionExtractor(net, device)


# --------------------------------------------------------------------------------------------
# By name
# --------------------------------------------------------------------------------------------
def get_extractor(name: str, image_size: int | None = None, recipe: FeatureNetRecipe | None = None,
                  device="cpu", train: bool = True, progress: bool = True,
                  threads: int | None = None, train_images: int | None = None) -> FeatureExtractor:
    """A feature extractor by name: ``"inception"`` or a data set's in-domain network.

    In-domain networks are trained once by ``RECIPES[name]`` (or ``recipe``) at ``image_size``
    (default ``DEFAULT_SIZE[name]``) through ``train.train_cached``, then loaded from the weights
    cache; ``train=False`` refuses to train (FileNotFoundError when the run is not cached).
    ``train_images`` (a profile's ``feature_images``; None keeps the recipe's) shortens that recipe's
    training, as a smoke profile does.
    ``threads`` sets torch's CPU threads while training (restored after): on a CPU shared with other
    busy processes, ``threads=1`` avoids the large slow-down of oversubscribed threads.
    """
    if name == "inception":
        return _inception(device)
    if name not in RECIPES:
        raise ValueError(f"unknown feature extractor {name!r}; valid choices: {list(EXTRACTORS)}")
    if train_images is not None:
        recipe = dataclasses.replace(recipe or RECIPES[name], train_images=train_images)
    return _in_domain(name, image_size, recipe, device, train, progress, threads)
