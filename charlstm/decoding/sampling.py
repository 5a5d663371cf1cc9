"""Generating text: one symbol at a time, for one sample or a batch of them in parallel.

Decoding: scores are divided by the temperature (0 means always take the most likely symbol),
optionally cut to the top_k most likely symbols and/or the smallest set whose probability reaches
top_p, then a symbol is drawn from the softmax. The unknown symbol is never drawn.

Sampling spends its time in Python overhead, not arithmetic (one symbol is a handful of small
products): the model's Stepper (model/step.py) keeps every buffer and view prepared, and the
uniform numbers are drawn in blocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from charlstm import validate
from charlstm.errors import CharlstmError
from charlstm.interrupts import checkpoint
from charlstm.model.config import ModelConfig, zero_state
from charlstm.model import forward, label_offset
from charlstm.model.step import Stepper
from charlstm.data.vocab import Vocab


SAMPLE_TEMPERATURE = 0.8   # the sample's default: a little surer than the model, fewer stray symbols


def check_decoding(temperature: float, top_k: int | None, top_p: float | None, vocab_size: int) -> None:
    """Reject decoding settings that make no sense, with a message a user can act on."""
    if temperature is None or not math.isfinite(temperature) or temperature < 0:
        raise CharlstmError(f"temperature must be a number >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= vocab_size:
        raise CharlstmError(f"top-k must be between 1 and the vocabulary size ({vocab_size}), got {top_k}")
    if top_p is not None and not (0 < top_p <= 1):
        raise CharlstmError(f"top-p must be in (0, 1], got {top_p}")


def filter_probs(logits: np.ndarray, temperature: float, top_k=None, top_p=None, banned=None) -> np.ndarray:
    """Scores (B, V) -> the probabilities to draw from (B, V), after temperature, top-k, top-p.

    With temperature 0 all the mass goes to the most likely symbol.
    """
    logits = np.array(logits, dtype=np.float64)
    if banned is not None:
        logits[:, banned] = -np.inf
    if temperature == 0:
        probs = np.zeros_like(logits)
        probs[np.arange(len(logits)), logits.argmax(axis=1)] = 1.0
        return probs
    if top_k is not None and top_k < logits.shape[1]:
        # Exactly k symbols, even when several share the k-th score: the first of them by id.
        cut = np.argsort(-logits, axis=1, kind="stable")[:, top_k:]
        np.put_along_axis(logits, cut, -np.inf, axis=1)
    # The most likely score is subtracted before dividing: a temperature so small that the
    # division overflows still leaves the most likely symbol at 0 (probability 1), never inf - inf.
    logits -= logits.max(axis=1, keepdims=True)
    if temperature >= 1e-6:
        logits /= temperature           # no float64 score overflows here (errstate costs a step's worth)
    else:
        with np.errstate(over="ignore"):
            logits /= temperature
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-probs, axis=1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p   # mass of the more likely symbols
        drop_sorted = before >= top_p                      # keeps the smallest set reaching top_p
        drop = np.zeros_like(drop_sorted)
        np.put_along_axis(drop, order, drop_sorted, axis=1)
        probs[drop] = 0.0
        probs /= probs.sum(axis=1, keepdims=True)
    return probs


def draw(probs: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw of one symbol per row from probs (B, V) with uniforms (B,) in [0, 1)."""
    cdf = np.cumsum(probs, axis=1)
    if len(probs) == 1:
        # The same rule as below, by bisection: the first symbol whose cdf exceeds u * total.
        # A symbol of probability 0 has the cdf of the one before it, so it is never the first.
        k = int(np.searchsorted(cdf[0], uniforms[0] * cdf[0, -1], side="right"))
        if k == probs.shape[1]:                # u * total rounded up to the total
            k = probs.shape[1] - 1 - int(np.argmax(probs[0, ::-1] > 0))
        return np.array([k])
    # The first symbol whose cdf exceeds u * total: a symbol of probability 0 is never drawn, not
    # even for u == 0, and rounding at u close to 1 falls back to the last possible symbol.
    ids = (cdf <= (uniforms * cdf[:, -1])[:, None]).sum(axis=1)
    last_possible = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(ids, last_possible)


