"""ddpm_lib's DDPM CIFAR-10 UNet against diffusers' ``UNet2DModel`` configured as the same model, timed
side by side in one process.

    python benchmarks/unet_speed.py                  # CPU: fp32 eager, small batches, ratios
    python benchmarks/unet_speed.py --device cuda    # GPU: every configuration, MFU, peak memory
    python benchmarks/unet_speed.py --quick          # seconds: a code-path check (the tests run it)

Both networks are DDPM's 35.7M-parameter CIFAR-10 UNet (Ho et al. 2020: channels 128 x (1, 2, 2, 2),
two residual blocks per level, attention at 16x16, dropout 0.1); the script checks that the two
parameter counts agree within 0.5%. Timed, per configuration, with the configurations interleaved
round by round (so drift and contention hit all alike) and the best round kept:

* training: forward + backward + AdamW step on a batch (128 on a GPU), in images/s;
* one denoising step: a forward pass without gradients (batch 256 on a GPU), in images/s;
* a DDIM loop of ``--ddim-steps`` steps (100 on a GPU), each library's own sampler: ddpm_lib's
  ``sampling.ddim`` (its sampler state in float64) and diffusers' ``DDIMScheduler``, in images/s;
* peak memory (CUDA only) and the model FLOPs utilisation: the forward FLOPs per 32x32 image as
  ``ddpm_lib.nets.cost`` counts them (12.4 G; the counter ``ddpm_lib.budget`` sizes the gpu presets with),
  x3 for a training step, against the device's dense bf16 peak (``--peak-tflops``; H100 SXM 989,
  H200 989, A100 312, L4 121, T4 65 fp16).

Configurations: ``diffusers eager`` (as its training examples run it: bf16 autocast on a GPU) and
``diffusers compiled``; ``ddpm_lib eager`` and ``ddpm_lib best`` (bf16 autocast, channels_last, fused
AdamW, torch.compile; attention is SDPA, which picks flash attention on a GPU). On a CPU only the
eager fp32 configurations run (compilation does not pay there) and the ratios are the result.
Results go to ``--out`` as JSON (device, versions, date) and, with ``--markdown``, to a table that
the book's Performance page includes.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import ddpm_lib  # noqa: F401  (before torch: its OpenMP wait policy; a spinning benchmark crawls on shared cores)
import torch


def forward_gflops(net) -> float:
    """Forward GFLOPs per 32x32 image of ``net``, counted by the library's counter (``nets.cost``)."""
    from ddpm_lib import nets as N

    return N.cost(net, torch.zeros(2, 3, 32, 32), torch.zeros(2))["flops_per_example"] / 1e9


def ddpm_lib_model():
    from ddpm_lib.nets import unet as U

    return U.UNet(U.preset("ddpm_cifar10"))


def diffusers_model():
    """diffusers' UNet2DModel with google/ddpm-cifar10-32's configuration (DDPM's CIFAR-10 model)."""
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
                       block_out_channels=(128, 256, 256, 256),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                       dropout=0.1, norm_num_groups=32, flip_sin_to_cos=False, freq_shift=1)


def count(net) -> int:
    return sum(p.numel() for p in net.parameters())


class Runner:
    """One configuration: a network, how it is called, and its precision settings."""

    def __init__(self, name, net, call, device, amp=None, channels_last=False, compile=False, fused=False):
        self.name, self.device, self.amp = name, device, amp
        self.net = net.to(device)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.fwd = torch.compile(self.net) if compile else self.net
        self.call, self.channels_last = call, channels_last
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=1e-4, **({"fused": True} if fused else {}))

    def _x(self, x):
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None)

    def train_step(self, x, t):
        self.net.train()
        with self._autocast():
            out = self.call(self.fwd, self._x(x), t)
        loss = (out.float() - x).pow(2).mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def forward(self, x, t):
        self.net.eval()
        with self._autocast():
            return self.call(self.fwd, self._x(x), t)


def _ddpm_lib_call(net, x, t):
    return net(x, t.float())


def _diffusers_call(net, x, t):
    return net(x, t).sample


