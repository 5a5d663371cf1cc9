"""Every registered cell's decoding step (Cell.stepper), fed one symbol or vector at a time through
the caller's rows [x; 1; h], gives forward's outputs and final state; its state is read as fresh
arrays and can be put back, to replay the same steps."""

import numpy as np
import pytest

from cellcase import CELL_NAMES, make_layer


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("one_hot", [True, False], ids=["ids", "vectors"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_step_equals_forward(name, one_hot, dtype):
    T, B, D, H = 6, 3, 5, 4
    layer = make_layer(name, np.random.default_rng(14), T, B, D, H, inputs="ids" if one_hot else "vectors",
                       dtype=dtype)
    cell = layer.cell
    out, final, _ = layer.forward()
    Dp = 0 if one_hot else D
    rows = np.zeros((Dp + 1 + H, B), dtype=dtype)
    rows[Dp] = 1                                    # the bias input
    step = cell.stepper(layer.params, rows, one_hot)
    step.set_state(layer.state)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)

    def advance(t):
        if one_hot:
            step(layer.x[t])
        else:
            rows[:D] = layer.x[t]
            step()
        np.testing.assert_allclose(rows[Dp + 1:], out[t], **tol, err_msg=f"step {t}: h lives in the rows")
        np.testing.assert_array_equal(rows[Dp], 1)

    saved = None
    for t in range(T):
        advance(t)
        state = step.get_state()
        np.testing.assert_allclose(state[0], out[t].T, **tol)
        if t == 2:
            saved = state
    state = step.get_state()
    assert len(state) == len(cell.state)
    for part, value, expected in zip(cell.state, state, final):
        assert value.shape == (B, H) and value.dtype == dtype, part
        assert not np.shares_memory(value, rows), f"{part}: get_state gives fresh arrays"
        np.testing.assert_allclose(value, expected, **tol, err_msg=part)
    # back to the state after step 2: the same steps again give the same outputs and state
    step.set_state(saved)
    for a, b in zip(step.get_state(), saved):
        np.testing.assert_array_equal(a, b)
    for t in range(3, T):
        advance(t)
    for part, value, expected in zip(cell.state, step.get_state(), final):
        np.testing.assert_allclose(value, expected, **tol, err_msg=part)
