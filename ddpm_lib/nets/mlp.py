"""A small MLP F(x, c_noise) for low-dimensional data (the 2-D toys of the consistency chapter): seconds
per ablation run on a CPU.

The noise level enters through a time embedding whose frequency range is the point of sCM's Sec. 4.1
ablation: ``fourier`` draws frequencies from N(0, ``fourier_scale``^2) (NCSN++'s Gaussian Fourier
projection; EDM's and CM's networks use scale 16, iCT and sCM recommend a small one), ``positional``
is the transformer's sinusoid with periods from 1 to ``max_period`` in units of c_noise (sCM-mnist's
``PositionalEmbedding`` uses max period 10 on raw TrigFlow t). The derivative of the embedding with
respect to c_noise grows with the largest frequency; sCM's tangent contains it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from . import seeded_init

EMBEDDINGS = ("fourier", "positional")


@dataclass(frozen=True)
class MLPConfig:
    dim: int = 2
    width: int = 128
    layers: int = 3  # hidden layers
    emb: str = "positional"  # fourier | positional
    emb_dim: int = 32
    fourier_scale: float = 16.0
    max_period: float = 10.0
    dropout: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if self.emb not in EMBEDDINGS:
            raise ValueError(f"unknown time embedding {self.emb!r}; valid choices: {list(EMBEDDINGS)}")
        if self.emb_dim % 2:
            raise ValueError(f"emb_dim must be even, got {self.emb_dim}")


class MLP(nn.Module):
    """``forward(x (B, dim), c (B,))`` -> (B, dim): SiLU layers over [x, embedding(c)], the embedding
    also added (projected) to every hidden layer."""

    @seeded_init
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.cfg = cfg
        half = cfg.emb_dim // 2
        if cfg.emb == "fourier":
            self.register_buffer("freqs", torch.randn(half) * cfg.fourier_scale * 2 * math.pi)
        else:
            self.register_buffer("freqs", torch.exp(-math.log(cfg.max_period) * torch.arange(half) / half))
        self.inp = nn.Linear(cfg.dim, cfg.width)
        self.emb = nn.Sequential(nn.Linear(cfg.emb_dim, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.hidden = nn.ModuleList(nn.Linear(cfg.width, cfg.width) for _ in range(cfg.layers))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.width, cfg.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embedding(self, c: torch.Tensor) -> torch.Tensor:
        a = c.reshape(-1, 1) * self.freqs.to(c.dtype)
        return torch.cat([torch.cos(a), torch.sin(a)], 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        c = c.to(x.dtype).reshape(-1).expand(len(x))
        e = self.emb(self.embedding(c))
        h = self.inp(x) + e
        for layer in self.hidden:
            h = h + self.drop(layer(torch.nn.functional.silu(h)))
        return self.out(torch.nn.functional.silu(h))
