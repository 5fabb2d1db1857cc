# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DDPM: denoising diffusion probabilistic models
#
# [![Open in Colab](../book/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/02_ddpm.ipynb)
#
# Ho, Jain and Abbeel {cite}`ho2020ddpm` turned the diffusion models of Sohl-Dickstein et al.
# {cite}`sohldickstein2015` into an image generator that matched GANs on CIFAR-10. The model is a
# fixed noising chain and a learned denoising chain; the paper's contribution is a
# parametrization (predict the noise $\epsilon$) and a loss ($L_\text{simple}$) under which a plain
# UNet trains stably and samples well. This chapter derives the method, shows the library code for
# each equation, checks the samplers against an exact denoiser, and re-runs the paper's ablation
# (Table 2) and its figures at a scale that fits a laptop CPU.

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # on Colab, install the book's library first (locally: `make install`)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ddpm_lib[hub] @ git+https://github.com/ddpm-book/ddpm-reproduction-book@main"], check=True)

import ddpm_lib  # before torch: it makes idle OpenMP threads sleep, not spin (see the run card)

import dataclasses
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ddpm_lib import data as DS, diffusion as D, metrics, nets, notebook, oracle, sampling as smp
from ddpm_lib import schedules as S, train as TR, viz
from ddpm_lib.nets import unet as U

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9})
nb = notebook.Session("02_ddpm", globals())

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | gpu | auto (DDPM_PROFILE if set, else gpu with CUDA, else cpu)
seed = 0

# %%
cfg = nb.start()
device = notebook.device()
numbers = {}  # every number the claims table quotes, saved with the results

# %% [markdown]
# ## The idea
#
# Destroying data is easy: add a little Gaussian noise, $T = 1000$ times. If each step is small,
# the reverse of each step is also nearly Gaussian, so a network only has to learn a mean (and
# perhaps a variance) per step to undo the chain. Sampling then starts from pure noise and applies
# the learned reverse step $T$ times. Chapter 00 showed the forward chain; here we learn to run it
# backwards.
#
# ## The math
#
# **Forward process** (Eq. 2 and 4). With $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$,
#
# $$
# q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{\alpha_t}\,x_{t-1},\ \beta_t I\big), \qquad
# q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big).
# $$
#
# **The reverse process** is a Markov chain of Gaussians with learned means and (fixed or learned)
# covariances, started from $p(x_T) = \mathcal N(0, I)$:
#
# $$
# p_\theta(x_{t-1} \mid x_t) = \mathcal N\big(\mu_\theta(x_t, t),\ \Sigma_\theta(x_t, t)\big).
# $$
#
# **The bound.** Training maximises the evidence lower bound, which splits into one term per step
# (Eq. 5):
#
# $$
# \mathbb E\left[-\log p_\theta(x_0)\right] \le \mathbb E_q\Big[
# \underbrace{D_\text{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T}
# + \sum_{t>1} \underbrace{D_\text{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
# \underbrace{-\log p_\theta(x_0 \mid x_1)}_{L_0}\Big].
# $$
#
# Every KL compares two Gaussians, because the forward *posterior* is Gaussian in closed form (Eq. 6-7):
#
# $$
# q(x_{t-1}\mid x_t, x_0) = \mathcal N\big(\tilde\mu_t(x_t, x_0),\ \tilde\beta_t I\big),\quad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 + \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\quad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t.
# $$
#
# $L_T$ has no parameters; $L_0$ is a Gaussian integrated over each of the 256 pixel bins (Eq. 13).
#
# **From $\tilde\mu$ to $\epsilon$.** With a fixed $\Sigma_\theta = \sigma_t^2 I$, each KL term is a
# weighted squared error between means (Eq. 8): $L_{t-1} = \mathbb E\big[\tfrac{1}{2\sigma_t^2}
# \|\tilde\mu_t(x_t, x_0) - \mu_\theta(x_t, t)\|^2\big] + C$. Writing $x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$
# and substituting $x_0$ gives $\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\epsilon\big)$,
# so the network may as well predict $\epsilon$ (Eq. 11):
#
# $$
# \mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big),
# \qquad
# L_{t-1} - C = \mathbb E\Big[\frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}\,\big\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\|^2\Big].
# $$
#
# Predicting $\epsilon$ is denoising score matching: the best $\epsilon_\theta$ is
# $-\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log q(x_t)$, and Algorithm 2's update is a step of
# Langevin dynamics with that score (Sec. 3.2).
#
# **$L_\text{simple}$** (Eq. 14) drops the weight in front of the squared error:
#
# $$
# L_\text{simple}(\theta) = \mathbb E_{t, x_0, \epsilon}\Big[\big\|\epsilon - \epsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\ t)\big\|^2\Big],
# \qquad t \sim \mathcal U\{1, \dots, T\}.
# $$
#
# The weight it drops is large at small $t$, where denoising is easy; $L_\text{simple}$ spends the
# network's capacity on the harder, noisier steps. That is the paper's explanation of why it gives
# better samples and a worse bound. The weights, for the linear schedule with $\sigma_t^2 = \beta_t$:

