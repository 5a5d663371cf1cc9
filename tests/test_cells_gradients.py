"""Every gradient every registered cell's backward returns, against central differences in float64:
every parameter, the input and each part of the initial state, from a carried state and with
nonzero gradients arriving for the final state; vectors, a dropout mask and one-hot ids; one
step and many; the backward pass walking time in chunks cut anywhere."""

import numpy as np
import pytest

from cellcase import CELL_NAMES, INPUTS, backward_in_chunks, make_layer
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def check_every_gradient(layer, chunk_steps=None):
    """The gradients of sum(h_out * dh_out) + the sum over the final state's parts of
    part * dpart, as backward returns them, against central differences; none of them zero."""
    cell = layer.cell

    def loss():
        h_out, final, _ = layer.forward()
        return float(np.sum(h_out * layer.dh_out) + sum(np.sum(s * d) for s, d in zip(final, layer.dstate)))

    _, _, cache = layer.forward()
    if chunk_steps is None:
        grads = cell.backward(layer.dh_out, cache, layer.dstate)
    else:
        grads = backward_in_chunks(cell, layer.dh_out, cache, layer.dstate, chunk_steps)
    checks = {f"d{key}": (grads.params[key], array) for key, array in layer.params.items()}
    checks.update({f"d{part}0": (grad, array) for part, grad, array in zip(cell.state, grads.dstate, layer.state)})
    assert len(grads.dstate) == len(cell.state) and list(grads.params) == list(layer.params)
    if np.issubdtype(layer.x.dtype, np.integer):
        assert grads.dx is None
    else:
        checks["dx"] = (grads.dx, layer.x)
    for what, (analytic, array) in checks.items():
        assert analytic.shape == array.shape, what
        err = rel_error(analytic, numerical_gradient(loss, array))
        assert err < TOL, f"{cell.name} {what}: relative error {err:.2e}"
        assert np.abs(analytic).max() > 1e-3, f"{cell.name} {what}: a check of zeros checks nothing"
    return grads


@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_of_one_step(name):
    check_every_gradient(make_layer(name, np.random.default_rng(4), T=1, B=3, D=4, H=5, inputs="vectors"))


@pytest.mark.parametrize("D, H", [(3, 4), (7, 2), (2, 5)])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_of_a_sequence_whether_the_input_is_narrower_or_wider_than_the_state(name, D, H):
    """The LSTM, peephole and RNN kernels keep each step's input and state gradients in one
    buffer, overlapping: a state block covers less than one later input block when H < D,
    several when H > D."""
    check_every_gradient(make_layer(name, np.random.default_rng(5), T=7, B=2, D=D, H=H, inputs="vectors"))


@pytest.mark.parametrize("id_dtype", [np.uint8, np.uint16, np.intp])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_of_one_hot_ids_of_any_integer_type(name, id_dtype):
    check_every_gradient(make_layer(name, np.random.default_rng(6), T=4, B=3, D=5, H=3, inputs="ids",
                                    id_dtype=id_dtype))


@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_through_a_dropout_mask_on_the_input(name):
    """dx is the gradient for the unmasked input: zero where the mask dropped it."""
    layer = make_layer(name, np.random.default_rng(7), T=5, B=3, D=4, H=3, inputs="masked")
    grads = check_every_gradient(layer)
    assert np.any(layer.x_mask == 0) and np.all(grads.dx[layer.x_mask == 0] == 0)


@pytest.mark.parametrize("chunk_steps", [1, 2, 3])
@pytest.mark.parametrize("inputs", INPUTS)
@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_when_backward_walks_time_in_chunks(name, inputs, chunk_steps):
    """The gradients do not depend on where the chunks are cut, with a short last one (7 = 3+3+1)."""
    check_every_gradient(make_layer(name, np.random.default_rng(8), T=7, B=2, D=3, H=3, inputs=inputs),
                         chunk_steps=chunk_steps)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_gradients_with_only_the_final_state_upstream(name):
    """dh_out = 0: everything flows from the final state's gradients back through every step."""
    layer = make_layer(name, np.random.default_rng(10), T=5, B=2, D=3, H=3, inputs="vectors")
    check_every_gradient(layer._replace(dh_out=np.zeros_like(layer.dh_out)))
