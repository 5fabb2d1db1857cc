# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DALL-E 2 (unCLIP): a prior to CLIP's image embedding, a decoder back to pixels
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/07_unclip.ipynb)
#
# *The badge opens this notebook in Colab once the book's repository is public; until then,
# download the notebook and upload it there ([Running the book](../book/running.md)). With a
# GPU runtime, `profile = "auto"` picks the gpu profile, which no GPU has run yet: its sizes
# are estimates (untested).*
#
# GLIDE (chapter 06) fed the caption straight into the image model. Ramesh et al.
# {cite}`ramesh2022unclip` split the job in two at a representation that already ties images to
# text: CLIP's image embedding. A **prior** maps a caption to an image embedding $z_i$, and a
# **decoder** (GLIDE's model, conditioned on $z_i$ as well) inverts the embedding to pixels. The split
# buys diversity (the decoder is free in everything CLIP ignores), image variations and
# interpolations for free, and cost something the paper names: CLIP's embedding does not say which
# attribute belongs to which object. This chapter builds both stages on two-object `shapes` scenes,
# where binding can be read off every sample, compares the paper's two priors at equal training
# steps, asks why a prior is needed at all (Sec. 5.1), and puts unCLIP beside a GLIDE-style model of
# the same size and budget under guidance (Table 1 and Fig. 11 in shape) and on binding (Sec. 7).
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
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

from ddpm_lib import (data as DS, diffusion as D, features, metrics, nets,
                      notebook, sampling as smp)
from ddpm_lib import (objectives as OBJ, quantize as Q, schedules as S,
                      scorer, stats, text, train as TR, viz)
from ddpm_lib.chapters import unclip as CH
from ddpm_lib.data import shapes
from ddpm_lib.nets import (clip as CL, text_encoder as TE, unclip as UC,
                           unet as U)
from ddpm_lib.progress import tqdm

nb = notebook.Session("07_unclip", globals())

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
# A caption $y$ and its image $x$ have CLIP embeddings $z_t$ and $z_i$. Because $z_i$ is a
# deterministic function of $x$,
#
# $$
# p(x \mid y) = p(x, z_i \mid y) = p(x \mid z_i, y)\, p(z_i \mid y),
# $$
#
# so sampling $z_i$ from a **prior** $p(z_i \mid y)$ and then $x$ from a **decoder**
# $p(x \mid z_i, y)$ samples the text-to-image distribution exactly (Sec. 2). The decoder is trained
# on (image, embedding) pairs with no text at all needed; the prior is a small model over a vector.
# Why not feed the decoder the caption's text embedding $z_t$ directly? CLIP's two towers are
# trained to align, not to coincide: a real caption leaves most of its image unsaid, and in a real
# CLIP a caption's embedding sits far from its image's (the "modality gap"), away from what the
# decoder was trained on. The prior closes that gap.
#
# ## The math
#
# **Decoder** (Sec. 2.1). GLIDE's text-conditional UNet, with $z_i$ entering twice: projected and
# added to the timestep embedding, and projected into four extra tokens appended to the caption's
# token states, which every attention layer reads. For classifier-free guidance the embedding is
# zeroed 10% of the time and the caption dropped 50%; guidance then uses
#
# $$
# \hat\epsilon = \epsilon(x_t \mid \varnothing, \varnothing) + s\,\big(\epsilon(x_t \mid z_i, y) - \epsilon(x_t \mid \varnothing, \varnothing)\big),
# $$
#
# with GLIDE's scale convention ($s = 1$: no guidance). Only the decoder is guided: guiding the
# prior hurt (Sec. 5.5).
#
# **Diffusion prior** (Sec. 2.2). A Gaussian diffusion over the embedding vector, with a
# decoder-only transformer reading [caption tokens, $z_t$, the step, the noised $z_i^{(t)}$, a
# final query] whose last output is the *clean* embedding: the loss is
# $\mathbb{E}\,\lVert f_\theta(z_i^{(t)}, t, y) - z_i \rVert^2$ (the $x_0$ parametrization, not
# $\epsilon$; the paper found it better. One reason it suits a single vector: the decoder reads only
# $z_i$, and recovering $z_i$ from a predicted $\epsilon$ divides by $\sqrt{\bar\alpha_t}$, which
# magnifies the prediction's error at high noise; predicting $z_i$ puts the loss where the output
# is used). Embeddings are unit vectors scaled by 17.2 for $d = 1{,}024$, i.e. $0.54\sqrt d$:
# each coordinate then has the spread of pixels in $[-1, 1]$, which is what the noise schedule was
# designed for (for our $d$ the same rule gives `UC.embedding_scale(d)`). At sampling two embeddings
# are drawn and the one with the larger $z_i \cdot z_t$ kept.
#
# **Autoregressive prior**. $z_i$ is reduced to its first principal components (the paper keeps 319
# of 1,024 with under 1% of the squared error lost), each cut into equal-mass buckets, and a causal
# transformer predicts the bucket indices in order after a prefix of the caption, $z_t$ and one more
# token: the quantised dot product $z_i \cdot z_t$. At sampling that token is drawn from the top half
# of its training distribution, asking for an embedding that matches its caption better than usual.
#
# **Variations and interpolations** (Sec. 3). The decoder is a deterministic map from $(x_T, z_i)$
# to $x_0$ under DDIM ($\eta = 0$), so inverting DDIM gives the $x_T$ that reproduces an image; DDIM
# with $\eta > 0$ from that $x_T$ keeps what $z_i$ holds and redraws the rest (*variations*). Slerp
# between two images' $z_i$ morphs one into the other, and a *text diff*
# $z_d = \mathrm{norm}(z_t^{\text{new}} - z_t^{\text{old}})$ slerped into $z_i$ edits an image
# towards a new caption.
#
# ## The code

# %%
notebook.show_source(UC.UnCLIPDecoder.forward, UC.DiffusionPrior.forward,
                     smp.sample_prior, UC.ARPrior.forward,
                     Q.fit_pca_quantizer, UC.embedding_scale, UC.slerp)

# %% [markdown]
# | paper | library |
# |---|---|
# | decoder: GLIDE's UNet, $z_i$ added to the time embedding and as 4 extra context tokens (Sec. 2.1) | `nets.unclip.UnCLIPDecoder` (on `text_encoder.TextUNet`) |
# | 10% zeroed embeddings, 50% dropped captions | `objectives.Cond("z", "z", 0.1, null_embedding)`, `Cond("tokens", "tokens", 0.5, null_tokens)` |
# | diffusion prior predicting the clean $z_i$, scale 17.2, two candidates (Sec. 2.2) | `nets.unclip.DiffusionPrior`, `Diffusion(param="x0")`, `embedding_scale`, `sampling.sample_prior(candidates=2)` |
# | AR prior over PCA components in buckets, with a dot-product token | `quantize.fit_pca_quantizer`, `fit_buckets`, `nets.unclip.ARPrior`, `objectives.ARPriorObjective` |
# | DDIM inversion, variations at $\eta > 0$, slerp, text diffs (Sec. 3) | `sampling.ddim_invert`, `sampling.ddim(eta=...)`, `nets.unclip.slerp` |
# | GLIDE for comparison (Table 1, Fig. 11) | `text_encoder.TextUNet` with 20% empty captions (chapter 06's recipe) |

