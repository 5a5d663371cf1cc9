"""charlstm.nn.cells.lstm: what is particular to the LSTM. What every cell keeps (the twin, the
gradients, the workspace, the step, float32, ...) is tested for all of them in test_cells*.py."""

import numpy as np
import pytest

from charlstm.nn.cells import get_cell
from charlstm.nn.cells.lstm import CELL, LSTMStep, init, param_shapes
from charlstm.nn.workspace import Workspace


def test_the_cell_is_registered_and_describes_itself():
    assert get_cell("lstm") is CELL and CELL.stepper is LSTMStep
    assert CELL.state == ("h", "c") and CELL.quantities == ("h", "c", "i", "f", "g", "o")
    assert param_shapes(7, 4) == {"Wx": (7, 16), "Wh": (4, 16), "b": (16,)}


@pytest.mark.parametrize("one_hot", [True, False])
def test_init_starts_the_forget_gate_open(one_hot):
    """Biases zero but the forget gate's, at 1, so that the cell remembers from the start; Wh
    uniform in +-1/sqrt(H), drawn after Wx."""
    D, H = 9, 16
    p = init(D, H, np.random.default_rng(0), one_hot)
    expected_b = np.zeros(4 * H)
    expected_b[H:2 * H] = 1.0                   # blocks i, f, g, o
    np.testing.assert_array_equal(p["b"], expected_b)
    rng = np.random.default_rng(0)
    rng.uniform(size=(D, 4 * H))                # Wx
    bound = 1.0 / np.sqrt(H)
    np.testing.assert_array_equal(p["Wh"], rng.uniform(-bound, bound, (H, 4 * H)))


def test_dx_lives_in_the_dx_workspace_feature_first_and_comes_back_in_time_order():
    """With a workspace, a layer's dx is the dx workspace's buffer of T*D*B, written feature first
    (one product per chunk of steps) and handed back as a (T, D, B) view of it, in time order."""
    rng = np.random.default_rng(13)
    T, B, D, H = 6, 3, 5, 4
    params = init(D, H, rng, one_hot=False)
    state = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    x, ws = rng.standard_normal((T, D, B)), Workspace()
    out, _, cache = CELL.forward(x, state, params, workspace=ws.part("f"))
    dout = rng.standard_normal(out.shape)
    dx_ws = ws.part("dx")
    g = CELL.backward(dout, cache, workspace=ws.part("b"), dx_workspace=dx_ws)
    buffer = dx_ws.empty("dx", (1,), np.float64).base
    assert buffer.size == T * D * B and np.shares_memory(g.dx, buffer) and g.dx.shape == (T, D, B)
    _, _, fresh_cache = CELL.forward(x, state, params)
    np.testing.assert_allclose(g.dx, CELL.backward(dout, fresh_cache).dx, rtol=1e-12, atol=1e-14)
