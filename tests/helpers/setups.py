"""Small, fast training set-ups shared by the training tests and their worker process."""
import time

import torch
import torch.nn as nn

from ddpm_lib import diffusion as D
from ddpm_lib import schedules as S
from ddpm_lib import objectives as OBJ
from ddpm_lib import train as TR


class TinyDenoiser(nn.Module):
    """A 2-D time-conditioned MLP with dropout (so that the RNG handling is exercised)."""

    def __init__(self, dropout=0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 + 16, 64), nn.SiLU(), nn.Dropout(dropout), nn.Linear(64, 4))

    def forward(self, x, t):
        freqs = torch.arange(8, dtype=torch.float32) / 8
        emb = torch.cat([torch.sin(t[:, None] / 100 * 10**freqs), torch.cos(t[:, None] / 100 * 10**freqs)], 1)
        return self.net(torch.cat([x, emb], 1))


class SlowObjective(OBJ.DiffusionObjective):
    def __init__(self, *a, slow=0.0, **k):
        super().__init__(*a, **k)
        self.slow = slow

    def __call__(self, net, batch):
        if self.slow:
            time.sleep(self.slow)
        return super().__call__(net, batch)


def make_run(steps, ckpt_every=0, slow=0.0, dropout=0.1, t_sampler="importance", loss="hybrid", batch_size=64):
    torch.manual_seed(0)
    net = TinyDenoiser(dropout)
    diff = D.Diffusion(S.cosine(25), "eps", "learned_range", clip_denoised=False)
    loss_fn = SlowObjective(diff, loss, t_sampler, slow=slow)
    data = torch.randn(200, 2, generator=torch.Generator().manual_seed(1)) * 0.5
    cfg = TR.TrainConfig(train_images=steps * batch_size, batch_size=batch_size, lr=1e-3, warmup_images=64,
                         ema_decay=0.99, checkpoint_every_images=ckpt_every * batch_size, log_every=5)
    return net, loss_fn, data, cfg


def same_weights(a: dict, b: dict) -> None:
    """Two state dicts hold bit-identical tensors under the same names."""
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
