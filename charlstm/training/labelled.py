"""Training a classifier or a tagger on labelled examples: configuration, data, model, optimiser,
loop, evaluation, checkpoints. Read it top to bottom.

A run directory (training/rundir.py: created, locked, one run per directory) holds
    latest.npz     the most recent checkpoint (also written when the caller asks the run to stop)
    best.npz       the checkpoint of the best held-out accuracy so far, ties going to the lower
                   held-out loss
    metrics.jsonl  one JSON object per evaluation (LabelEvaluation)
in training/label_checkpoint.py's format. Each step reads one batch of examples of similar
length (training/label_batches.py), draws dropout masks, takes the mean cross-entropy and its
gradients (model/labels.py), clips them to a global norm and takes an Adam step at the rate of
the schedule (nn/optim.py). Every eval_every steps, and at the end, the whole held-out set is read
(training/label_eval.py).

Examples longer than max_length symbols are cut to their first max_length (a classifier reads
that much of a text; a tagger's texts are cut into stretches before they get here). The run owns
no process-wide state: the caller passes a Progress to show it and a should_stop function to end
it cleanly between two steps (the API turns Ctrl-C and SIGTERM into it), as training/loop.py does.
A run is not resumed: a stopped run leaves latest.npz to use or to start again from.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from charlstm import validate
from charlstm.data.vocab import Vocab
from charlstm.errors import ArgumentError, CharlstmError
from charlstm.files import given_path
from charlstm.interrupts import Interrupted
from charlstm.model import (SequenceConfig, classify_loss, init_sequence_params, sequence_dropout_masks,
                            tag_loss)
from charlstm.nn.optim import adam_init, adam_update, clip_by_global_norm, learning_rate
from charlstm.training.config import DEFAULT_EPOCHS
from charlstm.training.label_batches import Examples, batch, encode_texts, label_vocab, training_batches
from charlstm.training.label_checkpoint import KINDS, LabelsCheckpoint, save_labels_checkpoint
from charlstm.training.label_eval import confusion, figures, predict_probs, truth_and_guess
from charlstm.training.loop import Progress, Silent
from charlstm.training.rundir import PREVIOUS, RunDir, earlier_run

DEFAULT_VAL_FRACTION = 0.1     # held out of the training examples when no held-out set is given
LR_FLOOR = 0.1                 # the cosine schedule ends at this fraction of lr, as train's does
UNITS = {"classify": "grapheme", "tag": "codepoint"}     # a tagger's labels are one per code point


@dataclass(frozen=True)
class LabelTrainConfig:
    """How to train a classifier or a tagger. The commands' options map one to one onto these
    fields (the same names, in the option's spelling); the defaults live here."""

    batch_size: int = 32
    lr: float = 3e-3
    lr_schedule: str = "cosine"        # constant | cosine (down to LR_FLOOR of lr over the run)
    grad_clip: float = 5.0             # global norm the gradients are clipped to (0: off)
    max_steps: int | None = None       # bounds; none given: DEFAULT_EPOCHS passes
    max_time: float | None = None
    epochs: float | None = None
    eval_every: int = 100              # steps between evaluations and checkpoints
    # the share of examples held out when no held-out set is given (None: DEFAULT_VAL_FRACTION,
    # filled in by `filled`; 0: none, and best.npz is the latest; refused beside a held-out set,
    # where it would mean nothing)
    val_fraction: float | None = None
    max_length: int = 1000             # symbols of an example read (a longer one is cut)
    min_count: int = 1                 # rarer symbols read as the unknown one
    seed: int = 0

    def __post_init__(self):
        # each rule said once, naming the field (the command line shows the option instead)
        validate.size(self.batch_size, "batch_size")
        validate.real(self.lr, "lr", lo=0, above=True)
        validate.choice(self.lr_schedule, "lr_schedule", ("constant", "cosine"))
        validate.real(self.grad_clip, "grad_clip", lo=0)
        validate.size(self.max_steps, "max_steps", optional=True)
        validate.real(self.max_time, "max_time", lo=0, above=True, optional=True)
        validate.real(self.epochs, "epochs", lo=0, above=True, optional=True)
        validate.size(self.eval_every, "eval_every")
        if validate.real(self.val_fraction, "val_fraction", optional=True) is not None \
                and not 0 <= self.val_fraction < 1:
            raise ArgumentError("val_fraction", "{name} must be a number from 0 (nothing held out) up to 1 "
                                f"(left out), got {self.val_fraction!r}")
        validate.size(self.max_length, "max_length")
        validate.size(self.min_count, "min_count")
        validate.size(self.seed, "seed", lo=0, hi=2 ** 63 - 1)

    def filled(self) -> "LabelTrainConfig":
        return self if self.val_fraction is not None else replace(self, val_fraction=DEFAULT_VAL_FRACTION)


class LabelData(NamedTuple):
    """Examples of one task, not yet encoded: the label names, each text, its labels (an index
    into names for a classifier; an int array as long as the text for a tagger) and its source."""
    names: tuple[str, ...]
    texts: tuple[str, ...]
    labels: np.ndarray | tuple[np.ndarray, ...]
    sources: tuple[str, ...]

    @property
    def task(self) -> str:
        return "tag" if isinstance(self.labels, tuple) else "classify"


@dataclass
class LabelEvaluation:
    """What one evaluation measured on the held-out set; also the line written to metrics.jsonl.
    labels and confusion: training/label_eval.figures's (per-label precision, recall, support).
    With nothing held out, the val_ fields are None and labels and confusion empty."""
    step: int
    epoch: float
    elapsed_s: float
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    symbols_per_s: float
    labels: dict
    confusion: list


@dataclass
class LabelsResult:
    params: dict
    config: SequenceConfig
    vocab: Vocab
    labels: tuple[str, ...]
    max_length: int
    evaluations: list[LabelEvaluation]
    step: int
    interrupted: bool
    out_dir: Path
    best_step: int | None = None


def check_new_run(out_dir: Path, start_over: bool) -> None:
    """One run per directory (training/rundir.py), said in this command's words: a labelling run
    is not resumed, so the way on is another directory or --start-over."""
    found = earlier_run(out_dir)
    if found and not start_over:
        raise CharlstmError(f"{out_dir}: holds another run ({', '.join(found)}); choose another --out, or pass "
                            f"--start-over to move its files into {out_dir / PREVIOUS}N first")


def examples_of(vocab: Vocab, data: LabelData, max_length: int) -> tuple[Examples, int]:
    """(the encoded examples, how many were cut to max_length)."""
    ids, cut = encode_texts(vocab, data.texts, max_length)
    if data.task == "tag":
        labels = [tags[:len(x)].astype(np.int64) for tags, x in zip(data.labels, ids)]
    else:
        labels = np.asarray(data.labels, dtype=np.int64)
    return Examples.of(ids, labels), cut


def step_bytes(batch_size: int, max_length: int, hidden_size: int, num_layers: int, embedding_size: int,
               vocab_size: int = 1, directions: int = 1) -> int:
    """About the memory a run holds, in float32: the weights four times (themselves, their
    gradients, Adam's two moments; a layer's input and recurrent matrices of up to four gates),
    and for a step's backward pass some eight values per unit, position and example of every
    layer and direction."""
    inputs = max(embedding_size or vocab_size, hidden_size * directions)
    weights = vocab_size * embedding_size + num_layers * directions * 4 * hidden_size * (inputs + hidden_size + 1)
    return 4 * (4 * weights + 8 * batch_size * max_length * hidden_size * num_layers * directions)


# --- the run ----------------------------------------------------------------------------------------

def train_labels(train: LabelData, held_out: LabelData, out_dir, model_options: dict | None = None,
                 config: LabelTrainConfig = LabelTrainConfig(), progress: Progress | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 on_eval: Callable[[LabelEvaluation], None] | None = None,
                 say: Callable[[str], None] | None = None, start_over: bool = False, reads=(),
                 about: dict | None = None) -> LabelsResult:
    """Train a classifier (train.labels one index per text) or a tagger (one array per text) and
    evaluate it on held_out, writing checkpoints and metrics to out_dir (see the module docstring).
    With held_out empty, an evaluation measures the training loss alone and best.npz is the latest.

    model_options: SequenceConfig's fields (cell, hidden_size, num_layers, embedding_size,
    dropout, bidirectional, pooling); None, or a name left out, takes its default.
    progress: shown the run's progress; should_stop: called between steps, True ends the run
    (latest.npz saved, the result marked interrupted); on_eval: called with each evaluation;
    say: told the lines about the data (examples cut) and about files moved aside by start_over;
    reads: the input paths, never written over; about: kept in the checkpoints' training record.
    """
    say = say or (lambda line: None)
    progress = progress or Silent()
    # --- configuration and data: every problem found before the run directory is touched -----
    out_dir = given_path(out_dir, "the output directory")
    check_new_run(out_dir, start_over)
    task = train.task
    if not train.texts:
        raise CharlstmError("no training examples")
    vocab = label_vocab(train.texts, UNITS[task], config.min_count)
    examples, cut = examples_of(vocab, train, config.max_length)
    held, held_cut = examples_of(vocab, held_out, config.max_length)
    if cut or held_cut:
        say(f"cut {cut:,} of {len(examples.ids):,} training and {held_cut:,} of {len(held.ids):,} held-out examples "
            f"to their first {config.max_length:,} symbols (max_length)")
    model_config = SequenceConfig(vocab_size=len(vocab), num_labels=len(train.names), task=task,
                                  **{k: v for k, v in (model_options or {}).items() if v is not None})
    validate.fits(functools.partial(step_bytes, vocab_size=len(vocab), directions=len(model_config.directions)),
                  {"batch_size": config.batch_size, "max_length": int(examples.lengths.max()),
                   "hidden_size": model_config.hidden_size, "num_layers": model_config.num_layers,
                   "embedding_size": model_config.embedding_size},
                  "the model and a training step", floors={"embedding_size": 0})

    # --- model and optimiser ----------------------------------------------------------------------
    rng = np.random.default_rng(config.seed)
    params = init_sequence_params(model_config, rng)
    record = {"config": asdict(config), "data": dict(about or {}, train_examples=len(examples.ids),
                                                      held_out_examples=len(held.ids), cut=cut + held_cut)}
    run = _Run(params, model_config, vocab, train.names, config, adam_init(params), rng, record)

    # --- the run directory, then the loop ----------------------------------------------------------
    with RunDir(out_dir, start_over=start_over, reads=list(reads), say=say) as run_dir:
        try:
            return _loop(run_dir, run, examples, held, progress, should_stop or (lambda: False), on_eval)
        finally:
            progress.close()


@dataclass
class _Run:
    """What the loop carries from one step to the next, and what a checkpoint writes."""
    params: dict
    model_config: SequenceConfig
    vocab: Vocab
    labels: tuple[str, ...]
    config: LabelTrainConfig
    adam: object
    rng: np.random.Generator
    record: dict
    step: int = 0
    epoch: float = 0.0
    elapsed_s: float = 0.0
    best: dict = field(default_factory=dict)       # step, val_accuracy, val_loss of best.npz

    def checkpoint(self) -> LabelsCheckpoint:
        train = {**self.record, "step": self.step, "epoch": self.epoch, "elapsed_s": round(self.elapsed_s, 3),
                 "best": self.best or None}
        return LabelsCheckpoint(KINDS[self.model_config.task], self.params, self.model_config, self.vocab,
                                self.labels, self.config.max_length, train)


def _loop(run_dir: RunDir, run: _Run, examples: Examples, held: Examples, progress: Progress, should_stop,
          on_eval) -> LabelsResult:
    """Steps until a bound is reached or the caller asks to stop; evaluates and saves every
    eval_every steps and at the end."""
    config, model_config = run.config, run.model_config
    loss_of = tag_loss if model_config.task == "tag" else classify_loss
    per_pass = math.ceil(len(examples.ids) / config.batch_size)
    epochs = DEFAULT_EPOCHS if config.max_steps is None and config.max_time is None and config.epochs is None \
        else config.epochs
    total = config.max_steps
    if epochs is not None:
        total = min(total or math.inf, math.ceil(epochs * per_pass))
    started = time.perf_counter()
    evaluations: list[LabelEvaluation] = []
    batches, position, passes = [], 0, 0
    window_loss, window_steps, window_symbols, window_start = 0.0, 0, 0, time.perf_counter()
    last_eval_step, stop_asked = -1, False

    def fraction_done() -> float:
        parts = [run.step / total] if total else []
        if config.max_time:
            parts.append((time.perf_counter() - started) / config.max_time)
        return min(1.0, max(parts)) if parts else 0.0

    def lr() -> float:
        return learning_rate(config.lr, config.lr_schedule, step=run.step, fraction=fraction_done(),
                             min_lr_fraction=LR_FLOOR)

    def evaluate_and_save() -> None:
        nonlocal window_loss, window_steps, window_symbols, window_start
        run.elapsed_s = time.perf_counter() - started
        val_loss, found = None, {"accuracy": None, "labels": {}, "confusion": []}
        if held.ids:
            truth, guess, val_loss = truth_and_guess(held.labels, predict_probs(run.params, model_config, held.ids,
                                                                         config.batch_size))
            found = figures(confusion(truth, guess, model_config.num_labels), run.labels,
                            "characters" if model_config.task == "tag" else "examples")
        ev = LabelEvaluation(step=run.step, epoch=round(run.epoch, 4), elapsed_s=round(run.elapsed_s, 3),
                             train_loss=window_loss / max(1, window_steps), val_loss=val_loss,
                             val_accuracy=found["accuracy"], lr=lr(),
                             symbols_per_s=round(window_symbols / max(1e-9, time.perf_counter() - window_start), 1),
                             labels=found["labels"], confusion=found["confusion"])
        best = run.best
        if not best or val_loss is None or \
                (ev.val_accuracy, -ev.val_loss) > (best["val_accuracy"], -best["val_loss"]):
            run.best = {"step": ev.step, "val_accuracy": ev.val_accuracy, "val_loss": ev.val_loss}
        save_labels_checkpoint(run_dir.latest, run.checkpoint())
        if run.best["step"] == run.step:
            run_dir.promote_best()
        run_dir.append_metrics(asdict(ev))
        evaluations.append(ev)
        if on_eval is not None:
            on_eval(ev)
        held_line = "" if val_loss is None else f", held-out {ev.val_loss:.4f} nats, accuracy {ev.val_accuracy:.3f}"
        progress.message(f"step {ev.step}: train {ev.train_loss:.4f} nats{held_line}")
        window_loss, window_steps, window_symbols, window_start = 0.0, 0, 0, time.perf_counter()

    def result(interrupted: bool) -> LabelsResult:
        if interrupted:          # saved for use, not evaluated: the record stays that of the evaluations
            run.elapsed_s = time.perf_counter() - started
            save_labels_checkpoint(run_dir.latest, run.checkpoint())
        return LabelsResult(run.params, model_config, run.vocab, run.labels, config.max_length, evaluations,
                            run.step, interrupted, run_dir.path, run.best.get("step"))

    progress.start(None if total is None else int(total), 0)
    while True:
        if total is not None and run.step >= total:
            break
        if config.max_time is not None and time.perf_counter() - started >= config.max_time:
            break
        if stop_asked or should_stop():
            return result(interrupted=True)
        if position == len(batches):       # a new pass over the training examples
            batches, position, passes = training_batches(examples.lengths, config.batch_size, run.rng), 0, passes + 1
        ids, lengths, labels = batch(examples, batches[position])
        position += 1
        masks = sequence_dropout_masks(model_config, ids.shape[0], ids.shape[1], run.rng)
        loss, grads, _ = loss_of(run.params, model_config, ids, lengths, labels, masks)
        norm = clip_by_global_norm(grads, config.grad_clip)
        if not (math.isfinite(loss) and math.isfinite(norm)):
            kept = f"the last good checkpoint {run_dir.latest} is kept" if run_dir.latest.exists() else \
                "no checkpoint had been written yet"
            raise CharlstmError(f"training diverged at step {run.step + 1} (loss {loss}, gradient norm {norm}); "
                                f"the update was not applied and {kept}; start again with a lower --lr")
        adam_update(run.params, grads, run.adam, lr())
        run.step += 1
        run.epoch = passes - 1 + position / len(batches)
        window_loss, window_steps, window_symbols = window_loss + loss, window_steps + 1, window_symbols + int(lengths.sum())
        progress.step(run.step, loss, window_symbols / max(1e-9, time.perf_counter() - window_start))
        if run.step % config.eval_every == 0:
            try:
                evaluate_and_save()
                last_eval_step = run.step
            except Interrupted:     # a stop during the held-out pass: taken at the next decision
                stop_asked = True
    if run.step != last_eval_step and not stop_asked:
        try:
            evaluate_and_save()
        except Interrupted:
            stop_asked = True
    return result(interrupted=stop_asked)


__all__ = ["LabelTrainConfig", "LabelData", "LabelEvaluation", "LabelsResult", "train_labels", "check_new_run",
           "examples_of", "DEFAULT_VAL_FRACTION", "LR_FLOOR", "UNITS"]
