"""The notebook-facing API: a Model that samples, evaluates and saves itself; load, train and
evaluate; and one call for each of the other things the command line does (trace_file, novelty,
export_model, encode_corpus, write_code_corpus, write_tweets, write_synth).

Everything here is a thin layer over the packages below it (model, decoding, training, analysis,
export, data); the CLI is a thin layer over this.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path

import numpy as np

from charlstm import validate
from charlstm.analysis import novelty as _novelty
from charlstm.analysis.traces import Trace
from charlstm.analysis.traces import trace_file as _trace_file
from charlstm.data import corpus_files
from charlstm.data.corpus_files import write_code_corpus, write_synth, write_tweets
from charlstm.data.datadir import is_data_dir
from charlstm.data.vocab import Vocab
from charlstm.decoding.beam import BeamResult, beam_search
from charlstm.decoding.sampling import SAMPLE_TEMPERATURE, generate, sample_texts
from charlstm.errors import ArgumentError, CharlstmError, naming
from charlstm.export import formats
from charlstm.data.labelled import read_labelled
from charlstm.nn.cells import CELLS
from charlstm.model import LabelSet, ModelConfig, init_params, joint_ids, label_row, unconditioned
from charlstm.progress import ByteBar, ProgressBar, StopOnSignals
from charlstm.training import loop as _train
from charlstm.training import recipe as _recipe
from charlstm.training.budget import check_model
from charlstm.training.checkpoint import load_checkpoint, save_checkpoint
from charlstm.training.config import TrainConfig
from charlstm.training.corpus import default_corpus
from charlstm.training.engine import NumpyEngine
from charlstm.training.conditional import classify_bayes, evaluate_examples
from charlstm.training.evaluation import evaluate_ids, evaluate_path, nats_to_bits
from charlstm.training.heldout import held_out_ids, warn_if_other_corpus, warn_if_trained_on
from charlstm.training.resume import check_options


CELL_NAMES = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN", "peephole": "peephole LSTM"}


class Model:
    """A network together with its vocabulary (and, for a generator conditioned on labels, the
    labels' names: `labels`, a LabelSet; None for a model without labels).

    >>> model = charlstm.load("run/best.npz")
    >>> print(model.sample(200, temperature=0.8, prime="def ", seed=1))
    >>> model = charlstm.load("labelled-run/best.npz")            # trained with labels=True
    >>> print(model.sample(200, label="python"))
    >>> model.classify(["def f(x):"])                               # [("python", {"python": 0.97, ...})]
    """

    def __init__(self, params: dict, config: ModelConfig, vocab: Vocab, labels: LabelSet | None = None):
        self.params = params
        self.config = config
        self.vocab = vocab
        self.labels = labels
        self.history: list = []       # evaluations of the training run that produced it, if any
        self.out_dir: Path | None = None
        self.interrupted = False
        self.rank = 0                 # this process's place in a run shared by several (torchrun)
        self.step: int | None = None  # optimiser steps of that run, when it is known

    @classmethod
    def create(cls, vocab: Vocab, hidden_size: int | None = None, num_layers: int | None = None,
               dropout: float | None = None, cell: str | None = None, embedding_size: int | None = None,
               seed: int = 0, dtype=np.float32) -> "Model":
        """A fresh, untrained model for a vocabulary (unset sizes take ModelConfig's defaults)."""
        if not isinstance(vocab, Vocab):
            raise ArgumentError("vocab", "{name} must be a charlstm Vocab (charlstm.build_vocab(text)), got "
                                f"{type(vocab).__name__}")
        _model_sizes(hidden_size, num_layers, embedding_size, dropout, cell)
        if np.dtype(dtype) not in (np.float32, np.float64) if isinstance(dtype, (type, str, np.dtype)) else True:
            raise ArgumentError("dtype", f"{{name}} must be numpy.float32 or numpy.float64, got {dtype!r}")
        given = {"hidden_size": hidden_size, "num_layers": num_layers, "dropout": dropout, "cell": cell,
                 "embedding_size": embedding_size}
        config = ModelConfig(vocab_size=len(vocab), **{k: v for k, v in given.items() if v is not None})
        check_model(config.vocab_size, config.hidden_size, config.num_layers, config.embedding_size, config.cell,
                    np.dtype(dtype).itemsize)
        return cls(init_params(config, validate.seed(seed), dtype), config, vocab)

    def __repr__(self) -> str:
        c = self.config
        n = sum(p.size for p in self.params.values())
        embedding = f", embedding {c.embedding_size}" if c.embedding_size else ""
        labels = f", conditioned on {c.num_labels} labels" if c.num_labels else ""
        return (f"Model({c.num_layers} x {c.hidden_size} {CELL_NAMES.get(c.cell, c.cell)}{embedding}, {c.vocab_size} "
                f"symbols ({self.vocab.unit}){labels}, {n:,} parameters)")

    def generate(self, length: int = 500, temperature: float | None = None, prime: str = "",
                 top_k: int | None = None, top_p: float | None = None, num_samples: int = 1,
                 stop: str | None = None, seed: int | None = None,
                 label: str | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
        """Stream generated text: yields (new text of each sample, which samples are finished).
        temperature None is SAMPLE_TEMPERATURE (0.8), as for sample; label as for sample."""
        temperature = SAMPLE_TEMPERATURE if temperature is None else temperature
        _decoding(length, temperature, prime, top_k, top_p, num_samples, stop)
        row = label_row(self.config, self.labels, label)
        return generate(self.params, self.config, self.vocab, validate.seed(seed), length=length,
                        temperature=temperature, prime=prime, top_k=top_k, top_p=top_p,
                        num_samples=num_samples, stop=stop, label=row)

    def sample(self, length: int = 500, temperature: float | None = None, prime: str = "",
               top_k: int | None = None, top_p: float | None = None, num_samples: int = 1,
               stop: str | None = None, seed: int | None = None, beam: int | None = None,
               length_penalty: float | None = None, label: str | None = None):
        """Generate text. Returns a string, or a list of num_samples strings when num_samples > 1.

        temperature (default 0.8, SAMPLE_TEMPERATURE) divides the scores: 0 always takes the most
        likely symbol, 1 draws from the model as it is; top_k / top_p restrict the choice to the
        k most likely symbols / the smallest set holding probability top_p; stop ends a sample at
        that text (not included); the prime is read first and starts the returned text.
        beam=K searches instead of sampling: the num_samples most likely texts of a beam of K (see
        charlstm.decoding.beam), ranked by log-probability / symbols ** length_penalty (default 1).
        An argument that would have no effect is refused rather than ignored: temperature, top_k,
        top_p or seed with beam, length_penalty without it.
        label: for a model conditioned on labels (self.labels), the label to write under (required
        there; refused for a model without labels). Without a prime the text starts as every
        training example did, after a newline under that label.
        """
        if beam is None and length_penalty is not None:
            raise ArgumentError(("length_penalty", "beam"), "{name0} ranks the texts of a {name1} search; without "
                                "{name1} it has no effect")
        if beam is not None:
            given = [name for name, value in (("temperature", temperature), ("top_k", top_k), ("top_p", top_p),
                                              ("seed", seed)) if value is not None]
            if given:
                raise ArgumentError(tuple(given), "{name}: does not apply to a beam search, which ranks the model's "
                                    "own probabilities")
            length_penalty = 1.0 if length_penalty is None else length_penalty
            results = self.beam_search(beam, length=length, prime=prime, stop=stop, num_results=num_samples,
                                       length_penalty=length_penalty, label=label)
            texts = [r.text for r in results]
            return texts[0] if num_samples == 1 else texts
        temperature = SAMPLE_TEMPERATURE if temperature is None else temperature
        _decoding(length, temperature, prime, top_k, top_p, num_samples, stop)
        row = label_row(self.config, self.labels, label)
        texts = sample_texts(self.params, self.config, self.vocab, validate.seed(seed),
                             length=length, temperature=temperature, prime=prime, top_k=top_k,
                             top_p=top_p, num_samples=num_samples, stop=stop, label=row)
        return texts[0] if num_samples == 1 else texts

    def beam_search(self, beam: int, length: int = 500, prime: str = "", stop: str | None = None,
                    num_results: int = 1, length_penalty: float = 1.0, label: str | None = None) -> list[BeamResult]:
        """The num_results most likely continuations found by a beam of `beam` texts, best first,
        each with its log-probability (see charlstm.decoding.beam); label as for sample."""
        validate.size(beam, "beam")
        validate.size(length, "length")
        validate.text(prime, "prime")
        validate.text(stop, "stop", optional=True)
        validate.size(num_results, "num_results")
        validate.real(length_penalty, "length_penalty", lo=0)
        row = label_row(self.config, self.labels, label)
        return beam_search(self.params, self.config, self.vocab, beam, length=length, prime=prime, stop=stop,
                           num_results=num_results, length_penalty=length_penalty, label=row)

    def evaluate(self, text: str, label: str | None = None) -> dict:
        """Mean cross-entropy of predicting each symbol of text from all the symbols before it,
        from a zero state: {"nats_per_char", "bits_per_char", "symbols"}. label: for a model
        conditioned on labels, the label the text is read under (required there)."""
        text = validate.text(text, "text")
        row = label_row(self.config, self.labels, label)
        ids = self.vocab.encode(text, unknown="unk")
        if row is not None:
            ids = joint_ids(ids, row, self.config.vocab_size)
        nats, n = evaluate_ids(self.params, self.config, ids, streams=1)
        return {"nats_per_char": nats, "bits_per_char": nats_to_bits(nats), "symbols": n}

    def classify(self, texts) -> list[tuple[str, dict[str, float]]]:
        """For a generator conditioned on labels: each text's most probable label and every
        label's probability, p(label | text) by Bayes' rule from the model's probability of the
        text (followed by a newline, read after one, as each training example was) under each
        label and each label's share of the training examples (charlstm.training.conditional).
        texts: a str or a list of them."""
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise ArgumentError("texts", "{name} must be a str or a list of str")
        posteriors = classify_bayes(self, texts)
        names = self.labels.names if self.labels is not None else ()
        return [(names[int(np.argmax(p))], {name: float(q) for name, q in zip(names, p)}) for p in posteriors]

    def evaluate_labelled(self, path) -> dict:
        """For a generator conditioned on labels: the mean cross-entropy of a labelled file or
        folder (data/labelled.py), each example read under its own label as in training (its text
        and a newline, after a newline): {"nats_per_char", "bits_per_char", "symbols", "examples"}."""
        path = validate.path(path, "path")
        if not self.config.num_labels:
            raise CharlstmError(f"{path}: a labelled corpus is evaluated by a model conditioned on labels; this one "
                                "has none")
        data = read_labelled(path)
        nats, n = evaluate_examples(self.params, self.config, self.vocab, self.labels, data)
        return {"nats_per_char": nats, "bits_per_char": nats_to_bits(nats), "symbols": n, "examples": len(data)}

    def evaluate_file(self, path, progress: bool = False, encoding_errors: str = "strict") -> dict:
        """Model.evaluate over a text file of any size or a data directory, read block by block
        (the same figure as evaluate(text) over the whole text); progress: a bar. encoding_errors:
        "replace" reads a text file's invalid bytes as U+FFFD."""
        path = validate.path(path, "path")
        progress = validate.flag(progress, "progress")
        validate.choice(encoding_errors, "encoding_errors", ("strict", "replace"))
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
        path = validate.path(path, "path")
        save_checkpoint(path, self.params, self.config, self.vocab, labels=self.labels)


def load(path) -> Model:
    """Load a checkpoint written by training or by Model.save."""
    ckpt = load_checkpoint(validate.path(path, "path"))
    return Model(ckpt.params, ckpt.config, ckpt.vocab, ckpt.labels)


def evaluate(model: Model | str | Path, text: str | None = None, path=None, held_out: bool = False,
             progress: bool = False, encoding_errors: str | None = None, label: str | None = None) -> dict:
    """Evaluate a model (or a checkpoint path) on text, or on a text file of any size or a data
    directory (see Model.evaluate and Model.evaluate_file; progress, encoding_errors: theirs). A
    checkpoint evaluated on the corpus its run trained on gives a CharlstmWarning: most of that
    text was seen in training.

    A model conditioned on labels reads text under `label` (Model.evaluate), and path as a
    labelled file or folder, each example under its own label (Model.evaluate_labelled; the
    result then counts its "examples").

    held_out=True: `model` is a training run's checkpoint path, evaluated on exactly the part of
    its corpus the run held out (path: the corpus, default the one the run recorded, or
    corpus.txt or data/ beside the checkpoint; checked against the run's SHA-256 of it), read as
    the run read it. The result then names the corpus read ("corpus")."""
    held_out = validate.flag(held_out, "held_out")
    if held_out:
        if isinstance(model, Model) or text is not None:
            raise ArgumentError("model", "held_out=True evaluates a training run's checkpoint: give {name} as its "
                                "path (a Model keeps no record of its corpus), and no text")
        checkpoint = validate.path(model, "model")
        ckpt = load_checkpoint(checkpoint)
        if encoding_errors is not None:
            raise ArgumentError("encoding_errors", "{name}: with --held-out the corpus is read as the run read it")
        if label is not None:
            raise ArgumentError("label", "{name}: the held-out part is read as the run read it, each symbol under "
                                "its own example's label")
        ids, source = held_out_ids(checkpoint, ckpt.train, ckpt.vocab, validate.path(path, "path", optional=True))
        nats, n = evaluate_ids(ckpt.params, ckpt.config, ids, streams=1)
        return {"nats_per_char": nats, "bits_per_char": nats_to_bits(nats), "symbols": n, "corpus": str(source)}
    checkpoint = None
    if not isinstance(model, Model):
        checkpoint = validate.path(model, "model")
        ckpt = load_checkpoint(checkpoint)
        model = Model(ckpt.params, ckpt.config, ckpt.vocab, ckpt.labels)
    if (text is None) == (path is None):
        raise CharlstmError("give exactly one of text or path")
    if path is None:
        return model.evaluate(text, label=label)
    path = validate.path(path, "path")
    if model.config.num_labels:
        if label is not None:
            raise ArgumentError("label", "{name}: a labelled file's examples are each read under their own label")
        if encoding_errors is not None:
            raise ArgumentError("encoding_errors", "{name}: a labelled file is read as UTF-8")
    else:
        label_row(model.config, model.labels, label)          # a label for a model without labels: refused
    if checkpoint is not None:
        warn_if_trained_on(checkpoint, ckpt.train, path)
    if model.config.num_labels:
        with naming(path, checkpoint):
            return model.evaluate_labelled(path)
    with naming(path, checkpoint):
        return model.evaluate_file(path, progress=progress, encoding_errors=encoding_errors or "strict")


def _model_and_record(model, name: str = "model"):
    """(a Model, the checkpoint it came from, that checkpoint's training record) from a Model
    (None, None: it keeps no record) or a checkpoint's path."""
    if isinstance(model, Model):
        return model, None, None
    checkpoint = validate.path(model, name)
    ckpt = load_checkpoint(checkpoint)
    return Model(ckpt.params, ckpt.config, ckpt.vocab, ckpt.labels), checkpoint, ckpt.train


def trace_file(model: Model | str | Path, path, max_symbols: int = 20_000, chunk: int = 256, top: int = 5,
               encoding_errors: str = "strict") -> Trace:
    """charlstm.trace over the start of a text file or a data directory (a model or a checkpoint's
    path; only the first max_symbols + 1 symbols are read): every unit's quantities at every
    symbol, and the model's next-symbol candidates."""
    path = validate.path(path, "path")
    model, checkpoint, _ = _model_and_record(model)
    return _trace_file(model, path, max_symbols=max_symbols, chunk=chunk, top=top, encoding_errors=encoding_errors,
                       checkpoint=checkpoint)


def novelty(model: Model | str | Path, corpus, num_samples: int = 20, length: int = 500, temperature: float = 1.0,
            seed: int = 0, encoding_errors: str = "strict") -> "_novelty.NoveltyReport":
    """How much of what the model (or a checkpoint, by its path) writes occurs verbatim in the
    corpus (a text file, read whole up to 512 MiB, or a data directory of any size): n-grams of
    10 to 50 symbols, and the longest copied span. .lines() says it, .to_dict() is its record. A
    checkpoint whose run trained on another corpus gives a CharlstmWarning."""
    if num_samples < 1 or length < 1:
        raise CharlstmError("--n-samples and --length must be at least 1")
    validate.seed(seed)
    corpus = validate.path(corpus, "corpus")
    model, checkpoint, train = _model_and_record(model)
    unconditioned(model.config, "novelty")
    # The corpus is read (and a bad one refused) before any sampling is spent.
    index, unit = _novelty.corpus_index(corpus, encoding_errors)
    if checkpoint is not None:
        warn_if_other_corpus(checkpoint, train, corpus)
    samples = model.sample(length, temperature=temperature, num_samples=num_samples, seed=seed)
    samples = [samples] if isinstance(samples, str) else samples
    return _novelty.NoveltyReport(num_samples, length, temperature, str(corpus), len(index), unit,
                                  _novelty.novelty(index, samples))


def encode_corpus(inputs, output, ext=".txt", exclude=(), unit: str = "grapheme", newline: str = "keep",
                  encoding_errors: str = "strict", min_count: int = 1, workers: int | None = None,
                  force: bool = False, progress: bool = True) -> str:
    """Encode a corpus once into a data directory (ids.npy, vocab.json, manifest.json) that train,
    evaluate, trace and novelty read memory-mapped: inputs are text files, gzip files,
    directories (their files ending in ext, comma-separated) or "-" for standard input. Returns
    the line that says what it holds; progress: a bar of the bytes read."""
    bar = ByteBar() if progress else None
    try:
        return corpus_files.encode_inputs(inputs, output, ext, exclude, unit=unit, newline=newline,
                                          encoding_errors=encoding_errors, min_count=min_count, workers=workers,
                                          force=force, progress=bar)
    finally:
        if bar is not None:
            bar.close()


def export_model(model: Model | str | Path, path, format: str | None = None, precision: str = "float32",
                 eval_text=None, title: str | None = None) -> list[str]:
    """Write a model (or a checkpoint, by its path) in another form and return the lines that say
    what was written: format "html" (one self-contained page that writes text in any browser,
    offline), "torch" (a PyTorch .pt file) or "onnx"; default: from path's suffix (.html, .pt,
    .onnx). precision (the page only): float32, float16 or int8 weights, whose cost in loss is
    measured on the text of the file eval_text (default: a sample of the model's own) and given
    as the last line; title: the page's. A checkpoint's page also shows its validation loss."""
    path = validate.path(path, "path")
    eval_text = validate.path(eval_text, "eval_text", optional=True)
    # a format that cannot take the options given is refused before the checkpoint is read
    format = formats.export_format(path, format, eval_text=eval_text, title=title)
    bits = None
    if not isinstance(model, Model):
        ckpt = load_checkpoint(validate.path(model, "model"))
        model, bits = Model(ckpt.params, ckpt.config, ckpt.vocab, ckpt.labels), formats.validation_bits(ckpt.train)
    return formats.export(model, path, format, precision, eval_text=eval_text, title=title, bits_per_char=bits)


# --- the door: every public function checks its arguments before any work --------------------------

def _decoding(length, temperature, prime, top_k, top_p, num_samples, stop) -> None:
    """The arguments of sampling (Model.sample, Model.generate), checked when they are given: a
    generator would otherwise check them only once the first symbol is asked for."""
    validate.size(length, "length")
    validate.real(temperature, "temperature", lo=0)
    validate.text(prime, "prime")
    validate.size(top_k, "top_k", optional=True)
    validate.real(top_p, "top_p", lo=0, hi=1, above=True, optional=True)
    validate.size(num_samples, "num_samples")
    validate.text(stop, "stop", optional=True)


def _model_sizes(hidden_size, num_layers, embedding_size, dropout, cell) -> None:
    validate.size(hidden_size, "hidden_size", optional=True)
    validate.size(num_layers, "num_layers", optional=True)
    validate.size(embedding_size, "embedding_size", lo=0, optional=True)
    validate.real(dropout, "dropout", lo=0, hi=0.99, optional=True)
    if cell is not None:
        validate.choice(cell, "cell", tuple(CELLS))        # the registry: a cell registered later counts


_LOOP_OPTIONS = ("encoding_errors", "newline", "should_stop", "init_from", "on_locked", "start_over")


def _train_arguments(corpus, out_dir, config, text, resume, progress, on_eval, stop_on_interrupt, recipe,
                     train_options) -> None:
    validate.path(corpus, "corpus", optional=True)
    validate.path(out_dir, "out_dir")
    validate.text(text, "text", optional=True)
    if corpus is not None and text is not None and train_options.get("on_locked") is None:
        # (the command line's default corpus is both: the text, and the file on_locked writes it to)
        raise ArgumentError("text", "give corpus (a file or data directory) or {name} (the text itself), not both")
    if config is not None and not isinstance(config, TrainConfig):
        raise ArgumentError("config", f"{{name}} must be a charlstm TrainConfig or None, got {type(config).__name__}")
    validate.path(resume, "resume", optional=True)
    validate.path(train_options.get("init_from"), "init_from", optional=True)
    for name, value in (("progress", progress), ("stop_on_interrupt", stop_on_interrupt), ("recipe", recipe),
                        ("start_over", train_options.get("start_over", False))):
        validate.flag(value, name)
    for name in ("on_eval", "should_stop", "on_locked"):
        value = on_eval if name == "on_eval" else train_options.get(name)
        if value is not None and not callable(value):
            raise ArgumentError(name, f"{{name}} must be a function or None, got {type(value).__name__}")
    for name in ("encoding_errors", "newline"):
        if train_options.get(name) is not None:
            validate.choice(train_options[name], name, ("strict", "replace") if name == "encoding_errors"
                            else ("keep", "normalize"))
    fields = {f.name: str(f.type) for f in dataclass_fields(TrainConfig)}
    for name, value in train_options.items():
        if name in _LOOP_OPTIONS:
            continue
        kind = fields.get(name)
        if kind is None:
            raise ArgumentError(name, "{name} is not an argument of charlstm.train (TrainConfig's fields, "
                                "hidden_size, num_layers, ... ; see help(charlstm.train))")
        if value is None:       # not given
            continue
        # Only the type is checked here (TrainConfig could not compare a str); the range is
        # TrainConfig's rule, said there once in the words of the option.
        if kind.startswith("int") and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            validate.size(value, name)
        elif kind.startswith("float") and (isinstance(value, bool) or
                                           not isinstance(value, (int, float, np.integer, np.floating))):
            validate.real(value, name)
        elif kind.startswith("str"):
            validate.text(value, name)
        elif kind == "bool":
            validate.flag(value, name)


def _say(line: str) -> None:
    """A line for the person running the notebook or the command, on standard error."""
    print(line, file=sys.stderr, flush=True)


def train(corpus=None, out_dir="run", config: "TrainConfig | None" = None, text: str | None = None,
          resume=None, progress: bool = True, on_eval=None, hidden_size: int | None = None,
          num_layers: int | None = None, dropout: float | None = None, cell: str | None = None,
          embedding_size: int | None = None, show_recipe: bool | None = None, stop_on_interrupt: bool = True,
          recipe: bool = True, engine: str = "numpy", device: str | None = None, **train_options) -> Model:
    """Train on a corpus file of any size, a data directory (or text=...) and return the trained Model.
    Given neither, the run trains on the Python standard library's sources, copied to
    out_dir/corpus.txt (and said so on standard error).

    Training options are TrainConfig's fields (batch_size=, seq_length=, lr=, max_steps=,
    max_time=, epochs=, eval_every=, ...), given as keywords or as a TrainConfig. on_eval is
    called with each Evaluation. The returned model's .history holds the evaluations.
    labels=True: corpus is a labelled file (label<TAB>text lines) or a folder per label, and the
    model a generator conditioned on the label: each example's text followed by a newline, the
    examples joined in an order shuffled with the seed (charlstm.training.conditional); sample
    it with label=, classify with Model.classify.
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
    An option that is None is not given (as an option left out of the command): the settings
    the recipe may choose then follow the corpus and the budget, as the README's "Default recipe"
    says, and the choice is printed in one line; recipe=False gives them TrainConfig's and
    ModelConfig's defaults, and so does config= (a configuration is taken as it is; keywords
    beside it replace its fields). A resumed run keeps its own settings: only its bounds
    (max_steps, max_time, epochs) may be given, and the engine.
    engine="torch" computes each step with PyTorch (needs torch) on device= ("cpu", "cuda",
    "cuda:N"; default cpu), and with several processes when started by torchrun: the same run,
    recipe and checkpoints (charlstm/engines/pytorch.py). A run resumes on either engine.
    """
    _train_arguments(corpus, out_dir, config, text, resume, progress, on_eval, stop_on_interrupt, recipe,
                     train_options)
    _model_sizes(hidden_size, num_layers, embedding_size, dropout, cell)
    engine = _engine(engine, device)
    loop_options = {k: train_options.pop(k) for k in _LOOP_OPTIONS if k in train_options}
    model_options = {"cell": cell, "num_layers": num_layers, "hidden_size": hidden_size,
                     "embedding_size": embedding_size, "dropout": dropout}
    reading = {k: loop_options.get(k) for k in ("encoding_errors", "newline")}
    check_options({**model_options, **train_options, **reading}, resume, loop_options.get("init_from"),
                  data_dir=corpus is not None and resume is None and Path(corpus).is_dir())
    given = {k: v for k, v in train_options.items() if v is not None}
    use_recipe = recipe and config is None
    if config is None:      # the recipe's settings not given stay None until the loop settles them
        config = TrainConfig(**{**dict.fromkeys(_recipe.TRAIN_FIELDS), **given})
    elif given:
        config = replace(config, **given)
    say = _say if engine.rank == 0 else (lambda line: None)    # one process of a shared run speaks
    if corpus is None and text is None:
        corpus, text, loop_options["on_locked"] = default_corpus(out_dir, say=say)
    with (StopOnSignals() if stop_on_interrupt else contextlib.nullcontext(None)) as stop:
        should_stop = loop_options.pop("should_stop", None) or stop
        progress = progress and engine.rank == 0
        bytes_bar = ByteBar() if progress else None
        show = progress if show_recipe is None else show_recipe
        try:
            result = _train.train(corpus, out_dir, config, model_options=model_options, text=text, resume=resume,
                                  progress=ProgressBar() if progress else None, should_stop=should_stop,
                                  on_eval=on_eval, on_bytes=bytes_bar, use_recipe=use_recipe,
                                  on_recipe=say if show else None, say=say, engine=engine, **loop_options)
        finally:
            if bytes_bar is not None:
                bytes_bar.close()
    model = Model(result.params, result.config, result.vocab, result.labels)
    model.step = result.step
    model.history = result.evaluations
    model.out_dir = result.out_dir
    model.interrupted = result.interrupted
    model.rank = engine.rank
    return model


def _engine(engine: str, device: str | None):
    """The engine that computes the steps: charlstm's NumPy engine, or PyTorch's on a device."""
    validate.choice(engine, "engine", ("numpy", "torch"))
    validate.text(device, "device", optional=True)
    if device is not None and not device.strip():
        raise ArgumentError("device", "{name} is empty: give cpu, cuda or cuda:N")
    if engine == "numpy":
        if device is not None:
            raise ArgumentError("device", "{name} places the torch engine's work; the NumPy engine runs on the CPU "
                                "(give engine torch, or leave it out)")
        return NumpyEngine()
    formats.torch_module()          # PyTorch installed, or one line saying how to install it
    from charlstm.engines.pytorch import TorchEngine
    return TorchEngine(device)


__all__ = ["Model", "load", "train", "evaluate", "trace_file", "novelty", "export_model", "encode_corpus",
           "write_code_corpus", "write_tweets", "write_synth", "CELL_NAMES"]


# ====================================================================================================
# Labels: classify and tag
# ====================================================================================================
# A classifier (one label per text) and a tagger (one class per character of Python), over the
# sequence models of model/sequence.py and model/labels.py; trained by training/labelled.py into a
# checkpoint of their own format (training/label_checkpoint.py; docs/labels.md).

from typing import NamedTuple  # noqa: E402

from charlstm.analysis.tag_page import spans_of  # noqa: E402
from charlstm.data.label_files import (DEFAULT_MAX_BYTES, files_line, tagged_files,  # noqa: E402
                                       text_of_file, texts_to_classify, write_code_languages,
                                       write_tweet_sources)
from charlstm.data.label_tasks import TAG_NAMES  # noqa: E402
from charlstm.data.labelled import (Labelled, from_names, require_labels, split_labelled,  # noqa: E402
                                    take)
from charlstm.progress import LabelsBar  # noqa: E402
from charlstm.training.label_batches import cut_spans, encode_texts  # noqa: E402
from charlstm.training.label_checkpoint import (KINDS, CharacterCheckpoint, LabelsCheckpoint,  # noqa: E402
                                                load_labels_checkpoint, save_labels_checkpoint)
from charlstm.training.label_eval import confusion, figures, predict_probs, truth_and_guess  # noqa: E402
from charlstm.training.labelled import LabelData, LabelTrainConfig, check_new_run, train_labels  # noqa: E402

PREDICT_BATCH = 64      # examples read at once when predicting (memory: T x 64 positions per layer)


class Prediction(NamedTuple):
    """A classifier's answer for one text: the likeliest label and every label's probability."""
    source: str
    label: str
    probs: dict


class LabelsModel:
    """What a classifier and a tagger share: the weights, the model's shape (a SequenceConfig),
    the vocabulary, the label names, and the longest example read (max_length symbols)."""

    def __init__(self, params: dict, config, vocab: Vocab, labels, max_length: int, train: dict | None = None):
        self.params = params
        self.config = config
        self.vocab = vocab
        self.labels = tuple(labels)
        self.max_length = max_length
        self.train_record = train     # the checkpoint's training record, if it came from one
        self.history: list = []       # the evaluations of the run that trained it, if any
        self.out_dir: Path | None = None
        self.interrupted = False
        self.step: int | None = None
        self.best_step: int | None = None

    @property
    def kind(self) -> str:
        """"classifier" or "tagger", as the checkpoint names it (from the config's task)."""
        return KINDS[self.config.task]

    def __repr__(self) -> str:
        c = self.config
        n = sum(p.size for p in self.params.values())
        both = "bidirectional " if c.bidirectional else ""
        pooling = f", {c.pooling} pooling" if c.pooling else ""
        return (f"{type(self).__name__}({c.num_layers} x {c.hidden_size} {both}{CELL_NAMES.get(c.cell, c.cell)}"
                f"{pooling}, labels {', '.join(self.labels)}; {c.vocab_size} symbols, {n:,} parameters)")

    def save(self, path) -> None:
        """Write the model as a charlstm-labels .npz checkpoint (docs/labels.md)."""
        path = validate.path(path, "path")
        save_labels_checkpoint(path, LabelsCheckpoint(self.kind, self.params, self.config, self.vocab,
                                                      self.labels, self.max_length, self.train_record))

    def probs_of(self, texts) -> list:
        """Each text's label probabilities (see predict_probs), its first max_length symbols read."""
        ids, _ = encode_texts(self.vocab, texts, self.max_length)
        return predict_probs(self.params, self.config, ids, PREDICT_BATCH)


class Classifier(LabelsModel):
    """A model that gives a text one label.

    >>> model = charlstm.load_labels_model("classify-run/best.npz")
    >>> model.predict(["def f(x):", "sub f { my $x = shift; }"])
    [('python', {'c': 0.01, ...}), ('perl', {...})]
    """

    def predict(self, texts) -> list[tuple[str, dict]]:
        """(label, {label: probability}) for each text (a str alone is one text). A text is read
        up to the model's max_length symbols, as it trained; symbols it never saw read as unknown."""
        texts = _texts(texts)
        probs = self.probs_of(texts) if texts else np.zeros((0, len(self.labels)))
        return [(self.labels[int(p.argmax())], {name: float(x) for name, x in zip(self.labels, p)}) for p in probs]

    def predict_files(self, paths, whole_file: bool = False) -> list[Prediction]:
        """Predictions for each non-blank line of each UTF-8 file (source "FILE:LINE"), or with
        whole_file for each file as one text (source "FILE")."""
        paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        whole_file = validate.flag(whole_file, "whole_file")
        found = [item for path in paths for item in texts_to_classify(validate.path(path, "paths"), whole_file)]
        predicted = self.predict([text for _, text in found])
        return [Prediction(source, label, probs) for (source, _), (label, probs) in zip(found, predicted)]

    def evaluate(self, labelled) -> dict:
        """How well the model labels a labelled corpus (a Labelled, or the path of a labelled file or
        folder): {"accuracy", "loss" (mean cross-entropy, nats), "examples", "labels": {label:
        {"precision", "recall", "support"}}, "confusion" (rows: the true label), "label_names"}.
        A label the model does not know is an error."""
        data = _relabel(_labelled(labelled, "labelled"), self.labels, "the evaluated examples")
        truth, guess, loss = truth_and_guess(data.targets, self.probs_of(data.texts))
        return {**figures(confusion(truth, guess, len(self.labels)), self.labels), "loss": loss}


class BayesClassifier(Classifier):
    """A generator conditioned on labels (train(labels=True)) as a classifier: p(label | text) by
    Bayes' rule from its probability of the text under each label (Model.classify), with a
    Classifier's predict, predict_files and evaluate."""

    def __init__(self, model: Model):
        super().__init__(model.params, model.config, model.vocab, model.labels.names, max_length=0)
        self.generator = model

    @property
    def kind(self) -> str:
        return "classifier"

    def __repr__(self) -> str:
        return f"BayesClassifier({self.generator!r}, labels {', '.join(self.labels)})"

    def save(self, path) -> None:
        """Write the generator's checkpoint (it is the model)."""
        self.generator.save(path)

    def probs_of(self, texts) -> np.ndarray:
        return classify_bayes(self.generator, list(texts))


class Tagger(LabelsModel):
    """A model that gives each character of a text a class (the Python tagger: TAG_NAMES).

    >>> tagger = charlstm.load_labels_model("tag-run/best.npz")
    >>> tagger.tag("x = 1")
    ['name', 'other', 'operator', 'other', 'number']
    """

    def tag(self, text: str) -> list[str]:
        """The class of each character (code point) of text. A text longer than max_length is read
        in stretches of at most max_length characters ending at line ends, as the tagger trained."""
        text = validate.text(text, "text")
        pieces = [text[a:b] for a, b in cut_spans(text, self.max_length)]
        probs = self.probs_of(pieces) if pieces else []
        return [self.labels[k] for p in probs for k in p.argmax(axis=1).tolist()]

    def tag_spans(self, text: str) -> list[tuple[str, str]]:
        """(class, text) of each run of characters with one class, in order."""
        return spans_of(text, self.tag(text))

    def tag_file(self, path) -> list[tuple[str, str]]:
        """tag_spans of a UTF-8 file's whole text (CRLF read as LF)."""
        return self.tag_spans(text_of_file(validate.path(path, "path")))

    def evaluate(self, paths, max_bytes: int | None = DEFAULT_MAX_BYTES) -> dict:
        """How well the tagger labels Python files (files or folders, read as train_tagger reads
        them, up to max_bytes): {"accuracy", "loss", "characters", "labels": {class: {"precision",
        "recall", "support"}}, "confusion", "label_names", "files", "skipped" (files left out)}."""
        found = tagged_files(_paths(paths), max_bytes)
        if not found.texts:
            raise CharlstmError(_no_python(found))
        place = {name: k for k, name in enumerate(self.labels)}
        if set(TAG_NAMES) - set(place):
            raise CharlstmError(f"this tagger's classes ({', '.join(self.labels)}) are not Python's token classes "
                                f"({', '.join(TAG_NAMES)}), so Python files cannot score it")
        to_model = np.array([place[name] for name in TAG_NAMES], dtype=np.int64)
        # read in the stretches tag() reads, so that the figures are those of what tag() answers
        pieces = [(text[a:b], to_model[tags[a:b]]) for text, tags in zip(found.texts, found.tags)
                  for a, b in cut_spans(text, self.max_length)]
        truth, guess, loss = truth_and_guess([t for _, t in pieces], self.probs_of([p for p, _ in pieces]))
        record = figures(confusion(truth, guess, len(self.labels)), self.labels, items="characters")
        return {**record, "loss": loss, "files": len(found.texts), "skipped": list(found.skipped)}


def load_labels_model(path, kind: str | None = None) -> "Classifier | Tagger":
    """Load a checkpoint written by train_classifier, train_tagger (or `charlstm classify train`,
    `charlstm tag train`) or by .save: a Classifier or a Tagger, as the file says; or a generator
    conditioned on labels (`charlstm train --labels`), which classifies by Bayes' rule
    (BayesClassifier). kind ("classifier" or "tagger"): refuse the other kind."""
    path = validate.path(path, "path")
    if kind is not None:
        validate.choice(kind, "kind", ("classifier", "tagger"))
    try:
        ckpt = load_labels_checkpoint(path)
    except CharacterCheckpoint as e:
        if kind == "tagger":
            raise
        generator = load(path)
        if not generator.config.num_labels:
            raise CharlstmError(f"{path}: a character model's checkpoint without labels (charlstm train); give a "
                                "classifier's (charlstm classify train) or a generator's trained with --labels") from e
        return BayesClassifier(generator)
    if kind is not None and ckpt.kind != kind:
        raise CharlstmError(f"{path}: a {ckpt.kind}'s checkpoint, not a {kind}'s")
    cls = Tagger if ckpt.kind == "tagger" else Classifier
    model = cls(ckpt.params, ckpt.config, ckpt.vocab, ckpt.labels, ckpt.max_length, ckpt.train)
    model.step = (ckpt.train or {}).get("step")
    return model


def train_classifier(labelled, out_dir, *, held_out=None, cell: str | None = None, hidden_size: int | None = None,
                     num_layers: int | None = None, embedding_size: int | None = None, dropout: float | None = None,
                     bidirectional: bool | None = None, pooling: str | None = None, batch_size: int | None = None,
                     lr: float | None = None, lr_schedule: str | None = None, grad_clip: float | None = None,
                     max_steps: int | None = None, max_time: float | None = None, epochs: float | None = None,
                     eval_every: int | None = None, val_fraction: float | None = None, max_length: int | None = None,
                     min_count: int | None = None, seed: int | None = None, progress: bool = True,
                     show_data: bool | None = None, stop_on_interrupt: bool = True, should_stop=None, on_eval=None,
                     start_over: bool = False) -> Classifier:
    """Train a classifier on labelled examples and return it (its .history: the evaluations).

    labelled: a Labelled, or the path of a labelled file (label<TAB>text lines) or folder (a
    sub-folder per label): data/labelled.py. held_out: the examples to evaluate on, the same way;
    without it val_fraction (default 0.1) of each label's examples are held out, chosen with seed
    (a text and its duplicates stay on one side); val_fraction=0 holds nothing out, and best.npz
    is then the latest. The model: SequenceConfig's fields (cell,
    hidden_size, num_layers, embedding_size, dropout, bidirectional, pooling "last" or "mean").
    Training: LabelTrainConfig's fields (batch_size, lr, lr_schedule, grad_clip, the bounds
    max_steps, max_time and epochs (none given: 10 passes), eval_every, max_length: an example
    longer than it is cut to its first max_length symbols, min_count, seed). None: the default.
    out_dir receives latest.npz, best.npz (the best held-out accuracy, ties by loss) and
    metrics.jsonl; a directory holding another run is refused unless start_over=True, which
    moves its files into previous-N there. progress: a bar; show_data: the lines about the data
    on standard error (default: with progress). stop_on_interrupt: Ctrl-C (SIGTERM too) ends the
    run between two steps, saving latest.npz, and the model returned has .interrupted set;
    should_stop: a function asked between steps, the same way.
    """
    held_given = held_out is not None
    options = _label_arguments(out_dir, progress, show_data, stop_on_interrupt, should_stop, on_eval, start_over,
                               cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                               embedding_size=embedding_size, dropout=dropout, bidirectional=bidirectional,
                               pooling=pooling)
    config = _label_config(held_given, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, grad_clip=grad_clip,
                           max_steps=max_steps, max_time=max_time, epochs=epochs, eval_every=eval_every,
                           val_fraction=val_fraction, max_length=max_length, min_count=min_count, seed=seed)
    if pooling is not None:
        validate.choice(pooling, "pooling", ("last", "mean"))
    say = _say if (progress if show_data is None else show_data) else (lambda line: None)
    data = require_labels(_labelled(labelled, "labelled"))
    if held_given:
        train_part, held = data, _relabel(_labelled(held_out, "held_out"), data.labels, "the held-out examples")
    elif config.val_fraction == 0:
        train_part, held = data, take(data, [])
    else:
        train_part, held = split_labelled(data, config.val_fraction, config.seed)
        if not len(held):
            raise CharlstmError("no example can be held out: each label has one distinct text; give more examples, "
                                "or a held-out set")
    require_labels(train_part)
    say(f"{len(train_part):,} training examples, {len(held):,} held out; labels "
        + ", ".join(f"{name} {n:,}" for name, n in train_part.counts().items()))
    about = {"labelled": _source(labelled), "held_out": _source(held_out) if held_given else "split"}
    return _train_labels(Classifier, LabelData(train_part.labels, train_part.texts, train_part.targets,
                                               train_part.sources),
                         LabelData(held.labels, held.texts, held.targets, held.sources), out_dir, options, config,
                         progress, stop_on_interrupt, should_stop, on_eval, say, start_over,
                         [p for p in (labelled, held_out) if isinstance(p, (str, Path))], about)


def train_tagger(paths, out_dir, *, held_out=None, max_bytes: int | None = DEFAULT_MAX_BYTES, cell: str | None = None,
                 hidden_size: int | None = None, num_layers: int | None = None, embedding_size: int | None = None,
                 dropout: float | None = None, bidirectional: bool | None = None, batch_size: int | None = None,
                 lr: float | None = None, lr_schedule: str | None = None, grad_clip: float | None = None,
                 max_steps: int | None = None, max_time: float | None = None, epochs: float | None = None,
                 eval_every: int | None = None, val_fraction: float | None = None, max_length: int | None = None,
                 min_count: int | None = None, seed: int | None = None, progress: bool = True,
                 show_data: bool | None = None, stop_on_interrupt: bool = True, should_stop=None, on_eval=None,
                 start_over: bool = False) -> Tagger:
    """Train a tagger that gives each character of Python code its token class (TAG_NAMES: other,
    indent, name, keyword, number, string, comment, operator, from the standard tokenize module)
    and return it.

    paths: .py files or folders of them, read in order until max_bytes bytes of code (None: all);
    files that cannot be read or do not tokenize are left out, and counted. Each file is cut into
    stretches of at most max_length characters (default 1,000) ending at line ends, each read
    from a zero state. held_out: files to evaluate on; without it val_fraction (0.1) of the files
    are held out (at least one; 0: none), chosen with seed. Every other argument is train_classifier's.
    """
    held_given = held_out is not None
    options = _label_arguments(out_dir, progress, show_data, stop_on_interrupt, should_stop, on_eval, start_over,
                               cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                               embedding_size=embedding_size, dropout=dropout, bidirectional=bidirectional)
    config = _label_config(held_given, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, grad_clip=grad_clip,
                           max_steps=max_steps, max_time=max_time, epochs=epochs, eval_every=eval_every,
                           val_fraction=val_fraction, max_length=max_length, min_count=min_count, seed=seed)
    validate.size(max_bytes, "max_bytes", optional=True)
    say = _say if (progress if show_data is None else show_data) else (lambda line: None)
    paths = _paths(paths)
    found = tagged_files(paths, max_bytes)
    if not found.texts:
        raise CharlstmError(_no_python(found))
    say(files_line(found, max_bytes))
    if held_given:
        held_found = tagged_files(_paths(held_out, "held_out"), max_bytes)
        if not held_found.texts:
            raise CharlstmError("held_out: " + _no_python(held_found))
        say("held out: " + files_line(held_found, max_bytes))
        train_files = list(zip(found.texts, found.tags, found.sources))
        held_files = list(zip(held_found.texts, held_found.tags, held_found.sources))
    elif config.val_fraction == 0:
        train_files, held_files = list(zip(found.texts, found.tags, found.sources)), []
    else:
        if len(found.texts) < 2:
            raise CharlstmError(f"one Python file ({found.sources[0]}) cannot be split into training and held-out "
                                "files; give more files, or held-out files")
        order = np.random.default_rng(config.seed).permutation(len(found.texts))
        held_count = min(len(found.texts) - 1, max(1, round(config.val_fraction * len(found.texts))))
        held_index = set(order[:held_count].tolist())
        files = list(zip(found.texts, found.tags, found.sources))
        train_files = [f for k, f in enumerate(files) if k not in held_index]
        held_files = [f for k, f in enumerate(files) if k in held_index]
        say(f"held out {len(held_files):,} of the {len(files):,} files")
    about = {"paths": [str(p) for p in paths], "held_out": [str(p) for p in _paths(held_out, "held_out")]
             if held_given else "split", "max_bytes": max_bytes}
    reads = [*paths, *(_paths(held_out, "held_out") if held_given else [])]
    return _train_labels(Tagger, _stretches(train_files, config.max_length), _stretches(held_files, config.max_length),
                         out_dir, options, config, progress, stop_on_interrupt, should_stop, on_eval, say, start_over,
                         reads, about)


def _train_labels(cls, train_data: LabelData, held: LabelData, out_dir, options: dict, config: LabelTrainConfig,
                  progress: bool, stop_on_interrupt: bool, should_stop, on_eval, say, start_over: bool, reads,
                  about: dict):
    """The run of train_classifier and train_tagger, Ctrl-C and the bar set up around it."""
    with (StopOnSignals() if stop_on_interrupt else contextlib.nullcontext(None)) as stop:
        result = train_labels(train_data, held, out_dir, options, config, progress=LabelsBar() if progress else None,
                              should_stop=should_stop or stop, on_eval=on_eval, say=say, start_over=start_over,
                              reads=reads, about=about)
    model = cls(result.params, result.config, result.vocab, result.labels, result.max_length)
    model.history, model.out_dir, model.interrupted = result.evaluations, result.out_dir, result.interrupted
    model.step, model.best_step = result.step, result.best_step
    return model


def _label_arguments(out_dir, progress, show_data, stop_on_interrupt, should_stop, on_eval, start_over,
                     **model_options) -> dict:
    """The arguments of train_classifier and train_tagger that are not training settings, checked
    at the door (a used out_dir too, before the data is read); returns the model options given."""
    check_new_run(validate.path(out_dir, "out_dir"), validate.flag(start_over, "start_over"))
    for name, value in (("progress", progress), ("stop_on_interrupt", stop_on_interrupt), ("start_over", start_over)):
        validate.flag(value, name)
    if show_data is not None:
        validate.flag(show_data, "show_data")
    for name, value in (("should_stop", should_stop), ("on_eval", on_eval)):
        if value is not None and not callable(value):
            raise ArgumentError(name, f"{{name}} must be a function or None, got {type(value).__name__}")
    _model_sizes(model_options["hidden_size"], model_options["num_layers"], model_options["embedding_size"],
                 model_options["dropout"], model_options["cell"])
    if model_options["bidirectional"] is not None:
        validate.flag(model_options["bidirectional"], "bidirectional")
    return model_options


def _label_config(held_given: bool, **given) -> LabelTrainConfig:
    """LabelTrainConfig from the settings given (None: not given); val_fraction with a held-out
    set would mean nothing, so it is refused."""
    if held_given and given["val_fraction"] is not None:
        raise ArgumentError(("val_fraction", "held_out"), "{name0} holds out part of the training examples; with "
                            "{name1} nothing is held out of them: give one of the two")
    config = LabelTrainConfig(**{k: v for k, v in given.items() if v is not None})
    return config if held_given else config.filled()


def _labelled(value, name: str) -> Labelled:
    """A Labelled as given, or read from a labelled file or folder."""
    if isinstance(value, Labelled):
        return value
    return read_labelled(validate.path(value, name))


def _relabel(data: Labelled, labels: tuple, what: str) -> Labelled:
    """The examples with their targets indexing `labels` (the model's), a label outside them an error."""
    names = [data.labels[t] for t in data.targets.tolist()]
    unknown = sorted(set(names) - set(labels))
    if unknown:
        where = data.sources[names.index(unknown[0])]
        raise CharlstmError(f"{where}: label {validate.shown(unknown[0])} of {what} is not one the model knows "
                            f"({', '.join(labels)})")
    return from_names(names, data.texts, data.sources, labels=labels)


def _source(value) -> str | None:
    return str(value) if isinstance(value, (str, Path)) else None


def _texts(texts) -> list[str]:
    """A list of texts to label (a str alone is one), each a non-empty str."""
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, (list, tuple)):
        raise ArgumentError("texts", f"{{name}} must be a str or a list of them, got {type(texts).__name__}")
    for k, text in enumerate(texts):
        validate.text(text, "texts")
        if not text:
            raise ArgumentError("texts", f"{{name}}: text {k + 1} is empty; there is nothing to label")
    return list(texts)


def _paths(paths, name: str = "paths") -> list[Path]:
    """Paths of Python files or folders: one, or a list of them, never empty."""
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    if not isinstance(paths, (list, tuple)) or not paths:
        raise ArgumentError(name, "{name} must be a path or a list of paths of Python files or folders")
    return [validate.path(p, name) for p in paths]


def _no_python(found) -> str:
    why = f" (first left out: {found.skipped[0]})" if found.skipped else ""
    return f"no Python file that can be read and tokenizes was found{why}"


def _stretches(files, max_length: int) -> LabelData:
    """The files' texts cut into stretches of at most max_length characters (cut_spans), with their tags."""
    texts, tags, sources = [], [], []
    for text, file_tags, source in files:
        for a, b in cut_spans(text, max_length):
            texts.append(text[a:b])
            tags.append(file_tags[a:b])
            sources.append(f"{source}@{a}")
    return LabelData(TAG_NAMES, tuple(texts), tuple(tags), tuple(sources))


__all__ += ["Classifier", "BayesClassifier", "Tagger", "Prediction", "LabelsModel", "load_labels_model", "train_classifier",
            "train_tagger", "write_tweet_sources", "write_code_languages"]