# %% tags=["nbval-check-output"]
lin1000 = S.linear(1000)
weight = lin1000.betas**2 / (2 * lin1000.betas * lin1000.alphas * (1 - lin1000.alpha_bar))  # sigma^2 = beta
for t in [1, 2, 10, 100, 500, 1000]:
    print(f"t = {t:4d}: weight of the true bound relative to L_simple = {weight[t - 1].item():.3e}")
print(f"ratio between t = 1 and t = 1000: {(weight[0] / weight[-1]).item():.1f}")

# %% [markdown]
# ## The code
#
# The library keeps the pieces apart (schedule, parametrization, loss, sampler, network). Algorithm 1
# (training) is a uniformly drawn $t$, a fresh $\epsilon$, and $L_\text{simple}$: `q_sample` is Eq. 4,
# `loss_simple` Eq. 14 (and its target depends on the parametrization, which Table 2 varies).

# %%
notebook.show_source(D.q_sample, D.loss_simple)

# %% [markdown]
# Algorithm 2 (sampling) is `ancestral_steps`: the mean from the network output (`p_mean_variance`
# turns an $\epsilon$, $x_0$, $v$ or $\mu$ prediction into $\mu_\theta$ through Eq. 7 and 11) plus
# $\sigma_t z$, with no noise at the last step. The true bound's terms are `vb_terms`.

# %%
notebook.show_source(smp.ancestral_steps, D.vb_terms)

# %% [markdown]
# ## Before any training: the exact denoiser
#
# For a Gaussian mixture the optimal $\epsilon_\theta$ is known in closed form
# (`ddpm_lib.oracle`). Driving Algorithm 2 with it must reproduce the mixture; this separates
# sampler bugs from training problems, and it is the test the library's sampler passes in CI.

# %%
gm = oracle.example_2d()
toy = D.Diffusion(lin1000, "eps", "fixed_large", clip_denoised=False)
g = torch.Generator().manual_seed(seed)
n_toy = 2000 if nb.profile == "smoke" else 5000
real_toy = gm.sample(n_toy, g)[0]
chain = list(smp.ancestral_steps(gm.model(lin1000), toy, smp.noise_like((n_toy, 2), g), generator=g))
oracle_samples = chain[-1][1]
print(f"mean log-likelihood under the true mixture: data {gm.log_prob(real_toy).mean():.3f}, "
      f"oracle-driven DDPM samples {gm.log_prob(oracle_samples).mean():.3f} (n = {n_toy})")
numbers["oracle_loglik"] = [gm.log_prob(real_toy).mean().item(), gm.log_prob(oracle_samples).mean().item()]
snap = {999: chain[0][1], 500: chain[499][1], 200: chain[799][1], 0: oracle_samples}
fig = viz.scatter_panels([real_toy] + [v for v in snap.values()],
                         ["data"] + [f"x at t = {k}" for k in snap], lim=3.0)
plt.show()

# %% [markdown]
# ## Experiment 1: the DDPM recipe
#
# Linear schedule, $T = 1000$, $\epsilon$-prediction, $L_\text{simple}$, $\sigma_t^2 = \beta_t$, EMA of
# the weights. The data and the network are the profile's (see the run card); the paper's CIFAR-10
# model is the `ddpm_cifar10` preset, reported here for scale:

# %% tags=["nbval-check-output"]
cifar_unet = U.UNet(U.PRESETS["ddpm_cifar10"])
print("DDPM CIFAR-10 UNet:", nets.describe(cifar_unet, torch.zeros(1, 3, 32, 32), torch.zeros(1)))
del cifar_unet

# %%
def feature_extractor(name, size):
    recipe = None
    if cfg.feature_epochs is not None:
        recipe = dataclasses.replace(metrics.RECIPES[name], epochs=cfg.feature_epochs)
    return metrics.get_extractor(name, image_size=size, recipe=recipe, device=device)


