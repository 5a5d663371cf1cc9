"""Reading a corpus of any size in blocks: its inputs, and pieces cut where a symbol surely ends.

An input is a text file, a gzip file (known by its first two bytes) or standard input. It is
read BLOCK_BYTES at a time, and each block is cut into a piece that ends where a symbol surely
ends; what follows the cut is carried into the next block. The cut goes
  - after the last line feed: a grapheme cluster always ends after LF (GB4), and the byte 0x0A is
    never part of a multi-byte UTF-8 sequence;
  - failing that, between two code points decoded from valid UTF-8 of which neither can join a
    neighbour (see data/vocab.py: between two such code points a cluster always ends, and
    neither is CR, so CR LF and newline normalisation are never split either);
  - failing that, nowhere: the block grows until there is a place (at most MAX_CARRY_BYTES).
A cut is a place where a UTF-8 decoder reading the whole file starts a new character, so every
piece decodes (strictly or with replacement), normalises its newlines and splits into symbols
exactly as it does inside the whole file, and a bad byte is named by its offset in the file.

Each input is its own text: a symbol never spans two inputs.
"""

from __future__ import annotations

import gzip
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from charlstm.data.corpora import list_files
from charlstm.data.text import decode_text
from charlstm.data.vocab import joining_mask, split_symbols
from charlstm.errors import CharlstmError
from charlstm.interrupts import checkpoint
from charlstm.files import require_regular_file

BLOCK_BYTES = 1 << 20
MAX_CARRY_BYTES = 64 << 20    # the longest stretch without a place to cut
_TAIL_BYTES = 4096            # where a cut between code points is looked for
_GZIP_MAGIC = b"\x1f\x8b"
STDIN = "-"


@dataclass(frozen=True)
class Input:
    """One input of a corpus: name as shown in messages and the manifest; path None for
    standard input; stored_bytes and mtime_ns as on disk (None for standard input)."""

    name: str
    path: Path | None
    gzip: bool = False
    stored_bytes: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Piece:
    """A stretch of an input's bytes that starts and ends where symbols do."""

    name: str        # the input's name, for messages
    offset: int      # where data starts in the input (after decompression)
    data: bytes
    first: bool      # data starts the input (it may begin with a byte-order mark)


def list_inputs(paths, exts=(".txt",), exclude=()) -> list[Input]:
    """The inputs named on a command line, in order: files, the files under directories (those
    ending in one of exts and not excluded, sorted by path, as `corpus code` takes them), and
    "-" for standard input."""
    inputs: list[Input] = []
    for given in paths:
        given = str(given)
        if given == STDIN:
            if any(inp.path is None for inp in inputs):
                raise CharlstmError("standard input (-) can be read only once")
            inputs.append(Input(name=STDIN, path=None))
            continue
        path = Path(given)
        if not path.exists():
            raise CharlstmError(f"{path}: no such file or directory")
        if path.is_dir():
            found = [_file_input(p, str(p)) for _, p in list_files(path, exts, exclude)]
            if not found:
                raise CharlstmError(f"{path}: holds no {', '.join(exts) if not isinstance(exts, str) else exts} "
                                    "files (choose the endings with --ext)")
            inputs.extend(found)
        else:
            inputs.append(_file_input(path, given))
    if not inputs:
        raise CharlstmError("give at least one input (a text file, a directory, or - for standard input)")
    return inputs


def _file_input(path: Path, name: str) -> Input:
    info = require_regular_file(path, "text file", advice="to read a stream, give - and feed it on standard "
                                f"input (e.g. charlstm corpus encode - -o DATA_DIR < {name})")
    try:
        with open(path, "rb") as f:
            magic = f.read(2)
    except OSError as e:
        raise CharlstmError(f"{name}: cannot read ({e.strerror or e})") from None
    return Input(name=name, path=path.resolve(), gzip=magic == _GZIP_MAGIC, stored_bytes=info.st_size,
                 mtime_ns=info.st_mtime_ns)


def read_pieces(inp: Input, block_bytes: int = BLOCK_BYTES,
                on_block: Callable[[bytes, int], None] | None = None,
                start: int = 0, end: int | None = None) -> Iterator[Piece]:
    """The input's pieces, in order. on_block(block, consumed) is called with every block read
    (decompressed) and the stored bytes consumed so far (for a progress bar in bytes).
    start, end: only the bytes [start, end) of a plain file, both places where a symbol surely
    ends (see line_start_before), cut into pieces as the whole file would be around them."""
    if (start, end) != (0, None) and (inp.path is None or inp.gzip):
        raise ValueError("only a plain file is read from a place in it")
    with _open(inp, start, end) as (read, consumed):
        carry, offset, first = b"", start, start == 0
        while True:
            checkpoint()                # a corpus of gigabytes answers Ctrl-C within a block
            block = read(block_bytes)
            if on_block is not None and block:
                on_block(block, consumed())
            if not block:
                if carry:
                    yield Piece(inp.name, offset, carry, first)
                return
            lf = block.rfind(b"\n")
            if lf >= 0:
                # The usual case, the cut _cut(carry + block) would make (the last line break),
                # found in the block alone so that the piece is copied once, not joined and then
                # sliced: two passes over every byte of a large ASCII corpus.
                end = lf + 1
                data = b"".join((carry, memoryview(block)[:end])) if end < len(block) or carry else block
                yield Piece(inp.name, offset, data, first)
                carry, offset, first = block[end:], offset + len(data), False
                continue
            data = carry + block if carry else block
            cut = _cut(data)
            if cut == 0:
                if len(data) > MAX_CARRY_BYTES:
                    raise CharlstmError(
                        f"{inp.name}: no place to split the text in the {MAX_CARRY_BYTES >> 20} MB from byte "
                        f"offset {offset:,} (no line break, and no two neighbouring characters that are surely "
                        "separate symbols); is it a binary file?")
                carry = data
                continue
            yield Piece(inp.name, offset, data[:cut], first)
            carry, offset, first = data[cut:], offset + cut, False


