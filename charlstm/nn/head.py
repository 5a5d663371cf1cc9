"""The output layer: a linear map to vocabulary scores and the softmax cross-entropy loss.

Shapes, with N = T*B rows predicted at once:
    x (N, H)   W (H, V)   b (V,)   logits (N, V)   targets (N,) ids   weights (N,) or None
(the head itself reads x feature-major, (T, H, B), as the layers below write it)

    p = softmax(x W + b)
    loss = sum_n w_n * -log p[n, target_n] / sum_n w_n       (w = 1 when no weights are given)
    dlogits = w_n * (p - onehot(target)) / sum_n w_n

Weights let the last, ragged chunk of a pass over the data count only its real symbols.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.nn.workspace import Workspace, empty


class CrossEntropyCache(NamedTuple):
    probs: np.ndarray         # (N, V); the backward pass turns it into dlogits in place
    targets: np.ndarray       # (N,)
    weights: np.ndarray | None
    total_weight: float


class HeadCache(NamedTuple):
    top: np.ndarray           # (T, H, B) the head's input: the top layer's outputs, after dropout


def head_forward(top, W, b, workspace: Workspace | None = None):
    """Scores for the next symbol: top (T, H, B) feature-major (see nn/cells/lstm.py), W (H, V),
    b (V,) -> (logits (T*B, V), one row per (t, b) in that order, cache)."""
    T, H, B = top.shape
    logits = empty(workspace, "logits", (T, B, W.shape[1]), W.dtype)
    np.matmul(top.transpose(0, 2, 1), W, out=logits)            # per step (B, H) x (H, V)
    logits = logits.reshape(T * B, W.shape[1])
    logits += b
    return logits, HeadCache(top)


def head_backward(dlogits, cache: HeadCache, W, top_workspace: Workspace | None = None,
                  dx_workspace: Workspace | None = None):
    """(dtop (T, H, B), dW (H, V), db (V,)) from dlogits (T*B, V).

    The input is first reordered to (H, T*B) so that dW is one product; the reordered copy lives
    in `top_workspace`'s buffer "dx" and dtop in `dx_workspace`'s (the stack lends the head the
    two buffers its layers take turns with, see model/stack.py).
    """
    T, H, B = cache.top.shape
    dtype = cache.top.dtype
    top_cols = empty(top_workspace, "dx", (H, T, B), dtype)
    np.copyto(top_cols, cache.top.transpose(1, 0, 2))                                # columns (t, b)
    dW = top_cols.reshape(H, T * B) @ dlogits
    db = dlogits.sum(axis=0)
    dtop = empty(dx_workspace, "dx", (T, H, B), dtype)
    np.matmul(W, dlogits.reshape(T, B, -1).transpose(0, 2, 1), out=dtop)   # (T, H, B)
    return dtop, dW, db


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log softmax, stable for large scores."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


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
        d *= (cache.weights.astype(d.dtype) / cache.total_weight)[:, None]   # in the model's precision
    return d
