"""Beam search: the K most likely continuations by the model's own probabilities.

Where sampling draws one symbol at a time, beam search keeps K partial texts (beams) and, at every
step, extends each by every symbol and keeps the K extensions with the highest summed
log-probability. K = 1 is greedy decoding (always the most likely symbol); a larger K can find a
text whose first symbols are less likely but whose whole is more likely, which greedy decoding
misses.

A beam that produces the stop text is finished: it leaves the beam and waits among the results,
and the live beams go on until `length` symbols. Finished texts of different lengths are ranked by
their log-probability divided by (number of symbols) ** length_penalty: 0 ranks by the plain sum
(which favours short texts, since every symbol costs), 1 by the mean per symbol.

All K beams advance as one batch through the model's Stepper; after each step the states are
reordered to follow the beams that survived.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charlstm.data.vocab import Vocab
from charlstm import validate
from charlstm.decoding.sampling import BYTES_PER_HELD_SYMBOL, check_writable, read_prime
from charlstm.errors import CharlstmError
from charlstm.interrupts import checkpoint
from charlstm.model import ModelConfig, State, Stepper, label_offset
from charlstm.nn.head import log_softmax


MAX_BEAM = 10_000        # the beams' states and their K x V scores are held at once


@dataclass(frozen=True)
class BeamResult:
    text: str           # the prime and the continuation (without the stop text)
    log_prob: float     # natural log-probability of the continuation's symbols (stop text included)
    symbols: int        # how many symbols the continuation has (stop text included)
    finished: bool      # True when it ended with the stop text

    @property
    def score(self) -> float:
        """log_prob per symbol: the model's mean log-likelihood of what it wrote."""
        return self.log_prob / max(1, self.symbols)


def beam_search(params, config: ModelConfig, vocab: Vocab, beam: int, length: int = 500, prime: str = "",
                stop: str | None = None, num_results: int = 1, length_penalty: float = 1.0,
                label: int | None = None) -> list[BeamResult]:
    """The num_results best texts of a beam search of width `beam`, best first. label: the row of
    the label to write under, for a model conditioned on labels (as in sampling)."""
    if not 1 <= beam <= MAX_BEAM:
        raise CharlstmError(f"the beam width must be between 1 and {MAX_BEAM:,}, got {beam:,}")
    if length < 1:
        raise CharlstmError(f"the length must be at least 1 symbol, got {length}")
    if not 1 <= num_results <= beam:
        raise CharlstmError(f"beam search returns between 1 and --beam ({beam}) texts, got {num_results}")
    if not np.isfinite(length_penalty) or length_penalty < 0:
        raise CharlstmError(f"the length penalty must be a number >= 0, got {length_penalty}")
    check_writable(vocab)
    offset = label_offset(config, label)
    # the beams' texts grow a symbol a step; each step scores, sorts and extends K x V choices
    V, per_beam = len(vocab), 8 * (config.num_layers * config.hidden_size * 8)
    validate.fits(lambda beam, length: beam * (length * BYTES_PER_HELD_SYMBOL + 32 * V + per_beam),
                  {"beam": beam, "length": length}, "the beam search")
    stop = stop or None
    prime_ids = vocab.encode(prime) if prime else np.zeros(0, dtype=np.int64)
    if len(prime_ids) > 0:
        first, last = prime_ids[:-1], int(prime_ids[-1])
    else:   # as sampling does: start as if after a line break (or symbol 0), unprinted
        first, last = prime_ids, vocab.symbols.index("\n") if "\n" in vocab.symbols else 0
    K, V = beam, len(vocab)
    stepper = Stepper(params, config, K)
    if len(first) > 0:
        stepper.set_state(read_prime(params, config, first, K, offset))

    ids = np.full(K, last, dtype=np.int64)            # symbols; the model reads ids + offset
    scores = np.full(K, -np.inf)
    scores[0] = 0.0                      # the K beams start as one: the others must not duplicate it
    texts = [""] * K
    counts = np.zeros(K, dtype=np.int64)
    finished: list[BeamResult] = []
    for _ in range(length):
        checkpoint()                     # a long search answers Ctrl-C
        logp = log_softmax(stepper.step(ids + offset).astype(np.float64))       # (K, V)
        if vocab.unk is not None:
            logp[:, vocab.unk] = -np.inf                                # never written, as in sampling
        total = (scores[:, None] + logp).reshape(-1)
        # The K best extensions (more when some of them finish, so K stay live when possible).
        order = np.argsort(-total, kind="stable")[:2 * K]
        live = []
        for flat in order:
            if not np.isfinite(total[flat]):
                break
            parent, symbol = divmod(int(flat), V)
            text = texts[parent] + vocab.symbols[symbol]
            if stop is not None and text.endswith(stop):
                # Cut where the stop text starts, or before the symbol it starts in (a stop of "\n"
                # ends CRLF text before the "\r\n").
                cut = min(len(text) - len(stop), len(texts[parent]))
                finished.append(BeamResult(prime + text[:cut], float(total[flat]),
                                           int(counts[parent]) + 1, True))
                continue
            live.append((parent, symbol, text, float(total[flat])))
            if len(live) == K:
                break
        if not live:
            break
        parents = np.array([p for p, _, _, _ in live])
        state = stepper.state()
        keep = np.resize(parents, K)      # rows past the live ones repeat them, scored -inf below
        stepper.set_state(State(*(None if part is None else part[:, keep] for part in state)))
        ids = np.resize(np.array([s for _, s, _, _ in live]), K)
        scores = np.full(K, -np.inf)
        scores[:len(live)] = [t for _, _, _, t in live]
        texts = [t for _, _, t, _ in live] + [""] * (K - len(live))
        counts = np.resize(counts[parents] + 1, K)
    unfinished = [BeamResult(prime + texts[k], float(scores[k]), int(counts[k]), False)
                  for k in range(K) if np.isfinite(scores[k])]
    ranked = sorted(finished + unfinished, key=lambda r: -r.log_prob / max(1, r.symbols) ** length_penalty)
    return ranked[:num_results]


__all__ = ["BeamResult", "beam_search"]
