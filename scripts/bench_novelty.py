"""How long `charlstm novelty` takes to check samples against a large corpus.

    python3 scripts/bench_novelty.py                # a generated 100 MB corpus, 20 samples of 500
    python3 scripts/bench_novelty.py --mb 20 --samples 50

The corpus is pseudo-text: words drawn from a Zipf-distributed vocabulary of random letters, with
line breaks. The samples stand in for a model's output: words drawn the same way, with spans of
random length copied from the corpus, so the answer has copies of known length to find.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from charlstm.data.text import read_text
from charlstm.analysis.novelty import CorpusIndex, novelty


def pseudo_text(rng: np.random.Generator, n_chars: int, words: list[str]) -> str:
    weights = 1.0 / np.arange(1, len(words) + 1)
    weights /= weights.sum()
    n_words = n_chars // 6 + 1
    picks = rng.choice(len(words), size=n_words, p=weights)
    seps = np.where(rng.random(n_words) < 0.08, "\n", " ")
    table = np.array(words, dtype=object)
    pieces = np.empty(2 * n_words, dtype=object)
    pieces[0::2] = table[picks]
    pieces[1::2] = seps
    return "".join(pieces)[:n_chars]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size in millions of characters")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, size=int(k))) for k in rng.integers(1, 10, size=50_000)]
    t = time.perf_counter()
    corpus = pseudo_text(rng, int(args.mb * 1e6), words)
    print(f"generated a {len(corpus) / 1e6:.0f} M-character corpus in {time.perf_counter() - t:.1f} s")

    samples, planted = [], 0
    for _ in range(args.samples):
        text = pseudo_text(rng, args.length, words)
        n = int(rng.integers(5, 120))
        start = int(rng.integers(0, len(corpus) - n))
        at = int(rng.integers(0, args.length - n))
        samples.append(text[:at] + corpus[start:start + n] + text[at + n:])
        planted = max(planted, n)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "corpus.txt"
        path.write_text(corpus, encoding="utf-8")
        del corpus
        t0 = time.perf_counter()
        index = CorpusIndex.from_text(read_text(path))
        t1 = time.perf_counter()
        result = novelty(index, samples)
        t2 = time.perf_counter()
    print(f"read the file and index it (its code points): {t1 - t0:.2f} s, {index.workers} threads")
    print(f"novelty of {args.samples} samples x {args.length} symbols, n = 10..50 and the longest span: "
          f"{t2 - t1:.2f} s")
    for n in result.ns:
        print(f"  n = {n:2d}: {100 * result.share(n):5.1f} % of sampled {n}-grams occur in the corpus")
    span = result.longest
    print(f"  longest copied span: {span.length} symbols (longest planted: {planted}), sample {span.sample} "
          f"offset {span.offset}, corpus line {span.corpus_line}")
    print(f"total: {t2 - t0:.2f} s")


if __name__ == "__main__":
    main()
