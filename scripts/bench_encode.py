"""Corpora of any size: how fast `charlstm corpus encode` runs and how much memory it holds, and
how much memory `charlstm train DATA_DIR` holds on a large corpus against a small one.

    python scripts/bench_encode.py --size 1G --kind ascii
    python scripts/bench_encode.py --size 8G --kind ascii emoji --train --json bench_encode.json

Everything it needs it makes itself in --dir (default /tmp) and removes at the end: a generated
text of --size bytes per --kind (ascii: words, spaces and line breaks, like source code or prose;
emoji: the same with one word in twenty carrying an emoji, a skin tone, a flag, a ZWJ family, a
combining accent or typographic marks, so that grapheme clusters must be found everywhere), and
synced to disk before anything is timed (as a user's corpus is, long before it is encoded).

Each encoding runs `charlstm corpus encode FILE -o DIR` in a fresh process and reports
  MB/s      the input's bytes over the command's wall time (both passes and start-up included)
  peak      VmHWM of the command's own process, and the largest VmHWM among its worker processes
  all       the largest sum of proportional set sizes (Pss) of the command and its workers together,
            sampled every 0.1 s (shared pages counted once)
With --train, `charlstm train DIR` runs --train-steps steps of a small model (H 128, 2 layers,
B 32, T 100, an evaluation and a sample every --train-steps / 2 steps) on a 10 MB corpus and on the
--size one (the first --kind's), each in a fresh process; its VmHWM is set against the bare
training loop's, the same model and batches with no corpus at all (the model's own need, as
scripts/bench.py measures it), and against `charlstm train FILE` on the 10 MB file read whole.
With --novelty, `charlstm novelty` of that model against the large data directory too.

The figures depend on the machine and on what else runs on it: say which when quoting them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

# What a child process writes when it exits: its own peak (VmHWM: its address space alone; wait4's
# ru_maxrss would also count the process it was forked from) and the largest peak of the worker
# processes it waited for, in kB.
_PEAK = """
import atexit, resource, sys
_peak_path = sys.argv.pop(1)
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            own = line.split()[1]
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    open(_peak_path, 'w').write(own + ' ' + str(workers))
atexit.register(_peak)
"""
_CLI = _PEAK + "from charlstm.cli import main\nmain()\n"

# The bare training loop: the same model, batch and dropout as the `charlstm train` runs, no corpus.
_BARE = _PEAK + """
import numpy as np
from charlstm.model import ModelConfig, dropout_masks, init_params, loss_and_grads, zero_state
from charlstm.nn.optim import adam_init, adam_update, clip_by_global_norm
from charlstm.nn.workspace import Workspace
V, H, L, B, T, steps = map(int, sys.argv[1:7])
rng = np.random.default_rng(0)
config = ModelConfig(V, H, L, 0.2)
params = init_params(config, rng); adam = adam_init(params); state = zero_state(config, B)
workspace = Workspace()
for _ in range(steps):
    x = rng.integers(0, V, (T, B)); y = rng.integers(0, V, (T, B))
    masks = dropout_masks(config, T, B, rng, workspace=workspace)
    loss, grads, state, _ = loss_and_grads(params, config, x, y, state, masks, workspace=workspace)
    clip_by_global_norm(grads, 5.0); adam_update(params, grads, adam, 2e-3)
