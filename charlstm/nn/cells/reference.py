"""The textbook twin of every recurrent cell: one step forward and one step backward, as the
equations read.

This module is for reading and for testing. Each cell is a pair of short pure functions in the
style of CS231n's `rnn_layers.py`: `*_step_forward` returns the new state and a cache (a NamedTuple
whose fields are named after the equations), `*_step_backward` takes the upstream gradients and
that cache and returns the gradients of the input, of the previous state and of every parameter,
one line of the chain rule at a time. Inputs are batch-major, x (B, D), states (B, H), and the
gate blocks of the fused weights are in the public order, the order the checkpoints store.

The cells, with D the input size and H the units, and sigma the logistic function:

    lstm      Wx (D, 4H)  Wh (H, 4H)  b (4H,)            blocks i, f, g, o
              z = x Wx + h_prev Wh + b
              i = sigma(z_i)  f = sigma(z_f)  g = tanh(z_g)  o = sigma(z_o)
              c = f * c_prev + i * g
              h = o * tanh(c)

    peephole  as lstm, plus p_i, p_f, p_o (H,): diagonal peepholes (ONNX's P[iof])
              i = sigma(z_i + p_i * c_prev)  f = sigma(z_f + p_f * c_prev)  g = tanh(z_g)
              c = f * c_prev + i * g
              o = sigma(z_o + p_o * c)         (o looks at the new cell state)
              h = o * tanh(c)

    gru       Wx (D, 3H)  Wh (H, 3H)  bx (3H,)  bh (3H,)   blocks r, z, n (PyTorch's nn.GRU)
              r  = sigma(x Wx_r + bx_r + h_prev Wh_r + bh_r)
              z  = sigma(x Wx_z + bx_z + h_prev Wh_z + bh_z)
              hn = h_prev Wh_n + bh_n          (the recurrent part of n, which r gates)
              n  = tanh(x Wx_n + bx_n + r * hn)
              h  = (1 - z) * n + z * h_prev

    rnn       Wx (D, H)  Wh (H, H)  b (H,)
              h = tanh(x Wx + h_prev Wh + b)

The first layer's input is a one-hot vector of size D. It may be given as integer ids (B,): then
`x Wx` is the rows `Wx[ids]`, dx is None, and dWx gets each row's gradient added at its id.

`reference_forward`, `reference_backward` and `reference_trace` loop a step over time with the
arguments and results of the fast kernels' interface (see cells/__init__.py), so that a test can
hand both the same sequence and compare everything they return.

What the fast kernels (lstm.py, ...) change, and why, is written in their own docstrings; in short:
sequences are feature-major, (T, D, B), so that each gate is a block of contiguous rows; the input,
previous h and a row of ones sit in one column block, so that a step is a single matrix product
(forward and backward); the gates are reordered so that the sigmoid gates, prescaled by 1/2, come
out of the same tanh pass as g (sigma(z) = tanh(z/2)/2 + 1/2); and the backward pass walks time
in chunks, computing a chunk's gate derivatives and weight gradients with one product each. The
numbers are the same as here, to rounding.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from charlstm.nn.cells.base import CellGrads


def sigmoid(z):
    """1 / (1 + exp(-z)), written so that a large negative z does not overflow exp."""
    return np.exp(-np.logaddexp(0.0, -z))


def is_ids(x) -> bool:
    """True when x holds symbol ids (a one-hot input) rather than vectors."""
    return np.issubdtype(x.dtype, np.integer)


def input_product(x, Wx):
    """x Wx for x (B, D) vectors, or for x (B,) ids of one-hot rows: then it is the rows Wx[x]."""
    return Wx[x] if is_ids(x) else x @ Wx


def input_product_backward(dout, x, Wx):
    """The gradients (dx, dWx) of out = x Wx, given dout = d loss / d out.

    For ids, dx is None and each row of dWx sums the dout of the batch rows that picked it:
    np.add.at adds repeated ids up, where `dWx[x] += dout` would keep only one of them.
    """
    if is_ids(x):
        dWx = np.zeros_like(Wx)
        np.add.at(dWx, x, dout)
        return None, dWx
    return dout @ Wx.T, x.T @ dout


# --- lstm -----------------------------------------------------------------------------------------

class LSTMStepCache(NamedTuple):
    x: np.ndarray          # (B, D), or (B,) ids
    h_prev: np.ndarray     # (B, H)
    c_prev: np.ndarray     # (B, H)
    Wx: np.ndarray         # (D, 4H)
    Wh: np.ndarray         # (H, 4H)
    i: np.ndarray          # (B, H) each: the activated gates
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c: np.ndarray          # (B, H) the new cell state
    tanh_c: np.ndarray     # (B, H)
    h: np.ndarray          # (B, H) the new hidden state (kept for the trace)


def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step (equations in the module docstring).

    x (B, D) or (B,) ids; h_prev, c_prev (B, H); Wx (D, 4H); Wh (H, 4H); b (4H,), blocks i, f, g, o.
    Returns (h, c, cache), h and c (B, H).
    """
    z = input_product(x, Wx) + h_prev @ Wh + b             # (B, 4H)
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return h, c, LSTMStepCache(x, h_prev, c_prev, Wx, Wh, i, f, g, o, c, tanh_c, h)


