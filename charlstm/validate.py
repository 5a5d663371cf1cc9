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
import os
import resource
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from charlstm.errors import ArgumentError, CharlstmError

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
        raise CharlstmError(f"{option} must be {rule}, got {number_shown(value)}")
    return int(value)


def number_shown(value) -> str:
    """A number for a message: with thousands separators, and a huge one (4,000 digits) cut in
    the middle, so that echoing what a user typed never makes a line of thousands of characters."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = int(value)
        if value.bit_length() > 14_000:      # str() of an int is refused past 4,300 digits
            digits = int((value.bit_length() - 1) * 0.30103) + 1
            return f"{'-' if value < 0 else ''}(a number of about {digits:,} digits)"
        text = f"{value:,}"
    else:
        text = str(value)
    if len(text) <= 24:
        return text
    return f"{text[:10]}…{text[-6:]} ({sum(c.isdigit() for c in text):,} digits)"


# --- the arguments of the public functions -------------------------------------------------------
# charlstm.train, load, Model.sample, ... check each argument at the door with these: one checker
# per kind of argument, each raising ArgumentError, which names the argument (the CLI puts the
# option's name in its place) and what it accepts.

def _kind(value) -> str:
    if value is None:
        return "None"
    shown = repr(value)
    return f"{type(value).__name__} {shown[:40]}{'…' if len(shown) > 40 else ''}"


def size(value, name: str, lo: int = 1, hi: int | None = None, optional: bool = False) -> int | None:
    """A whole number within [lo, hi] (a count, a length, a width); None only when optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(name, "{name} must be a whole number" + (" or None" if optional else "") +
                            f", got {_kind(value)}")
    if value < lo or hi is not None and value > hi:
        rule = f"at least {lo:,}" if hi is None else f"between {lo:,} and {hi:,}"
        raise ArgumentError(name, f"{{name}} must be {rule}, got {number_shown(int(value))}")
    return int(value)


def real(value, name: str, lo: float | None = None, hi: float | None = None, optional: bool = False,
         above: bool = False) -> float | None:
    """A finite number within [lo, hi] ((lo, hi] when `above`); None only when optional."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ArgumentError(name, "{name} must be a number" + (" or None" if optional else "") +
                            f", got {_kind(value)}")
    value = float(value)
    low_ok = lo is None or (value > lo if above else value >= lo)
    if not math.isfinite(value) or not low_ok or hi is not None and value > hi:
        if lo is not None and hi is not None:
            rule = f"a number in {'(' if above else '['}{lo:g}, {hi:g}]"
        else:
            rule = "a finite number" + (f" {'>' if above else '>='} {lo:g}" if lo is not None else "")
        raise ArgumentError(name, f"{{name}} must be {rule}, got {value!r}")
    return value


def text(value, name: str, optional: bool = False) -> str | None:
    """A str (not bytes, not a list of lines); None only when optional."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        hint = " (decode it first: data.decode('utf-8'))" if isinstance(value, (bytes, bytearray)) else \
            " (join them first: ''.join(parts))" if isinstance(value, (list, tuple)) else ""
        raise ArgumentError(name, "{name} must be a str" + (" or None" if optional else "") +
                            f", got {_kind(value)}{hint}")
    return check_text(value, name)


def choice(value, name: str, choices) -> str:
    """One of a few names."""
    if not isinstance(value, str) or value not in choices:
        raise ArgumentError(name, f"{{name}} must be one of {', '.join(map(str, choices))}, got {_kind(value)}")
    return value


def flag(value, name: str) -> bool:
    """True or False (not 'yes', not 0)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(name, f"{{name}} must be True or False, got {_kind(value)}")
    return bool(value)


def path(value, name: str, optional: bool = False) -> Path | None:
    """A file or directory name: a str or a path object, never empty; None only when optional."""
    if value is None and optional:
        return None
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, (str, os.PathLike)):
        raise ArgumentError(name, "{name} must be a path (a str or pathlib.Path)" +
                            (" or None" if optional else "") + f", got {_kind(value)}")
    if str(value) == "":
        raise ArgumentError(name, "{name} is empty: give a file name")
    return Path(value)


# --- memory a size would take ------------------------------------------------------------------------

def human_bytes(n: int) -> str:
    """A size for messages: "1.23 GB", "45.6 MB", "7.8 kB" or "512 bytes"; beyond a petabyte its
    order of magnitude ("10^24 bytes"), however many digits the size has."""
    n = int(n)
    if n >= 10 ** 15:       # the digits from the bits: str() of a huge int is refused past 4,300 digits
        return f"10^{int((n.bit_length() - 1) * 0.30103)} bytes"
    for unit, size_ in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size_:
            return f"{n / size_:,.{2 if unit in ('GB', 'TB') else 1}f} {unit}"
    return f"{n:,} bytes"


def available_memory() -> int:
    """Bytes this process may still take: the system's MemAvailable, and at most what is left
    under its address-space limit (RLIMIT_AS), where one is set."""
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            available = 1 << 62             # cannot tell: only the sizes' own bounds hold
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        try:
            with open("/proc/self/status") as f:
                used = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            available = min(available, max(0, soft - used))
        except (OSError, StopIteration, ValueError):
            pass
    return available


def fits(estimate: Callable[..., int], sizes: dict, what: str, floors: dict | None = None) -> None:
    """Refuse, before anything is allocated, sizes whose work would take more memory than is
    available. estimate(**sizes) is the bytes the work would hold at once; the argument named
    is the one whose lowest value (floors, default 1) saves the most, so the message points at
    what to change."""
    needed = int(estimate(**sizes))
    available = available_memory()
    if needed <= available:
        return
    floors = floors or {}
    blamed = min(sizes, key=lambda k: estimate(**{**sizes, k: min(sizes[k], floors.get(k, 1))}))
    raise ArgumentError(blamed, f"{{name}} {number_shown(sizes[blamed])} would need about {human_bytes(needed)} "
                                f"of memory for {what}, more than the {human_bytes(available)} available; "
                                "give a smaller {name}")


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


__all__ = ["seed", "whole", "number_shown", "size", "real", "text", "choice", "flag", "path", "human_bytes",
           "available_memory", "fits", "check_text", "shown", "printable", "load_json", "Fields",
           "MAX_JSON_DEPTH"]