"""

H, LAYERS, B, T = 128, 2, 32, 100


# --- the generated corpora -----------------------------------------------------------------------

_WORDS = ("the of and to in is was for that with as on by at from his her an which or be are this had not "
          "but they have were one all their it def return class import self None if else while for range "
          "print value data list dict string number 0 1 2 3 42 1999 (x) [y] {z} x+y=z ; : , . ! ?").split()
_MARKS = ["\U0001F600", "\U0001F44D\U0001F3FD", "\U0001F1FA\U0001F1F8", "e\u0301", "\u2019", "\u2014",
          "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u2764\ufe0f", "caf\u00e9", "na\u00efve", "\u00fcber"]


def text_block(kind: str, seed: int, size: int = 4 << 20) -> bytes:
    """About `size` bytes of generated text ending with a line break."""
    rng = np.random.default_rng(seed)
    n = size // 5
    words = np.array(_WORDS, dtype=object)[rng.integers(0, len(_WORDS), n)]
    if kind == "emoji":
        marked = rng.random(n) < 0.05
        words[marked] = words[marked] + np.array(_MARKS, dtype=object)[rng.integers(0, len(_MARKS), int(marked.sum()))]
    gaps = np.where(rng.random(n) < 0.08, "\n", " ").astype(object)
    data = "".join((words + gaps).tolist()).encode("utf-8")
    return data[:data.rfind(b"\n", 0, size) + 1]


def write_corpus(path: Path, size: int, kind: str) -> int:
    """A file of about `size` bytes (it ends at a line break), from eight blocks taken in turn."""
    blocks = [text_block(kind, seed) for seed in range(8)]
    written = 0
    with open(path, "wb") as f:
        while written < size:
            block = blocks[(written // len(blocks[0])) % len(blocks)]
            if written + len(block) > size:
                block = block[:block.rfind(b"\n", 0, size - written) + 1]
                if not block:
                    break
            f.write(block)
            written += len(block)
        # On disk before anything is timed: left dirty in the page cache, the generated file
        # would be written back by the kernel while the encoding runs, and the encoding (bound
        # by the disk for ASCII) would be timed against that writeback, which a user's corpus,
        # on disk long before it is encoded, does not have.
        f.flush()
        os.fsync(f.fileno())
    return written


# --- running a command and watching its memory ---------------------------------------------------

def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child_env() -> dict:
    """The environment of a timed command: this checkout first, one BLAS thread, and bytecode
    cached as an installed package has it (a PYTHONDONTWRITEBYTECODE inherited from the shell
    would have every run compile charlstm's modules again, a few tenths of a second that
    `pip install` spares a user)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def warm_bytecode() -> None:
    """Compile charlstm's modules once, untimed, so that every timed command finds them cached."""
    subprocess.run([sys.executable, "-c", "import charlstm.cli, charlstm.data.encode"], cwd=REPO, env=_child_env(),
                   check=True)


def run(script: str, args: list, work: Path) -> dict:
    """Run `python -c script args` from this checkout; wall time, its peaks, the sampled total Pss."""
    peak_file = work / f"peak-{time.monotonic_ns()}"
    env = _child_env()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", script, str(peak_file), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    most = [0]

    def watch():
        while proc.poll() is None:
            most[0] = max(most[0], sum(_pss_kb(p) for p in [proc.pid] + _children(proc.pid)))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args[:3]))} failed:\n{err}")
    own, workers = (int(v) / 1024 for v in peak_file.read_text().split())
    peak_file.unlink()
    return {"seconds": seconds, "peak_mb": own, "worker_peak_mb": workers, "all_pss_mb": most[0] / 1024}


# --- the measurements ----------------------------------------------------------------------------

def bench_encode(kind: str, size: int, work: Path, workers: int | None, keep: bool) -> tuple[dict, Path | None]:
    source, out = work / f"corpus-{kind}.txt", work / f"data-{kind}"
    t = time.perf_counter()
    size = write_corpus(source, size, kind)
    made = time.perf_counter() - t
    args = ["corpus", "encode", source, "-o", out, "--quiet", "--force"] + (["--workers", workers] if workers else [])
    row = {"kind": kind, "mb": size / 1e6, **run(_CLI, args, work)}
    row["mb_per_s"] = row["mb"] / row["seconds"]
    manifest = json.loads((out / "manifest.json").read_text())
    row.update(symbols=manifest["symbols"], dtype=manifest["dtype"], vocab=manifest["vocab_size"])
    source.unlink()
    print(f"encode {kind:>5} {row['mb']:>8,.0f} MB: {row['mb_per_s']:7.1f} MB/s ({row['seconds']:.1f} s; "
          f"generated in {made:.0f} s), peak {row['peak_mb']:.0f} MB, workers {row['worker_peak_mb']:.0f} MB each, "
          f"all processes {row['all_pss_mb']:.0f} MB (Pss); {row['symbols']:,} {row['dtype']} ids, "
          f"{row['vocab']} symbols", flush=True)
    if keep:
        return row, out
    shutil.rmtree(out)
    return row, None


