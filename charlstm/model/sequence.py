"""Models that read a whole example (a string of ids) with the same cells as the character model,
one direction or both, and hand its outputs to a label head (model/labels.py).

Parameter keys extend model/stack.py's: the embedding and the forward direction keep the
character model's keys, the reverse direction adds ".reverse" after the layer, and the head maps
F = H features (one direction) or F = 2H (both) to the labels:
    embedding               (V, E)      only when embedding_size E > 0
    lstm.{l}.Wx             (D, 4H)     D = E (or V, one-hot) for l = 0, else F
    lstm.{l}.Wh, lstm.{l}.b             as in model/stack.py
    lstm.{l}.reverse.Wx     (D, 4H)     the reverse direction of layer l, only when bidirectional
    lstm.{l}.reverse.Wh, lstm.{l}.reverse.b
    head.W                  (F, num_labels)
    head.b                  (num_labels,)
(any cell: its own keys after the prefix, see charlstm/nn/cells/). A one-direction model has the
character model's keys for everything but its head.

The stack, as PyTorch's nn.LSTM(bidirectional=True) builds it
-------------------------------------------------------------
Layer 0 of each direction reads the input; layer k of each direction reads the concatenation
[forward outputs; reverse outputs] (F features) of layer k-1. With an embedding each direction's
layer 0 has its own Wx (E, G·H), and its input table embedding @ Wx (V, G·H) is computed once per
pass, as model/stack.py does, so the one shared embedding gets the sum of both tables' gradients.

Variable lengths: masks, not padding that leaks into the state
--------------------------------------------------------------
A batch is ids (T, B), each example right-padded to T, with lengths (B,) >= 1. Step t of a
recurrent layer reads only steps <= t, so padding that sits after an example's last symbol can
reach only outputs at t >= length. The forward direction therefore runs over all T steps, and the
outputs at t >= length are simply never counted: pooling and the tagger's loss give them weight 0.

The reverse direction must read each example from its last real symbol, not from the padding.
`reverse_within` reverses each example within its own length (position t of example b goes to
length_b - 1 - t) and leaves the padding where it was, at the end. Read that way, the reverse
direction is causal over the reversed example, so its padding too reaches only the steps after
the example; its outputs are put back in reading order by the same permutation before the two
directions are concatenated. No padded step is ever read by a counted output, in either
direction or at any layer: a layer's padded outputs feed only the padded steps above them.
In the backward pass the uncounted outputs receive a gradient of exactly 0, and a recurrence
walked backwards from zeros adds exactly 0 to every weight gradient: what the padding holds
changes neither the loss nor any gradient (tests/test_sequence.py changes it and compares).

Each model starts from a zero state: it reads whole examples, so nothing carries from one to the
next. Dropout (inverted masks, as in model/stack.py) is applied to every layer's output: between
layers, where both directions of the layer above read the same dropped units, and before the head.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.model.config import check_stack
from charlstm.nn.cells import Cell, get_cell
from charlstm.nn.workspace import Workspace, empty
from charlstm.validate import Fields

TASKS = ("classify", "tag")          # one label per example, or one per position
POOLINGS = ("last", "mean")          # how a classifier reads an example's outputs (model/labels.py)
DIRECTIONS = ("forward", "reverse")


@dataclass(frozen=True)
class SequenceConfig:
    """The shape of a model that labels whole examples (see the module docstring)."""

    vocab_size: int
    num_labels: int
    # the character model's defaults (model/config.py): not measured for labelling yet
    hidden_size: int = 256
    num_layers: int = 3
    dropout: float = 0.2
    cell: str = "lstm"
    # E, as ModelConfig's: 0 reads one-hot ids, None is filled in as E = H
    embedding_size: int | None = None
    bidirectional: bool = False
    task: str = "classify"
    # classify only: "last" reads each direction's output after it has read the whole example,
    # "mean" the mean over the example's positions. None: "mean" for a classifier, filled in here:
    # measured the better in all four pairs of scripts/label_bench.py (languages and tweets, one
    # direction and both; +0.014 to +0.048 held-out accuracy at equal time, docs/notes/labels.md).
    pooling: str | None = None

    def __post_init__(self):
        # frozen: the one place the defaults are filled in
        if self.embedding_size is None:
            object.__setattr__(self, "embedding_size", self.hidden_size)
        if self.task == "classify" and self.pooling is None:
            object.__setattr__(self, "pooling", "mean")
        check_stack(self)
        if self.num_labels < 2:
            raise CharlstmError("num_labels must be at least 2: one label is no choice")
        if not isinstance(self.bidirectional, bool):
            raise CharlstmError(f"bidirectional must be true or false, got {self.bidirectional!r}")
        if self.task not in TASKS:
            raise CharlstmError(f"unknown task {self.task!r}: use one of {', '.join(TASKS)}")
        if self.task == "tag" and self.pooling is not None:
            raise CharlstmError("pooling is for task classify: a tagger labels every position")
        if self.task == "classify" and self.pooling not in POOLINGS:
            raise CharlstmError(f"unknown pooling {self.pooling!r}: use one of {', '.join(POOLINGS)}")

    @property
    def cell_type(self) -> Cell:
        """The cell's record: its math, parameter shapes and state."""
        return get_cell(self.cell)

    @property
    def directions(self) -> tuple[str, ...]:
        """("forward",) or ("forward", "reverse")."""
        return DIRECTIONS if self.bidirectional else DIRECTIONS[:1]

    @property
    def features(self) -> int:
        """F, the features of each position a layer outputs: H per direction."""
        return self.hidden_size * len(self.directions)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "sequence model config") -> "SequenceConfig":
        """From a saved record (untrusted JSON): each field read by its type (charlstm.validate),
        bidirectional checked by the config itself."""
        return Fields(d, where).dataclass(cls)


