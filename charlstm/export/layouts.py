"""How each cell's parameters map onto PyTorch's and ONNX's recurrent layers (NumPy only).

charlstm keeps one layer's weights as the matrices that multiply its input and its previous h,
gate blocks side by side in the cell's public order (see charlstm/nn/cells/):

    cell      keys (D = V for layer 0, else H)                        blocks
    lstm      Wx (D, 4H)  Wh (H, 4H)  b (4H,)                          i, f, g, o
    peephole  as lstm, plus p_i, p_f, p_o (H,)                          i, f, g, o
    gru       Wx (D, 3H)  Wh (H, 3H)  bx (3H,)  bh (3H,)               r, z, n
    rnn       Wx (D, H)   Wh (H, H)   b (H,)                           h

A model with an input embedding has `embedding` (V, E) as well, and its layer 0 reads D = E.

PyTorch (nn.LSTM, nn.GRU, nn.RNN; the peephole LSTM is charlstm's own module with the same names
plus peephole_{i,f,o}_l{k}) keeps the transposes, in the same block order; the embedding is
nn.Embedding's weight as it is:
    embedding.weight = embedding
    weight_ih_l{k} = Wx^T   weight_hh_l{k} = Wh^T
    bias_ih_l{k} = b, bias_hh_l{k} = 0     (back: b = bias_ih + bias_hh; the two only ever add)
    gru: bias_ih_l{k} = bx, bias_hh_l{k} = bh   (they do not simply add: bh_n sits inside r * (...))

ONNX (LSTM, GRU, RNN operators, one per layer, one direction) keeps the transposes too, with a
leading direction axis of 1 and its own block order:
    W = Wx^T (1, G*H, D)   R = Wh^T (1, G*H, H)   B = [Wb, Rb] (1, 2*G*H)
    (the embedding is a Gather's table before the first operator)
    lstm, peephole: blocks i, o, f, c (c is charlstm's g); Wb = b, Rb = 0
                    P = [p_i, p_o, p_f] (1, 3H)
    gru:            blocks z, r, h (h is charlstm's n); Wb = bx, Rb = bh; linear_before_reset=1
                    (r multiplies Wh_n h + bh_n, as in PyTorch and charlstm)
    rnn:            one block; Wb = b, Rb = 0; activation Tanh
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Layout:
    """One cell's parameters as PyTorch and ONNX name and order them."""

    name: str
    blocks: str                    # charlstm's gate blocks, in order ("ifgo")
    state: tuple[str, ...]         # ("h", "c") or ("h",)
    biases: tuple[str, ...]        # charlstm's bias keys: ("b",) or ("bx", "bh")
    peepholes: tuple[str, ...]     # charlstm's peephole keys, in torch's order
    onnx_op: str                   # "LSTM", "GRU" or "RNN"
    onnx_blocks: str               # the same gates in ONNX's order, under charlstm's letters

    @property
    def gates(self) -> int:
        return len(self.blocks)

    def param_shapes(self, D: int, H: int) -> dict[str, tuple[int, ...]]:
        """charlstm's keys and shapes of one layer (what the cell's own param_shapes says)."""
        G = self.gates
        shapes = {"Wx": (D, G * H), "Wh": (H, G * H)}
        shapes.update({key: (G * H,) for key in self.biases})
        shapes.update({key: (H,) for key in self.peepholes})
        return shapes

    def onnx_order(self) -> list[int]:
        """For each ONNX block, the index of the charlstm block it holds."""
        return [self.blocks.index(gate) for gate in self.onnx_blocks]


LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (
    Layout("lstm", "ifgo", ("h", "c"), ("b",), (), "LSTM", "iofg"),
    Layout("peephole", "ifgo", ("h", "c"), ("b",), ("p_i", "p_f", "p_o"), "LSTM", "iofg"),
    Layout("gru", "rzn", ("h",), ("bx", "bh"), (), "GRU", "zrn"),
    Layout("rnn", "h", ("h",), ("b",), (), "RNN", "h"),
)}

ONNX_PEEPHOLES = ("p_i", "p_o", "p_f")     # the order of ONNX LSTM's P


# --- PyTorch -------------------------------------------------------------------------------------

def torch_shapes(cell: str, vocab_size: int, hidden_size: int, num_layers: int,
                 embedding_size: int = 0) -> dict[str, tuple[int, ...]]:
    """Every key and shape of a CharModel's state_dict (see export/torch_module.py), in order."""
    layout, V, H, E = LAYOUTS[cell], vocab_size, hidden_size, embedding_size
    G = layout.gates
    shapes = {"embedding.weight": (V, E)} if E else {}
    for k in range(num_layers):
        D = (E or V) if k == 0 else H
        shapes[f"rnn.weight_ih_l{k}"] = (G * H, D)
        shapes[f"rnn.weight_hh_l{k}"] = (G * H, H)
        shapes[f"rnn.bias_ih_l{k}"] = (G * H,)
        shapes[f"rnn.bias_hh_l{k}"] = (G * H,)
        for key in layout.peepholes:
            shapes[f"rnn.peephole_{key[2:]}_l{k}"] = (H,)
    shapes["head.weight"] = (V, H)
    shapes["head.bias"] = (V,)
    return shapes


