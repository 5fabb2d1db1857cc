# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DALL-E: a discrete VAE, one transformer over text and image tokens, and CLIP reranking
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/05_dalle.ipynb)
#
# *The badge opens this notebook in Colab once the book's repository is public; until then,
# download the notebook and upload it there ([Running the book](../book/running.md)). With a
# GPU runtime, `profile = "auto"` picks the gpu profile, which no GPU has run yet: its sizes
# are estimates (untested).*
#
# Between ADM and GLIDE, Ramesh et al. {cite}`ramesh2021dalle` generated images from text without
# diffusion: a discrete VAE compresses each 256x256 image to a 32x32 grid of codes, one 12B-parameter
# transformer models the caption's tokens followed by the image's codes as a single sequence, and
# many samples per caption are reranked by CLIP {cite}`radford2021clip`. Against DF-GAN, a recent
# GAN, human raters voting best of five chose its sample as the most realistic for 90.0% of the
# captions and as the best match to the caption for 93.3% (Fig. 7). This chapter derives the
# training bound, shows the library's dVAE, loss and sampler, and re-runs the dVAE ablations (the
# KL weight of App. A.2 over three training seeds per arm; its temperature annealing over three
# annealed dVAEs against one at a fixed temperature), the reranking curve (Fig. 9c) and the blur
# experiment (Fig. 9a) on one-object `shapes` scenes, where an independent reader knows exactly
# what each image shows.
# After each experiment a **What we see** paragraph, written from this run's numbers, compares them
# with the paper's; every number a verdict compares carries a 95% interval.

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

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ddpm_lib import data as DS, features, metrics, nets, notebook, scorer
from ddpm_lib import claims, stats, text, train as TR, viz
from ddpm_lib import objectives as OBJ
from ddpm_lib.chapters import dalle as CH
from ddpm_lib.nets import clip as CL, dvae as V, transformer as GT
from ddpm_lib.progress import tqdm

nb = notebook.Session("05_dalle", globals())

# %% tags=["parameters"]
# smoke | cpu | gpu | auto (DDPM_PROFILE if set, else gpu with CUDA, else cpu)
profile = "auto"
seed = 0

# %%
cfg = nb.start()
device = notebook.device()
rec = CH.Record()  # what the claims read, filled cell by cell

# %% [markdown]
# ## The idea
#
# A transformer over pixels (chapter 01) spends its capacity on detail and its context on a few
# thousand pixels. DALL-E splits the job. Stage one learns a *discrete* code for images: an encoder
# picks one of $K$ codebook entries for each cell of a coarse grid, and a decoder turns the grid back
# into an image. Stage two learns the joint distribution of captions and code grids with one
# autoregressive transformer: the caption's tokens come first, the image's codes follow in raster
# order, and generating an image is continuing a caption. Finally, since a sampler that is right
# some of the time can be made right more often by choosing, many samples are drawn per caption and a
# contrastive text-image model (CLIP) ranks them.
#
# ## The math
#
# **The bound** (Sec. 2, Eq. 1). Images $x$, captions $y$, codes $z$. The model is
# $p_{\theta,\psi}(x, y, z) = p_\theta(x \mid y, z)\, p_\psi(y, z)$, and with the encoder's
# $q_\phi(y, z \mid x)$ (the caption is observed, so $q$ only infers $z$):
#
# $$
# \begin{aligned}
# \ln p_{\theta,\psi}(x, y) &\ge
#   \mathbb E_{z \sim q_\phi(z \mid x)}\big[\ln p_\theta(x \mid y, z)\big]\\
# &\quad - \beta\, D_\text{KL}\big(q_\phi(y, z \mid x)\,\|\, p_\psi(y, z)\big),
# \end{aligned}
# $$
#
# the usual evidence lower bound at $\beta = 1$. Stage one maximises it over $\phi, \theta$ with
# $p_\psi$ uniform over the $K^{g^2}$ code grids; stage two fixes $\phi, \theta$ and maximises it over
# $\psi$, which reduces to maximum likelihood of the transformer on (caption, argmax code) pairs.
#
# **The relaxation** (Sec. 2.1). The expectation over a categorical $z$ has no reparametrised
# gradient. The Gumbel-softmax replaces the one-hot sample by a point of the simplex: with
# $g_k = -\ln(-\ln u_k)$, $u_k \sim U(0, 1)$,
#
# $$
# \tilde z_k = \frac{\exp\big((\ell_k + g_k)/\tau\big)}{\sum_j \exp\big((\ell_j + g_j)/\tau\big)},
# $$
#
# whose argmax is an exact sample of $\mathrm{softmax}(\ell)$ (the Gumbel-max trick) and which tends
# to that one-hot sample as $\tau \to 0$. The decoder is trained on $\tilde z$. The bound evaluated
# at the one-hot sample is the *true* ELB; at $\tilde z$ it is the *relaxed* one, and the two differ
# unless $\tau$ is small, hence the annealing $\tau: 1 \to 1/16$ (on a cosine schedule: linear
# annealing diverged). The transformer and the sampler use a third grid, the *argmax* codes (the
# most likely code of each cell, no noise).
#
# **The logit-Laplace likelihood** (App. A.3). Pixels live in a bounded interval, a Gaussian or
# Laplace density does not. Put a Laplace density on $\operatorname{logit}(y)$ and pull it back to
# $y \in (0, 1)$:
#
# $$
# f(y \mid \mu, b) = \frac{1}{2 b\, y (1 - y)}
#   \exp\Big(-\frac{\lvert \operatorname{logit}(y) - \mu \rvert}{b}\Big),
# $$
#
# evaluated at $y = \varphi(x) = (1 - 2\epsilon)\, x + \epsilon$ with $\epsilon = 0.1$, so the
# decoder outputs $\mu$ and $\ln b$ per pixel channel and never needs $\mathrm{sigmoid}(\mu) = 0$ or
# 1; a reconstruction is $\hat x = \varphi^{-1}(\mathrm{sigmoid}(\mu))$. The loss is divided by the
# number of pixel channels, so the paper's $\beta = 6.6$ is relative to a per-dimension
# reconstruction term.
#
# **The transformer's loss** (Sec. 2.2): next-token cross-entropy over the one stream, with the text
# positions' mean weighted $1/8$ and the image positions' mean $7/8$ (the image is what is wanted;
# the caption is a condition that is also modelled). Empty caption slots get a learned padding token
# per position instead of an attention mask.
#
# ## The code
#
# The dVAE's two halves: a 7x7 input convolution, residual blocks whose branch is scaled by a small
# post-gain (the paper's way of keeping a deep stack near the identity at initialisation),
# max-pooling down to the code grid, and a 1x1 convolution to $K$ logits; the decoder mirrors it
# with nearest-neighbour up-sampling and ends in $\mu$ and $\ln b$.

