"""charlstm.nn.cells.gru: one GRU layer, forward against a plain per-step loop, backward against
central differences in float64 (vector and one-hot input, input mask, final-state gradient,
chunked backward), the workspace, the decoding step, float32, and parity with torch.nn.GRU."""

import numpy as np
import pytest

from charlstm.nn.cells import CELLS, get_cell
from charlstm.nn.cells.base import CellGrads
from charlstm.nn.cells.gru import (CELL, GRUCache, GRUGrads, GRUStep, gru_backward, gru_forward, init,
                                   param_shapes)
from charlstm.nn.workspace import Workspace
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6
PARAMS = ("Wx", "Wh", "bx", "bh")


# The layer works on feature-major sequences, (T, D, B); these tests speak time-major, (T, B, D),
# like the equations, and convert at the boundary.
def fm(a):
    return a.transpose(0, 2, 1)


def is_ids(x):
    return np.issubdtype(x.dtype, np.integer)


def forward_tm(x, h0, p, x_mask=None, workspace=None):
    out, hT, cache = gru_forward(x if is_ids(x) else fm(x), h0, p["Wx"], p["Wh"], p["bx"], p["bh"],
                                 workspace, x_mask=None if x_mask is None else fm(x_mask))
    return fm(out), hT, cache


def backward_tm(dout, cache, dhT=None, **kwargs):
    grads = gru_backward(fm(dout), cache, dhT, **kwargs)
    return grads._replace(dx=None if grads.dx is None else fm(grads.dx))


def sigmoid(a):
    return np.exp(-np.logaddexp(0.0, -a))


def reference_forward(x, h0, p):
    """The equations of the module docstring, one step at a time, (T, B, D) in, (T, B, H) out."""
    H = p["Wh"].shape[0]
    h, outs = h0, []
    for t in range(x.shape[0]):
        ax = x[t] @ p["Wx"] + p["bx"]
        ah = h @ p["Wh"] + p["bh"]
        r = sigmoid(ax[:, :H] + ah[:, :H])
        z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.stack(outs), h


def make_layer(rng, T, B, D, H, dtype=np.float64, scale=0.5):
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    p = {"Wx": rng.standard_normal((D, 3 * H)) * scale, "Wh": rng.standard_normal((H, 3 * H)) * scale,
         "bx": rng.standard_normal(3 * H) * scale, "bh": rng.standard_normal(3 * H) * scale}
    return x.astype(dtype), h0.astype(dtype), {k: v.astype(dtype) for k, v in p.items()}


def check_all_grads(x, h0, p, dout, dhT, x_mask=None, chunk_steps=None):
    """Every gradient gru_backward returns against central differences of
    sum(out * dout) + sum(hT * dhT)."""
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
    assert isinstance(cache, GRUCache)
    np.testing.assert_array_equal(cache.hidden()[0], h0)
    np.testing.assert_array_equal(cache.hidden()[1:], out)
    # the cache's gates, read by name, are the equations' gates (step 1, after out[0])
    H = 4
    ax, ah = x[1] @ p["Wx"] + p["bx"], out[0] @ p["Wh"] + p["bh"]
    r, z = sigmoid(ax[:, :H] + ah[:, :H]), sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    expected = {"r": r, "z": z, "hn": ah[:, 2 * H:], "n": np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])}
    for name, value in expected.items():
        np.testing.assert_allclose(cache.gate(name)[1], value, rtol=1e-12, atol=1e-14)


def test_layout_is_feature_major():
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 2
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H)
    out, hT, cache = gru_forward(fm(x), h0, p["Wx"], p["Wh"], p["bx"], p["bh"])
    assert out.shape == (T, H, B) and hT.shape == (B, H)
    grads = gru_backward(np.ones((T, H, B)), cache)
    assert isinstance(grads, GRUGrads)
    assert grads.dx.shape == (T, D, B) and grads.dh0.shape == (B, H)
    assert grads.dWx.shape == (D, 3 * H) and grads.dbh.shape == (3 * H,)


