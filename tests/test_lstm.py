"""charlstm.lstm: one LSTM layer, forward against a plain reference, backward against central
differences in float64, the one-hot (ids) input, and float32 runs that stay float32."""

import numpy as np
import pytest

from charlstm.nn.cells.lstm import LSTMCache, LSTMGrads, lstm_backward, lstm_forward
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


# The layer works on feature-major sequences, (T, D, B); these tests speak time-major, (T, B, D),
# like the equations, and convert at the boundary.
def fm(a):
    return a.transpose(0, 2, 1)


def forward_tm(x, h0, c0, Wx, Wh, b):
    out, state, cache = lstm_forward(x if np.issubdtype(x.dtype, np.integer) else fm(x), h0, c0, Wx, Wh, b)
    return fm(out), state, cache


def backward_tm(dout, cache, dhT=None, dcT=None, **kwargs):
    grads = lstm_backward(fm(dout), cache, dhT, dcT, **kwargs)
    return grads._replace(dx=None if grads.dx is None else fm(grads.dx))


def sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))   # 1 / (1 + exp(-z)) without overflow


def reference_forward(x, h0, c0, Wx, Wh, b):
    """The equations of the module docstring, one step and one gate at a time."""
    H = Wh.shape[0]
    h, c, outs = h0, c0, []
    for t in range(x.shape[0]):
        z = x[t] @ Wx + h @ Wh + b
        i, f = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H])
        g, o = np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    return np.stack(outs), h, c


def make_layer(rng, T, B, D, H, dtype=np.float64, scale=0.5):
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    c0 = rng.standard_normal((B, H)) * 0.5
    Wx = rng.standard_normal((D, 4 * H)) * scale
    Wh = rng.standard_normal((H, 4 * H)) * scale
    b = rng.standard_normal(4 * H) * scale
    return [a.astype(dtype) for a in (x, h0, c0, Wx, Wh, b)]


def scalar_loss(x, h0, c0, Wx, Wh, b, dout, dhT, dcT):
    """A scalar whose gradients are exactly what lstm_backward computes for (dout, dhT, dcT)."""
    out, (hT, cT), _ = forward_tm(x, h0, c0, Wx, Wh, b)
    return float(np.sum(out * dout) + np.sum(hT * dhT) + np.sum(cT * dcT))


def check_all_grads(x, h0, c0, Wx, Wh, b, dout, dhT, dcT, chunk_steps=None):
    _, _, cache = forward_tm(x, h0, c0, Wx, Wh, b)
    grads = backward_tm(dout, cache, dhT, dcT, chunk_steps=chunk_steps)
    f = lambda: scalar_loss(x, h0, c0, Wx, Wh, b, dout, dhT, dcT)  # noqa: E731
    named = {"dWx": Wx, "dWh": Wh, "db": b, "dh0": h0, "dc0": c0}
    if np.issubdtype(x.dtype, np.floating):
        named["dx"] = x
    for name, array in named.items():
        analytic = getattr(grads, name)
        assert analytic.shape == array.shape, name
        err = rel_error(analytic, numerical_gradient(f, array))
        assert err < TOL, f"{name}: relative error {err:.2e}"
    return grads


def test_forward_matches_the_equations():
    rng = np.random.default_rng(0)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=6, B=3, D=5, H=4)
    out, (hT, cT), cache = forward_tm(x, h0, c0, Wx, Wh, b)
    ref_out, ref_h, ref_c = reference_forward(x, h0, c0, Wx, Wh, b)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cT, ref_c, rtol=1e-12, atol=1e-14)
    assert isinstance(cache, LSTMCache)
    np.testing.assert_array_equal(cache.hidden()[0], h0)
    np.testing.assert_array_equal(cache.cell()[0], c0)
    np.testing.assert_array_equal(cache.hidden()[1:], out)
    # the cache's gates, read in the public order, are the equations' gates
    z = x[1] @ Wx + out[0] @ Wh + b
    H = 4
    expected = {"i": sigmoid(z[:, :H]), "f": sigmoid(z[:, H:2 * H]), "g": np.tanh(z[:, 2 * H:3 * H]),
                "o": sigmoid(z[:, 3 * H:])}
    for name, value in expected.items():
        np.testing.assert_allclose(cache.gate(name)[1], value, rtol=1e-12, atol=1e-14)
    c1 = expected["f"] * cache.cell()[1] + expected["i"] * expected["g"]
    np.testing.assert_allclose(cache.cell()[2], c1, rtol=1e-12, atol=1e-14)


