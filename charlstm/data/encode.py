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
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import signal
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from charlstm.data.blocks import BLOCK_BYTES, Input, Piece, input_record, line_start_before, read_pieces
from charlstm.data.datadir import FORMAT, IDS, MANIFEST, VERSION, VOCAB, ReadOptions
from charlstm.data.text import decode_text
from charlstm.data.vocab import (MAX_CODEPOINT, Vocab, byte_counter, count_bytes, count_chunk, symbol_keys, text_chunks,
                                 vocab_from_counts)
from charlstm.errors import CharlstmError
from charlstm.files import fsync_directory

POOL_MIN_BYTES = 32 << 20    # a smaller corpus is encoded in this process (a pool takes a second to start)
HEADER_BYTES = 128           # a .npy header of version 1.0 with a 1-d shape

# progress(stage, done, total): stage "counting" or "encoding", bytes of the inputs as stored
ByteProgress = Callable[[str, int, "int | None"], None]


@dataclass
class Counted:
    """What pass 1 found."""

    inputs: list[Input]
    options: ReadOptions
    vocab: Vocab
    counts: list[int]        # occurrences of each symbol of the vocabulary
    symbols: int
    records: list[dict]      # one per input (see blocks.input_record)
    sha256: str | None       # of all the inputs' bytes, one after another (None: pass 2 will hash them)
    size: int                # those bytes

    @property
    def ids_bytes(self) -> int:
        return HEADER_BYTES + self.symbols * np.dtype(self.vocab.dtype).itemsize

    @property
    def hash(self) -> str:
        return f"sha256:{self.sha256}"


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def count_corpus(inputs: list[Input], options: ReadOptions, progress: ByteProgress | None = None,
                 workers: int | None = None, block_bytes: int = BLOCK_BYTES, spool_dir: Path | None = None,
                 pool_min_bytes: int = POOL_MIN_BYTES, hash_bytes: bool = True) -> tuple[Counted, list[Input]]:
    """Pass 1. Returns what it found, and the inputs for pass 2 (standard input replaced by its
    copy in spool_dir, which it needs). hash_bytes False leaves the hashes (Counted.sha256 and
    each record's) to pass 2, which has a core to spare for them while the disk takes its ids."""
    per_codepoint = np.zeros(MAX_CODEPOINT, dtype=np.int64)
    clusters: Counter = Counter()
    records, again = [], []
    with Runner(options, None, workers, pool_wanted(inputs, pool_min_bytes)) as runner, \
            Hashing(len(inputs), hash_bytes) as hashing:
        meter = Meter(progress, "counting", inputs)
        for inp in inputs:
            spool = spool_path = None
            if inp.path is None:
                if spool_dir is None:
                    raise CharlstmError("standard input needs a directory to be copied into")
                spool_path = spool_dir / "stdin.txt"
                spool = open_for_writing(spool_path)
            size = [0]
            hashing.start_input()

            def on_block(block: bytes, consumed: int, size=size, spool=spool, spool_path=spool_path):
                hashing.add(block)
                size[0] += len(block)
                if spool is not None:
                    write_to(spool, block, spool_path)
                meter.at(consumed)

            # Without hashes to take, a large plain file is counted by the workers alone, each
            # reading its own stretch of it (this process reads none of it).
            ranged = None
            if not hash_bytes and runner.pool_wanted and inp.path is not None and not inp.gzip:
                ranged = runner.count_ranges(inp, meter)
            if ranged is not None:
                found_codepoints, found_clusters, size[0] = ranged
                per_codepoint += found_codepoints
                clusters.update(found_clusters)
            else:
                try:
                    for piece, found in runner.map(read_pieces(inp, block_bytes, on_block), count_piece,
                                                   path=None if inp.gzip else inp.path):
                        add_found(found, per_codepoint, clusters)
                finally:
                    if spool is not None:
                        spool.close()
            meter.done_input()
            records.append(input_record(inp, size[0], hashing.end_input()))
            again.append(inp if spool is None else Input(name=inp.name, path=spool_path, stored_bytes=size[0]))
        sha256 = hashing.whole()
    return counted_from(inputs, options, per_codepoint, clusters, records, sha256), again