def lstm_step_backward(dh, dc, cache: LSTMStepCache):
    """The gradients of one LSTM step.

    dh, dc (B, H): d loss / d h and d loss / d c of this step's outputs (dc is what flows back
    from the next step's c; dh adds the next step's and this step's output gradients).
    Returns (dx, dh_prev, dc_prev, grads): dx (B, D), or None for ids; grads {"Wx", "Wh", "b"}.

        do = dh * tanh(c)               dc += dh * o * (1 - tanh(c)^2)
        di = dc * g    df = dc * c_prev    dg = dc * i    dc_prev = dc * f
        dz_i = di * i (1 - i)   dz_f = df * f (1 - f)   dz_g = dg * (1 - g^2)   dz_o = do * o (1 - o)
        dx = dz Wx^T   dh_prev = dz Wh^T   dWx = x^T dz   dWh = h_prev^T dz   db = sum_B dz
    """
    x, h_prev, c_prev, Wx, Wh, i, f, g, o, c, tanh_c, h = cache
    # h = o * tanh(c)
    do = dh * tanh_c
    dc = dc + dh * o * (1 - tanh_c ** 2)
    # c = f * c_prev + i * g
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    # the gates from their pre-activations
    dz_i = di * i * (1 - i)
    dz_f = df * f * (1 - f)
    dz_g = dg * (1 - g ** 2)
    dz_o = do * o * (1 - o)
    dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)  # (B, 4H)
    # z = x Wx + h_prev Wh + b
    dx, dWx = input_product_backward(dz, x, Wx)
    dh_prev = dz @ Wh.T
    dWh = h_prev.T @ dz
    db = dz.sum(axis=0)
    return dx, dh_prev, dc_prev, {"Wx": dWx, "Wh": dWh, "b": db}


# --- peephole lstm --------------------------------------------------------------------------------

class PeepholeStepCache(NamedTuple):
    x: np.ndarray          # (B, D), or (B,) ids
    h_prev: np.ndarray     # (B, H)
    c_prev: np.ndarray     # (B, H)
    Wx: np.ndarray         # (D, 4H)
    Wh: np.ndarray         # (H, 4H)
    p_i: np.ndarray        # (H,) each: the peepholes
    p_f: np.ndarray
    p_o: np.ndarray
    i: np.ndarray          # (B, H) each: the activated gates
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    c: np.ndarray          # (B, H) the new cell state
    tanh_c: np.ndarray     # (B, H)
    h: np.ndarray          # (B, H) the new hidden state (kept for the trace)


def peephole_step_forward(x, h_prev, c_prev, Wx, Wh, b, p_i, p_f, p_o):
    """One step of the LSTM with diagonal peepholes (equations in the module docstring).

    x (B, D) or (B,) ids; h_prev, c_prev (B, H); Wx (D, 4H); Wh (H, 4H); b (4H,), blocks i, f, g, o;
    p_i, p_f, p_o (H,). Returns (h, c, cache), h and c (B, H).
    """
    z = input_product(x, Wx) + h_prev @ Wh + b             # (B, 4H)
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=1)
    i = sigmoid(z_i + p_i * c_prev)
    f = sigmoid(z_f + p_f * c_prev)
    g = np.tanh(z_g)
    c = f * c_prev + i * g
    o = sigmoid(z_o + p_o * c)
    tanh_c = np.tanh(c)
    h = o * tanh_c
    return h, c, PeepholeStepCache(x, h_prev, c_prev, Wx, Wh, p_i, p_f, p_o, i, f, g, o, c, tanh_c, h)


