"""Writing a data directory's files: the ids through a thread that has the disk take them as
they come, the inputs' hashes computed by a thread behind the reader, and file operations whose
failures are one line a user can act on."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.validate import human_bytes  # noqa: F401  (sizes in messages: one way of writing them)


HEADER_BYTES = 128           # a .npy header of version 1.0 with a 1-d shape


def npy_header(dtype, symbols: int) -> bytes:
    """The .npy header (version 1.0) of a 1-d array of `symbols` ids: HEADER_BYTES long."""
    import io
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": (symbols,)})
    header = out.getvalue()
    assert len(header) == HEADER_BYTES
    return header


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
        self.wait_for_writes()
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

    def wait_for_writes(self) -> None:
        """Return once every write so far is done, raising a failed one's error (a flush may still
        be on its way to the disk)."""
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
        self.wait_for_writes()
        try:
            self.f.flush()
            self.f.seek(0)
            self.f.write(data)
            self.f.seek(0, os.SEEK_END)
        except OSError as e:
            raise CharlstmError(f"cannot write {self.path}: {e.strerror or e}") from None

    def finish(self) -> None:
        self.wait_for_writes()
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


# --- files ------------------------------------------------------------------------------------

def open_for_writing(path: Path):
    """path opened for writing bytes; a failure is one line."""
    try:
        return open(path, "wb")
    except OSError as e:
        raise CharlstmError(f"cannot write {path}: {e.strerror or e}") from None


def write_to(f, data, path: Path) -> None:
    """data written to f, the open file at path; a failure (a full disk named as such) is one line."""
    try:
        f.write(data)
    except OSError as e:
        raise _write_error(path, e) from None


def _write_error(path: Path, e: OSError) -> CharlstmError:
    reason = "the disk is full" if e.errno == 28 else (e.strerror or str(e))
    return CharlstmError(f"cannot write {path}: {reason}")


def write_json(path: Path, value) -> None:
    """value written to path as JSON and on disk when this returns; a failure is one line."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(value, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CharlstmError(f"cannot write {path}: {e.strerror or e}") from None


def make_dir(path: Path) -> None:
    """The directory at path and its parents, as needed; a failure is one line."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharlstmError(f"cannot create {path}: {e.strerror or e}") from None


def check_disk_space(out_dir: Path, needed: int) -> None:
    """Refuse before writing when the file system holding out_dir has less room than needed."""
    probe = Path(out_dir).resolve()
    while not probe.exists():
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    margin = 16 << 20         # the manifest, the vocabulary, and room for the file system itself
    if free < needed + margin:
        # The line says what the corpus needs and, apart, the margin kept on top of it: a margin
        # folded into "needs" would send a user to free space the corpus does not take.
        raise CharlstmError(f"{out_dir}: the encoded corpus needs {human_bytes(needed)} of disk space, and charlstm "
                            f"keeps {human_bytes(margin)} free beside it, but only {human_bytes(free)} are free "
                            "there; free some space or choose another directory")