train_set, test_set = nb.load_pair(cfg.data, cfg.image_size, cfg.data_fallback)
C = train_set.x.shape[1]
net_cfg = U.preset(cfg.unet, image_size=cfg.image_size, in_channels=C, out_channels=C,
                   base_channels=cfg.base_channels, num_res_blocks=cfg.num_res_blocks, dropout=cfg.dropout)
diff = D.Diffusion(S.linear(cfg.T), "eps", "fixed_large")
tcfg = TR.TrainConfig(train_images=cfg.train_images, batch_size=cfg.batch_size, lr=cfg.lr,
                      warmup_images=cfg.warmup_images, ema_decay=cfg.ema_decay, seed=seed)
main = TR.train_cached("02_ddpm_main", U.UNet(net_cfg), TR.DiffusionObjective(diff, "simple"), train_set, tcfg,
                       device=device)
model = nets.as_model(main.ema)
x_probe = train_set.x[:2].to(device)
print(f"data: {train_set.name} {tuple(train_set.x.shape)}; network: "
      + nets.describe(main.ema, x_probe, torch.zeros(2, device=device)))
print(f"trained {main.steps} steps ({main.steps * cfg.batch_size:,} images) in "
      f"{'(loaded from the cache)' if main.loaded else f'{main.wall_s:.0f} s'}")

# %%
imgs, losses = main.losses()
fig, ax = plt.subplots(figsize=(4, 2.6))
ax.plot(imgs, losses)
ax.set(xlabel="images seen", ylabel=r"$L_\mathrm{simple}$", yscale="log", title="training loss")
plt.show()

# %%
sampler_diff = diff.respace(str(cfg.sample_steps))
samples = smp.sample_batched("ancestral", model, sampler_diff, cfg.n_samples, train_set.image_shape, seed=seed,
                             device=device, progress=True)
fig = viz.show_grid(samples[:64], nrow=8, title=f"DDPM samples ({cfg.sample_steps} ancestral steps)")
plt.show()
fig = viz.show_grid(train_set.x[:64], nrow=8, title="training images")
plt.show()

# %%
extractor = feature_extractor(train_set.name, cfg.image_size)
n_eval = min(cfg.n_samples, len(test_set))
main_eval = metrics.evaluate(extractor, train_set.x, samples[:n_eval], real_ref=test_set.x[:n_eval])
print(main_eval)
numbers["main"] = main_eval.as_row()

# %% [markdown]
# The Frechet distance (FD) and KID here use the features of a small classifier trained on the same
# data set (`metrics.get_extractor`), not Inception, so they are comparable across the rows of this
# chapter but not with the paper's FID. The *floor* is the same metric between the training set and
# held-out real images of the same count: the best score any generator can get at this sample size.

# %% [markdown]
# ## Experiment 2: the parametrization ablation (Table 2)
#
# Six reverse-process parametrizations and objectives, each trained with the same budget, each
# sampled on the full $T$-step chain (a predicted mean belongs to one step size, so these models
# cannot be respaced), each scored by FD/KID against held-out data and by the bound on held-out data:
#
# * $\tilde\mu$ prediction, trained on the true bound $L$, with a learned diagonal $\Sigma$ or a fixed
#   isotropic $\Sigma = \beta_t I$, and with the unweighted mean squared error $\|\tilde\mu - \mu_\theta\|^2$;
# * $\epsilon$ prediction, trained on $L$ (learned or fixed $\Sigma$), and with $L_\text{simple}$.
#
# The paper's caption: "blank entries were unstable to train and generated poor samples with
# out-of-range scores". The bound is estimated by stratified sampling over steps (the decoder term
# exactly), which is unbiased; its standard error is printed.

# %%
ROWS = [  # (label, parametrization, variance, loss, paper IS, paper FID); None: the paper's blank entry
    ("mu: L, learned diagonal Sigma", "mu", "learned", "vlb", "7.28±0.10", "23.69"),
    ("mu: L, fixed isotropic Sigma", "mu", "fixed_large", "vlb", "8.06±0.09", "13.22"),
    ("mu: ||mu~ - mu||^2", "mu", "fixed_large", "simple", None, None),
    ("eps: L, learned diagonal Sigma", "eps", "learned", "vlb", None, None),
    ("eps: L, fixed isotropic Sigma", "eps", "fixed_large", "vlb", "7.67±0.13", "13.51"),
    ("eps: ||eps - eps_theta||^2 (L_simple)", "eps", "fixed_large", "simple", "9.46±0.11", "3.17"),
]
abl_train, abl_test = nb.load_pair(cfg.ablation_data, cfg.ablation_size, cfg.data_fallback)
Ca = abl_train.x.shape[1]
abl_sched = S.linear(cfg.T)
abl_tcfg = TR.TrainConfig(train_images=cfg.ablation_images, batch_size=64, lr=cfg.ablation_lr,
                          warmup_images=2000 if nb.profile != "smoke" else 0, ema_decay=0.995, seed=seed)
