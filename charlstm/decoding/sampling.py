"""Generating text: one symbol at a time, for one sample or a batch of them in parallel.

Decoding: scores are divided by the temperature (0 means always take the most likely symbol),
optionally cut to the top_k most likely symbols and/or the smallest set whose probability reaches
top_p, then a symbol is drawn from the softmax. The unknown symbol is never drawn.

Sampling spends its time in Python overhead, not arithmetic (one symbol is a handful of small
products), so the step below precomputes what does not change (the first layer's gathered input
rows with their bias, the fused weights), keeps the state in preallocated arrays, and draws the
uniform numbers in blocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.nn.cells.lstm import sigmoid_prescale, to_loop_rows
from charlstm.model.stack import ModelConfig, State, forward, zero_state
from charlstm.data.vocab import Vocab


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
    logits /= temperature
    if top_k is not None and top_k < logits.shape[1]:
        kth = np.partition(logits, -top_k, axis=1)[:, -top_k][:, None]
        logits[logits < kth] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
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


class Stepper:
    """Advances the network by one symbol per call, for B streams, with preallocated buffers.

    The same math as `lstm_forward`, in the same feature-major loop layout (see lstm.py), arranged
    so that each layer costs one matrix product per step. The states of all layers live in one
    column buffer, each layer's h followed by a constant row of ones (the bias input):
        rows = [h_0; 1; h_1; 1; ...; h_{L-1}; 1]
    so the input of layer l >= 1 (h_{l-1} of this step, the ones row, its own h of the previous
    step) is one contiguous block of rows, and its weights are arranged to match:
    [Wx | b | Wh]. The first layer's input is a column of its (pre-arranged) Wx, picked by id.
    """

    def __init__(self, params, config: ModelConfig, batch_size: int):
        dtype = params["head.W"].dtype
        H, L = config.hidden_size, config.num_layers
        self.H, self.L = H, L
        scale = sigmoid_prescale(H, dtype)
        self.first_columns = to_loop_rows(params["lstm.0.Wx"], scale=scale)   # (4H, V)
        self.weights = []
        for l in range(L):
            Wx, Wh, b = (params[f"lstm.{l}.{k}"] for k in ("Wx", "Wh", "b"))
            # the rows this layer reads: [h_0; 1] for the first, [h_{l-1}; 1; h_l] for the others
            parts = [Wh, b[None, :]] if l == 0 else [Wx, b[None, :], Wh]
            self.weights.append(to_loop_rows(np.concatenate(parts, axis=0), scale=scale))
        self.rows = np.zeros((L * (H + 1), batch_size), dtype=dtype)
        self.rows[H::H + 1] = 1
        self.c = np.zeros((L, H, batch_size), dtype=dtype)
        self.z = np.empty((4 * H, batch_size), dtype=dtype)
        self.picked = np.empty((4 * H, batch_size), dtype=dtype)
        self.ig = np.empty((H, batch_size), dtype=dtype)
        self.head_W, self.head_b = params["head.W"], params["head.b"]
        self.logits = np.empty((batch_size, config.vocab_size), dtype=dtype)
        self.top_h = self._h(L - 1).T
        self.plan = self._plan()

    def _h(self, l: int) -> np.ndarray:
        return self.rows[l * (self.H + 1):l * (self.H + 1) + self.H]

    def set_state(self, state: State) -> None:
        for l in range(self.L):
            self._h(l)[...] = state.h[l].T
        self.c[...] = state.c.transpose(0, 2, 1)

    def state(self) -> State:
        """The current (h, c), each (L, B, H), as the model's functions use it."""
        return State(np.stack([self._h(l).T for l in range(self.L)]), self.c.transpose(0, 2, 1).copy())

    def _plan(self):
        """Every view a step uses, made once: at batch 1 slicing would cost as much as the math."""
        H, z, rows = self.H, self.z, self.rows
        gates = (z[:3 * H], z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:])   # sigmoid block, o, i, f, g
        inputs = [rows[:H + 1]] + [rows[(l - 1) * (H + 1):(l + 1) * (H + 1) - 1] for l in range(1, self.L)]
        return [(self.weights[l], inputs[l], self.c[l], self._h(l)) + gates for l in range(self.L)]

    def step(self, ids: np.ndarray) -> np.ndarray:
        """Feed one symbol per stream (B,); return the scores for the next one (B, V)."""
        z, ig = self.z, self.ig
        for l, (weights, inputs, c, h, sig, o, i, f, g) in enumerate(self.plan):
            np.matmul(weights, inputs, out=z)
            if l == 0:
                np.take(self.first_columns, ids, axis=1, out=self.picked)
                z += self.picked
            np.tanh(z, out=z)
            sig *= 0.5                         # o, i, f: sigmoid = 0.5 tanh(z / 2) + 0.5
            sig += 0.5
            c *= f
            np.multiply(i, g, out=ig)
            c += ig
            np.tanh(c, out=h)
            h *= o
        np.matmul(self.top_h, self.head_W, out=self.logits)
        self.logits += self.head_b
        return self.logits


