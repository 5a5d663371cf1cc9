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
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charlstm.data.datadir import head_text
from charlstm.data.vocab import split_symbols
from charlstm.errors import CharlstmError, TextError, naming
from charlstm.interrupts import checkpoint
from charlstm.files import require_regular_file, write_atomically
from charlstm.model import as_one_hot, forward, layer_values, unconditioned, zero_state
from charlstm.nn.cells import CELLS
from charlstm.nn.head import log_softmax
from charlstm import validate
from charlstm.validate import Fields, load_json, shown

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

    def summary(self) -> str:
        """One line: its symbols, units and the model's loss on them."""
        mean = float(np.nanmean(self.loss)) if len(self) > 1 else float("nan")
        return (f"{len(self):,} symbols, {self.num_layers} x {self.hidden_size} {self.cell} units, "
                f"{mean / np.log(2):.3f} bits/char")

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
        """Read a trace written by `save` (or `charlstm trace`); format 1 (LSTM only) too. The
        file is checked as a checkpoint is (see charlstm.validate): its meta record field by
        field, every array's shape against the symbol list and against the others, so a damaged
        or hand-edited trace is one error line, never a wrong answer."""
        path = Path(path)
        require_regular_file(path, "charlstm trace")
        name = str(path)
        try:
            with zipfile.ZipFile(path) as archive:
                sizes = {i.filename[:-4]: i.file_size for i in archive.infolist() if i.filename.endswith(".npy")}
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            raise CharlstmError(f"{name}: not a charlstm trace (not an .npz archive, or truncated)") from None
        if "meta" not in sizes:
            raise CharlstmError(f"{name}: not a charlstm trace (no meta record)")
        budget = max(MIN_UNPACK_BYTES, UNPACK_RATIO * path.stat().st_size)
        if sizes["meta"] > MAX_META_BYTES or sum(sizes.values()) > budget:
            raise CharlstmError(f"{name}: its members declare {sum(sizes.values()):,} bytes unpacked, more than "
                                f"a trace of {path.stat().st_size:,} bytes can hold; refusing to unpack it")
        try:
            with np.load(path, allow_pickle=False) as z:
                raw = z["meta"]
                if raw.shape != () or raw.dtype.kind != "U":
                    raise CharlstmError(f"{name}: not a charlstm trace (meta is not a text record)")
                meta = Fields(load_json(str(raw), f"{name}: the meta record"), f"{name}: the trace's meta record")
                if meta.record.get("format") != "charlstm-trace":
                    raise CharlstmError(f"{name}: not a charlstm trace (format {shown(meta.record.get('format'))})")
                version = meta.integer("version", lo=1, hi=TRACE_VERSION)
                symbols = meta.strings("symbols", nonempty=True)
                vocab = meta.strings("vocab", nonempty=True)
                cell = meta.text("cell", choices=tuple(CELLS), default="lstm")
                quantities = LSTM_QUANTITIES if version == 1 else tuple(meta.strings("quantities"))
                if not quantities or quantities[0] != "h" or len(set(quantities)) != len(quantities) \
                        or not set(quantities) <= set(CELLS[cell].quantities):
                    raise CharlstmError(f"{name}: the trace's quantities {shown(', '.join(quantities))} are not "
                                        f"the {cell} cell's ({', '.join(CELLS[cell].quantities)})")
                missing = [k for k in (*quantities, "ids", "top_ids", "top_probs", "loss") if k not in sizes]
                if missing:
                    raise CharlstmError(f"{name}: not a whole charlstm trace (no {', '.join(missing)})")
                arrays = {q: z[q] for q in quantities}
                rest = {k: z[k] for k in ("ids", "top_ids", "top_probs", "loss")}
        except CharlstmError:
            raise
        except ValueError as e:
            if "allow_pickle" in str(e) or "object" in str(e).lower():
                raise CharlstmError(f"{name}: holds Python objects; refusing to load it "
                                    "(loading a trace never unpickles)") from None
            raise CharlstmError(f"{name}: damaged trace ({e})") from None
        except Exception as e:      # a truncated or corrupt member: zlib, zipfile, EOF
            raise CharlstmError(f"{name}: damaged or truncated trace ({type(e).__name__})") from None
        _check_arrays(name, symbols, vocab, arrays, rest)
        return cls(symbols=symbols, vocab=vocab, arrays=arrays, cell=cell, **rest)


MAX_META_BYTES = 64 << 20
MIN_UNPACK_BYTES = 256 << 20       # a trace's members may unpack to this much whatever the file's size ...
UNPACK_RATIO = 100                 # ... or to this many times the file (traces hardly compress; bombs do)


