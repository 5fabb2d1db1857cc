"""Chapter 01 (iGPT): the tests behind the claims table, and the helpers its cells share.

The notebook computes ``numbers`` (a dict of plain values, also written to the results file) and
calls ``claims(numbers, cfg, setting)``; every verdict below is decided by a test stated in the
claim's text (metric, comparison, threshold) before the numbers are seen:

* accuracies are shares of test images, each with a 95% Wilson interval (``stats.wilson``);
* two accuracies differ when their intervals do not overlap (``stats.compare``, a conservative
  test); otherwise the verdict is "not significant";
* a model "did not train" when its held-out NLL is not at least 10% below the entropy of the
  palette's token frequencies (what a model that ignores every neighbour achieves).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import notebook, stats

DID_NOT_TRAIN = 0.9  # held-out NLL must be below this share of the unigram entropy
STRONG_RHO = 0.5  # partial Spearman above which the loss-probe relation is called clear


def acc_ci(hits) -> stats.Interval:
    """Accuracy with its 95% Wilson interval from per-image hits (bool array)."""
    h = np.asarray(hits, dtype=bool)
    return stats.wilson(int(h.sum()), len(h))


def ci_dict(hits) -> dict:
    return acc_ci(hits).as_dict()


iv = stats.Interval.of  # an Interval back from ``Interval.as_dict()`` (how ``numbers`` stores it)


def pct(d: dict) -> str:
    """'61.2% [58.1, 64.2]' from an interval dict."""
    return f"{d['est']:.1%} [{d['lo']:.1%}, {d['hi']:.1%}]"


def unigram_entropy(tokens: torch.Tensor, k: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores all context."""
    p = torch.bincount(tokens.flatten(), minlength=k).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def trained(nll: float, h0: float) -> bool:
    return nll < DID_NOT_TRAIN * h0


def word(a: dict, b: dict) -> str:
    """'higher than' / 'lower than' / 'not significantly different from' for two interval dicts."""
    c = stats.compare(iv(a), iv(b), independent=True)
    return "not significantly different from" if c == "not significant" else c + " than"


def _cmp_verdict(a: dict, b: dict) -> str:
    c = stats.compare(iv(a), iv(b), independent=True)
    return {"higher": "yes", "lower": "no"}.get(c, "not significant")