def generate(params, config: ModelConfig, vocab: Vocab, rng: np.random.Generator, length: int = 500,
             temperature: float = 1.0, prime: str = "", top_k: int | None = None,
             top_p: float | None = None, num_samples: int = 1, stop: str | None = None
             ) -> Iterator[tuple[list[str], np.ndarray]]:
    """Yield, step by step, (new text of each sample, which samples are finished).

    The first item holds the prime (the model reads it first); then each item holds the text each
    sample added in that step ("" once a sample has reached `stop`; the stop text itself is not
    emitted). Ends after `length` new symbols or when every sample has stopped.
    """
    if length < 1:
        raise CharlstmError(f"the length must be at least 1 symbol, got {length}")
    if num_samples < 1:
        raise CharlstmError(f"the number of samples must be at least 1, got {num_samples}")
    check_decoding(temperature, top_k, top_p, len(vocab))
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
    if len(first) > 0:   # read the prime in one chunk, the fast way
        dtype = params["head.W"].dtype
        inputs = np.repeat(first.astype(np.int64)[:, None], B, axis=1)
        _, state, _ = forward(params, config, inputs, zero_state(config, B, dtype))
        stepper.set_state(state)
    done = np.zeros(B, dtype=bool)
    yield [prime] * B, done.copy()

    banned = vocab.unk
    ids = np.full(B, last, dtype=np.int64)
    held = [""] * B          # generated text that might still turn out to be the stop text
    block = 256
    for n in range(length):
        if n % block == 0:
            uniforms = rng.random((block, B))
        logits = stepper.step(ids)
        probs = filter_probs(logits, temperature, top_k, top_p, banned)
        ids = draw(probs, uniforms[n % block])
        out = []
        for k in range(B):
            if done[k]:
                out.append("")
                continue
            piece = vocab.symbols[ids[k]]
            if stop is None:
                out.append(piece)
                continue
            text = held[k] + piece
            if text.endswith(stop):             # the stop text ends the sample, unprinted
                done[k] = True
                out.append(text[:-len(stop)])
                held[k] = ""
                continue
            keep = _stop_prefix_len(text, stop)
            out.append(text[:len(text) - keep])
            held[k] = text[len(text) - keep:]
        yield out, done.copy()
        if done.all():
            return
    yield held, np.ones(B, dtype=bool)


def _stop_prefix_len(text: str, stop: str) -> int:
    """Length of the longest end of text that is a proper beginning of stop (0 if none)."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if stop.startswith(text[-n:]):
            return n
    return 0


def sample_texts(params, config, vocab, rng, **kwargs) -> list[str]:
    """The whole samples as strings (prime included), for the notebook API."""
    pieces_by_sample: list[list[str]] = []
    for pieces, _ in generate(params, config, vocab, rng, **kwargs):
        if not pieces_by_sample:
            pieces_by_sample = [[p] for p in pieces]
        else:
            for k, p in enumerate(pieces):
                pieces_by_sample[k].append(p)
    return ["".join(p) for p in pieces_by_sample]
