"""Beam search against sampling, measured on a trained model: how likely, how varied, how copied.

    python scripts/beam_table.py CKPT CORPUS [--primes 10] [--length 300]

For temperature 0, 0.5, 0.8 and 1.0 (sampling) and beams of 4 and 16, the same --primes primes
(short spans of the corpus's last tenth, cut at a line start) are continued by --length symbols,
and the table gives, over all continuations:
  log-lik/symbol   the model's own mean log-probability (nats) of the symbols it wrote
  distinct 4-grams the share of the 4-grams written that are distinct (low: loops and repeats)
  20-grams copied  the share of the 20-grams written that occur verbatim in the corpus (`novelty`)
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import charlstm
from charlstm.analysis.novelty import CorpusIndex, novelty
from charlstm.data.text import read_text
from charlstm.model import forward, zero_state
from charlstm.nn.head import log_softmax


def log_likelihood(model, prime: str, text: str) -> tuple[float, int]:
    """Summed log-probability of text's symbols after the prime, and their number."""
    ids = model.vocab.encode(prime + text, unknown="unk").astype(np.intp)
    start = len(model.vocab.encode(prime))
    logits, _, _ = forward(model.params, model.config, ids[:-1, None], zero_state(model.config, 1))
    logp = log_softmax(logits.astype(np.float64))
    rows = np.arange(start - 1, len(ids) - 1)
    return float(logp[rows, ids[rows + 1]].sum()), len(rows)


def distinct_share(texts: list[str], n: int = 4) -> float:
    grams = [t[k:k + n] for t in texts for k in range(len(t) - n + 1)]
    return len(set(grams)) / max(1, len(grams))


def primes_from(text: str, count: int, rng: np.random.Generator) -> list[str]:
    tail = text[int(len(text) * 0.9):]
    starts = [k + 1 for k, ch in enumerate(tail[:-200]) if ch == "\n"]
    picks = rng.choice(starts, size=count, replace=False)
    return [tail[s:s + 40].rsplit(" ", 1)[0] + " " for s in sorted(picks)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("corpus")
    parser.add_argument("--primes", type=int, default=10)
    parser.add_argument("--length", type=int, default=300)
    args = parser.parse_args()
    model = charlstm.load(args.checkpoint)
    corpus = read_text(args.corpus)
    index = CorpusIndex.from_text(corpus)
    primes = primes_from(corpus, args.primes, np.random.default_rng(0))
    settings = [("temperature", t) for t in (0.0, 0.5, 0.8, 1.0)] + [("beam", k) for k in (4, 16)]
    rows = []
    for kind, value in settings:
        texts, total, count = [], 0.0, 0
        for k, prime in enumerate(primes):
            if kind == "beam":
                out = model.sample(args.length, prime=prime, beam=value)
            else:
                out = model.sample(args.length, prime=prime, temperature=value, seed=k)
            text = out[len(prime):]
            s, n = log_likelihood(model, prime, text)
            texts.append(text)
            total, count = total + s, count + n
        copied = novelty(index, texts).share(20)
        row = {"decoding": f"{kind} {value:g}", "log_lik_per_symbol": total / count,
               "distinct_4grams": distinct_share(texts), "copied_20grams": copied, "example": texts[0][:120]}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)
    print("\n| decoding | log-likelihood per symbol (nats) | distinct 4-grams | 20-grams copied from the corpus |")
    print("| --- | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['decoding']} | {r['log_lik_per_symbol']:.3f} | {100 * r['distinct_4grams']:.1f} % | "
              f"{100 * r['copied_20grams']:.1f} % |")


if __name__ == "__main__":
    main()