def test_layout_is_feature_major():
    """Sequences go in and come out as (T, D, B) and (T, H, B); states stay (B, H)."""
    rng = np.random.default_rng(13)
    T, B, D, H = 5, 3, 4, 2
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=D, H=H)
    out, (hT, cT), cache = lstm_forward(fm(x), h0, c0, Wx, Wh, b)
    assert out.shape == (T, H, B) and hT.shape == (B, H) and cT.shape == (B, H)
    ref_out, _, _ = reference_forward(x, h0, c0, Wx, Wh, b)
    np.testing.assert_allclose(out, fm(ref_out), rtol=1e-12, atol=1e-14)
    grads = lstm_backward(np.ones((T, H, B)), cache)
    assert grads.dx.shape == (T, D, B) and grads.dh0.shape == (B, H) and grads.dWx.shape == (D, 4 * H)


def test_forward_saturated_gates_stay_finite():
    rng = np.random.default_rng(1)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=5, B=2, D=3, H=3, scale=300.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, (hT, cT), _ = forward_tm(x, h0, c0, Wx, Wh, b)
    assert np.isfinite(out).all() and np.isfinite(cT).all()
    assert np.all(np.abs(out) <= 1.0)
    ref_out, _, _ = reference_forward(x, h0, c0, Wx, Wh, b)
    np.testing.assert_allclose(out, ref_out, rtol=1e-9, atol=1e-12)


def test_forward_and_backward_leave_their_inputs_alone():
    rng = np.random.default_rng(2)
    arrays = make_layer(rng, T=4, B=2, D=3, H=3)
    copies = [a.copy() for a in arrays]
    out, _, cache = forward_tm(*arrays)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)
    dout = rng.standard_normal(out.shape)
    dhT, dcT = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    saved = [dout.copy(), dhT.copy(), dcT.copy()]
    g1 = backward_tm(dout, cache, dhT, dcT)
    for a, c in zip((dout, dhT, dcT), saved):
        np.testing.assert_array_equal(a, c)
    # a second backward pass from the same cache gives the same gradients (the cache is not consumed)
    g2 = backward_tm(dout, cache, dhT, dcT)
    for a, c in zip(g1, g2):
        np.testing.assert_array_equal(a, c)


def test_gradients_one_step():
    rng = np.random.default_rng(3)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=1, B=3, D=4, H=5)
    dout = rng.standard_normal((1, 3, 5))
    dhT, dcT = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    check_all_grads(x, h0, c0, Wx, Wh, b, dout, dhT, dcT)


@pytest.mark.parametrize("D, H", [(3, 4), (7, 2), (2, 5)])
def test_gradients_whole_sequence(D, H):
    """The backward pass stores the steps' [dx; dh] products overlapping (see lstm_backward): the
    dh block spills into one later block when H <= D, into several when H > D."""
    rng = np.random.default_rng(4)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=7, B=2, D=D, H=H)
    dout = rng.standard_normal((7, 2, H))
    dhT, dcT = rng.standard_normal((2, H)), rng.standard_normal((2, H))
    grads = check_all_grads(x, h0, c0, Wx, Wh, b, dout, dhT, dcT)
    assert np.abs(grads.dh0).max() > 1e-3 and np.abs(grads.dc0).max() > 1e-3


def test_dx_needs_one_block_more_than_dx():
    """With a workspace, a layer's dx and its running dh share one buffer of T*D*B + H*B."""
    from charlstm.nn.cells.lstm import lstm_backward, lstm_forward
    from charlstm.nn.workspace import Workspace
    rng = np.random.default_rng(13)
    T, B, D, H = 6, 3, 5, 4
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=D, H=H)
    ws = Workspace()
    out, _, cache = lstm_forward(x.transpose(0, 2, 1), h0, c0, Wx, Wh, b, ws.part("f"))
    dx_ws = ws.part("dx")
    dout = rng.standard_normal(out.shape)
    g = lstm_backward(dout, cache, workspace=ws.part("b"), dx_workspace=dx_ws)
    assert dx_ws.empty("dx", (1,), x.dtype).base.size == T * D * B + H * B
    fresh = lstm_backward(dout, cache)
    for name in LSTMGrads._fields:
        np.testing.assert_array_equal(getattr(g, name), getattr(fresh, name))


