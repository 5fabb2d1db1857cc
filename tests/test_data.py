"""Tests of ddpm_lib.data: offline built-ins, the Hub code path on local directories, offline failure.

Everything runs offline: the Hub variables are set before ``datasets`` is imported, and the only
sockets opened go to 127.0.0.1.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import math  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ddpm_lib import data  # noqa: E402

PALETTE = data.to_8bit_grid(torch.tensor(list(data.COLOURS.values())) * 2 - 1)  # in [-1, 1], on the 8-bit grid as the images
BG = data.to_8bit_grid(torch.tensor(list(data.BACKGROUNDS.values())) * 2 - 1)  # images sit on the 8-bit grid


def fresh(*args, **kw):
    """load() past the in-process memo, so determinism is the renderer's, not the cache's."""
    data._memo.cache_clear()
    return data.load(*args, **kw)


# --------------------------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------------------------
def assert_same(a, b):
    assert torch.equal(a.x, b.x)
    assert a.captions == b.captions and a.captions_long == b.captions_long
    assert a.attrs.keys() == b.attrs.keys()
    assert all(torch.equal(a.attrs[k], b.attrs[k]) for k in a.attrs)


def test_shapes_deterministic_in_seed_and_index():
    small = fresh("shapes", n=40, image_size=16, seed=3)
    big = fresh("shapes", n=200, image_size=16, seed=3)
    assert_same(small, big.subset(slice(0, 40)))
    window = fresh("shapes", n=30, image_size=16, seed=3, start=20)  # scenes 20..49
    assert_same(window, big.subset(torch.arange(20, 50)))
    other_seed = fresh("shapes", n=40, image_size=16, seed=4)
    assert not torch.equal(small.x, other_seed.x)


def test_shapes_train_and_test_are_different_streams():
    train = data.load("shapes", n=300, image_size=16)
    test = data.load("shapes", split="test", n=300, image_size=16)
    assert (train.attrs["shape"] != test.attrs["shape"]).float().mean() > 0.4
    as_bytes = lambda d: {img.numpy().tobytes() for img in d.x}  # noqa: E731
    assert not as_bytes(train) & as_bytes(test)  # no image in both


def parse(caption, values, long):
    """Read the attributes back out of a caption, using only the attribute names."""
    alt = {a: "|".join(map(re.escape, sorted(values[a], key=len, reverse=True))) for a in values}
    obj = rf"an? (?P<size{{i}}>{alt['size']}) " if long else "an? "
    obj += rf"(?P<colour{{i}}>{alt['colour']}) (?P<shape{{i}}>{alt['shape']})"
    if long:
        obj += rf" at the (?P<position{{i}}>{alt['position']})"
    pattern = obj.format(i=1) + f"(?: and {obj.format(i=2)})?"
    if long:
        pattern += rf" on a (?P<background>{alt['background']}) background"
    m = re.fullmatch(pattern, caption)
    assert m, caption
    return {k.replace("1", ""): v for k, v in m.groupdict().items() if v is not None}


@pytest.mark.parametrize("objects", [1, 2])
def test_shapes_captions_agree_with_attributes(objects):
    d = data.load("shapes", n=200, image_size=8, objects=objects)
    for i in range(len(d)):
        truth = {k: d.attr_values[k][int(v[i])] for k, v in d.attrs.items()}
        assert parse(d.captions_long[i], d.attr_values, long=True) == truth
        short = {k: v for k, v in truth.items() if k.rstrip("2") in ("shape", "colour")}
        assert parse(d.captions[i], d.attr_values, long=False) == short
    assert d.captions[0].count(" and ") == objects - 1


def test_shapes_label_option_and_values():
    d = data.load("shapes", n=100, image_size=8)
    assert torch.equal(d.y, d.attrs["shape"]) and d.classes == ["circle", "square", "triangle"]
    c = data.load("shapes", n=100, image_size=8, label="colour")
    assert torch.equal(c.y, c.attrs["colour"]) and c.classes == list(data.COLOURS) and len(c.classes) >= 6
    assert d.attr_values["position"][0] == "top left" and len(d.attr_values["position"]) == 9
    assert set(d.attr_values["size"]) == {"small", "large"}
    assert all(int(d.attrs[k].max()) < len(d.attr_values[k]) for k in d.attrs)


@pytest.mark.parametrize("size", [8, 16, 32, 64])
def test_shapes_sizes_and_range(size):
    d = data.load("shapes", n=64, image_size=size)
    assert d.x.shape == (64, 3, size, size) and d.image_shape == (3, size, size)
    assert d.x.dtype == torch.float32 and d.x.min() >= -1 and d.x.max() <= 1


def object_pixels(d):
    """(N, S, S) mask of the pixels that differ from the scene's named background colour."""
    return ((d.x - BG[d.attrs["background"]][:, :, None, None]).abs().amax(1) > 1e-4)


