"""unCLIP's networks (DALL-E 2, Ramesh et al. 2022): a decoder that inverts a CLIP image embedding,
and two priors that map a caption to one.

* ``UnCLIPDecoder``: GLIDE's text-conditional UNet (``text_encoder.TextUNet``) that also reads a CLIP
  image embedding z_i twice (Sec. 2.1): projected and added to the time embedding, and projected into
  ``n_tokens`` extra context tokens appended to the caption's token states. ``forward(x, t, tokens,
  z)``; ``z = 0`` and the empty caption are the null inputs of classifier-free guidance (the paper
  drops z_i 10% and the caption 50% of the time: ``objectives.Cond`` with ``null_embedding`` and
  ``null_tokens``).
* ``DiffusionPrior``: a causal transformer over [caption token states, the CLIP text embedding z_t,
  the step's embedding, the noised z_i, a query]; the query's output is the *clean* z_i (Sec. 2.2:
  ``Diffusion(param="x0")``, mean-squared error). ``sample_prior`` draws ``candidates`` embeddings per
  caption and keeps the one with the larger dot product with z_t.
* ``ARPrior``: the same backbone over [caption token states, z_t, codes]: the codes are a quantised
  dot product <z_i, z_t> followed by z_i's first principal components, each cut into buckets
  (``quantize.PCAQuantizer``); ``generate`` samples them one at a time.

Both priors work on embeddings scaled to the pixels' spread (``embedding_scale``): the paper
multiplies its unit-norm 1,024-d embeddings by 17.2, about 0.54 sqrt(d), so that each coordinate's
spread matches that of images in [-1, 1] and the noise schedule means what it means for images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import seeded_init
from .text_encoder import TextEncoder, TextEncoderConfig, TextUNet, TextUNetConfig
from .transformer import Block, GPTConfig, KVCache, decode
from .unet import timestep_embedding


def embedding_scale(dim: int) -> float:
    """The paper's 17.2 for d = 1,024 (0.5375 sqrt(d)), as a rule for any d:
    a unit vector times it has per-coordinate standard deviation ~0.54, the
    spread of RGB pixels of ImageNet scaled to [-1, 1]."""
    return 17.2 / math.sqrt(1024) * math.sqrt(dim)


# --------------------------------------------------------------------------------------------
# The decoder
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecoderConfig:
    text_unet: TextUNetConfig
    clip_dim: int = 64
    n_tokens: int = 4  # the paper's four extra context tokens


class UnCLIPDecoder(nn.Module):
    """GLIDE's UNet + caption encoder, plus a CLIP image embedding ``z`` (B, clip_dim) on both routes.
    ``tokens=None`` is the empty caption, ``z=None`` the zero (null) embedding."""

    @seeded_init
    def __init__(self, cfg: DecoderConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.text_unet.text.width
        self.net = TextUNet(cfg.text_unet)
        self.z_embed = nn.Linear(cfg.clip_dim, w)  # -> joins the pooled caption, then the time embedding
        self.z_tokens = nn.Linear(cfg.clip_dim, cfg.n_tokens * w)  # -> n_tokens extra keys and values

    def forward(self, x, t, tokens: torch.Tensor | None = None,
                z: torch.Tensor | None = None):
        B = x.shape[0]
        if tokens is None:
            tokens = torch.zeros(B, self.cfg.text_unet.text.context,
                                 dtype=torch.long, device=x.device)
        if z is None:
            z = torch.zeros(B, self.cfg.clip_dim, dtype=x.dtype,
                            device=x.device)
        z = z.to(self.z_embed.weight.dtype)
        states, pooled = self.net.text(tokens)
        extra = self.z_tokens(z).view(B, self.cfg.n_tokens, -1)
        return self.net.unet(x, t, context=torch.cat([states, extra], 1),
                             embed=pooled + self.z_embed(z))


# --------------------------------------------------------------------------------------------
# The priors
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PriorConfig:
    clip_dim: int = 64
    text: TextEncoderConfig = TextEncoderConfig()
    width: int = 128
    layers: int = 4
    heads: int = 4
    # the autoregressive prior only: codes = 1 dot-product token + pca_dims component tokens
    pca_dims: int = 16
    buckets: int = 32

    def backbone(self, length: int) -> GPTConfig:
        return GPTConfig(vocab_size=1, block_size=length, n_layer=self.layers, n_head=self.heads, n_embd=self.width,
                         causal=True, sos=False)


class _PriorBackbone(nn.Module):
    """Caption encoder (bidirectional, GLIDE's) -> token states projected to ``width``, then causal
    blocks over [states, extra slots]; returns the hidden states of the extra slots."""

    def __init__(self, cfg: PriorConfig, n_extra: int):
        super().__init__()
        self.text = TextEncoder(cfg.text)
        self.text_in = nn.Linear(cfg.text.width, cfg.width)
        self.z_text_in = nn.Linear(cfg.clip_dim, cfg.width)
        length = cfg.text.context + n_extra
        block_cfg = cfg.backbone(length)
        self.pos = nn.Parameter(torch.randn(length, cfg.width) * 0.01)
        self.blocks = nn.ModuleList(Block(block_cfg, i) for i in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)

    def forward(self, tokens, z_text, slots: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """tokens (B, L), z_text (B, d), slots (B, S, width) after the z_t slot -> hidden (B, 1 + S, width)
        of the z_t slot and the slots. With a ``cache`` (decoding): the caption and z_t go in first, on an
        empty cache only; returns the last position's hidden state (B, 1, width)."""
        past = 0 if cache is None else cache.length()
        h = slots
        if past == 0:
            states, _ = self.text(tokens)
            z_t = self.z_text_in(z_text.to(self.z_text_in.weight.dtype))[:, None]
            h = torch.cat([self.text_in(states), z_t, slots], 1)
        h = h + self.pos[past:past + h.shape[1]]
        for block in self.blocks:
            h = block(h, cache)
        return self.ln(h[:, tokens.shape[1]:] if cache is None else h[:, -1:])


def _null_inputs(tokens, z_text, B, cfg: PriorConfig, device, dtype):
    if tokens is None:
        tokens = torch.zeros(B, cfg.text.context, dtype=torch.long, device=device)
    if z_text is None:
        z_text = torch.zeros(B, cfg.clip_dim, dtype=dtype, device=device)
    return tokens, z_text


class DiffusionPrior(nn.Module):
    """``forward(x_t, t, tokens, z_text)`` -> the predicted clean (scaled) image embedding (B, clip_dim)."""

    @seeded_init
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = _PriorBackbone(cfg, n_extra=4)  # z_t, step, x_t, query
        self.t_in = nn.Sequential(nn.Linear(cfg.width, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.x_in = nn.Linear(cfg.clip_dim, cfg.width)
        self.query = nn.Parameter(torch.randn(cfg.width) * 0.02)
        self.out = nn.Linear(cfg.width, cfg.clip_dim)

    def forward(self, x, t, tokens: torch.Tensor | None = None,
                z_text: torch.Tensor | None = None):
        B, dtype = x.shape[0], self.x_in.weight.dtype
        tokens, z_text = _null_inputs(tokens, z_text, B, self.cfg, x.device,
                                      dtype)
        temb = self.t_in(
            timestep_embedding(t.to(dtype), self.cfg.width).to(dtype))
        slots = torch.stack([temb, self.x_in(x.to(dtype)),
                             self.query.to(dtype).expand(B, -1)], 1)
        return self.out(self.backbone(tokens, z_text, slots)[:, -1])


class ARPrior(nn.Module):
    """``forward(codes, tokens, z_text)`` -> logits (B, S, buckets) for codes (B, S) long, S = 1 +
    pca_dims (the dot-product token, then the components in order); ``logits[:, i]`` predicts
    ``codes[:, i]`` from the caption, z_t and ``codes[:, :i]``."""

    @seeded_init
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        self.length = 1 + cfg.pca_dims
        self.backbone = _PriorBackbone(cfg, n_extra=self.length)  # z_t slot + all codes but the last
        self.code_in = nn.Embedding(cfg.buckets, cfg.width)
        self.out = nn.Linear(cfg.width, cfg.buckets)
        nn.init.normal_(self.code_in.weight, std=0.02)

    def forward(self, codes, tokens: torch.Tensor | None = None,
                z_text: torch.Tensor | None = None,
                cache: KVCache | None = None):
        """With a ``cache`` (decoding): ``codes`` are the codes not yet fed,
        all of them inputs, after the caption and z_t on an empty cache;
        returns the logits (B, 1, buckets) of the next code."""
        B = codes.shape[0]
        tokens, z_text = _null_inputs(tokens, z_text, B, self.cfg,
                                      codes.device, self.out.weight.dtype)
        slots = self.code_in(codes[:, :-1] if cache is None else codes)
        # (B, S, width): the z_t slot predicts code 0
        h = self.backbone(tokens, z_text, slots, cache)
        return self.out(h)

    @torch.no_grad()
    def generate(self, tokens, z_text, first: torch.Tensor | None = None, temperature: float = 1.0,
                 generator: torch.Generator | None = None, use_cache: bool = True) -> torch.Tensor:
        """Codes (B, S) sampled one at a time; ``first`` (B,) fixes the dot-product token (the paper
        samples it from the top half of its distribution). ``use_cache``: the caption is encoded once
        and each code costs one position's work (KV cache)."""
        B = tokens.shape[0]
        start = (torch.zeros(B, 0, dtype=torch.long, device=tokens.device) if first is None
                 else first.to(tokens.device).long()[:, None])
        return decode(lambda codes, cache: self(codes, tokens, z_text, cache=cache), start, self.length,
                      n_layer=self.cfg.layers, temperature=temperature, generator=generator, use_cache=use_cache)


def slerp(a: torch.Tensor, b: torch.Tensor, lam: float) -> torch.Tensor:
    """Spherical interpolation between unit vectors (unCLIP Sec. 3:
    interpolating image embeddings)."""
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    omega = torch.arccos(
        (a * b).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    return (torch.sin((1 - lam) * omega) / so * a
            + torch.sin(lam * omega) / so * b)
