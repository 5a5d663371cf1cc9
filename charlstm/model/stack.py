"""The network: a stack of LSTM layers and a softmax head, as pure functions over a dict of arrays.

Parameter keys are the checkpoint's keys:
    lstm.{l}.Wx (D, 4H)  (D = vocabulary size for l = 0, else H)
    lstm.{l}.Wh (H, 4H)
    lstm.{l}.b  (4H,)     gate blocks in the order i, f, g, o
    head.W      (H, V)
    head.b      (V,)

The recurrent state of the whole stack is a pair of arrays (h, c), each (num_layers, B, H). It is
passed in and returned, never kept in an object, so that truncated BPTT can carry it from one
chunk to the next and sampling can carry it from one symbol to the next.

Dropout (inverted: kept units are scaled by 1/(1-p) while training, nothing at evaluation) is
applied to the output of every LSTM layer, that is between layers and before the head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.nn.cells.lstm import LSTMCache, lstm_backward, lstm_forward
from charlstm.nn.workspace import Workspace, empty, scratch
from charlstm.nn.head import cross_entropy_backward, cross_entropy_forward


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a network. Serialised into every checkpoint."""

    vocab_size: int
    hidden_size: int = 256
    num_layers: int = 3
    dropout: float = 0.2   # measured: closes most of the train/validation gap within minutes

    def __post_init__(self):
        if self.vocab_size < 1:
            raise CharlstmError("vocab_size must be at least 1")
        if self.hidden_size < 1:
            raise CharlstmError("hidden size must be at least 1")
        if self.num_layers < 1:
            raise CharlstmError("the number of layers must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise CharlstmError("dropout must be in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        for key in ("vocab_size", "hidden_size", "num_layers"):   # a checkpoint's JSON is untrusted
            if key in d and (not isinstance(d[key], int) or isinstance(d[key], bool)):
                raise CharlstmError(f"model config: {key} must be an integer, got {d[key]!r}")
        if not isinstance(d.get("dropout", 0.0), (int, float)) or isinstance(d.get("dropout"), bool):
            raise CharlstmError(f"model config: dropout must be a number, got {d.get('dropout')!r}")
        try:
            return cls(**{k: d[k] for k in ("vocab_size", "hidden_size", "num_layers")},
                       dropout=d.get("dropout", 0.0))   # checkpoints without it had none
        except (KeyError, TypeError) as e:
            raise CharlstmError(f"model config is missing {e}") from None


class State(NamedTuple):
    h: np.ndarray  # (num_layers, B, H)
    c: np.ndarray  # (num_layers, B, H)


class ModelCache(NamedTuple):
    layers: list[LSTMCache]
    masks: list[np.ndarray] | None
    top: np.ndarray          # (T, H, B) input of the head


def param_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's key and shape, in a stable order."""
    V, H = config.vocab_size, config.hidden_size
    shapes = {}
    for layer in range(config.num_layers):
        D = V if layer == 0 else H
        shapes[f"lstm.{layer}.Wx"] = (D, 4 * H)
        shapes[f"lstm.{layer}.Wh"] = (H, 4 * H)
        shapes[f"lstm.{layer}.b"] = (4 * H,)
    shapes["head.W"] = (H, V)
    shapes["head.b"] = (V,)
    return shapes


def init_params(config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Fresh parameters.

    Weights that multiply a hidden state (Wh, the upper layers' Wx, the head) are uniform in
    +-1/sqrt(H): the sum over H inputs of order one then gives pre-activations of order one.
    The first layer's input is one-hot, so its pre-activation is a single row of Wx, not a sum:
    those rows are uniform in +-1 (standard deviation 0.58, about what an embedding of standard
    deviation 1 followed by a +-1/sqrt(H) matrix gives). With +-1/sqrt(H) there too, the first
    layer would start almost deaf to its input and spend hundreds of steps growing it.
    Biases start at zero except the forget gate's, which starts at 1 so that the cell remembers by
    default early in training and gradients flow through long spans.
    """
    H = config.hidden_size
    params = {}
    for key, shape in param_shapes(config).items():
        if key.endswith(".b"):
            p = np.zeros(shape)
            if key.startswith("lstm."):
                p[H:2 * H] = 1.0      # forget gate
        else:
            bound = 1.0 if key == "lstm.0.Wx" else 1.0 / np.sqrt(H)
            p = rng.uniform(-bound, bound, size=shape)
        params[key] = p.astype(dtype)
    return params


def zero_state(config: ModelConfig, batch_size: int, dtype=np.float32) -> State:
    shape = (config.num_layers, batch_size, config.hidden_size)
    return State(np.zeros(shape, dtype=dtype), np.zeros(shape, dtype=dtype))


def dropout_masks(config: ModelConfig, T: int, B: int, rng: np.random.Generator, dtype=np.float32,
                  workspace: Workspace | None = None):
    """One inverted-dropout mask per layer, or None when dropout is off. Each is (T, H, B), the
    layout of a layer's outputs (feature-major, see lstm.py)."""
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


def forward(params, config: ModelConfig, inputs: np.ndarray, state: State, masks=None,
            workspace: Workspace | None = None):
    """Scores for the next symbol at every position.

    inputs (T, B) ids; state (h, c) each (L, B, H); masks: per-layer dropout masks or None.
    Returns (logits (T*B, V), new_state, cache). Between layers the sequences are feature-major,
    (T, H, B) (see lstm.py); the scores come out one row per (t, b), in that order.
    With a workspace, the logits and the cache live in it (see workspace.py).
    """
    ws = workspace
    T, B = inputs.shape
    x = inputs
    caches, h_final, c_final = [], [], []
    for layer in range(config.num_layers):
        # the dropout mask of a layer's output is applied by the layer above, as it reads it
        out, (hT, cT), cache = lstm_forward(
            x, state.h[layer], state.c[layer],
            params[f"lstm.{layer}.Wx"], params[f"lstm.{layer}.Wh"], params[f"lstm.{layer}.b"],
            None if ws is None else ws.part(f"lstm.{layer}"),
            x_mask=None if masks is None or layer == 0 else masks[layer - 1])
        caches.append(cache)
        h_final.append(hT)
        c_final.append(cT)
        x = out
    top = x                                                  # (T, H, B)
    if masks is not None:
        top = np.multiply(top, masks[-1], out=empty(ws, "dropped_top", top.shape, top.dtype))
    logits = empty(ws, "logits", (T, B, config.vocab_size), params["head.W"].dtype)
    np.matmul(top.transpose(0, 2, 1), params["head.W"], out=logits)   # per step (B, H) x (H, V)
    logits = logits.reshape(T * B, config.vocab_size)
    logits += params["head.b"]
    return logits, State(np.stack(h_final), np.stack(c_final)), ModelCache(caches, masks, top)


def backward(dlogits: np.ndarray, params, config: ModelConfig, cache: ModelCache,
             workspace: Workspace | None = None):
    """Gradients of the loss for every parameter and for the initial state.

    dlogits (T*B, V). Returns (grads dict with the parameters' keys, State of initial-state grads).
    With a workspace, the gradients live in it (see workspace.py).
    """
    ws = workspace
    T, H, B = cache.top.shape
    dtype = cache.top.dtype
    L = config.num_layers
    # The layers' dx buffers are used in turn (see lstm_backward): layer l writes part l % 2 and
    # reads the other. The head's gradient goes to part L % 2 (the top layer reads it), and its
    # input, reordered for one product, borrows the part that the top layer writes only later.
    top_cols = empty(None if ws is None else ws.part(f"dx.{(L + 1) % 2}"), "dx", (H, T, B), dtype)
    np.copyto(top_cols, cache.top.transpose(1, 0, 2))                                # columns (t, b)
    grads = {"head.W": top_cols.reshape(H, T * B) @ dlogits, "head.b": dlogits.sum(axis=0)}
    dx = empty(None if ws is None else ws.part(f"dx.{L % 2}"), "dx", (T, H, B), dtype)
    np.matmul(params["head.W"], dlogits.reshape(T, B, -1).transpose(0, 2, 1), out=dx)   # (T, H, B)
    if cache.masks is not None:
        dx *= cache.masks[-1]          # the other masks are applied by the layers that read with them
    dh0, dc0 = [None] * config.num_layers, [None] * config.num_layers
    for layer in range(config.num_layers - 1, -1, -1):
        g = lstm_backward(dx, cache.layers[layer], workspace=None if ws is None else ws.part(f"lstm.{layer}"),
                          dx_workspace=None if ws is None else ws.part(f"dx.{layer % 2}"))
        grads[f"lstm.{layer}.Wx"] = g.dWx
        grads[f"lstm.{layer}.Wh"] = g.dWh
        grads[f"lstm.{layer}.b"] = g.db
        dh0[layer], dc0[layer] = g.dh0, g.dc0
        dx = g.dx
    return grads, State(np.stack(dh0), np.stack(dc0))


def loss_and_grads(params, config: ModelConfig, inputs, targets, state: State, masks=None, weights=None,
                   workspace: Workspace | None = None):
    """One truncated-BPTT step's math: mean cross-entropy, its gradients, and the final state.

    targets (T, B) ids; weights (T, B) or None (see softmax.py). The gradient stops at the chunk
    boundary: the returned state is plain data, and its gradient is never carried back.
    Returns (loss in nats, grads, new_state, initial-state grads). With a workspace, the grads live
    in it until its next use (see workspace.py); the states are always fresh.
    """
    logits, new_state, cache = forward(params, config, inputs, state, masks, workspace)
    w = None if weights is None else weights.reshape(-1)
    loss, ce = cross_entropy_forward(logits, targets.reshape(-1), w)
    grads, dstate = backward(cross_entropy_backward(ce), params, config, cache, workspace)
    return loss, grads, new_state, dstate


def loss_only(params, config: ModelConfig, inputs, targets, state: State):
    """Summed cross-entropy (nats) of a chunk without dropout, and the final state."""
    logits, new_state, _ = forward(params, config, inputs, state)
    loss, ce = cross_entropy_forward(logits, targets.reshape(-1))
    return loss * targets.size, new_state


__all__ = ["ModelConfig", "State", "param_shapes", "init_params", "zero_state",
           "dropout_masks", "forward", "backward", "loss_and_grads", "loss_only"]
