"""One LSTM layer over T time steps, written as a pair of pure functions.

The math, for one step, with the parameters as the checkpoint stores them:
    Wx (D, 4H)    Wh (H, 4H)    b (4H,)     gate blocks in the order i, f, g, o

    z = Wx^T x + Wh^T h_prev + b
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c = f * c_prev + i * g
    h = o * tanh(c)

For the first layer the input is a one-hot vector, so `Wx^T x` is just a row of Wx: we gather it
by id instead of building the one-hot matrix. The math is the same; the memory and time are not.

`lstm_forward` returns the outputs of every step, the final (h, c) and a cache; `lstm_backward`
takes the upstream gradients and the cache and returns the gradients of the inputs, the initial
state and the parameters. Both run in whatever float dtype the parameters have (float32 for
training, float64 for the gradient checks).

Layout: feature-major, and why
------------------------------
Sequences are stored time-first and *feature-major*: one step of a layer's input is a (D, B)
block, of its output an (H, B) block, so
    x      (T, D, B) floats, or (T, B) integer ids for the first layer
    h_out  (T, H, B)
while the initial and final states, which belong to the user, are (B, H).
Only the recurrent products must be computed one step at a time, and this layout is the one in
which they are fast:
- the per-step product is (4H, H+1) x (H+1, B), a shape for which the BLAS kernels run about
  1.5x faster than for (B, H+1) x (H+1, 4H) at the batch sizes of training;
- each gate of a step is a contiguous block of rows, so every elementwise operation on a gate
  runs over contiguous memory;
- a step's previous output and a constant 1 (the bias input) sit one above the other in one
  (H+1, B) block, so a step is a single matrix product, and so is its backward.
A vector input (every layer above the first) does not depend on the recurrence, so its part of
the pre-activations is one large product per chunk of a few dozen steps, ahead of them, and its
part of the backward pass (the gradient of the input) one large product per chunk after them: a
product over some 500 columns runs at about 1.3x the rate of products over B columns on two
cores, and the per-step products shrink from D+H+1 columns of weights to H+1.
Inside the loop the gates are also reordered to o, i, f, g: the three sigmoid gates come first,
so one pass turns them all from tanh into sigmoid (see `sigmoid_prescale`), and in the backward
pass the three gates whose gradient is driven by the cell state (i, f, g) are contiguous too. The
parameters keep the layout and order above; the cache has `gate`, `cell` and `hidden` to read
its contents in the public order, (T, B, H).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.nn.cells.base import Cell, CellGrads, InputPick
from charlstm.nn.cells.kernels import accumulate, backward_chunk_steps, is_ids, one_hot_product
from charlstm.nn.workspace import Workspace, empty, scratch

PUBLIC_GATES = "ifgo"       # the order of the 4H blocks in Wx, Wh and b
LOOP_GATES = "oifg"         # the order inside the time loop: sigmoid gates first, tanh last


class LSTMCache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer."""

    ids: np.ndarray | None   # (T, B) ids when the input was one-hot, else None
    Wx: np.ndarray           # (D, 4H)
    Wh: np.ndarray           # (H, 4H)
    xh: np.ndarray           # (T+1, H+1, B): step t's [h_t; 1], with h_T in the last
    gates: np.ndarray        # (T, 4H, B) activated gates, blocks in LOOP_GATES order
    c: np.ndarray            # (T+1, H, B) cell states, c[0] = c0
    tanh_c: np.ndarray       # (T, H, B) tanh(c[t+1])
    x_mask: np.ndarray | None = None   # (T, D, B) the input's dropout mask, if it had one
    inputs: np.ndarray | None = None   # (D, T·B) the input as the layer read it (masked), feature
                                       # first; None for ids

    def gate(self, name: str) -> np.ndarray:
        """The activations of gate `name` ("i", "f", "g" or "o") at every step, (T, B, H)."""
        H = self.tanh_c.shape[1]
        k = LOOP_GATES.index(name)
        return self.gates[:, k * H:(k + 1) * H, :].transpose(0, 2, 1)

    def cell(self) -> np.ndarray:
        """The cell states c[0] .. c[T], (T+1, B, H)."""
        return self.c.transpose(0, 2, 1)

    def hidden(self) -> np.ndarray:
        """The hidden states h[0] .. h[T], (T+1, B, H); h[1:] are the layer's outputs."""
        H = self.tanh_c.shape[1]
        D = self.xh.shape[1] - H - 1
        return self.xh[:, D:D + H].transpose(0, 2, 1)


