# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The forward process, made visible
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/00_forward_process.ipynb)
#
# *The badge opens this notebook in Colab once the book's repository is public; until then,
# download the notebook and upload it there ([Running the book](../book/running.md)). With a
# GPU runtime, `profile = "auto"` picks the gpu profile, which no GPU has run yet: its sizes
# are estimates (untested).*
#
# Before any network is trained, a diffusion model fixes a way of *destroying* data: add a little
# Gaussian noise, many times over, until nothing of the data is left. This short chapter looks at
# that forward process alone, on a 2-D toy and on small images of digits, with the two noise
# schedules that the next chapters use: the linear schedule of DDPM {cite}`ho2020ddpm` and the cosine
# schedule of Improved DDPM {cite}`nichol2021improved`. Nothing here is learned, so every number in
# the claims table at the end is exact or a Monte Carlo estimate with a stated error.

# %%
import subprocess
import sys

# on Colab, install the book's library first (locally: `make install`)
if "google.colab" in sys.modules:
    url = "git+https://github.com/ddpm-book/ddpm-reproduction-book@main"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"ddpm_lib[hub] @ {url}"], check=True)

# before torch: it makes idle OpenMP threads sleep, not spin (see the run card)
import ddpm_lib

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddpm_lib import data as DS, diffusion, notebook, schedules
from ddpm_lib.chapters import forward as CH

nb = notebook.Session("00_forward_process", globals())

# %% tags=["parameters"]
# smoke | cpu | gpu | auto (DDPM_PROFILE if set, else gpu with CUDA, else cpu)
profile = "auto"
seed = 0

# %%
cfg = nb.start()
rec = CH.Record()  # what the claims read, filled cell by cell

# %% [markdown]
# After each experiment a **What we see** paragraph, written from this run's numbers, says what
# the result shows and how it compares with the paper; the chapter ends with takeaways and exercises.
#
# ## The idea
#
# Take a data point $x_0$. At each of $T$ steps, shrink it a little and add a little fresh Gaussian
# noise. The shrinking keeps the variance bounded; after enough steps the point is indistinguishable
# from a draw of $\mathcal{N}(0, I)$, whatever it started as. A diffusion model
# {cite}`sohldickstein2015,ho2020ddpm` learns to run this chain backwards, and everything it learns
# depends on *how fast* the chain forgets: the noise schedule. (The chain is drawn, both ways, on
# the book's page [The ideas in pictures](../book/pictures.md).)
#
# ## The math
#
# One step of the chain (DDPM Eq. 2) adds noise of variance $\beta_t$:
#
# $$
# q(x_t \mid x_{t-1}) = \mathcal{N}\big(x_t;\ \sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\big).
# $$
#
# With $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s=1}^{t} \alpha_s$, composing $t$ Gaussian
# steps gives a Gaussian again, in closed form (DDPM Eq. 4):
#
# $$
# \begin{aligned}
# q(x_t \mid x_0) &= \mathcal{N}\big(x_t;\ \sqrt{\bar\alpha_t}\, x_0,\ (1-\bar\alpha_t) I\big),
# \quad\text{i.e.}\\
# x_t &= \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \epsilon,
# \qquad \epsilon \sim \mathcal{N}(0, I).
# \end{aligned}
# $$
#
# So $x_t$ at any $t$ can be drawn in one step, which is what makes training cheap. How much of
# $x_0$ survives is the signal-to-noise ratio
#
# $$
# \mathrm{SNR}(t) = \frac{\bar\alpha_t}{1-\bar\alpha_t}.
# $$
#
# The two schedules of this book:
#
# * **linear** (DDPM Sec. 4): $\beta_t$ rises linearly from $\beta_1 = 10^{-4}$ to $\beta_T = 0.02$,
#   with $T = 1000$;
# * **cosine** (Improved DDPM Eq. 17): $\bar\alpha_t$ is prescribed directly, and
#   $\beta_t = 1 - \bar\alpha_t / \bar\alpha_{t-1}$, clipped at $0.999$ near $t = T$:
#
# $$
# \begin{aligned}
# \bar\alpha_t &= \frac{f(t)}{f(0)}, \qquad s = 0.008,\\
# f(t) &= \cos^2\!\left(\frac{t/T + s}{1 + s}\cdot\frac{\pi}{2}\right).
# \end{aligned}
# $$
#
# At the far end, the prior term of the bound,
#
# $$
# L_T = D_{\mathrm{KL}}\big(q(x_T \mid x_0)\,\|\,\mathcal{N}(0, I)\big),
# $$
#
# measures how much of $x_0$ is still there; it has no parameters.
#
# ## The code
#
# `ddpm_lib.schedules` builds both schedules in float64 and derives $\bar\alpha_t$, the SNR and the
# posterior coefficients from the betas; `ddpm_lib.diffusion.q_sample` is Eq. 4 in one line
# (shapes: `x0` and `eps` (B, C, H, W) or (B, 2), `t` (B,) -> `x_t` like `x0`).
# The library indexes steps $0, \dots, T-1$ for the paper's $t = 1, \dots, T$.

