"""The checkpoint contract: one .npz file, written atomically, loaded without unpickling anything.

Keys (all plain numeric arrays except `meta`):
    meta                 0-d unicode array holding JSON:
                         {"format": "charlstm", "version": 3,
                          "config": {..., "cell": "lstm", "embedding_size": 64, "num_labels": 0},
                          "vocab": {...}, "train": {...} or null}
                         and, for a model conditioned on labels (version 4),
                          "labels": {"names": [...], "examples": [...]}
    [embedding,] [label_embedding,] {cell}.{l}.{key}, head.W, head.b
                         the parameters (see model/stack.py and the cells)
    adam.m.{key}, adam.v.{key}    Adam's moments for every parameter key (training checkpoints)
    state.h[, state.c]            the carried (num_layers, batch_size, hidden_size) state

Format 1 (before the cell family) is format 2 without `config.cell`: every such file is an LSTM
and loads, samples and resumes as it did. Format 2 is format 3 without `config.embedding_size`
and the `embedding` array: every such file has a one-hot input (embedding_size 0).
Format 4 is format 3 with labels (config.num_labels > 0, meta.labels, label_embedding); a model
without labels is still written as format 3, so that a charlstm from before labels reads it, and
one with labels is refused there in one line ("newer than this charlstm reads") instead of read
without them. A format 3 file without num_labels has none.

`numpy.load(path, allow_pickle=False)` reads every key. Loading here reads only the members the
format names, checks each one's declared size against what the config implies before it is
decompressed (a small file cannot unpack into gigabytes), and checks the whole file (format,
version, config, shapes, finite weights, vocabulary size), turning every problem into one
CharlstmError line.
"""

from __future__ import annotations

import contextlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.files import write_atomically
from charlstm.validate import load_json
from charlstm.model.config import LabelSet, ModelConfig
from charlstm.model import param_shapes
from charlstm.nn.cells import CELLS
from charlstm.data.vocab import Vocab

FORMAT = "charlstm"
VERSION = 4                      # the newest format read; a model without labels is written as 3
UNLABELLED_VERSION = 3
MAX_META_BYTES = 64 << 20        # the JSON record: a vocabulary of a million symbols fits


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    config: ModelConfig
    vocab: Vocab
    train: dict | None = None                          # training progress, for --resume
    extra: dict[str, np.ndarray] = field(default_factory=dict)   # adam.*, state.* arrays
    labels: LabelSet | None = None                     # a model conditioned on labels: their names


def save_checkpoint(path, params, config: ModelConfig, vocab: Vocab, train: dict | None = None,
                    extra: dict[str, np.ndarray] | None = None, labels: LabelSet | None = None) -> None:
    """Write a checkpoint atomically (charlstm.files.write_atomically): a crash leaves either the
    old file or the new one under that name, never half of one. labels: the names of a model
    conditioned on labels (required then, refused otherwise)."""
    path = Path(path)
    if (labels is not None) != bool(config.num_labels) or (labels is not None and len(labels) != config.num_labels):
        raise CharlstmError(f"a model of {config.num_labels} labels saved with "
                            f"{0 if labels is None else len(labels)} label names")
    meta = {"format": FORMAT, "version": VERSION if config.num_labels else UNLABELLED_VERSION,
            "config": config.to_dict(), "vocab": vocab.to_dict(), "train": train}
    if labels is not None:
        meta["labels"] = labels.to_dict()
    arrays = {"meta": np.array(json.dumps(meta, ensure_ascii=False))}
    arrays.update(params)
    if extra:
        arrays.update(extra)
    write_atomically(path, lambda f: np.savez(f, **arrays), "checkpoint")


def load_checkpoint(path) -> Checkpoint:
    """Read and validate a checkpoint; every problem becomes one CharlstmError line."""
    path = Path(path)
    name = str(path)
    sizes = member_sizes(path)
    with reading(name), np.load(path, allow_pickle=False) as data:
        meta = _read_meta(member(data, sizes, "meta", MAX_META_BYTES, name), name)
        try:
            config = ModelConfig.from_dict(_field(meta, "config", dict, name))
            vocab = Vocab.from_dict(_field(meta, "vocab", dict, name))
        except CharlstmError as e:
            message = str(e)
            raise CharlstmError(message if message.startswith(name) else f"{name}: {message}") from None
        if len(vocab) != config.vocab_size:
            raise CharlstmError(f"{name}: the vocabulary holds {len(vocab)} symbols but the model "
                                f"expects {config.vocab_size}")
        labels = _labels(meta, config, name)
        _check_cell_keys(sizes, config, name)
        shapes = param_shapes(config)
        params = {key: parameter(member(data, sizes, key, npy_bytes(shape), name), key, shape, name)
                  for key, shape in shapes.items()}
        extra = {}
        for key in sizes:     # the training state: only the members the format names, sizes checked
            wanted = _extra_shape(key, shapes, config, meta.get("train"))
            if wanted is not None:
                extra[key] = member(data, sizes, key, npy_bytes(wanted), name)
    train = meta.get("train")
    if train is not None and not isinstance(train, dict):
        raise CharlstmError(f"{name}: the training record in meta is not an object")
    return Checkpoint(params=params, config=config, vocab=vocab, train=train, extra=extra, labels=labels)