abl_extractor = feature_extractor(abl_train.name, cfg.ablation_size)
n_abl = min(cfg.ablation_samples, len(abl_test))
nll_x = abl_test.x[:min(len(abl_test), 256)].to(device)
table2, abl_samples, abl_models = [], {}, {}
for label, param, var, loss, p_is, p_fid in ROWS:
    d = D.Diffusion(abl_sched, param, var)
    net = U.UNet(U.preset(cfg.ablation_unet, image_size=cfg.ablation_size, in_channels=Ca,
                          out_channels=d.out_channels(Ca)))
    row = dict(row=label, paper_IS=p_is or "unstable", paper_FID=p_fid or "unstable")
    try:
        res = TR.train_cached("02_ddpm_table2", net, TR.DiffusionObjective(d, loss), abl_train, abl_tcfg, device=device)
    except FloatingPointError as e:
        table2.append({**row, "status": f"diverged: {e}".split(":")[0] + " (non-finite loss)"})
        continue
    m = nets.as_model(res.ema)
    est = [D.nll_bpd(m, d, nll_x, generator=torch.Generator(device=device).manual_seed(seed + k),
                     n_steps=cfg.ablation_nll_steps)["total"].mean().item() for k in range(2)]
    xs = smp.sample_batched("ancestral", m, d, n_abl, abl_train.image_shape, seed=seed, device=device, progress=True)
    finite = torch.isfinite(xs).all(dim=(1, 2, 3))
    out_of_range = (xs.abs() > 1.5).flatten(1).float().mean(1)
    row.update(status="trained", nll_bpd=float(np.mean(est)), nll_se=float(abs(est[0] - est[1]) / 2),
               frac_nonfinite=float((~finite).float().mean()), frac_pixels_out_of_range=float(out_of_range.mean()))
    if finite.sum() >= 2:
        ev = metrics.evaluate(abl_extractor, abl_train.x, xs[finite].clamp(-1, 1), real_ref=abl_test.x[:int(finite.sum())])
        row.update(fd=ev.fd, fd_floor=ev.fd_floor, kid=ev.kid, kid_floor=ev.kid_floor, precision=ev.precision,
                   recall=ev.recall, isc=ev.isc)
    table2.append(row)
    abl_samples[label], abl_models[label] = xs, (m, d)
numbers["table2"] = table2


# %%
def fmt(v, spec=".3g"):
    return "–" if v is None else (format(v, spec) if isinstance(v, float) else str(v))


cols = ["row", "paper_IS", "paper_FID", "status", "nll_bpd", "nll_se", "fd", "fd_floor", "kid", "isc",
        "frac_pixels_out_of_range"]
notebook.show_table([{c: fmt(r.get(c)) for c in cols} for r in table2],
                    caption=f"Table 2 at our scale: {abl_train.name} {cfg.ablation_size}x{cfg.ablation_size}, "
                            f"{cfg.ablation_images:,} training images per row, {n_abl} samples per row "
                            f"(full {cfg.T}-step chain), FD/KID on in-domain features; IS analogue "
                            f"= exp KL of the digit classifier (max 10)")
short = {r[0]: r[0].replace("Sigma", "Σ").replace("||mu~ - mu||^2", "MSE on μ").replace(
    "||eps - eps_theta||^2 (L_simple)", "L_simple").replace("learned diagonal", "learned").replace(
    "fixed isotropic", "fixed").replace("mu:", "μ:").replace("eps:", "ε:") for r in ROWS}
fig, axes = plt.subplots(1, len(abl_samples), figsize=(1.9 * len(abl_samples), 2.4))
for ax, (label, xs) in zip(np.atleast_1d(axes), abl_samples.items()):
    viz.show_grid(xs[:36].clamp(-1, 1), nrow=6, ax=ax, title=short[label].replace(": ", ":\n"))
plt.show()

# %% [markdown]
# ## Experiment 3: sample quality against the bound
#
# Table 1 of the paper reports that the model trained on the true bound (fixed $\Sigma$) has the
# better NLL (3.70 against 3.75 bits/dim) and the worse samples (FID 13.51 against 3.17). The same
# two rows of our Table 2, side by side:

