"""Every wrong or hostile input gets one line naming the problem, a non-zero exit, no traceback,
and leaves the user's files exactly as they were.

Each case goes through the `charlstm` command (click's CliRunner, in-process) and checks the
same four things: exit status 1, exactly one line on stderr starting `charlstm: error:` and
naming the problem, nothing on stdout, and every file in the working directory byte-identical
afterwards (hashed before and after).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm import cli
from charlstm.training.checkpoint import load_checkpoint
from charlstm.errors import CharlstmError
from charlstm.decoding.sampling import generate
from charlstm.data.vocab import build_vocab

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(60))


# --- helpers -------------------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (the user's files), by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def fails_cleanly(root: Path, args: list[str], *needles: str) -> str:
    """Run `charlstm ARGS` in root; assert a clean one-line failure that leaves every file as it
    was and mentions each needle (case-insensitive). Returns the message."""
    before = snapshot(root)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(cli.main, [str(a) for a in args])
    finally:
        os.chdir(cwd)
    assert isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{result.output}"
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stdout == "", result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert message.startswith("charlstm: error: ")
    for needle in needles:
        assert needle.lower() in message.lower(), message
    assert snapshot(root) == before, "a user's file changed"
    return message


def write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> Path:
    """A small valid checkpoint written by Model.save (vocabulary of TEXT, 1 x 8 LSTM)."""
    path = tmp_path_factory.mktemp("ckpt") / "model.npz"
    charlstm.Model.create(build_vocab(TEXT), hidden_size=8, num_layers=1, seed=0).save(path)
    return path


@pytest.fixture(scope="module")
def training_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint written by a (two-step) training run, resumable."""
    out = tmp_path_factory.mktemp("run")
    charlstm.train(text=TEXT, out_dir=out, hidden_size=8, num_layers=1, batch_size=2, seq_length=8,
                   max_steps=2, eval_every=2, sample_length=5, progress=False)
    return out / "latest.npz"