# %% tags=["hide-input"]
notebook.show_source(diffusion.q_sample, schedules.cosine_alpha_bar)

# %% tags=["nbval-check-output"]
lin, cos = schedules.linear(cfg.T), schedules.cosine(cfg.T)
show_t = [1, cfg.T // 4, cfg.T // 2, 3 * cfg.T // 4, cfg.T]  # the paper's t
hdr = [f"{s + ' abar':>12} {'log10 SNR':>10}" for s in ("linear", "cosine")]
print(f"{'t':>6} | {hdr[0]} | {hdr[1]}")
for t in show_t:
    i = t - 1  # the library's 0-based step
    row = [f"{float(s.alpha_bar[i]):12.4e} "
           f"{math.log10(float(s.snr()[i])):10.2f}" for s in (lin, cos)]
    print(f"{t:>6} | {row[0]} | {row[1]}")

# %% [markdown]
# ### $\bar\alpha_t$ and the signal-to-noise ratio
#
# The linear schedule spends its first steps almost noise-free and then destroys the signal fast:
# $\log_{10}\mathrm{SNR}$ falls far below $-2$ long before $t = T$. The cosine schedule keeps
# $\bar\alpha_t$ close to a straight line through the middle of the chain and only reaches the
# noise floor at the very end, which is the point of it.

# %%
SNR_NOISE = CH.SNR_NOISE  # "almost pure noise": signal amplitude < noise / 10
t_axis = np.arange(1, cfg.T + 1) / cfg.T
fig, axes = plt.subplots(1, 2, figsize=(6.2, 2.6))
for s, color in ((lin, "C0"), (cos, "C1")):
    axes[0].plot(t_axis, s.alpha_bar.numpy(), color=color, label=s.name)
    axes[1].plot(t_axis, np.log10(s.snr().numpy()), color=color, label=s.name)
axes[1].axhline(math.log10(SNR_NOISE), color="gray", ls="--", lw=1,
                label=f"SNR = {SNR_NOISE:g}")
axes[0].set(xlabel="t / T", ylabel=r"$\bar\alpha_t$",
            title=r"$\bar\alpha_t$")
axes[1].set(xlabel="t / T", ylabel=r"$\log_{10}$ SNR",
            title="signal-to-noise ratio")
for ax in axes:
    ax.legend(frameon=False)
fig.tight_layout()
plt.show()

# %% [markdown]
# How much of each chain is spent in that regime, and how much is left of the data at $t = T$:

# %% tags=["nbval-check-output"]
noisy = {s.name: (s.snr() < SNR_NOISE).double() for s in (lin, cos)}
noise_fraction = {name: float(m.mean()) for name, m in noisy.items()}
first_noisy = {name: int(m.argmax()) + 1 for name, m in noisy.items()}
for name in noise_fraction:
    print(f"{name:>6}: SNR < {SNR_NOISE:g} on {noise_fraction[name]:.1%} "
          f"of the steps (from t = {first_noisy[name]} of {cfg.T})")

# %% [markdown]
# ## The experiment
#
# ### Closed form against the chain
#
# Eq. 4 claims that $T$ small Gaussian steps compose into one. Two checks. First, exactly: the
# chain's mean coefficient and variance obey $m_t = \sqrt{\alpha_t}\, m_{t-1}$ and
# $v_t = \alpha_t v_{t-1} + \beta_t$, which must reproduce $\sqrt{\bar\alpha_t}$ and
# $1 - \bar\alpha_t$ at every step. Second, by simulation: push every point of the 2-D toy through
# the chain one step at a time with fresh noise, and test that
# $(x_t - \sqrt{\bar\alpha_t}\, x_0) / \sqrt{1 - \bar\alpha_t}$ is standard normal at several $t$.

# %%
toy = DS.load(cfg.toy, n=cfg.n_toy, seed=seed).x.double()  # (N, 2)
snap = CH.snapshots(cfg.T, cfg.n_snapshots)  # 0-based, denser near t = 0


def chain_moments(s: schedules.Schedule):
    """The mean coefficient and the variance of x_t given x_0, by
    iterating the one-step kernel."""
    m, v, ms, vs = 1.0, 0.0, [], []
    for beta in s.betas.tolist():
        # DDPM Eq. 2, step by step
        m, v = math.sqrt(1.0 - beta) * m, (1.0 - beta) * v + beta
        ms.append(m)
        vs.append(v)
    return (torch.tensor(ms, dtype=torch.float64),
            torch.tensor(vs, dtype=torch.float64))


moment_err = 0.0
for s in (lin, cos):
    m, v = chain_moments(s)
    moment_err = max(moment_err,
                     float((m - s.sqrt_alpha_bar).abs().max()),
                     float((v - (1 - s.alpha_bar)).abs().max()))
print(f"moment recursion vs closed form: max abs error {moment_err:.1e}")

# %% [markdown]
# Second, by simulation: every point of the toy walks the chain one noisy step at a time, and at
# each snapshot its standardised residual should be a standard normal draw.

# %%
def simulate_chain(s: schedules.Schedule, x0: torch.Tensor, keep,
                   g: torch.Generator) -> dict:
    """x_t for every t in ``keep`` (0-based), reached by T single noisy
    steps from x0."""
    x, out, keep = x0.clone(), {}, set(int(k) for k in keep)
    for i, beta in enumerate(s.betas.tolist()):
        noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
        x = math.sqrt(1.0 - beta) * x + math.sqrt(beta) * noise
        if i in keep:
            out[i] = x.clone()
    return out


g = torch.Generator().manual_seed(seed)
z_stats = []  # (schedule, t, mean, std) of the standardised residual
for s in (lin, cos):
    for i, x_t in simulate_chain(s, toy, snap, g).items():
        z = (x_t - s.sqrt_alpha_bar[i] * toy) / s.sqrt_one_minus_alpha_bar[i]
        z_stats.append((s.name, i + 1, float(z.mean()), float(z.std())))
n_z = toy.numel()
z_mean_err = max(abs(r[2]) for r in z_stats)
z_std_err = max(abs(r[3] - 1) for r in z_stats)
# standard errors of the mean and the std of N(0, 1) samples
se_mean, se_std = 1 / math.sqrt(n_z), 1 / math.sqrt(2 * n_z)
print(f"simulated chain, {len(z_stats)} (schedule, t) pairs, "
      f"{n_z} numbers each:")
print(f"  max |mean| = {z_mean_err:.4f} "
      f"({z_mean_err / se_mean:.1f} standard errors)")
print(f"  max |std - 1| = {z_std_err:.4f} "
      f"({z_std_err / se_std:.1f} standard errors)")

# %% tags=["hide-input"]
rec.T, rec.toy, rec.n_toy, rec.n_t = cfg.T, cfg.toy, len(toy), len(snap)
rec.moment_err, rec.n_z = moment_err, n_z
rec.z_mean_err, rec.z_std_err = z_mean_err, z_std_err
notebook.see(
    f"The recursion reproduces the closed form to {moment_err:.0e} (float64 round-off), and the simulated chain's "
    f"standardised residual has mean within {z_mean_err / se_mean:.1f} and spread within {z_std_err / se_std:.1f} "
    f"standard errors of a standard normal over {len(z_stats)} (schedule, t) pairs"
    + (": Eq. 4 holds, so training may jump to any t in one draw instead of walking the chain."
       if z_mean_err < 4 * se_mean and z_std_err < 4 * se_std else
       ": the simulation departs from Eq. 4 by more than sampling noise, which would be a bug."))

# %% [markdown]
# ### The marginals $q(x_t)$ of a 2-D toy
#
# Each panel draws $x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$ for every point of
# the two-moons data (`q_sample`, blue) and, for the linear schedule, the points that walked the
# chain step by step (orange): the two clouds agree. The moons blur, shrink towards the origin and
# dissolve into the standard normal; under the linear schedule they are gone by the middle of the chain.

# %%
def gen(k):
    return torch.Generator().manual_seed(seed + k)


eps = torch.randn(toy.shape, generator=gen(1), dtype=toy.dtype)
walked = simulate_chain(lin, toy, snap, gen(2))
fig, axes = plt.subplots(2, len(snap), figsize=(6.2, 2.9),
                         sharex=True, sharey=True)
dots = dict(s=1, rasterized=True)
for row, s in enumerate((lin, cos)):
    for col, i in enumerate(snap):
        t = torch.full((len(toy),), int(i), dtype=torch.long)
        x_t = diffusion.q_sample(s, toy, t, eps)  # DDPM Eq. 4
        ax = axes[row, col]
        ax.scatter(x_t[:, 0], x_t[:, 1], alpha=0.4, color="C0", **dots)
        if s is lin:
            w = walked[i]
            ax.scatter(w[:, 0], w[:, 1], alpha=0.25, color="C1", **dots)
        ax.set(xlim=(-3.5, 3.5), ylim=(-3.5, 3.5), xticks=[], yticks=[])
        ax.set_title(f"t = {i + 1}", fontsize=8)
    axes[row, 0].set_ylabel(s.name)
fig.suptitle("q(x_t | x_0) of two moons (rows: schedule; columns: t)", y=1.02)
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Digits along $t$
#
# The same noising on real images: scikit-learn's handwritten digits (8x8, upsampled to the
# profile's `image_size`), one digit per row, at the same noise levels as above and with the same
# $\epsilon$ for both schedules. Under the linear schedule the
# digits are unreadable well before $t = T$; under the cosine schedule they survive longer.

# %%
digits = DS.load(cfg.image_data, image_size=cfg.image_size,
                 n=cfg.n_images).x.double()  # (B, 1, H, W)
eps_img = torch.randn(digits.shape, generator=gen(3), dtype=digits.dtype)


def noised_strip(s: schedules.Schedule) -> np.ndarray:
    """One row per image, one column per snapshot t, as a single
    (B*H, n*W) array in [0, 1]."""
    rows, n = [], len(snap)
    t = torch.tensor(snap, dtype=torch.long)
    for img, e in zip(digits, eps_img):
        x_t = diffusion.q_sample(s, img.expand(n, *img.shape), t,
                                 e.expand(n, *e.shape))
        rows.append(np.concatenate([x[0].numpy() for x in x_t], axis=1))
    return ((np.concatenate(rows, axis=0) + 1) / 2).clip(0, 1)


fig, axes = plt.subplots(1, 2, figsize=(6.2, 0.4 + 0.45 * len(digits)))
ticks = [(k + 0.5) * cfg.image_size for k in range(len(snap))]
for ax, s in zip(axes, (lin, cos)):
    ax.imshow(noised_strip(s), cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.set_xticks(ticks, [f"{i + 1}" for i in snap], fontsize=7)
    ax.set_yticks([])
    ax.set(title=f"{s.name} schedule", xlabel="t")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### What is left at $t = T$
#
# The prior term $L_T$ in bits per dimension, over the digits (`diffusion.prior_bpd`); DDPM reports
# $L_T \approx 10^{-5}$ bits/dim for its linear schedule on CIFAR-10 (Sec. 4).

# %% tags=["nbval-check-output"]
all_digits = DS.load(cfg.image_data, image_size=cfg.image_size).x.double()
prior = {s.name: float(diffusion.prior_bpd(s, all_digits).mean())
         for s in (lin, cos)}
for name, bits in prior.items():
    print(f"{name:>6}: L_T = {bits:.1e} bits/dim")

# %% tags=["hide-input"]
rec.noise_fraction, rec.first_noisy_t = noise_fraction, first_noisy
rec.image_data, rec.image_size = cfg.image_data, cfg.image_size
rec.prior_bpd, rec.n_prior_images = prior, len(all_digits)
notebook.see(
    f"The linear schedule spends the last {noise_fraction['linear']:.0%} of its chain on pure "
    f"noise (SNR < {SNR_NOISE:g} from t = {first_noisy['linear']}), the cosine schedule only the last "
    f"{noise_fraction['cosine']:.0%}: the cosine schedule destroys information evenly. Both leave almost "
    "nothing of x<sub>0</sub> at t = T, so the prior p(x<sub>T</sub>) = N(0, I) needs no parameters: "
    f"what survives costs L<sub>T</sub> = {prior['linear']:.1e} bits/dim under the linear schedule "
    f"(DDPM: about 1e-5 on CIFAR-10) and {prior['cosine']:.0e} under the cosine one, negligible next to "
    "a bound of several bits/dim.")

# %% [markdown]
# ## Results
#
# The claims this chapter can check without training anything. Each row's test (the metric, the
# comparison, the threshold) was written down before the run, in `ddpm_lib/chapters/forward.py`;
# its verdict is then read off the numbers measured above. Nothing here is learned, so every row is
# a check of an identity or an analytic fact, not a reproduction of a measured result.

# %% tags=["hide-input"]
nb.finish(CH.claims(rec), rec)

# %% [markdown]
# ## Takeaways
#
# * The forward process is fixed, not learned: $T$ small Gaussian steps, which compose into one
#   Gaussian (Eq. 4), so training samples any $x_t$ in one draw.
# * The schedule decides how fast information is destroyed; the linear schedule wastes its last
#   quarter on pure noise, the cosine schedule spreads the destruction evenly.
# * At $t = T$ almost nothing of $x_0$ is left ($L_T \approx 0$), so sampling can start from
#   $\mathcal N(0, I)$.
#
# ## Exercises
#
# Each exercise changes a parameter. In Colab or Jupyter, set it in the parameters cell near
# the top (for example `seed = 1`) and run all cells; from a shell, run
# `make run NB=00 PARAMS="seed=1"` or papermill with `-p seed 1`.
#
# 1. Shorten the chain (`-p T 100`): how does the share of pure-noise steps change for each schedule?
# 2. Use larger images (`-p image_size 32`): do the digits survive to a later $t$ under the cosine schedule?
# 3. Swap the toy (`-p toy toy2d:swiss_roll`): at which $t$ does the spiral stop being visible?

