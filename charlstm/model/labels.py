"""The label heads over model/sequence.py's stack: a classifier (one label per example, read from
pooled outputs) and a tagger (one label per position), their losses and their predictions.

Shapes, with T steps, B examples, F features per position (H, or 2H for both directions) and
N = num_labels:
    outputs (T, F, B)   lengths (B,)   pooled (B, F)   head.W (F, N)   head.b (N,)

Pooling is a weighted sum over time, pooled[b, f] = sum_t weights[t, f, b] * outputs[t, f, b],
with weights that are 0 at every position t >= lengths[b]:
    "last"  the step that has read the whole example: t = length-1 for the forward features,
            t = 0 for the reverse ones (what PyTorch's h_n holds for each direction)
    "mean"  1/length at every t < length
Its backward pass is the same weights times the incoming gradient, so the padding gets none.

    classifier: p = softmax(pooled W + b)            loss = mean over examples of -log p[target]
    tagger:     p[t, b] = softmax(outputs[t, :, b] W + b)
                loss = sum over t < length of -log p[t, b, tag] / (number of such positions)
Both reuse nn/head.py: the tagger's positions are its rows (t, b) with weight 0 past each
example's end; the classifier's pooled batch is one step of it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.model.sequence import (SequenceConfig, check_batch, counted, sequence_backward,
                                     sequence_forward)
from charlstm.nn.head import (cross_entropy_backward, cross_entropy_forward, head_backward, head_forward,
                              log_softmax)


class PoolCache(NamedTuple):
    weights: np.ndarray        # (T, F, B) each output's share of the pooled vector


def pooling_weights(lengths: np.ndarray, T: int, F: int, how: str, bidirectional: bool = False) -> np.ndarray:
    """(T, F, B) the weight of each output in the pooled vector (see the module docstring); the
    last F/2 features are the reverse direction's when bidirectional."""
    lengths = np.asarray(lengths)
    B = lengths.shape[0]
    t = np.arange(T)[:, None]                                        # (T, 1) against (B,)
    # as large as the outputs, and one rule for both poolings and their backward pass: next to
    # the cells' T steps of products, its cost does not show
    weights = np.zeros((T, F, B))
    if how == "mean":
        weights[:] = (counted(lengths, T) / lengths)[:, None, :]
    elif how == "last":
        forward = F // 2 if bidirectional else F
        weights[:, :forward] = (t == lengths - 1)[:, None, :]
        weights[:, forward:] = (t == 0)[:, None, :]                 # the reverse direction ends at t = 0
    else:
        raise CharlstmError(f"unknown pooling {how!r}: use last or mean")
    return weights


def pool_forward(outputs: np.ndarray, lengths: np.ndarray, how: str, bidirectional: bool = False):
    """outputs (T, F, B), lengths (B,) -> (pooled (B, F), cache); how is "last" or "mean"."""
    T, F, B = outputs.shape
    weights = pooling_weights(lengths, T, F, how, bidirectional).astype(outputs.dtype)
    pooled = np.einsum("tfb,tfb->bf", weights, outputs)
    return pooled, PoolCache(weights)


def pool_backward(dpooled: np.ndarray, cache: PoolCache) -> np.ndarray:
    """dpooled (B, F) -> doutputs (T, F, B): 0 at every position the pooling did not read."""
    return cache.weights * dpooled.T[None]


# --- the losses ----------------------------------------------------------------------------------

def check_task(config: SequenceConfig, task: str) -> None:
    if config.task != task:
        raise CharlstmError(f"this model's task is {config.task}, not {task}")


def check_labels(config: SequenceConfig, task: str, ids, lengths, labels, shape: tuple) -> None:
    """Refuse a model of another task, or a batch or labels that do not fit the model (see
    sequence.check_batch); labels past an example's end are not read, so not checked."""
    check_task(config, task)
    check_batch(config, ids, lengths)
    labels = np.asarray(labels)
    if labels.shape != shape or not np.issubdtype(labels.dtype, np.integer):
        raise CharlstmError(f"the labels must be a {shape} array of whole numbers, got shape {labels.shape}")
    read = labels if task == "classify" else labels[counted(np.asarray(lengths), shape[0])]
    if read.size and (read.min() < 0 or read.max() >= config.num_labels):
        raise CharlstmError(f"labels must be 0..{config.num_labels - 1}")


