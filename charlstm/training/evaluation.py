"""Held-out loss: the mean cross-entropy of predicting each symbol from the symbols before it.

With streams=1 this is exact: one pass from a zero state over the whole text, the state carried
from chunk to chunk. With streams=B the text is cut into B contiguous parts read in parallel, each
from a zero state; only the first few symbols of each part lose their left context, so the figure
is a close, much faster estimate (training uses it for its periodic validation).
"""

from __future__ import annotations

import math

import numpy as np

from charlstm.data.streams import make_streams
from charlstm.errors import CharlstmError
from charlstm.model import ModelConfig, forward, zero_state
from charlstm.nn.head import cross_entropy_forward

LN2 = math.log(2.0)


def evaluate_ids(params, config: ModelConfig, ids: np.ndarray, streams: int = 1,
                 seq_length: int = 256) -> tuple[float, int]:
    """(mean nats per predicted symbol, number of symbols predicted)."""
    if len(ids) < 2:
        raise CharlstmError("the text must hold at least two symbols to evaluate a prediction")
    streams = max(1, min(streams, len(ids) - 1))
    seq_length = max(1, min(seq_length, (len(ids) - 1) // streams))
    chunks = make_streams(ids, streams, seq_length)
    dtype = params["head.W"].dtype
    state = zero_state(config, streams, dtype)
    total, count = 0.0, 0.0
    for index in range(chunks.chunks_per_pass):
        inputs, targets, weights = chunks.chunk(index)
        logits, state, _ = forward(params, config, inputs.astype(np.intp), state)
        w = None if weights is None else weights.reshape(-1)
        loss, _ = cross_entropy_forward(logits, targets.reshape(-1).astype(np.intp), w)
        n = float(targets.size if w is None else w.sum())
        total += loss * n
        count += n
    return total / count, int(count)


def nats_to_bits(nats: float) -> float:
    return nats / LN2
