"""One vanilla (Elman, tanh) RNN layer over T time steps, written as a pair of pure functions.

The math, for one step, with the parameters as the checkpoint stores them:
    Wx (D, H)    Wh (H, H)    b (H,)

    h = tanh(Wx^T x + Wh^T h_prev + b)

It maps onto PyTorch's nn.RNN(nonlinearity="tanh") with weight_ih = Wx^T, weight_hh = Wh^T,
bias_ih = b and bias_hh = 0 (and back with b = bias_ih + bias_hh: only the sum matters).
For the first layer the input is a one-hot vector, so `Wx^T x` is a row of Wx, gathered by id.

`rnn_forward` returns the outputs of every step, the final h and a cache; `rnn_backward` takes
the upstream gradients and the cache and returns the gradients of the input, the initial state
and the parameters, in whatever float dtype the parameters have.

Layout and speed
----------------
The layout of lstm.py, for the same reasons: sequences feature-major, x (T, D, B) or ids (T, B),
h_out (T, H, B), states (B, H), and one step's input, previous output and a constant 1 one above
the other in a (D+H+1, B) block, so that a step is one product with [Wx^T | Wh^T | b] (H, D+H+1)
that writes straight into the next step's block, and one tanh in place: nothing else.
The backward step is one product too, [Wh; Wx] (H+D, H) times the step's gradient, giving
the gradient for h_prev and dx together (see `rnn_backward` for where they are written).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.nn.cells.base import Cell, CellGrads, InputPick
from charlstm.nn.cells.kernels import accumulate, backward_chunk_steps, is_ids, one_hot_product
from charlstm.nn.workspace import Workspace, empty, scratch


class RNNCache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer."""

    ids: np.ndarray | None   # (T, B) ids when the input was one-hot, else None
    Wx: np.ndarray           # (D, H)
    Wh: np.ndarray           # (H, H)
    xh: np.ndarray           # (T+1, D'+H+1, B): step t's [x_t; h_t; 1], with h_T in the last;
                             # D' = D for vector input, 0 for ids (x is then not stored)
    x_mask: np.ndarray | None = None   # (T, D, B) the input's dropout mask, if it had one

    def hidden(self) -> np.ndarray:
        """The hidden states h[0] .. h[T], (T+1, B, H); h[1:] are the layer's outputs."""
        H = self.Wh.shape[0]
        D = self.xh.shape[1] - H - 1
        return self.xh[:, D:D + H].transpose(0, 2, 1)


class RNNGrads(NamedTuple):
    dx: np.ndarray | None  # (T, D, B); None when the input was ids
    dh0: np.ndarray        # (B, H)
    dWx: np.ndarray        # (D, H)
    dWh: np.ndarray        # (H, H)
    db: np.ndarray         # (H,)


def rnn_forward(x, h0, Wx, Wh, b, workspace: Workspace | None = None, x_mask=None):
    """Run one RNN layer over T steps.

    x (T, D, B) floats or (T, B) ids; h0 (B, H). x_mask (T, D, B) or None: the layer reads
    x * x_mask (dropout on the way in; rnn_backward's dx is still the gradient for x).
    Returns (h_out (T, H, B), hT (B, H), cache). `h_out` is a view into the cache: callers must
    not modify it in place. With a workspace, the cache lives in it (see workspace.py); hT is
    always fresh.
    """
    ws = workspace
    ids = x if is_ids(x) else None
    if ids is not None and x_mask is not None:
        raise ValueError("an input of ids takes no mask")
    T = x.shape[0]
    B = x.shape[1] if ids is not None else x.shape[2]
    H = Wh.shape[0]
    dtype = Wh.dtype
    D = 0 if ids is not None else x.shape[1]

    weights = scratch(ws, "weights", (H, D + H + 1), dtype)     # [Wx^T | Wh^T | b]
    if D:
        weights[:, :D] = Wx.T
    weights[:, D:D + H] = Wh.T
    weights[:, D + H] = b

    xh = empty(ws, "xh", (T + 1, D + H + 1, B), dtype)
    if x_mask is not None:
        np.multiply(x, x_mask, out=xh[:T, :D])
    else:
        xh[:T, :D] = x if D else 0
    xh[T, :D] = 0                                   # no step reads it; keeps the array defined
    xh[0, D:D + H] = h0.T
    xh[:, D + H] = 1
    if ids is not None:
        columns = scratch(ws, "columns", (H, Wx.shape[0]), dtype)   # (H, V): one-hot picks a column
        columns[...] = Wx.T
        picked = scratch(ws, "picked", (H, B), dtype)

    for t in range(T):
        h_next = xh[t + 1, D:D + H]
        np.matmul(weights, xh[t], out=h_next)      # the pre-activation, in the next step's block
        if ids is not None:
            np.take(columns, ids[t], axis=1, out=picked)
            h_next += picked
        np.tanh(h_next, out=h_next)

    cache = RNNCache(ids=ids, Wx=Wx, Wh=Wh, xh=xh, x_mask=x_mask)
    return xh[1:, D:D + H], xh[T, D:D + H].T.copy(), cache


