"""A small training run, launched as a separate process by tests/test_train.py.

Used twice: killed with SIGKILL mid-run (then resumed in the test process), and under
``torchrun --nproc_per_node 2`` on gloo (compared with one process).
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.helpers.setups import make_run  # noqa: E402

from ddpm_lib import train as TR  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--run-dir", required=True)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--ckpt-every", type=int, default=0, help="steps")
    ap.add_argument("--slow", type=float, default=0.0, help="seconds to sleep per step")
    ap.add_argument("--out", default=None, help="write final weights here (rank 0)")
    ap.add_argument("--dropout", type=float, default=0.1)
    a = ap.parse_args()
    torch.set_num_threads(1)
    net, loss_fn, data, cfg = make_run(a.steps, a.ckpt_every, slow=a.slow, dropout=a.dropout)
    res = TR.train(net, loss_fn, data, cfg, run_dir=a.run_dir, config_key="worker", progress=False)
    rank, _ = TR.dist_info()
    if a.out and rank == 0:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in res.net.state_dict().items()}, a.out)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
