"""Running piece jobs in order, in this process or in a pool of worker processes, and counting
the stretches of a large plain file in the workers alone (pass 1 without this process reading it)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import Counter, deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np

from charlstm.data.blocks import BLOCK_BYTES, Input, Piece, line_start_before, read_pieces
from charlstm.data.datadir import ReadOptions
from charlstm.data.pieces import Meter, add_found, ascii_bytes, changed_error, count_piece
from charlstm.data.vocab import MAX_CODEPOINT, Vocab
from charlstm.errors import CharlstmError


POOL_MIN_BYTES = 32 << 20    # a smaller corpus is encoded in this process (a pool takes a second to start)


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pool_wanted(inputs: list[Input], pool_min_bytes: int) -> bool:
    """Whether the inputs repay starting a pool: standard input (of unknown size) or at least
    pool_min_bytes in all."""
    return any(inp.path is None for inp in inputs) or sum(inp.stored_bytes or 0 for inp in inputs) >= pool_min_bytes


RUN_BYTES = 16 << 20                 # the ASCII pieces a worker reads for itself at once
RANGE_BYTES = 16 << 20               # the stretch of a large file a worker counts on its own
SEARCH_BYTES = 1 << 20               # how far before a split a line feed is looked for

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
