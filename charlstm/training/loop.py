"""The training loop: configuration, data, model, optimiser, loop, evaluation, checkpoints.

Read it top to bottom. A run directory holds
    latest.npz     the most recent checkpoint (also written on Ctrl-C / SIGTERM)
    best.npz       the checkpoint with the lowest validation loss so far
    metrics.jsonl  one JSON object per evaluation
Every checkpoint carries what --resume needs (optimiser moments, step, stream position, carried
state, random state), so a run stopped and resumed computes the same numbers as one never stopped.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from charlstm.training.checkpoint import load_checkpoint, save_checkpoint
from charlstm.data.text import MAX_TEXT_BYTES, make_streams, read_text, split_ids
from charlstm.errors import CharlstmError
from charlstm.training.evaluation import evaluate_ids, nats_to_bits
from charlstm.model.config import ModelConfig, State, zero_state
from charlstm.model import dropout_masks, init_params, loss_and_grads
from charlstm.nn.workspace import Workspace
from charlstm.nn.optim import AdamState, adam_init, adam_update, clip_by_global_norm, learning_rate
from charlstm.training.rundir import RunDir
from charlstm.decoding.sampling import sample_texts
from charlstm.data.vocab import Vocab, build_and_encode

DEFAULT_EPOCHS = 10   # how long a run lasts when no bound at all is given
MAX_SKIPS_IN_A_ROW = 10   # with on_nonfinite="skip": the lr has been halved this often, give up


@dataclass(frozen=True)
class TrainConfig:
    """How to train. CLI options map one to one onto these fields; the defaults live here."""

    batch_size: int = 32
    seq_length: int = 100
    # lr 3e-3 with a cosine decay over the run and dropout 0.2 (ModelConfig) were chosen by
    # measurement: see scripts/recipe.py and the README's "Default recipe" section.
    lr: float = 3e-3
    lr_schedule: str = "cosine"        # constant | cosine | step (see optim.learning_rate)
    lr_decay: float = 0.97             # the step schedule's factor
    lr_decay_every: int = 1000         # ... applied every this many steps
    warmup_steps: int = 0
    grad_clip: float = 5.0
    max_steps: int | None = None       # total optimiser steps of the run, resumed ones included
    max_time: float | None = None      # seconds of this invocation
    epochs: float | None = None        # passes over the training split
    eval_every: int = 200              # steps between evaluations and checkpoints
    val_fraction: float = 0.05
    seed: int = 0
    unit: str = "grapheme"
    min_count: int = 1
    sample_length: int = 200           # the sample shown at each evaluation
    dtype: str = "float32"
    on_nonfinite: str = "stop"         # stop | skip (skip the batch and halve the learning rate)

    def __post_init__(self):
        checks = [
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.seq_length >= 1, "--seq-length must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), "--lr must be a positive number"),
            (self.lr_schedule in ("constant", "cosine", "step"), "--lr-schedule must be constant, cosine or step"),
            (self.grad_clip >= 0, "--grad-clip must be >= 0 (0 turns clipping off)"),
            (self.max_steps is None or self.max_steps >= 0, "--max-steps must be >= 0"),
            (self.max_time is None or self.max_time > 0, "--max-time must be a positive number of seconds"),
            (self.epochs is None or self.epochs > 0, "--epochs must be positive"),
            (self.eval_every >= 1, "--eval-every must be at least 1"),
            (0.0 <= self.val_fraction < 1.0, "--val-fraction must be in [0, 1)"),
            (self.min_count >= 1, "--min-count must be at least 1"),
            (self.sample_length >= 0, "sample_length must be >= 0 (0: no sample at evaluations)"),
            (self.dtype in ("float32", "float64"), "dtype must be float32 or float64"),
            (self.on_nonfinite in ("stop", "skip"), "on_nonfinite must be stop or skip"),
        ]
        for ok, message in checks:
            if not ok:
                raise CharlstmError(message)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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


@dataclass
class _Progress:
    """Training progress that crosses chunk and process boundaries (saved for --resume)."""

    step: int = 0
    chunk: int = 0              # next chunk of the current pass
    epoch: int = 0              # completed passes
    elapsed_s: float = 0.0      # training time of all invocations
    best_val: float | None = None
    lr_scale: float = 1.0       # lowered when a non-finite batch is skipped
    best_step: int | None = None   # the step best.npz holds


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so a checkpoint is written
    by the loop itself and never from the middle of an update."""

    def __init__(self):
        self.received: str | None = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def load_corpus(path, encoding_errors: str = "strict", newline: str = "keep",
                max_bytes: int | None = MAX_TEXT_BYTES) -> str:
    text = read_text(path, errors=encoding_errors, newline=newline, max_bytes=max_bytes)
    if not text.strip():
        raise CharlstmError(f"{path}: the corpus is empty (or only whitespace)")
    return text


