"""Sample-quality metrics against closed forms, second implementations and known failure modes."""
import ast
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial.distance as ssd
import scipy.stats
import torch

from ddpm_lib import metrics as M

ROOT = Path(__file__).resolve().parents[1]


def _spd(d, rng):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


# --------------------------------------------------------------------------------------------
# Frechet distance
# --------------------------------------------------------------------------------------------
def test_frechet_distance_matches_the_sqrtm_formula():
    """Our eigen route vs the TTUR route: tr sqrtm(S1 S2) of the non-symmetric product."""
    rng = np.random.default_rng(0)
    for d in (1, 3, 16):
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = _spd(d, rng), _spd(d, rng)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
        assert M.frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_frechet_distance_of_commuting_covariances():
    """Diagonal covariances: d^2 = ||mu1 - mu2||^2 + sum (sqrt(s1) - sqrt(s2))^2."""
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    v1, v2 = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    ref = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(v1) - np.sqrt(v2)) ** 2).sum()
    assert M.frechet_distance_from_stats(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(ref, rel=1e-9)


def test_frechet_distance_on_features_is_zero_on_itself_and_symmetric():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((500, 32)) @ rng.standard_normal((32, 32))
    b = rng.standard_normal((400, 32)) + 0.3
    assert M.frechet_distance(a, a) < 1e-8
    assert M.frechet_distance(a, b) == pytest.approx(M.frechet_distance(b, a), rel=1e-9)
    # features in: the same as stats computed by numpy
    ref = M.frechet_distance_from_stats(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T))
    assert M.frechet_distance(torch.tensor(a), b) == pytest.approx(ref, rel=1e-12)


def test_fd_bootstrap_replicates_are_fds_of_resampled_indices_and_pair_up():
    """``fd_bootstrap``: each replicate is the FD of the index-resampled sets (the real draw shared by
    every arm, one draw per set size), through the small-Gram route for n < D and n > D alike."""
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 6 * 2))
    fakes = {"near": rng.standard_normal((10, 12)) + 0.1, "far": rng.standard_normal((10, 12)) + 1.0,
             "big": rng.standard_normal((40, 12))}  # n < D and n > D
    out = M.fd_bootstrap(real, fakes, B=4, seed=3)
    ir = torch.randint(300, (4, 300), generator=torch.Generator().manual_seed(3 + 7907)).numpy()
    draws = {n: torch.randint(n, (4, n), generator=torch.Generator().manual_seed(3 + 7907 + 1_000_003 * n)).numpy()
             for n in (10, 40)}
    for k, f in fakes.items():
        fd, reps = out[k]
        assert fd == pytest.approx(M.frechet_distance(real, f))
        for b in range(4):
            assert reps[b] == pytest.approx(M.frechet_distance(real[ir[b]], f[draws[len(f)][b]]), rel=1e-6)
    # paired: an arm against itself differs by exactly 0 in every replicate; far is worse than near
    twin = M.fd_bootstrap(real, {"a": fakes["near"], "b": fakes["near"].copy()}, B=50)
    assert np.array_equal(twin["a"][1], twin["b"][1])
    many = M.fd_bootstrap(real, fakes, B=200)
    assert (many["far"][1] - many["near"][1] > 0).mean() > 0.95
    # one set at a time (FDBootstrap): the same replicates as all sets at once, whatever the order
    boot = M.FDBootstrap(real, B=200)
    assert np.array_equal(boot(fakes["far"])[1], many["far"][1])
    assert np.array_equal(boot(fakes["near"])[1], many["near"][1])
    with pytest.raises(ValueError, match="B must be"):
        M.FDBootstrap(real, B=0)


def test_frechet_distance_of_large_samples_approaches_the_population_value():
    rng = np.random.default_rng(3)
    d = 4
    mu1, mu2, s1, s2 = np.zeros(d), np.full(d, 0.5), _spd(d, rng), _spd(d, rng)
    a = rng.multivariate_normal(mu1, s1, 40_000)
    b = rng.multivariate_normal(mu2, s2, 40_000)
    assert M.frechet_distance(a, b) == pytest.approx(M.frechet_distance_from_stats(mu1, s1, mu2, s2), rel=0.05)


# --------------------------------------------------------------------------------------------
# Mixture data: the floor, dropped modes, samples off the manifold
# --------------------------------------------------------------------------------------------
D, K = 8, 10
_MEANS = np.random.default_rng(10).standard_normal((K, D)) * 3.0


def _mixture(n, seed, comps=range(K)):
    rng = np.random.default_rng(seed)
    k = rng.choice(list(comps), n)
    return _MEANS[k] + 0.5 * rng.standard_normal((n, D))


