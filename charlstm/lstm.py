"""One LSTM layer over T time steps, written as a pair of pure functions.

Shapes, time-major so that every step's slice is one contiguous block:
    x       (T, B, D) floats, or (T, B) integer ids for the first layer
    h0, c0  (B, H)
    Wx      (D, 4H)    Wh (H, 4H)    b (4H,)

The four gates are fused in one 4H block, in the order input, forget, candidate, output:
    z = x Wx + h_prev Wh + b
    i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
    c = f * c_prev + i * g
    h = o * tanh(c)

For the first layer the input is a one-hot vector, so `x Wx` is just a row of Wx: we gather rows
by id instead of building the one-hot matrix. The math is the same; the memory and time are not.

`lstm_forward` returns the outputs of every step, the final (h, c) and a cache; `lstm_backward`
takes the upstream gradients and the cache and returns the gradients of the inputs, the initial
state and the parameters. Both run in whatever float dtype the parameters have (float32 for
training, float64 for the gradient checks).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class LSTMCache(NamedTuple):
    """What the backward pass needs from the forward pass of one layer."""

    x: np.ndarray        # (T, B, D) inputs, or (T, B) ids for a one-hot first layer
    Wx: np.ndarray       # (D, 4H)
    Wh: np.ndarray       # (H, 4H)
    gates: np.ndarray    # (T, B, 4H) activated gates i, f, g, o
    c: np.ndarray        # (T+1, B, H) cell states, c[0] = c0
    h: np.ndarray        # (T+1, B, H) hidden states, h[0] = h0
    tanh_c: np.ndarray   # (T, B, H) tanh(c[t+1])


class LSTMGrads(NamedTuple):
    dx: np.ndarray | None  # (T, B, D); None when the input was ids
    dh0: np.ndarray        # (B, H)
    dc0: np.ndarray        # (B, H)
    dWx: np.ndarray        # (D, 4H)
    dWh: np.ndarray        # (H, 4H)
    db: np.ndarray         # (4H,)


def is_ids(x: np.ndarray) -> bool:
    """True when x holds symbol ids (one-hot input) rather than vectors."""
    return np.issubdtype(x.dtype, np.integer)


def input_projection(x: np.ndarray, Wx: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x Wx + b for all T steps at once: one gather (ids) or one matrix product (vectors)."""
    if is_ids(x):
        z = np.take(Wx, x, axis=0)                      # (T, B, 4H), a fresh array
    else:
        T, B, D = x.shape
        z = (x.reshape(T * B, D) @ Wx).reshape(T, B, -1)
    z += b
    return z