# %%
notebook.show_source(V._Res, V.DVAE.__init__, V.DVAE.decode_codes)

# %% [markdown]
# The likelihood, the relaxed bound and the three ELBs the temperature experiment compares:

# %%
notebook.show_source(V.logit_laplace_nll, OBJ.gumbel_softmax,
                     OBJ.DVAEObjective.__call__, OBJ.DVAEObjective.terms,
                     OBJ.dvae_elb)

# %% [markdown]
# The transformer's loss, its padding tokens, and the small CLIP that reranks (and, trained a
# second time from another initialisation, judges): two towers, each a small network ending in a
# shared embedding width, and a learned temperature.

# %%
notebook.show_source(OBJ.TextImageObjective.__call__, text.positional_padding,
                     CL.CLIP)

# %% [markdown]
# Shape traces: `DVAE.logits`: image (B, 3, 16, 16) $\to$ logits (B, K, 8, 8) (one max-pool
# halving); `DVAE.decode`: relaxed or one-hot grid (B, K, 8, 8) $\to$ $\mu$, $\ln b$ (B, 3, 16, 16)
# (nearest up-sampling); the transformer: [caption (B, 16) | codes (B, 64)] $\to$ logits (B, 80, V)
# with one vocabulary holding words, 16 per-position pads and the $K$ codes;
# `GPT.generate(..., vocab_range=)` continues a caption with codes only.
#
# | paper | library |
# |---|---|
# | dVAE, Gumbel-softmax relaxation, $\beta$ and $\tau$ schedules (Sec. 2.1, App. A) | `nets.dvae.DVAE`, `objectives.DVAEObjective` |
# | logit-Laplace likelihood (App. A.3) | `nets.dvae.logit_laplace_nll`, `map_pixels` / `unmap_pixels` |
# | relaxed vs true ELB | `objectives.dvae_elb` |
# | transformer loss, 1/8 text + 7/8 image (Sec. 2.2) | `objectives.TextImageObjective` |
# | per-position padding tokens (App. B.2) | `text.positional_padding` |
# | sampling image codes after the caption | `nets.transformer.GPT.generate(vocab_range=)` |
# | reranking with a contrastive model (Sec. 2.6) | `chapters.dalle.rerank` with `nets.clip.clip_score` |
#
# **What we do differently.** The paper's transformer uses sparse attention: row, column and
# convolutional masks over the image tokens, with full attention to the caption. Ours is dense
# causal attention over all 80 positions, which is cheaper than masking at this length and can
# only see more. Our dVAE uses a Gaussian likelihood, not the logit-Laplace (the first experiment
# measures why), and a gentler reduction (16x16 pixels to 8x8 codes, 2x per side, against the
# paper's 256 to 32, 8x per side): at 16 pixels an object is two to four pixels wide.

# %% [markdown]
# ## Experiment 1: the discrete VAE and its ablation
#
# dVAEs with one budget each on `shapes` scenes, four arms:
#
# * **beta 6.6**, $\tau$ annealed from 1 to $1/16$: the paper's recipe and the chapter's main dVAE,
#   trained with `dvae_seeds` training seeds (seed $k$ draws the initial weights, the batches and
#   the Gumbel noise; seed 0 feeds the transformer);
# * **beta 0**, $\tau$ annealed, with the same seeds (paired: seed $k$ starts from the same weights
#   and sees the same batches in both arms);
# * **tau fixed at 1**, $\beta = 6.6$, one seed: the gap that annealing is meant to close;
# * the paper's **logit-Laplace** likelihood, $\beta = 6.6$, $\tau$ annealed, one seed.
#
# $\beta$ is warmed up from 0 with a cosine ramp. On held-out scenes we measure codebook usage (the
# perplexity of the argmax codes: how many of the $K$ codes are in effective use), the
# reconstruction error with argmax codes, the independent reader's per-attribute reading of the
# reconstructions, the FD of the reconstructions against the real-vs-real floor, and the gap
# between the true and the relaxed ELB: the negative ELB at a hard sample from $q$ (the one-hot
# code the Gumbel noise picks) minus that at the relaxed sample from the same noise at the final
# $\tau$, averaged over `elb_draws` draws per image.
#
# The tests, stated before the run:
#
# * **the deviation**: the logit-Laplace dVAE's reconstructions show the object's colour more than
#   10 points less often than the Gaussian's (paired over images, McNemar). Our scenes are flat
#   backgrounds with one small object, far from the photographs the logit-Laplace was made for. One
#   account of a failure: an L1 loss in logit space is minimised by a cell's median colour, which
#   for a cell that the object covers partly is the background's;
# * **codebook usage** (Sec. 2.1): $\beta = 6.6$ uses more codes than $\beta = 0$, and
# * **reconstruction** (App. A.2): it ends with a smaller reconstruction error, each as a difference
#   paired by seed with a t-interval over seeds;
# * **annealing closes the gap** (App. A.2): the annealed dVAE's gap, over its seeds, lies within
#   1% of the fixed-$\tau$ dVAE's gap on either side (two-sided equivalence: at least 99% of the gap
#   closed). Until the last record the margin was a tenth, 44 times the gap that record measured;
#   the claims table gives the verdict under both;
# * **the gate** (the book's rule): an arm whose reconstructions' FD is above 10x the floor did not
#   train, and no comparison is drawn from it.

# %%
train_set = DS.load("shapes", n=cfg.n_train, image_size=cfg.image_size,
                    objects=cfg.objects, seed=seed)
test_set = DS.load("shapes", split="test", n=cfg.n_test,
                   image_size=cfg.image_size, objects=cfg.objects, seed=seed)