def counted_from(inputs: list[Input], options: ReadOptions, per_codepoint: np.ndarray, clusters: Counter,
                 records: list[dict], sha256: str | None) -> Counted:
    """Pass 1's result from its counts: the vocabulary build_vocab would build from the whole text."""
    counts = Counter({chr(k): int(per_codepoint[k]) for k in np.flatnonzero(per_codepoint)})
    counts.update(clusters)
    if not counts:
        raise CharlstmError(f"{inputs[0].name if len(inputs) == 1 else 'the inputs'}: the corpus is empty")
    vocab = vocab_from_counts(counts, options.unit, options.min_count)
    symbols = sum(counts.values())
    per_symbol = [counts.get(s, 0) for s in vocab.symbols]
    if vocab.unk is not None:      # U+FFFD itself, and every rare symbol it stands for
        per_symbol[vocab.unk] = symbols - sum(n for k, n in enumerate(per_symbol) if k != vocab.unk)
    return Counted(inputs=inputs, options=options, vocab=vocab, counts=per_symbol, symbols=symbols,
                   records=records, sha256=sha256, size=sum(r["bytes"] for r in records))


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


# --- one pass, when the start of the corpus tells its vocabulary --------------------------------

PROVISIONAL_BYTES = 4 << 20     # the start of the corpus read for the vocabulary it guesses
_UNSEEN = 255                   # the id the guessed table gives a byte it does not hold
_UNSEEN_BYTE = bytes([_UNSEEN])


def encode_while_counting(inputs: list[Input], options: ReadOptions, out_dir: Path, tmp: Path,
                          progress: ByteProgress | None, workers: int | None, block_bytes: int,
                          pool_min_bytes: int) -> Counted | None:
    """Both passes at once, for large ASCII corpora: the ids of a byte-per-symbol corpus are as
    large as the corpus, so writing them is bound by the disk, and counting first would leave
    the disk idle for a third of the time. The vocabulary is guessed from the first
    PROVISIONAL_BYTES (with --min-count 1 it is the set of symbols present, and the start of
    an ASCII text almost always holds them all); the workers count the files in stretches
    (Ranges) while this process encodes them with the guess's table, in which every byte the
    guess lacks is _UNSEEN. The ids stand if the count's vocabulary is the guess and every
    piece was ASCII without _UNSEEN among its ids; otherwise (a symbol first seen later, a
    piece that needs its clusters found, CR in grapheme mode, a line too long to split at)
    None, and the caller runs the two passes from the start. Returns pass 1's result, the
    hashes included, with tmp/ids.npy written."""
    if options.min_count != 1 or any(inp.path is None or inp.gzip for inp in inputs):
        return None
    with Runner(options, None, workers, pool_wanted(inputs, pool_min_bytes)) as runner:
        if not runner.pool_wanted:
            return None
        guess = _guess_vocab(inputs[0], options, block_bytes)
        if guess is None:
            return None
        most = HEADER_BYTES + sum(inp.stored_bytes for inp in inputs)    # at most one id per byte
        try:
            check_disk_space(out_dir, most)
        except CharlstmError:
            return None                 # the two passes refuse it, or fit it exactly
        table = bytes(guess.id_of(chr(b), _UNSEEN) for b in range(256))
        ranges = Ranges(runner, inputs)
        make_dir(tmp)
        path = tmp / IDS
        f = open_for_writing(path)
        written, records = 0, []
        with f, Writer(f, path) as writer, Hashing(len(inputs)) as hashing:
            f.write(npy_header(np.uint8, 0))        # the count is known at the end
            meter = Meter(progress, "encoding", inputs)

            def on_block(block: bytes, consumed: int):
                hashing.add(block)
                meter.at(consumed)

            for inp in inputs:
                before, size = file_stamp(inp), 0
                hashing.start_input()
                for piece in read_pieces(inp, block_bytes, on_block):
                    size += len(piece.data)
                    data = ascii_bytes(piece, options)
                    if data is None:
                        return None
                    ids = data.translate(table)
                    if _UNSEEN_BYTE in ids:
                        return None
                    written += len(ids)
                    writer.write(ids)
                    if not ranges.collect():
                        return None
                listed = (inp.stored_bytes, inp.mtime_ns)
                if file_stamp(inp) != before or before != listed:
                    raise changed_error(inp)
                meter.done_input()
                records.append(input_record(inp, size, hashing.end_input()))
            if not ranges.finish():
                return None
            for inp, record, counted_bytes in zip(inputs, records, ranges.bytes):
                # The workers may have read a file's later stretches after this process read
                # it: a file rewritten meanwhile (even to the same size) shows in its stamp.
                if record["bytes"] != counted_bytes or file_stamp(inp) != (inp.stored_bytes, inp.mtime_ns):
                    raise changed_error(inp)
            counted = counted_from(inputs, options, ranges.per_codepoint, ranges.clusters, records, hashing.whole())
            if counted.vocab != guess or written != counted.symbols:
                return None
            writer.rewrite_start(npy_header(np.uint8, written))
            writer.finish()
        return counted


