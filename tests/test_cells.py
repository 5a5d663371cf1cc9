"""The contract every registered cell keeps (nn/cells/__init__.py), through the Cell record that the
layers above use, in float64 against its textbook twin (cells/reference.py): the record and a fresh
layer; one layer, and a stack of two over two chunks (the state carried, dropout on the inputs),
with and without a Workspace; the backward pass cut into chunks; ids as one-hot vectors; the input
mask; float32; saturation; and the arguments left alone. The gradients against central
differences are in test_cells_gradients.py, the decoding step in test_cells_step.py; what is
particular to one cell is in its own file (test_lstm.py, ...)."""

import numpy as np
import pytest

from cellcase import (CELL_NAMES, KERNEL_BACKWARD, assert_same, assert_same_grads, dropout_mask,
                      make_layer)
from charlstm.nn.cells import CELLS, get_cell, lstm
from charlstm.nn.cells.reference import (REFERENCE_CELLS, reference_backward, reference_forward,
                                         reference_trace)
from charlstm.nn.workspace import Workspace
from gradcheck import rel_error

CLOSE = dict(rtol=1e-12, atol=1e-13)


# --- the record and a fresh layer -------------------------------------------------------------------

@pytest.mark.parametrize("name", CELL_NAMES)
def test_every_cell_is_registered_by_name_and_has_a_twin_with_its_layout(name):
    cell, ref = CELLS[name], REFERENCE_CELLS.get(name)
    assert get_cell(name) is cell and cell.name == name
    assert ref is not None, f"cell {name!r} has no textbook twin in cells/reference.py"
    assert name in KERNEL_BACKWARD, f"cell {name!r}: tell tests/cellcase.py its kernel's backward"
    assert cell.state == ref.state and cell.state[0] == "h"
    assert cell.quantities == ref.quantities and cell.quantities[0] == "h"
    assert set(cell.state) <= set(cell.quantities)
    assert list(cell.param_shapes(5, 3).items()) == list(ref.param_shapes(5, 3).items())


