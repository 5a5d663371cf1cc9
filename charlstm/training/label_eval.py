"""How well a classifier or a tagger labels examples: its probabilities over a set of examples,
the mean cross-entropy, and the figures a person reads (accuracy, each label's precision and
recall, the confusion table).

For a tagger every position of every example is one item; for a classifier every example is.
With C the confusion table (C[i, j]: items whose true label is i and predicted label j):
    accuracy      = trace(C) / sum(C)
    precision[j]  = C[j, j] / sum_i C[i, j]     of the items predicted j, the share that are j
    recall[i]     = C[i, i] / sum_j C[i, j]     of the items that are i, the share predicted i
    support[i]    = sum_j C[i, j]
A precision or recall over no items is None (null in JSON, "-" in a table), never 0 or NaN.
"""

from __future__ import annotations

import numpy as np

from charlstm.interrupts import checkpoint
from charlstm.model import SequenceConfig, classify_probs, tag_probs
from charlstm.training.label_batches import pad, sorted_batches

TINY = 1e-12        # the least probability a log is taken of: a loss stays finite when a model is sure and wrong


def predict_probs(params: dict, config: SequenceConfig, ids: list[np.ndarray], batch_size: int):
    """Each example's label probabilities, without dropout, in the examples' order: (N, L) for a
    classifier, a list of (length, L) arrays for a tagger. Reads batches sorted by length; a
    stop asked for (Ctrl-C during a training run) is heard after each batch."""
    lengths = np.array([len(x) for x in ids], dtype=np.int64)
    tagger = config.task == "tag"
    out = [None] * len(ids) if tagger else np.zeros((len(ids), config.num_labels))
    for index in sorted_batches(lengths, batch_size):
        batch_ids, batch_lengths = pad(ids, index), lengths[index]
        if tagger:
            probs = tag_probs(params, config, batch_ids, batch_lengths)          # (T, B, L)
            for b, i in enumerate(index):
                out[i] = probs[:batch_lengths[b], b]
        else:
            out[index] = classify_probs(params, config, batch_ids, batch_lengths)
        checkpoint()
    return out


def truth_and_guess(labels, probs) -> tuple[np.ndarray, np.ndarray, float]:
    """(true labels, predicted labels, mean cross-entropy in nats) over every item. labels and
    probs: (N,) and (N, L) for a classifier; a list of (length,) and one of (length, L) for a tagger."""
    if isinstance(labels, list):
        truth = np.concatenate(labels).astype(np.int64)
        probs = np.concatenate(probs)
    else:
        truth = np.asarray(labels, dtype=np.int64)
    loss = float(-np.log(np.maximum(probs[np.arange(len(truth)), truth], TINY)).mean())
    return truth, probs.argmax(axis=1), loss


def confusion(truth: np.ndarray, guess: np.ndarray, num_labels: int) -> np.ndarray:
    """(L, L) int64: C[i, j] counts items of true label i predicted j."""
    return np.bincount(truth * num_labels + guess, minlength=num_labels * num_labels).reshape(num_labels, num_labels)


def figures(table: np.ndarray, names, items: str = "examples") -> dict:
    """The figures of a confusion table (see the module docstring) as a JSON-ready record:
    {"accuracy", items (the number of items: "examples", "characters"), "labels": {name:
    {"precision", "recall", "support"}}, "confusion", "label_names"}."""
    table = np.asarray(table, dtype=np.int64)
    total = int(table.sum())
    hits = np.diag(table)
    predicted, actual = table.sum(axis=0), table.sum(axis=1)

    def share(part, whole):
        return None if whole == 0 else float(part / whole)

    labels = {name: {"precision": share(hits[k], predicted[k]), "recall": share(hits[k], actual[k]),
                     "support": int(actual[k])} for k, name in enumerate(names)}
    return {"accuracy": share(hits.sum(), total), items: total, "labels": labels,
            "confusion": table.tolist(), "label_names": list(names)}


def figure_lines(record: dict, items: str = "examples") -> list[str]:
    """A short table of figures(record, items=items): accuracy, each label's precision, recall and support, and the
    confusion table (rows: the true label, columns: the predicted one)."""
    names = record["label_names"]
    width = max(9, *(len(n) for n in names))

    def number(x):
        return "-" if x is None else f"{x:.3f}"

    accuracy = record["accuracy"]
    right = int(np.trace(np.array(record["confusion"]))) if names else 0
    lines = [f"accuracy {number(accuracy)} ({right:,} of {record[items]:,} {items})",
             f"{'label':<{width}}  precision  recall  support"]
    for name in names:
        f = record["labels"][name]
        lines.append(f"{name:<{width}}  {number(f['precision']):>9}  {number(f['recall']):>6}  {f['support']:>7,}")
    cell = max(7, *(len(n) for n in names), *(len(f"{c:,}") for row in record["confusion"] for c in row))
    lines.append("confusion (rows: true label, columns: predicted)")
    lines.append(" " * width + "".join(f"  {n:>{cell}}" for n in names))
    for name, row in zip(names, record["confusion"]):
        lines.append(f"{name:<{width}}" + "".join(f"  {c:>{cell},}" for c in row))
    return lines


__all__ = ["predict_probs", "truth_and_guess", "confusion", "figures", "figure_lines", "TINY"]
