"""What the cell contract tests share: one layer of any registered cell with an input, a carried
state and upstream gradients that exercise all of it; the backward pass cut into chunks anywhere;
and comparisons that say which array differs."""

from typing import NamedTuple

import numpy as np

from charlstm.nn.cells import CELLS, Cell, CellGrads, gru, lstm, peephole, rnn

CELL_NAMES = sorted(CELLS)
INPUTS = ("vectors", "masked", "ids")     # vectors; vectors through a dropout mask; one-hot ids

# Cell.backward chooses its chunks of time itself (lstm.backward_chunk_steps); each kernel also
# takes the chunk length as an argument, which the tests use to cut time anywhere.
KERNEL_BACKWARD = {"lstm": lstm.lstm_backward, "gru": gru.gru_backward, "rnn": rnn.rnn_backward,
                   "peephole": peephole.peephole_backward}


class Layer(NamedTuple):
    """A layer's arguments, in the contract's layout, and the gradients that arrive from above."""

    cell: Cell
    x: np.ndarray              # (T, D, B) floats or (T, B) ids
    x_mask: np.ndarray | None  # (T, D, B) or None
    state: tuple               # (B, H) parts, in cell.state order
    params: dict               # {key: array}
    dh_out: np.ndarray         # (T, H, B)
    dstate: tuple              # (B, H) gradients of the final state, in cell.state order

    def forward(self, workspace=None):
        return self.cell.forward(self.x, self.state, self.params, workspace=workspace, x_mask=self.x_mask)


def dropout_mask(rng, shape, p=0.3):
    """An inverted-dropout mask: zeros, and 1 / (1 - p) for the units kept."""
    return (rng.random(shape) >= p) / (1 - p)


def make_layer(name, rng, T=5, B=3, D=4, H=3, inputs="masked", id_dtype=np.intp, scale=0.5,
               dtype=np.float64) -> Layer:
    """A layer whose parameters (peepholes and every bias included) are random and not small, its
    state random too: nothing is trivially zero or one. ids repeat, and leave some symbol unseen
    when T * B < D."""
    cell = CELLS[name]
    ids = inputs == "ids"
    if ids:
        x = rng.integers(0, D, size=(T, B)).astype(id_dtype)
    else:
        x = rng.standard_normal((T, D, B)).astype(dtype)
    x_mask = dropout_mask(rng, (T, D, B)).astype(dtype) if inputs == "masked" else None
    params = {key: (rng.standard_normal(shape) * scale).astype(dtype)
              for key, shape in cell.param_shapes(D, H).items()}
    state = tuple((rng.standard_normal((B, H)) * 0.5).astype(dtype) for _ in cell.state)
    dh_out = rng.standard_normal((T, H, B)).astype(dtype)
    dstate = tuple(rng.standard_normal((B, H)).astype(dtype) for _ in cell.state)
    return Layer(cell, x, x_mask, state, params, dh_out, dstate)


def backward_in_chunks(cell, dh_out, cache, dstate, chunk_steps) -> CellGrads:
    """cell.backward, walking time back in chunks of `chunk_steps` steps."""
    g = KERNEL_BACKWARD[cell.name](dh_out, cache, *dstate, chunk_steps=chunk_steps)
    # the kernels name their gradients dx, d{part}0 for each part of the state, d{key} for each parameter
    return CellGrads(dx=g.dx, dstate=tuple(getattr(g, f"d{part}0") for part in cell.state),
                     params={key: getattr(g, f"d{key}") for key in cell.param_shapes(1, 1)})


def assert_same(fast, ref, what, **close):
    """Both None, or arrays of one shape, close (or equal when no tolerance is given)."""
    assert (fast is None) == (ref is None), what
    if ref is not None:
        assert fast.shape == ref.shape, what
        if close:
            np.testing.assert_allclose(fast, ref, **close, err_msg=what)
        else:
            np.testing.assert_array_equal(fast, ref, err_msg=what)


def assert_same_grads(fast: CellGrads, ref: CellGrads, what, **close):
    assert_same(fast.dx, ref.dx, f"{what} dx", **close)
    assert len(fast.dstate) == len(ref.dstate), what
    for k, (a, b) in enumerate(zip(fast.dstate, ref.dstate)):
        assert_same(a, b, f"{what} dstate[{k}]", **close)
    assert list(fast.params) == list(ref.params), what
    for key in ref.params:
        assert_same(fast.params[key], ref.params[key], f"{what} d{key}", **close)
