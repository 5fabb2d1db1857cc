"""Sample-quality metrics: distances between feature distributions, conditional accuracy,
bits/dim, and exact metrics for 2-D toys. This module holds the math only: of the library it imports
``stats`` alone (the feature networks, their training and their data are in ``features``).

* Distances between two sets of features (float64, any feature network):
  ``frechet_distance`` (FID's formula, Heusel et al. 2017), ``kid`` (unbiased MMD^2 with the cubic
  polynomial kernel, Binkowski et al. 2018) and ``precision_recall`` (k-NN manifolds,
  Kynkaanniemi et al. 2019, k = 3 as in the ADM evaluator).
* ``FeatureExtractor``: a frozen network (anything with ``.features(x)`` and, for logits, a forward
  that returns a dict of heads) as features and predictions of images in [-1, 1]. Named extractors,
  Inception and the in-domain networks trained per data set, come from ``features.get_extractor``;
  the in-domain networks' heads score conditional samples (``conditional_accuracy``,
  ``attribute_accuracy``).
* ``evaluate`` puts these together and always reports the real-vs-real floor.
* Likelihoods: ``bits_per_dim``, ``nats_to_bits``, ``bpd_from_logits``.
* 2-D toys: ``mmd_rbf``, ``energy_distance``, ``sliced_wasserstein``, ``mode_coverage``; all exact.

FD, KID and precision/recall depend on the number of samples (FD is biased upwards at small n):
numbers are comparable only between rows computed with the same n and the same feature network.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LN2 = math.log(2.0)


def _f64(x) -> torch.Tensor:
    """Any array-like to a float64 CPU tensor, flattened to (N, D) when it has more than 2 dims."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().cpu().double()
    return x.reshape(len(x), -1) if x.ndim > 2 else x


# --------------------------------------------------------------------------------------------
# Frechet distance
# --------------------------------------------------------------------------------------------
def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    f = _f64(feats).numpy()
    if len(f) < 2:
        raise ValueError("need at least 2 feature vectors for a covariance")
    return f.mean(0), np.cov(f, rowvar=False)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix through its eigendecomposition."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """d^2 = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})  (Heusel et al. 2017, Eq. 6).

    tr (S1 S2)^{1/2} is computed as the sum of square roots of the eigenvalues of the symmetric PSD
    matrix S1^{1/2} S2 S1^{1/2}, which has the same eigenvalues as S1 S2. This avoids ``sqrtm`` of a
    non-symmetric product and the complex round-off it returns (no imaginary parts to discard).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    r1 = _psd_sqrt(s1)
    m = r1 @ s2 @ r1
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    d2 = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean
    return float(max(d2, 0.0))


@torch.no_grad()
def nearest_distance(x, ref, batch: int = 500) -> np.ndarray:
    """Per image of ``x``: the Euclidean pixel distance to its nearest image in ``ref`` (float64, (N,)),
    the raw material of a memorisation check (samples against fresh real images, both to the training
    set)."""
    q, r = _f64(x), _f64(ref)  # (N, D) float64
    out = [_sqdist(q[i:i + batch], r).min(1).values.sqrt() for i in range(0, len(q), batch)]
    return torch.cat(out).numpy()


def frechet_distance(feats_a, feats_b) -> float:
    """Frechet distance between Gaussians fitted to two sets of features (N, D): "FID" on Inception
    pool3 features, "FID_clf" on an in-domain network's features."""
    return frechet_distance_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


# --------------------------------------------------------------------------------------------
# Kernel inception distance
# --------------------------------------------------------------------------------------------
def _mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, Eq. 3): within-set means leave out the diagonal."""
    m, n = len(kxx), len(kyy)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(sxx + syy - 2 * kxy.mean())


def mmd2_polynomial(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 between two whole sets with KID's kernel k(x, y) = (x.y / d + 1)^3."""
    x, y = _f64(x), _f64(y)
    d = x.shape[1]
    kern = lambda p, q: (p @ q.T / d + 1) ** 3  # noqa: E731
    return _mmd2_unbiased(kern(x, x), kern(y, y), kern(x, y))


