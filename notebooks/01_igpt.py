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
# [![Open in Colab](../book/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/01_igpt.ipynb)
#
# Before diffusion, OpenAI asked whether the recipe that had just worked for language (a large
# transformer trained to predict the next token) would also learn about images from pixels alone.
# iGPT {cite}`chen2020igpt` trains GPT-2 on sequences of pixels, with no 2-D structure built in,
# and then asks how good its internal features are: a linear classifier on the average-pooled
# activations of one layer reached 96.3% on CIFAR-10. This chapter builds the pieces (a colour
# palette, the GPT, the two objectives, linear probes) and re-runs the paper's analyses at a scale
# that fits a laptop: probe accuracy by layer, probe accuracy against the generative loss, and the
# autoregressive objective against BERT's.

# %%
import subprocess
import sys

if "google.colab" in sys.modules:  # on Colab, install the book's library first (locally: `make install`)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "ddpm_lib[hub] @ git+https://github.com/ddpm-book/ddpm-reproduction-book@main"], check=True)

import ddpm_lib  # before torch: it makes idle OpenMP threads sleep, not spin (see the run card)

import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddpm_lib import autoregressive as AR, data as DS, metrics, nets, notebook, probe, train as TR, viz
from ddpm_lib.nets import transformer as GPT_
from ddpm_lib.quantize import Palette, fit_palette

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9})
nb = notebook.Session("01_igpt", globals())

# %% tags=["parameters"]
profile = "auto"  # smoke | cpu | gpu | auto (DDPM_PROFILE if set, else gpu with CUDA, else cpu)
seed = 0

# %%
cfg = nb.start()
device = notebook.device()
numbers = {}

# %% [markdown]
# ## The idea
#
# An image is flattened into a sequence in raster order, one token per pixel, and a transformer
# learns $p(x)$ either autoregressively or by filling in masked pixels. Nothing tells it that
# pixels live on a grid; it must learn that, and much more, to predict well. If it does, the
# activations that make those predictions should contain what a classifier needs, which a
# *linear probe* measures.
#
# ## The math
#
# **Autoregressive objective** (Sec. 2.1). For a sequence $x = (x_1, \dots, x_n)$ in raster order,
#
# $$
# p(x) = \prod_{i=1}^{n} p(x_i \mid x_1, \dots, x_{i-1}), \qquad
# L_{AR} = \mathbb E_{x}\left[-\log p(x)\right].
# $$
#
# **BERT objective** (Sec. 2.2). Draw a set $M$ of positions, each with probability 0.15; replace
# those tokens with a mask token and predict them from everything else, with a bidirectional model:
#
# $$
# L_{BERT} = \mathbb E_{x}\,\mathbb E_{M} \sum_{i \in M}\left[-\log p(x_i \mid x_{[1,n] \setminus M})\right].
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
# $i$; the feature of an image is the average $f^{(l)} = \frac{1}{n}\sum_i h^{(l)}_i$, and a logistic
# regression is fitted on $f^{(l)}$ of the training images. Its test accuracy is the probe accuracy
# of layer $l$.
#
# ## The code

# %%
notebook.show_source(fit_palette, Palette.encode, AR.ARObjective, AR.MaskedObjective, probe.layer_features)

# %% [markdown]
# ## Experiment 1: palette size, quantisation error and sequence cost
#
# On RGB scenes (`shapes`), for several palette sizes $k$: the RMSE of the quantised image (0-255
# scale) and whether a classifier trained on the original images still reads every attribute of the
# quantised ones. Without a palette the sequence is 3 tokens per pixel.

# %%
pal_data = DS.load(cfg.palette_data, image_size=cfg.palette_size, n=2000, seed=seed)
pal_test = DS.load(cfg.palette_data, split="test", image_size=cfg.palette_size, n=500, seed=seed)
reader = metrics.get_extractor(cfg.palette_data, image_size=cfg.palette_size, device=device,
                               recipe=None if nb.profile != "smoke" else
                               __import__("dataclasses").replace(metrics.RECIPES[cfg.palette_data], epochs=1, n_train=2000))
base_acc = metrics.attribute_accuracy(reader, pal_test.x, pal_test.attrs)["all"]
pal_rows, palettes = [], {}
for k in cfg.palette_ks:
    pal = fit_palette(pal_data.x, k, seed=seed)
    palettes[k] = pal
    q = pal.quantise(pal_test.x)
    pal_rows.append(dict(k=k, bits=f"{math.log2(k):.0f}", rmse=round(pal.error(pal_test.x), 2),
                         attributes_read=f"{metrics.attribute_accuracy(reader, q, pal_test.attrs)['all']:.1%}"))
