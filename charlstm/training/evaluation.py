"""Held-out loss: the mean cross-entropy of predicting each symbol from the symbols before it.

With streams=1 this is exact: one pass from a zero state over the whole text, the state carried
from chunk to chunk (`evaluate_blocks` does the same over ids that arrive block by block, for a
text of any length). With streams=B the text is cut into B contiguous parts read in parallel,
each from a zero state; only the first few symbols of each part lose their left context, so the
figure is a close, much faster estimate. Training uses it for its periodic validation, over at
most `val_symbols` predictions: B streams spread over the whole held-out split when it is longer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import numpy as np

from charlstm.data.blocks import list_inputs
from charlstm.data.datadir import ReadOptions, ids_in, is_data_dir, open_data_dir
from charlstm.data.encode import ids_with
from charlstm.data.streams import Streams, make_streams, spread_streams
from charlstm.errors import TextError
from charlstm.interrupts import checkpoint
from charlstm.model import ModelConfig, as_one_hot, forward, input_table, unconditioned, zero_state
from charlstm.nn.head import cross_entropy_forward
from charlstm.nn.workspace import Workspace

LN2 = math.log(2.0)


def evaluate_ids(params, config: ModelConfig, ids: np.ndarray, streams: int = 1,
                 seq_length: int = 256) -> tuple[float, int]:
    """(mean nats per predicted symbol, number of symbols predicted). ids: joint ids
    (model/stack.joint_ids) for a model conditioned on labels, each predicting its successor's symbol."""
    if len(ids) < 2:
        raise TextError(f"the text holds {len(ids)} symbol{'s' * (len(ids) != 1)}; it must hold at least two "
                        "to evaluate a prediction")
    streams = max(1, min(streams, len(ids) - 1))
    seq_length = max(1, min(seq_length, (len(ids) - 1) // streams))
    return evaluate_streams(params, config, make_streams(ids, streams, seq_length, per_label=per_label_of(config)))


def per_label_of(config: ModelConfig) -> int | None:
    """The streams' per_label for this model (data/streams.py): V when it reads joint ids."""
    return config.vocab_size if config.num_labels else None


def evaluate_streams(params, config: ModelConfig, streams: Streams) -> tuple[float, int]:
    """(mean nats per prediction, number of predictions) over one pass of the streams, each read
    from a zero state."""
    params, config = as_one_hot(params, config)     # an embedding's input table, once for the pass
    table = input_table(params, config) if config.num_labels else None      # ... or the labels' tables
    dtype = params["head.W"].dtype
    state = zero_state(config, streams.batch_size, dtype)
    total, count = 0.0, 0.0
    workspace = Workspace()     # the chunk's activations, reused: 1.3x faster than fresh arrays
    for index in range(streams.chunks_per_pass):
        checkpoint()              # a large split answers Ctrl-C within a chunk
        inputs, targets, weights = streams.chunk(index)
        logits, state, _ = forward(params, config, inputs.astype(np.intp), state, workspace=workspace, table=table)
        w = None if weights is None else weights.reshape(-1)
        loss, _ = cross_entropy_forward(logits, targets.reshape(-1).astype(np.intp), w)
        n = float(targets.size if w is None else w.sum())
        total += loss * n
        count += n
    return total / count, int(count)


def validation_streams(ids, batch_size: int, seq_length: int, val_symbols: int = 0,
                       per_label: int | None = None) -> Streams:
    """The streams of training's periodic estimate over the held-out ids: batch_size contiguous
    streams over all of them, or, when they hold more than val_symbols predictions (0: no bound),
    batch_size streams spread over the whole split that make about val_symbols predictions together.
    per_label: V when the ids are joint ids (data/streams.Streams)."""
    if val_symbols and len(ids) - 1 > val_symbols:
        return spread_streams(ids, batch_size, seq_length, val_symbols, per_label=per_label)
    streams = max(1, min(batch_size, len(ids) - 1))
    return make_streams(ids, streams, max(1, min(seq_length, (len(ids) - 1) // streams)), per_label=per_label)


def validation_loss(params, config: ModelConfig, ids, batch_size: int, seq_length: int,
                    val_symbols: int = 0) -> tuple[float, int]:
    """(mean nats, predictions) of training's periodic estimate (see validation_streams)."""
    return evaluate_streams(params, config, validation_streams(ids, batch_size, seq_length, val_symbols,
                                                               per_label_of(config)))


def evaluate_blocks(params, config: ModelConfig, blocks, seq_length: int = 256,
                    on_progress: Callable[[int], None] | None = None) -> tuple[float, int]:
    """evaluate_ids(ids, streams=1) over ids that arrive block by block (an iterable of 1-d
    arrays), with the same chunks and so the same figure, in memory that does not grow with the
    text. on_progress(n) is told the symbols read so far. The text is read without a label."""
    unconditioned(config, "evaluating a text file")
    params, config = as_one_hot(params, config)     # an embedding's input table, once for the pass
    dtype = params["head.W"].dtype
    state = zero_state(config, 1, dtype)
    total, count, read = 0.0, 0.0, 0
    pending = np.zeros(0, dtype=np.intp)           # symbols read, not yet an input of a chunk
    workspace = Workspace()
    for block in blocks:
        checkpoint()              # a big file answers Ctrl-C within a block
        pending = np.concatenate([pending, np.asarray(block, dtype=np.intp)])
        read += len(block)
        full = (len(pending) - 1) // seq_length * seq_length      # inputs of whole chunks
        for start in range(0, full, seq_length):
            total, count, state = _chunk_loss(params, config, pending[start:start + seq_length + 1], state,
                                              total, count, workspace)
        pending = pending[full:]
        if on_progress is not None:
            on_progress(read)
    if len(pending) >= 2:
        total, count, state = _chunk_loss(params, config, pending, state, total, count, workspace)
    if count == 0:
        raise TextError(f"the text holds {read} symbol{'s' * (read != 1)}; it must hold at least two "
                        "to evaluate a prediction")
    return total / count, int(count)


def evaluate_path(params, config: ModelConfig, vocab, path, seq_length: int = 256,
                  progress=None, encoding_errors: str = "strict") -> tuple[float, int]:
    """Exact loss (as evaluate_ids with streams=1) over a text file of any size or a data
    directory, read block by block. progress(stage, done, total): bytes of a file read, or
    symbols of a data directory. encoding_errors: how a text file's invalid bytes are read."""
    path = Path(path)
    if is_data_dir(path):
        data = open_data_dir(path, check_ids=False)
        blocks = ids_in(data, vocab)
        total = len(data.ids)
        on_symbols = None if progress is None else (lambda n: progress("evaluating", n, total))
        return evaluate_blocks(params, config, blocks, seq_length, on_symbols)
    blocks = ids_with(list_inputs([path]), vocab, ReadOptions(unit=vocab.unit, encoding_errors=encoding_errors),
                      progress=progress)
    return evaluate_blocks(params, config, blocks, seq_length)


def _chunk_loss(params, config, ids: np.ndarray, state, total: float, count: float, workspace=None):
    logits, state, _ = forward(params, config, ids[:-1, None], state, workspace=workspace)
    loss, _ = cross_entropy_forward(logits, ids[1:], None)
    n = float(len(ids) - 1)
    return total + loss * n, count + n, state


def nats_to_bits(nats: float) -> float:
    return nats / LN2
