"""charlstm.nn.cells.rnn: one tanh RNN layer, forward against a plain per-step loop, backward
against central differences in float64 (vector and one-hot input, input mask, final-state
gradient, chunked backward), the workspace, the decoding step, float32, the orthogonal
initialisation, and parity with torch.nn.RNN."""

import numpy as np
import pytest

from charlstm.nn.cells import CELLS, get_cell
from charlstm.nn.cells.base import CellGrads
from charlstm.nn.cells.rnn import (CELL, RNNCache, RNNGrads, RNNStep, init, orthogonal, param_shapes,
                                   rnn_backward, rnn_forward)
from charlstm.nn.workspace import Workspace
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6
PARAMS = ("Wx", "Wh", "b")


def fm(a):
    """time-major (T, B, D) <-> feature-major (T, D, B)"""
    return a.transpose(0, 2, 1)


def is_ids(x):
    return np.issubdtype(x.dtype, np.integer)


def forward_tm(x, h0, p, x_mask=None, workspace=None):
    out, hT, cache = rnn_forward(x if is_ids(x) else fm(x), h0, p["Wx"], p["Wh"], p["b"], workspace,
                                 x_mask=None if x_mask is None else fm(x_mask))
    return fm(out), hT, cache


def backward_tm(dout, cache, dhT=None, **kwargs):
    grads = rnn_backward(fm(dout), cache, dhT, **kwargs)
    return grads._replace(dx=None if grads.dx is None else fm(grads.dx))


def reference_forward(x, h0, p):
    """h = tanh(Wx^T x + Wh^T h_prev + b), one step at a time, (T, B, D) in, (T, B, H) out."""
    h, outs = h0, []
    for t in range(x.shape[0]):
        h = np.tanh(x[t] @ p["Wx"] + h @ p["Wh"] + p["b"])
        outs.append(h)
    return np.stack(outs), h


def make_layer(rng, T, B, D, H, dtype=np.float64, scale=0.5):
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    p = {"Wx": rng.standard_normal((D, H)) * scale, "Wh": rng.standard_normal((H, H)) * scale,
         "b": rng.standard_normal(H) * scale}
    return x.astype(dtype), h0.astype(dtype), {k: v.astype(dtype) for k, v in p.items()}


def check_all_grads(x, h0, p, dout, dhT, x_mask=None, chunk_steps=None):
    _, _, cache = forward_tm(x, h0, p, x_mask)
    grads = backward_tm(dout, cache, dhT, chunk_steps=chunk_steps)

    def loss():
        out, hT, _ = forward_tm(x, h0, p, x_mask)
        return float(np.sum(out * dout) + np.sum(hT * dhT))

    named = {"d" + k: v for k, v in p.items()}
    named["dh0"] = h0
    if not is_ids(x):
        named["dx"] = x
    for name, array in named.items():
        analytic = getattr(grads, name)
        assert analytic.shape == array.shape, name
        err = rel_error(analytic, numerical_gradient(loss, array))
        assert err < TOL, f"{name}: relative error {err:.2e}"
    return grads


def test_forward_matches_the_equations():
    rng = np.random.default_rng(0)
    x, h0, p = make_layer(rng, T=6, B=3, D=5, H=4)
    out, hT, cache = forward_tm(x, h0, p)
    ref_out, ref_h = reference_forward(x, h0, p)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-14)
    assert isinstance(cache, RNNCache)
    np.testing.assert_array_equal(cache.hidden()[0], h0)
    np.testing.assert_array_equal(cache.hidden()[1:], out)


def test_layout_is_feature_major():
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 2
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H)
    out, hT, cache = rnn_forward(fm(x), h0, p["Wx"], p["Wh"], p["b"])
    assert out.shape == (T, H, B) and hT.shape == (B, H)
    grads = rnn_backward(np.ones((T, H, B)), cache)
    assert isinstance(grads, RNNGrads)
    assert grads.dx.shape == (T, D, B) and grads.dh0.shape == (B, H) and grads.dWx.shape == (D, H)
    assert grads.dx.flags.c_contiguous                 # written in time order, never copied


