"""The record that describes a cell, and its gradients' record (see cells/__init__.py for the contract)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np


class CellGrads(NamedTuple):
    dx: np.ndarray | None          # (T, D, B); None when the input was ids
    dstate: tuple                  # gradients of the initial state, each (B, H), in `state` order
    params: dict                   # {key: gradient}, the shapes of the parameters


@dataclass(frozen=True)
class Cell:
    """What the layers above need to know of a cell (see the module docstring)."""

    name: str
    state: tuple[str, ...]
    quantities: tuple[str, ...]
    param_shapes: Callable[[int, int], dict[str, tuple[int, ...]]]
    init: Callable[..., dict[str, np.ndarray]]
    forward: Callable[..., tuple[np.ndarray, tuple, Any]]
    backward: Callable[..., CellGrads]
    trace: Callable[[Any], dict[str, np.ndarray]]
    stepper: Callable[..., Any]
    summary: str = ""              # one line for --help and the README
