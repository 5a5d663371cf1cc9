"""The checkpoint of a classifier or a tagger: one .npz file, written atomically, loaded without
unpickling anything (docs/labels.md describes it for other programs).

Keys (all plain numeric arrays except `meta`):
    meta        0-d unicode array holding JSON:
                {"format": "charlstm-labels", "version": 1, "kind": "classifier" | "tagger",
                 "config": SequenceConfig.to_dict(), "vocab": Vocab.to_dict(),
                 "labels": [label names, in the order of the head's outputs],
                 "max_length": symbols read of an example (a tagger: of a stretch),
                 "train": the training record, or null}
    [embedding,] {cell}.{l}[.reverse].{key}, head.W, head.b   the parameters (model/sequence.py)

It is not the character model's format ("charlstm", training/checkpoint.py): each loader names
the other's files for what they are. There is no optimiser state: a run is not resumed.

Loading reads only the members the format names, checks each one's declared size against what
the config implies before it is decompressed, and checks the whole file (format, version, kind,
config, vocabulary, labels, shapes, finite weights), every problem one CharlstmError line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.data.labelled import check_label
from charlstm.data.vocab import Vocab
from charlstm.errors import CharlstmError
from charlstm.files import write_atomically
from charlstm.model import SequenceConfig, sequence_param_shapes
from charlstm.training.checkpoint import member, member_sizes, npy_bytes, parameter, reading
from charlstm.validate import Fields, load_json

FORMAT = "charlstm-labels"
VERSION = 1
KINDS = {"classify": "classifier", "tag": "tagger"}       # the model's task -> the checkpoint's kind
MAX_META_BYTES = 64 << 20
CHARACTER_FORMAT = "charlstm"       # training/checkpoint.py's, named when such a file is given here


@dataclass
class LabelsCheckpoint:
    kind: str                       # "classifier" or "tagger"
    params: dict[str, np.ndarray]
    config: SequenceConfig
    vocab: Vocab
    labels: tuple[str, ...]
    max_length: int
    train: dict | None = None


def save_labels_checkpoint(path, ckpt: LabelsCheckpoint) -> None:
    """Write a checkpoint atomically: a crash leaves the old file or the new one, never half of one."""
    meta = {"format": FORMAT, "version": VERSION, "kind": ckpt.kind, "config": ckpt.config.to_dict(),
            "vocab": ckpt.vocab.to_dict(), "labels": list(ckpt.labels), "max_length": ckpt.max_length,
            "train": ckpt.train}
    arrays = {"meta": np.array(json.dumps(meta, ensure_ascii=False)), **ckpt.params}
    write_atomically(Path(path), lambda f: np.savez(f, **arrays), "checkpoint")


def load_labels_checkpoint(path) -> LabelsCheckpoint:
    """Read and check a classifier's or a tagger's checkpoint; every problem is one line."""
    path = Path(path)
    name = str(path)
    sizes = member_sizes(path)
    with reading(name), np.load(path, allow_pickle=False) as data:
        meta = read_meta(member(data, sizes, "meta", MAX_META_BYTES, name), name)
        ckpt = checked_record(meta, name)
        if ckpt.config.num_layers * len(ckpt.config.directions) > len(sizes):
            # each layer and direction has arrays of its own: a config naming more is not this file's
            raise CharlstmError(f"{name}: its config names {ckpt.config.num_layers} layers, but the file holds "
                                f"{len(sizes)} arrays in all")
        ckpt.params = {key: parameter(member(data, sizes, key, npy_bytes(shape), name), key, shape, name)
                       for key, shape in sequence_param_shapes(ckpt.config).items()}
    return ckpt


class CharacterCheckpoint(CharlstmError):
    """The file is a character model's checkpoint (charlstm train), not this format's: a caller
    that also takes those (a generator conditioned on labels classifies by Bayes' rule) loads it so."""


def read_meta(raw, name: str) -> dict:
    """The meta record, if it is this format's (the character model's is named as such)."""
    if raw.shape != () or raw.dtype.kind != "U":
        raise CharlstmError(f"{name}: not a charlstm checkpoint (meta is not a text record)")
    meta = load_json(str(raw), f"{name}: the meta record")
    found = meta.get("format") if isinstance(meta, dict) else None
    if found == CHARACTER_FORMAT:
        raise CharacterCheckpoint(f"{name}: a character model's checkpoint (charlstm train), not a classifier's or a "
                                  "tagger's; give one written by charlstm classify train or charlstm tag train")
    if found != FORMAT:
        raise CharlstmError(f"{name}: not a charlstm classifier or tagger checkpoint")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CharlstmError(f"{name}: the meta record has no format version")
    if version > VERSION:
        raise CharlstmError(f"{name}: written in {FORMAT} format {version}, newer than this charlstm reads "
                            f"({VERSION}); upgrade charlstm")
    return meta


def checked_record(meta: dict, name: str) -> LabelsCheckpoint:
    """The checkpoint's record from its meta (parameters still empty), every field checked."""
    record = Fields(meta, f"{name}: the meta record")
    kind = record.text("kind", choices=tuple(KINDS.values()))
    try:
        config = SequenceConfig.from_dict(record.object("config").record, f"{name}: the model config")
        vocab = Vocab.from_dict(record.object("vocab").record)
    except CharlstmError as e:
        message = str(e)
        raise CharlstmError(message if message.startswith(name) else f"{name}: {message}") from None
    if KINDS[config.task] != kind:
        raise CharlstmError(f"{name}: the meta record says {kind} but its config's task is {config.task}")
    if len(vocab) != config.vocab_size:
        raise CharlstmError(f"{name}: the vocabulary holds {len(vocab)} symbols but the model expects "
                            f"{config.vocab_size}")
    if kind == "tagger" and vocab.unit != "codepoint":
        raise CharlstmError(f"{name}: a tagger labels each code point, but its vocabulary's unit is {vocab.unit}")
    labels = record.strings("labels", nonempty=True)
    for label in labels:
        check_label(label, f"{name}: the meta record's labels")
    if len(labels) != config.num_labels or len(set(labels)) != len(labels):
        raise CharlstmError(f"{name}: the meta record names {len(labels)} labels ({len(set(labels))} distinct) "
                            f"for a model of {config.num_labels}")
    max_length = record.integer("max_length", lo=1)
    train = meta.get("train")
    if train is not None and not isinstance(train, dict):
        raise CharlstmError(f"{name}: the training record in meta is not an object")
    return LabelsCheckpoint(kind, {}, config, vocab, tuple(labels), max_length, train)


__all__ = ["FORMAT", "VERSION", "KINDS", "LabelsCheckpoint", "save_labels_checkpoint", "load_labels_checkpoint"]