def test_saturated_units_stay_finite():
    rng = np.random.default_rng(2)
    x, h0, p = make_layer(rng, T=5, B=2, D=3, H=3, scale=300.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, _, cache = forward_tm(x, h0, p)
        grads = backward_tm(np.ones_like(out), cache)
    assert np.all(np.abs(out) <= 1.0) and all(np.isfinite(g).all() for g in grads)


def test_forward_and_backward_leave_their_inputs_alone():
    rng = np.random.default_rng(3)
    x, h0, p = make_layer(rng, T=4, B=2, D=3, H=3)
    arrays = [x, h0] + list(p.values())
    copies = [a.copy() for a in arrays]
    out, _, cache = forward_tm(x, h0, p)
    dout, dhT = rng.standard_normal(out.shape), rng.standard_normal(h0.shape)
    saved = [dout.copy(), dhT.copy()]
    g1 = backward_tm(dout, cache, dhT)
    for a, c in zip(arrays + [dout, dhT], copies + saved):
        np.testing.assert_array_equal(a, c)
    g2 = backward_tm(dout, cache, dhT)
    for a, c in zip(g1, g2):
        np.testing.assert_array_equal(a, c)


def test_gradients_one_step():
    rng = np.random.default_rng(4)
    x, h0, p = make_layer(rng, T=1, B=3, D=4, H=5)
    check_all_grads(x, h0, p, rng.standard_normal((1, 3, 5)), rng.standard_normal((3, 5)))


@pytest.mark.parametrize("D, H", [(3, 4), (7, 2), (2, 5)])
def test_gradients_whole_sequence(D, H):
    """The steps' [dh; dx] products overlap in one buffer (see rnn_backward): the dh block covers
    less than one later dx block when H < D, several when H > D."""
    rng = np.random.default_rng(5)
    x, h0, p = make_layer(rng, T=7, B=2, D=D, H=H)
    grads = check_all_grads(x, h0, p, rng.standard_normal((7, 2, H)), rng.standard_normal((2, H)))
    assert np.abs(grads.dh0).max() > 1e-3


@pytest.mark.parametrize("id_dtype", [np.uint8, np.uint16, np.intp])
def test_gradients_ids_input(id_dtype):
    rng = np.random.default_rng(6)
    V, T, B, H = 5, 4, 3, 3
    ids = rng.integers(0, V, size=(T, B)).astype(id_dtype)
    _, h0, p = make_layer(rng, T=T, B=B, D=V, H=H)
    grads = check_all_grads(ids, h0, p, rng.standard_normal((T, B, H)), rng.standard_normal((B, H)))
    assert grads.dx is None


def test_gradients_with_an_input_mask():
    rng = np.random.default_rng(7)
    T, B, D, H = 5, 3, 4, 3
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H)
    mask = (rng.random(x.shape) > 0.3) / 0.7
    grads = check_all_grads(x, h0, p, rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), x_mask=mask)
    assert np.all(grads.dx[mask == 0] == 0)
    out_m, _, _ = forward_tm(x, h0, p, x_mask=mask)
    np.testing.assert_array_equal(out_m, forward_tm(x * mask, h0, p)[0])
    with pytest.raises(ValueError):
        forward_tm(rng.integers(0, D, (T, B)), h0, p, x_mask=mask)


@pytest.mark.parametrize("chunk_steps", [1, 2, 3])
def test_gradients_when_backward_walks_time_in_chunks(chunk_steps):
    rng = np.random.default_rng(8)
    x, h0, p = make_layer(rng, T=7, B=2, D=3, H=4)
    dout, dhT = rng.standard_normal((7, 2, 4)), rng.standard_normal((2, 4))
    check_all_grads(x, h0, p, dout, dhT, chunk_steps=chunk_steps)
    check_all_grads(rng.integers(0, 3, size=(7, 2)), h0, p, dout, dhT, chunk_steps=chunk_steps)


def test_default_chunks_cover_long_sequences():
    from charlstm.nn.cells.lstm import backward_chunk_steps
    rng = np.random.default_rng(9)
    T, B = 50, 64
    assert backward_chunk_steps(T, B) < T
    x, h0, p = make_layer(rng, T=T, B=B, D=5, H=6)
    out, _, cache = forward_tm(x, h0, p)
    dout = rng.standard_normal(out.shape)
    chunked, whole = backward_tm(dout, cache), backward_tm(dout, cache, chunk_steps=T)
    for name in RNNGrads._fields:
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-10, atol=1e-12)


def test_gradients_with_only_final_state_upstream():
    rng = np.random.default_rng(10)
    x, h0, p = make_layer(rng, T=5, B=2, D=3, H=3)
    check_all_grads(x, h0, p, np.zeros((5, 2, 3)), rng.standard_normal((2, 3)))