px = cfg.palette_size**2
notebook.show_table(pal_rows, caption=f"{cfg.palette_data} {cfg.palette_size}x{cfg.palette_size}: {px} tokens with a "
                                      f"palette, {3 * px} sub-pixel tokens without (attention cost x9); all "
                                      f"attributes read correctly on the originals: {base_acc:.1%}")
numbers["palette"] = dict(rows=pal_rows, base_attribute_accuracy=base_acc)
fig, axes = plt.subplots(1, len(cfg.palette_ks) + 1, figsize=(1.6 * (len(cfg.palette_ks) + 1), 1.9))
viz.show_grid(pal_test.x[:9], nrow=3, ax=axes[0], title="original")
for ax, k in zip(axes[1:], cfg.palette_ks):
    viz.show_grid(palettes[k].quantise(pal_test.x[:9]), nrow=3, ax=ax, title=f"k = {k}")
plt.show()

# %% [markdown]
# ## Experiment 2: the autoregressive model
#
# The chapter's main data set is the profile's (see the run card): for the `cpu` profile, the
# 1,797 real handwritten digits of scikit-learn at their native $8\times8$, each pixel one of 17 grey
# levels, quantised to a $k$-colour palette. Labels are used only by the probes.

# %%
train_set, test_set = nb.load_pair(cfg.data, cfg.image_size, cfg.data_fallback, n=cfg.n_train)
palette = fit_palette(train_set.x, cfg.k, seed=seed)
tok_train, tok_test = palette.encode(train_set.x), palette.encode(test_set.x)
n_tok = tok_train.shape[1]
print(f"{train_set.name}: {len(tok_train)} train / {len(tok_test)} test sequences of {n_tok} tokens, "
      f"vocabulary {cfg.k}; palette RMSE {palette.error(test_set.x):.2f} (0-255)")

gpt_cfg = GPT_.GPTConfig(vocab_size=cfg.k, block_size=n_tok, n_layer=cfg.n_layer, n_head=cfg.n_head,
                         n_embd=cfg.n_embd, dropout=cfg.dropout, norm="rms", activation="gelu2", sos=True)
