"""Reading and writing files so that nothing a user has is lost and nothing runs away.

Writing: every file charlstm writes (checkpoints, metrics, traces, pages, reports, corpora,
exports) goes through `write_atomically`: a temporary file beside the target, flushed and fsynced,
then renamed over it. A crash, an error or Ctrl-C leaves the old file (or none) under that name,
never half of one; the temporary `.NAME.tmp-PID` is removed on any error, and a run directory's
next run removes one a SIGKILL left.

Reading: `read_bounded` reads a file in blocks and stops at a bound whatever `stat` says, so an
input of unknown size (/dev/zero, a FIFO fed forever, a file still growing) costs at most the
bound, never all the memory there is.

This module imports nothing of charlstm but its error type, so every layer may use it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from charlstm.errors import CharlstmError

BLOCK = 1 << 20         # bytes read at a time


def temporary_name(path) -> Path:
    """The name a file is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_atomically(path, write, what: str = "file") -> None:
    """Call write(f) on a temporary binary file beside `path`, flush and fsync it, then rename it
    over `path`. OS errors become one CharlstmError line naming the file; other errors (and
    KeyboardInterrupt) pass through; either way the temporary file is gone and `path` untouched."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(e, OSError):
            reason = e.strerror or str(e)
            raise CharlstmError(f"cannot write {what} {path}: {reason}; the previous file, if any, is untouched"
                                ) from None
        raise
    fsync_directory(path.parent)


def write_text(path, text: str, what: str = "file") -> None:
    """Write text as UTF-8, atomically (see write_atomically), creating the parent directory.
    Text that is not valid Unicode (a lone surrogate) is refused before anything is written."""
    path = Path(path)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CharlstmError(f"cannot write {what} {path}: the text holds U+{ord(e.object[e.start]):04X}, "
                            "which is not valid Unicode text") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CharlstmError(f"cannot write {what} {path}: {e.strerror or e}") from None
    write_atomically(path, lambda f: f.write(data), what)


def fsync_directory(directory) -> None:
    """Make a rename in `directory` durable (where the platform allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_bounded(path, limit: int, too_big: str | None = None, what: str = "file") -> bytes | bytearray:
    """The bytes of a file, read in blocks; more than `limit` bytes is refused with one line,
    whether the size was known beforehand (a regular file is refused from stat alone, before a
    byte is read) or only found while reading (a device, a FIFO, a file that grows).

    too_big: what the refusal adds after the sizes, e.g. "pass --max-corpus-bytes to raise it".
    A directory or a missing file is one line too. A large input read in blocks comes back as
    the bytearray it was read into (bytes-like, not copied once more).
    """
    path = Path(path)
    if limit < 0:
        raise CharlstmError(f"the size limit must be >= 0 bytes, got {limit}")
    hint = f"; {too_big}" if too_big else ""
    info = _stat(path, what)
    if stat.S_ISREG(info.st_mode) and info.st_size > limit:
        raise CharlstmError(f"{path}: is {info.st_size:,} bytes, more than the {limit:,}-byte limit on a "
                            f"{what}{hint}")
    try:
        with open(path, "rb") as f:
            if stat.S_ISREG(info.st_mode):
                # One read of the size stat gave, plus one byte to see whether the file grew since.
                data = f.read(info.st_size + 1)
                if len(data) <= info.st_size:
                    return data
                buffer = bytearray(data)
            else:
                buffer = bytearray()
            # A device, a FIFO or a file that grows: blocks up to the bound. The buffer grows in
            # place (no second copy), so the cost is the bound plus one block.
            while len(buffer) <= limit:
                block = f.read(min(BLOCK, limit + 1 - len(buffer)))
                if not block:
                    return bytes(buffer) if len(buffer) < BLOCK else buffer
                buffer += block
    except OSError as e:
        raise CharlstmError(f"{path}: cannot read ({e.strerror or e})") from None
    raise CharlstmError(f"{path}: holds more than the {limit:,}-byte limit on a {what} "
                        f"(it did not end after {limit:,} bytes){hint}")


def _stat(path: Path, what: str) -> os.stat_result:
    """path's stat, with a missing file, an unreadable one and a directory as one line each."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise CharlstmError(f"{path}: no such file") from None
    except OSError as e:
        raise CharlstmError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISDIR(info.st_mode):
        raise CharlstmError(f"{path}: is a directory, not a {what}")
    return info


def require_regular_file(path, what: str, advice: str | None = None) -> os.stat_result:
    """The stat of `path`, if it names an existing regular file (not a directory, device or
    FIFO: checked without opening it, since opening a FIFO no one writes to waits forever).
    advice: what the refusal of a device or FIFO adds."""
    path = Path(path)
    info = _stat(path, what)
    if not stat.S_ISREG(info.st_mode):
        raise CharlstmError(f"{path}: not a regular file, so not a {what}" + (f"; {advice}" if advice else ""))
    return info


__all__ = ["write_atomically", "write_text", "read_bounded", "require_regular_file", "temporary_name",
           "fsync_directory"]