def test_none_final_gradient_means_zero():
    rng = np.random.default_rng(11)
    x, h0, p = make_layer(rng, T=4, B=2, D=3, H=3)
    out, _, cache = forward_tm(x, h0, p)
    dout = rng.standard_normal(out.shape)
    for a, b in zip(backward_tm(dout, cache), backward_tm(dout, cache, np.zeros((2, 3)))):
        np.testing.assert_array_equal(a, b)


def test_ids_input_is_one_hot_times_Wx():
    rng = np.random.default_rng(12)
    V, T, B, H = 6, 5, 3, 4
    ids = rng.integers(0, V, size=(T, B))
    ids[1] = ids[0]
    ids[:, 2] = 1
    _, h0, p = make_layer(rng, T=T, B=B, D=V, H=H)
    one_hot = np.eye(V)[ids]
    out_ids, h_ids, cache_ids = forward_tm(ids, h0, p)
    out_vec, h_vec, cache_vec = forward_tm(one_hot, h0, p)
    np.testing.assert_allclose(out_ids, out_vec, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h_ids, h_vec, rtol=1e-13, atol=1e-15)
    dout, dhT = rng.standard_normal(out_ids.shape), rng.standard_normal((B, H))
    g_ids, g_vec = backward_tm(dout, cache_ids, dhT), backward_tm(dout, cache_vec, dhT)
    for name in ("dWx", "dWh", "db", "dh0"):
        np.testing.assert_allclose(getattr(g_ids, name), getattr(g_vec, name), rtol=1e-12, atol=1e-14)
    unseen = sorted(set(range(V)) - set(ids.reshape(-1).tolist()))
    assert unseen and np.all(g_ids.dWx[unseen] == 0)


@pytest.mark.parametrize("ids_input", [False, True])
def test_a_reused_workspace_changes_no_number(ids_input):
    rng = np.random.default_rng(13)
    B, D, H = 3, 5, 4
    _, h0, p = make_layer(rng, T=1, B=B, D=D, H=H)
    ws = Workspace()
    for T in (9, 4):
        x = rng.integers(0, D, (T, B)) if ids_input else rng.standard_normal((T, B, D))
        mask = None if ids_input else (rng.random((T, B, D)) > 0.2) / 0.8
        dout, dhT = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
        out_w, hT_w, cache_w = forward_tm(x, h0, p, mask, workspace=ws.part("f"))
        g_w = backward_tm(dout, cache_w, dhT, workspace=ws.part("b"), dx_workspace=ws.part("dx"))
        out, hT, cache = forward_tm(x, h0, p, mask)
        g = backward_tm(dout, cache, dhT)
        np.testing.assert_array_equal(out_w, out)
        np.testing.assert_array_equal(hT_w, hT)
        for name in RNNGrads._fields:
            a, b = getattr(g_w, name), getattr(g, name)
            assert (a is None) == (b is None) == (name == "dx" and ids_input), name
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=name)
    if not ids_input:   # dx and the running dh share one buffer of T*D*B + H*B (the largest asked)
        assert ws.part("dx").empty("dx", (1,), np.float64).base.size == 9 * D * B + H * B