# %%
by_row = {r["row"]: r for r in table2}
vlb_row, simple_row = by_row[ROWS[4][0]], by_row[ROWS[5][0]]
pts = {k: (r["nll_bpd"], r["fd"]) for k, r in [("L (fixed Σ)", vlb_row), ("L_simple", simple_row)] if "fd" in r}
fig = viz.tradeoff_plot(pts, xlabel="NLL bound (bits/dim, held-out)", ylabel="FD (in-domain features)")
plt.show()
for k, r in [("trained on L, fixed Sigma", vlb_row), ("trained on L_simple", simple_row)]:
    print(f"{k:>26}: NLL {fmt(r.get('nll_bpd'))} ± {fmt(r.get('nll_se'))} bits/dim, FD {fmt(r.get('fd'))}")

# %% [markdown]
# ## Experiment 4: progressive generation
#
# Along the reverse chain the network's prediction of $x_0$ sharpens: "large scale image features
# appear first and details appear last" (Sec. 4.3, Fig. 6). We measure it by splitting each image into
# a coarse part (a 4x average-pool, upsampled back) and the detail that remains, and asking, for each
# part, how much of the final sample's variation the prediction $\hat x_0$ at step $t$ already
# explains: $r(t) = 1 - \mathrm{MSE}(\hat x_0, x_0^\text{final}) / \mathrm{Var}(x_0^\text{final})$. A part
# has *settled* once $r$ stays above 0.9.

# %%
g = torch.Generator(device=device).manual_seed(seed + 1)
n_prog = 32 if nb.profile != "smoke" else 8
trace = list(smp.ancestral_steps(model, sampler_diff, smp.noise_like((n_prog, *train_set.image_shape), g, device),
                                 generator=g))
steps_orig = sampler_diff.schedule.timestep_map.tolist()[::-1]  # original t of each yielded step
x0_preds = torch.stack([p.float().cpu() for _, _, p in trace])  # (steps, n, C, H, W)
final = trace[-1][1].float().cpu()
pool = 4 if cfg.image_size >= 16 else 2
coarse = lambda x: F.interpolate(F.avg_pool2d(x.flatten(0, 1), pool), scale_factor=pool).reshape(x.shape)
detail = lambda x: x - coarse(x)


def explained(part):
    ref = part(final[None])
    err = ((part(x0_preds) - ref) ** 2).mean(dim=(1, 2, 3, 4))
    return 1 - err / ((ref - ref.mean()) ** 2).mean()


r_coarse, r_detail = explained(coarse), explained(detail)


def settles(r, level=0.9):
    """The largest t from which r stays above ``level`` until the end of the chain."""
    below = torch.nonzero(r < level)
    if not len(below):
        return steps_orig[0]
    last = int(below.max())
    return steps_orig[last + 1] if last + 1 < len(r) else 0


t_coarse, t_detail = settles(r_coarse), settles(r_detail)
numbers["progressive"] = dict(t_coarse_settles=t_coarse, t_detail_settles=t_detail)
fig, ax = plt.subplots(figsize=(4.2, 2.6))
ax.plot(steps_orig, r_coarse.clamp(min=-0.5), label="coarse (pooled)")
ax.plot(steps_orig, r_detail.clamp(min=-0.5), label="detail (residual)")
ax.axhline(0.9, color="gray", lw=0.8, ls="--")
ax.set(xlabel="t (the reverse process runs right to left)", ylabel="share of the final\nsample explained")
ax.invert_xaxis()
ax.legend(frameon=False)
plt.show()
print(f"coarse structure settles (r > 0.9) from t = {t_coarse}; detail from t = {t_detail}")
idx = sorted({min(range(len(steps_orig)), key=lambda i: abs(steps_orig[i] - t))
              for t in np.linspace(steps_orig[0], 0, 7)})
fig = viz.show_trajectory([x0_preds[i][:6] for i in idx], labels=[f"t={steps_orig[i]}" for i in idx],
                          title="predicted x0 along the chain (rows: samples)")
plt.show()

# %% [markdown]
# ### Several samples from one shared $x_t$ (Fig. 7)
#
# Encode held-out images to $x_t$ with $q$, then run the reverse process from that $x_t$ several
# times. At small $t$ the samples keep the image; at large $t$ they keep only what survives the
# noise. With a digit classifier we can count how often a sample keeps its source's class.

