"""Networks (``unet``, ``transformer``) and two helpers every chapter uses next to a model:
``as_model`` (a network as a sampler-ready model function) and ``cost`` (parameters and FLOPs)."""
from __future__ import annotations

import functools

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode


def seeded_init(init):
    """Decorator for a network's ``__init__(self, cfg, ...)``: the initial weights are drawn from a
    generator seeded by ``cfg`` (``cache.seed_of``), never from torch's global RNG, so the same config
    always starts from the same weights whatever ran before. The caller's RNG state is left as it was.

    ``init_seed=k`` (keyword, k > 0) draws another initialisation, seeded by ``(cfg, k)``: training
    seeds that vary the initialisation. The training cache keys the config, not the weights, so a
    caller with k > 0 puts k in the key (``train_cached(extra=...)``)."""

    @functools.wraps(init)
    def wrapper(self, cfg, *args, init_seed: int = 0, **kwargs):
        from ..cache import seed_of

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_of(cfg) if init_seed == 0 else seed_of((cfg, init_seed)))
            init(self, cfg, *args, **kwargs)

    return wrapper


def unwrap(m: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (``.module``) and/or ``torch.compile`` (``._orig_mod``)."""
    m = getattr(m, "module", m)
    return getattr(m, "_orig_mod", m)


def as_model(net: nn.Module, **cond):
    """``net`` as a model function ``(x_t, t) -> output`` for ``diffusion`` and ``sampling``.

    Casts the (float64) sampler state to the network's dtype (and, for a convolutional network
    trained ``channels_last``, to that memory format: 1.3x faster on CPU) at the call and passes the
    step as a float; ``cond`` (y=..., context=..., embed=...) is forwarded on every call. The output keeps the
    network's dtype (so losses can backpropagate through it).
    """
    dtype = next(net.parameters()).dtype
    t_dtype = torch.promote_types(dtype, torch.float32)  # float32 steps, float64 for a .double() network
    fmt = memory_format(net)

    def model(x, t):
        x = x.to(dtype)
        if x.dim() == 4:
            x = x.contiguous(memory_format=fmt)
        return net(x, t.to(x.device).to(t_dtype), **cond)

    return model


def memory_format(net: nn.Module) -> torch.memory_format:
    """``channels_last`` when ``net``'s convolution weights are stored so (``TrainConfig.channels_last``),
    else ``contiguous_format``."""
    for p in net.parameters():
        if p.dim() == 4 and p.shape[2] * p.shape[3] > 1:
            cl = p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
            return torch.channels_last if cl else torch.contiguous_format
    return torch.contiguous_format


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


@torch.no_grad()
def cost(net: nn.Module, *example_args, **example_kwargs) -> dict:
    """Parameters and forward FLOPs per example of one call ``net(*example_args, **example_kwargs)``.

    FLOPs are counted by torch's FlopCounterMode: matrix multiplies, convolutions and attention, at
    2 FLOPs per multiply-add (elementwise ops, norms and activations are not counted).
    ``macs_per_example`` is half of it. The batch size is read from the first argument.
    """
    was_training = net.training
    net.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        net(*example_args, **example_kwargs)
    net.train(was_training)
    batch = example_args[0].shape[0]
    flops = counter.get_total_flops() / batch
    return dict(params=count_params(net), flops_per_example=flops, macs_per_example=flops / 2)


def describe(net: nn.Module, *example_args, **example_kwargs) -> str:
    """One line for the book: '35.75M parameters, 12.1 GFLOPs per image (2 x multiply-adds)'."""
    c = cost(net, *example_args, **example_kwargs)
    return (f"{c['params'] / 1e6:.2f}M parameters, {c['flops_per_example'] / 1e9:.3g} GFLOPs per example "
            f"(forward, 2 FLOPs per multiply-add)")
