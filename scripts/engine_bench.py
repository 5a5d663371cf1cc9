"""Training speed of the engines, as a user runs them: `charlstm train` on the NumPy engine, on
the torch engine in one process, and on the torch engine in two processes under torchrun (gloo,
each process one thread), side by side and alternated, each side run --repeats times.

The figure is the training speed the run itself records (metrics.jsonl's chars_per_s at the last
evaluation: symbols trained on per second since the evaluation before, evaluation time excluded).

    python scripts/engine_bench.py ../shared/data/tinyshakespeare.txt --steps 60 --repeats 3

Needs torch. Run it on a quiet machine: a second process slows both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    shown = [f for f in ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile") if f in flags]
    return f"{model}, {os.cpu_count()} cores, flags {' '.join(shown)}"


def run_side(side: str, corpus: str, steps: int, extra: list[str], work: Path) -> float:
    out = work / f"{side}-{len(list(work.iterdir()))}"
    train = ["train", corpus, "--out", str(out), "--max-steps", str(steps), "--eval-every", str(steps),
             "--val-symbols", "2000", "--sample-length", "0", "--quiet", *extra]
    if side == "numpy":
        cmd = [sys.executable, "-m", "charlstm", *train]
    elif side == "torch":
        cmd = [sys.executable, "-m", "charlstm", *train, "--engine", "torch"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "charlstm", *train,
               "--engine", "torch"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed: {done.stderr[-2000:]}")
    last = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][-1]
    return float(last["chars_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sides", default="numpy,torch,torch-2")
    parser.add_argument("options", nargs="*", help="more train options after --, e.g. -- --cell gru")
    args = parser.parse_args()
    sides = args.sides.split(",")
    speeds = {side: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for r in range(args.repeats):
            order = sides if r % 2 == 0 else sides[::-1]        # alternate: no side always runs first
            for side in order:
                speeds[side].append(run_side(side, args.corpus, args.steps, args.options, work))
                print(f"  {side}: {speeds[side][-1]:,.0f} chars/s", flush=True)
    print(f"\n{cpu_flags()}")
    print(f"charlstm train {' '.join(args.options) or '(the default model)'}, {args.steps} steps, "
          f"{args.repeats} runs per side, medians:")
    base = statistics.median(speeds[sides[0]])
    for side in sides:
        med = statistics.median(speeds[side])
        print(f"  {side:8s} {med:10,.0f} chars/s  {med / base:5.2f}x {sides[0]}   runs: "
              + ", ".join(f"{s:,.0f}" for s in speeds[side]))


if __name__ == "__main__":
    main()