# %%
t_values = [int(f * cfg.T) for f in (0.1, 0.25, 0.5, 0.75, 0.9)]
idx_of = lambda t: int(torch.argmin((sampler_diff.schedule.timestep_map - t).abs()))
src = test_set.x[:16].to(device)
agree, grids = {}, []
for t in t_values:
    xs = smp.samples_from_shared_xt(model, sampler_diff, src, idx_of(t), n=4, seed=seed + t)  # (4, 16, C, H, W)
    if test_set.y is not None and extractor.label_head is not None:
        agree[t] = metrics.conditional_accuracy(extractor, xs.flatten(0, 1).float().cpu(), test_set.y[:16].repeat(4))
    grids.append(torch.cat([src[:4].cpu()[None], xs[:, :4].float().cpu()]).transpose(0, 1).flatten(0, 1))
numbers["shared_xt_class_agreement"] = agree
fig, axes = plt.subplots(1, len(t_values), figsize=(2.1 * len(t_values), 2.4))
for ax, t, gr in zip(np.atleast_1d(axes), t_values, grids):
    viz.show_grid(gr.clamp(-1, 1), nrow=5, ax=ax, title=f"t = {t}\n(left: source)")
plt.show()
if agree:
    print("share of samples that keep the source's class: " + ", ".join(f"t={t}: {a:.0%}" for t, a in agree.items())
          + f" (chance: {1 / len(test_set.classes):.0%})")

# %% [markdown]
# ## Experiment 5: rate and distortion along the chain (Fig. 5)
#
# DDPM reads the bound as a code length. The sender transmits $x_T$, then each $x_{t-1}$ given
# $x_t$, paying $L_{t-1}$ bits; after receiving $x_t$ the receiver's best guess of the image is the
# predicted $\hat x_0$. Rate is the cumulative bits, distortion the RMSE of $\hat x_0$ on a 0-255 scale.
# The paper: for CIFAR-10, "a rate of 1.78 bits/dim and a distortion of 1.97 bits/dim, which amounts to
# a root mean squared error of 0.95 on a scale from 0 to 255. More than half of the lossless codelength
# describes imperceptible distortions." Here with the exact bound (all $T$ steps) on held-out images,
# for both fixed variances from the same network outputs:

# %%
nll_imgs = test_set.x[:cfg.nll_images].to(device)
both = D.nll_bpd(model, {"sigma^2 = beta": diff, "sigma^2 = beta_tilde": dataclasses.replace(diff, var="fixed_small")},
                 nll_imgs, generator=torch.Generator(device=device).manual_seed(seed), progress=True)
rd = D.rate_distortion(both["sigma^2 = beta"])
lossless, rate_end = rd["lossless"].item(), rd["rate"][0].item()
decoder_bits, rmse_end = lossless - rate_end, rd["distortion"][0].item()
numbers["rate_distortion"] = dict(lossless=lossless, rate_at_t1=rate_end, decoder_bits=decoder_bits,
                                  rmse_at_t1=rmse_end,
                                  nll={k: v["total"].mean().item() for k, v in both.items()})
t_axis = np.arange(cfg.T)
fig, axes = plt.subplots(1, 3, figsize=(9.5, 2.6))
axes[0].plot(t_axis, rd["distortion"].cpu()); axes[0].set(xlabel="t", ylabel="distortion (RMSE, 0-255)")
axes[1].plot(t_axis, rd["rate"].cpu()); axes[1].set(xlabel="t", ylabel="rate (bits/dim)")
axes[2].plot(rd["rate"].cpu(), rd["distortion"].cpu()); axes[2].set(xlabel="rate (bits/dim)", ylabel="distortion")
for ax in axes[:2]:
    ax.invert_xaxis()
fig.tight_layout()
plt.show()
print(f"lossless code length (the bound): {lossless:.3f} bits/dim; rate after the last latent: {rate_end:.3f}; "
      f"the rest ({decoder_bits:.3f} bits/dim, {decoder_bits / lossless:.0%}) codes a residual of RMSE {rmse_end:.2f}")

# %% [markdown]
# ## Experiment 6: $\sigma_t^2 = \beta_t$ against $\sigma_t^2 = \tilde\beta_t$
#
# "Experimentally, both $\sigma_t^2=\beta_t$ and $\sigma_t^2=\tilde\beta_t$ had similar results" (Sec. 3.2):
# the first is optimal for $x_0 \sim \mathcal N(0, I)$, the second for a single deterministic $x_0$.
# The variance is a sampling choice for an $L_\text{simple}$ model, so we sample the Table 2
# $L_\text{simple}$ model both ways on the full chain, and score the bound of the main model both ways.

