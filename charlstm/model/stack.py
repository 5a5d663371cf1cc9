"""The network: a stack of recurrent layers of one cell and a softmax head, as pure functions over
a dict of arrays.

Parameter keys are the checkpoint's keys, "{cell}.{layer}.{key}" with the cell's own keys and
shapes (see charlstm/nn/cells/), then the head:
    lstm.{l}.Wx (D, 4H)  (D = vocabulary size for l = 0, else H)
    lstm.{l}.Wh (H, 4H)
    lstm.{l}.b  (4H,)     gate blocks in the order i, f, g, o
    head.W      (H, V)
    head.b      (V,)

Every caller (training, evaluation, sampling, traces, exports) goes through these functions and
the cell's record, never into a cell's internals, so a cell is written once.

Dropout (inverted: kept units are scaled by 1/(1-p) while training, nothing at evaluation) is
applied to the output of every layer, that is between layers and before the head.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charlstm.model.config import ModelConfig, State, zero_state
from charlstm.nn.head import (HeadCache, cross_entropy_backward, cross_entropy_forward, head_backward,
                              head_forward)
from charlstm.nn.workspace import Workspace, empty, scratch


class ModelCache(NamedTuple):
    layers: list               # each layer's cache (the cell's own)
    masks: list[np.ndarray] | None
    head: HeadCache

    @property
    def top(self) -> np.ndarray:
        """(T, H, B) input of the head."""
        return self.head.top


def layer_params(params: dict, config: ModelConfig, layer: int) -> dict[str, np.ndarray]:
    """One layer's parameters under the cell's short keys ("Wx", ...)."""
    prefix = f"{config.cell}.{layer}."
    return {key: params[prefix + key] for key in config.cell_type.param_shapes(1, 1)}


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's key and shape, in a stable order."""
    V, H, cell = config.vocab_size, config.hidden_size, config.cell_type
    shapes = {}
    for layer in range(config.num_layers):
        D = V if layer == 0 else H
        for key, shape in cell.param_shapes(D, H).items():
            shapes[f"{cell.name}.{layer}.{key}"] = shape
    shapes["head.W"] = (H, V)
    shapes["head.b"] = (V,)
    return shapes