def kid(feats_a, feats_b, subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """Kernel inception distance (Binkowski et al. 2018): ``mmd2_polynomial`` averaged over
    ``subsets`` random subsets per set (without replacement). Returns (mean, std over subsets).

    Subsets hold ``subset_size`` points, capped at half the smaller set, so that they differ and
    their spread is an honest (slightly pessimistic) error bar. Unbiased: the expectation is 0 for
    two samples of one distribution, so it can come out negative.
    """
    a, b = _f64(feats_a), _f64(feats_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dims differ: {a.shape[1]} vs {b.shape[1]}")
    m = min(subset_size, len(a) // 2, len(b) // 2)
    if m < 2:
        raise ValueError("KID needs at least 4 samples per set")
    g = torch.Generator().manual_seed(seed)
    vals = np.array([mmd2_polynomial(a[torch.randperm(len(a), generator=g)[:m]],
                                     b[torch.randperm(len(b), generator=g)[:m]]) for _ in range(subsets)])
    return float(vals.mean()), float(vals.std())


# --------------------------------------------------------------------------------------------
# Precision and recall (Kynkaanniemi et al. 2019)
# --------------------------------------------------------------------------------------------
def _sqdist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (len(a), len(b)) via ||a||^2 + ||b||^2 - 2 a.b, clipped at 0."""
    return ((a * a).sum(1, keepdim=True) + (b * b).sum(1)[None] - 2 * a @ b.T).clamp_min_(0)


def knn_radii(x: torch.Tensor, k: int = 3, chunk: int = 512) -> torch.Tensor:
    """Squared distance from each row of x to its k-th nearest other row (the point itself is the
    0-th neighbour), computed in row chunks so that 10k x 10k never sits in memory at once."""
    x = _f64(x)
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} points, got {k}")
    out = [_sqdist(x[i:i + chunk], x).topk(k + 1, dim=1, largest=False).values[:, k] for i in range(0, len(x), chunk)]
    return torch.cat(out)


def _inside_manifold(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """For each point: does it fall inside at least one ball (centre, k-NN radius)?"""
    out = [(_sqdist(points[i:i + chunk], centres) <= radii[None]).any(1) for i in range(0, len(points), chunk)]
    return torch.cat(out)


def precision_recall(real, fake, k: int = 3, chunk: int = 512) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, Eq. 1-3).

    The real manifold is the union of balls around real features with radius the distance to the
    k-th nearest real neighbour; precision is the share of fake samples inside it. Recall swaps the
    roles: the share of real samples inside the fake manifold. Precision measures fidelity (samples
    look real), recall coverage (every mode of the data is produced).
    """
    inside_real, inside_fake = pr_indicators(real, fake, k, chunk)
    return float(inside_real.double().mean()), float(inside_fake.double().mean())


def pr_indicators(real, fake, k: int = 3, chunk: int = 512,
                  real_radii: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(for each fake point: inside the real manifold?, for each real point: inside the fake
    manifold?): the per-point terms whose means are precision and recall. ``real_radii``: the real
    points' k-NN radii when they are at hand (``evaluate`` reads them off its neighbour table)."""
    r, f = _f64(real), _f64(fake)
    real_radii = knn_radii(r, k, chunk) if real_radii is None else real_radii
    return (_inside_manifold(f, r, real_radii, chunk),
            _inside_manifold(r, f, knn_radii(f, k, chunk), chunk))


# --------------------------------------------------------------------------------------------
# Feature extractors: a frozen network as features (and logits); the networks are in ``features``
# --------------------------------------------------------------------------------------------
class FeatureExtractor:
    """A frozen network from images in [-1, 1] (N, C, H, W) to features (N, D) float64.

    In-domain networks also ``predict`` logits: a tensor for a single-label network, a dict of
    tensors (one per attribute) for ``shapes``. ``accuracy`` is the held-out accuracy (mean over
    heads), ``accuracies`` per head; ``trained_now`` says whether this call trained the network
    (False when it came from the cache).
    """

    def __init__(self, name: str, net: nn.Module, image_size: int, channels: int, meta: dict | None = None,
                 trained_now: bool = False, device="cpu"):
        self.name, self.net, self.image_size, self.channels = name, net.eval(), image_size, channels
        self.meta, self.trained_now, self.device = meta or {}, trained_now, torch.device(device)
        self.net.to(self.device).requires_grad_(False)

    # ---- overridden by other backbones ----------------------------------------------------------
    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)

    def _logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    # ---- public ----------------------------------------------------------------------------
    @property
    def heads(self) -> list[str]:
        return list(self.meta.get("heads", {}))

    @property
    def label_head(self) -> str | None:
        """The head that reads the data set's ``y`` (``"class"``, or ``"shape"`` for shapes)."""
        return self.meta.get("label_head")

    @property
    def accuracies(self) -> dict[str, float]:
        return dict(self.meta.get("accuracy", {}))

    @property
    def accuracy(self) -> float | None:
        acc = self.accuracies
        return float(np.mean(list(acc.values()))) if acc else None

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Cast, move, clip to [-1, 1] (as quantizing samples to uint8 would), repeat grey to RGB if
        needed, and resize (bilinear, antialiased) to the net's size."""
        x = torch.as_tensor(x).to(self.device, torch.float32).clamp(-1, 1)
        if x.ndim != 4:
            raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            if x.shape[1] == 1 and self.channels == 3:
                x = x.expand(-1, 3, -1, -1)
            else:
                raise ValueError(f"{self.name} expects {self.channels} channels, got {x.shape[1]}")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                              antialias=True, align_corners=False)
        return x

    @torch.no_grad()
    def features(self, x, batch_size: int = 500) -> torch.Tensor:
        """Features (N, D) float64 on the CPU, computed in batches without gradients."""
        out = [self._features(self.prepare(x[i:i + batch_size])).double().cpu() for i in range(0, len(x), batch_size)]
        return torch.cat(out)

    @torch.no_grad()
    def predict(self, x, batch_size: int = 500):
        """Logits: one (N, classes) tensor for a single-head net, else a dict head -> logits."""
        parts = [{k: v.double().cpu() for k, v in self._logits(self.prepare(x[i:i + batch_size])).items()}
                 for i in range(0, len(x), batch_size)]
        out = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        return next(iter(out.values())) if len(out) == 1 else out

    def __repr__(self) -> str:
        acc = f", test accuracy {self.accuracy:.3f}" if self.accuracy is not None else ""
        return f"FeatureExtractor({self.name}, {self.image_size}px{acc})"


# --------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------
def inception_score(logits, splits: int = 1) -> tuple[float, float]:
    """exp E_x KL(p(y|x) || p(y)) (Salimans et al. 2016) from classifier logits (N, classes);
    mean and std over ``splits`` equal parts. With an in-domain classifier this is the IS analogue
    whose maximum is the number of classes."""
    logp = torch.log_softmax(_f64(logits), 1)
    scores = []
    for part in torch.tensor_split(logp, splits):
        logpy = torch.logsumexp(part, 0) - math.log(len(part))  # log of the marginal p(y)
        scores.append(math.exp(float((part.exp() * (part - logpy)).sum(1).mean())))
    return float(np.mean(scores)), float(np.std(scores))


@dataclass(frozen=True)
class EvalResult:
    """One row of a sample-quality table. ``*_floor`` are the same metrics between the real set and a
    second real set of the same size (the best a generator can score at this n); ``kid`` is raw
    MMD^2 (papers often print it x 1000). Compare rows only at equal n and equal extractor."""

    extractor: str
    n_real: int
    n_fake: int
    fd: float
    kid: float
    kid_std: float
    precision: float
    recall: float
    fd_floor: float | None = None
    kid_floor: float | None = None
    isc: float | None = None  # IS analogue of the fake samples (single-head in-domain nets)
    replicates: dict = field(default_factory=dict, repr=False)  # bootstrap replicates by metric (bootstrap > 0)

    def ci(self, metric: str, level: float = 0.95):
        """The bootstrap interval (a ``stats.Interval``) of ``metric``: fd, kid, precision, recall,
        fd_floor or kid_floor; needs ``evaluate(..., bootstrap=B)``. Replicates are re-centred on the
        estimate (``stats.percentile(centre=True)``): resampling with replacement inflates FD."""
        from . import stats

        if metric not in self.replicates:
            raise ValueError(f"no bootstrap replicates of {metric!r}; evaluate with bootstrap > 0 "
                             f"(have: {sorted(self.replicates) or 'none'})")
        return stats.percentile(getattr(self, metric), self.replicates[metric], level, centre=True)

    def as_row(self, digits: int = 4) -> dict:
        fmt = lambda v: None if v is None else float(f"{v:.{digits}g}")  # noqa: E731
        row = {"extractor": self.extractor, "n_real": self.n_real, "n_fake": self.n_fake}
        for k in ("fd", "fd_floor", "kid", "kid_std", "kid_floor", "precision", "recall", "isc"):
            row[k] = fmt(getattr(self, k))
            if k in self.replicates:
                ci = self.ci(k)
                row[f"{k}_ci"] = [fmt(ci.lo), fmt(ci.hi)]
        return row

    def __str__(self) -> str:
        return "  ".join(f"{k}={v}" for k, v in self.as_row().items() if v is not None)


BOOTSTRAPPED = ("fd", "kid", "precision", "recall")  # the metrics evaluate(bootstrap=B) resamples


def evaluate(extractor: FeatureExtractor | None, real, fake, real_ref=None, k: int = 3,
             kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0, bootstrap: int = 0,
             resampled: tuple[str, ...] = BOOTSTRAPPED, fd_boot: "FDBootstrap | None" = None,
             cluster: int = 1) -> EvalResult:
    """FD, KID and k-NN precision/recall of ``fake`` against ``real``, plus the floor: FD and KID of
    ``real`` against ``real_ref`` (another real sample, e.g. the test split, of the fake set's size:
    the score of fresh real data at this n, not the best any generator can get).

    ``extractor=None`` means ``real``, ``fake`` and ``real_ref`` are already features (N, D), e.g.
    2-D toy points. FD falls with n even for a perfect generator, so keep n fixed across a table.

    ``bootstrap=B`` > 0 also keeps B bootstrap replicates of every metric (``EvalResult.ci``): the
    real, generated and reference sets are resampled with replacement (FD, KID; KID with 10 subsets
    per replicate; precision and recall with both k-NN manifolds rebuilt from the resampled sets,
    so both sides' sampling noise is in the interval). Replicate i draws its indices from ``seed`` in a fixed order, so two calls with equal
    set sizes and seed are paired (``stats.diff_ci``). ``resampled`` names the metrics replicated (a
    subset of ``BOOTSTRAPPED``): FD's replicates cost most (a matrix square root each), and
    ``FDBootstrap`` gives them far faster: pass ``fd_boot`` (built on ``real``'s features) and FD's
    replicates come from it (paired across sets as ``FDBootstrap`` says), whatever ``bootstrap``.

    ``cluster=k`` > 1: the fake set is clusters of k consecutive samples (k samples of one caption,
    say), and the replicates resample whole clusters of it (a cluster bootstrap; the real sets are
    still resampled image by image). ``len(fake)`` must be a multiple of k.
    """
    unknown = sorted(set(resampled) - set(BOOTSTRAPPED))
    if unknown:
        raise ValueError(f"unknown resampled metric(s) {unknown}; valid choices: {list(BOOTSTRAPPED)}")
    if cluster < 1 or len(fake) % cluster:
        raise ValueError(f"cluster must be a positive divisor of the {len(fake)} fake samples, got {cluster}")
    if cluster > 1 and fd_boot is not None:
        raise ValueError("fd_boot resamples images one by one; with cluster > 1 leave it out (FD's replicates then "
                         "come from the cluster bootstrap)")
    feats = (lambda v: _f64(v)) if extractor is None else extractor.features
    fr, ff = feats(real), feats(fake)
    kid_mean, kid_std = kid(fr, ff, kid_subsets, kid_subset_size, seed)
    # the real set's neighbours, sorted once: the point estimate's radii and every replicate's
    table = _NeighbourTable(fr) if bootstrap and {"precision", "recall"} & set(resampled) else None
    in_real, in_fake = pr_indicators(fr, ff, k, real_radii=table.radii(torch.arange(len(fr)), k)
                                     if table is not None else None)
    precision, recall = float(in_real.double().mean()), float(in_fake.double().mean())
    fd_floor = kid_floor = fref = None
    if real_ref is not None:
        if len(real_ref) != len(fake):
            warnings.warn(f"the floor uses {len(real_ref)} reference images but there are {len(fake)} samples; "
                          "FD depends on n, so the floor is only comparable at equal n")
        fref = feats(real_ref)
        fd_floor = frechet_distance(fr, fref)
        kid_floor = kid(fr, fref, kid_subsets, kid_subset_size, seed)[0]
    isc = None
    if extractor is not None and len(extractor.heads) == 1:
        isc = inception_score(extractor.predict(fake))[0]
    reps = (_bootstrap(fr, ff, fref, k, bootstrap, kid_subset_size, seed, resampled, cluster, table)
            if bootstrap else {})
    if fd_boot is not None:
        if fd_boot.real.shape != tuple(fr.shape) or not np.allclose(fd_boot.real[:5], fr[:5].numpy()):
            raise ValueError("fd_boot was built on another real set than `real`")
        reps["fd"] = fd_boot(ff)[1]
    return EvalResult(extractor.name if extractor is not None else "features", len(fr), len(ff),
                      frechet_distance(fr, ff), kid_mean, kid_std, precision, recall, fd_floor, kid_floor, isc, reps)


def combo(evals: dict, weights: dict, metric: str = "fd"):
    """Interval of sum_k w_k metric_k from paired bootstrap replicates (``evaluate(bootstrap=B)`` with
    equal set sizes and seed): a difference, or a difference of differences between two schedules."""
    from . import stats

    est = sum(w * getattr(evals[k], metric) for k, w in weights.items())
    reps = sum(w * np.asarray(evals[k].replicates[metric]) for k, w in weights.items())
    return stats.percentile(est, reps, centre=True, method="bootstrap-paired")


def fd_bootstrap(real, fakes: dict, B: int, seed: int = 0) -> dict:
    """FD of several sets against one real set with ``B`` paired bootstrap replicates of each
    (``FDBootstrap`` over ``fakes``' values): ``{name: (fd, replicates (B,))}``."""
    boot = FDBootstrap(real, B, seed)
    return {k: boot(v) for k, v in fakes.items()}


class FDBootstrap:
    """FD against one real set with ``B`` bootstrap replicates, at the cost of FD alone, one set at a
    time. ``real`` and the sets are features (N, D), computed once (``extractor.features``); only
    indices are resampled. KID and precision / recall are not: use ``evaluate(bootstrap=...)``.

    The real side of every replicate (the resampled set's mean, covariance root R and trace) is
    computed once, here: B x D x D floats (260 MB at D = 128, B = 2,000). A call then costs, per
    replicate, one eigendecomposition of the smaller Gram matrix of the set's centred, R-projected
    features (the same nonzero eigenvalues as R S_f R). Replicate b shares its real draw across every
    set, and a set of n items draws its indices from a generator seeded by (``seed``, n), the same on
    every call: two sets' replicates pair up (``stats.diff_ci``, ``combo``), and sets matched item by
    item (the same noise sampled two ways) stay matched. ``__call__`` returns (fd, replicates (B,))
    with ``fd`` the full-set FD (``frechet_distance``)."""

    def __init__(self, real, B: int, seed: int = 0):
        if B < 1:
            raise ValueError(f"B must be >= 1 bootstrap replicates, got {B}")
        self.real, self.B, self.seed = _f64(real).numpy(), int(B), int(seed)
        fr = self.real
        g = torch.Generator().manual_seed(self.seed + 7907)
        ir = torch.randint(len(fr), (self.B, len(fr)), generator=g).numpy()
        d = fr.shape[1]
        self.mu, self.root, self.trace = np.empty((self.B, d)), np.empty((self.B, d, d)), np.empty(self.B)
        with _one_blas_thread():  # small matrices: threads only wait on each other (far slower on a busy CPU)
            for b in range(self.B):
                r = fr[ir[b]]
                s = np.cov(r, rowvar=False)
                self.mu[b], self.root[b], self.trace[b] = r.mean(0), _psd_sqrt(s), np.trace(s)

    def draws(self, n: int) -> np.ndarray:
        """(B, n) resampled indices of a set of n items, the same on every call."""
        g = torch.Generator().manual_seed(self.seed + 7907 + 1_000_003 * n)
        return torch.randint(n, (self.B, n), generator=g).numpy()

    def __call__(self, fake) -> tuple[float, np.ndarray]:
        f = _f64(fake).numpy()
        idx, reps = self.draws(len(f)), np.empty(self.B)
        with _one_blas_thread():
            for b in range(self.B):
                x = f[idx[b]]
                c = x - x.mean(0)
                a = c @ self.root[b] / math.sqrt(len(x) - 1)  # R S_f R = a^T a
                gram = a @ a.T if len(a) < a.shape[1] else a.T @ a
                tr_cov = np.sqrt(np.clip(np.linalg.eigvalsh((gram + gram.T) / 2), 0, None)).sum()
                tr_f = float((c ** 2).sum()) / (len(x) - 1)
                d2 = float(((self.mu[b] - x.mean(0)) ** 2).sum()) + self.trace[b] + tr_f - 2 * tr_cov
                reps[b] = max(d2, 0.0)
        return frechet_distance(self.real, f), reps


def _one_blas_thread():
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


class _NeighbourTable:
    """The L nearest points of every row of x (itself included, at distance 0), sorted, computed
    once: a bootstrap replicate's k-NN radii among the distinct points it drew are then read off
    each row's list (the (k+1)-th drawn entry) instead of a fresh all-pairs search. Exact: a row
    with fewer than k + 1 drawn points among its L nearest is searched in full."""

    def __init__(self, x: torch.Tensor, L: int = 64, chunk: int = 512):
        self.x, self.chunk = x, chunk
        self.L = min(L, len(x))
        top = [_sqdist(x[i:i + chunk], x).topk(self.L, dim=1, largest=False) for i in range(0, len(x), chunk)]
        self.dist = torch.cat([t.values for t in top])
        self.idx = torch.cat([t.indices for t in top])

    def radii(self, drawn: torch.Tensor, k: int) -> torch.Tensor:
        """Squared k-NN radii of the points ``drawn`` (sorted distinct indices) among themselves:
        ``knn_radii(x[drawn], k)`` at a fraction of its cost."""
        mask = torch.zeros(len(self.x), dtype=torch.bool)
        mask[drawn] = True
        hit = mask[self.idx[drawn]]  # (m, L): which of each row's nearest were drawn
        count = hit.cumsum(1)
        ok = count[:, -1] > k
        pos = (count <= k).sum(1).clamp_max(self.L - 1)  # first column where the count reaches k + 1
        out = self.dist[drawn].gather(1, pos[:, None]).squeeze(1)
        if not bool(ok.all()):
            rows = drawn[~ok]
            out[~ok] = torch.cat([_sqdist(self.x[rows[i:i + self.chunk]], self.x[drawn])
                                  .topk(k + 1, dim=1, largest=False).values[:, k]
                                  for i in range(0, len(rows), self.chunk)])
        return out


def _pr_both_sets(fr, ff, ir, i_f, k: int, table: _NeighbourTable | None = None,
                  chunk: int = 512) -> tuple[float, float]:
    """Precision and recall of one bootstrap replicate with both manifolds rebuilt from the
    resampled sets (a duplicate would be its own nearest neighbour at distance 0, so each k-NN
    radius is taken among the distinct points drawn; duplicates count with their multiplicity).
    ``table`` (a ``_NeighbourTable`` of ``fr``) gives the real radii fast; without it they are
    searched afresh."""
    ur, inv_r = torch.unique(ir, return_inverse=True)
    uf, inv_f = torch.unique(i_f, return_inverse=True)
    kk = min(k, len(ur) - 1, len(uf) - 1)
    r, f = fr[ur], ff[uf]
    r_radii = table.radii(ur, kk) if table is not None else knn_radii(r, kk, chunk)
    in_real = _inside_manifold(f, r, r_radii, chunk)
    in_fake = _inside_manifold(r, f, knn_radii(f, kk, chunk), chunk)
    return float(in_real[inv_f].double().mean()), float(in_fake[inv_r].double().mean())


def cluster_draw(n: int, cluster: int, generator: torch.Generator) -> torch.Tensor:
    """n indices into a set of n // cluster clusters of ``cluster`` consecutive items, whole clusters
    drawn with replacement (``cluster`` = 1: items drawn one by one, as ``torch.randint``)."""
    if cluster == 1:
        return torch.randint(n, (n,), generator=generator)
    c = torch.randint(n // cluster, (n // cluster,), generator=generator)
    return (c[:, None] * cluster + torch.arange(cluster)).flatten()


def _bootstrap(fr, ff, fref, k: int, B: int, kid_subset_size: int, seed: int,
               resampled: tuple[str, ...] = BOOTSTRAPPED, cluster: int = 1,
               table: "_NeighbourTable | None" = None) -> dict:
    g = torch.Generator().manual_seed(seed + 7919)
    floors = tuple(f"{m}_floor" for m in ("fd", "kid") if m in resampled) if fref is not None else ()
    out = {m: [] for m in tuple(resampled) + floors}
    if table is None and ("precision" in out or "recall" in out):
        table = _NeighbourTable(fr)
    for b in range(B):  # every replicate draws all its indices, whatever is resampled: replicate b stays b
        ir, i_f = torch.randint(len(fr), (len(fr),), generator=g), cluster_draw(len(ff), cluster, g)
        iref = torch.randint(len(fref), (len(fref),), generator=g) if fref is not None else None
        r, f = fr[ir], ff[i_f]
        if "fd" in out:
            out["fd"].append(frechet_distance(r, f))
        if "kid" in out:
            out["kid"].append(kid(r, f, 10, kid_subset_size, seed + b)[0])
        if "precision" in out or "recall" in out:
            prec, rec = _pr_both_sets(fr, ff, ir, i_f, k, table)
            out.get("precision", []).append(prec)
            out.get("recall", []).append(rec)
        if "fd_floor" in out:
            out["fd_floor"].append(frechet_distance(r, fref[iref]))
        if "kid_floor" in out:
            out["kid_floor"].append(kid(r, fref[iref], 10, kid_subset_size, seed + b)[0])
    return {m: np.array(v) for m, v in out.items()}


def _head_logits(extractor: FeatureExtractor, samples, head: str | None) -> torch.Tensor:
    out = extractor.predict(samples)
    if isinstance(out, torch.Tensor):
        return out
    head = head or extractor.label_head
    if head not in out:
        raise ValueError(f"unknown head {head!r}; valid choices: {list(out)}")
    return out[head]


def conditional_hits(extractor: FeatureExtractor, samples, labels, head: str | None = None) -> torch.Tensor:
    """Per sample, 1.0 where the in-domain classifier reads it as its condition, else 0.0 (float64, CPU):
    the raw material of an interval on ``conditional_accuracy``. ``head`` as there."""
    pred = _head_logits(extractor, samples, head).argmax(1)
    return (pred == torch.as_tensor(labels).long().cpu()).double()


def conditional_accuracy(extractor: FeatureExtractor, samples, labels, head: str | None = None) -> float:
    """Share of class-conditional samples that the in-domain classifier reads as their condition
    (the "classification accuracy score" analogue). For a multi-head net, ``head`` defaults to the
    head of the data set's ``y`` (``"shape"`` for shapes)."""
    return float(conditional_hits(extractor, samples, labels, head).mean())


def attribute_accuracy(extractor: FeatureExtractor, samples, attrs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Per-attribute accuracy of samples against the attributes they were asked for, plus ``"all"``:
    the share of samples with every listed attribute right (binding accuracy)."""
    out = extractor.predict(samples)
    if isinstance(out, torch.Tensor):
        raise ValueError(f"{extractor.name} has a single head; attribute accuracy needs a multi-head net (shapes)")
    unknown = set(attrs) - set(out)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; valid choices: {list(out)}")
    hits = {k: out[k].argmax(1) == torch.as_tensor(v).long().cpu() for k, v in attrs.items()}
    acc = {k: float(h.double().mean()) for k, h in hits.items()}
    acc["all"] = float(torch.stack(list(hits.values())).all(0).double().mean())
    return acc


# --------------------------------------------------------------------------------------------
# Likelihoods
# --------------------------------------------------------------------------------------------
def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur of (N, C, H, W) images with standard deviation ``sigma`` pixels
    (kernel radius ceil(3 sigma), reflected borders); sigma = 0 returns the images unchanged (the
    paper blurs both sets before FID, DALL-E Fig. 9a; unCLIP blurs the low-resolution input of its
    upsampler)."""
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    r = min(r, x.shape[-1] - 1)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    h = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(h, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def nats_to_bits(nats):
    """Divide by ln 2."""
    return nats / LN2


def bits_per_dim(nll_nats, num_dims: int):
    """Negative log-likelihood per example in nats -> bits per dimension: nll / (num_dims ln 2)."""
    return nll_nats / (num_dims * LN2)


def bpd_from_logits(logits: torch.Tensor, targets: torch.Tensor, num_dims: int | None = None) -> torch.Tensor:
    """Bits/dim of a discrete autoregressive model per example (B,): the summed cross-entropy of
    logits (B, ..., V) at targets (B, ...), in float64, divided by ``num_dims`` ln 2.

    ``num_dims`` defaults to the number of target tokens per example; pass the number of sub-pixels
    (H * W * 3) when one token codes several dimensions (iGPT's colour palette).
    """
    B, V = logits.shape[0], logits.shape[-1]
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets {tuple(targets.shape)} must match logits {tuple(logits.shape)} without the last dim")
    nll = F.cross_entropy(logits.reshape(-1, V).double(), targets.reshape(-1).long(), reduction="none")
    return bits_per_dim(nll.reshape(B, -1).sum(1), num_dims or targets[0].numel())


def within_caption_diversity(feats: torch.Tensor) -> torch.Tensor:
    """Diversity among the samples of one caption (unCLIP's Table 1 asks people; GLIDE's guidance is
    said to trade it away): ``feats`` (captions, k, F) features of k samples per caption -> (captions,)
    float64, the mean Euclidean distance over the k(k-1)/2 pairs of each caption's samples."""
    f = torch.as_tensor(feats).detach().cpu().double()
    if f.ndim != 3 or f.shape[1] < 2:
        raise ValueError(f"expected features (captions, k >= 2, F), got shape {tuple(f.shape)}")
    d = torch.cdist(f, f)
    k = f.shape[1]
    return d.sum((1, 2)) / (k * (k - 1))


# --------------------------------------------------------------------------------------------
# 2-D toys: exact sample distances
# --------------------------------------------------------------------------------------------
def _pair_sum(x: torch.Tensor, y: torch.Tensor, fn, chunk: int = 1024) -> torch.Tensor:
    """sum_ij fn(||x_i - y_j||), in row chunks; distances from coordinate differences (no
    ||a||^2 + ||b||^2 - 2 a.b round-off: these metrics are meant for low-dimensional points)."""
    dist = lambda a: torch.cdist(a, y, compute_mode="donot_use_mm_for_euclid_dist")  # noqa: E731
    return sum(fn(dist(x[i:i + chunk])).sum() for i in range(0, len(x), chunk))


def mmd_rbf(x, y, bandwidths=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0), unbiased: bool = True) -> float:
    """MMD^2 (Gretton et al. 2012) with a sum of Gaussian kernels exp(-||x - y||^2 / (2 h^2)) over
    ``bandwidths`` (in data units; the defaults suit data of scale ~1, like the 2-D toys).
    Unbiased by default (can dip below 0); ``unbiased=False`` gives the V-statistic (>= 0)."""
    x, y = _f64(x), _f64(y)
    hs = torch.as_tensor(bandwidths, dtype=torch.float64)
    k = lambda d: torch.exp(-(d**2)[..., None] / (2 * hs**2)).sum(-1)  # noqa: E731
    m, n, kdiag = len(x), len(y), float(len(hs))  # k(x, x) = number of bandwidths
    if unbiased:
        sxx = (_pair_sum(x, x, k) - m * kdiag) / (m * (m - 1))
        syy = (_pair_sum(y, y, k) - n * kdiag) / (n * (n - 1))
    else:
        sxx, syy = _pair_sum(x, x, k) / m**2, _pair_sum(y, y, k) / n**2
    return float(sxx + syy - 2 * _pair_sum(x, y, k) / (m * n))


def energy_distance(x, y) -> float:
    """Energy distance 2 E||X - Y|| - E||X - X'|| - E||Y - Y'|| (Szekely & Rizzo 2013), with the
    within-set means over distinct pairs (unbiased). Zero iff the distributions agree."""
    x, y = _f64(x), _f64(y)
    m, n = len(x), len(y)
    same = lambda d: d  # noqa: E731
    return float(2 * _pair_sum(x, y, same) / (m * n) - _pair_sum(x, x, same) / (m * (m - 1))
                 - _pair_sum(y, y, same) / (n * (n - 1)))


def sliced_wasserstein(x, y, n_projections: int = 256, p: int = 2, seed: int = 0) -> float:
    """Sliced p-Wasserstein distance: (E_theta W_p^p(theta.X, theta.Y))^{1/p} over random unit
    directions theta; each 1-D W_p compares quantiles (sorted values when the sizes match)."""
    x, y = _f64(x), _f64(y)
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    theta /= theta.norm(dim=0, keepdim=True)
    px, py = (x @ theta).sort(0).values, (y @ theta).sort(0).values  # (N, P)
    if len(px) != len(py):
        q = (torch.arange(max(len(px), len(py)), dtype=torch.float64) + 0.5) / max(len(px), len(py))
        px, py = torch.quantile(px, q, dim=0), torch.quantile(py, q, dim=0)
    return float(((px - py).abs() ** p).mean() ** (1 / p))


def mode_coverage(samples, centres, radius: float) -> dict:
    """For mixtures of well separated modes: ``modes_hit`` (modes with at least one sample within
    ``radius``), ``coverage`` (their share), ``in_mode`` (share of samples within ``radius`` of some
    mode: a precision) and ``counts`` per mode."""
    s, c = _f64(samples), _f64(centres)
    d2 = _sqdist(s, c)  # (N, K)
    nearest = d2.argmin(1)
    near = d2.gather(1, nearest[:, None]).squeeze(1) <= radius**2
    counts = torch.bincount(nearest[near], minlength=len(c))
    hit = int((counts > 0).sum())
    return dict(modes_hit=hit, coverage=hit / len(c), in_mode=float(near.double().mean()), counts=counts.tolist())
