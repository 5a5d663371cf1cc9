"""Features of a text, one number per symbol, and the units whose activation follows them.

Every feature describes the state *after reading* each symbol, the same moment a trace records:
an opening quote is inside the string it opens, a closing quote is outside again, and a newline
is at line position 0. Built-in features:

    indent          columns of leading whitespace of the symbol's line (tabs to multiples of 8)
    in-string       1 inside a Python-style string literal ('...', "...", '''...''', \"\"\"...\"\"\")
    in-comment      1 inside a # comment (outside strings), up to the end of the line
    line-position   symbols read since the last newline
    in-url          1 inside an http:// or https:// address
    in-hashtag      1 inside a #hashtag
    in-mention      1 inside an @mention
    count           a's read minus b's read since the last newline (the counting task)
    regex:PATTERN   1 inside any match of PATTERN

`rank_units` correlates a feature with every unit of a trace (any layer; h, c or a gate) and
returns the units that follow it best, each with a place in the text where it is most active.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import regex

from charlstm.errors import CharlstmError
from charlstm.validate import printable

_URL = regex.compile(r"https?://[^\s\"'<>]+")
_HASHTAG = regex.compile(r"(?<![\w#&])#\w+")
_MENTION = regex.compile(r"(?<![\w@])@\w+")


def _indent(text: str) -> np.ndarray:
    out = np.zeros(len(text))
    start = 0
    for line in text.split("\n"):
        column = 0
        for ch in line:
            if ch == " ":
                column += 1
            elif ch == "\t":
                column = column // 8 * 8 + 8
            else:
                break
        end = min(len(text), start + len(line) + 1)        # the line's newline belongs to it
        out[start:end] = column
        start = end
    return out


def _strings_and_comments(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(in-string, in-comment) per code point, from a small Python-flavoured scanner."""
    in_string = np.zeros(len(text))
    in_comment = np.zeros(len(text))
    state = None        # None (code), "#" (comment) or the open string's delimiter
    k, n = 0, len(text)
    while k < n:
        ch = text[k]
        if state is None:
            if ch == "#":
                state = "#"
                in_comment[k] = 1
            elif ch in "\"'":
                state = ch * 3 if text.startswith(ch * 3, k) else ch
                in_string[k:k + len(state)] = 1
                k += len(state)
                continue
        elif state == "#":
            if ch == "\n":
                state = None
            else:
                in_comment[k] = 1
        elif ch == "\\":                                 # an escape: both symbols stay inside
            in_string[k:k + 2] = 1
            k += 2
            continue
        elif text.startswith(state, k):                  # the closing delimiter
            in_string[k:k + len(state) - 1] = 1          # only its last quote closes the string
            k += len(state)
            state = None
            continue
        elif ch == "\n" and len(state) == 1:             # an unterminated one-line string
            state = None
        else:
            in_string[k] = 1
        k += 1
    return in_string, in_comment


def _since_newline(symbols: list[str], step: np.ndarray) -> np.ndarray:
    """Running sum of step (N,) that restarts after every newline symbol, which itself reads 0."""
    newline = np.array([s.endswith("\n") for s in symbols], dtype=bool)
    step = np.where(newline, 0, step).astype(np.int64)
    running = np.cumsum(step)
    index = np.arange(len(symbols))
    last = np.maximum.accumulate(np.where(newline, index, -1)) if len(symbols) else index
    return (running - np.where(last >= 0, running[np.maximum(last, 0)], 0)).astype(float)


def _line_position(symbols: list[str]) -> np.ndarray:
    return _since_newline(symbols, np.ones(len(symbols)))


def _count(symbols: list[str]) -> np.ndarray:
    return _since_newline(symbols, np.array([(s == "a") - (s == "b") for s in symbols]))


def _per_codepoint(function):
    """A feature of the text's code points, read per symbol after the symbol's last code point."""
    def per_symbol(symbols: list[str]) -> np.ndarray:
        values = np.asarray(function("".join(symbols)), dtype=np.float64)
        return values[np.cumsum([len(s) for s in symbols], dtype=np.int64) - 1]
    return per_symbol


def _matches(pattern) -> callable:
    def inside(text: str) -> np.ndarray:
        out = np.zeros(len(text))
        for m in pattern.finditer(text):
            out[m.start():m.end()] = 1
        return out
    return inside


FEATURES = {       # name -> function(symbols) -> (N,) values
    "indent": _per_codepoint(_indent),
    "in-string": _per_codepoint(lambda text: _strings_and_comments(text)[0]),
    "in-comment": _per_codepoint(lambda text: _strings_and_comments(text)[1]),
    "line-position": _line_position,
    "in-url": _per_codepoint(_matches(_URL)),
    "in-hashtag": _per_codepoint(_matches(_HASHTAG)),
    "in-mention": _per_codepoint(_matches(_MENTION)),
    "count": _count,
}


