"""Chapter 01 (iGPT): its typed record, its claims as named rules, and the helpers its cells share.

The notebook fills a ``Record`` cell by cell (per-image test hits of every probe and fine-tune, the
held-out losses, the palette's per-image reads) and calls ``claims(rec)``. Every rule states its
test before the run:

* every accuracy comparison is on the same test images, so it is paired: the difference of the
  per-image hits with a paired bootstrap interval (B = 2,000) and McNemar's exact p
  (``stats.paired_rate_diff``); a claim that one accuracy is higher holds when the whole interval
  of the difference lies above 0 (``claims.supports``);
* a model "did not train" when its held-out NLL (BERT: its final train loss) is not at least 10%
  below the entropy of the palette's token frequencies (what a model that ignores every neighbour
  achieves); a fine-tune, when its final train classification loss is not 10% below ln(classes), or
  not below the train log-loss of its own model's linear probe on the same labels (it has not fitted
  them as well as a linear read of its frozen features: named, not compared). No gate reads the
  test accuracy the claims compare;
* the input baseline is like for like: probes on the one-hot palette tokens the GPT reads,
  unpooled and average-pooled; the raw RGB probe is shown beside them;
* the palette claim is a paired non-inferiority test at the models' own k, margin 2 points;
* every claim about a training outcome compares one training seed per arm: provisional.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from .. import claims as C
from .. import metrics, stats

DID_NOT_TRAIN = 0.9  # held-out NLL (or train loss) must be below this share of the context-free loss
STRONG_RHO = 0.5  # partial Spearman above which the loss-probe relation is called clear
# the palette may cost at most 2 points of all-attributes-read accuracy: the paper says only that its palette
# keeps what the models need (Sec. 3.2), so "almost as well" is the book's margin, set by the second edition
# before any paired test of it was run; at the 500 scenes read, a loss near 0 passes (half-width ~1 point)
# and a loss of 4+ points fails (tests/test_claims_igpt.py)
PALETTE_MARGIN = 0.02
SEEDS = 1  # training seeds per arm in every profile today


def acc_ci(hits) -> stats.Interval:
    """Accuracy with its 95% Wilson interval from per-image hits (bool array)."""
    h = np.asarray(hits, dtype=bool)
    return stats.wilson(int(h.sum()), len(h))


def pct(d) -> str:
    """'61.2% [58.1, 64.2]' from an Interval (or its dict)."""
    d = stats.Interval.of(d)
    return f"{d.est:.1%} [{d.lo:.1%}, {d.hi:.1%}]"


def pp(d: stats.Interval) -> str:
    """A difference of accuracies in points: '+5.0 [+2.1, +7.9] points'."""
    return f"{100 * d.est:+.1f} [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] points"


def unigram_entropy(tokens: torch.Tensor, k: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores all context."""
    p = torch.bincount(tokens.flatten(), minlength=k).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def trained(nll: float, h0: float) -> bool:
    return nll < DID_NOT_TRAIN * h0


def word(hits_a, hits_b) -> str:
    """'higher than' / 'lower than' / 'not significantly different from': a's accuracy against b's on
    the same images, by the paired test the claims use."""
    v = C.supports(stats.paired_rate_diff(hits_a, hits_b), ">")
    return {"yes": "higher than", "no": "lower than"}.get(v, "not significantly different from")


def attribute_hits(reader, x, attrs: dict) -> np.ndarray:
    """Per image, True where ``reader`` reads every attribute in ``attrs`` right (the per-image form
    of ``metrics.attribute_accuracy``'s "all")."""
    return np.all([metrics.conditional_hits(reader, x, v, head=k).numpy() > 0 for k, v in attrs.items()], 0)


