"""Speed and size of the browser page (`charlstm export CKPT -o page.html`).

    PYTHONPATH=. python3 scripts/bench_page.py                  # the default 3 x 256 LSTM, 97 symbols
    PYTHONPATH=. python3 scripts/bench_page.py --length 5000 --repeats 5 --kernels wasm js

Builds the default model (3 layers of 256 LSTM units; random weights: the speed does not depend on
them) over a vocabulary of printable ASCII with tab and line feed, writes its page at every
precision, and has headless Chromium generate `--length` symbols at temperature 1 through the
page's own self-test (`#test=bench`: charlstm.generateSync, the loop that generate() runs in
slices), with the WebAssembly kernel and with the plain JavaScript one. Prints the page sizes and
symbols per second (the best of --repeats runs: the machine may be shared). Needs Chromium on PATH
(apt-get install chromium). PYTHONPATH=. makes it use this checkout's charlstm.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import string
import subprocess
import tempfile
from pathlib import Path

import charlstm
from charlstm.data.vocab import Vocab
from charlstm.export.page import export_page
from charlstm.export.quantize import PRECISIONS


def run_page(chromium: str, page: Path, fragment: str, timeout: float = 300) -> dict:
    # no --virtual-time-budget: under virtual time the page's clock stands still while it computes
    out = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox",
                          "--dump-dom", page.resolve().as_uri() + fragment],
                         capture_output=True, text=True, timeout=timeout).stdout
    found = re.search(r'<pre id="test-result"[^>]*>(.*?)</pre>', out, re.S)
    if not found or not found.group(1):
        raise SystemExit(f"the page reported nothing for {fragment}")
    result = json.loads(html.unescape(found.group(1)))
    if "error" in result:
        raise SystemExit(f"the page failed: {result['error']}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--length", type=int, default=3000, help="symbols generated per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kernels", nargs="+", default=["wasm", "js"])
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")

    vocab = Vocab(tuple(sorted(set(string.printable) - set("\r\x0b\x0c"))))
    model = charlstm.Model.create(vocab, hidden_size=args.hidden, num_layers=args.layers, seed=0)
    n = sum(p.size for p in model.params.values())
    print(f"{args.layers} x {args.hidden} LSTM, {len(vocab)} symbols, {n:,} parameters")
    with tempfile.TemporaryDirectory() as tmp:
        pages = {}
        for precision in PRECISIONS:
            pages[precision] = Path(tmp) / f"page-{precision}.html"
            size = export_page(model, pages[precision], precision)
            print(f"  page at {precision:>7}: {size / 1e6:6.2f} MB")
        for kernel in args.kernels:
            best = None
            for _ in range(args.repeats):
                r = run_page(chromium, pages["float32"], f"#test=bench&length={args.length}&kernel={kernel}")
                if r["kernel"] != kernel:
                    raise SystemExit(f"asked for the {kernel} kernel, the page ran {r['kernel']}")
                rate = r["symbols"] / r["seconds"]
                best = rate if best is None else max(best, rate)
            print(f"  {kernel:>4} kernel: {best:7.0f} symbols/s (best of {args.repeats} runs of {args.length}, "
                  "charlstm.generateSync at temperature 1)")


if __name__ == "__main__":
    main()