def npy_header(dtype, symbols: int) -> bytes:
    """The .npy header (version 1.0) of a 1-d array of `symbols` ids: HEADER_BYTES long."""
    import io
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": (symbols,)})
    header = out.getvalue()
    assert len(header) == HEADER_BYTES
    return header


def _guess_vocab(inp: Input, options: ReadOptions, block_bytes: int) -> Vocab | None:
    """The vocabulary of the first PROVISIONAL_BYTES of the input, if all of it is ASCII the
    256-entry tables can take; else None."""
    per_byte, read = np.zeros(256, dtype=np.int64), 0
    for piece in read_pieces(inp, block_bytes):
        data = ascii_bytes(piece, options)
        if data is None:
            return None
        per_byte += count_bytes(data)
        read += len(piece.data)
        if read >= PROVISIONAL_BYTES:
            break
    if not per_byte.any():
        return None
    return vocab_from_counts(byte_counter(per_byte), options.unit, 1)


class Ranges:
    """Pass 1 behind the caller's back: stretches of plain files (see _worker_count_range)
    counted by the pool, a few in flight, collected in order whenever the caller has a moment
    (collect) and at the end (finish). Both return False once a stretch finds no line feed to
    begin at."""

    def __init__(self, runner: "Runner", inputs: list[Input], meter: "Meter | None" = None):
        self.runner, self.meter = runner, meter     # meter: told where each stretch ends
        self.todo = deque((k, inp, start, min(inp.stored_bytes, start + RANGE_BYTES))
                          for k, inp in enumerate(inputs) for start in range(0, inp.stored_bytes, RANGE_BYTES))
        self.pending: deque = deque()
        self.per_codepoint = np.zeros(MAX_CODEPOINT, dtype=np.int64)
        self.clusters: Counter = Counter()
        self.bytes = [0] * len(inputs)
        self._send()

    def _send(self) -> None:
        while self.todo and len(self.pending) < 2 * self.runner.workers:
            k, inp, start, end = self.todo.popleft()
            self.pending.append((k, end, self.runner._pool().submit(_worker_count_range, inp, start, end)))

    def collect(self, wait: bool = False) -> bool:
        while self.pending and (wait or self.pending[0][2].done()):
            k, end, future = self.pending.popleft()
            found = future.result()
            if found is None:
                return False
            present, n, names, name_counts, nbytes = found
            self.per_codepoint[present] += n
            self.clusters.update(dict(zip(names, name_counts)))
            self.bytes[k] += nbytes
            if self.meter is not None:
                self.meter.at(end)
            self._send()
            if wait:
                break
        return True

    def finish(self) -> bool:
        while self.pending:
            if not self.collect(wait=True):
                return False
        return True

    def cancel(self) -> None:
        """Drop the stretches not begun (when the caller goes on without them)."""
        self.todo.clear()
        for _, _, future in self.pending:
            future.cancel()


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
    return {"format": FORMAT, "version": VERSION, "symbols": counted.symbols,
            "dtype": np.dtype(counted.vocab.dtype).name, "vocab_size": len(counted.vocab),
            "hash": counted.hash, "bytes": counted.size, "options": counted.options.to_dict(),
            "inputs": counted.records}


def check_disk_space(out_dir: Path, needed: int) -> None:
    """Refuse before writing when the file system holding out_dir has less room than needed."""
    probe = Path(out_dir).resolve()
    while not probe.exists():
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    margin = 16 << 20
    if free < needed + margin:
        raise CharlstmError(f"{out_dir}: the encoded corpus needs {human_bytes(needed + margin)} of disk space "
                            f"but only {human_bytes(free)} are free there; free some space or choose another "
                            "directory")


def human_bytes(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:,.{2 if unit == 'GB' else 1}f} {unit}"
    return f"{n:,} bytes"


# --- the work on one piece (run here or in a pool's worker) -----------------------------------

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
    return CharlstmError(f"{what.name}: changed while it was being encoded (its second reading differs from "
                         "the first); encode it again once it is complete")


# --- running pieces in order, here or in a pool -----------------------------------------------

