"""Samplers as plain functions, and guidance as wrappers around the model function.

One signature per family: ``sampler(model, diff, x_T, generator=..., ...)``. ``diff`` carries the
(possibly respaced) schedule, so the same function samples the full chain or any subset of steps.
The sampler state stays float64; the model function casts to its own dtype (``nets.as_model``).

Each sampler has a generator twin (``*_steps``) that yields ``(i, x, x0_pred)`` after every step:
``i`` the step just taken (counting down to 0), ``x`` the new state (after step 0: the sample), and
``x0_pred`` the prediction of x_0 made at step i. Figures of the chain are built from these.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .diffusion import Diffusion, Model, call_model, eps_from_x0, output_from_x0, p_mean_variance, split_output
from .nets import as_model
from .progress import tqdm


def noise_like(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Standard normal float64 noise, reproducible given ``generator`` (on the generator's device)."""
    device = generator.device if generator is not None else (device or "cpu")
    return torch.randn(shape, generator=generator, device=device, dtype=torch.float64)


def _steps(diff: Diffusion, progress: bool, desc: str, start: int | None = None):
    """Step indices from ``start`` (default: the last step, T - 1) down to 0."""
    first = diff.T - 1 if start is None else start
    if not 0 <= first < diff.T:
        raise ValueError(f"start must be a step of the chain, 0..{diff.T - 1}; got {start}")
    return tqdm(range(first, -1, -1), desc=desc, disable=not progress, leave=False)


