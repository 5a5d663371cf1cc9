"""What a run carries into its continuation, and the checks that --resume resumes the same run.

A training checkpoint's record (meta.train) holds, beside the optimiser and the progress:

    config    the TrainConfig, bounds included: --resume keeps them unless new ones are given
    reading   how the corpus was read (newline, encoding_errors): the resumed run reads it so too
    corpus    {"bytes", "sha256"} of the text trained on: another corpus is refused

Everything in the record is read back through charlstm.validate before the loop sees it, so a
damaged or hostile record is one line, never a traceback halfway through a run. Fine-tuning, a
deliberate switch to another corpus or other settings, is `init_from` (--init-from): the weights
and vocabulary of a checkpoint, and nothing else of its run.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.training.config import TrainConfig
from charlstm.validate import Fields

BOUNDS = ("max_steps", "max_time", "epochs")
READING_DEFAULTS = {"newline": "keep", "encoding_errors": "strict"}
_HASH_CHUNK = 1 << 22     # characters encoded at a time while hashing: no second copy of the corpus


def reading_options(encoding_errors: str | None, newline: str | None, saved: dict | None = None) -> dict:
    """How to read the corpus: the run's own when resuming (`saved`), else the given options or
    their defaults."""
    if saved is not None:
        return dict(saved)
    return {"newline": newline or READING_DEFAULTS["newline"],
            "encoding_errors": encoding_errors or READING_DEFAULTS["encoding_errors"]}


def read_record(train, name: str) -> tuple[TrainConfig, dict, dict | None]:
    """(the run's TrainConfig, its reading options, its corpus fingerprint or None) from a
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
    reading = dict(READING_DEFAULTS)
    if "reading" in train:             # checkpoints before the record kept them read with the defaults
        fields = record.object("reading")
        reading = {"newline": fields.text("newline", choices=("keep", "normalize")),
                   "encoding_errors": fields.text("encoding_errors", choices=("strict", "replace"))}
    corpus = None
    if "corpus" in train:
        fields = record.object("corpus")
        corpus = {"bytes": fields.integer("bytes", lo=0), "sha256": fields.text("sha256")}
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


def fingerprint(text: str) -> dict:
    """{"bytes": UTF-8 size, "sha256": hex digest} of the text trained on."""
    digest, size = hashlib.sha256(), 0
    for start in range(0, len(text), _HASH_CHUNK):
        data = text[start:start + _HASH_CHUNK].encode("utf-8", "surrogatepass")
        digest.update(data)
        size += len(data)
    return {"bytes": size, "sha256": digest.hexdigest()}


def check_same_corpus(saved: dict | None, now: dict, corpus_name: str, name: str) -> None:
    """Refuse to resume a run on another corpus than its own, naming the difference."""
    if saved is None or saved == now:
        return
    if saved["bytes"] != now["bytes"]:
        difference = f"{now['bytes']:,} bytes, the run's {saved['bytes']:,}"
    else:
        difference = (f"the same size, other content: sha256 {now['sha256'][:12]}…, "
                      f"the run's {saved['sha256'][:12]}…")
    raise CharlstmError(f"{corpus_name}: is not the corpus {name} was trained on ({difference}); resume with "
                        f"the run's corpus, or train on this one from its weights with --init-from {name}")


def encode_for(vocab, text: str, corpus_name: str, name: str):
    """The corpus as ids of a checkpoint's vocabulary; a symbol it lacks (and no unknown symbol to
    map it to) is one line naming both files."""
    try:
        return vocab.encode(text, unknown="unk")
    except CharlstmError as e:
        raise CharlstmError(f"{corpus_name}: {e} ({name})") from None


def check_position(chunk: int, chunks_per_pass: int, name: str) -> None:
    if chunk > chunks_per_pass:
        raise CharlstmError(f"{name}: its position in the pass (chunk {chunk:,}) is past the pass's "
                            f"{chunks_per_pass:,} chunks; the checkpoint does not belong to this corpus")


__all__ = ["BOUNDS", "reading_options", "read_record", "check_arrays", "resumed_config", "fingerprint",
           "check_same_corpus", "encode_for", "check_position"]
