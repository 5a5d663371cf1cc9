"""Reading a text file whole, with errors a user can act on (a file too large to hold
comfortably is read block by block instead: see data/blocks.py; the ids become streams in
data/streams.py)."""

from __future__ import annotations

from pathlib import Path

from charlstm.errors import CharlstmError

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"

# The largest text file read whole by default. A text read whole is held in memory as bytes, text
# and ids (about ten times its size at the peak of encoding), so a bigger file is refused before a
# byte of it is read; the commands that take a corpus read larger files block by block instead.
MAX_TEXT_BYTES = 512 * 1024 * 1024


def read_bytes(path, max_bytes: int | None = MAX_TEXT_BYTES) -> bytes:
    """A file's bytes, every problem a CharlstmError naming it; files over max_bytes are refused
    before any of them is read (None: no cap)."""
    path = Path(path)
    if not path.exists():
        raise CharlstmError(f"{path}: no such file")
    if path.is_dir():
        raise CharlstmError(f"{path}: is a directory, not a text file")
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise CharlstmError(f"{path}: is {size:,} bytes, more than the {max_bytes:,}-byte limit on a text "
                                "file read whole; encode it into a data directory (charlstm corpus encode), "
                                "or use a part of the file")
        return path.read_bytes()
    except OSError as e:
        raise CharlstmError(f"{path}: cannot read ({e.strerror or e})") from None


def read_text(path, errors: str = "strict", newline: str = "keep", max_bytes: int | None = MAX_TEXT_BYTES) -> str:
    """Read a UTF-8 text file with errors a user can act on.

    errors: "strict" (an invalid byte is an error naming its offset) or "replace" (it becomes
    U+FFFD). newline: "keep" or "normalize" (CRLF and lone CR become LF). max_bytes: larger
    files are refused before any of them is read (None: no cap).
    """
    return decode_text(read_bytes(path, max_bytes), str(path), errors=errors, newline=newline)


def decode_text(data: bytes, name: str, errors: str = "strict", newline: str = "keep", offset: int = 0,
                at_start: bool = True) -> str:
    """Bytes -> text, with the checks of read_text.

    offset: where data starts in the file, so that a bad byte is named by its offset in the file
    (byte offsets count a UTF-8 byte-order mark); at_start: data starts the file, so it may begin
    with a byte-order mark (data/blocks.py decodes a large file piece by piece).
    """
    skipped = 0
    if at_start and data.startswith(_UTF16_BOMS):
        raise CharlstmError(f"{name}: is UTF-16 (it starts with a UTF-16 byte-order mark); "
                            "convert it to UTF-8 first, e.g. iconv -f UTF-16 -t UTF-8")
    if at_start and data.startswith(_UTF8_BOM):
        data, skipped = data[len(_UTF8_BOM):], len(_UTF8_BOM)
    nul = data.find(b"\0")
    if nul >= 0:
        raise CharlstmError(f"{name}: holds a NUL byte at byte offset {offset + skipped + nul}; is it a binary file?")
    if errors not in ("strict", "replace"):
        raise CharlstmError(f"unknown encoding-error mode {errors!r}: use strict or replace")
    try:
        text = data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise CharlstmError(f"{name}: not valid UTF-8 at byte offset {offset + skipped + e.start} "
                            "(pass --encoding-errors replace to replace invalid bytes)") from None
    if newline == "normalize":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    elif newline != "keep":
        raise CharlstmError(f"unknown newline mode {newline!r}: use keep or normalize")
    return text