def ddim_ddpm_lib(runner, n, steps, device, seed=0):
    from ddpm_lib import diffusion as D, sampling as smp, schedules as S

    diff = D.Diffusion(S.linear(1000), "eps", "fixed_small").respace(f"ddim{steps}")
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g, device=device)
    model = lambda x_, t_: runner.forward(x_.float(), t_)  # noqa: E731  (the sampler keeps float64)
    return smp.ddim(model, diff, x, eta=0.0, generator=g)


def ddim_diffusers(runner, n, steps, device, seed=0):
    from diffusers import DDIMScheduler

    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    sched.set_timesteps(steps)
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g, device=device)
    for t in sched.timesteps:
        eps = runner.forward(x, t.to(device).expand(n)).float()
        x = sched.step(eps, t, x).prev_sample
    return x


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(device="cpu", train_batch=None, step_batch=None, ddim_batch=None, ddim_steps=None, rounds=3,
            warmup=1, peak_tflops=None, configs=None, progress=True) -> dict:
    device = torch.device(device)
    gpu = device.type == "cuda"
    train_batch = train_batch or (128 if gpu else 8)
    step_batch = step_batch or (256 if gpu else 16)
    ddim_batch = ddim_batch or (256 if gpu else 8)
    ddim_steps = ddim_steps or (100 if gpu else 10)
    bf16 = torch.bfloat16 if gpu and torch.cuda.is_bf16_supported() else (torch.float16 if gpu else None)
    torch.manual_seed(0)
    nets = {"ddpm_lib": ddpm_lib_model(), "diffusers": diffusers_model()}
    params = {k: count(v) for k, v in nets.items()}
    gflops = forward_gflops(nets["ddpm_lib"])
    if abs(params["ddpm_lib"] - params["diffusers"]) > 0.005 * params["ddpm_lib"]:
        raise RuntimeError(f"the two models differ in size: {params}")
    spec = {"diffusers eager": ("diffusers", dict(amp=bf16)),
            "ddpm_lib eager": ("ddpm_lib", dict(amp=bf16))}
    if gpu:
        spec["diffusers compiled"] = ("diffusers", dict(amp=bf16, compile=True))
        spec["ddpm_lib best"] = ("ddpm_lib", dict(amp=bf16, channels_last=True, compile=True, fused=True))
    if configs:
        unknown = sorted(set(configs) - set(spec))
        if unknown:
            raise ValueError(f"unknown configuration(s) {unknown}; valid choices on {device.type}: {list(spec)}")
        spec = {k: v for k, v in spec.items() if k in configs}
    import copy

    runners = {}
    for name, (lib, kw) in spec.items():
        call = _ddpm_lib_call if lib == "ddpm_lib" else _diffusers_call
        runners[name] = Runner(name, copy.deepcopy(nets[lib]), call, device, **kw)
    g = torch.Generator().manual_seed(0)
    xb = (torch.rand(train_batch, 3, 32, 32, generator=g) * 2 - 1).to(device)
    tb = torch.randint(0, 1000, (train_batch,), generator=g).to(device)
    xs = torch.randn(step_batch, 3, 32, 32, generator=g).to(device)
    ts = torch.randint(0, 1000, (step_batch,), generator=g).to(device)
    tasks = {"train": lambda r: r.train_step(xb, tb), "step": lambda r: r.forward(xs, ts),
             "ddim": lambda r: (ddim_ddpm_lib if "ddpm_lib" in r.name else ddim_diffusers)(r, ddim_batch, ddim_steps, device)}
    best = {n: {k: float("inf") for k in tasks} for n in runners}
    peak = {n: 0 for n in runners}
    from tqdm.auto import tqdm

    for rnd in tqdm(range(warmup + rounds), desc="rounds", disable=not progress):
        for task, fn in tasks.items():
            for name, r in runners.items():
                if gpu:
                    torch.cuda.reset_peak_memory_stats(device)
                _sync(device)
                t0 = time.perf_counter()
                fn(r)
                _sync(device)
                dt = time.perf_counter() - t0
                if rnd >= warmup:
                    best[name][task] = min(best[name][task], dt)
                if gpu:
                    peak[name] = max(peak[name], torch.cuda.max_memory_allocated(device))
    rows = {}
    for name in runners:
        s = best[name]
        row = {"train_img_s": train_batch / s["train"], "step_img_s": step_batch / s["step"],
               "ddim_img_s": ddim_batch / s["ddim"], "seconds": s}
        if gpu:
            row["peak_memory_gib"] = peak[name] / 2**30
            if peak_tflops:
                row["train_mfu"] = 3 * gflops * 1e9 * row["train_img_s"] / (peak_tflops * 1e12)
                row["step_mfu"] = gflops * 1e9 * row["step_img_s"] / (peak_tflops * 1e12)
        rows[name] = row
    ratios = {}
    for ours, theirs in (("ddpm_lib eager", "diffusers eager"), ("ddpm_lib best", "diffusers eager"),
                         ("ddpm_lib best", "diffusers compiled")):
        if ours in rows and theirs in rows:
            ratios[f"{ours} / {theirs}"] = {k: rows[ours][k] / rows[theirs][k] for k in ("train_img_s", "step_img_s", "ddim_img_s")}
    try:
        import diffusers
        dver = diffusers.__version__
    except ImportError:  # pragma: no cover
        dver = None
    dev_name = torch.cuda.get_device_name(device) if gpu else f"cpu: {platform.machine()}, {torch.get_num_threads()} threads"
    return dict(device=dev_name, date=datetime.date.today().isoformat(), torch=torch.__version__,
                diffusers=dver, ddpm_lib=ddpm_lib.__version__, precision=str(bf16).replace("torch.", "") if bf16 else "float32",
                params=params, gflops_forward=gflops, batches=dict(train=train_batch, step=step_batch, ddim=ddim_batch), ddim_steps=ddim_steps,
                rounds=rounds, peak_tflops=peak_tflops, results=rows, ratios=ratios)