def peephole_step_backward(dh, dc, cache: PeepholeStepCache):
    """The gradients of one peephole LSTM step.

    dh, dc (B, H) as in `lstm_step_backward`. Returns (dx, dh_prev, dc_prev, grads): dx (B, D), or
    None for ids; grads {"Wx", "Wh", "b", "p_i", "p_f", "p_o"}. As the LSTM, plus the peepholes'
    paths: c reaches the loss through o too, and c_prev through i and f:

        dz_o = dh * tanh(c) * o (1 - o)   dc += dh * o * (1 - tanh(c)^2) + dz_o * p_o
        dz_i = dc * g * i (1 - i)   dz_f = dc * c_prev * f (1 - f)   dz_g = dc * i * (1 - g^2)
        dc_prev = dc * f + dz_i * p_i + dz_f * p_f
        dp_i = sum_B dz_i * c_prev   dp_f = sum_B dz_f * c_prev   dp_o = sum_B dz_o * c
    """
    x, h_prev, c_prev, Wx, Wh, p_i, p_f, p_o, i, f, g, o, c, tanh_c, h = cache
    # h = o * tanh(c), o = sigma(z_o + p_o * c)
    do = dh * tanh_c
    dz_o = do * o * (1 - o)
    dc = dc + dh * o * (1 - tanh_c ** 2) + dz_o * p_o
    dp_o = (dz_o * c).sum(axis=0)
    # c = f * c_prev + i * g
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    dc_prev = dc * f
    # i = sigma(z_i + p_i * c_prev), f = sigma(z_f + p_f * c_prev), g = tanh(z_g)
    dz_i = di * i * (1 - i)
    dz_f = df * f * (1 - f)
    dz_g = dg * (1 - g ** 2)
    dc_prev = dc_prev + dz_i * p_i + dz_f * p_f
    dp_i = (dz_i * c_prev).sum(axis=0)
    dp_f = (dz_f * c_prev).sum(axis=0)
    dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)  # (B, 4H)
    # z = x Wx + h_prev Wh + b
    dx, dWx = input_product_backward(dz, x, Wx)
    dh_prev = dz @ Wh.T
    dWh = h_prev.T @ dz
    db = dz.sum(axis=0)
    return dx, dh_prev, dc_prev, {"Wx": dWx, "Wh": dWh, "b": db, "p_i": dp_i, "p_f": dp_f, "p_o": dp_o}


# --- gru ------------------------------------------------------------------------------------------

class GRUStepCache(NamedTuple):
    x: np.ndarray          # (B, D), or (B,) ids
    h_prev: np.ndarray     # (B, H)
    Wx: np.ndarray         # (D, 3H)
    Wh: np.ndarray         # (H, 3H)
    r: np.ndarray          # (B, H) the reset gate
    z: np.ndarray          # (B, H) the update gate
    hn: np.ndarray         # (B, H) h_prev Wh_n + bh_n, before r gates it
    n: np.ndarray          # (B, H) the candidate state
    h: np.ndarray          # (B, H) the new hidden state (kept for the trace)


def gru_step_forward(x, h_prev, Wx, Wh, bx, bh):
    """One GRU step, PyTorch's convention (equations in the module docstring).

    x (B, D) or (B,) ids; h_prev (B, H); Wx (D, 3H); Wh (H, 3H); bx, bh (3H,), blocks r, z, n.
    Returns (h, cache), h (B, H).
    """
    ax_r, ax_z, ax_n = np.split(input_product(x, Wx) + bx, 3, axis=1)    # the input's side
    ah_r, ah_z, hn = np.split(h_prev @ Wh + bh, 3, axis=1)                # the recurrent side
    r = sigmoid(ax_r + ah_r)
    z = sigmoid(ax_z + ah_z)
    n = np.tanh(ax_n + r * hn)
    h = (1 - z) * n + z * h_prev
    return h, GRUStepCache(x, h_prev, Wx, Wh, r, z, hn, n, h)


