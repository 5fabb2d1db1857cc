"""One UNet, from DDPM's CIFAR-10 model to ADM's, by configuration.

DDPM (Ho et al. 2020, App. B): a PixelCNN++-style UNet with GroupNorm, a sinusoidal time embedding
added in every residual block, self-attention at 16x16, and zero-initialised output layers.
ADM (Dhariwal & Nichol 2021, Sec. 3) adds knobs, all of them fields of ``UNetConfig``:
multi-head attention at several resolutions (``attention_resolutions``, ``num_heads`` or
``head_channels``), BigGAN residual up/down-sampling (``resblock_updown``) and adaptive group norm
(``scale_shift_norm``: GroupNorm(h) * (1 + s) + b with (s, b) from the embedding), and the rescaled
residual of its Table 1 (``rescale_skip``: (x + h) / sqrt(2)); ``SuperResUNet`` is its upsampler.
Conditioning: a class label (``num_classes``; label -1 is the null label for classifier-free
guidance), text tokens (``context_dim``: their projected keys/values join every attention layer,
as in GLIDE) and a global embedding (``embed_dim``: added to the time embedding, as unCLIP adds CLIP
image embeddings). Learned variance is ``out_channels = 2 * in_channels``.

The network never sees a schedule: it gets the step index t as a float (or any continuous noise
level: ``time_scale`` and ``max_period`` set the sinusoid's range, e.g. max period 10 on TrigFlow's
t in [0, pi/2] as in sCM-mnist). ``pixel_norm_modulation`` PixelNorms the AdaGN scale and shift (sCM,
Lu & Song 2025, Sec. 4.1), which keeps consistency training stable. The network runs in float64 too
(``.double()``; the time embedding follows its dtype), and ``jvp`` takes forward-mode derivatives
through it (sCM's tangents) with the attention kernel that supports them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..cache import OMIT_DEFAULT
from . import seeded_init


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 32
    in_channels: int = 3
    out_channels: int = 3
    base_channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 1
    head_channels: int | None = None  # channels per head; overrides num_heads when set
    dropout: float = 0.1
    resblock_updown: bool = False
    scale_shift_norm: bool = False
    num_classes: int | None = None
    context_dim: int | None = None
    embed_dim: int | None = None
    groups: int = 32
    # added for continuous noise levels; at their defaults they stay out of the cache key
    time_scale: float = field(default=1.0, metadata=OMIT_DEFAULT)  # t * time_scale enters the sinusoid
    max_period: float = field(default=10000.0, metadata=OMIT_DEFAULT)  # of the sinusoidal embedding
    pixel_norm_modulation: bool = field(default=False, metadata=OMIT_DEFAULT)  # needs scale_shift_norm
    rescale_skip: bool = field(default=False, metadata=OMIT_DEFAULT)  # residual sum / sqrt(2) (ADM Table 1)

    def __post_init__(self):
        if self.pixel_norm_modulation and not self.scale_shift_norm:
            raise ValueError("pixel_norm_modulation normalises the AdaGN scale and shift: set scale_shift_norm=True")
        if self.image_size % 2 ** (len(self.channel_mult) - 1):
            raise ValueError(f"image_size {self.image_size} must be divisible by 2^(levels-1) = "
                             f"{2 ** (len(self.channel_mult) - 1)}")
        for m in self.channel_mult:
            if (self.base_channels * m) % self.groups:
                raise ValueError(f"channels {self.base_channels * m} not divisible by groups={self.groups}")


PRESETS = {
    # DDPM's CIFAR-10 model (unet2d16b2): 35.7M parameters
    "ddpm_cifar10": UNetConfig(),
    # small CPU presets
    "tiny8": UNetConfig(image_size=8, in_channels=1, out_channels=1, base_channels=32, channel_mult=(1, 2),
                        num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, groups=8),
    "small16": UNetConfig(image_size=16, base_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2,
                          attention_resolutions=(8,), num_heads=2, dropout=0.0, groups=8),
    "small32": UNetConfig(image_size=32, base_channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
                          attention_resolutions=(16,), num_heads=2, dropout=0.0, groups=8),
}


def preset(name: str, **overrides) -> UNetConfig:
    """A named configuration with fields replaced, e.g. ``preset("small16", in_channels=1)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown UNet preset {name!r}; valid choices: {sorted(PRESETS)}")
    from dataclasses import replace

    return replace(PRESETS[name], **overrides)