def test_saturated_gates_stay_finite():
    rng = np.random.default_rng(2)
    x, h0, p = make_layer(rng, T=5, B=2, D=3, H=3, scale=300.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, hT, cache = forward_tm(x, h0, p)
        grads = backward_tm(np.ones_like(out), cache)
    assert np.isfinite(out).all() and np.all(np.abs(out) <= np.abs(h0).max() + 1.0)
    assert all(np.isfinite(g).all() for g in grads)
    np.testing.assert_allclose(out, reference_forward(x, h0, p)[0], rtol=1e-9, atol=1e-12)


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
    g2 = backward_tm(dout, cache, dhT)             # the cache is not consumed
    for a, c in zip(g1, g2):
        np.testing.assert_array_equal(a, c)


def test_gradients_one_step():
    rng = np.random.default_rng(4)
    x, h0, p = make_layer(rng, T=1, B=3, D=4, H=5)
    check_all_grads(x, h0, p, rng.standard_normal((1, 3, 5)), rng.standard_normal((3, 5)))


@pytest.mark.parametrize("D, H", [(3, 4), (7, 2), (2, 5)])
def test_gradients_whole_sequence(D, H):
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
    """x_mask multiplies the input on its way in: dx is the gradient for the unmasked x."""
    rng = np.random.default_rng(7)
    T, B, D, H = 5, 3, 4, 3
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H)
    mask = (rng.random(x.shape) > 0.3) / 0.7
    grads = check_all_grads(x, h0, p, rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), x_mask=mask)
    assert np.all(grads.dx[mask == 0] == 0)
    out_m, _, _ = forward_tm(x, h0, p, x_mask=mask)
    out, _, _ = forward_tm(x * mask, h0, p)
    np.testing.assert_array_equal(out_m, out)
    with pytest.raises(ValueError):
        forward_tm(rng.integers(0, D, (T, B)), h0, p, x_mask=mask)


@pytest.mark.parametrize("chunk_steps", [1, 2, 3])
def test_gradients_when_backward_walks_time_in_chunks(chunk_steps):
    """The gradients do not depend on where the chunks are cut, with a short last one (7 = 3+3+1)."""
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
    for name in GRUGrads._fields:
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
    ids[1] = ids[0]                 # repeated ids: the gradient of Wx must add, not overwrite
    ids[:, 2] = 1
    _, h0, p = make_layer(rng, T=T, B=B, D=V, H=H)
    one_hot = np.eye(V)[ids]
    out_ids, h_ids, cache_ids = forward_tm(ids, h0, p)
    out_vec, h_vec, cache_vec = forward_tm(one_hot, h0, p)
    np.testing.assert_allclose(out_ids, out_vec, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h_ids, h_vec, rtol=1e-13, atol=1e-15)
    dout, dhT = rng.standard_normal(out_ids.shape), rng.standard_normal((B, H))
    g_ids, g_vec = backward_tm(dout, cache_ids, dhT), backward_tm(dout, cache_vec, dhT)
    for name in ("dWx", "dWh", "dbx", "dbh", "dh0"):
        np.testing.assert_allclose(getattr(g_ids, name), getattr(g_vec, name), rtol=1e-12, atol=1e-14)
    unseen = sorted(set(range(V)) - set(ids.reshape(-1).tolist()))
    assert unseen and np.all(g_ids.dWx[unseen] == 0)


@pytest.mark.parametrize("ids_input", [False, True])
def test_a_reused_workspace_changes_no_number(ids_input):
    """A workspace used for a long chunk and then a shorter (ragged) one gives exactly what fresh
    arrays give, for the outputs, the final state and every gradient (dx in its own part)."""
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
        for name in GRUGrads._fields:
            a, b = getattr(g_w, name), getattr(g, name)
            assert (a is None) == (b is None) == (name == "dx" and ids_input), name
            if a is not None:
                np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("one_hot", [True, False])
def test_step_matches_forward(one_hot):
    """The decoding step, fed one symbol (or vector) at a time through the caller's rows
    [x; 1; h], gives forward's outputs; get_state / set_state carry h in and out."""
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
    assert isinstance(step, GRUStep)
    step.set_state((h0,))
    for t in range(T):
        if one_hot:
            step(x[t])
        else:
            rows[:D] = x[t].T
            step()
        (h,) = step.get_state()
        np.testing.assert_allclose(h, out[t], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(rows[Dp + 1:], out[t].T, rtol=1e-12, atol=1e-12)   # h lives in rows
        np.testing.assert_array_equal(rows[Dp], 1)
    np.testing.assert_allclose(step.get_state()[0], hT, rtol=1e-12, atol=1e-12)
    # restart from a state in the middle: the same steps again
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
    for name, a in [("out", out), ("hT", hT), ("gates", cache.gates), ("h", cache.h)]:
        assert a.dtype == np.float32, name
    dout, dhT = rng.standard_normal(out.shape).astype(np.float32), rng.standard_normal((B, H))  # dhT float64
    grads = backward_tm(dout, cache, dhT)
    for name in GRUGrads._fields:
        if getattr(grads, name) is not None:
            assert getattr(grads, name).dtype == np.float32, name
    out64, _, cache64 = forward_tm(x64, h0, p64)
    grads64 = backward_tm(dout.astype(np.float64), cache64, dhT)
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5)
    for name in ("dh0", "dWx", "dWh", "dbx", "dbh") + (() if ids_input else ("dx",)):
        assert rel_error(getattr(grads, name), getattr(grads64, name)) < 1e-5, name


