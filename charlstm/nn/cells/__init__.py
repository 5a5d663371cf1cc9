"""The recurrent cells, one module each, behind one interface.

A cell module holds pure functions (its fast kernel) and describes itself with one `Cell` record,
registered here by name. Everything above the math (the model's stack, training, evaluation,
decoding, traces, exports) reaches a cell only through this record, so adding a cell means writing
one module and adding it to `CELLS`.

The contract, with B the batch, T the steps, D the input size and H the units of one layer:

    name          "lstm", "gru", ...: also the prefix of the layer's keys in a model's parameters,
                  "{name}.{layer}.{key}" (e.g. "lstm.0.Wx")
    state         the parts of one layer's state, each (B, H), h first: ("h", "c") or ("h",).
                  h is always the layer's output.
    quantities    the per-step values a trace keeps, h first: ("h", "c", "i", "f", "g", "o")
    param_shapes  (D, H) -> {key: shape}, in a stable order
    init          (D, H, rng, one_hot) -> {key: float64 array}: a fresh layer. one_hot is True for
                  the first layer, whose input is a one-hot vector of size D (the vocabulary).
    forward       (x, state, params, workspace=None, x_mask=None) -> (h_out, final_state, cache)
                    x        (T, D, B) floats, or (T, B) integer ids for a one-hot input
                    state    tuple of (B, H) arrays, in `state` order
                    params   {key: array} of this layer (short keys: "Wx", not "lstm.0.Wx")
                    x_mask   (T, D, B) or None: the layer reads x * x_mask (dropout on its input)
                    h_out    (T, H, B), possibly a view into the cache: never modify it in place
                    final_state  tuple of fresh (B, H) arrays
                  With a workspace the cache lives in it (see nn/workspace.py).
    backward      (dh_out, cache, dstate=None, workspace=None, dx_workspace=None) -> CellGrads
                    dh_out   (T, H, B) gradient of the loss for every step's output
                    dstate   tuple of (B, H) gradients for the final state, or None (zero: what
                             truncated BPTT uses)
                  CellGrads.dx is (T, D, B) (None for ids), already multiplied by x_mask;
                  dstate the gradients of the initial state; params {key: gradient}. With a
                  workspace the gradients live in it; dx in `dx_workspace`'s buffer "dx" if given.
    trace         (cache) -> {quantity: (T, B, H)}: each step's values after it ran
    stepper       (params, rows, one_hot) -> a step object for decoding, one symbol at a time:
                    rows     (D' + 1 + H, B) a view owned by the caller, [x; 1; h]: the input rows
                             (D' = D, or 0 when one_hot), a row of ones (the bias input), and this
                             layer's h, which every step reads and then overwrites with the new h
                  step(ids) advances one step (ids (B,) are the input when one_hot, else unused);
                  step.get_state() -> tuple of fresh (B, H) arrays in `state` order;
                  step.set_state(state) sets them (h into rows).

Each fast kernel has a textbook twin in `reference.py`; the tests hold them equal. What the fast
kernels share (the chunked weight-gradient products, the one-hot product) is in `kernels.py`. A new
cell is a module here (its kernel, its step, its `CELL`), an import and an entry in the tuple below,
and its twin in reference.py.
"""

from __future__ import annotations

from charlstm.errors import CharlstmError
from charlstm.nn.cells import gru, lstm, peephole, rnn
from charlstm.nn.cells.base import Cell, CellGrads

CELLS: dict[str, Cell] = {}


def register(cell: Cell) -> Cell:
    """Make a cell available by name (to ModelConfig, checkpoints and the command line)."""
    CELLS[cell.name] = cell
    return cell


def get_cell(name: str) -> Cell:
    try:
        return CELLS[name]
    except (KeyError, TypeError):
        raise CharlstmError(f"unknown cell {name!r}: use one of {', '.join(CELLS)}") from None


for _cell in (lstm.CELL, gru.CELL, rnn.CELL, peephole.CELL):
    register(_cell)

__all__ = ["Cell", "CellGrads", "CELLS", "register", "get_cell"]