# %%
var_rows = []
if ROWS[5][0] in abl_models:
    m_simple, d_simple = abl_models[ROWS[5][0]]
    for name, var in [("sigma^2 = beta", "fixed_large"), ("sigma^2 = beta_tilde", "fixed_small")]:
        dv = dataclasses.replace(d_simple, var=var)
        xs = abl_samples[ROWS[5][0]] if var == "fixed_large" else smp.sample_batched(
            "ancestral", m_simple, dv, n_abl, abl_train.image_shape, seed=seed, device=device, progress=True)
        ev = metrics.evaluate(abl_extractor, abl_train.x, xs.clamp(-1, 1), real_ref=abl_test.x[:n_abl])
        var_rows.append(dict(variance=name, fd=ev.fd, fd_floor=ev.fd_floor, kid=ev.kid,
                             nll_main_model=both[name]["total"].mean().item()))
notebook.show_table([{k: fmt(v) for k, v in r.items()} for r in var_rows],
                    caption="Sampling variance: FD/KID of the Table 2 L_simple model (full chain); "
                            "exact NLL of the main model")
numbers["variance_choice"] = var_rows

# %% [markdown]
# ## Experiment 7: interpolation through $x_t$ (Fig. 8)
#
# Encode two images to $x_t$, mix the latents linearly, decode with the reverse process using the same
# noise for every mix. At small $t$ the decoder blends pixels; at larger $t$ it produces new, plausible
# images in between.