# %% [markdown]
# ## Experiment 1: CLIP on two-object scenes
#
# The latent space is a small CLIP (a convolutional image tower with attention pooling, a caption
# transformer, the symmetric contrastive loss) trained on (scene, caption) pairs, each scene with its
# short caption ("a red circle and a blue square") and its descriptive one (sizes, cells and the
# background too). A second CLIP of another width and initialisation is the **judge**: it scores
# samples (CLIP-S = 100 cos) and nothing is trained on it. The independent **reader** (a classifier
# of every cell's shape, colour and size, trained on renders) reads the samples; it decides caption
# match and binding. Retrieval accuracy on held-out pairs (among 100 images, the best-scoring caption
# says the same as the image's own) shows what each CLIP learned; the spectrum of the image
# embeddings shows how many directions they use, which sets the AR prior's number of components.

# %%
train_set = DS.load("shapes", n=cfg.n_train, image_size=cfg.image_size,
                    objects=cfg.objects, seed=seed)
test_set = DS.load("shapes", split="test", n=cfg.n_test,
                   image_size=cfg.image_size, objects=cfg.objects, seed=seed)
C, R = train_set.x.shape[1], cfg.image_size
tk = text.shapes_tokenizer()
mixed = lambda ds: [
    s if i % 2 == 0 else l
    for i, (s, l) in enumerate(zip(ds.captions, ds.captions_long))]
train_caps = mixed(train_set)
train_tok = tk.encode(train_caps)

pairs_x = torch.cat([train_set.x, train_set.x])
pairs_tok = torch.cat([tk.encode(train_set.captions),
                       tk.encode(train_set.captions_long)])
clip_tcfg = TR.TrainConfig(train_images=cfg.clip_images, seed=seed,
                           **OBJ.CLIP_TRAINING)
clip_data = (pairs_x, None, {"tokens": pairs_tok})
latent_cfg = CL.CLIPConfig.make(image_size=R, vocab_size=tk.vocab_size,
                                context=tk.context, embed_dim=cfg.clip_dim,
                                seed=0)
judge_cfg = CL.CLIPConfig.make(image_size=R, vocab_size=tk.vocab_size,
                               context=tk.context, embed_dim=cfg.clip_dim,
                               width=24, seed=1)
clip = TR.train_cached("07_unclip", CL.CLIP(latent_cfg),
                       OBJ.ContrastiveObjective(), clip_data, clip_tcfg,
                       device=device).ema.eval()
judge = TR.train_cached("07_unclip", CL.CLIP(judge_cfg),
                        OBJ.ContrastiveObjective(), clip_data, clip_tcfg,
                        device=device).ema.eval()
reader = scorer.reader(
    R, device=device,
    recipe=None if cfg.reader_images is None else dataclasses.replace(
        scorer.RECIPES[R], train_images=cfg.reader_images, n_one=1000,
        n_two=1000))


@torch.no_grad()
def image_embed(x, batch=1000):
    return torch.cat([
        F.normalize(clip.encode_image(x[i:i + batch].to(device)).float(),
                    dim=-1).cpu()
        for i in range(0, len(x), batch)])


@torch.no_grad()
def text_embed(tokens, batch=1000):
    return torch.cat([
        F.normalize(clip.encode_text(tokens[i:i + batch].to(device)).float(),
                    dim=-1).cpu()
        for i in range(0, len(tokens), batch)])


z_train, zt_train = image_embed(train_set.x), text_embed(train_tok)
test_tok = tk.encode(test_set.captions_long)
z_test, zt_test = image_embed(test_set.x), text_embed(test_tok)
keys = [text.caption_key(c) for c in test_set.captions_long]
retrieval = {
    "latent CLIP": CL.retrieval_accuracy(clip, test_set.x, test_tok, keys),
    "judge CLIP": CL.retrieval_accuracy(judge, test_set.x, test_tok, keys)}
pair_cos = stats.mean_ci((z_test * zt_test).sum(-1).double().numpy())
sv = torch.linalg.svdvals(z_train - z_train.mean(0)).double() ** 2
explained = (sv.cumsum(0) / sv.sum()).numpy()
rec.clips = dict(retrieval=retrieval,
                 reader_accuracy=reader.accuracy(test_set), pair_cos=pair_cos,
                 explained_at_pca_dims=float(explained[cfg.pca_dims - 1]))
notebook.show_table(
    scorer.judges_table(retrieval, rec.clips["reader_accuracy"]),
    caption=f"{cfg.clip_images:,} pairs seen per CLIP; chance retrieval "
            "is about 1%")
fig, ax = plt.subplots(figsize=(4.2, 2.6))
ax.plot(np.arange(1, len(explained) + 1), explained, marker=".", ms=3)
ax.axvline(cfg.pca_dims, color="gray", ls=":", lw=1)
ax.set(xlabel="principal components of z_i", ylabel="variance explained",
       ylim=(0, 1.02),
       title=f"the latent CLIP's image embeddings (d = {cfg.clip_dim})")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
notebook.see(
    f"The latent CLIP retrieves a held-out scene's caption among 100 for {retrieval['latent CLIP']:.0%} of scenes, the "
    f"judge for {retrieval['judge CLIP']:.0%}. A scene's image and caption embeddings have a cosine of {pair_cos.fmt()}"
    + (": nearly equal. On these scenes a descriptive caption says almost everything the image shows (only the jitter of "
       "the objects is left unsaid), so the two towers can meet; real captions cannot, and a real CLIP's matching pairs "
       "sit far apart. The gap a prior has to close is therefore much smaller here than in the paper, which is worth "
       "remembering when the priors are compared below. " if pair_cos.lo > 0.8 else
       ": aligned (a random pair would be near 0) but far from equal, the gap the prior has to close. ")
    + f"The first {cfg.pca_dims} of {cfg.clip_dim} principal components hold {explained[cfg.pca_dims - 1]:.1%} of the "
    "embeddings' variance (the paper keeps 319 of 1,024 for over 99%): the toy CLIP uses few directions, so a short "
    "AR code loses little.")

# %% [markdown]
# ## Experiment 2: the decoder and a GLIDE-style baseline
#
# Both are chapter 06's text-conditional UNet (ADM's blocks, learned variances with
# $L_\text{hybrid}$, the cosine schedule, a two-layer caption transformer), trained for the same
# number of images on the same captions (half short, half descriptive). The **decoder** also reads the
# latent CLIP's embedding of the training scene (zeroed 10% of the time, caption dropped 50%); the
# **baseline** drops 20% of its captions, as GLIDE does. The shapes of the decoder's routes, traced
# on a batch:

# %%
diff = D.Diffusion(S.named(cfg.schedule, cfg.T), "eps", "learned_range")
text_cfg = TE.TextEncoderConfig(vocab_size=tk.vocab_size, context=tk.context,
                                width=cfg.text_width, layers=cfg.text_layers)
unet_cfg = U.preset(cfg.unet, image_size=R, in_channels=C,
                    out_channels=diff.out_channels(C),
                    base_channels=cfg.base_channels, scale_shift_norm=True,
                    resblock_updown=True)