def add_found(found, per_codepoint: np.ndarray, clusters: Counter) -> None:
    """Add what count_piece found in a piece to the counts so far."""
    if found[0] == "bytes":
        per_codepoint[:256] += found[1]
    else:
        _, present, n, names, name_counts = found
        per_codepoint[present] += n
        clusters.update(dict(zip(names, name_counts)))


_worker_state: tuple | None = None


def _worker_init(options: ReadOptions, vocab: dict | None) -> None:
    global _worker_state
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # Ctrl-C is the parent's to handle
    _keep_freed_memory()
    _worker_state = (options, None if vocab is None else Vocab.from_dict(vocab))


def _keep_freed_memory() -> None:
    """In a worker (a process of ours alone): let glibc's malloc keep the memory a piece's arrays
    free for the next piece. By default it hands blocks of megabytes back to the system at once
    and the next piece faults every page in again: measured, 40 % of a worker's time went to
    that. Elsewhere (or when it fails) nothing changes."""
    try:
        import ctypes
        import ctypes.util
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 256 << 20)
        libc.mallopt(m_trim_threshold, 512 << 20)
    except (OSError, AttributeError):
        pass


def _worker_run(job, piece: Piece):
    options, vocab = _worker_state
    return job(piece, options, vocab)


RUN_BYTES = 16 << 20                 # the ASCII pieces a worker reads for itself at once
RANGE_BYTES = 16 << 20               # the stretch of a large file a worker counts on its own
SEARCH_BYTES = 1 << 20               # how far before a split a line feed is looked for


def _worker_count_range(inp: Input, start: int, end: int):
    """What the bytes [start, end) of a plain file hold, each end moved back to just after a
    line feed (see Runner.count_ranges): (code points present, their counts, cluster names,
    their counts, bytes read), or None when an end finds no line feed in reach."""
    options, _ = _worker_state
    try:
        with open(inp.path, "rb") as f:
            first = 0 if start == 0 else line_start_before(f, start, SEARCH_BYTES)
            last = inp.stored_bytes if end >= inp.stored_bytes else line_start_before(f, end, SEARCH_BYTES)
    except OSError as e:
        raise CharlstmError(f"{inp.name}: cannot read ({e.strerror or e})") from None
    if first is None or last is None:
        return None
    per_codepoint, clusters, nbytes = np.zeros(MAX_CODEPOINT, dtype=np.int64), Counter(), 0
    for piece in read_pieces(inp, BLOCK_BYTES, start=first, end=last):
        nbytes += len(piece.data)
        add_found(count_piece(piece, options), per_codepoint, clusters)
    present = np.flatnonzero(per_codepoint)
    return present, per_codepoint[present], list(clusters), list(clusters.values()), nbytes


_worker_file: tuple | None = None    # (path, descriptor) of the file a worker last read from


def _worker_run_at(job, path: Path, name: str, offset: int, length: int, first: bool):
    """The job on the piece of a plain file at offset, read here from the file itself."""
    global _worker_file
    if _worker_file is None or _worker_file[0] != path:
        if _worker_file is not None:
            os.close(_worker_file[1])
            _worker_file = None
        try:
            _worker_file = (path, os.open(path, os.O_RDONLY))
        except OSError as e:
            raise CharlstmError(f"{name}: cannot read ({e.strerror or e})") from None
    try:
        piece = Piece(name, offset, os.pread(_worker_file[1], length, offset), first)
    except OSError as e:
        raise CharlstmError(f"{name}: cannot read ({e.strerror or e})") from None
    if len(piece.data) != length:
        raise changed_error(piece)
    options, vocab = _worker_state
    return job(piece, options, vocab)


def pool_wanted(inputs: list[Input], pool_min_bytes: int) -> bool:
    return any(inp.path is None for inp in inputs) or sum(inp.stored_bytes or 0 for inp in inputs) >= pool_min_bytes


