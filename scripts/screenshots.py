"""The README's screenshots: docs/viz.png and docs/report.png, from a real (small) model.

    python3 scripts/screenshots.py                       # trains runs/shots first if it is not there
    python3 scripts/screenshots.py --run runs/shots --minutes 30 --out docs

Trains a 2 x 128 LSTM on 3 MB of the Python standard library (the corpus is kept in the run
directory, so the report checks the samples for copying), writes the `viz` page of a stretch of
held-out text with the units ranked by in-string, indent and in-comment, writes the `report` page,
and photographs both with headless Chromium.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import charlstm
from charlstm.data import corpora
from charlstm.analysis.features import rank_units
from charlstm.analysis.report import render_report
from charlstm.analysis.viz import render_page


def shoot(chromium: str, page: Path, png: Path, size: str, fragment: str = "") -> None:
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--virtual-time-budget=3000", f"--window-size={size}", f"--screenshot={png}",
                    page.resolve().as_uri() + fragment], check=True, capture_output=True, timeout=120)
    print(f"{png}: {png.stat().st_size / 1e3:.0f} kB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/shots"))
    parser.add_argument("--minutes", type=float, default=30.0, help="training time when the run is not there")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")

    corpus = args.run / "corpus.txt"
    if not (args.run / "best.npz").exists():
        args.run.mkdir(parents=True, exist_ok=True)
        text, _ = corpora.build_stdlib_corpus(max_bytes=3_000_000)
        corpus.write_text(text, encoding="utf-8")
        charlstm.train(corpus, out_dir=args.run, hidden_size=128, num_layers=2, max_time=60 * args.minutes,
                       eval_every=250)
    model = charlstm.load(args.run / "best.npz")
    text = corpus.read_text(encoding="utf-8")
    held_out = text[int(len(text) * 0.96):]                     # inside the validation split
    start = held_out.index("\ndef ") + 1
    t = charlstm.trace(model, held_out[start:start + 6000])
    ranked = {name: rank_units(t, name, top=6) for name in ("in-string", "indent", "in-comment")}
    best = ranked["in-string"][0]
    args.out.mkdir(parents=True, exist_ok=True)
    pages = args.run / "pages"
    pages.mkdir(exist_ok=True)
    (pages / "viz.html").write_text(render_page(t, layer=best.layer, unit=best.unit, quantity=best.quantity,
                                                ranked=ranked, title="charlstm viz · Python held out"),
                                    encoding="utf-8")
    (pages / "report.html").write_text(render_report(args.run, title="charlstm report · 2 × 128 on the stdlib"),
                                       encoding="utf-8")
    hover = next(k for k in range(200, len(t)) if t.symbols[k] == '"')
    shoot(chromium, pages / "viz.html", args.out / "viz.png", "1000,640", f"#hover={hover}")
    shoot(chromium, pages / "report.html", args.out / "report.png", "1240,900")
    for name, units in ranked.items():
        print(name, ", ".join(f"{u.quantity}[{u.layer}][{u.unit}] r={u.correlation:+.2f}" for u in units[:3]))


if __name__ == "__main__":
    main()
