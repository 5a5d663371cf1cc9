"""charlstm.nn.cells.reference: the textbook step of every cell against its equations and against
central differences (float64), for vector and ids input; and the sequence helpers' backward against
central differences. Every fast kernel is held equal to its twin in test_cells.py."""

import numpy as np
import pytest

from charlstm.nn.cells.reference import (REFERENCE_CELLS, reference_backward, reference_forward,
                                         reference_trace)
from gradcheck import numerical_gradient, rel_error

CELL_NAMES = sorted(REFERENCE_CELLS)
TOL = 1e-7


def make_params(name, D, H, rng, scale=0.5):
    return {key: rng.standard_normal(shape) * scale
            for key, shape in REFERENCE_CELLS[name].param_shapes(D, H).items()}


def make_input(rng, shape_ids, D, ids):
    """Integer ids of shape `shape_ids` (with repeats, so that dWx must add up rows), or
    standard normal vectors with D features on the axis after the first (B, D) or (T, D, B)."""
    if ids:
        x = rng.integers(0, D, size=shape_ids)
        x.reshape(-1)[:2] = 1                    # at least one repeated id
        return x
    if len(shape_ids) == 1:
        return rng.standard_normal((shape_ids[0], D))
    T, B = shape_ids
    return rng.standard_normal((T, D, B))


def make_state(name, B, H, rng):
    return tuple(rng.standard_normal((B, H)) * 0.5 for _ in REFERENCE_CELLS[name].state)


def check_gradient(name, analytic, array, loss):
    """The analytic gradient matches central differences, has the array's shape, and is not zero."""
    assert analytic.shape == array.shape, name
    numeric = numerical_gradient(loss, array)
    err = rel_error(analytic, numeric)
    assert err < TOL, f"{name}: relative error {err:.2e}"
    assert np.abs(analytic).max() > 1e-3, f"{name}: gradient is (almost) zero, the check proves little"


# --- one step -------------------------------------------------------------------------------------

def sig(z):
    return 1 / (1 + np.exp(-z))


def equations(name, x, state, p):
    """The equations of the module docstring again, written gate by gate, independently of it."""
    H = p["Wh"].shape[0]
    if name in ("lstm", "peephole"):
        h, c = state
        z = x @ p["Wx"] + h @ p["Wh"] + p["b"]
        block = lambda k: z[:, k * H:(k + 1) * H]   # noqa: E731
        peep = name == "peephole"
        i = sig(block(0) + (p["p_i"] * c if peep else 0))
        f = sig(block(1) + (p["p_f"] * c if peep else 0))
        g = np.tanh(block(2))
        c_new = f * c + i * g
        o = sig(block(3) + (p["p_o"] * c_new if peep else 0))
        return {"h": o * np.tanh(c_new), "c": c_new, "i": i, "f": f, "g": g, "o": o}
    if name == "gru":
        (h,) = state
        gx, gh = x @ p["Wx"] + p["bx"], h @ p["Wh"] + p["bh"]
        r = sig(gx[:, :H] + gh[:, :H])
        z = sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        return {"h": (1 - z) * n + z * h, "r": r, "z": z, "n": n}
    (h,) = state
    return {"h": np.tanh(x @ p["Wx"] + h @ p["Wh"] + p["b"])}


