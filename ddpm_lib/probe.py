"""Linear probes on a transformer's hidden states (iGPT, Chen et al. 2020, Sec. 3.5).

For layer l, average-pool the residual stream over the sequence, then fit a logistic regression on
the train split and score it on the test split. As in iGPT (and its maintainers' advice), the
features are standardised and the classifier is scikit-learn's L2-regularised lbfgs logistic
regression. A probe measures what a *linear* reader can get from the features: the paper's point is
that the best generative features sit in the middle of the network, not at its output.

Fine-tuning (Sec. 3.5): a linear head on the average-pooled, normalised final layer, trained with
the whole network on L_clf + L_gen (``Classifier``, ``FineTuneObjective``; ``train.train`` runs it).

Every probe can return its per-image hits (``probe_hits``) so that a chapter can put a binomial
interval on an accuracy (``stats.wilson``) before comparing two of them.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@torch.no_grad()
def layer_features(gpt, tokens: torch.Tensor,
                   batch_size: int = 256) -> list[torch.Tensor]:
    """Average-pooled hidden states after every block: a list of n_layer
    tensors (N, n_embd).

    Layer 0 in the list is the output of the first block; the embeddings
    alone are prepended as an extra entry so that index l means "after l
    blocks" (entry 0: no block at all).
    """
    gpt.eval()
    outs: list[list[torch.Tensor]] = []
    device = next(gpt.parameters()).device
    for i in range(0, len(tokens), batch_size):
        idx = tokens[i:i + batch_size].to(device)
        _, hidden = gpt(idx, return_hidden=True)
        emb = (gpt.embed(idx[:, :-1], 0, with_sos=True) if gpt.sos is not None
               else gpt.embed(idx))
        feats = [emb.mean(1)] + [h.mean(1) for h in hidden]
        outs.append([f.float().cpu() for f in feats])
    return [torch.cat([o[l] for o in outs]) for l in range(len(outs[0]))]


def fit_probe(train_x, train_y, C: float = 1.0, max_iter: int = 2000):
    """The linear probe: an L2 logistic regression fitted on standardised features (a scikit-learn
    pipeline). A probe that stops at ``max_iter`` is still a probe; its score says so."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return clf


def probe_hits(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
               C: float = 1.0, max_iter: int = 2000) -> np.ndarray:
    """Per-image correctness (bool, one per test row) of the probe fitted on the train features."""
    return fit_probe(train_x, train_y, C, max_iter).predict(np.asarray(test_x, dtype=np.float64)) == np.asarray(test_y)


def val_cut(n: int, val_frac: float) -> int:
    """The validation split of ``n`` training rows: the probe fits rows ``[:cut]``, validates on the rest."""
    return n - max(1, int(round(val_frac * n)))


def probe_train_loss(feats, y, C: float, val_frac: float = 0.2) -> float:
    """Mean log-loss (nats) of the probe on the rows it was fitted on, with ``select_layer``'s split:
    what a fine-tune's train L_clf must beat to have fitted the labels at least as well as a linear
    read of its frozen features."""
    from sklearn.metrics import log_loss

    x, y = np.asarray(feats, dtype=np.float64), np.asarray(y)
    cut = val_cut(len(y), val_frac)
    clf = fit_probe(x[:cut], y[:cut], C)
    return float(log_loss(y[:cut], clf.predict_proba(x[:cut]), labels=clf.classes_))


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 C: float = 1.0, max_iter: int = 2000) -> float:
    """Test accuracy of a logistic regression fitted on standardised train features."""
    return float(probe_hits(train_x, train_y, test_x, test_y, C, max_iter).mean())


def probe_layers(gpt, train_tokens, train_y, test_tokens, test_y, C: float = 1.0, hits: bool = False) -> list:
    """Linear-probe accuracy after 0, 1, ..., n_layer blocks (``hits``: per-image hits instead)."""
    tr, te = layer_features(gpt, train_tokens), layer_features(gpt, test_tokens)
    out = [probe_hits(a, train_y, b, test_y, C) for a, b in zip(tr, te)]
    return out if hits else [float(h.mean()) for h in out]