# --------------------------------------------------------------------------------------------
# Ancestral sampling (DDPM Algorithm 2)
# --------------------------------------------------------------------------------------------
# Hooks shared by the samplers (keyword-only):
# * ``denoised_fn(x0) -> x0``: edits the predicted x_0 at every step (clamping, inpainting by
#   replacing x_0 in the known region, as GLIDE's notebooks do);
# * ``step_fn(i, x) -> x``: edits the state after step i (the replacement trick: ``replace_known``);
# * ``temperature`` (ancestral): the fresh noise is scaled by it (ADM App. G, GLIDE's upsample_temp).
@torch.no_grad()
def ancestral_steps(model: Model, diff: Diffusion, x_T: torch.Tensor, *,
                    generator=None, progress: bool = False,
                    start: int | None = None, denoised_fn=None, step_fn=None,
                    temperature: float = 1.0,
                    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """x_{t-1} = mu_theta(x_t, t) + sigma_t z, z ~ N(0, I) for t > 1 and
    z = 0 at the last step.

    ``start``: begin at that step with ``x_T`` holding x_start (DDPM Fig. 7
    and 8), not at T - 1.
    """
    x = x_T.double()
    for i in _steps(diff, progress, "ancestral", start):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        p = p_mean_variance(diff, call_model(model, diff, x, t), x, t,
                            denoised_fn=denoised_fn)
        z = (noise_like(x.shape, generator, x.device) if i > 0
             else torch.zeros_like(x))
        # Algorithm 2, line 4
        x = p["mean"] + temperature * (0.5 * p["logvar"]).exp() * z
        if step_fn is not None:
            x = step_fn(i, x).double()
        yield i, x, p["x0"]


def ancestral(model: Model, diff: Diffusion, x_T: torch.Tensor, *, generator=None, progress: bool = False,
              start: int | None = None, **hooks) -> torch.Tensor:
    """Run ``ancestral_steps`` to the end and return the sample."""
    for _, x, _ in ancestral_steps(model, diff, x_T, generator=generator, progress=progress, start=start, **hooks):
        pass
    return x


def coupled_ancestral(model, diff, n: int, shape: tuple, start: int, seed: int, device=None,
                      batch_size: int = 256) -> torch.Tensor:
    """``n`` ancestral samples that start from pure noise at step ``start`` of ``diff``, with common
    random numbers: sample i starts from the same noise, and draws the same fresh noise at every step
    i, whatever ``start`` is. Two runs that differ only in ``start`` (skipping the first reverse steps or
    not) then pair up sample by sample, which a paired bootstrap of their FD difference can use."""
    out = []
    for b0 in range(0, n, batch_size):
        nb = min(batch_size, n - b0)
        key = lambda i: (seed * 1_000_003 + b0) * 100_003 + i  # noqa: E731  (the noise of step i)
        g = torch.Generator(device=device).manual_seed(key(-1))
        x = noise_like((nb, *shape), g, device)
        g.manual_seed(key(start))  # the noise drawn at step `start`

        def reseed(i, x_, g=g, key=key):
            g.manual_seed(key(i - 1))  # the noise drawn at the next step, i - 1
            return x_

        out.append(ancestral(model, diff, x, generator=g, start=start, step_fn=reseed).float().cpu())
    return torch.cat(out)


# --------------------------------------------------------------------------------------------
# DDIM (Song et al. 2021, Eq. 12), eta in [0, 1]; eta = 1 matches ancestral sampling's marginals
# --------------------------------------------------------------------------------------------
@torch.no_grad()
def ddim_steps(model: Model, diff: Diffusion, x_T: torch.Tensor, *, eta: float = 0.0, generator=None,
               progress: bool = False, start: int | None = None, denoised_fn=None,
               step_fn=None) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    sched, x = diff.schedule, x_T.double()
    for i in _steps(diff, progress, f"DDIM(eta={eta:g})", start):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        p = p_mean_variance(diff, call_model(model, diff, x, t), x, t, denoised_fn=denoised_fn)
        abar, abar_prev = sched.alpha_bar[i].item(), sched.alpha_bar_prev[i].item()
        sigma = eta * ((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev)) ** 0.5
        x = abar_prev**0.5 * p["x0"] + (1 - abar_prev - sigma**2) ** 0.5 * p["eps"]  # Eq. 12
        if i > 0 and sigma > 0:
            x = x + sigma * noise_like(x.shape, generator, x.device)
        if step_fn is not None:
            x = step_fn(i, x).double()
        yield i, x, p["x0"]


def ddim(model: Model, diff: Diffusion, x_T: torch.Tensor, *, eta: float = 0.0, generator=None,
         progress: bool = False, start: int | None = None, **hooks) -> torch.Tensor:
    for _, x, _ in ddim_steps(model, diff, x_T, eta=eta, generator=generator, progress=progress, start=start,
                              **hooks):
        pass
    return x


# --------------------------------------------------------------------------------------------
# Inpainting hooks (GLIDE Sec. 4.3 and its notebook)
# --------------------------------------------------------------------------------------------
def replace_known(diff: Diffusion, x0_known: torch.Tensor, mask: torch.Tensor,
                  generator=None):
    """The replacement trick as a ``step_fn``: after the step to x_{i-1}, the
    known region (``mask`` = 1) is overwritten with a fresh draw of
    q(x_{i-1} | x_0 = x0_known); after the last step, with x0_known itself.
    The model only ever fills the unknown region."""
    sched, known, m = diff.schedule, x0_known.double(), mask.double()

    def step_fn(i: int, x: torch.Tensor) -> torch.Tensor:
        if i == 0:
            return m * known.to(x.device) + (1 - m) * x
        abar = sched.alpha_bar[i - 1].item()
        z = noise_like(x.shape, generator, x.device)
        # q(x_{i-1} | x_0)
        noisy = abar**0.5 * known.to(x.device) + (1 - abar) ** 0.5 * z
        return m * noisy + (1 - m) * x

    return step_fn


def keep_known_x0(x0_known: torch.Tensor, mask: torch.Tensor):
    """A ``denoised_fn`` that replaces the predicted x_0 by the known pixels where ``mask`` = 1."""
    known, m = x0_known.double(), mask.double()

    def denoised_fn(x0: torch.Tensor) -> torch.Tensor:
        return m * known.to(x0.device) + (1 - m) * x0

    return denoised_fn


@torch.no_grad()
def ddim_invert(model: Model, diff: Diffusion, x0: torch.Tensor, *, fixed_point_iters: int = 0,
                progress: bool = False) -> torch.Tensor:
    """Encode x_0 to x_T by running deterministic DDIM (eta = 0) backwards.

    Step i of the sampler maps the latent at step i to the one at step i - 1 using eps(x_i, i).
    Going up we do not know x_i yet, so the plain inversion uses eps(x_{i-1}, i) (first-order
    accurate); ``fixed_point_iters`` > 0 refines x_i so that the sampler's step maps it back exactly.
    """
    sched, x = diff.schedule, x0.double()
    for i in tqdm(range(diff.T), desc="DDIM inversion", disable=not progress, leave=False):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        abar, abar_prev = sched.alpha_bar[i].item(), sched.alpha_bar_prev[i].item()
        x_prev, x_next = x, x
        for _ in range(1 + fixed_point_iters):
            p = p_mean_variance(diff, call_model(model, diff, x_next, t), x_next, t, clip_denoised=False)
            # the sampler's step: x_prev = sqrt(abar_prev) x0(x_i) + sqrt(1 - abar_prev) eps(x_i);
            # solve it for x_i with eps held fixed
            eps = p["eps"]
            x0 = (x_prev - (1 - abar_prev) ** 0.5 * eps) / abar_prev**0.5
            x_next = abar**0.5 * x0 + (1 - abar) ** 0.5 * eps
        x = x_next
    return x


# --------------------------------------------------------------------------------------------
# Figures of DDPM Sec. 4.3: decoding from an intermediate step
# --------------------------------------------------------------------------------------------
def _seeded(seed: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@torch.no_grad()
def samples_from_shared_xt(model: Model, diff: Diffusion, x0: torch.Tensor, t: int, n: int, *, seed: int = 0,
                           progress: bool = False) -> torch.Tensor:
    """DDPM Fig. 7: one x_t ~ q(x_t | x_0) per image, then ``n`` independent reverse chains from it.

    Returns (n, B, ...). What the samples share is what x_t still holds about x_0: large-scale
    structure survives to large t, detail only to small t.
    """
    from .diffusion import q_sample

    g = _seeded(seed, x0.device)
    steps = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
    x_t = q_sample(diff.schedule, x0.double(), steps, noise_like(x0.shape, g, x0.device))
    return torch.stack([ancestral(model, diff, x_t, generator=_seeded(seed + 1 + k, x0.device), progress=progress,
                                  start=t) for k in range(n)])


@torch.no_grad()
def interpolate(model: Model, diff: Diffusion, x0_a: torch.Tensor, x0_b: torch.Tensor, t: int,
                lambdas, *, seed: int = 0, progress: bool = False) -> torch.Tensor:
    """DDPM Fig. 8: encode two images with q at step t, mix the latents, decode with the reverse process.

    x_t = (1 - lam) x_t^a + lam x_t^b for each lam; every decode uses the same reverse-process noise,
    so rows differ only through lam. t = 0 gives pixel-space blending (almost), large t new images.
    Returns (len(lambdas), B, ...).
    """
    from .diffusion import q_sample

    g = _seeded(seed, x0_a.device)
    steps = torch.full((x0_a.shape[0],), t, dtype=torch.long, device=x0_a.device)
    xa = q_sample(diff.schedule, x0_a.double(), steps, noise_like(x0_a.shape, g, x0_a.device))
    xb = q_sample(diff.schedule, x0_b.double(), steps, noise_like(x0_b.shape, g, x0_b.device))
    return torch.stack([ancestral(model, diff, (1 - lam) * xa + lam * xb, generator=_seeded(seed + 1, x0_a.device),
                                  progress=progress, start=t) for lam in lambdas])


# --------------------------------------------------------------------------------------------
# Guidance as model wrappers
# --------------------------------------------------------------------------------------------
def classifier_free(model_cond: Model, model_uncond: Model, scale: float,
                    channels: int | None = None) -> Model:
    """eps = eps_u + s (eps_c - eps_u) (Ho & Salimans 2021); s = 1 is the
    conditional model.

    With a learned variance pass ``channels`` (the image channels): only those
    are guided and the variance channels are taken from the conditional model,
    as GLIDE does.
    """

    def guided(x, t):
        c, u = model_cond(x, t), model_uncond(x, t)
        if channels is None:
            return u + scale * (c - u)
        g = u[:, :channels] + scale * (c[:, :channels] - u[:, :channels])
        return torch.cat([g, c[:, channels:]], dim=1)

    return guided


def guided_by(net, scale: float, cond: dict, null: dict, channels: int | None = None) -> Model:
    """Classifier-free guidance on any conditioning of one network: ``cond`` and ``null`` are the
    keyword arguments of the conditional and unconditional calls (``{"y": y}`` / ``{"y": -1}``,
    ``{"tokens": t}`` / ``{"tokens": empty}``, ``{"embed": z}`` / ``{"embed": 0}``)."""
    from .nets import as_model

    return classifier_free(as_model(net, **cond), as_model(net, **null), scale, channels)


GradFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
GUIDANCE_FORMS = ("mean", "eps")


def classifier_guidance(model: Model, grad_log_p: GradFn, diff: Diffusion,
                        scale: float, form: str = "mean") -> Model:
    """Classifier guidance (Dhariwal & Nichol 2021) as a wrapper that shifts
    the model's prediction.

    ``grad_log_p(x_t, t)`` returns grad_x log p(y | x_t) at original steps t.
    * ``form="mean"`` (their Algorithm 1, ancestral sampling): the reverse
      mean moves by s * Sigma * grad. The mean is linear in the predicted x_0
      (Eq. 7), so the wrapper moves x_0 by s * Sigma * grad / coef_x0 and
      re-expresses it in the model's parametrization.
    * ``form="eps"`` (their Algorithm 2, DDIM):
      eps_hat = eps - s * sqrt(1 - alpha_bar) * grad.

    ``diff`` must be the diffusion the sampler runs (respaced or not); it is
    used to read Sigma.
    """
    if form not in GUIDANCE_FORMS:
        raise ValueError(f"unknown guidance form {form!r}; valid choices: "
                         f"{list(GUIDANCE_FORMS)}")
    sched = diff.schedule

    def guided(x, t_orig):
        out = model(x, t_orig)
        i = sched.index_of(t_orig)
        with torch.enable_grad():
            g = grad_log_p(x.detach(), t_orig).double()
        p = p_mean_variance(diff, out, x, i, clip_denoised=False)
        if form == "mean":
            if diff.parametrization.predicts_mean:
                new_mean = p["mean"] + scale * p["var"] * g
                mean_out = new_mean
            else:
                coef_x0 = sched.at("posterior_coef_x0", i, x)
                x0 = p["x0"] + scale * p["var"] * g / coef_x0
                mean_out = output_from_x0(diff, x, i, x0)
        else:
            eps = (p["eps"]
                   - scale * sched.at("sqrt_one_minus_alpha_bar", i, x) * g)
            x0 = (sched.at("sqrt_recip_alpha_bar", i, x) * x
                  - sched.at("sqrt_recipm1_alpha_bar", i, x) * eps)
            mean_out = output_from_x0(diff, x, i, x0)
        _, var_out = split_output(diff, out)
        mean_out = mean_out.to(out.dtype)
        if var_out is None:
            return mean_out
        return torch.cat([mean_out, var_out], dim=1)

    return guided


def sample_batched(sampler: Callable, model: Model, diff: Diffusion, n: int, shape: tuple, *,
                   seed: int = 0, device="cpu", batch_size: int = 256, progress: bool = False,
                   **kw) -> torch.Tensor:
    """``n`` samples of per-example ``shape`` by ``sampler`` (``ancestral``, ``ddim`` or any function
    of (model, diff, x_T, *, generator, ...)) in batches, reproducible given ``seed``; ``kw`` goes to
    the sampler. Returns float32 on the CPU."""
    if not callable(sampler):
        raise TypeError(f"sample_batched takes the sampler itself (sampling.ancestral, sampling.ddim or "
                        f"another function of (model, diff, x_T, *, generator)), not {sampler!r}")
    g = torch.Generator(device=device).manual_seed(seed)
    out = []
    desc = f"{getattr(sampler, '__name__', 'sampler')} sampling"
    for start in tqdm(range(0, n, batch_size), desc=desc, disable=not progress, leave=False):
        b = min(batch_size, n - start)
        out.append(sampler(model, diff, noise_like((b, *shape), g, device), generator=g, **kw).float().cpu())
    return torch.cat(out)


# ---- unCLIP's diffusion prior ------------------------------------------------------------------
@torch.no_grad()
def sample_prior(prior: torch.nn.Module, diff, tokens: torch.Tensor,
                 z_text: torch.Tensor, candidates: int = 2, seed: int = 0,
                 scale: float = 1.0) -> torch.Tensor:
    """unCLIP's diffusion-prior sampling (``prior``: a
    ``nets.unclip.DiffusionPrior``): ``candidates`` embeddings per caption by
    the ancestral sampler of ``diff`` (respace it for fewer steps), keeping
    the one with the largest dot product with z_text (Sec. 2.2). Embeddings
    are in the prior's scaled space; returns (B, clip_dim) float32 unit
    vectors. ``scale`` is the embedding scale the prior was trained with
    (z_text is given unit-norm)."""
    dev = next(prior.parameters()).device
    tokens, z_text = (tokens.to(dev),
                      F.normalize(z_text.float().to(dev), dim=-1))
    model = as_model(prior, tokens=tokens, z_text=z_text * scale)
    g = torch.Generator(device=dev).manual_seed(seed)
    draws = []
    for _ in range(candidates):
        x_T = noise_like((len(tokens), prior.cfg.clip_dim), g, dev)
        draws.append(F.normalize(
            ancestral(model, diff, x_T, generator=g).float(), dim=-1))
    z = torch.stack(draws, 1)  # (B, K, d)
    best = (z * z_text[:, None]).sum(-1).argmax(1)
    return z[torch.arange(len(z)), best]
