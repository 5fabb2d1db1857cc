"""A caption encoder and a text-conditional UNet (GLIDE, Nichol et al. 2022, Sec. 2.3 and App. A).

``TextEncoder``: token + position embeddings, a learned embedding per padding position (GLIDE's
``padding_embedding``: the empty caption is a real input, not a masked one), a bidirectional
transformer (the ``transformer.Block`` of iGPT with ``causal=False``) and a final LayerNorm. It
returns every token's state (B, L, width) and a pooled vector (B, width): the last position's state,
as GLIDE reads it. GLIDE feeds both into the image model:

* the token states become extra keys and values of every attention layer (``UNet(context=...)``);
* the pooled vector replaces the class embedding, added to the time embedding (``UNet(embed=...)``).

``TextUNet`` is that pairing, trained jointly: ``TextUNet(x, t, tokens)``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from . import seeded_init
from .transformer import Block, GPTConfig
from .unet import UNet, UNetConfig


@dataclass(frozen=True)
class TextEncoderConfig:
    vocab_size: int = 30
    context: int = 24
    width: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.0


class TextEncoder(nn.Module):
    @seeded_init  # the initial weights are a function of cfg alone
    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.cfg = cfg
        block_cfg = GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.context, n_layer=cfg.layers,
                              n_head=cfg.heads, n_embd=cfg.width, dropout=cfg.dropout, causal=False, sos=False)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.randn(cfg.context, cfg.width) * 0.01)
        self.pad = nn.Parameter(torch.randn(cfg.context, cfg.width) * 0.01)  # one learned vector per padded slot
        self.blocks = nn.ModuleList(Block(block_cfg, i) for i in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, L) long, 0 = padding, L <= context -> (states (B, L, width), pooled (B, width))."""
        B, L = tokens.shape
        if L > self.cfg.context:
            raise ValueError(f"{L} tokens exceed the encoder's context of {self.cfg.context}")
        real = (tokens != 0)[..., None]
        h = torch.where(real, self.tok(tokens), self.pad[:L].to(self.tok.weight.dtype)) + self.pos[:L]
        for block in self.blocks:
            h = block(h)
        h = self.ln(h)
        return h, h[:, -1]


@dataclass(frozen=True)
class TextUNetConfig:
    unet: UNetConfig
    text: TextEncoderConfig

    def __post_init__(self):
        if self.unet.context_dim != self.text.width or self.unet.embed_dim != self.text.width:
            raise ValueError(f"the UNet's context_dim and embed_dim must equal the text width {self.text.width} "
                             f"(got {self.unet.context_dim}, {self.unet.embed_dim}); use TextUNetConfig.of(unet, text)")

    @classmethod
    def of(cls, unet: UNetConfig, text: TextEncoderConfig) -> "TextUNetConfig":
        """Pair a UNet with a text encoder, setting the UNet's two text routes to the text width."""
        return cls(replace(unet, context_dim=text.width, embed_dim=text.width), text)


class TextUNet(nn.Module):
    """UNet + TextEncoder, GLIDE's two routes. ``tokens=None`` is the empty caption."""

    @seeded_init
    def __init__(self, cfg: TextUNetConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg.text)
        self.unet = UNet(cfg.unet)

    def forward(self, x, t, tokens: torch.Tensor | None = None, y=None, embed=None):
        if tokens is None:
            tokens = torch.zeros(x.shape[0], self.cfg.text.context, dtype=torch.long, device=x.device)
        states, pooled = self.text(tokens)
        if embed is not None:  # (a further global embedding, e.g. unCLIP's, joins the pooled text)
            pooled = pooled + embed
        return self.unet(x, t, y=y, context=states, embed=pooled)
