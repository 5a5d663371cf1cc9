"""The checkpoint contract: one .npz file, written atomically, loaded without unpickling anything.

Keys (all plain numeric arrays except `meta`):
    meta                 0-d unicode array holding JSON:
                         {"format": "charlstm", "version": 1, "config": {...}, "vocab": {...},
                          "train": {...} or null}
    lstm.{l}.Wx, lstm.{l}.Wh, lstm.{l}.b, head.W, head.b     the parameters (see model.py)
    adam.m.{key}, adam.v.{key}    Adam's moments for every parameter key (training checkpoints)
    state.h, state.c              the carried (num_layers, batch_size, hidden_size) state

`numpy.load(path, allow_pickle=False)` reads every key; loading here checks the whole file (format,
version, config, shapes, finite weights, vocabulary size) and turns every problem into one
CharlstmError line.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.model.stack import ModelConfig, param_shapes
from charlstm.data.vocab import Vocab

FORMAT = "charlstm"
VERSION = 1


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    config: ModelConfig
    vocab: Vocab
    train: dict | None = None                          # training progress, for --resume
    extra: dict[str, np.ndarray] = field(default_factory=dict)   # adam.*, state.* arrays


def save_checkpoint(path, params, config: ModelConfig, vocab: Vocab, train: dict | None = None,
                    extra: dict[str, np.ndarray] | None = None) -> None:
    """Write a checkpoint atomically: a temporary file in the same directory, flushed and
    fsynced, then renamed over the real name, so a crash leaves either the old file or the new
    one under that name, never half of one."""
    path = Path(path)
    meta = {"format": FORMAT, "version": VERSION, "config": config.to_dict(),
            "vocab": vocab.to_dict(), "train": train}
    arrays = {"meta": np.array(json.dumps(meta, ensure_ascii=False))}
    arrays.update(params)
    if extra:
        arrays.update(extra)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise CharlstmError(f"cannot write checkpoint {path}: {e.strerror or e}; "
                            "the previous checkpoint is untouched") from None
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path) -> Checkpoint:
    """Read and validate a checkpoint; every problem becomes one CharlstmError line."""
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise CharlstmError(f"{name}: no such checkpoint")
    if path.is_dir():
        raise CharlstmError(f"{name}: is a directory, not a checkpoint (did you mean {name}/best.npz?)")
    if not zipfile.is_zipfile(path):
        raise CharlstmError(f"{name}: not a charlstm checkpoint (not an .npz archive, or truncated)")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                arrays[key] = data[key]
    except ValueError as e:
        if "allow_pickle" in str(e) or "object" in str(e).lower():
            raise CharlstmError(f"{name}: holds Python objects; refusing to load it "
                                "(loading a checkpoint never unpickles)") from None
        raise CharlstmError(f"{name}: damaged checkpoint ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError, RuntimeError) as e:
        raise CharlstmError(f"{name}: damaged or truncated checkpoint ({type(e).__name__})") from None
    except Exception as e:   # zlib.error and other decoder failures of a corrupt member
        raise CharlstmError(f"{name}: damaged checkpoint ({type(e).__name__}: {e})") from None

    meta = _read_meta(arrays.pop("meta", None), name)
    try:
        config = ModelConfig.from_dict(_field(meta, "config", dict, name))
        vocab = Vocab.from_dict(_field(meta, "vocab", dict, name))
    except CharlstmError as e:
        message = str(e)
        raise CharlstmError(message if message.startswith(name) else f"{name}: {message}") from None
    if len(vocab) != config.vocab_size:
        raise CharlstmError(f"{name}: the vocabulary holds {len(vocab)} symbols but the model "
                            f"expects {config.vocab_size}")
    params = {}
    for key, shape in param_shapes(config).items():
        if key not in arrays:
            raise CharlstmError(f"{name}: missing parameter {key}")
        p = arrays.pop(key)
        if p.shape != shape:
            raise CharlstmError(f"{name}: parameter {key} has shape {p.shape}, the config says {shape}")
        if not np.issubdtype(p.dtype, np.floating):
            raise CharlstmError(f"{name}: parameter {key} is not floating point ({p.dtype})")
        if not np.isfinite(p).all():
            raise CharlstmError(f"{name}: parameter {key} holds NaN or infinite values")
        params[key] = p
    train = meta.get("train")
    if train is not None and not isinstance(train, dict):
        raise CharlstmError(f"{name}: the training record in meta is not an object")
    return Checkpoint(params=params, config=config, vocab=vocab, train=train, extra=arrays)


def _read_meta(raw, name: str) -> dict:
    if raw is None:
        raise CharlstmError(f"{name}: not a charlstm checkpoint (no meta record)")
    if raw.shape != () or raw.dtype.kind != "U":
        raise CharlstmError(f"{name}: not a charlstm checkpoint (meta is not a text record)")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError:
        raise CharlstmError(f"{name}: the meta record is not valid JSON") from None
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