C = train_set.x.shape[1]
x_test = test_set.x.to(device)
dvae_cfg = V.DVAEConfig(image_size=cfg.image_size, channels=C,
                        codes=cfg.codes, levels=cfg.levels,
                        width=cfg.dvae_width)
reader = scorer.reader(
    cfg.image_size, device=device,
    recipe=None if cfg.reader_images is None else dataclasses.replace(
        scorer.RECIPES[cfg.image_size], train_images=cfg.reader_images,
        n_one=2000, n_two=0))
extractor = features.get_extractor("shapes", image_size=cfg.image_size,
                                   train_images=cfg.feature_images,
                                   device=device)
real_ref = train_set.x[:cfg.ref_images]  # FD's real set, throughout
fresh = test_set.x[:cfg.n_eval]  # fresh real scenes at n_eval: the floor


def steps_of(images):  # the schedules count optimizer steps
    return images // cfg.dvae_batch


def train_dvae(beta, annealed=True, likelihood=cfg.likelihood, k=0):
    # k: the training seed (initial weights, batches, Gumbel noise)
    obj = OBJ.DVAEObjective(
        beta=beta, beta_steps=steps_of(cfg.beta_images), tau_start=1.0,
        tau_end=cfg.tau_end if annealed else 1.0,
        tau_steps=steps_of(cfg.tau_images) if annealed else 0,
        likelihood=likelihood, sigma=cfg.sigma)
    tcfg = TR.TrainConfig(train_images=cfg.dvae_images,
                          batch_size=cfg.dvae_batch,
                          lr=cfg.dvae_lr, warmup_images=2000,
                          weight_decay=1e-4, ema_decay=0.99, seed=seed + k,
                          channels_last=True)
    net = V.DVAE(dvae_cfg, init_seed=k)
    res = TR.train_cached("05_dalle", net, obj, train_set, tcfg,
                          extra={"init": k}, device=device)
    return res.ema.eval(), obj


def measure(net, obj, k):
    # everything the table and the claims read, per held-out image
    with torch.no_grad():
        codes = net.encode(x_test)
        recon = net.decode_codes(codes)
    gen = torch.Generator(device=device).manual_seed(seed + k)
    tau = obj.schedule(10**9)[1]  # the final temperature
    elb = OBJ.dvae_elb(net, x_test, tau=tau, generator=gen, objective=obj,
                       draws=cfg.elb_draws)
    read = scorer.caption_match(reader, recon, test_set.attrs).fields
    return dict(
        codes=codes.cpu(), recon=recon.cpu(),
        mse=((recon - x_test) ** 2).flatten(1).mean(1).double().cpu().numpy(),
        gap=(elb["hard"] - elb["relaxed"]).double().numpy(),
        elb=elb["hard"].double().numpy(),
        read={a: v.double().cpu().numpy() for a, v in read.items()})


beta_main, MAIN, FIXED = CH.BETA_PAPER, CH.MAIN, CH.FIXED
lik_name = {"gaussian": f"Gaussian (sigma {cfg.sigma:g})",
            "logit_laplace": "logit-Laplace"}
other_lik = ("logit_laplace" if cfg.likelihood == "gaussian"
             else "gaussian")
OTHER = f"beta {beta_main:g}, {lik_name[other_lik]}"
arms = {f"beta {b:g}": (b, True, cfg.likelihood, cfg.dvae_seeds)
        for b in cfg.betas}  # name: (beta, annealed, likelihood, seeds)
arms[FIXED] = (beta_main, False, cfg.likelihood, 1)
arms[OTHER] = (beta_main, True, other_lik, 1)
runs = {}  # (arm, seed) -> measurements
for name, (b, annealed, lik, n_seeds) in arms.items():
    for k in range(n_seeds):
        net, obj = train_dvae(b, annealed, lik, k)
        runs[(name, k)] = dict(measure(net, obj, k), net=net, obj=obj)
fd_boot = metrics.FDBootstrap(extractor.features(real_ref),
                              cfg.bootstrap, seed)
floor = fd_boot(extractor.features(fresh))
fd_ratio = {name: metrics.frechet_distance(
                fd_boot.real, extractor.features(
                    runs[(name, 0)]["recon"][:cfg.n_eval])) / floor[0]
            for name in arms}
# what the grid can hold: real scenes average-pooled to it and blown up
pool = 2 ** cfg.levels
pooled = F.interpolate(F.avg_pool2d(test_set.x, pool), scale_factor=pool,
                       mode="nearest")
pooled_read = scorer.caption_match(reader, pooled, test_set.attrs).fields
pooled_ratio = metrics.frechet_distance(
    fd_boot.real, extractor.features(pooled[:cfg.n_eval])) / floor[0]

# %%
ATTRS = ("colour", "shape", "position")


def usage(name, k, idx=slice(None)):
    return V.perplexity(runs[(name, k)]["codes"][idx], cfg.codes)


def dvae_row(name):
    r, n_seeds = runs[(name, 0)], arms[name][3]
    return {
        "dVAE": name, "seeds": n_seeds,
        "codes in use": ", ".join(f"{usage(name, k):.1f}"
                                  for k in range(n_seeds)),
        "MSE": stats.mean_ci(r["mse"]).fmt(),
        "FD / floor": f"{fd_ratio[name]:.1f}",
        "true - relaxed gap": stats.mean_ci(r["gap"]).fmt()}


def read_row(name, read):
    return {"dVAE": name,
            **{f"{a} read": stats.mean_ci(read[a]).fmt(pct=True)
               for a in ATTRS}}


POOLED = f"real scenes pooled to {dvae_cfg.grid}x{dvae_cfg.grid}"
pooled_row = {"dVAE": POOLED, "seeds": "–", "codes in use": "–",
              "MSE": "–", "FD / floor": f"{pooled_ratio:.1f}",
              "true - relaxed gap": "–"}
