"""charlstm.nn.cells.peephole: what is particular to the peephole LSTM: its record, and that with
its diagonal peepholes at zero (where init puts them) it is the plain LSTM, which still learns
them. What every cell keeps (the twin, the gradients, the workspace, the step, float32, ...) is
tested for all of them in test_cells*.py."""

import numpy as np

from charlstm.nn.cells import get_cell, lstm, peephole
from charlstm.nn.cells.peephole import CELL, PeepholeStep

PEEPHOLES = ("p_i", "p_f", "p_o")


def test_the_cell_is_registered_and_describes_itself():
    assert get_cell("peephole") is CELL and CELL.stepper is PeepholeStep
    assert CELL.state == ("h", "c") and CELL.quantities == ("h", "c", "i", "f", "g", "o")
    assert peephole.param_shapes(7, 4) == {"Wx": (7, 16), "Wh": (4, 16), "b": (16,),
                                           "p_i": (4,), "p_f": (4,), "p_o": (4,)}


def test_zero_peepholes_are_the_lstm():
    """Forward, final state and every gradient of the LSTM's, for vectors and ids; and the
    peepholes' gradients are not zero, so they leave zero as soon as training starts."""
    rng = np.random.default_rng(1)
    T, B, D, H = 7, 3, 4, 5
    params = {key: rng.standard_normal(shape) * 0.5 for key, shape in peephole.param_shapes(D, H).items()}
    params.update({key: np.zeros(H) for key in PEEPHOLES})
    plain = {key: params[key] for key in lstm.param_shapes(D, H)}
    state = (rng.standard_normal((B, H)) * 0.5, rng.standard_normal((B, H)) * 0.5)
    dout = rng.standard_normal((T, H, B))
    dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    for x in (rng.standard_normal((T, D, B)), rng.integers(0, D, size=(T, B))):
        out, final, cache = CELL.forward(x, state, params)
        ref_out, ref_final, ref_cache = lstm.CELL.forward(x, state, plain)
        np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
        for a, r in zip(final, ref_final):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
        g = CELL.backward(dout, cache, dstate)
        ref = lstm.CELL.backward(dout, ref_cache, dstate)
        assert (g.dx is None) == (ref.dx is None)
        if ref.dx is not None:
            np.testing.assert_allclose(g.dx, ref.dx, rtol=1e-12, atol=1e-12)
        for a, r in zip(g.dstate, ref.dstate):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
        for key in plain:
            np.testing.assert_allclose(g.params[key], ref.params[key], rtol=1e-12, atol=1e-12, err_msg=key)
        for key in PEEPHOLES:
            assert np.abs(g.params[key]).max() > 1e-3, key


def test_init_is_the_lstms_with_zero_peepholes():
    D, H = 6, 4
    params = peephole.init(D, H, np.random.default_rng(3), one_hot=True)
    ref = lstm.init(D, H, np.random.default_rng(3), one_hot=True)
    assert list(params) == list(ref) + list(PEEPHOLES)
    for key in ref:
        np.testing.assert_array_equal(params[key], ref[key])
    for key in PEEPHOLES:
        np.testing.assert_array_equal(params[key], np.zeros(H))