def gru_step_backward(dh, cache: GRUStepCache):
    """The gradients of one GRU step.

    dh (B, H): d loss / d h. Returns (dx, dh_prev, grads): dx (B, D), or None for ids;
    grads {"Wx", "Wh", "bx", "bh"}. With a_r, a_z, a_n the pre-activations of r, z, n:

        dn = dh * (1 - z)   dz = dh * (h_prev - n)   dh_prev = dh * z  (+ the path through Wh)
        da_n = dn * (1 - n^2)   dr = da_n * hn   dhn = da_n * r
        da_r = dr * r (1 - r)   da_z = dz * z (1 - z)
        input side, blocks [da_r, da_z, da_n]:   dx = . Wx^T      dWx = x^T .       dbx = sum_B .
        recurrent side, blocks [da_r, da_z, dhn]: dh_prev += . Wh^T  dWh = h_prev^T .  dbh = sum_B .
    """
    x, h_prev, Wx, Wh, r, z, hn, n, h = cache
    # h = (1 - z) * n + z * h_prev
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    # n = tanh(a_n), a_n = x Wx_n + bx_n + r * hn
    da_n = dn * (1 - n ** 2)
    dr = da_n * hn
    dhn = da_n * r
    # r = sigma(a_r), z = sigma(a_z)
    da_r = dr * r * (1 - r)
    da_z = dz * z * (1 - z)
    # the input's side: x Wx + bx
    dax = np.concatenate([da_r, da_z, da_n], axis=1)      # (B, 3H)
    dx, dWx = input_product_backward(dax, x, Wx)
    dbx = dax.sum(axis=0)
    # the recurrent side: h_prev Wh + bh, whose n block is hn
    dah = np.concatenate([da_r, da_z, dhn], axis=1)       # (B, 3H)
    dh_prev = dh_prev + dah @ Wh.T
    dWh = h_prev.T @ dah
    dbh = dah.sum(axis=0)
    return dx, dh_prev, {"Wx": dWx, "Wh": dWh, "bx": dbx, "bh": dbh}


# --- rnn ------------------------------------------------------------------------------------------

class RNNStepCache(NamedTuple):
    x: np.ndarray          # (B, D), or (B,) ids
    h_prev: np.ndarray     # (B, H)
    Wx: np.ndarray         # (D, H)
    Wh: np.ndarray         # (H, H)
    h: np.ndarray          # (B, H) the new hidden state


def rnn_step_forward(x, h_prev, Wx, Wh, b):
    """One step of the plain (Elman) RNN: h = tanh(x Wx + h_prev Wh + b).

    x (B, D) or (B,) ids; h_prev (B, H); Wx (D, H); Wh (H, H); b (H,). Returns (h, cache).
    """
    h = np.tanh(input_product(x, Wx) + h_prev @ Wh + b)
    return h, RNNStepCache(x, h_prev, Wx, Wh, h)


def rnn_step_backward(dh, cache: RNNStepCache):
    """The gradients of one RNN step, dh (B, H) = d loss / d h.

    Returns (dx, dh_prev, grads): dx (B, D), or None for ids; grads {"Wx", "Wh", "b"}.
        da = dh * (1 - h^2)   dx = da Wx^T   dh_prev = da Wh^T   dWx = x^T da   dWh = h_prev^T da
    """
    x, h_prev, Wx, Wh, h = cache
    da = dh * (1 - h ** 2)                                 # h = tanh(a)
    dx, dWx = input_product_backward(da, x, Wx)
    dh_prev = da @ Wh.T
    dWh = h_prev.T @ da
    db = da.sum(axis=0)
    return dx, dh_prev, {"Wx": dWx, "Wh": dWh, "b": db}


# --- the cells by name, and sequences -------------------------------------------------------------

class ReferenceCell(NamedTuple):
    """How the sequence helpers call a cell's steps.

    step_forward(x, *state, **params) -> (*new_state, cache)
    step_backward(*dnew_state, cache) -> (dx, *dstate_prev, grads)
    """

    step_forward: Callable
    step_backward: Callable
    state: tuple[str, ...]                                 # the parts of the state, h first
    quantities: tuple[str, ...]                            # the cache fields a trace keeps, h first
    param_shapes: Callable[[int, int], dict]               # (D, H) -> {key: shape}


