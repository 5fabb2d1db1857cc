"""DALL-E's discrete VAE (Ramesh et al. 2021, Sec. 2.1 and App. A), at small scale.

An encoder maps an image to a grid of logits over ``codes`` entries; training relaxes the discrete
choice with the Gumbel-softmax at temperature ``tau``; the decoder maps a (relaxed or one-hot) code grid
to the parameters of a logit-Laplace distribution per pixel channel (mu and log b). The layout
follows the paper's description: a 7x7 input convolution, residual blocks whose outputs are scaled by
a small post-gain, max-pooling in the encoder and nearest-neighbour up-sampling in the decoder, and
1x1 convolutions at the end of the encoder and the start of the decoder.

Pixels enter the logit-Laplace likelihood through phi(x) = (1 - 2 eps) x + eps (x in [0, 1],
eps = 0.1), so that sigmoid(mu) never has to reach 0 or 1; a reconstruction is phi^-1(sigmoid(mu)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import seeded_init

LOGIT_LAPLACE_EPS = 0.1


@dataclass(frozen=True)
class DVAEConfig:
    image_size: int = 16
    channels: int = 3
    codes: int = 64  # K, the codebook size
    levels: int = 2  # halvings: the code grid is image_size / 2**levels on a side
    width: int = 64
    blocks: int = 1  # residual blocks per level
    hidden_ratio: float = 0.25  # a residual block's inner width / width (DALL-E: 1/4)

    def __post_init__(self):
        if self.image_size % 2**self.levels:
            raise ValueError(f"image_size {self.image_size} must be divisible by 2^levels = {2 ** self.levels}")

    @property
    def grid(self) -> int:
        return self.image_size // 2**self.levels


def map_pixels(x01: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """[0, 1] -> [eps, 1 - eps]: where the logit-Laplace density is evaluated."""
    return (1 - 2 * eps) * x01 + eps


def unmap_pixels(x: torch.Tensor, eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    return ((x - eps) / (1 - 2 * eps)).clamp(0, 1)


def logit_laplace_nll(x01: torch.Tensor, mu: torch.Tensor,
                      log_b: torch.Tensor,
                      eps: float = LOGIT_LAPLACE_EPS) -> torch.Tensor:
    """-log f(phi(x) | mu, b) per element,
    f(y | mu, b) = exp(-|logit(y) - mu| / b) / (2 b y (1 - y)) (App. A.3):
    a Laplace density on logit(y), pulled back to y in (0, 1)."""
    y = map_pixels(x01, eps)
    logit = torch.log(y) - torch.log1p(-y)
    return ((logit - mu).abs() / log_b.exp() + log_b + math.log(2)
            + torch.log(y) + torch.log1p(-y))


class _Res(nn.Module):
    """x + post_gain * (relu, 3x3, relu, 3x3, relu, 1x1)(x);
    post_gain = 1 / n_blocks^2 keeps the deep residual stack near the identity
    at initialisation (the paper's 'small constant')."""

    def __init__(self, cin: int, cout: int, post_gain: float,
                 hidden_ratio: float = 0.25):
        super().__init__()
        hid = max(8, int(cout * hidden_ratio))
        self.skip = (nn.Identity() if cin == cout
                     else nn.Conv2d(cin, cout, 1))
        self.path = nn.Sequential(nn.ReLU(), nn.Conv2d(cin, hid, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(hid, hid, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(hid, cout, 1))
        self.post_gain = post_gain

    def forward(self, x):
        return self.skip(x) + self.post_gain * self.path(x)


class DVAE(nn.Module):
    @seeded_init  # the initial weights are a function of cfg alone
    def __init__(self, cfg: DVAEConfig):
        super().__init__()
        self.cfg = cfg
        w, gain = cfg.width, 1.0 / (cfg.blocks * (cfg.levels + 1)) ** 2
        enc = [nn.Conv2d(cfg.channels, w, 7, padding=3)]
        for level in range(cfg.levels + 1):
            enc += [_Res(w, w, gain, cfg.hidden_ratio)
                    for _ in range(cfg.blocks)]
            if level < cfg.levels:
                enc.append(nn.MaxPool2d(2))
        self.encoder = nn.Sequential(*enc, nn.ReLU(),
                                     nn.Conv2d(w, cfg.codes, 1))
        dec = [nn.Conv2d(cfg.codes, w, 1)]
        for level in range(cfg.levels + 1):
            dec += [_Res(w, w, gain, cfg.hidden_ratio)
                    for _ in range(cfg.blocks)]
            if level < cfg.levels:
                dec.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.decoder = nn.Sequential(*dec, nn.ReLU(),
                                     nn.Conv2d(w, 2 * cfg.channels, 1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] (B, C, H, W) -> code logits (B, K, g, g)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Code grid (B, K, g, g), one-hot or relaxed -> (mu, log b), each (B, C, H, W)."""
        out = self.decoder(z)
        return out.chunk(2, dim=1)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> argmax codes (B, g, g): the tokens the transformer models (no Gumbel noise)."""
        return self.logits(x).argmax(1)

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, g, g) -> images in [-1, 1]: phi^-1(sigmoid(mu)),
        not mu itself."""
        z = (F.one_hot(codes, self.cfg.codes).permute(0, 3, 1, 2)
             .to(next(self.parameters()).dtype))
        mu, _ = self.decode(z)
        return unmap_pixels(torch.sigmoid(mu)) * 2 - 1


def perplexity(codes: torch.Tensor, k: int) -> float:
    """exp(entropy) of the codes' empirical distribution: how many codes are in effective use."""
    p = torch.bincount(codes.flatten().cpu(), minlength=k).double()
    p = p / p.sum()
    return float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))


def cosine_ramp(step: int, steps: int, start: float, end: float) -> float:
    """start -> end over ``steps`` with a half-cosine, then end (the paper's beta and tau schedules)."""
    if steps <= 0 or step >= steps:
        return end
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * step / steps))
