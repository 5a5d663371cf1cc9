"""One place that checks what comes from outside before numpy or the loop sees it.

Two kinds of input reach charlstm untrusted:

- numbers given as options, which numpy may refuse with a traceback (`default_rng(-1)`) or turn
  into gigabytes (`"a" * 10**15`): `seed` and `whole` check them;
- what is read back from a file charlstm wrote, which anyone may have edited: the JSON of a
  checkpoint's meta record, a trace's meta record, metrics.jsonl. `load_json` parses it with a
  bound on nesting; `Fields` reads one JSON object's fields by type and range; `check_text` refuses
  strings that cannot be written to a file or a terminal (a lone surrogate), and `shown` makes any
  such text safe to put in a message.

Every problem is one CharlstmError line that names the file (or option) and the field.
"""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, fields
from typing import Any

import numpy as np

from charlstm.errors import CharlstmError

MAX_JSON_DEPTH = 32       # a checkpoint's record nests 4 deep (meta, train, rng, state)
_REQUIRED = object()


# --- numbers given as options ----------------------------------------------------------------------

def seed(value, option: str = "--seed") -> np.random.Generator:
    """numpy's generator for a seed given by a user: a whole number >= 0, or None (fresh entropy)."""
    if value is None:
        return np.random.default_rng()
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise CharlstmError(f"{option} must be a whole number >= 0, got {value!r}")
    return np.random.default_rng(int(value))


def whole(value, option: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer option within [lo, hi] (either end open when None)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise CharlstmError(f"{option} must be a whole number, got {value!r}")
    if lo is not None and value < lo or hi is not None and value > hi:
        if hi is None:
            rule = f"at least {lo:,}"
        elif lo is None:
            rule = f"at most {hi:,}"
        else:
            rule = f"between {lo:,} and {hi:,}"
        raise CharlstmError(f"{option} must be {rule}, got {value:,}")
    return int(value)


# --- text -------------------------------------------------------------------------------------------

def check_text(value: str, where: str) -> str:
    """A string that can be written as UTF-8 (to a file or a terminal): no lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise CharlstmError(f"{where} holds U+{ord(value[e.start]):04X}, a lone surrogate, which is not text "
                            "that can be written anywhere") from None
    return value


def shown(text: str, limit: int = 80) -> str:
    """Text from a file or a model, quoted for a message: every control, format or unprintable
    character escaped once (a tab reads '\\t', an escape sequence '\\x1b[2J'), so what a message
    shows cannot act on the terminal; cut to about `limit` characters."""
    text = str(text)
    cut = text[:limit]
    quoted = repr(cut)
    return quoted + ("…" if len(text) > limit else "")


def printable(text: str) -> str:
    """Text shown in a listing (not quoted): line feeds as ↵, tabs as →, and every other control,
    format or unprintable character as its escape, so a terminal shows it and does not obey it."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("↵")
        elif ch == "\t":
            out.append("→")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


# --- JSON read back from a file ------------------------------------------------------------------------

def load_json(text: str, where: str) -> Any:
    """json.loads with every failure one line, and nesting bounded (MAX_JSON_DEPTH), so that a
    record cannot exhaust the recursion of whatever walks it later."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise CharlstmError(f"{where} is nested too deeply to be a charlstm record") from None
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as e:
        raise CharlstmError(f"{where} is not valid JSON ({getattr(e, 'msg', e)})") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise CharlstmError(f"{where} is nested more than {MAX_JSON_DEPTH} levels deep; not a charlstm record")
    return value


def _depth(value) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth > MAX_JSON_DEPTH:
                break
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


class Fields:
    """Typed reading of one JSON object read from a file: `where` names it in every message.

    >>> f = Fields(record, "run/latest.npz: the training progress")
    >>> step = f.integer("step", lo=0)
    """

    def __init__(self, record, where: str):
        if not isinstance(record, dict):
            raise CharlstmError(f"{where} is not a JSON object")
        self.record, self.where = record, where

    def _get(self, key: str, default):
        if key in self.record:
            return self.record[key]
        if default is _REQUIRED:
            raise CharlstmError(f"{self.where} lacks '{key}'")
        return default

    def _bad(self, key: str, rule: str, value) -> CharlstmError:
        value = json.dumps(value)          # ASCII, every control escaped: safe on a terminal
        return CharlstmError(f"{self.where}: '{key}' must be {rule}, got {value[:40]}{'…' * (len(value) > 40)}")

    def integer(self, key: str, lo: int | None = None, hi: int | None = None, default=_REQUIRED,
                optional: bool = False):
        value = self._get(key, default)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or (lo is not None and value < lo) \
                or (hi is not None and value > hi):
            rule = "a whole number" + (f" >= {lo}" if lo is not None else "") + (f" <= {hi}" if hi is not None else "")
            raise self._bad(key, rule + (" or null" if optional else ""), value)
        return value

    def number(self, key: str, lo: float | None = None, hi: float | None = None, default=_REQUIRED,
               optional: bool = False, positive: bool = False):
        value = self._get(key, default)
        if value is None and optional:
            return None
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) \
            and (lo is None or value >= lo) and (hi is None or value <= hi) and (not positive or value > 0)
        if not ok:
            rule = ("a positive number" if positive else "a finite number") + \
                (f" >= {lo:g}" if lo is not None else "") + (f" <= {hi:g}" if hi is not None else "")
            raise self._bad(key, rule + (" or null" if optional else ""), value)
        return float(value) if isinstance(value, float) else value

    def text(self, key: str, choices=None, default=_REQUIRED, optional: bool = False):
        value = self._get(key, default)
        if value is None and optional:
            return None
        if not isinstance(value, str) or (choices is not None and value not in choices):
            rule = "one of " + ", ".join(choices) if choices is not None else "a string"
            raise self._bad(key, rule, value)
        return check_text(value, f"{self.where}: '{key}'")

    def strings(self, key: str, default=_REQUIRED, nonempty: bool = False) -> list[str]:
        value = self._get(key, default)
        if not isinstance(value, list) or not all(isinstance(s, str) and (s or not nonempty) for s in value):
            raise self._bad(key, "a list of " + ("non-empty " if nonempty else "") + "strings", value)
        for k, s in enumerate(value):
            check_text(s, f"{self.where}: '{key}' item {k}")
        return value

    def object(self, key: str, default=_REQUIRED) -> "Fields":
        value = self._get(key, default)
        return Fields(value, f"{self.where}: '{key}'")

    def dataclass(self, cls):
        """An instance of a frozen config dataclass from this object: each field read by its
        annotation (int, float, str, each optionally `| None`); unknown keys are left out and
        missing ones take the field's default. The dataclass's own checks run after."""
        values = {}
        for f in fields(cls):
            if not f.init or f.name.startswith("_"):
                continue
            kind = str(f.type).replace(" ", "")
            optional = kind.endswith("|None")
            kind = kind.removesuffix("|None")
            default = _REQUIRED if f.default is MISSING else f.default
            if kind == "int":
                values[f.name] = self.integer(f.name, default=default, optional=optional)
            elif kind == "float":
                values[f.name] = self.number(f.name, default=default, optional=optional)
            elif kind == "str":
                values[f.name] = self.text(f.name, default=default, optional=optional)
            elif f.name in self.record:
                values[f.name] = self.record[f.name]
        try:
            return cls(**values)
        except CharlstmError as e:
            raise CharlstmError(f"{self.where}: {e}") from None


__all__ = ["seed", "whole", "check_text", "shown", "printable", "load_json", "Fields",
           "MAX_JSON_DEPTH"]
