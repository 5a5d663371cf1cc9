"""Truncated-BPTT streams: offsets into one id array, gathered chunk by chunk.

Truncated BPTT the way char-rnn does it: the training ids are cut into `batch_size` contiguous
streams, one per batch row; step k reads symbols [k*T, (k+1)*T) of every stream and predicts the
symbol after each. The model's final state after one chunk is the initial state of the next, so
the network sees each stream as one long text; the gradient stops at the chunk boundary.

Streams differ in length by at most one symbol, so every symbol of the training split is
predicted exactly once per pass: when the length does not divide evenly, the last chunk of a
pass is shorter, and rows that have run out are masked with a zero weight (and read as id 0).

A stream is only an offset and a length: each chunk is gathered from the id array when it is
asked for, so the array can be a memory map of a file larger than memory (a data directory's
ids.npy). Pages of a memory map that were read are handed back every few steps (see
`release_pages`), so resident memory stays bounded however long the run reads.

The ids of a model conditioned on labels are joint ids (model/stack.joint_ids: each input symbol
under its label); its targets are their symbols, what the head predicts (`per_label` below: the
V symbols of each label's block of ids).
"""

from __future__ import annotations

import mmap

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.model import symbol_ids

# Hand a memory map's pages back once chunks may have mapped about this many bytes of it: the
# cost is nothing (one madvise call, and pages read again come from the page cache), and what a
# corpus adds to a run's memory stays a few MB (with 16 MB: 12 to 22 MB more on 8 GB than on 10 MB).
RELEASE_BYTES = 4 << 20
_PAGE = mmap.PAGESIZE
_FAULT_AROUND = 64 << 10    # a page fault on a file map maps this much around it (Linux's default)


def release_pages(ids) -> None:
    """Drop the pages of a memory-mapped id array from this process's resident memory.

    The data stays in the operating system's page cache, so reading it again costs a minor page
    fault; without this, every page a long run has read would count as the process's own.
    Arrays that are not memory maps are left alone."""
    # numpy.load(mmap_mode="r") returns a numpy.memmap whose _mmap is the mmap object; slices
    # of it share that object. madvise is the only way to give the pages back without unmapping.
    mapped = getattr(ids, "_mmap", None)
    if mapped is not None and hasattr(mapped, "madvise"):
        try:
            mapped.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):   # a closed map, or a platform without it: only memory is at stake
            pass


def split_ids(ids, val_fraction: float):
    """(train, validation): the last val_fraction of the ids is held out (views, not copies)."""
    if not 0.0 <= val_fraction < 1.0:
        raise CharlstmError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    n_val = int(len(ids) * val_fraction)
    if val_fraction > 0 and n_val < 2:
        raise CharlstmError(f"the corpus ({len(ids)} symbols) is too short to hold out "
                            f"{val_fraction:g} of it for validation")
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


