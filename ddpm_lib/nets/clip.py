"""A small CLIP (Radford et al. 2021) and its noised variant (GLIDE, Nichol et al. 2022, Sec. 2.5).

Two towers map an image and a caption into one ``embed_dim`` space: the image tower is the encoder
UNet with attention pooling (``nets.encoder``), the text tower the caption encoder of
``nets.text_encoder`` followed by a projection of its pooled vector. Training is the symmetric
contrastive loss with a learned temperature (``objectives.ContrastiveObjective``, ``clip_loss``).

``noised=True`` gives the image tower a noise-level input and trains it on x_t: GLIDE's noised CLIP,
whose gradient can guide a sampler at every step (``clip_guidance_grad``). The book trains two
instances of different seeds or sizes: one guides or reranks, the other judges.

Training length (16 px two-object scenes, each with its short and its descriptive caption, batch
128, lr 2e-3): descriptive captions are retrieved among 100 at 95% after ~100k images seen, short
ones ("a red circle and a blue square": colours and shapes only) at 70% then and 91.5% after ~300k:
the shapes of small objects are the slow part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import seeded_init
from .encoder import EncoderConfig, EncoderUNet
from .text_encoder import TextEncoder, TextEncoderConfig


@dataclass(frozen=True)
class CLIPConfig:
    image: EncoderConfig = field(default_factory=lambda: EncoderConfig(
        image_size=16, base_channels=16, channel_mult=(1, 2), attention_resolutions=(), time_cond=False))
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    embed_dim: int = 64
    init_temperature: float = 0.07
    seed: int = 0  # a second CLIP of the same shape with other initial weights (a judge)

    @property
    def noised(self) -> bool:
        return self.image.time_cond

    @classmethod
    def make(cls, image_size: int = 16, channels: int = 3, vocab_size: int = 30, context: int = 24,
             noised: bool = False, width: int = 16, text_width: int = 64, embed_dim: int = 64,
             seed: int = 0) -> "CLIPConfig":
        """A CLIP for ``image_size`` images and the given vocabulary (``text.WordTokenizer.vocab_size``)."""
        # one down-sampling only: pooling over 8x8 tokens keeps more of the small objects' outlines (short
        # captions retrieved 73% vs 42% with a second down-sampling, 800 steps, 2-object scenes)
        image = EncoderConfig(image_size=image_size, in_channels=channels, out_dim=embed_dim, base_channels=width,
                              channel_mult=(1, 2), attention_resolutions=(), time_cond=noised)
        text = TextEncoderConfig(vocab_size=vocab_size, context=context, width=text_width)
        return cls(image, text, embed_dim, seed=seed)


class CLIP(nn.Module):
    # the initial weights are a function of cfg alone (cfg.seed makes a second
    # instance)
    @seeded_init
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.image = EncoderUNet(replace(cfg.image, out_dim=cfg.embed_dim))
        self.text = TextEncoder(cfg.text)
        self.text_proj = nn.Linear(cfg.text.width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(
            torch.tensor(math.log(1 / cfg.init_temperature)))
        # perturb the seeded init deterministically for another instance of
        # the same shape
        if cfg.seed:
            g = torch.Generator().manual_seed(cfg.seed)
            with torch.no_grad():
                for p in self.parameters():
                    if p.ndim > 1:
                        p.add_(torch.randn(p.shape, generator=g)
                               * p.std().clamp_min(1e-3) * 0.5)

    def encode_image(self, x: torch.Tensor,
                     t: torch.Tensor | None = None) -> torch.Tensor:
        """(B, embed_dim), not normalised; ``t`` (float steps) for a noised
        CLIP."""
        return self.image(x, t)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_proj(self.text(tokens)[1])

    def forward(self, x, tokens, t=None):
        """(image embeddings, text embeddings, log of the inverse
        temperature), for ``clip_loss``."""
        return (self.encode_image(x, t), self.encode_text(tokens),
                self.logit_scale)


@torch.no_grad()
def clip_score(clip: CLIP, images: torch.Tensor, tokens: torch.Tensor, batch_size: int = 500,
               t: torch.Tensor | None = None) -> torch.Tensor:
    """CLIP-S = 100 cos(image, caption) per pair (Hessel et al. 2021; GLIDE and DALL-E 3 report it
    with logit scale 100), float64 (N,)."""
    out = []
    dtype = next(clip.parameters()).dtype
    dev = next(clip.parameters()).device
    for i in range(0, len(images), batch_size):
        x = images[i:i + batch_size].to(dev, dtype)
        ti = None if t is None else t[i:i + batch_size].to(dev, dtype)
        a = F.normalize(clip.encode_image(x, ti).double(), dim=-1)
        b = F.normalize(clip.encode_text(tokens[i:i + batch_size].to(dev)).double(), dim=-1)
        out.append(100 * (a * b).sum(-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def retrieval_accuracy(clip: CLIP, images: torch.Tensor, tokens: torch.Tensor, keys: list | None = None,
                       pool: int = 100) -> float:
    """Image-to-caption retrieval: within each group of ``pool`` held-out pairs, the fraction of images
    whose best-scoring caption is their own (a noised CLIP sees the clean images at t = 0) or, given ``keys`` (one hashable per caption, e.g.
    ``text.caption_key``), one with the same key: a short caption like "a red circle" belongs to many
    images, and "a red circle and a blue square" says the same as "a blue square and a red circle"."""
    dtype, dev = next(clip.parameters()).dtype, next(clip.parameters()).device
    hits, n = 0, 0
    for s in range(0, len(images) - pool + 1, pool):
        x = images[s:s + pool].to(dev, dtype)
        t0 = torch.zeros(len(x), device=dev, dtype=dtype) if clip.cfg.noised else None  # a noised CLIP at t = 0
        img = F.normalize(clip.encode_image(x, t0).double(), dim=-1)
        txt = F.normalize(clip.encode_text(tokens[s:s + pool].to(dev)).double(), dim=-1)
        pred = (img @ txt.T).argmax(1).cpu()
        for i, j in enumerate(pred.tolist()):
            hits += (j == i) if keys is None else (keys[s + j] == keys[s + i])
        n += pool
    if n == 0:
        raise ValueError(f"need at least pool={pool} pairs, got {len(images)}")
    return hits / n


def clip_guidance_grad(clip: CLIP, tokens: torch.Tensor,
                       scaled: bool = False):
    """GLIDE's CLIP guidance as a gradient function for
    ``sampling.classifier_guidance``: grad_x (f(x_t, t) . g(c)) with
    unit-normalised embeddings (GLIDE Sec. 2.5). A noised CLIP takes t.
    ``scaled=True`` multiplies by the CLIP's learned logit scale exp(s), as
    glide-text2im's ``cond_fn`` does, so that guidance scales mean what
    GLIDE's mean (the gradient of a logit, as a classifier's)."""
    dtype = next(clip.parameters()).dtype

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().to(dtype).requires_grad_(True)
            tt = t.to(x.device).to(dtype) if clip.cfg.noised else None
            img = F.normalize(clip.encode_image(x, tt).float(), dim=-1)
            txt = F.normalize(clip.encode_text(tokens.to(x.device)).float(),
                              dim=-1)
            g = torch.autograd.grad((img * txt).sum(), x)[0]
        return (g * clip.logit_scale.exp().clamp(max=100.0).detach()
                .to(g.dtype) if scaled else g)

    return fn