def _check_arrays(name: str, symbols, vocab, arrays: dict, rest: dict) -> None:
    """Every array of a trace agrees with its symbol list, its vocabulary and the others."""
    N, V = len(symbols), len(vocab)
    h = arrays["h"]
    if N < 1:
        raise CharlstmError(f"{name}: the trace holds no symbol")
    if h.ndim != 3 or h.shape[1] != N or 0 in h.shape:
        raise CharlstmError(f"{name}: h has shape {h.shape}, not (layers, {N} symbols, units)")
    for q, a in arrays.items():
        if a.shape != h.shape or not np.issubdtype(a.dtype, np.floating):
            raise CharlstmError(f"{name}: {q} has shape {a.shape} ({a.dtype}), h has {h.shape}")
        if not np.isfinite(a).all():
            raise CharlstmError(f"{name}: {q} holds NaN or infinite values")
    ids, top_ids, top_probs, loss = rest["ids"], rest["top_ids"], rest["top_probs"], rest["loss"]
    for key, a, shape in (("ids", ids, (N,)), ("loss", loss, (N,))):
        if a.shape != shape:
            raise CharlstmError(f"{name}: {key} has shape {a.shape}, the trace has {N} symbols")
    if top_ids.ndim != 2 or top_ids.shape[0] != N or not 1 <= top_ids.shape[1] <= V:
        raise CharlstmError(f"{name}: top_ids has shape {top_ids.shape}, not ({N}, k) with k at most {V}")
    if top_probs.shape != top_ids.shape:
        raise CharlstmError(f"{name}: top_probs has shape {top_probs.shape}, top_ids {top_ids.shape}")
    for key, a in (("ids", ids), ("top_ids", top_ids)):
        if not np.issubdtype(a.dtype, np.integer) or (a < 0).any() or (a >= V).any():
            raise CharlstmError(f"{name}: {key} are not ids of its {V}-symbol vocabulary")
    if not np.issubdtype(top_probs.dtype, np.floating) or not ((top_probs >= 0) & (top_probs <= 1)).all():
        raise CharlstmError(f"{name}: top_probs are not probabilities")
    if not np.issubdtype(loss.dtype, np.floating) or (loss[np.isfinite(loss)] < 0).any() or np.isinf(loss).any():
        raise CharlstmError(f"{name}: loss is not a number of nats per symbol")


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
    text = validate.text(text, "text")
    max_symbols = validate.size(max_symbols, "max_symbols")
    chunk = validate.size(chunk, "chunk")
    top = validate.size(top, "top")
    if not all(hasattr(model, a) for a in ("params", "config", "vocab")):
        raise CharlstmError(f"model must be a charlstm Model (charlstm.load(path)), got {type(model).__name__}")
    params, config, vocab = model.params, model.config, model.vocab
    unconditioned(config, "tracing")
    top = min(top, len(vocab))
    symbols = _leading_symbols(text, vocab.unit, max_symbols + 1)
    if not symbols:
        raise TextError("the text is empty")
    ids = vocab.encode("".join(symbols), unknown="unk").astype(np.intp)
    if len(ids) != len(symbols):          # a cut grapheme re-split differently: trust the ids
        symbols = split_symbols("".join(symbols), vocab.unit)
    N = min(len(ids), max_symbols)
    L, H = config.num_layers, config.hidden_size
    quantities, V = len(config.cell_type.quantities), len(vocab)

    def estimate(max_symbols, chunk, top):      # the trace's arrays, and one chunk's caches and scores
        n = min(N, max_symbols)
        return 4 * n * (quantities * L * H + 2 * top + 1) + 8 * min(chunk, n) * (2 * quantities * L * H + 4 * V)
    validate.fits(estimate, {"max_symbols": max_symbols, "chunk": chunk, "top": top}, "the trace")
    dtype = params["head.W"].dtype

    out = {q: np.empty((L, N, H), dtype=np.float32) for q in config.cell_type.quantities}
    top_ids = np.empty((N, top), dtype=np.min_scalar_type(max(0, len(vocab) - 1)))
    top_probs = np.empty((N, top), dtype=np.float32)
    loss = np.full(N, np.nan, dtype=np.float32)
    state = zero_state(config, 1, dtype)
    params, config = as_one_hot(params, config)     # an embedding's input table, once for the text
    for start in range(0, N, chunk):
        checkpoint()                                           # a long trace answers Ctrl-C
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


def trace_file(model, path, max_symbols: int = 20_000, chunk: int = 256, top: int = 5,
               encoding_errors: str = "strict", checkpoint=None) -> Trace:
    """`trace` over the start of a text file or a data directory (only its first max_symbols + 1
    symbols are read). checkpoint: where the model came from, named in a message about a symbol
    its vocabulary lacks."""
    text = head_text(path, max_symbols + 1, model.vocab.unit, encoding_errors)
    with naming(path, checkpoint):
        return trace(model, text, max_symbols=max_symbols, chunk=chunk, top=top)


__all__ = ["Trace", "trace", "trace_file", "LSTM_QUANTITIES"]
