"""Training objectives: what a model learns, apart from how it is trained (``train``).

Every objective is a callable ``objective(net, batch)`` returning ``loss``, ``(loss, logs)`` or
``(loss, logs, per_example)`` (per-row tensors, gathered over ranks and handed to ``update``), with a
``config()`` dict that joins the weights-cache key. Optional hooks, all called by ``train``:

* ``update(**per_example)``: after each step, with the gathered per-row values (importance sampling);
* ``state_dict()`` / ``load_state_dict(d)``: small JSON state saved in the checkpoint;
* ``bind(net)``: once, before the first step or the resume (a target network copies ``net`` here);
* ``after_step(step, net)``: after each optimizer step (the target network's EMA update);
* ``tensors()`` / ``load_tensors(d)``: tensor state saved in the checkpoint (the target's weights).

Randomness comes from ``batch`` (``batch.randn``, ``batch.rand``, ``batch.sample_t``), never from
torch's global RNG, so a resumed or multi-process run sees exactly the noise of a single one.
``batch.x`` holds the inputs, ``batch.y`` the labels and ``batch.extras`` any other per-example tensors
(caption tokens, embeddings) passed to ``train`` as ``(x, y, {"tokens": ...})``.

The objectives: ``DiffusionObjective`` (eps / x0 / v / mu through ``diffusion.Diffusion``, with any
conditioning and per-condition dropout), ``ARObjective`` and ``MaskedObjective`` (token sequences),
``ClassifierObjective`` (one or several heads), ``NoisyClassifierObjective`` (ADM's classifier on x_t),
``ContrastiveObjective`` (CLIP), and ``TargetNetwork``, the hook consistency training builds on.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import diffusion, schedules
from .nets import as_model, unwrap


# --------------------------------------------------------------------------------------------
# Conditioning and its dropout (classifier-free guidance trains the unconditional model this way)
# --------------------------------------------------------------------------------------------
def null_label(y: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """Class labels: dropped rows get -1, the null label (the UNet's extra embedding row)."""
    return torch.where(drop, torch.full_like(y, -1), y)


def null_tokens(tokens: torch.Tensor, drop: torch.Tensor,
                pad_id: int = 0) -> torch.Tensor:
    """Caption tokens: dropped rows become the empty caption (all padding),
    as GLIDE does."""
    return torch.where(drop[:, None], torch.full_like(tokens, pad_id), tokens)


def null_embedding(z: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
    """Embeddings (unCLIP's CLIP image embedding): dropped rows are set to zero."""
    return torch.where(drop.view(-1, *[1] * (z.ndim - 1)), torch.zeros_like(z), z)


@dataclass(frozen=True)
class Cond:
    """One conditioning input: read ``source`` from the batch (``"y"`` or a key of ``batch.extras``),
    pass it to the network as keyword ``kwarg``, and replace it by ``null(value, drop)`` on a random
    ``p_drop`` share of the rows (independently of the other conditions)."""

    source: str
    kwarg: str
    p_drop: float = 0.0
    null: Callable = null_label

    def __post_init__(self):
        if not 0.0 <= self.p_drop <= 1.0:
            raise ValueError(f"Cond({self.source!r}).p_drop must lie in [0, 1], got {self.p_drop}")

    def config(self) -> dict:
        return dict(source=self.source, kwarg=self.kwarg, p_drop=self.p_drop, null=self.null.__name__)

    def read(self, batch) -> torch.Tensor:
        if self.source == "y":
            if batch.y is None:
                raise ValueError("Cond('y') needs labels: pass (x, y) or a Data with y to train")
            return batch.y
        if self.source not in batch.extras:
            raise KeyError(f"Cond({self.source!r}): the batch has no {self.source!r}; its extras are "
                           f"{sorted(batch.extras)} (pass (x, y, {{{self.source!r}: tensor}}) to train)")
        return batch.extras[self.source]


def conditioning(conds, batch) -> dict:
    """Network keyword arguments for ``batch``, each condition dropped on its share of rows."""
    out = {}
    for c in conds:
        v = c.read(batch)
        if c.p_drop > 0:
            v = c.null(v, batch.rand() < c.p_drop)
        out[c.kwarg] = v
    return out


# --------------------------------------------------------------------------------------------
# Diffusion
# --------------------------------------------------------------------------------------------
def _loss_name(loss) -> str:
    """The loss's name in the cache key: a ``diffusion.loss_<name>`` function is ``<name>`` (the names
    runs were cached under), any other function its own ``__name__``."""
    return getattr(loss, "__name__", type(loss).__name__).removeprefix("loss_")


class DiffusionObjective:
    """Training loss for ``diffusion.Diffusion``: draws t (uniform or importance-sampled) and eps from
    the batch's shared generator and applies ``loss``, a function such as ``diffusion.loss_hybrid``
    (a name, "simple", "vlb" or "hybrid", is accepted where it comes from a parameter or an arm's
    name).

    ``conds``: ``Cond`` objects (class labels, caption tokens, embeddings) with their dropout for
    classifier-free guidance. ``class_cond=True, p_uncond=p`` is shorthand for ``[Cond("y", "y", p)]``.
    """

    def __init__(self, diff, loss="simple", t_sampler="uniform", class_cond: bool = False,
                 p_uncond: float = 0.0, conds: tuple[Cond, ...] | list[Cond] = ()):
        self.diff = diff
        self.loss = diffusion.get_loss(loss) if isinstance(loss, str) else loss
        self.loss_name = _loss_name(self.loss)
        if isinstance(t_sampler, str):
            self.sampler_name, self.sampler = t_sampler, schedules.t_sampler(t_sampler, diff.T)
        else:
            self.sampler_name, self.sampler = type(t_sampler).__name__, t_sampler
        if class_cond and conds:
            raise ValueError("give either class_cond/p_uncond or conds, not both")
        self.class_cond, self.p_uncond = class_cond, p_uncond
        self.conds = tuple(conds) or ((Cond("y", "y", p_uncond),) if class_cond else ())

    def config(self) -> dict:
        s = self.diff.schedule
        cfg = dict(loss=self.loss_name, t_sampler=self.sampler_name, param=self.diff.param, var=self.diff.var,
                   schedule=s.name, T=s.T, betas=s.betas, class_cond=self.class_cond, p_uncond=self.p_uncond)
        if self.conds and not self.class_cond:  # (the shorthand keeps the keys runs were cached under)
            cfg["conds"] = [c.config() for c in self.conds]
        return cfg

    def __call__(self, net, batch):
        t, w = batch.sample_t(self.sampler)
        eps = batch.randn(*batch.x.shape[1:], dtype=batch.x.dtype)
        cond = conditioning(self.conds, batch)
        losses = self.loss(as_model(net, **cond), self.diff, batch.x, t, eps)
        loss = (losses * w.to(losses.dtype)).mean()
        return loss, {}, {"t": t, "losses": losses.detach().double()}

    def update(self, t, losses):
        if hasattr(self.sampler, "update"):
            self.sampler.update(t, losses)

    def state_dict(self) -> dict:
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else {}

    def load_state_dict(self, state: dict) -> None:
        if hasattr(self.sampler, "load_state_dict"):
            self.sampler.load_state_dict(state)


def box_masks(u: torch.Tensor, size: int, min_frac: float = 0.25, max_frac: float = 0.75) -> torch.Tensor:
    """Random rectangular holes: uniforms ``u`` (B, 4) -> masks (B, 1, size, size), 0 inside the hole
    (to be generated), 1 where a pixel is known. Each side is ``min_frac``..``max_frac`` of the image."""
    u = u.float()
    side = lambda v: (size * (min_frac + (max_frac - min_frac) * v)).round().clamp(1, size)  # noqa: E731
    h, w = side(u[:, 0]), side(u[:, 1])
    top, left = ((size - h) * u[:, 2]).floor(), ((size - w) * u[:, 3]).floor()
    r = torch.arange(size, device=u.device, dtype=torch.float32)
    rows = (r[None] >= top[:, None]) & (r[None] < (top + h)[:, None])
    cols = (r[None] >= left[:, None]) & (r[None] < (left + w)[:, None])
    hole = rows[:, :, None] & cols[:, None, :]
    return (~hole)[:, None].float()


class InpaintObjective(DiffusionObjective):
    """GLIDE's inpainting fine-tune (Sec. 4.3): the diffusion loss of a network that also sees the known
    pixels and the mask (``nets.text_encoder.InpaintTextUNet``), with a random rectangular hole per row
    (``box_masks``, drawn from the batch's generator)."""

    def __init__(self, diff, loss="simple", t_sampler="uniform", conds=(), min_frac: float = 0.25,
                 max_frac: float = 0.75):
        super().__init__(diff, loss, t_sampler, conds=conds)
        if not 0 < min_frac <= max_frac <= 1:
            raise ValueError(f"need 0 < min_frac <= max_frac <= 1, got {min_frac}, {max_frac}")
        self.min_frac, self.max_frac = min_frac, max_frac

    def config(self) -> dict:
        return {**super().config(), "inpaint": dict(min_frac=self.min_frac, max_frac=self.max_frac)}

    def __call__(self, net, batch):
        t, w = batch.sample_t(self.sampler)
        eps = batch.randn(*batch.x.shape[1:], dtype=batch.x.dtype)
        mask = box_masks(batch.rand(4), batch.x.shape[-1], self.min_frac, self.max_frac).to(batch.x.dtype)
        cond = {**conditioning(self.conds, batch), "known": batch.x, "mask": mask}
        losses = self.loss(as_model(net, **cond), self.diff, batch.x, t, eps)
        loss = (losses * w.to(losses.dtype)).mean()
        return loss, {}, {"t": t, "losses": losses.detach().double()}


# --------------------------------------------------------------------------------------------
# Token sequences (iGPT, Sec. 2.1 and 2.2)
# --------------------------------------------------------------------------------------------
class ARObjective:
    """Next-token cross-entropy, L_AR = E[-sum_i log p(x_i | x_<i)] in raster
    order. With a start-of-sequence slot the logits are aligned with the
    input."""

    def config(self) -> dict:
        return {"objective": "autoregressive"}

    def __call__(self, net, batch):
        # (B, L, V): logits[:, i] predicts x[:, i] from x[:, <i]
        logits = net(batch.x)
        return F.cross_entropy(logits.flatten(0, 1).float(), batch.x.flatten())


class TextImageObjective:
    """DALL-E's transformer loss (Ramesh et al. 2021, Sec. 2.2): next-token cross-entropy over one stream
    [text tokens | image tokens]; the mean over the ``text_len`` text positions is weighted by
    ``text_weight`` (1/8 in the paper) and the mean over the image positions by 1 - text_weight, each
    normalised by its own token count."""

    def __init__(self, text_len: int, text_weight: float = 1 / 8):
        if not 0.0 <= text_weight <= 1.0:
            raise ValueError(f"text_weight must lie in [0, 1], got {text_weight}")
        self.text_len, self.text_weight = text_len, text_weight

    def config(self) -> dict:
        return {"objective": "text_image", "text_len": self.text_len, "text_weight": self.text_weight}

    def __call__(self, net, batch):
        logits = net(batch.x)  # (B, L, V), aligned with the input (sos slot)
        ce = F.cross_entropy(logits.flatten(0, 1).float(), batch.x.flatten(),
                             reduction="none").view(batch.x.shape)
        text, image = (ce[:, :self.text_len].mean(),
                       ce[:, self.text_len:].mean())
        loss = self.text_weight * text + (1 - self.text_weight) * image
        return loss, {"text_ce": text.detach(), "image_ce": image.detach()}


class MaskedObjective:
    """BERT-style L_BERT = E[-sum_{i in M} log p(x_i | x_{not M})] on a
    bidirectional model: a random ``mask_prob`` of the positions is replaced
    by ``mask_token`` (the extra vocabulary id)."""

    def __init__(self, mask_token: int, mask_prob: float = 0.15):
        self.mask_token, self.mask_prob = mask_token, mask_prob

    def config(self) -> dict:
        return {"objective": "masked", "mask_token": self.mask_token,
                "mask_prob": self.mask_prob}

    def __call__(self, net, batch):
        x = batch.x
        masked = batch.rand(x.shape[1]) < self.mask_prob  # (B, L)
        inp = torch.where(masked, torch.full_like(x, self.mask_token), x)
        logits = net(inp)
        return (F.cross_entropy(logits[masked].float(), x[masked])
                if masked.any() else logits.sum() * 0)


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------
def _heads_loss(out, y) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of one head (logits, y (B,)) or several (dict of logits, y (B, heads) in
    the dict's order); logs the accuracy of each head."""
    if torch.is_tensor(out):
        return F.cross_entropy(out.float(), y), {"acc": (out.argmax(1) == y).float().mean()}
    loss, logs = 0.0, {}
    for i, (k, logits) in enumerate(out.items()):
        loss = loss + F.cross_entropy(logits.float(), y[:, i])
        logs[f"acc_{k}"] = (logits.argmax(1) == y[:, i]).float().mean()
    return loss, logs


class ClassifierObjective:
    """Cross-entropy of ``net(x)`` against ``batch.y`` (summed over heads when ``net`` returns a dict;
    then ``y`` is (N, heads) in the order of the dict)."""

    def config(self) -> dict:
        return {"objective": "classifier"}

    def __call__(self, net, batch):
        return _heads_loss(net(batch.x), batch.y)


class NoisyClassifierObjective:
    """ADM's noise-aware classifier (Dhariwal & Nichol 2021, Sec. 4.1): t ~ U{0..T-1},
    x_t ~ q(x_t | x_0), cross-entropy of ``net(x_t, t)`` against the label. Per-example losses and t
    are returned so that accuracy by noise level can be read from the log."""

    def __init__(self, diff, t_sampler="uniform"):
        self.diff = diff
        if isinstance(t_sampler, str):
            self.sampler_name, self.sampler = t_sampler, schedules.t_sampler(t_sampler, diff.T)
        else:
            self.sampler_name, self.sampler = type(t_sampler).__name__, t_sampler

    def config(self) -> dict:
        s = self.diff.schedule
        return dict(objective="noisy_classifier", t_sampler=self.sampler_name, schedule=s.name, T=s.T, betas=s.betas)

    def __call__(self, net, batch):
        t, _ = batch.sample_t(self.sampler)
        eps = batch.randn(*batch.x.shape[1:], dtype=batch.x.dtype)
        x_t = diffusion.q_sample(self.diff.schedule, batch.x, t, eps)
        x_t = x_t.to(batch.x.dtype)
        logits = net(x_t, t.float())
        loss = F.cross_entropy(logits.float(), batch.y)
        acc = (logits.argmax(1) == batch.y).float().mean()
        return loss, {"acc": acc}


# --------------------------------------------------------------------------------------------
# Discrete VAE (DALL-E, Ramesh et al. 2021, App. A)
# --------------------------------------------------------------------------------------------
class DVAEObjective:
    """The negative evidence lower bound of ``nets.dvae.DVAE`` with the Gumbel-softmax relaxation:
    [reconstruction NLL of x given the decoded relaxed code grid + beta * KL(q(z | x) || uniform)],
    divided by the number of pixel channels (the paper's normalisation: its beta = 6.6 is relative to
    a per-dimension reconstruction term). beta rises 0 -> ``beta`` over ``beta_steps`` and tau falls
    ``tau_start`` -> ``tau_end`` over ``tau_steps``, both with half-cosine ramps (linear annealing of tau
    diverged in the paper); ``tau_steps=0`` keeps tau at ``tau_end`` throughout (a fixed temperature).

    ``likelihood``: ``"logit_laplace"`` (the paper's, App. A.3: the decoder's mu and log b per pixel
    channel) or ``"gaussian"`` (mean phi^-1(sigmoid(mu)) in [-1, 1], the same point a reconstruction
    decodes to, and a fixed standard deviation ``sigma``; log b is unused). On flat-coloured scenes
    with small objects the logit-Laplace dVAE learns the background and drops the objects (the
    density of an exactly constant background grows without bound as b -> 0, and its L1 in logit
    space favours the majority colour of a cell); chapter 05 measures both."""

    LIKELIHOODS = ("logit_laplace", "gaussian")

    def __init__(self, beta: float = 6.6, beta_steps: int = 0, tau_start: float = 1.0, tau_end: float = 1 / 16,
                 tau_steps: int = 0, likelihood: str = "logit_laplace", sigma: float = 0.1):
        if beta < 0 or tau_start <= 0 or tau_end <= 0 or sigma <= 0:
            raise ValueError("beta must be >= 0 and the temperatures and sigma > 0")
        if likelihood not in self.LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; valid: {', '.join(self.LIKELIHOODS)}")
        self.beta, self.beta_steps = beta, beta_steps
        self.tau_start, self.tau_end, self.tau_steps = tau_start, tau_end, tau_steps
        self.likelihood, self.sigma = likelihood, sigma

    def config(self) -> dict:
        out = dict(objective="dvae", beta=self.beta, beta_steps=self.beta_steps, tau_start=self.tau_start,
                   tau_end=self.tau_end, tau_steps=self.tau_steps)
        if self.likelihood != "logit_laplace":  # the default leaves earlier cache keys unchanged
            out.update(likelihood=self.likelihood, sigma=self.sigma)
        return out

    def schedule(self, step: int) -> tuple[float, float]:
        """(beta, tau) at ``step``."""
        from .nets.dvae import cosine_ramp

        return (cosine_ramp(step, self.beta_steps, 0.0, self.beta),
                cosine_ramp(step, self.tau_steps, self.tau_start, self.tau_end))

    def terms(self, net, x: torch.Tensor, logits: torch.Tensor,
              z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image (reconstruction NLL in nats, KL(q || uniform) in nats)
        for the code grid ``z``."""
        from .nets.dvae import logit_laplace_nll, unmap_pixels

        mu, log_b = net.decode(z.to(logits.dtype))
        if self.likelihood == "gaussian":
            mean = unmap_pixels(torch.sigmoid(mu.float())) * 2 - 1
            nll = ((mean - x.float()) ** 2 / (2 * self.sigma**2)
                   + math.log(self.sigma * math.sqrt(2 * math.pi)))
        else:
            nll = logit_laplace_nll((x.float() + 1) / 2, mu.float(),
                                    log_b.float())
        logq = torch.log_softmax(logits.float(), dim=1)
        kl = ((logq.exp() * (logq + math.log(logits.shape[1])))
              .sum(1).flatten(1).sum(1))
        return nll.flatten(1).sum(1), kl

    def __call__(self, net, batch):
        beta, tau = self.schedule(batch.step)
        logits = net.logits(batch.x).float()  # (B, K, g, g)
        z = gumbel_softmax(logits, batch.rand(*logits.shape[1:]), tau)
        nll, kl = self.terms(net, batch.x, logits, z)
        loss = (nll + beta * kl).mean() / batch.x[0].numel()
        return loss, {"nll_per_dim": nll.mean().detach() / batch.x[0].numel(),
                      "kl": kl.mean().detach(),
                      "beta": torch.tensor(beta), "tau": torch.tensor(tau)}


def gumbel_softmax(logits: torch.Tensor, u: torch.Tensor,
                   tau: float) -> torch.Tensor:
    """A relaxed one-hot sample over dim 1: softmax((logits + g) / tau) with
    Gumbel noise g = -log(-log u) from uniforms ``u`` (drawn by the caller, so
    that the randomness stays the batch's)."""
    u = u.clamp(1e-10, 1 - 1e-10)
    return torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=1)


@torch.no_grad()
def dvae_elb(net, x: torch.Tensor, tau: float,
             generator: torch.Generator | None = None,
             objective: DVAEObjective | None = None,
             draws: int = 1) -> dict:
    """Negative ELB per pixel channel (nats) of a dVAE under ``objective``'s
    likelihood (default: the logit-Laplace), per image and averaged over
    ``draws`` Gumbel draws:

    * ``relaxed``: a Gumbel-softmax sample at ``tau`` (the bound the dVAE was
      trained on);
    * ``hard``: the one-hot sample from q(z | x) that the same Gumbel noise
      picks, argmax(logits + g) (the tau -> 0 limit of the relaxed sample:
      the paper's "true" ELB);
    * ``argmax``: the one-hot argmax code grid, no noise (what the transformer
      sees).

    Annealing tau should close the gap between ``hard`` and ``relaxed``."""
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    objective = objective or DVAEObjective()
    logits = net.logits(x).float()
    k, d = logits.shape[1], x[0].numel()
    one_hot = lambda idx: (  # noqa: E731
        F.one_hot(idx, k).permute(0, 3, 1, 2).float())

    def neg_elb(z):
        nll, kl = objective.terms(net, x, logits, z)
        return ((nll + kl) / d).cpu()

    out = {"relaxed": 0.0, "hard": 0.0}
    for _ in range(draws):
        u = torch.rand(logits.shape, generator=generator, device=logits.device)
        relaxed = gumbel_softmax(logits, u, tau)
        out["relaxed"] = out["relaxed"] + neg_elb(relaxed) / draws
        out["hard"] = (out["hard"]
                       + neg_elb(one_hot(relaxed.argmax(1))) / draws)
    out["argmax"] = neg_elb(one_hot(logits.argmax(1)))
    return out


# --------------------------------------------------------------------------------------------
# Contrastive (CLIP, Radford et al. 2021)
# --------------------------------------------------------------------------------------------
def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Symmetric InfoNCE over the batch: row i's image matches row i's caption. Embeddings are
    L2-normalised here; ``logit_scale`` is log(1 / temperature)."""
    img, txt = F.normalize(image_emb.float(), dim=-1), F.normalize(text_emb.float(), dim=-1)
    logits = logit_scale.exp().clamp(max=100.0) * img @ txt.T  # (B, B)
    labels = torch.arange(len(img), device=img.device)
    loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    return loss, {"acc_i2t": (logits.argmax(1) == labels).float().mean(), "scale": logit_scale.exp().detach()}


# The book's recipe for its small CLIPs (chapters 05-08): with ``train_images`` and the seed,
# ``train.TrainConfig(train_images=..., seed=..., **CLIP_TRAINING)``
CLIP_TRAINING = dict(batch_size=128, lr=2e-3, warmup_images=5000, weight_decay=0.01, ema_decay=0.99)


class ContrastiveObjective:
    """CLIP's loss for a dual encoder ``net(images, tokens) -> (image_emb, text_emb, logit_scale)``,
    with the caption tokens in ``batch.extras[tokens]``. ``noised=True`` trains GLIDE's noised CLIP:
    the image tower sees x_t at a uniform t (``net(x_t, tokens, t=t)``)."""

    def __init__(self, tokens: str = "tokens", diff=None):
        self.tokens, self.diff = tokens, diff

    def config(self) -> dict:
        cfg = {"objective": "contrastive", "tokens": self.tokens}
        if self.diff is not None:
            s = self.diff.schedule
            cfg.update(noised=True, schedule=s.name, T=s.T, betas=s.betas)
        return cfg

    def __call__(self, net, batch):
        tokens = batch.extras[self.tokens]
        if self.diff is None:
            return clip_loss(*net(batch.x, tokens))
        t = batch.randint(self.diff.T)
        eps = batch.randn(*batch.x.shape[1:], dtype=batch.x.dtype)
        x_t = diffusion.q_sample(self.diff.schedule, batch.x, t, eps).to(batch.x.dtype)
        return clip_loss(*net(x_t, tokens, t=t.float()))


# --------------------------------------------------------------------------------------------
# A target network (consistency distillation / training: theta^- )
# --------------------------------------------------------------------------------------------
class TargetNetwork:
    """theta^-: a frozen copy of the trained network, updated after every optimizer step as
    theta^- <- mu(k) theta^- + (1 - mu(k)) theta (Song et al. 2023, Algorithms 2 and 3).
    ``mu=0`` is the stop-gradient copy of iCT (theta^- = theta after each step). Separate from the
    evaluation EMA that ``train`` keeps. An objective that owns one forwards ``bind``,
    ``after_step``, ``tensors`` and ``load_tensors`` to it (see ``TargetObjective``)."""

    def __init__(self, mu: float | Callable[[int], float] = 0.0):
        self.mu = mu
        self.net: nn.Module | None = None

    def config(self) -> dict:
        return {"mu": self.mu if not callable(self.mu) else getattr(self.mu, "__name__", "schedule")}

    def bind(self, net: nn.Module) -> None:
        self.net = copy.deepcopy(unwrap(net)).requires_grad_(False)

    def after_step(self, step: int, net: nn.Module) -> None:
        mu = float(self.mu(step)) if callable(self.mu) else float(self.mu)
        with torch.no_grad():
            for p_t, p in zip(self.net.parameters(), unwrap(net).parameters()):
                p_t.lerp_(p.detach(), 1 - mu)
            for b_t, b in zip(self.net.buffers(), unwrap(net).buffers()):
                b_t.copy_(b)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(tensors)


class TargetObjective:
    """Base for objectives with a target network: ``self.target`` is a ``TargetNetwork``; train's
    hooks reach it through these methods."""

    target: TargetNetwork

    def bind(self, net):
        self.target.bind(net)

    def after_step(self, step, net):
        self.target.after_step(step, net)

    def tensors(self):
        return self.target.tensors()

    def load_tensors(self, tensors):
        self.target.load_tensors(tensors)



# ---- token models: unCLIP's AR prior, DALL-E 3's captioner ----------------------------------
class ARPriorObjective:
    """Cross-entropy over the AR prior's codes (``batch.x``), conditioned on the batch's caption tokens
    and text embedding, each dropped on ``p_drop`` of the rows (the paper: 10%, for guidance)."""

    def __init__(self, p_drop: float = 0.1):
        self.p_drop = p_drop
        self.conds = (Cond("tokens", "tokens", p_drop, null_tokens), Cond("z_text", "z_text", p_drop, null_embedding))

    def config(self) -> dict:
        return {"objective": "ar_prior", "p_drop": self.p_drop}

    def __call__(self, net, batch):
        logits = net(batch.x, **conditioning(self.conds, batch))
        return F.cross_entropy(logits.flatten(0, 1).float(), batch.x.flatten())


class CaptionObjective:
    """Next-word cross-entropy of the batch's captions (``batch.extras[tokens]``) given the images
    (``batch.x``), over each caption's words and its first padding token (the end of the caption)."""

    def __init__(self, tokens: str = "tokens"):
        self.tokens = tokens

    def config(self) -> dict:
        return {"objective": "caption", "tokens": self.tokens}

    def __call__(self, net, batch):
        tok = batch.extras[self.tokens].to(batch.x.device)
        logits = net(batch.x, tok)
        real = tok != 0
        # count positions up to and including the first padding token
        keep = torch.cat([torch.ones_like(real[:, :1]), real[:, :-1]], 1)
        ce = F.cross_entropy(logits.flatten(0, 1).float(), tok.flatten(),
                             reduction="none").view(tok.shape)
        loss = (ce * keep).sum() / keep.sum()
        return loss, {"words": real.sum(1).float().mean()}
