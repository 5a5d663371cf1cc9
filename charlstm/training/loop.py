"""The training loop: configuration, data, model, optimiser, loop, evaluation, checkpoints.

Read it top to bottom. A run directory holds
    latest.npz     the most recent checkpoint (also written when the caller asks the run to stop)
    best.npz       the checkpoint with the lowest validation loss so far
    metrics.jsonl  one JSON object per evaluation
Every checkpoint carries what --resume needs (optimiser moments, step, stream position, carried
state, random state), so a run stopped and resumed computes the same numbers as one never stopped.

The loop owns no process-wide state: the caller passes a `Progress` to show progress (the CLI and
the API pass a tqdm bar) and a `should_stop` function to end the run cleanly between two steps
(the CLI and the API turn Ctrl-C and SIGTERM into it), so it can run inside any program.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from charlstm.data.datadir import ReadOptions
from charlstm.data.encode import ByteProgress
from charlstm.data.streams import make_streams, split_ids
from charlstm.decoding.sampling import check_held_text, sample_texts
from charlstm.interrupts import Interrupted
from charlstm.errors import CharlstmError
from charlstm.files import given_path
from charlstm.model import LabelSet, ModelConfig, State, init_params, input_rows, zero_state
from charlstm.nn.optim import AdamState, adam_init, learning_rate
from charlstm.training import recipe
from charlstm.training.budget import check_training
from charlstm.training.checkpoint import load_checkpoint, save_checkpoint
from charlstm.training.config import DEFAULT_EPOCHS, Evaluation, TrainConfig, TrainResult
from charlstm.training.corpus import Resuming, load_corpus
from charlstm.training.evaluation import nats_to_bits, per_label_of, validation_streams
from charlstm.training.resume import (check_arrays, check_options, check_position, read_record, reading_options,
                                      resumed_config)
from charlstm.training.engine import Engine, NumpyEngine
from charlstm.training.rundir import FollowerDir, RunDir, check_start

MAX_SKIPS_IN_A_ROW = 10   # with on_nonfinite="skip": the lr has been halved this often, give up


class Progress(Protocol):
    """What the loop tells whoever shows its progress."""

    def start(self, total_steps: int | None, done_steps: int) -> None: ...
    def step(self, step: int, loss: float, chars_per_s: float) -> None: ...
    def message(self, line: str) -> None: ...
    def close(self) -> None: ...


class Silent:
    """A Progress that shows nothing."""

    def start(self, total_steps, done_steps): pass
    def step(self, step, loss, chars_per_s): pass
    def message(self, line): pass
    def close(self): pass


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
    window_loss: float = 0.0    # summed training loss of the steps since the last evaluation ...
    window_steps: int = 0       # ... and their number: a resumed run reports the same average


@dataclass
class _Run:
    """Everything a run carries from one step to the next; `_save` writes all of it."""

    params: dict
    model_config: ModelConfig
    vocab: object
    config: TrainConfig
    adam: AdamState
    state: State
    prog: _Progress
    rng: np.random.Generator
    about: dict = field(default_factory=dict)   # the corpus trained on (data/datadir.corpus_record), init_from
    labels: LabelSet | None = None              # a model conditioned on labels: their names and counts


@dataclass
class _Window:
    """The speed since the last evaluation (or since this invocation started)."""

    chars: int = 0
    start: float = field(default_factory=time.perf_counter)

    def chars_per_s(self) -> float:
        return self.chars / max(1e-9, time.perf_counter() - self.start)


def check_vocab(vocab, min_count: int, corpus_name: str) -> None:
    """A vocabulary of nothing but the unknown symbol would train to 0 bits and write only U+FFFD."""
    if len(vocab) == 1 and vocab.unk is not None:
        raise CharlstmError(f"{corpus_name}: no symbol occurs --min-count {min_count:,} times, so every symbol "
                            "would be the unknown one; lower --min-count")


def train(corpus=None, out_dir="run", config: TrainConfig = TrainConfig(), model_options: dict | None = None,
          text: str | None = None, resume=None, progress: Progress | None = None,
          should_stop: Callable[[], bool] | None = None,
          on_eval: Callable[[Evaluation], None] | None = None,
          encoding_errors: str | None = None, newline: str | None = None, init_from=None,
          on_locked: Callable[[Path], None] | None = None, on_bytes: ByteProgress | None = None,
          use_recipe: bool = False, on_recipe: Callable[[str], None] | None = None,
          start_over: bool = False, say: Callable[[str], None] | None = None,
          engine: Engine | None = None) -> TrainResult:
    """Train a model on a corpus (or on `text`), writing checkpoints and metrics to out_dir.

    corpus: a text file of any size, or a data directory (`charlstm corpus encode`; see
    training/corpus.py for how each is read). config: the settings the recipe may choose may be
    None (TrainConfig).
    resume: a checkpoint of the run to continue; its model, vocabulary, training configuration,
    reading options and bounds are used, except that bounds given in `config` (max_steps,
    max_time, epochs; any of them) replace its bounds. The corpus must be the one it was trained
    on, read the same way.
    init_from: a checkpoint whose weights and vocabulary start a new run (fine-tuning): a fresh
    optimiser, step 0, `config` as given.
    progress: shown the run's progress (default: nothing is shown).
    should_stop: called between steps; when it returns True the run saves latest.npz (without an
    evaluation, so the record is the one an uninterrupted run writes) and returns interrupted.
    model_options: ModelConfig's fields (cell, hidden_size, num_layers, embedding_size, dropout);
    None, or a name left out, is not given.
    on_eval: called with each Evaluation. on_bytes: shown the bytes read of a large corpus file.
    encoding_errors, newline: how to read the corpus (default strict, keep; a resumed run's own).
    on_locked: called with the run directory once it is created and locked, before the first step
    (the CLI writes its copy of the default corpus there, after every check has passed).
    use_recipe: the settings left None in `config` and `model_options` follow the corpus and the
    budget (training/recipe.py); False: they take the library defaults. A resumed run keeps the
    settings it started with.
    on_recipe: told the recipe's line (what it chose and why) before the run starts.
    start_over: out_dir may hold an earlier run, whose files are moved aside into a previous-N
    folder there before the first step (without it, a new run there is refused; see
    training/rundir.py); say: told the line that says where they went.
    engine: what computes each step (training/engine.py; default charlstm's NumPy engine). An
    engine shared by several processes (a distributed PyTorch run) has one of them, rank 0,
    check, lock and write the run directory; the others read the corpus and take their part of
    every batch.
    """
    engine = engine or NumpyEngine()
    writer = engine.rank == 0
    # --- configuration and data -------------------------------------------------------------
    # Every problem with the inputs is found before the output directory is touched.
    model_options = dict(model_options or {})
    # (reading options given to a resumed run are refused by the corpus check below, which says
    # how the run read its corpus)
    check_options(model_options, resume, init_from)
    out_dir = given_path(out_dir, "the output directory")       # never '' read as '.'
    if writer:
        check_start(out_dir, resume, start_over)      # again under the lock (RunDir), where it counts
    saved = load_checkpoint(resume) if resume is not None else None
    base = load_checkpoint(init_from) if init_from is not None else None
    resuming = saved_reading = None
    if saved is not None:
        saved_config, saved_reading, saved_corpus = read_record(saved.train, str(resume))
        check_arrays(saved.extra, str(resume))
        config = resumed_config(saved_config, config)
        resuming = Resuming(str(resume), saved_corpus, saved.vocab)
    elif base is not None:
        config = replace(config, unit=base.vocab.unit)
        resuming = Resuming(str(init_from), None, base.vocab, fine_tune=True)
    reading = reading_options(encoding_errors, newline, saved_reading)
    progress = (progress or Silent()) if writer else Silent()
    # Sizes that cannot fit are refused before the corpus is read (the vocabulary's size is not
    # known yet: one symbol is the least it adds), and again below once it is.
    least = {"hidden_size": 1, "num_layers": 1, "embedding_size": 0,
             **{k: v for k, v in model_options.items() if v is not None}}
    check_training(1, least["hidden_size"], least["num_layers"], least["embedding_size"], config.batch_size,
                   config.seq_length, itemsize=np.dtype(config.dtype).itemsize)
    check_held_text(config.sample_length, name="sample_length", samples_name=None,
                    what="the sample shown at each evaluation")
    data = load_corpus(corpus, text, ReadOptions(config.unit, reading["newline"], reading["encoding_errors"],
                                                 config.min_count),
                       out_dir, resuming, progress=on_bytes if writer else None, message=progress.message,
                       labels=config.labels, seed=config.seed)
    recipe_line = ""
    if saved is None:               # a resumed run's settings are in its checkpoint
        config, model_options, recipe_line = recipe.settle(config, model_options, _train_symbols(data, config),
                                                           fixed_model=base is not None, use_recipe=use_recipe)
    if saved is not None:
        vocab, model_config = saved.vocab, saved.config
    elif base is not None:
        vocab, model_config = base.vocab, base.config
    else:
        if data.from_data_dir:          # the data directory says how its text was read
            config = replace(config, unit=data.options.unit, min_count=data.options.min_count)
        vocab = data.vocab
        check_vocab(vocab, config.min_count, data.name)
        model_config = ModelConfig(vocab_size=len(vocab), num_labels=len(data.labels or ()),
                                   **model_options)   # not replace(): E follows H
    check_labels(data.labels, saved or base, str(resume or init_from), engine)
    if data.ids is not None:
        streams, val_ids = _split(data, config, model_config)

    # --- model, optimiser, state --------------------------------------------------------------
    dtype = np.dtype(config.dtype).type
    check_training(model_config.vocab_size, model_config.hidden_size, model_config.num_layers,
                   model_config.embedding_size, config.batch_size, config.seq_length, model_config.cell,
                   np.dtype(dtype).itemsize)
    rng = np.random.default_rng(config.seed)
    if saved is not None:
        params = {k: v.astype(dtype) for k, v in saved.params.items()}
        adam, state, prog = restore_training_state(saved, params, rng, model_config, config, dtype)
        if data.ids is not None:
            check_position(prog.chunk, streams.chunks_per_pass, str(resume))
    else:
        params = init_params(model_config, rng, dtype) if base is None else \
            {k: v.astype(dtype) for k, v in base.params.items()}
        adam = adam_init(params)
        state = zero_state(model_config, config.batch_size, dtype)
        prog = _Progress()
    about = {"corpus": data.record, **({"init_from": str(init_from)} if base is not None else {}),
             "engine": engine.name, "world_size": engine.world_size}
    if text is None and corpus is not None:    # where it was, so `charlstm eval CKPT --held-out` finds it again
        about["corpus_path"] = str(Path(corpus).resolve())
    run = _Run(params, model_config, vocab, config, adam, state, prog, rng, about, data.labels)

    # --- the run directory: created, checked writable and locked before the first step ----------
    held = RunDir(out_dir, resume, start_over, reads=[corpus], say=say) if writer else FollowerDir(out_dir)
    with held as run_dir:
        if writer and on_recipe is not None and recipe_line:       # every check has passed: the run starts
            on_recipe(recipe_line)
        if writer and on_locked is not None:
            on_locked(run_dir.path)
        if data.ids is None:            # a large file: encoded into the run directory, once
            if writer:
                data.encode_into(run_dir.path, on_bytes)
            engine.barrier()            # the other processes read what the first one encoded
            if not writer:
                data.open_encoded(run_dir.path)
            streams, val_ids = _split(data, config, model_config)
            if saved is not None:
                check_position(prog.chunk, streams.chunks_per_pass, str(resume))
        resumed_here = saved is not None and Path(resume).resolve() == run_dir.latest.resolve()
        if resumed_here and prog.best_step == prog.step:
            run_dir.promote_best()   # a kill between writing latest.npz and copying it to best.npz
        try:
            engine.start(run)
            return _loop(run_dir, run, engine, streams, val_ids, progress, should_stop or (lambda: False), on_eval)
        finally:
            progress.close()
            engine.close()


def check_labels(labels: LabelSet | None, ckpt, name: str, engine: Engine) -> None:
    """A labelled corpus trains a model conditioned on its labels, on the NumPy engine; a run
    resumed or started from a checkpoint keeps that checkpoint's labels, or its having none."""
    if labels is not None and engine.name != "numpy":
        raise CharlstmError(f"--labels trains on the NumPy engine only; the {engine.name} engine's module reads "
                            "plain symbols")
    if ckpt is None or ckpt.labels == labels:
        return
    if labels is None:
        raise CharlstmError(f"{name} is conditioned on labels ({ckpt.labels.listed()}): train it on a labelled "
                            "file with --labels")
    if ckpt.labels is None:
        raise CharlstmError(f"{name} has no labels, so a run with --labels cannot start from it; start one "
                            "without --init-from")
    raise CharlstmError(f"{name} was trained on the labels {ckpt.labels.listed()} (with their counts of "
                        f"examples), the corpus has {labels.listed()}")


def _train_symbols(data, config: TrainConfig) -> int:
    """The symbols of the training split (a large file's are counted before it is encoded)."""
    symbols = len(data.ids) if data.ids is not None else int(data.record.get("symbols") or 0)
    return symbols - int(symbols * config.val_fraction)


def _split(data, config: TrainConfig, model_config: ModelConfig) -> tuple:
    """(training streams, validation ids): the held-out tail, and streams over the rest (over joint
    ids for a model conditioned on labels, each predicting its successor's symbol)."""
    train_ids, val_ids = split_ids(data.ids, config.val_fraction)
    return make_streams(train_ids, config.batch_size, config.seq_length, input_rows(model_config),
                        data.ids_name or data.name, per_label_of(model_config)), val_ids


def _loop(run_dir: RunDir, run: _Run, engine: Engine, streams, val_ids, progress: Progress, should_stop,
          on_eval) -> TrainResult:
    """Steps until a bound is reached or the caller asks to stop; evaluates and saves every
    `eval_every` steps or `eval_interval` seconds, whichever comes first, and at the end.

    Processes that share a run (engine.world_size > 1) take every decision together: what a
    clock or a signal decides goes through engine.agree, and only rank 0 evaluates and writes."""
    config, prog = run.config, run.prog
    total_steps = _total_steps(config, streams.chunks_per_pass)
    started = time.perf_counter()
    elapsed_before = prog.elapsed_s
    progress.start(total_steps, prog.step)
    evaluations: list[Evaluation] = []
    window = _Window()
    last_eval_step = prog.step
    last_eval_time = time.perf_counter()
    skipped_in_a_row = 0
    stop_asked = False          # a stop asked for during an evaluation, taken at the next decision
    writer = engine.rank == 0

    def elapsed() -> float:
        """The run's time so far: --max-time bounds it across invocations, as --max-steps does
        steps, so a resumed run ends when the one never stopped would, its schedule unbroken."""
        return elapsed_before + time.perf_counter() - started

    def fraction_done() -> float:
        parts = []
        if total_steps:
            parts.append(prog.step / total_steps)
        if config.max_time:
            parts.append(elapsed() / config.max_time)
        return min(1.0, max(parts)) if parts else 0.0

    def evaluate_and_save() -> None:
        prog.elapsed_s = elapsed_before + time.perf_counter() - started
        engine.sync(run)
        if not writer:
            prog.window_loss, prog.window_steps = 0.0, 0
            return
        ev = _evaluate(run, engine, val_ids, streams.chunks_per_pass, window, _lr(config, prog, fraction_done()))
        prog.window_loss, prog.window_steps = 0.0, 0      # before the save: a resumed run starts anew
        _record(run_dir, run, ev)
        evaluations.append(ev)
        if on_eval is not None:
            on_eval(ev)
        progress.message(_eval_line(ev))

    def interrupted() -> TrainResult:
        # Saved for --resume, but not evaluated: the record stays that of an uninterrupted run.
        prog.elapsed_s = elapsed_before + time.perf_counter() - started
        engine.sync(run)
        if writer:
            _save(run_dir.latest, run)
        return _result(run, evaluations, run_dir, interrupted=True)

    while True:
        bound = total_steps is not None and prog.step >= total_steps
        time_up = not bound and config.max_time is not None and elapsed() >= config.max_time
        stop, time_up, _ = engine.agree(stop_asked or (not (bound or time_up) and should_stop()), time_up, False)
        if stop:
            return interrupted()
        if bound or time_up:
            break
        if prog.chunk >= streams.chunks_per_pass:       # a new pass starts from a fresh state
            prog.chunk = 0
            prog.epoch += 1
            engine.reset_state(run)
        inputs, targets, weights = streams.chunk(prog.chunk)
        loss, norm, applied = engine.step(run, inputs, targets, weights, _lr(config, prog, fraction_done()))
        prog.chunk += 1
        if not applied:
            skipped_in_a_row += 1
            _skip_or_stop(run_dir, run, loss, norm, skipped_in_a_row, progress)
            continue
        skipped_in_a_row = 0
        prog.step += 1
        prog.window_loss += loss
        prog.window_steps += 1
        window.chars += inputs.size if weights is None else int(weights.sum())
        progress.step(prog.step, loss, window.chars_per_s())
        if config.eval_interval is None:        # on whole multiples, so a resumed run evaluates where it would have
            due = prog.step % config.eval_every == 0
        else:                                   # since the last evaluation, by steps or on the clock
            _, _, due = engine.agree(False, False, prog.step - last_eval_step >= config.eval_every or
                                     time.perf_counter() - last_eval_time >= config.eval_interval)
        try:
            if due:
                evaluate_and_save()
                window, last_eval_step, last_eval_time = _Window(), prog.step, time.perf_counter()
        except Interrupted:
            # A stop asked for during the evaluation (a long validation or sample checks for it):
            # the last step is whole, so the run is saved at the next decision, as at any other stop.
            stop_asked = True
    _, _, due = engine.agree(False, False, prog.step > last_eval_step or not run_dir.latest.exists())
    try:
        if due:
            evaluate_and_save()
    except Interrupted:
        stop_asked = True
    stop, _, _ = engine.agree(stop_asked, False, False)
    if stop:
        return interrupted()
    return _result(run, evaluations, run_dir, interrupted=False)


def _total_steps(config: TrainConfig, steps_per_epoch: int) -> int | None:
    """The run's length in steps, from --max-steps and --epochs (10 epochs when no bound is given)."""
    epochs = config.epochs
    if config.max_steps is None and config.max_time is None and epochs is None:
        epochs = DEFAULT_EPOCHS
    total = config.max_steps
    if epochs is not None:
        by_epochs = int(math.ceil(epochs * steps_per_epoch))
        total = by_epochs if total is None else min(total, by_epochs)
    return total


def _skip_or_stop(run_dir: RunDir, run: _Run, loss: float, norm: float, skipped_in_a_row: int,
                  progress: Progress) -> None:
    """After a non-finite batch: stop with an error (the default), or halve the learning rate and
    go on (--on-nonfinite skip), up to MAX_SKIPS_IN_A_ROW times in a row."""
    config, prog = run.config, run.prog
    what = f"step {prog.step + 1} (loss {loss}, gradient norm {norm})"
    if config.on_nonfinite == "stop" or skipped_in_a_row > MAX_SKIPS_IN_A_ROW:
        kept = (f"the last good checkpoint {run_dir.latest} is kept" if run_dir.latest.exists()
                else "no checkpoint had been written yet")
        why, advice = "", "restart with a lower --lr, or with --on-nonfinite skip"
        if config.on_nonfinite == "skip":
            why = f", {skipped_in_a_row} non-finite batches in a row"
            advice = "restart with a lower --lr"
        raise CharlstmError(f"training diverged at {what}{why}; the update was not applied and "
                            f"{kept}; {advice}")
    prog.lr_scale *= 0.5
    run_dir.append_metrics({"event": "skipped_nonfinite_batch", "step": prog.step + 1,
                            "loss": str(loss), "grad_norm": str(norm), "lr_scale": prog.lr_scale})
    progress.message(f"skipped the batch of {what}; learning rate now x{prog.lr_scale:g}")


def _lr(config: TrainConfig, prog: _Progress, fraction: float) -> float:
    return prog.lr_scale * learning_rate(
        config.lr, config.lr_schedule, step=prog.step, fraction=fraction, warmup_steps=config.warmup_steps,
        decay_rate=config.lr_decay, decay_every=config.lr_decay_every, min_lr_fraction=config.lr_floor)


def _evaluate(run: _Run, engine: Engine, val_ids, steps_per_epoch: int, window: _Window, lr: float) -> Evaluation:
    config, prog = run.config, run.prog
    val_nats = None
    if len(val_ids) >= 2:
        val_nats, _ = engine.evaluate(run, validation_streams(val_ids, config.batch_size, config.seq_length,
                                                              config.val_symbols, per_label_of(run.model_config)))
    # The sample has its own generator, derived from the seed and step, so showing it never
    # changes the training run's random numbers.
    sample_rng = np.random.default_rng([config.seed, prog.step])
    # (a model conditioned on labels writes it under its first label)
    sample = "" if config.sample_length == 0 else sample_texts(
        run.params, run.model_config, run.vocab, sample_rng, length=config.sample_length,
        temperature=config.sample_temperature, label=0 if run.labels is not None else None)[0]
    return Evaluation(step=prog.step, epoch=round(prog.epoch + prog.chunk / max(1, steps_per_epoch), 4),
                      elapsed_s=round(prog.elapsed_s, 3), train_loss=prog.window_loss / max(1, prog.window_steps),
                      val_nats=val_nats, val_bpc=None if val_nats is None else nats_to_bits(val_nats),
                      chars_per_s=round(window.chars_per_s(), 1), lr=lr, sample=sample)


def _record(run_dir: RunDir, run: _Run, ev: Evaluation) -> None:
    """Keep an evaluation: latest.npz, best.npz if it is the best so far, a line of metrics."""
    prog = run.prog
    improved = ev.val_nats is not None and (prog.best_val is None or ev.val_nats < prog.best_val)
    if improved:
        prog.best_val = ev.val_nats
    if improved or run.config.val_fraction == 0:
        prog.best_step = prog.step
    _save(run_dir.latest, run)
    if prog.best_step == prog.step:
        run_dir.promote_best()
    run_dir.append_metrics(asdict(ev))


def _save(path, run: _Run) -> None:
    train = {"config": asdict(run.config), "progress": asdict(run.prog), "adam_step": run.adam.step,
             "rng": run.rng.bit_generator.state, **run.about}
    extra = {f"state.{part}": getattr(run.state, part) for part in run.model_config.cell_type.state}
    for key in run.params:
        extra[f"adam.m.{key}"] = run.adam.m[key]
        extra[f"adam.v.{key}"] = run.adam.v[key]
    save_checkpoint(path, run.params, run.model_config, run.vocab, train=train, extra=extra, labels=run.labels)


def restore_training_state(saved, params, rng, model_config, config, dtype):
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


def _result(run: _Run, evaluations, run_dir: RunDir, interrupted: bool) -> TrainResult:
    return TrainResult(params=run.params, config=run.model_config, vocab=run.vocab, evaluations=evaluations,
                       step=run.prog.step, interrupted=interrupted, out_dir=run_dir.path, labels=run.labels)


def _eval_line(ev: Evaluation) -> str:
    val = "" if ev.val_nats is None else f" val {ev.val_nats:.4f} nats ({ev.val_bpc:.3f} bpc)"
    return f"step {ev.step}: train {ev.train_loss:.4f} nats{val}, {ev.chars_per_s:,.0f} chars/s"


__all__ = ["TrainConfig", "Evaluation", "TrainResult", "Progress", "Silent", "train", "load_corpus",
           "DEFAULT_EPOCHS"]