def feature_function(name: str):
    """The function symbols -> (N,) values of a built-in feature or of `regex:PATTERN`."""
    if name.startswith("regex:"):
        try:
            return _per_codepoint(_matches(regex.compile(name[len("regex:"):])))
        except regex.error as e:
            raise CharlstmError(f"bad pattern in feature {name!r}: {e}") from None
    if name not in FEATURES:
        raise CharlstmError(f"unknown feature {name!r}: use one of {', '.join(FEATURES)} or regex:PATTERN")
    return FEATURES[name]


def feature_values(name: str, symbols: list[str]) -> np.ndarray:
    """(N,) values of a feature, one per symbol (its value after reading the symbol)."""
    return np.asarray(feature_function(name)(list(symbols)), dtype=np.float64)


class RankedUnit(NamedTuple):
    layer: int
    unit: int
    quantity: str            # h, c, i, f, g or o
    correlation: float       # Pearson's r between the unit's activation and the feature
    position: int            # the symbol where the unit most agrees with the feature's direction
    example: str             # the text around that symbol, the symbol itself in ⟦ ⟧

    def to_dict(self) -> dict:
        return self._asdict()


def correlations(values: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pearson's r of every unit with the feature: values (L, N, H), feature (N,) -> (L, H).

    A unit that never changes correlates 0.
    """
    f = np.asarray(feature, dtype=np.float64)
    fc = f - f.mean()
    f_std = np.sqrt(fc @ fc / len(f))
    out = np.zeros(values.shape[0::2])
    for layer, a in enumerate(values):
        a = a.astype(np.float64)
        cov = fc @ a / len(f)                 # sum(fc) = 0, so a's mean need not be subtracted
        a_std = a.std(axis=0)
        ok = a_std > 1e-6                    # a unit that never changes says nothing
        out[layer, ok] = cov[ok] / (a_std[ok] * f_std)
    return out


def example_text(symbols: list[str], position: int, before: int = 30, after: int = 10) -> str:
    """One line of text around a symbol, the symbol in ⟦ ⟧, newlines as ↵, tabs as → and every
    other control character escaped (validate.printable): a terminal shows it, never obeys it."""
    show = printable
    left = "".join(symbols[max(0, position - before):position])
    right = "".join(symbols[position + 1:position + 1 + after])
    return f"{show(left)}⟦{show(symbols[position])}⟧{show(right)}"


def rank_units(trace, feature, quantity: str = "all", top: int = 10,
               layer: int | None = None) -> list[RankedUnit]:
    """The `top` units whose activation follows the feature best, by |correlation|.

    feature: a feature name (see the module docstring) or an (N,) array of values.
    quantity: one of the trace's quantities (h, c, i, f, g, o for the LSTM), or "all"; layer: one layer, or None for all.
    """
    if top < 1:
        raise CharlstmError(f"top must be at least 1, got {top}")
    values = feature_values(feature, trace.symbols) if isinstance(feature, str) else np.asarray(feature, float)
    if values.shape != (len(trace),):
        raise CharlstmError(f"the feature has {values.size} values for {len(trace)} symbols")
    if np.ptp(values) == 0:
        name = feature if isinstance(feature, str) else "the feature"
        raise CharlstmError(f"{name} never changes in this text ({values[0]:g} everywhere); "
                            "give a text where it varies")
    quantities = trace.quantities if quantity == "all" else (quantity,)
    if quantity != "all":
        trace.values(quantity)         # an unknown quantity gets its one-line error here
    if layer is not None and not 0 <= layer < trace.num_layers:
        raise CharlstmError(f"layer must be between 0 and {trace.num_layers - 1}, got {layer}")
    first = 0 if layer is None else layer
    table = np.stack([correlations(trace.values(q)[first:None if layer is None else layer + 1], values)
                      for q in quantities])                        # (quantities, layers, H)
    ranked = []
    for flat in np.argsort(-np.abs(table), axis=None, kind="stable")[:top]:
        k, l, u = (int(x) for x in np.unravel_index(flat, table.shape))
        r = float(table[k, l, u])
        signed = trace.values(quantities[k])[first + l, :, u] * (1.0 if r >= 0 else -1.0)
        position = int(np.argmax(signed))
        ranked.append(RankedUnit(first + l, u, quantities[k], r, position,
                                 example_text(trace.symbols, position)))
    return ranked


def ranking_record(feature: str, symbols: int, ranked: list[RankedUnit]) -> dict:
    """The ranking as one JSON-ready object."""
    return {"feature": feature, "symbols": symbols, "units": [r.to_dict() for r in ranked]}


def ranking_lines(feature: str, symbols: int, ranked: list[RankedUnit]) -> list[str]:
    """The ranking as a table of lines, each unit with the place where it peaks."""
    return [f"{feature} over {symbols:,} symbols: the {len(ranked)} units that follow it best",
            f"{'layer':>5} {'unit':>5} {'q':>2} {'r':>7}  example (the unit peaks at ⟦⟧)",
            *(f"{r.layer:>5} {r.unit:>5} {r.quantity:>2} {r.correlation:>+7.3f}  {r.example}" for r in ranked)]


__all__ = ["FEATURES", "feature_function", "feature_values", "RankedUnit", "correlations",
           "example_text", "rank_units", "ranking_record", "ranking_lines"]
