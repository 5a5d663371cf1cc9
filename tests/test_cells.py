"""Every registered cell against its textbook twin (cells/reference.py), in float64, through the
Cell record that the layers above use: one layer, and a stack of two layers over two chunks (the
state carried, dropout on the inputs, the second chunk shorter), with and without a Workspace."""

import numpy as np
import pytest

from charlstm.nn.cells import CELLS
from charlstm.nn.cells.reference import (REFERENCE_CELLS, reference_backward, reference_forward,
                                         reference_trace)
from charlstm.nn.workspace import Workspace

CELL_NAMES = sorted(CELLS)
CLOSE = dict(rtol=1e-10, atol=1e-12)


def layer_params(cell, D, H, rng, one_hot):
    """A fresh layer, perturbed so that no bias or peephole is trivially zero or one."""
    params = cell.init(D, H, rng, one_hot)
    return {key: value + 0.2 * rng.standard_normal(value.shape) for key, value in params.items()}


def layer_input(rng, T, B, D, ids):
    """(x, x_mask): (T, B) ids and no mask, or (T, D, B) vectors with an inverted-dropout mask."""
    if ids:
        return rng.integers(0, D, size=(T, B)), None
    return rng.standard_normal((T, D, B)), dropout_mask(rng, (T, D, B))


def dropout_mask(rng, shape, p=0.3):
    return (rng.random(shape) >= p) / (1 - p)


def assert_same(fast, ref, what):
    assert (fast is None) == (ref is None), what
    if ref is not None:
        assert fast.shape == ref.shape, what
        np.testing.assert_allclose(fast, ref, **CLOSE, err_msg=what)


def assert_same_grads(fast, ref, what):
    assert_same(fast.dx, ref.dx, f"{what} dx")
    assert len(fast.dstate) == len(ref.dstate), what
    for k, (a, b) in enumerate(zip(fast.dstate, ref.dstate)):
        assert_same(a, b, f"{what} dstate[{k}]")
    assert fast.params.keys() == ref.params.keys(), what
    for key in ref.params:
        assert_same(fast.params[key], ref.params[key], f"{what} d{key}")


@pytest.mark.parametrize("name", CELL_NAMES)
def test_every_cell_has_a_twin_with_its_layout(name):
    cell, ref = CELLS[name], REFERENCE_CELLS.get(name)
    assert ref is not None, f"cell {name!r} has no textbook twin in cells/reference.py"
    assert cell.name == name
    assert cell.state == ref.state and cell.state[0] == "h"
    assert cell.quantities == ref.quantities
    D, H = 5, 3
    assert list(cell.param_shapes(D, H).items()) == list(ref.param_shapes(D, H).items())
    for one_hot in (True, False):
        params = cell.init(D, H, np.random.default_rng(0), one_hot)
        assert {key: value.shape for key, value in params.items()} == cell.param_shapes(D, H)
        assert all(value.dtype == np.float64 for value in params.values())


@pytest.mark.parametrize("use_workspace", [False, True], ids=["fresh", "workspace"])
@pytest.mark.parametrize("ids", [False, True], ids=["vectors+mask", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_one_layer_equals_the_reference(name, ids, use_workspace):
    """Forward, final state, trace and every gradient, with a nonzero final-state gradient."""
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 3
    cell = CELLS[name]
    x, x_mask = layer_input(rng, T, B, D, ids)
    params = layer_params(cell, D, H, rng, one_hot=ids)
    state = tuple(rng.standard_normal((B, H)) * 0.5 for _ in cell.state)
    dh_out = rng.standard_normal((T, H, B))
    dstate = tuple(rng.standard_normal((B, H)) for _ in cell.state)
    ws = Workspace() if use_workspace else None

    h_ref, final_ref, cache_ref = reference_forward(name, x, state, params, x_mask)
    h_fast, final_fast, cache_fast = cell.forward(x, state, params, workspace=ws, x_mask=x_mask)
    assert_same(h_fast, h_ref, "h_out")
    for k, (a, b) in enumerate(zip(final_fast, final_ref)):
        assert_same(a, b, f"final_state[{k}]")
    trace_fast, trace_ref = cell.trace(cache_fast), reference_trace(name, cache_ref)
    assert tuple(trace_fast) == tuple(trace_ref)
    for q in trace_ref:
        assert_same(trace_fast[q], trace_ref[q], f"trace {q}")

    g_ref = reference_backward(name, dh_out, cache_ref, dstate)
    g_fast = cell.backward(dh_out, cache_fast, dstate, workspace=ws,
                           dx_workspace=None if ws is None else ws.part("dx"))
    assert_same_grads(g_fast, g_ref, "backward")
    if not ids:
        assert np.any(x_mask == 0) and np.all(g_fast.dx[x_mask == 0] == 0)


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
@pytest.mark.parametrize("ids", [False, True], ids=["vectors+mask", "ids"])
@pytest.mark.parametrize("name", CELL_NAMES)
def test_two_layer_stack_over_two_chunks_equals_the_reference(name, ids, use_workspace):
    """The state carried from one chunk to the next, dropout between the layers, and a second
    chunk shorter than the first that reuses the first one's workspace."""
    rng = np.random.default_rng(2)
    B, D, H = 2, 5, 3
    cell = CELLS[name]
    params = [layer_params(cell, D, H, rng, one_hot=ids), layer_params(cell, H, H, rng, one_hot=False)]
    zero = tuple(np.zeros((B, H)) for _ in cell.state)
    state_fast = state_ref = [zero, tuple(rng.standard_normal((B, H)) * 0.5 for _ in cell.state)]
    ws = Workspace() if use_workspace else None
    for chunk, T in enumerate((5, 3)):
        x, x_mask = layer_input(rng, T, B, D, ids)
        x_masks = [x_mask, dropout_mask(rng, (T, H, B))]
        dh_top = rng.standard_normal((T, H, B))
        fast = fast_stack(cell, x, x_masks, state_fast, params, dh_top, ws)
        ref = reference_stack(name, x, x_masks, state_ref, params, dh_top)
        for layer in range(2):
            where = f"chunk {chunk} layer {layer}"
            assert_same(fast[0][layer], ref[0][layer], f"{where} h_out")
            for k, (a, b) in enumerate(zip(fast[1][layer], ref[1][layer])):
                assert_same(a, b, f"{where} final_state[{k}]")
            assert tuple(fast[2][layer]) == tuple(ref[2][layer])
            for q in ref[2][layer]:
                assert_same(fast[2][layer][q], ref[2][layer][q], f"{where} trace {q}")
            assert_same_grads(fast[3][layer], ref[3][layer], where)
        assert np.abs(fast[3][0].params["Wh"]).max() > 1e-3    # the gradient reached the bottom
        state_fast, state_ref = fast[1], ref[1]
