"""GPT blocks (pre-norm, causal or bidirectional) with a KV cache for sampling.

Used by iGPT (Chen et al. 2020) now, and later by text encoders, DALL-E and the unCLIP prior.
iGPT's departures from GPT-2 are options of ``GPTConfig``:
* ``norm="rms"``: a norm without mean subtraction or bias, x * rsqrt(mean(x^2) + eps) * g;
* ``activation="gelu2"``: x * sigmoid(1.702 x);
* ``sos=True``: a learned start-of-sequence embedding; position i is predicted from [sos, x_<i],
  so ``forward(idx)`` returns logits aligned with ``idx`` itself (no separate shift);
* untied input and output embeddings (``tie_embeddings=False``).
``causal=False`` gives the BERT-style bidirectional model (iGPT's masked objective; the mask token is
the caller's extra vocabulary entry).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from . import seeded_init


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 16
    block_size: int = 64  # longest sequence (including nothing for sos: sos adds its own slot)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    causal: bool = True
    norm: str = "layer"  # "layer" | "rms"
    activation: str = "gelu"  # "gelu" | "gelu2"
    sos: bool = True
    tie_embeddings: bool = False
    bias: bool = True

    def __post_init__(self):
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"unknown norm {self.norm!r}; valid choices: ['layer', 'rms']")
        if self.activation not in ("gelu", "gelu2"):
            raise ValueError(f"unknown activation {self.activation!r}; valid choices: ['gelu', 'gelu2']")
        if self.n_embd % self.n_head:
            raise ValueError("n_embd must be divisible by n_head")


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def gelu2(x):
    return x * torch.sigmoid(1.702 * x)


class KVCache:
    """Keys and values of every layer for the positions seen so far: (B, heads, L, head_dim) each."""

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def length(self, layer: int = 0) -> int:
        """Positions cached so far in ``layer`` (layers fill one after another within a forward)."""
        return 0 if self.k[layer] is None else self.k[layer].shape[2]

    def append(self, layer: int, k, v):
        if self.k[layer] is not None:
            k, v = torch.cat([self.k[layer], k], 2), torch.cat([self.v[layer], v], 2)
        self.k[layer], self.v[layer] = k, v
        return k, v


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, layer: int):
        super().__init__()
        self.cfg, self.layer = cfg, layer
        Norm = RMSNorm if cfg.norm == "rms" else (lambda d: nn.LayerNorm(d, bias=cfg.bias))
        self.ln1, self.ln2 = Norm(cfg.n_embd), Norm(cfg.n_embd)
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.fc_out = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.act = gelu2 if cfg.activation == "gelu2" else F.gelu
        self.drop = nn.Dropout(cfg.dropout)

    def attention(self, x, cache: KVCache | None):
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d", three=3, h=self.cfg.n_head)
        past = 0 if cache is None else cache.length(self.layer)
        if cache is not None:
            k, v = cache.append(self.layer, k, v)  # (B, heads, past + L, d)
        L, S = q.shape[2], k.shape[2]
        if self.cfg.causal and L > 1:
            # query i (absolute position past + i) sees keys 0 .. past + i
            mask = torch.ones(L, S, dtype=torch.bool, device=x.device).tril(diagonal=past)
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self._p())
        else:
            h = F.scaled_dot_product_attention(q, k, v, dropout_p=self._p())
        return self.proj(rearrange(h, "b h l d -> b l (h d)"))

    def _p(self):
        return self.cfg.dropout if self.training else 0.0

    def forward(self, x, cache=None):
        x = x + self.drop(self.attention(self.ln1(x), cache))
        return x + self.drop(self.fc_out(self.act(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    @seeded_init  # the initial weights are a function of cfg alone
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        n_pos = cfg.block_size + (1 if cfg.sos else 0)
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Parameter(torch.zeros(n_pos, cfg.n_embd))
        self.sos = nn.Parameter(torch.zeros(cfg.n_embd)) if cfg.sos else None
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.ln_f = RMSNorm(cfg.n_embd) if cfg.norm == "rms" else nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init)
        nn.init.normal_(self.pos, std=0.01)
        if self.sos is not None:
            nn.init.normal_(self.sos, std=0.02)
        if cfg.tie_embeddings:
            self.head.weight = self.tok.weight

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def embed(self, idx, start: int = 0, with_sos: bool = True):
        """Token embeddings at absolute positions start.., with the sos slot at position 0."""
        x = self.tok(idx)  # (B, L, n_embd)
        if self.sos is not None and with_sos:
            x = torch.cat([self.sos.expand(idx.shape[0], 1, -1), x], dim=1)
        if start + x.shape[1] > self.pos.shape[0]:
            raise ValueError(f"sequence of {start + x.shape[1]} positions exceeds block_size {self.cfg.block_size}")
        return x + self.pos[start:start + x.shape[1]]

    def forward(self, idx, return_hidden: bool = False, cache: KVCache | None = None, start: int = 0):
        """Logits (B, L, V) for ``idx`` (B, L).

        With ``sos``: the input is [sos, idx[:, :-1]], so ``logits[:, i]`` predicts ``idx[:, i]``.
        Without: ``logits[:, i]`` is the output at position i (predicting i + 1 when causal).
        ``return_hidden`` also returns the residual stream after each block, [(B, L, n_embd)] * n_layer
        (the features of iGPT's linear probes).
        """
        if self.sos is not None and cache is None:
            x = self.embed(idx[:, :-1], 0, with_sos=True)
        else:
            x = self.embed(idx, start, with_sos=False)
        hidden = []
        for block in self.blocks:
            x = block(x, cache)
            hidden.append(x)
        logits = self.head(self.ln_f(x))
        return (logits, hidden) if return_hidden else logits

    @torch.no_grad()
    def generate(self, prefix: torch.Tensor, length: int, temperature: float = 1.0, top_k: int | None = None,
                 generator: torch.Generator | None = None, use_cache: bool = True,
                 vocab_range: tuple[int, int] | None = None) -> torch.Tensor:
        """Sample until the sequence holds ``length`` tokens, continuing ``prefix`` (B, P); P may be 0.

        With ``use_cache`` every new token costs one position's work (KV cache); without, the whole
        sequence is recomputed at every step. Both give the same tokens for the same generator.
        ``vocab_range=(lo, hi)`` samples new tokens from ids lo..hi-1 only (DALL-E: image codes after a
        text prefix, in one shared vocabulary).
        """
        if vocab_range is not None and not 0 <= vocab_range[0] < vocab_range[1] <= self.cfg.vocab_size:
            raise ValueError(f"vocab_range {vocab_range} must satisfy 0 <= lo < hi <= {self.cfg.vocab_size}")
        if not (self.cfg.causal and self.cfg.sos):
            raise ValueError("generate needs a causal model with a start-of-sequence slot")
        self.eval()
        seq = prefix.clone()
        B = seq.shape[0]
        cache = KVCache(self.cfg.n_layer) if use_cache else None
        if use_cache:  # feed sos + prefix once; the last output predicts the next token
            x = torch.cat([self.sos.expand(B, 1, -1), self.tok(seq)], 1) + self.pos[: seq.shape[1] + 1]
            for block in self.blocks:
                x = block(x, cache)
            logits = self.head(self.ln_f(x[:, -1]))
        while seq.shape[1] < length:
            if not use_cache:
                full = torch.cat([seq, seq.new_zeros(B, 1)], 1)  # a dummy last token: only its input shifts in
                logits = self.forward(full)[:, -1]
            if vocab_range is not None:
                keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
                keep[vocab_range[0]:vocab_range[1]] = True
                logits = logits.masked_fill(~keep, float("-inf"))
            nxt = _sample(logits, temperature, top_k, generator)
            seq = torch.cat([seq, nxt[:, None]], 1)
            if use_cache and seq.shape[1] < length:
                pos = seq.shape[1]  # absolute position of this token's input slot (sos is 0)
                x = self.tok(nxt[:, None]) + self.pos[pos:pos + 1]
                for block in self.blocks:
                    x = block(x, cache)
                logits = self.head(self.ln_f(x[:, -1]))
        return seq


def _sample(logits, temperature, top_k, generator):
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    logits = logits / max(temperature, 1e-8)
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