@pytest.mark.parametrize("chunk_steps", [1, 2, 3])
def test_gradients_when_backward_walks_time_in_chunks(chunk_steps):
    """Long sequences are walked back in chunks of steps: the gradients do not depend on where
    the chunks are cut, with a short last chunk too (7 = 3 + 3 + 1)."""
    rng = np.random.default_rng(11)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=7, B=2, D=3, H=4)
    dout = rng.standard_normal((7, 2, 4))
    dhT, dcT = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    check_all_grads(x, h0, c0, Wx, Wh, b, dout, dhT, dcT, chunk_steps=chunk_steps)
    ids = rng.integers(0, 3, size=(7, 2))
    check_all_grads(ids, h0, c0, Wx, Wh, b, dout, dhT, dcT, chunk_steps=chunk_steps)


def test_default_chunks_cover_long_sequences():
    """At training sizes the backward pass cuts time into several chunks; the result is the
    same as walking it in one."""
    from charlstm.nn.cells.lstm import backward_chunk_steps
    rng = np.random.default_rng(12)
    T, B = 50, 64
    assert backward_chunk_steps(T, B) < T
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=5, H=6)
    out, _, cache = forward_tm(x, h0, c0, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    chunked, whole = backward_tm(dout, cache), backward_tm(dout, cache, chunk_steps=T)
    for name in LSTMGrads._fields:
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-10, atol=1e-12)


def test_gradients_with_only_final_state_upstream():
    """dh_out = 0: everything flows from dhT/dcT back through all the steps."""
    rng = np.random.default_rng(5)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=5, B=2, D=3, H=3)
    dhT, dcT = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    check_all_grads(x, h0, c0, Wx, Wh, b, np.zeros((5, 2, 3)), dhT, dcT)


def test_none_final_gradients_mean_zero():
    rng = np.random.default_rng(6)
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=4, B=2, D=3, H=3)
    out, _, cache = forward_tm(x, h0, c0, Wx, Wh, b)
    dout = rng.standard_normal(out.shape)
    a = backward_tm(dout, cache)
    z = backward_tm(dout, cache, np.zeros((2, 3)), np.zeros((2, 3)))
    for ga, gz in zip(a, z):
        np.testing.assert_array_equal(ga, gz)


def test_ids_input_is_one_hot_times_Wx():
    rng = np.random.default_rng(7)
    V, T, B, H = 6, 5, 3, 4
    ids = rng.integers(0, V, size=(T, B))
    ids[1, :] = ids[0, :]           # repeated ids: the scatter of dWx must add, not overwrite
    ids[:, 2] = 1
    _, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=V, H=H)
    one_hot = np.eye(V)[ids]                     # (T, B, V)
    out_ids, (h_ids, c_ids), cache_ids = forward_tm(ids, h0, c0, Wx, Wh, b)
    out_vec, (h_vec, c_vec), cache_vec = forward_tm(one_hot, h0, c0, Wx, Wh, b)
    np.testing.assert_allclose(out_ids, out_vec, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h_ids, h_vec, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(c_ids, c_vec, rtol=1e-13, atol=1e-15)
    ref_out, _, _ = reference_forward(one_hot, h0, c0, Wx, Wh, b)
    np.testing.assert_allclose(out_ids, ref_out, rtol=1e-12, atol=1e-14)

    dout = rng.standard_normal(out_ids.shape)
    dhT, dcT = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    g_ids = backward_tm(dout, cache_ids, dhT, dcT)
    g_vec = backward_tm(dout, cache_vec, dhT, dcT)
    assert g_ids.dx is None
    for name in ("dWx", "dWh", "db", "dh0", "dc0"):
        np.testing.assert_allclose(getattr(g_ids, name), getattr(g_vec, name), rtol=1e-12, atol=1e-14)
    # symbols never seen get no gradient
    unseen = sorted(set(range(V)) - set(ids.reshape(-1).tolist()))
    assert np.all(g_ids.dWx[unseen] == 0)


@pytest.mark.parametrize("id_dtype", [np.uint8, np.uint16, np.intp])
def test_gradients_ids_input(id_dtype):
    rng = np.random.default_rng(8)
    V, T, B, H = 5, 4, 3, 3
    ids = rng.integers(0, V, size=(T, B)).astype(id_dtype)
    _, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=V, H=H)
    dout = rng.standard_normal((T, B, H))
    dhT, dcT = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    check_all_grads(ids, h0, c0, Wx, Wh, b, dout, dhT, dcT)