notebook.show_table(
    [dvae_row(name) for name in arms] + [pooled_row],
    caption=f"What each dVAE's code holds. {len(test_set)} held-out "
            f"scenes; {cfg.dvae_images:,} training images per dVAE; seed 0 "
            f"of each arm, 95% t-intervals over images; 'codes in use': "
            f"the perplexity of the argmax codes (of K = {cfg.codes}), one "
            f"value per seed; FD of {cfg.n_eval} reconstructions against "
            f"{cfg.ref_images} training scenes over the real-vs-real floor "
            f"({floor[0]:.3g}); the gap in nats per pixel channel, "
            f"{cfg.elb_draws} Gumbel draws per image")
on_real = reader.accuracy(test_set)
notebook.show_table(
    [read_row(name, runs[(name, 0)]["read"]) for name in arms]
    + [read_row(POOLED, {a: v.double().numpy()
                         for a, v in pooled_read.items()})],
    caption=f"What survives the code: the share of the {len(test_set)} "
            f"held-out scenes whose attribute the reader finds in the "
            f"reconstruction (seed 0, 95% t-intervals over images; on the "
            f"real scenes: " + ", ".join(f"{a} {on_real[a]:.0%}"
                                         for a in ATTRS) + ")")
fig, axes = plt.subplots(1, len(arms) + 1, figsize=(6.4, 1.9))
viz.show_grid(test_set.x[:16], nrow=4, ax=axes[0], title="held-out")
for ax, name in zip(axes[1:], arms):
    viz.show_grid(runs[(name, 0)]["recon"][:16], nrow=4, ax=ax,
                  title=name.replace("beta ", "β ").replace(", ", "\n"))
fig.suptitle(f"Reconstructions from argmax codes ({dvae_cfg.grid}x"
             f"{dvae_cfg.grid} grid, K = {cfg.codes}), seed 0", y=1.08)
plt.show()

# %% tags=["hide-input"]
zero = CH.ZERO
seeds_k = range(cfg.dvae_seeds)
rec.codes, rec.sigma, rec.tau_end = cfg.codes, cfg.sigma, cfg.tau_end
rec.dvae_seeds, rec.elb_draws = cfg.dvae_seeds, cfg.elb_draws
rec.fd_ratio_dvae = dict(fd_ratio)
rec.usage_diff = stats.seeds_diff([usage(MAIN, k) for k in seeds_k],
                                  [usage(zero, k) for k in seeds_k])
rec.recon_diff = stats.seeds_diff(
    [runs[(MAIN, k)]["mse"].mean() for k in seeds_k],
    [runs[(zero, k)]["mse"].mean() for k in seeds_k])
rec.gap_annealed = stats.seeds_diff(
    [runs[(MAIN, k)]["gap"].mean() for k in seeds_k])
rec.gap_fixed = stats.mean_ci(runs[(FIXED, 0)]["gap"])
ll, ga = (OTHER, MAIN) if cfg.likelihood == "gaussian" else (MAIN, OTHER)
colour = {"logit-Laplace": runs[(ll, 0)]["read"]["colour"],
          "Gaussian": runs[(ga, 0)]["read"]["colour"]}
rec.colour_hits = {k: v.astype(int) for k, v in colour.items()}
rec.likelihood_colour = stats.paired_rate_diff(colour["logit-Laplace"],
                                               colour["Gaussian"])
rec.colour_ll = stats.mean_ci(colour["logit-Laplace"])
rec.colour_gauss = stats.mean_ci(colour["Gaussian"])
rec.dvae_setting = (f"shapes {cfg.image_size}x{cfg.image_size}, {cfg.objects} "
                    f"object, K={cfg.codes}, {dvae_cfg.grid}x{dvae_cfg.grid} "
                    f"grid, {cfg.dvae_images:,} images per dVAE")
main_read = {a: stats.mean_ci(runs[(MAIN, 0)]["read"][a]) for a in ATTRS}
compared = [n for n in arms if n != OTHER]  # the arms the paper's rows read
failed = [n for n in compared if fd_ratio[n] > CH.C.FD_GATE]
gate_text = (
    ("Every arm the paper's rows compare scores within 10x the real-vs-real "
     "FD floor (" + ", ".join(f"{fd_ratio[n]:.1f}x" for n in compared)
     + "), so each trained by the book's rule. " if not failed else
     "By the book's rule (reconstructions' FD above 10x the floor) these "
     "arms did not train: " + ", ".join(f"{n} ({fd_ratio[n]:.1f}x)"
                                        for n in failed)
     + "; their rows below say so instead of comparing them. ")
    + f"The {lik_name[other_lik]} arm scores {fd_ratio[OTHER]:.1f}x: "
    "that is what the deviation row reports, not a gate on it. ")
more = CH.kl_weight_more_codes(rec).holds
lower = CH.kl_weight_lower_recon(rec).holds
closes = CH.tau_annealing_closes_gap(rec).holds
shape_pooled = stats.mean_ci(pooled_read["shape"].double().numpy())
notebook.see(
    ("With this chapter's dVAE recipe and budget, on these scenes, the "
     "paper's logit-Laplace likelihood loses the objects and the Gaussian "
     "keeps them, as the figure shows, so the "
     "chapter's dVAE uses the Gaussian: "
     if CH.gaussian_likelihood_deviation(rec).holds == "yes" else
     "The two likelihoods keep the objects comparably: ")
    + f"the reader finds the object's colour in "
    f"{rec.colour_ll.fmt(pct=True)} of the logit-Laplace dVAE's "
    f"reconstructions and in {rec.colour_gauss.fmt(pct=True)} of the "
    "Gaussian's. " + gate_text
    + {"yes": "The paper's KL weight makes the dVAE use more of its "
              "codebook",
       "no": "Against the paper, the KL weight makes the dVAE use fewer "
             "codes",
       }.get(more, f"Whether the KL weight changes how many codes the dVAE "
                   f"uses, this run cannot say ({more})")
    + f": {rec.usage_diff} more codes with beta {beta_main:g} than with "
    f"beta 0, over {cfg.dvae_seeds} training seeds. The paper's reason: "
    "with a small KL weight the relaxation's noise pushes the optimizer to "
    "abandon codes early. "
    + {"yes": "It also ends with a smaller reconstruction error",
       "no": "But it ends with a larger reconstruction error",
       "not significant": "Its reconstruction error is not significantly "
                          "different",
       }.get(lower, f"Its reconstruction error is not judged ({lower})")
    + (f" (MSE difference {rec.recon_diff}). "
       if lower in ("yes", "no", "not significant") else
       f": MSE difference {rec.recon_diff}. ")
    + {"yes": "Annealing tau closes the gap between the true and the "
              "relaxed bound",
       "no": "Annealing tau does not close the gap between the true and "
             "the relaxed bound",
       }.get(closes, "Whether annealing tau closes the gap between the true "
                     f"and the relaxed bound, this run cannot say ({closes})")
    + f": {rec.gap_annealed} nats per pixel channel annealed to "
    f"{cfg.tau_end:g}, against {rec.gap_fixed} with tau fixed at 1 (what "
    f"is left is {abs(rec.gap_annealed.est / rec.gap_fixed.est):.1%} of "
    "the fixed-tau gap"
    + (", small but not zero" if rec.gap_annealed.lo > 0
       or rec.gap_annealed.hi < 0 else "") + "). "
    "What the grid does not hold is the shape: an object two to four "
    "pixels wide keeps its colour, size and place in a 2x2 cell, not its "
    f"outline. The reader finds the shape in "
    f"{main_read['shape'].fmt(pct=True)} of the main dVAE's "
    f"reconstructions, and in {shape_pooled.fmt(pct=True)} of real scenes "
    f"averaged over the same {dvae_cfg.grid}x{dvae_cfg.grid} cells.")

