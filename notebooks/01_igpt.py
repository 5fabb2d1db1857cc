# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # iGPT: generative pretraining from pixels
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/01_igpt.ipynb)
#
# *The badge opens this notebook in Colab once the book's repository is public; until then,
# download the notebook and upload it there ([Running the book](../book/running.md)). With a
# GPU runtime, `profile = "auto"` picks the gpu profile, which no GPU has run yet: its sizes
# are estimates (untested).*
#
# Before diffusion, OpenAI asked whether the recipe that had just worked for language (a large
# transformer trained to predict the next token) would also learn about images from pixels alone.
# iGPT {cite}`chen2020igpt` trains GPT-2 on sequences of pixels, with no 2-D structure built in,
# and then asks how good its internal features are: a linear classifier on the average-pooled
# activations of one layer reached 96.3% on CIFAR-10, and fine-tuning the whole network 99.0%.
# This chapter builds the pieces (a colour palette, the GPT, the two objectives, linear probes,
# fine-tuning) and re-runs the paper's analyses at a scale that fits a laptop: probe accuracy by
# layer, probe accuracy against the generative loss across two model sizes, the autoregressive
# objective against BERT's, and fine-tuning against probing.
#
# **The test bed.** The first edition used scikit-learn's 8x8 digits, where a linear probe on the raw
# pixels already reads 96.9% of the labels: no learned feature can show that it is *better* than the
# pixels there. This edition uses RGB scenes of two objects (`shapes`, 16x16, 256 tokens) and asks
# for the shape (circle, square, triangle) of the first object, which sits in any of 9 cells, in any
# of 8 colours, on one of 4 backgrounds, partly hidden by the second object: a linear reader of the
# pixels does poorly on that, so the question "does generative pretraining help?" can come out
# either way.

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

from ddpm_lib import autoregressive as AR, data as DS, train as TR
from ddpm_lib import features, nets, notebook, probe, stats
from ddpm_lib.chapters import igpt
from ddpm_lib.nets import transformer as GPT_
from ddpm_lib.quantize import Palette, fit_palette

nb = notebook.Session("01_igpt", globals())

# %% tags=["parameters"]
# smoke | cpu | gpu | auto (DDPM_PROFILE if set, else gpu with CUDA, else cpu)
profile = "auto"
seed = 0

# %%
cfg = nb.start()
device = notebook.device()
rec = igpt.Record.of_config(cfg)  # what the claims read, cell by cell

# %% [markdown]
# After each experiment a **What we see** paragraph, written from this run's numbers, says what
# the result shows and how it compares with the paper; the chapter ends with takeaways and exercises.
#
# ## The idea
#
# An image is flattened into a sequence in raster order, one token per pixel, and a transformer
# learns $p(x)$ either autoregressively or by filling in masked pixels. Nothing tells it that
# pixels live on a grid; it must learn that, and much more, to predict well. If it does, the
# activations that make those predictions should contain what a classifier needs, which a
# *linear probe* measures, and which *fine-tuning* exploits.
#
# ## The math
#
# **Autoregressive objective** (Sec. 2.1). For a sequence $x = (x_1, \dots, x_n)$ in raster order,
#
# $$
# \begin{aligned}
# p(x) &= \prod_{i=1}^{n} p(x_i \mid x_1, \dots, x_{i-1}), \\
# L_{AR} &= \mathbb E_{x}\left[-\log p(x)\right].
# \end{aligned}
# $$
#
# **BERT objective** (Sec. 2.2). Draw a set $M$ of positions, each with probability 0.15; replace
# those tokens with a mask token and predict them from everything else, with a bidirectional model:
#
# $$
# \begin{aligned}
# L_{BERT} &= \mathbb E_{x}\,\mathbb E_{M} \sum_{i \in M} \ell_i, \\
# \ell_i &= -\log p(x_i \mid x_{[1,n] \setminus M}).
# \end{aligned}
# $$
#
# **Colour palette** (Sec. 3.2). Sub-pixel tokens would make a $32\times32$ RGB image 3,072
# tokens, and attention costs grow with the square of the length. iGPT clusters $(R, G, B)$ values
# with k-means, $k = 512$, and codes each pixel as its nearest centre: 1,024 tokens.
#
# **Architecture** (Sec. 3.3). GPT-2 with small changes: the input is shifted right behind a
# learned start-of-sequence embedding, the layer norm does not subtract the mean,
# the MLP uses $x\,\sigma(1.702x)$, and input and output embeddings are untied. Our
# `GPTConfig(norm="rms", activation="gelu2", sos=True)` is that.
#
# **Linear probe** (Sec. 3.5). For layer $l$, let $h^{(l)}_i$ be the residual stream at position
# $i$; the feature of an image is the average
#
# $$
# f^{(l)} = \frac{1}{n}\sum_{i=1}^{n} h^{(l)}_i ,
# $$
#
# and a logistic regression is fitted on $f^{(l)}$ of the training images. Its test accuracy is the
# probe accuracy of layer $l$. We choose the layer on a validation split of the *training* images,
# so the test accuracy we report is not selected on the test set.
#
# **Fine-tuning** (Sec. 3.5). A linear head on the pooled, normalised last layer,
# $\hat y = W\,\tfrac{1}{n}\sum_i \mathrm{norm}(h^{(L)}_i)$, trained with the whole network on
#
# $$
# \begin{aligned}
# L &= L_{CLF} + \lambda\, L_{GEN}, \\
# L_{CLF} &= -\log p(y \mid \hat y),
# \end{aligned}
# $$
#
# with $L_{GEN}$ the model's own pretraining loss ($\lambda$ = `gen_weight`; the released code
# adds the two with weight 1).
#
# ## The code
#
# The palette, the two objectives, the probe and the fine-tuning head:

# %%
notebook.show_source(fit_palette, Palette.encode,
                     AR.ARObjective, AR.MaskedObjective,
                     probe.layer_features, probe.Classifier,
                     probe.FineTuneObjective)

# %% [markdown]
# The GPT's pieces that iGPT changes: the norm without mean subtraction, the sigmoid GELU, the
# start-of-sequence slot (in `embed`), and the key-value cache that makes sampling cost one
# position's work per new pixel:

# %%
notebook.show_source(GPT_.RMSNorm, GPT_.gelu2, GPT_.GPT.embed, GPT_.KVCache,
                     GPT_.Block.attention)

# %% [markdown]
# A shape trace from a real forward call of the chapter's GPT (random tokens, untrained weights):

# %%
n_tok = cfg.image_size**2
gpt_cfg = GPT_.GPTConfig(vocab_size=cfg.k, block_size=n_tok,
                         n_layer=cfg.n_layer, n_head=cfg.n_head,
                         n_embd=cfg.n_embd, dropout=cfg.dropout,
                         norm="rms", activation="gelu2", sos=True)
demo = GPT_.GPT(gpt_cfg).eval()
idx = torch.randint(0, cfg.k, (2, n_tok),
                    generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    x0 = demo.embed(idx[:, :-1], 0, with_sos=True)
    logits, hidden = demo(idx, return_hidden=True)
    cache = GPT_.KVCache(cfg.n_layer)
    demo.blocks[0](x0[:, :5], cache)
print(f"tokens {tuple(idx.shape)} -> [sos, x_<n] embedded "
      f"{tuple(x0.shape)}\n  -> {cfg.n_layer} blocks "
      f"{tuple(hidden[-1].shape)} -> logits {tuple(logits.shape)}")
print(f"KV cache of block 0 after 5 positions: keys "
      f"{tuple(cache.k[0].shape)}\n  (batch, heads, positions, head dim)")

# %% [markdown]
# ## Experiment 1: palette size, quantisation error and sequence cost
#
# The paper (Sec. 3.2) codes pixels with a 9-bit palette to make the sequence 3x shorter. On
# one-object scenes at the chapter's resolution, for several palette sizes $k$: the RMSE of the
# quantised image (0-255 scale), and whether a classifier trained on the original images still
# reads every attribute of the quantised ones.

# %%
pal_data = DS.load("shapes", image_size=cfg.image_size, n=2000, seed=seed)
pal_test = DS.load("shapes", split="test", image_size=cfg.image_size,
                   n=500, seed=seed)
reader = features.get_extractor(
    "shapes", image_size=cfg.image_size, device=device,
    recipe=None if cfg.reader_images is None else
    __import__("dataclasses").replace(features.RECIPES["shapes"],
                                      train_images=cfg.reader_images,
                                      n_train=cfg.reader_images))
# per scene: every attribute read right? (the same scenes, quantised or not)
orig_hits = igpt.attribute_hits(reader, pal_test.x, pal_test.attrs)
pal_rows, palettes, read_ci, pal_loss = [], {}, [], {}
for k in cfg.palette_ks:
    pal = fit_palette(pal_data.x, k, seed=seed)
    palettes[k] = pal
    q_hits = igpt.attribute_hits(reader, pal.quantise(pal_test.x),
                                 pal_test.attrs)
    read_ci.append(igpt.acc_ci(q_hits))
    # originals - quantised, on the same scenes
    pal_loss[k] = stats.paired_rate_diff(orig_hits, q_hits)
    pal_rows.append(dict(k=k, bits=f"{math.log2(k):.0f}",
                         rmse=round(pal.error(pal_test.x), 2),
                         attributes_read=f"{q_hits.mean():.1%}",
                         loss=igpt.pp(pal_loss[k])))
base_ci = igpt.acc_ci(orig_hits)

# %%
px = cfg.image_size**2
notebook.show_table(
    pal_rows,
    caption=f"shapes {cfg.image_size}x{cfg.image_size}: {px} tokens with "
            f"a palette, {3 * px} sub-pixel tokens without (attention cost "
            f"x9); all attributes read on the originals: "
            f"{igpt.pct(base_ci)}")
fig = igpt.image_table([pal_test.x[:6]]
                       + [palettes[k].quantise(pal_test.x[:6])
                          for k in cfg.palette_ks],
                       ["original"] + [f"k = {k}" for k in cfg.palette_ks],
                       title="rows: palette size k; columns: six test scenes")
plt.show()

# %% tags=["hide-input"]
rec.palette_rmse = {r["k"]: r["rmse"] for r in pal_rows}
rec.palette_read = dict(zip(cfg.palette_ks, read_ci))
rec.palette_base = base_ci
# non-inferiority, paired: the whole interval of the loss below the margin
k_ok = [k for k in cfg.palette_ks
        if igpt.palette_keeps(pal_loss[k]) == "yes"]
notebook.see(
    f"The quantisation error falls from {pal_rows[0]['rmse']} (k = {pal_rows[0]['k']}) to {pal_rows[-1]['rmse']} "
    f"(k = {pal_rows[-1]['k']}) on the 0-255 scale. "
    + (f"The palettes that provably cost less than {igpt.PALETTE_MARGIN:.0%} of the attributes read "
       f"(originals {igpt.pct(base_ci)}; paired interval of the loss below the margin) are k = "
       f"{', '.join(map(str, k_ok))}: a few colours carry the content of these flat-coloured scenes, as "
       "512 carry CIFAR-10's for the paper."
       if k_ok else f"No palette tried provably costs less than {igpt.PALETTE_MARGIN:.0%} of the attributes "
                    f"read on the originals ({igpt.pct(base_ci)}): the scenes need more colours than we tried, "
                    "or more test scenes to show it.")
    + f" The chapter's models use k = {cfg.k}; the claims table tests that palette.")

# %% [markdown]
# ## Experiment 2: the autoregressive model
#
# Two-object scenes at $16\times16$ (the cpu profile; see the run card), each pixel coded by a
# $k$-colour palette fitted on the training images: 256 tokens per image. The label, used only by
# the probes and fine-tuning, is the shape of the first object.

# %%
train_set = DS.load("shapes", image_size=cfg.image_size,
                    objects=cfg.objects, label=cfg.label,
                    n=cfg.n_train, seed=seed)
test_set = DS.load("shapes", split="test", image_size=cfg.image_size,
                   objects=cfg.objects, label=cfg.label,
                   n=cfg.n_test, seed=seed)
palette = fit_palette(train_set.x, cfg.k, seed=seed)
tok_train, tok_test = palette.encode(train_set.x), palette.encode(test_set.x)
h0 = igpt.unigram_entropy(tok_train, cfg.k)
print(f"shapes: {len(tok_train)} train / {len(tok_test)} test sequences "
      f"of {n_tok} tokens, vocabulary {cfg.k}")
print(f"palette RMSE {palette.error(test_set.x):.2f} (0-255); "
      f"label '{cfg.label}': {', '.join(train_set.classes)}")

# %%
fig = igpt.image_table([train_set.x[train_set.y == c][:8]
                        for c in range(len(train_set.classes))],
                       [f"{cfg.label}: {c}" for c in train_set.classes],
                       title="training scenes by label (the first object's "
                             "shape; the second object is drawn over it)")
plt.show()

# %%
tcfg = TR.TrainConfig.from_preset(
    cfg, weight_decay=0.01, ema_decay=0.995, seed=seed,
    snapshot_every_images=cfg.train_images // cfg.checkpoints)
ar = TR.train_cached("01_igpt_ar", GPT_.GPT(gpt_cfg), AR.ARObjective(),
                     tok_train, tcfg, device=device,
                     extra={"palette": palette.centers})
print("GPT:", nets.describe(ar.ema, tok_train[:2].to(device)), sep="\n")
print(f"trained {ar.steps} steps ({ar.steps * cfg.batch_size:,} sequences) "
      + ("(loaded from the cache)" if ar.loaded else f"in {ar.wall_s:.0f} s"))
test_nll = AR.eval_nll(ar.ema, tok_test)
print(f"held-out NLL, nats per token: {test_nll['nats_per_token']:.3f}")
print(f"  a uniform guess over the palette: {math.log(cfg.k):.3f}")
print(f"  the palette's token frequencies alone: {h0:.3f}")

# %%
imgs, losses = ar.losses()
fig, ax = plt.subplots(figsize=(4, 2.5))
ax.plot(imgs, losses)
ax.axhline(h0, color="gray", ls=":", label="token frequencies alone")
ax.set(xlabel="sequences seen", ylabel="train loss (nats/token)",
       title="autoregressive training")
ax.legend(frameon=False)
plt.show()

# %% [markdown]
# **Samples and completions** (the paper's Fig. 1 idea): unconditional samples, and the bottom half of
# held-out images completed from their top half, three times each.

# %%
g = torch.Generator(device=device).manual_seed(seed)
H = cfg.image_size
empty = torch.zeros(cfg.n_samples, 0, dtype=torch.long, device=device)
gen = ar.ema.generate(empty, n_tok, generator=g)
samples = palette.decode(gen.cpu(), H)
# three completions of each of six scenes: (3, 6, n_tok)
done = AR.complete(ar.ema, tok_test[:6], keep=n_tok // 2, n=3, seed=seed)
halves = palette.decode(tok_test[:6], H).clone()
halves[:, :, H // 2:] = -1

# %%
n_show = min(16, len(samples))
fig = igpt.image_table([samples[i:i + 8] for i in range(0, n_show, 8)],
                       ["samples", "samples"][:math.ceil(n_show / 8)],
                       title="unconditional samples of the autoregressive GPT")
plt.show()
fig = igpt.image_table([halves, palette.decode(tok_test[:6], H)]
                       + [palette.decode(d.cpu(), H) for d in done],
                       ["top half given", "original", "completion 1",
                        "completion 2", "completion 3"],
                       title="columns: six held-out scenes; rows: the prompt, "
                             "the original, three completions")
plt.show()

# %% tags=["hide-input"]
nll = test_nll["nats_per_token"]
rec.unigram_entropy, rec.ar_nll = h0, nll
rec.n_classes = len(train_set.classes)
notebook.see(
    f"The held-out loss is {nll:.3f} nats per token, against {h0:.3f} for a coder that knows only the "
    f"palette's colour frequencies: "
    + ("the model has learned most of what neighbouring pixels say about each other (flat backgrounds and "
       "solid objects are very predictable). " if igpt.trained(nll, h0) else
       "the model has barely learned context, so the probes below read an untrained model (raise "
       "`train_images`). ")
    + "In the completions, look for whether the prompt's background is kept and objects that cross the cut "
      "are continued with their colour and shape. The paper's completions (Fig. 1) come from models "
      "10^4 times larger on 32x32 natural images.")

# %% [markdown]
# ## Experiment 3: linear probes by layer, against the pixels
#
# Features after 0 (the embeddings), 1, ..., $L$ blocks, average-pooled, then a logistic regression
# fitted on the first 80% of the training images; the layer is chosen on the other 20%, and the test accuracy of every layer is
# shown with its 95% Wilson interval. The references: the same probe on the GPT's own input, the
# palette tokens coded one-hot, both unpooled (every position's colour: $256 \times k$ numbers)
# and average-pooled as the GPT's features are (the colour histogram: $k$ numbers); on the raw RGB
# pixels, which keep what the palette drops; and on an untrained GPT of the same shape (what the
# architecture gives for free). The paper has no input baseline; its finding
# (Sec. 4.1-4.3): the pretrained features probe far better than chance-level baselines, 96.3% on
# CIFAR-10, with the best layer in the middle of the network.

# %%
def probe_model(net, layers=None):
    return probe.select_layer(net, tok_train, train_set.y, tok_test,
                              test_set.y, C=cfg.probe_C, layers=layers)


def summary(r):
    hits = r["hits"][r["best"]]  # per test image, at the layer chosen on val
    return dict(val=r["val"], test=r["test"], best=r["best"], hits=hits,
                best_ci=igpt.acc_ci(hits),
                layer_ci=[igpt.acc_ci(h) for h in r["hits"]])


ar_probe = probe_model(ar.ema)
rand_probe = probe_model(GPT_.GPT(gpt_cfg).to(device))
pix_hits = probe.probe_hits(train_set.x.flatten(1), train_set.y,
                            test_set.x.flatten(1), test_set.y, C=cfg.probe_C)
# the GPT's input, like for like: one-hot palette tokens, unpooled and pooled
oh_train = torch.nn.functional.one_hot(tok_train, cfg.k).float()
oh_test = torch.nn.functional.one_hot(tok_test, cfg.k).float()
tok_hits = {how: probe.probe_hits(f(oh_train), train_set.y, f(oh_test),
                                  test_set.y, C=cfg.probe_C)
            for how, f in (("unpooled", lambda t: t.flatten(1)),
                           ("pooled", lambda t: t.mean(1)))}
P = dict(ar=summary(ar_probe), untrained=summary(rand_probe),
         pixels_ci=igpt.acc_ci(pix_hits))


# %%
def err_plot(ax, s, fmt, label, **kw):
    lo = [c.est - c.lo for c in s["layer_ci"]]  # Wilson 95% error bars
    hi = [c.hi - c.est for c in s["layer_ci"]]
    ax.errorbar(range(len(s["test"])), s["test"], yerr=[lo, hi], fmt=fmt,
                capsize=2, label=label, **kw)


fig, ax = plt.subplots(figsize=(4.8, 3))
err_plot(ax, P["ar"], "o-", "autoregressive GPT")
err_plot(ax, P["untrained"], "s--", "untrained GPT", color="gray")
ax.axhspan(P["pixels_ci"].lo, P["pixels_ci"].hi, color="C2", alpha=0.25,
           label="raw RGB pixels (95% CI)")
for (how, h), c in zip(tok_hits.items(), ("C1", "C4")):
    ci = igpt.acc_ci(h)
    ax.axhspan(ci.lo, ci.hi, color=c, alpha=0.25,
               label=f"tokens, {how} (95% CI)")
ax.axhline(1 / len(train_set.classes), color="k", lw=0.8, ls=":",
           label="chance")
ax.set(xlabel="layer (blocks applied)", ylabel="test accuracy",
       title=f"linear probe of '{cfg.label}' by depth")
ax.legend(frameon=False, fontsize=7)
plt.show()

# %%
tok_ci = {how: igpt.pct(igpt.acc_ci(h)) for how, h in tok_hits.items()}
notebook.show_table(
    [dict(layer=l, val=f"{P['ar']['val'][l]:.1%}",
          test=f"{P['ar']['test'][l]:.1%}", ci95=f"[{c.lo:.1%}, {c.hi:.1%}]",
          untrained=f"{P['untrained']['test'][l]:.1%}")
     for l, c in enumerate(P["ar"]["layer_ci"])],
    caption=f"probe accuracy by layer (chosen on val: {P['ar']['best']}); "
            f"one-hot tokens {tok_ci['unpooled']} unpooled, "
            f"{tok_ci['pooled']} pooled; "
            f"raw RGB pixels {igpt.pct(P['pixels_ci'])}; "
            "paper: 96.3% on CIFAR-10 (iGPT-L)")

# %% tags=["hide-input"]
A, R, X = P["ar"]["best_ci"], P["untrained"]["best_ci"], P["pixels_ci"]
hA, hR = P["ar"]["hits"], P["untrained"]["hits"]  # per image, paired
rec.ar_layer, rec.ar_layer_acc = P["ar"]["best"], P["ar"]["layer_ci"]
rec.ar_hits, rec.ar_last_hits = hA, ar_probe["hits"][-1]
rec.untrained_hits, rec.pixel_hits = hR, pix_hits
rec.token_flat_hits, rec.token_hits = tok_hits["unpooled"], tok_hits["pooled"]
hT, hP = tok_hits["unpooled"], tok_hits["pooled"]
w_in = {igpt.word(hA, hT), igpt.word(hA, hP)}
finding = w_in == {igpt.word(hA, pix_hits), igpt.word(hA, hR)} == {"higher than"}
notebook.see(
    ("The paper's finding shows in miniature: predicting pixels taught the network what shapes are. "
     if finding else
     "The paper's finding, features better than what the input or the architecture alone give, does not "
     "show clearly at this scale. ")
    + f"The GPT's probe (layer {P['ar']['best']}) reads the shape {igpt.pct(A)}, "
    f"{igpt.word(hA, hT)} the unpooled palette tokens' {igpt.pct(igpt.acc_ci(hT))}, "
    f"{igpt.word(hA, hP)} the pooled tokens' {igpt.pct(igpt.acc_ci(hP))}, "
    f"{igpt.word(hA, pix_hits)} the raw RGB pixels' {igpt.pct(X)} and {igpt.word(hA, hR)} an untrained GPT's "
    f"{igpt.pct(R)} (chance {1 / len(train_set.classes):.0%}; each difference paired by image). "
    + f"The layer chosen on validation is {P['ar']['best']} of {cfg.n_layer}"
    + (" (inside the network, as in the paper's Fig. 2)." if 0 < P["ar"]["best"] < cfg.n_layer else
       " (not in the middle: the paper's peak needs its 24-60 layer models).")
    + " The paper reaches 96.3% on CIFAR-10; the two numbers are not comparable, only the orderings.")

# %% [markdown]
# ## Experiment 4: probe accuracy against the generative loss, across two model sizes
#
# The paper's Fig. 3 plots probe accuracy against validation loss for checkpoints of three model
# sizes, and finds one rising relation. Along one run, loss and probe both improve with training
# time, so a correlation there says nothing; the test that could fail compares *model sizes* with
# training time held fixed. We train a second, smaller GPT (`small_layer` x `small_embd`: 2x32 in the
# cpu profile, against 4x64) with the same budget, probe the snapshots of both, and compute the Spearman
# correlation of (-NLL, probe) partial on the number of sequences seen.

# %%
small_cfg = GPT_.GPTConfig(**{
    **gpt_cfg.__dict__, "n_layer": cfg.small_layer, "n_embd": cfg.small_embd,
    "n_head": max(1, min(cfg.n_head, cfg.small_embd // 16))})
small = TR.train_cached("01_igpt_ar_small", GPT_.GPT(small_cfg),
                        AR.ARObjective(), tok_train, tcfg, device=device,
                        extra={"palette": palette.centers})
small_nll = AR.eval_nll(small.ema, tok_test)["nats_per_token"]
small_probe = probe_model(small.ema)
# earlier snapshots: probed at the layer chosen for their size's final model
snap_rows = []
for name, run, mcfg, final in (("large", ar, gpt_cfg, ar_probe),
                               ("small", small, small_cfg, small_probe)):
    for images, path in run.snapshots.items():
        last = images >= cfg.train_images
        net = (run.ema if last else
               TR.load_weights(path, GPT_.GPT(mcfg), "ema").to(device))
        r = final if last else probe_model(net, layers=[final["best"]])
        val_nll = AR.eval_nll(net, tok_test)["nats_per_token"]
        snap_rows.append(dict(model=name, images=images, val_nll=val_nll,
                              layer=r["best"], probe=r["test"][r["best"]]))

# %%
x_nll = [-r["val_nll"] for r in snap_rows]
y_acc = [r["probe"] for r in snap_rows]
z_img = [r["images"] for r in snap_rows]
enough = len(snap_rows) >= 4
from scipy.stats import spearmanr

nan = float("nan")
raw_rho = float(spearmanr(x_nll, y_acc).correlation) if enough else nan
partial_rho = stats.partial_spearman(x_nll, y_acc, z_img) if enough else nan
notebook.show_table([{k: (f"{v:.4g}" if isinstance(v, float) else v)
                      for k, v in r.items()} for r in snap_rows],
                    caption=f"EMA snapshots of the {cfg.n_layer}x{cfg.n_embd} "
                            f"('large') and {cfg.small_layer}x"
                            f"{cfg.small_embd} ('small') GPTs")

# %%
fig, ax = plt.subplots(figsize=(4.5, 3))
for name, mk in (("large", "o-"), ("small", "s--")):
    rs = [r for r in snap_rows if r["model"] == name]
    ax.plot([r["val_nll"] for r in rs], [r["probe"] for r in rs], mk,
            label=f"{name} GPT")
    for r in rs:
        ax.annotate(f"{r['images'] // 1000}k", (r["val_nll"], r["probe"]),
                    fontsize=6)
ax.set(xlabel="validation NLL (nats/token)", ylabel="probe accuracy (test)",
       title="probe vs loss (cf. Fig. 3)")
ax.invert_xaxis()
ax.legend(frameon=False, fontsize=7)
plt.show()

# %% tags=["hide-input"]
rho, rho0 = partial_rho, raw_rho
hS = small_probe["hits"][small_probe["best"]]
B_, S_ = P["ar"]["best_ci"], igpt.acc_ci(hS)
nll_b, nll_s = nll, small_nll
rec.small_nll, rec.small_hits = small_nll, hS
rec.n_snapshots = len(snap_rows)
rec.partial_rho, rec.raw_rho = rho, rho0
# the lower-NLL model first
lower, other = (hA, hS) if nll_b < nll_s else (hS, hA)
notebook.see(
    (f"Over the {len(snap_rows)} snapshots, the raw rank correlation of (-NLL, probe) is {rho0:.2f}, and "
     f"{rho:.2f} with the number of sequences seen held fixed; the paper's Fig. 3 shows a clear positive slope. "
     if enough else "This profile keeps too few snapshots for a correlation. ")
    + f"At the end of training the {'large' if nll_b < nll_s else 'small'} model has the lower loss "
      f"({nll_b:.3f} vs {nll_s:.3f} nats) and its probe is "
      f"{igpt.word(lower, other)} "
      f"the other's ({igpt.pct(B_)} large, {igpt.pct(S_)} small)"
    + (": the better generative model gives the better features, as in the paper."
       if igpt.word(lower, other) == "higher than" else
       ": at two small sizes and this budget, a lower loss does not buy a measurably better probe."))

# %% [markdown]
# ## Experiment 5: autoregressive against BERT
#
# The same network shape, made bidirectional, trained with the masked objective for the same
# budget; probes by layer on the unmasked sequences. The paper (Sec. 4.6, Fig. 4): under linear
# probes BERT is worse, and catches up after fine-tuning. (The second edition quoted gaps of 1 point
# on CIFAR-10 and 6 on ImageNet; we could not check them against the paper's text, so the book does
# not cite them.)

# %%
bert_cfg = GPT_.GPTConfig(**{**gpt_cfg.__dict__, "vocab_size": cfg.k + 1,
                             "causal": False, "sos": False})
bert = TR.train_cached("01_igpt_bert", GPT_.GPT(bert_cfg),
                       AR.MaskedObjective(mask_token=cfg.k), tok_train,
                       TR.TrainConfig(**{**tcfg.__dict__,
                                         "snapshot_every_images": 0}),
                       device=device, extra={"palette": palette.centers})
bert_probe = probe_model(bert.ema)
P["bert"] = summary(bert_probe)
_, bl = bert.losses()
bert_loss = float(np.mean(bl[-10:]))

# %%
fig, ax = plt.subplots(figsize=(4.8, 3))
err_plot(ax, P["ar"], "o-", "autoregressive")
err_plot(ax, P["bert"], "^-", "BERT (masked)")
ax.axhspan(P["pixels_ci"].lo, P["pixels_ci"].hi, color="C2", alpha=0.25,
           label="raw pixels (95% CI)")
ax.set(xlabel="layer", ylabel="test accuracy",
       title="linear probes: AR vs BERT")
ax.legend(frameon=False, fontsize=7)
plt.show()

# %% tags=["hide-input"]
Bb, hB = P["bert"]["best_ci"], P["bert"]["hits"]
rec.bert_train_loss, rec.bert_layer = bert_loss, P["bert"]["best"]
rec.bert_hits = hB
bert_note = igpt.bert_reads_nothing(rec)
notebook.see(
    f"BERT's probe (layer {P['bert']['best']}) reads {igpt.pct(Bb)}, the autoregressive GPT's {igpt.pct(A)}: "
    f"AR is {igpt.word(hA, hB)} BERT"
    + (", the paper's ordering." if igpt.word(hA, hB) == "higher than" else
       "; the paper finds AR ahead under linear probes." if igpt.word(hA, hB) != "lower than" else
       ", the reverse of the paper's ordering: at this size the masked objective, which sees both sides of "
       "every pixel, learns the more readable features.")
    + (f" Note: {bert_note}. Its training loss did fall ({bert_loss:.3f} nats per masked "
       "token): it learned to fill in pixels, not features this probe reads"
       + (", so the AR lead is over a network that reads no better than an untrained one."
          if igpt.word(hA, hB) == "higher than" else ".")
       if "learned nothing" in bert_note else (f" {bert_note}." if bert_note else "")))

# %% [markdown]
# ## Experiment 6: fine-tuning
#
# Linear probes freeze the network; fine-tuning trains it, with a linear head on the pooled last
# layer and the loss $L_{CLF} + \lambda L_{GEN}$ (Sec. 3.5). The paper: 99.0% fine-tuned against
# 96.3% probed on CIFAR-10, and BERT, behind under probes, catches up after fine-tuning (Sec. 4.6).
# A fine-tune is compared with its probe only once it fits its training labels better than that
# probe does (its train $L_{CLF}$ below the probe's log-loss on the same labels); at the second
# edition's budget neither fine-tune did, and at two thirds of today's the GPT's missed by 0.001
# nats. The cpu profile fine-tunes the autoregressive GPT only: BERT's fine-tune runs two passes
# per step (the classifier reads the whole sequence, $L_{GEN}$ the masked one), cost a quarter of
# the chapter's budget and never trained at this scale (Exercise 6 runs it).

# %%
ftcfg = TR.TrainConfig(
    train_images=cfg.finetune_images, batch_size=cfg.batch_size,
    lr=cfg.finetune_lr, warmup_images=0, weight_decay=0.01,
    ema_decay=0.99, seed=seed)
tuned = {"ar": (ar, gpt_cfg, None)}  # pretrained run, its config, mask
if cfg.finetune_bert:
    tuned["bert"] = (bert, bert_cfg, cfg.k)
ft, ft_loss = {}, {}  # per-image test hits; final train L_clf
for name, (run, mcfg, mask) in tuned.items():
    body = GPT_.GPT(mcfg)
    body.load_state_dict(run.ema.state_dict())
    net = probe.Classifier(body, len(train_set.classes))
    objective = probe.FineTuneObjective(cfg.gen_weight, mask_token=mask)
    res = TR.train_cached(
        f"01_igpt_ft_{name}", net, objective, (tok_train, train_set.y),
        ftcfg, device=device,
        extra={"palette": palette.centers,
               "init": run.run_dir.name if run.run_dir else ""})
    ft[name] = probe.classify_hits(res.ema, tok_test, test_set.y)
    ft_loss[name] = float(np.mean(res.losses("clf")[1][-10:]))

# %%
probe_acc = {"ar": A, "bert": Bb}
paper = {"ar": "96.3% / 99.0%", "bert": "behind / catches up"}
notebook.show_table(
    [dict(model=m.upper(), probe=igpt.pct(probe_acc[m]),
          fine_tuned=igpt.pct(igpt.acc_ci(ft[m])), paper=paper[m])
     for m in ft],
    caption=f"test accuracy of '{cfg.label}' [95% Wilson]; "
            "paper: CIFAR-10, iGPT-L")

# %% tags=["hide-input"]
rec.ft_ar_hits, rec.ft_bert_hits = ft["ar"], ft.get("bert")
rec.ft_clf_loss = ft_loss
# what each fine-tune's train L_clf must beat: its own probe's log-loss on the
# probe's training rows (the did-not-train gate of the fine-tune rows)
pretrained = {"ar": ar.ema, "bert": bert.ema}
rec.probe_train_loss = {
    m: probe.probe_train_loss(
        probe.layer_features(pretrained[m], tok_train)[P[m]["best"]],
        train_set.y, cfg.probe_C)
    for m in ft}
fit = {m: ft_loss[m] < rec.probe_train_loss[m] for m in ft}
ar_ci = igpt.acc_ci(ft["ar"])
notebook.see(
    f"Fine-tuning reads the shape {igpt.pct(ar_ci)} from the autoregressive GPT, "
    f"{igpt.word(ft['ar'], hA)} its best linear probe ({igpt.pct(A)}); the paper gains 2.7 points on "
    "CIFAR-10 (96.3% to 99.0%). "
    + (f"BERT fine-tuned reaches {igpt.pct(igpt.acc_ci(ft['bert']))}. " if "bert" in ft else "")
    + " ".join(
        f"The {m.upper()} fine-tune's final train classification loss is {ft_loss[m]:.3f} nats, its probe's "
        f"{rec.probe_train_loss[m]:.3f} on the same labels: "
        + ("it fits the training labels better than a linear read of its frozen features."
           if fit[m] else
           f"after {cfg.finetune_images:,} labelled sequences it has not yet fitted them as well as a "
           "linear read of its frozen features, so it did not finish training and the claims table "
           "names it instead of comparing it.")
        for m in ft)
    + (" Fine-tuning also trains the whole network on labels, so part of its gain may come from "
       "supervised training alone; Exercise 4 varies the two knobs that bear on that."
       if igpt.word(ft["ar"], hA) == "higher than" else
       " Exercise 4 gives the fine-tune more labelled sequences."))

# %% [markdown]
# ## Claims
#
# Each row's test (the metric, the comparison, the threshold) is stated under it and is code in
# `ddpm_lib/chapters/igpt.py`, where the verdicts come from. Every comparison of two accuracies is
# paired, on the same test images.

# %% tags=["hide-input"]
# the palette the models use, on Experiment 1's test scenes: the same scenes
# quantised or not, so the palette's cost is a paired difference
rec.palette_orig_hits = orig_hits
rec.palette_model_hits = igpt.attribute_hits(
    reader, palette.quantise(pal_test.x), pal_test.attrs)
nb.finish(igpt.claims(rec), rec)

# %% [markdown]
# ## Takeaways
#
# - iGPT is GPT-2 on pixel tokens with three small changes (RMS norm, the sigmoid GELU, a learned
#   start token) and a k-means palette that makes the sequence 3x shorter; nothing 2-D is built in.
# - A linear probe is only evidence of learned features when it beats the right baselines: the same
#   probe on the network's own input (here the palette tokens, unpooled and pooled) and on an
#   untrained network of the same shape. On 8x8 digits the pixels already win, so the test bed must
#   be one where they do not.
# - A fine-tune that fits its training labels worse than a linear probe on its frozen features has
#   not finished training: compare it only once it has.
# - "Lower loss, better probe" along one run is a co-trend of training time; the paper's claim is
#   across models, and the test holds training time fixed.
# - Every comparison above is between two accuracies on the same 1,000 test images: intervals of a
#   few points decide whether a difference is a finding.
#
# ## Exercises
#
# Each exercise changes a parameter. In Colab or Jupyter, set it in the parameters cell near
# the top (for example `seed = 1`) and run all cells; from a shell, run
# `make run NB=01 PARAMS="seed=1"` or papermill with `-p seed 1`.
#
# 1. **A label the pixels can read.** Re-run with `label="colour"` or `objects=1`: how does the raw-pixel
#    baseline move, and does the GPT's advantage survive?
# 2. **Budget.** Re-run Experiment 4 with `train_images` doubled: does the partial correlation rise, and
#    does the small model's probe catch the large one's?
# 3. **Depth.** Set `n_layer=8`: does the layer chosen on validation move inside the network (Fig. 2)?
# 4. **Is it pretraining?** Set `gen_weight=0` (fine-tuning on the classification loss only) and then
#    `finetune_images` 2x larger: does the fine-tuned accuracy depend on keeping L_GEN, and how far
#    does more labelled training move it past the probe?
# 5. **Palette.** Set `k=4` and `k=32`: how do the held-out NLL (per token, so not comparable across
#    k as is) and the probe change?
# 6. **Does BERT catch up?** Set `finetune_bert=True` (papermill `-p finetune_bert True`; in
#    Colab, add `finetune_bert = True` to the parameters cell) and, since BERT's fine-tune did not train at the cpu profile's
#    budget, `finetune_images` 2x larger: does the AR - BERT gap under the probes shrink after
#    fine-tuning, as in the paper's Fig. 4?
