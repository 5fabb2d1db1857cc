# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # DALL-E 3: what better captions teach a text-to-image model
#
# [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/ddpm-book/ddpm-reproduction-book/blob/main/notebooks/08_dalle3.ipynb)
#
# *The badge opens this notebook in Colab once the book's repository is public; until then,
# download the notebook and upload it there ([Running the book](../book/running.md)). With a
# GPU runtime, `profile = "auto"` picks the gpu profile, which no GPU has run yet: its sizes
# are estimates (untested).*
#
# Chapters 05-07 changed the model; Betker et al. {cite}`betker2023dalle3` changed the data. A
# text-to-image model learns to follow prompts only as well as its training captions describe their
# images, and the captions of web images (their "alt-text") name the main subject, skip most of the
# rest and are sometimes wrong. DALL-E 3 trains a **captioner**, rewrites every training caption
# with it, short ("the main subject") or descriptive ("subject, surroundings, background, colours"),
# and trains on a **blend**: 95% synthetic, 5% original, chosen per example. Models trained on
# synthetic captions follow prompts better, the more synthetic the better, and prompts at sampling
# time must then be **upsampled** to the descriptive style the model was trained on. This chapter
# builds all of it on two-object `shapes` scenes, where every attribute of every image is known, so
# that each caption source, the captioner's errors and every sample can be scored exactly.
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
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import torch

from ddpm_lib import captions as CP, data as DS, diffusion as D, features
from ddpm_lib import metrics, nets, notebook, sampling as smp
from ddpm_lib import objectives as OBJ, schedules as S, scorer, stats
from ddpm_lib import train as TR, viz
from ddpm_lib.chapters import dalle3 as CH
from ddpm_lib.nets import captioner as NC, clip as CL, text_encoder as TE
from ddpm_lib.nets import unet as U
from ddpm_lib.progress import tqdm

nb = notebook.Session("08_dalle3", globals())

# %% tags=["parameters"]
# smoke | cpu | gpu | auto (DDPM_PROFILE if set, else gpu with CUDA, else cpu)
profile = "auto"
seed = 0

# %%
cfg = nb.start()
device = notebook.device()
rec = CH.Record()

# %% [markdown]
# ## The idea
#
# A text-to-image model learns $p(x \mid y)$ from pairs $(x, y)$. Whatever the captions $y$ leave
# out, the model cannot learn to control: if the training captions never say where an object is,
# "at the top left" in a prompt means nothing to it; if they often name the wrong colour, colour
# words become weak evidence. Improving the model does not help, improving the captions does. The
# paper's recipe has three parts.
#
# **A captioner.** An image-conditioned language model, $p_\phi(y \mid x) = \prod_j p_\phi(y_j \mid
# y_{<j}, F(x))$, with $F$ an image encoder (CLIP's, in the paper), trained by next-token
# cross-entropy on image-text pairs, then fine-tuned twice on a small, purpose-built set of captions:
# once to **short synthetic captions** (SSC: the main subject) and once to **descriptive synthetic
# captions** (DSC: also the surroundings, the background, colours, positions). Every training image
# is then captioned again.
#
# **A blend.** Synthetic captions are fluent and informative but carry the captioner's habits and
# errors. So each training example, each time it is drawn, gets the synthetic caption with
# probability $\pi$ and its original caption otherwise: the model learns from pairs drawn from the
# mixture $\pi\,p(x, y_\text{syn}) + (1-\pi)\,p(x, y_\text{orig})$, and the paper's models use
# $\pi = 0.95$. (For classifier-free guidance, as in GLIDE, a share of the captions is then
# replaced by the empty caption.)
#
# **Prompt upsampling.** A model trained on 95% descriptive captions has seldom seen a short
# caption. Short prompts at sampling time are therefore off its training distribution, and the
# paper rewrites them with GPT-4 into descriptive ones before sampling (Sec. 3.5). Here a rule does
# the rewriting: the attributes a short prompt leaves out (size, position, background) are drawn
# from the data's own prior.
#
# **Evaluation.** The paper trains identical models on each caption source and scores their
# samples with **CLIP-S** (100 times the cosine between a public CLIP's image and caption
# embeddings), once with the original captions as prompts and once with descriptive synthetic
# captions. We do the same with a judge CLIP trained on exact captions, and add what a
# synthetic world allows: an independent **reader** that reads every object's shape, colour, size
# and cell, so that each sample is scored against exactly what its prompt states.
#
# ## The code

# %%
notebook.show_source(CP.alt_text, CP.Blend.read, NC.Captioner.forward,
                     OBJ.CaptionObjective.__call__, CP.upsample_prompt,
                     CH.match_stated)

# %% [markdown]
# | paper | library |
# |---|---|
# | original "alt-text" captions of web images (Sec. 2) | `captions.alt_text` (lossy by design, documented below) |
# | captioner: image embedding -> language model, CE loss; fine-tuned to SSC and DSC (Sec. 2.1) | `nets.captioner.Captioner`, `objectives.CaptionObjective`, `generate` |
# | blend at data sampling time, per example, 95% synthetic (Sec. 3.1) | `captions.Blend` / `captions.blend(p_synthetic, p_drop)` |
# | identical T5-conditioned latent diffusion models (Sec. 3.2) | chapter 06's `text_encoder.TextUNet`, one config for all, only the captions differ |
# | CLIP-S with ViT-B/32 | `nets.clip.clip_score` with a judge CLIP trained on exact captions |
# | GPT-4 prompt upsampling (Sec. 3.5) | `captions.upsample_prompt` (a rule) |
# | T2I-CompBench colour binding (Table 1) | `chapters.dalle3.match_stated`'s `bound` and `swap` (the reader) |