def test_float32_step():
    rng = np.random.default_rng(16)
    _, h0, p = make_layer(rng, T=1, B=2, D=5, H=4, dtype=np.float32)
    rows = np.zeros((1 + 4, 2), dtype=np.float32)
    rows[0] = 1
    step = GRUStep(p, rows, True)
    step.set_state((h0,))
    step(np.array([1, 3]))
    assert step.get_state()[0].dtype == np.float32
    out, _, _ = forward_tm(np.array([[1, 3]]), h0, p)
    np.testing.assert_allclose(step.get_state()[0], out[0], rtol=1e-5, atol=1e-6)


# --- the cell record --------------------------------------------------------------------------

def test_the_cell_is_registered_and_describes_itself():
    assert get_cell("gru") is CELL and CELLS["gru"] is CELL
    assert CELL.state == ("h",) and CELL.quantities == ("h", "r", "z", "n")
    assert param_shapes(7, 4) == {"Wx": (7, 12), "Wh": (4, 12), "bx": (12,), "bh": (12,)}


@pytest.mark.parametrize("one_hot", [True, False])
def test_init(one_hot):
    D, H = 9, 16
    p = init(D, H, np.random.default_rng(0), one_hot)
    assert {k: v.shape for k, v in p.items()} == param_shapes(D, H)
    assert all(v.dtype == np.float64 for v in p.values())
    bound = 1.0 / np.sqrt(H)
    assert np.abs(p["Wh"]).max() <= bound
    assert np.abs(p["Wx"]).max() <= (1.0 if one_hot else 1.0 / np.sqrt(D))   # a vector input: +-1/sqrt(D)
    if one_hot:
        assert np.abs(p["Wx"]).max() > 0.5
    expected_bx = np.zeros(3 * H)
    expected_bx[H:2 * H] = 1.0                  # the update gate leans to the old state
    np.testing.assert_array_equal(p["bx"], expected_bx)
    np.testing.assert_array_equal(p["bh"], np.zeros(3 * H))
    rng = np.random.default_rng(0)              # drawn in the order Wx, Wh
    wx_bound = 1.0 if one_hot else 1.0 / np.sqrt(D)
    np.testing.assert_array_equal(p["Wx"], rng.uniform(-wx_bound, wx_bound, (D, 3 * H)))
    np.testing.assert_array_equal(p["Wh"], rng.uniform(-bound, bound, (H, 3 * H)))


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
    raw = gru_backward(dout, cache, dhT)
    assert isinstance(g, CellGrads) and len(g.dstate) == 1
    np.testing.assert_array_equal(g.dx, raw.dx)
    np.testing.assert_array_equal(g.dstate[0], raw.dh0)
    assert list(g.params) == list(PARAMS)
    for k in PARAMS:
        np.testing.assert_array_equal(g.params[k], getattr(raw, "d" + k))
        assert g.params[k].shape == p[k].shape
    values = CELL.trace(cache)
    assert list(values) == list(CELL.quantities)
    assert all(v.shape == (T, B, H) for v in values.values())
    np.testing.assert_allclose(values["h"], ref_out, rtol=1e-12, atol=1e-14)
    assert np.all((values["r"] > 0) & (values["r"] < 1) & (values["z"] > 0) & (values["z"] < 1))


# --- parity with PyTorch ----------------------------------------------------------------------

