"""charlstm/files.py: one atomic writer for every output, one bounded reader for every input.

Every writer is interrupted in the middle of its write (an error, Ctrl-C) over an existing file:
the old file must be there afterwards, byte for byte, and no temporary file left. Inputs of
unknown size (/dev/zero, a FIFO fed forever) are read only up to their bound.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

import charlstm
from charlstm import cli, files
from charlstm.data.vocab import build_vocab
from charlstm.errors import CharlstmError

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(60))
OLD = b"the user's good file\n"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "model.npz"
    charlstm.Model.create(build_vocab(TEXT), hidden_size=8, num_layers=1, seed=0).save(path)
    return path


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".tmp-" in p.name]


# --- the writer ----------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt(), ValueError("x")])
def test_a_write_that_fails_halfway_leaves_the_old_file(tmp_path, failure):
    target = tmp_path / "out.bin"
    target.write_bytes(OLD)

    def half_then_fail(f):
        f.write(b"half of the new")
        raise failure

    expected = CharlstmError if isinstance(failure, OSError) else type(failure)
    with pytest.raises(expected) as e:
        files.write_atomically(target, half_then_fail, "thing")
    if isinstance(failure, OSError):
        assert str(target) in str(e.value) and "No space left" in str(e.value) and "untouched" in str(e.value)
    assert target.read_bytes() == OLD and leftovers(tmp_path) == []
    files.write_atomically(target, lambda f: f.write(b"new"))
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []


def test_text_that_is_not_unicode_is_refused_before_writing(tmp_path):
    target = tmp_path / "page.html"
    target.write_bytes(OLD)
    with pytest.raises(CharlstmError, match="U\\+D800"):
        files.write_text(target, "ok \ud800", "page")
    assert target.read_bytes() == OLD and leftovers(tmp_path) == []


def run_cli(root: Path, args: list[str]):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(cli.main, [str(a) for a in args])
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("command", ["trace", "viz", "report", "corpus synth", "corpus code", "export onnx",
                                     "import", "train metrics"])
def test_ctrl_c_while_a_command_writes_over_a_file_leaves_the_old_one(tmp_path, monkeypatch, checkpoint, command):
    (tmp_path / "c.txt").write_text(TEXT)
    (tmp_path / "model.npz").write_bytes(checkpoint.read_bytes())
    run = tmp_path / "run"
    charlstm.train(text=TEXT, out_dir=run, hidden_size=8, num_layers=1, batch_size=2, seq_length=8, max_steps=2,
                   eval_every=1, sample_length=5, progress=False)
    target = {"trace": tmp_path / "t.npz", "viz": tmp_path / "v.html", "report": tmp_path / "r.html",
              "corpus synth": tmp_path / "s.txt", "corpus code": tmp_path / "code.txt",
              "export onnx": tmp_path / "m.onnx", "import": tmp_path / "back.npz",
              "train metrics": run / "metrics.jsonl"}[command]
    if command != "train metrics":
        target.write_bytes(OLD)
    old = target.read_bytes()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    args = {"trace": ["trace", "model.npz", "c.txt", "-o", target],
            "viz": ["viz", "model.npz", "c.txt", "-o", target],
            "report": ["report", run, "-o", target],
            "corpus synth": ["corpus", "synth", "counting", "-o", target, "--n-lines", "10"],
            "corpus code": ["corpus", "code", "src", "-o", target],
            "export onnx": ["export", "model.npz", "-o", target],
            "import": ["import", "model.pt", "-o", target],
            "train metrics": ["train", "c.txt", "--out", run, "--resume", run / "latest.npz", "--max-steps", "3",
                              "--quiet"]}[command]
    if command == "export onnx":
        pytest.importorskip("onnx")
    if command == "import":
        pytest.importorskip("torch")
        from charlstm.torch import save_torch
        save_torch(charlstm.load(checkpoint), tmp_path / "model.pt")
    # Ctrl-C arrives while the bytes are being written: inside the writer's callback.
    real = files.write_atomically

    def interrupted(path, write, what="file"):
        def half(f):
            f.write(b"half a file")
            raise KeyboardInterrupt
        return real(path, half, what)

    for module in list(sys.modules.values()):
        if getattr(module, "write_atomically", None) is real:
            monkeypatch.setattr(module, "write_atomically", interrupted)
    result = run_cli(tmp_path, args)
    assert result.exit_code == 130, result.output
    assert target.read_bytes() == old, "the file was replaced by half a file"
    assert leftovers(target.parent) == []


def test_every_writer_goes_through_write_atomically():
    """No module of charlstm writes a file itself: only the atomic writer does (and the run
    directory, for its lock and its write probe, and the encoder's writing module, which streams a
    data directory into a temporary directory renamed into place whole: test_encode holds that a
    failed encoding leaves nothing behind)."""
    root = Path(charlstm.__file__).parent
    writes = re.compile(r"open\([^)]*['\"][wax]b?\+?['\"]|(?<!files)\.write_(text|bytes)\(|np\.savez?(_compressed)?\(")
    for path in root.rglob("*.py"):
        if path in (root / "files.py", root / "training" / "rundir.py", root / "data" / "writing.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if writes.search(line) and "write_atomically" not in line and "os.devnull" not in line:
                raise AssertionError(f"{path.relative_to(root)}:{number} writes a file itself: {line.strip()}")


# --- the bounded reader --------------------------------------------------------------------------

def test_a_regular_file_over_the_bound_is_refused_from_its_size(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(10 ** 9)               # sparse: reading it would cost a gigabyte
    with pytest.raises(CharlstmError, match="1,000,000,000 bytes, more than the 1,000-byte limit.*raise it"):
        files.read_bounded(big, 1000, "raise it", "text file")
    (tmp_path / "c.txt").write_text("abc")
    assert files.read_bounded(tmp_path / "c.txt", 3) == b"abc"


def test_dev_zero_is_read_only_up_to_the_bound():
    with pytest.raises(CharlstmError, match="/dev/zero: holds more than the 3,000,000-byte limit"):
        files.read_bounded("/dev/zero", 3_000_000, what="text file")


def test_a_fifo_fed_forever_is_read_only_up_to_the_bound(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed():
        try:
            with open(fifo, "wb") as f:
                while not stop.is_set():
                    f.write(b"x" * 65536)
        except BrokenPipeError:
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    try:
        with pytest.raises(CharlstmError, match="holds more than the 1,000,000-byte limit"):
            files.read_bounded(fifo, 1_000_000)
    finally:
        stop.set()
        writer.join(5)


def test_a_short_fifo_is_read_whole(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: Path(fifo).write_bytes(b"hello\n" * 10), daemon=True)
    writer.start()
    assert files.read_bounded(fifo, 1000) == b"hello\n" * 10
    writer.join(5)


# --- platforms -----------------------------------------------------------------------------------

def test_charlstm_imports_and_locks_without_fcntl(tmp_path):
    """Where fcntl does not exist (Windows), importing charlstm and taking a run directory work."""
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "import charlstm\n"
            "from charlstm.training.rundir import RunDir\n"
            f"with RunDir({str(tmp_path / 'run')!r}) as d: d.append_metrics({{'step': 1}})\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(charlstm.__file__).parent.parent)})
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"step": 1}\n'


# --- the default corpus: validated, locked, then written; never over a user's file ---------------

SMALL = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-length", "8", "--sample-length", "0",
         "--quiet"]


@pytest.fixture
def small_stdlib(monkeypatch):
    """The built-in corpus, shrunk to TEXT so that these runs take a second."""
    from charlstm.data import corpora
    monkeypatch.setattr(corpora, "build_stdlib_corpus", lambda *a, **k: (TEXT, {"files_read": 1, "bytes": len(TEXT)}))


@pytest.mark.parametrize("extra", [["--epochs", "0"], ["--epochs", "inf"], ["--max-steps", "1"]])
def test_the_default_corpus_never_replaces_a_users_corpus_txt(tmp_path, small_stdlib, extra):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "corpus.txt").write_bytes(b"mine\n")
    result = run_cli(tmp_path, ["train", "--out", "d", *SMALL, *extra])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert (tmp_path / "d" / "corpus.txt").read_bytes() == b"mine\n"
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["corpus.txt"]


def test_the_default_corpus_waits_for_the_lock(tmp_path, small_stdlib):
    from charlstm.training.rundir import RunDir
    with RunDir(tmp_path / "d"):
        result = run_cli(tmp_path, ["train", "--out", "d", *SMALL, "--max-steps", "1"])
        assert result.exit_code == 1 and "another charlstm run is writing to d" in result.stderr
        assert not (tmp_path / "d" / "corpus.txt").exists()


def test_the_default_corpus_is_written_once_checked_and_resumes(tmp_path, small_stdlib):
    result = run_cli(tmp_path, ["train", "--out", "d", *SMALL, "--max-steps", "2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "corpus.txt").read_text() == TEXT
    assert "No corpus given" in result.stderr
    result = run_cli(tmp_path, ["train", "--out", "d", "--resume", "d/latest.npz", "--max-steps", "3", "--quiet"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "corpus.txt").read_text() == TEXT


def test_a_start_refused_after_the_lock_leaves_nothing(tmp_path, monkeypatch):
    """A first step that diverges: the directory it created is gone; one that was there is as it was."""
    from charlstm.training import engine
    real = engine.loss_and_grads

    def nan_loss(*args, **kwargs):
        loss, grads, state, dstate = real(*args, **kwargs)
        return float("nan"), grads, state, dstate

    monkeypatch.setattr(engine, "loss_and_grads", nan_loss)
    (tmp_path / "c.txt").write_text(TEXT)
    (tmp_path / "empty").mkdir()
    for out in ("new", "empty"):
        result = run_cli(tmp_path, ["train", "c.txt", "--out", out, *SMALL, "--max-steps", "3"])
        assert result.exit_code == 1 and "no checkpoint had been written yet" in result.stderr, result.output
    assert not (tmp_path / "new").exists()
    assert list((tmp_path / "empty").iterdir()) == []


# --- outputs: never an input, always a file name --------------------------------------------------

def test_an_output_that_is_an_input_is_refused_by_name_hard_link_and_symlink(tmp_path):
    source = tmp_path / "model.npz"
    source.write_bytes(b"mine")
    os.link(source, tmp_path / "twin.npz")
    (tmp_path / "alias.npz").symlink_to(source)
    for output in (source, tmp_path / "twin.npz", tmp_path / "alias.npz"):
        with pytest.raises(CharlstmError, match="input of this command"):
            files.check_output(output, [source], "trace")
    assert files.check_output(tmp_path / "other.npz", [source]) == tmp_path / "other.npz"
    assert source.read_bytes() == b"mine"


@pytest.mark.parametrize("path", ["", ".", "/", ".."])
def test_a_path_with_no_file_name_is_one_line_for_every_writer(tmp_path, monkeypatch, path):
    monkeypatch.chdir(tmp_path)
    model = charlstm.Model.create(build_vocab("abc\n"), hidden_size=4, num_layers=1)
    for write in (model.save, lambda p: files.write_text(p, "x"),
                  lambda p: charlstm.trace(model, "abcabc").save(p)):
        with pytest.raises(CharlstmError) as e:
            write(path)
        assert "\n" not in str(e.value) and ("empty" in str(e.value) or "name" in str(e.value))
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_as_an_output_file_is_refused(tmp_path):
    with pytest.raises(CharlstmError, match="is a directory"):
        charlstm.Model.create(build_vocab("abc\n"), hidden_size=4, num_layers=1).save(tmp_path)


def test_every_command_that_writes_a_file_checks_its_output_first():
    """One mechanism: each command with an output declares it (cli._writes), or trains (train,
    classify train, tag train), whose run directory is checked by training/rundir.py."""
    def commands(group, prefix=()):
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                yield from commands(command, (*prefix, name))
            else:
                yield (*prefix, name), command
    writers = []
    for name, command in commands(cli.main):
        if any(p.name in ("output", "out_dir") for p in command.params):
            writers.append(name)
            assert name[-1] == "train" or getattr(command.callback, "writes", None) == "output", name
    assert len(writers) >= 10, writers


# --- one run per directory ------------------------------------------------------------------------

def _train(out, **options):
    return charlstm.train(text="the quick brown fox jumps over the lazy dog\n" * 40, out_dir=out, hidden_size=8,
                          num_layers=1, batch_size=2, seq_length=8, max_steps=2, eval_every=1, sample_length=0,
                          progress=False, **options)


def test_a_new_run_into_a_used_directory_is_refused_by_the_api_too(tmp_path):
    _train(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()}
    with pytest.raises(CharlstmError, match="holds another run .*--start-over"):
        _train(tmp_path / "run", seed=7)
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before


def test_start_over_moves_the_earlier_run_aside_whole_and_says_so(tmp_path, capsys):
    out = tmp_path / "run"
    _train(out)
    (out / "corpus.txt").write_text("the earlier run's corpus\n")
    before = {name: (out / name).read_bytes() for name in ("latest.npz", "best.npz", "metrics.jsonl", "corpus.txt")}
    _train(out, seed=7, start_over=True)
    assert f"moved the earlier run's latest.npz, best.npz, metrics.jsonl, corpus.txt into {out / 'previous-1'}" \
        in capsys.readouterr().err
    assert {name: (out / "previous-1" / name).read_bytes() for name in before} == before
    assert not (out / "corpus.txt").exists()           # a report of the new run reads no stale corpus
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2      # only the new run's
    _train(out, seed=8, start_over=True)
    assert (out / "previous-2" / "latest.npz").exists() and (out / "previous-1" / "corpus.txt").exists()


def test_an_empty_out_dir_is_refused_not_read_as_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CharlstmError, match="empty"):
        _train("")
    assert list(tmp_path.iterdir()) == []