@pytest.fixture(scope="module")
def mixture_results():
    n = 1500
    real, ref, same = _mixture(n, 1), _mixture(n, 2), _mixture(n, 3)
    half = _mixture(n, 4, comps=range(K // 2))
    mom = np.random.default_rng(5).multivariate_normal(real.mean(0), np.cov(real.T), n)  # moment-matched noise
    kw = dict(kid_subsets=20, kid_subset_size=500)
    return {name: M.evaluate(None, real, fake, real_ref=ref, **kw)
            for name, fake in [("same", same), ("half", half), ("noise", mom)]}


def test_a_second_sample_of_the_data_sits_at_the_floor(mixture_results):
    r = mixture_results["same"]
    assert r.fd < 3 * r.fd_floor
    assert r.precision > 0.8 and r.recall > 0.8  # k-NN balls at k = 3 miss some of the tails
    assert abs(r.kid) < 3 * r.kid_std + 1e-3


def test_dropping_modes_lowers_recall_and_raises_fd(mixture_results):
    same, half = mixture_results["same"], mixture_results["half"]
    assert half.recall < 0.65 < same.recall
    assert half.fd > 20 * same.fd_floor
    assert half.kid > 5 * half.kid_std and half.kid > 10 * (abs(same.kid) + same.kid_std)
    assert half.precision > 0.8  # what it makes still looks real


def test_samples_off_the_manifold_lose_precision(mixture_results):
    """Gaussian noise with the data's mean and covariance: FD is low (it matches two moments), but
    precision shows that almost nothing lands on the data."""
    noise, same = mixture_results["noise"], mixture_results["same"]
    assert noise.precision < 0.2 < 0.8 < same.precision
    assert noise.fd < 2 * noise.fd_floor < 0.05 * mixture_results["half"].fd


def test_eval_result_prints_as_a_row(mixture_results):
    r = mixture_results["same"]
    row = r.as_row()
    assert {"fd", "fd_floor", "kid", "kid_std", "kid_floor", "precision", "recall", "n_real", "n_fake"} <= set(row)
    assert row["n_real"] == row["n_fake"] == 1500
    assert "fd=" in str(r) and "recall=" in str(r)


# --------------------------------------------------------------------------------------------
# KID and precision/recall against second implementations
# --------------------------------------------------------------------------------------------
def _kid_loops(x, y):
    """Unbiased MMD^2 with the cubic kernel, with explicit loops over pairs."""
    d = x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_kid_matches_explicit_loops():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((25, 4)), rng.standard_normal((30, 4)) + 0.2
    assert M.mmd2_polynomial(torch.tensor(x), y) == pytest.approx(_kid_loops(x, y), rel=1e-9)
    mean, std = M.kid(x, y, subsets=5, subset_size=1000)  # capped at half the smaller set: subsets differ
    assert std > 0


def test_kid_is_unbiased():
    """Over independent sample pairs of one distribution the mean KID is 0 within 3 standard errors;
    the biased (V-statistic) estimate on the same pairs is not, so the check has power."""
    rng = np.random.default_rng(1)
    d, n, reps = 16, 60, 60
    unbiased, biased = [], []
    for _ in range(reps):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        unbiased.append(M.mmd2_polynomial(x, y))
        k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
        biased.append(k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean())
    se = np.std(unbiased) / math.sqrt(reps)
    assert abs(np.mean(unbiased)) < 3 * se
    assert np.mean(biased) > 10 * se
    x, y = rng.standard_normal((500, d)), rng.standard_normal((500, d)) + 0.5
    mean, std = M.kid(x, y, subsets=20, subset_size=200)
    assert mean > 5 * std > 0


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((150, 3)), rng.standard_normal((120, 3)) * 1.5 + 0.5
    k = 3

    def coverage(points, centres):
        dc = ssd.cdist(centres, centres)
        radii = np.sort(dc, axis=1)[:, k]  # column 0 is the point itself
        return float((ssd.cdist(points, centres) <= radii[None]).any(1).mean())

    p, r = M.precision_recall(real, fake, k=k, chunk=17)  # chunks that do not divide n
    assert p == pytest.approx(coverage(fake, real), abs=1e-12)
    assert r == pytest.approx(coverage(real, fake), abs=1e-12)
    assert 0 < p < 1 and 0 < r < 1
    with pytest.raises(ValueError, match="k must be"):
        M.precision_recall(real[:3], fake, k=3)



@pytest.mark.parametrize("L", [64, 3])  # 3: most rows fall back to the full search
def test_neighbour_table_gives_the_radii_of_a_fresh_search(L):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g, dtype=torch.float64)
    x[7] = x[3]  # a tie at distance 0 between two distinct points
    table = M._NeighbourTable(x, L=L, chunk=64)
    for _ in range(3):
        drawn = torch.unique(torch.randint(400, (400,), generator=g))
        for k in (1, 3):
            assert torch.allclose(table.radii(drawn, k), M.knn_radii(x[drawn], k), rtol=1e-9, atol=1e-12)
    f, ir, i_f = torch.randn(60, 5, generator=g, dtype=torch.float64), torch.randint(400, (400,), generator=g), \
        M.cluster_draw(60, 3, g)
    assert M._pr_both_sets(x, f, ir, i_f, 3, table) == M._pr_both_sets(x, f, ir, i_f, 3)

# --------------------------------------------------------------------------------------------
# Bits/dim
# --------------------------------------------------------------------------------------------
def test_bits_per_dim_helpers():
    assert M.nats_to_bits(math.log(2) * 3) == pytest.approx(3.0)
    assert M.bits_per_dim(torch.tensor([math.log(2) * 3072 * 2.5]), 3072).item() == pytest.approx(2.5)
    logits = torch.zeros(2, 5, 256)  # uniform over 256 values: exactly 8 bits per dim
    targets = torch.randint(0, 256, (2, 5))
    assert torch.allclose(M.bpd_from_logits(logits, targets), torch.full((2,), 8.0, dtype=torch.float64))
    logits = torch.randn(3, 7, 11)
    targets = torch.randint(0, 11, (3, 7))
    ref = -torch.log_softmax(logits.double(), -1).gather(-1, targets[..., None]).squeeze(-1).sum(1) / (7 * math.log(2))
    assert torch.allclose(M.bpd_from_logits(logits, targets), ref, atol=1e-12)
    # one palette token coding 3 sub-pixels: three times fewer bits per dim
    assert torch.allclose(M.bpd_from_logits(logits, targets, num_dims=21), ref / 3, atol=1e-12)
    with pytest.raises(ValueError, match="targets"):
        M.bpd_from_logits(logits, targets[:, :3])


# --------------------------------------------------------------------------------------------
# 2-D toy metrics
# --------------------------------------------------------------------------------------------
def test_energy_distance_matches_scipy_pair_distances():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((80, 2)), rng.standard_normal((60, 2)) + [0.5, 0.0]
    m, n = len(x), len(y)
    ref = 2 * ssd.cdist(x, y).mean() - ssd.pdist(x).sum() * 2 / (m * (m - 1)) - ssd.pdist(y).sum() * 2 / (n * (n - 1))
    assert M.energy_distance(x, y) == pytest.approx(ref, rel=1e-10)
    same = M.energy_distance(rng.standard_normal((400, 2)), rng.standard_normal((400, 2)))
    assert abs(same) < 0.2 * M.energy_distance(x, y)


def test_sliced_wasserstein():
    rng = np.random.default_rng(4)
    x1, y1 = rng.standard_normal((300, 1)), rng.exponential(size=(300, 1))
    assert M.sliced_wasserstein(x1, y1, p=1, n_projections=4) == pytest.approx(
        scipy.stats.wasserstein_distance(x1[:, 0], y1[:, 0]), rel=1e-10)  # in 1-D every direction is +-1
    x = rng.standard_normal((500, 2))
    c = np.array([1.0, 0.0])
    # a pure shift c: W_2 along theta is |theta.c|, so SW_2^2 = E (theta.c)^2 = |c|^2 / 2 in 2-D
    assert M.sliced_wasserstein(x, x + c, n_projections=2000) == pytest.approx(math.sqrt(0.5), rel=0.03)
    assert M.sliced_wasserstein(x, x[:300] + c) > 0.5  # unequal sizes go through quantiles


def test_mmd_rbf_and_mode_coverage():
    rng = np.random.default_rng(5)
    a, b = rng.standard_normal((400, 2)), rng.standard_normal((400, 2))
    shifted = b + [0.7, 0.0]
    assert abs(M.mmd_rbf(a, b)) < 0.1 * M.mmd_rbf(a, shifted)
    assert M.mmd_rbf(a, b, unbiased=False) > 0
    ang = np.arange(8) * np.pi / 4
    centres = 2 * np.stack([np.cos(ang), np.sin(ang)], 1)
    pts = centres[rng.choice(4, 200)] + 0.05 * rng.standard_normal((200, 2))
    pts[:20] = 0.0  # between the modes
    cov = M.mode_coverage(pts, centres, radius=0.3)
    assert cov["modes_hit"] == 4 and cov["coverage"] == 0.5
    assert cov["in_mode"] == pytest.approx(0.9)
    assert sum(cov["counts"]) == 180


# --------------------------------------------------------------------------------------------
# The module's place: the math, below data, training, networks and feature networks
# --------------------------------------------------------------------------------------------
def test_metrics_imports_nothing_above_it():
    """metrics is the math: of the library it may import ``stats`` alone. Feature networks, their
    training and their data live in ``features``, which imports metrics, not the other way round."""
    tree = ast.parse((ROOT / "ddpm_lib" / "metrics.py").read_text())
    ours = set()  # first-level ddpm_lib modules that metrics imports
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:  # from . import x / from .x import y
            ours.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ddpm_lib"):
            rest = node.module.split(".")[1:]
            ours.update(rest[:1] or [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            ours.update(a.name.split(".")[1] for a in node.names if a.name.startswith("ddpm_lib."))
    assert ours == {"stats"}, ours


def test_gaussian_blur_keeps_the_mean_and_smooths():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    b = M.gaussian_blur(x, 1.0)
    assert abs(b.sum().item() - 1.0) < 1e-5 and b.max() < 0.2 and b[0, 0, 4, 4] == b.max()
    assert torch.equal(M.gaussian_blur(x, 0.0), x)


def test_nearest_distance_is_the_brute_force_minimum_over_the_reference():
    g = torch.Generator().manual_seed(0)
    ref, x = torch.rand(37, 3, 4, 4, generator=g), torch.rand(11, 3, 4, 4, generator=g)
    x[3] = ref[5]  # a copy of a reference image is at distance 0
    got = M.nearest_distance(x, ref, batch=4)
    want = torch.cdist(x.flatten(1).double(), ref.flatten(1).double()).min(1).values.numpy()
    assert got.shape == (11,) and np.allclose(got, want, atol=1e-6) and got[3] < 1e-6


def test_evaluate_resamples_only_the_metrics_asked_and_keeps_their_replicates():
    g = torch.Generator().manual_seed(1)
    real, fake, ref = (torch.randn(n, 5, generator=g, dtype=torch.float64) for n in (60, 40, 40))
    full = M.evaluate(None, real, fake, real_ref=ref, bootstrap=7, seed=3)
    pr = M.evaluate(None, real, fake, real_ref=ref, bootstrap=7, seed=3, resampled=("precision", "recall"))
    assert set(pr.replicates) == {"precision", "recall"}
    for m in ("precision", "recall"):  # the same replicates as a full bootstrap: pairing is kept
        assert np.allclose(pr.replicates[m], full.replicates[m])
    assert pr.fd == full.fd and pr.fd_floor == full.fd_floor
    with pytest.raises(ValueError, match="valid choices"):
        M.evaluate(None, real, fake, bootstrap=2, resampled=("fid",))
    # FD's replicates from an FDBootstrap on the same real set: those of the FDBootstrap
    boot = M.FDBootstrap(real, 9, seed=3)
    ev = M.evaluate(None, real, fake, bootstrap=7, seed=3, resampled=("recall",), fd_boot=boot)
    assert set(ev.replicates) == {"recall", "fd"} and np.allclose(ev.replicates["fd"], boot(fake)[1])
    with pytest.raises(ValueError, match="another real set"):
        M.evaluate(None, ref, fake, fd_boot=boot)


def test_cluster_draw_resamples_whole_clusters_and_is_randint_for_one():
    g = torch.Generator().manual_seed(0)
    idx = M.cluster_draw(12, 3, g).view(4, 3)
    assert (idx[:, 0] % 3 == 0).all() and (idx - idx[:, :1] == torch.arange(3)).all()
    a, b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(M.cluster_draw(10, 1, a), torch.randint(10, (10,), generator=b))


def test_evaluate_cluster_bootstrap_checks_its_cluster_and_widens_for_nested_samples():
    rng = np.random.default_rng(0)
    real = torch.tensor(rng.normal(size=(300, 4)))
    # 30 clusters of 5 near-copies: the clusters, not the 150 samples, are what varies
    centres = torch.tensor(rng.normal(size=(30, 4)))
    fake = (centres.repeat_interleave(5, 0) + 0.01 * torch.tensor(rng.normal(size=(150, 4))))
    with pytest.raises(ValueError, match="positive divisor"):
        M.evaluate(None, real, fake, bootstrap=5, cluster=4)
    wide = M.evaluate(None, real, fake, bootstrap=200, cluster=5, resampled=("fd",))
    narrow = M.evaluate(None, real, fake, bootstrap=200, resampled=("fd",))
    assert wide.replicates["fd"].std() > 1.5 * narrow.replicates["fd"].std()


def test_evaluate_reads_the_real_radii_off_its_neighbour_table_exactly():
    # with a bootstrap the point estimate's real radii come from the table the replicates use:
    # the same precision and recall as the plain search, ties at distance 0 included
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 8, generator=g, dtype=torch.float64)
    real[10:20] = real[0]  # duplicates: ties at distance 0
    fake = torch.randn(120, 8, generator=g, dtype=torch.float64) * 1.2
    plain = M.precision_recall(real, fake, k=3)
    ev = M.evaluate(None, real, fake, k=3, bootstrap=4, kid_subset_size=50)
    assert (ev.precision, ev.recall) == plain
    table = M._NeighbourTable(M._f64(real))
    assert torch.equal(table.radii(torch.arange(len(real)), 3), M.knn_radii(real, 3))
