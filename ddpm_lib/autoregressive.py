"""Objectives and evaluation for models of token sequences (iGPT's two objectives, Chen et al. 2020).

* ``ARObjective``: L_AR = E[-sum_i log p(x_i | x_<i)], raster order (Sec. 2.1);
* ``MaskedObjective``: L_BERT = E[-sum_{i in M} log p(x_i | x_{not M})], M a random 15% of the
  positions replaced by a mask token, loss only on M (Sec. 2.2);
* ``eval_nll``: held-out negative log-likelihood in nats per token and bits per dimension;
* ``complete``: keep the first ``keep`` tokens of each sequence and sample the rest (Fig. 1).

Both objectives (defined in ``objectives``) follow ``train``'s contract: ``loss_fn(net, batch)`` with the sequences in
``batch.x`` (N, L) and randomness drawn from ``batch`` (so resume and DDP stay exact).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# The two objectives live with the others in ``objectives``; they are re-exported here because a
# reader of this chapter's code looks for them next to ``eval_nll``.
from .objectives import ARObjective, MaskedObjective  # noqa: E402,F401


@torch.no_grad()
def eval_nll(net, tokens: torch.Tensor, batch_size: int = 256, dims_per_token: float = 1.0) -> dict:
    """Held-out NLL of an autoregressive model: nats per token, and bits per dimension (one token
    codes ``dims_per_token`` dimensions: 1 for a grey pixel, 3 for an RGB pixel under a palette)."""
    net.eval()
    device = next(net.parameters()).device
    total, count = 0.0, 0
    for i in range(0, len(tokens), batch_size):
        x = tokens[i:i + batch_size].to(device)
        logits = net(x)
        total += F.cross_entropy(logits.flatten(0, 1).float(), x.flatten(), reduction="sum").item()
        count += x.numel()
    nats = total / count
    return {"nats_per_token": nats, "bits_per_dim": nats / math.log(2) / dims_per_token}


@torch.no_grad()
def complete(net, tokens: torch.Tensor, keep: int, n: int = 1, temperature: float = 1.0, seed: int = 0) -> torch.Tensor:
    """Keep the first ``keep`` tokens of each sequence and sample the rest ``n`` times: (n, B, L)."""
    device = next(net.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    prefix = tokens[:, :keep].to(device)
    return torch.stack([net.generate(prefix, tokens.shape[1], temperature=temperature, generator=g)
                        for _ in range(n)])
