"""The work on one piece of a corpus (data/blocks.py), run in this process or in a pool's worker:
counting its symbols and encoding them, through the 256-entry tables when the piece is ASCII (a
hundred times cheaper per byte than finding grapheme clusters); and the meter of bytes read."""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from charlstm.data.blocks import Input, Piece
from charlstm.data.datadir import ReadOptions
from charlstm.data.text import decode_text
from charlstm.data.vocab import Vocab, count_bytes, count_chunk, symbol_keys, text_chunks
from charlstm.errors import CharlstmError


# progress(stage, done, total): stage "counting" or "encoding", bytes of the inputs as stored
ByteProgress = Callable[[str, int, "int | None"], None]


_NEWLINES = ((b"\r\n", b"\n"), (b"\r", b"\n"))


def ascii_bytes(piece: Piece, options: ReadOptions) -> bytes | None:
    """The piece's bytes when the 256-entry tables can handle it: ASCII (newlines normalised if
    asked), and without CR in grapheme mode (CR LF is one symbol); None otherwise."""
    data = piece.data
    if not data.isascii():
        return None
    nul = data.find(b"\0")
    if nul >= 0:                                          # decode_text says it as for any file
        decode_text(data, piece.name, offset=piece.offset, at_start=piece.first)
    if options.newline == "normalize" and b"\r" in data:
        for old, new in _NEWLINES:
            data = data.replace(old, new)
    if options.unit == "grapheme" and b"\r" in data:
        return None
    return data


def _text_keys(piece: Piece, options: ReadOptions):
    """(keys, clusters) of each chunk of the piece's text (see vocab.symbol_keys)."""
    text = decode_text(piece.data, piece.name, options.encoding_errors, options.newline,
                       offset=piece.offset, at_start=piece.first)
    return [symbol_keys(chunk, options.unit) for chunk in text_chunks(text)]


def count_piece(piece: Piece, options: ReadOptions, vocab=None):
    """Pass 1's job: ("bytes", counts per byte) for a piece the tables take, else ("text", code
    points present, their counts, cluster names, their counts); small enough to send between
    processes. vocab is unused: every job takes (piece, options, vocab)."""
    data = ascii_bytes(piece, options)
    if data is not None:
        return "bytes", count_bytes(data)
    text = decode_text(piece.data, piece.name, options.encoding_errors, options.newline,
                       offset=piece.offset, at_start=piece.first)
    per_codepoint, clusters = None, Counter()
    for chunk in text_chunks(text):
        counts, found = count_chunk(chunk, options.unit)
        if per_codepoint is None or len(counts) > len(per_codepoint):
            counts, per_codepoint = per_codepoint, counts
        if counts is not None:
            per_codepoint[:len(counts)] += counts
        clusters.update(found)
    if per_codepoint is None:                   # a piece holding only a byte-order mark
        per_codepoint = np.zeros(0, np.int64)
    present = np.flatnonzero(per_codepoint)
    return "text", present, per_codepoint[present], list(clusters), list(clusters.values())


def encode_piece(piece: Piece, options: ReadOptions, vocab: Vocab):
    """Pass 2's job: the piece's ids under vocab (which holds every symbol pass 1 counted: a
    symbol it lacks means the input changed between the passes)."""
    data = ascii_bytes(piece, options)
    if data is not None:
        return vocab.ascii_ids(data)
    parts = []
    for keys, clusters in _text_keys(piece, options):
        try:
            parts.append(vocab.ids_from_keys(keys, clusters, use_unk=True))
        except CharlstmError:
            raise changed_error(piece) from None
    if not parts:                       # a piece holding only a byte-order mark
        return np.zeros(0, dtype=vocab.dtype)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def add_found(found, per_codepoint: np.ndarray, clusters: Counter) -> None:
    """Add what count_piece found in a piece to the counts so far."""
    if found[0] == "bytes":
        per_codepoint[:256] += found[1]
    else:
        _, present, n, names, name_counts = found
        per_codepoint[present] += n
        clusters.update(dict(zip(names, name_counts)))


def file_stamp(inp: Input):
    """(size, modification time) of an input file as it is now (None for one that is not a file)."""
    if inp.path is None or inp.mtime_ns is None:
        return (inp.stored_bytes, inp.mtime_ns)
    try:
        stat = inp.path.stat()
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns)


def changed_error(what) -> CharlstmError:
    """The error for an input (or a piece of one) that changed while it was being encoded."""
    return CharlstmError(f"{what.name}: changed while it was being encoded (its second reading differs from "
                         "the first); encode it again once it is complete")


class Meter:
    """Bytes read so far, over all inputs, for the progress callback."""

    def __init__(self, progress: ByteProgress | None, stage: str, inputs: list[Input]):
        self.progress, self.stage = progress, stage
        sizes = [inp.stored_bytes for inp in inputs]
        self.total = None if any(s is None for s in sizes) else sum(sizes)
        self.before = 0     # bytes of the inputs already read
        self.current = 0
        if progress is not None:
            progress(stage, 0, self.total)

    def at(self, consumed: int) -> None:
        self.current = consumed
        if self.progress is not None:
            self.progress(self.stage, self.before + consumed, self.total)

    def done_input(self) -> None:
        self.before += self.current
        self.current = 0