# --- parameters ----------------------------------------------------------------------------------

def key_prefix(config: SequenceConfig, layer: int, direction: str) -> str:
    """"{cell}.{layer}." for the forward direction (model/stack.py's keys), "{cell}.{layer}.reverse."
    for the reverse one."""
    return f"{config.cell}.{layer}." + ("" if direction == "forward" else "reverse.")


def sequence_param_shapes(config: SequenceConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter's key and shape, in a stable order (the order init_sequence_params draws)."""
    V, H, E, cell = config.vocab_size, config.hidden_size, config.embedding_size, config.cell_type
    shapes = {"embedding": (V, E)} if E else {}
    for layer in range(config.num_layers):
        D = (E or V) if layer == 0 else config.features
        for direction in config.directions:
            for key, shape in cell.param_shapes(D, H).items():
                shapes[key_prefix(config, layer, direction) + key] = shape
    shapes["head.W"] = (config.features, config.num_labels)
    shapes["head.b"] = (config.num_labels,)
    return shapes


def init_sequence_params(config: SequenceConfig, rng: np.random.Generator, dtype=np.float32) -> dict[str, np.ndarray]:
    """Fresh parameters, initialised as model/stack.py's init_params does (see there for why):
    a standard normal embedding, each layer and direction as its cell initialises it (a layer
    above the first reads F inputs, hence +-1/sqrt(F) for its Wx), the head uniform in
    +-1/sqrt(F) with a zero bias."""
    V, H, E, cell = config.vocab_size, config.hidden_size, config.embedding_size, config.cell_type
    F = config.features
    params = {}
    if E:
        params["embedding"] = rng.standard_normal((V, E)).astype(dtype)
    for layer in range(config.num_layers):
        for direction in config.directions:
            fresh = cell.init((E or V) if layer == 0 else F, H, rng, one_hot=layer == 0 and not E)
            params.update({key_prefix(config, layer, direction) + k: p.astype(dtype) for k, p in fresh.items()})
    bound = 1.0 / np.sqrt(F)
    params["head.W"] = rng.uniform(-bound, bound, size=(F, config.num_labels)).astype(dtype)
    params["head.b"] = np.zeros(config.num_labels).astype(dtype)
    return params


def direction_params(params: dict, config: SequenceConfig, layer: int, direction: str,
                     table: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One layer's parameters in one direction under the cell's short keys ("Wx", ...). For
    layer 0 of a model with an embedding, "Wx" is that direction's input table (V, G·H) (given,
    or made here), so that the cell reads ids as a one-hot model's (see model/stack.py)."""
    prefix = key_prefix(config, layer, direction)
    own = {key: params[prefix + key] for key in config.cell_type.param_shapes(1, 1)}
    if layer == 0 and config.embedding_size:
        own["Wx"] = params["embedding"] @ own["Wx"] if table is None else table
    return own


def sequence_dropout_masks(config: SequenceConfig, T: int, B: int, rng: np.random.Generator,
                           dtype=np.float32) -> list[np.ndarray] | None:
    """One inverted-dropout mask per layer, each (T, F, B) like the layer's outputs (kept units
    1/(1-p), dropped 0), or None when dropout is off."""
    p = config.dropout
    if p <= 0:
        return None
    keep = 1.0 / (1.0 - p)
    shape = (T, config.features, B)
    return [((rng.random(shape) >= p) * keep).astype(dtype) for _ in range(config.num_layers)]


# --- a batch of examples -------------------------------------------------------------------------

def check_batch(config: SequenceConfig, ids: np.ndarray, lengths: np.ndarray) -> None:
    """Refuse a batch the model cannot read: ids (T, B) integer symbols, every one of them in the
    vocabulary (the padding too: any symbol, 0 say), and lengths (B,) in 1..T."""
    ids, lengths = np.asarray(ids), np.asarray(lengths)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise CharlstmError(f"ids must be a (T, B) array of whole numbers, got {ids.dtype} of shape {ids.shape}")
    T, B = ids.shape
    if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
        raise CharlstmError(f"lengths must be {B} whole numbers (one per example), got shape {lengths.shape}")
    if T == 0 or lengths.min(initial=1) < 1 or lengths.max(initial=1) > T:
        raise CharlstmError(f"every length must be between 1 and the {T} steps of ids")
    if ids.size and (ids.min() < 0 or ids.max() >= config.vocab_size):
        raise CharlstmError(f"ids must be symbols 0..{config.vocab_size - 1}, padding included")


def counted(lengths: np.ndarray, T: int) -> np.ndarray:
    """(T, B) booleans: True at the positions t < lengths[b] that belong to an example."""
    return np.arange(T)[:, None] < lengths


def reverse_within(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each example reversed within its own length, its padding left at the end.

    x (T, B) or (T, D, B), time first and the batch last; lengths (B,) in 1..T. Returns a fresh
    array of x's shape and dtype with
        out[t, ..., b] = x[lengths[b] - 1 - t, ..., b]    for t < lengths[b]
        out[t, ..., b] = x[t, ..., b]                     for t >= lengths[b]
    The permutation it applies to each column is its own inverse (reversing twice gives x back)
    and, being symmetric, its own transpose: the backward pass of y = reverse_within(x) is
    dx = reverse_within(dy). The bidirectional stack uses it for all three.
    """
    T, B = x.shape[0], x.shape[-1]
    t = np.arange(T)[:, None]
    source = np.where(t < lengths, lengths - 1 - t, t)              # (T, B): where out[t] reads
    return np.take_along_axis(x, source.reshape((T,) + (1,) * (x.ndim - 2) + (B,)), axis=0)


# --- the stack -----------------------------------------------------------------------------------

class SequenceCache(NamedTuple):
    lengths: np.ndarray                # (B,)
    layers: list                       # per layer, a tuple of each direction's cell cache
    masks: list[np.ndarray] | None     # per layer (T, F, B), or None


def input_tables(params: dict, config: SequenceConfig, workspace: Workspace | None = None) -> dict:
    """direction -> (V, G·H) layer 0's input pre-activations for every symbol, embedding @ Wx,
    once per pass; {} for a one-hot model, whose Wx is its table."""
    if not config.embedding_size:
        return {}
    tables = {}
    for direction in config.directions:
        Wx = params[key_prefix(config, 0, direction) + "Wx"]
        table = empty(workspace, f"input_table.{direction}", (config.vocab_size, Wx.shape[1]), Wx.dtype)
        tables[direction] = np.matmul(params["embedding"], Wx, out=table)
    return tables


def direction_forward(cell: Cell, x, x_mask, lengths, direction: str, params_of_layer: dict,
                      workspace: Workspace | None = None):
    """One layer in one direction from a zero state: x (T, D, B) or ids (T, B); x_mask (T, D, B) or
    None -> (outputs (T, H, B) in reading order, the cell's cache). The reverse direction reads
    x reversed within each example and its outputs are put back in reading order."""
    B, H = x.shape[-1], params_of_layer["Wh"].shape[0]
    dtype = params_of_layer["Wh"].dtype
    zero = tuple(np.zeros((B, H), dtype=dtype) for _ in cell.state)
    if direction == "reverse":
        x = reverse_within(x, lengths)
        x_mask = None if x_mask is None else reverse_within(x_mask, lengths)   # the same dropped units
    out, _, cache = cell.forward(x, zero, params_of_layer, workspace, x_mask=x_mask)
    return (reverse_within(out, lengths) if direction == "reverse" else out), cache


def direction_backward(cell: Cell, dout, cache, lengths, direction: str):
    """The gradients of one layer in one direction, dout (T, H, B) in reading order -> CellGrads
    with dx (T, D, B) in reading order (None for ids)."""
    if direction == "forward":
        return cell.backward(np.ascontiguousarray(dout), cache)
    grads = cell.backward(reverse_within(dout, lengths), cache)       # reverse_within is its own transpose
    return grads._replace(dx=None if grads.dx is None else reverse_within(grads.dx, lengths))


def sequence_forward(params: dict, config: SequenceConfig, ids: np.ndarray, lengths: np.ndarray,
                     masks=None, workspace: Workspace | None = None):
    """The top layer's outputs at every position of every example, from a zero state.

    ids (T, B) right-padded symbols; lengths (B,) in 1..T; masks: per-layer (T, F, B) dropout
    masks or None. Returns (outputs (T, F, B), cache): features [forward; reverse] after the top
    layer's dropout; only the positions t < lengths[b] count (see the module docstring). With
    a workspace, the cells' caches live in it (see nn/workspace.py).
    """
    check_batch(config, ids, lengths)
    cell, H = config.cell_type, config.hidden_size
    T, B = ids.shape
    dtype = params[key_prefix(config, 0, "forward") + "Wh"].dtype
    tables = input_tables(params, config, workspace)
    x, layer_caches = ids, []
    for layer in range(config.num_layers):
        # both directions read what the layer below wrote, through the mask of its output
        x_mask = None if masks is None or layer == 0 else masks[layer - 1]
        outputs = np.empty((T, config.features, B), dtype=dtype)    # [forward; reverse]
        caches = []
        for k, direction in enumerate(config.directions):
            out, cache = direction_forward(
                cell, x, x_mask, lengths, direction,
                direction_params(params, config, layer, direction, tables.get(direction)),
                None if workspace is None else workspace.part(f"{config.cell}.{layer}.{direction}"))
            outputs[:, k * H:(k + 1) * H] = out
            caches.append(cache)
        layer_caches.append(tuple(caches))
        x = outputs
    if masks is not None:
        x *= masks[-1]                 # the top layer's dropout, before the head (x is ours)
    return x, SequenceCache(np.asarray(lengths), layer_caches, masks)


def sequence_backward(doutputs: np.ndarray, params: dict, config: SequenceConfig, cache: SequenceCache) -> dict:
    """The gradients of every parameter below the head, from doutputs (T, F, B), the gradient of
    the loss for sequence_forward's outputs. Returns {key: gradient} with params' keys in their
    order, the head's left out (model/labels.py adds them)."""
    cell, H = config.cell_type, config.hidden_size
    d = doutputs if cache.masks is None else doutputs * cache.masks[-1]
    grads = {}
    for layer in range(config.num_layers - 1, -1, -1):
        dx = None                      # the gradient for the layer's input, summed over directions
        for k, (direction, layer_cache) in enumerate(zip(config.directions, cache.layers[layer])):
            g = direction_backward(cell, d[:, k * H:(k + 1) * H], layer_cache, cache.lengths, direction)
            prefix = key_prefix(config, layer, direction)
            grads.update({prefix + key: value for key, value in g.params.items()})
            if g.dx is not None:       # None for layer 0, which read ids
                dx = g.dx if dx is None else dx + g.dx
        d = dx                         # already through the input's dropout mask (the cells apply it)
    if config.embedding_size:
        # each direction's layer 0 read its table embedding @ Wx: its "Wx" gradient is the table's
        dembedding = np.zeros_like(params["embedding"])
        for direction in config.directions:
            Wx_key = key_prefix(config, 0, direction) + "Wx"
            dtable = grads[Wx_key]
            dembedding += dtable @ params[Wx_key].T
            grads[Wx_key] = params["embedding"].T @ dtable
        grads["embedding"] = dembedding
    return {key: grads[key] for key in params if key in grads}


__all__ = ["SequenceConfig", "TASKS", "POOLINGS", "DIRECTIONS", "SequenceCache", "key_prefix", "sequence_param_shapes",
           "init_sequence_params", "direction_params", "sequence_dropout_masks", "check_batch", "counted",
           "reverse_within", "input_tables", "direction_forward", "direction_backward", "sequence_forward",
           "sequence_backward"]
