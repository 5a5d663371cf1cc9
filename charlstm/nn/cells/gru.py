"""One GRU layer over T time steps, written as a pair of pure functions.

The math, for one step, with the parameters as the checkpoint stores them (PyTorch's nn.GRU
convention, so that weights map one to one: weight_ih = Wx^T, weight_hh = Wh^T, bias_ih = bx,
bias_hh = bh):
    Wx (D, 3H)    Wh (H, 3H)    bx (3H,)    bh (3H,)     gate blocks in the order r, z, n

    r  = sigmoid(Wx_r^T x + bx_r + Wh_r^T h_prev + bh_r)        reset gate
    z  = sigmoid(Wx_z^T x + bx_z + Wh_z^T h_prev + bh_z)        update gate
    hn = Wh_n^T h_prev + bh_n                                   the recurrent part of n
    n  = tanh(Wx_n^T x + bx_n + r * hn)                         candidate
    h  = (1 - z) * n + z * h_prev

The reset gate multiplies the recurrent product together with its bias, which is why bh is a
parameter of its own (for r and z only the sum bx + bh matters).

For the first layer the input is a one-hot vector, so `Wx^T x` is a row of Wx, gathered by id.

`gru_forward` returns the outputs of every step, the final h and a cache; `gru_backward` takes
the upstream gradients and the cache and returns the gradients of the input, the initial state and
the parameters, in whatever float dtype the parameters have.

Layout and speed
----------------
The same feature-major layout as lstm.py: x (T, D, B) or ids (T, B), h_out (T, H, B), states
(B, H). What differs from the LSTM is where the products are cut:
- n reads x and h_prev through two different products (r scales only the second), so a single
  [x; h_prev; 1] product per step would need a zero block: a third more arithmetic. But the input
  part does not depend on the recurrence, so it is computed for all T steps before the loop, and
  inside the loop only [Wh^T | bh] (3H, H+1) meets [h_prev; 1]: one product per step, the same
  arithmetic as PyTorch's GRU.
- Inside the loop a step's values live in one (4H, B) block, in the order n, r, z, hn. The
  product writes r, z and hn's pre-activations straight into their rows; r and z (halved in the
  weights, see lstm.sigmoid_prescale) then go through one tanh pass. In the backward pass the
  gradients of the same four rows make the input part's gradient [dn; dr; dz] (rows 0:3H) and the
  recurrent part's [dr; dz; dhn] (rows H:4H, the public order, so Wh is used as it is): both are
  contiguous blocks, and the backward recurrence is one product per step, dx is one product per
  chunk of steps, and the weight gradients are two large products per chunk.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.nn.cells.base import Cell, CellGrads, InputPick
from charlstm.nn.cells.kernels import accumulate, backward_chunk_steps, is_ids, one_hot_product
from charlstm.nn.workspace import Workspace, empty, scratch

PUBLIC_GATES = "rzn"        # the order of the 3H blocks in Wx, Wh, bx and bh
LOOP_BLOCKS = ("n", "r", "z", "hn")   # the rows of a step's (4H, B) block inside the loop


class GRUCache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer."""

    ids: np.ndarray | None   # (T, B) ids when the input was one-hot, else None
    Wx: np.ndarray           # (D, 3H)
    Wh: np.ndarray           # (H, 3H)
    x: np.ndarray | None     # (T, D+1, B) step t's [x_t * x_mask_t; 1]; None for ids
    h: np.ndarray            # (T+1, H+1, B) [h_t; 1]: h[0] = h0, h[t+1] the output of step t
    gates: np.ndarray        # (T, 4H, B) each step's n, r, z, hn, blocks in LOOP_BLOCKS order
    x_mask: np.ndarray | None = None   # (T, D, B) the input's dropout mask, if it had one

    def gate(self, name: str) -> np.ndarray:
        """The values of `name` ("r", "z", "n" or "hn") at every step, (T, B, H)."""
        H = self.gates.shape[1] // 4
        k = LOOP_BLOCKS.index(name)
        return self.gates[:, k * H:(k + 1) * H, :].transpose(0, 2, 1)

    def hidden(self) -> np.ndarray:
        """The hidden states h[0] .. h[T], (T+1, B, H); h[1:] are the layer's outputs."""
        H = self.h.shape[1] - 1
        return self.h[:, :H].transpose(0, 2, 1)


