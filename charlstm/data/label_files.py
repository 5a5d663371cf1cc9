"""Files for the labelling models, made and read in one call each: the two labelled corpora this
machine can build (`charlstm corpus tweet-sources`, `charlstm corpus languages`), the texts a
classifier is asked about, and the Python files a tagger learns from.

Each writer returns the line that says what it wrote, for a notebook as for the command line.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from charlstm import validate
from charlstm.data.label_tasks import code_languages, python_sources, python_tags, tweet_sources
from charlstm.data.labelled import Labelled, write_labelled
from charlstm.data.text import decode_text, read_bytes
from charlstm.errors import ArgumentError, CharlstmError, TextError, about


def summary(output, data: Labelled) -> str:
    """'OUT: N examples; a 12, b 30' (examples per label, in label order)."""
    counts = ", ".join(f"{label} {n:,}" for label, n in data.counts().items())
    return f"{output}: {len(data):,} examples; {counts}"


def write_examples(output, data: Labelled) -> str:
    """Write a Labelled as label<TAB>text lines (data/labelled.py's format A), atomically."""
    write_labelled(output, [data.labels[t] for t in data.targets.tolist()], data.texts)
    return summary(output, data)


def write_tweet_sources(archive, output, keep_other: bool = False) -> str:
    """Tweets labelled by the client that sent them (label_tasks.tweet_sources) as a labelled file."""
    output = validate.path(output, "output")
    return write_examples(output, tweet_sources(archive, keep_other=keep_other))


def write_code_languages(output, roots=None, per_label: int = 2000, stretch: int = 600, seed: int = 0) -> str:
    """Stretches of source code labelled by language (label_tasks.code_languages) as a labelled file;
    roots: folders to read (default: the standard library and this machine's usual source folders)."""
    output = validate.path(output, "output")
    return write_examples(output, code_languages(roots, stretch=stretch, per_label=per_label, seed=seed))


# --- texts to classify -------------------------------------------------------------------------------

def text_of_file(path) -> str:
    """A UTF-8 text file's whole text, CRLF read as LF (a byte-order mark dropped)."""
    path = validate.path(path, "path")
    if path.is_dir():
        raise CharlstmError(f"{path}: is a folder; give a text file")
    if not path.exists():
        raise CharlstmError(f"{path}: no such file")
    return decode_text(read_bytes(path), str(path)).replace("\r\n", "\n")


def texts_to_classify(path, whole_file: bool = False) -> list[tuple[str, str]]:
    """(source, text) of each text in a UTF-8 file: each non-blank line ("FILE:LINE"), taken as it
    is (no escapes: the file is plain text, not a labelled file), or with whole_file the file as
    one text ("FILE", its final line end dropped, as a labelled folder's file reads). CRLF reads
    as LF either way."""
    text = text_of_file(path)
    if whole_file:
        text = text.removesuffix("\n")
        if not text.strip():
            raise CharlstmError(f"{path}: is empty; there is no text to classify")
        return [(str(path), text)]
    found = [(f"{path}:{number}", line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not found:
        raise CharlstmError(f"{path}: holds no text (every line is blank)")
    return found


# --- Python files for a tagger ------------------------------------------------------------------------

DEFAULT_MAX_BYTES = 5_000_000     # of Python read to train or score a tagger, as `corpus code` caps a corpus


class TaggedFiles(NamedTuple):
    """Python files with the class of each character (label_tasks.python_tags)."""
    texts: tuple[str, ...]
    tags: tuple[np.ndarray, ...]
    sources: tuple[str, ...]          # the file of each text
    skipped: tuple[str, ...]          # "FILE: why", one per file left out
    capped: bool                      # True when max_bytes stopped the reading before the last file


def tagged_files(paths, max_bytes: int | None = None) -> TaggedFiles:
    """The .py files of `paths` (files, or folders whose .py files are taken in path order) with
    their tags, until max_bytes bytes of text are read (None: all; the file that crosses the cap
    is the last one taken). Files that cannot be read, are blank or do not tokenize are left out
    and named in `skipped`."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ArgumentError("paths", "{name} is empty: give Python files or folders of them")
    paths = [validate.path(p, "paths") for p in paths]
    validate.size(max_bytes, "max_bytes", optional=True)
    texts, tags, sources, skipped = [], [], [], []
    read = 0
    for name, read_text in python_sources(paths):
        if max_bytes is not None and read >= max_bytes:
            return TaggedFiles(tuple(texts), tuple(tags), tuple(sources), tuple(skipped), True)
        try:
            text = read_text()
            if not text.strip():
                raise TextError("blank")
            tags.append(python_tags(text))
        except CharlstmError as e:      # unreadable, not UTF-8, too large, or code that does not tokenize
            skipped.append(about(name, str(e)))
            continue
        texts.append(text)
        sources.append(name)
        read += len(text.encode("utf-8"))
    return TaggedFiles(tuple(texts), tuple(tags), tuple(sources), tuple(skipped), False)


def files_line(found: TaggedFiles, max_bytes: int | None = None) -> str:
    """What tagged_files read: 'read 12 files (345,678 characters); skipped 2 (FIRST: why)'."""
    characters = sum(len(t) for t in found.texts)
    line = f"read {len(found.texts):,} Python files ({characters:,} characters)"
    if found.capped:
        line += f", stopped at the cap of {max_bytes:,} bytes"
    if found.skipped:
        line += f"; skipped {len(found.skipped):,} that cannot be read or do not tokenize (first: {found.skipped[0]})"
    return line


__all__ = ["DEFAULT_MAX_BYTES", "summary", "write_examples", "write_tweet_sources", "write_code_languages", "text_of_file", "texts_to_classify",
           "TaggedFiles", "tagged_files", "files_line"]
