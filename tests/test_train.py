"""The training loop: exact resume, a real kill, DDP equivalence, NaN stop, the weights cache, and a
short run whose samples must land within a stated distance of the data."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddpm_lib import cache
from ddpm_lib import diffusion as D
from ddpm_lib import oracle as O
from ddpm_lib import sampling as smp
from ddpm_lib import schedules as S
from ddpm_lib import objectives as OBJ
from ddpm_lib import train as TR
from ddpm_lib.nets import as_model
from ddpm_lib.nets import unet as U
from tests.helpers.setups import make_run, same_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DDPM_CACHE", str(tmp_path / "cache"))


_same = same_weights


def test_batches_are_deterministic_epoch_permutations():
    idx = torch.cat([TR.batch_indices(s, 32, 100, seed=3) for s in range(25)])  # 8 epochs
    for e in range(7):
        assert sorted(idx[e * 100:(e + 1) * 100].tolist()) == list(range(100))  # each epoch sees every row once
    assert torch.equal(TR.batch_indices(7, 32, 100, 3), TR.batch_indices(7, 32, 100, 3))
    assert not torch.equal(TR.batch_indices(7, 32, 100, 3), TR.batch_indices(7, 32, 100, 4))


def test_resume_is_exact(tmp_path):
    """20 steps straight == 10 steps, a new process state, and 10 more (weights, EMA, sampler history)."""
    net, loss_fn, data, cfg = make_run(20, ckpt_every=10)
    straight = TR.train(net, loss_fn, data, cfg, run_dir=tmp_path / "a", progress=False)
    net, loss_fn, data, cfg = make_run(20, ckpt_every=10)
    first = TR.train(net, loss_fn, data, cfg, run_dir=tmp_path / "b", progress=False, max_steps=10)
    assert first.steps == 10
    torch.manual_seed(12345)  # disturb the global RNG: resume must not depend on it
    net, loss_fn, data, cfg = make_run(20, ckpt_every=10)  # fresh objects, as after a restart
    resumed = TR.train(net, loss_fn, data, cfg, run_dir=tmp_path / "b", progress=False)
    assert resumed.resumed_from == 10 and resumed.steps == 20
    _same(straight.net.state_dict(), resumed.net.state_dict())
    _same(straight.ema.state_dict(), resumed.ema.state_dict())
    assert loss_fn.sampler.warmed_up()  # the importance sampler's history came back with the checkpoint
    assert [r["step"] for r in resumed.log] == [5, 10, 15, 20]
    assert [r["loss"] for r in resumed.log] == [r["loss"] for r in straight.log]


def test_killed_process_resumes_exactly(tmp_path):
    run = tmp_path / "killed"
    worker = [sys.executable, str(ROOT / "tests/helpers/train_worker.py"), "--run-dir", str(run), "--steps", "40",
              "--ckpt-every", "5", "--slow", "0.05"]
    proc = subprocess.Popen(worker, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 60
    while time.time() < deadline and not cache.exists(run / TR.CKPT):
        time.sleep(0.05)
    time.sleep(0.4)  # somewhere between checkpoints
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, meta = cache.load_tensors(run / TR.CKPT)
    assert 5 <= meta["step"] < 40, "the worker should have been killed mid-run"
    net, loss_fn, data, cfg = make_run(40, ckpt_every=5)
    resumed = TR.train(net, loss_fn, data, cfg, run_dir=run, config_key="worker", progress=False)
    net, loss_fn, data, cfg = make_run(40, ckpt_every=5)
    straight = TR.train(net, loss_fn, data, cfg, run_dir=tmp_path / "straight", config_key="worker", progress=False)
    assert resumed.resumed_from == meta["step"]
    _same(straight.net.state_dict(), resumed.net.state_dict())


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    """torchrun with 2 CPU processes (gloo), 32 rows each == 1 process with the global batch of 64.

    Without dropout (whose masks are per rank by design) the runs agree to float tolerance: same
    batches, same noise levels and eps (drawn for the global batch from a shared generator), the same
    importance-sampler history (gathered over ranks) and gradients averaged by DDP."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    base = [str(ROOT / "tests/helpers/train_worker.py"), "--steps", "15", "--dropout", "0"]
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
                    *base, "--run-dir", str(tmp_path / "ddp"), "--out", str(tmp_path / "ddp.safetensors")],
                   cwd=ROOT, env=env, check=True, timeout=120, capture_output=True)
    subprocess.run([sys.executable, *base, "--run-dir", str(tmp_path / "one"), "--out", str(tmp_path / "one.safetensors")],
                   cwd=ROOT, env=env, check=True, timeout=120)
    a, b = load_file(tmp_path / "ddp.safetensors"), load_file(tmp_path / "one.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-5, rtol=1e-4), (k, (a[k] - b[k]).abs().max())
    # and they did train: weights moved away from the initialisation
    torch.manual_seed(0)
    init = make_run(15, dropout=0.0)[0].state_dict()
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-3


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    net, loss_fn, data, cfg = make_run(20, ckpt_every=5)

    def poisoned(model, batch):
        loss, logs, per = loss_fn(model, batch)
        return (loss * float("nan") if batch.step == 7 else loss), logs, per

    with pytest.raises(FloatingPointError, match="step 7.*last good checkpoint"):
        TR.train(net, poisoned, data, cfg, run_dir=tmp_path, progress=False)
    tensors, meta = cache.load_tensors(tmp_path / TR.CKPT)
    assert meta["step"] == 5 and all(torch.isfinite(v).all() for v in tensors.values())


def test_finished_run_loads_instead_of_training(tmp_path):
    net, loss_fn, data, cfg = make_run(10)
    first = TR.train(net, loss_fn, data, cfg, run_dir=tmp_path, config_key="k1", progress=False)
    assert not first.loaded and first.wall_s > 0
    net2, loss_fn, data, cfg = make_run(10)
    t0 = time.time()
    second = TR.train(net2, loss_fn, data, cfg, run_dir=tmp_path, config_key="k1", progress=False)
    assert second.loaded and time.time() - t0 < 2
    _same(first.ema.state_dict(), second.ema.state_dict())
    with pytest.raises(ValueError, match="another configuration"):
        TR.train(make_run(10)[0], loss_fn, data, cfg, run_dir=tmp_path, config_key="k2", progress=False)


def test_load_only_never_trains():
    net, loss_fn, data, cfg = make_run(6)
    with pytest.raises(FileNotFoundError, match="load_only"):
        TR.train_cached("lo", net, loss_fn, data, cfg, load_only=True, progress=False)
    part = TR.train_cached("lo", net, loss_fn, data, cfg, progress=False, max_steps=3)  # unfinished
    assert part.steps == 3
    with pytest.raises(FileNotFoundError, match="load_only"):
        TR.train_cached("lo", make_run(6)[0], loss_fn, data, cfg, load_only=True, progress=False)
    done = TR.train_cached("lo", make_run(6)[0], loss_fn, data, cfg, progress=False)
    again = TR.train_cached("lo", make_run(6)[0], loss_fn, data, cfg, load_only=True, progress=False)
    assert not done.loaded and again.loaded
    _same(done.ema.state_dict(), again.ema.state_dict())


def test_snapshots_are_kept_and_survive_a_cached_rerun(tmp_path):
    import dataclasses

    net, loss_fn, data, cfg = make_run(12)
    cfg = dataclasses.replace(cfg, snapshot_every_images=4 * cfg.batch_size)
    res = TR.train(net, loss_fn, data, cfg, run_dir=tmp_path, progress=False)
    assert list(res.snapshots) == [4 * 64, 8 * 64, 12 * 64]
    last = TR.load_weights(res.snapshots[12 * 64], make_run(12)[0], "ema")
    _same(last.state_dict(), res.ema.state_dict())
    first = TR.load_weights(res.snapshots[4 * 64], make_run(12)[0], "ema")
    assert not torch.equal(first.net[0].weight, last.net[0].weight)
    again = TR.train(make_run(12)[0], loss_fn, data, cfg, run_dir=tmp_path, progress=False)
    assert again.loaded and again.snapshots == res.snapshots


def test_run_dir_depends_on_every_part_of_the_configuration():
    diff = D.Diffusion(S.linear(100))
    base = dict(model=U.PRESETS["tiny8"], objective=OBJ.DiffusionObjective(diff).config(),
                train=TR.TrainConfig(), data=TR.fingerprint(torch.zeros(4, 2)))
    d0, _ = TR.run_dir_for("x", **base)
    assert TR.run_dir_for("x", **base)[0] == d0
    changes = [("model", U.preset("tiny8", dropout=0.1)), ("objective", OBJ.DiffusionObjective(diff, "hybrid").config()),
               ("train", TR.TrainConfig(lr=1e-4)), ("data", TR.fingerprint(torch.ones(4, 2)))]
    for key, val in changes:
        assert TR.run_dir_for("x", **{**base, key: val})[0] != d0, key


def _mmd(x, y, scales=(0.5, 1.0, 2.0)):
    """Biased RBF-kernel MMD^2 with a few bandwidths (relative to the data's scale)."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).pow(2)
    k = sum(torch.exp(-d2 / (2 * s**2)) for s in scales)
    n = len(x)
    return (k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()).item()


def test_small_unet_learns_a_mixture_within_mmd_bound(tmp_path):
    """A 16-dimensional Gaussian mixture shown to a UNet as 1x4x4 images, L_simple, a fixed budget.

    Bound: MMD^2(samples, data) < 3 x MMD^2(data, fresh data) + 0.01, where an untrained network
    scores above 0.2 (checked below, so the bound can fail)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    K, d = 4, 16
    means = torch.randn(K, d, generator=g) * 0.6
    gm = O.GaussianMixture(torch.ones(K), means, torch.full((K,), 0.05))
    data = gm.sample(4096, g)[0].float().reshape(-1, 1, 4, 4)
    cfg_net = U.UNetConfig(image_size=4, in_channels=1, out_channels=1, base_channels=32, channel_mult=(1, 2),
                           num_res_blocks=1, attention_resolutions=(), dropout=0.0, groups=8)
    diff = D.Diffusion(S.linear(200), "eps", "fixed_large", clip_denoised=False)
    cfg = TR.TrainConfig(train_images=300 * 128, batch_size=128, lr=3e-3, warmup_images=2000, ema_decay=0.99)
    t0 = time.time()
    res = TR.train(U.UNet(cfg_net), OBJ.DiffusionObjective(diff), data, cfg, progress=False)
    train_s = time.time() - t0
    ref = gm.sample(1000, g)[0].float()
    floor = _mmd(gm.sample(1000, g)[0].float(), ref)

    def score(net):
        xs = smp.ddim(as_model(net), diff.respace("ddim50"), smp.noise_like((1000, 1, 4, 4), g))
        return _mmd(xs.reshape(1000, -1).float(), ref)

    trained = score(res.ema)
    untrained = score(U.UNet(cfg_net))
    print(f"train {train_s:.1f}s  MMD^2 trained {trained:.4f} floor {floor:.4f} untrained {untrained:.4f}")
    assert untrained > 0.2
    assert trained < 3 * floor + 0.01
    assert train_s < 60


def test_mixed_precision_picks_bf16_only_where_the_gpu_has_it(monkeypatch):
    """Colab's free T4 has no bf16: training there must use fp16 with a gradient scaler, not bf16."""
    assert TR.amp_dtype("cpu") is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert TR.amp_dtype("cuda") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert TR.amp_dtype("cuda") == torch.bfloat16
    assert TR.amp_dtype("cuda", want=False) is None


def test_a_train_config_from_a_preset_takes_only_its_run_fields():
    import dataclasses

    from ddpm_lib import profiles

    @dataclasses.dataclass(frozen=True)
    class Preset:
        train_images: int = 640
        batch_size: int = 32
        lr: float = 1e-3
        ema_decay: float = 0.99
        betas: tuple = (0.0, 6.6)  # a chapter's loss weights: never the optimiser's
        width: int = 8

    cfg = TR.TrainConfig.from_preset(Preset(), seed=3, channels_last=True)
    assert (cfg.train_images, cfg.batch_size, cfg.lr, cfg.ema_decay, cfg.seed, cfg.channels_last) == \
        (640, 32, 1e-3, 0.99, 3, True)
    assert cfg.betas == TR.TrainConfig().betas and cfg.warmup_images == 0  # untouched defaults
    assert TR.TrainConfig.from_preset(Preset(), train_images=64).train_images == 64  # overrides win
    ddpm = profiles.get("02_ddpm", "cpu")
    assert TR.TrainConfig.from_preset(ddpm).lr == ddpm.lr
