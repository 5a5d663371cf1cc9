"""The corpus as ids: reading text files, the validation split, and truncated-BPTT streams.

Truncated BPTT the way char-rnn does it: the training ids are cut into `batch_size` contiguous
streams, one per batch row; step k reads symbols [k*T, (k+1)*T) of every stream and predicts the
symbol after each. The model's final state after one chunk is the initial state of the next, so
the network sees each stream as one long text; the gradient stops at the chunk boundary.

Streams differ in length by at most one symbol, so every symbol of the training split is
predicted exactly once per pass: when the length does not divide evenly, the last chunk of a
pass is shorter, and rows that have run out are masked with a zero weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.files import read_bounded

_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"

# The largest text file read by default. A corpus is held in memory as bytes, text and ids (about
# ten times its size at the peak of encoding), so a bigger file is refused before a byte of it is
# read, with a message naming the option that raises the cap.
MAX_TEXT_BYTES = 512 * 1024 * 1024
MAX_UNBOUNDED_BYTES = 1 << 62      # max_bytes=None: no cap a file could reach


def read_text(path, errors: str = "strict", newline: str = "keep", max_bytes: int | None = MAX_TEXT_BYTES,
              limit_option: str | None = "--max-corpus-bytes") -> str:
    """Read a UTF-8 text file with errors a user can act on.

    errors: "strict" (an invalid byte is an error naming its offset) or "replace" (it becomes
    U+FFFD). newline: "keep" or "normalize" (CRLF and lone CR become LF). max_bytes: a larger
    regular file is refused before any of it is read, and any other input (a device, a FIFO)
    is read in blocks and refused once it passes the cap (None: no cap). limit_option: the
    option that raises the cap, named when a file is refused (None: the command has none).
    """
    path = Path(path)
    limit = MAX_UNBOUNDED_BYTES if max_bytes is None else max_bytes
    advice = f"pass {limit_option} to raise it, or use a part of the file" if limit_option else "use a part of it"
    data = read_bounded(path, limit, advice, what="text file")
    return decode_text(data, str(path), errors=errors, newline=newline)


def decode_text(data: bytes, name: str, errors: str = "strict", newline: str = "keep") -> str:
    """Bytes -> text, with the checks of read_text."""
    if data.startswith(_UTF32_BOMS):      # before UTF-16's: UTF-32-LE's mark starts with UTF-16-LE's
        raise CharlstmError(f"{name}: is UTF-32 (it starts with a UTF-32 byte-order mark); "
                            "convert it to UTF-8 first, e.g. iconv -f UTF-32 -t UTF-8")
    if data.startswith(_UTF16_BOMS):
        raise CharlstmError(f"{name}: is UTF-16 (it starts with a UTF-16 byte-order mark); "
                            "convert it to UTF-8 first, e.g. iconv -f UTF-16 -t UTF-8")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
    nul = data.find(b"\0")
    if nul >= 0:
        raise CharlstmError(f"{name}: holds a NUL byte at byte offset {nul}; is it a binary file?")
    if errors not in ("strict", "replace"):
        raise CharlstmError(f"unknown encoding-error mode {errors!r}: use strict or replace")
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise CharlstmError(f"{name}: not valid UTF-8 at byte offset {e.start} "
                            "(pass --encoding-errors replace to replace invalid bytes)") from None
    if newline == "normalize":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    elif newline != "keep":
        raise CharlstmError(f"unknown newline mode {newline!r}: use keep or normalize")
    return text


def split_ids(ids: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation): the last val_fraction of the ids is held out."""
    if not 0.0 <= val_fraction < 1.0:
        raise CharlstmError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    n_val = int(len(ids) * val_fraction)
    if val_fraction > 0 and n_val < 2:
        raise CharlstmError(f"the corpus ({len(ids)} symbols) is too short to hold out "
                            f"{val_fraction:g} of it for validation")
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


@dataclass(frozen=True)
class Streams:
    """batch_size contiguous streams over a training split, ready to be read chunk by chunk."""

    rows: np.ndarray      # (B, L_max + 1) ids; row k is stream k's inputs and targets, zero-padded
    lengths: np.ndarray   # (B,) number of targets in each stream
    seq_length: int

    @property
    def batch_size(self) -> int:
        return self.rows.shape[0]

    @property
    def chunks_per_pass(self) -> int:
        return -(-int(self.lengths.max()) // self.seq_length)

    def chunk(self, index: int):
        """Chunk `index` of a pass: (inputs (T, B), targets (T, B), weights (T, B) or None)."""
        start = index * self.seq_length
        stop = min(start + self.seq_length, int(self.lengths.max()))
        if start >= stop:
            raise IndexError(f"chunk {index} is past the end of the pass")
        inputs = np.ascontiguousarray(self.rows[:, start:stop].T)
        targets = np.ascontiguousarray(self.rows[:, start + 1:stop + 1].T)
        weights = None
        if stop > int(self.lengths.min()):   # only the ragged end of a pass needs weights
            positions = np.arange(start, stop)[:, None]
            weights = (positions < self.lengths[None, :]).astype(np.float32)
        return inputs, targets, weights


def make_streams(ids: np.ndarray, batch_size: int, seq_length: int) -> Streams:
    """Cut the training ids into batch_size streams (see the module docstring)."""
    if batch_size < 1 or seq_length < 1:
        raise CharlstmError("batch size and sequence length must be at least 1")
    n_targets = len(ids) - 1
    if n_targets < batch_size * seq_length:
        raise CharlstmError(
            f"the training text has {len(ids)} symbols, fewer than one batch needs "
            f"(batch size {batch_size} x sequence length {seq_length} + 1); use a longer corpus "
            "or lower --batch-size / --seq-length")
    base, extra = divmod(n_targets, batch_size)
    lengths = np.full(batch_size, base, dtype=np.int64)
    lengths[:extra] += 1
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = np.zeros((batch_size, base + (extra > 0) + 1), dtype=ids.dtype)
    for k in range(batch_size):
        rows[k, :lengths[k] + 1] = ids[starts[k]:starts[k] + lengths[k] + 1]
    return Streams(rows=rows, lengths=lengths, seq_length=seq_length)