# %% [markdown]
# ## Experiment 1: the caption sources
#
# `n_train` two-object scenes for training, `n_test` held out. Each scene has three captions before
# any captioner runs: its **alt-text**, its exact **short** caption ("a red circle and a blue square")
# and its exact **descriptive** caption (sizes, cells and the background too). The alt-text is
# generated from the scene and is lossy by design: the second object is left out with probability
# `p_second`, each named object's colour is left out with `p_colour` or replaced by a wrong one with
# `p_wrong`, filler words ("stock photo of", "hd") are added with `p_junk`, and sizes, positions and
# the background are never said. **This decides the size of every "synthetic beats alt-text"
# effect below**: a reader should take those as partly built in. The informative questions are
# elsewhere: how much of a caption's information survives a captioner's errors, how the blend ratio
# matters, and what a shift in the prompt distribution costs. The table says how much of each scene
# each source states, and how much of that is wrong. The judge CLIP (trained on exact short and
# descriptive captions only, never on the captioner's) and the reader are trained here too.

# %%
train_set = DS.load("shapes", n=cfg.n_train, image_size=cfg.image_size,
                    objects=cfg.objects, seed=seed)
test_set = DS.load("shapes", split="test", n=cfg.n_test,
                   image_size=cfg.image_size, objects=cfg.objects, seed=seed)
C, R = train_set.x.shape[1], cfg.image_size
tk = CP.tokenizer()
ALT = dict(p_second=cfg.p_second, p_colour=cfg.p_colour,
           p_wrong=cfg.p_wrong, p_junk=cfg.p_junk)
alt_train = CP.alt_text(train_set.attrs, seed=seed, **ALT)
alt_test = CP.alt_text(test_set.attrs, seed=seed + 1, **ALT)
alt_tok = tk.encode(alt_train)

pairs_x = torch.cat([train_set.x, train_set.x])
pairs_tok = torch.cat([tk.encode(train_set.captions),
                       tk.encode(train_set.captions_long)])
judge_cfg = CL.CLIPConfig.make(image_size=R, vocab_size=tk.vocab_size,
                               context=tk.context, width=24, seed=1)
judge = TR.train_cached(
    "08_dalle3", CL.CLIP(judge_cfg), OBJ.ContrastiveObjective(),
    (pairs_x, None, {"tokens": pairs_tok}),
    TR.TrainConfig(train_images=cfg.clip_images, seed=seed,
                   **OBJ.CLIP_TRAINING),
    device=device).ema.eval()
reader = scorer.reader(
    R, device=device,
    recipe=None if cfg.reader_images is None else dataclasses.replace(
        scorer.RECIPES[R], train_images=cfg.reader_images, n_one=1000,
        n_two=1000))
m_info = min(cfg.n_report, len(test_set))
test_attrs = {k: v[:m_info] for k, v in test_set.attrs.items()}
sources = {"alt-text": alt_test[:m_info],
           "short (exact)": test_set.captions[:m_info],
           "descriptive (exact)": test_set.captions_long[:m_info]}
info = {k: CH.information(v, test_attrs) for k, v in sources.items()}
rec.sources = dict(info=info, alt_generator=ALT,
                   examples={k: v[:6] for k, v in sources.items()},
                   reader_accuracy=reader.accuracy(test_set))
notebook.show_table(
    [{"source": k,
      **{f: f"{v[f]['stated']:.0%} ({v[f]['wrong']:.0%} wrong)"
         for f in CH.FIELDS}}
     for k, v in info.items()],
    caption=f"share of the {m_info} held-out scenes' attributes each "
            "caption source states (and states wrongly), per field; two "
            "objects per scene")
for i in range(3):
    print(f"scene {i}:")
    for k, v in sources.items():  # wrapped to the book's 79 columns
        print(textwrap.fill(f"{k}: {v[i]}", 79, initial_indent="  ",
                            subsequent_indent="      "))

# %% tags=["hide-input"]
notebook.see(
    f"The alt-text states {info['alt-text']['shape']['stated']:.0%} of the scenes' shapes and "
    f"{info['alt-text']['colour']['stated']:.0%} of their colours (a wrong colour for "
    f"{info['alt-text']['colour']['wrong']:.0%} of all colours), and no size, position or background: as generated. The exact short captions state every shape and "
    "colour, the descriptive ones everything. Real alt-text differs from this generator in kind as well as in "
    "degree (it can be unrelated to the image, or about things no captioner sees); the paper does not measure "
    "its alt-text's information, so nothing here is compared with a paper number.")