# ---- the record -------------------------------------------------------------------------------
@dataclass
class Record(C.Record):
    # the setting (from the profile)
    setting: str | None = None  # data, model and budget, as the table prints it
    label: str | None = None  # the attribute the probes read ("shape")
    k: int | None = None  # the models' palette size
    n_layer: int | None = None  # blocks of the GPT (layers 0..n_layer are probed)
    size: str | None = None  # the GPT's shape, "4x64"
    small_size: str | None = None  # the small GPT's shape, "2x32"
    finetune_images: int | None = None  # labelled sequences seen by each fine-tune
    finetune_bert: bool | None = None  # whether this profile fine-tunes BERT (run cards before it: always)
    # the gates' inputs
    n_classes: int | None = None
    unigram_entropy: float | None = None  # nats/token of the training tokens' frequencies
    ar_nll: float | None = None  # held-out nats/token of the GPT
    small_nll: float | None = None  # ... of the small GPT
    bert_train_loss: float | None = None  # BERT's final train loss (nats/masked token)
    ft_clf_loss: dict | None = None  # {"ar" / "bert": the fine-tune's final train classification loss}
    probe_train_loss: dict | None = None  # {"ar" / "bert": the chosen layer's probe, its log-loss on its train rows}
    # probes: layers chosen on a validation split of the training images
    ar_layer: int | None = None  # the GPT's chosen layer
    bert_layer: int | None = None  # BERT's chosen layer
    ar_layer_acc: list | None = None  # the GPT's test accuracy by layer (Intervals; display)
    # per-image test hits (0/1, aligned: the same test images in every array)
    ar_hits: list | None = None  # the GPT's probe at its chosen layer
    ar_last_hits: list | None = None  # the GPT's probe at its last block
    untrained_hits: list | None = None  # an untrained GPT of the same shape, at its chosen layer
    pixel_hits: list | None = None  # the probe on the raw RGB pixels
    token_flat_hits: list | None = None  # the probe on the one-hot palette tokens, every position (the GPT's input)
    token_hits: list | None = None  # ... average-pooled over positions (the colour histogram)
    small_hits: list | None = None  # the small GPT's probe at its chosen layer
    bert_hits: list | None = None  # BERT's probe at its chosen layer
    ft_ar_hits: list | None = None  # the fine-tuned GPT
    ft_bert_hits: list | None = None  # the fine-tuned BERT
    # loss vs probe over the snapshots of the two sizes
    n_snapshots: int | None = None
    partial_rho: float | None = None  # Spearman (-NLL, probe), partial on sequences seen (NaN: too few)
    raw_rho: float | None = None
    # the palette (Experiment 1): a sweep, then the models' own palette at k
    palette_rmse: dict | None = None  # {k: RMSE on the 0-255 scale} (sweep, display)
    palette_read: dict | None = None  # {k: Interval of all attributes read on quantised scenes} (sweep)
    palette_base: stats.Interval | None = None  # ... on the original scenes
    palette_orig_hits: list | None = None  # per scene: all attributes read on the original
    palette_model_hits: list | None = None  # ... on the scene quantised with the models' palette (k)

    @classmethod
    def of_config(cls, cfg) -> "Record":
        """A record with the setting fields of a profile's config (a dataclass or the run card's dict)."""
        c = cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg)
        return cls(
            setting=(f"shapes {c['image_size']}x{c['image_size']}, {c['objects']} objects, label '{c['label']}', "
                     f"k={c['k']}, GPT {c['n_layer']}x{c['n_embd']}, {c['train_images']:,} sequences, "
                     f"{c['n_test']} test images"),
            label=c["label"], k=c["k"], n_layer=c["n_layer"], size=f"{c['n_layer']}x{c['n_embd']}",
            small_size=f"{c['small_layer']}x{c['small_embd']}", finetune_images=c["finetune_images"],
            finetune_bert=c.get("finetune_bert", True))