class OneSample:
    """draw(filter_probs(logits, temperature, banned=banned), u) for one sample (batch 1) with
    no top-k or top-p, the same arithmetic in buffers made once. At batch 1 the model's step is a
    few matrix-vector products, so the dozen small array calls of the general path (each
    allocating) were a seventh of a GRU's step and a third of a vanilla RNN's; this one makes
    nine calls and no allocation. tests/test_sampling.py holds it equal to the general path."""

    def __init__(self, vocab_size: int, temperature: float, banned=None):
        self.temperature, self.banned = temperature, banned
        self.divisor = np.array(temperature, dtype=np.float64)   # converted once, not per call
        self.probs = np.empty(vocab_size)
        self.cdf = np.empty(vocab_size)

    def __call__(self, logits: np.ndarray, u: float) -> int:
        # The ufuncs themselves, outputs by position: the same arithmetic as the methods
        # (max, sum, cumsum), without their wrappers, which cost as much as the work here.
        probs, cdf = self.probs, self.cdf
        np.copyto(probs, logits[0])
        if self.banned is not None:
            probs[self.banned] = -np.inf
        np.subtract(probs, np.maximum.reduce(probs), probs)
        if self.temperature >= 1e-6:
            np.divide(probs, self.divisor, probs)
        else:
            with np.errstate(over="ignore"):
                np.divide(probs, self.divisor, probs)
        np.exp(probs, probs)
        np.divide(probs, np.add.reduce(probs), probs)
        np.add.accumulate(probs, out=cdf)
        k = int(cdf.searchsorted(u * cdf[-1], side="right"))
        if k == len(probs):                    # u * total rounded up to the total
            k = len(probs) - 1 - int(np.argmax(probs[::-1] > 0))
        return k


MAX_SAMPLES = 100_000   # samples grow as one batch: their states and scores are held at once
PRIME_CHUNK = 256   # symbols of the prime read at once: the caches of one chunk are all it holds


def read_prime(params, config: ModelConfig, ids: np.ndarray, batch_size: int, offset: int = 0):
    """The state after reading ids (N,) from a zero state, for batch_size identical streams. Read
    in chunks with the state carried, so a long prime costs one chunk's memory, not N steps'.
    offset: what each id gains under the label decoded with (model.label_offset)."""
    state = zero_state(config, batch_size, params["head.W"].dtype)
    for start in range(0, len(ids), PRIME_CHUNK):
        inputs = np.repeat((ids[start:start + PRIME_CHUNK] + offset).astype(np.intp)[:, None], batch_size, axis=1)
        _, state, _ = forward(params, config, inputs, state)
    return state


