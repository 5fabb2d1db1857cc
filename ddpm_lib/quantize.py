"""A k-means colour palette: each pixel becomes one token (iGPT, Chen et al. 2020, Sec. 3.3).

iGPT clusters RGB values with k-means (k = 512, "9-bit colour") so that a 32x32 image is 1,024
tokens rather than 3,072 sub-pixel tokens. ``fit_palette`` runs k-means++ seeding then Lloyd
iterations on a sample of pixels, deterministically given ``seed``; ``Palette.encode`` maps each
pixel to its nearest centre (squared Euclidean distance) in raster order, ``decode`` maps back.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange


@dataclass(frozen=True, eq=False)
class Palette:
    centers: torch.Tensor  # (k, C) in the data's range, [-1, 1]

    @property
    def k(self) -> int:
        return self.centers.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) -> tokens (N, H * W), raster order
        (row by row)."""
        pix = rearrange(x, "n c h w -> n (h w) c").float()
        centers = self.centers.float()[None].expand(pix.shape[0], -1, -1)
        d = torch.cdist(pix, centers)  # (N, HW, k)
        return d.argmin(-1)

    def decode(self, tokens: torch.Tensor, height: int, width: int | None = None) -> torch.Tensor:
        """Tokens (N, H * W) -> images (N, C, H, W)."""
        pix = self.centers[tokens]  # (N, HW, C)
        return rearrange(pix, "n (h w) c -> n c h w", h=height, w=width or height)

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[2], x.shape[3])

    def error(self, x: torch.Tensor) -> float:
        """Root-mean-square quantisation error on the [0, 255] scale."""
        return ((self.quantise(x) - x) ** 2).mean().sqrt().item() * 127.5


def _kmeans_pp(pix: torch.Tensor, k: int, g: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each new centre drawn with probability
    proportional to the squared distance to the nearest centre so far."""
    centers = [pix[torch.randint(0, len(pix), (1,), generator=g)]]
    d2 = ((pix - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        if d2.sum() <= 0:  # fewer distinct colours than k: repeat one
            centers.append(centers[-1])
            continue
        nxt = pix[torch.multinomial(d2, 1, generator=g)]
        centers.append(nxt)
        d2 = torch.minimum(d2, ((pix - nxt) ** 2).sum(1))
    return torch.cat(centers)


def fit_palette(x: torch.Tensor, k: int, seed: int = 0, iters: int = 30,
                max_pixels: int = 100_000) -> Palette:
    """k-means on the pixels of ``x`` (N, C, H, W); at most ``max_pixels``
    sampled pixels are used.

    Centres are sorted by brightness (sum of channels) so that token ids are
    readable in figures.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    g = torch.Generator().manual_seed(seed)
    pix = rearrange(x, "n c h w -> (n h w) c").double()
    if len(pix) > max_pixels:
        pix = pix[torch.randperm(len(pix), generator=g)[:max_pixels]]
    centers = _kmeans_pp(pix, k, g)
    for _ in range(iters):
        assign = torch.cdist(pix, centers).argmin(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, pix)
        counts = torch.bincount(assign, minlength=k).double()[:, None]
        # an empty cluster keeps its centre
        new = torch.where(counts > 0, sums / counts.clamp(min=1), centers)
        if torch.allclose(new, centers, atol=1e-10):
            break
        centers = new
    order = centers.sum(1).argsort()
    return Palette(centers[order].float())


# --------------------------------------------------------------------------------------------
# unCLIP's autoregressive prior: principal components cut into equal-mass buckets (Sec. 2.2)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Buckets:
    """Per-column equal-mass buckets: ``edges`` (P, B - 1) inner quantiles, ``centres`` (P, B) the
    median of the training values in each bucket."""

    edges: torch.Tensor
    centres: torch.Tensor

    @property
    def k(self) -> int:
        return self.centres.shape[1]

    def encode(self, v: torch.Tensor) -> torch.Tensor:
        """(N, P) values -> (N, P) bucket indices in [0, k)."""
        v = v.double().to(self.edges.device)
        return torch.stack([torch.bucketize(v[:, j].contiguous(), self.edges[j].contiguous())
                            for j in range(v.shape[1])], 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(N, P) indices -> (N, P) bucket centres."""
        return torch.gather(self.centres.to(codes.device), 1, codes.long().T).T


def fit_buckets(v: torch.Tensor, k: int) -> Buckets:
    """Equal-mass buckets for each column of ``v`` (N, P): its k-quantiles."""
    v = v.double()
    if len(v) < 2 * k:
        raise ValueError(f"need at least {2 * k} values for {k} buckets, got {len(v)}")
    q = torch.linspace(0, 1, k + 1, dtype=torch.float64)[1:-1]
    edges = torch.quantile(v, q, dim=0).T.contiguous()  # (P, k - 1)
    codes = Buckets(edges, torch.zeros(v.shape[1], k, dtype=torch.float64)).encode(v)
    centres = torch.stack([torch.stack([v[codes[:, j] == b, j].median() if (codes[:, j] == b).any()
                                        else torch.tensor(float("nan"), dtype=torch.float64) for b in range(k)])
                           for j in range(v.shape[1])])
    return Buckets(edges, centres)


@dataclass(frozen=True, eq=False)
class PCAQuantizer:
    """z (N, d) -> its first P principal components (``components`` (P, d), around ``mean``) -> one
    bucket index per component (``buckets``); ``decode`` maps indices back to d-dim vectors.
    ``explained``: the share of the training variance the P components keep."""

    mean: torch.Tensor
    components: torch.Tensor
    buckets: Buckets
    explained: float

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return (z.double().cpu() - self.mean) @ self.components.T

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return self.buckets.encode(self.project(z))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return (self.buckets.decode(codes.cpu()) @ self.components + self.mean).float()


def fit_pca_quantizer(z: torch.Tensor, dims: int,
                      buckets: int) -> PCAQuantizer:
    """unCLIP's AR-prior code: keep ``dims`` principal components of ``z``
    (the paper: 319 of 1,024, with under 1% MSE lost) and cut each into
    ``buckets`` equal-mass buckets (the paper: 1,024)."""
    z = z.double().cpu()
    if not 0 < dims <= z.shape[1]:
        raise ValueError(f"dims must lie in 1..{z.shape[1]}, got {dims}")
    mean = z.mean(0)
    _, s, vh = torch.linalg.svd(z - mean, full_matrices=False)
    var = s**2
    comps = vh[:dims]
    return PCAQuantizer(mean, comps,
                        fit_buckets((z - mean) @ comps.T, buckets),
                        float(var[:dims].sum() / var.sum()))