# %% [markdown]
# ## Experiment 2: the captioner
#
# The captioner (a small convolutional image tower whose last feature map, one token per cell of
# its 8x8 grid, is the prefix, as CoCa's captioner attends to image tokens; then a causal
# transformer over the words) is **pre-trained** on every training scene with its
# alt-text (the web's image-text pairs; the paper pre-trains CoCa-style), then **fine-tuned twice**
# on `n_labelled` scenes with exact captions: once to the short style, once to the descriptive
# style. Both fine-tunes then caption every training scene greedily. Their report card, on held-out
# scenes: per field, the share of the scene's attributes the caption states correctly (objects
# matched by shape). The paper names the captioner as the source of DALL-E 3's spatial errors and
# hallucinated details; its errors are the point of this experiment.

# %%
cap_cfg = NC.CaptionerConfig(
    vocab_size=tk.vocab_size, context=tk.context, width=cfg.captioner_width,
    layers=cfg.captioner_layers, grid=cfg.captioner_grid,
    image=dataclasses.replace(NC.CaptionerConfig.image, image_size=R,
                              in_channels=C))
cap_train = lambda images: TR.TrainConfig(
    train_images=images, batch_size=cfg.batch_size, lr=cfg.captioner_lr,
    warmup_images=min(cfg.warmup_images, images), ema_decay=0.99, seed=seed)
pre_res = TR.train_cached(
    "08_dalle3", NC.Captioner(cap_cfg), OBJ.CaptionObjective(),
    (train_set.x, None, {"tokens": alt_tok}), cap_train(cfg.captioner_images),
    device=device)
lab = slice(0, min(cfg.n_labelled, len(train_set)))
captioners, cap_s = ({"pre-trained (alt-text)": pre_res.ema.eval()},
                     {"pre-trained (alt-text)": pre_res.wall_s})
for style, caps in (("short", train_set.captions),
                    ("descriptive", train_set.captions_long)):
    net = NC.Captioner(cap_cfg)
    net.load_state_dict(pre_res.ema.state_dict())
    res = TR.train_cached(
        "08_dalle3", net, OBJ.CaptionObjective(),
        (train_set.x[lab], None, {"tokens": tk.encode(caps[lab])}),
        cap_train(cfg.finetune_images),
        extra={"init": pre_res.run_dir.name if pre_res.run_dir else ""},
        device=device)
    captioners[style], cap_s[style] = res.ema.eval(), res.wall_s


@torch.no_grad()
def caption(net, x, batch=1000):
    return torch.cat([net.generate(x[i:i + batch].to(device)).cpu()
                      for i in range(0, len(x), batch)])


test_caps = {name: tk.decode(caption(net, test_set.x[:m_info]))
             for name, net in captioners.items()}
report = {name: CH.caption_accuracy(v, test_attrs)
          for name, v in test_caps.items()}
report["alt-text (the source, not a captioner)"] = CH.caption_accuracy(
    alt_test[:m_info], test_attrs)
rec.captioner = dict(
    report=report, train_s={k: round(v, 1) for k, v in cap_s.items()},
    params=nets.count_params(captioners["short"]), n_labelled=lab.stop,
    examples={k: v[:6] for k, v in test_caps.items()})
notebook.show_table(
    [{"captions by": k, **{f: f"{v[f]:.0%}" for f in (*CH.FIELDS, "exact")}}
     for k, v in report.items()],
    caption=f"held-out scenes (n = {m_info}): share of each field's true "
            "attributes the caption states correctly (a left-out attribute "
            "counts as wrong); exact = the whole descriptive caption right. "
            f"Captioner {nets.count_params(captioners['short']):,} "
            f"parameters; fine-tuned on {lab.stop:,} labelled scenes")
with tqdm(total=2, desc="re-captioning the training set") as bar:
    ssc_tok = caption(captioners["short"], train_set.x)
    bar.update()
    dsc_tok = caption(captioners["descriptive"], train_set.x)
    bar.update()
dsc_test = test_caps["descriptive"]
fig, axes = plt.subplots(2, 3, figsize=(6.2, 5.8))
for i, ax in enumerate(axes.ravel()):
    viz.show_grid(test_set.x[i:i + 1], nrow=1, ax=ax)
    ax.set_title(textwrap.fill(f"alt: {alt_test[i]}", 34) + "\n"
                 + textwrap.fill(f"DSC: {dsc_test[i]}", 34), fontsize=7)
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
rd = report["descriptive"]
notebook.see(
    f"The descriptive captioner names shapes right {rd['shape']:.0%} of the time and colours {rd['colour']:.0%}, sizes "
    f"{rd['size']:.0%}, cells {rd['position']:.0%} and the background {rd['background']:.0%}; "
    f"{rd['exact']:.0%} of its captions are entirely right. "
    + ("Its weakest field is the position: like DALL-E 3's captioner, ours is least reliable about where things are, "
       "and a model trained on its captions can only learn positions as well as they are written. "
       if min(rd, key=lambda f: rd[f] if f in CH.FIELDS else 2) == "position" else
       f"Its weakest field is the {min((f for f in CH.FIELDS), key=lambda f: rd[f])}. ")
    + f"The pre-trained captioner writes alt-text style captions: it states {report['pre-trained (alt-text)']['colour']:.0%} "
    f"of colours correctly (the alt-text itself: {report['alt-text (the source, not a captioner)']['colour']:.0%}) and no "
    f"size, cell or background; the fine-tunes on {lab.stop:,} labelled scenes are what make the synthetic captions "
    "informative. The paper reports no captioner accuracy, so none of this is compared with a paper number.")