@pytest.mark.parametrize("ids_input", [False, True])
def test_float32_stays_float32(ids_input):
    rng = np.random.default_rng(9)
    T, B, D, H = 6, 3, 5, 4
    x64, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=D, H=H)
    if ids_input:
        x64 = rng.integers(0, D, size=(T, B))
    x32 = x64 if ids_input else x64.astype(np.float32)
    args32 = [x32] + [a.astype(np.float32) for a in (h0, c0, Wx, Wh, b)]
    out, (hT, cT), cache = forward_tm(*args32)
    for name, a in [("out", out), ("hT", hT), ("cT", cT), ("gates", cache.gates), ("c", cache.c),
                    ("xh", cache.xh), ("tanh_c", cache.tanh_c)]:
        assert a.dtype == np.float32, name
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dhT, dcT = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    grads = backward_tm(dout, cache, dhT, dcT)
    for name in ("dh0", "dc0", "dWx", "dWh", "db") + (() if ids_input else ("dx",)):
        assert getattr(grads, name).dtype == np.float32, name

    # and the float32 numbers are the float64 numbers, to float32 precision
    out64, (hT64, cT64), cache64 = forward_tm(x64, h0, c0, Wx, Wh, b)
    grads64 = backward_tm(dout.astype(np.float64), cache64, dhT.astype(np.float64), dcT.astype(np.float64))
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cT, cT64, rtol=1e-4, atol=1e-5)
    for name in ("dh0", "dc0", "dWx", "dWh", "db"):
        assert rel_error(getattr(grads, name), getattr(grads64, name)) < 1e-5, name


def test_float32_final_gradients_given_as_float64_do_not_promote():
    rng = np.random.default_rng(10)
    args = [a.astype(np.float32) for a in make_layer(rng, T=3, B=2, D=3, H=3)]
    out, _, cache = forward_tm(*args)
    grads = backward_tm(np.ones_like(out), cache, np.ones((2, 3)), np.ones((2, 3)))  # float64 upstream
    assert grads.dh0.dtype == np.float32 and grads.dc0.dtype == np.float32
    assert grads.dWh.dtype == np.float32


def test_input_mask_is_the_same_as_a_masked_input():
    """x_mask multiplies the input on its way in; dx is still the gradient for the unmasked x."""
    from charlstm.nn.cells.lstm import lstm_backward, lstm_forward
    rng = np.random.default_rng(14)
    T, B, D, H = 5, 3, 4, 3
    x, h0, c0, Wx, Wh, b = make_layer(rng, T=T, B=B, D=D, H=H)
    x = x.transpose(0, 2, 1).copy()                                   # (T, D, B)
    mask = (rng.random(x.shape) > 0.3) / 0.7
    out_m, state_m, cache_m = lstm_forward(x, h0, c0, Wx, Wh, b, x_mask=mask)
    out, state, cache = lstm_forward(x * mask, h0, c0, Wx, Wh, b)
    np.testing.assert_array_equal(out_m, out)
    dout = rng.standard_normal(out.shape)
    g_m, g = lstm_backward(dout, cache_m), lstm_backward(dout, cache)
    np.testing.assert_allclose(g_m.dx, g.dx * mask, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(g_m.dWx, g.dWx)
    assert np.any(mask == 0) and np.abs(g.dx[mask == 0]).max() > 1e-3   # the mask mattered
    with pytest.raises(ValueError):
        lstm_forward(rng.integers(0, D, (T, B)), h0, c0, Wx, Wh, b, x_mask=mask)
