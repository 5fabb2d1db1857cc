"""An image captioner (DALL-E 3, Betker et al. 2023, Sec. 2.1): an image tower whose pooled output is
projected into ``prefix`` tokens, then a causal transformer that writes the caption after them.

DALL-E 3's captioner is a language model conditioned on a CLIP image embedding, pre-trained CoCa-style
and fine-tuned twice: to short captions (the main subject) and to descriptive ones (subject,
surroundings, background, colours). Here the image tower is ``nets.encoder.EncoderUNet`` without a
noise input, the text side the iGPT ``transformer.Block`` (causal); ``CaptionObjective`` is the
next-word cross-entropy over each caption's words and the first padding token (which ends the
caption), and ``generate`` writes a caption greedily (or by sampling) until it writes padding.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from . import seeded_init
from .encoder import EncoderConfig, EncoderUNet
from .transformer import Block, GPTConfig, KVCache, decode


@dataclass(frozen=True)
class CaptionerConfig:
    vocab_size: int
    context: int = 24  # caption words (the tokenizer's context)
    image: EncoderConfig = EncoderConfig(image_size=16, base_channels=16, channel_mult=(1, 2), attention_resolutions=(),
                                         time_cond=False)
    prefix: int = 4  # image tokens before the caption (pooled image: ignored with grid=True)
    width: int = 64
    layers: int = 2
    heads: int = 4
    grid: bool = False  # True: the image tower's last feature map, one token per cell (CoCa's image tokens)

    @property
    def n_prefix(self) -> int:
        if not self.grid:
            return self.prefix
        r = self.image.image_size // 2 ** (len(self.image.channel_mult) - 1)
        return r * r


class Captioner(nn.Module):
    """``forward(x, tokens)`` -> logits (B, L, vocab): ``logits[:, i]`` predicts ``tokens[:, i]`` from the
    image and ``tokens[:, :i]``."""

    @seeded_init
    def __init__(self, cfg: CaptionerConfig):
        super().__init__()
        self.cfg = cfg
        self.image = EncoderUNet(replace(cfg.image, out_dim=cfg.prefix * cfg.width, time_cond=False))
        if cfg.grid:
            self.grid_proj = nn.Linear(cfg.image.base_channels * cfg.image.channel_mult[-1], cfg.width)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos = nn.Parameter(torch.randn(cfg.n_prefix + cfg.context, cfg.width) * 0.01)
        block = GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.n_prefix + cfg.context, n_layer=cfg.layers,
                          n_head=cfg.heads, n_embd=cfg.width, causal=True, sos=False)
        self.blocks = nn.ModuleList(Block(block, i) for i in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab_size)
        nn.init.normal_(self.tok.weight, std=0.02)

    def prefix(self, x: torch.Tensor) -> torch.Tensor:
        """The image's tokens (B, n_prefix, width): the pooled embedding cut into ``prefix`` tokens, or
        (``grid``) the last feature map's cells, each projected."""
        if self.cfg.grid:
            return self.grid_proj(self.image.features(x, None).flatten(2).transpose(1, 2))
        return self.image(x, None).view(x.shape[0], self.cfg.prefix, self.cfg.width)

    def forward(self, x, tokens, prefix: torch.Tensor | None = None,
                cache: KVCache | None = None):
        """``prefix``: ``self.prefix(x)`` computed once (``generate`` reuses
        it for every word). With a ``cache`` (decoding): ``tokens`` are the
        words not yet fed, all of them inputs, after the image's tokens on an
        empty cache; returns the logits (B, 1, vocab) of the next word."""
        past = 0 if cache is None else cache.length()
        if past == 0:
            pre = self.prefix(x) if prefix is None else prefix
        else:
            pre = None
        if cache is None:
            if tokens.shape[1] > 1:
                h = torch.cat([pre, self.tok(tokens[:, :-1])], 1)
            else:
                h = pre
        elif pre is None:
            h = self.tok(tokens)
        else:
            h = torch.cat([pre, self.tok(tokens)], 1)
        h = h + self.pos[past:past + h.shape[1]]
        for block in self.blocks:
            h = block(h, cache)
        # the last prefix slot predicts word 0, the slot of word i predicts
        # word i + 1
        if cache is None:
            h = h[:, self.cfg.n_prefix - 1:]
        else:
            h = h[:, -1:]
        return self.head(self.ln(h))

    @torch.no_grad()
    def generate(self, x: torch.Tensor, temperature: float = 0.0, generator: torch.Generator | None = None,
                 use_cache: bool = True) -> torch.Tensor:
        """Captions (B, context) written one word at a time (``temperature`` 0: greedy); every word after the
        first padding is padding. ``use_cache``: each word costs one position's work (KV cache)."""
        self.eval()
        pre = self.prefix(x)
        start = torch.zeros(x.shape[0], 0, dtype=torch.long, device=x.device)
        return decode(lambda tokens, cache: self(x, tokens, prefix=pre, cache=cache), start, self.cfg.context,
                      n_layer=self.cfg.layers, temperature=temperature, generator=generator, use_cache=use_cache,
                      end=0)
