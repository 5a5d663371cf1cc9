"""The `charlstm` command: a thin shell over the Python API.

Each command maps its options to a call a notebook can make (charlstm.api and the packages below
it) and prints what comes back; an option not given is None, as in the API. This is the only
module that prints or exits. Every CharlstmError (and every OS error the library did not
anticipate) becomes one line on stderr and exit status 1, every CharlstmWarning one warning line;
no traceback reaches the user.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import shlex
import sys
import warnings
from pathlib import Path

import click

from charlstm import api, validate
from charlstm.analysis import synth_check
from charlstm.data import corpora
from charlstm.data.datadir import ReadOptions
from charlstm.data.encode import human_bytes
from charlstm.decoding.sampling import MAX_SAMPLES, SAMPLE_TEMPERATURE, check_held_text
from charlstm.errors import ArgumentError, CharlstmError, CharlstmWarning, naming
from charlstm.export.formats import summary
from charlstm.interrupts import raising_on_signals
from charlstm.files import check_output, given_path, write_text
from charlstm.nn.cells import CELLS
from charlstm.training import recipe as _recipe
from charlstm.training.config import DEFAULT_EPOCHS, TrainConfig
from charlstm.training.corpus import DEFAULT_CORPUS
from charlstm.training.resume import READING_DEFAULTS

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class _Group(click.Group):
    """Turns library errors into one line and a non-zero exit, and keeps the standard streams from
    ever producing a traceback (closed, full, a pipe whose reader left, an encoding that cannot
    hold the text)."""

    def main(self, *args, **kwargs):
        """The whole program, --help and usage errors included (click prints those before invoke)."""
        _replace_closed_streams()
        with warnings.catch_warnings():
            # numpy's numeric warnings (a mean of nothing, an overflow handled right after) are not
            # messages for the user; every real problem is a CharlstmError.
            warnings.simplefilter("ignore", RuntimeWarning)
            # the library's warnings about a result (CharlstmWarning) are one line each, every time
            warnings.simplefilter("always", CharlstmWarning)
            warnings.showwarning = functools.partial(_show_warning, warnings.showwarning)
            try:
                result = super().main(*args, **kwargs)
                code = None
            except SystemExit as e:
                result, code = None, e.code
            except OSError as e:                  # click writing --help or a usage error
                result, code = None, _output_failed(e)
            code = _flush_stdout(code)
        if code is not None:
            sys.exit(code)
        return result

    def invoke(self, ctx):
        try:
            with raising_on_signals():      # SIGTERM ends a command as Ctrl-C does
                return super().invoke(ctx)
        except click.UsageError as e:   # a bad option or argument of a command: one line, as the rest
            where = e.ctx.command_path if e.ctx is not None else "charlstm"
            click.echo(one_line(f"charlstm: error: {e.format_message()}") + f" (see '{where} --help')", err=True)
            sys.exit(e.exit_code)
        except ArgumentError as e:      # the library names its argument; the user typed an option
            _fail(e.named(*(self._option_of(ctx, argument) for argument in e.arguments)))
        except CharlstmError as e:
            _fail(str(e))
        except KeyboardInterrupt:      # Ctrl-C outside the training loop (which saves and says so itself)
            click.echo("charlstm: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except UnicodeEncodeError as e:   # a terminal whose encoding cannot hold the text
            _fail(f"cannot write {ascii(e.object[e.start:e.start + 1])} to an output whose encoding is {e.encoding}; "
                  "set PYTHONIOENCODING=utf-8 (or use a UTF-8 locale)")
        except (OSError, MemoryError) as e:
            if isinstance(e, OSError) and e.filename is None and _is_stdout_error(e):
                sys.exit(_output_failed(e))
            _fail(_describe_os_error(e, ctx.invoked_subcommand))


    def _option_of(self, ctx, argument: str) -> str:
        """The option (or argument) of the command that ran whose value went into `argument`."""
        command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
        for param in getattr(command, "params", ()):
            if param.name == argument:
                return max(param.opts, key=len) if param.param_type_name == "option" else param.human_readable_name
        return argument


class _ClosedOutput(io.TextIOBase):
    """Stands for a standard stream whose file descriptor was closed before charlstm started."""

    def writable(self) -> bool:
        return True

    def write(self, text):
        raise OSError(errno.EBADF, "it is closed")


def _replace_closed_streams() -> None:
    """Python sets sys.stdout (sys.stderr) to None when descriptor 1 (2) is closed: writing to it
    then is an error with one line (stdout), or goes nowhere (stderr, where that line would go)."""
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")


def _is_stdout_error(e: OSError) -> bool:
    return e.errno in (errno.EPIPE, errno.EBADF, errno.ENOSPC, errno.EIO) or isinstance(e, BrokenPipeError)


def _output_failed(e: OSError) -> int:
    """Standard output cannot be written: a reader that left (`| head`) ends the program quietly,
    anything else (closed, a full disk) is one line. Either way the rest of the output is dropped,
    so that Python's own flush at exit has nothing left to fail on."""
    _drop_stdout()
    if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
        return 0
    click.echo(f"charlstm: error: cannot write to standard output: {e.strerror or e}", err=True)
    return EXIT_ERROR


def _flush_stdout(code):
    """Flush what is left of standard output while errors can still be reported."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as e:
        failed = _output_failed(e)
        return failed if code in (None, 0) else code
    return code


def _drop_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, AttributeError, ValueError, io.UnsupportedOperation):
        pass
    sys.stdout = _Discard()


class _Discard(io.TextIOBase):
    def writable(self) -> bool:
        return True

    def write(self, text):
        return len(text)


class _PathType(click.Path):
    """A path option or argument: an empty value (an unset shell variable gives one) is refused with
    one line (files.given_path), never read as the current directory."""

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            label = max(param.opts, key=len) if param is not None and param.param_type_name == "option" else \
                (param.human_readable_name.rstrip(".") if param is not None else "a path")
            given_path(value, label)
        return super().convert(value, param, ctx)


PATH = _PathType(path_type=Path)


def _writes(output: str, reads=(), what: str = "file", directory: bool = False):
    """The command writes the path in its parameter `output` and reads the paths in the parameters
    named in `reads` (or those `reads(params)` returns). Before anything is read or written the
    output is checked (files.check_output): one that names no file, an existing directory, or one
    of the command's own inputs (a hard link or a symlink too) is one line, and nothing is written."""
    def decorate(f):
        @functools.wraps(f)
        def command(*args, **params):
            sources = reads(params) if callable(reads) else [params[name] for name in reads]
            flat = [p for s in sources for p in (s if isinstance(s, (tuple, list)) else (s,))]
            check_output(params[output], [p for p in flat if p is not None and str(p) != "-"], what, directory)
            return f(*args, **params)
        command.writes = output        # the probe finds every command that writes by this
        return command
    return decorate