# %% [markdown]
# ## Experiment 2: one transformer over caption and image tokens
#
# Captions are half short ("a red circle"), half descriptive ("a small red circle at the top left
# on a gray background"). Each training sequence is the caption's word tokens, padded with
# per-position pad tokens to `text_len`, followed by the main dVAE's argmax codes of the image; the
# loss weights the text positions 1/8 and the image positions 7/8. The check before any comparison:
# samples must follow their caption better than a shuffled caption, read by the independent
# reader; and the book's gate: a transformer whose samples' FD is above 10x the real-vs-real floor
# did not train. (The paper gives its 1/8 : 7/8 weighting no ablation. The second edition trained a
# second transformer with equal weights and found no significant difference; the cpu profile
# spends that budget on the finer code grid, and `-p ablation_text_weight 0.5` trains it again.)

# %%
tk = text.shapes_tokenizer(context=cfg.text_len)
dvae = runs[(MAIN, 0)]["net"]
V_TEXT, L, G2 = tk.vocab_size, cfg.text_len, dvae_cfg.grid**2
CODE0 = V_TEXT + L  # first code id: words, one pad id per position, codes
captions = [s if i % 2 == 0 else d for i, (s, d) in
            enumerate(zip(train_set.captions, train_set.captions_long))]


def caption_tokens(caps):
    return text.positional_padding(tk.encode(caps), 0, V_TEXT)


def codes_of(x):
    with torch.no_grad():
        return torch.cat([dvae.encode(x[i:i + 1000].to(device)).cpu()
                          for i in range(0, len(x), 1000)]).flatten(1)


seqs = torch.cat([caption_tokens(captions), CODE0 + codes_of(train_set.x)], 1)
gcfg = GT.GPTConfig(vocab_size=CODE0 + cfg.codes, block_size=L + G2,
                    n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd)
tcfg = TR.TrainConfig(train_images=cfg.gpt_images, batch_size=64,
                      lr=cfg.gpt_lr, warmup_images=2000, weight_decay=0.01,
                      ema_decay=0.99, seed=seed)
weights = [cfg.text_weight] + ([cfg.ablation_text_weight]
                               if cfg.ablation_text_weight is not None else [])
gpts = {w: TR.train_cached("05_dalle", GT.GPT(gcfg),
                           OBJ.TextImageObjective(L, w), seqs, tcfg,
                           device=device).ema.eval() for w in weights}
gpt = gpts[cfg.text_weight]
# held-out sequences: test captions (half short, half descriptive), codes
test_caps = [s if i % 2 == 0 else d for i, (s, d) in
             enumerate(zip(test_set.captions, test_set.captions_long))]
test_seqs = torch.cat([caption_tokens(test_caps),
                       CODE0 + codes_of(test_set.x)], 1).to(device)
heldout = {}
with torch.no_grad():
    for w, m in gpts.items():
        ce = F.cross_entropy(m(test_seqs).flatten(0, 1).float(),
                             test_seqs.flatten(), reduction="none")
        ce = ce.view(test_seqs.shape).double().cpu()
        heldout[w] = dict(text=ce[:, :L].mean(1).numpy(),
                          image=ce[:, L:].mean(1).numpy())
print(f"transformer: {nets.count_params(gpt):,} parameters")
print(f"held-out cross-entropy in nats per token (uniform: "
      f"{np.log(V_TEXT + L):.2f} text, {np.log(cfg.codes):.2f} image)")
for w, h in heldout.items():
    print(f"  text weight {w:g}: text {stats.mean_ci(h['text'])}, "
          f"image {stats.mean_ci(h['image'])}")


def generate(caps, n_per, gen_seed, model=None):
    """Images for each caption in caps, n_per each (caption-major)."""
    model = gpt if model is None else model
    prefix = caption_tokens(caps).repeat_interleave(n_per, 0).to(device)
    g = torch.Generator(device=device).manual_seed(gen_seed)
    out = []
    for i in tqdm(range(0, len(prefix), 2000), desc="sampling",
                  leave=False):
        seq = model.generate(prefix[i:i + 2000], L + G2, generator=g,
                             vocab_range=(CODE0, CODE0 + cfg.codes))
        codes = (seq[:, L:] - CODE0).view(-1, dvae_cfg.grid, dvae_cfg.grid)
        out.append(dvae.decode_codes(codes).cpu())
    return torch.cat(out)


# %%
eval_caps = test_set.captions_long[:cfg.n_eval]
samples = generate(eval_caps, 1, seed)
own = scorer.caption_match(reader, samples, eval_caps).score
shuffled = scorer.caption_match(reader, samples,
                                eval_caps[1:] + eval_caps[:1]).score
