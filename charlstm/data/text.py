"""Reading a text file whole, with errors a user can act on (a file too large to hold
comfortably is read block by block instead: see data/blocks.py; the ids become streams in
data/streams.py)."""

from __future__ import annotations

from pathlib import Path

from charlstm.errors import CharlstmError
from charlstm.files import read_bounded

_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF8_BOM = b"\xef\xbb\xbf"

# The largest text file read whole by default. A text read whole is held in memory as bytes, text
# and ids (about ten times its size at the peak of encoding), so a bigger file is refused before a
# byte of it is read; the commands that take a corpus read larger files block by block instead.
MAX_TEXT_BYTES = 512 * 1024 * 1024
MAX_UNBOUNDED_BYTES = 1 << 62      # max_bytes=None: no cap a file could reach


def read_bytes(path, max_bytes: int | None = MAX_TEXT_BYTES, limit_option: str | None = None) -> bytes:
    """A file's bytes, every problem a CharlstmError naming it. max_bytes: a larger regular file is
    refused before any of it is read, and any other input (a device, a FIFO) is read in blocks and
    refused once it passes the cap (None: no cap). limit_option: the option that raises the cap,
    named when a file is refused (None: the advice is to encode it into a data directory)."""
    limit = MAX_UNBOUNDED_BYTES if max_bytes is None else max_bytes
    advice = (f"pass {limit_option} to raise it, or use a part of the file" if limit_option else
              "encode it into a data directory (charlstm corpus encode), or use a part of the file")
    return read_bounded(Path(path), limit, advice, what="text file read whole")


def read_text(path, errors: str = "strict", newline: str = "keep", max_bytes: int | None = MAX_TEXT_BYTES,
              limit_option: str | None = None) -> str:
    """Read a UTF-8 text file with errors a user can act on.

    errors: "strict" (an invalid byte is an error naming its offset) or "replace" (it becomes
    U+FFFD). newline: "keep" or "normalize" (CRLF and lone CR become LF). max_bytes and
    limit_option: as read_bytes.
    """
    data = read_bytes(path, max_bytes, limit_option)
    return decode_text(data, str(path), errors=errors, newline=newline)


def decode_text(data: bytes, name: str, errors: str = "strict", newline: str = "keep", offset: int = 0,
                at_start: bool = True) -> str:
    """Bytes -> text, with the checks of read_text.

    offset: where data starts in the file, so that a bad byte is named by its offset in the file
    (byte offsets count a UTF-8 byte-order mark); at_start: data starts the file, so it may begin
    with a byte-order mark (data/blocks.py decodes a large file piece by piece).
    """
    skipped = 0
    if at_start and data.startswith(_UTF32_BOMS):   # before UTF-16's: UTF-32-LE's mark starts with UTF-16-LE's
        raise CharlstmError(f"{name}: is UTF-32 (it starts with a UTF-32 byte-order mark); "
                            "convert it to UTF-8 first, e.g. iconv -f UTF-32 -t UTF-8")
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
