"""Feature networks: the network (seeded by its config), the shift augmentation (randomness from the
batch), training through the weights cache, and what the trained extractors score."""
import dataclasses
import time

import pytest
import torch

from ddpm_lib import data, features as FT, metrics as M, train as TR
from ddpm_lib.nets.features import FeatureNet, FeatureNetConfig


# --------------------------------------------------------------------------------------------
# The network and the objective
# --------------------------------------------------------------------------------------------
def test_feature_net_init_depends_on_its_config_only():
    cfg = FeatureNetConfig(channels=3, image_size=16, heads=(("shape", 3), ("colour", 8)))
    torch.manual_seed(0)
    a = FeatureNet(cfg)
    torch.manual_seed(123)
    b = FeatureNet(cfg)
    assert torch.equal(torch.get_rng_state(), torch.random.manual_seed(123).get_state())  # left untouched
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    c = FeatureNet(dataclasses.replace(cfg, heads=(("shape", 3), ("colour", 7))))
    assert not torch.equal(a.body[0].weight, c.body[0].weight)  # another config, another draw
    out = a(torch.zeros(2, 3, 16, 16))
    assert list(out) == ["shape", "colour"] and out["colour"].shape == (2, 8)
    assert a.features(torch.zeros(2, 3, 16, 16)).shape == (2, 128)
    with pytest.raises(ValueError, match="heads"):
        FeatureNetConfig(channels=1, image_size=16, heads=())


def _batch(x, step=0, seed=0):
    g = torch.Generator().manual_seed(TR._step_seed(seed, step))
    return TR.Batch(x=x, y=None, extras={}, step=step, rows=slice(0, len(x)), global_size=len(x), generator=g)


def test_random_shift_translates_each_image_and_draws_from_the_batch():
    x = torch.randn(64, 2, 6, 7)
    s = 1
    pad = torch.nn.functional.pad(x, (s,) * 4, mode="replicate")
    rng = torch.get_rng_state()
    out = FT.random_shift(x, s, _batch(x))
    assert torch.equal(torch.get_rng_state(), rng)  # torch's global RNG is never used
    offsets = []
    for i in range(len(x)):  # every image is one crop of its padded self
        hits = [(dy, dx) for dy in range(3) for dx in range(3) if torch.equal(out[i], pad[i, :, dy:dy + 6, dx:dx + 7])]
        assert hits, i
        offsets.append(hits[0])
    assert len(set(offsets)) == 9  # all nine offsets occur in 64 images
    assert torch.equal(out, FT.random_shift(x, s, _batch(x)))  # a pure function of (seed, step)
    assert not torch.equal(out, FT.random_shift(x, s, _batch(x, step=1)))
    assert FT.random_shift(x, 0, _batch(x)) is x


def test_feature_objective_config_names_the_shift():
    assert FT.FeatureObjective(2).config() == {"objective": "classifier", "shift": 2}
    assert FT.FeatureObjective(0).config() != FT.FeatureObjective(1).config()


# --------------------------------------------------------------------------------------------
# By name, trained through the weights cache
# --------------------------------------------------------------------------------------------
def test_unknown_extractor_and_missing_inception(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="digits"):
        FT.get_extractor("imagenet")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty hub cache: no weights anywhere
    with pytest.raises(RuntimeError, match="in-domain"):
        FT.get_extractor("inception")
    assert not any(tmp_path.rglob("*.pth"))  # nothing was downloaded


def test_cache_key_follows_recipe_and_size(monkeypatch, tmp_path):
    """Train a tiny recipe once; an equal recipe loads, a changed recipe or size is not cached."""
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path))
    tiny = dataclasses.replace(FT.RECIPES["digits"], train_images=256, warmup_images=0, n_train=200, n_test=100)
    first = FT.get_extractor("digits", image_size=8, recipe=tiny, progress=False, threads=1)
    assert first.trained_now
    assert not FT.get_extractor("digits", image_size=8, recipe=dataclasses.replace(tiny), train=False).trained_now
    # train_images= is the recipe with that budget: the same cached run, and another budget misses
    longer = dataclasses.replace(tiny, train_images=999)
    assert not FT.get_extractor("digits", image_size=8, recipe=longer, train_images=256, train=False).trained_now
    with pytest.raises(FileNotFoundError, match="load_only"):
        FT.get_extractor("digits", image_size=8, recipe=tiny, train_images=320, train=False)
    for recipe, size in [(dataclasses.replace(tiny, train_images=320), 8), (dataclasses.replace(tiny, shift=0), 8),
                         (dataclasses.replace(tiny, n_test=50), 8), (tiny, 12)]:
        with pytest.raises(FileNotFoundError, match="load_only"):
            FT.get_extractor("digits", image_size=size, recipe=recipe, train=False)
    assert all(str(p).startswith(str(tmp_path)) for p in (tmp_path / "runs").glob("features-digits8-*"))