tcfg = TE.TextUNetConfig.of(unet_cfg, text_cfg)
# channels_last: ~1.1x faster training, ~1.3x faster sampling on a CPU
train_cfg = TR.TrainConfig.from_preset(cfg, seed=seed, channels_last=True)
DECODER = (OBJ.Cond("tokens", "tokens", cfg.p_drop_caption, OBJ.null_tokens),
           OBJ.Cond("z", "z", cfg.p_drop_z, OBJ.null_embedding))
decoder_res = TR.train_cached(
    "07_unclip", UC.UnCLIPDecoder(UC.DecoderConfig(tcfg, cfg.clip_dim)),
    OBJ.DiffusionObjective(diff, D.loss_hybrid, conds=DECODER),
    (train_set.x, None, {"tokens": train_tok, "z": z_train}), train_cfg,
    device=device)
glide_res = TR.train_cached(
    "07_unclip", TE.TextUNet(tcfg),
    OBJ.DiffusionObjective(
        diff, D.loss_hybrid,
        conds=(OBJ.Cond("tokens", "tokens", cfg.p_empty, OBJ.null_tokens),)),
    (train_set.x, None, {"tokens": train_tok}), train_cfg, device=device)
decoder, glide = decoder_res.ema.eval(), glide_res.ema.eval()
rec.models = dict(decoder_params=nets.count_params(decoder),
                  glide_params=nets.count_params(glide),
                  decoder_s=round(decoder_res.wall_s, 1),
                  glide_s=round(glide_res.wall_s, 1))

# %%
with torch.no_grad():
    probe_tok = tk.encode(test_set.captions_long[:2]).to(device)
    probe_z = z_test[:2].to(device)
    states, pooled = decoder.net.text(probe_tok)
    extra = decoder.z_tokens(probe_z).view(2, decoder.cfg.n_tokens, -1)
print(f"decoder: {nets.count_params(decoder):,} parameters; "
      f"GLIDE-style baseline: {nets.count_params(glide):,}")
print(f"caption {tuple(probe_tok.shape)} -> token states "
      f"{tuple(states.shape)}, pooled {tuple(pooled.shape)}")
print(f"z_i {tuple(probe_z.shape)}\n"
      f"  (a) -> Linear -> {tuple(decoder.z_embed(probe_z).shape)}, added "
      "to the pooled caption,\n      then to the time embedding;\n"
      f"  (b) -> Linear -> {tuple(extra.shape)} extra tokens:\n      the "
      f"attention layers read {states.shape[1]} + {extra.shape[1]} context "
      "tokens")

# %% [markdown]
# ## Experiment 3: two priors at equal steps
#
# Both priors read the caption (through their own caption transformer), the latent CLIP's text
# embedding $z_t$, and train for the same number of steps on the same (caption, $z_t$, $z_i$)
# triples, with caption and $z_t$ dropped 10% of the time. The **diffusion prior** predicts the
# clean scaled embedding ($T = 1000$, cosine schedule; sampled with `prior_steps` respaced steps, two
# candidates). The **AR prior** predicts the dot-product token and `pca_dims` component tokens of
# `buckets` equal-mass buckets each; its dot-product token is drawn uniformly from the top half of
# the buckets at sampling. The tests, stated before the run: on held-out descriptive captions the
# diffusion prior's embeddings have a higher cosine with the caption's true image embedding than the
# AR prior's, and decoded by the same decoder they match their captions better and have lower FD
# (Experiment 4). Image retrieval (among 100 held-out scenes, the true embedding closest to the
# predicted one belongs to a scene with the same caption) is reported beside.

# %%
scale = UC.embedding_scale(cfg.clip_dim)
prior_cfg = UC.PriorConfig(clip_dim=cfg.clip_dim, text=text_cfg,
                           width=cfg.prior_width, layers=cfg.prior_layers,
                           pca_dims=cfg.pca_dims, buckets=cfg.buckets)
prior_tcfg = TR.TrainConfig.from_preset(
    cfg, train_images=cfg.prior_images, lr=cfg.prior_lr, seed=seed)
prior_diff = D.Diffusion(S.named("cosine", cfg.T), "x0", "fixed_small",
                         clip_denoised=False)
PRIOR = (OBJ.Cond("tokens", "tokens", cfg.p_drop_text, OBJ.null_tokens),
         OBJ.Cond("z_text", "z_text", cfg.p_drop_text, OBJ.null_embedding))
t0 = time.perf_counter()
dprior_res = TR.train_cached(
    "07_unclip", UC.DiffusionPrior(prior_cfg),
    OBJ.DiffusionObjective(prior_diff, D.loss_simple, conds=PRIOR),
    (z_train * scale, None,
     {"tokens": train_tok, "z_text": zt_train * scale}),
    prior_tcfg, device=device)
pca = Q.fit_pca_quantizer(z_train, cfg.pca_dims, cfg.buckets)
dots = Q.fit_buckets((z_train * zt_train).sum(-1, keepdim=True), cfg.buckets)
codes = torch.cat([dots.encode((z_train * zt_train).sum(-1, keepdim=True)),
                   pca.encode(z_train)], 1)
arprior_res = TR.train_cached(
    "07_unclip", UC.ARPrior(prior_cfg), OBJ.ARPriorObjective(cfg.p_drop_text),
    (codes, None, {"tokens": train_tok, "z_text": zt_train * scale}),
    prior_tcfg, extra={"pca": pca.components, "dots": dots.edges},
    device=device)
dprior, arprior = dprior_res.ema.eval(), arprior_res.ema.eval()
pd = prior_diff.respace(cfg.prior_steps)


def diffusion_prior(tokens, z_text, seed_):
    return smp.sample_prior(dprior, pd, tokens, z_text,
                            candidates=cfg.candidates, seed=seed_,
                            scale=scale).cpu()


def ar_prior(tokens, z_text, seed_):
    g = torch.Generator().manual_seed(seed_)
    top = torch.randint(cfg.buckets // 2, cfg.buckets, (len(tokens),),
                        generator=g)  # the top half of <z_i, z_t>
    with torch.no_grad():
        c = arprior.generate(tokens.to(device), (z_text * scale).to(device),
                             first=top.to(device), generator=g)
    return F.normalize(pca.decode(c[:, 1:].cpu()), dim=-1)


m_prior = min(500, len(test_set))
pri = {"diffusion prior": diffusion_prior(test_tok[:m_prior],
                                          zt_test[:m_prior], seed + 1),
       "AR prior": ar_prior(test_tok[:m_prior], zt_test[:m_prior], seed + 1),
       "text embedding z_t (no prior)": zt_test[:m_prior],
       "AR code of the true z_i (its ceiling)": F.normalize(
           pca.decode(pca.encode(z_test[:m_prior])), dim=-1)}
z_true = z_test[:m_prior]


def embedding_retrieval(z, pool=100):
    hits = []
    for s0 in range(0, m_prior - pool + 1, pool):
        best = (z[s0:s0 + pool] @ z_true[s0:s0 + pool].T).argmax(1)
        hits += [keys[s0 + j] == keys[s0 + i]
                 for i, j in enumerate(best.tolist())]
    return float(np.mean(hits))


