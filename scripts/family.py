"""What each cell remembers: the synthetic languages and tinyshakespeare for every cell, side by side.

    python scripts/family.py synth [--cells lstm gru rnn peephole] [--json out.json]
    python scripts/family.py shakespeare ../shared/data/tinyshakespeare.txt --max-time 600

`synth` trains every cell at the README's synthetic recipe (1 layer of 32 units, batch 32, chunks
of 50, lr 0.01 with a cosine decay, 6,000 steps) on each language, plus a long-gap variant of
`remember` (N up to 50, prompts up to 100), and reports `charlstm check`'s free-line share and how
far the prompts come out exact. Runs are deterministic (seeded), so a second run gives the same
table.

`shakespeare` trains each cell with the default recipe for --max-time seconds, one after the other,
and evaluates each exactly on the held-out last 10 %: the numbers of one run are comparable with
each other only, since the machine's speed varies by the hour.

Both print Markdown tables (the README's); set OPENBLAS_NUM_THREADS=1 for the small synthetic models.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import charlstm
from charlstm.analysis.synth_check import check_model
from charlstm.data.corpora import synth_lines

TASKS = [("counting", 10), ("selective", 10), ("remember", 10), ("copy", 10), ("remember", 50)]
SYNTH_RECIPE = dict(num_layers=1, hidden_size=32, dropout=0.0, batch_size=32, seq_length=50, lr=0.01,
                    lr_schedule="cosine", eval_every=500, sample_length=0, progress=False)


def synth_run(cell: str, task: str, max_n: int, steps: int, out: Path, n_check: int = 1000) -> dict:
    lines = synth_lines(task, 20_000, max_n=max_n, rng=np.random.default_rng(0))
    text = "".join(line + "\n" for line in lines)
    started = time.perf_counter()
    model = charlstm.train(text=text, out_dir=out, cell=cell, max_steps=steps, **SYNTH_RECIPE)
    seconds = time.perf_counter() - started
    model = charlstm.load(out / "best.npz")
    report = check_model(model, task, n=n_check, temperature=1.0, max_n=max_n, context=3, seed=0,
                         max_length=max(200, 2 * max_n + 10))   # room for the longest line
    return {"cell": cell, "task": task, "max_n": max_n, "steps": steps, "seconds": round(seconds, 1),
            "free_valid": report["valid_share"], "exact_up_to": report["extrapolation"]["perfect_up_to"],
            "val_nats": model_val(out)}


def model_val(out: Path):
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    vals = [m["val_nats"] for m in lines if m.get("val_nats") is not None]
    return round(min(vals), 4) if vals else None


def synth(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task, max_n in TASKS:
            for cell in args.cells:
                row = synth_run(cell, task, max_n, args.steps, Path(tmp) / f"{cell}-{task}-{max_n}")
                rows.append(row)
                print(json.dumps(row), flush=True)
    print("\n| task (N up to) | " + " | ".join(args.cells) + " |")
    print("| --- |" + " ---: |" * len(args.cells))
    for task, max_n in TASKS:
        cells = {r["cell"]: r for r in rows if r["task"] == task and r["max_n"] == max_n}
        shown = [f"{100 * cells[c]['free_valid']:.1f} % · exact to {cells[c]['exact_up_to'] or 'none'}"
                 for c in args.cells]
        print(f"| `{task}` ({max_n}) | " + " | ".join(shown) + " |")
    return rows


def shakespeare(args) -> list[dict]:
    from charlstm.data.text import read_text
    text = read_text(args.corpus)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells:
            out = (args.out or Path(tmp)) / cell
            model = charlstm.train(text=text, out_dir=out, cell=cell, max_time=args.max_time, val_fraction=0.1,
                                   progress=False)
            best = charlstm.load(out / "best.npz")
            ids = best.vocab.encode(text, unknown="unk")
            held_out = best.vocab.decode(ids[len(ids) - int(len(ids) * 0.1):])
            result = best.evaluate(held_out)
            history = model.history
            row = {"cell": cell, "steps": history[-1].step, "val_nats": round(result["nats_per_char"], 4),
                   "chars_per_s": round(float(np.median([e.chars_per_s for e in history])))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| cell | steps in the budget | chars/s (median) | held-out nats/char |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| `{r['cell']}` | {r['steps']:,} | {r['chars_per_s']:,} | {r['val_nats']:.3f} |")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("synth")
    s.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn", "peephole"])
    s.add_argument("--steps", type=int, default=6000)
    s.add_argument("--json", type=Path)
    t = sub.add_parser("shakespeare")
    t.add_argument("corpus", type=Path)
    t.add_argument("--cells", nargs="+", default=["lstm", "gru", "rnn"])
    t.add_argument("--max-time", type=float, default=600)
    t.add_argument("--json", type=Path)
    t.add_argument("--out", type=Path, help="keep each cell's run directory here [a temporary one]")
    args = parser.parse_args()
    rows = synth(args) if args.what == "synth" else shakespeare(args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