def claims(numbers: dict, cfg, setting: str) -> list[notebook.Claim]:
    """The claims table of chapter 01 from this run's ``numbers`` (see the module docstring)."""
    n = numbers
    h0 = n["unigram_entropy"]
    ar_ok = trained(n["ar_test_nll"]["nats_per_token"], h0)
    small_ok = trained(n["small_test_nll"]["nats_per_token"], h0)
    bert_ok = n["bert_train_loss"] < DID_NOT_TRAIN * h0
    dnt = lambda who: (f"{who} did not beat the context-free coder by 10% (held-out NLL vs unigram entropy "  # noqa: E731
                       f"{h0:.3f} nats): raise train_images or lr before reading this row")
    out = []

    # 1. generative features vs pixels and vs an untrained GPT
    pr = n["probe"]
    ar_best, pix, rnd = pr["ar"]["best_ci"], pr["pixels_ci"], pr["untrained"]["best_ci"]
    v_pix, v_rnd = _cmp_verdict(ar_best, pix), _cmp_verdict(ar_best, rnd)
    if not ar_ok:
        v, why = "did not train", dnt("the GPT")
    else:
        parts = {"the raw pixels": v_pix, "an untrained GPT": v_rnd}
        v = ("yes" if v_pix == v_rnd == "yes" else "no" if "no" in parts.values() else
             "partly" if "yes" in parts.values() else "not significant")
        refs = {"raw pixels": pix, "an untrained GPT": rnd}
        why = "" if v == "yes" else "; ".join(
            f"the GPT's probe is {word(ar_best, ci)} {name}" for name, ci in refs.items())
    out.append(notebook.Claim(
        f"generative pretraining gives features a linear probe reads better than raw pixels: the GPT's "
        f"probe (layer chosen on a validation split of the training images) is significantly higher than "
        f"the pixel probe and than the same probe on an untrained GPT (95% Wilson intervals do not overlap)",
        "Abstract, Sec. 4.3: 96.3% linear probe on CIFAR-10 (iGPT-L), from features learned without labels",
        f"{cfg.label} of the first object: GPT layer {pr['ar']['best']} {pct(ar_best)}; raw pixels {pct(pix)}; "
        f"untrained GPT {pct(rnd)} (chance {1 / n['n_classes']:.0%})",
        setting, v, why))

    # 2. best layer in the middle
    ar_hits_last = pr["ar"]["layer_ci"][-1]
    best = pr["ar"]["best"]
    interior = 0 < best < cfg.n_layer
    drop = stats.compare(iv(ar_hits_last), iv(ar_best), independent=True)
    if not ar_ok:
        v, why = "did not train", dnt("the GPT")
    elif interior and drop == "lower":
        v, why = "yes", ""
    elif interior:
        v, why = "not significant", (f"the chosen layer is inside the network, but the last layer "
                                     f"({pct(ar_hits_last)}) is within the interval of the best")
    else:
        v, why = "no", (f"the validation split chose layer {best} of {cfg.n_layer}: a model this shallow and "
                        "briefly trained shows no interior peak (the paper's models have 24-60 layers)")
    out.append(notebook.Claim(
        "the best linear-probe features lie in the middle of the network: the layer chosen on validation is "
        "neither the embeddings nor the last block, and the last block probes significantly worse on test",
        "Sec. 4.1, Fig. 2: 'the best representations for these generative models lie in the middle of the network'",
        f"chosen layer {best} of {cfg.n_layer}: {pct(ar_best)}; last layer {pct(ar_hits_last)}",
        setting, v, why))

    # 3. loss vs probe across two model sizes, with training time held fixed
    rows = n["probe_vs_loss"]
    rho, rho_raw = n["partial_rho"], n["raw_rho"]
    big, small = n["final_big"], n["final_small"]
    lower_loss_big = n["ar_test_nll"]["nats_per_token"] < n["small_test_nll"]["nats_per_token"]
    hi, lo = (big, small) if lower_loss_big else (small, big)
    c = stats.compare(iv(hi), iv(lo), independent=True)
    if not (ar_ok and small_ok):
        v, why = "did not train", dnt("the GPT" if not ar_ok else "the small GPT")
    elif math.isnan(rho):
        v, why = "n/a", "too few snapshots in this profile for a partial correlation"
    elif c == "lower" or rho <= 0:
        v, why = "no", ("the model with the lower loss probes significantly worse" if c == "lower"
                        else f"with steps held fixed the correlation is {rho:.2f}")
    elif c == "higher":
        v, why = ("yes", "") if rho > STRONG_RHO else ("partly", f"partial correlation only {rho:.2f}")
    else:
        v, why = "not significant", ("the two models' final probes have overlapping intervals; the "
                                     f"partial correlation over snapshots is {rho:.2f}")
    out.append(notebook.Claim(
        "lower validation loss goes with better probes across model sizes, not only along one run: "
        f"(a) Spearman correlation of (-NLL, best probe) over the snapshots of two model sizes, partial on "
        f"training steps, > {STRONG_RHO}; (b) the model with the lower final NLL has a significantly higher "
        "final probe (Wilson intervals)",
        "Fig. 3: across checkpoints of iGPT-S/M/L 'the positive slope suggests a link between improved "
        "generative performance and improved representation quality'",
        f"partial rho {rho:.2f} over {len(rows)} snapshots (raw rho {rho_raw:.2f}); final: "
        f"{cfg.n_layer}x{cfg.n_embd} NLL {n['ar_test_nll']['nats_per_token']:.3f}, probe {pct(big)}; "
        f"{cfg.small_layer}x{cfg.small_embd} NLL {n['small_test_nll']['nats_per_token']:.3f}, probe {pct(small)}",
        setting, v, why))

    # 4. AR vs BERT under a linear probe
    bert_best = pr["bert"]["best_ci"]
    vb = _cmp_verdict(ar_best, bert_best)
    out.append(notebook.Claim(
        "under a linear probe the autoregressive objective beats BERT: AR's probe (layer chosen on validation) "
        "is significantly higher than BERT's (Wilson intervals)",
        "Sec. 4.6, Fig. 4: BERT's best layer 'more than 1% lower' on CIFAR-10, 6% lower on ImageNet (iGPT-L)",
        f"AR {pct(ar_best)}, BERT {pct(bert_best)}",
        setting, "did not train" if not (ar_ok and bert_ok) else vb,
        dnt("AR" if not ar_ok else "BERT (train loss)") if not (ar_ok and bert_ok) else
        {"yes": "", "no": "BERT's features probe better at this scale",
         "not significant": "the intervals overlap"}[vb]))

    # 5. fine-tuning beats the linear probe
    ft = n["finetune"]
    vf = _cmp_verdict(ft["ar_ci"], ar_best)
    out.append(notebook.Claim(
        "fine-tuning the whole network (linear head on the pooled last layer, L_clf + L_gen) beats the best "
        "linear probe: its test accuracy is significantly higher (Wilson intervals)",
        "Abstract, Sec. 4.5: CIFAR-10 99.0% fine-tuned vs 96.3% linear probe (iGPT-L)",
        f"AR fine-tuned {pct(ft['ar_ci'])} vs probe {pct(ar_best)} ({cfg.finetune_images:,} labelled sequences seen)",
        setting, "did not train" if not ar_ok else vf,
        dnt("the GPT") if not ar_ok else {"yes": "", "no": "the short fine-tune ends below the probe",
                                          "not significant": "the intervals overlap"}[vf]))

    # 6. BERT catches up after fine-tuning
    gap_probe = ar_best["est"] - bert_best["est"]
    gap_ft = ft["ar_ci"]["est"] - ft["bert_ci"]["est"]
    c_ft = stats.compare(iv(ft["bert_ci"]), iv(ft["ar_ci"]), independent=True)
    if not (ar_ok and bert_ok):
        v, why = "did not train", dnt("AR" if not ar_ok else "BERT (train loss)")
    elif vb != "yes":
        v, why = "n/a", "AR was not significantly ahead under the linear probe, so there is no gap to close"
    elif c_ft == "lower":
        v, why = "no", f"BERT stays significantly behind after fine-tuning (gap {gap_ft:+.1%})"
    elif gap_ft < gap_probe:
        v, why = "yes", ""
    else:
        v, why = "partly", "the fine-tuned accuracies overlap but the gap did not shrink"
    out.append(notebook.Claim(
        "BERT catches up with AR after fine-tuning: where AR leads under the probe, the fine-tuned accuracies "
        "are not significantly different and the gap shrinks",
        "Sec. 4.6, Fig. 4: the gap under linear probes closes after fine-tuning",
        f"gap AR - BERT: probe {gap_probe:+.1%}, fine-tuned {gap_ft:+.1%} "
        f"(AR {pct(ft['ar_ci'])}, BERT {pct(ft['bert_ci'])})",
        setting, v, why))

    # 7. palette
    pal = n["palette"]
    last = pal["rows"][-1]
    q, base = pal["read_ci"][-1], pal["base_ci"]
    ok = q["hi"] >= base["est"] - 0.02
    out.append(notebook.Claim(
        "a k-means palette keeps images' content while shortening the sequence 3x: with the largest palette "
        "tried, an attribute reader trained on the originals is not significantly more than 2 points worse "
        "on the quantised images (upper Wilson bound >= originals - 2 points)",
        "Sec. 3.2: 9-bit palette (k = 512), 1,024 instead of 3,072 tokens at 32x32",
        "; ".join(f"k={r['k']}: RMSE {r['rmse']}, read {r['attributes_read']}" for r in pal["rows"][-3:])
        + f" (originals {pct(base)})",
        f"shapes {cfg.image_size}x{cfg.image_size}", "yes" if ok else "no",
        "" if ok else f"even k={last['k']} loses more than 2 points of attribute accuracy"))

    # 8. headline numbers (not comparable)
    out.append(notebook.Claim(
        "linear probe accuracy: CIFAR-10 96.3% (iGPT-L), ImageNet 72.0% (iGPT-XL, 5 layers concatenated); "
        "fine-tuning CIFAR-10 99.0%",
        "Abstract, Sec. 4.3-4.5",
        f"shapes {cfg.label}: probe {pct(ar_best)}, fine-tuned {pct(ft['ar_ci'])}, pixels {pct(pix)}",
        setting, "n/a",
        "different data and a model ~10^4 times smaller: only the orderings above are compared"))
    return out


def image_table(rows, row_names, col_names=None, title: str = "", scale: float = 0.75):
    """Images in a labelled table: ``rows`` is a list of (N, C, H, W) tensors in [-1, 1] (one per row),
    ``row_names`` label the rows, ``col_names`` (optional) the columns. Returns the figure."""
    import matplotlib.pyplot as plt

    from ..viz import to_uint8

    nr, nc = len(rows), max(len(r) for r in rows)
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