class GRUGrads(NamedTuple):
    dx: np.ndarray | None  # (T, D, B); None when the input was ids
    dh0: np.ndarray        # (B, H)
    dWx: np.ndarray        # (D, 3H)
    dWh: np.ndarray        # (H, 3H)
    dbx: np.ndarray        # (3H,)
    dbh: np.ndarray        # (3H,)


def rz_prescale(H: int, dtype) -> np.ndarray:
    """Per-row factors, public order: r and z halved so that sigmoid(a) = 0.5 tanh(a/2) + 0.5
    is one tanh pass and two cheap operations (and never overflows); n unscaled."""
    scale = np.full(3 * H, 0.5, dtype=dtype)
    scale[2 * H:] = 1.0
    return scale


def gru_forward(x, h0, Wx, Wh, bx, bh, workspace: Workspace | None = None, x_mask=None):
    """Run one GRU layer over T steps.

    x (T, D, B) floats or (T, B) ids; h0 (B, H). x_mask (T, D, B) or None: the layer reads
    x * x_mask (dropout on the way in; gru_backward's dx is still the gradient for x).
    Returns (h_out (T, H, B), hT (B, H), cache). `h_out` is a view into the cache: callers must
    not modify it in place. With a workspace, the cache lives in it (see workspace.py); hT is
    always fresh.
    """
    ws = workspace
    ids = x if is_ids(x) else None
    if ids is not None and x_mask is not None:
        raise ValueError("an input of ids takes no mask")
    T, B = (ids.shape if ids is not None else (x.shape[0], x.shape[2]))
    H = Wh.shape[0]
    dtype = Wh.dtype
    scale = rz_prescale(H, dtype)[:, None]

    # [Wh^T | bh] (3H, H+1), public order, r and z rows halved: the step's one product.
    rec_weights = scratch(ws, "weights", (3 * H, H + 1), dtype)
    np.multiply(Wh.T, scale, out=rec_weights[:, :H])
    np.multiply(bh[:, None], scale, out=rec_weights[:, H:])

    h = empty(ws, "h", (T + 1, H + 1, B), dtype)
    h[0, :H] = h0.T
    h[:, H] = 1
    gates = empty(ws, "gates", (T, 4 * H, B), dtype)
    tmp = scratch(ws, "tmp", (H, B), dtype)
    if ids is None:
        D = x.shape[1]
        xs = empty(ws, "x", (T, D + 1, B), dtype)
        if x_mask is not None:
            np.multiply(x, x_mask, out=xs[:, :D])
        else:
            xs[:, :D] = x
        xs[:, D] = 1
        in_weights = scratch(ws, "in_weights", (3 * H, D + 1), dtype)   # [Wx^T | bx], scaled
        np.multiply(Wx.T, scale, out=in_weights[:, :D])
        np.multiply(bx[:, None], scale, out=in_weights[:, D:])
        # The input part of every step in one call (numpy loops the T products in C).
        x_part = scratch(ws, "x_part", (T, 3 * H, B), dtype)
        np.matmul(in_weights, xs, out=x_part)
    else:
        xs = None
        # (3H, V): a one-hot input picks a column of Wx^T, bx folded in (exactly one is picked)
        columns = scratch(ws, "columns", (3 * H, Wx.shape[0]), dtype)
        np.add(Wx.T, bx[:, None], out=columns)
        columns *= scale
        picked = scratch(ws, "picked", (3 * H, B), dtype)

    for t in range(T):
        g = gates[t]
        n, rz, hn = g[:H], g[H:3 * H], g[3 * H:]
        np.matmul(rec_weights, h[t], out=g[H:])          # r, z (halved) and hn, in their rows
        xp = x_part[t] if ids is None else np.take(columns, ids[t], axis=1, out=picked)
        rz += xp[:2 * H]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5
        np.multiply(rz[:H], hn, out=n)                     # r * hn
        n += xp[2 * H:]
        np.tanh(n, out=n)
        h_prev, h_next = h[t, :H], h[t + 1, :H]
        np.subtract(h_prev, n, out=tmp)                    # h = n + z * (h_prev - n)
        tmp *= rz[H:]
        np.add(n, tmp, out=h_next)

    cache = GRUCache(ids=ids, Wx=Wx, Wh=Wh, x=xs, h=h, gates=gates, x_mask=x_mask)
    return h[1:, :H], h[T, :H].T.copy(), cache


