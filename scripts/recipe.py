"""The default recipe at equal time: train with nothing but a time budget, then evaluate exactly.

    python scripts/recipe.py ../shared/data/tinyshakespeare.txt --max-time 600 --out runs/recipe

runs `charlstm train CORPUS --max-time 600 --val-fraction 0.1 --out DIR` (every other setting is
the library's default), then `charlstm eval DIR/best.npz` on the held-out last 10 % of the text
(exactly the symbols training held out), and prints the validation curve against wall time as a
Markdown table, the form the README shows. Extra arguments after `--` go to `charlstm train`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--max-time", type=float, default=600)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--out", type=Path, default=Path("runs/recipe"))
    parser.add_argument("extra", nargs="*", help="more `charlstm train` options (after --)")
    args = parser.parse_args()

    cmd = [sys.executable, "-m", "charlstm", "train", str(args.corpus), "--out", str(args.out),
           "--max-time", str(args.max_time), "--val-fraction", str(args.val_fraction), "--quiet", *args.extra]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True)

    from charlstm.data.text import read_text
    import charlstm
    model = charlstm.load(args.out / "best.npz")
    text = read_text(args.corpus)
    ids = model.vocab.encode(text, unknown="unk")
    held_out = ids[len(ids) - int(len(ids) * args.val_fraction):]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        f.write(model.vocab.decode(held_out))
    result = subprocess.run([sys.executable, "-m", "charlstm", "eval", str(args.out / "best.npz"), f.name, "--json"],
                            check=True, capture_output=True, text=True)
    Path(f.name).unlink()
    final = json.loads(result.stdout)
    print(f"charlstm eval best.npz (last {args.val_fraction:.0%}): {final['nats_per_char']:.4f} nats/char, "
          f"{final['bits_per_char']:.4f} bits/char over {final['symbols']} symbols")

    print("\n| wall time (s) | step | train loss (nats) | validation (nats) | chars/s |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for line in (args.out / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        if "val_nats" in m and m["val_nats"] is not None:
            print(f"| {m['elapsed_s']:.0f} | {m['step']} | {m['train_loss']:.3f} | {m['val_nats']:.3f} | "
                  f"{m['chars_per_s']:,.0f} |")


if __name__ == "__main__":
    main()
