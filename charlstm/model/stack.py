"""The network: a stack of recurrent layers of one cell and a softmax head, as pure functions over
a dict of arrays.

Parameter keys are the checkpoint's keys: the input embedding when the model has one, then
"{cell}.{layer}.{key}" with the cell's own keys and shapes (see charlstm/nn/cells/), then the head:
    embedding   (V, E)    only when embedding_size E > 0
    label_embedding (N, E)   only when the model is conditioned on num_labels N > 0
    lstm.{l}.Wx (D, 4H)  (D = E, or the vocabulary size V for a one-hot input, for l = 0; else H)
    lstm.{l}.Wh (H, 4H)
    lstm.{l}.b  (4H,)     gate blocks in the order i, f, g, o
    head.W      (H, V)
    head.b      (V,)

The input: one-hot, or an embedding that costs nothing per step
--------------------------------------------------------------
With a one-hot input, layer 0's input pre-activations for symbol k are row k of its Wx (V, G·H),
which the cells pick by id instead of multiplying. An embedding factors those rows: symbol k
reads the vector embedding[k] (E numbers), and layer 0 multiplies it by its Wx (E, G·H). Since
every symbol's pre-activations are then a row of the table

    table = embedding @ Wx                                    (V, G·H)

the model computes the table once per forward pass and hands it to the same one-hot path: no
step of the time loop changes. In the backward pass that path returns the gradient of the table,
dtable (V, G·H), and the chain rule through one product gives the factors' gradients:

    d embedding = dtable @ Wx^T        dWx = embedding^T @ dtable

Three V x E x G·H products a step in all, where computing the embedding's vectors for every
position (as a framework's embedding layer does) costs a (T·B x E x G·H) product forward and two
backward. What the factoring buys is learning, not speed: rows of rare symbols share the E
directions that frequent ones train, so the input is learnt from every step's symbols together.

Labels: one table per label, still nothing per step
-----------------------------------------------------
A model conditioned on N labels reads symbol k under label l as the vector
embedding[k] + label_embedding[l]. Its pre-activations are then, by the same factoring,

    row k of (embedding @ Wx)  +  row l of (label_embedding @ Wx)

so the model stacks one table per label, (N·V, G·H) with row l·V + k, once per pass, and reads
the joint id l·V + k (`joint_ids`) where a model without labels reads k: the cells' one-hot path
and every step of the time loop are unchanged. The joint id is the model's input; its targets
stay symbols (`symbol_ids`), since the head scores the V symbols. The backward pass sums the
table's gradient both ways, per symbol over the labels and per label over the symbols:

    dbase = sum_l dtable[l·V + k]  (V, G·H)      dlabel = sum_k dtable[l·V + k]  (N, G·H)
    d embedding = dbase @ Wx^T     d label_embedding = dlabel @ Wx^T
    dWx = embedding^T @ dbase + label_embedding^T @ dlabel

Every caller (training, evaluation, sampling, traces, exports) goes through these functions and
the cell's record, never into a cell's internals, so a cell is written once.

Dropout (inverted: kept units are scaled by 1/(1-p) while training, nothing at evaluation) is
applied to the output of every layer, that is between layers and before the head.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np

from charlstm.errors import CharlstmError
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


def joint_ids(ids, labels, vocab_size: int):
    """The ids a model conditioned on labels reads: symbol k under label l is l·V + k, the row of
    its stacked input table (see above). ids and labels broadcast (a label per symbol, or one for all)."""
    return np.asarray(labels, dtype=np.int64) * vocab_size + np.asarray(ids, dtype=np.int64)


def symbol_ids(ids, vocab_size: int):
    """The symbols of joint ids (joint_ids' k), which are what the head predicts."""
    return np.asarray(ids) % vocab_size


def label_offset(config: ModelConfig, label: int | None) -> int:
    """What a symbol's id gains under `label` (a row of label_embedding), joint_ids(k, label) - k,
    for decoding and scoring: 0 for a model without labels. A model conditioned on labels needs
    one of its rows; a model without labels takes none."""
    if not config.num_labels:
        if label is not None:
            raise CharlstmError("this model is not conditioned on labels; give no label")
        return 0
    if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < config.num_labels:
        raise CharlstmError(f"this model is conditioned on {config.num_labels} labels: give one of them "
                            f"(0 to {config.num_labels - 1}), got {label!r}")
    return int(joint_ids(0, label, config.vocab_size))


def input_rows(config: ModelConfig) -> int:
    """The ids the model reads, 0 .. input_rows - 1: the V symbols, or N·V joint ids with N labels."""
    return config.vocab_size * max(1, config.num_labels)


def input_table(params: dict, config: ModelConfig, out: np.ndarray | None = None) -> np.ndarray:
    """(V, G·H) layer 0's input pre-activations for every symbol: embedding @ Wx; with N labels,
    (N·V, G·H), row l·V + k for symbol k under label l (see above)."""
    Wx = params[f"{config.cell}.0.Wx"]
    if not config.num_labels:
        return np.matmul(params["embedding"], Wx, out=out)
    base = params["embedding"] @ Wx                            # (V, G·H)
    label_rows = params["label_embedding"] @ Wx                # (N, G·H)
    N, V = config.num_labels, config.vocab_size
    table = np.empty((N * V, Wx.shape[1]), dtype=base.dtype) if out is None else out
    np.add(base[None], label_rows[:, None], out=table.reshape(N, V, -1))
    return table


def as_one_hot(params: dict, config: ModelConfig) -> tuple[dict, ModelConfig]:
    """The same network with a one-hot input: no embedding, and layer 0's Wx is the input table
    (V, G·H). It computes the same scores, to rounding; a runtime that reads one-hot rows (the
    page) takes this form, the size of a one-hot model's. A one-hot model comes back as it is,
    and so does a model conditioned on labels (no one-hot model has its N·V rows: make its table
    once with input_table and hand it to forward instead)."""
    if not config.embedding_size or config.num_labels:
        return params, config
    flat = {key: value for key, value in params.items() if key != "embedding"}
    flat[f"{config.cell}.0.Wx"] = input_table(params, config)
    return flat, replace(config, embedding_size=0)


def layer_params(params: dict, config: ModelConfig, layer: int, table: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
    """One layer's parameters under the cell's short keys ("Wx", ...), as the cell reads them: for
    layer 0 of a model with an embedding, "Wx" is the input table (`table` if given, else made
    here), so that the cell sees a one-hot input's (V, G·H) rows."""
    prefix = f"{config.cell}.{layer}."
    params_of_layer = {key: params[prefix + key] for key in config.cell_type.param_shapes(1, 1)}
    if layer == 0 and config.embedding_size:
        params_of_layer["Wx"] = input_table(params, config) if table is None else table
    return params_of_layer


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's key and shape, in a stable order."""
    V, H, E, cell = config.vocab_size, config.hidden_size, config.embedding_size, config.cell_type
    shapes = {"embedding": (V, E)} if E else {}
    if config.num_labels:
        shapes["label_embedding"] = (config.num_labels, E)
    for layer in range(config.num_layers):
        D = (E or V) if layer == 0 else H
        for key, shape in cell.param_shapes(D, H).items():
            shapes[f"{cell.name}.{layer}.{key}"] = shape
    shapes["head.W"] = (H, V)
    shapes["head.b"] = (V,)
    return shapes


def init_params(config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Fresh parameters: the embedding, each layer as its cell initialises it (see the cell's
    `init`), then the head, uniform in +-1/sqrt(H) (H inputs of order one give scores of order
    one), bias zero.

    The embedding's entries are standard normal, inputs of order one, so layer 0 takes the rule
    of every layer that reads a vector, +-1/sqrt(E): each row of the table embedding @ Wx then
    has entries of standard deviation sqrt(E * 1 * (1/E) / 3) = 0.58, exactly a one-hot model's
    first-layer rows (uniform in +-1). Both inputs start equally loud, so neither is deaf to its
    input at step 0.

    The label embedding starts at zero: every label then reads the same table, so the model starts
    as the unconditional one (with the same parameters: no random number is drawn for it) and
    the labels come to matter as their gradient, dlabel @ Wx^T, which is not zero, moves them.
    """
    V, H, E, cell = config.vocab_size, config.hidden_size, config.embedding_size, config.cell_type
    params = {}
    if E:
        params["embedding"] = rng.standard_normal((V, E)).astype(dtype)
    if config.num_labels:
        params["label_embedding"] = np.zeros((config.num_labels, E), dtype=dtype)
    for layer in range(config.num_layers):
        one_hot = layer == 0 and not E
        fresh = cell.init((E or V) if layer == 0 else H, H, rng, one_hot=one_hot)
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
            workspace: Workspace | None = None, table: np.ndarray | None = None):
    """Scores for the next symbol at every position.

    inputs (T, B) ids (joint ids, joint_ids, for a model conditioned on labels); state: the
    stack's State; masks: per-layer dropout masks or None; table: layer 0's input table when the
    caller made it once for many passes (input_table), else it is made here.
    Returns (logits (T*B, V), new_state, cache). Between layers the sequences are feature-major,
    (T, H, B) (see nn/cells/lstm.py); the scores come out one row per (t, b), in that order.
    With a workspace, the logits and the cache live in it (see nn/workspace.py).
    """
    ws, cell = workspace, config.cell_type
    x = inputs
    caches, finals = [], []
    if config.embedding_size and table is None:      # once per pass: each step of layer 0 reads a row of it
        Wx = params[f"{cell.name}.0.Wx"]
        table = input_table(params, config, out=empty(ws, "input_table", (input_rows(config), Wx.shape[1]), Wx.dtype))
    for layer in range(config.num_layers):
        # the dropout mask of a layer's output is applied by the layer above, as it reads it
        out, final, cache = cell.forward(
            x, state.layer(cell, layer), layer_params(params, config, layer, table),
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
    if config.embedding_size:
        # layer 0 read the input table, so its "Wx" gradient is the table's (see above)
        Wx_key = f"{cell.name}.0.Wx"
        dtable, embedding, Wx = grads[Wx_key], params["embedding"], params[Wx_key]
        if config.num_labels:
            grads.update(_label_grads(dtable, params, config, ws))
        else:
            grads["embedding"] = np.matmul(dtable, Wx.T, out=empty(ws, "embedding.grad", embedding.shape, dtable.dtype))
            grads[Wx_key] = np.matmul(embedding.T, dtable, out=empty(ws, "Wx0.grad", Wx.shape, dtable.dtype))
    return grads, State.of_layers(cell, dstate)


def _label_grads(dtable: np.ndarray, params, config: ModelConfig, ws: Workspace | None) -> dict:
    """The factors' gradients from the stacked table's (N·V, G·H) of a model conditioned on
    labels: summed per symbol over the labels and per label over the symbols (see above)."""
    Wx_key = f"{config.cell}.0.Wx"
    embedding, label_embedding, Wx = params["embedding"], params["label_embedding"], params[Wx_key]
    per_label = dtable.reshape(config.num_labels, config.vocab_size, -1)
    dbase = per_label.sum(axis=0)                              # (V, G·H)
    dlabel = per_label.sum(axis=1)                             # (N, G·H)
    dWx = np.matmul(embedding.T, dbase, out=empty(ws, "Wx0.grad", Wx.shape, dtable.dtype))
    dWx += label_embedding.T @ dlabel
    return {"embedding": np.matmul(dbase, Wx.T, out=empty(ws, "embedding.grad", embedding.shape, dtable.dtype)),
            "label_embedding": np.matmul(dlabel, Wx.T, out=empty(ws, "label_embedding.grad", label_embedding.shape,
                                                                    dtable.dtype)),
            Wx_key: dWx}


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


__all__ = ["ModelConfig", "State", "ModelCache", "param_shapes", "joint_ids", "symbol_ids", "label_offset", "input_rows", "input_table", "as_one_hot", "layer_params", "layer_values", "init_params", "zero_state",
           "dropout_masks", "forward", "backward", "loss_and_grads"]