@pytest.mark.parametrize("name", CELL_NAMES)
def test_step_forward_is_the_equations(name):
    rng = np.random.default_rng(0)
    B, D, H = 3, 4, 3
    x, state, params = rng.standard_normal((B, D)), make_state(name, B, H, rng), make_params(name, D, H, rng)
    cell = REFERENCE_CELLS[name]
    *new_state, cache = cell.step_forward(x, *state, **params)
    expected = equations(name, x, state, params)
    for part, value in zip(cell.state, new_state):
        np.testing.assert_allclose(value, expected[part], rtol=1e-13, atol=1e-15)
    for q in cell.quantities:
        np.testing.assert_allclose(getattr(cache, q), expected[q], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("ids", [False, True], ids=["vectors", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_step_backward_matches_central_differences(name, ids):
    rng = np.random.default_rng(1)
    B, D, H = 3, 4, 3
    cell = REFERENCE_CELLS[name]
    x = make_input(rng, (B,), D, ids)
    state, params = make_state(name, B, H, rng), make_params(name, D, H, rng)
    upstream = [rng.standard_normal((B, H)) for _ in cell.state]

    def loss():
        *new_state, _ = cell.step_forward(x, *state, **params)
        return float(sum(np.sum(s * u) for s, u in zip(new_state, upstream)))

    *_, cache = cell.step_forward(x, *state, **params)
    dx, *dstate, grads = cell.step_backward(*upstream, cache)
    if ids:
        assert dx is None
    else:
        check_gradient("dx", dx, x, loss)
    for part, prev, grad in zip(cell.state, state, dstate):
        check_gradient(f"d{part}_prev", grad, prev, loss)
    assert grads.keys() == params.keys()
    for key, array in params.items():
        check_gradient(f"d{key}", grads[key], array, loss)
    if ids:
        unseen = sorted(set(range(D)) - set(x.tolist()))
        assert np.all(grads["Wx"][unseen] == 0)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_step_with_ids_is_the_step_with_one_hot_rows(name):
    rng = np.random.default_rng(2)
    B, D, H = 3, 5, 2
    cell = REFERENCE_CELLS[name]
    ids = np.array([3, 1, 3])                     # a repeated id: its rows of dWx must add
    one_hot = np.eye(D)[ids]
    state, params = make_state(name, B, H, rng), make_params(name, D, H, rng)
    upstream = [rng.standard_normal((B, H)) for _ in cell.state]
    *out_ids, cache_ids = cell.step_forward(ids, *state, **params)
    *out_vec, cache_vec = cell.step_forward(one_hot, *state, **params)
    for a, b in zip(out_ids, out_vec):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    dx_ids, *dstate_ids, grads_ids = cell.step_backward(*upstream, cache_ids)
    dx_vec, *dstate_vec, grads_vec = cell.step_backward(*upstream, cache_vec)
    assert dx_ids is None and dx_vec.shape == (B, D)
    for a, b in zip(dstate_ids, dstate_vec):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-15)
    for key in params:
        np.testing.assert_allclose(grads_ids[key], grads_vec[key], rtol=1e-13, atol=1e-15)


def test_the_gradient_check_catches_a_gate_mixed_up():
    """The bug of a much-copied tutorial (the input gate's bias gradient taking the forget
    gate's delta) is what these checks exist for: swapping two blocks of db fails them."""
    rng = np.random.default_rng(3)
    B, D, H = 3, 4, 3
    x, state, params = rng.standard_normal((B, D)), make_state("lstm", B, H, rng), make_params("lstm", D, H, rng)
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    cell = REFERENCE_CELLS["lstm"]

    def loss():
        h, c, _ = cell.step_forward(x, *state, **params)
        return float(np.sum(h * dh) + np.sum(c * dc))

    *_, grads = cell.step_backward(dh, dc, cell.step_forward(x, *state, **params)[-1])
    wrong = grads["b"].copy()
    wrong[:H] = grads["b"][H:2 * H]
    numeric = numerical_gradient(loss, params["b"])
    assert rel_error(grads["b"], numeric) < TOL
    assert rel_error(wrong, numeric) > 1e-3


# --- sequences ------------------------------------------------------------------------------------

def sequence_case(name, ids, rng, T=4, B=2, D=3, H=3):
    x = make_input(rng, (T, B), D, ids)
    x_mask = None if ids else (rng.random((T, D, B)) > 0.3) / 0.7
    state, params = make_state(name, B, H, rng), make_params(name, D, H, rng)
    dh_out = rng.standard_normal((T, H, B))
    dstate = tuple(rng.standard_normal((B, H)) for _ in state)
    return x, x_mask, state, params, dh_out, dstate


@pytest.mark.parametrize("ids", [False, True], ids=["vectors+mask", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_sequence_backward_matches_central_differences(name, ids):
    rng = np.random.default_rng(4)
    x, x_mask, state, params, dh_out, dstate = sequence_case(name, ids, rng)

    def loss():
        h_out, final, _ = reference_forward(name, x, state, params, x_mask)
        return float(np.sum(h_out * dh_out) + sum(np.sum(s * d) for s, d in zip(final, dstate)))

    _, _, cache = reference_forward(name, x, state, params, x_mask)
    grads = reference_backward(name, dh_out, cache, dstate)
    if ids:
        assert grads.dx is None
    else:
        check_gradient("dx", grads.dx, x, loss)
        assert np.all(grads.dx[x_mask == 0] == 0) and np.any(x_mask == 0)
    for part, initial, grad in zip(REFERENCE_CELLS[name].state, state, grads.dstate):
        check_gradient(f"d{part}0", grad, initial, loss)
    for key, array in params.items():
        check_gradient(f"d{key}", grads.params[key], array, loss)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_sequence_helpers_speak_the_fast_kernels_layout(name):
    """h_out (T, H, B), final state fresh (B, H) parts, a trace of (T, B, H) per quantity whose
    h is h_out and whose last step is the final state; dstate None means zeros."""
    rng = np.random.default_rng(5)
    T, B, D, H = 5, 3, 4, 2
    x, x_mask, state, params, dh_out, _ = sequence_case(name, False, rng, T=T, B=B, D=D, H=H)
    h_out, final, cache = reference_forward(name, x, state, params, x_mask)
    cell = REFERENCE_CELLS[name]
    assert h_out.shape == (T, H, B) and len(final) == len(cell.state)
    trace = reference_trace(name, cache)
    assert tuple(trace) == cell.quantities
    assert all(value.shape == (T, B, H) for value in trace.values())
    np.testing.assert_array_equal(trace["h"], h_out.transpose(0, 2, 1))
    for part, value in zip(cell.state, final):
        np.testing.assert_array_equal(value, trace[part][-1])
    masked_input, _, _ = reference_forward(name, x * x_mask, state, params)
    np.testing.assert_array_equal(masked_input, h_out)
    no_dstate = reference_backward(name, dh_out, cache)
    zero_dstate = reference_backward(name, dh_out, cache, tuple(np.zeros((B, H)) for _ in state))
    np.testing.assert_array_equal(no_dstate.dx, zero_dstate.dx)
    for key in params:
        np.testing.assert_array_equal(no_dstate.params[key], zero_dstate.params[key])
    with pytest.raises(ValueError):
        reference_forward(name, rng.integers(0, D, (T, B)), state, params, x_mask)