@pytest.fixture(scope="module")
def digits_net(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        cache_dir = tmp_path_factory.mktemp("cache")
        mp.setenv("DDPM_CACHE", str(cache_dir))
        threads = torch.get_num_threads()
        t0 = time.perf_counter()
        # one thread: about 1.5x slower than two on an idle 2-core CPU, but many times faster when
        # other processes share the cores (oversubscribed threads stall each other)
        with TR.RunLog() as log:  # both calls: the second one loads the first one's run
            first = FT.get_extractor("digits", image_size=16, progress=False, threads=1)
            t_first = time.perf_counter() - t0
            assert torch.get_num_threads() == threads  # restored after training
            t0 = time.perf_counter()
            second = FT.get_extractor("digits", image_size=16, train=False, progress=False)
            t_second = time.perf_counter() - t0
        yield dict(first=first, second=second, t_first=t_first, t_second=t_second, cache=cache_dir,
                   history=dict(log.entries[-1]))


def test_digits_net_trains_fast_reaches_accuracy_and_is_cached(digits_net):
    first, second = digits_net["first"], digits_net["second"]
    assert first.trained_now and not second.trained_now
    assert digits_net["t_first"] < 60, f"training took {digits_net['t_first']:.1f} s"
    assert digits_net["t_second"] < 1.0, f"loading took {digits_net['t_second']:.2f} s"
    assert first.accuracy > 0.98 and second.accuracy == first.accuracy
    assert first.heads == ["class"] and first.label_head == "class"
    assert second.meta == first.meta and first.meta["n_train"] == 1437 and first.meta["n_test"] == 360
    assert first.meta["train_seconds"] > 0 and first.meta["classes"] == [str(i) for i in range(10)]
    x = torch.rand(7, 1, 16, 16) * 2 - 1
    f1, f2 = first.features(x), second.features(x)
    assert f1.shape == (7, FT.RECIPES["digits"].feature_dim) and f1.dtype == torch.float64
    assert torch.equal(f1, f2)
    assert first.predict(x).shape == (7, 10)
    assert first.features(torch.rand(3, 1, 8, 8)).shape == (3, 128)  # resized to 16x16


def test_digits_net_weights_are_the_train_cache_ema(digits_net):
    """The extractor's network is the EMA of a ``train_cached`` run: the second call asked for the same
    model (one entry on the run card, trained in this process; ``second`` did not train)."""
    entry = digits_net["history"]
    assert entry["name"] == "features-digits16" and entry["calls"] == 2 and not entry["loaded"]
    (run,) = (digits_net["cache"] / "runs").glob("features-digits16-*")
    net = FeatureNet(digits_net["second"].net.cfg)
    TR.load_weights(run / TR.CKPT, net, "ema")
    for k, v in net.state_dict().items():
        assert torch.equal(v, digits_net["second"].net.state_dict()[k].cpu()), k


def test_digits_net_scores_conditional_samples_and_sample_sets(digits_net):
    net = digits_net["first"]
    test = data.load("digits", "test", image_size=16)
    assert M.conditional_accuracy(net, test.x, test.y) > 0.98
    shuffled = test.y[torch.randperm(len(test.y), generator=torch.Generator().manual_seed(0))]
    assert M.conditional_accuracy(net, test.x, shuffled) < 0.25  # chance is 0.1
    train = data.load("digits", "train", image_size=16)
    real, ref = train.x[:360], test.x
    dropped = train.x[360:][train.y[360:] < 5][:360]  # only the digits 0-4
    good = M.evaluate(net, real, train.x[-360:], real_ref=ref, kid_subsets=10, kid_subset_size=300)
    half = M.evaluate(net, real, dropped, real_ref=ref, kid_subsets=10, kid_subset_size=300)
    uniform = torch.rand(360, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noise = M.evaluate(net, real, uniform, kid_subsets=10, kid_subset_size=300)
    assert good.fd < 2 * good.fd_floor and half.fd > 2 * good.fd
    assert half.recall < good.recall - 0.2
    assert noise.precision < 0.05 and noise.fd > 10 * good.fd
    assert good.isc > 7 > half.isc  # IS analogue: about the number of classes present


def test_shapes_net_reads_every_attribute(monkeypatch, tmp_path):
    """A tiny recipe (fewer images than RECIPES['shapes']) and lower bounds."""
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path))
    recipe = dataclasses.replace(FT.RECIPES["shapes"], n_train=3000, n_test=500, train_images=9000)
    net = FT.get_extractor("shapes", image_size=16, recipe=recipe, progress=False, threads=1)
    assert set(net.heads) == {"shape", "colour", "size", "position", "background"}
    assert net.label_head == "shape"
    assert net.accuracies["colour"] > 0.9 and net.accuracies["background"] > 0.9 and net.accuracy > 0.8
    assert net.meta["attr_values"]["colour"][0] == data.ATTRIBUTES["colour"][0]
    test = data.load("shapes", "test", image_size=16, n=500)
    acc = M.attribute_accuracy(net, test.x, test.attrs)
    assert acc["colour"] > 0.9 and acc["all"] > 0.5
    assert acc == pytest.approx({**net.accuracies, "all": acc["all"]})  # the accuracy in meta is this one
    g = torch.Generator().manual_seed(0)
    wrong = {k: v[torch.randperm(len(v), generator=g)] for k, v in test.attrs.items()}
    assert M.attribute_accuracy(net, test.x, wrong)["all"] < 0.05
    assert M.conditional_accuracy(net, test.x, test.y) == pytest.approx(acc["shape"])
    with pytest.raises(ValueError, match="colour"):
        M.attribute_accuracy(net, test.x, {"texture": test.y})