def test_shapes_pixels_match_the_labels():
    """Colour, background, size and position read back from the pixels alone (32 px, jittered)."""
    d = data.load("shapes", n=1000, image_size=32, seed=5)
    bg = BG[d.attrs["background"]][:, :, None, None]
    obj = object_pixels(d)
    assert obj.flatten(1).float().mean(1).max() < 0.5  # the named background is most of the image
    # colour: the pixel farthest from the background is fully covered, so exactly the named colour
    far = (d.x - bg).pow(2).sum(1).flatten(1).argmax(1)
    pix = d.x.flatten(2)[torch.arange(len(d)), :, far]  # (N, 3)
    assert torch.allclose(pix, PALETTE[d.attrs["colour"]], atol=1e-5)
    # position: the object's pixels centre in the named cell of the 3 x 3 grid
    ys, xs = torch.meshgrid(torch.arange(32.0) + 0.5, torch.arange(32.0) + 0.5, indexing="ij")
    w = obj.float()
    cx = (w * xs).flatten(1).sum(1) / w.flatten(1).sum(1)
    cy = (w * ys).flatten(1).sum(1) / w.flatten(1).sum(1)
    cell = (cy // (32 / 3)).long() * 3 + (cx // (32 / 3)).long()
    assert torch.equal(cell, d.attrs["position"])
    # size: for every shape, each large object covers more pixels than any small one
    count = obj.flatten(1).sum(1)
    for k in range(len(data.SHAPES)):
        small = count[(d.attrs["shape"] == k) & (d.attrs["size"] == 0)]
        large = count[(d.attrs["shape"] == k) & (d.attrs["size"] == 1)]
        assert small.max() < large.min()


def test_shapes_palette_is_distinguishable():
    pair = torch.cdist(PALETTE, PALETTE) + 10 * torch.eye(len(PALETTE))
    assert pair.min() > 0.6  # in [-1, 1] units
    assert torch.cdist(PALETTE, BG).min() > 0.6
    assert len(set(data.COLOURS)) >= 6 and {"black", "gray"} <= set(data.BACKGROUNDS)


def test_shapes_two_objects():
    one = data.load("shapes", n=200, image_size=32, seed=2)
    two = data.load("shapes", n=200, image_size=32, seed=2, objects=2)
    assert {"shape2", "colour2", "size2", "position2"} <= set(two.attrs)
    assert (two.attrs["position2"] != two.attrs["position"]).all()
    for k in one.attrs:  # the first object is the same scene's first object
        assert torch.equal(one.attrs[k], two.attrs[k])
    # the second object, drawn last, shows its colour at the centre of its cell (at 30 px, unjittered,
    # every object covers the pixel next to its centre fully)
    flat = data.load("shapes", n=200, image_size=30, seed=2, objects=2, jitter=False)
    row, col = flat.attrs["position2"] // 3, flat.attrs["position2"] % 3
    centre = flat.x[torch.arange(200), :, row * 10 + 5, col * 10 + 5]  # (N, 3)
    assert torch.allclose(centre, PALETTE[flat.attrs["colour2"]], atol=1e-5)


@pytest.mark.parametrize("size", [8, 16, 32])
def test_windowed_renderer_matches_full_grid(size):
    """The renderer evaluates each object on a small window; a full-image window must agree."""
    d = data.load("shapes", n=60, image_size=size, seed=7)
    a, j = data._draw_scenes(data._stream("shapes", "train", 7), np.arange(60), 1)
    pos = a["position"]
    cx = ((pos % 3).float() + 0.5) / 3 + data.JITTER["offset"] * j["dx"]
    cy = ((pos // 3).float() + 0.5) / 3 + data.JITTER["offset"] * j["dy"]
    r = torch.tensor(list(data.SIZES.values()))[a["size"]] * (1 + data.JITTER["scale"] * j["scale"])
    angle = data.JITTER["angle"] * j["angle"]
    windowed = data._object_coverage(a["shape"], a["size"], cx, cy, r, angle, size, 4)
    for k, inside in enumerate(data._INSIDE):
        rows = a["shape"] == k
        full, ox, oy = data._coverage(inside, cx[rows], cy[rows], r[rows], angle[rows], 1.0, size, 4)
        assert full.shape[1:] == (size, size) and (ox == 0).all() and (oy == 0).all()
        assert torch.allclose(windowed[rows], full, atol=1e-6)
    assert torch.equal(a["shape"], d.attrs["shape"])


def test_shapes_render_10k_fast():
    t = time.perf_counter()
    d = fresh("shapes", n=10_000, image_size=16, seed=11)
    elapsed = time.perf_counter() - t
    assert len(d) == 10_000 and d.x.shape == (10_000, 3, 16, 16)
    assert elapsed < 10, f"10,000 scenes at 16x16 took {elapsed:.1f} s"


# --------------------------------------------------------------------------------------------
# digits, toy2d, gmm
# --------------------------------------------------------------------------------------------
def test_digits_split_classes_and_upsampling():
    tr, te = data.load("digits"), data.load("digits", split="test")
    assert (len(tr), len(te)) == (1437, 360) and tr.image_shape == (1, 8, 8)
    assert tr.classes == [str(k) for k in range(10)]
    assert torch.bincount(te.y, minlength=10).min() >= 35  # stratified: 36 +- 1 per class
    assert tr.x.min() == -1 and tr.x.max() == 1
    assert torch.equal(fresh("digits", seed=123).x, tr.x)  # the split ignores the seed
    up16 = data.load("digits", image_size=16)
    up32 = data.load("digits", image_size=32)
    assert up16.x.shape == (1437, 1, 16, 16) and up32.x.shape == (1437, 1, 32, 32)
    assert up32.x.min() >= -1 and up32.x.max() <= 1
    near = data.load("digits", image_size=16, resize="nearest")
    assert torch.equal(near.x[..., ::2, ::2], tr.x) and torch.equal(near.x[..., 1::2, 1::2], tr.x)
    assert torch.equal(data.load("digits", n=100).x, tr.x[:100])


@pytest.mark.parametrize("name", ["moons", "eight_gaussians", "swiss_roll", "checkerboard"])
def test_toy2d(name):
    d = fresh(f"toy2d:{name}", n=4000)
    assert d.x.shape == (4000, 2) and d.image_shape == (2,) and torch.isfinite(d.x).all()
    assert torch.equal(d.x, fresh(f"toy2d:{name}", n=4000).x)
    assert not torch.equal(d.x, data.load(f"toy2d:{name}", n=4000, seed=1).x)
    assert not torch.equal(d.x, data.load(f"toy2d:{name}", n=4000, split="test").x)
    assert ((d.x.std(0) > 0.85) & (d.x.std(0) < 1.15)).all() and (d.x.mean(0).abs() < 0.1).all()
    assert len(data.load(f"toy2d:{name}")) == 10_000 and len(data.load(f"toy2d:{name}", split="test")) == 2_000


def test_toy2d_structure():
    board = data.load("toy2d:checkerboard").x * math.sqrt(4 / 3)  # back to [-2, 2]^2
    assert ((board[:, 0].floor() + board[:, 1].floor()) % 2 == 0).all()  # only the dark squares
    eight = data.load("toy2d:8gaussians")
    assert eight.name == "toy2d:eight_gaussians"
    mix = eight.meta["mixture"]
    dist = (eight.x.double() - mix.means[eight.y]).norm(dim=1)
    assert (dist < 6 * mix.covs[0, 0, 0].sqrt()).all()  # every point near its own component's mean


@pytest.mark.parametrize("name", ["gmm", "gmm:example"])
def test_gmm_matches_its_mixture(name):
    d = data.load(name, n=20_000)
    mix = d.meta["mixture"]
    x = d.x.double()
    assert torch.allclose(x.mean(0), mix.mean(), atol=0.05)
    assert torch.allclose(torch.cov(x.T), mix.cov(), atol=0.06)
    assert torch.equal(d.y, mix.labels[d.attrs["component"]])
    assert d.classes == [str(c) for c in range(mix.num_classes)]


def test_gmm_options():
    d = data.load("gmm", n=500, k=4, radius=1.0)
    assert d.meta["mixture"].K == 4 and int(d.attrs["component"].max()) == 3


# --------------------------------------------------------------------------------------------
# Hugging Face datasets: local directories shaped like the Hub's
# --------------------------------------------------------------------------------------------
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def mnist_like(rng, n):
    from PIL import Image

    import datasets

    images = [Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8), mode="L") for _ in range(n)]
    labels = rng.integers(0, 10, n).tolist()
    ds = datasets.Dataset.from_dict({"image": images, "label": labels})
    return ds.cast_column("image", datasets.Image()).cast_column(
        "label", datasets.ClassLabel(names=[str(k) for k in range(10)])), images, labels


def test_hub_path_mnist_like_save_to_disk(tmp_path):
    import datasets

    rng = np.random.default_rng(0)
    (train, images, labels), (test, _, _) = mnist_like(rng, 24), mnist_like(rng, 10)
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "mnist"))
    d = data.load(str(tmp_path / "mnist"))
    assert d.x.shape == (24, 1, 28, 28) and d.x.dtype == torch.float32
    assert d.x.min() >= -1 and d.x.max() <= 1
    assert torch.equal(d.x[3, 0], torch.tensor(np.array(images[3]), dtype=torch.float32) / 127.5 - 1)
    assert d.y.tolist() == labels and d.classes == [str(k) for k in range(10)]
    assert d.meta["columns"] == ("image", "label")
    assert len(data.load(str(tmp_path / "mnist"), split="test")) == 10
    assert data.load(str(tmp_path / "mnist"), image_size=32).x.shape == (24, 1, 32, 32)
    first = data.load(str(tmp_path / "mnist"), n=5)
    assert torch.equal(first.x, d.x[:5]) and torch.equal(first.y, d.y[:5])


