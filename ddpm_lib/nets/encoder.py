"""The UNet's encoder half with an attention-pooling head (ADM, Dhariwal & Nichol 2021, Sec. 4.1).

``EncoderUNet`` is the down path and the middle block of ``nets.unet.UNet`` (the same residual
blocks, AdaGN, attention and BigGAN down-sampling options) followed by ``AttentionPool2d``: the
feature map is flattened to tokens, their mean is prepended as a query token, positional
embeddings are added, one multi-head attention layer runs, and token 0 is projected to ``out_dim``.
One network, three uses in the book:

* ADM's noisy classifier p(y | x_t): ``out_dim`` = classes, ``time_cond=True`` (chapter 04);
* the image tower of GLIDE's noised CLIP: ``out_dim`` = the embedding width, ``time_cond=True`` (06);
* the image tower of the DALL-E 3 captioner: ``time_cond=False`` (08).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from einops import rearrange

from . import seeded_init
from .unet import Attention, ResBlock, encoder_half, n_heads, timestep_embedding


@dataclass(frozen=True)
class EncoderConfig:
    image_size: int = 16
    in_channels: int = 3
    out_dim: int = 10
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attention_resolutions: tuple[int, ...] = (8,)
    num_heads: int = 2
    head_channels: int | None = None
    dropout: float = 0.0
    resblock_updown: bool = True  # ADM's classifier uses BigGAN down-sampling
    scale_shift_norm: bool = True  # and AdaGN
    groups: int = 8
    time_cond: bool = True  # False: no noise level input (the embedding is a learned constant)
    pool_heads: int = 2

    def __post_init__(self):
        if self.image_size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2^(levels-1) = "
                             f"{2 ** (len(self.channel_mult) - 1)}")
        for m in self.channel_mult:
            if (self.base_channels * m) % self.groups:
                raise ValueError(f"channels {self.base_channels * m} not divisible by groups={self.groups}")


class AttentionPool2d(nn.Module):
    """Tokens = the pixels of a (B, C, H, W) map plus their mean in front; one attention layer; the
    mean token's output, projected to ``out_dim`` (CLIP's ResNet head, ADM's classifier head)."""

    def __init__(self, channels: int, tokens: int, heads: int, out_dim: int):
        super().__init__()
        self.pos = nn.Parameter(torch.randn(tokens + 1, channels) / channels**0.5)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.proj = nn.Linear(channels, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = rearrange(x, "b c x y -> b (x y) c")  # (B, HW, C)
        h = torch.cat([h.mean(1, keepdim=True), h], dim=1)  # (B, 1 + HW, C)
        h = h + self.pos.to(h.dtype)
        # (B, 1, C): the mean token queries all
        out, _ = self.attn(h[:, :1], h, h, need_weights=False)
        return self.proj(out[:, 0])


class EncoderUNet(nn.Module):
    @seeded_init  # the initial weights are a function of cfg alone
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        ch, g = cfg.base_channels, cfg.groups
        emb_dim = 4 * ch
        if cfg.time_cond:
            self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        else:
            self.const_embed = nn.Parameter(torch.zeros(emb_dim))

        def block(cin, cout, resample=None):
            return ResBlock(cin, cout, emb_dim, cfg.dropout, g, cfg.scale_shift_norm, resample)

        def attn(c):
            return Attention(c, n_heads(cfg, c), g)

        self.conv_in, self.down, self.mid, _, cur, res = encoder_half(cfg, block, attn)  # the UNet's own
        self.out_norm = nn.Sequential(nn.GroupNorm(g, cur), nn.SiLU())
        self.pool = AttentionPool2d(cur, res * res, cfg.pool_heads, cfg.out_dim)

    def embedding(self, x: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        if not self.cfg.time_cond:
            return self.const_embed.expand(x.shape[0], -1)
        if t is None:
            raise ValueError("this encoder is noise-aware (time_cond=True): pass t")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        dtype = self.time_embed[0].weight.dtype
        return self.time_embed(timestep_embedding(t.to(dtype), self.cfg.base_channels).to(dtype))

    def features(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """The feature map before pooling: (B, C', r, r) at the lowest resolution r."""
        emb = self.embedding(x, t)
        h = self.conv_in(x)
        for layers in [*self.down, self.mid]:
            for layer in layers:
                h = layer(h) if isinstance(layer, Attention) else layer(h, emb)
        return self.out_norm(h)

    def forward(self, x: torch.Tensor,
                t: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), t (B,) float steps (omitted when
        ``time_cond=False``) -> (B, out_dim)."""
        return self.pool(self.features(x, t))


def grad_log_p(classifier: nn.Module, y: torch.Tensor):
    """grad_x log p(y | x_t) of a noisy classifier, as
    ``sampling.classifier_guidance`` wants it: a function
    ``(x_t, t) -> gradient`` (guided-diffusion's ``cond_fn`` without
    the scale)."""
    dtype = next(classifier.parameters()).dtype

    def fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = x.detach().to(dtype).requires_grad_(True)
            logits = classifier(x, t.to(x.device).to(dtype))
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp[torch.arange(len(x), device=x.device),
                          y.to(x.device)]
            return torch.autograd.grad(picked.sum(), x)[0]

    return fn