def _labels(meta: dict, config: ModelConfig, name: str) -> LabelSet | None:
    """The label names of a model conditioned on labels (format 4), checked against its config."""
    if not config.num_labels:
        return None
    if meta["version"] < 4:
        raise CharlstmError(f"{name}: a format {meta['version']} checkpoint cannot hold labels (num_labels "
                            f"{config.num_labels})")
    labels = LabelSet.from_dict(_field(meta, "labels", dict, name), f"{name}: the labels")
    if len(labels) != config.num_labels:
        raise CharlstmError(f"{name}: names {len(labels)} labels but the model has {config.num_labels}")
    return labels


def member_sizes(path: Path) -> dict[str, int]:
    """The declared size of each array of an .npz checkpoint (read from the zip directory, nothing
    decompressed), once the path is known to name a regular file."""
    name = str(path)
    if not path.exists():
        raise CharlstmError(f"{name}: no such checkpoint")
    if path.is_dir():
        raise CharlstmError(f"{name}: is a directory, not a checkpoint (did you mean {name}/best.npz?)")
    if not path.is_file():
        raise CharlstmError(f"{name}: not a regular file, so not a checkpoint")
    try:
        with zipfile.ZipFile(path) as archive:
            return {info.filename[:-4]: info.file_size for info in archive.infolist()
                    if info.filename.endswith(".npy")}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        raise CharlstmError(f"{name}: not a charlstm checkpoint (not an .npz archive, or truncated)") from None


@contextlib.contextmanager
def reading(name: str):
    """Reading a checkpoint's arrays: each way a damaged or hostile file fails is one line."""
    try:
        yield
    except CharlstmError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e) or "object" in str(e).lower():
            raise CharlstmError(f"{name}: holds Python objects; refusing to load it "
                                "(loading a checkpoint never unpickles)") from None
        raise CharlstmError(f"{name}: damaged checkpoint ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise CharlstmError(f"{name}: damaged or truncated checkpoint ({type(e).__name__})") from None
    except Exception as e:   # zlib.error and other decoder failures of a corrupt member
        raise CharlstmError(f"{name}: damaged checkpoint ({type(e).__name__}: {e})") from None


def npy_bytes(shape) -> int:
    """The most a .npy member of this shape may declare: float64 data plus a generous header."""
    return 8 * int(np.prod(shape)) + 4096


def member(data, sizes: dict, key: str, limit: int, name: str):
    """One array of the file, refused before it is decompressed if it declares more bytes than
    its shape allows (a small file cannot unpack into gigabytes)."""
    if key not in sizes:
        if key == "meta":
            raise CharlstmError(f"{name}: not a charlstm checkpoint (no meta record)")
        raise CharlstmError(f"{name}: missing parameter {key}")
    if sizes[key] > limit:
        raise CharlstmError(f"{name}: member {key} declares {sizes[key]:,} bytes, more than its shape "
                            f"allows ({limit:,}); refusing to unpack it")
    return data[key]


def parameter(p, key: str, shape, name: str):
    """A parameter read back: the config's shape, floating point, finite."""
    if p.shape != shape:
        raise CharlstmError(f"{name}: parameter {key} has shape {p.shape}, the config says {shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise CharlstmError(f"{name}: parameter {key} is not floating point ({p.dtype})")
    if not np.isfinite(p).all():
        raise CharlstmError(f"{name}: parameter {key} holds NaN or infinite values")
    return p


def _check_cell_keys(sizes: dict, config: ModelConfig, name: str) -> None:
    """Parameters of another cell than the config names: the file was put together wrongly."""
    for key in sizes:
        key = key[len("adam.m."):] if key.startswith(("adam.m.", "adam.v.")) else key
        prefix = key.split(".", 1)[0]
        if prefix in CELLS and prefix != config.cell:
            raise CharlstmError(f"{name}: holds {prefix} parameters ({key!r}) but its config names the "
                                f"{config.cell} cell")


def _extra_shape(key: str, shapes: dict, config: ModelConfig, train):
    """The shape a training-state member has, or None for a member not in the format."""
    for prefix in ("adam.m.", "adam.v."):
        if key.startswith(prefix):
            return shapes.get(key[len(prefix):])
    if key in {f"state.{part}" for part in config.cell_type.state}:
        train_config = train.get("config") if isinstance(train, dict) else None
        batch = train_config.get("batch_size") if isinstance(train_config, dict) else None
        if not isinstance(batch, int) or not 1 <= batch <= 1 << 20:
            batch = 1
        return (config.num_layers, batch, config.hidden_size)
    return None


def _read_meta(raw, name: str) -> dict:
    if raw.shape != () or raw.dtype.kind != "U":
        raise CharlstmError(f"{name}: not a charlstm checkpoint (meta is not a text record)")
    meta = load_json(str(raw), f"{name}: the meta record")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CharlstmError(f"{name}: not a charlstm checkpoint")
    version = meta.get("version")
    if not isinstance(version, int):
        raise CharlstmError(f"{name}: the meta record has no format version")
    if version > VERSION:
        raise CharlstmError(f"{name}: written in checkpoint format {version}, newer than this "
                            f"charlstm reads ({VERSION}); upgrade charlstm")
    return meta


def _field(meta: dict, key: str, kind, name: str):
    value = meta.get(key)
    if not isinstance(value, kind):
        raise CharlstmError(f"{name}: the meta record lacks a valid '{key}'")
    return value
