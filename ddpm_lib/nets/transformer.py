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
        ms = x.pow(2).mean(-1, keepdim=True)  # mean square, no mean subtracted
        return x * torch.rsqrt(ms + self.eps) * self.weight


def gelu2(x):
    return x * torch.sigmoid(1.702 * x)


class KVCache:
    """Keys and values of every layer for the positions seen so far:
    (B, heads, L, head_dim) each."""

    def __init__(self, n_layer: int):
        self.k: list[torch.Tensor | None] = [None] * n_layer
        self.v: list[torch.Tensor | None] = [None] * n_layer

    def length(self, layer: int = 0) -> int:
        """Positions cached so far in ``layer`` (layers fill one after
        another within a forward)."""
        return 0 if self.k[layer] is None else self.k[layer].shape[2]

    def append(self, layer: int, k, v):
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], 2)
            v = torch.cat([self.v[layer], v], 2)
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
        q, k, v = rearrange(self.qkv(x), "b l (three h d) -> three b h l d",
                            three=3, h=self.cfg.n_head)
        past = 0 if cache is None else cache.length(self.layer)
        if cache is not None:
            k, v = cache.append(self.layer, k, v)  # (B, heads, past + L, d)
        L, S = q.shape[2], k.shape[2]
        if self.cfg.causal and L > 1:
            # query i (absolute position past + i) sees keys 0 .. past + i
            ones = torch.ones(L, S, dtype=torch.bool, device=x.device)
            mask = ones.tril(diagonal=past)
            h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self._p())
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
        """Token embeddings at absolute positions start.., with the sos slot
        at position 0."""
        x = self.tok(idx)  # (B, L, n_embd)
        if self.sos is not None and with_sos:
            x = torch.cat([self.sos.expand(idx.shape[0], 1, -1), x], dim=1)
        if start + x.shape[1] > self.pos.shape[0]:
            raise ValueError(f"sequence of {start + x.shape[1]} positions "
                             f"exceeds block_size {self.cfg.block_size}")
        return x + self.pos[start:start + x.shape[1]]

    def forward(self, idx, return_hidden: bool = False, cache: KVCache | None = None):
        """Logits (B, L, V) for ``idx`` (B, L).

        With ``sos``: the input is [sos, idx[:, :-1]], so ``logits[:, i]`` predicts ``idx[:, i]``.
        Without: ``logits[:, i]`` is the output at position i (predicting i + 1 when causal).
        ``return_hidden`` also returns the residual stream after each block, [(B, L, n_embd)] * n_layer
        (the features of iGPT's linear probes).
        With a ``cache`` (decoding): ``idx`` holds only the tokens not yet fed, all of them inputs; an
        empty cache starts with the sos slot. Returns the logits (B, 1, V) of the last position, which
        predict the next token (nanoGPT's inference path).
        """
        if cache is None:
            x = self.embed(idx[:, :-1], 0, with_sos=True) if self.sos is not None else self.embed(idx)
        else:
            past = cache.length()
            x = self.embed(idx, past, with_sos=past == 0)
        hidden = []
        for block in self.blocks:
            x = block(x, cache)
            hidden.append(x)
        logits = self.head(self.ln_f(x if cache is None else x[:, -1:]))
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
        return decode(lambda seq, cache: self(seq, cache=cache), prefix, length, n_layer=self.cfg.n_layer,
                      temperature=temperature, top_k=top_k, generator=generator, use_cache=use_cache,
                      vocab_range=vocab_range)


def sample_token(logits: torch.Tensor, *, temperature: float, top_k: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """One token per row of ``logits`` (B, V): the argmax at ``temperature`` 0, otherwise a draw from
    softmax(logits / temperature), kept to the ``top_k`` largest logits if given. The draw is one
    ``multinomial`` call on ``generator``'s device (a CPU generator serves CUDA logits); returns (B,)
    long on the logits' device."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if temperature <= 0:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if generator is not None and generator.device.type != probs.device.type:
        probs = probs.to(generator.device)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1).to(logits.device)


@torch.no_grad()
def decode(step, prefix: torch.Tensor, length: int, *, n_layer: int, temperature: float = 1.0,
           top_k: int | None = None, generator: torch.Generator | None = None, use_cache: bool = True,
           vocab_range: tuple[int, int] | None = None, end: int | None = None) -> torch.Tensor:
    """The decoding loop of every token model: extend ``prefix`` (B, P) to (B, ``length``) one
    ``sample_token`` at a time.

    ``step(tokens, cache)`` is the network's forward. With a ``KVCache`` (``use_cache``) it gets the
    tokens not yet fed (the prefix first, then each new token) and its last logits predict the next
    token; without, the whole sequence so far plus a placeholder, and its logits are aligned with its
    input (``logits[:, i]`` predicts ``tokens[:, i]`` from ``tokens[:, :i]``), so the last predicts the
    next token from the sequence alone. ``vocab_range=(lo, hi)`` samples from ids lo..hi-1 only;
    ``end``: a row that has written it writes only it, and decoding stops once every row has (the rest
    is ``end``).
    """
    cache = KVCache(n_layer) if use_cache else None
    seq, new = prefix, prefix
    done = torch.zeros(prefix.shape[0], dtype=torch.bool, device=prefix.device)
    while seq.shape[1] < length:
        if use_cache:
            logits = step(new, cache)[:, -1]
        else:
            logits = step(torch.cat([seq, seq.new_zeros(seq.shape[0], 1)], 1), None)[:, -1]
        if vocab_range is not None:
            keep = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
            keep[vocab_range[0]:vocab_range[1]] = True
            logits = logits.masked_fill(~keep, float("-inf"))
        nxt = sample_token(logits, temperature=temperature, top_k=top_k, generator=generator).to(seq.device)
        if end is not None:
            nxt = torch.where(done, torch.full_like(nxt, end), nxt)
            done |= nxt == end
        seq, new = torch.cat([seq, nxt[:, None]], 1), nxt[:, None]
        if end is not None and bool(done.all()):
            return torch.cat([seq, seq.new_full((seq.shape[0], length - seq.shape[1]), end)], 1)
    return seq
