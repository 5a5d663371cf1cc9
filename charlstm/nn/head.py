"""The output layer: a linear map to vocabulary scores and the softmax cross-entropy loss.

Shapes, with N = T*B rows predicted at once:
    x (N, H)   W (H, V)   b (V,)   logits (N, V)   targets (N,) ids   weights (N,) or None

    p = softmax(x W + b)
    loss = sum_n w_n * -log p[n, target_n] / sum_n w_n       (w = 1 when no weights are given)
    dlogits = w_n * (p - onehot(target)) / sum_n w_n

Weights let the last, ragged chunk of a pass over the data count only its real symbols.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LinearCache(NamedTuple):
    x: np.ndarray
    W: np.ndarray


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray         # (N, V); the backward pass turns it into dlogits in place
    targets: np.ndarray       # (N,)
    weights: np.ndarray | None
    total_weight: float


def linear_forward(x, W, b):
    """x W + b; returns (out, cache)."""
    out = x @ W
    out += b
    return out, LinearCache(x, W)


def linear_backward(dout, cache: LinearCache):
    """Returns (dx, dW, db)."""
    return dout @ cache.W.T, cache.x.T @ dout, dout.sum(axis=0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log softmax, stable for large scores."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large scores."""
    p = logits - logits.max(axis=-1, keepdims=True)
    np.exp(p, out=p)
    p /= p.sum(axis=-1, keepdims=True)
    return p


def cross_entropy_forward(logits, targets, weights=None):
    """Mean cross-entropy in nats over all rows (weighted if weights are given).

    Returns (loss, cache). The loss is a Python float computed in the logits' dtype.
    """
    N = logits.shape[0]
    rows = np.arange(N)
    probs = logits - logits.max(axis=1, keepdims=True)
    target_scores = probs[rows, targets]
    np.exp(probs, out=probs)
    sums = probs.sum(axis=1)
    # -log p[target] = log(sum exp) - shifted score of the target (no log of an underflowed p)
    nll = np.log(sums) - target_scores
    probs /= sums[:, None]
    if weights is None:
        total = float(N)
        loss = float(nll.sum()) / total
    else:
        total = float(weights.sum())
        loss = float(nll @ weights) / total
    return loss, CrossEntropyCache(probs, targets, weights, total)


def cross_entropy_backward(cache: CrossEntropyCache) -> np.ndarray:
    """Gradient of the mean loss with respect to the logits. Consumes the cache's buffer."""
    d = cache.probs
    d[np.arange(d.shape[0]), cache.targets] -= 1
    if cache.weights is None:
        d /= d.dtype.type(cache.total_weight)
    else:
        d *= (cache.weights / cache.total_weight).astype(d.dtype)[:, None]
    return d
