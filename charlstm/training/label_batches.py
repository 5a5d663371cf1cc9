"""Examples for the labelling models as batches: a vocabulary, each example's symbols, stretches a
tagger reads, and batches of examples of similar length.

A batch is ids (T, B) with each example right-padded to the longest one (model/sequence.py reads
only each example's own positions, so what the padding holds changes nothing, but every padded
position still costs a step of the recurrence). Sorting examples by length and cutting the
sorted list into batches keeps that waste small: a batch holds neighbours in length. Each pass
shuffles twice with the run's generator, so that a seed means the same run: ties in length are
broken by a fresh permutation, and the batches are visited in a fresh order.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.data.vocab import UNK, Vocab, count_symbols, vocab_from_counts


def label_vocab(texts, unit: str = "grapheme", min_count: int = 1) -> Vocab:
    """The vocabulary of the training texts: symbols seen at least min_count times (rarer ones
    read as the unknown symbol, as train's vocabulary does), and the unknown symbol always, so that
    a text met later with a symbol training never saw is read, not refused."""
    counts = count_symbols("".join(texts), unit)     # one pass; a cluster across two texts costs nothing
    counts[UNK] += 0       # present with any count: vocab_from_counts then keeps a place for it
    return vocab_from_counts(counts, unit, min_count)


def encode_texts(vocab: Vocab, texts, max_length: int) -> tuple[list[np.ndarray], int]:
    """(the ids of each text's first max_length symbols, how many texts were longer and cut)."""
    ids, cut = [], 0
    for text in texts:
        symbols = vocab.encode(text, unknown="unk")
        if len(symbols) > max_length:
            symbols, cut = symbols[:max_length], cut + 1
        ids.append(symbols)
    return ids, cut


def cut_spans(text: str, max_length: int) -> list[tuple[int, int]]:
    """(start, end) of consecutive stretches covering text, each at most max_length characters
    and ending at a line end where one falls inside it (a longer line is cut where it must be):
    a tagger reads each stretch from a zero state, so it is better begun at a line's start."""
    spans, start = [], 0
    while start < len(text):
        end = min(len(text), start + max_length)
        if end < len(text):
            line_end = text.rfind("\n", start, end)
            if line_end >= 0:
                end = line_end + 1
        spans.append((start, end))
        start = end
    return spans


class Examples(NamedTuple):
    """Encoded examples. labels: (N,) one label each (a classifier's), or one (len,) array of
    labels per example (a tagger's)."""
    ids: list[np.ndarray]
    labels: np.ndarray | list[np.ndarray]
    lengths: np.ndarray            # (N,) symbols of each example

    @classmethod
    def of(cls, ids, labels) -> "Examples":
        return cls(list(ids), labels, np.array([len(x) for x in ids], dtype=np.int64))

    @property
    def per_position(self) -> bool:
        return isinstance(self.labels, list)


def training_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One pass: the indices of each batch, examples of similar length together, batches shuffled
    (see the module docstring)."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[k] for k in rng.permutation(len(batches))]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """The indices of each batch for reading every example once (evaluation, prediction): sorted
    by length, no randomness."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def pad(sequences, index: np.ndarray, fill: int = 0) -> np.ndarray:
    """(T, B) the sequences at `index`, time first, right-padded with `fill` to the longest."""
    chosen = [sequences[i] for i in index]
    out = np.full((max(len(s) for s in chosen), len(chosen)), fill, dtype=np.int64)
    for b, s in enumerate(chosen):
        out[:len(s), b] = s
    return out


def batch(examples: Examples, index: np.ndarray):
    """(ids (T, B), lengths (B,), labels (B,) or (T, B)) of the examples at `index`."""
    ids = pad(examples.ids, index)
    labels = pad(examples.labels, index) if examples.per_position else examples.labels[index]
    return ids, examples.lengths[index], labels


__all__ = ["label_vocab", "encode_texts", "cut_spans", "Examples", "training_batches", "sorted_batches", "pad",
           "batch"]