own, shuffled = own.double().numpy(), shuffled.double().numpy()
fd_samples = fd_boot(extractor.features(samples))
recon = runs[(MAIN, 0)]["recon"][:cfg.n_eval]
fd_recon = fd_boot(extractor.features(recon))
with torch.no_grad():  # a control that learned nothing: random code grids
    uniform_codes = torch.randint(
        0, cfg.codes, (cfg.n_eval, dvae_cfg.grid, dvae_cfg.grid),
        generator=torch.Generator().manual_seed(seed))
    uniform = dvae.decode_codes(uniform_codes.to(device)).cpu()
fd_uniform = fd_boot(extractor.features(uniform))

show = test_set.captions_long[:6]
grid = generate(show, 8, seed + 1)
fig, axes = plt.subplots(len(show), 1, figsize=(6.2, 0.95 * len(show)))
for i, (ax, cap) in enumerate(zip(axes, show)):
    viz.show_grid(grid[8 * i:8 * i + 8], nrow=8, ax=ax)
    ax.set_title(cap, fontsize=7, loc="left")
fig.suptitle("Eight samples per held-out caption (rows), no reranking",
             y=1.0)
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
# FD's interval: the replicates re-centred on the estimate (resampling with
# replacement inflates FD), as metrics.EvalResult.ci does
ci = lambda fd: stats.percentile(*fd, centre=True)  # noqa: E731
rec.match_own, rec.match_shuffled = stats.mean_ci(own), stats.mean_ci(shuffled)
rec.match_vs_shuffled = stats.paired_mean_diff(own, shuffled)
rec.fd_samples, rec.fd_recon = ci(fd_samples), ci(fd_recon)
rec.fd_floor, rec.fd_uniform = floor[0], ci(fd_uniform)
rec.text_weight = cfg.text_weight
rec.ablation_text_weight = cfg.ablation_text_weight
rec.setting = (f"shapes {cfg.image_size}x{cfg.image_size}, {cfg.objects} "
               f"object, {cfg.n_layer}x{cfg.n_embd} transformer, "
               f"{cfg.gpt_images:,} sequences seen, K={cfg.codes}, "
               f"{dvae_cfg.grid}x{dvae_cfg.grid} codes")
weight_text = ""
if cfg.ablation_text_weight is not None:
    ablation = gpts[cfg.ablation_text_weight]
    own_ablation = scorer.caption_match(
        reader, generate(eval_caps, 1, seed, ablation), eval_caps).score
    hw, ha = heldout[cfg.text_weight], heldout[cfg.ablation_text_weight]
    rec.image_ce_diff = stats.paired_mean_diff(hw["image"], ha["image"])
    rec.text_ce_diff = stats.paired_mean_diff(hw["text"], ha["text"])
    rec.match_weight_diff = stats.paired_mean_diff(
        own, own_ablation.double().numpy())
    weight_text = (
        f" Weighting the text {cfg.text_weight:g} instead of "
        f"{cfg.ablation_text_weight:g} changes the held-out image "
        f"cross-entropy by {rec.image_ce_diff} nats per token, the text "
        f"cross-entropy by {rec.text_ce_diff}, and the caption match by "
        f"{rec.match_weight_diff}.")
untrained = CH.samples_untrained(rec)
follows = rec.match_vs_shuffled.lo > 0
notebook.see(
    ("The transformer did not train by the book's rule, and no claim below "
     "is drawn from its samples: " if untrained else
     "The transformer trained, and "
     + ("it follows its captions: " if follows else
        "yet it does not follow its captions measurably, so the reranking "
        "below has nothing to choose from: "))
    + f"the reader finds {rec.match_own.fmt(pct=True)} of each caption's "
    f"attributes in its sample, against {rec.match_shuffled.fmt(pct=True)} "
    "for a shuffled caption (on real scenes the reader finds "
    + ("all of them" if min(on_real.values()) == 1.0 else
       ", ".join(f"{a} {v:.0%}" for a, v in on_real.items()))
    + f"). Its samples' FD is {rec.fd_samples.est / floor[0]:.1f}x the "
    f"real-vs-real floor, beside {rec.fd_recon.est / floor[0]:.1f}x for "
    "the dVAE's own reconstructions, which is what a transformer that "
    "modelled the codes perfectly would reach; decoded random codes score "
    f"{rec.fd_uniform.est / floor[0]:.0f}x." + weight_text)

# %% [markdown]
# ## Experiment 3: reranking (Fig. 9c in shape)
#
# `n_rerank` samples for each of `n_captions` held-out descriptive captions. A CLIP trained on the
# same scenes (the **reranker**) scores every sample; for each $N$ the best-scored of the first $N$
# samples is kept (nested: the samples of $N$ are among those of $2N$). The kept sample is then judged
# by the independent reader (caption match) and by a **second** CLIP of another initialisation (the
# judge). Each caption contributes one kept sample per $N$, so every interval is over captions,
# paired across $N$. The test, stated first: the caption match rises from $N = 1$ to the largest
# $N$. The paper's "diminishing returns" after $N = 32$ is shown, not tested: it needs $N$ beyond
# 32, and a gain per doubling that shrinks is what the best of more draws gives any scorer (until
# the last record it was a second part of the test, one that could hardly fail). A check beside
# it: the reranker's own score rises more than
# the judge's, which is why a reranker must not grade itself. What reranking can reach is bounded
# by the dVAE: the reader's caption match of the main dVAE's reconstructions of real scenes is the
# ceiling a perfect transformer would meet.

# %%
pairs_x = torch.cat([train_set.x, train_set.x])
pairs_tok = torch.cat([tk.encode(train_set.captions),
                       tk.encode(train_set.captions_long)])
clip_tcfg = TR.TrainConfig(train_images=cfg.clip_images, seed=seed,
                           **OBJ.CLIP_TRAINING)
clips = {}
for role, clip_seed in (("reranker", 0), ("judge", 1)):
    ccfg = CL.CLIPConfig.make(image_size=cfg.image_size,
                              vocab_size=tk.vocab_size, context=tk.context,
                              seed=clip_seed)
    clips[role] = TR.train_cached(
        "05_dalle", CL.CLIP(ccfg), OBJ.ContrastiveObjective(),
        (pairs_x, None, {"tokens": pairs_tok}), clip_tcfg,
        device=device).ema.eval()
