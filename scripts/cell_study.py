"""Why does one cell learn more per step than another? Each cell, and starts and learning rates of
the LSTM, trained for the same optimiser steps with everything else equal, then evaluated exactly.

    python scripts/cell_study.py CORPUS [--steps 1200] [--layers 3] [--hidden 256] [--lr 3e-3]
        [--runs lstm gru rnn lstm-f0 lstm@6e-3] [--json out.json]

A run is a cell name, optionally with its own learning rate after `@`. Besides charlstm's cells:
  lstm-f0    the LSTM with its forget-gate bias started at 0 (PyTorch's start) instead of 1
The embedding is charlstm's default (E = H) on every run, as is the rest of the recipe: cosine
decay over the steps, dropout as the recipe chooses it for this many passes, the same seed (so the
same streams and dropout draws). Steps, not seconds: the question is what a step learns, which
the machine's load does not move. Each run's held-out figure is an exact evaluation of the whole
held-out part (its last --val-fraction). Prints one line per run and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import charlstm
from charlstm.nn.cells import lstm, register

sys.path.insert(0, str(Path(__file__).parent))
from embedding_study import corpus_text  # noqa: E402


def lstm_forget_zero_init(D, H, rng, one_hot):
    params = lstm.init(D, H, rng, one_hot)
    params["b"][H:2 * H] = 0.0
    return params


register(replace(lstm.CELL, name="lstm-f0", init=lstm_forget_zero_init))


def run(text: str, spec: str, args, out_dir: Path) -> dict:
    cell, _, lr = spec.partition("@")
    lr = float(lr) if lr else args.lr
    started = time.perf_counter()
    model = charlstm.train(text=text, out_dir=out_dir, progress=False, stop_on_interrupt=False, cell=cell,
                           max_steps=args.steps, eval_every=args.steps, val_fraction=args.val_fraction,
                           val_symbols=50_000, sample_length=0, seed=args.seed, lr=lr,
                           num_layers=args.layers, hidden_size=args.hidden)
    seconds = time.perf_counter() - started
    held_out = text[len(text) - int(len(text) * args.val_fraction):]
    exact = model.evaluate(held_out)
    return {"run": spec, "cell": cell, "lr": lr, "steps": model.step, "held_out_nats": exact["nats_per_char"],
            "symbols": exact["symbols"], "seconds": round(seconds, 1),
            "parameters": int(sum(p.size for p in model.params.values()))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", metavar="CORPUS")
    parser.add_argument("--runs", nargs="+", default=["lstm", "gru", "rnn", "lstm-f0", "lstm@6e-3"])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    name, text = corpus_text(args.corpus)
    rows = []
    for spec in args.runs:
        with tempfile.TemporaryDirectory() as tmp:
            row = run(text, spec, args, Path(tmp) / "run")
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.json:
            args.json.write_text(json.dumps({"corpus": name, "settings": vars(args) | {"json": str(args.json)},
                                             "runs": rows}, indent=1))
    print(f"\n{name}, {args.layers} x {args.hidden}, {args.steps} steps, embedding E = H\n")
    print("| run | learning rate | parameters | held-out nats/char | seconds |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| `{r['run']}` | {r['lr']:g} | {r['parameters']:,} | {r['held_out_nats']:.4f} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
