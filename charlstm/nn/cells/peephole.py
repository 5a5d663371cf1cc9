"""One peephole LSTM layer over T time steps: the LSTM whose gates also look at the cell state.

The math, for one step, with the parameters as the checkpoint stores them:
    Wx (D, 4H)    Wh (H, 4H)    b (4H,)     gate blocks in the order i, f, g, o (as lstm.py)
    p_i (H,)      p_f (H,)      p_o (H,)    the diagonal peephole weights

    z = Wx^T x + Wh^T h_prev + b
    i = sigmoid(z_i + p_i * c_prev)   f = sigmoid(z_f + p_f * c_prev)   g = tanh(z_g)
    c = f * c_prev + i * g
    o = sigmoid(z_o + p_o * c)                  (the output gate looks at the new cell state)
    h = o * tanh(c)

This is Gers and Schmidhuber's LSTM with peephole connections, the one the ONNX LSTM operator
computes when given peepholes: its P is concat(p_i, p_o, p_f) (ONNX orders P as i, o, f, and its
W and R as i, o, f, c), with Pi and Pf applied to C_{t-1} and Po to C_t as here. PyTorch has no
such cell. With p_i = p_f = p_o = 0 it is lstm.py's LSTM, to rounding.

What changes from lstm.py, and why
----------------------------------
The layout is lstm.py's (read its docstring): feature-major sequences, the gates in loop order
o, i, f, g, the sigmoid gates' pre-activations halved in the weights so that tanh gives them
(`sigmoid_prescale`). The helpers are imported from there. What differs:
- a step is one (4H, D+H+1) product over [x; h; 1], the input's part included: the LSTM takes
  the input's part out of the loop as one large product, which this cell, written for reading
  and for the study of its peepholes rather than for speed, does not.
- the forward loop activates the gates in two passes instead of one: i, f and g (one contiguous
  block of rows, after the peepholes of i and f add p * c_prev to it), then c, then o, whose
  peephole needs the new c. The peepholes are halved like the rows of their gates.
- the backward pass's recurrence keeps the LSTM's handful of products per step: the peepholes
  change only what multiplies dh into dc (o also reaches c through p_o) and what carries dc to
  c_prev (f plus the paths through p_i and p_f), and both factors are computed for a whole chunk
  of steps at once, before its loop.
- the peephole gradients are sums over steps and batch of products (dz_i * c_prev, ...), one
  einsum over each chunk, next to the chunk's weight-gradient product.
The cache reads like the LSTM's (`gate`, `cell`, `hidden`), so the LSTM's trace serves it too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.nn.cells import lstm
from charlstm.nn.cells.base import Cell, CellGrads, InputPick
from charlstm.nn.cells.kernels import accumulate, backward_chunk_steps, is_ids, one_hot_product
from charlstm.nn.cells.lstm import (LOOP_GATES, PUBLIC_GATES, LSTMCache, sigmoid_prescale, to_loop_rows,
                                    to_public_columns)
from charlstm.nn.workspace import Workspace, empty, scratch


class PeepholeCache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer (lstm.LSTMCache's fields
    and readers, plus the peepholes)."""

    ids: np.ndarray | None   # (T, B) ids when the input was one-hot, else None
    Wx: np.ndarray           # (D, 4H)
    Wh: np.ndarray           # (H, 4H)
    p_i: np.ndarray          # (H,)
    p_f: np.ndarray          # (H,)
    p_o: np.ndarray          # (H,)
    xh: np.ndarray           # (T+1, D'+H+1, B): step t's [x_t; h_t; 1], with h_T in the last
    gates: np.ndarray        # (T, 4H, B) activated gates, blocks in LOOP_GATES order
    c: np.ndarray            # (T+1, H, B) cell states, c[0] = c0
    tanh_c: np.ndarray       # (T, H, B) tanh(c[t+1])
    x_mask: np.ndarray | None = None   # (T, D, B) the input's dropout mask, if it had one

    gate = LSTMCache.gate        # (name) -> (T, B, H), as the LSTM's
    cell = LSTMCache.cell        # () -> (T+1, B, H)
    hidden = LSTMCache.hidden    # () -> (T+1, B, H)