def rnn_backward(dh_out, cache: RNNCache, dhT=None, workspace: Workspace | None = None,
                 dx_workspace: Workspace | None = None, *, chunk_steps: int | None = None) -> RNNGrads:
    """Backpropagate through T steps of one layer.

    dh_out (T, H, B) is the gradient of the loss for every step's output; dhT (B, H) for the
    final state (None means zero, what truncated BPTT uses). `chunk_steps` overrides the chunk
    length (the result does not depend on it, up to rounding). With a workspace the gradients
    live in it, dx in `dx_workspace`'s buffer "dx" if given (see lstm_backward).

    Time is walked backwards in chunks: the tanh derivatives 1 - h^2 of a chunk are computed at
    once, a step is one sum, one product in place and one matrix product, and the weight
    gradients of the chunk are one large matrix product.
    """
    ws = workspace
    xh = cache.xh
    H = cache.Wh.shape[0]
    T, K, B = xh.shape[0] - 1, xh.shape[1], xh.shape[2]
    D = K - H - 1
    dtype = xh.dtype
    ids = cache.ids
    V = cache.Wx.shape[0]

    back_weights = scratch(ws, "weights", (H + D, H), dtype)    # da -> [dh_prev; dx]
    back_weights[:H] = cache.Wh
    if D:
        back_weights[H:] = cache.Wx
    dh = scratch(ws, "dh", (H, B), dtype)
    carry = np.zeros((H, B), dtype=dtype) if dhT is None else np.array(np.transpose(dhT), dtype=dtype, order="C")
    # Step t's product [gradient flowing to h_{t-1}; dx_t] is written at offset t*D*B of `flat`.
    # The steps overlap: the next step walked (t-1) writes over this step's first H rows, which
    # it has read (into dh) by then, and stops where dx_t begins. So dx in time order, plus one
    # H-row block in front of it, is all the memory this needs, and dx is never copied.
    flat = empty(dx_workspace or ws, "dx", (T * D * B + H * B,), dtype)
    item = flat.itemsize
    out_steps = np.lib.stride_tricks.as_strided(flat, (T, H + D, B), (D * B * item, B * item, item))
    dW = scratch(ws, "dW", (H, K), dtype)                     # [dWx^T | dWh^T | db]
    dWx_ids = scratch(ws, "dWx_ids", (H, V), dtype) if ids is not None else None
    product = scratch(ws, "product", (H, max(K, V if ids is not None else 0)), dtype)

    steps = chunk_steps or backward_chunk_steps(T, B)
    da_buf = scratch(ws, "da", (steps, H, B), dtype)
    da_cols_buf = scratch(ws, "da_cols", (H, steps * B), dtype)
    xh_cols_buf = scratch(ws, "xh_cols", (K, steps * B), dtype)
    first_chunk = True

    for end in range(T, 0, -steps):
        start = max(0, end - steps)
        n = end - start
        da = da_buf[:n]
        h_next = xh[start + 1:end + 1, D:D + H]
        np.multiply(h_next, h_next, out=da)
        np.subtract(1, da, out=da)                    # 1 - h^2: the tanh derivative

        for k in range(n - 1, -1, -1):
            t = start + k
            np.add(dh_out[t], carry, out=dh)
            da[k] *= dh
            out = out_steps[t]
            np.matmul(back_weights, da[k], out=out)
            carry = out[:H]                           # gradient flowing to h_prev

        da_cols = da_cols_buf[:, :n * B]
        np.copyto(da_cols.reshape(H, n, B), da.transpose(1, 0, 2))
        xh_cols = xh_cols_buf[:, :n * B]
        np.copyto(xh_cols.reshape(K, n, B), xh[start:end].transpose(1, 0, 2))
        accumulate(dW, np.matmul, da_cols, xh_cols.T, product[:, :K], first_chunk)
        if ids is not None:
            one_hot_ids = ids[start:end].reshape(n * B)
            accumulate(dWx_ids, one_hot_product, da_cols, one_hot_ids, product[:, :V], first_chunk, ws)
        first_chunk = False

    dWx = empty(ws, "grad_Wx", (V, H), dtype)
    dWx[...] = (dWx_ids if ids is not None else dW[:, :D]).T
    dWh = empty(ws, "grad_Wh", (H, H), dtype)
    dWh[...] = dW[:, D:D + H].T
    db = empty(ws, "grad_b", (H,), dtype)
    db[...] = dW[:, D + H]
    dx = flat[H * B:].reshape(T, D, B) if D else None
    if dx is not None and cache.x_mask is not None:
        dx *= cache.x_mask
    return RNNGrads(dx=dx, dh0=np.ascontiguousarray(carry.T), dWx=dWx, dWh=dWh, db=db)


