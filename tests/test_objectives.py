"""Objectives: conditioning and its dropout, extras reaching the batch, the target-network hook
(resumable bit-exact), and that train stays infrastructure only."""
import ast
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from ddpm_lib import diffusion as D
from ddpm_lib import objectives as OBJ
from ddpm_lib import schedules as S
from ddpm_lib import train as TR

ROOT = Path(__file__).resolve().parents[1]


def test_train_imports_no_diffusion_and_no_networks():
    tree = ast.parse((ROOT / "ddpm_lib" / "train.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    for banned in ("diffusion", "nets", "schedules", "sampling", "objectives"):
        assert not any(banned in m for m in imported), (banned, imported)


class Recorder(nn.Module):
    """A denoiser that records the keyword arguments it was called with."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.seen = []

    def forward(self, x, t, **cond):
        self.seen.append({k: v.clone() for k, v in cond.items()})
        return self.lin(x)


def test_conditions_reach_the_net_and_drop_at_their_rates():
    n = 4000
    x = torch.randn(n, 2)
    y = torch.randint(0, 5, (n,))
    tokens = torch.randint(1, 20, (n, 6))
    embed = torch.randn(n, 3) + 5
    diff = D.Diffusion(S.linear(10), "eps", "fixed_small")
    obj = OBJ.DiffusionObjective(diff, D.loss_simple, conds=[
        OBJ.Cond("y", "y", 0.1), OBJ.Cond("tokens", "tokens", 0.5, OBJ.null_tokens),
        OBJ.Cond("embed", "embed", 0.2, OBJ.null_embedding)])
    net = Recorder()
    cfg = TR.TrainConfig(train_images=n, batch_size=n, lr=1e-3)
    TR.train(net, obj, (x, y, {"tokens": tokens, "embed": embed}), cfg, progress=False)
    seen = net.seen[0]
    assert set(seen) == {"y", "tokens", "embed"}
    drop_y = (seen["y"] == -1).float().mean().item()
    drop_tok = (seen["tokens"] == 0).all(1).float().mean().item()
    drop_emb = (seen["embed"] == 0).all(1).float().mean().item()
    for got, want in ((drop_y, 0.1), (drop_tok, 0.5), (drop_emb, 0.2)):
        assert abs(got - want) < 4 * (want * (1 - want) / n) ** 0.5, (got, want)
    # independent draws: both caption and embedding dropped on about 0.5 * 0.2 of the rows
    both = ((seen["tokens"] == 0).all(1) & (seen["embed"] == 0).all(1)).float().mean().item()
    assert abs(both - 0.1) < 0.02
    # kept rows are the batch's own rows, unchanged (the batch is a permutation of the data)
    kept = seen["y"] != -1
    assert set(seen["y"][kept].tolist()) <= set(range(5))
    assert "conds" in obj.config() and obj.config()["conds"][1]["null"] == "null_tokens"


def test_missing_condition_names_the_extras():
    diff = D.Diffusion(S.linear(10), "eps", "fixed_small")
    obj = OBJ.DiffusionObjective(diff, conds=[OBJ.Cond("tokens", "tokens")])
    cfg = TR.TrainConfig(train_images=8, batch_size=8)
    with pytest.raises(KeyError, match="extras"):
        TR.train(Recorder(), obj, (torch.randn(8, 2), None, {"embed": torch.randn(8, 3)}), cfg, progress=False)
    with pytest.raises(ValueError, match="one row per example"):
        TR.train(Recorder(), obj, (torch.randn(8, 2), None, {"tokens": torch.zeros(7, 3)}), cfg, progress=False)


def test_class_cond_shorthand_keeps_the_old_cache_key():
    diff = D.Diffusion(S.linear(10), "eps", "fixed_small")
    cfg = OBJ.DiffusionObjective(diff, "simple", class_cond=True, p_uncond=0.1).config()
    assert "conds" not in cfg and cfg["class_cond"] and cfg["p_uncond"] == 0.1
    assert OBJ.DiffusionObjective(diff, D.loss_simple).config() == OBJ.DiffusionObjective(diff, "simple").config()


class TargetToy(OBJ.TargetObjective):
    """Regress net(x) onto the target's output plus one (a fixed point chase, like CT's)."""

    def __init__(self, mu):
        self.target = OBJ.TargetNetwork(mu)

    def config(self):
        return {"objective": "target_toy", **self.target.config()}

    def __call__(self, net, batch):
        with torch.no_grad():
            goal = self.target.net(batch.x) + 1
        return ((net(batch.x) - goal) ** 2).mean()


def _toy_run(tmp, steps, max_steps=None):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3))
    obj = TargetToy(0.9)
    x = torch.randn(64, 3, generator=torch.Generator().manual_seed(2))
    cfg = TR.TrainConfig(train_images=steps * 16, batch_size=16, lr=1e-2, ema_decay=0.5)
    res = TR.train(net, obj, x, cfg, run_dir=tmp, progress=False, max_steps=max_steps)
    return res, obj


def test_target_network_follows_its_ema_and_resumes_bit_exact(tmp_path):
    whole, obj_a = _toy_run(tmp_path / "a", 12)
    _toy_run(tmp_path / "b", 12, max_steps=5)  # killed after 5 steps
    resumed, obj_b = _toy_run(tmp_path / "b", 12)
    assert resumed.resumed_from == 5
    for (k, a), b in zip(obj_a.target.net.state_dict().items(), obj_b.target.net.state_dict().values()):
        assert torch.equal(a, b), k
    for a, b in zip(whole.net.parameters(), resumed.net.parameters()):
        assert torch.equal(a, b)
    # the target is neither the online net nor train's evaluation EMA (decay 0.5 vs mu 0.9)
    t = obj_a.target.net[0].weight
    assert not torch.equal(t, whole.net[0].weight) and not torch.allclose(t, whole.ema[0].weight)


def test_stopgrad_target_equals_the_online_net_after_each_step(tmp_path):
    net = nn.Linear(3, 3)
    obj = TargetToy(0.0)
    cfg = TR.TrainConfig(train_images=4 * 8, batch_size=8, lr=1e-2)
    res = TR.train(net, obj, torch.randn(32, 3), cfg, progress=False)
    assert torch.equal(obj.target.net.weight, res.net.weight)


def test_noisy_classifier_and_classifier_objectives_learn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (512,), generator=g)
    x = (y.float() * 2 - 1)[:, None] * 0.8 + 0.1 * torch.randn(512, 2, generator=g)

    class Clf(nn.Module):
        def __init__(self):
            super().__init__()
            self.l = nn.Sequential(nn.Linear(3, 32), nn.SiLU(), nn.Linear(32, 2))

        def forward(self, x, t=None):
            t = torch.zeros(len(x)) if t is None else t
            return self.l(torch.cat([x, t[:, None] / 50], 1))

    diff = D.Diffusion(S.linear(50), "eps", "fixed_small")
    cfg = TR.TrainConfig(train_images=300 * 64, batch_size=64, lr=3e-3)
    res = TR.train(Clf(), OBJ.NoisyClassifierObjective(diff), (x, y), cfg, progress=False)
    net = res.ema
    with torch.no_grad():
        acc = lambda t: (net(x, torch.full((512,), float(t))).argmax(1) == y).float().mean().item()  # noqa: E731
        assert acc(0) > 0.97
        assert acc(0) > acc(49) - 0.02  # no better at pure noise than on clean data
    res2 = TR.train(Clf(), OBJ.ClassifierObjective(), (x, y), TR.TrainConfig(train_images=100 * 64, lr=3e-3),
                    progress=False)
    assert res2.log[-1]["acc"] > 0.95


def test_text_image_loss_weights_each_modality_by_its_own_mean():
    """DALL-E: 1/8 of the text positions' mean CE plus 7/8 of the image positions' mean CE."""
    from ddpm_lib.text import positional_padding

    class Fixed(nn.Module):  # logits that make position i's CE a known function of i
        def forward(self, idx):
            logits = torch.zeros(*idx.shape, 6)
            logits[..., 0] = torch.arange(idx.shape[1]).float()  # token 0 grows likelier along the sequence
            return logits

    x = torch.zeros(2, 5, dtype=torch.long)
    batch = TR.Batch(x=x, y=None, extras={}, step=0, rows=slice(0, 2), global_size=2, generator=torch.Generator())
    loss, logs = OBJ.TextImageObjective(text_len=2, text_weight=1 / 8)(Fixed(), batch)
    ce = -torch.log_softmax(Fixed()(x)[0], -1)[:, 0]
    assert torch.isclose(logs["text_ce"], ce[:2].mean()) and torch.isclose(logs["image_ce"], ce[2:].mean())
    assert torch.isclose(loss, ce[:2].mean() / 8 + 7 * ce[2:].mean() / 8)
    with pytest.raises(ValueError, match="text_weight"):
        OBJ.TextImageObjective(2, 1.5)
    tok = torch.tensor([[5, 6, 0, 0], [7, 0, 0, 0]])
    assert positional_padding(tok, 0, 100).tolist() == [[5, 6, 102, 103], [7, 101, 102, 103]]
