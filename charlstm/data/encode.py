"""Encoding a corpus of any size into a data directory (data/datadir.py), in two passes, or in
one for a large ASCII corpus.

Pass 1 reads every input piece by piece (data/blocks.py) and counts each piece's symbols; the
vocabulary is built from the counts exactly as build_vocab builds it from the whole text. Pass 2
reads the inputs again, encodes every piece with that vocabulary, appends its ids to ids.npy and
hashes the bytes (an input whose size, modification time or symbol count has changed since pass 1
is refused). Only a few pieces are in flight at a time, so memory does not grow with the corpus,
and each piece is exactly what the whole text would give in its place (a property test holds the
passes to build_and_encode over random block sizes).

Where the time goes: a piece of ASCII text (without CR in grapheme mode) is encoded in this
process through 256-entry tables while threads hash its bytes and write the ids (asking for them
to be on disk as they go); any other piece needs its grapheme clusters found, which costs a
hundred times more per byte, so such pieces go to a pool of processes (one per core) once the
corpus is large enough to repay starting them. In pass 1 the pool's workers count a large plain
file by themselves, each reading its own stretches of it (Runner.count_ranges).

The ids of an ASCII corpus are as large as the corpus, so their writing is bound by the disk; a
large one is therefore encoded in one pass, with the vocabulary its start shows, while the
workers count it, and the two passes run only when that guess fails (encode_while_counting).

Standard input cannot be read twice: pass 1 copies it into the temporary directory.

This module drives the passes and writes pass 2; the parts live beside it:
    counting.py   pass 1 (count_corpus) and what it finds (Counted)
    one_pass.py   the one pass with a guessed vocabulary (encode_while_counting)
    pieces.py     the work on one piece, here or in a worker; the progress meter
    workers.py    the pool that runs it (Runner) and counts stretches of large files (Ranges)
    writing.py    the writer and hashing threads, the .npy header, and file operations
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from charlstm.data.blocks import BLOCK_BYTES, Input, read_pieces
from charlstm.data.counting import Counted, count_corpus
from charlstm.data.datadir import FORMAT, IDS, MANIFEST, VERSION, VOCAB, ReadOptions
from charlstm.data.one_pass import encode_while_counting
from charlstm.data.pieces import ByteProgress, Meter, changed_error, encode_piece, file_stamp
from charlstm.data.text import decode_text
from charlstm.data.vocab import Vocab
from charlstm.data.workers import POOL_MIN_BYTES, Runner, default_workers, pool_wanted
from charlstm.data.writing import (Hashing, Writer, check_disk_space, human_bytes, make_dir, open_for_writing,
                                   write_json)
from charlstm.errors import CharlstmError
from charlstm.files import fsync_directory


def write_ids(counted: Counted, inputs: list[Input], path: Path, progress: ByteProgress | None = None,
              workers: int | None = None, block_bytes: int = BLOCK_BYTES,
              pool_min_bytes: int = POOL_MIN_BYTES) -> None:
    """Pass 2: encode the inputs (those count_corpus returned) into the .npy file at path, and
    hash them if pass 1 did not."""
    vocab, written = counted.vocab, 0
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(vocab.dtype)), "fortran_order": False,
              "shape": (counted.symbols,)}
    f = open_for_writing(path)
    with f, Runner(counted.options, vocab, workers, pool_wanted(inputs, pool_min_bytes)) as runner, \
            Writer(f, path) as writer, Hashing(len(inputs), counted.sha256 is None) as hashing:
        np.lib.format.write_array_header_1_0(f, header)
        meter = Meter(progress, "encoding", inputs)

        def on_block(block: bytes, consumed: int):
            hashing.add(block)
            meter.at(consumed)

        for k, inp in enumerate(inputs):
            before = file_stamp(inp)
            hashing.start_input()
            for piece, ids in runner.map(read_pieces(inp, block_bytes, on_block), encode_piece):
                written += len(ids)
                if written > counted.symbols:
                    raise changed_error(inp)
                writer.write(ids.data)
            # A file edited since pass 1 shows in its size, its modification time or its symbol
            # count (hashing it again would cost a core for the length of the pass).
            listed = (inp.stored_bytes, inp.mtime_ns)
            if file_stamp(inp) != before or (inp.mtime_ns is not None and before != listed):
                raise changed_error(inp)
            digest = hashing.end_input()
            if digest is not None:
                counted.records[k]["sha256"] = digest
            meter.done_input()
        if hashing.on:
            counted.sha256 = hashing.whole()
        writer.finish()
        if written != counted.symbols:
            raise changed_error(inputs[-1])


def encode_corpus(inputs: list[Input], out_dir, options: ReadOptions = ReadOptions(),
                  progress: ByteProgress | None = None, workers: int | None = None, force: bool = False,
                  block_bytes: int = BLOCK_BYTES, pool_min_bytes: int = POOL_MIN_BYTES,
                  counted: Counted | None = None) -> Counted:
    """Write a data directory at out_dir from the inputs: both passes, then ids.npy, vocab.json
    and manifest.json under a temporary name, renamed into place. Refused before anything is
    written when out_dir exists (unless force, and it is a data directory) or when the disk
    lacks the room the ids need. counted: pass 1's result, when the caller already has it."""
    out_dir = Path(out_dir)
    _check_target(out_dir, force)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    try:
        again = inputs
        if counted is None:
            counted = encode_while_counting(inputs, options, out_dir, tmp, progress, workers, block_bytes,
                                            pool_min_bytes)
            if counted is not None:
                _finish_data_dir(counted, tmp, out_dir)
                return counted
            (tmp / IDS).unlink(missing_ok=True)         # a guess that failed: its ids hold disk space
            needs_spool = any(inp.path is None for inp in inputs)
            if needs_spool:
                make_dir(tmp)
            counted, again = count_corpus(inputs, options, progress, workers, block_bytes,
                                          tmp if needs_spool else None, pool_min_bytes, hash_bytes=False)
        check_disk_space(out_dir, counted.ids_bytes)
        make_dir(tmp)
        write_ids(counted, again, tmp / IDS, progress, workers, block_bytes, pool_min_bytes)
        for inp in again:
            if inp.path is not None and inp.path.parent == tmp:
                inp.path.unlink()                       # standard input's copy
        _finish_data_dir(counted, tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counted


def _finish_data_dir(counted: Counted, tmp: Path, out_dir: Path) -> None:
    """With the ids in tmp: the vocabulary, then the manifest, then tmp renamed to out_dir."""
    write_json(tmp / VOCAB, {**counted.vocab.to_dict(), "counts": counted.counts})
    write_json(tmp / MANIFEST, manifest(counted))  # last: a directory with a manifest is whole
    fsync_directory(tmp)
    _replace(tmp, out_dir)


def ids_with(inputs: list[Input], vocab: Vocab, options: ReadOptions = ReadOptions(),
             progress: ByteProgress | None = None, block_bytes: int = BLOCK_BYTES):
    """The inputs' ids under a given vocabulary (a model's), piece by piece, as vocab.encode(text,
    unknown="unk") gives them for the whole text: in memory that does not grow with the text."""
    meter = Meter(progress, "reading", inputs)
    for inp in inputs:
        for piece in read_pieces(inp, block_bytes, lambda block, consumed: meter.at(consumed)):
            text = decode_text(piece.data, piece.name, options.encoding_errors, options.newline,
                               offset=piece.offset, at_start=piece.first)
            if text:
                yield vocab.encode(text, unknown="unk")
        meter.done_input()


def manifest(counted: Counted) -> dict:
    """The data directory's manifest.json (see data/datadir.py)."""
    return {"format": FORMAT, "version": VERSION, "symbols": counted.symbols,
            "dtype": np.dtype(counted.vocab.dtype).name, "vocab_size": len(counted.vocab),
            "hash": counted.hash, "bytes": counted.size, "options": counted.options.to_dict(),
            "inputs": counted.records}


def _check_target(out_dir: Path, force: bool) -> None:
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise CharlstmError(f"{out_dir}: exists and is not a directory")
    try:
        contents = set(os.listdir(out_dir))
    except OSError as e:
        raise CharlstmError(f"{out_dir}: cannot read it ({e.strerror or e})") from None
    if not contents:
        return
    if not force:
        raise CharlstmError(f"{out_dir}: exists; choose another -o, or pass --force to replace it")
    if MANIFEST not in contents:
        raise CharlstmError(f"{out_dir}: exists and is not a charlstm data directory; --force replaces only those")


def _replace(tmp: Path, out_dir: Path) -> None:
    """Rename the finished directory into place (the old one, if any, goes only after that)."""
    old = None
    try:
        if out_dir.exists():
            if any(out_dir.iterdir()):
                old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
                os.replace(out_dir, old)
            else:
                out_dir.rmdir()
        os.replace(tmp, out_dir)
    except OSError as e:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)
        raise CharlstmError(f"cannot move the data directory into place at {out_dir}: {e.strerror or e}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    fsync_directory(out_dir.parent)


# The face of corpus encoding: what callers import from here, wherever it is defined.
__all__ = ["ByteProgress", "Counted", "ReadOptions", "count_corpus", "write_ids", "encode_corpus", "ids_with", "manifest",
           "check_disk_space", "human_bytes", "default_workers", "POOL_MIN_BYTES"]