def test_hub_path_cifar_like_save_to_disk(tmp_path):
    from PIL import Image

    import datasets

    rng = np.random.default_rng(1)
    arrays = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    arrays[0] = 0
    arrays[0, :, :, 0] = 255  # image 0 is pure red
    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(a, mode="RGB") for a in arrays],
                                     "label": list(range(10)) + [3, 9]})
    ds = ds.cast_column("img", datasets.Image()).cast_column("label", datasets.ClassLabel(names=CIFAR_CLASSES))
    ds.save_to_disk(str(tmp_path / "cifar"))  # a single Dataset: the train split
    d = data.load(str(tmp_path / "cifar"))
    assert d.x.shape == (12, 3, 32, 32) and d.classes == CIFAR_CLASSES
    assert d.y.tolist() == list(range(10)) + [3, 9]
    assert torch.equal(d.x[0, 0], torch.ones(32, 32)) and torch.equal(d.x[0, 1:], -torch.ones(2, 32, 32))
    assert torch.allclose(d.x[1:], torch.as_tensor(arrays[1:]).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert data.load(str(tmp_path / "cifar"), image_size=16).x.shape == (12, 3, 16, 16)
    with pytest.raises(ValueError, match="single Dataset"):
        data.load(str(tmp_path / "cifar"), split="test")


def test_columns_mapping_and_detection():
    import datasets

    cifar = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=CIFAR_CLASSES)})
    assert data._columns("uoft-cs/cifar10", cifar) == ("img", "label")
    other = datasets.Features({"id": datasets.Value("int32"), "picture": datasets.Image(),
                               "kind": datasets.ClassLabel(names=["a", "b"])})
    assert data._columns("someone/pictures", other) == ("picture", "kind")
    with pytest.raises(ValueError, match="no image column"):
        data._columns("someone/table", datasets.Features({"id": datasets.Value("int32")}))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(2)
    for split, count in (("train", 5), ("test", 2)):
        for cls in ("cat", "dog"):
            (tmp_path / "pets" / split / cls).mkdir(parents=True)
            for i in range(count):
                size = (20, 24) if i % 2 else (16, 16)  # mixed sizes need image_size
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                    tmp_path / "pets" / split / cls / f"{i}.png")
    d = data.load(str(tmp_path / "pets"), image_size=16)
    assert d.x.shape == (10, 3, 16, 16) and d.classes == ["cat", "dog"] and sorted(d.y.tolist()) == [0] * 5 + [1] * 5
    assert d.x.min() >= -1 and d.x.max() <= 1
    assert len(data.load(str(tmp_path / "pets"), split="test", image_size=8)) == 4
    with pytest.raises(ValueError, match="image_size"):
        data.load(str(tmp_path / "pets"))
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8), mode="L").save(flat / f"{i}.png")
    f = data.load(str(flat))
    assert f.x.shape == (3, 1, 8, 8) and f.y is None and f.classes is None


