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


class InputPick:
    """A one-hot input's share of a step's pre-activations: column `id` of a (G, V) table for
    each of B streams, into a (G, B) buffer of its own (`out`).

    At batch 1 the table is kept transposed, so the pick is one contiguous row of G numbers, a
    third of the time of gathering a strided column (measured at G = 1024, V = 65). The ids are
    the caller's, checked against the vocabulary before decoding starts; "clip" only keeps take
    from buffering its output to guard indices that cannot be out of range.
    """

    def __init__(self, columns: np.ndarray, batch_size: int):
        G = columns.shape[0]
        self.out = np.empty((G, batch_size), dtype=columns.dtype)
        self.rows = np.ascontiguousarray(columns.T) if batch_size == 1 else None   # (V, G)
        self.columns = columns

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        if self.rows is not None:
            self.rows.take(ids, axis=0, out=self.out.T, mode="clip")
        else:
            self.columns.take(ids, axis=1, out=self.out)
        return self.out