def arrays_of(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def meta_of(arrays) -> dict:
    return json.loads(str(arrays["meta"]))


def with_meta(arrays, meta) -> dict:
    return {**arrays, "meta": np.array(json.dumps(meta) if not isinstance(meta, str) else meta)}


def save_npz(path: Path, arrays: dict) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


# --- corpora -------------------------------------------------------------------------------------

TRAIN = ["train", "--quiet", "--out", "run", "--hidden", "8", "--layers", "1", "--max-steps", "1"]


@pytest.mark.parametrize("name, data, needles", [
    ("empty.txt", b"", ["empty"]),
    ("newlines.txt", b"\n\n\r\n\n", ["empty"]),
    ("spaces.txt", b" \t \n  ", ["empty"]),
    ("latin1.txt", "caf\u00e9 au lait\n".encode("latin-1") * 3, ["not valid UTF-8", "byte offset 3"]),
    ("utf16le.txt", "hello world\n".encode("utf-16"), ["UTF-16", "byte-order mark"]),
    ("utf16be.txt", b"\xfe\xff" + "hello\n".encode("utf-16-be"), ["UTF-16"]),
    ("nul.txt", b"abc\ndef\x00ghi\n" * 5, ["NUL", "byte offset 7"]),
])
def test_bad_corpus_file(tmp_path, name, data, needles):
    write(tmp_path / name, data)
    fails_cleanly(tmp_path, TRAIN + [name], name, *needles)
    assert not (tmp_path / "run").exists(), "the run directory was created for a corpus that was refused"


def test_missing_corpus(tmp_path):
    fails_cleanly(tmp_path, TRAIN + ["nope.txt"], "nope.txt", "no such file")


def test_corpus_is_a_directory(tmp_path):
    (tmp_path / "texts").mkdir()
    fails_cleanly(tmp_path, TRAIN + ["texts"], "texts", "directory")


@pytest.mark.parametrize("size, extra, needles", [
    (30, [], ["too short to hold out"]),                        # 5 % of 30 symbols is less than 2
    (50, [], ["48 symbols", "fewer than one batch", "--batch-size"]),   # one batch: 32 x 100 + 1
    (50, ["--val-fraction", "0"], ["50 symbols", "fewer than one batch"]),
])
def test_corpus_shorter_than_one_batch(tmp_path, size, extra, needles):
    write(tmp_path / "short.txt", ("abcdefghij" * 5)[:size])
    fails_cleanly(tmp_path, ["train", "short.txt", "--quiet", "--out", "run", *extra], *needles)
    assert not (tmp_path / "run").exists()


def test_invalid_utf8_reports_the_offset_of_the_first_bad_byte(tmp_path):
    data = ("x" * 1234).encode() + b"\xc3\x28" + b" more text\n" * 10
    write(tmp_path / "c.txt", data)
    fails_cleanly(tmp_path, TRAIN + ["c.txt"], "byte offset 1234", "--encoding-errors replace")


def test_a_2gb_binary_file_is_refused_in_bounded_memory(tmp_path):
    """A sparse 2 GB file (it reads as NUL bytes) is read block by block like any large corpus
    and refused at its first block: the process never grows past a small fraction of the file
    (its own peak RSS), one line, exit 1, and nothing is written."""
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(2 * 1024 ** 3)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    # The child records its own peak (VmHWM belongs to its address space alone; wait4's ru_maxrss
    # would also count the pytest process it was forked from, as Linux keeps that across exec).
    peak_file = tmp_path / "peak"
    child = ("import atexit, sys\n"
             "def peak():\n"
             "    for line in open('/proc/self/status'):\n"
             "        if line.startswith('VmHWM:'):\n"
             f"            open({str(peak_file)!r}, 'w').write(line.split()[1])\n"
             "atexit.register(peak)\n"
             "from charlstm.cli import main\n"
             "main()\n")
    with open(tmp_path / "err", "wb") as err:
        proc = subprocess.run([sys.executable, "-c", child, "train", str(big), "--out", str(tmp_path / "run"),
                               "--quiet"], stdout=subprocess.DEVNULL, stderr=err, env=env)
    lines = (tmp_path / "err").read_text().splitlines()
    assert proc.returncode == 1
    assert lines == [f"charlstm: error: {big}: holds a NUL byte at byte offset 0; is it a binary file?"]
    peak_kb = int(peak_file.read_text())
    assert peak_kb * 1024 < 300 * 1024 ** 2, f"peak memory {peak_kb} kB"
    assert big.stat().st_size == 2 * 1024 ** 3 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("option, value, needle", [
    ("--batch-size", "0", "--batch-size"),
    ("--seq-length", "-3", "--seq-length"),
    ("--lr", "nan", "--lr"),
    ("--eval-every", "0", "--eval-every"),
    ("--val-fraction", "1", "--val-fraction"),
    ("--hidden", "0", "--hidden must be at least 1"),
    ("--dropout", "1.5", "dropout"),
])
def test_bad_training_options(tmp_path, option, value, needle):
    write(tmp_path / "c.txt", TEXT)
    args = [a for a in TRAIN if a not in ("--hidden", "8")] if option == "--hidden" else TRAIN
    fails_cleanly(tmp_path, args + ["c.txt", option, value], needle)
    assert not (tmp_path / "run").exists()


def test_out_is_a_file(tmp_path):
    write(tmp_path / "c.txt", TEXT)
    write(tmp_path / "taken", "not a directory\n")
    fails_cleanly(tmp_path, ["train", "c.txt", "--quiet", "--out", "taken", "--batch-size", "2",
                             "--seq-length", "8", "--hidden", "8", "--layers", "1"], "taken", "not a directory")


# --- checkpoints ---------------------------------------------------------------------------------

def damaged(tmp_path: Path, good: Path, case: str) -> Path:
    """A damaged copy of a good checkpoint, as tmp_path/bad.npz."""
    bad = tmp_path / "bad.npz"
    arrays = arrays_of(good)
    meta = meta_of(arrays)
    if case == "not a zip":
        return write(bad, b"this is a text file, not a checkpoint\n" * 10)
    if case == "empty":
        return write(bad, b"")
    if case == "truncated":
        return write(bad, good.read_bytes()[: good.stat().st_size // 2])
    if case == "truncated tail":
        return write(bad, good.read_bytes()[:-7])
    if case == "corrupt member":
        data = bytearray(good.read_bytes())
        with zipfile.ZipFile(good) as z:
            info = z.getinfo("head.W.npy")
        start = info.header_offset + 30 + len(info.filename) + 200
        data[start:start + 64] = b"\xff" * 64      # inside head.W's data (stored, not compressed)
        return write(bad, bytes(data))
    if case == "meta not json":
        return save_npz(bad, with_meta(arrays, "{not json"))
    if case == "meta not text":
        return save_npz(bad, {**arrays, "meta": np.arange(3)})
    if case == "no meta":
        return save_npz(bad, {k: v for k, v in arrays.items() if k != "meta"})
    if case == "meta is a list":
        return save_npz(bad, with_meta(arrays, [1, 2, 3]))
    if case == "foreign format":
        return save_npz(bad, with_meta(arrays, {**meta, "format": "something-else"}))
    if case in ("no config", "no vocab", "no version"):
        key = case.split()[1]
        return save_npz(bad, with_meta(arrays, {k: v for k, v in meta.items() if k != key}))
    if case == "config lacks hidden_size":
        config = {k: v for k, v in meta["config"].items() if k != "hidden_size"}
        return save_npz(bad, with_meta(arrays, {**meta, "config": config}))
    if case == "config hidden_size is text":
        return save_npz(bad, with_meta(arrays, {**meta, "config": {**meta["config"], "hidden_size": "8"}}))
    if case == "vocab symbols not strings":
        vocab = {**meta["vocab"], "symbols": list(range(len(meta["vocab"]["symbols"])))}
        return save_npz(bad, with_meta(arrays, {**meta, "vocab": vocab}))
    if case == "newer version":
        return save_npz(bad, with_meta(arrays, {**meta, "version": 99}))
    if case == "shape inconsistent":
        return save_npz(bad, {**arrays, "lstm.0.Wh": np.zeros((8, 16), np.float32)})
    if case == "missing parameter":
        return save_npz(bad, {k: v for k, v in arrays.items() if k != "head.b"})
    if case == "integer weights":
        return save_npz(bad, {**arrays, "head.b": arrays["head.b"].astype(np.int32)})
    if case == "nan weights":
        W = arrays["lstm.0.Wx"].copy()
        W[3, 5] = np.nan
        return save_npz(bad, {**arrays, "lstm.0.Wx": W})
    if case == "inf weights":
        b = arrays["head.b"].copy()
        b[0] = np.inf
        return save_npz(bad, {**arrays, "head.b": b})
    if case == "vocab of the wrong size":
        vocab = {**meta["vocab"], "symbols": meta["vocab"]["symbols"][:-2]}
        return save_npz(bad, with_meta(arrays, {**meta, "vocab": vocab}))
    if case == "vocab holds a symbol twice":
        symbols = meta["vocab"]["symbols"]
        vocab = {**meta["vocab"], "symbols": symbols[:-1] + symbols[:1]}
        return save_npz(bad, with_meta(arrays, {**meta, "vocab": vocab}))
    raise AssertionError(case)


CHECKPOINT_CASES = {
    "not a zip": ["not a charlstm checkpoint"],
    "empty": ["not a charlstm checkpoint"],
    "truncated": ["truncated"],
    "truncated tail": ["truncated"],
    "corrupt member": ["damaged"],
    "meta not json": ["not valid JSON"],
    "meta not text": ["meta is not a text record"],
    "no meta": ["no meta record"],
    "meta is a list": ["not a charlstm checkpoint"],
    "foreign format": ["not a charlstm checkpoint"],
    "no config": ["'config'"],
    "no vocab": ["'vocab'"],
    "no version": ["version"],
    "config lacks hidden_size": ["hidden_size"],
    "config hidden_size is text": ["hidden_size", "whole number"],
    "vocab symbols not strings": ["symbols"],
    "newer version": ["format 99", "upgrade"],
    "shape inconsistent": ["lstm.0.Wh", "(8, 16)", "(8, 32)"],
    "missing parameter": ["missing parameter head.b"],
    "integer weights": ["head.b", "not floating point"],
    "nan weights": ["lstm.0.Wx", "NaN"],
    "inf weights": ["head.b", "infinite"],
    "vocab of the wrong size": ["vocabulary holds", "expects"],
    "vocab holds a symbol twice": ["twice"],
}


@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
@pytest.mark.parametrize("command", ["sample", "eval", "resume"])
def test_bad_checkpoint(tmp_path, good_checkpoint, case, command):
    bad = damaged(tmp_path, good_checkpoint, case)
    write(tmp_path / "c.txt", TEXT)
    args = {"sample": ["sample", "bad.npz", "--length", "5"],
            "eval": ["eval", "bad.npz", "c.txt"],
            "resume": ["train", "c.txt", "--quiet", "--out", "run", "--resume", "bad.npz"]}[command]
    fails_cleanly(tmp_path, args, "bad.npz", *CHECKPOINT_CASES[case])
    assert not (tmp_path / "run").exists()
    with pytest.raises(CharlstmError):
        load_checkpoint(bad)


def test_object_arrays_are_refused_and_never_unpickled(tmp_path, good_checkpoint):
    """An npz holding a pickled object whose unpickling would create a file: loading refuses it,
    and the file is never created."""
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    arrays = arrays_of(good_checkpoint)
    bomb = np.empty(1, dtype=object)
    bomb[0] = Bomb()
    save_npz(tmp_path / "bad.npz", {**arrays, "adam.m.head.W": bomb})
    for args in (["sample", "bad.npz", "--length", "3"], ["eval", "bad.npz", "bad.npz"]):
        fails_cleanly(tmp_path, args, "bad.npz", "Python objects", "never unpickles")
    assert not marker.exists()
    # An object array in place of the meta record itself: refused the same way.
    save_npz(tmp_path / "bad.npz", {**arrays, "meta": bomb})
    fails_cleanly(tmp_path, ["sample", "bad.npz"], "Python objects")
    assert not marker.exists()


@pytest.mark.parametrize("args, needles", [
    (["sample", "nowhere.npz"], ["nowhere.npz", "no such checkpoint"]),
    (["sample", "."], ["is a directory"]),
])
def test_missing_checkpoint(tmp_path, args, needles):
    fails_cleanly(tmp_path, args, *needles)


def test_resume_needs_training_state(tmp_path, good_checkpoint, training_checkpoint):
    write(tmp_path / "c.txt", TEXT)
    (tmp_path / "model.npz").write_bytes(good_checkpoint.read_bytes())
    fails_cleanly(tmp_path, ["train", "c.txt", "--quiet", "--out", "run", "--resume", "model.npz"],
                  "no training state")
    arrays = arrays_of(training_checkpoint)
    meta = meta_of(arrays)
    broken = {**meta, "train": {k: v for k, v in meta["train"].items() if k != "config"}}
    save_npz(tmp_path / "bad.npz", with_meta(arrays, broken))
    fails_cleanly(tmp_path, ["train", "c.txt", "--quiet", "--out", "run", "--resume", "bad.npz"],
                  "bad.npz", "cannot be resumed")
    broken = {**meta, "train": {k: v for k, v in meta["train"].items() if k != "rng"}}
    save_npz(tmp_path / "bad.npz", with_meta(arrays, broken))
    fails_cleanly(tmp_path, ["train", "c.txt", "--quiet", "--out", "run", "--resume", "bad.npz"],
                  "training state needed to resume")
    save_npz(tmp_path / "bad.npz", {k: v for k, v in arrays.items() if k != "state.h"})
    fails_cleanly(tmp_path, ["train", "c.txt", "--quiet", "--out", "run", "--resume", "bad.npz"],
                  "training state needed to resume", "state.h")
    fails_cleanly(tmp_path, ["train", "c.txt", "--quiet", "--out", "run", "--resume",
                             str(training_checkpoint), "--hidden", "4"], "come from the checkpoint")
    write(tmp_path / "other.txt", "\u4e2d\u6587" * 400)   # another corpus, symbols the checkpoint's vocabulary lacks
    fails_cleanly(tmp_path, ["train", "other.txt", "--quiet", "--out", "run", "--resume",
                             str(training_checkpoint)], "is not the corpus", "2,400 bytes", "--init-from")
    fails_cleanly(tmp_path, ["train", "other.txt", "--quiet", "--out", "run", "--init-from",
                             str(training_checkpoint)], "other.txt", "not in the model's vocabulary", "latest.npz")
    assert not (tmp_path / "run").exists()


# --- sampling ------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, needles", [
    (["--prime", "the \u00e9"], ["'\u00e9'", "U+00E9", "vocabulary"]),
    (["--prime", "Z"], ["'Z'", "vocabulary"]),
    (["--prime", "a\tb"], ["\\t", "vocabulary"]),
    (["--length", "0"], ["length", "at least 1"]),
    (["--length", "-5"], ["length", "at least 1"]),
    (["--temperature", "-0.5"], ["temperature"]),
    (["--temperature", "nan"], ["temperature"]),
    (["--temperature", "inf"], ["temperature"]),
    (["--top-k", "0"], ["top-k"]),
    (["--top-k", "10000"], ["top-k", "vocabulary size"]),
    (["--top-p", "0"], ["top-p", "(0, 1]"]),
    (["--top-p", "1.5"], ["top-p"]),
    (["--top-p", "-0.1"], ["top-p"]),
    (["--top-p", "nan"], ["top-p"]),
    (["--num-samples", "0"], ["--num-samples", "at least 1"]),
    (["--num-samples", "-2"], ["--num-samples", "at least 1"]),
])
def test_bad_sampling_options(tmp_path, good_checkpoint, extra, needles):
    (tmp_path / "model.npz").write_bytes(good_checkpoint.read_bytes())
    fails_cleanly(tmp_path, ["sample", "model.npz", "--length", "5", *extra], *needles)


@pytest.mark.parametrize("kwargs", [{"length": 0}, {"length": -1}, {"temperature": float("nan")},
                                    {"top_k": 0}, {"top_p": 0.0}, {"num_samples": 0}])
def test_the_api_refuses_the_same_sampling_settings(good_checkpoint, kwargs):
    model = charlstm.load(good_checkpoint)
    with pytest.raises(CharlstmError):
        model.sample(**{"length": 5, **kwargs})
    with pytest.raises(CharlstmError):
        next(generate(model.params, model.config, model.vocab, np.random.default_rng(0), **{"length": 5, **kwargs}))


def test_a_good_sample_still_works(tmp_path, good_checkpoint):
    """The checks above are not simply refusing everything."""
    result = CliRunner().invoke(cli.main, ["sample", str(good_checkpoint), "--length", "7", "--prime", "the ",
                                           "--top-k", str(len(build_vocab(TEXT))), "--top-p", "1", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("the ") and result.stderr == ""


# --- corpus code ---------------------------------------------------------------------------------

def test_corpus_code_skips_and_counts_what_it_cannot_use(tmp_path, monkeypatch):
    tree = tmp_path / "src"
    (tree / "pkg").mkdir(parents=True)
    write(tree / "good.py", "def f():\n    return 1\n")
    write(tree / "pkg" / "also_good.py", "x = 2\n")
    write(tree / "big.py", "y = 3\n" * 1000)                     # 6000 bytes, over --max-file-bytes
    write(tree / "secret.py", "z = 4\n")                         # made unreadable below
    (tree / "pkg" / "loop").symlink_to(tree, target_is_directory=True)   # a symlink loop
    (tree / "pkg" / "self.py").symlink_to(tree / "pkg" / "self.py")      # a link to itself
    (tree / "pkg" / "dangling.py").symlink_to(tree / "gone.py")
    before = snapshot(tree)
    # Tests run as root, which chmod cannot lock out, so the unreadable file is simulated.
    import charlstm.files

    def unreadable(file, *args, **kwargs):
        if Path(file).name == "secret.py":
            raise PermissionError(13, "Permission denied", str(file))
        return open(file, *args, **kwargs)

    monkeypatch.setattr(charlstm.files, "open", unreadable, raising=False)
    result = CliRunner().invoke(cli.main, ["corpus", "code", str(tree), "--max-file-bytes", "1000",
                                           "-o", str(tmp_path / "out.txt")])
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    summary = result.stderr.strip()
    assert "2 files" in summary
    for counted in ("symlinks 3", "too_large 1", "unreadable 1"):
        assert counted in summary, summary
    text = (tmp_path / "out.txt").read_text()
    assert "return 1" in text and "x = 2" in text and "y = 3" not in text and "z = 4" not in text
    assert snapshot(tree) == before


def test_corpus_code_with_nothing_usable_fails_cleanly(tmp_path):
    tree = tmp_path / "src"
    tree.mkdir()
    write(tree / "big.py", "y = 3\n" * 1000)
    (tree / "loop").symlink_to(tree, target_is_directory=True)
    fails_cleanly(tmp_path, ["corpus", "code", "src", "--max-file-bytes", "100", "-o", "out.txt"],
                  "no readable .py files")
    assert not (tmp_path / "out.txt").exists()
    fails_cleanly(tmp_path, ["corpus", "code", "missing", "-o", "out.txt"], "no such directory")


# --- interruptions outside the training loop -------------------------------------------------------

def test_ctrl_c_before_training_is_one_line(tmp_path, monkeypatch):
    write(tmp_path / "c.txt", TEXT)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["charlstm.training.loop"], "load_corpus", interrupted)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli.main, TRAIN + ["c.txt"])
    assert result.exit_code == 130
    assert result.stderr.splitlines() == ["charlstm: interrupted"]


def test_out_of_memory_advice_is_the_commands_own(tmp_path, good_checkpoint, monkeypatch):
    """Running out of memory while sampling names sampling's options, not training's."""
    def no_memory(*args, **kwargs):
        raise MemoryError

    (tmp_path / "model.npz").write_bytes(good_checkpoint.read_bytes())
    monkeypatch.setattr(charlstm.Model, "generate", no_memory)
    message = fails_cleanly(tmp_path, ["sample", "model.npz"], "out of memory", "--num-samples")
    assert "--hidden" not in message and "--batch-size" not in message