# ---- gates ------------------------------------------------------------------------------------
def _not_trained(r: Record, *who: str) -> str:
    """'' when every model in ``who`` trained, else why not (the first that did not)."""
    h0 = r.need("unigram_entropy")
    loss = {"ar": ("the GPT", "ar_nll", "held-out NLL"), "small": ("the small GPT", "small_nll", "held-out NLL"),
            "bert": ("BERT", "bert_train_loss", "train loss")}
    for w in who:
        if w.startswith("ft_"):
            name, v, ref = f"the fine-tuned {'GPT' if w == 'ft_ar' else 'BERT'}", r.need("ft_clf_loss")[w[3:]], \
                math.log(r.need("n_classes"))
            if not v < DID_NOT_TRAIN * ref:
                return (f"{name}'s train classification loss {v:.3f} is not 10% below ln({r.n_classes}) = {ref:.3f}: "
                        "it did not train (raise finetune_images or finetune_lr)")
            p = (r.probe_train_loss or {}).get(w[3:])
            if p is not None and not v < p:
                return (f"{name}'s train classification loss {v:.3f} is not below its own linear probe's {p:.3f} on "
                        "the same training labels: it fits them worse than a linear read of its frozen features, "
                        "so it did not finish training (raise finetune_images); not compared")
            continue
        name, field, what = loss[w]
        v = r.need(field)
        if not trained(v, h0):
            return (f"{name} did not beat the context-free coder by 10% ({what} {v:.3f} vs unigram entropy "
                    f"{h0:.3f} nats): raise train_images or lr before reading this row")
    return ""