def train(corpus=None, out_dir="run", config: TrainConfig = TrainConfig(), model: dict | None = None,
          text: str | None = None, resume=None, progress: bool = True,
          on_eval: Callable[[Evaluation], None] | None = None,
          encoding_errors: str = "strict", newline: str = "keep",
          max_corpus_bytes: int | None = MAX_TEXT_BYTES) -> TrainResult:
    """Train a model on a corpus file (or on `text`), writing checkpoints and metrics to out_dir.

    model: overrides of ModelConfig's fields (hidden_size, num_layers, dropout).
    resume: a checkpoint to continue from; its model, vocabulary and training configuration are
    used, except the run's bounds (max_steps, max_time, epochs), which come from `config`.
    on_eval: called with each Evaluation.
    max_corpus_bytes: a larger corpus file is refused before it is read (None: no cap).
    """
    # --- configuration and data -------------------------------------------------------------
    if text is None:
        if corpus is None:
            raise CharlstmError("give a corpus file (or text=...)")
        text = load_corpus(corpus, encoding_errors, newline, max_corpus_bytes)
    elif not text.strip():
        raise CharlstmError("the corpus is empty (or only whitespace)")

    # Every problem with the inputs is found before the output directory is touched.
    saved = load_checkpoint(resume) if resume is not None else None
    if saved is not None:
        if not saved.train:
            raise CharlstmError(f"{resume}: holds no training state; it cannot be resumed")
        bounds = {k: getattr(config, k) for k in ("max_steps", "max_time", "epochs")}
        try:
            config = replace(TrainConfig.from_dict(saved.train["config"]), **bounds)
        except (KeyError, TypeError, AttributeError) as e:
            raise CharlstmError(f"{resume}: its training configuration is damaged ({e!r}); "
                                "it cannot be resumed") from None
        vocab, model_config = saved.vocab, saved.config
        ids = vocab.encode(text, unknown="unk")
    else:
        vocab, ids = build_and_encode(text, config.unit, config.min_count)
        model_config = replace(ModelConfig(vocab_size=len(vocab)), **(model or {}))
    train_ids, val_ids = split_ids(ids, config.val_fraction)
    streams = make_streams(train_ids, config.batch_size, config.seq_length)

    # --- model, optimiser, state --------------------------------------------------------------
    dtype = np.dtype(config.dtype).type
    rng = np.random.default_rng(config.seed)
    if saved is not None:
        params = {k: v.astype(dtype) for k, v in saved.params.items()}
        adam, state, prog = _restore(saved, params, rng, model_config, config, dtype)
    else:
        params = init_params(model_config, rng, dtype)
        adam = adam_init(params)
        state = zero_state(model_config, config.batch_size, dtype)
        prog = _Progress()

    # --- the run directory: created, checked writable and locked before the first step ----------
    with RunDir(out_dir) as run:
        resumed_here = saved is not None and Path(resume).resolve() == run.latest.resolve()
        if resumed_here and prog.best_step == prog.step:
            run.promote_best()   # a kill between writing latest.npz and copying it to best.npz
        return _loop(run, params, model_config, vocab, config, streams, val_ids, adam, state, prog,
                     rng, progress, on_eval)