def gru_backward(dh_out, cache: GRUCache, dhT=None, workspace: Workspace | None = None,
                 dx_workspace: Workspace | None = None, *, chunk_steps: int | None = None) -> GRUGrads:
    """Backpropagate through T steps of one layer.

    dh_out (T, H, B) is the gradient of the loss for every step's output; dhT (B, H) for the
    final state (None means zero, what truncated BPTT uses). `chunk_steps` overrides the chunk
    length (the result does not depend on it, up to rounding). With a workspace the gradients
    live in it, dx in `dx_workspace`'s buffer "dx" if given (see lstm_backward).

    Time is walked backwards in chunks. For each chunk, the factors that do not depend on the
    recurrence are computed for all its steps at once:
        dn_pre = dh (1 - z)(1 - n^2)          dz_pre = dh (h_prev - n) z(1 - z)
        dr_pre = dn_pre hn r(1 - r)            dhn    = dn_pre r
    so that a step is one sum, two elementwise products (each over two blocks at once), one
    product with Wh for the gradient flowing to h_prev, and dh z added to it. dx of the chunk is
    then one product with Wx, and the weight gradients are two large products (the biases come
    through the rows of ones).
    """
    ws = workspace
    gates, h = cache.gates, cache.h
    T, H4, B = gates.shape
    H = H4 // 4
    dtype = gates.dtype
    ids = cache.ids
    D = 0 if ids is not None else cache.x.shape[1] - 1
    V = cache.Wx.shape[0]
    blocks = gates.reshape(T, 4, H, B)
    n_all, r_all, z_all, hn_all = blocks[:, 0], blocks[:, 1], blocks[:, 2], blocks[:, 3]

    carry = np.zeros((H, B), dtype=dtype) if dhT is None else np.array(np.transpose(dhT), dtype=dtype, order="C")
    dh = scratch(ws, "dh", (H, B), dtype)
    dx = empty(dx_workspace or ws, "dx", (T, D, B), dtype) if D else None
    if D:
        # dx = Wx [dn; dr; dz]: Wx's columns in loop order n, r, z
        back_x = scratch(ws, "back_x", (D, 3 * H), dtype)
        back_x[:, :H] = cache.Wx[:, 2 * H:]
        back_x[:, H:] = cache.Wx[:, :2 * H]
    dWx_in = scratch(ws, "dWx_in", (3 * H, V if ids is not None else D + 1), dtype)  # rows n, r, z
    dWh_in = scratch(ws, "dWh_in", (3 * H, H + 1), dtype)                          # rows r, z, n
    product = scratch(ws, "product", (3 * H, max(H + 1, V if ids is not None else D + 1)), dtype)

    steps = chunk_steps or backward_chunk_steps(T, B)
    d_buf = scratch(ws, "d", (steps, 4, H, B), dtype)          # dn_pre, dr_pre, dz_pre, dhn
    f_buf = scratch(ws, "factors", (steps, 4, H, B), dtype)    # what multiplies dh or dn_pre
    tmp_buf = scratch(ws, "tmp_chunk", (steps, H, B), dtype)
    d_cols_buf = scratch(ws, "d_cols", (4 * H, steps * B), dtype)
    x_cols_buf = scratch(ws, "x_cols", (D + 1, steps * B), dtype) if D else None
    h_cols_buf = scratch(ws, "h_cols", (H + 1, steps * B), dtype)
    first_chunk = True

    for end in range(T, 0, -steps):
        start = max(0, end - steps)
        k_n = end - start
        n, r, z, hn = n_all[start:end], r_all[start:end], z_all[start:end], hn_all[start:end]
        h_prev = h[start:end, :H]
        f, one_minus = f_buf[:k_n], tmp_buf[:k_n]
        np.subtract(1, z, out=one_minus)
        np.multiply(n, n, out=f[:, 0])
        np.subtract(1, f[:, 0], out=f[:, 0])
        f[:, 0] *= one_minus                               # (1 - z)(1 - n^2): dh -> dn_pre
        np.subtract(h_prev, n, out=f[:, 2])
        f[:, 2] *= z
        f[:, 2] *= one_minus                               # (h_prev - n) z(1 - z): dh -> dz_pre
        np.subtract(1, r, out=f[:, 1])
        f[:, 1] *= r
        f[:, 1] *= hn                                      # hn r(1 - r): dn_pre -> dr_pre
        f[:, 3] = r                                        # r: dn_pre -> dhn
        d = d_buf[:k_n]

        for k in range(k_n - 1, -1, -1):
            t = start + k
            np.add(dh_out[t], carry, out=dh)
            dk, fk = d[k], f[k]
            np.multiply(fk[0::2], dh, out=dk[0::2])        # dn_pre, dz_pre
            np.multiply(fk[1::2], dk[0], out=dk[1::2])     # dr_pre, dhn
            np.matmul(cache.Wh, dk[1:].reshape(3 * H, B), out=carry)   # Wh [dr; dz; dhn]
            dh *= z[k]
            carry += dh                                    # gradient flowing to h_prev

        d_flat = d.reshape(k_n, 4 * H, B)
        if D:
            np.matmul(back_x, d_flat[:, :3 * H], out=dx[start:end])   # one call for the chunk's dx
        # The chunk's gradients and inputs as (rows, steps * B) matrices, then one product per
        # weight matrix for all its steps (and its bias, through the row of ones).
        d_cols = d_cols_buf[:, :k_n * B]
        np.copyto(d_cols.reshape(4 * H, k_n, B), d_flat.transpose(1, 0, 2))
        h_cols = h_cols_buf[:, :k_n * B]
        np.copyto(h_cols.reshape(H + 1, k_n, B), h[start:end].transpose(1, 0, 2))
        accumulate(dWh_in, np.matmul, d_cols[H:], h_cols.T, product[:, :H + 1], first_chunk)
        if D:
            x_cols = x_cols_buf[:, :k_n * B]
            np.copyto(x_cols.reshape(D + 1, k_n, B), cache.x[start:end].transpose(1, 0, 2))
            accumulate(dWx_in, np.matmul, d_cols[:3 * H], x_cols.T, product[:, :D + 1], first_chunk)
        else:
            one_hot_ids = ids[start:end].reshape(k_n * B)
            accumulate(dWx_in, one_hot_product, d_cols[:3 * H], one_hot_ids, product[:, :V],
                        first_chunk, ws)
        first_chunk = False

    # back to the public layout, (K, 3H) in order r, z, n
    dWx = empty(ws, "grad_Wx", (V, 3 * H), dtype)
    dbx = empty(ws, "grad_bx", (3 * H,), dtype)
    dWx_part = dWx_in if ids is not None else dWx_in[:, :D]
    dWx[:, :2 * H] = dWx_part[H:].T
    dWx[:, 2 * H:] = dWx_part[:H].T
    # for ids, each column had exactly one symbol: bx's gradient is the sum over the symbols
    dbx_rows = dWx_in.sum(axis=1) if ids is not None else dWx_in[:, D]
    dbx[:2 * H] = dbx_rows[H:]
    dbx[2 * H:] = dbx_rows[:H]
    dWh = empty(ws, "grad_Wh", (H, 3 * H), dtype)
    dWh[...] = dWh_in[:, :H].T
    dbh = empty(ws, "grad_bh", (3 * H,), dtype)
    dbh[...] = dWh_in[:, H]
    if dx is not None and cache.x_mask is not None:
        dx *= cache.x_mask
    return GRUGrads(dx=dx, dh0=np.ascontiguousarray(carry.T), dWx=dWx, dWh=dWh, dbx=dbx, dbh=dbh)