keys = [text.caption_key(c) for c in test_set.captions_long]
retrieval = {role: CL.retrieval_accuracy(
                 c, test_set.x, tk.encode(test_set.captions_long), keys)
             for role, c in clips.items()}

rr_caps = test_set.captions_long[:cfg.n_captions]
rr = generate(rr_caps, cfg.n_rerank, seed + 2)  # caption-major
rr_tok = tk.encode(rr_caps).repeat_interleave(cfg.n_rerank, 0)
shape2 = (cfg.n_captions, cfg.n_rerank)
score = {role: CL.clip_score(c, rr, rr_tok).view(shape2)
         for role, c in clips.items()}
rr_match = scorer.caption_match(
    reader, rr, [c for c in rr_caps for _ in range(cfg.n_rerank)])
match = rr_match.score.double().view(shape2)
by_attr = {a: v.double().view(shape2) for a, v in rr_match.fields.items()
           if a in ("shape", "colour", "size", "position", "background")}
Ns = [2**k for k in range(int(np.log2(cfg.n_rerank)) + 1)]
picks = CH.rerank(score["reranker"], Ns)
curve = {N: dict(match=CH.picked(match, i),
                 reranker=CH.picked(score["reranker"], i),
                 judge=CH.picked(score["judge"], i),
                 **{a: CH.picked(v, i) for a, v in by_attr.items()})
         for N, i in picks.items()}
n_max = Ns[-1]
ceiling = scorer.caption_match(reader, recon, eval_caps).score
ceiling = stats.mean_ci(ceiling.double().numpy())

# %%
LABEL = {"match": "reader", "reranker": "reranker (CLIP A)",
         "judge": "judge (CLIP B)"}
fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.5))
for ax, keys_, lab in ((axes[0], ("match",), "caption match (reader)"),
                       (axes[1], ("reranker", "judge"), "CLIP score")):
    for k in keys_:
        cis = [stats.mean_ci(curve[N][k]) for N in Ns]
        ax.errorbar(Ns, [c.est for c in cis],
                    yerr=[[c.est - c.lo for c in cis],
                          [c.hi - c.est for c in cis]],
                    marker="o", ms=3, capsize=2, label=LABEL[k])
    ax.set(xscale="log", xlabel="samples reranked per caption, N",
           ylabel=lab)
    ax.set_xticks(Ns, [str(n) for n in Ns])
axes[0].axhline(ceiling.est, ls=":", color="gray",
                label="dVAE reconstructions")
for ax in axes:
    ax.legend(frameon=False, fontsize=7)
fig.tight_layout()
plt.show()
notebook.show_table(
    [{"N": N, "caption match": stats.mean_ci(curve[N]["match"]).fmt(pct=True),
      **{a: f"{curve[N][a].mean():.0%}" for a in by_attr}} for N in Ns],
    caption=f"What the reader sees in the kept sample: {cfg.n_captions} "
            f"held-out captions, the best of the first N samples by the "
            f"reranker; 95% t-intervals over captions; one column per "
            f"attribute (the share of captions whose kept sample shows it); "
            f"the reader's caption match of the dVAE's reconstructions of "
            f"real scenes: {ceiling.fmt(pct=True)}")
notebook.show_table(
    [{"N": N, "reranker": stats.mean_ci(curve[N]["reranker"]).fmt(),
      "judge": stats.mean_ci(curve[N]["judge"]).fmt()} for N in Ns],
    caption="What the two CLIPs score for the same kept samples (100 cos, "
            "95% t-intervals over captions). Retrieval accuracy of the "
            "CLIPs on held-out pairs: "
            + ", ".join(f"{k} {v:.0%}" for k, v in retrieval.items()))

# %% tags=["hide-input"]
def pd(key, a, b):  # paired over captions
    return stats.paired_mean_diff(curve[a][key], curve[b][key])


rec.n_max, rec.gain_total, rec.gain_first = n_max, pd("match", n_max, 1), \
    pd("match", 2, 1)