def _loop(run, params, model_config, vocab, config, streams, val_ids, adam, state, prog, rng,
          progress, on_eval) -> TrainResult:
    epochs = config.epochs
    if config.max_steps is None and config.max_time is None and epochs is None:
        epochs = DEFAULT_EPOCHS
    steps_per_epoch = streams.chunks_per_pass
    total_steps = config.max_steps
    if epochs is not None:
        by_epochs = int(math.ceil(epochs * steps_per_epoch))
        total_steps = by_epochs if total_steps is None else min(total_steps, by_epochs)

    bar = _progress_bar(progress, total_steps, prog.step)
    evaluations: list[Evaluation] = []
    started = time.perf_counter()
    elapsed_before = prog.elapsed_s
    window_loss, window_steps, window_chars, window_start = 0.0, 0, 0, started
    last_eval_step = prog.step
    interrupted = False
    skipped_in_a_row = 0
    workspace = Workspace()      # the step's activations and gradients, reused every step

    def fraction_done() -> float:
        parts = []
        if total_steps:
            parts.append(prog.step / total_steps)
        if config.max_time:
            parts.append((time.perf_counter() - started) / config.max_time)
        return min(1.0, max(parts)) if parts else 0.0

    def evaluate_and_save() -> None:
        nonlocal window_loss, window_steps, window_chars, window_start, last_eval_step
        now = time.perf_counter()
        prog.elapsed_s = elapsed_before + now - started
        ev = _evaluate(params, model_config, vocab, config, val_ids, prog, steps_per_epoch,
                       window_loss / max(1, window_steps), window_chars / max(1e-9, now - window_start),
                       _lr(config, prog, fraction_done()))
        evaluations.append(ev)
        improved = ev.val_nats is not None and (prog.best_val is None or ev.val_nats < prog.best_val)
        if improved:
            prog.best_val = ev.val_nats
        if improved or config.val_fraction == 0:
            prog.best_step = prog.step
        _save(run.latest, params, model_config, vocab, config, adam, state, prog, rng)
        if prog.best_step == prog.step:
            run.promote_best()
        run.append_metrics(asdict(ev))
        if on_eval is not None:
            on_eval(ev)
        if bar is not None:
            bar.write(_eval_line(ev))
        window_loss, window_steps, window_chars, window_start = 0.0, 0, 0, time.perf_counter()
        last_eval_step = prog.step

    with _StopSignal() as stop:
        while True:
            if total_steps is not None and prog.step >= total_steps:
                break
            if config.max_time is not None and time.perf_counter() - started >= config.max_time:
                break
            if stop.received:
                interrupted = True
                break
            if prog.chunk >= steps_per_epoch:        # a new pass starts from a fresh state
                prog.chunk = 0
                prog.epoch += 1
                state = zero_state(model_config, config.batch_size, state.h.dtype.type)
            inputs, targets, weights = streams.chunk(prog.chunk)
            masks = dropout_masks(model_config, inputs.shape[0], inputs.shape[1], rng, state.h.dtype, workspace)
            loss, grads, new_state, _ = loss_and_grads(params, model_config, inputs.astype(np.intp),
                                                       targets.astype(np.intp), state, masks, weights,
                                                       workspace)
            norm = clip_by_global_norm(grads, config.grad_clip)
            # Checked before the update, so a NaN or inf never reaches the weights or Adam's moments.
            if not (math.isfinite(loss) and math.isfinite(norm)):
                what = f"step {prog.step + 1} (loss {loss}, gradient norm {norm})"
                skipped_in_a_row += 1
                if config.on_nonfinite == "stop" or skipped_in_a_row > MAX_SKIPS_IN_A_ROW:
                    kept = (f"the last good checkpoint {run.latest} is kept" if run.latest.exists()
                            else "no checkpoint had been written yet")
                    why, advice = "", "restart with a lower --lr, or with --on-nonfinite skip"
                    if config.on_nonfinite == "skip":
                        why = f", {skipped_in_a_row} non-finite batches in a row"
                        advice = "restart with a lower --lr"
                    raise CharlstmError(f"training diverged at {what}{why}; the update was not applied and "
                                        f"{kept}; {advice}")
                prog.lr_scale *= 0.5
                run.append_metrics({"event": "skipped_nonfinite_batch", "step": prog.step + 1,
                                    "loss": str(loss), "grad_norm": str(norm), "lr_scale": prog.lr_scale})
                if bar is not None:
                    bar.write(f"skipped the batch of {what}; learning rate now x{prog.lr_scale:g}")
                prog.chunk += 1
                continue
            skipped_in_a_row = 0
            adam_update(params, grads, adam, _lr(config, prog, fraction_done()))
            state = new_state
            prog.step += 1
            prog.chunk += 1
            window_loss += loss
            window_steps += 1
            window_chars += inputs.size if weights is None else int(weights.sum())
            if bar is not None:
                bar.update(1)
                if prog.step % 10 == 0 or prog.step == 1:
                    rate = window_chars / max(1e-9, time.perf_counter() - window_start)
                    bar.set_postfix(loss=f"{loss:.3f}", bpc=f"{nats_to_bits(loss):.3f}",
                                    chars_per_s=f"{rate:,.0f}", refresh=False)
            if prog.step % config.eval_every == 0:
                evaluate_and_save()
        if prog.step > last_eval_step or not run.latest.exists():
            evaluate_and_save()
    if bar is not None:
        bar.close()
    return TrainResult(params=params, config=model_config, vocab=vocab, evaluations=evaluations,
                       step=prog.step, interrupted=interrupted, out_dir=run.path)


