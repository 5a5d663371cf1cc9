"""How to train, what an evaluation measured, and what a run returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from charlstm.data.vocab import Vocab
from charlstm.errors import CharlstmError
from charlstm.validate import Fields
from charlstm.model import LabelSet, ModelConfig

DEFAULT_EPOCHS = 10   # how long a run lasts when no bound at all is given


@dataclass(frozen=True)
class TrainConfig:
    """How to train. CLI options map one to one onto these fields; the defaults live here.

    The settings the default recipe may choose (lr, eval_every, eval_interval, val_symbols; see
    training/recipe.py) may be None: not given, so the recipe fills them from the corpus and the
    budget, or `filled` gives them the default written here. A run's record holds them filled.
    """

    batch_size: int = 32
    seq_length: int = 100
    # lr 3e-3 with a cosine decay over the run and dropout 0.2 (ModelConfig) were chosen by
    # measurement: see scripts/recipe.py and the README's "Default recipe" section.
    lr: float | None = 3e-3
    lr_schedule: str = "cosine"        # constant | cosine | step (see optim.learning_rate)
    lr_decay: float = 0.97             # the step schedule's factor
    lr_decay_every: int = 1000         # ... applied every this many steps
    lr_floor: float = 0.1              # the cosine schedule ends at this fraction of lr
    warmup_steps: int = 0
    grad_clip: float = 5.0
    max_steps: int | None = None       # total optimiser steps of the run, resumed ones included
    max_time: float | None = None      # seconds of training of the run, resumed ones included
    epochs: float | None = None        # passes over the training split
    eval_every: int | None = 200       # steps between evaluations and checkpoints
    # seconds between them as well, whichever comes first (None: steps only): a time budget's
    # curve then has as many points on a slow machine as on a fast one
    eval_interval: float | None = None
    val_fraction: float = 0.05
    # Periodic validation reads at most this many held-out symbols (streams spread over the whole
    # split; 0: all of it): on a corpus of gigabytes, 5 % is more than a run can read every few
    # hundred steps. `charlstm eval` stays exact.
    val_symbols: int | None = 300_000
    seed: int = 0
    unit: str = "grapheme"
    min_count: int = 1
    sample_length: int = 200           # the sample shown at each evaluation
    sample_temperature: float = 0.8    # ... and its temperature
    dtype: str = "float32"
    on_nonfinite: str = "stop"         # stop | skip (skip the batch and halve the learning rate)
    # the corpus is a labelled file (data/labelled.py), and the model a generator conditioned on
    # each example's label (training/conditional.py)
    labels: bool = False

    def __post_init__(self):
        checks = [
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.seq_length >= 1, "--seq-length must be at least 1"),
            (self.lr is None or self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (self.lr_schedule in ("constant", "cosine", "step"), "--lr-schedule must be constant, cosine or step"),
            (0.0 <= self.lr_floor <= 1.0, "--lr-floor must be in [0, 1]"),
            (self.lr_decay > 0 and math.isfinite(self.lr_decay), "--lr-decay must be a positive number"),
            (self.lr_decay_every >= 1, "--lr-decay-every must be at least 1"),
            (self.warmup_steps >= 0, "--warmup-steps must be >= 0"),
            (math.isfinite(self.sample_temperature) and self.sample_temperature >= 0,
             "sample_temperature must be a number >= 0"),
            (self.grad_clip >= 0, "--grad-clip must be >= 0 (0 turns clipping off)"),
            (self.max_steps is None or self.max_steps >= 0, "--max-steps must be >= 0"),
            (self.max_time is None or (self.max_time > 0 and math.isfinite(self.max_time)),
             "--max-time must be a positive number of seconds"),
            (self.epochs is None or (self.epochs > 0 and math.isfinite(self.epochs)),
             "--epochs must be a positive number"),
            (self.eval_every is None or self.eval_every >= 1, "--eval-every must be at least 1"),
            (self.eval_interval is None or (self.eval_interval > 0 and math.isfinite(self.eval_interval)),
             "--eval-interval must be a positive number of seconds"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (self.val_symbols is None or self.val_symbols == 0 or self.val_symbols >= 2,
             "--val-symbols must be 0 (all) or at least 2"),
            (self.min_count >= 1, "--min-count must be at least 1"),
            (0 <= self.seed < 2 ** 63, "--seed must be a whole number >= 0"),
            (self.sample_length >= 0, "sample_length must be >= 0 (0: no sample at evaluations)"),
            (self.dtype in ("float32", "float64"), "dtype must be float32 or float64"),
            (self.on_nonfinite in ("stop", "skip"), "on_nonfinite must be stop or skip"),
            (isinstance(self.labels, bool), "labels must be True or False"),
        ]
        for ok, message in checks:
            if not ok:
                raise CharlstmError(message)

    def filled(self, chosen: dict | None = None) -> "TrainConfig":
        """This configuration with each setting left None given its value: `chosen`'s (the
        recipe's), else the default above (for eval_interval that is None: steps only)."""
        chosen = chosen or {}
        return replace(self, **{f.name: chosen.get(f.name, f.default) for f in fields(self)
                                if getattr(self, f.name) is None})

    @classmethod
    def from_dict(cls, d: dict, where: str = "the training configuration") -> "TrainConfig":
        """From a record read back from a checkpoint: every field checked by type, then by the
        checks above; unknown keys are left out (see charlstm.validate.Fields.dataclass). A record
        written before a setting existed gets its default, so the run resumes as it ran."""
        return Fields(d, where).dataclass(cls).filled()


@dataclass
class Evaluation:
    """What one evaluation measured; also the JSON line written to metrics.jsonl."""

    step: int
    epoch: float
    elapsed_s: float
    train_loss: float
    val_nats: float | None
    val_bpc: float | None
    chars_per_s: float
    lr: float
    sample: str


@dataclass
class TrainResult:
    params: dict
    config: ModelConfig
    vocab: Vocab
    evaluations: list[Evaluation]
    step: int
    interrupted: bool
    out_dir: Path
    labels: LabelSet | None = None     # a model conditioned on labels: their names


__all__ = ["TrainConfig", "Evaluation", "TrainResult", "DEFAULT_EPOCHS"]