MAX_LINE = 1000     # characters of one message; a longer one is cut in its middle
MAX_WORD = 200      # ... and so is each value in it longer than this (a path, a number of 4,000 digits)


def one_line(message: str) -> str:
    """The line a message becomes, in the one place every error passes: its control characters
    escaped (a newline in a file name cannot split it, an escape sequence cannot act on the
    terminal; a backslash stays one backslash), each long value and then the whole line cut in
    the middle, where what is left still says which file and what to do."""
    escaped = "".join(c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
                      for c in message)
    words = [w if len(w) <= MAX_WORD else f"{w[:MAX_WORD // 2 - 1]}…{w[-(MAX_WORD // 2 - 1):]}"
             for w in escaped.split(" ")]
    line = " ".join(words)
    if len(line) > MAX_LINE:
        line = f"{line[:MAX_LINE // 2 - 1]}…{line[-(MAX_LINE // 2 - 1):]}"
    return line


def _warn(message: str):
    """One line on stderr about a result that is computed but may mislead."""
    click.echo(one_line(f"charlstm: warning: {message}"), err=True)


def _show_warning(show_other, message, category, *args, **kwargs):
    if issubclass(category, CharlstmWarning):
        _warn(str(message))
    else:
        show_other(message, category, *args, **kwargs)


def _fail(message: str):
    click.echo(one_line(f"charlstm: error: {message}"), err=True)
    sys.exit(EXIT_ERROR)


# What to lower when a command runs out of memory.
_MEMORY_ADVICE = {"train": "a smaller --layers, --hidden, --embedding-size, --batch-size or --seq-length",
                  "sample": "a smaller --num-samples, --beam or --length",
                  "trace": "a smaller --max-symbols or --chunk", "neurons": "a smaller --max-symbols",
                  "viz": "a smaller --max-symbols or --max-values", "novelty": "a smaller --n-samples or --length",
                  "check": "a smaller --n or --max-length", "synth": "a smaller --n-lines or --max-n",
                  "code": "a smaller --max-bytes"}


def _describe_os_error(e: BaseException, command: str | None = None) -> str:
    if isinstance(e, MemoryError):
        advice = _MEMORY_ADVICE.get(command or "")
        return "out of memory" + (f"; try {advice}" if advice else "")
    name = getattr(e, "filename", None)
    reason = getattr(e, "strerror", None) or str(e)
    return f"{name}: {reason}" if name else reason


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="charlstm")
@click.option("--threads", type=int, default=None, envvar="CHARLSTM_THREADS",
              help="BLAS threads (default: the library's own, usually one per core). "
                   "Small models often run faster with 1.")
def main(threads):
    """Character-level text generation with recurrent networks (LSTM, GRU, RNN, peephole LSTM) in NumPy."""
    from charlstm.nn.backend import set_threads
    try:
        set_threads(threads)
    except CharlstmError as e:
        _fail(str(e))


# --- train -------------------------------------------------------------------------------------
# Every training option is None when it is not given (click's default), which is how the library
# tells it from one given: the recipe fills it or TrainConfig's default does, a resumed run keeps
# its own. --help still shows the library's default.

_DEFAULTS = TrainConfig()


class _Unset(click.Option):
    """An option whose value is None unless it is given; --help shows `shown` as its default."""

    def __init__(self, *decls, shown=None, **attrs):
        super().__init__(*decls, default=None, show_default=shown is not None, **attrs)
        self.shown = shown

    def get_help_extra(self, ctx):
        extra = super().get_help_extra(ctx)
        if self.shown is not None:
            extra["default"] = str(self.shown)
        return extra


def _unset(*decls, shown=None, **attrs):
    return click.option(*decls, cls=_Unset, shown=shown, **attrs)


@main.command()
@click.argument("corpus", required=False, type=PATH)
@click.option("--out", "out_dir", default="run", show_default=True, type=PATH,
              help="Run directory: latest.npz, best.npz, metrics.jsonl.")
@_unset("--cell", type=click.Choice(list(CELLS)),
        help="The recurrent cell: " + "; ".join(f"{c.name}: {c.summary}" for c in CELLS.values()) + " [lstm].")
@_unset("--layers", "num_layers", type=int,
        help=f"Recurrent layers [{_recipe.FULL[0]}; {_recipe.SMALL[0]} with a --max-time under "
             f"{_recipe.SHORT_TIME_S} s].")
@_unset("--hidden", "hidden_size", type=int,
        help=f"Units per layer [{_recipe.FULL[1]}; {_recipe.SMALL[1]} with a --max-time under "
             f"{_recipe.SHORT_TIME_S} s].")
@_unset("--embedding-size", type=int,
        help="Size of each symbol's learnt input vector (0: a one-hot input, as models before "
             "embeddings had) [the hidden size].")
@_unset("--dropout", type=float,
        help="Dropout on every layer's output [0.2 when the budget passes over the training split at "
             "least once, else 0].")
@_unset("--batch-size", type=int, shown=_DEFAULTS.batch_size)
@_unset("--seq-length", type=int, shown=_DEFAULTS.seq_length, help="Symbols per truncated-BPTT chunk.")
@_unset("--lr", type=float,
        help=f"Adam learning rate [{_DEFAULTS.lr:g}; {_recipe.SHORT_LR:g} for the small model of a "
             f"--max-time under {_recipe.SHORT_TIME_S} s].")
@_unset("--lr-schedule", type=click.Choice(["constant", "cosine", "step"]), shown=_DEFAULTS.lr_schedule)
@_unset("--lr-decay", type=float, shown=_DEFAULTS.lr_decay, help="Factor of the step schedule.")
@_unset("--lr-decay-every", type=int, shown=_DEFAULTS.lr_decay_every)
@_unset("--lr-floor", type=float, shown=_DEFAULTS.lr_floor, help="The cosine schedule ends at this fraction of --lr.")
@_unset("--warmup-steps", type=int, shown=_DEFAULTS.warmup_steps)
@_unset("--grad-clip", type=float, shown=_DEFAULTS.grad_clip, help="Clip gradients to this global norm (0: off).")
@_unset("--seed", type=int, shown=_DEFAULTS.seed)
@_unset("--sample-length", type=int, shown=_DEFAULTS.sample_length,
        help="Symbols of the sample shown at each evaluation (0: none).")
