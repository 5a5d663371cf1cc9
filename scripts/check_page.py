"""How closely a trained model's page follows Python, and what a lower precision costs it.

    PYTHONPATH=. python3 scripts/check_page.py run/best.npz corpus.txt
    PYTHONPATH=. python3 scripts/check_page.py run/best.npz train.txt --held-out val.txt --symbols 2000

Writes the checkpoint's page at every precision and prints:
- the loss (bits/char) of the first --eval-symbols of TEXT (held-in) with float32 weights and the
  change with float16 and int8 (and of --held-out's, if given);
- with headless Chromium (apt-get install chromium): for each of ten primes, whether 500 greedy
  symbols of the page equal model.sample(500, temperature=0, prime=...), with each kernel; the
  largest difference between the page's next-symbol probabilities and NumPy's over the last
  --symbols of TEXT read with teacher forcing; and the smallest gap between the two best scores on
  Python's greedy paths (a gap below the float32 differences could flip a greedy choice).
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import numpy as np

import charlstm
from charlstm.export.page import export_page
from charlstm.export.quantize import loss_effect
from charlstm.model import forward, zero_state

PRIMES = ["", "ROMEO:", "First Citizen:\n", "KING HENRY VI:\nWhat", "O, ", "\n\n", "To be, or not", "MENENIUS:\nI",
          "The ", "JULIET:\nAh"]


def run_page(chromium: str, page: Path, fragment: str) -> dict:
    out = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox", "--virtual-time-budget=600000",
                          "--dump-dom", page.resolve().as_uri() + "#" + fragment],
                         capture_output=True, text=True, timeout=600).stdout
    found = re.search(r'<pre id="test-result"[^>]*>(.*?)</pre>', out, re.S)
    if not found or not found.group(1):
        raise SystemExit(f"the page reported nothing for {fragment[:80]}")
    result = json.loads(html.unescape(found.group(1)))
    if "error" in result:
        raise SystemExit(f"the page failed: {result['error']}")
    return result


def probabilities(model, ids) -> np.ndarray:
    logits, _, _ = forward(model.params, model.config, ids.astype(np.intp)[:, None], zero_state(model.config, 1))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("text", type=Path, help="held-in text (e.g. the training corpus)")
    parser.add_argument("--held-out", type=Path, default=None)
    parser.add_argument("--eval-symbols", type=int, default=20_000)
    parser.add_argument("--symbols", type=int, default=2_000, help="symbols read with teacher forcing in the page")
    args = parser.parse_args()
    model = charlstm.load(args.checkpoint)
    texts = {"held-in": args.text.read_text(encoding="utf-8")}
    if args.held_out is not None:
        texts["held-out"] = args.held_out.read_text(encoding="utf-8")
    for name, text in texts.items():
        ids = model.vocab.encode(text, unknown="unk")[:args.eval_symbols]
        for precision in ("float16", "int8"):
            e = loss_effect(model.params, model.config, ids, precision)
            print(f"{name:>8} {precision:>7}: {e['float32']:.5f} -> {e[precision]:.5f} bits/char "
                  f"({e['increase']:+.6f}) on {e['symbols']:,} symbols")

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("no Chromium (apt-get install chromium): the page itself is not checked")
        return
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        export_page(model, page)
        for kernel in ("wasm", "js"):
            same = 0
            for prime in PRIMES:
                expected = model.sample(500, temperature=0, prime=prime)
                got = run_page(chromium, page, f"test=generate&temperature=0&length=500&kernel={kernel}"
                                               f"&prime={quote(prime, safe='')}")["text"]
                same += got == expected
                if got != expected:
                    k = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
                    print(f"  {kernel}: prime {prime!r} differs at symbol {k}: {expected[k - 10:k + 5]!r} "
                          f"!= {got[k - 10:k + 5]!r}")
            print(f"greedy, {kernel} kernel: {same} of {len(PRIMES)} primes give Python's 500 symbols")
        text = texts["held-in"][-args.symbols:]
        expected = probabilities(model, model.vocab.encode(text))
        for kernel in ("wasm", "js"):
            got = np.array(run_page(chromium, page, f"test=probs&kernel={kernel}&text={quote(text, safe='')}")["probs"])
            print(f"probabilities, {kernel} kernel: largest difference {np.abs(got - expected).max():.2g} "
                  f"over {len(expected):,} symbols")
    gaps = []
    for prime in PRIMES:
        text = model.sample(500, temperature=0, prime=prime)
        ids = model.vocab.encode(text if prime else "\n" + text)
        scores = np.sort(forward(model.params, model.config, ids.astype(np.intp)[:, None],
                                 zero_state(model.config, 1))[0][-501:-1], axis=1)
        gaps.append(float((scores[:, -1] - scores[:, -2]).min()))
    print(f"smallest gap between the two best scores on the greedy paths: {min(gaps):.2g}")


if __name__ == "__main__":
    main()
