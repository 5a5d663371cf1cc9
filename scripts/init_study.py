"""Does a cell's initialisation matter? Each cell's chosen start against the plain alternative,
at the synthetic recipe on `remember` (gaps up to --max-n), same seed and budget.

    python scripts/init_study.py [--max-n 50] [--steps 1500]

Variants (registered as cells of their own for the run, which is all a new cell needs):
  gru       update-gate bias bx_z = +1 (charlstm's choice)    gru-z0   bx_z = 0
  rnn       orthogonal Wh (charlstm's choice)                  rnn-unif Wh uniform in +-1/sqrt(H)
Prints one JSON line per run and a Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from family import synth_run  # noqa: E402

from charlstm.nn.cells import gru, register, rnn  # noqa: E402


def gru_z0_init(D, H, rng, one_hot):
    params = gru.init(D, H, rng, one_hot)
    params["bx"][H:2 * H] = 0.0
    return params


def rnn_uniform_init(D, H, rng, one_hot):
    params = rnn.init(D, H, rng, one_hot)
    bound = 1.0 / np.sqrt(H)
    params["Wh"] = np.random.default_rng(rng.integers(2**63)).uniform(-bound, bound, size=(H, H))
    return params


register(dataclasses.replace(gru.CELL, name="gru-z0", init=gru_z0_init))
register(dataclasses.replace(rnn.CELL, name="rnn-unif", init=rnn_uniform_init))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-n", type=int, default=50)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("gru", "gru-z0", "rnn", "rnn-unif"):
            row = synth_run(cell, "remember", args.max_n, args.steps, Path(tmp) / cell, n_check=500)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\n| cell | start | `remember` (N up to {args.max_n}), {args.steps} steps: free lines valid | prompts exact up to | best val nats |")
    print("| --- | --- | ---: | ---: | ---: |")
    names = {"gru": "bx_z = +1", "gru-z0": "bx_z = 0", "rnn": "orthogonal Wh", "rnn-unif": "uniform Wh"}
    for r in rows:
        print(f"| {r['cell'].split('-')[0]} | {names[r['cell']]} | {100 * r['free_valid']:.1f} % | "
              f"{r['exact_up_to'] or 'none'} | {r['val_nats']} |")


if __name__ == "__main__":
    main()