def test_outputs_state_and_every_gradient_match_torch_gru():
    """Two stacked layers (one-hot ids, then vectors) against one nn.GRU(num_layers=2) holding the
    mapped weights: weight_ih = Wx^T, weight_hh = Wh^T, bias_ih = bx, bias_hh = bh."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    V, T, B, H = 6, 7, 3, 5
    ids = rng.integers(0, V, (T, B))
    layers = [make_layer(rng, T=1, B=B, D=V if k == 0 else H, H=H, scale=0.7)[2] for k in range(2)]
    h0 = rng.standard_normal((2, B, H)) * 0.5
    dout, dhT = rng.standard_normal((T, B, H)), rng.standard_normal((2, B, H))

    out0, hT0, cache0 = gru_forward(ids, h0[0], *(layers[0][k] for k in PARAMS))
    out1, hT1, cache1 = gru_forward(out0, h0[1], *(layers[1][k] for k in PARAMS))
    g1 = gru_backward(fm(dout), cache1, dhT[1])
    g0 = gru_backward(g1.dx, cache0, dhT[0])

    gru = torch.nn.GRU(V, H, num_layers=2, dtype=torch.float64)
    with torch.no_grad():
        for k, p in enumerate(layers):
            getattr(gru, f"weight_ih_l{k}").copy_(torch.from_numpy(p["Wx"].T.copy()))
            getattr(gru, f"weight_hh_l{k}").copy_(torch.from_numpy(p["Wh"].T.copy()))
            getattr(gru, f"bias_ih_l{k}").copy_(torch.from_numpy(p["bx"]))
            getattr(gru, f"bias_hh_l{k}").copy_(torch.from_numpy(p["bh"]))
    x = torch.nn.functional.one_hot(torch.from_numpy(ids), V).to(torch.float64)
    th0 = torch.from_numpy(h0.copy()).requires_grad_()
    t_out, t_hT = gru(x, th0)
    (t_out * torch.from_numpy(dout)).sum().add((t_hT * torch.from_numpy(dhT)).sum()).backward()

    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fm(out1), t_out.detach().numpy(), **tol)
    np.testing.assert_allclose(np.stack([hT0, hT1]), t_hT.detach().numpy(), **tol)
    for k, g in enumerate((g0, g1)):
        np.testing.assert_allclose(g.dWx, getattr(gru, f"weight_ih_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.dWh, getattr(gru, f"weight_hh_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.dbx, getattr(gru, f"bias_ih_l{k}").grad.numpy(), **tol)
        np.testing.assert_allclose(g.dbh, getattr(gru, f"bias_hh_l{k}").grad.numpy(), **tol)
    np.testing.assert_allclose(np.stack([g0.dh0, g1.dh0]), th0.grad.numpy(), **tol)


def test_input_gradient_matches_torch_gru():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    T, B, D, H = 6, 2, 4, 3
    x, h0, p = make_layer(rng, T=T, B=B, D=D, H=H, scale=0.7)
    mask = (rng.random(x.shape) > 0.3) / 0.7
    dout = rng.standard_normal((T, B, H))
    _, _, cache = forward_tm(x, h0, p, mask)
    g = backward_tm(dout, cache)
    gru = torch.nn.GRU(D, H, dtype=torch.float64)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(torch.from_numpy(p["Wx"].T.copy()))
        gru.weight_hh_l0.copy_(torch.from_numpy(p["Wh"].T.copy()))
        gru.bias_ih_l0.copy_(torch.from_numpy(p["bx"]))
        gru.bias_hh_l0.copy_(torch.from_numpy(p["bh"]))
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, _ = gru(tx * torch.from_numpy(mask), torch.from_numpy(h0[None].copy()))
    (t_out * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(g.dx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_stack_makes_every_layers_recurrent_product_in_one_call_with_the_same_numbers(B, dtype):
    """model.Stepper does the GRU layers' ah = [bh | Wh^T] [1; h] for all layers in one stacked
    product: the scores and states are exactly those of the layers each making their own, and
    forward's within rounding."""
    from charlstm.model import ModelConfig, State, Stepper, forward, init_params
    config = ModelConfig(9, 8, 3, 0.0, cell="gru")
    rng = np.random.default_rng(16)
    params = {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(dtype)
              for k, v in init_params(config, rng).items()}
    stacked, apart = Stepper(params, config, B), Stepper(params, config, B)
    apart.recurrent = None
    assert stacked.recurrent is not None
    assert stacked.recurrent[0].shape == (3, 3 * 8, 9) and np.shares_memory(stacked.recurrent[1], stacked.rows)
    h0 = (0.5 * rng.standard_normal((3, B, 8))).astype(dtype)
    for s in (stacked, apart):
        s.set_state(State(h0))
    ids = rng.integers(0, 9, (12, B))
    logits, final, _ = forward(params, config, ids, State(h0))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for t in range(12):
        a, b = stacked.step(ids[t]).copy(), apart.step(ids[t])
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, logits[t * B:(t + 1) * B], rtol=tol, atol=tol)
    np.testing.assert_array_equal(stacked.state().h, apart.state().h)
    np.testing.assert_allclose(stacked.state().h, final.h, rtol=tol, atol=tol)