@pytest.mark.parametrize("one_hot", [True, False])
def test_step_matches_forward(one_hot):
    rng = np.random.default_rng(14)
    T, B, D, H = 6, 3, 5, 4
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H)
    if one_hot:
        x = rng.integers(0, D, (T, B))
    out, hT, _ = forward_tm(x, h0, p)
    Dp = 0 if one_hot else D
    rows = np.zeros((Dp + 1 + H, B))
    rows[Dp] = 1
    step = CELL.stepper(p, rows, one_hot)
    assert isinstance(step, RNNStep)
    step.set_state((h0,))
    for t in range(T):
        if one_hot:
            step(x[t])
        else:
            rows[:D] = x[t].T
            step()
        np.testing.assert_allclose(step.get_state()[0], out[t], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rows[Dp + 1:], out[t].T, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(rows[Dp], 1)
    step.set_state((out[2].copy(),))
    for t in range(3, T):
        if one_hot:
            step(x[t])
        else:
            rows[:D] = x[t].T
            step()
    np.testing.assert_allclose(step.get_state()[0], hT, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("ids_input", [False, True])
def test_float32_stays_float32(ids_input):
    rng = np.random.default_rng(15)
    T, B, D, H = 6, 3, 5, 4
    x64, h0, p64 = make_layer(rng, T=T, B=B, D=D, H=H)
    if ids_input:
        x64 = rng.integers(0, D, size=(T, B))
    x32 = x64 if ids_input else x64.astype(np.float32)
    p32 = {k: v.astype(np.float32) for k, v in p64.items()}
    out, hT, cache = forward_tm(x32, h0.astype(np.float32), p32)
    assert out.dtype == hT.dtype == cache.xh.dtype == np.float32
    dout, dhT = rng.standard_normal(out.shape).astype(np.float32), rng.standard_normal((B, H))  # dhT float64
    grads = backward_tm(dout, cache, dhT)
    for name in RNNGrads._fields:
        if getattr(grads, name) is not None:
            assert getattr(grads, name).dtype == np.float32, name
    out64, _, cache64 = forward_tm(x64, h0, p64)
    grads64 = backward_tm(dout.astype(np.float64), cache64, dhT)
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5)
    for name in ("dh0", "dWx", "dWh", "db") + (() if ids_input else ("dx",)):
        assert rel_error(getattr(grads, name), getattr(grads64, name)) < 1e-5, name


def test_float32_step():
    rng = np.random.default_rng(16)
    _, h0, p = make_layer(rng, T=1, B=2, D=5, H=4, dtype=np.float32)
    rows = np.zeros((1 + 4, 2), dtype=np.float32)
    rows[0] = 1
    step = RNNStep(p, rows, True)
    step.set_state((h0,))
    step(np.array([1, 3]))
    assert step.get_state()[0].dtype == np.float32
    np.testing.assert_allclose(step.get_state()[0], forward_tm(np.array([[1, 3]]), h0, p)[0][0], rtol=1e-5, atol=1e-6)


# --- the cell record --------------------------------------------------------------------------

def test_the_cell_is_registered_and_describes_itself():
    assert get_cell("rnn") is CELL and CELLS["rnn"] is CELL
    assert CELL.state == ("h",) and CELL.quantities == ("h",)
    assert param_shapes(7, 4) == {"Wx": (7, 4), "Wh": (4, 4), "b": (4,)}


@pytest.mark.parametrize("one_hot", [True, False])
def test_init(one_hot):
    D, H = 9, 16
    p = init(D, H, np.random.default_rng(0), one_hot)
    assert {k: v.shape for k, v in p.items()} == param_shapes(D, H)
    assert all(v.dtype == np.float64 for v in p.values())
    bound = 1.0 / np.sqrt(H)
    assert np.abs(p["Wx"]).max() <= (1.0 if one_hot else 1.0 / np.sqrt(D))   # a vector input: +-1/sqrt(D)
    np.testing.assert_allclose(p["Wh"].T @ p["Wh"], np.eye(H), atol=1e-12)   # orthogonal
    np.testing.assert_array_equal(p["b"], np.zeros(H))
    rng = np.random.default_rng(0)              # drawn in the order Wx, Wh
    wx_bound = 1.0 if one_hot else 1.0 / np.sqrt(D)
    np.testing.assert_array_equal(p["Wx"], rng.uniform(-wx_bound, wx_bound, (D, H)))
    np.testing.assert_array_equal(p["Wh"], orthogonal(H, rng))


def test_orthogonal_is_sign_corrected():
    """The signs are fixed by R's diagonal, so the matrix is Haar-distributed: over many draws a
    diagonal entry averages zero (the Q of numpy's QR alone averages about -0.4 there)."""
    rng = np.random.default_rng(1)
    q, r = np.linalg.qr(np.random.default_rng(2).standard_normal((3, 3)))
    signs = np.sign(np.diag(r))
    np.testing.assert_allclose(orthogonal(3, np.random.default_rng(2)), q * signs)
    diag = np.array([np.diag(orthogonal(4, rng)) for _ in range(2000)])
    assert np.all(np.abs(diag.mean(axis=0)) < 0.05)


def test_the_adapters_speak_the_contract():
    rng = np.random.default_rng(17)
    T, B, D, H = 5, 2, 3, 4
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H)
    out, (hT,), cache = CELL.forward(fm(x), (h0,), p)
    ref_out, ref_h = reference_forward(x, h0, p)
    np.testing.assert_allclose(fm(out), ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-14)
    dout, dhT = rng.standard_normal((T, H, B)), rng.standard_normal((B, H))
    g = CELL.backward(dout, cache, (dhT,))
    raw = rnn_backward(dout, cache, dhT)
    assert isinstance(g, CellGrads) and len(g.dstate) == 1
    np.testing.assert_array_equal(g.dx, raw.dx)
    np.testing.assert_array_equal(g.dstate[0], raw.dh0)
    assert list(g.params) == list(PARAMS)
    for k in PARAMS:
        np.testing.assert_array_equal(g.params[k], getattr(raw, "d" + k))
    values = CELL.trace(cache)
    assert list(values) == ["h"] and values["h"].shape == (T, B, H)
    np.testing.assert_allclose(values["h"], ref_out, rtol=1e-12, atol=1e-14)