class _open:
    """The input opened for reading: (read(n) -> bytes, consumed() -> stored bytes read so far),
    every failure a CharlstmError naming the input."""

    def __init__(self, inp: Input, start: int = 0, end: int | None = None):
        self.inp, self.start, self.end = inp, start, end
        self.raw = self.stream = None

    def __enter__(self):
        name = self.inp.name
        try:
            if self.inp.path is None:
                self.raw = sys.stdin.buffer
                gz = self.raw.peek(2)[:2] == _GZIP_MAGIC if hasattr(self.raw, "peek") else False
            else:
                self.raw = open(self.inp.path, "rb")
                gz = self.inp.gzip
                if self.start:
                    self.raw.seek(self.start)
        except OSError as e:
            raise CharlstmError(f"{name}: cannot read ({e.strerror or e})") from None
        self.stream = gzip.GzipFile(fileobj=self.raw, mode="rb") if gz else self.raw
        done = [0]

        left = None if self.end is None else self.end - self.start

        def read(n: int) -> bytes:
            if left is not None:
                n = min(n, left - done[0])
            try:
                block = self.stream.read(n) if n > 0 else b""
            except (gzip.BadGzipFile, EOFError, zlib.error) as e:
                raise CharlstmError(f"{name}: the gzip data is damaged or cut short ({e})") from None
            except OSError as e:
                raise CharlstmError(f"{name}: cannot read ({e.strerror or e})") from None
            done[0] += len(block)
            return block

        def consumed() -> int:
            if gz and self.inp.path is not None:
                try:
                    return self.raw.tell()
                except OSError:
                    pass
            return done[0]

        return read, consumed

    def __exit__(self, *exc):
        if self.inp.path is not None and self.raw is not None:
            self.raw.close()


def line_start_before(f, position: int, window: int) -> int | None:
    """The place just after the last line feed in the `window` bytes of the open file f before
    position (a place where a symbol surely ends, see the module docstring); None if there is none."""
    start = max(0, position - window)
    try:
        f.seek(start)
        data = f.read(position - start)
    except OSError as e:
        raise CharlstmError(f"{f.name}: cannot read ({e.strerror or e})") from None
    lf = data.rfind(b"\n")
    return None if lf < 0 else start + lf + 1


def _cut(data: bytes) -> int:
    """Where data can be cut (see the module docstring); 0 when there is no such place."""
    lf = data.rfind(b"\n")
    if lf >= 0:
        return lf + 1
    start = max(0, len(data) - _TAIL_BYTES)
    while start < len(data) and 0x80 <= data[start] < 0xC0:    # to the start of a character
        start += 1
    # surrogateescape turns each byte that is not valid UTF-8 into one lone surrogate, so the
    # code points map back to the bytes exactly; a surrogate is never a side of a cut
    tail = data[start:].decode("utf-8", "surrogateescape")
    cp = np.frombuffer(tail.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    unsafe = joining_mask()[cp] | ((cp >= 0xD800) & (cp < 0xE000))
    between = np.flatnonzero(~unsafe[:-1] & ~unsafe[1:])        # a cut between code points k and k + 1
    if len(between) == 0:
        return 0
    k = int(between[-1]) + 1
    return start + len(tail[:k].encode("utf-8", "surrogateescape"))


def read_head(path, symbols: int, unit: str = "grapheme", errors: str = "strict", newline: str = "keep") -> str:
    """The start of a text file holding at least `symbols` symbols (all of it, if it holds fewer),
    read block by block, so the file's size does not matter."""
    path = Path(path)
    parts, count = [], 0
    for piece in read_pieces(_file_input(path, str(path))):
        text = decode_text(piece.data, piece.name, errors, newline, offset=piece.offset, at_start=piece.first)
        parts.append(text)
        count += len(text) if unit == "codepoint" else len(split_symbols(text, unit))
        if count >= symbols:
            break
    return "".join(parts)


def input_record(inp: Input, content_bytes: int, sha256: str) -> dict:
    """How the manifest describes one input."""
    return {"name": inp.name, "path": None if inp.path is None else str(inp.path), "bytes": content_bytes,
            "stored_bytes": inp.stored_bytes, "gzip": inp.gzip, "mtime_ns": inp.mtime_ns, "sha256": sha256}


def same_file(record: dict, inp: Input) -> bool:
    """Whether an input is, by its path, size and modification time, the one a record describes."""
    return (inp.path is not None and record.get("path") == str(inp.path)
            and record.get("stored_bytes") == inp.stored_bytes and record.get("mtime_ns") == inp.mtime_ns)


__all__ = ["Input", "Piece", "list_inputs", "read_pieces", "read_head", "input_record", "same_file", "BLOCK_BYTES",
           "MAX_CARRY_BYTES", "STDIN"]