prior_rows, prior_cos = [], {}
for name, z in pri.items():
    prior_cos[name] = (z * z_true).sum(-1).double().numpy()
    prior_rows.append({
        "embedding": name,
        "cos with the true z_i": stats.mean_ci(prior_cos[name]).fmt(),
        "cos with z_t": stats.mean_ci(
            (z * zt_test[:m_prior]).sum(-1).double().numpy()).fmt(),
        "image retrieval (of 100)": f"{embedding_retrieval(z):.0%}"})
# another scene's embedding: the floor
shuffled = (z_true.roll(1, 0) * z_true).sum(-1).double().numpy()
prior_rows.append({"embedding": "another scene's true z_i (floor)",
                   "cos with the true z_i": stats.mean_ci(shuffled).fmt(),
                   "cos with z_t": "–", "image retrieval (of 100)": "–"})
rec.prior_cos = prior_cos
rec.priors = dict(rows=prior_rows, pca_explained=pca.explained, scale=scale,
                  n=m_prior, train_s={"diffusion": round(dprior_res.wall_s, 1),
                                      "AR": round(arprior_res.wall_s, 1)},
                  params={"diffusion": nets.count_params(dprior),
                          "AR": nets.count_params(arprior)})
notebook.show_table(
    prior_rows,
    caption=f"{m_prior} held-out descriptive captions, one embedding each; "
            "95% t-intervals. Training: diffusion prior "
            f"{dprior_res.wall_s:.0f} s ({nets.count_params(dprior):,} "
            f"parameters), AR prior {arprior_res.wall_s:.0f} s "
            f"({nets.count_params(arprior):,}), "
            f"{cfg.prior_images // cfg.batch_size:,} steps each; "
            f"the AR code keeps {pca.explained:.0%} of the variance")

# %% [markdown]
# The shapes through the diffusion prior, traced on two held-out captions at one noise level:

# %%
with torch.no_grad():
    tok2 = test_tok[:2].to(device)
    zt2 = (zt_test[:2] * scale).to(device)
    step = torch.full((2,), cfg.T // 2, device=device)
    z_noisy = torch.zeros(2, cfg.clip_dim, device=device)  # any z_i^(t)
    z_clean = dprior(z_noisy, step, tokens=tok2, z_text=zt2)
print(f"caption {tuple(tok2.shape)} tokens, z_t {tuple(zt2.shape)}, the "
      f"step {tuple(step.shape)}, noised z_i {tuple(z_noisy.shape)}")
print(f"-> one causal sequence: {tok2.shape[1]} caption token states (its "
      "own caption\n   transformer), then z_t, the step, z_i^(t) and a "
      f"query, each a {cfg.prior_width}-wide token")
print(f"-> the query's output -> Linear -> clean z_i {tuple(z_clean.shape)}"
      f"\n   (scaled by {scale:.2f}: unit norm times 0.54 sqrt(d))")

# %% tags=["hide-input"]
TXT, PRIORS = "text embedding z_t (no prior)", ("diffusion prior", "AR prior")
over_text = {nm: stats.mean_ci(prior_cos[nm] - prior_cos[TXT]) for nm in PRIORS}
earn = [nm for nm in PRIORS if over_text[nm].lo > 0]
d_vs_ar = stats.paired_mean_diff(prior_cos["diffusion prior"], prior_cos["AR prior"])
notebook.see(
    ("Both priors earn their place" if len(earn) == 2 else
     f"Only the {earn[0]} earns its place" if earn else
     "Neither prior earns its place at this scale")
    + ": a prior earns it when its embedding lands nearer the caption's true image embedding than the text "
    "embedding itself does, the gap of Sec. 5.1 (cosine over the text embedding's: "
    + ", ".join(f"{nm} {over_text[nm]}" for nm in PRIORS) + "). "
    + ("The diffusion prior lands nearer than the AR prior" if d_vs_ar.lo > 0 else
       "The AR prior lands nearer than the diffusion prior" if d_vs_ar.hi < 0 else
       "The two priors are not significantly different")
    + f" (cosine {stats.mean_ci(prior_cos['diffusion prior']).fmt()} against "
    f"{stats.mean_ci(prior_cos['AR prior']).fmt()}; another scene's image embedding scores "
    f"{stats.mean_ci(shuffled).fmt()}). The AR prior cannot beat its own code: quantising the true embedding "
    f"to {cfg.pca_dims} components in {cfg.buckets} buckets already gives "
    f"{stats.mean_ci(prior_cos['AR code of the true z_i (its ceiling)']).fmt()}. The paper reports the comparison "
    "downstream only (FID 10.39 for the diffusion prior vs 10.63), which Experiment 4 measures.")

# %% [markdown]
# ## Experiment 4: sampling, from the same captions and the same noise
#
# `n_captions` held-out descriptive captions, each `per_caption` times (different noise for each
# copy, the same noise in every configuration), `sample_steps` respaced ancestral steps. The
# configurations: the decoder with the diffusion prior's embedding at every scale in `scales`; with
# the AR prior's, with the text embedding $z_t$ in the image embedding's place (zero-shot), with the
# caption alone (zero embedding), with nothing (the unconditional samples), and with the true $z_i$
# of each caption's own held-out scene (reconstructions, the decoder's ceiling); the GLIDE-style
# baseline at every scale and with the empty caption. For each: FD, precision and recall against
# the training scenes (the in-domain feature network, the real-vs-real floor at the same n), the
# reader's caption match (the caption's objects matched to the read objects with the most attributes
# right), **within-caption diversity** (the mean feature distance between the samples of one
# caption), **binding** (both objects drawn with their own shape and colour; the share of the
# prompt's colours found on the wrong object), and the judge's CLIP-S.
#
# The tests (the claims table holds them): (1) at $s = 1$ both systems match their captions better
# than their unconditional samples do; (2) decoded, the diffusion prior's embeddings beat the AR
# prior's (caption match and FD); (3) with the prior's embedding the decoder beats the text
# embedding (FD and caption match) and the caption alone (caption match); (4) from $s = 1$ to the
# largest $s$, the baseline loses more diversity and more recall and gains more FD than unCLIP; and
# at the pair of scales whose caption matches lie closest (chosen on caption match alone, and shown
# equal within one point), unCLIP's samples of a caption are the more diverse; (5) at $s = 3$
# unCLIP binds both objects right less often than the baseline and swaps colours more; (6) of the
# colours they draw, reconstructions from the true $z_i$ put a larger share on the wrong object than
# the same decoder given the caption alone. Two were changed after a record whose verdicts were
# seen, and their rows say so with the verdict under the old rule: (6) compared the reconstructions
# with the reader's error on real scenes until the second edition, and (4)'s matched pair was not
# required to be equal until this one. The claims tables' intervals resample captions, since
# samples nest in them (a cluster bootstrap), FD and recall included; the tables of rates below
# give t-intervals over samples, a little narrower.

# %%
n_cap, k = min(cfg.n_captions, len(test_set)), cfg.per_caption
N = n_cap * k
caps = [c for c in test_set.captions_long[:n_cap] for _ in range(k)]
tok = test_tok[:n_cap].repeat_interleave(k, 0).to(device)
empty = tk.empty(N).to(device)
zt = zt_test[:n_cap].repeat_interleave(k, 0)
z_null = torch.zeros(N, cfg.clip_dim, device=device)
d = diff.respace(cfg.sample_steps)
extractor = features.get_extractor("shapes", image_size=R, device=device,
                                   train_images=cfg.feature_images)
z_by = {
    "diffusion prior": diffusion_prior(tok.cpu(), zt, seed + 2).to(device),
    "AR prior": ar_prior(tok.cpu(), zt, seed + 2).to(device),
    "text embedding (zero-shot)": zt.to(device),
    "true z_i (reconstruction)":
        z_test[:n_cap].repeat_interleave(k, 0).to(device)}


def draw(model):
    return smp.sample_batched(smp.ancestral, model, d, N,
                              train_set.image_shape, seed=seed,
                              device=device, batch_size=N).clamp(-1, 1).cpu()


def scores(xs):
    # the bootstrap resamples captions: k samples of a caption go together
    ev = metrics.evaluate(extractor, train_set.x, xs, real_ref=test_set.x[:N],
                          bootstrap=cfg.bootstrap, seed=seed, cluster=k)
    m = scorer.caption_match(reader, xs, caps, assign="best")
    b = scorer.binding_scores(reader, xs, caps)
    div = metrics.within_caption_diversity(
        extractor.features(xs).view(n_cap, k, -1)).numpy()
    return dict(xs=xs, ev=ev, match=m.score.double().numpy(), div=div,
                judge=CL.clip_score(judge, xs, tok.cpu()).numpy(), **b)


def decoder_model(z, s=1.0, tokens=tok):
    if s == 1:
        return nets.as_model(decoder, tokens=tokens, z=z)
    return smp.guided_by(decoder, s, {"tokens": tokens, "z": z},
                         {"tokens": empty, "z": z_null}, channels=C)


configs = [(f"unCLIP s={s:g}",
            lambda s=s: decoder_model(z_by["diffusion prior"], s))
           for s in cfg.scales]
configs += [
    ("unCLIP, AR prior", lambda: decoder_model(z_by["AR prior"])),
    ("decoder, text embedding",
     lambda: decoder_model(z_by["text embedding (zero-shot)"])),
    ("decoder, caption only", lambda: decoder_model(z_null)),
    ("decoder, unconditional", lambda: decoder_model(z_null, tokens=empty)),
    ("decoder, true z_i",
     lambda: decoder_model(z_by["true z_i (reconstruction)"]))]
configs += [(f"GLIDE s={s:g}",
             lambda s=s: nets.as_model(glide, tokens=tok) if s == 1 else
             smp.guided_by(glide, s, {"tokens": tok}, {"tokens": empty},
                           channels=C))
            for s in cfg.scales]
configs += [("GLIDE, empty caption",
             lambda: nets.as_model(glide, tokens=empty))]
runs = {}
for name, make in tqdm(configs, desc="configurations"):
    runs[name] = scores(draw(make()))
real_bind = scorer.binding_scores(reader, test_set.x[:n_cap],
                                  test_set.captions_long[:n_cap])
fd_floor = runs["unCLIP s=1"]["ev"].fd_floor
rows = [dict(config=k_, fd=r["ev"].ci("fd"), precision=r["ev"].ci("precision"),
             recall=r["ev"].ci("recall"), match=stats.mean_ci(r["match"]),
             diversity=stats.mean_ci(r["div"]),
             bound=stats.mean_ci(r["bound"]), swap=stats.mean_ci(r["swap"]),
             judge=stats.mean_ci(r["judge"])) for k_, r in runs.items()]
rec.sampling = dict(rows=rows, fd_floor=fd_floor, n=N, captions=n_cap,
                    per_caption=k, steps=cfg.sample_steps,
                    real_swap=stats.mean_ci(real_bind["swap"]),
                    real_bound=stats.mean_ci(real_bind["bound"]))
notebook.show_table(
    [{"configuration": r["config"], "FD": CH.iv(r["fd"]).fmt(),
      "precision": CH.iv(r["precision"]).fmt(),
      "recall": CH.iv(r["recall"]).fmt(),
      "diversity": CH.iv(r["diversity"]).fmt()} for r in rows],
    caption=f"Image quality: {N} samples per configuration ({n_cap} "
            f"held-out captions x {k}), {cfg.sample_steps} respaced steps; "
            f"FD floor (real vs real at this n) {fd_floor:.3g}; 95% "
            "intervals (bootstrap over captions for FD, precision and "
            "recall; t over captions for diversity)")
notebook.show_table(
    [{"configuration": r["config"],
      "caption match": CH.iv(r["match"]).fmt(pct=True),
      "both bound": CH.iv(r["bound"]).fmt(pct=True),
      "colour swaps": CH.iv(r["swap"]).fmt(pct=True),
      "judge CLIP-S": CH.iv(r["judge"]).fmt()} for r in rows],
    caption="Following the caption, the same samples: real scenes have "
            "both objects bound "
            f"{stats.mean_ci(real_bind['bound']).fmt(pct=True)} and colour "
            f"swaps {stats.mean_ci(real_bind['swap']).fmt(pct=True)} (the "
            "reader's own errors); 95% t-intervals over samples")

# %%
show = ["unCLIP s=1", f"unCLIP s={max(cfg.scales):g}", "GLIDE s=1",
        f"GLIDE s={max(cfg.scales):g}", "decoder, text embedding",
        "decoder, true z_i"]
n_show = min(4, n_cap)
fig, axes = plt.subplots(len(show), 1, figsize=(6.2, 1.1 * len(show)))
for ax, name in zip(axes, show):
    viz.show_grid(runs[name]["xs"][:n_show * k], nrow=n_show * k, ax=ax)
    ax.set_title(name, fontsize=8, loc="left")
fig.tight_layout()
plt.show()
notebook.legend(f"{k} samples for each of the first {n_show} held-out "
                "captions (columns, in groups), by configuration (rows)",
                test_set.captions_long[:n_show])

# %%
fig, axes = plt.subplots(2, 2, figsize=(6.2, 4.6))
axes = axes.ravel()
for fam, marker in (("unCLIP", "o"), ("GLIDE", "s")):
    names = [f"{fam} s={s:g}" for s in cfg.scales]
    for ax, key in zip(axes, ("fd", "div", "recall", "match")):
        if key in ("fd", "recall"):
            ivs = [runs[n_]["ev"].ci(key) for n_ in names]
        else:
            ivs = [stats.mean_ci(runs[n_][key]) for n_ in names]
        ax.errorbar(cfg.scales, [i.est for i in ivs],
                    yerr=[[i.est - i.lo for i in ivs],
                          [i.hi - i.est for i in ivs]],
                    marker=marker, ms=4, capsize=2, label=fam)
for ax, title in zip(axes, ("FD (lower is better)",
                            "within-caption diversity", "recall",
                            "caption match (reader)")):
    ax.set(xlabel="guidance scale s", title=title)
    ax.legend(frameon=False, fontsize=7)
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
# the record: per-sample scores as captions x samples, FD replicates, by configuration (value)
s_max = max(cfg.scales)
key_of = {**{f"unCLIP s={s:g}": ("unCLIP", float(s)) for s in cfg.scales},
          **{f"GLIDE s={s:g}": ("GLIDE", float(s)) for s in cfg.scales},
          **{key[0]: key for key in (CH.AR, CH.TEXT, CH.CAPTION, CH.UNCOND, CH.RECON, CH.GLIDE_EMPTY)}}
by_key = {key_of[name]: r for name, r in runs.items()}
rec.fd_floor = fd_floor
rec.fd = {key: r["ev"].ci("fd") for key, r in by_key.items()}
rec.fd_reps = {key: r["ev"].replicates["fd"] for key, r in by_key.items()}
rec.recall = {key: r["ev"].ci("recall") for key, r in by_key.items()}
rec.recall_reps = {key: r["ev"].replicates["recall"]
                   for key, r in by_key.items()}
for field in ("match", "bound", "swap", "present"):
    setattr(rec, field, {key: np.reshape(r[field], (n_cap, k)) for key, r in by_key.items()})
rec.div = {key: r["div"] for key, r in by_key.items()}
rec.real_swap = real_bind["swap"]
rec.s_max = float(s_max)
rec.cfg_claim = float(cfg.cfg_claim if cfg.cfg_claim in cfg.scales else s_max)
clus = lambda field, a, b: stats.cluster_diff(getattr(rec, field)[a], getattr(rec, field)[b])  # noqa: E731
clus_mean = lambda field, a: stats.cluster_mean_ci(getattr(rec, field)[a])  # noqa: E731
fd_pair = lambda a, b: stats.diff_ci(rec.fd[a].est, rec.fd_reps[a], rec.fd[b].est, rec.fd_reps[b])  # noqa: E731
um, gm = ("unCLIP", rec.s_max), ("GLIDE", rec.s_max)
u3, g3 = ("unCLIP", rec.cfg_claim), ("GLIDE", rec.cfg_claim)
div_drop = {fam: stats.paired_mean_diff(rec.div[(fam, 1.0)], rec.div[(fam, rec.s_max)]) for fam in ("GLIDE", "unCLIP")}
rise = lambda fam, metric="fd": stats.percentile(*CH._rise(rec, fam, metric), centre=True)  # noqa: E731
fd_rise = {fam: rise(fam) for fam in ("GLIDE", "unCLIP")}
pay_diff = (  # GLIDE's cost of guidance minus unCLIP's: diversity lost, FD gained
    stats.paired_mean_diff(np.subtract(rec.div[CH.G1], rec.div[gm]), np.subtract(rec.div[CH.U1], rec.div[um])),
    stats.percentile(*(g_ - u_ for g_, u_ in zip(CH._rise(rec, "GLIDE"), CH._rise(rec, "unCLIP"))),
                     centre=True))
bound_diff = clus("bound", u3, g3)
recon_swap = CH.swap_share_diff(rec, CH.RECON, CH.CAPTION)
recall_drop = {fam: stats.percentile(*(-v for v in CH._rise(rec, fam, "recall")), centre=True)
               for fam in ("GLIDE", "unCLIP")}
su, sg = CH.matched_scales(rec)


follow = (clus("match", CH.U1, CH.UNCOND), clus("match", CH.G1, CH.GLIDE_EMPTY))
ceiling_gap = clus("match", CH.RECON, CH.U1)
p_match, p_fd = clus("match", CH.U1, CH.AR), fd_pair(CH.U1, CH.AR)
t_match, t_fd = clus("match", CH.U1, CH.TEXT), fd_pair(CH.U1, CH.TEXT)
c_match, c_fd = clus("match", CH.U1, CH.CAPTION), fd_pair(CH.U1, CH.CAPTION)
m_div = stats.paired_mean_diff(rec.div[("unCLIP", su)], rec.div[("GLIDE", sg)])
see_conditioning = (
    ("Both systems follow their captions" if all(d.lo > 0 for d in follow) else
     "Only unCLIP follows its captions measurably" if follow[0].lo > 0 else
     "Only the baseline follows its captions measurably" if follow[1].lo > 0 else
     "Neither system follows its captions measurably at this n")
    + f": at s = 1 unCLIP's samples match their captions {follow[0]} better than its unconditional samples, "
    f"the baseline's {follow[1]} better than its empty-caption samples. "
    + ("The embedding the prior gives, not the decoder, limits caption match: "
       if ceiling_gap.lo > 0 else
       "The prior's embeddings match their captions better than the true ones do, so the true embedding "
       "is no ceiling here: " if ceiling_gap.hi < 0 else
       "The decoder, not the embedding, limits caption match at this budget: ")
    + "the reconstructions from each caption's own scene embedding match "
    f"{clus_mean('match', CH.RECON).fmt(pct=True)} of the caption's attributes, against "
    f"{clus_mean('match', CH.U1).fmt(pct=True)} with the prior's embedding (difference {ceiling_gap}).")
see_priors = (
    "**Priors.** Decoded at s = 1, the diffusion prior's embeddings give "
    + stats.in_words(p_match, "a higher caption match than", "a lower caption match than",
           "a caption match not significantly different from")
    + f" the AR prior's ({p_match}) and "
    + stats.in_words(p_fd, "a worse FD", "a better FD", "an FD not significantly different")
    + f" ({p_fd}); the paper: FID 10.39 for the diffusion prior vs 10.63.")
see_why = (
    "**Why a prior.** "
    + ("The prior's embedding beats the text embedding used zero-shot in its place"
       if t_match.lo > 0 and t_fd.hi < 0 else
       "The prior's embedding does not significantly beat the text embedding used zero-shot on both "
       "counts")
    + f" (caption match {t_match}, FD {t_fd}), and "
    + stats.in_words(c_match, "beats", "loses to", "does not significantly beat")
    + f" the caption alone on caption match ({c_match}; FD {c_fd}"
    + (", the other way: the caption alone gives the more typical images" if c_fd.est > 0 else "")
    + "). The paper: FID 7.99 vs 16.55 zero-shot; caption-only 'clearly worst'.")
see_guidance = (
    "**Guidance.** "
    + ("Against the paper, it is unCLIP that pays more for guidance, in diversity and in FD"
       if all(d.hi < 0 for d in pay_diff) else
       "The baseline pays more for guidance, in diversity and in FD, as the paper found"
       if all(d.lo > 0 for d in pay_diff) else
       "Neither system pays clearly more for guidance on both counts")
    + f": from s = 1 to {s_max:g}, within-caption diversity falls by {div_drop['GLIDE']} for the baseline "
    f"and {div_drop['unCLIP']} for unCLIP, FD changes by {fd_rise['GLIDE']} and {fd_rise['unCLIP']}, and "
    f"recall falls by {recall_drop['GLIDE']} and {recall_drop['unCLIP']}. "
    + "The paper's people chose unCLIP as the more diverse 70.5% of the time, its Fig. 11 has GLIDE's FID "
    "rising faster with guidance, and its Fig. 13 has unCLIP's recall holding. At matched caption match "
    f"(unCLIP at s = {su:g}, {clus_mean('match', ('unCLIP', su)).fmt(pct=True)}; the baseline at s = {sg:g}, "
    f"{clus_mean('match', ('GLIDE', sg)).fmt(pct=True)}), unCLIP's samples of a caption are "
    + stats.in_words(m_div, "the more diverse", "the less diverse", "not significantly more or less diverse")
    + f" (difference {m_div}; FD difference {fd_pair(('unCLIP', su), ('GLIDE', sg))}).")
see_binding = (
    "**Binding.** "
    + stats.in_words(bound_diff, "unCLIP binds better here, the opposite of the paper's Sec. 7",
           "unCLIP binds worse, as the paper's Sec. 7 says",
           "The difference in binding is not significant at this n")
    + f": at s = {rec.cfg_claim:g} both objects are right in {clus_mean('bound', u3).fmt(pct=True)} of "
    f"unCLIP's samples and {clus_mean('bound', g3).fmt(pct=True)} of the baseline's; colours on the wrong "
    f"object {clus_mean('swap', u3).fmt(pct=True)} and {clus_mean('swap', g3).fmt(pct=True)}. "
    + ("The embedding, or the decoder reading it, loses which colour goes with which shape, as the paper's "
       "Fig. 15 shows: " if recon_swap.lo > 0 else
       "Reconstructions do not show significantly more swaps than the caption-only decoder, which at this "
       "n does not rule out the paper's effect: ")
    + f"of the colours they draw at all, reconstructions from the scene's own embedding put "
    f"{np.sum(rec.swap[CH.RECON]) / np.sum(rec.present[CH.RECON]):.1%} on the wrong object (the reader "
    "on real scenes: "
    f"{stats.mean_ci(real_bind['swap']).fmt(pct=True)}); their share minus the caption-only decoder's is "
    f"{recon_swap}.")
notebook.see("\n\n".join((see_conditioning, see_priors, see_why, see_guidance, see_binding)))

# %% [markdown]
# ## Experiment 5: variations, interpolations and a text diff (Sec. 3)
#
# For `n_variations` held-out scenes: DDIM inversion ($\eta = 0$, `sample_steps` steps) of each scene
# with the decoder conditioned on its own $z_i$ and the empty caption gives the $x_T$ that
# reproduces it; sampling again from that $x_T$ with $\eta = 0$ reconstructs it, with $\eta > 0$ gives
# variations. Interpolation: slerp between the embeddings of two scenes, decoded from the first
# scene's inverted $x_T$ (the second edition decoded them from a fresh Gaussian $x_T$ and drew
# noise at every $\lambda$). Text diff: the first object's colour changed in the caption, $z_d =
# \mathrm{norm}(z_t^{\text{new}} - z_t^{\text{old}})$, and $\mathrm{slerp}(z_i, z_d, \theta)$ decoded
# from the scene's inverted $x_T$; the reader says how often the new colour appears.

# %%
m_var = min(cfg.n_variations, len(test_set))
xv = test_set.x[:m_var].to(device)
zv = z_test[:m_var].to(device)
empty_v = tk.empty(m_var).to(device)
dd = diff.respace(cfg.sample_steps)
with torch.no_grad():
    x_T = smp.ddim_invert(nets.as_model(decoder, tokens=empty_v, z=zv), dd, xv)


def ddim_from(x_start, z, eta, seed_):
    g = torch.Generator(device=device).manual_seed(seed_)
    with torch.no_grad():
        return smp.ddim(
            nets.as_model(decoder, tokens=tk.empty(len(z)).to(device), z=z),
            dd, x_start.clone(), eta=eta,
            generator=g).float().clamp(-1, 1).cpu()


var_rows = {"original": xv.cpu(),
            "DDIM eta = 0 from the inverted x_T": ddim_from(x_T, zv, 0.0, 0)}
for eta in (0.5, 1.0):
    for r_ in range(2):
        var_rows[f"eta = {eta:g}, draw {r_ + 1}"] = ddim_from(
            x_T, zv, eta, 10 + r_)
recon_mse = {k_: float(((v - xv.cpu()) ** 2).mean())
             for k_, v in var_rows.items() if k_ != "original"}
rec.variations = dict(mse_to_original=recon_mse)

lams = (0.0, 0.25, 0.5, 0.75, 1.0)
za, zb = (zv[:1].expand(len(lams), -1),
          zv.roll(-1, 0)[:1].expand(len(lams), -1))
z_interp = torch.stack([UC.slerp(za[0], zb[0], lam) for lam in lams])
# decoded from scene 1's inverted x_T (the second edition's fresh Gaussian
# x_T gave noise at every lambda)
interp = ddim_from(x_T[:1].expand(len(lams), -1, -1, -1), z_interp, 0.0, 0)

new_colour = ((torch.as_tensor(test_set.attrs["colour"][:m_var]) + 2)
              % len(shapes.COLOURS))
old_caps = test_set.captions_long[:m_var]
new_caps = CH.recolour_captions(
    {k_: v[:m_var] for k_, v in test_set.attrs.items()}, new_colour)
z_d = F.normalize(text_embed(tk.encode(new_caps))
                  - text_embed(tk.encode(old_caps)), dim=-1).to(device)
thetas = (0.0, 0.2, 0.35, 0.5)
edits = {th: ddim_from(x_T, UC.slerp(zv, z_d, th), 0.0, 0) for th in thetas}
edit_colour = {th: float(scorer.caption_match(reader, x, new_caps,
                                              fields=("colour",),
                                              assign="best").score.mean())
               for th, x in edits.items()}
rec.text_diff = dict(thetas=list(thetas),
                     new_caption_colour_match=edit_colour)

fig, axes = plt.subplots(len(var_rows) + 1 + len(thetas), 1,
                         figsize=(6, 0.95 * (len(var_rows) + 1 + len(thetas))))
for ax, (title, xs) in zip(axes, var_rows.items()):
    viz.show_grid(xs, nrow=m_var, ax=ax)
    ax.set_title(f"{title}"
                 + (f" (pixel MSE to the original {recon_mse[title]:.3f})"
                    if title in recon_mse else ""),
                 fontsize=7, loc="left")
viz.show_grid(interp, nrow=len(lams), ax=axes[len(var_rows)])
axes[len(var_rows)].set_title(
    "slerp from scene 1's embedding to scene 2's, lambda = "
    + ", ".join(f"{x:g}" for x in lams), fontsize=7, loc="left")
for ax, th in zip(axes[len(var_rows) + 1:], thetas):
    viz.show_grid(edits[th], nrow=m_var, ax=ax)
    ax.set_title(f"text diff, theta = {th:g}: the new caption's colours "
                 f"read on {edit_colour[th]:.0%} of its objects (the "
                 "first object's is the edited one)", fontsize=7,
                 loc="left")
fig.tight_layout()
plt.show()
notebook.legend("Text diff: the new captions, by column", new_caps[:m_var])

# %% tags=["hide-input"]
eta1 = np.mean([v for k_, v in recon_mse.items() if k_.startswith("eta = 1")])
notebook.see(
    "Re-sampling the inverted x_T with "
    f"η = 0 lands at pixel MSE {recon_mse['DDIM eta = 0 from the inverted x_T']:.3f} from the original, "
    f"the η = 1 draws at {eta1:.3f}. The text diff moves the reader's colour match with the new captions "
    f"from {edit_colour[thetas[0]]:.0%} at theta = 0 (where the unedited second object already matches) "
    f"to {edit_colour[thetas[-1]]:.0%} at theta = {thetas[-1]:g}, over {m_var} scenes ({2 * m_var} object "
    "colours, of which half were edited): a handful, too few for an interval to mean much. "
    "The paper shows these only as figures (Figs. 3-5); so does this chapter: no claim rests on them.")

# %% [markdown]
# ## Experiment 6: an upsampler with blurred conditioning (Sec. 2.1)
#
# Runs when `sr_from` > 0 (the smoke profile, and the gpu profile, which is untested: it has never
# run on a GPU; on the cpu profile a third UNet does not fit, the record already taking about 45
# minutes on two cores). unCLIP's two upsamplers take the decoder's output to higher resolution
# without captions, without attention layers and without guidance; the first is trained on
# conditioning images corrupted with a Gaussian blur (kernel 3, $\sigma$ 0.6) so that it tolerates a
# base model's imperfections, and is sampled with 27 DDIM steps. Here: `sr_from` $\to$ `image_size`
# on downsampled training scenes whose low-resolution copies are blurred with $\sigma$ = `sr_blur`
# (our blur's kernel is 5 taps wide); held-out scenes are downsampled and brought back by bilinear
# interpolation and by the upsampler (`sr_steps` respaced steps, the low-resolution input unblurred),
# scored by FD and the reader's caption match. The blur's benefit, robustness to a base model's
# artifacts, is not tested here.

# %% tags=["hide-input"]
if cfg.sr_from:
    low = lambda x: F.interpolate(  # noqa: E731
        x, size=(cfg.sr_from, cfg.sr_from), mode="area")
    # no attention (unCLIP)
    sr_unet = dataclasses.replace(unet_cfg, in_channels=2 * C,
                                  attention_resolutions=())
    sr = TR.train_cached(
        "07_unclip", U.SuperResUNet(sr_unet),
        OBJ.DiffusionObjective(diff, D.loss_hybrid,
                               conds=(OBJ.Cond("low", "low_res"),)),
        (train_set.x, None,
         {"low": metrics.gaussian_blur(low(train_set.x), cfg.sr_blur)}),
        dataclasses.replace(train_cfg, train_images=cfg.sr_images),
        device=device).ema.eval()
    m_sr = min(N, len(test_set))
    lo_test = low(test_set.x[:m_sr]).to(device)
    d_sr = diff.respace(cfg.sr_steps)
    ups = {"bilinear": F.interpolate(lo_test, size=(R, R), mode="bilinear",
                                     align_corners=False).clamp(-1, 1).cpu(),
           f"upsampler, {cfg.sr_steps} steps": smp.sample_batched(
               smp.ancestral, nets.as_model(sr, low_res=lo_test), d_sr, m_sr,
               train_set.image_shape, seed=seed, device=device,
               batch_size=m_sr).clamp(-1, 1).cpu()}
    sr_rows = []
    for name, xs in ups.items():
        ev = metrics.evaluate(extractor, train_set.x, xs,
                              real_ref=test_set.x[:m_sr],
                              bootstrap=cfg.bootstrap, seed=seed)
        mt = stats.mean_ci(scorer.caption_match(
            reader, xs, test_set.captions_long[:m_sr],
            assign="best").score.double().numpy())
        sr_rows.append(dict(method=name, fd=ev.ci("fd"), match=mt))
    rec.upsampler = dict(sr_from=cfg.sr_from, blur=cfg.sr_blur,
                         steps=cfg.sr_steps, rows=sr_rows)
    notebook.show_table(
        [{"method": r["method"], "FD": CH.iv(r["fd"]).fmt(),
          "caption match": CH.iv(r["match"]).fmt(pct=True)}
         for r in sr_rows],
        caption=f"{m_sr} held-out scenes at {cfg.sr_from}x{cfg.sr_from} "
                f"brought to {R}x{R}")
    fig, axes = plt.subplots(3, 1, figsize=(6.2, 2.4))
    for ax, (title, xs) in zip(axes, [
            ("low resolution",
             F.interpolate(lo_test[:8], size=(R, R), mode="nearest").cpu()),
            *[(k_, v[:8]) for k_, v in ups.items()]]):
        viz.show_grid(xs, nrow=8, ax=ax)
        ax.set_title(title, fontsize=7, loc="left")
    fig.tight_layout()
    plt.show()
else:
    notebook.not_run(f"{nb.profile} profile, sr_from = 0. The gpu profile "
                     "runs it (untested); the smoke profile runs it tiny, "
                     "as a check of the code.")

# %% [markdown]
# ## Claims
#
# Each row: the paper's claim with its number (verified against the paper), ours with its 95%
# interval, our setting, and the verdict of the test stated in the claim.

# %% tags=["hide-input"]
setting = (f"shapes {R}x{R}, {cfg.objects} objects, decoder {nets.count_params(decoder):,} and baseline "
           f"{nets.count_params(glide):,} parameters, {cfg.train_images:,} images seen each; priors "
           f"{cfg.prior_images // cfg.batch_size:,} steps; {cfg.sample_steps} steps, n = {N}")
rec.setting = setting
nb.finish(CH.claims(rec), rec)

# %% [markdown]
# ## Takeaways
#
# * unCLIP samples text-to-image in two stages that compose exactly: a prior to CLIP's image
#   embedding, a decoder from it; the decoder never needs a caption.
# * The paper needs a prior because CLIP's text and image embeddings are aligned, not equal. In
#   our toy CLIP they are nearly equal, and the claims table shows what follows: the text
#   embedding used zero-shot is not significantly worse than the prior's, while the caption alone
#   is clearly worst, as in the paper's Fig. 8.
# * The paper finds that guidance costs GLIDE more diversity than unCLIP. Here it is the other way:
#   unCLIP pays more in diversity, FD and recall (the three guidance rows read "no"), and its
#   binding is not significantly worse than the baseline's. Whether the paper's result needs its
#   scale, this chapter cannot say.
# * Variations and edits come from the same machinery: DDIM inversion, slerp, and text diffs.
#
# ## Exercises
#
# Each exercise changes a parameter. In Colab or Jupyter, set it in the parameters cell near
# the top (for example `seed = 1`) and run all cells; from a shell, run
# `make run NB=07 PARAMS="seed=1"` or papermill with `-p seed 1`.
#
# 1. Guide the prior as well as the decoder (scale its conditional against its null output): does
#    caption match rise, and what happens to diversity? (The paper found it hurt.)
# 2. Drop the 17.2-style scale (train the prior on unit embeddings): how do the cosine and FD change?
# 3. Give the AR prior more components (`-p pca_dims 32`): is it the code or the model that limits it?
# 4. Sample the diffusion prior with one candidate (`-p candidates 1`): what does the second draw buy?
# 5. Train the decoder with almost no captions (`-p p_drop_caption 0.95`): does binding get worse,
#    or was the caption route not helping with it anyway (the paper: it "offers little help")?