# --- parity with PyTorch ----------------------------------------------------------------------

def to_torch(torch, layers, V, H, bias_hh=None):
    rnn = torch.nn.RNN(V, H, num_layers=len(layers), nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        for k, p in enumerate(layers):
            getattr(rnn, f"weight_ih_l{k}").copy_(torch.from_numpy(p["Wx"].T.copy()))
            getattr(rnn, f"weight_hh_l{k}").copy_(torch.from_numpy(p["Wh"].T.copy()))
            hh = np.zeros_like(p["b"]) if bias_hh is None else bias_hh[k]
            getattr(rnn, f"bias_ih_l{k}").copy_(torch.from_numpy(p["b"] - hh))
            getattr(rnn, f"bias_hh_l{k}").copy_(torch.from_numpy(hh))
    return rnn


@pytest.mark.parametrize("split_bias", [False, True])
def test_outputs_state_and_every_gradient_match_torch_rnn(split_bias):
    """Two stacked layers (one-hot ids, then vectors) against nn.RNN(num_layers=2): weight_ih =
    Wx^T, weight_hh = Wh^T, bias_ih = b, bias_hh = 0; or any split with bias_ih + bias_hh = b."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    V, T, B, H = 6, 7, 3, 5
    ids = rng.integers(0, V, (T, B))
    layers = [make_layer(rng, T=1, B=B, D=V if k == 0 else H, H=H, scale=0.7)[2] for k in range(2)]
    h0 = rng.standard_normal((2, B, H)) * 0.5
    dout, dhT = rng.standard_normal((T, B, H)), rng.standard_normal((2, B, H))

    out0, hT0, cache0 = rnn_forward(ids, h0[0], *(layers[0][k] for k in PARAMS))
    out1, hT1, cache1 = rnn_forward(out0, h0[1], *(layers[1][k] for k in PARAMS))
    g1 = rnn_backward(fm(dout), cache1, dhT[1])
    g0 = rnn_backward(g1.dx, cache0, dhT[0])

    bias_hh = [rng.standard_normal(H) for _ in range(2)] if split_bias else None
    rnn = to_torch(torch, layers, V, H, bias_hh)
    x = torch.nn.functional.one_hot(torch.from_numpy(ids), V).to(torch.float64)
    th0 = torch.from_numpy(h0.copy()).requires_grad_()
    t_out, t_hT = rnn(x, th0)
    (t_out * torch.from_numpy(dout)).sum().add((t_hT * torch.from_numpy(dhT)).sum()).backward()

    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fm(out1), t_out.detach().numpy(), **tol)
    np.testing.assert_allclose(np.stack([hT0, hT1]), t_hT.detach().numpy(), **tol)
    for k, g in enumerate((g0, g1)):
        np.testing.assert_allclose(g.dWx, getattr(rnn, f"weight_ih_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.dWh, getattr(rnn, f"weight_hh_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.db, getattr(rnn, f"bias_ih_l{k}").grad.numpy(), **tol)
        np.testing.assert_allclose(g.db, getattr(rnn, f"bias_hh_l{k}").grad.numpy(), **tol)
    np.testing.assert_allclose(np.stack([g0.dh0, g1.dh0]), th0.grad.numpy(), **tol)


def test_input_gradient_matches_torch_rnn():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    T, B, D, H = 6, 2, 4, 3
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H, scale=0.7)
    mask = (rng.random(x.shape) > 0.3) / 0.7
    dout = rng.standard_normal((T, B, H))
    _, _, cache = forward_tm(x, h0, p, mask)
    g = backward_tm(dout, cache)
    rnn = to_torch(torch, [p], D, H)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, _ = rnn(tx * torch.from_numpy(mask), torch.from_numpy(h0[None].copy()))
    (t_out * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(g.dx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