# --- the cell interface (see cells/__init__.py) -------------------------------------------------

def param_shapes(D: int, H: int) -> dict[str, tuple[int, ...]]:
    return {"Wx": (D, 3 * H), "Wh": (H, 3 * H), "bx": (3 * H,), "bh": (3 * H,)}


def init(D: int, H: int, rng: np.random.Generator, one_hot: bool) -> dict[str, np.ndarray]:
    """Fresh parameters of one layer (float64).

    Wh and the Wx of a vector input of size D are uniform in +-1/sqrt(H) and +-1/sqrt(D), a
    one-hot first layer's Wx in +-1 (see lstm.init for why). The rng is drawn for Wx, then Wh.
    Biases start at zero except the update gate's input bias bx_z, which starts at +1: z starts
    near sigmoid(1) = 0.73, so h = (1 - z) n + z h_prev leans to the old state, and the
    gradient flows through long spans early in training. In h = z h_prev + (1 - z) n, z plays the
    part of the LSTM's forget gate, and this is the GRU's counterpart of the forget bias.
    """
    bound = 1.0 / np.sqrt(H)
    input_bound = 1.0 if one_hot else 1.0 / np.sqrt(D)    # a vector input: +-1/sqrt(D), as for h
    Wx = rng.uniform(-input_bound, input_bound, size=(D, 3 * H))
    Wh = rng.uniform(-bound, bound, size=(H, 3 * H))
    bx = np.zeros(3 * H)
    bx[H:2 * H] = 1.0          # update gate
    return {"Wx": Wx, "Wh": Wh, "bx": bx, "bh": np.zeros(3 * H)}


