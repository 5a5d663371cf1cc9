"""What a run carries into its continuation, and the checks that --resume resumes the same run.

A training checkpoint's record (meta.train) holds, beside the optimiser and the progress:

    config    the TrainConfig, bounds included: --resume keeps them unless new ones are given
    corpus    the corpus trained on (data/datadir.corpus_record): the hash and size of its bytes,
              its symbols and how it was read (unit, newline, encoding_errors, min_count); the
              resumed run reads it the same way, and another corpus is refused

Everything in the record is read back through charlstm.validate before the loop sees it, so a
damaged or hostile record is one line, never a traceback halfway through a run. Fine-tuning, a
deliberate switch to another corpus or other settings, is `init_from` (--init-from): the weights
and vocabulary of a checkpoint, and nothing else of its run.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from charlstm.data.vocab import UNITS
from charlstm.errors import CharlstmError
from charlstm.training.config import TrainConfig
from charlstm.validate import Fields

BOUNDS = ("max_steps", "max_time", "epochs")
READING_DEFAULTS = {"newline": "keep", "encoding_errors": "strict"}


def reading_options(encoding_errors: str | None, newline: str | None, saved: dict | None = None) -> dict:
    """How to read the corpus: the given options, else the resumed run's own (`saved`), else the
    defaults. A given option that differs from the run's is kept, so that the corpus check
    refuses it by name instead of reading the corpus another way than the run did."""
    base = dict(saved) if saved is not None else dict(READING_DEFAULTS)
    given = {"newline": newline, "encoding_errors": encoding_errors}
    return {k: given[k] if given[k] is not None else base[k] for k in READING_DEFAULTS}


def read_record(train, name: str) -> tuple[TrainConfig, dict, dict | None]:
    """(the run's TrainConfig, its reading options, its corpus record or None) from a
    checkpoint's training record, every field checked (types, ranges, the random state's shape)."""
    if not train:
        raise CharlstmError(f"{name}: holds no training state; it cannot be resumed "
                            "(to train on from its weights, use --init-from)")
    record = Fields(train, f"{name}: the training state needed to resume")
    if "config" not in train:
        raise CharlstmError(f"{name}: its training configuration is missing; it cannot be resumed")
    config = TrainConfig.from_dict(train["config"], f"{name}: the training configuration")
    progress = record.object("progress")
    step = progress.integer("step", lo=0)
    progress.integer("chunk", lo=0)
    progress.integer("epoch", lo=0)
    progress.number("elapsed_s", lo=0)
    progress.number("best_val", optional=True, default=None)
    progress.number("lr_scale", hi=1, positive=True, default=1.0)
    progress.integer("best_step", lo=0, hi=step, optional=True, default=None)
    progress.number("window_loss", lo=0, default=0.0)
    progress.integer("window_steps", lo=0, hi=step, default=0)
    known = {"step", "chunk", "epoch", "elapsed_s", "best_val", "lr_scale", "best_step", "window_loss",
             "window_steps"}
    unknown = sorted(set(progress.record) - known)
    if unknown:
        raise CharlstmError(f"{name}: the training progress holds unknown fields ({', '.join(unknown)}); "
                            "it cannot be resumed")
    record.integer("adam_step", lo=0)
    rng = record.object("rng")
    rng.text("bit_generator", choices=("PCG64",))
    inner = rng.object("state")
    inner.integer("state", lo=0, hi=2 ** 128 - 1)
    inner.integer("inc", lo=0, hi=2 ** 128 - 1)
    rng.integer("has_uint32", lo=0, hi=1)
    rng.integer("uinteger", lo=0, hi=2 ** 32 - 1)
    reading, corpus = dict(READING_DEFAULTS), None
    if "corpus" in train and isinstance(train["corpus"], dict) and "sha256" in train["corpus"]:
        # The record of checkpoints written before data directories: reading options beside a
        # digest of the decoded text, which no longer compares with the file's; only the
        # reading options carry over.
        fields = record.object("reading")
        reading = {"newline": fields.text("newline", choices=("keep", "normalize")),
                   "encoding_errors": fields.text("encoding_errors", choices=("strict", "replace"))}
    elif "corpus" in train:
        fields = record.object("corpus")
        corpus = {"hash": fields.text("hash"), "bytes": fields.integer("bytes", lo=0),
                  "symbols": fields.integer("symbols", lo=0, optional=True, default=None),
                  "unit": fields.text("unit", choices=UNITS),
                  "newline": fields.text("newline", choices=("keep", "normalize")),
                  "encoding_errors": fields.text("encoding_errors", choices=("strict", "replace")),
                  "min_count": fields.integer("min_count", lo=1)}
        reading = {"newline": corpus["newline"], "encoding_errors": corpus["encoding_errors"]}
    return config, reading, corpus


def check_arrays(extra: dict, name: str) -> None:
    """The optimiser's moments and the carried state must be finite: a NaN there would surface
    steps later as weights gone bad, blamed on the learning rate."""
    for key, array in extra.items():
        if not np.issubdtype(array.dtype, np.floating):
            raise CharlstmError(f"{name}: {key} is not floating point ({array.dtype}); the checkpoint is damaged")
        if not np.isfinite(array).all():
            raise CharlstmError(f"{name}: {key} holds NaN or infinite values; the checkpoint is damaged "
                                "(resume from an earlier one, or start from its weights with --init-from)")
        if key.startswith("adam.v.") and (array < 0).any():
            raise CharlstmError(f"{name}: {key} holds negative second moments; the checkpoint is damaged")


def resumed_config(saved: TrainConfig, given: TrainConfig) -> TrainConfig:
    """The run's own configuration; its bounds are replaced only when the resuming call gives any."""
    if any(getattr(given, k) is not None for k in BOUNDS):
        return replace(saved, **{k: getattr(given, k) for k in BOUNDS})
    return saved


def check_position(chunk: int, chunks_per_pass: int, name: str) -> None:
    if chunk > chunks_per_pass:
        raise CharlstmError(f"{name}: its position in the pass (chunk {chunk:,}) is past the pass's "
                            f"{chunks_per_pass:,} chunks; the checkpoint does not belong to this corpus")


__all__ = ["BOUNDS", "reading_options", "read_record", "check_arrays", "resumed_config", "check_position"]
