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
from charlstm.errors import ArgumentError, CharlstmError
from charlstm.training.config import TrainConfig
from charlstm.validate import Fields

BOUNDS = ("max_steps", "max_time", "epochs")
READING_DEFAULTS = {"newline": "keep", "encoding_errors": "strict"}
# What a run started from a checkpoint's weights takes from it, and what a data directory's
# manifest says of how its text became symbols.
FROM_WEIGHTS = ("cell", "num_layers", "hidden_size", "embedding_size", "dropout", "unit", "min_count")
FROM_MANIFEST = ("unit", "min_count", "newline", "encoding_errors")


def check_options(given: dict, resume=None, init_from=None, data_dir: bool = False) -> None:
    """Options that would not apply are refused by name before anything is read. `given` maps
    each option of the run (TrainConfig's fields, ModelConfig's, encoding_errors, newline) to its
    value, None where it was not given. A resumed run keeps its own settings, so only new bounds
    may be given; a run from a checkpoint's weights (init_from) takes its model and vocabulary
    from them; a data directory was read into symbols once, as its manifest says."""
    if resume is not None and init_from is not None:
        raise CharlstmError("give --resume (continue a run) or --init-from (start a new one from its weights), "
                            "not both")
    named = [name for name, value in given.items() if value is not None]
    if resume is not None:
        refused = [name for name in named if name not in BOUNDS]
        if refused:
            raise ArgumentError(tuple(refused), "{name}: these come from the checkpoint when resuming (the run "
                                "keeps its own settings); give only --max-steps, --max-time or --epochs, or start "
                                f"a new run from the weights of {_literal(resume)} with --init-from")
        return
    if init_from is not None:
        refused = [name for name in FROM_WEIGHTS if name in named]
        if refused:
            raise ArgumentError(tuple(refused), f"{{name}}: the model and its vocabulary come from "
                                f"{_literal(init_from)} with --init-from")
    if data_dir:
        refused = [name for name in FROM_MANIFEST if name in named]
        if refused:
            one = len(refused) == 1
            raise ArgumentError(tuple(refused), f"{{name}} {'comes' if one else 'come'} from the data directory's "
                                "manifest when training on a data directory; encode the corpus again to change "
                                f"{'it' if one else 'them'}")


def _literal(path) -> str:
    """A path inside a message template, its braces kept as they are."""
    return str(path).replace("{", "{{").replace("}", "}}")


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


__all__ = ["BOUNDS", "FROM_WEIGHTS", "FROM_MANIFEST", "check_options", "reading_options", "read_record", "check_arrays", "resumed_config", "check_position"]