def bench_train(big: Path, work: Path, steps: int, novelty: bool) -> list[dict]:
    small_file = work / "corpus-10mb.txt"
    write_corpus(small_file, 10_000_000, "ascii")
    small = work / "data-10mb"
    run(_CLI, ["corpus", "encode", small_file, "-o", small, "--quiet", "--force"], work)
    vocab = json.loads((big / "manifest.json").read_text())["vocab_size"]
    bare = run(_BARE, [vocab, H, LAYERS, B, T, steps], work)
    rows = [{"corpus": "none (the bare training loop)", **bare}]
    print(f"train: the bare loop (H {H}, {LAYERS} layers, B {B}, T {T}, {vocab} symbols, {steps} steps): "
          f"peak {bare['peak_mb']:.0f} MB", flush=True)
    options = ["--hidden", H, "--layers", LAYERS, "--batch-size", B, "--seq-length", T, "--max-steps", steps,
               "--eval-every", max(1, steps // 2), "--sample-length", 100, "--quiet"]
    size = json.loads((big / "manifest.json").read_text())["bytes"]
    for name, corpus in (("10 MB file, read whole", small_file), ("10 MB data directory", small),
                         (f"{size / 1e9:.1f} GB data directory", big)):
        out = work / "run"
        row = {"corpus": name, **run(_CLI, ["train", corpus, "--out", out] + options, work)}
        row["over_bare_mb"] = row["peak_mb"] - bare["peak_mb"]
        rows.append(row)
        print(f"train on a {name}: peak {row['peak_mb']:.0f} MB = the bare loop + {row['over_bare_mb']:.0f} MB "
              f"({row['seconds']:.0f} s)", flush=True)
        if corpus == big and novelty:
            row = {"corpus": f"novelty against the {name}",
                   **run(_CLI, ["novelty", out / "latest.npz", big, "--n-samples", 5, "--length", 300], work)}
            rows.append(row)
            print(f"novelty of 5 samples of 300 symbols against the {name}: peak {row['peak_mb']:.0f} MB "
                  f"({row['seconds']:.0f} s)", flush=True)
        shutil.rmtree(out)
    small_file.unlink()
    shutil.rmtree(small)
    return rows


def parse_size(text: str) -> int:
    units = {"K": 1e3, "M": 1e6, "G": 1e9}
    text = text.strip().upper().rstrip("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1G", help="bytes of each generated corpus: 1G, 8G, 500M ... [1G]")
    parser.add_argument("--kind", nargs="+", choices=["ascii", "emoji"], default=["ascii"])
    parser.add_argument("--workers", type=int, default=None, help="corpus encode --workers [one per core]")
    parser.add_argument("--train", action="store_true", help="also measure training memory on the corpus")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--novelty", action="store_true",
                        help="with --train: also charlstm novelty of the trained model against the corpus")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the generated files go (removed at the end)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    size = parse_size(args.size)
    needed = size * 2.2 + 50e6
    free = shutil.disk_usage(args.dir).free
    if free < needed:
        raise SystemExit(f"{args.dir} has {free / 1e9:.1f} GB free; a {args.size} corpus and its ids need about "
                         f"{needed / 1e9:.1f} GB")
    work = Path(tempfile.mkdtemp(prefix="charlstm-bench-", dir=args.dir))
    results = {"machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                           "numpy": np.__version__, "load_average": os.getloadavg()},
               "size": size, "encode": [], "train": []}
    print(f"{_cpu_name()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    warm_bytecode()
    try:
        big = None
        for k, kind in enumerate(args.kind):
            row, kept = bench_encode(kind, size, work, args.workers, keep=args.train and k == 0)
            results["encode"].append(row)
            big = big or kept
        if args.train:
            results["train"] = bench_train(big, work, args.train_steps, args.novelty)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