def select_layer(gpt, train_tokens, train_y, test_tokens, test_y, C: float = 1.0, val_frac: float = 0.2,
                 layers: list[int] | None = None) -> dict:
    """Probe every layer (or only ``layers``), choosing the layer on a validation split of the
    *training* images (their last ``val_frac``), so the reported test accuracy of the chosen layer is
    not selected on the test set. One probe per layer, fitted on the other training images, gives
    both its validation and its test accuracy.

    Returns ``val`` and ``test`` accuracies by layer (NaN for layers not probed), ``hits`` (per-image
    test hits by layer, None where not probed) and ``best`` (the highest validation accuracy)."""
    tr, te = layer_features(gpt, train_tokens), layer_features(gpt, test_tokens)
    y = torch.as_tensor(train_y)
    cut = val_cut(len(y), val_frac)
    todo = range(len(tr)) if layers is None else layers
    val, test, hits = [float("nan")] * len(tr), [float("nan")] * len(tr), [None] * len(tr)
    for l in todo:
        h = probe_hits(tr[l][:cut], y[:cut], torch.cat([tr[l][cut:], te[l]]), torch.cat([y[cut:], torch.as_tensor(test_y)]), C)
        val[l], hits[l] = float(h[:len(y) - cut].mean()), h[len(y) - cut:]
        test[l] = float(hits[l].mean())
    best = max(todo, key=lambda l: val[l])
    return dict(val=val, test=test, hits=hits, best=int(best))


class Classifier(nn.Module):
    """A GPT with a linear head on its average-pooled, normalised final layer
    (iGPT's fine-tuning, Sec. 3.5: ``n^L = layer_norm(h^L)`` pooled over
    positions). ``forward(idx, gen_idx=None)`` returns (class logits of
    ``idx``, token logits of ``gen_idx`` or, when None, of ``idx``)."""

    def __init__(self, gpt, n_classes: int):
        super().__init__()
        self.gpt, self.head = gpt, nn.Linear(gpt.cfg.n_embd, n_classes)
        # what train_cached keys the run on
        self.cfg = dict(gpt=gpt.cfg, n_classes=n_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, idx, gen_idx=None):
        logits, hidden = self.gpt(idx, return_hidden=True)
        cls = self.head(self.gpt.ln_f(hidden[-1]).mean(1))
        return cls, (logits if gen_idx is None else self.gpt(gen_idx))


class FineTuneObjective:
    """L_clf + gen_weight * L_gen on labelled sequences (``batch.x``,
    ``batch.y``). L_gen is the next-token loss (``mask_token=None``) or the
    masked-token loss (BERT: a random ``mask_prob`` of positions replaced by
    ``mask_token``; the classifier always sees the unmasked sequence)."""

    def __init__(self, gen_weight: float = 1.0, mask_token: int | None = None,
                 mask_prob: float = 0.15):
        self.gen_weight, self.mask_token = gen_weight, mask_token
        self.mask_prob = mask_prob

    def config(self) -> dict:
        return {"objective": "fine-tune", "gen_weight": self.gen_weight,
                "mask_token": self.mask_token, "mask_prob": self.mask_prob}

    def __call__(self, net, batch):
        x = batch.x
        if self.mask_token is None:
            cls, logits = net(x)
            gen = F.cross_entropy(logits.flatten(0, 1).float(), x.flatten())
        else:
            masked = batch.rand(x.shape[1]) < self.mask_prob
            inp = torch.where(masked, torch.full_like(x, self.mask_token), x)
            cls, logits = net(x, inp)
            gen = (F.cross_entropy(logits[masked].float(), x[masked])
                   if masked.any() else logits.sum() * 0)
        clf = F.cross_entropy(cls.float(), batch.y)
        return (clf + self.gen_weight * gen,
                {"clf": clf.detach(), "gen": gen.detach()})


@torch.no_grad()
def classify_hits(model: Classifier, tokens: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Per-image correctness of a fine-tuned ``Classifier`` on ``tokens``."""
    model.eval()
    device = next(model.parameters()).device
    pred = torch.cat([model(tokens[i:i + batch_size].to(device))[0].argmax(-1).cpu()
                      for i in range(0, len(tokens), batch_size)])
    return (pred == torch.as_tensor(y)).numpy()
