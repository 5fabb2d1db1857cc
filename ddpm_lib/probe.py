"""Linear probes on a transformer's hidden states (iGPT, Chen et al. 2020, Sec. 3.5).

For layer l, average-pool the residual stream over the sequence, then fit a logistic regression on
the train split and score it on the test split. As in iGPT (and its maintainers' advice), the
features are standardised and the classifier is scikit-learn's L2-regularised lbfgs logistic
regression. A probe measures what a *linear* reader can get from the features: the paper's point is
that the best generative features sit in the middle of the network, not at its output.
"""
from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def layer_features(gpt, tokens: torch.Tensor, batch_size: int = 256) -> list[torch.Tensor]:
    """Average-pooled hidden states after every block: a list of n_layer tensors (N, n_embd).

    Layer 0 in the list is the output of the first block; the embeddings alone are prepended as
    an extra entry so that index l means "after l blocks" (entry 0: no block at all).
    """
    gpt.eval()
    outs: list[list[torch.Tensor]] = []
    device = next(gpt.parameters()).device
    for i in range(0, len(tokens), batch_size):
        idx = tokens[i:i + batch_size].to(device)
        _, hidden = gpt(idx, return_hidden=True)
        emb = gpt.embed(idx[:, :-1], 0, with_sos=True) if gpt.sos is not None else gpt.embed(idx)
        feats = [emb.mean(1)] + [h.mean(1) for h in hidden]
        outs.append([f.float().cpu() for f in feats])
    return [torch.cat([o[l] for o in outs]) for l in range(len(outs[0]))]


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 C: float = 1.0, max_iter: int = 2000) -> float:
    """Test accuracy of a logistic regression fitted on standardised train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float(clf.score(np.asarray(test_x, dtype=np.float64), np.asarray(test_y)))


def probe_layers(gpt, train_tokens, train_y, test_tokens, test_y, C: float = 1.0) -> list[float]:
    """Linear-probe accuracy after 0, 1, ..., n_layer blocks."""
    tr, te = layer_features(gpt, train_tokens), layer_features(gpt, test_tokens)
    return [linear_probe(a, train_y, b, test_y, C) for a, b in zip(tr, te)]
