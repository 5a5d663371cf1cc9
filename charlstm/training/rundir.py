"""A training run's directory: its files, its lock, and safe writes.

    latest.npz     the most recent checkpoint
    best.npz       the checkpoint with the lowest validation loss (a copy of latest, made atomically)
    metrics.jsonl  one JSON object per line, appended and flushed
    .lock          held while a run writes here, so two runs never interleave their files

A run killed outright (SIGKILL, power loss) can leave a temporary `.latest.npz.tmp-PID` behind, or
half a line at the end of metrics.jsonl; the next run to take the lock removes both. A temporary
file is never read as a checkpoint: only the names above are.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from pathlib import Path

from charlstm.errors import CharlstmError


class RunDir:
    def __init__(self, path):
        self.path = Path(path)
        self.latest = self.path / "latest.npz"
        self.best = self.path / "best.npz"
        self.metrics = self.path / "metrics.jsonl"
        self._lock_file = None

    def __enter__(self) -> "RunDir":
        if self.path.exists() and not self.path.is_dir():
            raise CharlstmError(f"{self.path}: exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CharlstmError(f"cannot create the output directory {self.path}: {e.strerror or e}") from None
        self._check_writable()
        self._lock()
        self._clean_after_crash()
        return self

    def __exit__(self, *exc):
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _check_writable(self) -> None:
        """Find an unwritable or full directory before hours of training, not after."""
        probe = self.path / f".write-test-{os.getpid()}"
        try:
            with open(probe, "wb") as f:
                f.write(b"\0" * 65536)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise CharlstmError(f"cannot write to the output directory {self.path}: {reason}") from None
        finally:
            try:
                probe.unlink()
            except OSError:
                pass

    def _lock(self) -> None:
        f = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise CharlstmError(f"another charlstm run is writing to {self.path}; "
                                "wait for it or choose another --out directory") from None
        self._lock_file = f

    def _clean_after_crash(self) -> None:
        """Remove what a killed run left half-written (safe: we hold the lock, so no one is writing)."""
        for pattern in (".latest.npz.tmp-*", ".best.npz.tmp-*", ".write-test-*"):
            for leftover in self.path.glob(pattern):
                try:
                    leftover.unlink()
                except OSError:
                    pass
        try:
            with open(self.metrics, "rb+") as f:
                size = f.seek(0, os.SEEK_END)
                if size and (f.seek(size - 1), f.read(1))[1] != b"\n":   # the last write was cut short
                    f.seek(0)
                    f.truncate(f.read().rfind(b"\n") + 1)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise CharlstmError(f"cannot repair {self.metrics}: {e.strerror or e}") from None

    def promote_best(self) -> None:
        """best.npz becomes a copy of latest.npz, atomically (copy to a temporary, then rename)."""
        tmp = self.path / f".best.npz.tmp-{os.getpid()}"
        try:
            shutil.copyfile(self.latest, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.best)
        except OSError as e:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise CharlstmError(f"cannot write {self.best}: {e.strerror or e}; "
                                "the previous best checkpoint is untouched") from None

    def append_metrics(self, record: dict) -> None:
        try:
            with open(self.metrics, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
        except OSError as e:
            raise CharlstmError(f"cannot append to {self.metrics}: {e.strerror or e}") from None