def _paired(r: Record, a: str, b: str) -> stats.Interval:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same test images (fields of per-image hits)."""
    return stats.paired_rate_diff(*r.need(a, b))


def _why(v: str, d: stats.Interval, no: str, *notes: str) -> str:
    """The why of a one-sided row: ``no`` for no, the smallest detectable effect for not significant;
    then ``notes`` (empty ones left out)."""
    first = {"yes": "", "no": no, "not significant": C.not_significant_why(d, " (accuracy)")}.get(v, "")
    return "; ".join(t for t in (first, *notes) if t)


PAIRED_TEST = "paired on the same test images: bootstrap interval of the per-image hit difference (B = 2,000), McNemar p"


# ---- the claims -------------------------------------------------------------------------------
def _higher(r: Record, a: str, b: str, who: tuple, *, diff: str, claim: str, paper: str, ours: str, test: str,
            no: str, after: str = "", note: str = "", kind: str = "paper", **kw) -> C.Claim:
    """A row claiming that accuracy ``a`` beats accuracy ``b`` on the same test images (fields of
    per-image hits; ``diff`` names their difference), for models ``who`` that trained (else "did not
    train")."""
    d = _paired(r, a, b)
    gate = _not_trained(r, *who)
    v = "did not train" if gate else C.supports(d, ">")
    return C.Claim(claim, paper, f"{ours}: {pp(d)}{after}", r.need("setting"), v, gate or _why(v, d, no, note),
                   kind=kind, test=f"{test} > 0 ({PAIRED_TEST})", seeds=SEEDS, evidence={diff: d}, **kw)


def pretraining_beats_untrained(r: Record) -> C.Claim:
    """The paper's premise: generative pretraining learns features a linear probe reads."""
    r.need("ar_hits", "untrained_hits")
    return _higher(
        r, "ar_hits", "untrained_hits", ("ar",), diff="GPT - untrained",
        claim="generative pretraining learns features a linear probe reads: the GPT's probe beats the same probe "
              "on an untrained GPT of the same shape",
        paper="Abstract, Sec. 4.3: 96.3% linear probe on CIFAR-10 (iGPT-L), from features learned without labels",
        ours=f"GPT layer {r.need('ar_layer')} {pct(acc_ci(r.ar_hits))}, untrained {pct(acc_ci(r.untrained_hits))}",
        after=f" (chance {1 / r.need('n_classes'):.0%})",
        test="GPT probe - untrained probe (each at its layer chosen on validation)",
        no="the untrained network's features probe better")


def features_beat_pixels(r: Record) -> C.Claim:
    """The book's baseline, like for like: linear probes on the GPT's own input, the palette tokens
    one-hot coded, unpooled (every position's colour) and average-pooled as the GPT's features are
    (the colour histogram); the raw RGB pixels, which carry more than the palette keeps, beside them."""
    r.need("ar_hits", "token_flat_hits", "token_hits")
    gate = _not_trained(r, "ar")
    d_flat, d_pool = _paired(r, "ar_hits", "token_flat_hits"), _paired(r, "ar_hits", "token_hits")
    parts = {"GPT > tokens unpooled": C.supports(d_flat, ">"), "GPT > tokens pooled": C.supports(d_pool, ">")}
    v = "did not train" if gate else C.weakest(*parts.values())
    ev = {"GPT - tokens unpooled": d_flat, "GPT - tokens pooled": d_pool}
    rgb, old = "", ""
    if r.pixel_hits is not None:
        d_rgb = _paired(r, "ar_hits", "pixel_hits")
        ev["GPT - raw RGB"] = d_rgb
        rgb = f"; raw RGB pixels {pct(acc_ci(r.pixel_hits))}: GPT - RGB {pp(d_rgb)}"
        old = ("test changed after the second edition's record (issue 35): it compared the GPT with the raw RGB "
               "pixels only, not the GPT's input (the palette tokens); under that rule, paired, this record gives "
               f"{'did not train' if gate else C.supports(d_rgb, '>')}")
    names = {"GPT > tokens unpooled": ("the unpooled tokens", d_flat), "GPT > tokens pooled": ("the pooled tokens", d_pool)}
    why = gate or "; ".join(
        [f"{names[k][0]} probe better ({pp(names[k][1])})" for k, p in parts.items() if p == "no"]
        + [f"not significantly better than {names[k][0]} ({pp(names[k][1])}); "
           + C.not_significant_why(names[k][1], " (accuracy)") for k, p in parts.items() if p == "not significant"]
        + ([("the raw RGB pixels, which keep what the palette drops, still probe better than the GPT: the "
             "features beat their own input, not the full-colour image") if v == "yes" else
            f"the raw RGB pixels probe better too ({pp(ev['GPT - raw RGB'])})"]
           if r.pixel_hits is not None and not gate and C.supports(ev["GPT - raw RGB"], ">") == "no" else []))
    return C.Claim(
        "the GPT's probe beats linear probes on its own input: the palette tokens, one-hot, unpooled and pooled",
        "no pixel baseline in the paper; the book's test of whether the features add anything to the input",
        f"GPT {pct(acc_ci(r.ar_hits))}; tokens unpooled {pct(acc_ci(r.token_flat_hits))}: GPT - tokens "
        f"{pp(d_flat)}; tokens pooled {pct(acc_ci(r.token_hits))}: GPT - pooled {pp(d_pool)}{rgb}",
        r.need("setting"), v, why, kind="extension",
        test=(f"GPT probe - probe on the one-hot palette tokens > 0, unpooled and pooled, both parts ({PAIRED_TEST}); "
              "the raw RGB probe is shown beside them, not part of the verdict (a different input)"),
        parts={} if gate else parts, seeds=SEEDS, evidence=ev, amended=old)


def best_layer_in_middle(r: Record) -> C.Claim:
    """Fig. 2: the best layer is inside the network, and the last block probes worse."""
    best, L = r.need("ar_layer", "n_layer")
    d = _paired(r, "ar_hits", "ar_last_hits")
    gate = _not_trained(r, "ar")
    parts = {"chosen layer inside": "yes" if 0 < best < L else "no", "last block worse": C.supports(d, ">")}
    v = "did not train" if gate else C.weakest(*parts.values())
    why = gate or "; ".join(
        [f"the validation split chose layer {best} of {L}, not an interior one"] * (parts["chosen layer inside"] == "no")
        + [f"the last block is not significantly worse ({pp(d)}); "
           + C.not_significant_why(d, " (accuracy)")] * (parts["last block worse"] == "not significant")
        + ["the last block probes better than the chosen layer"] * (parts["last block worse"] == "no"))
    return C.Claim(
        "the best linear-probe features lie in the middle of the network",
        "Sec. 4.1, Fig. 2: 'the best representations for these generative models lie in the middle of the network'",
        f"chosen layer {best} of {L}: {pct(acc_ci(r.ar_hits))}; last block {pct(acc_ci(r.ar_last_hits))}: "
        f"chosen - last {pp(d)}",
        r.need("setting"), v, why,
        kind="paper", test=f"the layer chosen on validation is neither the embeddings nor the last block, and "
                           f"the chosen layer's test probe - the last block's > 0 ({PAIRED_TEST}); both parts",
        parts={} if gate else parts, seeds=SEEDS, evidence={"chosen - last": d})


def loss_tracks_probe_across_sizes(r: Record) -> C.Claim:
    """Fig. 3: lower generative loss, better probe, across model sizes with training time held fixed."""
    rho, raw, n = r.need("partial_rho", "raw_rho", "n_snapshots")
    nll_big, nll_small = r.need("ar_nll", "small_nll")
    big_lower = nll_big < nll_small
    d = _paired(r, *(("ar_hits", "small_hits") if big_lower else ("small_hits", "ar_hits")))
    size, small = r.need("size", "small_size")
    ours = (f"partial rho {rho:.2f} over {n} snapshots (raw {raw:.2f}); final: {size} NLL {nll_big:.3f}, probe "
            f"{pct(acc_ci(r.ar_hits))}; {small} NLL {nll_small:.3f}, probe {pct(acc_ci(r.small_hits))}; lower-NLL "
            f"model - other {pp(d)}")
    test = (f"(a) Spearman correlation of (-NLL, probe) over the snapshots of both sizes, partial on sequences "
            f"seen, > {STRONG_RHO} (<= 0: no); (b) the model with the lower final NLL probes better: its probe - "
            f"the other's > 0 ({PAIRED_TEST}); both parts")
    paper = ("Fig. 3: across checkpoints of iGPT-S/M/L 'the positive slope suggests a link between improved "
             "generative performance and improved representation quality'")
    claim = "lower validation loss goes with better probes across model sizes, not only along one run"
    gate = _not_trained(r, "ar", "small")
    if gate:
        return C.Claim(claim, paper, ours, r.need("setting"), "did not train", gate, kind="paper", test=test,
                       seeds=SEEDS, evidence={"lower-NLL - other": d})
    if math.isnan(rho):
        return C.Claim(claim, paper, ours, r.need("setting"), "n/a",
                       "too few snapshots in this profile for a partial correlation", kind="paper", test=test)
    parts = {"(a) partial rho": "yes" if rho > STRONG_RHO else ("no" if rho <= 0 else "not significant"),
             "(b) lower NLL, better final probe": C.supports(d, ">")}
    v = C.weakest(*parts.values())
    why = "; ".join([f"partial correlation {rho:.2f}" + (" <= 0" if rho <= 0 else f", not above {STRONG_RHO}")]
                    * (parts["(a) partial rho"] != "yes")
                    + ["the lower-NLL model probes significantly worse"] * (parts["(b) lower NLL, better final probe"] == "no")
                    + ["final probes not significantly different; " + C.not_significant_why(d, " (accuracy)")]
                    * (parts["(b) lower NLL, better final probe"] == "not significant"))
    return C.Claim(claim, paper, ours, r.need("setting"), v, why, kind="paper", test=test, parts=parts, seeds=SEEDS,
                   evidence={"lower-NLL - other": d})


# the second edition cited "more than 1% lower on CIFAR-10, 6% on ImageNet"; issue 35's check could not find
# Sec. 4.6's text in the stored copies searched (their excerpts stop at the introduction), so no number is cited
BERT_PAPER = ("Sec. 4.6, Fig. 4: under linear probes BERT's features are worse than the autoregressive model's "
              "(its per-dataset gaps are not cited here: not verified against the paper's text)")


def bert_reads_nothing(r: Record) -> str:
    """What the record says of BERT's features against an untrained network of the same shape (paired):
    '' when BERT's probe is ahead, else the sentence the AR - BERT row carries."""
    if r.bert_hits is None or r.untrained_hits is None:
        return ""
    d = _paired(r, "bert_hits", "untrained_hits")
    v = C.supports(d, ">")
    emb = (f"BERT's layer chosen on validation is its embedding layer (layer 0), so its blocks add nothing "
           "a linear probe reads; " if r.bert_layer == 0 else "")
    if v == "yes":
        return emb.rstrip("; ")
    return emb + (f"BERT's probe is {'not significantly different from' if v == 'not significant' else 'below'} "
                  f"an untrained network's of the same shape (BERT - untrained {pp(d)}): BERT learned nothing "
                  "this probe reads")


def ar_beats_bert(r: Record) -> C.Claim:
    """Sec. 4.6: under a linear probe the autoregressive objective beats BERT."""
    r.need("ar_hits", "bert_hits")
    note = bert_reads_nothing(r)
    return _higher(
        r, "ar_hits", "bert_hits", ("ar", "bert"), diff="AR - BERT",
        claim="under a linear probe the autoregressive objective beats BERT",
        paper=BERT_PAPER,
        ours=f"AR {pct(acc_ci(r.ar_hits))}, BERT (layer {r.need('bert_layer')}) {pct(acc_ci(r.bert_hits))}",
        test="AR probe - BERT probe (each at its layer chosen on validation)",
        no="BERT's features probe better at this scale", note=note)


FT_GATE_AMENDED = ("gate added after the second edition's record (issue 35: both fine-tunes ended below their own "
                   "probes): a fine-tune whose train classification loss is not 10% below ln(classes), or not below "
                   "its own linear probe's train log-loss, did not train; it reads training losses, not the test "
                   "accuracy the claim compares. The budget changed too: finetune_images 8,000 -> 24,000 (the "
                   "third edition's first record, 24 min over the 20-min budget) -> 16,000, with pretraining "
                   "32,000 -> 24,000 images, both set by the budget. A 1x-4x sweep's test accuracies were seen "
                   "before either choice (AR fine-tune 41.0 / 46.0 / 48.9 / 47.9% at 8k / 16k / 24k / 32k after "
                   "32,000 images of pretraining, its probe 45.0%; train L_clf 1.08 / 0.96 / 0.84 / 0.87, the "
                   "probe's 1.02); at 8,000 the AR fine-tune did not train under this gate (train L_clf 1.08, "
                   "not 10% below ln 3). At 16,000 (the third edition's second record, 21 min) it missed the "
                   "gate by 0.001 nats (train L_clf 0.990, its probe's 0.989), its test accuracy also seen; "
                   "the AR fine-tune then got 24,000, paid for by no longer fine-tuning BERT in the cpu "
                   "profile, where that fine-tune never trained")


def finetune_beats_probe(r: Record) -> C.Claim:
    """Sec. 4.5: fine-tuning the whole network beats the best linear probe."""
    r.need("ft_ar_hits", "ar_hits")
    return _higher(
        r, "ft_ar_hits", "ar_hits", ("ar", "ft_ar"), diff="fine-tuned - probe",
        claim="fine-tuning the whole network beats the best linear probe",
        paper="Abstract, Sec. 4.5: CIFAR-10 99.0% fine-tuned vs 96.3% linear probe (iGPT-L)",
        ours=f"AR fine-tuned {pct(acc_ci(r.ft_ar_hits))} vs probe {pct(acc_ci(r.ar_hits))}",
        after=f" ({r.need('finetune_images'):,} labelled sequences seen)",
        test="fine-tuned (linear head on the pooled last block, L_clf + L_gen) - best probe",
        no="the fine-tune ends below the frozen features' probe", amended=FT_GATE_AMENDED)


BERT_CATCHES_UP = ("BERT catches up with AR after fine-tuning: the gap under linear probes shrinks",
                   "Sec. 4.6, Fig. 4: BERT, behind under linear probes, catches up after fine-tuning")
BERT_FT_OFF = ("not tested in this profile: it does not fine-tune BERT (finetune_bert). In the cpu profile the "
               "BERT fine-tune cost a quarter of the chapter's 20-minute budget (two passes per step) and did "
               "not train at 8,000 or 16,000 labelled sequences; its budget went to the AR fine-tune")


def bert_catches_up(r: Record) -> C.Claim:
    """Sec. 4.6: the AR - BERT gap under probes closes after fine-tuning."""
    if r.finetune_bert is False:
        return C.Claim(*BERT_CATCHES_UP, "not run", r.need("setting"), "n/a", BERT_FT_OFF, kind="paper")
    a, b, fa, fb = (np.asarray(x, dtype=np.float64) for x in r.need("ar_hits", "bert_hits", "ft_ar_hits",
                                                                      "ft_bert_hits"))
    probe_gap, ft_gap = _paired(r, "ar_hits", "bert_hits"), _paired(r, "ft_ar_hits", "ft_bert_hits")
    shrink = stats.paired_mean_diff(fa - fb, a - b)  # per image: (AR - BERT) fine-tuned minus under the probe
    ours = (f"gap AR - BERT: probe {pp(probe_gap)}, fine-tuned {pp(ft_gap)} (AR {pct(acc_ci(fa))}, "
            f"BERT {pct(acc_ci(fb))}); change {pp(shrink)}")
    gate = _not_trained(r, "ar", "bert", "ft_ar", "ft_bert")
    if gate:
        v, why = "did not train", gate
    elif C.supports(probe_gap, ">") != "yes":
        v, why = "n/a", "AR was not significantly ahead under the linear probe, so there is no gap to close"
    else:
        v = C.supports(shrink, "<")
        why = _why(v, shrink, "the gap widens after fine-tuning")
    return C.Claim(
        *BERT_CATCHES_UP, ours, r.need("setting"), v, why, kind="paper",
        test=("where AR leads under the probe (paired test), the per-image change of the AR - BERT hit "
              "difference from probe to fine-tune < 0 (paired t-interval over the test images)"),
        seeds=SEEDS, amended=FT_GATE_AMENDED + "; the second edition also asked the fine-tuned accuracies to "
        "overlap, a no-difference test without a stated margin, dropped",
        evidence={"change of the gap": shrink, "probe gap": probe_gap})


def palette_keeps(loss: stats.Interval) -> str:
    """Non-inferiority of a palette: originals - quantised (paired) lies wholly below PALETTE_MARGIN."""
    return C.below(loss, PALETTE_MARGIN)


def palette_keeps_content(r: Record) -> C.Claim:
    """Sec. 3.2: a k-means palette keeps the image's content while shortening the sequence 3x."""
    k = r.need("k")
    orig, quant = r.need("palette_orig_hits", "palette_model_hits")
    loss = stats.paired_rate_diff(orig, quant)  # originals - quantised, on the same scenes
    v = palette_keeps(loss)
    old = ""
    if r.palette_read and r.palette_base is not None:
        top = max(r.palette_read)
        ok = r.palette_read[top].hi >= r.palette_base.est - PALETTE_MARGIN
        old = f"; under it this record gives {'yes' if ok else 'no'} at k={top}"
    return C.Claim(
        "a k-means palette keeps the scenes' content: an attribute reader trained on the originals reads the "
        "scenes quantised with the models' palette almost as well",
        "Sec. 3.2: 9-bit palette (k = 512), 1,024 instead of 3,072 tokens at 32x32",
        f"k={k}: all attributes read {pct(acc_ci(quant))} vs originals {pct(acc_ci(orig))}: loss {pp(loss)}",
        f"shapes, one object, {len(orig)} test scenes; the models' palette (k={k})", v,
        _why(v, loss, f"the palette costs more than {PALETTE_MARGIN:.0%} of the attributes read").replace(
            "the interval straddles 0", f"the interval straddles the {PALETTE_MARGIN:.0%} margin"),
        kind="paper",
        test=(f"non-inferiority at the k the models use: originals - quantised, all attributes read, < "
              f"{PALETTE_MARGIN:.0%} (upper end of the paired interval; {PAIRED_TEST})"),
        amended=("test changed after the second edition's record (issue 35): it tested the largest palette tried "
                 "(k=64, not the models' k) by the upper Wilson bound of the quantised accuracy >= originals - 2 "
                 "points, unpaired, a test that passes more easily the smaller n is" + old),
        evidence={"originals - quantised": loss})


def headline(r: Record) -> C.Claim:
    """The paper's headline numbers: not comparable at this scale."""
    layer, by_layer = r.need("ar_layer", "ar_layer_acc")
    more = [f"{name} {pct(acc_ci(h))}" for name, h in (("fine-tuned", r.ft_ar_hits), ("pixels", r.pixel_hits))
            if h is not None]
    return C.Claim(
        "linear probe accuracy: CIFAR-10 96.3% (iGPT-L), ImageNet 72.0% (iGPT-XL, 5 layers concatenated); "
        "fine-tuning CIFAR-10 99.0%",
        "Abstract, Sec. 4.3-4.5",
        f"shapes {r.need('label')}: probe {pct(by_layer[layer])}" + "".join(f", {m}" for m in more),
        r.need("setting"), "n/a",
        "different data and a model ~10^4 times smaller: only the orderings above are compared", kind="paper")


RULES = [pretraining_beats_untrained, features_beat_pixels, best_layer_in_middle, loss_tracks_probe_across_sizes,
         ar_beats_bert, finetune_beats_probe, bert_catches_up, palette_keeps_content, headline]


def claims(r: Record) -> list[C.Claim]:
    """The claims table of chapter 01 (see the module docstring)."""
    return C.derive(RULES, r)


def record_from_numbers(numbers: dict, run_card: dict) -> Record:
    """The record of a results file written before the typed seam. Those files store Wilson intervals
    of each accuracy but no per-image hits, so every paired rule is named as missing; nor do they
    store the fine-tunes' train losses."""
    n = numbers
    r = Record.of_config(run_card["config"])
    pr = n.get("probe", {})
    pal = n.get("palette", {})
    r.n_classes, r.unigram_entropy = n.get("n_classes"), n.get("unigram_entropy")
    r.ar_nll = (n.get("ar_test_nll") or {}).get("nats_per_token")
    r.small_nll = (n.get("small_test_nll") or {}).get("nats_per_token")
    r.bert_train_loss = n.get("bert_train_loss")
    r.ar_layer, r.bert_layer = pr.get("ar", {}).get("best"), pr.get("bert", {}).get("best")
    r.ar_layer_acc = [stats.Interval.of(c) for c in pr.get("ar", {}).get("layer_ci", [])] or None
    rows = n.get("probe_vs_loss")
    r.n_snapshots = len(rows) if rows is not None else None
    r.partial_rho, r.raw_rho = n.get("partial_rho"), n.get("raw_rho")
    if pal:
        r.palette_rmse = {row["k"]: row["rmse"] for row in pal["rows"]}
        r.palette_read = {row["k"]: stats.Interval.of(c) for row, c in zip(pal["rows"], pal["read_ci"])}
        r.palette_base = stats.Interval.of(pal["base_ci"])
    return r


def image_table(rows, row_names, col_names=None, title: str = "", scale: float = 0.75):
    """Images in a labelled table: ``rows`` is a list of (N, C, H, W) tensors in [-1, 1] (one per row),
    ``row_names`` label the rows, ``col_names`` (optional) the columns. Returns the figure. A
    cell is at most ``5 / columns`` inches wide, so the table and its row labels fit the book's
    704 px column."""
    import matplotlib.pyplot as plt

    from ..viz import to_uint8

    nr, nc = len(rows), max(len(r) for r in rows)
    scale = min(scale, 5.0 / nc)
    fig, axes = plt.subplots(nr, nc, figsize=(1.2 + nc * scale, 0.3 + nr * scale), squeeze=False)
    for i, r in enumerate(rows):
        for j in range(nc):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(r):
                img = to_uint8(r[j]).transpose(1, 2, 0)  # (H, W, C)
                ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", interpolation="nearest")
            if j == 0:
                ax.set_ylabel(row_names[i], rotation=0, ha="right", va="center", fontsize=8)
            if i == 0 and col_names is not None and j < len(col_names):
                ax.set_title(col_names[j], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