@_unset("--sample-temperature", type=float, shown=_DEFAULTS.sample_temperature, help="Temperature of that sample.")
@_unset("--max-steps", type=int, help="Stop after this many steps in all.")
@_unset("--max-time", type=float, help="Stop after this many seconds.")
@_unset("--epochs", type=float, help=f"Stop after this many passes over the data [{DEFAULT_EPOCHS} if no bound is given].")
@_unset("--eval-every", type=int,
        help=f"Steps between evaluations and checkpoints [{_DEFAULTS.eval_every}; "
             f"{_recipe.SHORT_EVAL_EVERY} with a --max-time under {_recipe.SHORT_TIME_S} s].")
@_unset("--eval-interval", type=float,
        help=f"Seconds between evaluations too, whichever of the two comes first [none; a tenth of a "
             f"--max-time under {_recipe.SHORT_TIME_S} s].")
@_unset("--val-fraction", type=float, shown=_DEFAULTS.val_fraction, help="Share of the corpus held out (its end).")
@_unset("--val-symbols", type=int,
        help="Held-out symbols read at each evaluation, spread over the whole held-out part "
             f"(0: all of it; charlstm eval is always exact) [{_DEFAULTS.val_symbols:,}; "
             f"{_recipe.SHORT_VAL_SYMBOLS:,} with a --max-time under {_recipe.SHORT_TIME_S} s].")
@_unset("--unit", type=click.Choice(["grapheme", "codepoint"]), shown=_DEFAULTS.unit)
@_unset("--min-count", type=int, shown=_DEFAULTS.min_count, help="Rarer symbols map to the unknown symbol.")
@_unset("--dtype", type=click.Choice(["float32", "float64"]), shown=_DEFAULTS.dtype)
@_unset("--on-nonfinite", type=click.Choice(["stop", "skip"]), shown=_DEFAULTS.on_nonfinite,
        help="On a NaN/inf loss: stop, or skip the batch and halve the lr.")
@_unset("--encoding-errors", type=click.Choice(["strict", "replace"]), shown=READING_DEFAULTS["encoding_errors"])
@_unset("--newline", type=click.Choice(["keep", "normalize"]), shown=READING_DEFAULTS["newline"],
        help="normalize turns CRLF and CR into LF.")
@_unset("--labels", is_flag=True,
        help="CORPUS is a labelled file (label<TAB>text lines) or a folder per label: train a generator "
             "conditioned on the label (each example's text and a newline, in an order shuffled with --seed); "
             "sample it with --label.")
@click.option("--resume", type=PATH, default=None,
              help="Continue the run of this checkpoint: its model, vocabulary, training options, "
                   "--newline, --encoding-errors and bounds are used. Only --max-steps, --max-time and "
                   "--epochs may be given (any of them replaces its bounds); every other training "
                   "option is refused. CORPUS must be the run's own.")
@click.option("--init-from", type=PATH, default=None,
              help="Start a new run from this checkpoint's weights and vocabulary (fine-tuning, e.g. on "
                   "another corpus): a fresh optimiser at step 0, this command's training options; "
                   "--cell, --layers, --hidden, --embedding-size, --dropout, --unit and --min-count come from it.")
@click.option("--start-over", is_flag=True,
              help="OUT holds an earlier run: move its files (checkpoints, metrics.jsonl, corpus.txt) into "
                   "OUT/previous-N first, and say so. Without it (or --resume) such an OUT is refused.")
@click.option("--engine", type=click.Choice(["numpy", "torch"]), default="numpy", show_default=True,
              help="What computes each step: charlstm's own NumPy code, or PyTorch (installed apart) on "
                   "--device; under torchrun, several processes share each batch. A resumed run may change it.")