# --------------------------------------------------------------------------------------------
# offline behaviour
# --------------------------------------------------------------------------------------------
MISSING = "ddpm-lib-tests/not-a-real-dataset"


def assert_unavailable_fast(reason_text):
    t = time.perf_counter()
    with pytest.raises(data.DatasetUnavailable) as err:
        data.load(MISSING)
    assert time.perf_counter() - t < 5
    msg = str(err.value)
    for offline in ("toy2d:moons", "gmm", "digits", "shapes", "unreachable", reason_text):
        assert offline in msg, msg
    assert isinstance(err.value, RuntimeError)


def closed_port():
    """A localhost port with nothing listening: bound, never listened on, so connects are refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


@pytest.fixture
def no_offline_env(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)


def test_offline_env_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_unavailable_fast("HF_HUB_OFFLINE")


def test_failed_probe_fails_fast(monkeypatch, no_offline_env):
    import datasets.config

    sock, port = closed_port()
    monkeypatch.setattr(data.hub, "_probe_address", lambda: ("127.0.0.1", port))
    before = datasets.config.HF_HUB_OFFLINE
    try:
        assert data.hub_unreachable_reason() is not None
        assert_unavailable_fast(f"127.0.0.1:{port}")
    finally:
        sock.close()
    assert datasets.config.HF_HUB_OFFLINE == before  # offline mode is switched back afterwards


def test_unreachable_hub_switches_datasets_offline(monkeypatch, no_offline_env):
    """With the probe failing, load_dataset runs in offline mode (cache only, no requests, so no
    retries), and the flags are restored afterwards. A stand-in load_dataset records them."""
    import datasets
    import huggingface_hub.constants as hc

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    sock, port = closed_port()
    monkeypatch.setattr(data.hub, "_probe_address", lambda: ("127.0.0.1", port))
    seen = []

    def cache_only(name, split):
        seen.append((datasets.config.HF_HUB_OFFLINE, hc.HF_HUB_OFFLINE))
        raise ConnectionError("offline and not cached")

    monkeypatch.setattr(datasets, "load_dataset", cache_only)
    try:
        with pytest.raises(data.DatasetUnavailable):
            data.load(MISSING)
    finally:
        sock.close()
    assert seen == [(True, True)]
    assert (datasets.config.HF_HUB_OFFLINE, hc.HF_HUB_OFFLINE) == (False, False)


def test_offline_hub_id_loads_from_the_cache(monkeypatch):
    """Offline, a Hub id already in the datasets cache still loads (stand-in: the cache holds an
    MNIST-shaped dataset), through the column mapping of HUB_COLUMNS."""
    import datasets

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cached, images, labels = mnist_like(np.random.default_rng(3), 8)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: cached)
    d = fresh("ylecun/mnist", n=6, image_size=14)
    assert d.x.shape == (6, 1, 14, 14) and d.y.tolist() == labels[:6] and d.meta["source"] == "hub:ylecun/mnist"
    assert d.classes == [str(k) for k in range(10)]
    data._memo.cache_clear()


def test_probe_sees_a_listening_host(monkeypatch, no_offline_env):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    monkeypatch.setattr(data.hub, "_probe_address", lambda: ("127.0.0.1", server.getsockname()[1]))
    try:
        assert data.hub_unreachable_reason() is None
    finally:
        server.close()


def test_probe_is_bounded_when_the_resolver_hangs(monkeypatch, no_offline_env):
    def stuck(*args, **kw):
        time.sleep(2)
        raise OSError("never answered")

    monkeypatch.setattr(data.hub, "_probe_address", lambda: ("127.0.0.1", 9))
    monkeypatch.setattr(socket, "create_connection", stuck)
    t = time.perf_counter()
    reason = data.hub_unreachable_reason(timeout=0.3)
    assert time.perf_counter() - t < 1 and "within 0.3 s" in reason


def test_probe_address_follows_hf_endpoint(monkeypatch, no_offline_env):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    assert data._probe_address() == ("127.0.0.1", 9)
    monkeypatch.delenv("HF_ENDPOINT")
    assert data._probe_address() == ("huggingface.co", 443)


# --------------------------------------------------------------------------------------------
# errors and the container
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, must_mention", [
    ("toy2d:spiral", "moons"), ("gmm:blob", "example"), ("shape", "<hub id>"), ("digit", "digits"),
    ("not a name!", "toy2d:<name>"), ("/no/such/directory", "<local path>")])
def test_unknown_names(name, must_mention):
    with pytest.raises(ValueError, match=re.escape(must_mention)):
        data.load(name)


def test_bad_arguments():
    with pytest.raises(ValueError, match="train, test"):
        data.load("digits", split="validation")
    for size in (4, 65):
        with pytest.raises(ValueError, match="8..64"):
            data.load("shapes", image_size=size, n=4)
    with pytest.raises(ValueError, match="image_size"):
        data.load("toy2d:moons", image_size=16)
    with pytest.raises(ValueError, match="1437"):
        data.load("digits", n=5000)
    with pytest.raises(ValueError, match="objects"):
        data.load("shapes", n=4, objects=3)
    with pytest.raises(ValueError, match="colour"):
        data.load("shapes", n=4, label="mood")
    with pytest.raises(ValueError, match="bilinear, nearest"):
        data.load("digits", image_size=16, resize="cubic")


def test_names():
    assert set(data.OFFLINE) <= set(data.names())
    assert {"toy2d:moons", "toy2d:checkerboard", "gmm", "digits", "shapes"} <= set(data.OFFLINE)
    assert "mnist" in data.names() and "mnist" not in data.names(hub=False)


def test_data_container():
    d = data.load("shapes", n=50, image_size=8)
    assert data.load("shapes", n=50, image_size=8) is d  # memoised
    sub = d.subset([3, 1, 4])
    assert len(sub) == 3 and sub.captions == [d.captions[i] for i in (3, 1, 4)]
    assert torch.equal(sub.attrs["colour"], d.attrs["colour"][[3, 1, 4]]) and torch.equal(sub.x[1], d.x[1])
    mask = d.y == 0
    assert len(d.subset(mask)) == int(mask.sum()) and (d.subset(mask).y == 0).all()
    batches = list(d.batches(16, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [16, 16, 16]  # drop_last
    seen = torch.cat([b.x for b in batches])
    assert len({tuple(v.flatten().tolist()) for v in seen}) == 48  # no scene twice in an epoch
    assert [len(b) for b in d.batches(16, shuffle=False, drop_last=False)] == [16, 16, 16, 2]
    assert torch.equal(next(d.batches(5, shuffle=False)).x, d.x[:5])
    with pytest.raises(ValueError):
        data.Data("bad", torch.zeros(3, 2), y=torch.zeros(2, dtype=torch.long))


# --------------------------------------------------------------------------------------------
# the registry
# --------------------------------------------------------------------------------------------
def test_registering_a_dataset_makes_load_find_it():
    """A new dataset is one loader and one ``register`` call: ``load`` dispatches to it (memo
    included), ``names()`` and the unknown-name error list it, and ``unregister`` takes it back."""
    calls = []

    def spiral(name, split, image_size, n, seed):
        calls.append((name, split, image_size, n, seed))
        t = torch.rand(n or 100, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 4 * math.pi
        return data.Data(name, (torch.stack([t * t.cos(), t * t.sin()], 1) / 10).float())

    data.register("test_spiral", spiral)
    data.register("test_rings", lambda name, split, image_size, n, seed: data.Data(name, torch.zeros(n or 4, 2)),
                  variants=("two", "three"))
    try:
        d = data.load("test_spiral", n=50, seed=3)
        assert d.x.shape == (50, 2) and d.name == "test_spiral" and calls == [("test_spiral", "train", None, 50, 3)]
        assert data.load("test_spiral", n=50, seed=3) is d and len(calls) == 1  # memoised like the built-ins
        assert data.load("test_rings:two").name == "test_rings:two"
        assert data.names(hub=False)[-3:] == ["test_spiral", "test_rings:two", "test_rings:three"]
        with pytest.raises(ValueError, match=r"shapes, test_spiral, test_rings:two.*'test_rings:<name>' \(two, three\)"):
            data.load("no such dataset!")
        with pytest.raises(ValueError, match="already registered"):
            data.register("shapes", spiral)
        with pytest.raises(TypeError):
            data.load("test_spiral", n=5, colour="red")  # a loader checks its own options
    finally:
        data.unregister("test_spiral")
        data.unregister("test_rings")
    assert "test_spiral" not in data.names() and data.names(hub=False)[-1] == "shapes"
    with pytest.raises(ValueError) as err:
        data.load("no such dataset!")
    assert "test_" not in str(err.value)
    with pytest.raises(data.DatasetUnavailable):  # no longer registered, nor memoised: a Hub id, offline
        data.load("test_spiral", n=50, seed=3)


def test_the_toy_data_sets_import_no_diffusion_math():
    """A data set is below the diffusion: the toys' mixtures (``oracle``) are closed-form torch,
    so importing them loads neither ``diffusion`` nor ``schedules``."""
    import subprocess
    import sys

    code = ("import sys, ddpm_lib.data.toys; "
            "print(sorted(m for m in sys.modules if m in ('ddpm_lib.diffusion', 'ddpm_lib.schedules')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
