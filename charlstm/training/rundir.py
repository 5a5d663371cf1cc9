"""A training run's directory: its files, its lock, and safe writes.

    latest.npz     the most recent checkpoint
    best.npz       the checkpoint with the lowest validation loss (a copy of latest, made atomically)
    metrics.jsonl  one JSON object per line; each evaluation rewrites it atomically with a line more
    .lock          held while a run writes here, so two runs never interleave their files

One directory, one run. A new run starts only in a directory that holds no other run's files
(RUN_FILES): a run resumed continues in its own directory (or an empty one), and a new run in a
used directory is refused with one line saying what to do, unless it asks to start over
(`--start-over`, `start_over=True`): the earlier run's files (and its corpus.txt, unless this run
reads it) are then moved, under the lock, into the first free `previous-N` folder of the directory,
and one line says so. Nothing is deleted. `check_start` says whether a run may start (called once
before the corpus is read, for a quick answer, and again under the lock, where it counts); the
same file as an input of the run (a hard link, a symlink) is never written over or moved.

Every file is written through charlstm.files.write_atomically. A run killed outright (SIGKILL,
power loss) can leave a temporary `.latest.npz.tmp-PID` behind (or, from an older charlstm, half a
line at the end of metrics.jsonl); the next run to take the lock removes both. A temporary file is
never read as a checkpoint: only the names above are. A start that is refused after the lock was
taken (a first step that diverges, a corpus copy that cannot be written) leaves no `.lock` alone
behind: a directory holding nothing else is given back as it was found.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

from charlstm.errors import CharlstmError
from charlstm.files import check_output, fsync_directory, names_same_file, read_bounded, write_atomically
from charlstm.training.checkpoint import load_checkpoint

try:
    import fcntl
except ImportError:          # Windows: msvcrt's byte-range lock instead (see _try_lock)
    fcntl = None

MAX_METRICS_BYTES = 256 << 20   # rewritten at each evaluation; a line is ~500 bytes, so ~500,000 of them
RUN_FILES = ("latest.npz", "best.npz", "metrics.jsonl")   # a directory holding any of them holds a run
CORPUS_COPY = "corpus.txt"      # the CLI's copy of the default corpus; a report reads it as the run's corpus
PREVIOUS = "previous-"          # --start-over moves an earlier run's files into previous-1, previous-2, ...


def earlier_run(path) -> list[str]:
    """The names of the run files (RUN_FILES) in `path`: empty when no run has written there."""
    return [name for name in RUN_FILES if os.path.lexists(Path(path) / name)]


def check_start(path, resume=None, start_over: bool = False) -> list[str]:
    """The one-run-per-directory rule: the run files a start in `path` would move aside (empty:
    none), or one line refusing it. resume: the checkpoint of the run being continued (None: a new
    run, --init-from included)."""
    path = Path(path)
    found = earlier_run(path)
    if resume is not None and start_over:
        raise CharlstmError("give --resume (continue a run) or --start-over (start a new one), not both")
    if not found:
        return []
    if start_over:
        return found
    listed = ", ".join(found)
    if resume is None:
        raise CharlstmError(f"{path}: holds another run ({listed}); continue it with --resume {path / RUN_FILES[0]}, "
                            f"choose another --out, or pass --start-over to move its files into {path / PREVIOUS}N "
                            "first")
    if not _own_run(path, resume):
        raise CharlstmError(f"{path}: holds another run ({listed}), not the one of {resume}; give --out the "
                            "directory of that run, or an empty one")
    return []


def _own_run(path: Path, resume) -> bool:
    """Whether the checkpoint `resume` is of the run in `path`: one of its checkpoints or a file in
    it, or a copy kept elsewhere (the same model, vocabulary, corpus and training settings as its
    latest.npz, bounds apart)."""
    if (names_same_file(resume, path / "latest.npz") or names_same_file(resume, path / "best.npz")
            or names_same_file(Path(resume).parent, path)):
        return True
    try:
        theirs, ours = load_checkpoint(path / "latest.npz"), load_checkpoint(resume)
    except CharlstmError:
        return False

    def run(ckpt) -> tuple:
        train = ckpt.train if isinstance(ckpt.train, dict) else {}
        config = {k: v for k, v in (train.get("config") or {}).items() if k not in ("max_steps", "max_time", "epochs")}
        return ckpt.config, ckpt.vocab, train.get("corpus"), config
    return run(theirs) == run(ours)


class RunDir:
    """The run directory, created, checked writable, locked and claimed (check_start) on entry.
    resume, start_over: how the run means to use it (see check_start); reads: the paths the run
    reads (its corpus), never written over nor moved; say: told the line about files moved aside."""

    def __init__(self, path, resume=None, start_over: bool = False, reads=(), say=None):
        self.path = Path(path)
        self.latest = self.path / "latest.npz"
        self.best = self.path / "best.npz"
        self.metrics = self.path / "metrics.jsonl"
        self._lock_file = None
        self._created = False
        self._metrics = b""
        self._resume, self._start_over = resume, start_over
        self._reads = [p for p in reads if p is not None]
        self._say = say or (lambda line: None)

    def __enter__(self) -> "RunDir":
        if self.path.exists() and not self.path.is_dir():
            raise CharlstmError(f"{self.path}: exists and is not a directory")
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CharlstmError(f"cannot create the output directory {self.path}: {e.strerror or e}") from None
        try:
            self._check_writable()
            self._lock()
            self._claim()
            self._clean_after_crash()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        lock = self.path / ".lock"
        try:
            if self._lock_file is not None and [p.name for p in self.path.iterdir()] == [".lock"]:
                lock.unlink()        # nothing was written: leave the directory as it was found
        except OSError:
            pass
        if self._lock_file is not None:
            _unlock(self._lock_file)
            self._lock_file.close()
            self._lock_file = None
        if self._created:
            try:
                self.path.rmdir()    # only succeeds when the refused start left it empty
            except OSError:
                pass

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
        lock = self.path / ".lock"
        for _ in range(10):
            f = open(lock, "a+")
            if not _try_lock(f):
                f.close()
                raise CharlstmError(f"another charlstm run is writing to {self.path}; "
                                    "wait for it or choose another --out directory") from None
            try:       # a run that was ending may have removed the file we locked (see __exit__)
                same = os.fstat(f.fileno()).st_ino == os.stat(lock).st_ino
            except OSError:
                same = False
            if same:
                self._lock_file = f
                return
            _unlock(f)
            f.close()
        raise CharlstmError(f"cannot lock {lock}: it keeps being replaced")

    def _claim(self) -> None:
        """Under the lock: the run's own files are none of its inputs, and an earlier run's are
        moved aside when the run starts over (see check_start), or the start is refused."""
        for name in RUN_FILES:
            check_output(self.path / name, self._reads, "run file")
        found = check_start(self.path, self._resume, self._start_over)
        if not found:
            return
        corpus = self.path / CORPUS_COPY
        if corpus.is_file() and not any(names_same_file(corpus, p) for p in self._reads):
            found.append(CORPUS_COPY)      # the earlier run's corpus, which a report would read as this one's
        number = 1
        while os.path.lexists(self.path / f"{PREVIOUS}{number}"):
            number += 1
        target = self.path / f"{PREVIOUS}{number}"
        moved = []
        try:
            target.mkdir()
            for name in found:
                os.replace(self.path / name, target / name)
                moved.append(name)
        except OSError as e:
            done = f"; moved so far: {', '.join(moved)}" if moved else ""
            raise CharlstmError(f"cannot move the earlier run's files into {target}: {e.strerror or e}{done}") from None
        fsync_directory(target)
        fsync_directory(self.path)
        self._say(f"--start-over: moved the earlier run's {', '.join(moved)} into {target}")

    def _clean_after_crash(self) -> None:
        """Remove what a killed run left half-written (safe: we hold the lock, so no one is writing)."""
        for pattern in (".latest.npz.tmp-*", ".best.npz.tmp-*", ".metrics.jsonl.tmp-*", ".corpus.txt.tmp-*",
                        ".write-test-*"):
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
        self._metrics = read_bounded(self.metrics, MAX_METRICS_BYTES, what="metrics file") \
            if self.metrics.is_file() else b""

    def promote_best(self) -> None:
        """best.npz becomes a copy of latest.npz, atomically (copied to a temporary, then renamed)."""
        def copy(f):
            with open(self.latest, "rb") as source:
                shutil.copyfileobj(source, f)
        write_atomically(self.best, copy, "best checkpoint")

    def append_metrics(self, record: dict) -> None:
        """One JSON line more in metrics.jsonl; the whole file is rewritten atomically, so a crash
        leaves the old record or the new one, never half a line."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8", "backslashreplace")
        data = self._metrics + line
        write_atomically(self.metrics, lambda f: f.write(data), "metrics file")
        self._metrics = data


def _try_lock(f) -> bool:
    """Take an exclusive lock on the open file without waiting: True if taken."""
    if fcntl is not None:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        return True
    try:
        import msvcrt
    except ImportError:      # neither: a platform charlstm cannot lock on runs unlocked
        return True
    try:
        msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(f) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(f, fcntl.LOCK_UN)
        else:
            import msvcrt
            f.seek(0)
            msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
    except (OSError, ImportError):
        pass


class FollowerDir:
    """The run directory as a process that shares a run but does not write it sees it (a
    distributed run's ranks above 0): its paths, and nothing written or locked."""

    def __init__(self, path):
        self.path = Path(path)
        self.latest = self.path / "latest.npz"
        self.best = self.path / "best.npz"
        self.metrics = self.path / "metrics.jsonl"

    def __enter__(self) -> "FollowerDir":
        return self

    def __exit__(self, *exc):
        return False

    def promote_best(self) -> None:
        pass

    def append_metrics(self, record: dict) -> None:
        pass