class Runner:
    """Runs a job over pieces and hands the results back in order, with a few pieces in flight.
    Pieces the 256-entry tables can handle run in this process; the others in a pool of
    `workers` processes (if a pool is wanted). The pool is started on entering, before the
    caller starts the threads that write and hash: forking a process while other threads of it
    run can leave a child waiting on a lock that no thread of its own will release. With fork,
    starting the pool takes about 20 ms."""

    def __init__(self, options: ReadOptions, vocab: Vocab | None, workers: int | None, pool_wanted: bool):
        self.options, self.vocab = options, vocab
        self.workers = default_workers() if workers is None else max(1, workers)
        self.pool_wanted = pool_wanted and self.workers > 1
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Runner":
        if self.pool_wanted:
            self._pool().submit(int).result()      # the workers are forked at the first job
        return self

    def __exit__(self, *exc):
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None

    def map(self, pieces, job, path: Path | None = None):
        """Yields (piece, result) in order. path: the plain file the pieces come from, when a
        worker may read the pieces there itself: then every piece is sent by its place in the
        file, and a run of ASCII pieces as one piece of up to RUN_BYTES (pass 1: counting an
        ASCII piece costs more than reading it again, and sending its bytes through a pipe costs
        more than counting it; measured), whose result stands for its last piece. Otherwise only
        the pieces the tables cannot handle go to the pool, bytes and all."""
        window = 2 * self.workers + 2
        pending: deque = deque()
        run: list[Piece] = []        # the first and the last piece of a run not sent yet

        def send(run: list[Piece]):
            first, last = run[0], run[-1]
            return last, self._pool().submit(_worker_run_at, job, path, first.name, first.offset,
                                             last.offset + len(last.data) - first.offset, first.first)

        for piece in pieces:
            if self.pool_wanted and path is not None:
                if piece.data.isascii():
                    run = [run[0] if run else piece, piece]
                    if run[1].offset + len(piece.data) - run[0].offset < RUN_BYTES:
                        continue
                elif run:            # text that needs its clusters found goes a piece at a time
                    pending.append(send(run))
                    run = [piece]
                else:
                    run = [piece]
                pending.append(send(run))
                run = []
            elif self.pool_wanted and ascii_bytes(piece, self.options) is None:
                pending.append((piece, self._pool().submit(_worker_run, job, piece)))
            else:
                done = Future()
                done.set_result(job(piece, self.options, self.vocab))
                pending.append((piece, done))
            while pending and (len(pending) > window or pending[0][1].done()):
                piece_done, future = pending.popleft()
                yield piece_done, future.result()
        if run:
            pending.append(send(run))
        while pending:
            piece_done, future = pending.popleft()
            yield piece_done, future.result()

    def count_ranges(self, inp: Input, meter: "Meter"):
        """Pass 1 over a large plain file by the workers alone: the file is split every
        RANGE_BYTES, each split moved back to just after a line feed (a place where a symbol
        surely ends, so the stretches count exactly what the whole file holds), and each worker
        reads and counts its stretches piece by piece. Returns (counts per code point, clusters,
        bytes), or None for a file of less than two stretches or when a split finds no line feed
        within SEARCH_BYTES before it (a file of very long lines): the caller then reads it
        piece by piece itself."""
        if inp.stored_bytes < 2 * RANGE_BYTES:
            return None
        ranges = Ranges(self, [inp], meter)
        try:
            if not ranges.finish():
                return None
        finally:
            ranges.cancel()
        if ranges.bytes[0] != inp.stored_bytes:
            raise changed_error(inp)
        return ranges.per_codepoint, ranges.clusters, ranges.bytes[0]

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            # fork where there is one: a worker needs nothing from the main module, so a program
            # without an `if __name__ == "__main__"` guard (a notebook, a short script) works too
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else None)
            vocab = None if self.vocab is None else self.vocab.to_dict()
            self.pool = ProcessPoolExecutor(self.workers, mp_context=context, initializer=_worker_init,
                                            initargs=(self.options, vocab))
        return self.pool


class _Behind:
    """A thread that runs the caller's jobs one at a time, at most one job behind it: hashing a
    block or writing ids while the caller works on the next piece (hashlib and file writes let
    go of the GIL). A job's error is raised by the next submit or wait."""

    def __enter__(self) -> "_Behind":
        self._thread = ThreadPoolExecutor(1)
        self._last: Future | None = None
        return self

    def submit(self, job, *args) -> None:
        self.wait()
        self._last = self._thread.submit(job, *args)

    def wait(self) -> None:
        if self._last is not None:
            last, self._last = self._last, None
            last.result()

    def __exit__(self, *exc):
        self._thread.shutdown(wait=True)


