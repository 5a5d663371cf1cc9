"""Reading and writing files so that nothing a user has is lost and nothing runs away.

Writing: every file charlstm writes (checkpoints, metrics, traces, pages, reports, corpora,
exports) goes through `write_atomically`: a temporary file beside the target, flushed and fsynced,
then renamed over it. A crash, an error or Ctrl-C leaves the old file (or none) under that name,
never half of one; the temporary `.NAME.tmp-PID` is removed on any error, and a run directory's
next run removes one a SIGKILL left.

Outputs: `check_output` refuses, before anything is read or written, an output that cannot be one
whole file (an empty path, '.', '/', an existing directory) or that names a file the same command
reads, compared by device and inode so that a hard link or a symlink to the input is caught too.
Every command that writes calls it with the paths it reads; `write_atomically` calls it with none,
so a path without a file name is one line whoever writes. `given_path` refuses an empty path (what
an unset shell variable gives) instead of reading it as '.'.

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


def given_path(value, what: str) -> Path:
    """The path a user gave for `what` (an option's name, or an argument's); an empty one is
    refused, never read as the current directory."""
    if isinstance(value, (str, bytes)) and not value:
        raise CharlstmError(f"{what}: the path is empty (an unset shell variable?); give a file or directory name")
    return Path(value)


def names_same_file(a, b) -> bool:
    """Whether two paths name one existing file: the same device and inode, so a second name (a hard
    link) or a symlink counts as the same file."""
    try:
        first, second = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _inside(path, directory) -> bool:
    """Whether `path` lies somewhere below `directory` (compared by device and inode, symlinks followed)."""
    try:
        target = os.stat(directory)
        ancestors = Path(os.path.realpath(path)).parents
    except (OSError, ValueError):
        return False
    for ancestor in ancestors:
        try:
            info = os.stat(ancestor)
        except OSError:
            continue
        if (info.st_dev, info.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def check_output(path, reads=(), what: str = "file", directory: bool = False) -> Path:
    """Refuse an output before the first byte is written, with one line:
      - an empty path, and a path with no file name ('.', '/', '..');
      - an existing directory, where a file is written (directory=False);
      - one of `reads` (the paths the same command reads; None entries are skipped): the same
        file by device and inode, an existing output inside a directory it reads, or (for an
        output directory, which is replaced whole) a path it reads inside that directory.
    Returns the output as a Path."""
    path = given_path(path, f"the {what}")
    if path.name in ("", ".", ".."):
        raise CharlstmError(f"{path}: has no name to write the {what} under; give a "
                            f"{'directory' if directory else 'file'} name")
    if not directory and path.is_dir():
        raise CharlstmError(f"{path}: is a directory, not a {what}; give a file name, e.g. {path / 'NAME'}")
    for source in reads:
        if source is None or (isinstance(source, (str, bytes)) and not source):
            continue
        if names_same_file(path, source):
            named = "" if os.path.abspath(path) == os.path.abspath(source) else f" (the same file as {source})"
            raise CharlstmError(f"{path}: is an input of this command{named}; writing the {what} there would "
                                "replace it, so choose another output")
        if Path(source).is_dir() and path.exists() and _inside(path, source):
            raise CharlstmError(f"{path}: lies inside {source}, which this command reads; choose an output "
                                "outside it")
        if directory and path.is_dir() and _inside(source, path):
            raise CharlstmError(f"{path}: holds {source}, which this command reads, and the {what} would replace "
                                "it; choose another output")
    return path


def temporary_name(path) -> Path:
    """The name a file is written under before it is renamed into place."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_atomically(path, write, what: str = "file") -> None:
    """Call write(f) on a temporary binary file beside `path`, flush and fsync it, then rename it
    over `path`. OS errors become one CharlstmError line naming the file; other errors (and
    KeyboardInterrupt) pass through; either way the temporary file is gone and `path` untouched.
    A path with no file name, or a directory, is refused first (check_output)."""
    path = check_output(path, what=what)
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
    path = check_output(path, what=what)
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
           "fsync_directory", "check_output", "given_path", "names_same_file"]
