"""A generator conditioned on a label (model/stack.py, "Labels"): the corpus it trains on, and the
probability of a text under each label, which makes it a classifier by Bayes' rule.

The corpus. A labelled file (data/labelled.py) becomes one text: each example's text followed by
a newline, the examples in an order shuffled with the run's seed (a file sorted by label would
otherwise train on one label for a long stretch, and hold out only the last one), with the label
of each symbol beside it. From there the run is the one of any corpus (streams, carried state,
held-out tail, checkpoints, resume), over joint ids (model/stack.joint_ids).

Each input symbol is read under the label of the symbol it predicts. Inside an example that is
the example's own; the newline that ends one example is read under the next one's label, since
what it predicts is that example's first symbol. So every example is learnt as "after a newline,
under its label", which is how sampling starts (after a newline, unprinted) and how the
classifier reads a text. (The first example of the corpus has no newline before it: its first
symbol is context only.)

The classifier. With p(text | label) the model's probability of the text followed by its newline,
read from a zero state after a newline under that label, and p(label) each label's share of the
training examples (LabelSet.priors),

    p(label | text) = p(text | label) p(label) / sum over labels of the same,

computed from log-probabilities (a text of a few hundred symbols has a probability far below
the smallest float). Every text is scored under every label, the (text, label) pairs read as
the streams of a batch, MAX_STREAMS at a time and texts of like length together, not one by one.
"""

from __future__ import annotations

import hashlib

import numpy as np

from charlstm import validate
from charlstm.data.labelled import Labelled, escape
from charlstm.data.vocab import Vocab, split_symbols
from charlstm.errors import CharlstmError, TextError
from charlstm.interrupts import checkpoint
from charlstm.model import LabelSet, ModelConfig, forward, input_table, joint_ids, label_offset, zero_state
from charlstm.nn.head import log_softmax

END = "\n"                 # what follows every example, and what each is read after
MAX_STREAMS = 128          # (text, label) pairs read at once
CHUNK = 64                 # steps read at once, the state carried: one chunk's caches are all it holds


def joined_examples(data: Labelled, seed: int) -> tuple[list[str], np.ndarray]:
    """(each example's text followed by END, each one's label), in the order the run reads them:
    shuffled with `seed` (see the module docstring)."""
    order = np.random.default_rng(seed).permutation(len(data))
    return [data.texts[i] + END for i in order], data.targets[order]


def label_set(data: Labelled) -> LabelSet:
    """The labels of a labelled corpus and how many examples each has (the classifier's prior)."""
    counts = data.counts()
    return LabelSet(tuple(counts), tuple(counts.values()))


def corpus_digest(data: Labelled) -> tuple[str, int]:
    """(sha256, bytes) of the examples written as label<TAB>text lines: what a run read, whatever
    form (a file, a folder per label) it came in."""
    sha = hashlib.sha256()
    size = 0
    for text, target in zip(data.texts, data.targets.tolist()):
        line = f"{escape(data.labels[target])}\t{escape(text)}\n".encode("utf-8", "surrogatepass")
        sha.update(line)
        size += len(line)
    return "sha256:" + sha.hexdigest(), size


def labelled_ids(pieces: list[str], labels: np.ndarray, vocab_size: int, encode) -> np.ndarray:
    """The joint ids of the joined pieces, each symbol under the label of the symbol after it (see
    the module docstring). encode(piece) -> its symbol ids. Each piece is encoded alone: a
    grapheme never spans the break after a newline, so this is the joined text's segmentation."""
    parts = [np.asarray(encode(piece), dtype=np.int64) for piece in pieces]
    symbols = np.concatenate(parts)
    of_symbol = np.repeat(np.asarray(labels, dtype=np.int64), [len(p) for p in parts])
    read_under = np.append(of_symbol[1:], of_symbol[-1:])      # the label of what each symbol predicts
    ids = joint_ids(symbols, read_under, vocab_size)
    return ids.astype(np.min_scalar_type(int(ids.max())))


# --- scoring texts under labels ----------------------------------------------------------------------