def _lr(config: TrainConfig, prog: _Progress, fraction: float) -> float:
    return prog.lr_scale * learning_rate(
        config.lr, config.lr_schedule, step=prog.step, fraction=fraction,
        warmup_steps=config.warmup_steps, decay_rate=config.lr_decay, decay_every=config.lr_decay_every)


def _evaluate(params, model_config, vocab, config, val_ids, prog, steps_per_epoch, train_loss,
              chars_per_s, lr) -> Evaluation:
    val_nats = None
    if len(val_ids) >= 2:
        val_nats, _ = evaluate_ids(params, model_config, val_ids, streams=config.batch_size,
                                   seq_length=config.seq_length)
    # The sample has its own generator, derived from the seed and step, so showing it never
    # changes the training run's random numbers.
    sample_rng = np.random.default_rng([config.seed, prog.step])
    sample = "" if config.sample_length == 0 else sample_texts(
        params, model_config, vocab, sample_rng, length=config.sample_length, temperature=0.8)[0]
    return Evaluation(step=prog.step, epoch=round(prog.epoch + prog.chunk / max(1, steps_per_epoch), 4),
                      elapsed_s=round(prog.elapsed_s, 3), train_loss=train_loss,
                      val_nats=val_nats, val_bpc=None if val_nats is None else nats_to_bits(val_nats),
                      chars_per_s=round(chars_per_s, 1), lr=lr, sample=sample)


def _save(path, params, model_config, vocab, config, adam: AdamState, state: State, prog: _Progress, rng):
    train = {"config": asdict(config), "progress": asdict(prog), "adam_step": adam.step,
             "rng": rng.bit_generator.state}
    extra = {f"state.{part}": getattr(state, part) for part in model_config.cell_type.state}
    for key in params:
        extra[f"adam.m.{key}"] = adam.m[key]
        extra[f"adam.v.{key}"] = adam.v[key]
    save_checkpoint(path, params, model_config, vocab, train=train, extra=extra)


def _restore(saved, params, rng, model_config, config, dtype):
    """Optimiser moments, carried state, progress and random state from a training checkpoint."""
    name = "the checkpoint"
    try:
        adam = AdamState(m={k: saved.extra[f"adam.m.{k}"].astype(dtype) for k in params},
                         v={k: saved.extra[f"adam.v.{k}"].astype(dtype) for k in params},
                         step=int(saved.train["adam_step"]))
        state = State(**{part: saved.extra[f"state.{part}"].astype(dtype) for part in model_config.cell_type.state})
        prog = _Progress(**saved.train["progress"])
        rng.bit_generator.state = saved.train["rng"]
    except (KeyError, TypeError, ValueError) as e:
        raise CharlstmError(f"{name} lacks the training state needed to resume ({e})") from None
    expected = (model_config.num_layers, config.batch_size, model_config.hidden_size)
    if any(getattr(state, part).shape != expected for part in model_config.cell_type.state):
        raise CharlstmError(f"{name}'s carried state has shape {state.h.shape}, expected {expected}")
    for k in params:
        if adam.m[k].shape != params[k].shape or adam.v[k].shape != params[k].shape:
            raise CharlstmError(f"{name}'s optimiser moments for {k} have the wrong shape")
    return adam, state, prog


def _progress_bar(enabled: bool, total: int | None, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.1)


def _eval_line(ev: Evaluation) -> str:
    val = "" if ev.val_nats is None else f" val {ev.val_nats:.4f} nats ({ev.val_bpc:.3f} bpc)"
    return f"step {ev.step}: train {ev.train_loss:.4f} nats{val}, {ev.chars_per_s:,.0f} chars/s"


__all__ = ["TrainConfig", "Evaluation", "TrainResult", "train", "load_corpus", "DEFAULT_EPOCHS"]