def forward(x, state, params, workspace: Workspace | None = None, x_mask=None):
    (h0,) = state
    h_out, hT, cache = gru_forward(x, h0, params["Wx"], params["Wh"], params["bx"], params["bh"],
                                   workspace, x_mask=x_mask)
    return h_out, (hT,), cache


def backward(dh_out, cache: GRUCache, dstate=None, workspace: Workspace | None = None,
             dx_workspace: Workspace | None = None):
    dhT = None if dstate is None else dstate[0]
    g = gru_backward(dh_out, cache, dhT, workspace=workspace, dx_workspace=dx_workspace)
    return CellGrads(dx=g.dx, dstate=(g.dh0,),
                     params={"Wx": g.dWx, "Wh": g.dWh, "bx": g.dbx, "bh": g.dbh})


def trace(cache: GRUCache) -> dict[str, np.ndarray]:
    values = {"h": cache.hidden()[1:]}
    values.update({q: cache.gate(q) for q in PUBLIC_GATES})
    return values


class GRUStep:
    """One step of the layer for decoding, with every buffer and view made once.

    Two products per step, one for each part of the pre-activations, both reading the caller's
    rows [x; 1; h] in place (the row of ones is shared):
        ax = [Wx^T | bx] [x; 1]        ah = [bh | Wh^T] [1; h]        (r, z rows halved)
    then r, z = sigmoid(ax + ah) and n = tanh(ax_n + r ah_n). A one-hot input's ax is a row of
    the prearranged Wx + bx, picked by id (base.InputPick: at batch 1 one contiguous read). One product
    over the whole rows with a (4H, D+1+H) matrix would save a call but carry two zero blocks (n's
    input part reads no h, its recurrent part no x): at batch 1 the step is bound by reading the
    weights, and measured on a shared 2-core machine the split step was 1.2x (H=256) to 2x
    (H=512) faster than the fused one. The weights are kept in Fortran order, which made
    OpenBLAS's matrix-vector products of these (3H, K) shapes up to 1.3x faster at batch 1 and
    changed nothing at batch 64.

    ah reads only the layer's own previous h, so a stack can make every layer's ah in one call
    before any layer runs (model/step.py does): `recurrent` names that product's weights, rows
    and output, use_recurrent_output(out) moves the output into the caller's buffer, and
    step(ids, recurrent_done=True) then skips it.
    """

    def __init__(self, params, rows: np.ndarray, one_hot: bool):
        Wx, Wh, bx, bh = params["Wx"], params["Wh"], params["bx"], params["bh"]
        H, B, dtype = Wh.shape[0], rows.shape[1], Wh.dtype
        D = 0 if one_hot else Wx.shape[0]
        scale = rz_prescale(H, dtype)
        self.h_weights = np.asfortranarray(np.concatenate([bh[:, None], Wh.T], axis=1) * scale[:, None])  # (3H, 1+H)
        if one_hot:
            self.pick = InputPick(np.ascontiguousarray(((Wx + bx) * scale).T), B)             # of (3H, V)
            self.x_weights = None
            self.ax = self.pick.out                    # the pick is the whole of ax
        else:
            self.pick = None
            self.x_weights = np.asfortranarray(np.concatenate([Wx.T, bx[:, None]], axis=1) * scale[:, None])
            self.ax = np.empty((3 * H, B), dtype=dtype)
        self.rows, self.x_rows, self.h_rows, self.h = rows, rows[:D + 1], rows[D:], rows[D + 1:]
        self.tmp = np.empty((H, B), dtype=dtype)
        self.ax_rz, self.ax_n = self.ax[:2 * H], self.ax[2 * H:]
        self.half = np.full((2 * H, B), 0.5, dtype=dtype)   # an array: a Python 0.5 costs a call twice
        self.use_recurrent_output(np.empty((3 * H, B), dtype=dtype))

    @property
    def recurrent(self):
        """(weights, rows, out): the product out = weights rows that reads only this layer's h."""
        return self.h_weights, self.h_rows, self.ah

    def use_recurrent_output(self, out: np.ndarray) -> None:
        H = self.tmp.shape[0]
        self.ah = out
        self.rz, self.r, self.z, self.n = out[:2 * H], out[:H], out[H:2 * H], out[2 * H:]

    def __call__(self, ids=None, recurrent_done: bool = False) -> None:
        if self.pick is None:
            np.matmul(self.x_weights, self.x_rows, out=self.ax)
        else:
            self.pick(ids)
        if not recurrent_done:
            np.matmul(self.h_weights, self.h_rows, out=self.ah)
        # Outputs are passed by position: at batch 1 each call is mostly its own overhead.
        rz, n, tmp, half = self.rz, self.n, self.tmp, self.half
        add, multiply, tanh = np.add, np.multiply, np.tanh
        add(rz, self.ax_rz, rz)
        tanh(rz, rz)
        multiply(rz, half, rz)             # r, z: sigmoid = 0.5 tanh(a / 2) + 0.5
        add(rz, half, rz)
        multiply(n, self.r, n)             # r * ah_n, then n in place
        add(n, self.ax_n, n)
        tanh(n, n)
        np.subtract(self.h, n, tmp)        # h = n + z (h_prev - n)
        multiply(tmp, self.z, tmp)
        add(n, tmp, self.h)

    def get_state(self):
        return (self.h.T.copy(),)

    def set_state(self, state) -> None:
        (h,) = state
        self.h[...] = h.T


CELL = Cell(name="gru", state=("h",), quantities=("h", "r", "z", "n"),
            param_shapes=param_shapes, init=init, forward=forward, backward=backward, trace=trace,
            stepper=GRUStep, summary="gated recurrent unit: reset and update gates r, z, candidate n")