class Streams:
    """batch_size streams over an id array, read chunk by chunk.

    Stream k reads ids[starts[k] : starts[k] + lengths[k] + 1]: lengths[k] inputs and as many
    targets. vocab_size, when given, is checked against every chunk read (an id file can be
    damaged); source names the array in that message. per_label: when the ids are joint ids of a
    model conditioned on labels, its vocabulary size V, and the targets are the ids' symbols
    (vocab_size is then the model's input_rows, N·V).
    """

    def __init__(self, ids, starts: np.ndarray, lengths: np.ndarray, seq_length: int,
                 vocab_size: int | None = None, source: str = "the ids", per_label: int | None = None):
        self.ids = ids
        self.per_label = per_label
        self.starts = np.asarray(starts, dtype=np.int64)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.seq_length = seq_length
        self.source = source
        # only an id type that can hold ids past the vocabulary needs the check
        self._limit = vocab_size if vocab_size is not None and np.iinfo(ids.dtype).max >= vocab_size else None
        self._touched = 0          # bytes of a memory map read since its pages were last released

    @property
    def batch_size(self) -> int:
        return len(self.starts)

    @property
    def chunks_per_pass(self) -> int:
        return -(-int(self.lengths.max()) // self.seq_length)

    def chunk(self, index: int):
        """Chunk `index` of a pass: (inputs (T, B), targets (T, B), weights (T, B) or None)."""
        start = index * self.seq_length
        stop = min(start + self.seq_length, int(self.lengths.max()))
        if start >= stop:
            raise IndexError(f"chunk {index} is past the end of the pass")
        columns = np.arange(start, stop + 1)
        where = self.starts[:, None] + columns[None, :]            # (B, T + 1) positions in ids
        ragged = stop > int(self.lengths.min())                    # only the end of a pass is ragged
        if ragged:
            inside = columns[None, :] <= self.lengths[:, None]
            values = np.asarray(self.ids[np.where(inside, where, 0)])
            values[~inside] = 0
        else:
            values = np.asarray(self.ids[where])
        self._check(values, where)
        self._account(values)
        inputs = np.ascontiguousarray(values[:, :-1].T)
        targets = np.ascontiguousarray(values[:, 1:].T)
        if self.per_label is not None:
            targets = symbol_ids(targets, self.per_label)
        weights = None
        if ragged:
            positions = np.arange(start, stop)[:, None]
            weights = (positions < self.lengths[None, :]).astype(np.float32)
        return inputs, targets, weights

    def _check(self, values: np.ndarray, where: np.ndarray) -> None:
        if self._limit is not None and values.size and int(values.max()) >= self._limit:
            at = np.unravel_index(int(np.argmax(values >= self._limit)), values.shape)
            raise CharlstmError(f"{self.source}: holds id {int(values[at])} at position {int(where[at]):,}, "
                                f"beyond the vocabulary's {self._limit} symbols; the file is damaged "
                                "(encode the corpus again)")

    def _account(self, values: np.ndarray) -> None:
        if getattr(self.ids, "_mmap", None) is None:
            return
        rows, width = values.shape
        self._touched += rows * (width * values.itemsize + 2 * _FAULT_AROUND)   # at most this much mapped
        if self._touched >= RELEASE_BYTES:
            release_pages(self.ids)
            self._touched = 0


def make_streams(ids, batch_size: int, seq_length: int, vocab_size: int | None = None,
                 source: str = "the ids", per_label: int | None = None) -> Streams:
    """Cut the training ids into batch_size contiguous streams (see the module docstring)."""
    if batch_size < 1 or seq_length < 1:
        raise CharlstmError("batch size and sequence length must be at least 1")
    n_targets = len(ids) - 1
    if n_targets < batch_size * seq_length:
        raise CharlstmError(
            f"the training text has {len(ids)} symbols, fewer than one batch needs "
            f"(batch size {batch_size} x sequence length {seq_length} + 1); use a longer corpus "
            "or lower --batch-size / --seq-length")
    base, extra = divmod(n_targets, batch_size)
    lengths = np.full(batch_size, base, dtype=np.int64)
    lengths[:extra] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return Streams(ids, starts, lengths, seq_length, vocab_size, source, per_label)


def spread_streams(ids, batch_size: int, seq_length: int, symbols: int, vocab_size: int | None = None,
                   source: str = "the ids", per_label: int | None = None) -> Streams:
    """About `symbols` predictions spread over the whole of ids: batch_size streams of equal
    length, one at the start of each of batch_size equal parts. When ids holds no more than
    that, the contiguous streams of make_streams, which predict every symbol once."""
    n_targets = len(ids) - 1
    per_stream = max(1, symbols // batch_size)
    part = len(ids) // batch_size
    if n_targets <= symbols or per_stream + 1 > part:
        return make_streams(ids, batch_size, seq_length, vocab_size, source, per_label)
    starts = np.arange(batch_size, dtype=np.int64) * part
    lengths = np.full(batch_size, per_stream, dtype=np.int64)
    return Streams(ids, starts, lengths, min(seq_length, per_stream), vocab_size, source, per_label)


__all__ = ["Streams", "make_streams", "spread_streams", "split_ids", "release_pages", "RELEASE_BYTES"]
