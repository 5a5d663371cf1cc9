"""The notebook-facing API: a Model that samples, evaluates and saves itself, and load/train.

Everything here is a thin layer over the packages below it (model, decoding, training); the CLI
is a thin layer over this.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from charlstm import validate
from charlstm.data.datadir import is_data_dir
from charlstm.data.vocab import Vocab
from charlstm.decoding.beam import BeamResult, beam_search
from charlstm.decoding.sampling import generate, sample_texts
from charlstm.errors import CharlstmError
from charlstm.model import ModelConfig, init_params
from charlstm.progress import ByteBar, ProgressBar, StopOnSignals
from charlstm.training import loop as _train
from charlstm.training import recipe as _recipe
from charlstm.training.checkpoint import load_checkpoint, save_checkpoint
from charlstm.training.config import TrainConfig
from charlstm.training.evaluation import evaluate_ids, evaluate_path, nats_to_bits


CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "peephole": "peephole LSTM"}


class Model:
    """A network together with its vocabulary.

    >>> model = charlstm.load("run/best.npz")
    >>> print(model.sample(200, temperature=0.8, prime="def ", seed=1))
    """

    def __init__(self, params: dict, config: ModelConfig, vocab: Vocab):
        self.params = params
        self.config = config
        self.vocab = vocab
        self.history: list = []       # evaluations of the training run that produced it, if any
        self.out_dir: Path | None = None
        self.interrupted = False
        self.step: int | None = None  # optimiser steps of that run, when it is known

    @classmethod
    def create(cls, vocab: Vocab, hidden_size: int | None = None, num_layers: int | None = None,
               dropout: float | None = None, cell: str | None = None, embedding_size: int | None = None,
               seed: int = 0, dtype=np.float32) -> "Model":
        """A fresh, untrained model for a vocabulary (unset sizes take ModelConfig's defaults)."""
        given = {"hidden_size": hidden_size, "num_layers": num_layers, "dropout": dropout, "cell": cell,
                 "embedding_size": embedding_size}
        config = replace(ModelConfig(vocab_size=len(vocab)), **{k: v for k, v in given.items() if v is not None})
        return cls(init_params(config, validate.seed(seed), dtype), config, vocab)

    def __repr__(self) -> str:
        c = self.config
        n = sum(p.size for p in self.params.values())
        embedding = f", embedding {c.embedding_size}" if c.embedding_size else ""
        return (f"Model({c.num_layers} x {c.hidden_size} {CELL_NAMES.get(c.cell, c.cell)}{embedding}, {c.vocab_size} "
                f"symbols ({self.vocab.unit}), {n:,} parameters)")

    def generate(self, length: int = 500, temperature: float = 1.0, prime: str = "", top_k: int | None = None,
                 top_p: float | None = None, num_samples: int = 1, stop: str | None = None,
                 seed: int | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """Stream generated text: yields (new text of each sample, which samples are finished)."""
        return generate(self.params, self.config, self.vocab, validate.seed(seed), length=length,
                        temperature=temperature, prime=prime, top_k=top_k, top_p=top_p,
                        num_samples=num_samples, stop=stop)

    def sample(self, length: int = 500, temperature: float = 1.0, prime: str = "", top_k: int | None = None,
               top_p: float | None = None, num_samples: int = 1, stop: str | None = None,
               seed: int | None = None, beam: int | None = None, length_penalty: float = 1.0):
        """Generate text. Returns a string, or a list of num_samples strings when num_samples > 1.

        temperature 0 always takes the most likely symbol; top_k / top_p restrict the choice to the
        k most likely symbols / the smallest set holding probability top_p; stop ends a sample at
        that text (not included); the prime is read first and starts the returned text.
        beam=K searches instead of sampling: the num_samples most likely texts of a beam of K (see
        charlstm.decoding.beam; temperature, top_k, top_p and seed do not apply to it).
        """
        if beam is not None:
            results = self.beam_search(beam, length=length, prime=prime, stop=stop, num_results=num_samples,
                                       length_penalty=length_penalty)
            texts = [r.text for r in results]
            return texts[0] if num_samples == 1 else texts
        texts = sample_texts(self.params, self.config, self.vocab, validate.seed(seed),
                             length=length, temperature=temperature, prime=prime, top_k=top_k,
                             top_p=top_p, num_samples=num_samples, stop=stop)
        return texts[0] if num_samples == 1 else texts

    def beam_search(self, beam: int, length: int = 500, prime: str = "", stop: str | None = None,
                    num_results: int = 1, length_penalty: float = 1.0) -> list[BeamResult]:
        """The num_results most likely continuations found by a beam of `beam` texts, best first,
        each with its log-probability (see charlstm.decoding.beam)."""
        return beam_search(self.params, self.config, self.vocab, beam, length=length, prime=prime, stop=stop,
                           num_results=num_results, length_penalty=length_penalty)

    def evaluate(self, text: str) -> dict:
        """Mean cross-entropy of predicting each symbol of text from all the symbols before it,
        from a zero state: {"nats_per_char", "bits_per_char", "symbols"}."""
        ids = self.vocab.encode(text, unknown="unk")
        nats, n = evaluate_ids(self.params, self.config, ids, streams=1)
        return {"nats_per_char": nats, "bits_per_char": nats_to_bits(nats), "symbols": n}

    def evaluate_file(self, path, progress: bool = False, encoding_errors: str = "strict") -> dict:
        """Model.evaluate over a text file of any size or a data directory, read block by block
        (the same figure as evaluate(text) over the whole text); progress: a bar. encoding_errors:
        "replace" reads a text file's invalid bytes as U+FFFD."""
        bar = ByteBar("symbols" if is_data_dir(path) else "B") if progress else None
        try:
            nats, n = evaluate_path(self.params, self.config, self.vocab, path, progress=bar,
                                    encoding_errors=encoding_errors)
        finally:
            if bar is not None:
                bar.close()
        return {"nats_per_char": nats, "bits_per_char": nats_to_bits(nats), "symbols": n}

    def save(self, path) -> None:
        """Write the model (weights, config, vocabulary) as a charlstm .npz checkpoint."""
        save_checkpoint(path, self.params, self.config, self.vocab)


def load(path) -> Model:
    """Load a checkpoint written by training or by Model.save."""
    ckpt = load_checkpoint(path)
    return Model(ckpt.params, ckpt.config, ckpt.vocab)


def evaluate(model: Model | str | Path, text: str | None = None, path=None) -> dict:
    """Evaluate a model (or a checkpoint path) on text, or on a text file of any size or a data
    directory (see Model.evaluate and Model.evaluate_file)."""
    if not isinstance(model, Model):
        model = load(model)
    if (text is None) == (path is None):
        raise CharlstmError("give exactly one of text or path")
    return model.evaluate(text) if path is None else model.evaluate_file(path)


def _say(line: str) -> None:
    """A line for the person running the notebook or the command, on standard error."""
    print(line, file=sys.stderr, flush=True)


def train(corpus=None, out_dir="run", config: "TrainConfig | None" = None, text: str | None = None,
          resume=None, progress: bool = True, on_eval=None, hidden_size: int | None = None,
          num_layers: int | None = None, dropout: float | None = None, cell: str | None = None,
          embedding_size: int | None = None, show_recipe: bool | None = None, stop_on_interrupt: bool = True, recipe: bool = True, given_options=None, **train_options) -> Model:
    """Train on a corpus file of any size, a data directory (or text=...) and return the trained Model.

    Training options are TrainConfig's fields (batch_size=, seq_length=, lr=, max_steps=,
    max_time=, epochs=, eval_every=, ...), given as keywords or as a TrainConfig. on_eval is
    called with each Evaluation. The returned model's .history holds the evaluations.
    progress: a progress bar (tqdm's notebook widget in Jupyter). show_recipe: the recipe's line
    on standard error (default: when progress is shown; without either nothing is printed but
    where --start-over moved files). stop_on_interrupt: while it
    trains, Ctrl-C (or a notebook's interrupt) ends the run cleanly between two steps, saving
    latest.npz, and the returned model has .interrupted set; False leaves signals alone.
    resume= continues a run from its checkpoint (its settings and bounds, unless bounds are
    given); init_from= starts a new run from a checkpoint's weights and vocabulary (fine-tuning).
    Other options of the training loop (encoding_errors=, newline=, should_stop=,
    init_from=, on_locked=, start_over=) pass through. A new run into an out_dir that holds
    another run's files is refused unless start_over=True, which first moves them into a
    previous-N folder there and says so (training/rundir.py).
    recipe: the settings left open (the model's size and dropout, the validation cadence) follow
    the corpus and the budget, as the README's "Default recipe" says, and the choice is printed
    in one line; False keeps TrainConfig's and ModelConfig's defaults. With config= every
    training field counts as given, unless given_options names those that were (as the CLI does).
    """
    loop_options = {k: train_options.pop(k) for k in ("encoding_errors", "newline", "should_stop",
                                                       "init_from", "on_locked", "start_over")
                    if k in train_options}
    config_given = config is not None
    if config is None:
        config = TrainConfig(**train_options)
    elif train_options:
        config = replace(config, **train_options)
    given = {"hidden_size": hidden_size, "num_layers": num_layers, "dropout": dropout, "cell": cell,
             "embedding_size": embedding_size}
    open_fields = None
    if recipe and (not config_given or given_options is not None):
        named = set(train_options) | {k for k, v in given.items() if v is not None} | set(given_options or ())
        open_fields = frozenset(f for f in (*_recipe.MODEL_FIELDS, *_recipe.TRAIN_FIELDS) if f not in named)
    with (StopOnSignals() if stop_on_interrupt else contextlib.nullcontext(None)) as stop:
        should_stop = loop_options.pop("should_stop", None) or stop
        bytes_bar = ByteBar() if progress else None
        try:
            result = _train.train(corpus, out_dir, config,
                                  model_options={k: v for k, v in given.items() if v is not None},
                                  text=text, resume=resume, progress=ProgressBar() if progress else None,
                                  should_stop=should_stop, on_eval=on_eval, on_bytes=bytes_bar,
                                  open_fields=open_fields, on_recipe=_say if (progress if show_recipe is None else show_recipe) else None,
                                  say=_say, **loop_options)
        finally:
            if bytes_bar is not None:
                bytes_bar.close()
    model = Model(result.params, result.config, result.vocab)
    model.step = result.step
    model.history = result.evaluations
    model.out_dir = result.out_dir
    model.interrupted = result.interrupted
    return model