rec.gain_last = pd("match", n_max, n_max // 2)
rec.gain_last_minus_first = stats.paired_mean_diff(
    curve[n_max]["match"] - curve[n_max // 2]["match"],
    curve[2]["match"] - curve[1]["match"])
rec.gain_reranker = pd("reranker", n_max, 1)
rec.gain_judge = pd("judge", n_max, 1)
rec.own_minus_judge = stats.paired_mean_diff(
    curve[n_max]["reranker"] - curve[1]["reranker"],
    curve[n_max]["judge"] - curve[1]["judge"])
attr_gain = {a: pd(a, n_max, 1) for a in by_attr}
moved = [a for a, d in attr_gain.items() if d.lo > 0]
still = [a for a, d in attr_gain.items() if d.lo <= 0 and d.hi > 0]
improves = CH.reranking_improves(rec).holds
notebook.see(
    {"yes": "Choosing the best of more samples helps, as the paper found",
     "no": "Choosing the best of more samples makes them worse here, "
           "unlike the paper",
     "not significant": "Whether choosing the best of more samples helps, "
                        "this n cannot tell",
     }.get(improves, f"Reranking is not judged here ({improves})")
    + f": the reader's caption match moves by {rec.gain_total} from N = 1 "
    f"to N = {n_max}, by {rec.gain_first} at the first doubling and by "
    f"{rec.gain_last} at the last (a shrinking gain per doubling, which "
    "the best of more draws shows for any scorer). "
    + ("Choosing moves " + ", ".join(
        f"{a} ({attr_gain[a].fmt(pct=True)})" for a in moved)
       + ("; " + ", ".join(still) + " not significantly" if still else "")
       if moved else "No single attribute moves significantly")
    + f". The kept samples sit at "
    f"{stats.mean_ci(curve[n_max]['match']).fmt(pct=True)}, near the "
    f"{ceiling.fmt(pct=True)} the dVAE's reconstructions of real scenes "
    "reach: an attribute the grid cannot draw (the shape) no choice among "
    "its decodings can supply. "
    + ("Scored by itself, the reranker would overstate what choosing buys: "
       if rec.own_minus_judge.lo > 0 else
       "The reranker's own gain is not significantly larger than the "
       "independent judge's at this n (the test could detect a difference "
       f"of about {claims.mde(rec.own_minus_judge):.2g}): ")
    + f"its score rises by {rec.gain_reranker}, the judge's by "
    f"{rec.gain_judge}. "
    + ("The judge's gain beside the reader's null says the two CLIPs agree "
       "on something the reader's five fields do not count, or count "
       "already at their ceiling; which of the two, this run does not test. "
       if rec.gain_judge.lo > 0 and rec.gain_total.lo <= 0 else "")
    + "The paper saw FID and IS improve up to N = 32 and flatten after; it "
    "reranked its published samples with N = 512.")

# %% [markdown]
# ## Experiment 4: what the bottleneck removes (Fig. 9a in shape)
#
# The paper's FID against a GAN improved sharply when both image sets were blurred: the dVAE's
# coarse grid loses high-frequency detail, and a blur hides that loss. Blurring both sets lowers
# almost any FD, so "blur lowers FD" cannot fail; what the mechanism predicts is that blur brings
# the dVAE's images closer to the data *relative to* real data at the same blur. So we score FD over
# the real-vs-real floor (both at the same $n$ and blur), for the transformer's samples (one per
# held-out caption) and for the dVAE's reconstructions of held-out scenes. The test: the ratio
# falls with a blur of $\sigma = 1$ pixel, for both. The samples' part is gated on the transformer
# following its captions (a metric other than FD).

# %%
s_blur = 1.0  # the test's blur (profiles: blur_sigmas holds 0 and 1)
ratio = {}  # (set, sigma) -> (FD / floor, replicates or None)
for sigma in tqdm(cfg.blur_sigmas, desc="blur"):
    real_f = extractor.features(metrics.gaussian_blur(real_ref, sigma))
    sets = {k: extractor.features(metrics.gaussian_blur(v, sigma))
            for k, v in (("samples", samples), ("reconstructions", recon),
                         ("floor", fresh))}
    if sigma in (0.0, s_blur):  # the test's two blurs: paired bootstrap
        boot = fd_boot if sigma == 0.0 else metrics.FDBootstrap(
            real_f, cfg.bootstrap, seed)  # the same draws: paired
        fds = {k: boot(v) for k, v in sets.items()}
        del boot
    else:
        fds = {k: (metrics.frechet_distance(real_f, v), None)
               for k, v in sets.items()}
    for k in ("samples", "reconstructions"):
        reps = (None if fds[k][1] is None
                else np.asarray(fds[k][1]) / np.asarray(fds["floor"][1]))
        ratio[(k, sigma)] = (fds[k][0] / fds["floor"][0], reps)
fig, ax = plt.subplots(figsize=(4.4, 2.6))
for k in ("samples", "reconstructions"):
    ax.plot(cfg.blur_sigmas, [ratio[(k, s)][0] for s in cfg.blur_sigmas],
            marker="o", ms=3, label=k)
ax.axhline(CH.C.FD_GATE, ls=":", color="gray", label="the book's gate")
ax.set(xlabel="blur sigma (pixels)", ylabel="FD / real-vs-real floor")
ax.legend(frameon=False, fontsize=7)
plt.show()

# %% tags=["hide-input"]
def ratio_change(k):  # (FD / floor) blurred minus sharp, paired bootstrap
    (a, ra), (b, rb) = ratio[(k, s_blur)], ratio[(k, 0.0)]
    return stats.diff_ci(a, ra, b, rb)


rec.blur_sigma = s_blur
rec.blur_ratio_samples = ratio_change("samples")
rec.blur_ratio_recon = ratio_change("reconstructions")
notebook.see(
    ("Blur hides part of what the grid loses, as the paper's mechanism "
     "says: " if rec.blur_ratio_recon.hi < 0 else
     "Relative to real data, blur does not bring the reconstructions "
     "closer, so what they lose is not only high-frequency detail: ")
    + f"blurring both sets with sigma = {s_blur:g} px changes FD over its "
    f"floor by {rec.blur_ratio_samples} for the samples and by "
    f"{rec.blur_ratio_recon} for the reconstructions (sharp: "
    f"{ratio[('samples', 0.0)][0]:.1f}x and "
    f"{ratio[('reconstructions', 0.0)][0]:.1f}x).")

# %% [markdown]
# ## Claims
#
# Each row: the paper's claim with its number (verified against the paper), ours with its 95%
# interval, our setting, and the verdict of the test stated in the claim.

# %% tags=["hide-input"]
nb.finish(CH.claims(rec), rec)

# %% [markdown]
# ## Takeaways
#
# * DALL-E is a two-stage maximum-likelihood model: a dVAE trained on a relaxed bound, then a
#   transformer on (caption, argmax code) sequences; nothing in it is adversarial or diffusive.
# * The Gumbel-softmax makes the discrete bottleneck trainable; annealing its temperature makes the
#   relaxed bound the one the hard codes face. Whether it does is a question about the gap between
#   two bounds, measured over training seeds, not about one run.
# * The dVAE's reconstructions bound what the transformer and any reranking can reach: here the
#   grid keeps an object's colour and place and loses its outline.
# * Reranking turns samples into better samples at the cost of N network evaluations per kept
#   image; judge it with something other than the reranker.
#
# ## Exercises
#
# Each exercise changes a parameter. In Colab or Jupyter, set it in the parameters cell near
# the top (for example `seed = 1`) and run all cells; from a shell, run
# `make run NB=05 PARAMS="seed=1"` or papermill with `-p seed 1`.
#
# 1. Use a coarser reduction, 4x per side (`-p levels 2`: a 4x4 grid; the paper's is 8x): what
#    happens to the shape and to the FD gate?
# 2. Weight text and image equally in a second transformer (`-p ablation_text_weight 0.5`): does
#    the held-out image cross-entropy or the caption match change?
# 3. Train the CLIPs longer (`-p clip_images 204800`): does reranking gain more?
# 4. Rerank more samples (`-p n_rerank 64`): where does the curve flatten?
# 5. Anneal the temperature less far (`-p tau_end 0.25`): does the true-minus-relaxed gap reopen?
# 6. Train the logit-Laplace dVAE as the main one (`-p likelihood logit_laplace`): what do the
#    transformer's samples look like?