def classify_loss(params: dict, config: SequenceConfig, ids: np.ndarray, lengths: np.ndarray,
                  targets: np.ndarray, masks=None):
    """Mean cross-entropy of one label per example, and its gradients.

    ids (T, B) right-padded; lengths (B,); targets (B,) labels; masks: model/sequence.py's
    dropout masks or None. Returns (loss in nats, grads with params' keys, probs (B, N)).
    """
    check_labels(config, "classify", ids, lengths, targets, (ids.shape[1],))
    W, b = params["head.W"], params["head.b"]
    outputs, cache = sequence_forward(params, config, ids, lengths, masks)
    pooled, pool_cache = pool_forward(outputs, lengths, config.pooling, config.bidirectional)
    logits, head_cache = head_forward(pooled.T[None], W, b)         # the pooled batch as one step
    loss, ce = cross_entropy_forward(logits, targets)
    probs = ce.probs.copy()            # the backward pass turns ce.probs into dlogits in place
    dtop, dW, db = head_backward(cross_entropy_backward(ce), head_cache, W)
    grads = sequence_backward(pool_backward(dtop[0].T, pool_cache), params, config, cache)
    grads.update({"head.W": dW, "head.b": db})
    return loss, grads, probs


def tag_loss(params: dict, config: SequenceConfig, ids: np.ndarray, lengths: np.ndarray,
             tags: np.ndarray, masks=None):
    """Mean cross-entropy of one label per position, over the positions t < lengths[b] only.

    ids, tags (T, B); lengths (B,); masks as for classify_loss. Tags past an example's end are
    never read (any value, PyTorch's ignore_index -100 too). Returns (loss in nats, grads with
    params' keys, probs (T, B, N), zero past each example's end).
    """
    T, B = ids.shape
    check_labels(config, "tag", ids, lengths, tags, (T, B))
    W, b = params["head.W"], params["head.b"]
    outputs, cache = sequence_forward(params, config, ids, lengths, masks)
    logits, head_cache = head_forward(outputs, W, b)                # rows (t, b)
    weights = counted(lengths, T)
    targets = np.where(weights, tags, 0).reshape(-1)                 # padding: a label that weighs 0
    loss, ce = cross_entropy_forward(logits, targets, weights.reshape(-1).astype(logits.dtype))
    probs = ce.probs.reshape(T, B, -1) * weights[:, :, None]         # a copy, before backward reuses it
    doutputs, dW, db = head_backward(cross_entropy_backward(ce), head_cache, W)
    grads = sequence_backward(doutputs, params, config, cache)
    grads.update({"head.W": dW, "head.b": db})
    return loss, grads, probs


# --- predictions ---------------------------------------------------------------------------------

def classify_probs(params: dict, config: SequenceConfig, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(B, N) each example's label probabilities, without dropout."""
    check_task(config, "classify")
    outputs, _ = sequence_forward(params, config, ids, lengths)
    pooled, _ = pool_forward(outputs, lengths, config.pooling, config.bidirectional)
    logits, _ = head_forward(pooled.T[None], params["head.W"], params["head.b"])
    return np.exp(log_softmax(logits))


def tag_probs(params: dict, config: SequenceConfig, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(T, B, N) each position's label probabilities, without dropout; zero past each example's end."""
    check_task(config, "tag")
    T, B = ids.shape
    outputs, _ = sequence_forward(params, config, ids, lengths)
    logits, _ = head_forward(outputs, params["head.W"], params["head.b"])
    return np.exp(log_softmax(logits)).reshape(T, B, -1) * counted(lengths, T)[:, :, None]


__all__ = ["PoolCache", "pooling_weights", "pool_forward", "pool_backward", "check_task", "check_labels",
           "classify_loss", "tag_loss", "classify_probs", "tag_probs"]