REFERENCE_CELLS: dict[str, ReferenceCell] = {
    "lstm": ReferenceCell(
        lstm_step_forward, lstm_step_backward, ("h", "c"), ("h", "c", "i", "f", "g", "o"),
        lambda D, H: {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,)}),
    "peephole": ReferenceCell(
        peephole_step_forward, peephole_step_backward, ("h", "c"), ("h", "c", "i", "f", "g", "o"),
        lambda D, H: {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,),
                      "p_i": (H,), "p_f": (H,), "p_o": (H,)}),
    "gru": ReferenceCell(
        gru_step_forward, gru_step_backward, ("h",), ("h", "r", "z", "n"),
        lambda D, H: {"Wx": (D, 3 * H), "Wh": (H, 3 * H), "bx": (3 * H,), "bh": (3 * H,)}),
    "rnn": ReferenceCell(
        rnn_step_forward, rnn_step_backward, ("h",), ("h",),
        lambda D, H: {"Wx": (D, H), "Wh": (H, H), "b": (H,)}),
}


class SequenceCache(NamedTuple):
    steps: list            # one step cache per time step
    x_mask: np.ndarray | None   # (T, D, B) the input's dropout mask, if it had one


def reference_forward(cell_name: str, x, state, params, x_mask=None):
    """Run the cell's step over T steps, with the arguments of a fast kernel's `forward`.

    x (T, D, B) floats or (T, B) ids; state a tuple of (B, H) arrays in the cell's state order;
    params {key: array}; x_mask (T, D, B) or None: the layer reads x * x_mask.
    Returns (h_out (T, H, B), final_state, cache). The steps themselves are batch-major, so each
    step's input is transposed to (B, D) and each output back to (H, B).
    """
    cell = REFERENCE_CELLS[cell_name]
    if x_mask is not None:
        if is_ids(x):
            raise ValueError("an input of ids takes no mask")
        x = x * x_mask
    steps, h_out = [], []
    for x_t in x:
        *state, step_cache = cell.step_forward(x_t if is_ids(x) else x_t.T, *state, **params)
        steps.append(step_cache)
        h_out.append(state[0].T)
    return np.stack(h_out), tuple(state), SequenceCache(steps, x_mask)


def reference_backward(cell_name: str, dh_out, cache: SequenceCache, dstate=None) -> CellGrads:
    """Backpropagate through the steps of `reference_forward`, last step first.

    dh_out (T, H, B): d loss / d h at every step; dstate a tuple of (B, H) gradients of the final
    state, or None for zeros. Returns CellGrads: dx (T, D, B) (None for ids), the gradient of the
    unmasked input; dstate, the gradients of the initial state; params, summed over the steps.
    """
    cell = REFERENCE_CELLS[cell_name]
    if dstate is None:
        dstate = tuple(np.zeros_like(cache.steps[-1].h) for _ in cell.state)
    dstate = list(dstate)
    dx, step_grads = [], []
    for t in range(len(cache.steps) - 1, -1, -1):
        dstate[0] = dstate[0] + dh_out[t].T           # h is both the step's output and its state
        dx_t, *dstate, grads_t = cell.step_backward(*dstate, cache.steps[t])
        dx.append(dx_t)
        step_grads.append(grads_t)
    params = {key: sum(grads_t[key] for grads_t in step_grads) for key in step_grads[0]}
    if dx[0] is None:
        dx = None
    else:
        dx = np.stack([dx_t.T for dx_t in dx[::-1]])   # back in time order, (T, D, B)
        if cache.x_mask is not None:
            dx = dx * cache.x_mask                     # the steps read x * x_mask
    return CellGrads(dx=dx, dstate=tuple(dstate), params=params)


def reference_trace(cell_name: str, cache: SequenceCache) -> dict[str, np.ndarray]:
    """Each step's values after it ran, {quantity: (T, B, H)}, quantities as in REFERENCE_CELLS."""
    cell = REFERENCE_CELLS[cell_name]
    return {q: np.stack([getattr(step, q) for step in cache.steps]) for q in cell.quantities}


__all__ = ["sigmoid", "lstm_step_forward", "lstm_step_backward", "peephole_step_forward",
           "peephole_step_backward", "gru_step_forward", "gru_step_backward", "rnn_step_forward",
           "rnn_step_backward", "REFERENCE_CELLS", "ReferenceCell", "SequenceCache",
           "reference_forward", "reference_backward", "reference_trace"]