def to_torch_arrays(params: dict, cell: str, num_layers: int) -> dict[str, np.ndarray]:
    """charlstm's parameters -> a CharModel's state_dict, as fresh C-contiguous arrays."""
    layout = LAYOUTS[cell]
    out = {"embedding.weight": np.array(params["embedding"])} if "embedding" in params else {}
    for k in range(num_layers):
        p = {key: params[f"{cell}.{k}.{key}"] for key in layout.param_shapes(1, 1)}
        out[f"rnn.weight_ih_l{k}"] = np.ascontiguousarray(p["Wx"].T)
        out[f"rnn.weight_hh_l{k}"] = np.ascontiguousarray(p["Wh"].T)
        if layout.biases == ("bx", "bh"):
            out[f"rnn.bias_ih_l{k}"] = np.array(p["bx"])
            out[f"rnn.bias_hh_l{k}"] = np.array(p["bh"])
        else:
            out[f"rnn.bias_ih_l{k}"] = np.array(p["b"])
            out[f"rnn.bias_hh_l{k}"] = np.zeros_like(p["b"])
        for key in layout.peepholes:
            out[f"rnn.peephole_{key[2:]}_l{k}"] = np.array(p[key])
    out["head.weight"] = np.ascontiguousarray(params["head.W"].T)
    out["head.bias"] = np.array(params["head.b"])
    return out


def from_torch_arrays(arrays: dict, cell: str, num_layers: int) -> dict[str, np.ndarray]:
    """The inverse of `to_torch_arrays`: a state_dict's arrays (checked already) -> charlstm's."""
    layout = LAYOUTS[cell]
    params = {"embedding": np.array(arrays["embedding.weight"])} if "embedding.weight" in arrays else {}
    for k in range(num_layers):
        prefix = f"{cell}.{k}."
        params[prefix + "Wx"] = np.ascontiguousarray(arrays[f"rnn.weight_ih_l{k}"].T)
        params[prefix + "Wh"] = np.ascontiguousarray(arrays[f"rnn.weight_hh_l{k}"].T)
        if layout.biases == ("bx", "bh"):
            params[prefix + "bx"] = np.array(arrays[f"rnn.bias_ih_l{k}"])
            params[prefix + "bh"] = np.array(arrays[f"rnn.bias_hh_l{k}"])
        else:
            params[prefix + "b"] = arrays[f"rnn.bias_ih_l{k}"] + arrays[f"rnn.bias_hh_l{k}"]
        for key in layout.peepholes:
            params[prefix + key] = np.array(arrays[f"rnn.peephole_{key[2:]}_l{k}"])
    params["head.W"] = np.ascontiguousarray(arrays["head.weight"].T)
    params["head.b"] = np.array(arrays["head.bias"])
    return params


# --- ONNX ----------------------------------------------------------------------------------------

def _reorder(M: np.ndarray, order: list[int], H: int) -> np.ndarray:
    """M (..., G*H) with blocks in charlstm's order -> the blocks in `order` (block copies)."""
    return np.concatenate([M[..., j * H:(j + 1) * H] for j in order], axis=-1)


def onnx_layer(params: dict, cell: str, layer: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """One layer's inputs of the ONNX operator: W, R, B and, for the peephole cell, P, each with
    its leading direction axis of 1, in `dtype`."""
    layout = LAYOUTS[cell]
    p = {key: np.asarray(params[f"{cell}.{layer}.{key}"], dtype=dtype) for key in layout.param_shapes(1, 1)}
    H = p["Wh"].shape[0]
    order = layout.onnx_order()
    if layout.biases == ("bx", "bh"):
        Wb, Rb = p["bx"], p["bh"]
    else:
        Wb, Rb = p["b"], np.zeros_like(p["b"])
    out = {"W": _reorder(p["Wx"], order, H).T[None],
           "R": _reorder(p["Wh"], order, H).T[None],
           "B": np.concatenate([_reorder(Wb, order, H), _reorder(Rb, order, H)])[None]}
    if layout.peepholes:
        out["P"] = np.concatenate([p[key] for key in ONNX_PEEPHOLES])[None]
    return {name: np.ascontiguousarray(a) for name, a in out.items()}


__all__ = ["Layout", "LAYOUTS", "ONNX_PEEPHOLES", "torch_shapes", "to_torch_arrays",
           "from_torch_arrays", "onnx_layer"]
