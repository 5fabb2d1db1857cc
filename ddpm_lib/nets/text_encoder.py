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
from .unet import SuperResolution, UNet, UNetConfig


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

    def forward(self, tokens: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """tokens (B, L) long, 0 = padding, L <= context ->
        (states (B, L, width), pooled (B, width))."""
        B, L = tokens.shape
        if L > self.cfg.context:
            raise ValueError(f"{L} tokens exceed the encoder's context of "
                             f"{self.cfg.context}")
        real = (tokens != 0)[..., None]
        h = torch.where(real, self.tok(tokens),
                        self.pad[:L].to(self.tok.weight.dtype)) + self.pos[:L]
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

    def forward(self, x, t, tokens: torch.Tensor | None = None, y=None,
                embed=None):
        if tokens is None:
            tokens = torch.zeros(x.shape[0], self.cfg.text.context,
                                 dtype=torch.long, device=x.device)
        states, pooled = self.text(tokens)
        if embed is not None:
            # (a further global embedding, e.g. unCLIP's, joins
            # the pooled text)
            pooled = pooled + embed
        return self.unet(x, t, y=y, context=states, embed=pooled)


class InpaintTextUNet(nn.Module):
    """GLIDE's inpainting model (Sec. 4.3, glide-text2im ``InpaintText2ImUNet``): a TextUNet whose input
    also holds the known pixels and the mask, ``[x_t, known * mask, mask]`` (2C + 1 channels; mask = 1
    where a pixel is known). ``from_base`` starts it from a trained TextUNet with the new input weights
    at zero, so before fine-tuning it computes exactly what the base model does."""

    @seeded_init
    def __init__(self, cfg: TextUNetConfig):
        super().__init__()
        if cfg.unet.in_channels % 2 != 1:
            raise ValueError(f"an inpainting UNet takes x_t, the known pixels and a mask: in_channels must be "
                             f"2 x the image channels + 1, got {cfg.unet.in_channels}")
        self.cfg = cfg
        self.channels = cfg.unet.in_channels // 2
        self.base = TextUNet(cfg)

    @classmethod
    def from_base(cls, base: TextUNet) -> "InpaintTextUNet":
        c = base.cfg.unet.in_channels
        net = cls(replace(base.cfg, unet=replace(base.cfg.unet,
                                                 in_channels=2 * c + 1)))
        state = {k: v.clone() for k, v in base.state_dict().items()}
        w = state["unet.conv_in.weight"]
        state["unet.conv_in.weight"] = torch.cat(
            [w, torch.zeros(w.shape[0], c + 1, *w.shape[2:], dtype=w.dtype)],
            1)
        net.base.load_state_dict(state)
        return net.to(next(base.parameters()).device)

    def forward(self, x, t, tokens=None, known=None, mask=None, **kw):
        if mask is None:  # nothing known
            mask = torch.zeros(x.shape[0], 1, *x.shape[2:], dtype=x.dtype, device=x.device)
            known = torch.zeros_like(x)
        mask = mask.to(x.dtype)
        return self.base(torch.cat([x, known.to(x.dtype) * mask, mask], dim=1), t, tokens, **kw)


class TextSuperResUNet(SuperResolution):
    """GLIDE's upsampler (glide-text2im ``SuperResText2ImUNet``): ``unet.SuperResolution`` around a
    TextUNet (held as ``base``); the caption joins through the text routes as in the base model,
    ``forward(x, t, low_res, tokens=None, **kw)``."""

    @seeded_init
    def __init__(self, cfg: TextUNetConfig):
        super().__init__(TextUNet(cfg), cfg.unet.in_channels, name="base")