class Writer:
    """Appends to an open file from a thread of its own (file writes let go of the GIL), at most
    one write behind the caller, and has the disk take the data as it comes: every FLUSH_BYTES
    a second thread asks for it to be on disk (fdatasync) while the writing goes on. Left to the
    page cache, the whole file would reach the disk in one fsync at the end, with nothing else
    to do meanwhile: that wait was half of encoding an ASCII corpus. finish() returns once
    everything is on disk. Errors are raised, as one line, by the next write or by finish."""

    FLUSH_BYTES = 64 << 20

    def __init__(self, f, path: Path):
        self.f, self.path = f, path
        self._since_flush = 0
        self._flush: Future | None = None

    def __enter__(self) -> "Writer":
        self._writer = ThreadPoolExecutor(1)
        self._flusher = ThreadPoolExecutor(1)
        self._last: Future | None = None
        return self

    def write(self, data) -> None:
        self._wait_write()
        self._last = self._writer.submit(self._write, data)

    def _write(self, data) -> None:
        write_to(self.f, data, self.path)
        self._since_flush += memoryview(data).nbytes      # bytes, whatever the ids' type
        if self._since_flush >= self.FLUSH_BYTES and (self._flush is None or self._flush.done()):
            self._check(self._flush)
            try:
                self.f.flush()
            except OSError as e:
                raise _write_error(self.path, e) from None
            self._since_flush = 0
            self._flush = self._flusher.submit(os.fdatasync, self.f.fileno())

    def _wait_write(self) -> None:
        if self._last is not None:
            last, self._last = self._last, None
            last.result()

    def _check(self, future: Future | None) -> None:
        try:
            if future is not None:
                future.result()
        except OSError as e:
            raise CharlstmError(f"cannot write {self.path}: {e.strerror or e}") from None

    def rewrite_start(self, data: bytes) -> None:
        """Once every write is done, write data over the file's first bytes (a header whose
        numbers were known only at the end)."""
        self._wait_write()
        try:
            self.f.flush()
            self.f.seek(0)
            self.f.write(data)
            self.f.seek(0, os.SEEK_END)
        except OSError as e:
            raise CharlstmError(f"cannot write {self.path}: {e.strerror or e}") from None

    def finish(self) -> None:
        self._wait_write()
        self._check(self._flush)
        self._flush = None
        try:
            self.f.flush()
            os.fsync(self.f.fileno())
        except OSError as e:
            raise CharlstmError(f"cannot write {self.path}: {e.strerror or e}") from None

    def __exit__(self, *exc):
        self._writer.shutdown(wait=True)
        self._flusher.shutdown(wait=True)


def _hash(hashes, block: bytes) -> None:
    for h in hashes:
        h.update(block)


class Hashing:
    """The sha256 of each input's bytes and of all of them one after another, fed block by block
    and computed by a thread behind the caller (or nothing at all when not on)."""

    def __init__(self, inputs: int, on: bool = True):
        self.on, self._single = on, inputs == 1
        self._whole = hashlib.sha256()
        self._own = self._whole

    def __enter__(self) -> "Hashing":
        self._behind = _Behind().__enter__()
        return self

    def start_input(self) -> None:
        # one input: its hash is the whole corpus's, and hashing once spares a core half its work
        self._own = self._whole if self._single else hashlib.sha256()

    def add(self, block: bytes) -> None:
        if self.on:
            self._behind.submit(_hash, (self._own,) if self._own is self._whole else (self._own, self._whole), block)

    def end_input(self) -> str | None:
        """The hash of the input just read (None when not on)."""
        self._behind.wait()
        return self._own.hexdigest() if self.on else None

    def whole(self) -> str | None:
        self._behind.wait()
        return self._whole.hexdigest() if self.on else None

    def __exit__(self, *exc):
        self._behind.__exit__(*exc)


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


# --- files ------------------------------------------------------------------------------------

def open_for_writing(path: Path):
    try:
        return open(path, "wb")
    except OSError as e:
        raise CharlstmError(f"cannot write {path}: {e.strerror or e}") from None


def write_to(f, data, path: Path) -> None:
    try:
        f.write(data)
    except OSError as e:
        raise _write_error(path, e) from None


def _write_error(path: Path, e: OSError) -> CharlstmError:
    reason = "the disk is full" if e.errno == 28 else (e.strerror or str(e))
    return CharlstmError(f"cannot write {path}: {reason}")


def write_json(path: Path, value) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CharlstmError(f"cannot write {path}: {e.strerror or e}") from None


def make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharlstmError(f"cannot create {path}: {e.strerror or e}") from None


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


__all__ = ["Counted", "ReadOptions", "count_corpus", "write_ids", "encode_corpus", "ids_with", "manifest", "check_disk_space",
           "default_workers", "POOL_MIN_BYTES"]