def log_likelihoods(params, config: ModelConfig, vocab: Vocab, texts, rows,
                    skip_unknown: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(log p (N, R) in nats, symbols (N,)): log p(text n followed by END | label rows[n, r]),
    each text read from a zero state after END under that label, as the run trained (see the
    module docstring); symbols: how many symbols each scored text holds (END included).

    texts (N) strs; rows (N, R) label rows. The (text, label) pairs are read as streams of one
    batch, MAX_STREAMS at a time, texts of like length together (sorted), padded with weight 0.
    A symbol the vocabulary lacks is its unknown symbol; without one it is an error, or, with
    skip_unknown, left out of the text (it would have probability 0 under every label).
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(len(texts), -1)
    for row in np.unique(rows):
        label_offset(config, int(row))              # a row the model has, or one line
    start = vocab.id_of(END)
    if start is None:
        raise CharlstmError("the model's vocabulary has no line break: it was not trained on labelled examples "
                            "(each ends with one)")
    encoded = []
    for n, text in enumerate(texts):
        if not isinstance(text, str):
            raise TextError(f"text {n + 1} is a {type(text).__name__}, not a str")
        if skip_unknown and vocab.unk is None:
            text = "".join(symbol for symbol in split_symbols(text, vocab.unit) if vocab.id_of(symbol) is not None)
        encoded.append(np.asarray(vocab.encode(text + END, unknown="unk"), dtype=np.int64))
    symbols = np.array([len(e) for e in encoded], dtype=np.int64)
    N, R = rows.shape
    pairs = sorted(((n, r) for n in range(N) for r in range(R)), key=lambda p: (symbols[p[0]], p))
    table = input_table(params, config) if config.embedding_size else None     # once for every batch
    out = np.zeros((N, R))
    for first in range(0, len(pairs), MAX_STREAMS):
        batch = pairs[first:first + MAX_STREAMS]
        out_rows = _batch_log_probs(params, config, table, [encoded[n] for n, _ in batch],
                                    [int(rows[n, r]) for n, r in batch], start)
        for (n, r), value in zip(batch, out_rows):
            out[n, r] = value
    return out, symbols


def _batch_log_probs(params, config: ModelConfig, table, targets: list[np.ndarray], rows: list[int],
                     start: int) -> np.ndarray:
    """(B,) the summed log-probability of each target sequence, read after `start` under its row."""
    B, T, V = len(targets), max(len(t) for t in targets), config.vocab_size
    symbols = np.zeros((T + 1, B), dtype=np.int64)     # column b: start, then its targets, then padding
    symbols[0] = start
    weights = np.zeros((T, B))
    for b, t in enumerate(targets):
        symbols[1:len(t) + 1, b] = t
        weights[:len(t), b] = 1
    inputs = joint_ids(symbols[:-1], np.array(rows), V)      # each stream under its label, every step
    state = zero_state(config, B, params["head.W"].dtype)
    total = np.zeros(B)
    for t0 in range(0, T, CHUNK):
        checkpoint()                      # many texts answer Ctrl-C within a chunk
        t1 = min(T, t0 + CHUNK)
        logits, state, _ = forward(params, config, inputs[t0:t1].astype(np.intp), state, table=table)
        logp = log_softmax(logits.astype(np.float64)).reshape(t1 - t0, B, V)
        picked = np.take_along_axis(logp, symbols[t0 + 1:t1 + 1, :, None], axis=2)[:, :, 0]
        total += (picked * weights[t0:t1]).sum(axis=0)
    return total


def classify_bayes(model, texts) -> np.ndarray:
    """(N, num_labels) p(label | text) for each text by Bayes' rule (see the module docstring).
    model: anything with .params, .config, .vocab and .labels (a LabelSet) of a model
    conditioned on labels. A symbol no training example had is left out of the text: it tells no
    label from another (log_likelihoods' skip_unknown)."""
    config, labels = model.config, getattr(model, "labels", None)
    if not config.num_labels or labels is None:
        raise CharlstmError("classifying by Bayes' rule needs a model conditioned on labels (trained on a "
                            "labelled file with --labels)")
    texts = list(texts)
    if not texts:
        return np.zeros((0, config.num_labels))
    rows = np.tile(np.arange(config.num_labels), (len(texts), 1))
    log_p, _ = log_likelihoods(model.params, config, model.vocab, texts, rows, skip_unknown=True)
    with np.errstate(divide="ignore"):             # a label no example had: prior 0, posterior 0
        joint = log_p + np.log(labels.priors())
    joint -= joint.max(axis=1, keepdims=True)
    posterior = np.exp(joint)
    return posterior / posterior.sum(axis=1, keepdims=True)


def evaluate_examples(params, config: ModelConfig, vocab: Vocab, labels: LabelSet, data: Labelled
                      ) -> tuple[float, int]:
    """(mean nats per symbol, symbols) of labelled examples, each read under its own label as the
    run trained (its text and END, after END): the loss of a labelled file under the model."""
    missing = [k for k, name in enumerate(data.labels) if name not in labels.names and (data.targets == k).any()]
    if missing:
        where = data.sources[int(np.argmax(data.targets == missing[0]))]
        raise CharlstmError(f"{where}: the label {validate.shown(data.labels[missing[0]])} is not one of the "
                            f"model's labels ({labels.listed()})")
    rows = np.array([labels.index(data.labels[k]) for k in data.targets.tolist()], dtype=np.int64)
    log_p, symbols = log_likelihoods(params, config, vocab, list(data.texts), rows[:, None])
    return float(-log_p.sum() / symbols.sum()), int(symbols.sum())


__all__ = ["END", "joined_examples", "label_set", "corpus_digest", "labelled_ids",
           "log_likelihoods", "classify_bayes", "evaluate_examples"]