# --- the cell interface (see cells/__init__.py) -------------------------------------------------

def param_shapes(D: int, H: int) -> dict[str, tuple[int, ...]]:
    return {"Wx": (D, H), "Wh": (H, H), "b": (H,)}


def orthogonal(H: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal (H, H) matrix, uniformly distributed (Haar): the Q of a Gaussian
    matrix's QR, its columns' signs corrected so that R's diagonal is positive (without that,
    QR's sign convention would bias the distribution)."""
    q, r = np.linalg.qr(rng.standard_normal((H, H)))
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    return q * signs


def init(D: int, H: int, rng: np.random.Generator, one_hot: bool) -> dict[str, np.ndarray]:
    """Fresh parameters of one layer (float64).

    Wx as for the LSTM and the GRU: uniform in +-1 for the first layer (one-hot input, see
    lstm.init), in +-1/sqrt(D) for a vector input of size D. Wh is a random orthogonal matrix. The gradient that
    reaches a step k steps back is multiplied by k factors Wh diag(1 - h^2): with uniform
    +-1/sqrt(H) weights, Wh's singular values spread around 1/sqrt(3) = 0.58 and the gradient of
    a vanilla RNN would fade within a few steps; an orthogonal Wh keeps every direction's scale,
    so only the tanh's slopes shrink it. b starts at zero. The rng is drawn for Wx, then Wh.
    """
    input_bound = 1.0 if one_hot else 1.0 / np.sqrt(D)    # a vector input: +-1/sqrt(D), as for h
    Wx = rng.uniform(-input_bound, input_bound, size=(D, H))
    Wh = orthogonal(H, rng)
    return {"Wx": Wx, "Wh": Wh, "b": np.zeros(H)}


def forward(x, state, params, workspace: Workspace | None = None, x_mask=None):
    (h0,) = state
    h_out, hT, cache = rnn_forward(x, h0, params["Wx"], params["Wh"], params["b"], workspace, x_mask=x_mask)
    return h_out, (hT,), cache


def backward(dh_out, cache: RNNCache, dstate=None, workspace: Workspace | None = None,
             dx_workspace: Workspace | None = None):
    dhT = None if dstate is None else dstate[0]
    g = rnn_backward(dh_out, cache, dhT, workspace=workspace, dx_workspace=dx_workspace)
    return CellGrads(dx=g.dx, dstate=(g.dh0,), params={"Wx": g.dWx, "Wh": g.dWh, "b": g.db})


def trace(cache: RNNCache) -> dict[str, np.ndarray]:
    return {"h": cache.hidden()[1:]}


class RNNStep:
    """One step of the layer for decoding, with every buffer and view made once.

    The caller's rows [x; 1; h] meet [Wx^T | b | Wh^T] (H, D'+1+H) in one product; a one-hot
    input is a column of Wx^T, picked by id (base.InputPick); one tanh writes the new h into the rows.
    """

    def __init__(self, params, rows: np.ndarray, one_hot: bool):
        Wx, Wh, b = params["Wx"], params["Wh"], params["b"]
        H, B, dtype = Wh.shape[0], rows.shape[1], Wh.dtype
        parts = [b[None, :], Wh] if one_hot else [Wx, b[None, :], Wh]
        self.weights = np.ascontiguousarray(np.concatenate(parts, axis=0).T)    # (H, D'+1+H)
        self.pick = InputPick(np.ascontiguousarray(Wx.T), B) if one_hot else None     # of (H, V)
        self.rows, self.h = rows, rows[rows.shape[0] - H:]
        self.a = np.empty((H, B), dtype=dtype)      # not h itself: the product reads h

    def __call__(self, ids=None) -> None:
        a = self.a
        np.matmul(self.weights, self.rows, out=a)
        if self.pick is not None:
            np.add(a, self.pick(ids), a)
        np.tanh(a, self.h)

    def get_state(self):
        return (self.h.T.copy(),)

    def set_state(self, state) -> None:
        (h,) = state
        self.h[...] = h.T


CELL = Cell(name="rnn", state=("h",), quantities=("h",),
            param_shapes=param_shapes, init=init, forward=forward, backward=backward, trace=trace,
            stepper=RNNStep, summary="vanilla recurrent network: h = tanh(Wx^T x + Wh^T h + b)")
