"""The standing probe: every command against hostile inputs, each held to the README's promises.

Each case runs one `charlstm` command line against odd files (devices, FIFOs fed forever, wrong
encodings), absurd options, damaged and hostile checkpoints, traces and metrics, interrupts and
closed outputs, and checks the same things every time:

- the exit status (1 for a refused input, 130 for an interrupt, 0 where the input is fine);
- one line on stderr (`charlstm: error: ...` naming the problem; nothing but that line), with
  the words the case expects and none it must not show (a raw escape character, numpy's advice);
- no traceback;
- no file of the user's changed (every file around the command hashed before and after);
- the memory the case costs: the address space it may add is capped with RLIMIT_AS, so that a
  regression fails with MemoryError instead of taking the machine down, and its peak resident
  memory is measured against the same bound.

Most cases run in this process through click's CliRunner (the cap and the measure are set and
reset around each); those that need a process of their own (signals, closed or full standard
streams, a terminal encoding) run in a child with the cap set before it imports charlstm.
`CASES` lists them all; docs/promises.md gives their count and result.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from click.testing import CliRunner

import charlstm
from charlstm import cli
from charlstm.data import corpora
from charlstm.data.vocab import UNK, build_vocab

MEMORY_BOUND = 1 << 30            # what one case may add: address space (enforced) and peak RSS (measured)
CHILD_ADDRESS_SPACE = 3 << 30     # the whole address space of a child process (enforced)
MAX_LINE = 1000                   # characters of one line on stderr, whatever the input echoed
CASE_SECONDS = 60                 # a case that blocks or runs on fails after this long
ROOT = Path(charlstm.__file__).parent.parent
TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(60))
SMALL = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-length", "8", "--sample-length", "0",
         "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT)}


@dataclass
class Case:
    args: list[str]
    needles: tuple[str, ...] = ()         # words the stderr line must hold
    exit: int = 1
    setup: Callable[[Path], Callable | None] | None = None   # may return a cleanup
    absent: tuple[str, ...] = ()          # words it must not hold
    outputs: tuple[str, ...] = ()         # files a successful command may write
    process: str | None = None            # run in a child: "closed-stdout", "full-stdout", "pipe", ...
    lines: int = 1                        # lines on stderr
    delay: float = 0.0                    # a signal case: seconds after its cue before the signal


# --- the world every case starts from --------------------------------------------------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    (root / "c.txt").write_text(TEXT)
    charlstm.Model.create(build_vocab(TEXT), hidden_size=8, num_layers=1, seed=0).save(root / "model.npz")
    charlstm.Model.create(build_vocab(TEXT + "\u00e9", min_count=2), hidden_size=8, num_layers=1,
                          seed=0).save(root / "unk.npz")      # rare symbols read as U+FFFD
    charlstm.Model.create(build_vocab("aaaXbbb\nabX\n"), hidden_size=8, num_layers=1, seed=0).save(root / "count.npz")
    charlstm.Model.create(build_vocab("中文 and more\n"), hidden_size=8, num_layers=1, seed=0).save(root / "wide.npz")
    charlstm.train(text=TEXT, out_dir=root / "run", hidden_size=8, num_layers=1, batch_size=2, seq_length=8,
                   max_steps=2, eval_every=1, sample_length=8, progress=False)
    charlstm.trace(charlstm.load(root / "model.npz"), TEXT, max_symbols=300).save(root / "trace.npz")
    (root / "latin1.txt").write_bytes("caf\u00e9 au lait, a line of text\n".encode("latin-1") * 40)
    (root / "empty.txt").write_bytes(b"")
    (root / "other.txt").write_text("\u00fcber " * 30)
    (root / "notes.npz").write_text("a text file, whatever its name says\n")
    (root / "src").mkdir()
    (root / "src" / "a.py").write_text("x = 1\n")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file's hash and every folder and link, so a changed file and a new one (or folder) both show."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = "-> " + os.readlink(p)
        elif p.is_file() and p.name != ".lock":
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
        elif p.is_dir():
            out[str(p.relative_to(root))] = "folder"
    return out


# --- hostile files ---------------------------------------------------------------------------------

def arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save(path: Path, data: dict) -> None:
    with open(path, "wb") as f:
        np.savez(f, **data)


def with_meta(source: Path, target: Path, edit) -> None:
    data = arrays(source)
    meta = json.loads(str(data["meta"]))
    meta = edit(meta) or meta
    save(target, {**data, "meta": np.array(meta if isinstance(meta, str) else json.dumps(meta))})


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def vocab_edit(symbols, unk=None):
    def edit(meta):
        meta["vocab"] = {"unit": "grapheme", "symbols": symbols, "unk": unk}
        return meta
    return edit


def symbols_replaced(k: int, symbol: str):
    def edit(meta):
        meta["vocab"]["symbols"][k] = symbol
    return edit


def hostile_checkpoint(kind: str):
    def setup(root: Path):
        good, bad = root / "model.npz", root / "bad.npz"
        if kind == "nested":
            with_meta(good, bad, lambda m: '{"format": "charlstm", "version": 2, "x": ' + nested(5000) + "}")
        elif kind == "surrogate":
            with_meta(good, bad, symbols_replaced(3, "\ud800"))
        elif kind == "escape-cluster":
            with_meta(good, bad, symbols_replaced(3, "\x1b[2J\x1b]0;owned\x07"))
        elif kind == "only-unk":
            data = arrays(good)
            config = ModelShape(vocab=1)
            data.update(config.params())
            meta = json.loads(str(data["meta"]))
            meta["config"]["vocab_size"] = 1
            meta["vocab"] = {"unit": "grapheme", "symbols": [UNK], "unk": 0}
            save(bad, {**data, "meta": np.array(json.dumps(meta))})
        elif kind == "member-name":
            data = arrays(good)
            save(bad, {**data, "peephole.0.Wx\x1b[2J": np.zeros(3, np.float32)})
        elif kind == "truncated":
            bad.write_bytes(good.read_bytes()[:1000])
        elif kind == "object":
            data = arrays(good)
            obj = np.empty(1, dtype=object)
            obj[0] = {"a": 1}
            save(bad, {**data, "head.b": obj})
        elif kind == "deep-vocab":
            with_meta(good, bad, lambda m: {**m, "vocab": json.loads(nested(40))})
        else:
            raise AssertionError(kind)
    return setup


class ModelShape:
    """Parameters of a 1 x 8 LSTM for a vocabulary of `vocab` symbols (a model's keys and shapes)."""

    def __init__(self, vocab):
        self.vocab = vocab

    def params(self):
        from charlstm.model import ModelConfig, init_params
        config = ModelConfig(vocab_size=self.vocab, hidden_size=8, num_layers=1)
        return {k: v.astype(np.float32) for k, v in init_params(config, np.random.default_rng(0)).items()}


def damaged_training_state(path: str, value=None, array: str | None = None):
    def setup(root: Path):
        good, bad = root / "run" / "latest.npz", root / "bad.npz"
        if array is not None:
            data = arrays(good)
            data[array] = data[array].copy()
            data[array].flat[0] = np.nan
            save(bad, data)
            return
        def edit(meta):
            target = meta["train"]
            *keys, last = path.split(".")
            for key in keys:
                target = target[key]
            target[last] = value
        with_meta(good, bad, edit)
    return setup


def hostile_trace(kind: str):
    def setup(root: Path):
        good, bad = root / "trace.npz", root / "bad.npz"
        data = arrays(good)
        meta = json.loads(str(data["meta"]))
        if kind == "truncated":
            bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
            return
        if kind == "meta-not-json":
            data["meta"] = np.array("{not json")
        elif kind == "wrong-format":
            data["meta"] = np.array(json.dumps({**meta, "format": "something\x1b[2J"}))
        elif kind == "short-symbols":
            data["meta"] = np.array(json.dumps({**meta, "symbols": meta["symbols"][:-40]}))
        elif kind == "mismatched":
            data["c"] = data["c"][:, :-5]
        elif kind == "top-ids":
            data["top_ids"] = data["top_ids"].astype(np.int64) + 10_000
        elif kind == "quantities":
            data["meta"] = np.array(json.dumps({**meta, "quantities": ["h", "z"]}))
            data["z"] = data["h"]
        elif kind == "nan":
            data["h"] = data["h"].copy()
            data["h"][0, 3, 2] = np.nan
        elif kind == "nested":
            data["meta"] = np.array('{"format": "charlstm-trace", "x": ' + nested(3000) + "}")
        elif kind == "object":
            obj = np.empty(1, dtype=object)
            obj[0] = [1]
            data["loss"] = obj
        elif kind == "surrogate":
            data["meta"] = np.array(json.dumps({**meta, "symbols": ["\udc80"] + meta["symbols"][1:]}))
        elif kind == "bomb":
            save(bad, data)
            with zipfile.ZipFile(bad, "a", zipfile.ZIP_DEFLATED) as z:
                with z.open("extra.npy", "w", force_zip64=True) as f:
                    block = bytes(1 << 24)
                    for _ in range(20):          # 320 MiB of zeros, a few hundred kB compressed
                        f.write(block)
            return
        else:
            raise AssertionError(kind)
        save(bad, data)
    return setup


def metrics(content: bytes | str):
    def setup(root: Path):
        path = root / "run" / "metrics.jsonl"
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return setup


GOOD_RECORD = {"step": 1, "epoch": 0.01, "elapsed_s": 0.1, "train_loss": 3.0, "val_nats": 3.1, "val_bpc": 4.4,
               "chars_per_s": 100.0, "lr": 0.003, "sample": "abc"}


def record(**changes) -> str:
    return json.dumps({**GOOD_RECORD, **changes}) + "\n"


def fifo_fed_forever(name: str):
    def setup(root: Path):
        path = root / name
        os.mkfifo(path)
        stop = threading.Event()

        def feed():
            try:
                with open(path, "wb") as f:
                    block = b"the same line again\n" * 3000
                    while not stop.is_set():
                        f.write(block)
            except OSError:
                pass

        thread = threading.Thread(target=feed, daemon=True)
        thread.start()

        def cleanup():
            stop.set()
            try:                      # unblock a writer still waiting for a reader
                fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
                os.close(fd)
            except OSError:
                pass
            thread.join(5)
        return cleanup
    return setup


def write(name: str, data: bytes | str):
    def setup(root: Path):
        (root / name).write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return setup


def link(name: str, target: str):
    def setup(root: Path):
        path = root / name
        if path.exists():
            path.unlink()
        path.symlink_to(target)
    return setup


def gzip_bomb(name: str, size: int):
    def setup(root: Path):
        import zlib
        packer = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        block = bytes(1 << 24)
        with open(root / name, "wb") as f:
            for _ in range(size // len(block)):
                f.write(packer.compress(block))
            f.write(packer.flush())
    return setup


def fifo_in_tree(root: Path):
    os.mkfifo(root / "src" / "pipe.py")      # no one ever writes to it: reading it would wait forever


def users_corpus_txt(root: Path):
    (root / "d").mkdir()
    (root / "d" / "corpus.txt").write_text("mine\n")


def hard_link(name: str, target: str):
    def setup(root: Path):
        os.link(root / target, root / name)
    return setup


def fake_data_dir(root: Path):
    (root / "dd").mkdir()
    (root / "dd" / "manifest.json").write_text("{}")
    (root / "dd" / "more.txt").write_text(TEXT)


def tweets_file(root: Path):
    (root / "t.jsonl").write_text(json.dumps({"text": "a tweet of mine"}) + "\n")


def locked_run_dir(root: Path):
    from charlstm.training.rundir import RunDir
    (root / "d").mkdir()          # the holder's, so that its release leaves it
    holder = RunDir(root / "d").__enter__()
    return lambda: holder.__exit__()


def big_text(name: str, megabytes: float):
    def setup(root: Path):
        (root / name).write_text(TEXT * int(megabytes * 1e6 / len(TEXT)))
    return setup


def torch_missing(root: Path):
    """PyTorch as if not installed: its import fails, as in an environment without it."""
    saved = sys.modules.get("torch", None)
    sys.modules["torch"] = None
    return lambda: sys.modules.__setitem__("torch", saved) if saved is not None else sys.modules.pop("torch", None)


def run_on_file(root: Path):
    """A run trained on the file c.txt (its path recorded), for eval --held-out to find."""
    charlstm.train(root / "c.txt", out_dir=root / "r2", hidden_size=8, num_layers=1, batch_size=2, seq_length=8,
                   max_steps=1, sample_length=0, progress=False, recipe=False)


def long_name(root: Path):
    (root / ("d" * 240)).mkdir()


LONG = "d" * 240 + "/" + "f" * 240 + ".txt"
HUGE = "9" * 4000


# --- the cases ------------------------------------------------------------------------------------

TRAIN = ["train", "c.txt", "--out", "o", *SMALL, "--max-steps", "1"]
BOM = {"utf16le": "hello world\n".encode("utf-16"), "utf16be": b"\xfe\xff" + "hello\n".encode("utf-16-be"),
       "utf32le": "hello world\n".encode("utf-32"), "utf32be": b"\x00\x00\xfe\xff" + "hello\n".encode("utf-32-be")}

CASES: dict[str, Case] = {
    # odd files: devices, FIFOs, encodings
    # A device or a FIFO is refused before it is opened (a FIFO no one writes to would block the
    # open, /dev/zero never ends); a stream goes in through standard input to `corpus encode`.
    **{f"{command} {name}": Case([*args, path, *rest], (path, "not a regular file", "corpus encode -"),
                                 setup=fifo_fed_forever("fifo.txt") if "FIFO" in name else None)
       for command, args, rest in (("train", ["train"], ["--out", "o", *SMALL]), ("eval", ["eval", "model.npz"], []),
                                   ("trace", ["trace", "model.npz"], ["-o", "t.npz"]))
       for name, path in (("/dev/zero", "/dev/zero"), ("a FIFO fed forever", "fifo.txt"))},
    "train a FIFO no one writes to": Case(["train", "quiet.fifo", "--out", "o", *SMALL],
                                          ("quiet.fifo", "not a regular file"), setup=lambda root: os.mkfifo(root / "quiet.fifo")),
    "train empty": Case(["train", "empty.txt", "--out", "o", *SMALL], ("empty.txt", "empty")),
    "train whitespace": Case(["train", "w.txt", "--out", "o", *SMALL], ("w.txt", "empty"), setup=write("w.txt", " \n\t\r\n")),
    **{f"train {name}": Case(["train", f"{name}.txt", "--out", "o", *SMALL],
                             (f"{name}.txt", "UTF-" + name[3:5], "byte-order mark"),
                             setup=write(f"{name}.txt", data),
                             absent=("UTF-16",) if name.startswith("utf32") else ())
       for name, data in BOM.items()},
    "corpus tweets /dev/zero": Case(["corpus", "tweets", "/dev/zero", "-o", "t.txt"],
                                    ("/dev/zero", "536,870,912-byte limit")),
    "corpus tweets a gzip bomb": Case(["corpus", "tweets", "bomb.json.gz", "-o", "t.txt"],
                                      ("bomb.json.gz", "unpacks to more than"), setup=gzip_bomb("bomb.json.gz", 544 << 20)),
    "corpus code with a FIFO in the tree": Case(["corpus", "code", "src", "-o", "code.txt"], ("unreadable 1",), exit=0,
                                                setup=fifo_in_tree, outputs=("code.txt",)),
    "train NUL": Case(["train", "nul.txt", "--out", "o", *SMALL], ("nul.txt", "NUL", "byte offset 3"),
                      setup=write("nul.txt", b"abc\x00def\n" * 50)),
    "train latin-1": Case(["train", "latin1.txt", "--out", "o", *SMALL],
                          ("latin1.txt", "not valid UTF-8", "byte offset 3", "--encoding-errors replace")),
    "train a directory": Case(["train", "src", "--out", "o", *SMALL], ("src", "directory")),
    "train missing": Case(["train", "nowhere.txt", "--out", "o", *SMALL], ("nowhere.txt", "no such file")),
    "train too short": Case(["train", "s.txt", "--out", "o", "--quiet"], ("fewer than one batch",),
                            setup=write("s.txt", "abc " * 20)),
    **{f"{command} latin-1 suggests replace": Case(args, ("latin1.txt", "--encoding-errors replace"))
       for command, args in {
           "eval": ["eval", "model.npz", "latin1.txt"],
           "trace": ["trace", "model.npz", "latin1.txt", "-o", "t.npz"],
           "neurons": ["neurons", "model.npz", "latin1.txt", "--feature", "line-position"],
           "viz": ["viz", "model.npz", "latin1.txt", "-o", "v.html"],
           "report": ["report", "run", "-o", "r.html", "--corpus", "latin1.txt"],
           "novelty": ["novelty", "model.npz", "latin1.txt", "--n-samples", "2", "--length", "20"]}.items()},
    **{f"{command} latin-1 with replace": Case([a.replace("model.npz", "unk.npz") for a in args] +
                                               ["--encoding-errors", "replace"], exit=0, lines=lines, outputs=outputs)
       for command, args, lines, outputs in (
           ("eval", ["eval", "model.npz", "latin1.txt"], 0, ()),
           ("trace", ["trace", "model.npz", "latin1.txt", "-o", "t.npz"], 1, ("t.npz",)),
           ("neurons", ["neurons", "model.npz", "latin1.txt", "--feature", "line-position"], 0, ()),
           ("viz", ["viz", "model.npz", "latin1.txt", "-o", "v.html"], 1, ("v.html",)),
           ("report", ["report", "run", "-o", "r.html", "--corpus", "latin1.txt"], 2, ("r.html",)),   # a warning: not the run's corpus
           ("novelty", ["novelty", "model.npz", "latin1.txt", "--n-samples", "2", "--length", "20"], 0, ()))},
    "neurons: a text file named .npz": Case(["neurons", "model.npz", "notes.npz", "--feature", "indent"],
                                            ("notes.npz", "not a charlstm trace"), absent=("allow_pickle",)),
    "sample: a text file named .npz": Case(["sample", "notes.npz"], ("notes.npz", "not a charlstm checkpoint"),
                                           absent=("allow_pickle",)),
    "eval an empty file": Case(["eval", "model.npz", "empty.txt"], ("empty.txt", "at least two")),
    "trace an empty file": Case(["trace", "model.npz", "empty.txt", "-o", "t.npz"], ("empty.txt", "empty")),
    "eval a symbol the vocabulary lacks": Case(["eval", "model.npz", "other.txt"],
                                               ("other.txt", "'\u00fc'", "not in the model's vocabulary", "model.npz")),
    "sample a prime the vocabulary lacks": Case(["sample", "model.npz", "--prime", "a\\tb"],
                                                ("--prime:", "'\\t'", "(U+0009)"), absent=("\\\\",)),
    "sample a bad escape in --stop": Case(["sample", "model.npz", "--stop", "\\x4"], ("--stop '\\x4'", "escape"),
                                          absent=("\\\\",)),

    # absurd numbers
    **{f"{name} --seed -1": Case(args + ["--seed", "-1"], ("--seed", ">= 0"))
       for name, args in {"train": TRAIN, "sample": ["sample", "model.npz", "--length", "5"],
                          "novelty": ["novelty", "model.npz", "c.txt", "--n-samples", "1", "--length", "20"],
                          "check": ["check", "counting", "model.npz"],
                          "corpus synth": ["corpus", "synth", "counting", "-o", "s.txt"]}.items()},
    **{f"train {option} {value}": Case([*TRAIN, option, value], (option,))
       for option, value in (("--epochs", "inf"), ("--epochs", "nan"), ("--epochs", "0"), ("--epochs", "-1"),
                             ("--max-time", "inf"), ("--max-time", "0"), ("--lr-decay", "-1"), ("--lr-decay", "nan"),
                             ("--warmup-steps", "-1"), ("--lr-decay-every", "0"), ("--lr", "inf"),
                             ("--grad-clip", "nan"), ("--lr-floor", "2"), ("--min-count", "1000000"),
                             ("--val-symbols", "-1"), ("--val-symbols", "1"), ("--val-fraction", "nan"))},
    # the engine: a device for the NumPy engine, an empty or unknown one, a GPU that is not there
    "train --device with the NumPy engine": Case([*TRAIN, "--device", "cpu"], ("--device", "NumPy engine")),
    "train --device ''": Case([*TRAIN, "--engine", "torch", "--device", ""], ("--device", "empty")),
    **({"train --engine torch --device tpu": Case([*TRAIN, "--engine", "torch", "--device", "tpu"],
                                                  ("--device", "not a device")),
        "train --engine torch --device cuda:99": Case([*TRAIN, "--engine", "torch", "--device", "cuda:99"],
                                                      ("--device cuda:99",))}
       if importlib.util.find_spec("torch") is not None else {}),
    # labels: labelled corpora, classifiers, taggers and a generator conditioned on labels
    "classify train /dev/zero": Case(["classify", "train", "/dev/zero", "--out", "o"], ("/dev/zero", "not a regular file")),
    "classify train a FIFO fed forever": Case(["classify", "train", "fifo.tsv", "--out", "o"],
                                              ("fifo.tsv", "not a regular file"), setup=fifo_fed_forever("fifo.tsv")),
    "classify train a row without a label": Case(["classify", "train", "nolabel.tsv", "--out", "o"],
                                                 ("nolabel.tsv:2", "label is empty"),
                                                 setup=write("nolabel.tsv", "a\tfine\n\tno label\n")),
    "classify train one label": Case(["classify", "train", "one.tsv", "--out", "o"], ("at least 2 labels",),
                                     setup=write("one.tsv", "a\tx\na\ty\n")),
    "classify train --max-length 0": Case(["classify", "train", "two.tsv", "--out", "o", "--max-length", "0"],
                                          ("--max-length", "at least 1"), setup=write("two.tsv", "a\tx\nb\ty\n")),
    "classify eval a character model": Case(["classify", "eval", "model.npz", "two.tsv"],
                                            ("model.npz", "character model", "without labels"),
                                            setup=write("two.tsv", "a\tx\nb\ty\n")),
    "tag train /dev/zero": Case(["tag", "train", "/dev/zero", "--out", "t"], ("no Python file", "/dev/zero")),
    "corpus tweet-sources /dev/zero": Case(["corpus", "tweet-sources", "/dev/zero", "-o", "s.tsv"],
                                           ("/dev/zero", "536,870,912-byte limit")),
    "corpus languages --root missing": Case(["corpus", "languages", "--root", "missing", "-o", "l.tsv"],
                                            ("missing", "no such folder")),
    "train --labels --embedding-size 0": Case(["train", "two.tsv", "--labels", "--out", "o", "--embedding-size", "0",
                                               *SMALL[:4], "--max-steps", "1"], ("embedding size above 0",),
                                              setup=write("two.tsv", "a\tx\nb\ty\n")),
    "sample --label of a model without labels": Case(["sample", "model.npz", "--label", "x"],
                                                     ("--label", "not conditioned on labels")),
    "train --lr 1e300": Case(["train", "c.txt", "--out", "o", *SMALL, "--max-steps", "5", "--eval-every", "1",
                              "--lr", "1e300"], ("diverged at step 1", "non-finite", "no checkpoint had been written")),
    "train a batch bigger than the corpus": Case([*TRAIN, "--batch-size", "1000"], ("fewer than one batch",)),
    "train --batch-size 10**30": Case([*TRAIN, "--batch-size", str(10 ** 30)], ("--batch-size", "of memory")),
    "train --hidden 10**12": Case([*TRAIN, "--hidden", str(10 ** 12)], ("--hidden 1,000,000,000,000 would need", "of memory")),
    "viz --max-values -5": Case(["viz", "model.npz", "c.txt", "-o", "v.html", "--max-values", "-5"],
                                ("--max-values", "at least 1")),
    "sample --num-samples 10**11": Case(["sample", "model.npz", "--num-samples", str(10 ** 11)],
                                        ("number of samples", "100,000")),
    "sample --beam 10**9": Case(["sample", "model.npz", "--beam", str(10 ** 9)], ("beam width", "10,000")),
    **{f"sample {option} {value}": Case(["sample", "model.npz", option, value], needles)
       for option, value, needles in (("--top-k", "0", ("top-k",)), ("--top-p", "2", ("top-p",)),
                                      ("--temperature", "-1", ("temperature",)), ("--length", "0", ("length",)),
                                      ("--temperature", "nan", ("temperature",)))},
    "sample --beam 2 --length-penalty nan": Case(["sample", "model.npz", "--beam", "2", "--length-penalty", "nan"],
                                                 ("--length-penalty", ">= 0")),
    "sample at a temperature that underflows": Case(["sample", "model.npz", "--temperature", "1e-320",
                                                     "--length", "5"], exit=0, lines=0),
    "corpus synth --max-n 10**15": Case(["corpus", "synth", "counting", "-o", "s.txt", "--max-n", str(10 ** 15)],
                                        ("max-n",)),
    "corpus synth --n-lines 10**12": Case(["corpus", "synth", "counting", "-o", "s.txt", "--n-lines",
                                           str(10 ** 12)], ("lines",)),
    "check --context 10**11": Case(["check", "counting", "count.npz", "--context", str(10 ** 11), "--n", "1"],
                                   ("lines",)),
    "check --n 0": Case(["check", "counting", "count.npz", "--n", "0"], ("--n",)),
    "check --context -1": Case(["check", "counting", "count.npz", "--context", "-1"], ("--context",)),
    "neurons --top 0": Case(["neurons", "model.npz", "c.txt", "--feature", "indent", "--top", "0"], ("top",)),
    "neurons --layer 99": Case(["neurons", "model.npz", "c.txt", "--feature", "line-position", "--layer", "99"],
                               ("layer",)),
    "viz --unit 10**9": Case(["viz", "model.npz", "c.txt", "-o", "v.html", "--unit", str(10 ** 9)], ("unit",)),
    "trace --chunk 0": Case(["trace", "model.npz", "c.txt", "-o", "t.npz", "--chunk", "0"], ("chunk",)),
    "trace --max-symbols 0": Case(["trace", "model.npz", "c.txt", "-o", "t.npz", "--max-symbols", "0"],
                                  ("max-symbols",)),
    "--threads 0": Case(["--threads", "0", "sample", "model.npz"], ("--threads",)),
    "corpus code --max-bytes -1": Case(["corpus", "code", "src", "-o", "code.txt", "--max-bytes", "-1"],
                                       ("max_bytes",)),

    # damaged and hostile checkpoints
    "checkpoint meta nested 5000 deep": Case(["sample", "bad.npz"], ("bad.npz", "nested too deeply"),
                                             setup=hostile_checkpoint("nested")),
    "checkpoint vocabulary nested": Case(["sample", "bad.npz"], ("bad.npz",), setup=hostile_checkpoint("deep-vocab")),
    "checkpoint symbol a lone surrogate": Case(["sample", "bad.npz"], ("bad.npz", "surrogate"),
                                               setup=hostile_checkpoint("surrogate")),
    "export a checkpoint with a lone surrogate": Case(["export", "bad.npz", "-o", "m.onnx"], ("bad.npz", "surrogate"),
                                                      setup=hostile_checkpoint("surrogate")),
    "checkpoint symbol an escape sequence": Case(["sample", "bad.npz"], ("bad.npz", "control characters"),
                                                 setup=hostile_checkpoint("escape-cluster")),
    "checkpoint member named with escapes": Case(["sample", "bad.npz"], ("bad.npz", "peephole parameters"),
                                                 setup=hostile_checkpoint("member-name")),
    "checkpoint of only the unknown symbol": Case(["sample", "bad.npz"], ("only the unknown symbol",),
                                                  setup=hostile_checkpoint("only-unk")),
    "checkpoint truncated": Case(["sample", "bad.npz"], ("bad.npz", "truncated"), setup=hostile_checkpoint("truncated")),
    "checkpoint with an object array": Case(["eval", "bad.npz", "c.txt"], ("bad.npz", "Python objects"),
                                            setup=hostile_checkpoint("object")),
    "resume NaN Adam moments": Case(["train", "c.txt", "--out", "o", "--resume", "bad.npz"],
                                    ("bad.npz", "adam.m.head.W", "damaged"), absent=("--lr",),
                                    setup=damaged_training_state("", array="adam.m.head.W")),
    "resume step as text": Case(["train", "c.txt", "--out", "o", "--resume", "bad.npz"], ("bad.npz", "'step'"),
                                setup=damaged_training_state("progress.step", "2")),
    "resume lr_scale as text": Case(["train", "c.txt", "--out", "o", "--resume", "bad.npz"], ("'lr_scale'",),
                                    setup=damaged_training_state("progress.lr_scale", "x")),
    "resume best_val as a list": Case(["train", "c.txt", "--out", "o", "--resume", "bad.npz"], ("'best_val'",),
                                      setup=damaged_training_state("progress.best_val", [1])),
    "resume a random state of another generator": Case(["train", "c.txt", "--out", "o", "--resume", "bad.npz"],
                                                       ("'bit_generator'",),
                                                       setup=damaged_training_state("rng.bit_generator", "MT19937")),
    "resume a batch size of text": Case(["train", "c.txt", "--out", "o", "--resume", "bad.npz"], ("'batch_size'",),
                                        setup=damaged_training_state("config.batch_size", "2")),
    "resume with --lr": Case(["train", "c.txt", "--out", "run", "--resume", "run/latest.npz", "--lr", "0.1"],
                             ("--lr", "come from the checkpoint")),
    "resume another corpus": Case(["train", "other.txt", "--out", "run", "--resume", "run/latest.npz"],
                                  ("other.txt", "is not the corpus", "--init-from")),

    # damaged traces, for both commands that read them
    **{f"{command} trace {kind}": Case(args, ("bad.npz",) + needles, setup=hostile_trace(kind), absent=("\x1b",))
       for command, args in {"neurons": ["neurons", "model.npz", "bad.npz", "--feature", "line-position"],
                             "viz": ["viz", "model.npz", "bad.npz", "-o", "v.html"]}.items()
       for kind, needles in (("truncated", ("truncated",)), ("meta-not-json", ("not valid JSON",)),
                             ("wrong-format", ("not a charlstm trace",)), ("short-symbols", ("260 symbols",)),
                             ("mismatched", ("c has shape",)), ("top-ids", ("top_ids",)),
                             ("quantities", ("quantities",)), ("nan", ("NaN",)), ("nested", ("nested",)),
                             ("object", ("Python objects",)), ("surrogate", ("surrogate",)),
                             ("bomb", ("refusing to unpack",)))},

    # damaged metrics, for report
    "report metrics of binary garbage": Case(["report", "run", "-o", "r.html"], ("metrics.jsonl", "line 1"),
                                             setup=metrics(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe garbage")),
    "report step as text": Case(["report", "run", "-o", "r.html"], ("line 2", "'step'"),
                                setup=metrics(record() + record(step="2"))),
    "report train_loss as text": Case(["report", "run", "-o", "r.html"], ("'train_loss'",),
                                      setup=metrics(record(train_loss="low"))),
    "report sample as a list": Case(["report", "run", "-o", "r.html"], ("'sample'",),
                                    setup=metrics(record(sample=["a"]))),
    "report sample with a lone surrogate": Case(["report", "run", "-o", "r.html"], ("surrogate",),
                                                setup=metrics(record().replace('"abc"', '"a\\udc80"'))),
    "report lr NaN": Case(["report", "run", "-o", "r.html"], ("'lr'",), setup=metrics(record().replace("0.003", "NaN"))),
    "report metrics nested": Case(["report", "run", "-o", "r.html"], ("nested",),
                                  setup=metrics('{"step": 1, "train_loss": 1, "x": ' + nested(4000) + "}\n")),
    "report metrics /dev/zero": Case(["report", "run", "-o", "r.html"], ("268,435,456-byte limit",),
                                     setup=link("run/metrics.jsonl", "/dev/zero")),
    "report empty metrics": Case(["report", "run", "-o", "r.html"], ("no evaluation",), setup=metrics("")),
    "report on a file": Case(["report", "c.txt", "-o", "r.html"], ("not a directory",)),

    # files the user has
    "train --out DIR with the user's corpus.txt, a bad option": Case(["train", "--out", "d", *SMALL, "--epochs", "0"],
                                                                    ("--epochs",), setup=users_corpus_txt),
    "train --out DIR with the user's corpus.txt": Case(["train", "--out", "d", *SMALL, "--max-steps", "1"],
                                                      ("d/corpus.txt", "not the built-in corpus"),
                                                      setup=users_corpus_txt),
    "train --out DIR held by another run": Case(["train", "--out", "d", *SMALL, "--max-steps", "1"],
                                               ("another charlstm run",), setup=locked_run_dir),
    "trace over a file, refused": Case(["trace", "model.npz", "c.txt", "-o", "run/latest.npz", "--top", "0"],
                                       ("top",)),

    # an output that names one of the same command's inputs (by name, a hard link, a symlink)
    **{f"{name}: the output is an input": Case(args, (target, "input of this command", "another output"))
       for name, args, target in (
           ("trace -o CHECKPOINT", ["trace", "model.npz", "c.txt", "-o", "model.npz"], "model.npz"),
           ("trace -o FILE", ["trace", "model.npz", "c.txt", "-o", "c.txt"], "c.txt"),
           ("viz -o CHECKPOINT", ["viz", "model.npz", "c.txt", "-o", "model.npz"], "model.npz"),
           ("viz -o the trace", ["viz", "model.npz", "trace.npz", "-o", "trace.npz"], "trace.npz"),
           ("report -o metrics.jsonl", ["report", "run", "-o", "run/metrics.jsonl"], "run/metrics.jsonl"),
           ("report -o best.npz", ["report", "run", "-o", "run/best.npz"], "run/best.npz"),
           ("report -o --corpus", ["report", "run", "--corpus", "c.txt", "-o", "c.txt"], "c.txt"),
           ("export -o CHECKPOINT", ["export", "model.npz", "-o", "model.npz", "--format", "html"], "model.npz"),
           ("export -o --eval-text", ["export", "model.npz", "-o", "c.txt", "--format", "html", "--precision",
                                      "int8", "--eval-text", "c.txt"], "c.txt"),
           ("import -o MODEL.pt", ["import", "model.npz", "-o", "model.npz"], "model.npz"),
           )},
    "trace -o a hard link to CHECKPOINT": Case(["trace", "model.npz", "c.txt", "-o", "twin.npz"],
                                               ("twin.npz", "the same file as model.npz"),
                                               setup=hard_link("twin.npz", "model.npz")),
    "export -o a hard link to CHECKPOINT": Case(["export", "model.npz", "-o", "twin.onnx"],
                                                ("twin.onnx", "the same file as model.npz"),
                                                setup=hard_link("twin.onnx", "model.npz")),
    "viz FILE a symlink to -o": Case(["viz", "model.npz", "alias.txt", "-o", "c.txt"],
                                     ("c.txt", "the same file as alias.txt"), setup=link("alias.txt", "c.txt")),
    "corpus code -o a file of the tree": Case(["corpus", "code", "src", "-o", "src/a.py"], ("src/a.py", "lies inside src")),
    "corpus encode: an input inside the -o it replaces": Case(["corpus", "encode", "dd/more.txt", "-o", "dd",
                                                               "--force"], ("dd", "holds dd/more.txt"),
                                                              setup=fake_data_dir),
    "train a run file as the corpus, starting over": Case(["train", "run/metrics.jsonl", "--out", "run", *SMALL,
                                                           "--start-over"], ("run/metrics.jsonl", "input")),
    "corpus tweets -o FILE: the output is an input": Case(["corpus", "tweets", "t.jsonl", "-o", "t.jsonl"],
                                                          ("t.jsonl", "input of this command"), setup=tweets_file),

    # an output with no file name, for every command that writes a file
    **{f"{' '.join(args[:2])} -o {target!r}": Case([*args, "-o", target], (target, "no name to write"))
       for args in (["trace", "model.npz", "c.txt"], ["viz", "model.npz", "c.txt"], ["report", "run"],
                    ["export", "model.npz", "--format", "html"], ["import", "model.npz"],
                    ["corpus", "code", "src"], ["corpus", "tweets", "c.txt"], ["corpus", "synth", "counting"])
       for target in (".", "/")},
    "corpus encode -o .": Case(["corpus", "encode", "c.txt", "-o", "."], ("no name to write", "directory name")),
    **{f"{' '.join(args[:2])} -o a directory": Case([*args, "-o", "src"], ("src", "is a directory", "src/NAME"))
       for args in (["trace", "model.npz", "c.txt"], ["export", "model.npz", "--format", "onnx"],
                    ["import", "model.npz"], ["corpus", "synth", "counting"])},

    # an empty value is refused, never read as '.'
    **{f"{name} ''": Case(args, (option, "empty"))
       for name, args, option in (
           ("train --out", ["train", "c.txt", "--out", "", *SMALL], "--out"),
           ("train CORPUS", ["train", "", "--out", "o", *SMALL], "CORPUS"),
           ("trace -o", ["trace", "model.npz", "c.txt", "-o", ""], "--output"),
           ("viz FILE", ["viz", "model.npz", "", "-o", "v.html"], "FILE"),
           ("report RUN_DIR", ["report", "", "-o", "r.html"], "RUN_DIR"),
           ("export --eval-text", ["export", "model.npz", "-o", "p.html", "--precision", "int8", "--eval-text", ""],
            "--eval-text"),
           ("corpus encode INPUT", ["corpus", "encode", "", "-o", "enc"], "INPUT"),
           ("corpus synth -o", ["corpus", "synth", "counting", "-o", ""], "--output"),
           ("eval FILE", ["eval", "model.npz", ""], "FILE"))},
    # an option that would have no effect is refused, never dropped in silence
    "export --eval-text at float32": Case(["export", "model.npz", "-o", "p.html", "--eval-text", "c.txt"],
                                          ("--eval-text", "float32")),
    "export --title to torch": Case(["export", "model.npz", "-o", "m.onnx", "--title", "mine"],
                                    ("--title", "--format onnx")),
    "sample --length-penalty without --beam": Case(["sample", "model.npz", "--length-penalty", "2"],
                                                   ("--length-penalty", "--beam")),

    # a command that fails after reading one more input writes nothing
    "export --eval-text missing: no page": Case(["export", "model.npz", "-o", "p.html", "--precision", "int8",
                                                 "--eval-text", "nowhere.txt"], ("nowhere.txt", "no such file")),
    "export --eval-text latin-1: no page": Case(["export", "model.npz", "-o", "p.html", "--precision", "float16",
                                                 "--eval-text", "latin1.txt"], ("latin1.txt", "UTF-8")),
    "export --eval-text with unknown symbols: no page": Case(["export", "model.npz", "-o", "p.html", "--precision",
                                                              "int8", "--eval-text", "other.txt"], ("other.txt",)),

    # two runs in one directory
    "train a new run into a used --out": Case(["train", "c.txt", "--out", "run", *SMALL, "--max-steps", "1"],
                                              ("run: holds another run", "--resume run/latest.npz", "--start-over")),
    "train --init-from into a used --out": Case(["train", "c.txt", "--out", "run", "--init-from", "model.npz",
                                                 "--max-steps", "1", "--quiet"], ("holds another run",)),
    "train the default corpus into a used --out": Case(["train", "--out", "run", *SMALL, "--max-steps", "1"],
                                                       ("holds another run",)),
    "train --resume another run's checkpoint into a used --out": Case(
        ["train", "c.txt", "--out", "run", "--resume", "model.npz"], ("holds another run", "not the one of model.npz")),
    "train --resume with --start-over": Case(["train", "c.txt", "--out", "run", "--resume", "run/latest.npz",
                                              "--start-over"], ("--resume", "--start-over", "not both")),
    "train --start-over moves the earlier run aside": Case(
        ["train", "c.txt", "--out", "run", *SMALL, "--max-steps", "1", "--start-over"],
        ("moved the earlier run's latest.npz, best.npz, metrics.jsonl into run/previous-1",), exit=0, lines=2,
        outputs=("run/previous-1", "run/previous-1/latest.npz", "run/previous-1/best.npz",
                 "run/previous-1/metrics.jsonl", "run/latest.npz", "run/best.npz", "run/metrics.jsonl")),

    # sizes: every size is checked against the memory it would take, before it is allocated,
    # and the line names the option to lower
    **{f"train {option} {value}": Case([*TRAIN, option, value], (f"{option} ", "of memory", f"a smaller {option}"))
       for option, value in (("--layers", str(10 ** 6)), ("--layers", str(10 ** 9)), ("--embedding-size", str(10 ** 9)),
                             ("--seq-length", str(10 ** 9)), ("--sample-length", str(10 ** 12)),
                             ("--hidden", str(10 ** 5)))},
    "sample --length 10**12 --num-samples 2": Case(["sample", "model.npz", "--length", str(10 ** 12), "--num-samples",
                                                    "2"], ("--length 1,000,000,000,000", "of memory")),
    "sample --beam 4 --length 10**12": Case(["sample", "model.npz", "--beam", "4", "--length", str(10 ** 12)],
                                            ("--length", "of memory", "beam search")),
    "novelty --length 10**12": Case(["novelty", "model.npz", "c.txt", "--n-samples", "1", "--length", str(10 ** 12)],
                                    ("--length", "of memory")),
    "novelty --n-samples 100000 --length 1000": Case(["novelty", "model.npz", "c.txt", "--n-samples", "100000",
                                                      "--length", "1000"], ("--n-samples", "of memory")),

    # messages: one line, bounded, the real cause
    "train --hidden of 4,000 digits": Case([*TRAIN, "--hidden", HUGE], ("--hidden", "4,000 digits", "of memory")),
    "train --seq-length of 4,000 digits": Case([*TRAIN, "--seq-length", HUGE], ("--seq-length", "4,000 digits")),
    "train --hidden: not a number of 4,000 characters": Case([*TRAIN, "--hidden", "x" + HUGE],
                                                             ("--hidden", "not a valid integer", "…"), exit=2),
    "corpus synth --n-lines of 4,000 digits": Case(["corpus", "synth", "counting", "-o", "s.txt", "--n-lines", HUGE],
                                                  ("lines",)),
    "train a corpus whose name holds a line break": Case(["train", "a\nb.txt", "--out", "o", *SMALL],
                                                         ("a\\nb.txt", "no such file")),
    "train a corpus whose name holds an escape sequence": Case(["train", "\x1b[2Jx.txt", "--out", "o", *SMALL],
                                                               ("\\x1b[2Jx.txt", "no such file")),
    "eval a file name of 400 characters": Case(["eval", "model.npz", LONG], ("no such file", "…"), setup=long_name),
    "import a missing file without PyTorch": Case(["import", "nowhere.pt", "-o", "m.npz"], ("nowhere.pt", "no such file"),
                                                  setup=torch_missing, absent=("PyTorch",)),

    # the wrong corpus: a warning, the figures still computed; eval --held-out reads the run's own
    "novelty against another corpus": Case(["novelty", "run/latest.npz", "s.txt", "--n-samples", "1", "--length", "20"],
                                           ("warning", "s.txt", "not the corpus run/latest.npz was trained on"),
                                           exit=0, setup=write("s.txt", TEXT[:2000])),
    "novelty against the run's own corpus": Case(["novelty", "run/latest.npz", "c.txt", "--n-samples", "1", "--length",
                                                  "20"], exit=0, lines=0),
    "report --corpus another corpus": Case(["report", "run", "-o", "r.html", "--corpus", "s.txt"],
                                           ("warning", "not the corpus", "the same size, other content"), exit=0, lines=2,
                                           setup=write("s.txt", TEXT.replace("fox", "cat")), outputs=("r.html",)),
    "report --corpus the run's own": Case(["report", "run", "-o", "r.html", "--corpus", "c.txt"], exit=0,
                                          outputs=("r.html",)),
    "eval the run's own corpus": Case(["eval", "run/latest.npz", "c.txt"], ("warning", "trained on", "--held-out"),
                                      exit=0),
    "eval --held-out FILE": Case(["eval", "run/latest.npz", "c.txt", "--held-out"], ("c.txt: the held-out",), exit=0),
    "eval --held-out finds the corpus the run recorded": Case(["eval", "r2/latest.npz", "--held-out"],
                                                              ("c.txt: the held-out",), exit=0, setup=run_on_file),
    "eval --held-out: the corpus not found": Case(["eval", "run/latest.npz", "--held-out"],
                                                  ("its corpus was not found", "FILE")),
    "eval --held-out another corpus": Case(["eval", "run/latest.npz", "s.txt", "--held-out"],
                                           ("s.txt", "not the corpus", "--held-out"), setup=write("s.txt", TEXT[:2000])),
    "eval --held-out a model without a run": Case(["eval", "model.npz", "c.txt", "--held-out"],
                                                  ("model.npz", "no training record")),
    "eval --held-out --encoding-errors": Case(["eval", "run/latest.npz", "c.txt", "--held-out", "--encoding-errors",
                                               "replace"], ("--encoding-errors", "as the run read it")),
    "eval without FILE": Case(["eval", "model.npz"], ("give a FILE", "--held-out")),

    # interrupts in every long phase: a process of their own
    "train SIGINT during the evaluation's sample": Case(
        ["train", "c.txt", "--out", "o", *SMALL[:-3], "--sample-length", str(10 ** 7), "--quiet", "--eval-every", "1",
         "--max-steps", "1000"], ("Interrupted at step 1", "Resume with"), exit=130, process="sigint-run",
        delay=3.0, outputs=("o", "o/latest.npz", "o/best.npz", "o/metrics.jsonl")),
    "train SIGTERM during validation over a large split": Case(
        ["train", "big.txt", "--out", "o", *SMALL, "--val-fraction", "0.9", "--val-symbols", "0", "--eval-every", "1",
         "--max-steps", "1000"], ("Interrupted at step 1",), exit=130, process="sigterm-run", delay=3.0,
        setup=big_text("big.txt", 10), outputs=("o", "o/latest.npz", "o/best.npz", "o/metrics.jsonl")),
    "eval SIGINT over a big file": Case(["eval", "model.npz", "big.txt", "--quiet"], ("charlstm: interrupted",),
                                        exit=130, process="sigint-after", delay=3.0, setup=big_text("big.txt", 50)),
    "eval SIGTERM over a big file": Case(["eval", "model.npz", "big.txt", "--quiet"], ("charlstm: interrupted",),
                                         exit=130, process="sigterm-after", delay=3.0, setup=big_text("big.txt", 50)),
    "trace SIGTERM: no partial trace": Case(["trace", "model.npz", "big.txt", "-o", "t.npz", "--max-symbols",
                                             str(10 ** 6), "--chunk", "1"], ("charlstm: interrupted",), exit=130,
                                            process="sigterm-after", delay=4.0, setup=big_text("big.txt", 2)),
    "novelty SIGINT while sampling": Case(["novelty", "model.npz", "c.txt", "--n-samples", "1", "--length",
                                           str(10 ** 7)], ("charlstm: interrupted",), exit=130, process="sigint-after",
                                          delay=4.0),
    "sample --beam SIGTERM": Case(["sample", "model.npz", "--beam", "2", "--length", str(10 ** 6)],
                                  ("charlstm: interrupted",), exit=130, process="sigterm-after", delay=4.0),
    "sample SIGTERM": Case(["sample", "model.npz", "--length", str(10 ** 9)], ("charlstm: interrupted",), exit=130,
                           process="sigterm-stdout"),

    # interrupts and standard streams: a process of their own
    "train SIGINT": Case(["train", "c.txt", "--out", "o", *SMALL, "--eval-every", "5", "--max-steps", "1000000"],
                         ("Interrupted at step", "Resume with: charlstm train"), exit=130, process="sigint", lines=2,
                         outputs=("o", "o/latest.npz", "o/best.npz", "o/metrics.jsonl")),
    "train SIGTERM": Case(["train", "c.txt", "--out", "o", *SMALL, "--eval-every", "5", "--max-steps", "1000000"],
                          ("Interrupted at step",), exit=130, process="sigterm", lines=2,
                          outputs=("o", "o/latest.npz", "o/best.npz", "o/metrics.jsonl")),
    "sample SIGINT": Case(["sample", "model.npz", "--length", str(10 ** 9)], ("charlstm: interrupted",), exit=130,
                          process="sigint-stdout"),
    "sample to a closed stdout": Case(["sample", "model.npz", "--length", "20"], ("standard output", "closed"),
                                      process="closed-stdout"),
    "eval to a closed stdout": Case(["eval", "model.npz", "c.txt"], ("standard output", "closed"),
                                    process="closed-stdout"),
    "neurons --json to a closed stdout": Case(["neurons", "model.npz", "c.txt", "--feature", "line-position",
                                               "--json"],
                                              ("standard output",), process="closed-stdout"),
    "sample to a full disk": Case(["sample", "model.npz", "--length", "20"], ("No space left",),
                                  process="full-stdout"),
    "--help to a full disk": Case(["train", "--help"], ("No space left",), process="full-stdout"),
    "sample into a pipe closed early": Case(["sample", "model.npz", "--length", "200000"], exit=0, lines=0,
                                            process="pipe"),
    "sample with stderr closed": Case(["sample", "model.npz", "--top-k", "0"], exit=1, lines=0,
                                      process="closed-stderr"),
    "sample to a latin-1 terminal": Case(["sample", "wide.npz", "--prime", "\u4e2d", "--length", "5"],
                                         ("encoding", "latin-1", "PYTHONIOENCODING"), process="latin-1"),
}


# --- running a case ---------------------------------------------------------------------------------

def _status(field_name: str) -> int:
    """A field of /proc/self/status in bytes (0 where there is none)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextlib.contextmanager
def memory_bound(extra: int):
    """Cap this process's address space at its present size + extra, and measure the peak RSS the
    block adds (VmHWM, reset first). Yields a function returning that peak."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _status("VmSize") + extra
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    try:
        with open("/proc/self/clear_refs", "w") as f:   # resets VmHWM to the present RSS
            f.write("5")
    except OSError:
        pass
    start = _status("VmRSS")
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield lambda: _status("VmHWM") - start
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


class TookTooLong(Exception):
    pass


@contextlib.contextmanager
def time_bound(seconds: int):
    """A case that blocks (a FIFO no one writes to) or runs on fails after `seconds`."""
    def expire(signum, frame):
        raise TookTooLong(f"the case ran past {seconds} s")
    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_in_process(root: Path, case: Case, monkeypatch):
    monkeypatch.setattr(corpora, "build_stdlib_corpus", lambda *a, **k: (TEXT, {"files_read": 1, "bytes": len(TEXT)}))
    monkeypatch.chdir(root)
    with memory_bound(MEMORY_BOUND) as peak, time_bound(CASE_SECONDS):
        result = CliRunner().invoke(cli.main, case.args)
        used = peak()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        import traceback
        raise AssertionError("a traceback:\n" + "".join(traceback.format_exception(result.exception)))
    return result.exit_code, result.stdout, result.stderr, used


CHILD = """
import atexit, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
def peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            open({peak!r}, 'w').write(line.split()[1])
atexit.register(peak)
from charlstm.cli import main
main(prog_name="charlstm")
"""


def run_in_child(root: Path, case: Case):
    peak_file = root.parent / f"peak-{os.getpid()}"
    command = [sys.executable, "-c", CHILD.format(limit=CHILD_ADDRESS_SPACE, peak=str(peak_file)), *case.args]
    env = dict(ENV)
    kind = case.process
    stdout, stderr, preexec = subprocess.PIPE, subprocess.PIPE, None
    if kind == "closed-stdout":
        stdout, preexec = subprocess.DEVNULL, lambda: os.close(1)
    elif kind == "closed-stderr":
        stderr, preexec = subprocess.DEVNULL, lambda: os.close(2)
    elif kind == "full-stdout":
        stdout = open("/dev/full", "wb")
    elif kind == "latin-1":
        env["PYTHONIOENCODING"] = "latin-1"
    proc = subprocess.Popen(command, cwd=root, stdout=stdout, stderr=stderr, env=env, preexec_fn=preexec)
    out = b""
    if kind in ("sigint", "sigterm"):
        deadline = time.monotonic() + 60
        while not (root / "o" / "metrics.jsonl").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT if kind == "sigint" else signal.SIGTERM)
    elif kind in ("sigint-stdout", "sigterm-stdout"):
        out = proc.stdout.read(100)
        proc.send_signal(signal.SIGINT if kind == "sigint-stdout" else signal.SIGTERM)
    elif kind in ("sigint-run", "sigterm-run", "sigint-after", "sigterm-after"):
        # the cue: a run holds its directory (its first evaluation starts at once); else the start
        deadline = time.monotonic() + 60
        while kind.endswith("-run") and not (root / "o" / ".lock").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.01)
        time.sleep(case.delay)
        assert proc.poll() is None, proc.communicate()[1]       # still in the long phase
        proc.send_signal(signal.SIGINT if kind.startswith("sigint") else signal.SIGTERM)
    elif kind == "pipe":
        out = proc.stdout.read(10)
        proc.stdout.close()
    try:
        rest, err = proc.communicate(timeout=60)
    except ValueError:               # stdout closed above
        proc.wait(60)
        rest, err = b"", proc.stderr.read()
    if stdout not in (subprocess.PIPE, subprocess.DEVNULL):
        stdout.close()
    err = (err or b"").decode("utf-8", "replace")
    used = int(peak_file.read_text()) * 1024 if peak_file.exists() else 0
    return proc.returncode, (out + (rest or b"")).decode("utf-8", "replace"), err, used


@pytest.mark.parametrize("name", list(CASES))
def test_hostile(name, world, tmp_path, monkeypatch):
    case = CASES[name]
    root = tmp_path / "case"
    shutil.copytree(world, root, symlinks=True)
    cleanup = case.setup(root) if case.setup else None
    before = snapshot(root)
    try:
        if case.process is None:
            code, out, err, used = run_in_process(root, case, monkeypatch)
        else:
            code, out, err, used = run_in_child(root, case)
    finally:
        if callable(cleanup):
            cleanup()
    # A run that started says first what the recipe chose (one line); the promise is about the rest.
    lines = [line for line in err.splitlines() if not line.startswith("recipe: ")]
    assert code == case.exit, f"exit {code}, expected {case.exit}\n{err}"
    assert "Traceback" not in err and "Traceback" not in out, err
    assert len(lines) == case.lines, f"{len(lines)} lines on stderr, expected {case.lines}:\n{err}"
    if case.exit == 1 and case.lines:
        assert lines[0].startswith("charlstm: error: ") and out == "", (lines, out)
    for needle in case.needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    for word in (*case.absent, "\x1b", "Warning"):
        assert word not in err, f"{word!r} in {err!r}"
    assert all(len(line) <= MAX_LINE for line in lines), f"a line of {max(map(len, lines))} characters"
    after = snapshot(root)
    for output in case.outputs:
        before.pop(output, None)
        after.pop(output, None)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"
    assert used < MEMORY_BOUND, f"peak memory {used / 2 ** 20:.0f} MiB"


def test_the_probe_is_large_enough():
    assert len(CASES) >= 80
    kinds = {"odd files": ["/dev/zero", "FIFO", "latin-1"], "options": ["--seed -1", "--epochs"],
             "checkpoints": ["checkpoint", "resume"], "traces": ["trace "], "metrics": ["report"],
             "interrupts": ["SIGINT", "SIGTERM"], "outputs": ["closed stdout", "full disk", "pipe"]}
    for kind, words in kinds.items():
        assert any(any(w in name for w in words) for name in CASES), kind


# --- the Python API keeps the same promises ---------------------------------------------------------
# Each case calls a public function with a wrong type or value, in this process: it must raise
# CharlstmError, one line naming the argument (the words expected), and change no file.

def _model(root: Path):
    return charlstm.load(root / "model.npz")


API_CASES: dict[str, tuple[Callable[[Path], object], tuple[str, ...]]] = {
    "Model.sample a list as length": (lambda r: _model(r).sample(["a"]), ("length", "whole number", "list")),
    "Model.sample a str as length": (lambda r: _model(r).sample("200"), ("length", "whole number", "str")),
    "Model.sample None as prime": (lambda r: _model(r).sample(10, prime=None), ("prime", "str", "None")),
    "Model.sample bytes as prime": (lambda r: _model(r).sample(10, prime=b"ab"), ("prime", "decode it first")),
    "Model.sample a float top_k": (lambda r: _model(r).sample(10, top_k=2.5), ("top_k", "whole number")),
    "Model.sample a negative length": (lambda r: _model(r).sample(-5), ("length", "at least 1", "-5")),
    "Model.sample top_p 2": (lambda r: _model(r).sample(10, top_p=2), ("top_p", "(0, 1]")),
    "Model.sample a str temperature": (lambda r: _model(r).sample(10, temperature="hot"), ("temperature", "number")),
    "Model.sample length 10**12": (lambda r: _model(r).sample(10 ** 12), ("length", "of memory")),
    "Model.generate top_p 2, before the first symbol": (lambda r: _model(r).generate(10, top_p=2), ("top_p",)),
    "Model.generate a list as stop": (lambda r: _model(r).generate(10, stop=["\n"]), ("stop", "str")),
    "Model.beam_search a str beam": (lambda r: _model(r).beam_search("3"), ("beam", "whole number")),
    "Model.beam_search length 10**12": (lambda r: _model(r).beam_search(4, length=10 ** 12), ("length", "of memory")),
    "Model.evaluate bytes": (lambda r: _model(r).evaluate(b"abc"), ("text", "str", "decode it first")),
    "Model.evaluate a list of lines": (lambda r: _model(r).evaluate(["a", "b"]), ("text", "join them first")),
    "Model.save an int as path": (lambda r: _model(r).save(3), ("path", "a path")),
    "Model.create a str as vocab": (lambda r: charlstm.Model.create("abc"), ("vocab", "build_vocab")),
    "Model.create a str hidden_size": (lambda r: charlstm.Model.create(build_vocab(TEXT), hidden_size="8"),
                                       ("hidden_size", "whole number")),
    "Model.create num_layers 10**9": (lambda r: charlstm.Model.create(build_vocab(TEXT), num_layers=10 ** 9),
                                      ("num_layers", "of memory")),
    "Model.create an unknown cell": (lambda r: charlstm.Model.create(build_vocab(TEXT), cell="lsmt"), ("cell", "lstm")),
    "load None": (lambda r: charlstm.load(None), ("path", "None")),
    "load bytes": (lambda r: charlstm.load(b"model.npz"), ("path", "bytes")),
    "evaluate an int as text": (lambda r: charlstm.evaluate(_model(r), text=5), ("text", "str")),
    "evaluate held_out of a Model": (lambda r: charlstm.evaluate(_model(r), held_out=True), ("model", "held_out")),
    "evaluate held_out 'yes'": (lambda r: charlstm.evaluate(r / "run/latest.npz", held_out="yes"), ("held_out", "True")),
    "train both text and corpus": (lambda r: charlstm.train(r / "c.txt", out_dir=r / "o", text=TEXT),
                                   ("text", "corpus", "not both")),
    "train a list as text": (lambda r: charlstm.train(text=TEXT.splitlines(), out_dir=r / "o"), ("text", "join them")),
    "train a str hidden_size": (lambda r: charlstm.train(text=TEXT, out_dir=r / "o", hidden_size="8"),
                                ("hidden_size", "whole number")),
    "train a str seq_length": (lambda r: charlstm.train(text=TEXT, out_dir=r / "o", seq_length="8"),
                               ("seq_length", "whole number")),
    "train an unknown option": (lambda r: charlstm.train(text=TEXT, out_dir=r / "o", batchsize=4),
                                ("batchsize", "not an argument")),
    "train num_layers 10**9": (lambda r: charlstm.train(text=TEXT, out_dir=r / "o", num_layers=10 ** 9, progress=False),
                               ("num_layers", "of memory")),
    "train a dict as config": (lambda r: charlstm.train(text=TEXT, out_dir=r / "o", config={"lr": 1}),
                               ("config", "TrainConfig")),
    "train None as out_dir": (lambda r: charlstm.train(text=TEXT, out_dir=None), ("out_dir", "None")),
    "train progress 'no'": (lambda r: charlstm.train(text=TEXT, out_dir=r / "o", progress="no"), ("progress", "True")),
    "trace bytes": (lambda r: charlstm.trace(_model(r), b"abc"), ("text", "decode it first")),
    "trace a str max_symbols": (lambda r: charlstm.trace(_model(r), TEXT, max_symbols="9"), ("max_symbols",)),
    "trace a path as model": (lambda r: charlstm.trace(str(r / "model.npz"), TEXT), ("model", "charlstm Model")),
}


@pytest.mark.parametrize("name", list(API_CASES))
def test_api_hostile(name, world, tmp_path, monkeypatch):
    call, needles = API_CASES[name]
    root = tmp_path / "case"
    shutil.copytree(world, root, symlinks=True)
    monkeypatch.chdir(root)
    before = snapshot(root)
    with memory_bound(MEMORY_BOUND) as peak, time_bound(CASE_SECONDS):
        with pytest.raises(charlstm.CharlstmError) as raised:
            result = call(root)
            if hasattr(result, "__next__"):
                next(result)           # a generator that checked nothing at the door fails here
        used = peak()
    message = str(raised.value)
    assert "\n" not in message and len(message) <= MAX_LINE, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert snapshot(root) == before
    assert used < MEMORY_BOUND, f"peak memory {used / 2 ** 20:.0f} MiB"
