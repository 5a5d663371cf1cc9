"""Writing an exported file atomically, as checkpoints are written (see training/checkpoint.py)."""

from __future__ import annotations

import os
from pathlib import Path

from charlstm.errors import CharlstmError


def write_atomically(path, write, what: str = "file") -> None:
    """Call write(f) on a temporary file beside `path`, flush and fsync it, then rename it over
    `path`: a crash or an error leaves the old file (or none) under that name, never half of one.
    OS errors become one CharlstmError line; other errors pass through, the temporary file gone."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
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
            raise CharlstmError(f"cannot write {what} {path}: {e.strerror or e}") from None
        raise


__all__ = ["write_atomically"]