def markdown(r: dict) -> str:
    """The results as a Markdown table with the run's device, versions and date."""
    cols = ["train_img_s", "step_img_s", "ddim_img_s"] + (["peak_memory_gib"] if "cpu" not in r["device"] else []) + \
        (["train_mfu"] if r.get("peak_tflops") and "cpu" not in r["device"] else [])
    head = {"train_img_s": "training (img/s)", "step_img_s": "one denoising step (img/s)",
            "ddim_img_s": f"DDIM {r['ddim_steps']} steps (img/s)", "peak_memory_gib": "peak memory (GiB)",
            "train_mfu": "training MFU"}
    lines = [f"Device: {r['device']}; torch {r['torch']}, diffusers {r['diffusers']}, ddpm_lib {r['ddpm_lib']}; "
             f"{r['date']}; precision {r['precision']}; batches: training {r['batches']['train']}, one step "
             f"{r['batches']['step']}, DDIM {r['batches']['ddim']}; best of {r['rounds']} rounds; parameters: ddpm_lib "
             f"{r['params']['ddpm_lib']:,}, diffusers {r['params']['diffusers']:,}.", "",
             "| configuration | " + " | ".join(head[c] for c in cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, row in r["results"].items():
        cells = [f"{row[c]:.1%}" if c.endswith("mfu") else f"{row[c]:.3g}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio | training | one step | DDIM loop |", "|---|---:|---:|---:|"]
    for name, q in r["ratios"].items():
        lines.append(f"| {name} | {q['train_img_s']:.2f}x | {q['step_img_s']:.2f}x | {q['ddim_img_s']:.2f}x |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--train-batch", type=int)
    ap.add_argument("--step-batch", type=int)
    ap.add_argument("--ddim-batch", type=int)
    ap.add_argument("--ddim-steps", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU")
    ap.add_argument("--config", action="append", help="run only these configurations (repeatable)")
    ap.add_argument("--quick", action="store_true", help="tiny batches, one round: a code-path check")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--markdown", default=None, help="write the results as a Markdown table here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    kw = dict(train_batch=2, step_batch=2, ddim_batch=2, ddim_steps=2, rounds=1, warmup=0) if a.quick else {}
    kw.update({k: v for k, v in dict(train_batch=a.train_batch, step_batch=a.step_batch, ddim_batch=a.ddim_batch,
                                    ddim_steps=a.ddim_steps).items() if v})
    if not a.quick:
        kw["rounds"] = a.rounds
    r = measure(a.device, peak_tflops=a.peak_tflops, configs=a.config, **kw)
    text = markdown(r)
    print(text)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(r, indent=1) + "\n")
    if a.markdown:
        Path(a.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(a.markdown).write_text(text)


if __name__ == "__main__":
    main()