# %% [markdown]
# ## Experiment 3: identical models, different captions
#
# One text-to-image configuration (chapter 06's text-conditional UNet with GLIDE's two text routes,
# learned variances, the cosine schedule; narrower here so that all of them fit the budget), trained
# with the same seed (the same images in the same order, the same noise) on: the **alt-text** only;
# **short synthetic** captions at `short_blend`; and **descriptive synthetic** captions at each
# share in `blends` (the rest alt-text), the blend drawn per example every time it is sampled; 20%
# of captions are then emptied for guidance. Only the captions differ.

# %%
diff = D.Diffusion(S.named(cfg.schedule, cfg.T), "eps", "learned_range")
text_cfg = TE.TextEncoderConfig(vocab_size=tk.vocab_size, context=tk.context,
                                width=cfg.text_width, layers=cfg.text_layers)
unet_cfg = U.preset(cfg.unet, image_size=R, in_channels=C,
                    out_channels=diff.out_channels(C),
                    base_channels=cfg.base_channels,
                    num_res_blocks=cfg.num_res_blocks, scale_shift_norm=True,
                    resblock_updown=True)
tcfg = TE.TextUNetConfig.of(unet_cfg, text_cfg)
train_cfg = TR.TrainConfig.from_preset(cfg, seed=seed)
specs = ([("alt", 0.0), ("short", cfg.short_blend)]
         + [("descriptive", b) for b in sorted(cfg.blends)])
