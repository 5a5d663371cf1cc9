"""A run's corpus, found again after training: to tell a text given for it from the real one,
and to evaluate a checkpoint on exactly the part of its corpus the run held out.

A training run keeps its corpus's record (data/datadir.corpus_record: the SHA-256 and size of its
bytes, how it was read) and where it was (`corpus_path`) in every checkpoint. `difference` says
how a file differs from that corpus (novelty, report and eval warn with it; the figures are still
computed); `held_out_ids` reads the corpus (the path the run recorded, else the run directory's
corpus.txt or data/), checks it against the record, and cuts the held-out tail as training did
(the last val_fraction of its ids, data/streams.split_ids).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np

from charlstm.data.datadir import ReadOptions, is_data_dir, open_data_dir
from charlstm.data.streams import split_ids
from charlstm.errors import CharlstmError, CharlstmWarning
from charlstm.files import require_regular_file
from charlstm.training.corpus import RUN_DATA, Resuming, load_corpus
from charlstm.training.resume import read_record
from charlstm.training.rundir import CORPUS_COPY

HASH_BLOCK = 1 << 20


def recorded(train: dict | None) -> dict | None:
    """The corpus record a checkpoint's training record holds (None: it holds none)."""
    record = (train or {}).get("corpus") if isinstance(train, dict) else None
    if isinstance(record, dict) and isinstance(record.get("hash"), str) and isinstance(record.get("bytes"), int):
        return record
    return None


def difference(train: dict | None, path) -> str | None:
    """How the text file or data directory at `path` differs from the corpus the run trained on
    (None: it is that corpus, or the checkpoint does not say which it was)."""
    record = recorded(train)
    if record is None:
        return None
    path = Path(path)
    if is_data_dir(path):
        found = open_data_dir(path).record
        digest, size = found.get("hash"), found.get("bytes")
    else:
        size = require_regular_file(path, "text file").st_size
        if size != record["bytes"]:
            return f"{size:,} bytes, the run's corpus {record['bytes']:,}"
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(HASH_BLOCK):
                sha.update(block)
        digest = "sha256:" + sha.hexdigest()
    if digest == record["hash"]:
        return None
    if size != record["bytes"]:
        return f"{size:,} bytes, the run's corpus {record['bytes']:,}"
    return f"the same size, other content: sha256 {str(digest).split(':')[-1][:12]}..., the run's " \
           f"{record['hash'].split(':')[-1][:12]}..."


def warn_if_other_corpus(checkpoint, train: dict | None, corpus) -> None:
    """Figures against a corpus (novelty, a report's copying) mean something only against the
    one the model learnt from: a warning when the run recorded another."""
    other = difference(train, corpus)
    if other is not None:
        warnings.warn(f"{corpus}: not the corpus {checkpoint} was trained on ({other}); the figures are "
                      f"against {corpus}", CharlstmWarning, stacklevel=2)


def warn_if_trained_on(checkpoint, train: dict | None, path) -> None:
    """A loss measured on the run's own corpus is mostly on text it was trained on: a warning."""
    if recorded(train) is not None and difference(train, path) is None:
        warnings.warn(f"{path}: the corpus {checkpoint} was trained on, so most of it was seen in training and the "
                      f"figure is lower than on new text; charlstm eval {checkpoint} --held-out measures the held-out "
                      "part alone", CharlstmWarning, stacklevel=2)


def run_corpus_path(checkpoint, train: dict | None) -> Path | None:
    """Where the run's corpus is: the path it recorded, else its run directory's corpus.txt or
    data/ (the checkpoint's own folder), if there."""
    named = (train or {}).get("corpus_path") if isinstance(train, dict) else None
    folder = Path(checkpoint).parent
    for candidate in ([Path(named)] if isinstance(named, str) else []) + [folder / CORPUS_COPY, folder / RUN_DATA]:
        if candidate.is_file() or is_data_dir(candidate):
            return candidate
    return None


def held_out_ids(checkpoint, train: dict | None, vocab, corpus=None) -> tuple[np.ndarray, Path]:
    """(the held-out ids of the run's corpus, where the corpus was read): `corpus`, or the one
    run_corpus_path finds, checked against the record and read as the run read it."""
    name = str(checkpoint)
    if not train:
        raise CharlstmError(f"{name}: holds no training record (Model.save writes none), so it has no held-out "
                            "split; give a FILE to evaluate instead")
    config, reading, record = read_record(train, name)
    if record is None:
        raise CharlstmError(f"{name}: does not record its corpus's hash, so its held-out split cannot be checked; "
                            "give a FILE to evaluate instead")
    path = Path(corpus) if corpus is not None else run_corpus_path(checkpoint, train)
    if path is None:
        raise CharlstmError(f"{name}: its corpus was not found (neither where the run read it nor in "
                            f"{Path(checkpoint).parent}); give it as FILE")
    other = difference(train, path)
    if other is not None:
        raise CharlstmError(f"{path}: not the corpus {name} was trained on ({other}); --held-out reads the run's own "
                            "corpus")
    options = ReadOptions(record.get("unit", config.unit), reading["newline"], reading["encoding_errors"],
                          record.get("min_count", config.min_count))
    # Read exactly as the run read it: its vocabulary, and its record checked (another corpus is refused).
    data = load_corpus(path, None, options, Path(checkpoint).parent, Resuming(name, record, vocab),
                       labels=config.labels, seed=config.seed)       # a labelled run's joint ids, in its order
    if data.ids is None:
        raise CharlstmError(f"{path}: larger than is read whole, and the run's encoded copy ({RUN_DATA}/ beside "
                            f"{name}) is gone; encode it with charlstm corpus encode and give that directory")
    _, val_ids = split_ids(data.ids, config.val_fraction)
    if len(val_ids) < 2:
        raise CharlstmError(f"{name}: the run held out nothing (--val-fraction {config.val_fraction:g})")
    return val_ids, path


__all__ = ["recorded", "difference", "warn_if_other_corpus", "warn_if_trained_on", "run_corpus_path", "held_out_ids"]