@pytest.mark.parametrize("one_hot", [True, False], ids=["one-hot", "vector"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_a_fresh_layer_is_float64_seeded_and_draws_wx_first_within_its_bound(name, one_hot):
    """Wx is uniform in +-1 below a one-hot input (a row of Wx is the whole pre-activation) and in
    +-1/sqrt(D) below a vector of D inputs (an embedding, or the layer below when D = H); Wx is the
    rng's first draw, so a seed means the same layer."""
    cell = CELLS[name]
    D, H = 9, 16
    params = cell.init(D, H, np.random.default_rng(0), one_hot)
    assert list(params) == list(cell.param_shapes(D, H))
    assert {key: value.shape for key, value in params.items()} == cell.param_shapes(D, H)
    assert all(value.dtype == np.float64 for value in params.values())
    again = cell.init(D, H, np.random.default_rng(0), one_hot)
    for key in params:
        np.testing.assert_array_equal(params[key], again[key], err_msg=key)
    bound = 1.0 if one_hot else 1.0 / np.sqrt(D)
    wx = np.random.default_rng(0).uniform(-bound, bound, params["Wx"].shape)
    np.testing.assert_array_equal(params["Wx"], wx)


# --- one layer, and a stack, against the twin -------------------------------------------------------

@pytest.mark.parametrize("use_workspace", [False, True], ids=["fresh", "workspace"])
@pytest.mark.parametrize("inputs", ["masked", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_one_layer_equals_the_reference(name, inputs, use_workspace):
    """Forward, final state, trace and every gradient, from a carried state and with a nonzero
    final-state gradient; the contract's shapes and layout (feature-major sequences, (B, H)
    states, a trace of (T, B, H) per quantity whose h is h_out and whose last step the final
    state); dx zero where the mask dropped the input."""
    T, B, D, H = 5, 3, 4, 3
    layer = make_layer(name, np.random.default_rng(1), T, B, D, H, inputs=inputs)
    cell = layer.cell
    ws = Workspace() if use_workspace else None

    h_ref, final_ref, cache_ref = reference_forward(name, layer.x, layer.state, layer.params, layer.x_mask)
    h_fast, final_fast, cache_fast = layer.forward(ws)
    assert h_fast.shape == (T, H, B)
    assert_same(h_fast, h_ref, "h_out", **CLOSE)
    assert len(final_fast) == len(cell.state)
    for k, (a, b) in enumerate(zip(final_fast, final_ref)):
        assert_same(a, b, f"final_state[{k}]", **CLOSE)
        assert not np.shares_memory(a, h_fast), "the final state is fresh, not a view into the cache"
    trace_fast, trace_ref = cell.trace(cache_fast), reference_trace(name, cache_ref)
    assert tuple(trace_fast) == cell.quantities
    for q in trace_ref:
        assert_same(trace_fast[q], trace_ref[q], f"trace {q}", **CLOSE)
    np.testing.assert_array_equal(trace_fast["h"], h_fast.transpose(0, 2, 1))
    for part, value in zip(cell.state, final_fast):
        np.testing.assert_array_equal(trace_fast[part][-1], value)

    g_ref = reference_backward(name, layer.dh_out, cache_ref, layer.dstate)
    g_fast = cell.backward(layer.dh_out, cache_fast, layer.dstate, workspace=ws,
                           dx_workspace=None if ws is None else ws.part("dx"))
    assert_same_grads(g_fast, g_ref, "backward", **CLOSE)
    assert list(g_fast.params) == list(cell.param_shapes(D, H))
    if inputs == "masked":
        assert np.any(layer.x_mask == 0) and np.all(g_fast.dx[layer.x_mask == 0] == 0)


def fast_stack(cell, x, x_masks, state, params, dh_top, ws):
    """A two-layer stack through the Cell record, the way the model's stack drives it: each layer
    reads the one below through a dropout mask; with a workspace, one part per layer, and the
    layers' dx in two buffers used in turn (layer l writes part l % 2, the top gradient arrives
    in part 0). Returns what a test compares: h_out, final states, traces, gradients."""
    L = len(params)
    part = (lambda prefix: None) if ws is None else ws.part
    caches, outputs, finals = [], [], []
    for layer in range(L):
        out, final, cache = cell.forward(x, state[layer], params[layer], workspace=part(f"{cell.name}.{layer}"),
                                         x_mask=x_masks[layer])
        caches.append(cache)
        outputs.append(out)
        finals.append(final)
        x = out
    traces = [cell.trace(cache) for cache in caches]
    # copies: with a workspace the outputs and traces are views into buffers that the backward
    # pass may reuse (the contract promises them only until the workspace is used again)
    forward_results = ([o.copy() for o in outputs], finals,
                       [{q: v.copy() for q, v in t.items()} for t in traces])
    dx = dh_top
    if ws is not None:
        dx = ws.part(f"dx.{L % 2}").empty("dx", dh_top.shape, dh_top.dtype)
        dx[...] = dh_top
    grads = [None] * L
    for layer in range(L - 1, -1, -1):
        grads[layer] = cell.backward(dx, caches[layer], workspace=part(f"{cell.name}.{layer}"),
                                     dx_workspace=part(f"dx.{layer % 2}"))
        dx = grads[layer].dx
    return forward_results + (grads,)


def reference_stack(name, x, x_masks, state, params, dh_top):
    caches, outputs, finals = [], [], []
    for layer in range(len(params)):
        out, final, cache = reference_forward(name, x, state[layer], params[layer], x_masks[layer])
        caches.append(cache)
        outputs.append(out)
        finals.append(final)
        x = out
    traces = [reference_trace(name, cache) for cache in caches]
    grads = [None] * len(params)
    dx = dh_top
    for layer in range(len(params) - 1, -1, -1):
        grads[layer] = reference_backward(name, dx, caches[layer])
        dx = grads[layer].dx
    return outputs, finals, traces, grads


@pytest.mark.parametrize("use_workspace", [False, True], ids=["fresh", "workspace"])
@pytest.mark.parametrize("inputs", ["masked", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_two_layer_stack_over_two_chunks_equals_the_reference(name, inputs, use_workspace):
    """The state carried from one chunk to the next, dropout between the layers, and a second
    chunk shorter than the first that reuses the first one's workspace."""
    rng = np.random.default_rng(2)
    B, D, H = 2, 5, 3
    cell = CELLS[name]
    params = [make_layer(name, rng, 1, B, D, H).params, make_layer(name, rng, 1, B, H, H).params]
    zero = tuple(np.zeros((B, H)) for _ in cell.state)
    state_fast = state_ref = [zero, tuple(rng.standard_normal((B, H)) * 0.5 for _ in cell.state)]
    ws = Workspace() if use_workspace else None
    for chunk, T in enumerate((5, 3)):
        bottom = make_layer(name, rng, T, B, D, H, inputs=inputs)
        x_masks = [bottom.x_mask, dropout_mask(rng, (T, H, B))]
        fast = fast_stack(cell, bottom.x, x_masks, state_fast, params, bottom.dh_out, ws)
        ref = reference_stack(name, bottom.x, x_masks, state_ref, params, bottom.dh_out)
        for layer in range(2):
            where = f"chunk {chunk} layer {layer}"
            assert_same(fast[0][layer], ref[0][layer], f"{where} h_out", **CLOSE)
            for k, (a, b) in enumerate(zip(fast[1][layer], ref[1][layer])):
                assert_same(a, b, f"{where} final_state[{k}]", **CLOSE)
            for q in ref[2][layer]:
                assert_same(fast[2][layer][q], ref[2][layer][q], f"{where} trace {q}", **CLOSE)
            assert_same_grads(fast[3][layer], ref[3][layer], where, **CLOSE)
        assert np.abs(fast[3][0].params["Wh"]).max() > 1e-3    # the gradient reached the bottom
        state_fast, state_ref = fast[1], ref[1]


# --- the backward pass in chunks, and a workspace reused ----------------------------------------------

@pytest.mark.parametrize("name", CELL_NAMES)
def test_backward_at_training_sizes_walks_time_in_chunks_to_the_same_numbers(name):
    T, B = 50, 64
    assert lstm.backward_chunk_steps(T, B) < T
    layer = make_layer(name, np.random.default_rng(9), T, B, D=5, H=6)
    cell = layer.cell
    _, _, cache = layer.forward()
    chunked = cell.backward(layer.dh_out, cache, layer.dstate)
    whole = KERNEL_BACKWARD[name](layer.dh_out, cache, *layer.dstate, chunk_steps=T)
    np.testing.assert_allclose(chunked.dx, whole.dx, rtol=1e-10, atol=1e-12)
    for part, value in zip(cell.state, chunked.dstate):
        np.testing.assert_allclose(value, getattr(whole, f"d{part}0"), rtol=1e-10, atol=1e-12)
    for key, value in chunked.params.items():
        np.testing.assert_allclose(value, getattr(whole, f"d{key}"), rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("inputs", ["masked", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_at_training_sizes_forward_and_backward_equal_the_reference(name, inputs):
    """Long enough that the kernels work in several chunks of steps (the LSTM's input products
    ahead of a chunk in the forward pass, and the input gradients after it), with a last chunk
    shorter than the others, and a reused workspace."""
    T, B = 43, 24
    assert lstm.backward_chunk_steps(T, B) < T and T % lstm.backward_chunk_steps(T, B)
    layer = make_layer(name, np.random.default_rng(11), T, B, D=7, H=5, inputs=inputs)
    ws = Workspace()
    h_ref, final_ref, cache_ref = reference_forward(name, layer.x, layer.state, layer.params, layer.x_mask)
    g_ref = reference_backward(name, layer.dh_out, cache_ref, layer.dstate)
    for _ in range(2):
        h_fast, final_fast, cache_fast = layer.forward(ws.part("layer"))
        assert_same(h_fast, h_ref, "h_out", **CLOSE)
        for k, (a, b) in enumerate(zip(final_fast, final_ref)):
            assert_same(a, b, f"final_state[{k}]", **CLOSE)
        g_fast = layer.cell.backward(layer.dh_out, cache_fast, layer.dstate, workspace=ws.part("layer"),
                                     dx_workspace=ws.part("dx"))
        assert_same_grads(g_fast, g_ref, "backward", **CLOSE)


@pytest.mark.parametrize("inputs", ["masked", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_a_reused_workspace_changes_no_number(name, inputs):
    """A long chunk, then a shorter one through the same workspace (as a training run's last,
    ragged chunk does), each walked back in several chunks: exactly the numbers of fresh arrays,
    for the outputs, the final state, the trace and every gradient (dx in a part of its own)."""
    rng = np.random.default_rng(13)
    B, D, H = 64, 5, 3
    params = make_layer(name, rng, 1, B, D, H).params
    ws = Workspace()
    for T in (50, 21):
        assert lstm.backward_chunk_steps(T, B) < T
        layer = make_layer(name, rng, T, B, D, H, inputs=inputs)._replace(params=params)
        results = []
        for part in (ws.part, lambda prefix: None):
            out, final, cache = layer.forward(part("layer"))
            trace = {q: v.copy() for q, v in layer.cell.trace(cache).items()}
            g = layer.cell.backward(layer.dh_out, cache, layer.dstate, workspace=part("layer"),
                                    dx_workspace=part("dx"))
            results.append((out.copy(), final, trace, g))
        (out_w, final_w, trace_w, g_w), (out, final, trace, g) = results
        assert_same(out_w, out, f"T={T} h_out")
        for k, (a, b) in enumerate(zip(final_w, final)):
            assert_same(a, b, f"T={T} final_state[{k}]")
        for q in trace:
            assert_same(trace_w[q], trace[q], f"T={T} trace {q}")
        assert_same_grads(g_w, g, f"T={T}")


# --- the arguments ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CELL_NAMES)
def test_forward_and_backward_leave_their_arguments_alone_and_the_cache_can_be_read_twice(name):
    layer = make_layer(name, np.random.default_rng(3), T=4, B=2, D=3, H=3)
    arrays = [layer.x, layer.x_mask, *layer.state, *layer.params.values(), layer.dh_out, *layer.dstate]
    copies = [a.copy() for a in arrays]
    _, _, cache = layer.forward()
    g1 = layer.cell.backward(layer.dh_out, cache, layer.dstate)
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)
    g2 = layer.cell.backward(layer.dh_out, cache, layer.dstate)
    assert_same_grads(g1, g2, "the second backward")


@pytest.mark.parametrize("inputs", ["masked", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_no_final_state_gradient_means_zero(name, inputs):
    layer = make_layer(name, np.random.default_rng(11), T=4, B=2, D=3, H=3, inputs=inputs)
    _, _, cache = layer.forward()
    zeros = tuple(np.zeros_like(s) for s in layer.dstate)
    assert_same_grads(layer.cell.backward(layer.dh_out, cache), layer.cell.backward(layer.dh_out, cache, zeros),
                      "dstate=None")


@pytest.mark.parametrize("name", CELL_NAMES)
def test_ids_are_one_hot_vectors(name):
    """Repeated ids add up their rows of dWx, not overwrite them; a symbol never seen gets none."""
    rng = np.random.default_rng(12)
    T, B, V, H = 5, 3, 6, 4
    layer = make_layer(name, rng, T, B, V, H, inputs="ids")
    ids = layer.x.copy()
    ids[1] = ids[0]
    ids[:, 2] = 1
    ids[ids == 5] = 4                            # a symbol never seen
    one_hot = np.eye(V)[ids].transpose(0, 2, 1).copy()          # (T, V, B)
    by_ids, by_vectors = layer._replace(x=ids), layer._replace(x=one_hot)
    out_ids, final_ids, cache_ids = by_ids.forward()
    out_vec, final_vec, cache_vec = by_vectors.forward()
    assert_same(out_ids, out_vec, "h_out", rtol=1e-13, atol=1e-15)
    for k, (a, b) in enumerate(zip(final_ids, final_vec)):
        assert_same(a, b, f"final_state[{k}]", rtol=1e-13, atol=1e-15)
    g_ids = layer.cell.backward(layer.dh_out, cache_ids, layer.dstate)
    g_vec = layer.cell.backward(layer.dh_out, cache_vec, layer.dstate)
    assert g_ids.dx is None and g_vec.dx.shape == (T, V, B)
    assert_same_grads(g_ids._replace(dx=g_vec.dx), g_vec, "ids", rtol=1e-12, atol=1e-14)
    assert np.all(g_ids.params["Wx"][5] == 0)


@pytest.mark.parametrize("name", CELL_NAMES)
def test_an_input_mask_is_a_masked_input(name):
    """x_mask multiplies the input on its way in: the same outputs as x * x_mask, and dx is the
    gradient for the unmasked x (the masked input's gradient, times the mask). Ids take no mask."""
    rng = np.random.default_rng(14)
    T, B, D, H = 5, 3, 4, 3
    layer = make_layer(name, rng, T, B, D, H, inputs="masked")
    premasked = layer._replace(x=layer.x * layer.x_mask, x_mask=None)
    out_m, final_m, cache_m = layer.forward()
    out, final, cache = premasked.forward()
    np.testing.assert_array_equal(out_m, out)
    for a, b in zip(final_m, final):
        np.testing.assert_array_equal(a, b)
    g_m = layer.cell.backward(layer.dh_out, cache_m, layer.dstate)
    g = premasked.cell.backward(layer.dh_out, cache, layer.dstate)
    assert_same_grads(g_m, g._replace(dx=g.dx * layer.x_mask), "masked")
    assert np.any(layer.x_mask == 0) and np.abs(g.dx[layer.x_mask == 0]).max() > 1e-3   # the mask mattered
    with pytest.raises(ValueError):
        layer.cell.forward(rng.integers(0, D, (T, B)), layer.state, layer.params, x_mask=layer.x_mask)


# --- float32, and saturation --------------------------------------------------------------------------

@pytest.mark.parametrize("inputs", ["vectors", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_float32_stays_float32_even_with_float64_final_gradients(name, inputs):
    """Every output, trace, cached array and gradient is float32 (a float64 gradient of the final
    state does not promote them), and the numbers are the float64 ones to float32 precision."""
    T, B, D, H = 6, 3, 5, 4
    layer64 = make_layer(name, np.random.default_rng(15), T, B, D, H, inputs=inputs)
    layer32 = layer64._replace(
        x=layer64.x if inputs == "ids" else layer64.x.astype(np.float32),
        state=tuple(s.astype(np.float32) for s in layer64.state),
        params={key: value.astype(np.float32) for key, value in layer64.params.items()},
        dh_out=layer64.dh_out.astype(np.float32))
    out, final, cache = layer32.forward()
    arrays = {"h_out": out, **{f"final_state[{k}]": s for k, s in enumerate(final)}}
    arrays.update({f"trace {q}": v for q, v in layer32.cell.trace(cache).items()})
    arrays.update({f"cache.{field}": value for field, value in cache._asdict().items()
                   if isinstance(value, np.ndarray) and value.dtype.kind == "f"})
    g = layer32.cell.backward(layer32.dh_out, cache, layer64.dstate)          # dstate float64
    arrays.update({f"d{part}0": value for part, value in zip(layer32.cell.state, g.dstate)})
    arrays.update({f"d{key}": value for key, value in g.params.items()})
    if g.dx is not None:
        arrays["dx"] = g.dx
    for what, value in arrays.items():
        assert value.dtype == np.float32, what

    out64, final64, cache64 = layer64.forward()
    g64 = layer64.cell.backward(layer64.dh_out, cache64, layer64.dstate)
    np.testing.assert_allclose(out, out64, rtol=1e-4, atol=1e-5)
    for a, b in zip(final, final64):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    pairs = [("dx", g.dx, g64.dx)] + list(zip(layer32.cell.state, g.dstate, g64.dstate))
    pairs += [(key, g.params[key], g64.params[key]) for key in g64.params]
    for what, a, b in pairs:
        assert (a is None) == (b is None) == (what == "dx" and inputs == "ids"), what
        if a is not None:
            assert rel_error(a, b) < 1e-5, what


@pytest.mark.parametrize("name", CELL_NAMES)
def test_saturated_gates_stay_finite(name):
    """Pre-activations in the hundreds: no overflow, no nan, h within the cell's range, and the
    reference's numbers."""
    layer = make_layer(name, np.random.default_rng(2), T=5, B=2, D=3, H=3, inputs="vectors", scale=300.0)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, final, cache = layer.forward()
        g = layer.cell.backward(np.ones_like(out), cache, layer.dstate)
    assert np.isfinite(out).all() and all(np.isfinite(s).all() for s in final)
    assert np.abs(out).max() <= max(1.0, np.abs(layer.state[0]).max())
    assert np.isfinite(g.dx).all() and all(np.isfinite(s).all() for s in g.dstate)
    assert all(np.isfinite(value).all() for value in g.params.values())
    h_ref, _, _ = reference_forward(name, layer.x, layer.state, layer.params)
    np.testing.assert_allclose(out, h_ref, rtol=1e-9, atol=1e-12)