models, model_rows = {}, []
for source, p in specs:
    name = CH.model_name(source, p)
    synthetic = {"short": ssc_tok, "descriptive": dsc_tok,
                 "alt": alt_tok}[source]
    net = TE.TextUNet(tcfg)
    if cfg.channels_last:
        net = net.to(memory_format=torch.channels_last)
    res = TR.train_cached(
        "08_dalle3", net,
        OBJ.DiffusionObjective(diff, D.loss_hybrid,
                               conds=(CP.blend(p, cfg.p_empty),)),
        (train_set.x, None,
         {"tokens_synthetic": synthetic, "tokens_original": alt_tok}),
        train_cfg, device=device)
    models[name] = res.ema.eval()
    losses = [r["loss"] for r in res.log]
    final = np.mean(losses[-max(1, len(losses) // 10):])
    model_rows.append({
        "model": name,
        "captions": (f"{p:.0%} {source} synthetic + {1 - p:.0%} alt-text"
                     if p else "100% alt-text"),
        "train s": f"{res.wall_s:.0f}",
        "final loss (last 10% of logs)": f"{final:.4f}"})
ALTM, SSCM, DSCM = (CH.model_name("alt", 0),
                    CH.model_name("short", cfg.short_blend),
                    CH.model_name("descriptive", 0.95))
rec.models = dict(rows=model_rows, params=nets.count_params(models[ALTM]))
notebook.show_table(
    model_rows,
    caption=f"{nets.count_params(models[ALTM]):,} parameters each, "
            f"{cfg.train_images:,} images seen (batch {cfg.batch_size})")

# %% [markdown]
# ## Experiment 4: evaluated with original and with descriptive captions (Figs. 4 and 5)
#
# `n_prompts` held-out scenes; each model draws one sample per prompt (the same noise for every
# model and prompt set, classifier-free guidance at `scale`, `sample_steps` respaced steps) for two
# prompt sets, as the paper evaluates: the scenes' **alt-text** (the paper's "ground-truth captions")
# and the descriptive captioner's **descriptive synthetic captions**. Each sample is scored against its
# own prompt by the judge's CLIP-S (filler words removed: the judge never saw them) and by the
# reader's caption match of what the prompt states; FD against the training scenes (descriptive
# prompts) and caption match above shuffled prompts in the style each model was trained on (the
# alt-text model: alt-text prompts; the short model: exact short captions; the descriptive models:
# the captioner's descriptive captions) check that each model trained. The tests, stated before the
# run, are the claims below:
# (1) on alt-text prompts the synthetic-caption models score a higher CLIP-S than the alt-text model;
# (2) on descriptive prompts the 95% descriptive model beats it on CLIP-S and caption match, by more
# than on alt-text prompts; (3) the 95% blend beats the lowest blend; (4) when a 100% model is
# trained (`blends` holds 1.0: the smoke profile and the gpu profile, which is untested: it has
# never run on a GPU; a fifth model does not fit the cpu budget), on alt-text prompts the 95% blend
# beats it (the 5% regularises). The paper's Fig. 5 trains 65%, 80%, 90% and 95% blends; the cpu
# profile trains the two ends that matter most, 65% ("far behind") and 95% (the one it kept).
# Differences are paired over prompts and noise. A model whose FD stays above 10x the real-vs-real
# floor did not train by the gate stated before the run, and no row that compares it gets a
# verdict; at the cpu profile's budget all of them may stay there (the claims table says which).
# Then this chapter reproduces the construction and the checks, not the paper's findings: the
# gpu profile's budget is the one meant to reach them.

# %%
N = min(cfg.n_prompts, len(test_set))
d = diff.respace(cfg.sample_steps)
extractor = features.get_extractor("shapes", image_size=R, device=device,
                                   train_images=cfg.feature_images)
prompts = {"alt-text": alt_test[:N], "descriptive": dsc_test[:N],
           "short": test_set.captions[:N],
           "upsampled": CP.upsample_prompt(test_set.captions[:N],
                                           seed=seed + 3)}
empty = tk.empty(N).to(device)


def sample(net, texts, scale=cfg.scale):
    tok = tk.encode(texts).to(device)
    if scale != 1:
        model = smp.guided_by(net, scale, {"tokens": tok},
                              {"tokens": empty}, channels=C)
    else:
        model = nets.as_model(net, tokens=tok)
    return smp.sample_batched(
        smp.ancestral, model, d, N, train_set.image_shape, seed=seed,
        device=device, batch_size=N).float().clamp(-1, 1).cpu()


def judge_score(xs, texts):
    return CL.clip_score(judge, xs, tk.encode(CP.strip_junk(texts))).numpy()


runs = {}
configs = ([(m, p) for m in models for p in ("alt-text", "descriptive")]
           + [(m, p) for m in (ALTM, DSCM) for p in ("short", "upsampled")]
           + [(SSCM, "short")])
# the prompts in the style each model was trained on: the first claim checks
# that it learned to follow them (the alt-text model on alt-text prompts)
own = {m: "descriptive" for m in models} | {ALTM: "alt-text", SSCM: "short"}
for m, p in tqdm(configs, desc="configurations"):
    xs = sample(models[m], prompts[p])
    # a model sampled from an upsampled prompt is asked for the short
    # prompt: score it against that
    scored = prompts["short"] if p == "upsampled" else prompts[p]
    r = dict(xs=xs, clip=judge_score(xs, scored),
             **CH.match_stated(reader, xs, scored))
    shuffled = list(np.roll(np.array(scored, dtype=object), 1))
    r["shuffled"] = CH.match_stated(reader, xs, shuffled)["score"]
    if p == "descriptive":
        r["ev"] = metrics.evaluate(extractor, train_set.x, xs,
                                   real_ref=test_set.x[:N],
                                   bootstrap=cfg.bootstrap, seed=seed)
    runs[(m, p)] = r
fd_floor = runs[(DSCM, "descriptive")]["ev"].fd_floor
rows = []
for (m, p), r in runs.items():
    rows.append(dict(
        model=m, prompts=p, clip=CH.mean_ci(r["clip"]).as_dict(),
        match=CH.mean_ci(r["score"]).as_dict(),
        **{f: (CH.rate_ci if f == "bound" else CH.mean_ci)(r[f]).as_dict()
           if np.isfinite(r[f]).any() else None
           for f in (*CH.FIELDS, "bound")},
        fd=r["ev"].ci("fd").as_dict() if "ev" in r else None))
rec.sampling = dict(rows=rows, n=N, steps=cfg.sample_steps, scale=cfg.scale,
                    fd_floor=fd_floor,
                    prompt_examples={k: v[:4] for k, v in prompts.items()})
fmt = lambda x, pct=False: CH.iv(x).fmt(pct=pct) if x else "–"
shown = [r for r in rows if r["prompts"] in ("alt-text", "descriptive")]
notebook.show_table(
    [{"model": r["model"], "prompts": r["prompts"],
      "CLIP-S (judge)": fmt(r["clip"]),
      "caption match": fmt(r["match"], True), "FD": fmt(r["fd"])}
     for r in shown],
    caption=f"{N} held-out prompts per row, one sample each, "
            f"s = {cfg.scale:g}, {cfg.sample_steps} steps; caption match "
            "counts only what each prompt states; FD floor (real vs real "
            f"at this n) {fd_floor:.3g}; 95% intervals (t over prompts; "
            "bootstrap for FD)")
notebook.show_table(
    [{"model": r["model"], "prompts": r["prompts"],
      **{f: fmt(r[f], True) for f in CH.FIELDS},
      "both bound": fmt(r["bound"], True)}
     for r in shown],
    caption="Caption match by field: the share of the attributes a "
            "prompt states that its sample shows; 95% t-intervals over "
            "prompts (both bound, a 0/1 hit: Wilson)")

fig, axes = plt.subplots(1, 2, figsize=(6.2, 2.8))
names = list(models)
for ax, key, title in ((axes[0], "clip", "CLIP-S (judge)"),
                       (axes[1], "score", "caption match (reader)")):
    for j, p in enumerate(("alt-text", "descriptive")):
        ivs = [CH.mean_ci(runs[(m, p)][key]) for m in names]
        xpos = np.arange(len(names)) + (j - 0.5) * 0.35
        ax.bar(xpos, [i.est for i in ivs], width=0.35,
               yerr=[[i.est - i.lo for i in ivs], [i.hi - i.est for i in ivs]],
               capsize=2, label=f"{p} prompts")
    ax.set_xticks(np.arange(len(names)),
                  [textwrap.fill(n_, 12) for n_ in names], fontsize=7)
    lo_ = min(CH.mean_ci(runs[(m, p)][key]).lo
              for m in names for p in ("alt-text", "descriptive"))
    ax.set(title=title, ylim=(lo_ * 0.9, None))
    ax.legend(frameon=False, fontsize=7)
fig.tight_layout()
plt.show()

# %%
show = [(m, "descriptive") for m in names]
n_show = 8
fig, axes = plt.subplots(len(show) + 1, 1,
                         figsize=(6.2, 0.95 * (len(show) + 1)))
viz.show_grid(test_set.x[:n_show], nrow=n_show, ax=axes[0])
axes[0].set_title("the held-out scenes the prompts describe", fontsize=7,
                  loc="left")
for ax, key in zip(axes[1:], show):
    viz.show_grid(runs[key]["xs"][:n_show], nrow=n_show, ax=ax)
    ax.set_title(f"{key[0]}, descriptive prompts", fontsize=7, loc="left")
fig.tight_layout()
plt.show()
notebook.legend("The descriptive prompts, by column",
                prompts["descriptive"][:n_show])

# %% [markdown]
# The training scenes have four backgrounds (black, dark blue, dark green and gray), yet samples can
# come out on backgrounds no training scene has (earlier records of this chapter drew olive,
# purple and teal ones for every model, and a black-background prompt green; look for them in the
# grids above). One suspect is
# guidance: at
# $s = 3$ each step moves three times along the difference between the conditional and the
# unconditional prediction, and where a small, briefly trained model's two predictions disagree
# about the background colour, the step extrapolates past every colour it was trained on (Imagen
# met the same saturation at high guidance and clipped it with dynamic thresholding). The check:
# the 95% model sampled again without guidance ($s = 1$), same prompts and noise; each sample's
# background is the median colour of its outermost ring of pixels, measured against the nearest of
# the four training backgrounds (`CH.off_palette`).

# %%
xs1 = sample(models[DSCM], prompts["descriptive"], scale=1.0)
bg = {f"s = {cfg.scale:g}": runs[(DSCM, "descriptive")],
      "s = 1": dict(xs=xs1, **CH.match_stated(reader, xs1,
                                               prompts["descriptive"]))}
bg_rows = [{"guidance": k, "background off the palette (RMS)":
            CH.mean_ci(CH.off_palette(v["xs"])).fmt(),
            "share within 0.1": CH.rate_ci(CH.off_palette(v["xs"]) < 0.1)
            .fmt(pct=True),
            "background match (reader)":
            CH.rate_ci(v["background"]).fmt(pct=True)
            if np.isfinite(v["background"]).sum() > 1 else "–"}
           for k, v in bg.items()]
real_far = CH.off_palette(test_set.x[:N])  # the measure's own floor
bg_rows.append({"guidance": "held-out real scenes",
                "background off the palette (RMS)":
                CH.mean_ci(real_far).fmt(),
                "share within 0.1": CH.rate_ci(real_far < 0.1)
                .fmt(pct=True), "background match (reader)": "–"})
rec.backgrounds = dict(rows=bg_rows, model=DSCM, n=N)
notebook.show_table(bg_rows, caption=(
    f"{DSCM} model, {N} descriptive prompts, the same noise, and {N} "
    "held-out real scenes; distance RMS in pixels in [0, 1]; 95% "
    "t-intervals over prompts (shares and matches: Wilson)"))
fig, axes = plt.subplots(2, 1, figsize=(6.2, 2.0))
for ax, (k, v) in zip(axes, bg.items()):
    viz.show_grid(v["xs"][:n_show], nrow=n_show, ax=ax)
    ax.set_title(f"{DSCM}, {k}", fontsize=7, loc="left")
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
far = {k: CH.off_palette(v["xs"]) for k, v in bg.items()}
g_far = stats.paired_mean_diff(*far.values())  # s = scale minus s = 1
guided = f"s = {cfg.scale:g}"
stated = np.isfinite(bg[guided]["background"]).sum() > 1
finding = (
    "Without guidance the backgrounds are already off the palette: the "
    "model itself has not learned the four background colours at this "
    f"budget ({cfg.train_images // cfg.batch_size:,} batches), and "
    + ("guidance moves them a little further. "
       if stats.compare(g_far, 0.0) == "higher" else
       "guidance does not move them further. ")
    if CH.mean_ci(far["s = 1"]).lo > 0.1 else
    "Guidance moves the backgrounds off the training palette: the "
    "off-palette colours are an extrapolation of guidance on a model "
    "this small and briefly trained, the saturation that Imagen's "
    "dynamic thresholding was made for. "
    if stats.compare(g_far, 0.0) == "higher" else
    "With and without guidance the backgrounds sit on the training "
    "palette (within 0.05 on average): nothing to explain at this run. "
    if CH.mean_ci(far[guided]).hi < 0.05 else
    "Guidance does not move the backgrounds off the palette, and the "
    "unguided samples are off it only in part. ")
notebook.see(
    finding
    + f"With guidance the median background is {CH.mean_ci(far[guided])} "
    f"off the nearest training background, without it "
    f"{CH.mean_ci(far['s = 1'])} (difference {g_far}); "
    + (f"the reader finds the prompt's background in "
       f"{CH.mean_ci(bg[guided]['background']).fmt(pct=True)} of guided samples "
       f"and {CH.mean_ci(bg['s = 1']['background']).fmt(pct=True)} of unguided "
       f"ones (difference {CH.paired(*(v['background'] for v in bg.values()))}, "
       "paired over prompts). " if stated else
       "too few prompts state a background for the reader's match. ")
    + "Every model is sampled at the same scale, so the comparisons "
    "below are like for like, and every model's background scores carry "
    "this shift.")

# %% tags=["hide-cell"]
lo_blend = CH.model_name("descriptive", min(cfg.blends))
full = CH.model_name("descriptive", 1.0) if 1.0 in cfg.blends else None
get = lambda m, p, k: runs[(m, p)][k]  # noqa: E731
# the record the claims read: per prompt, the scores of every model on the
# same prompts and noise (the paired tests recompute from them)
rec.alt, rec.ssc, rec.dsc, rec.low_blend = ALTM, SSCM, DSCM, lo_blend
rec.full, rec.own = full or "", own
rec.scores = {k: {c: CH.per_item(r[c])
                  for c in ("score", "clip", "shuffled", "bound")}
              for k, r in runs.items()}
rec.fd = {m: runs[(m, "descriptive")]["ev"].ci("fd") for m in models}
rec.fd_floor = fd_floor
cmp = CH.differences(rec)  # the named paired differences the text quotes

# %% tags=["hide-input"]
no_fd = [m for m in models if not cmp["trained"][m]]
no_follow = [m for m in models
             if stats.compare(CH.iv(cmp["follows"][m]), 0.0) != "higher"]
notebook.see(
    ("Every model follows prompts in the style it was trained on (caption match above the same samples scored against "
     "another scene's prompt) and has an FD within 10x the real-vs-real floor. " if not (no_fd or no_follow) else
     (f"FD above 10x the real-vs-real floor ({fd_floor:.3g} at n = {N}): {', '.join(no_fd)}; by the gate stated "
      "before the run these did not train, and the rows that compare them carry no verdict: the differences below "
      "are reported as measured, not as evidence. " if no_fd else "")
     + (f"Caption match not above shuffled prompts: {', '.join(no_follow)}. " if no_follow else
        "Every model follows prompts in the style it was trained on. "))
    + f"On **alt-text prompts** the judge's CLIP-S rises by {CH.iv(cmp['clip_alt_dsc'])} from the alt-text model to "
    f"the {DSCM} model and by {CH.iv(cmp['clip_alt_ssc'])} to the {SSCM} one; on **descriptive prompts** by "
    f"{CH.iv(cmp['clip_dsc_dsc'])}, with caption match {CH.iv(cmp['match_dsc_dsc'])}. "
    "The paper's Fig. 4 has the same two panels: 'slightly better' on ground-truth captions and 'markedly better' on "
    "descriptive ones; only the directions are tested here, not the sizes (the paper's whole left panel spans "
    "about 1.4 CLIP-S points, on a real CLIP). Here the alt-text model was trained without positions, sizes or backgrounds, so its "
    "descriptive-prompt deficit is what our alt-text generator removed, not a discovery. "
    + (f"**Blends**: {DSCM} minus {lo_blend}: CLIP-S {CH.iv(cmp['clip_alt_blend'])} on alt-text prompts, caption match "
       f"{CH.iv(cmp['match_dsc_blend'])} on descriptive ones (the paper: 65% 'far behind'). " if cmp["clip_alt_blend"] else "")
    + (f"**100% vs 95%** on alt-text prompts: caption match {CH.iv(cmp['match_alt_reg'])}, CLIP-S "
       f"{CH.iv(cmp['clip_alt_reg'])} for keeping 5% of the original captions" + (
           ": the blend helps on the original prompt style, as the paper's reason for it says. "
           if stats.compare(CH.iv(cmp["match_alt_reg"]), 0.0) == "higher" else
           ": the 100% model does better, against the paper's reason for the blend. "
           if stats.compare(CH.iv(cmp["match_alt_reg"]), 0.0) == "lower" else
           ": no significant effect of the 5% at this scale. ") if full else ""))

# %% [markdown]
# ## Experiment 5: prompt upsampling and binding (Sec. 3.5, Table 1)
#
# The same held-out scenes, now prompted with their exact **short** captions ("a red circle and a
# blue square") and with those captions **upsampled** by rule (size, cell and background drawn from
# the data's prior). Both are scored against the short prompt, which is what the user asked for:
# the reader's match of the two shapes and colours, and **binding**, both objects drawn with their
# own shape and colour (T2I-CompBench's colour-binding task in shape). The tests: the descriptive
# model's match rises with upsampling, more than the alt-text model's; and the descriptive model
# with upsampled prompts (DALL-E 3 as deployed) binds both objects right more often than the
# alt-text model with short prompts.

# %%
up_rows = [{"model": m, "prompts": p,
            "caption match (short prompt)":
                CH.mean_ci(get(m, p, "score")).fmt(pct=True),
            "both bound": CH.rate_ci(get(m, p, "bound")).fmt(pct=True),
            "colour swaps": CH.mean_ci(get(m, p, "swap")).fmt(pct=True),
            "CLIP-S (short prompt)": CH.mean_ci(get(m, p, "clip")).fmt()}
           for m in (ALTM, DSCM) for p in ("short", "upsampled")]
rec.upsampling = dict(rows=up_rows)
notebook.show_table(up_rows,
                    caption=f"{N} held-out scenes; every sample scored "
                            "against its short prompt; 95% t-intervals "
                            "(both bound: Wilson)")
fig, axes = plt.subplots(4, 1, figsize=(6.2, 4.0))
for ax, (m, p) in zip(axes, [(m, p) for m in (ALTM, DSCM)
                             for p in ("short", "upsampled")]):
    viz.show_grid(runs[(m, p)]["xs"][:n_show], nrow=n_show, ax=ax)
    ax.set_title(f"{m}, {p} prompts", fontsize=7, loc="left")
fig.tight_layout()
plt.show()
notebook.legend("The short prompts, by column, and each one upsampled",
                [f"{a} → {b}" for a, b in zip(prompts["short"][:n_show],
                                                 prompts["upsampled"])])

# %% tags=["hide-input"]
gain = {k: stats.compare(CH.iv(cmp[k]), 0.0)
        for k in ("up_gain_dsc", "up_gain_alt", "up_gain_diff")}
says = {"higher": "help", "lower": "hurt",
        "not significant": "do not measurably help (not significant)"}
notebook.see(
    f"Upsampled prompts {says[gain['up_gain_dsc']]} the {DSCM} model follow the short prompt, and "
    f"{says[gain['up_gain_alt']]} the alt-text model; "
    + ("the two gains are not significantly different. " if gain["up_gain_diff"] == "not significant" else
       f"the {DSCM} model gains {'more' if gain['up_gain_diff'] == 'higher' else 'less'}. ")
    + f"The {DSCM} model's match changes by {CH.iv(cmp['up_gain_dsc'])}, the alt-text "
    f"model's by {CH.iv(cmp['up_gain_alt'])} (difference {CH.iv(cmp['up_gain_diff'])}); the paper's Drawbench score "
    "rose from 70.4% to 81.0% for DALL-E 3 with upsampled prompts, and only from 49.0% to 52.4% for DALL-E 2. "
    f"Both objects bound right: {CH.iv(cmp['bound_dsc']).fmt(pct=True)} for the {DSCM} model with upsampled prompts against "
    f"{CH.iv(cmp['bound_alt']).fmt(pct=True)} for the alt-text model with short prompts (difference "
    f"{CH.iv(cmp['bound_diff'])}; the paper's T2I-CompBench colour binding: 81.1% for DALL-E 3, 59.2% for DALL-E 2). "
    + ("Neither model draws both objects right more than one time in ten: at this budget binding two objects is "
       "beyond both, whatever their captions, so this comparison cannot speak to the paper's. "
       if max(CH.iv(cmp["bound_dsc"]).est, CH.iv(cmp["bound_alt"]).est) < 0.1 else
       "Our alt-text drops the second object half the time and names a wrong colour for one object in ten, so the "
       "alt-text model has seen far fewer bound pairs; that part of the difference is built into the generator."))

# %% [markdown]
# ## Claims
#
# Each row: the paper's claim with its number (verified against the paper), ours with its 95%
# interval, our setting, and the verdict of the test stated in the claim.

# %% tags=["hide-input"]
rec.setting = CH.setting_of(dataclasses.asdict(cfg), len(models),
                            nets.count_params(models[ALTM]), lab.stop, N)
nb.finish(CH.claims(rec), rec)

# %% [markdown]
# ## Takeaways
#
# * A text-to-image model can only learn to control what its captions describe: the captions are
#   part of the model.
# * A captioner fine-tuned on a few exact captions turns a large set of poorly captioned images into
#   a better captioned one; its errors become the model's. Which fields it gets wrong is a
#   measurement (Experiment 2's report card), not a given: the paper names positions for DALL-E 3.
# * The paper blends 5% of the original captions back in to guard against the captioner's style; it
#   states that reason and does not measure it, and the cpu profile does not train the 100% model
#   that would test it here. A model trained on descriptive captions wants descriptive prompts, so
#   short prompts are upsampled.
# * On synthetic data much of "synthetic captions win" is built into how lossy the original
#   captions are; the blend ratio, the captioner's error profile and the prompt shift are the parts
#   that transfer.
#
# ## Exercises
#
# Each exercise changes a parameter. In Colab or Jupyter, set it in the parameters cell near
# the top (for example `seed = 1`) and run all cells; from a shell, run
# `make run NB=08 PARAMS="seed=1"` or papermill with `-p seed 1`.
#
# 1. Make the alt-text less lossy (`-p p_second 0.1 -p p_colour 0.1 -p p_wrong 0.0`): how much of the
#    gap to the descriptive model remains?
# 2. Give the captioner fewer labelled scenes (`-p n_labelled 200`): which fields suffer first, and
#    does the descriptive model's caption match follow the captioner's accuracy field by field?
# 3. Train with 80% and 100% descriptive captions as well (`-p blends "[0.65, 0.8, 0.95, 1.0]"`, the
#    (untested) gpu profile's; 90% too for all of the paper's Fig. 5): is the curve monotone, as
#    in the paper, and does the 5% of alt-text help on alt-text prompts?
# 4. Sample the alt-text model with descriptive prompts that keep only what alt-text could say
#    (drop sizes, cells, background): is it then as good as the descriptive model?
