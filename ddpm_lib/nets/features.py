"""The in-domain feature network: a small GroupNorm CNN whose penultimate layer gives the features of
"FID_clf" and whose heads (one per label) score conditional samples.

Its training recipe, the trained-and-cached networks by data set and the extractors built on them
are in ``ddpm_lib.features``; the distances on its features are in ``ddpm_lib.metrics``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import seeded_init


@dataclass(frozen=True)
class FeatureNetConfig:
    channels: int  # image channels (1 grey, 3 RGB)
    image_size: int
    heads: tuple[tuple[str, int], ...]  # (label name, number of classes), in the order of the targets
    width: int = 16  # channels of the first stage; doubled at each downsampling
    feature_dim: int = 128  # the penultimate layer: the features

    def __post_init__(self):
        if not self.heads or any(not isinstance(k, str) or int(n) < 1 for k, n in self.heads):
            raise ValueError(f"FeatureNetConfig.heads must be (name, classes) pairs, got {self.heads!r}")
        if self.image_size < 4:
            raise ValueError(f"FeatureNetConfig.image_size must be at least 4, got {self.image_size}")


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout), cout), nn.SiLU()]


class FeatureNet(nn.Module):
    """Conv stages (GroupNorm, SiLU), each halving the resolution, down to about 4x4; the final map
    is pooled to 4x4 and flattened (not globally averaged, so features keep *where* things are, one
    of the shapes attributes), then a linear layer to ``feature_dim`` features and one linear head
    per label. ``forward(x)`` returns a dict head -> logits (B, classes) in the order of ``cfg.heads``."""

    @seeded_init
    def __init__(self, cfg: FeatureNetConfig):
        super().__init__()
        self.cfg = cfg
        n_down = max(0, min(3, int(math.floor(math.log2(cfg.image_size / 4)))))
        layers, ch = _block(cfg.channels, cfg.width), cfg.width
        for _ in range(n_down):
            layers += _block(ch, ch) + _block(ch, 2 * ch, stride=2)
            ch *= 2
        self.body = nn.Sequential(*layers, _block(ch, ch)[0], nn.GroupNorm(min(8, ch), ch), nn.SiLU(),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.proj = nn.Linear(ch * 16, cfg.feature_dim)
        self.heads = nn.ModuleDict({k: nn.Linear(cfg.feature_dim, int(n)) for k, n in cfg.heads})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(self.proj(self.body(x)))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(x)
        return {k: head(f) for k, head in self.heads.items()}