def gate_scale(H: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) vectors that turn one tanh pass into all four gate activations.

    sigmoid(z) = 0.5 * tanh(0.5 z) + 0.5, so with scale = (0.5, 0.5, 1, 0.5) per block and
    offset = (0.5, 0.5, 0, 0.5), `scale * tanh(scale * z) + offset` gives sigmoid for i, f, o and
    tanh for g in one pass over the contiguous 4H block, and tanh never overflows.
    """
    scale = np.full(4 * H, 0.5, dtype=dtype)
    scale[2 * H:3 * H] = 1.0
    offset = np.full(4 * H, 0.5, dtype=dtype)
    offset[2 * H:3 * H] = 0.0
    return scale, offset


def lstm_forward(x, h0, c0, Wx, Wh, b):
    """Run one LSTM layer over T steps.

    Returns (h_out (T, B, H), (hT, cT), cache). `h_out` is a view into the cache: callers must
    not modify it in place.
    """
    T, B = x.shape[0], x.shape[1]
    H = Wh.shape[0]
    dtype = Wh.dtype
    scale, offset = gate_scale(H, dtype)

    # The pre-tanh scaling is folded into the (small) weights rather than applied to the (T, B, 4H)
    # pre-activations: same math, one pass over the big array fewer.
    gates = input_projection(x, Wx * scale, b * scale)   # (T, B, 4H), becomes the gates in place
    Wh_scaled = Wh * scale
    h = np.empty((T + 1, B, H), dtype=dtype)
    c = np.empty((T + 1, B, H), dtype=dtype)
    tanh_c = np.empty((T, B, H), dtype=dtype)
    h[0] = h0
    c[0] = c0
    recurrent = np.empty((B, 4 * H), dtype=dtype)
    i_times_g = np.empty((B, H), dtype=dtype)

    for t in range(T):
        z = gates[t]
        np.matmul(h[t], Wh_scaled, out=recurrent)
        z += recurrent
        np.tanh(z, out=z)
        z *= scale
        z += offset
        i, f, g, o = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
        np.multiply(f, c[t], out=c[t + 1])
        np.multiply(i, g, out=i_times_g)
        c[t + 1] += i_times_g
        np.tanh(c[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=h[t + 1])

    cache = LSTMCache(x=x, Wx=Wx, Wh=Wh, gates=gates, c=c, h=h, tanh_c=tanh_c)
    return h[1:], (h[T].copy(), c[T].copy()), cache


def lstm_backward(dh_out, cache: LSTMCache, dhT=None, dcT=None) -> LSTMGrads:
    """Backpropagate through T steps of one layer.

    dh_out (T, B, H) is the gradient of the loss with respect to every step's output h;
    dhT, dcT (B, H) the gradient with respect to the final state (None means zero, which is what
    truncated BPTT uses: the gradient stops at the chunk boundary).
    """
    gates, c, h, tanh_c = cache.gates, cache.c, cache.h, cache.tanh_c
    T, B, H = tanh_c.shape
    dtype = gates.dtype
    i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))

    # Everything that does not depend on the recurrence is computed for all T at once, so the
    # time loop is left with a handful of in-place products per step. dz holds, per gate, the
    # factor that multiplies the incoming dc (blocks i, f, g) or dh (block o):
    #   dz_i = dc * g * i(1-i)     dz_f = dc * c_prev * f(1-f)
    #   dz_g = dc * i * (1-g^2)    dz_o = dh * tanh(c) * o(1-o)
    # Written with out= into two buffers: fresh temporaries of this size cost page faults.
    dz = np.subtract(1, gates)              # 1 - a for every gate, one contiguous pass
    dz *= gates                             # a(1 - a): the sigmoid derivative (wrong for g, fixed next)
    dz4 = dz.reshape(T, B, 4, H)
    np.multiply(g, g, out=dz4[:, :, 2])
    np.subtract(1, dz4[:, :, 2], out=dz4[:, :, 2])   # 1 - g^2: the tanh derivative
    dz4[:, :, 0] *= g
    dz4[:, :, 1] *= c[:-1]
    dz4[:, :, 2] *= i
    dz4[:, :, 3] *= tanh_c
    dc_from_h = np.multiply(tanh_c, tanh_c)   # d c / d h through h = o tanh(c): o (1 - tanh(c)^2)
    np.subtract(1, dc_from_h, out=dc_from_h)
    dc_from_h *= o

    dh = np.zeros((B, H), dtype=dtype) if dhT is None else np.array(dhT, dtype=dtype)
    dc = np.zeros((B, H), dtype=dtype) if dcT is None else np.array(dcT, dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    WhT = np.ascontiguousarray(cache.Wh.T)   # a contiguous copy: the per-step product runs ~30 % faster
    for t in range(T - 1, -1, -1):
        dh += dh_out[t]
        np.multiply(dh, dc_from_h[t], out=tmp)
        dc += tmp
        dz4[t, :, :3] *= dc[:, None, :]
        dz4[t, :, 3] *= dh
        dc *= f[t]                          # gradient flowing to c_prev
        np.matmul(dz[t], WhT, out=dh)       # gradient flowing to h_prev

    TB = T * B
    dz2 = dz.reshape(TB, 4 * H)
    db = dz2.sum(axis=0)
    dWh = h[:-1].reshape(TB, H).T @ dz2     # one product for all steps, after the loop
    x = cache.x
    if is_ids(x):
        dWx = _one_hot_product(x.reshape(TB), dz2, cache.Wx.shape[0])
        dx = None
    else:
        D = x.shape[2]
        dWx = x.reshape(TB, D).T @ dz2
        dx = (dz2 @ cache.Wx.T).reshape(T, B, D)
    return LSTMGrads(dx=dx, dh0=dh, dc0=dc, dWx=dWx, dWh=dWh, db=db)


def _one_hot_product(ids: np.ndarray, dz: np.ndarray, vocab_size: int) -> np.ndarray:
    """one_hot(ids).T @ dz, the first layer's weight gradient: row k sums dz over the steps whose
    input was symbol k.

    For a small vocabulary the one-hot matrix product is the fastest way (a GEMM of V x TB x 4H,
    several times faster than numpy's scatter-add); for a large one, sorting the rows by id and
    summing runs costs O(TB x 4H) whatever V is.
    """
    if vocab_size <= 512:
        one_hot = np.zeros((vocab_size, ids.shape[0]), dtype=dz.dtype)
        one_hot[ids, np.arange(ids.shape[0])] = 1
        return one_hot @ dz
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((vocab_size, dz.shape[1]), dtype=dz.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(dz[order], starts, axis=0)
    return out