def generate(params, config: ModelConfig, vocab: Vocab, rng: np.random.Generator, length: int = 500,
             temperature: float = 1.0, prime: str = "", top_k: int | None = None,
             top_p: float | None = None, num_samples: int = 1, stop: str | None = None,
             uniform_block: int = 256, label: int | None = None) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield, step by step, (new text of each sample, which samples are finished).

    label: the row of the label to write under, for a model conditioned on labels (it reads
    every symbol, the prime's too, as its joint id; see model/stack.py).

    The first item holds the prime (the model reads it first); then each item holds the text each
    sample added in that step ("" once a sample has reached `stop`; the stop text itself is not
    emitted). Ends after `length` new symbols or when every sample has stopped.
    The uniform numbers behind the draws come from rng `uniform_block` steps at a time (one call
    instead of one per step): a seed gives the same text for the same block.
    """
    if length < 1:
        raise CharlstmError(f"the length must be at least 1 symbol, got {length}")
    if not 1 <= num_samples <= MAX_SAMPLES:
        raise CharlstmError(f"the number of samples must be between 1 and {MAX_SAMPLES:,} (one batch), "
                            f"got {num_samples:,}")
    check_decoding(temperature, top_k, top_p, len(vocab))
    check_writable(vocab)
    offset = label_offset(config, label)
    # the samples' states, scores and probabilities, held at once (float64 at worst)
    per_sample = 8 * (config.num_layers * config.hidden_size * 8 + 4 * len(vocab))
    validate.fits(lambda num_samples: per_sample * num_samples, {"num_samples": num_samples}, "the samples' states")
    if stop == "":
        stop = None
    prime_ids = vocab.encode(prime) if prime else np.zeros(0, dtype=np.int64)
    B = num_samples
    stepper = Stepper(params, config, B)
    if len(prime_ids) > 0:
        first, last = prime_ids[:-1], int(prime_ids[-1])
    else:
        # No prime: start as if after a line break (or, without one, after symbol 0), unprinted.
        first, last = prime_ids, vocab.symbols.index("\n") if "\n" in vocab.symbols else 0
    if len(first) > 0:
        stepper.set_state(read_prime(params, config, first, B, offset))
    done = np.zeros(B, dtype=bool)
    yield [prime] * B, done.copy()

    banned = vocab.unk
    ids = np.full(B, last + offset, dtype=np.int64)      # what the model reads: joint ids under a label
    held = [[] for _ in range(B)]    # symbols that might still turn out to hold the stop text
    block = uniform_block
    one = OneSample(len(vocab), temperature, banned) if B == 1 and temperature > 0 and top_k is None and \
        top_p is None else None
    if one is not None and stop is None:
        # One text, no stop: each step is the model's step, one draw and one symbol.
        symbols, step, running = vocab.symbols, stepper.step, np.zeros(1, dtype=bool)
        for n in range(length):
            if n % block == 0:
                checkpoint()        # a long sample answers Ctrl-C (every block: a step is microseconds)
                uniforms = rng.random((block, B))
            k = one(step(ids), uniforms[n % block, 0])
            ids[0] = k + offset
            yield [symbols[k]], running.copy()
        yield [""], np.ones(1, dtype=bool)
        return
    for n in range(length):
        if n % block == 0:
            checkpoint()
            uniforms = rng.random((block, B))
        logits = stepper.step(ids)
        if one is not None:
            drawn = [one(logits, uniforms[n % block, 0])]
        else:
            drawn = draw(filter_probs(logits, temperature, top_k, top_p, banned), uniforms[n % block])
        ids[:] = drawn
        ids += offset
        out = []
        for k in range(B):
            if done[k]:
                out.append("")
                continue
            piece = vocab.symbols[drawn[k]]
            if stop is None:
                out.append(piece)
                continue
            pending = held[k] + [piece]
            text = "".join(pending)
            if text.endswith(stop):             # the stop text ends the sample, unprinted ...
                done[k] = True
                cut = len(text) - len(stop)     # ... and so does the symbol it starts in: a stop of
                out.append(_whole_symbols(pending, cut))   # "\n" ends CRLF text before "\r\n"
                held[k] = []
                continue
            # Symbols that may begin the stop text wait; those wholly before it are printed.
            cut = len(text) - _stop_prefix_len(text, stop)
            emitted = _whole_symbols(pending, cut)
            out.append(emitted)
            held[k] = _symbols_from(pending, len(emitted))
        yield out, done.copy()
        if done.all():
            return
    yield ["".join(h) for h in held], np.ones(B, dtype=bool)


def check_writable(vocab: Vocab) -> None:
    """A vocabulary of nothing but the unknown symbol, which is never written, has nothing to write."""
    if vocab.unk is not None and len(vocab) == 1:
        raise CharlstmError("the model's vocabulary holds only the unknown symbol U+FFFD, which is never "
                            "written: there is nothing to generate")


def _whole_symbols(symbols: list[str], cut: int) -> str:
    """The symbols that end at or before character `cut` of their concatenation, joined."""
    out, at = [], 0
    for s in symbols:
        if at + len(s) > cut:
            break
        out.append(s)
        at += len(s)
    return "".join(out)


def _symbols_from(symbols: list[str], start: int) -> list[str]:
    """The symbols that begin at or after character `start` of their concatenation."""
    at = 0
    for k, s in enumerate(symbols):
        if at >= start:
            return symbols[k:]
        at += len(s)
    return []


def _stop_prefix_len(text: str, stop: str) -> int:
    """Length of the longest end of text that is a proper beginning of stop (0 if none)."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0


BYTES_PER_HELD_SYMBOL = 16   # a pointer per symbol while a text grows, then up to 4 bytes a character


def check_held_text(length: int, num_samples: int = 1, name: str = "length",
                    samples_name: str | None = "num_samples", what: str = "the samples") -> None:
    """Texts kept whole until they end (samples returned as strings, several samples printed in
    order, the evaluation's sample of a training run) fit in memory: refused before the first
    symbol, naming the size to lower, instead of growing until the machine gives out."""
    sizes = {name: length, samples_name: num_samples} if samples_name else {name: length}
    validate.fits(lambda **s: BYTES_PER_HELD_SYMBOL * math.prod(s.values()), sizes, what)


def sample_texts(params, config, vocab, rng, **kwargs) -> list[str]:
    """The whole samples as strings (prime included), for the notebook API."""
    length, num_samples = kwargs.get("length", 500), kwargs.get("num_samples", 1)
    if length >= 1 and 1 <= num_samples <= MAX_SAMPLES:      # else generate says what is wrong
        check_held_text(length, num_samples)
    pieces_by_sample: list[list[str]] = []
    for pieces, _ in generate(params, config, vocab, rng, **kwargs):
        if not pieces_by_sample:
            pieces_by_sample = [[p] for p in pieces]
        else:
            for k, p in enumerate(pieces):
                pieces_by_sample[k].append(p)
    return ["".join(p) for p in pieces_by_sample]