class PeepholeGrads(NamedTuple):
    dx: np.ndarray | None  # (T, D, B); None when the input was ids
    dh0: np.ndarray        # (B, H)
    dc0: np.ndarray        # (B, H)
    dWx: np.ndarray        # (D, 4H)
    dWh: np.ndarray        # (H, 4H)
    db: np.ndarray         # (4H,)
    dp_i: np.ndarray       # (H,)
    dp_f: np.ndarray       # (H,)
    dp_o: np.ndarray       # (H,)


def peephole_forward(x, h0, c0, Wx, Wh, b, p_i, p_f, p_o, workspace: Workspace | None = None, x_mask=None):
    """Run one peephole LSTM layer over T steps.

    x (T, D, B) floats or (T, B) ids; h0, c0 (B, H); p_i, p_f, p_o (H,). x_mask (T, D, B) or None:
    the layer reads x * x_mask. Returns (h_out (T, H, B), (hT, cT) each (B, H), cache), as
    lstm_forward: `h_out` is a view into the cache, which lives in the workspace if one is given.
    """
    ws = workspace
    T = x.shape[0]
    B = x.shape[-1] if not is_ids(x) else x.shape[1]
    H = Wh.shape[0]
    dtype = Wh.dtype
    scale = sigmoid_prescale(H, dtype)
    ids = x if is_ids(x) else None
    if ids is not None and x_mask is not None:
        raise ValueError("an input of ids takes no mask")
    D = 0 if ids is not None else x.shape[1]

    # The step's weights as one (4H, D+H+1) matrix [Wx^T | Wh^T | b], in loop order, prescaled.
    weights = scratch(ws, "weights", (4 * H, D + H + 1), dtype)
    if D:
        to_loop_rows(Wx, out=weights[:, :D], scale=scale)
    to_loop_rows(Wh, out=weights[:, D:D + H], scale=scale)
    to_loop_rows(b[None, :], out=weights[:, D + H:], scale=scale)
    # The peepholes, halved like their gates' rows: p_i and p_f as one (2, H, 1) block for the
    # rows of i and f (adjacent in loop order), p_o as (H, 1).
    peep_if = scratch(ws, "peep_if", (2, H, 1), dtype)
    np.multiply(p_i[:, None], 0.5, out=peep_if[0])
    np.multiply(p_f[:, None], 0.5, out=peep_if[1])
    peep_o = scratch(ws, "peep_o", (H, 1), dtype)
    np.multiply(p_o[:, None], 0.5, out=peep_o)

    xh = empty(ws, "xh", (T + 1, D + H + 1, B), dtype)
    if x_mask is not None:
        np.multiply(x, x_mask, out=xh[:T, :D])
    else:
        xh[:T, :D] = x if D else 0
    xh[T, :D] = 0                                   # no step reads it; keeps the array defined
    xh[0, D:D + H] = h0.T
    xh[:, D + H] = 1
    c = empty(ws, "c", (T + 1, H, B), dtype)
    c[0] = c0.T
    tanh_c = empty(ws, "tanh_c", (T, H, B), dtype)
    gates = empty(ws, "gates", (T, 4 * H, B), dtype)    # pre-activations, then gates, in place
    i_times_g = scratch(ws, "i_times_g", (H, B), dtype)
    peep_terms = scratch(ws, "peep_terms", (2, H, B), dtype)   # p_i * c_prev, p_f * c_prev; then p_o * c
    if ids is not None:
        # (4H, V): a one-hot input picks a column
        columns = to_loop_rows(Wx, out=empty(ws, "columns", (4 * H, Wx.shape[0]), dtype), scale=scale)
        picked = empty(ws, "picked", (4 * H, B), dtype)

    for t in range(T):
        z = gates[t]
        np.matmul(weights, xh[t], out=z)
        if ids is not None:
            np.take(columns, ids[t], axis=1, out=picked)
            z += picked
        o, i, f, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        # i, f, g first: the peepholes of i and f read c_prev
        np.multiply(peep_if, c[t], out=peep_terms)
        z[H:3 * H] += peep_terms.reshape(2 * H, B)
        np.tanh(z[H:], out=z[H:])
        sig = z[H:3 * H]
        sig *= 0.5
        sig += 0.5
        np.multiply(f, c[t], out=c[t + 1])
        np.multiply(i, g, out=i_times_g)
        c[t + 1] += i_times_g
        # then o, whose peephole reads the new c
        np.multiply(peep_o, c[t + 1], out=peep_terms[0])
        o += peep_terms[0]
        np.tanh(o, out=o)
        o *= 0.5
        o += 0.5
        np.tanh(c[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=xh[t + 1, D:D + H])

    cache = PeepholeCache(ids=ids, Wx=Wx, Wh=Wh, p_i=p_i, p_f=p_f, p_o=p_o, xh=xh, gates=gates, c=c,
                          tanh_c=tanh_c, x_mask=x_mask)
    return xh[1:, D:D + H], (xh[T, D:D + H].T.copy(), c[T].T.copy()), cache


def peephole_backward(dh_out, cache: PeepholeCache, dhT=None, dcT=None, workspace: Workspace | None = None,
                      dx_workspace: Workspace | None = None, *, chunk_steps: int | None = None) -> PeepholeGrads:
    """Backpropagate through T steps of one layer, as lstm_backward (read its docstring): dh_out
    (T, H, B); dhT, dcT (B, H) or None (zero); `chunk_steps` overrides the chunk length (the
    result does not depend on it, up to rounding); the gradients live in the workspace if one is
    given, dx in `dx_workspace`'s buffer "dx" if given.

    Per step, with dh the gradient reaching h and dc the one reaching c from the step after:
        dz_o = dh * tanh(c) * o(1-o)
        dc  += dh * o (1 - tanh(c)^2) + p_o * dz_o          (h through tanh(c), and o through c)
        dz_i = dc * g * i(1-i)    dz_f = dc * c_prev * f(1-f)    dz_g = dc * i * (1-g^2)
        dc_prev = dc * f + p_i * dz_i + p_f * dz_f           (c_prev through c, i and f)
    Both dc updates are one factor times dh or dc, computed for a chunk's steps at once:
        dc_from_h = o (1 - tanh(c)^2) + p_o * tanh(c) * o(1-o)
        dc_carry  = f + p_i * g * i(1-i) + p_f * c_prev * f(1-f)
    so the loop does the LSTM's products. And dp_i = sum dz_i * c_prev, dp_f = sum dz_f * c_prev,
    dp_o = sum dz_o * c over steps and batch.
    """
    ws = workspace
    gates, c, tanh_c, xh = cache.gates, cache.c, cache.tanh_c, cache.xh
    T, H, B = tanh_c.shape
    K = xh.shape[1]                                 # D + H + 1
    D = K - H - 1
    dtype = gates.dtype
    gates4 = gates.reshape(T, 4, H, B)              # blocks o, i, f, g
    # dz -> [dx; dh_prev]: the transpose of the step's weights, unscaled, without the bias column
    back_weights = scratch(ws, "weights", (D + H, 4 * H), dtype)   # (D+H, 4H), columns in loop order
    for k, name in enumerate(LOOP_GATES):
        j = PUBLIC_GATES.index(name)
        if D:
            back_weights[:D, k * H:(k + 1) * H] = cache.Wx[:, j * H:(j + 1) * H]
        back_weights[D:, k * H:(k + 1) * H] = cache.Wh[:, j * H:(j + 1) * H]
    peep = scratch(ws, "peep", (3, H, 1), dtype)    # p_o, p_i, p_f: the loop order of their gates
    for k, p in enumerate((cache.p_o, cache.p_i, cache.p_f)):
        peep[k, :, 0] = p

    dh = np.empty((H, B), dtype=dtype)
    dc = np.zeros((H, B), dtype=dtype) if dcT is None else np.array(np.transpose(dcT), dtype=dtype, order="C")
    carry = np.zeros((H, B), dtype=dtype) if dhT is None else np.array(np.transpose(dhT), dtype=dtype, order="C")
    # Step t's [dx_t; gradient to h_{t-1}] overlap in one buffer, as in lstm_backward.
    flat = empty(dx_workspace or ws, "dx", (T * D * B + H * B,), dtype)
    item = flat.itemsize
    out_steps = np.lib.stride_tricks.as_strided(flat, (T, D + H, B), (D * B * item, B * item, item))
    V = cache.Wx.shape[0]
    dW = scratch(ws, "dW", (4 * H, K), dtype)          # [dWx^T | dWh^T | db] in loop order
    dWx_ids = scratch(ws, "dWx_ids", (4 * H, V), dtype) if cache.ids is not None else None
    product = scratch(ws, "product", (4 * H, max(K, V if cache.ids is not None else 0)), dtype)
    dp = empty(ws, "grad_peep", (3, H), dtype)         # dp_o, dp_i, dp_f
    dp_chunk = scratch(ws, "dp_chunk", (3, H), dtype)

    steps = chunk_steps or backward_chunk_steps(T, B)
    dz_buf = scratch(ws, "dz", (steps, 4, H, B), dtype)
    dc_from_h_buf = scratch(ws, "dc_from_h", (steps, H, B), dtype)
    dc_carry_buf = scratch(ws, "dc_carry", (steps, H, B), dtype)
    peep_terms_buf = scratch(ws, "peep_terms", (steps, 3, H, B), dtype)
    dz_cols_buf = scratch(ws, "dz_cols", (4 * H, steps * B), dtype)
    xh_cols_buf = scratch(ws, "xh_cols", (K, steps * B), dtype)
    tmp = scratch(ws, "tmp", (H, B), dtype)
    first_chunk = True

    for end in range(T, 0, -steps):
        start = max(0, end - steps)
        n = end - start
        a = gates4[start:end]
        o, i, f, g = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        # dz holds, per gate, the factor that multiplies the incoming dh (block o) or dc (i, f, g)
        dz = dz_buf[:n]
        np.subtract(1, a, out=dz)
        dz *= a                                     # a(1 - a): the sigmoid derivative (g fixed next)
        np.multiply(g, g, out=dz[:, 3])
        np.subtract(1, dz[:, 3], out=dz[:, 3])      # 1 - g^2: the tanh derivative
        dz[:, 0] *= tanh_c[start:end]
        dz[:, 1] *= g
        dz[:, 2] *= c[start:end]
        dz[:, 3] *= i
        # the peepholes' share of the two factors of the recurrence (see the docstring)
        peep_terms = peep_terms_buf[:n]             # p_o dz_o/dh, p_i dz_i/dc, p_f dz_f/dc
        np.multiply(dz[:, :3], peep, out=peep_terms)
        dc_from_h = dc_from_h_buf[:n]               # o (1 - tanh(c)^2) + p_o tanh(c) o(1-o)
        np.multiply(tanh_c[start:end], tanh_c[start:end], out=dc_from_h)
        np.subtract(1, dc_from_h, out=dc_from_h)
        dc_from_h *= o
        dc_from_h += peep_terms[:, 0]
        dc_carry = dc_carry_buf[:n]                 # f + p_i g i(1-i) + p_f c_prev f(1-f)
        np.add(peep_terms[:, 1], peep_terms[:, 2], out=dc_carry)
        dc_carry += f

        for k in range(n - 1, -1, -1):
            t = start + k
            np.add(dh_out[t], carry, out=dh)
            np.multiply(dh, dc_from_h[k], out=tmp)
            dc += tmp
            dz[k, 1:] *= dc
            dz[k, 0] *= dh
            dc *= dc_carry[k]                         # gradient flowing to c_prev
            out = out_steps[T - 1 - t]
            np.matmul(back_weights, dz[k].reshape(4 * H, B), out=out)
            carry = out[D:]                           # gradient flowing to h_prev

        # The peepholes' gradients over the chunk: o's reads c, i's and f's read c_prev.
        np.einsum("thb,thb->h", dz[:, 0], c[start + 1:end + 1], out=dp_chunk[0])
        np.einsum("tghb,thb->gh", dz[:, 1:3], c[start:end], out=dp_chunk[1:])
        if first_chunk:
            dp[...] = dp_chunk
        else:
            dp += dp_chunk
        # The chunk's dz and [x; h; 1] as (rows, steps * B) matrices, then one product for all
        # the weight gradients (and the bias, through the row of ones).
        dz_cols = dz_cols_buf[:, :n * B]
        np.copyto(dz_cols.reshape(4 * H, n, B), dz.reshape(n, 4 * H, B).transpose(1, 0, 2))
        xh_cols = xh_cols_buf[:, :n * B]
        np.copyto(xh_cols.reshape(K, n, B), xh[start:end].transpose(1, 0, 2))
        accumulate(dW, np.matmul, dz_cols, xh_cols.T, product[:, :K], first_chunk)
        if cache.ids is not None:
            one_hot_ids = cache.ids[start:end].reshape(n * B)
            accumulate(dWx_ids, one_hot_product, dz_cols, one_hot_ids, product[:, :V], first_chunk, ws)
        first_chunk = False

    grads = (dWx_ids if cache.ids is not None else dW[:, :D], dW[:, D:D + H], dW[:, D + H:])
    dWx, dWh, db = (to_public_columns(g, out=empty(ws, name, (g.shape[1], 4 * H), dtype))
                    for g, name in zip(grads, ("grad_Wx", "grad_Wh", "grad_b")))
    dx = flat[:T * D * B].reshape(T, D, B)[::-1]   # back in time order
    if cache.x_mask is not None:
        dx *= cache.x_mask
    return PeepholeGrads(dx=None if D == 0 else dx, dh0=np.ascontiguousarray(carry.T),
                         dc0=np.ascontiguousarray(dc.T), dWx=dWx, dWh=dWh, db=db[0],
                         dp_i=dp[1], dp_f=dp[2], dp_o=dp[0])


# --- the cell interface (see cells/__init__.py) -------------------------------------------------

def param_shapes(D: int, H: int) -> dict[str, tuple[int, ...]]:
    return {**lstm.param_shapes(D, H), "p_i": (H,), "p_f": (H,), "p_o": (H,)}


def init(D: int, H: int, rng: np.random.Generator, one_hot: bool) -> dict[str, np.ndarray]:
    """Fresh parameters of one layer (float64): Wx, Wh and b exactly as lstm.init draws them (the
    same draws from rng, forget bias 1), and the peepholes at zero.

    Zero peepholes make the fresh cell the plain LSTM, whose start is known to train. And zero is
    not a point the peepholes get stuck at: each one touches one unit, whose symmetry with the
    others the random Wx and Wh already break, and its gradient (a sum of dz * c) is nonzero as
    soon as the cell holds anything. Random peepholes would gain little: c starts at zero and is
    unbounded, and p * c of order one or more saturates gates before the weights have learnt
    what the cell should hold.
    """
    params = lstm.init(D, H, rng, one_hot)
    for key in ("p_i", "p_f", "p_o"):
        params[key] = np.zeros(H)
    return params


def forward(x, state, params, workspace: Workspace | None = None, x_mask=None):
    h0, c0 = state
    return peephole_forward(x, h0, c0, params["Wx"], params["Wh"], params["b"], params["p_i"], params["p_f"],
                            params["p_o"], workspace, x_mask=x_mask)


def backward(dh_out, cache: PeepholeCache, dstate=None, workspace: Workspace | None = None,
             dx_workspace: Workspace | None = None):
    dhT, dcT = (None, None) if dstate is None else dstate
    g = peephole_backward(dh_out, cache, dhT, dcT, workspace=workspace, dx_workspace=dx_workspace)
    return CellGrads(dx=g.dx, dstate=(g.dh0, g.dc0),
                     params={"Wx": g.dWx, "Wh": g.dWh, "b": g.db, "p_i": g.dp_i, "p_f": g.dp_f, "p_o": g.dp_o})


trace = lstm.trace       # the cache reads as the LSTM's: h, c and the gates i, f, g, o


class PeepholeStep:
    """One step of the layer for decoding, with every buffer and view made once.

    The same math as `peephole_forward` in the same loop layout; as in lstm.LSTMStep, a step is
    one matrix product of the caller's rows [x; 1; h] with the weights [Wx^T | b | Wh^T] (in loop
    order, prescaled), and a one-hot input is a column of the prearranged Wx, picked by id (base.InputPick).
    """

    def __init__(self, params, rows: np.ndarray, one_hot: bool):
        Wx, Wh, b = params["Wx"], params["Wh"], params["b"]
        H, B, dtype = Wh.shape[0], rows.shape[1], Wh.dtype
        scale = sigmoid_prescale(H, dtype)
        parts = [b[None, :], Wh] if one_hot else [Wx, b[None, :], Wh]
        self.weights = to_loop_rows(np.concatenate(parts, axis=0), scale=scale)
        self.pick = InputPick(to_loop_rows(Wx, scale=scale), B) if one_hot else None    # of (4H, V)
        # halved like their gates' rows
        self.peep_if = (0.5 * np.stack([params["p_i"], params["p_f"]])[:, :, None]).astype(dtype)  # (2, H, 1)
        self.peep_o = (0.5 * params["p_o"][:, None]).astype(dtype)                                  # (H, 1)
        self.rows, self.h = rows, rows[rows.shape[0] - H:]
        self.c = np.zeros((H, B), dtype=dtype)
        self.z = np.empty((4 * H, B), dtype=dtype)
        self.ig = np.empty((H, B), dtype=dtype)
        self.half = np.full((2 * H, B), 0.5, dtype=dtype)   # an array: a Python 0.5 costs a call twice
        self.half_o = self.half[:H]
        self.peep_terms = np.empty((2, H, B), dtype=dtype)
        z = self.z
        self.o, self.i, self.f, self.g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        self.ifg, self.sig_if = z[H:], z[H:3 * H]
        self.z_if = z[H:3 * H].reshape(2, H, B)
        self.peep_o_term = self.peep_terms[0]

    def __call__(self, ids=None) -> None:
        # Outputs are passed by position: at batch 1 each call is mostly its own overhead.
        z, c, o, sig, half = self.z, self.c, self.o, self.sig_if, self.half
        add, multiply, tanh = np.add, np.multiply, np.tanh
        np.matmul(self.weights, self.rows, out=z)
        if self.pick is not None:
            add(z, self.pick(ids), z)
        multiply(self.peep_if, c, self.peep_terms)     # i and f look at c_prev
        add(self.z_if, self.peep_terms, self.z_if)
        tanh(self.ifg, self.ifg)
        multiply(sig, half, sig)                       # i, f: sigmoid = 0.5 tanh(z / 2) + 0.5
        add(sig, half, sig)
        multiply(c, self.f, c)
        multiply(self.i, self.g, self.ig)
        add(c, self.ig, c)
        multiply(self.peep_o, c, self.peep_o_term)     # o looks at the new c
        add(o, self.peep_o_term, o)
        tanh(o, o)
        half_o = self.half_o
        multiply(o, half_o, o)
        add(o, half_o, o)
        tanh(c, self.h)
        multiply(self.h, o, self.h)

    def get_state(self):
        return self.h.T.copy(), self.c.T.copy()

    def set_state(self, state) -> None:
        h, c = state
        self.h[...] = h.T
        self.c[...] = c.T


CELL = Cell(name="peephole", state=("h", "c"), quantities=("h", "c", "i", "f", "g", "o"),
            param_shapes=param_shapes, init=init, forward=forward, backward=backward, trace=trace,
            stepper=PeepholeStep, summary="LSTM with diagonal peepholes: gates i, f, o also read the cell c")
