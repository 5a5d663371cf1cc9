"""Traces: what every unit of every layer did at every symbol of a text.

`trace(model, text)` reads the text through the network (no dropout, batch 1, from a zero state)
and keeps, for each symbol n, the values *after reading symbol n*:

    quantities  (L, N, H)  each the cell's own: h, c and the gates i, f, g, o for the LSTMs;
                           h and the gates r, z, n for the GRU; h for the vanilla RNN
    top_ids     (N, k)     the k most likely next symbols, most likely first
    top_probs   (N, k)     ... and their probabilities
    loss        (N,)       nats of the symbol that actually comes next (NaN after the last one)

Arrays are layer-major, so `trace.h[layer][:, unit]` (or `trace.values("h")`) is one unit's
activation over the text.

The text is read in chunks of `chunk` symbols with the state carried from one to the next, through
the same model forward pass that training uses (its caches already hold every quantity), so the
values are exactly the model's; memory holds one chunk's caches plus the kept values, and only
the first `max_symbols` symbols are kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.data.vocab import split_symbols
from charlstm.errors import CharlstmError
from charlstm.files import write_atomically
from charlstm.model import forward, layer_values, zero_state
from charlstm.nn.head import log_softmax

LSTM_QUANTITIES = ("h", "c", "i", "f", "g", "o")     # what a format-1 trace holds
TRACE_VERSION = 2


@dataclass
class Trace:
    """Per-symbol values of a model reading a text (see the module docstring for the shapes)."""

    symbols: list[str]         # the N symbols read
    ids: np.ndarray            # (N,) their ids in the model's vocabulary
    vocab: list[str]           # the model's symbols, to name top_ids
    arrays: dict[str, np.ndarray]   # quantity -> (L, N, H) float32, in the cell's order, h first
    top_ids: np.ndarray        # (N, k)
    top_probs: np.ndarray      # (N, k) float32
    loss: np.ndarray           # (N,) float32, nats of the next symbol; NaN where there is none
    cell: str = "lstm"

    @property
    def quantities(self) -> tuple[str, ...]:
        return tuple(self.arrays)

    def __getattr__(self, name: str):
        arrays = self.__dict__.get("arrays")
        if arrays is not None and name in arrays:    # trace.h, trace.c, trace.z, ...
            return arrays[name]
        raise AttributeError(name)

    @property
    def num_layers(self) -> int:
        return self.arrays["h"].shape[0]

    @property
    def hidden_size(self) -> int:
        return self.arrays["h"].shape[2]

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def text(self) -> str:
        return "".join(self.symbols)

    def values(self, quantity: str) -> np.ndarray:
        """The (L, N, H) array of one quantity (see `quantities`)."""
        if quantity not in self.arrays:
            raise CharlstmError(f"unknown quantity {quantity!r} for the {self.cell} cell: use one of "
                                f"{', '.join(self.quantities)}")
        return self.arrays[quantity]

    def surprise(self) -> np.ndarray:
        """(N,) nats of predicting each symbol from the ones before it (NaN for the first)."""
        out = np.full(len(self.loss), np.nan, dtype=np.float32)
        out[1:] = self.loss[:-1]
        return out

    def __repr__(self) -> str:
        return (f"Trace({len(self)} symbols, {self.num_layers} x {self.hidden_size} {self.cell} units, "
                f"top {self.top_ids.shape[1]} candidates)")

    def _repr_html_(self) -> str:
        """In a notebook, the trace shows as the page of `charlstm viz`, in a frame of its own."""
        from charlstm.analysis.viz import render_frame
        return render_frame(self)

    def save(self, path) -> None:
        """Write the trace as one .npz file (no pickled objects), atomically."""
        meta = {"format": "charlstm-trace", "version": TRACE_VERSION, "symbols": self.symbols,
                "vocab": self.vocab, "cell": self.cell, "quantities": list(self.quantities)}
        arrays = {"meta": np.array(json.dumps(meta, ensure_ascii=False)), "ids": self.ids,
                  "top_ids": self.top_ids, "top_probs": self.top_probs, "loss": self.loss}
        arrays.update(self.arrays)
        write_atomically(path, lambda f: np.savez_compressed(f, **arrays), "trace")

    @classmethod
    def load(cls, path) -> "Trace":
        """Read a trace written by `save` (or `charlstm trace`); format 1 (LSTM only) too."""
        path = Path(path)
        if not path.exists():
            raise CharlstmError(f"{path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if not isinstance(meta, dict):
                    raise ValueError("meta is not an object")
                version = meta.get("version")
                quantities = LSTM_QUANTITIES if version == 1 else tuple(meta.get("quantities", ()))
                if not all(isinstance(q, str) and q.isidentifier() for q in quantities):
                    raise ValueError("its quantities are not names")
                arrays = {q: z[q] for q in quantities}
                rest = {k: z[k] for k in ("ids", "top_ids", "top_probs", "loss")}
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            raise CharlstmError(f"{path}: not a charlstm trace ({e})") from None
        if meta.get("format") != "charlstm-trace" or meta.get("version") not in (1, TRACE_VERSION):
            raise CharlstmError(f"{path}: not a charlstm trace (format {meta.get('format')!r})")
        if "h" not in arrays:
            raise CharlstmError(f"{path}: not a charlstm trace (it holds no hidden state h)")
        return cls(symbols=list(meta["symbols"]), vocab=list(meta["vocab"]), arrays=arrays,
                   cell=str(meta.get("cell", "lstm")), **rest)


def _leading_symbols(text: str, unit: str, count: int) -> list[str]:
    """The first `count` symbols of text, splitting only as much of it as needed."""
    span = max(1, count)
    while True:
        piece = text[:span]
        symbols = split_symbols(piece, unit)
        if span >= len(text):
            return symbols[:count]
        if len(symbols) > count:          # the last symbol of a cut piece may itself be cut
            return symbols[:count]
        span *= 2


def trace(model, text: str, max_symbols: int = 20_000, chunk: int = 256, top: int = 5) -> Trace:
    """Read text through the model and keep every unit's h, c and gates at every symbol.

    model: a charlstm Model (or anything with .params, .config and .vocab). Symbols outside the
    model's vocabulary read as its unknown symbol (an error if it has none). Only the first
    max_symbols symbols are read (and one more, to score the last prediction). top: how many
    next-symbol candidates to keep (at most the vocabulary's size).
    """
    if max_symbols < 1:
        raise CharlstmError(f"max-symbols must be at least 1, got {max_symbols}")
    if chunk < 1:
        raise CharlstmError(f"chunk must be at least 1, got {chunk}")
    params, config, vocab = model.params, model.config, model.vocab
    if top < 1:
        raise CharlstmError(f"top must be at least 1, got {top}")
    top = min(top, len(vocab))
    symbols = _leading_symbols(text, vocab.unit, max_symbols + 1)
    if not symbols:
        raise CharlstmError("the text is empty")
    ids = vocab.encode("".join(symbols), unknown="unk").astype(np.intp)
    if len(ids) != len(symbols):          # a cut grapheme re-split differently: trust the ids
        symbols = split_symbols("".join(symbols), vocab.unit)
    N = min(len(ids), max_symbols)
    L, H = config.num_layers, config.hidden_size
    dtype = params["head.W"].dtype

    out = {q: np.empty((L, N, H), dtype=np.float32) for q in config.cell_type.quantities}
    top_ids = np.empty((N, top), dtype=np.min_scalar_type(max(0, len(vocab) - 1)))
    top_probs = np.empty((N, top), dtype=np.float32)
    loss = np.full(N, np.nan, dtype=np.float32)
    state = zero_state(config, 1, dtype)
    for start in range(0, N, chunk):
        end = min(N, start + chunk)
        logits, state, cache = forward(params, config, ids[start:end, None], state)   # the state carries
        for q, layers in layer_values(config, cache).items():
            for layer, v in enumerate(layers):                 # (T, 1, H)
                out[q][layer, start:end] = v[:, 0]
        logp = log_softmax(logits)                             # (T, V)
        best = np.argsort(-logp, axis=1, kind="stable")[:, :top]
        top_ids[start:end] = best
        top_probs[start:end] = np.exp(np.take_along_axis(logp, best, axis=1))
        nxt = ids[start + 1:end + 1]                          # the next symbols that exist
        loss[start:start + len(nxt)] = -logp[np.arange(len(nxt)), nxt]
    return Trace(symbols=symbols[:N], ids=ids[:N].astype(vocab.dtype), vocab=list(vocab.symbols),
                 arrays=out, top_ids=top_ids, top_probs=top_probs, loss=loss, cell=config.cell)


__all__ = ["Trace", "trace", "LSTM_QUANTITIES"]