class LSTMGrads(NamedTuple):
    dx: np.ndarray | None  # (T, D, B); None when the input was ids
    dh0: np.ndarray        # (B, H)
    dc0: np.ndarray        # (B, H)
    dWx: np.ndarray        # (D, 4H)
    dWh: np.ndarray        # (H, 4H)
    db: np.ndarray         # (4H,)


def to_loop_rows(W: np.ndarray, out: np.ndarray | None = None, scale=None) -> np.ndarray:
    """W (K, 4H) with gate blocks in public order -> (4H, K) with gate blocks in loop order,
    each loop-order row multiplied by scale[row] if given. Block copies, not a fancy index."""
    K, H = W.shape[0], W.shape[1] // 4
    if out is None:
        out = np.empty((4 * H, K), dtype=W.dtype)
    for k, name in enumerate(LOOP_GATES):
        j = PUBLIC_GATES.index(name)
        rows = out[k * H:(k + 1) * H]
        rows[...] = W[:, j * H:(j + 1) * H].T
        if scale is not None:
            rows *= scale[k * H:(k + 1) * H, None]
    return out


def to_public_columns(A: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The inverse of `to_loop_rows` without scaling: A (4H, K) in loop order -> (K, 4H)."""
    H = A.shape[0] // 4
    if out is None:
        out = np.empty((A.shape[1], 4 * H), dtype=A.dtype)
    for k, name in enumerate(LOOP_GATES):
        j = PUBLIC_GATES.index(name)
        out[:, j * H:(j + 1) * H] = A[k * H:(k + 1) * H].T
    return out


def sigmoid_prescale(H: int, dtype) -> np.ndarray:
    """Per-row factors, in loop order, that let one tanh pass give all four gate activations.

    sigmoid(z) = 0.5 * tanh(0.5 z) + 0.5, so if the pre-activations of the three sigmoid gates
    are halved (folded into the weights, which are small), one tanh over the whole 4H block gives
    tanh(z_g) for g directly and, after `* 0.5 + 0.5` on the first 3H rows, sigmoid(z) for
    o, i and f. tanh never overflows, so there is no exp(-z) to guard either.
    """
    scale = np.full(4 * H, 0.5, dtype=dtype)
    scale[3 * H:] = 1.0
    return scale


def lstm_forward(x, h0, c0, Wx, Wh, b, workspace: Workspace | None = None, x_mask=None):
    """Run one LSTM layer over T steps.

    x (T, D, B) floats or (T, B) ids; h0, c0 (B, H). x_mask (T, D, B) or None: the layer reads
    x * x_mask (dropout on the way in; lstm_backward's dx is still the gradient for x). Masking
    here, as the input is copied into the cache, saves a pass and a buffer of masked outputs.
    Returns (h_out (T, H, B), (hT, cT) each (B, H), cache). `h_out` is a view into the cache:
    callers must not modify it in place.
    With a workspace, the cache lives in it (see workspace.py); hT and cT are always fresh.
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

    # The step's weights as one (4H, H+1) matrix [Wh^T | b], in loop order, prescaled.
    # Rebuilt from the parameters by every call, so the layers share one buffer.
    weights = scratch(ws, "weights", (4 * H, H + 1), dtype)
    to_loop_rows(Wh, out=weights[:, :H], scale=scale)
    to_loop_rows(b[None, :], out=weights[:, H:], scale=scale)

    xh = empty(ws, "xh", (T + 1, H + 1, B), dtype)
    xh[0, :H] = h0.T
    xh[:, H] = 1
    c = empty(ws, "c", (T + 1, H, B), dtype)
    c[0] = c0.T
    tanh_c = empty(ws, "tanh_c", (T, H, B), dtype)
    gates = empty(ws, "gates", (T, 4 * H, B), dtype)    # pre-activations, then gates, in place
    i_times_g = empty(ws, "i_times_g", (H, B), dtype)
    inputs = None
    if ids is not None:
        # (4H, V): a one-hot input picks a column
        columns = to_loop_rows(Wx, out=empty(ws, "columns", (4 * H, Wx.shape[0]), dtype), scale=scale)
        picked = empty(ws, "picked", (4 * H, B), dtype)
    else:
        # The input stored feature first, (D, T·B), so that a chunk of steps is one block of columns
        D = x.shape[1]
        inputs = empty(ws, "inputs", (D, T * B), dtype)
        if x_mask is None:
            np.copyto(inputs.reshape(D, T, B), x.transpose(1, 0, 2))
        else:
            np.multiply(x.transpose(1, 0, 2), x_mask.transpose(1, 0, 2), out=inputs.reshape(D, T, B))
        input_weights = to_loop_rows(Wx, out=scratch(ws, "input_weights", (4 * H, D), dtype), scale=scale)
        # a chunk of steps at a time, as many columns as the backward pass's chunks: enough for
        # the product's full rate, and a buffer of a few steps rather than of all T
        steps = backward_chunk_steps(T, B)
        from_input_buf = scratch(ws, "from_input", (4 * H, steps * B), dtype)

    for t in range(T):
        z = gates[t]
        np.matmul(weights, xh[t], out=z)
        if ids is not None:
            np.take(columns, ids[t], axis=1, out=picked)
            z += picked
        else:
            k = t % steps
            if k == 0:
                n = min(steps, T - t)
                from_input = np.matmul(input_weights, inputs[:, t * B:(t + n) * B], out=from_input_buf[:, :n * B])
                from_input = from_input.reshape(4 * H, n, B)
            z += from_input[:, k]
        np.tanh(z, out=z)
        sig = z[:3 * H]
        sig *= 0.5
        sig += 0.5
        o, i, f, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        np.multiply(f, c[t], out=c[t + 1])
        np.multiply(i, g, out=i_times_g)
        c[t + 1] += i_times_g
        np.tanh(c[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=xh[t + 1, :H])

    cache = LSTMCache(ids=ids, Wx=Wx, Wh=Wh, xh=xh, gates=gates, c=c, tanh_c=tanh_c, x_mask=x_mask, inputs=inputs)
    return xh[1:, :H], (xh[T, :H].T.copy(), c[T].T.copy()), cache


def lstm_backward(dh_out, cache: LSTMCache, dhT=None, dcT=None, chunk_steps: int | None = None,
                  workspace: Workspace | None = None, dx_workspace: Workspace | None = None) -> LSTMGrads:
    """Backpropagate through T steps of one layer.

    dh_out (T, H, B) is the gradient of the loss with respect to every step's output h;
    dhT, dcT (B, H) the gradient with respect to the final state (None means zero, which is what
    truncated BPTT uses: the gradient stops at the chunk boundary). `chunk_steps` overrides the
    chunk length below (the result does not depend on it, up to rounding). With a workspace,
    the gradients live in it (see workspace.py), dx in `dx_workspace`'s buffer "dx" if given: a
    stack needs only two, used in turn, as each layer's dx is read once, by the layer below.

    Time is walked backwards in chunks of a few dozen steps. For each chunk, what does not depend
    on the recurrence (the gate derivatives) is computed for all its steps at once; the loop then
    does a handful of in-place products and one matrix product per step, which gives the
    gradient flowing to the previous h; and the weight gradients of the whole chunk, and the
    gradient of its inputs, are one large matrix product each.
    """
    ws = workspace
    gates, c, tanh_c, xh = cache.gates, cache.c, cache.tanh_c, cache.xh
    T, H, B = tanh_c.shape
    K = H + 1                                       # the rows of [h; 1]
    D = 0 if cache.inputs is None else cache.inputs.shape[0]
    dtype = gates.dtype
    gates4 = gates.reshape(T, 4, H, B)              # blocks o, i, f, g
    # dz -> dh_prev and dz -> dx: the transposes of the step's weights, unscaled, without the bias
    # column; columns in loop order
    back_h = scratch(ws, "weights", (H, 4 * H), dtype)
    back_x = scratch(ws, "input_weights", (D, 4 * H), dtype) if D else None
    for k, name in enumerate(LOOP_GATES):
        j = PUBLIC_GATES.index(name)
        back_h[:, k * H:(k + 1) * H] = cache.Wh[:, j * H:(j + 1) * H]
        if D:
            back_x[:, k * H:(k + 1) * H] = cache.Wx[:, j * H:(j + 1) * H]

    dh = np.empty((H, B), dtype=dtype)
    dc = np.zeros((H, B), dtype=dtype) if dcT is None else np.array(np.transpose(dcT), dtype=dtype, order="C")
    carry = np.zeros((H, B), dtype=dtype) if dhT is None else np.array(np.transpose(dhT), dtype=dtype, order="C")
    # dx is written feature first, (D, T·B), one chunk's columns at a time, and handed back as a
    # (T, D, B) view: the layer below reads it one step at a time, a (D, B) block either way.
    dx_cols = empty(dx_workspace or ws, "dx", (D, T * B), dtype) if D else None
    V = cache.Wx.shape[0]
    dW = scratch(ws, "dW", (4 * H, K), dtype)          # [dWh^T | db] in loop order
    dWx = scratch(ws, "dWx", (4 * H, V if cache.ids is not None else D), dtype)
    product = scratch(ws, "product", (4 * H, max(K, V if cache.ids is not None else D)), dtype)

    steps = chunk_steps or backward_chunk_steps(T, B)
    dz_buf = scratch(ws, "dz", (steps, 4, H, B), dtype)
    dc_from_h_buf = scratch(ws, "dc_from_h", (steps, H, B), dtype)
    dz_cols_buf = scratch(ws, "dz_cols", (4 * H, steps * B), dtype)
    xh_cols_buf = scratch(ws, "xh_cols", (K, steps * B), dtype)
    tmp = scratch(ws, "tmp", (H, B), dtype)
    first_chunk = True

    for end in range(T, 0, -steps):
        start = max(0, end - steps)
        n = end - start
        a = gates4[start:end]
        o, i, f, g = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
        # dz holds, per gate, the factor that multiplies the incoming dh (block o) or dc (i, f, g):
        #   dz_o = dh * tanh(c) * o(1-o)   dz_i = dc * g * i(1-i)
        #   dz_f = dc * c_prev * f(1-f)    dz_g = dc * i * (1-g^2)
        dz = dz_buf[:n]
        np.subtract(1, a, out=dz)
        dz *= a                                     # a(1 - a): the sigmoid derivative (g fixed next)
        np.multiply(g, g, out=dz[:, 3])
        np.subtract(1, dz[:, 3], out=dz[:, 3])      # 1 - g^2: the tanh derivative
        dz[:, 0] *= tanh_c[start:end]
        dz[:, 1] *= g
        dz[:, 2] *= c[start:end]
        dz[:, 3] *= i
        dc_from_h = dc_from_h_buf[:n]               # d c / d h through h = o tanh(c): o (1 - tanh(c)^2)
        np.multiply(tanh_c[start:end], tanh_c[start:end], out=dc_from_h)
        np.subtract(1, dc_from_h, out=dc_from_h)
        dc_from_h *= o

        for k in range(n - 1, -1, -1):
            t = start + k
            np.add(dh_out[t], carry, out=dh)
            np.multiply(dh, dc_from_h[k], out=tmp)
            dc += tmp
            dz[k, 1:] *= dc
            dz[k, 0] *= dh
            dc *= f[k]                                # gradient flowing to c_prev
            np.matmul(back_h, dz[k].reshape(4 * H, B), out=carry)   # gradient flowing to h_prev

        # The chunk's dz and [h; 1] as (rows, steps * B) matrices, then one product for the
        # recurrent weights' gradients (and the bias, through the row of ones), one for the input
        # weights' and one for the gradient of the chunk's inputs.
        dz_cols = dz_cols_buf[:, :n * B]
        np.copyto(dz_cols.reshape(4 * H, n, B), dz.reshape(n, 4 * H, B).transpose(1, 0, 2))
        xh_cols = xh_cols_buf[:, :n * B]
        np.copyto(xh_cols.reshape(K, n, B), xh[start:end].transpose(1, 0, 2))
        accumulate(dW, np.matmul, dz_cols, xh_cols.T, product[:, :K], first_chunk)
        if cache.ids is not None:
            one_hot_ids = cache.ids[start:end].reshape(n * B)
            accumulate(dWx, one_hot_product, dz_cols, one_hot_ids, product[:, :V], first_chunk, ws)
        else:
            accumulate(dWx, np.matmul, dz_cols, cache.inputs[:, start * B:end * B].T, product[:, :D], first_chunk)
            np.matmul(back_x, dz_cols, out=dx_cols[:, start * B:end * B])
        first_chunk = False

    grads = (dWx, dW[:, :H], dW[:, H:])
    dWx, dWh, db = (to_public_columns(g, out=empty(ws, name, (g.shape[1], 4 * H), dtype))
                    for g, name in zip(grads, ("grad_Wx", "grad_Wh", "grad_b")))
    dx = None
    if D:
        dx = dx_cols.reshape(D, T, B).transpose(1, 0, 2)   # (T, D, B), a view
        if cache.x_mask is not None:
            dx *= cache.x_mask
    return LSTMGrads(dx=dx, dh0=carry.T.copy(), dc0=np.ascontiguousarray(dc.T), dWx=dWx, dWh=dWh, db=db[0])


# --- the cell interface (see cells/__init__.py) -------------------------------------------------

def param_shapes(D: int, H: int) -> dict[str, tuple[int, ...]]:
    return {"Wx": (D, 4 * H), "Wh": (H, 4 * H), "b": (4 * H,)}


def init(D: int, H: int, rng: np.random.Generator, one_hot: bool) -> dict[str, np.ndarray]:
    """Fresh parameters of one layer (float64).

    Weights that multiply a vector of D inputs of order one (Wh with D = H, the upper layers' Wx,
    and the first layer's Wx behind an embedding) are uniform in +-1/sqrt(D): the sum over D
    inputs of order one then gives pre-activations of order one. A one-hot first layer's
    input is one-hot, so its pre-activation is a single row of Wx, not a sum: those rows are
    uniform in +-1 (standard deviation 0.58, about what an embedding of standard deviation 1
    followed by a +-1/sqrt(H) matrix gives). With +-1/sqrt(H) there too, the first layer would
    start almost deaf to its input and spend hundreds of steps growing it.
    Biases start at zero except the forget gate's, which starts at 1 so that the cell remembers by
    default early in training and gradients flow through long spans.
    """
    bound = 1.0 / np.sqrt(H)
    input_bound = 1.0 if one_hot else 1.0 / np.sqrt(D)    # a vector input: +-1/sqrt(D), as for h
    Wx = rng.uniform(-input_bound, input_bound, size=(D, 4 * H))
    Wh = rng.uniform(-bound, bound, size=(H, 4 * H))
    b = np.zeros(4 * H)
    b[H:2 * H] = 1.0          # forget gate
    return {"Wx": Wx, "Wh": Wh, "b": b}


def forward(x, state, params, workspace: Workspace | None = None, x_mask=None):
    h0, c0 = state
    h_out, final, cache = lstm_forward(x, h0, c0, params["Wx"], params["Wh"], params["b"],
                                       workspace, x_mask=x_mask)
    return h_out, final, cache


def backward(dh_out, cache: LSTMCache, dstate=None, workspace: Workspace | None = None,
             dx_workspace: Workspace | None = None):
    dhT, dcT = (None, None) if dstate is None else dstate
    g = lstm_backward(dh_out, cache, dhT, dcT, workspace=workspace, dx_workspace=dx_workspace)
    return CellGrads(dx=g.dx, dstate=(g.dh0, g.dc0), params={"Wx": g.dWx, "Wh": g.dWh, "b": g.db})


def trace(cache: LSTMCache) -> dict[str, np.ndarray]:
    values = {"h": cache.hidden()[1:], "c": cache.cell()[1:]}
    values.update({q: cache.gate(q) for q in "ifgo"})
    return values


class LSTMStep:
    """One step of the layer for decoding, with every buffer and view made once.

    The same math as `lstm_forward` in the same loop layout, arranged so that a step is one matrix
    product: the caller's rows [x; 1; h] meet the weights [Wx^T | b | Wh^T] (in loop order,
    prescaled). A one-hot input is a column of the prearranged Wx, picked by id (base.InputPick). At batch 1,
    slicing and allocating would cost as much as the arithmetic, hence the prepared views.
    """

    def __init__(self, params, rows: np.ndarray, one_hot: bool):
        Wx, Wh, b = params["Wx"], params["Wh"], params["b"]
        H, B, dtype = Wh.shape[0], rows.shape[1], Wh.dtype
        scale = sigmoid_prescale(H, dtype)
        parts = [b[None, :], Wh] if one_hot else [Wx, b[None, :], Wh]
        self.weights = to_loop_rows(np.concatenate(parts, axis=0), scale=scale)
        self.pick = InputPick(to_loop_rows(Wx, scale=scale), B) if one_hot else None    # of (4H, V)
        self.rows, self.h = rows, rows[rows.shape[0] - H:]
        self.c = np.zeros((H, B), dtype=dtype)
        self.z = np.empty((4 * H, B), dtype=dtype)
        self.ig = np.empty((H, B), dtype=dtype)
        self.half = np.full((3 * H, B), 0.5, dtype=dtype)   # an array: a Python 0.5 costs a call twice
        z = self.z
        self.sig, self.o, self.i, self.f, self.g = z[:3 * H], z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]

    def __call__(self, ids=None) -> None:
        # Outputs are passed by position: at batch 1 each call is mostly its own overhead.
        z, c, sig, half = self.z, self.c, self.sig, self.half
        add, multiply, tanh = np.add, np.multiply, np.tanh
        np.matmul(self.weights, self.rows, out=z)
        if self.pick is not None:
            add(z, self.pick(ids), z)
        tanh(z, z)
        multiply(sig, half, sig)           # o, i, f: sigmoid = 0.5 tanh(z / 2) + 0.5
        add(sig, half, sig)
        multiply(c, self.f, c)
        multiply(self.i, self.g, self.ig)
        add(c, self.ig, c)
        tanh(c, self.h)
        multiply(self.h, self.o, self.h)

    def get_state(self):
        return self.h.T.copy(), self.c.T.copy()

    def set_state(self, state) -> None:
        h, c = state
        self.h[...] = h.T
        self.c[...] = c.T


CELL = Cell(name="lstm", state=("h", "c"), quantities=("h", "c", "i", "f", "g", "o"),
            param_shapes=param_shapes, init=init, forward=forward, backward=backward, trace=trace,
            stepper=LSTMStep, summary="long short-term memory: gates i, f, g, o and a memory cell c")
