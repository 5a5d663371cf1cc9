"""How much the input embedding helps per step, by its size: the figures behind the default E.

    python scripts/embedding_study.py CORPUS [NAME=CORPUS ...] [--sizes 0 32 64 128 256]
        [--steps 1500] [--layers 2] [--hidden 128] [--lr 6e-3] [--seed 0] [--json out.json]

A corpus is a text file (NAME=PATH names it, else its stem), or `stdlib` for the built-in default
corpus. For each corpus and each embedding size E (0: the one-hot input), one run of `charlstm.train`
for the same --steps optimiser steps, everything else equal (the seed, so the same streams and
dropout draws; the recipe's schedule: cosine over the steps, no dropout under one pass), then
an exact evaluation of the whole held-out part (its last --val-fraction, charlstm eval's method).
Steps, not seconds: the question is how much a step learns, and a step count does not move with
the machine's load. The speed of the embedded model is scripts/bench.py's business.

Prints one row per run and, per corpus, each size's held-out nats per symbol against the one-hot
model's (negative: the embedding learns more in the same steps).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import charlstm
from charlstm.data.corpora import build_stdlib_corpus


def corpus_text(spec: str) -> tuple[str, str]:
    name, _, path = spec.rpartition("=")
    if path == "stdlib":
        return name or "stdlib", build_stdlib_corpus()[0]
    return name or Path(path).stem, Path(path).read_text(encoding="utf-8")


def run(text: str, E: int, args, out_dir: Path) -> dict:
    started = time.perf_counter()
    model = charlstm.train(text=text, out_dir=out_dir, progress=False, stop_on_interrupt=False,
                           max_steps=args.steps, eval_every=args.steps, val_fraction=args.val_fraction,
                           val_symbols=50_000, sample_length=0, seed=args.seed, lr=args.lr,
                           num_layers=args.layers, hidden_size=args.hidden, embedding_size=E)
    seconds = time.perf_counter() - started
    held_out = text[len(text) - int(len(text) * args.val_fraction):]
    exact = model.evaluate(held_out)
    return {"embedding_size": E, "steps": model.step, "held_out_nats": exact["nats_per_char"],
            "symbols": exact["symbols"], "seconds": seconds,
            "parameters": int(sum(p.size for p in model.params.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="+", metavar="CORPUS")
    parser.add_argument("--sizes", nargs="+", type=int, default=[0, 32, 64, 128, 256])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--lr", type=float, default=6e-3)
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = {"settings": vars(args) | {"json": str(args.json)}, "runs": {}}
    for spec in args.corpora:
        name, text = corpus_text(spec)
        rows = []
        for E in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                row = run(text, E, args, Path(tmp) / "run")
            rows.append(row)
            print(f"{name:>16} E={E:>4}: {row['held_out_nats']:.4f} nats/symbol held out after {row['steps']} steps "
                  f"({row['parameters']:,} parameters, {row['seconds']:.0f} s)", flush=True)
        base = next((r for r in rows if r["embedding_size"] == 0), None)
        if base is not None:
            for r in rows:
                r["against_one_hot"] = r["held_out_nats"] - base["held_out_nats"]
            print(f"{name:>16}: " + ", ".join(f"E={r['embedding_size']} {r['against_one_hot']:+.4f}" for r in rows),
                  flush=True)
        results["runs"][name] = rows
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