tcfg = TR.TrainConfig(train_images=cfg.train_images, batch_size=cfg.batch_size, lr=cfg.lr,
                      warmup_images=cfg.warmup_images, weight_decay=0.01, ema_decay=0.995, seed=seed,
                      snapshot_every_images=cfg.train_images // cfg.checkpoints)
ar = TR.train_cached("01_igpt_ar", GPT_.GPT(gpt_cfg), AR.ARObjective(), tok_train, tcfg, device=device,
                     extra={"palette": palette.centers})
channels = train_set.x.shape[1]
print("GPT: " + nets.describe(ar.ema, tok_train[:2].to(device)))
print(f"trained {ar.steps} steps ({ar.steps * cfg.batch_size:,} sequences) "
      + ("(loaded from the cache)" if ar.loaded else f"in {ar.wall_s:.0f} s"))
test_nll = AR.eval_nll(ar.ema, tok_test)
print(f"held-out NLL: {test_nll['nats_per_token']:.3f} nats per token = {test_nll['bits_per_dim']:.3f} bits per "
      f"pixel (a uniform guess over the palette: {math.log2(cfg.k):.2f})")
numbers["ar_test_nll"] = test_nll

# %%
imgs, losses = ar.losses()
fig, ax = plt.subplots(figsize=(4, 2.5))
ax.plot(imgs, losses)
ax.set(xlabel="sequences seen", ylabel="train loss (nats/token)", title="autoregressive training")
plt.show()

# %% [markdown]
# **Samples and completions** (the paper's Fig. 1 idea): unconditional samples, and the bottom half of
# held-out images completed from their top half, three times each.

# %%
g = torch.Generator(device=device).manual_seed(seed)
H = cfg.image_size
gen = ar.ema.generate(torch.zeros(cfg.n_samples, 0, dtype=torch.long, device=device), n_tok, generator=g)
samples = palette.decode(gen.cpu(), H)
done = AR.complete(ar.ema, tok_test[:6], keep=n_tok // 2, n=3, seed=seed)  # (3, 6, n_tok)
rows = torch.cat([palette.decode(tok_test[:6], H)[None],
                  torch.stack([palette.decode(d.cpu(), H) for d in done])])  # (4, 6, C, H, W)
halves = palette.decode(tok_test[:6], H).clone()
halves[:, :, H // 2:] = -1
fig, axes = plt.subplots(1, 2, figsize=(7, 2.6))
viz.show_grid(samples[:32], nrow=8, ax=axes[0], title="unconditional samples")
viz.show_grid(torch.cat([halves[None], rows]).transpose(0, 1).flatten(0, 1), nrow=5, ax=axes[1],
              title="half image | original | 3 completions")
plt.show()

# %% [markdown]
# ## Experiment 3: linear probes by layer
#
# Features after 0 (the embeddings), 1, ..., $L$ blocks, average-pooled, then a logistic regression
# on the training images scored on the held-out ones. Two references: the same probe on the raw
# pixels, and on an untrained GPT of the same shape (what the architecture gives for free).

# %%
def probe_all(net):
    return probe.probe_layers(net, tok_train, train_set.y, tok_test, test_set.y, C=cfg.probe_C)


ar_acc = probe_all(ar.ema)
torch.manual_seed(seed)
rand_acc = probe_all(GPT_.GPT(gpt_cfg).to(device))
pixel_acc = probe.linear_probe(train_set.x.flatten(1), train_set.y, test_set.x.flatten(1), test_set.y, C=cfg.probe_C)
se = math.sqrt(max(ar_acc) * (1 - max(ar_acc)) / len(test_set))  # binomial standard error of one accuracy
best_layer = int(np.argmax(ar_acc))
numbers["probe_by_layer"] = dict(ar=ar_acc, untrained=rand_acc, pixels=pixel_acc, best_layer=best_layer, se=se)
fig, ax = plt.subplots(figsize=(4.5, 2.8))
ax.plot(range(len(ar_acc)), ar_acc, "o-", label="autoregressive GPT")
ax.plot(range(len(rand_acc)), rand_acc, "s--", color="gray", label="untrained GPT")
ax.axhline(pixel_acc, color="C2", ls=":", label="raw pixels")
ax.set(xlabel="layer (blocks applied)", ylabel="linear probe accuracy", title="probe accuracy by depth")
ax.legend(frameon=False)
plt.show()
print("probe accuracy by layer: " + ", ".join(f"{a:.1%}" for a in ar_acc)
      + f"\nbest layer {best_layer} of {cfg.n_layer} ({max(ar_acc):.1%}, standard error {se:.1%}); "
        f"last layer {ar_acc[-1]:.1%}; raw pixels {pixel_acc:.1%}")

# %% [markdown]
# ## Experiment 4: probe accuracy against the generative loss
#
# The paper's Fig. 3: across checkpoints, lower validation loss goes with better probes. We probe
# the EMA snapshots kept during training at the best layer of each snapshot.

# %%
snap_rows = []
for images, path in ar.snapshots.items():
    net = TR.load_weights(path, GPT_.GPT(gpt_cfg), "ema").to(device)
    accs = probe_all(net)
    snap_rows.append(dict(images=images, val_nll=AR.eval_nll(net, tok_test)["nats_per_token"],
                          best_probe=max(accs), best_layer=int(np.argmax(accs))))
numbers["probe_vs_loss"] = snap_rows
notebook.show_table([{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()} for r in snap_rows],
                    caption="EMA snapshots along training")
fig, ax = plt.subplots(figsize=(4, 2.8))
ax.plot([r["val_nll"] for r in snap_rows], [r["best_probe"] for r in snap_rows], "o-")
for r in snap_rows:
    ax.annotate(f"{r['images'] // 1000}k", (r["val_nll"], r["best_probe"]), fontsize=7)
ax.set(xlabel="validation NLL (nats/token)", ylabel="best-layer probe accuracy")
ax.invert_xaxis()
plt.show()

# %% [markdown]
# ## Experiment 5: autoregressive against BERT
#
# The same network shape, made bidirectional, trained with the masked objective for the same
# budget; probes by layer on the unmasked sequences. The paper (Sec. 4.6, Fig. 4): under linear
# probes BERT is worse ("more than 1% lower" best layer on CIFAR-10, 6% on ImageNet), while it
# catches up after fine-tuning, which we do not run here.

# %%
bert_cfg = GPT_.GPTConfig(vocab_size=cfg.k + 1, block_size=n_tok, n_layer=cfg.n_layer, n_head=cfg.n_head,
                          n_embd=cfg.n_embd, dropout=cfg.dropout, norm="rms", activation="gelu2", causal=False,
                          sos=False)
bert = TR.train_cached("01_igpt_bert", GPT_.GPT(bert_cfg), AR.MaskedObjective(mask_token=cfg.k), tok_train,
                       TR.TrainConfig(**{**tcfg.__dict__, "snapshot_every_images": 0}), device=device,
                       extra={"palette": palette.centers})
bert_acc = probe_all(bert.ema)
numbers["probe_bert"] = bert_acc
fig, ax = plt.subplots(figsize=(4.5, 2.8))
ax.plot(range(len(ar_acc)), ar_acc, "o-", label="autoregressive")
ax.plot(range(len(bert_acc)), bert_acc, "^-", label="BERT (masked)")
ax.axhline(pixel_acc, color="C2", ls=":", label="raw pixels")
ax.set(xlabel="layer", ylabel="linear probe accuracy")
ax.legend(frameon=False)
plt.show()
print(f"best layer: autoregressive {max(ar_acc):.1%}, BERT {max(bert_acc):.1%}")

# %% [markdown]
# ## Claims

# %%
last_gap = max(ar_acc) - ar_acc[-1]
interior = 0 < best_layer < cfg.n_layer
vals = [r["val_nll"] for r in snap_rows]
accs_snap = [r["best_probe"] for r in snap_rows]
if len(snap_rows) >= 3:
    from scipy.stats import spearmanr
    rho = float(spearmanr([-v for v in vals], accs_snap).correlation)
else:
    rho = float("nan")
setting = (f"{train_set.name} {cfg.image_size}x{cfg.image_size}, k={cfg.k}, GPT {cfg.n_layer}x{cfg.n_embd}, "
           f"{cfg.train_images:,} sequences, {len(test_set)} test images")
claims = [
    notebook.Claim(
        "the best linear-probe features lie in the middle of the network, not at its end",
        "Fig. 2 / Sec. 4.1: 'the best representations for these generative models lie in the middle of the "
        "network'; the last layer costs 2.4% on CIFAR-10",
        f"best layer {best_layer} of {cfg.n_layer} ({max(ar_acc):.1%}); last layer {ar_acc[-1]:.1%} "
        f"(gap {last_gap:.1%}, standard error {se:.1%})",
        setting, "yes" if interior and last_gap > 2 * se else ("partly" if interior else "no"),
        "" if interior and last_gap > 2 * se else
        ("the peak is inside the network but the drop to the last layer is within noise" if interior
         else f"the best layer is the last at this scale; layers 2-{cfg.n_layer} span "
              f"{max(ar_acc[2:]) - min(ar_acc[2:]):.1%}, about "
              f"{(max(ar_acc[2:]) - min(ar_acc[2:])) / se:.1f} standard errors, so a shallow model trained "
              "this briefly shows no clear peak (the paper measures it on iGPT models of 76M-1.4B parameters, 10^2-10^4 times ours)")),
    notebook.Claim(
        "lower validation loss goes with better probe accuracy across checkpoints",
        "Fig. 3: 'the positive slope suggests a link between improved generative performance and improved "
        "representation quality'",
        f"Spearman correlation of (-validation NLL, best probe) over {len(snap_rows)} snapshots: {rho:.2f}",
        setting, "n/a" if math.isnan(rho) else ("yes" if rho > 0.5 else ("partly" if rho > 0 else "no")),
        "fewer than 3 snapshots in this profile" if math.isnan(rho) else
        ("" if rho > 0.5 else "the probe does not track the loss closely over our short run")),
    notebook.Claim(
        "under a linear probe the autoregressive objective beats BERT",
        "Sec. 4.6: BERT's best layer 'more than 1% lower' on CIFAR-10, 6% lower on ImageNet (iGPT-L)",
        f"best layer: AR {max(ar_acc):.1%}, BERT {max(bert_acc):.1%}",
        setting, "yes" if max(ar_acc) > max(bert_acc) else "no",
        "" if max(ar_acc) > max(bert_acc) else "BERT's features probe as well or better at this scale"),
    notebook.Claim(
        "a k-means palette keeps images' content while shortening the sequence 3x",
        "Sec. 3.2: 9-bit palette (k = 512), 1,024 instead of 3,072 tokens at 32x32",
        "; ".join(f"k={r['k']}: RMSE {r['rmse']}, attributes read {r['attributes_read']}" for r in pal_rows[-3:])
        + f" (originals {base_acc:.1%})",
        f"{cfg.palette_data} {cfg.palette_size}x{cfg.palette_size}",
        "yes" if float(pal_rows[-1]["attributes_read"].rstrip("%")) / 100 >= base_acc - 0.02 else "no",
        "" if float(pal_rows[-1]["attributes_read"].rstrip("%")) / 100 >= base_acc - 0.02 else
        f"even the largest palette tried (k={pal_rows[-1]['k']}) loses more than 2 points of attribute accuracy"),
    notebook.Claim(
        "linear probe accuracy: CIFAR-10 96.3% (iGPT-L), ImageNet 72.0% (iGPT-XL, 5 layers concatenated); "
        "fine-tuning CIFAR-10 99.0%",
        "Abstract, Sec. 4.3-4.5",
        f"{train_set.name}: best layer {max(ar_acc):.1%} vs raw pixels {pixel_acc:.1%}",
        setting, "n/a",
        "different data and a model ~10^4 times smaller; the numbers are not comparable, only the shapes of "
        "the curves above" + ("; on 8x8 digits the raw pixels are already nearly linearly separable, and "
                              "they out-probe our small GPT" if pixel_acc > max(ar_acc) else "")),
]
nb.finish(claims, numbers)