def timestep_embedding(t: torch.Tensor, dim: int,
                       max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal embedding of (float) steps t: (B,) -> (B, dim),
    in t's dtype (float32 for integer steps)."""
    dtype = t.dtype if t.is_floating_point() else torch.float32
    half = dim // 2
    k = torch.arange(half, dtype=dtype, device=t.device)
    freqs = torch.exp(-math.log(max_period) * k / half)
    args = t.to(dtype)[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """x / sqrt(mean over channels of x^2 + eps): unit RMS per example (dim 1 = channels)."""
    return x / torch.sqrt(torch.mean(x**2, dim=1, keepdim=True) + eps)


def zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GN-SiLU-conv, add the embedding (or AdaGN scale/shift), GN-SiLU-dropout-conv, skip connection.

    ``resample`` = "up" / "down" resamples both paths (BigGAN-style blocks of ADM).
    """

    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float, groups: int,
                 scale_shift: bool = False, resample: str | None = None, pixel_norm: bool = False,
                 rescale: bool = False):
        super().__init__()
        self.scale_shift, self.resample, self.pixel_norm = scale_shift, resample, pixel_norm
        self.out_scale = 2**-0.5 if rescale else 1.0  # ADM Table 1's "rescale residual": (x + h) / sqrt(2)
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout if scale_shift else cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def _resample(self, x):
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2, mode="nearest")
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        return x

    def forward(self, x, emb):
        h = F.silu(self.norm1(x))
        h, x = self._resample(h), self._resample(x)
        h = self.conv1(h)
        e = self.emb(F.silu(emb))[:, :, None, None]
        if self.scale_shift and self.pixel_norm:
            # sCM Sec. 4.1: AdaGN with PixelNorm'd scale and shift
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * pixel_norm(1 + scale) + pixel_norm(shift)
        elif self.scale_shift:  # AdaGN (ADM Sec. 3)
            scale, shift = e.chunk(2, dim=1)
            h = self.norm2(h) * (1 + scale) + shift
        else:
            h = self.norm2(h + e)
        h = self.conv2(self.drop(F.silu(h)))
        out = self.skip(x) + h
        return out * self.out_scale if self.out_scale != 1.0 else out


class Attention(nn.Module):
    """Multi-head self-attention over pixels; text tokens (if any) add keys and values (GLIDE)."""

    def __init__(self, channels: int, heads: int, groups: int, context_dim: int | None = None):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.ctx_kv = nn.Linear(context_dim, 2 * channels) if context_dim else None
        self.proj = zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x, context=None, context_mask=None):
        B, C, H, W = x.shape
        q, k, v = rearrange(self.qkv(self.norm(x)),
                            "b (three h d) x y -> three b h (x y) d",
                            three=3, h=self.heads)
        mask = None
        if self.ctx_kv is not None and context is not None:
            ck, cv = rearrange(self.ctx_kv(context),
                               "b l (two h d) -> two b h l d",
                               two=2, h=self.heads)
            # (B, heads, L + HW, d)
            k, v = torch.cat([ck, k], dim=2), torch.cat([cv, v], dim=2)
            if context_mask is not None:
                # True = attend; pixels are always attended
                pixels = torch.ones(B, H * W, dtype=torch.bool,
                                    device=x.device)
                keep = torch.cat([context_mask.bool(), pixels], 1)
                mask = keep[:, None, None, :]
        # (B, heads, HW, d)
        h = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        h = rearrange(h, "b h (x y) d -> b (h d) x y", x=H, y=W)
        return x + self.proj(h)


class Down(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x, emb):
        return self.conv(x)


class Up(nn.Module):
    def __init__(self, ch):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x, emb):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def n_heads(cfg, channels: int) -> int:
    """Attention heads at ``channels``: ``channels // head_channels`` if set (ADM), else ``num_heads``."""
    return channels // cfg.head_channels if cfg.head_channels else cfg.num_heads


def encoder_half(cfg, block, attn) -> tuple[nn.Conv2d, nn.ModuleList, nn.ModuleList, list[int], int, int]:
    """The stem and encoder half shared by ``UNet`` and ``encoder.EncoderUNet``: ``conv_in``, then per
    level ``num_res_blocks`` residual blocks (with attention at ``attention_resolutions``) and a
    down-sampling (a BigGAN block with ``resblock_updown``), then the middle block [res, attention, res].
    Returns (conv_in, down, mid, the channels of every skip connection, the final channels, the final
    resolution)."""
    ch, down = cfg.base_channels, nn.ModuleList()
    conv_in = nn.Conv2d(cfg.in_channels, ch, 3, padding=1)
    skips, cur, res = [ch], ch, cfg.image_size
    for level, mult in enumerate(cfg.channel_mult):
        for _ in range(cfg.num_res_blocks):
            layers = [block(cur, ch * mult)]
            cur = ch * mult
            if res in cfg.attention_resolutions:
                layers.append(attn(cur))
            down.append(nn.ModuleList(layers))
            skips.append(cur)
        if level < len(cfg.channel_mult) - 1:
            down.append(nn.ModuleList([block(cur, cur, "down") if cfg.resblock_updown else Down(cur)]))
            skips.append(cur)
            res //= 2
    mid = nn.ModuleList([block(cur, cur), attn(cur), block(cur, cur)])
    return conv_in, down, mid, skips, cur, res


class UNet(nn.Module):
    @seeded_init  # the initial weights are a function of cfg alone
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.cfg = cfg
        ch, g = cfg.base_channels, cfg.groups
        emb_dim = 4 * ch
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.global_embed = nn.Linear(cfg.embed_dim, emb_dim) if cfg.embed_dim else None

        def block(cin, cout, resample=None):
            return ResBlock(cin, cout, emb_dim, cfg.dropout, g, cfg.scale_shift_norm, resample,
                            cfg.pixel_norm_modulation, cfg.rescale_skip)

        def attn(c):
            return Attention(c, n_heads(cfg, c), g, cfg.context_dim)

        self.conv_in, self.down, self.mid, skips, cur, res = encoder_half(cfg, block, attn)
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [block(cur + skips.pop(), ch * mult)]
                cur = ch * mult
                if res in cfg.attention_resolutions:
                    layers.append(attn(cur))
                if level > 0 and i == cfg.num_res_blocks:
                    layers.append(block(cur, cur, "up") if cfg.resblock_updown else Up(cur))
                    res *= 2
                self.up.append(nn.ModuleList(layers))
        self.out = nn.Sequential(nn.GroupNorm(g, cur), nn.SiLU(), zero(nn.Conv2d(cur, cfg.out_channels, 3, padding=1)))

    def embedding(self, t, y=None, embed=None):
        dtype = self.time_embed[0].weight.dtype
        t = t.to(torch.promote_types(dtype, torch.float32))  # float32, or float64 for a .double() network
        emb = self.time_embed(timestep_embedding(t * self.cfg.time_scale, self.cfg.base_channels,
                                                 self.cfg.max_period).to(dtype))
        if self.class_embed is not None:
            if y is None:
                y = torch.full((t.shape[0],), -1, dtype=torch.long, device=t.device)
            y = torch.where(y < 0, torch.full_like(y, self.cfg.num_classes), y)  # -1: the null label
            emb = emb + self.class_embed(y)
        if self.global_embed is not None and embed is not None:
            emb = emb + self.global_embed(embed)
        return emb

    def _run(self, layers, h, emb, context, context_mask):
        for layer in layers:
            h = layer(h, context, context_mask) if isinstance(layer, Attention) else layer(h, emb)
        return h

    def forward(self, x, t, y=None, context=None, context_mask=None, embed=None):
        """x (B, C, H, W), t (B,) float steps; y (B,) labels (-1 = none); context (B, L, context_dim)
        with context_mask (B, L) True where a token is real; embed (B, embed_dim)."""
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        emb = self.embedding(t, y, embed)
        h = self.conv_in(x)
        hs = [h]
        for layers in self.down:
            h = self._run(layers, h, emb, context, context_mask)
            hs.append(h)
        h = self._run(self.mid, h, emb, context, context_mask)
        for layers in self.up:
            h = self._run(layers, torch.cat([h, hs.pop()], dim=1), emb, context, context_mask)
        return self.out(h)


class SuperResolution(nn.Module):
    """ADM's and GLIDE's upsampler around any inner net: the inner net runs at the high resolution on
    x_t concatenated with the bilinearly upsampled low-resolution image (guided-diffusion
    ``SuperResModel``, glide-text2im ``SuperResText2ImUNet``), so its ``in_channels`` is 2 x the image
    channels; ``forward(x, t, low_res, *args, **cond)`` passes the rest to it. The inner net is held
    under ``name`` (its parameters' prefix in the state dict) and its ``cfg`` is the wrapper's."""

    def __init__(self, net: nn.Module, in_channels: int, name: str = "net"):
        super().__init__()
        if in_channels % 2:
            raise ValueError(f"a super-resolution UNet takes x_t and the low-res image: in_channels must be "
                             f"2 x the image channels, got {in_channels}")
        self.cfg, self._name = net.cfg, name
        self.add_module(name, net)

    def forward(self, x, t, low_res, *args, **cond):
        up = F.interpolate(low_res.to(x.dtype), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return getattr(self, self._name)(torch.cat([x, up], dim=1), t, *args, **cond)


class SuperResUNet(SuperResolution):
    """ADM's upsampler: a ``UNet`` (held as ``unet``) with ``in_channels`` = 2 x the image channels;
    ``forward(x, t, low_res, **cond)``."""

    @seeded_init
    def __init__(self, cfg: UNetConfig):
        super().__init__(UNet(cfg), cfg.in_channels, name="unet")


def jvp(fn, primals: tuple, tangents: tuple):
    """``torch.func.jvp(fn, primals, tangents)`` -> (fn(*primals), its directional derivative), with
    scaled-dot-product attention forced to the math kernel: the flash and memory-efficient CUDA
    kernels have no forward-mode AD (pytorch/pytorch#128971). Used for sCM's tangents dF/dt."""
    with sdpa_kernel(SDPBackend.MATH):
        return torch.func.jvp(fn, tuple(primals), tuple(tangents))