@click.option("--device", default=None,
              help="With --engine torch: cpu, cuda or cuda:N [cpu; under torchrun with cuda, one GPU per process].")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train(corpus, out_dir, quiet, **options):
    """Train a model on CORPUS (default: the Python standard library's own sources, copied to
    OUT/corpus.txt).

    CORPUS is a text file of any size (one larger than 32 MiB, or gzipped, is encoded once into
    OUT/data and memory-mapped from there), or a data directory written by `charlstm corpus encode`.

    The settings in [brackets] that depend on the run follow the corpus and the budget (the
    README's "Default recipe"); the run prints what it chose and why in one line, and an option
    given is never changed.
    """
    model = api.train(corpus, out_dir, progress=not quiet, show_recipe=True, **options)
    if model.rank != 0:          # a process of a shared run: rank 0 says what happened
        if model.interrupted:
            sys.exit(EXIT_INTERRUPTED)
        return
    last = model.history[-1] if model.history else None
    if last is not None and last.val_nats is not None:
        click.echo(f"step {last.step}: validation {last.val_nats:.4f} nats/char ({last.val_bpc:.3f} bits/char); "
                   f"checkpoints in {out_dir}", err=True)
    if model.interrupted:
        latest = out_dir / "latest.npz"
        read = corpus if corpus is not None else out_dir / DEFAULT_CORPUS
        engine = [] if options["engine"] == "numpy" else ["--engine", options["engine"]]
        engine += [] if options["device"] is None else ["--device", options["device"]]
        cmd = shlex.join(["charlstm", "train", str(read), "--out", str(out_dir), "--resume", str(latest), *engine])
        click.echo(f"Interrupted at step {model.step}; saved {latest}. Resume with: {cmd}", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _encoding_errors_option(what: str, unset: bool = False):
    """unset: None when not given (shown as strict), for a command where giving it can be refused."""
    help = f"replace: bytes of {what} that are not UTF-8 read as U+FFFD."
    if unset:
        return _unset("--encoding-errors", type=click.Choice(["strict", "replace"]), shown="strict", help=help)
    return click.option("--encoding-errors", type=click.Choice(["strict", "replace"]), default="strict",
                        show_default=True, help=help)


# --- sample ------------------------------------------------------------------------------------

@main.command()
@click.argument("checkpoint", type=PATH)
@click.option("--length", type=int, default=500, show_default=True, help="Symbols to generate per sample.")
@_unset("--temperature", type=float, shown=SAMPLE_TEMPERATURE, help="0 means always the most likely.")
@click.option("--prime", default="", help="Text the model reads first (printed too).")
@click.option("--seed", type=int, default=None, help="Makes the sample reproducible.")
@click.option("--top-k", type=int, default=None, help="Draw only among the k most likely symbols.")
@click.option("--top-p", type=float, default=None, help="Draw only among the most likely symbols holding p.")
@click.option("--num-samples", type=int, default=1, show_default=True, help="Samples, generated as one batch.")
@click.option("--stop", default=None, help='End a sample at this text, e.g. "\\n" for one line.')
@click.option("--beam", type=int, default=None,
              help="Beam search of this width instead of sampling: the most likely texts "
                   "(--num-samples of them); --temperature, --top-k, --top-p and --seed do not apply.")
@_unset("--length-penalty", type=float, shown=1.0,
        help="With --beam and --stop: texts of different lengths are ranked by log-probability / "
             "symbols ** this (0: the plain sum, 1: the mean per symbol).")
@click.option("--label", default=None, help="The label to write under, for a model trained with --labels.")
def sample(checkpoint, length, temperature, prime, seed, top_k, top_p, num_samples, stop, beam, length_penalty,
           label):
    """Generate text from a checkpoint, streamed to stdout.

    In --prime and --stop, backslash escapes read as in Python ("\\n" a line break, "\\t" a tab,
    "\\\\" a backslash).
    """
    prime, stop = _unescape("--prime", prime), _unescape("--stop", stop)
    if beam is not None or length_penalty is not None:     # the API refuses what a beam search would ignore
        model = api.load(checkpoint)
        with naming("--prime", checkpoint):
            texts = model.sample(length=length, temperature=temperature, prime=prime, top_k=top_k, top_p=top_p,
                                 num_samples=num_samples, stop=stop, seed=seed, beam=beam,
                                 length_penalty=length_penalty, label=label)
        for text in [texts] if isinstance(texts, str) else texts:
            sys.stdout.write(text + "\n")
        return
    if length >= 1 and 1 < num_samples <= MAX_SAMPLES:        # several samples are printed in order, so each is held until those before it end
        check_held_text(length, num_samples)
    model = api.load(checkpoint)
    stream = model.generate(length=length, temperature=temperature, prime=prime, top_k=top_k, top_p=top_p,
                            num_samples=num_samples, stop=stop, seed=seed, label=label)
    with naming("--prime", checkpoint):
        stream = _first_item_read(stream)      # the prime is encoded and read before the first item
    out = sys.stdout
    if num_samples == 1:
        for pieces, _ in stream:
            out.write(pieces[0])
            out.flush()
        out.write("\n")
        return
    # Several samples grow together; each is printed, in order, as soon as it and those before it end.
    texts = [[] for _ in range(num_samples)]
    printed = 0
    for pieces, done in stream:
        for k, piece in enumerate(pieces):
            texts[k].append(piece)
        while printed < num_samples and done[printed]:
            out.write("".join(texts[printed]) + "\n")
            out.flush()
            printed += 1
    for k in range(printed, num_samples):
        out.write("".join(texts[k]) + "\n")


def _first_item_read(stream):
    """The generator with its first item already computed (so that its errors come here)."""
    first = next(stream)

    def chained():
        yield first
        yield from stream
    return chained()


def _unescape(option: str, value: str | None) -> str | None:
    if value is None or "\\" not in value:
        return value
    # unicode_escape reads bytes as Latin-1: non-Latin-1 text goes in as \U escapes, so "é\n"
    # or an emoji before "\n" survive (UTF-8 bytes would come back as mojibake)
    try:
        return value.encode("latin-1", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError as e:
        raise CharlstmError(f"{option} '{validate.printable(value)}': bad escape sequence ({e.reason})") from None


# --- eval --------------------------------------------------------------------------------------

@main.command(name="eval")
@click.argument("checkpoint", type=PATH)
@click.argument("file", type=PATH, required=False)
@click.option("--held-out", is_flag=True,
              help="Evaluate on exactly the part of the run's corpus that training held out (its last "
                   "--val-fraction), read as the run read it: FILE [default: the corpus the run recorded, "
                   "or corpus.txt or data/ beside CHECKPOINT] must be that corpus (checked by its SHA-256).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bar (one is shown for a long FILE).")
@_encoding_errors_option("FILE", unset=True)
def eval_command(checkpoint, file, held_out, as_json, quiet, encoding_errors):
    """Mean cross-entropy of FILE under the model: each symbol predicted from all before it.

    FILE is a text file of any size or a data directory (`charlstm corpus encode`), read block by
    block; the figure is exact either way. FILE that is the model's own training corpus is
    measured with a warning (most of it was trained on); --held-out measures the part that was not.
    For a model trained with --labels, FILE is a labelled file or folder, each example read under
    its own label as in training."""
    if held_out:
        result = api.evaluate(checkpoint, path=file, held_out=True, encoding_errors=encoding_errors)
        click.echo(f"{result.pop('corpus')}: the held-out {result['symbols'] + 1:,} symbols", err=True)
    else:
        if file is None:
            raise CharlstmError("give a FILE to evaluate, or --held-out for the run's held-out split")
        result = api.evaluate(checkpoint, path=file, progress=not quiet and _is_long(file),
                              encoding_errors=encoding_errors)
    if as_json:
        click.echo(json.dumps(result))
    else:
        examples = f", {result['examples']} examples" if "examples" in result else ""
        click.echo(f"{result['nats_per_char']:.4f} nats/char  {result['bits_per_char']:.4f} bits/char  "
                   f"({result['symbols']} symbols{examples})")


def _is_long(path: Path) -> bool:
    """Long enough to be worth a progress bar: evaluating it takes more than a few seconds."""
    try:
        target = path / "ids.npy" if path.is_dir() else path
        return target.stat().st_size > (1 << 20)
    except OSError:
        return False


# --- corpus ------------------------------------------------------------------------------------

@main.group(cls=_Group)
def corpus():
    """Build corpora: code trees, tweet archives, synthetic languages."""


@corpus.command()
@click.argument("directory", required=False, type=PATH)
@click.option("--python-stdlib", is_flag=True, help="The default corpus: the Python standard library's sources.")
@click.option("--ext", default=".py", show_default=True, help="Comma-separated file endings, e.g. .py,.java")
@click.option("--max-bytes", type=int, default=5_000_000, show_default=True, help="Size cap of the corpus.")
@click.option("--max-file-bytes", type=int, default=1_000_000, show_default=True, help="Skip larger files.")
@click.option("--exclude", multiple=True, help="Glob of paths to leave out (repeatable).")
@click.option("--no-headers", is_flag=True, help="No '### FILE: path' line before each file.")
@click.option("-o", "--output", required=True, type=PATH)
@_writes("output", ("directory",), "corpus")
def code(directory, python_stdlib, ext, max_bytes, max_file_bytes, exclude, no_headers, output):
    """Concatenate a source tree into one corpus file."""
    click.echo(api.write_code_corpus(output, directory, python_stdlib, ext=ext, max_bytes=max_bytes,
                                     max_file_bytes=max_file_bytes, exclude=exclude, headers=not no_headers), err=True)


@corpus.command()
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...", type=_PathType())
@click.option("-o", "--output", required=True, type=PATH, help="The data directory to write.")
@click.option("--ext", default=".txt", show_default=True,
              help="Comma-separated file endings taken from an INPUT directory, e.g. .c,.h")
@click.option("--exclude", multiple=True, help="Glob of paths under an INPUT directory to leave out (repeatable).")
@click.option("--unit", type=click.Choice(["grapheme", "codepoint"]), default=ReadOptions.unit, show_default=True)
@click.option("--newline", type=click.Choice(["keep", "normalize"]), default=ReadOptions.newline, show_default=True,
              help="normalize turns CRLF and CR into LF.")
@click.option("--encoding-errors", type=click.Choice(["strict", "replace"]), default=ReadOptions.encoding_errors,
              show_default=True)
@click.option("--min-count", type=int, default=ReadOptions.min_count, show_default=True,
              help="Rarer symbols map to the unknown symbol.")
@click.option("--workers", type=int, default=None,
              help="Processes that split text into symbols [one per core; 1: this process only].")
@click.option("--force", is_flag=True, help="Replace OUTPUT if it is a data directory already.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@_writes("output", ("inputs",), "data directory", directory=True)
def encode(inputs, output, ext, exclude, unit, newline, encoding_errors, min_count, workers, force, quiet):
    """Encode a corpus once into a data directory: ids.npy, vocab.json, manifest.json.

    INPUT is a text file, a gzip file, a directory (its files ending in --ext, sorted by path) or
    - for standard input. train, eval, trace, neurons, viz and novelty read the directory
    memory-mapped, in memory that does not grow with the corpus.
    """
    click.echo(api.encode_corpus(inputs, output, ext, exclude, unit=unit, newline=newline,
                                 encoding_errors=encoding_errors, min_count=min_count, workers=workers, force=force,
                                 progress=not quiet), err=True)


@corpus.command()
@click.argument("files", nargs=-1, required=True, type=PATH)
@click.option("-o", "--output", required=True, type=PATH)
@click.option("--text-field", default=None, help="Name of the text column or key.")
@click.option("--keep-retweets", is_flag=True)
@click.option("--urls", type=click.Choice(["keep", "drop", "placeholder"]), default="keep", show_default=True)
@click.option("--since", default=None, help="Keep tweets on or after YYYY-MM-DD.")
@click.option("--until", default=None, help="Keep tweets on or before YYYY-MM-DD.")
@_writes("output", ("files",), "corpus")
def tweets(files, output, text_field, keep_retweets, urls, since, until):
    """Turn tweet archives (tweets.js, JSON, JSON Lines, CSV; gzip too) into one tweet per line."""
    click.echo(api.write_tweets(files, output, text_field=text_field, keep_retweets=keep_retweets, urls=urls,
                                since=since, until=until), err=True)


@corpus.command()
@click.argument("task", type=click.Choice(corpora.SYNTH_TASKS))
@click.option("-o", "--output", required=True, type=PATH)
@click.option("--n-lines", type=int, default=10_000, show_default=True)
@click.option("--max-n", type=int, default=10, show_default=True, help="Largest example size.")
@click.option("--seed", type=int, default=0, show_default=True)
@_writes("output", (), "corpus")
def synth(task, output, n_lines, max_n, seed):
    """A synthetic language, one example a line: counting, selective, remember, copy."""
    click.echo(api.write_synth(task, output, n_lines, max_n=max_n, seed=seed), err=True)


# --- check -------------------------------------------------------------------------------------

@main.command()
@click.argument("task", type=click.Choice(corpora.SYNTH_TASKS))
@click.argument("checkpoint", type=PATH)
@click.option("--n", "n_lines", type=int, default=1000, show_default=True, help="Lines to sample.")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Of the free samples (the probes always use 0).")
@click.option("--max-n", type=int, default=10, show_default=True,
              help="The largest N trained on; probes go up to twice it.")
@click.option("--context", type=int, default=3, show_default=True,
              help="Valid lines the model reads before each prompt (0: a bare newline).")
@click.option("--max-length", type=int, default=200, show_default=True, help="Longest line sampled.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def check(task, checkpoint, n_lines, temperature, max_n, context, max_length, seed, as_json):
    """Share of valid lines of a synthetic language: free samples by N, and prompts for N up to 2 * max-n."""
    report = synth_check.check_model(api.load(checkpoint), task, n=n_lines, temperature=temperature,
                                     max_n=max_n, context=context, max_length=max_length, seed=seed)
    click.echo(json.dumps(report) if as_json else synth_check.format_report(report))


# --- inspection --------------------------------------------------------------------------------
# Looking inside a model: traces, neuron finding, explorable pages, and copying versus generating.

from charlstm.analysis import features as _features  # noqa: E402
from charlstm.analysis import traces as _traces  # noqa: E402
from charlstm.analysis import report as _report  # noqa: E402
from charlstm.analysis import viz as _viz  # noqa: E402

# every quantity some cell traces; a trace checks that its own cell has the one asked for
_QUANTITIES = tuple(dict.fromkeys(q for cell in CELLS.values() for q in cell.quantities))


def _load_trace(checkpoint: Path, file: Path, max_symbols: int, encoding_errors: str) -> "_traces.Trace":
    """FILE's trace: the one saved in it (a .npz of `charlstm trace`; CHECKPOINT is not read), or
    CHECKPOINT's over its start."""
    if file.suffix == ".npz":
        return _traces.Trace.load(file)
    return api.trace_file(checkpoint, file, max_symbols=max_symbols, encoding_errors=encoding_errors)


def _write_page(path: Path, page: str) -> None:
    write_text(path, page, "page")
    click.echo(f"{path}: {human_bytes(len(page.encode('utf-8')))}; open it in a browser", err=True)


@main.command(name="trace")
@click.argument("checkpoint", type=PATH)
@click.argument("file", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, help="The trace .npz to write.")
@click.option("--max-symbols", type=int, default=20_000, show_default=True, help="Keep the first this many symbols.")
@click.option("--chunk", type=int, default=256, show_default=True, help="Symbols read at once (the state carries).")
@click.option("--top", type=int, default=5, show_default=True, help="Next-symbol candidates kept per symbol.")
@_encoding_errors_option("FILE")
@_writes("output", ("checkpoint", "file"), "trace")
def trace_command(checkpoint, file, output, max_symbols, chunk, top, encoding_errors):
    """Record every unit's quantities (h, c and the gates) at every symbol of FILE (a text file or
    a data directory; only its start is read)."""
    t = api.trace_file(checkpoint, file, max_symbols=max_symbols, chunk=chunk, top=top,
                       encoding_errors=encoding_errors)
    t.save(output)
    click.echo(f"{output}: {t.summary()}", err=True)


@main.command()
@click.argument("checkpoint", type=PATH)
@click.argument("file", type=PATH)
@click.option("--feature", required=True,
              help=f"{', '.join(_features.FEATURES)}, or regex:PATTERN (inside a match).")
@click.option("--top", type=int, default=10, show_default=True, help="Units to list.")
@click.option("--quantity", type=click.Choice(("all",) + _QUANTITIES), default="all", show_default=True,
              help="h, c, a gate (the LSTM's i, f, g, o; the GRU's r, z, n), or all of the cell's.")
@click.option("--layer", type=int, default=None, help="Only this layer [all].")
@click.option("--max-symbols", type=int, default=20_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_encoding_errors_option("a text FILE")
def neurons(checkpoint, file, feature, top, quantity, layer, max_symbols, as_json, encoding_errors):
    """Rank units by how well they follow a feature of FILE.

    FILE is a text file, a data directory, or a trace .npz written by `charlstm trace` (CHECKPOINT
    is then not read).
    """
    t = _load_trace(checkpoint, file, max_symbols, encoding_errors)
    ranked = _features.rank_units(t, feature, quantity=quantity, top=top, layer=layer)
    if as_json:
        click.echo(json.dumps(_features.ranking_record(feature, len(t), ranked), ensure_ascii=False))
        return
    for line in _features.ranking_lines(feature, len(t), ranked):
        click.echo(line)


@main.command()
@click.argument("checkpoint", type=PATH)
@click.argument("file", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, help="The HTML page to write.")
@click.option("--layer", type=int, default=None, help="Layer shown first [0, or the best ranked unit's].")
@click.option("--unit", type=int, default=None, help="Unit shown first [0, or the best ranked unit].")
@click.option("--quantity", type=click.Choice(_QUANTITIES), default=None,
              help="One of the cell's quantities (h, c, i, f, g, o for the LSTM) [h].")
@click.option("--feature", "feature_names", multiple=True,
              help="Offer the units ranked by this feature in a list (repeatable; see `neurons`).")
@click.option("--top", type=int, default=10, show_default=True, help="Ranked units per feature.")
@click.option("--max-symbols", type=int, default=20_000, show_default=True)
@click.option("--max-values", type=int, default=_viz.MAX_VALUES, show_default=True,
              help="At most this many stored unit values (symbols x series) keep the page small.")
@click.option("--title", default=None, help="The page's title [the file's name].")
@_encoding_errors_option("a text FILE")
@_writes("output", ("checkpoint", "file"), "page")
def viz(checkpoint, file, output, layer, unit, quantity, feature_names, top, max_symbols, max_values, title,
        encoding_errors):
    """Write a self-contained HTML page that colours FILE by any unit's value.

    FILE is a text file, a data directory, or a trace .npz written by `charlstm trace` (CHECKPOINT
    is then not read).
    """
    validate.whole(max_values, "--max-values", lo=1)
    t = _load_trace(checkpoint, file, max_symbols, encoding_errors)
    page = _viz.feature_page(t, feature_names, top=top, layer=layer, unit=unit, quantity=quantity,
                             title=title or f"charlstm · {file.name}", max_values=max_values)
    _write_page(output, page)


@main.command()
@click.argument("run_dir", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, help="The HTML page to write.")
@click.option("--corpus", type=PATH, default=None,
              help="The training corpus, to check the samples for copying [RUN_DIR/corpus.txt if there].")
@click.option("--title", default=None)
@_encoding_errors_option("the corpus")
@_writes("output", lambda p: _report.run_inputs(p["run_dir"], p["corpus"]), "page")
def report(run_dir, output, corpus, title, encoding_errors):
    """Write a training run's curves, learning rate and samples as one HTML page."""
    _write_page(output, _report.render_report(run_dir, corpus=corpus, title=title, encoding_errors=encoding_errors))


@main.command()
@click.argument("checkpoint", type=PATH)
@click.argument("corpus", type=PATH)
@click.option("--n-samples", "num_samples", type=int, default=20, show_default=True)
@click.option("--length", type=int, default=500, show_default=True, help="Symbols per sample.")
@click.option("--temperature", type=float, default=1.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_encoding_errors_option("CORPUS")
def novelty(checkpoint, corpus, num_samples, length, temperature, seed, as_json, encoding_errors):
    """How much of what the model writes occurs verbatim in CORPUS (n-grams of 10 to 50 characters).

    CORPUS is a text file (read whole, up to 512 MiB) or a data directory of any size (read
    memory-mapped; n-grams then count its symbols)."""
    found = api.novelty(checkpoint, corpus, num_samples=num_samples, length=length, temperature=temperature,
                        seed=seed, encoding_errors=encoding_errors)
    if as_json:
        click.echo(json.dumps(found.to_dict(), ensure_ascii=False))
        return
    for line in found.lines():
        click.echo(line)


# --- export and import ------------------------------------------------------------------------
# A trained model in another form (charlstm/export/formats.py holds the formats), and back.

@main.command(name="export")
@click.argument("checkpoint", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, help="The file to write.")
@click.option("--format", "fmt", default=None,
              help="html: one self-contained page that generates text in any browser, offline; torch: a "
                   "PyTorch .pt file; onnx: an ONNX model [from OUTPUT's suffix: .html, .pt, .onnx].")
@click.option("--precision", default="float32", show_default=True,
              help="html: weights as float32, float16 or int8 (a half and a quarter of the size; the loss "
                   "effect is measured and printed).")
@click.option("--eval-text", type=PATH, default=None,
              help="Held-in text to measure the precision's effect on [a sample of the model's own].")
@click.option("--title", default=None, help="The page's title [charlstm · OUTPUT's name].")
@_writes("output", ("checkpoint", "eval_text"))
def export_command(checkpoint, output, fmt, precision, eval_text, title):
    """Write CHECKPOINT in another form: a page that writes text in the browser, PyTorch or ONNX."""
    for line in api.export_model(checkpoint, output, format=fmt, precision=precision, eval_text=eval_text,
                                 title=title):
        click.echo(line, err=True)


@main.command(name="import")
@click.argument("model_file", metavar="MODEL.pt", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, help="The checkpoint .npz to write.")
@_writes("output", ("model_file",), "checkpoint")
def import_command(model_file, output):
    """Turn a charlstm .pt file (trained on in PyTorch, say) back into a checkpoint."""
    from charlstm.torch import load_torch
    model = load_torch(model_file)
    model.save(output)
    click.echo(f"{output}: {summary(model.config)}", err=True)


# --- labels: classify and tag --------------------------------------------------------------------
# A classifier (one label per text) and a tagger (the token class of each character of Python).
# Each command is one call of the API's labels section (train_classifier, train_tagger,
# load_labels_model, write_tweet_sources, write_code_languages); docs/labels.md holds the formats.

from dataclasses import fields as _dataclass_fields  # noqa: E402

from charlstm.analysis import tag_page as _tag_page  # noqa: E402
from charlstm.data.label_files import DEFAULT_MAX_BYTES as _LABEL_MAX_BYTES  # noqa: E402
from charlstm.model import SequenceConfig  # noqa: E402
from charlstm.training.label_eval import figure_lines  # noqa: E402
from charlstm.training.labelled import DEFAULT_VAL_FRACTION, LabelTrainConfig  # noqa: E402

_LABEL_DEFAULTS = LabelTrainConfig()
_MODEL_DEFAULTS = {f.name: f.default for f in _dataclass_fields(SequenceConfig)}


def _options(*decorators):
    """Several click options as one decorator, in the order written."""
    def decorate(f):
        for option in reversed(decorators):
            f = option(f)
        return f
    return decorate


def _label_training_options(what: str):
    """The options classify train and tag train share: the model's shape and how to train it;
    each is None (the library's default, shown in brackets) unless given."""
    return _options(
        click.option("--out", "out_dir", required=True, type=PATH,
                     help="Run directory: latest.npz, best.npz (best held-out accuracy), metrics.jsonl."),
        _unset("--cell", type=click.Choice(list(CELLS)), shown=_MODEL_DEFAULTS["cell"]),
        _unset("--layers", "num_layers", type=int, shown=_MODEL_DEFAULTS["num_layers"], help="Recurrent layers."),
        _unset("--hidden", "hidden_size", type=int, shown=_MODEL_DEFAULTS["hidden_size"], help="Units per layer."),
        _unset("--embedding-size", type=int,
               help="Size of each symbol's learnt input vector (0: one-hot input) [the hidden size]."),
        _unset("--dropout", type=float, shown=_MODEL_DEFAULTS["dropout"], help="Dropout on every layer's output."),
        click.option("--bidirectional", is_flag=True, help="Read each example both ways (two stacks, one per direction)."),
        _unset("--batch-size", type=int, shown=_LABEL_DEFAULTS.batch_size, help=f"{what} per step."),
        _unset("--lr", type=float, shown=_LABEL_DEFAULTS.lr, help="Adam learning rate."),
        _unset("--lr-schedule", type=click.Choice(["constant", "cosine"]), shown=_LABEL_DEFAULTS.lr_schedule),
        _unset("--grad-clip", type=float, shown=_LABEL_DEFAULTS.grad_clip,
               help="Clip gradients to this global norm (0: off)."),
        _unset("--max-steps", type=int, help="Stop after this many steps."),
        _unset("--max-time", type=float, help="Stop after this many seconds."),
        _unset("--epochs", type=float, help=f"Stop after this many passes [{DEFAULT_EPOCHS} if no bound is given]."),
        _unset("--eval-every", type=int, shown=_LABEL_DEFAULTS.eval_every,
               help="Steps between held-out evaluations and checkpoints."),
        _unset("--val-fraction", type=float, shown=DEFAULT_VAL_FRACTION,
               help=f"Share of the {what.lower()} held out when --held-out is not given (0: none)."),
        _unset("--max-length", type=int, shown=_LABEL_DEFAULTS.max_length, help=f"Symbols read of each of the "
               f"{what.lower()}."),
        _unset("--min-count", type=int, shown=_LABEL_DEFAULTS.min_count, help="Rarer symbols read as unknown."),
        _unset("--seed", type=int, shown=_LABEL_DEFAULTS.seed),
        click.option("--start-over", is_flag=True,
                     help="OUT holds an earlier run: move its files into OUT/previous-N first."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    )


def _say_run(model) -> None:
    """The last evaluation, where the checkpoints are, and an interrupted run's exit."""
    last = model.history[-1] if model.history else None
    if last is not None:
        held = "" if last.val_accuracy is None else \
            f"held-out accuracy {last.val_accuracy:.3f}, loss {last.val_loss:.4f} nats; "
        click.echo(f"step {last.step}: {held or f'training loss {last.train_loss:.4f} nats; '}best.npz is step "
                   f"{model.best_step}; checkpoints in {model.out_dir}", err=True)
    if model.interrupted:
        click.echo(f"Interrupted at step {model.step}; saved {model.out_dir / 'latest.npz'}", err=True)
        sys.exit(EXIT_INTERRUPTED)


def _say_figures(result: dict, items: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    for line in figure_lines(result, items):
        click.echo(line)
    click.echo(f"loss {result['loss']:.4f} nats per {items[:-1]}")


@main.group(cls=_Group)
def classify():
    """A classifier: one label per text (a tweet's client, a stretch of code's language, ...)."""


@classify.command(name="train")
@click.argument("labelled", type=PATH)
@click.option("--held-out", type=PATH, default=None,
              help="A labelled file or folder to evaluate on [--val-fraction of LABELLED's examples].")
@_unset("--pooling", type=click.Choice(["last", "mean"]), shown="mean",
        help="Read the output after the whole text (each direction's last step), or the mean over its positions.")
@_label_training_options("Examples")
def classify_train(labelled, quiet, **options):
    """Train a classifier on LABELLED: a file of label<TAB>text lines (\\t \\n \\r \\\\ escapes) or a
    folder with a sub-folder per label and a text file per example.

    A text longer than --max-length symbols is cut to its first --max-length."""
    _say_run(api.train_classifier(labelled, progress=not quiet, show_data=True, **options))


@classify.command(name="eval")
@click.argument("checkpoint", type=PATH)
@click.argument("labelled", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def classify_eval(checkpoint, labelled, as_json):
    """Accuracy, each label's precision and recall, and the confusion table on LABELLED."""
    _say_figures(api.load_labels_model(checkpoint, kind="classifier").evaluate(labelled), "examples", as_json)


@classify.command(name="predict")
@click.argument("checkpoint", type=PATH)
@click.argument("files", nargs=-1, required=True, metavar="FILE...", type=PATH)
@click.option("--whole-file", is_flag=True, help="Classify each FILE as one text, not each of its lines.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per text.")
def classify_predict(checkpoint, files, whole_file, as_json):
    """The label of each non-blank line of each FILE (taken as it is, no escapes), or of each FILE
    with --whole-file: SOURCE<TAB>LABEL<TAB>label=probability ..."""
    model = api.load_labels_model(checkpoint, kind="classifier")
    for p in model.predict_files(files, whole_file=whole_file):
        if as_json:
            click.echo(json.dumps({"source": p.source, "label": p.label, "probs": p.probs}, ensure_ascii=False))
        else:
            click.echo(f"{p.source}\t{p.label}\t" + " ".join(f"{name}={x:.3f}" for name, x in p.probs.items()))


@main.group(cls=_Group)
def tag():
    """A tagger: the token class of each character of Python (name, keyword, string, comment, ...)."""


@tag.command(name="train")
@click.argument("code", nargs=-1, required=True, metavar="CODE...", type=PATH)
@click.option("--held-out", multiple=True, type=PATH,
              help="Python files or folders to evaluate on (repeatable) [--val-fraction of the files].")
@click.option("--max-bytes", type=int, default=_LABEL_MAX_BYTES, show_default=True,
              help="Read files in order until this much code.")
@_label_training_options("Stretches")
def tag_train(code, held_out, max_bytes, quiet, **options):
    """Train a tagger on CODE: .py files or folders of them. Files that do not tokenize are left
    out and counted; each file is cut into stretches of at most --max-length characters ending at
    line ends."""
    _say_run(api.train_tagger(list(code), held_out=list(held_out) or None, max_bytes=max_bytes, progress=not quiet,
                              show_data=True, **options))


@tag.command(name="eval")
@click.argument("checkpoint", type=PATH)
@click.argument("code", nargs=-1, required=True, metavar="CODE...", type=PATH)
@click.option("--max-bytes", type=int, default=_LABEL_MAX_BYTES, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def tag_eval(checkpoint, code, max_bytes, as_json):
    """Accuracy over every character of CODE (.py files or folders), and each class's precision and recall."""
    result = api.load_labels_model(checkpoint, kind="tagger").evaluate(list(code), max_bytes=max_bytes)
    if result["skipped"]:
        click.echo(f"left out {len(result['skipped'])} files that cannot be read or do not tokenize "
                   f"(first: {result['skipped'][0]})", err=True)
    _say_figures(result, "characters", as_json)


@tag.command(name="predict")
@click.argument("checkpoint", type=PATH)
@click.argument("file", type=PATH)
@click.option("--html", type=PATH, default=None, help="Write a self-contained HTML page of the coloured text.")
def tag_predict(checkpoint, file, html):
    """Tag FILE: in colours on a terminal, else one CLASS<TAB>TEXT line per run of one class (TEXT
    with \\t \\n \\r \\\\ escapes); --html writes a page instead."""
    if html is not None:
        check_output(html, [checkpoint, file], "page")
    model = api.load_labels_model(checkpoint, kind="tagger")
    spans = model.tag_file(file)
    if html is not None:
        _write_page(html, _tag_page.tag_page(spans, model.labels, f"charlstm tag · {file.name}"))
    elif sys.stdout.isatty():
        sys.stdout.write(_tag_page.ansi_text(spans, model.labels) + "\n")
    else:
        for line in _tag_page.span_lines(spans):
            click.echo(line)


@corpus.command(name="tweet-sources")
@click.argument("archive", type=PATH)
@click.option("-o", "--output", required=True, type=PATH, help="The labelled file (label<TAB>text) to write.")
@click.option("--keep-other", is_flag=True, help="Label tweets of other clients 'other' instead of leaving them out.")
@_writes("output", ("archive",), "labelled corpus")
def tweet_sources(archive, output, keep_other):
    """Tweets labelled by the phone or web client that sent them (android, iphone, web), from a Trump
    Twitter Archive folder of condensed_YYYY.json files (or one such file)."""
    click.echo(api.write_tweet_sources(archive, output, keep_other=keep_other), err=True)


@corpus.command()
@click.option("-o", "--output", required=True, type=PATH, help="The labelled file (label<TAB>text) to write.")
@click.option("--root", "roots", multiple=True, type=PATH,
              help="A folder of source files to read (repeatable) [the standard library, /usr/include, /usr/share, "
                   "node modules].")
@click.option("--per-label", type=int, default=2000, show_default=True, help="Stretches per language at most.")
@click.option("--stretch", type=int, default=600, show_default=True, help="Characters per stretch, about.")
@click.option("--seed", type=int, default=0, show_default=True)
@_writes("output", ("roots",), "labelled corpus")
def languages(output, roots, per_label, stretch, seed):
    """Stretches of source code labelled by language: c, javascript, perl, python, rst."""
    click.echo(api.write_code_languages(output, list(roots) or None, per_label=per_label, stretch=stretch,
                                        seed=seed), err=True)
