"""charlstm.nn.cells.peephole: the peephole LSTM layer, forward against a plain per-step loop, the
plain LSTM when the peepholes are zero, backward against central differences in float64 (vector
and ids input, a dropout mask, final-state gradients, chunked backward), workspaces reused across
ragged chunks, the decoding step, float32 runs, and the cell record."""

import numpy as np
import pytest

from charlstm.nn.cells import get_cell, lstm, peephole
from charlstm.nn.cells.peephole import PeepholeCache, PeepholeGrads, PeepholeStep, peephole_backward, peephole_forward
from charlstm.nn.workspace import Workspace
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6
PARAMS = ("Wx", "Wh", "b", "p_i", "p_f", "p_o")


# The layer works on feature-major sequences, (T, D, B); these tests speak time-major, (T, B, D),
# like the equations, and convert at the boundary.
def fm(a):
    return a.transpose(0, 2, 1)


def sigmoid(z):
    return np.exp(-np.logaddexp(0.0, -z))   # 1 / (1 + exp(-z)) without overflow


def reference_forward(x, h0, c0, Wx, Wh, b, p_i, p_f, p_o):
    """The equations of the module docstring, one step at a time, in the public gate order.
    x (T, B, D). Returns the outputs (T, B, H), the final h and c, and each step's gates."""
    H = Wh.shape[0]
    h, c, outs, gates = h0, c0, [], {q: [] for q in "ifgo"}
    for t in range(x.shape[0]):
        z = x[t] @ Wx + h @ Wh + b
        i = sigmoid(z[:, :H] + p_i * c)
        f = sigmoid(z[:, H:2 * H] + p_f * c)
        g = np.tanh(z[:, 2 * H:3 * H])
        c = f * c + i * g
        o = sigmoid(z[:, 3 * H:] + p_o * c)
        h = o * np.tanh(c)
        outs.append(h)
        for q, v in zip("ifgo", (i, f, g, o)):
            gates[q].append(v)
    return np.stack(outs), h, c, {q: np.stack(v) for q, v in gates.items()}


def make_layer(rng, T, B, D, H, dtype=np.float64, scale=0.5):
    """x (T, B, D), h0, c0 (B, H) and the parameters, peepholes included and not small."""
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    c0 = rng.standard_normal((B, H)) * 0.5
    params = {"Wx": rng.standard_normal((D, 4 * H)) * scale, "Wh": rng.standard_normal((H, 4 * H)) * scale,
              "b": rng.standard_normal(4 * H) * scale}
    params.update({key: rng.standard_normal(H) * 0.7 for key in ("p_i", "p_f", "p_o")})
    cast = lambda a: a.astype(dtype)  # noqa: E731
    return cast(x), cast(h0), cast(c0), {k: cast(v) for k, v in params.items()}


def run_forward(x, h0, c0, params, x_mask=None, workspace=None):
    """Forward in time-major terms: x (T, B, D) or ids (T, B); x_mask (T, B, D) or None."""
    ids = np.issubdtype(x.dtype, np.integer)
    out, state, cache = peephole_forward(x if ids else fm(x), h0, c0, *(params[k] for k in PARAMS),
                                         workspace=workspace, x_mask=None if x_mask is None else fm(x_mask))
    return fm(out), state, cache


def scalar_loss(x, h0, c0, params, dout, dhT, dcT, x_mask=None):
    """A scalar whose gradients are exactly what peephole_backward computes for (dout, dhT, dcT)."""
    out, (hT, cT), _ = run_forward(x, h0, c0, params, x_mask)
    return float(np.sum(out * dout) + np.sum(hT * dhT) + np.sum(cT * dcT))