def init_params(config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Fresh parameters: each layer as its cell initialises it (see the cell's `init`), then the
    head, uniform in +-1/sqrt(H) (H inputs of order one give scores of order one), bias zero."""
    V, H, cell = config.vocab_size, config.hidden_size, config.cell_type
    params = {}
    for layer in range(config.num_layers):
        fresh = cell.init(V if layer == 0 else H, H, rng, one_hot=layer == 0)
        params.update({f"{cell.name}.{layer}.{k}": p.astype(dtype) for k, p in fresh.items()})
    bound = 1.0 / np.sqrt(H)
    params["head.W"] = rng.uniform(-bound, bound, size=(H, V)).astype(dtype)
    params["head.b"] = np.zeros(V).astype(dtype)
    return params


def dropout_masks(config: ModelConfig, T: int, B: int, rng: np.random.Generator, dtype=np.float32,
                  workspace: Workspace | None = None):
    """One inverted-dropout mask per layer, or None when dropout is off. Each is (T, H, B), the
    layout of a layer's outputs (feature-major, see nn/cells/lstm.py)."""
    p = config.dropout
    if p <= 0:
        return None
    keep = 1.0 / (1.0 - p)
    shape = (T, config.hidden_size, B)
    masks = []
    for layer in range(config.num_layers):
        uniform = scratch(workspace, "uniform", shape, np.float32)      # only until the mask is made
        rng.random(shape, dtype=np.float32, out=uniform)
        mask = empty(workspace, f"mask.{layer}", shape, dtype)
        np.greater_equal(uniform, p, out=mask, casting="unsafe")    # 1.0 kept, 0.0 dropped
        mask *= keep
        masks.append(mask)
    return masks


def _part(workspace: Workspace | None, name: str) -> Workspace | None:
    return None if workspace is None else workspace.part(name)


def forward(params, config: ModelConfig, inputs: np.ndarray, state: State, masks=None,
            workspace: Workspace | None = None):
    """Scores for the next symbol at every position.

    inputs (T, B) ids; state: the stack's State; masks: per-layer dropout masks or None.
    Returns (logits (T*B, V), new_state, cache). Between layers the sequences are feature-major,
    (T, H, B) (see nn/cells/lstm.py); the scores come out one row per (t, b), in that order.
    With a workspace, the logits and the cache live in it (see nn/workspace.py).
    """
    ws, cell = workspace, config.cell_type
    x = inputs
    caches, finals = [], []
    for layer in range(config.num_layers):
        # the dropout mask of a layer's output is applied by the layer above, as it reads it
        out, final, cache = cell.forward(
            x, state.layer(cell, layer), layer_params(params, config, layer),
            _part(ws, f"{cell.name}.{layer}"),
            x_mask=None if masks is None or layer == 0 else masks[layer - 1])
        caches.append(cache)
        finals.append(final)
        x = out
    top = x                                                  # (T, H, B)
    if masks is not None:
        top = np.multiply(top, masks[-1], out=empty(ws, "dropped_top", top.shape, top.dtype))
    logits, head_cache = head_forward(top, params["head.W"], params["head.b"], ws)
    return logits, State.of_layers(cell, finals), ModelCache(caches, masks, head_cache)


def backward(dlogits: np.ndarray, params, config: ModelConfig, cache: ModelCache,
             workspace: Workspace | None = None):
    """Gradients of the loss for every parameter and for the initial state.

    dlogits (T*B, V). Returns (grads dict with the parameters' keys, State of initial-state grads).
    With a workspace, the gradients live in it (see nn/workspace.py).
    """
    ws, cell = workspace, config.cell_type
    L = config.num_layers
    # The layers' dx buffers are used in turn: layer l writes part l % 2 and reads the other. The
    # head's gradient goes to part L % 2 (the top layer reads it), and its input, reordered for
    # one product, borrows the part that the top layer writes only later.
    dx, dW, db = head_backward(dlogits, cache.head, params["head.W"],
                               top_workspace=_part(ws, f"dx.{(L + 1) % 2}"), dx_workspace=_part(ws, f"dx.{L % 2}"))
    grads = {"head.W": dW, "head.b": db}
    if cache.masks is not None:
        dx *= cache.masks[-1]          # the other masks are applied by the layers that read with them
    dstate = [None] * L
    for layer in range(L - 1, -1, -1):
        g = cell.backward(dx, cache.layers[layer], workspace=_part(ws, f"{cell.name}.{layer}"),
                          dx_workspace=_part(ws, f"dx.{layer % 2}"))
        grads.update({f"{cell.name}.{layer}.{k}": v for k, v in g.params.items()})
        dstate[layer] = g.dstate
        dx = g.dx
    return grads, State.of_layers(cell, dstate)


def layer_values(config: ModelConfig, cache: ModelCache) -> dict[str, list[np.ndarray]]:
    """What each layer computed, for traces: quantity -> one (T, B, H) array per layer, in the
    cell's order (h first)."""
    cell = config.cell_type
    per_layer = [cell.trace(layer_cache) for layer_cache in cache.layers]
    return {q: [values[q] for values in per_layer] for q in cell.quantities}


def loss_and_grads(params, config: ModelConfig, inputs, targets, state: State, masks=None, weights=None,
                   workspace: Workspace | None = None):
    """One truncated-BPTT step's math: mean cross-entropy, its gradients, and the final state.

    targets (T, B) ids; weights (T, B) or None (see nn/head.py). The gradient stops at the chunk
    boundary: the returned state is plain data, and its gradient is never carried back.
    Returns (loss in nats, grads, new_state, initial-state grads). With a workspace, the grads live
    in it until its next use (see nn/workspace.py); the states are always fresh.
    """
    logits, new_state, cache = forward(params, config, inputs, state, masks, workspace)
    w = None if weights is None else weights.reshape(-1)
    loss, ce = cross_entropy_forward(logits, targets.reshape(-1), w)
    grads, dstate = backward(cross_entropy_backward(ce), params, config, cache, workspace)
    return loss, grads, new_state, dstate


__all__ = ["ModelConfig", "State", "ModelCache", "param_shapes", "layer_params", "layer_values", "init_params", "zero_state",
           "dropout_masks", "forward", "backward", "loss_and_grads"]
