"""Corpus files made in one call: each function builds a corpus (corpora.py, encode.py), writes it
and returns the line that says what it holds, for a notebook as for `charlstm corpus ...`."""

from __future__ import annotations

import datetime as dt

import numpy as np

from charlstm import validate
from charlstm.data import corpora
from charlstm.data.blocks import list_inputs
from charlstm.data.datadir import ReadOptions
from charlstm.data.encode import ByteProgress, encode_corpus, human_bytes
from charlstm.errors import CharlstmError
from charlstm.files import write_text


def endings(ext) -> tuple[str, ...]:
    """File endings from "a,b" (as an option gives them) or a sequence of them."""
    parts = ext.split(",") if isinstance(ext, str) else ext
    return tuple(e.strip() for e in parts if e.strip())


def write_code_corpus(output, directory=None, python_stdlib: bool = False, ext=".py", max_bytes: int = 5_000_000,
                      max_file_bytes: int = 1_000_000, exclude=(), headers: bool = True) -> str:
    """Concatenate a source tree (or, python_stdlib, the Python standard library's sources) into
    the text file `output`; returns what it holds and what was skipped."""
    if python_stdlib == (directory is not None):
        raise CharlstmError("give a DIRECTORY or --python-stdlib (one of them)")
    if python_stdlib:
        text, summary = corpora.build_stdlib_corpus(max_bytes=max_bytes)
    else:
        text, summary = corpora.build_code_corpus(directory, exts=endings(ext), max_bytes=max_bytes,
                                                  max_file_bytes=max_file_bytes, exclude=exclude, headers=headers)
    write_text(output, text)
    skipped = ", ".join(f"{k} {v}" for k, v in summary.items() if k not in ("files_read", "bytes") and v)
    return (f"{output}: {summary['files_read']} files, {summary['bytes']:,} bytes"
            + (f"; skipped: {skipped}" if skipped else ""))


def _date(value):
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CharlstmError(f"not a date (use YYYY-MM-DD): {value}") from None


def write_tweets(files, output, text_field: str | None = None, keep_retweets: bool = False, urls: str = "keep",
                 since=None, until=None) -> str:
    """Tweet archives (tweets.js, JSON, JSON Lines, CSV; gzip too) as one tweet a line in the
    text file `output`; since, until: dates or YYYY-MM-DD. Returns what was kept and dropped."""
    lines, summary = corpora.read_tweets(list(files), text_field=text_field, keep_retweets=keep_retweets,
                                         urls=urls, since=_date(since), until=_date(until))
    write_text(output, "".join(line + "\n" for line in lines))
    dropped = ", ".join(f"{k} {v}" for k, v in summary["dropped"].items() if v) or "none"
    return (f"{output}: read {summary['read']} tweets, kept {summary['kept']}; dropped: {dropped}; "
            f"{summary['distinct_symbols']} distinct symbols")


def write_synth(task: str, output, n_lines: int = 10_000, max_n: int = 10, seed: int = 0) -> str:
    """A synthetic language (corpora.SYNTH_TASKS), one example a line, in the text file `output`."""
    lines = corpora.synth_lines(task, n_lines, max_n=max_n, rng=validate.seed(seed))
    write_text(output, "".join(line + "\n" for line in lines))
    return f"{output}: {len(lines)} lines of {task}"


def encode_inputs(inputs, output, ext=".txt", exclude=(), unit: str = ReadOptions.unit,
                  newline: str = ReadOptions.newline, encoding_errors: str = ReadOptions.encoding_errors,
                  min_count: int = ReadOptions.min_count, workers: int | None = None, force: bool = False,
                  progress: ByteProgress | None = None) -> str:
    """Encode text files, gzip files, directories (their files ending in `ext`) or "-" (standard
    input) once into the data directory `output`, read as the options say (ReadOptions); returns
    what it holds."""
    found = list_inputs(inputs, endings(ext) or (".txt",), exclude)
    options = ReadOptions(unit=unit, newline=newline, encoding_errors=encoding_errors, min_count=min_count)
    counted = encode_corpus(found, output, options, progress=progress, workers=workers, force=force)
    return (f"{output}: {counted.symbols:,} symbols ({np.dtype(counted.vocab.dtype).name}, "
            f"{len(counted.vocab)} distinct) from {len(found)} input{'s' if len(found) > 1 else ''} of "
            f"{human_bytes(counted.size)}; {counted.hash[:19]}...")


__all__ = ["endings", "write_code_corpus", "write_tweets", "write_synth", "encode_inputs"]