def check_all_grads(x, h0, c0, params, dout, dhT, dcT, x_mask=None, chunk_steps=None):
    _, _, cache = run_forward(x, h0, c0, params, x_mask)
    grads = peephole_backward(fm(dout), cache, dhT, dcT, chunk_steps=chunk_steps)
    f = lambda: scalar_loss(x, h0, c0, params, dout, dhT, dcT, x_mask)  # noqa: E731
    named = {"d" + k: v for k, v in params.items()}
    named.update(dh0=h0, dc0=c0)
    if np.issubdtype(x.dtype, np.floating):
        named["dx"] = x
    else:
        assert grads.dx is None
    for name, array in named.items():
        analytic = getattr(grads, name)
        if name == "dx":
            analytic = fm(analytic)
        assert analytic.shape == array.shape, name
        err = rel_error(analytic, numerical_gradient(f, array))
        assert err < TOL, f"{name}: relative error {err:.2e}"
        assert np.abs(analytic).max() > 1e-3, f"{name}: a check of zeros checks nothing"
    return grads


@pytest.mark.parametrize("ids_input", [False, True])
def test_forward_matches_the_equations(ids_input):
    rng = np.random.default_rng(0)
    T, B, D, H = 6, 3, 5, 4
    x, h0, c0, params = make_layer(rng, T, B, D, H)
    if ids_input:
        ids = rng.integers(0, D, size=(T, B))
        x_in, x_ref = ids, np.eye(D)[ids]
    else:
        x_in = x_ref = x
    out, (hT, cT), cache = run_forward(x_in, h0, c0, params)
    ref_out, ref_h, ref_c, ref_gates = reference_forward(x_ref, h0, c0, *(params[k] for k in PARAMS))
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cT, ref_c, rtol=1e-12, atol=1e-14)
    assert isinstance(cache, PeepholeCache)
    # the cache (and so the trace) reads in the public order and time-major, like the LSTM's
    traced = peephole.trace(cache)
    assert set(traced) == set(peephole.CELL.quantities)
    for q in "ifgo":
        np.testing.assert_allclose(traced[q], ref_gates[q], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(traced["h"], ref_out, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(cache.cell()[0], c0)
    np.testing.assert_allclose(traced["c"][-1], ref_c, rtol=1e-12, atol=1e-14)


def test_zero_peepholes_are_the_lstm():
    rng = np.random.default_rng(1)
    T, B, D, H = 7, 3, 4, 5
    x, h0, c0, params = make_layer(rng, T, B, D, H)
    for key in ("p_i", "p_f", "p_o"):
        params[key] = np.zeros(H)
    dout = rng.standard_normal((T, H, B))
    dhT, dcT = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    for x_in in (fm(x), rng.integers(0, D, size=(T, B))):
        out, state, cache = peephole_forward(x_in, h0, c0, *(params[k] for k in PARAMS))
        ref_out, ref_state, ref_cache = lstm.lstm_forward(x_in, h0, c0, params["Wx"], params["Wh"], params["b"])
        np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
        for a, r in zip(state, ref_state):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
        g = peephole_backward(dout, cache, dhT, dcT)
        ref = lstm.lstm_backward(dout, ref_cache, dhT, dcT)
        for name in lstm.LSTMGrads._fields:
            if getattr(ref, name) is None:          # dx of an ids input
                assert getattr(g, name) is None
            else:
                np.testing.assert_allclose(getattr(g, name), getattr(ref, name), rtol=1e-12, atol=1e-12)
        assert np.abs(g.dp_i).max() > 1e-3          # zero peepholes still learn


def test_init_is_the_lstms_with_zero_peepholes():
    D, H = 6, 4
    params = peephole.init(D, H, np.random.default_rng(3), one_hot=True)
    ref = lstm.init(D, H, np.random.default_rng(3), one_hot=True)
    assert list(params) == list(peephole.param_shapes(D, H)) == list(PARAMS)
    for key, shape in peephole.param_shapes(D, H).items():
        assert params[key].shape == shape and params[key].dtype == np.float64, key
    for key in ref:
        np.testing.assert_array_equal(params[key], ref[key])
    for key in ("p_i", "p_f", "p_o"):
        assert np.all(params[key] == 0)


@pytest.mark.parametrize("chunk_steps", [1, 2, 3, None])
@pytest.mark.parametrize("kind", ["vector", "ids", "masked"])
def test_gradients_of_everything(kind, chunk_steps):
    """Every input and parameter against central differences, with nonzero final-state
    gradients, whatever the chunks of the backward pass (7 = 3 + 3 + 1 has a short one)."""
    rng = np.random.default_rng(4)
    T, B, D, H = 7, 2, 3, 4
    x, h0, c0, params = make_layer(rng, T, B, D, H)
    x_mask = None
    if kind == "ids":
        x = rng.integers(0, D, size=(T, B))
    elif kind == "masked":
        x_mask = (rng.random(x.shape) > 0.3) / 0.7
    dout = rng.standard_normal((T, B, H))
    dhT, dcT = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    grads = check_all_grads(x, h0, c0, params, dout, dhT, dcT, x_mask=x_mask, chunk_steps=chunk_steps)
    if x_mask is not None:
        assert np.all(fm(grads.dx)[x_mask == 0] == 0)


def test_gradients_with_only_final_state_upstream():
    rng = np.random.default_rng(5)
    x, h0, c0, params = make_layer(rng, T=5, B=2, D=3, H=3)
    dhT, dcT = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    check_all_grads(x, h0, c0, params, np.zeros((5, 2, 3)), dhT, dcT)


def test_forward_and_backward_leave_their_inputs_alone():
    rng = np.random.default_rng(6)
    x, h0, c0, params = make_layer(rng, T=4, B=2, D=3, H=3)
    arrays = [x, h0, c0, *params.values()]
    copies = [a.copy() for a in arrays]
    out, _, cache = run_forward(x, h0, c0, params)
    dout = rng.standard_normal((4, 3, 2))
    g1 = peephole_backward(dout, cache)
    g2 = peephole_backward(dout, cache)            # the cache is not consumed
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("ids_input", [False, True])
def test_workspace_reused_across_ragged_chunks_equals_fresh_arrays(ids_input):
    """A long chunk then a shorter one through the same workspace (as a training run's last,
    ragged chunk does), with several backward chunks each: the same numbers as fresh arrays."""
    rng = np.random.default_rng(7)
    B, D, H = 64, 5, 3
    params = make_layer(rng, 1, B, D, H)[3]
    ws = Workspace()
    for T in (50, 21):
        assert lstm.backward_chunk_steps(T, B) < T
        x, h0, c0, _ = make_layer(rng, T, B, D, H)
        x = rng.integers(0, D, size=(T, B)) if ids_input else fm(x).copy()
        mask = None if ids_input else (rng.random(x.shape) > 0.2) / 0.8
        dout = rng.standard_normal((T, H, B))
        dhT, dcT = rng.standard_normal((B, H)), rng.standard_normal((B, H))
        results = []
        for part in (lambda name: ws.part(name), lambda name: None):
            out, state, cache = peephole_forward(x, h0, c0, *(params[k] for k in PARAMS),
                                                 workspace=part("peephole.0"), x_mask=mask)
            g = peephole_backward(dout, cache, dhT, dcT, workspace=part("peephole.0"), dx_workspace=part("dx.0"))
            results.append([out.copy(), *state, *(None if a is None else a.copy() for a in g)])
        for name, a, b in zip(["out", "hT", "cT", *PeepholeGrads._fields], *results):
            if b is None:
                assert a is None, name
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("one_hot", [False, True])
def test_step_equals_forward(one_hot, dtype):
    """The decoding step, fed one symbol at a time, gives forward's outputs and state; its state
    can be read and put back."""
    rng = np.random.default_rng(8)
    T, B, D, H = 6, 3, 5, 4
    x, h0, c0, params = make_layer(rng, T, B, D, H, dtype=dtype)
    ids = rng.integers(0, D, size=(T, B))
    x_in = ids if one_hot else fm(x)
    out, (hT, cT), _ = peephole_forward(x_in, h0, c0, *(params[k] for k in PARAMS))
    rows = np.zeros(((0 if one_hot else D) + 1 + H, B), dtype=dtype)
    rows[rows.shape[0] - H - 1] = 1                 # the bias input
    step = peephole.CELL.stepper(params, rows, one_hot)
    assert isinstance(step, PeepholeStep)
    step.set_state((h0, c0))
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)

    def advance(t):
        if not one_hot:
            rows[:D] = x_in[t]
        step(ids[t])

    saved = None
    for t in range(T):
        advance(t)
        np.testing.assert_allclose(rows[-H:], out[t], **tol)
        if t == 2:
            saved = step.get_state()
    h, c = step.get_state()
    assert h.shape == (B, H) and h.dtype == dtype
    np.testing.assert_allclose(h, hT, **tol)
    np.testing.assert_allclose(c, cT, **tol)
    # back to the state after step 2: the same steps again give the same outputs
    step.set_state(saved)
    np.testing.assert_array_equal(step.get_state()[1], saved[1])
    for t in range(3, T):
        advance(t)
        np.testing.assert_allclose(rows[-H:], out[t], **tol)
    np.testing.assert_allclose(step.get_state()[1], cT, **tol)


@pytest.mark.parametrize("ids_input", [False, True])
def test_float32_stays_float32(ids_input):
    rng = np.random.default_rng(9)
    T, B, D, H = 6, 3, 5, 4
    x64, h0, c0, params64 = make_layer(rng, T, B, D, H)
    if ids_input:
        x64 = rng.integers(0, D, size=(T, B))
    x32 = x64 if ids_input else x64.astype(np.float32)
    params32 = {k: v.astype(np.float32) for k, v in params64.items()}
    h32, c32 = h0.astype(np.float32), c0.astype(np.float32)
    out, (hT, cT), cache = run_forward(x32, h32, c32, params32)
    for name, a in [("out", out), ("hT", hT), ("cT", cT), ("gates", cache.gates), ("c", cache.c),
                    ("xh", cache.xh), ("tanh_c", cache.tanh_c)]:
        assert a.dtype == np.float32, name
    dout = rng.standard_normal((T, H, B)).astype(np.float32)
    dhT, dcT = rng.standard_normal((B, H)), rng.standard_normal((B, H))      # float64 upstream
    grads = peephole_backward(dout, cache, dhT, dcT)
    for name in PeepholeGrads._fields:
        a = getattr(grads, name)
        assert (a is None) == (ids_input and name == "dx"), name
        assert a is None or a.dtype == np.float32, name
    # and the float32 numbers are the float64 numbers, to float32 precision
    out64, (_, cT64), cache64 = run_forward(x64, h0, c0, params64)
    grads64 = peephole_backward(dout.astype(np.float64), cache64, dhT, dcT)
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cT, cT64, rtol=1e-4, atol=1e-5)
    for name in PeepholeGrads._fields:
        if getattr(grads, name) is not None:
            assert rel_error(getattr(grads, name), getattr(grads64, name)) < 1e-5, name


def test_cell_record():
    """The registered record: names, shapes, and backward's keys the parameters' keys."""
    cell = get_cell("peephole")
    assert cell is peephole.CELL
    assert cell.state == ("h", "c") and cell.quantities == ("h", "c", "i", "f", "g", "o")
    rng = np.random.default_rng(10)
    T, B, D, H = 4, 2, 3, 5
    params = cell.init(D, H, rng, one_hot=False)
    x = rng.standard_normal((T, D, B))
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    out, final, cache = cell.forward(x, state, params)
    assert out.shape == (T, H, B) and [s.shape for s in final] == [(B, H)] * 2
    g = cell.backward(np.ones_like(out), cache, dstate=final)
    assert g.dx.shape == (T, D, B) and [s.shape for s in g.dstate] == [(B, H)] * 2
    assert list(g.params) == list(cell.param_shapes(D, H))
    for key, shape in cell.param_shapes(D, H).items():
        assert g.params[key].shape == shape, key
    with pytest.raises(ValueError):
        cell.forward(rng.integers(0, D, (T, B)), state, params, x_mask=np.ones((T, D, B)))