# %%
lams = [0.0, 0.25, 0.5, 0.75, 1.0]
pairs = test_set.x[:2].to(device), test_set.x[2:4].to(device)
fig, axes = plt.subplots(1, 2, figsize=(6.5, 2.2))
for ax, t in zip(axes, [cfg.T // 4, cfg.T // 2]):
    rows = smp.interpolate(model, sampler_diff, *pairs, t=idx_of(t), lambdas=lams, seed=seed)  # (lams, 2, ...)
    viz.show_grid(rows.transpose(0, 1).flatten(0, 1).float().cpu().clamp(-1, 1), nrow=len(lams), ax=ax,
                  title=f"t = {t}: lambda = 0 ... 1")
plt.show()

# %% [markdown]
# ## Claims
#
# Each row: the paper's claim and number (verified against the paper's text), ours, our setting, and
# whether it holds at our scale. Sample-quality numbers here are Frechet distances on in-domain
# classifier features, which are comparable between our rows but not with Inception FIDs.

# %%
def holds(ok):
    return "yes" if ok else "no"


fds = {r["row"]: r.get("fd") for r in table2}
finite_fds = {k: v for k, v in fds.items() if v is not None and math.isfinite(v)}
best = min(finite_fds, key=finite_fds.get) if finite_fds else None
simple_label = ROWS[5][0]
setting = (f"{abl_train.name} {cfg.ablation_size}x{cfg.ablation_size}, {cfg.ablation_unet} UNet, "
           f"{cfg.ablation_images:,} images per row, T={cfg.T}, {n_abl} samples")
claims = [
    notebook.Claim(
        "eps-prediction with L_simple gives the best samples of the six Table 2 rows",
        "FID 3.17 vs 13.22 for the best other row (Table 2, CIFAR-10)",
        "; ".join(f"{k}: FD {fmt(v)}" for k, v in fds.items()),
        setting, holds(best == simple_label),
        "" if best == simple_label else f"best row here: {best}"),
]
if "nll_bpd" in vlb_row and "nll_bpd" in simple_row:
    noise = 2 * math.hypot(vlb_row["nll_se"], simple_row["nll_se"])  # two standard errors of the difference
    better_nll = vlb_row["nll_bpd"] < simple_row["nll_bpd"] - noise
    worse_fd = vlb_row.get("fd", math.inf) > simple_row.get("fd", math.inf)
    claims.append(notebook.Claim(
        "training on the true bound L gives a better NLL but worse samples than L_simple",
        "NLL 3.70 vs 3.75 bits/dim, FID 13.51 vs 3.17 (Table 1)",
        f"NLL {vlb_row['nll_bpd']:.3f} ± {vlb_row['nll_se']:.3f} vs {simple_row['nll_bpd']:.3f} ± {simple_row['nll_se']:.3f} "
        f"bits/dim, "
        f"FD {fmt(vlb_row.get('fd'))} vs {fmt(simple_row.get('fd'))}",
        setting, "yes" if better_nll and worse_fd else ("partly" if better_nll or worse_fd else "no"),
        "" if better_nll and worse_fd else
        (f"the NLL difference is within the estimate's noise (2 standard errors = {noise:.3f})"
         if abs(vlb_row["nll_bpd"] - simple_row["nll_bpd"]) <= noise else
         "the bound-trained model's NLL is worse at this budget" if not better_nll else
         "the bound-trained model's samples are not worse here")))
poor = [r for r in table2 if r["paper_FID"] == "unstable"]
ref_fd = fds.get(simple_label)
poor_ok = [r["status"] != "trained" or r.get("fd") is None or (ref_fd is not None and r["fd"] > 2 * ref_fd)
           or r.get("frac_pixels_out_of_range", 0) > 0.01 for r in poor]
claims.append(notebook.Claim(
    "learned diagonal Sigma (eps) and the unweighted ||mu~ - mu||^2 are unstable to train and give poor samples",
    "blank entries of Table 2: 'unstable to train and generated poor samples with out-of-range scores'",
    "; ".join(f"{r['row']}: {r['status']}, FD {fmt(r.get('fd'))}, out-of-range pixels "
              f"{fmt(r.get('frac_pixels_out_of_range'), '.1%')}" for r in poor),
    setting + "; 'poor' = diverged, FD above 2x the L_simple row, or >1% pixels outside [-1.5, 1.5]",
    "yes" if all(poor_ok) else ("partly" if any(poor_ok) else "no"),
    "" if all(poor_ok) else "some of these rows trained stably and sampled well at this small scale"))
if len(var_rows) == 2:
    a, b = var_rows
    rel = abs(a["fd"] - b["fd"]) / max(a["fd"], b["fd"])
    claims.append(notebook.Claim(
        "sigma^2 = beta and sigma^2 = beta_tilde give similar samples",
        "'both ... had similar results' (Sec. 3.2)",
        f"FD {a['fd']:.3g} vs {b['fd']:.3g} (relative difference {rel:.0%}); main-model NLL "
        f"{a['nll_main_model']:.3f} vs {b['nll_main_model']:.3f} bits/dim",
        setting + "; similar = FD within 25%", holds(rel < 0.25),
        "" if rel < 0.25 else "the two variances give clearly different sample quality here"))
claims.append(notebook.Claim(
    "more than half of the lossless code length describes imperceptible distortions",
    "rate 1.78 and distortion 1.97 bits/dim, RMSE 0.95 on 0-255 (Sec. 4.3, CIFAR-10)",
    f"rate {rate_end:.2f}, remaining {decoder_bits:.2f} bits/dim ({decoder_bits / lossless:.0%}), RMSE {rmse_end:.2f}",
    f"main model, {train_set.name} {cfg.image_size}x{cfg.image_size}, exact bound on {cfg.nll_images} held-out images",
    holds(decoder_bits / lossless > 0.5 and rmse_end < 2.0),
    "" if decoder_bits / lossless > 0.5 and rmse_end < 2.0 else
    "our data (digits: 17 grey levels, upsampled) puts most of the code length elsewhere"))
claims.append(notebook.Claim(
    "large-scale features appear first, details last",
    "progressive generation, Fig. 6 (qualitative)",
    f"coarse part settles (r > 0.9) at t = {t_coarse}, detail at t = {t_detail}",
    f"main model, {cfg.sample_steps}-step chain, {n_prog} samples", holds(t_coarse > t_detail)))
if agree:
    t_mid = t_values[2]  # T / 2
    chance = 1 / len(test_set.classes)
    claims.append(notebook.Claim(
        "samples that share an intermediate x_t share high-level attributes",
        "Fig. 7 (qualitative, CelebA-HQ)",
        f"class kept: " + ", ".join(f"t={t}: {a:.0%}" for t, a in agree.items()) + f"; chance {chance:.0%}",
        f"main model, 16 held-out images x 4 samples per t; 'share' = class kept at t = T/2 in more than "
        f"twice the chance rate", holds(agree[t_mid] > 2 * chance),
        "" if agree[t_mid] > 2 * chance else
        f"the class survives to t = {max([t for t, a in agree.items() if a > 2 * chance], default=0)} but not to "
        f"T/2: with the linear schedule alpha_bar at T/2 is {float(diff.schedule.alpha_bar[cfg.T // 2]):.2f}, "
        f"too little signal in 16x16 digits"))
claims.append(notebook.Claim(
    "CIFAR-10: FID 3.17, IS 9.46, NLL <= 3.75 bits/dim",
    "Table 1 (FID against the training set; 5.24 against the test set)",
    f"not measured: {train_set.name} at {cfg.image_size}x{cfg.image_size}, in-domain features",
    f"profile {nb.profile}", "n/a",
    "needs CIFAR-10, Inception weights and ~800k training steps of the 35.7M model"))
nb.finish(claims, numbers)
