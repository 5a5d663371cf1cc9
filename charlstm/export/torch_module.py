"""A charlstm model as a PyTorch module, and back: the same weights, the same scores.

`CharModel` is the network of charlstm written with PyTorch's layers:

    ids (B, T) long --nn.Embedding | one_hot--> (B, T, E | V)
        --nn.LSTM | nn.GRU | nn.RNN | PeepholeLSTM--> (B, T, H) --dropout--> --nn.Linear--> logits (B, T, V)

Batch first, as most PyTorch code is (charlstm itself is time-major inside). A model with an
embedding (embedding_size E > 0) is the network every PyTorch tutorial writes, nn.Embedding(V, E)
before the recurrent layers: charlstm's `embedding` is the module's weight and its first layer
reads E inputs. A model without one reads a one-hot vector of the vocabulary, exactly as charlstm's
first layer does. The weights map as export/layouts.py says; the state is PyTorch's own: (h, c)
each (L, B, H) for the LSTM cells, h (L, B, H) else.

Dropout is charlstm's: on the output of every layer, the top one too (the recurrent layer's own
`dropout` between layers, an nn.Dropout before the head), so training on in PyTorch regularises
as training in charlstm did.

This module imports torch; charlstm.torch is the public face that imports it only when asked.
The functions here work on parts (params, config, vocab) and take a Model duck-typed (its
.params, .config and .vocab), so that this folder imports only downward; charlstm.torch turns
the parts into a Model.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn

from charlstm.data.vocab import Vocab
from charlstm.errors import CharlstmError
from charlstm.files import write_atomically
from charlstm.export.layouts import from_torch_arrays, to_torch_arrays, torch_shapes
from charlstm.model import ModelConfig, param_shapes, unconditioned

FORMAT = "charlstm-torch"
VERSION = 1


class PeepholeLSTM(nn.Module):
    """An LSTM whose gates also read the memory cell, which PyTorch has no module for:

        z = W_ih x + b_ih + W_hh h_prev + b_hh                blocks i, f, g, o
        i = sigmoid(z_i + p_i * c_prev)    f = sigmoid(z_f + p_f * c_prev)    g = tanh(z_g)
        c = f * c_prev + i * g
        o = sigmoid(z_o + p_o * c)         h = o * tanh(c)

    Parameters as nn.LSTM names them (weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
    bias_hh_l{k}) plus peephole_i_l{k}, peephole_f_l{k}, peephole_o_l{k} (H,); batch first;
    dropout between layers as nn.LSTM's. A loop over the steps in Python: fine for fine-tuning
    and checking, not fast (there is no fused kernel to call).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers, self.dropout = input_size, hidden_size, num_layers, dropout
        bound = 1.0 / hidden_size ** 0.5           # nn.LSTM's initialisation, peepholes included
        H = hidden_size
        for k in range(num_layers):
            D = input_size if k == 0 else H
            shapes = {"weight_ih": (4 * H, D), "weight_hh": (4 * H, H), "bias_ih": (4 * H,), "bias_hh": (4 * H,),
                      "peephole_i": (H,), "peephole_f": (H,), "peephole_o": (H,)}
            for name, shape in shapes.items():
                setattr(self, f"{name}_l{k}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x, state=None):
        """x (B, T, D); state (h0, c0) each (L, B, H) or None (zeros).
        Returns (out (B, T, H), (hT, cT) each (L, B, H))."""
        B, T, _ = x.shape
        if state is None:
            zeros = x.new_zeros(self.num_layers, B, self.hidden_size)
            state = (zeros, zeros)
        h0, c0 = state
        finals_h, finals_c = [], []
        for k in range(self.num_layers):
            W_ih, W_hh, b_ih, b_hh, p_i, p_f, p_o = (getattr(self, f"{name}_l{k}") for name in (
                "weight_ih", "weight_hh", "bias_ih", "bias_hh", "peephole_i", "peephole_f", "peephole_o"))
            zx = x @ W_ih.T + b_ih + b_hh          # the input's share of every step in one product
            h, c = h0[k], c0[k]
            outputs = []                    # a list, then one stack: what autograd wants
            for t in range(T):
                zi, zf, zg, zo = (zx[:, t] + h @ W_hh.T).chunk(4, dim=1)
                i = torch.sigmoid(zi + p_i * c)
                f = torch.sigmoid(zf + p_f * c)
                c = f * c + i * torch.tanh(zg)
                h = torch.sigmoid(zo + p_o * c) * torch.tanh(c)
                outputs.append(h)
            x = torch.stack(outputs, dim=1)
            if k < self.num_layers - 1 and self.dropout > 0:
                x = nn.functional.dropout(x, self.dropout, self.training)
            finals_h.append(h)
            finals_c.append(c)
        return x, (torch.stack(finals_h), torch.stack(finals_c))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, dropout={self.dropout}"


_RECURRENT = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN, "peephole": PeepholeLSTM}


class CharModel(nn.Module):
    """charlstm's network in PyTorch (see the module docstring).

    forward(ids (B, T) integer, state=None) -> (logits (B, T, V), state), the state as PyTorch's
    recurrent layers take it: (h, c) each (L, B, H) for "lstm" and "peephole", h (L, B, H) for
    "gru" and "rnn"; None means zeros. The arguments are ModelConfig's fields.
    """

    def __init__(self, vocab_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 cell: str = "lstm", embedding_size: int = 0):
        super().__init__()
        if cell not in _RECURRENT:
            raise CharlstmError(f"no PyTorch mapping for the {cell!r} cell: use one of {', '.join(_RECURRENT)}")
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.dropout, self.cell, self.embedding_size = dropout, cell, embedding_size
        self.embedding = nn.Embedding(vocab_size, embedding_size) if embedding_size else None
        inputs = embedding_size or vocab_size
        between = dropout if num_layers > 1 else 0.0   # PyTorch warns about dropout with nothing between
        if cell == "peephole":
            self.rnn = PeepholeLSTM(inputs, hidden_size, num_layers, dropout=between)
        elif cell == "rnn":
            self.rnn = nn.RNN(inputs, hidden_size, num_layers, nonlinearity="tanh", batch_first=True,
                              dropout=between)
        else:
            self.rnn = _RECURRENT[cell](inputs, hidden_size, num_layers, batch_first=True, dropout=between)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    @property
    def config(self) -> dict:
        """ModelConfig's fields, as charlstm's checkpoints store them."""
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "dropout": self.dropout, "cell": self.cell, "embedding_size": self.embedding_size}

    def forward(self, ids, state=None):
        if self.embedding is not None:
            x = self.embedding(ids.long())
        else:
            x = nn.functional.one_hot(ids.long(), self.vocab_size).to(self.head.weight.dtype)
        out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state


# --- charlstm -> PyTorch -------------------------------------------------------------------------

def module_config(config: ModelConfig) -> dict:
    """CharModel's arguments for a ModelConfig. CharModel reads plain symbols: a model
    conditioned on labels is refused in one line."""
    unconditioned(config, "the PyTorch module (CharModel)")
    return {key: value for key, value in config.to_dict().items() if key != "num_labels"}


def to_torch(model, dtype=torch.float32) -> CharModel:
    """A CharModel holding a charlstm model's weights (its .params and .config), in `dtype`, on
    the CPU, in eval mode (no dropout: it scores as charlstm does; call .train() to train it)."""
    config = model.config
    module = CharModel(**module_config(config)).to(dtype)    # the dtype first: float64 weights stay exact
    arrays = to_torch_arrays(model.params, config.cell, config.num_layers)
    module.load_state_dict({key: torch.from_numpy(a) for key, a in arrays.items()})
    return module.eval()


# --- PyTorch -> charlstm -------------------------------------------------------------------------

def read_module(module, vocab_size: int, cell: str | None = None, dropout: float | None = None):
    """(params, config) from a CharModel or a state_dict of one, on any device, in any floating
    dtype: each tensor is detached and copied to the CPU as float32.

    A bare state_dict does not say its cell where shapes cannot ("lstm" and "peephole" differ by
    their peephole keys, "gru" and "rnn" by their block counts) nor its dropout (0 unless given).
    Every mismatch (keys, shapes, vocabulary size, values) is one CharlstmError line.
    """
    if isinstance(module, CharModel):
        if cell is not None and cell != module.cell:
            raise CharlstmError(f"the module is a {module.cell} model, not {cell}")
        cell, dropout = module.cell, module.dropout if dropout is None else dropout
        state_dict = module.state_dict()
    elif isinstance(module, nn.Module):
        state_dict = module.state_dict()
    elif isinstance(module, Mapping):
        state_dict = module
    else:
        raise CharlstmError(f"expected a CharModel or its state_dict, got {type(module).__name__}")
    for key in state_dict:
        if not isinstance(key, str):
            raise CharlstmError(f"state_dict keys must be strings, got {key!r}")
    cell, V, H, L, E = _infer_shape(state_dict, cell)
    if V != vocab_size:
        raise CharlstmError(f"the model predicts {V} symbols but the vocabulary holds {vocab_size}")
    expected = torch_shapes(cell, V, H, L, E)
    missing = [key for key in expected if key not in state_dict]
    if missing:
        raise CharlstmError(f"state_dict of a {L}-layer {cell} model is missing {missing[0]}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    unexpected = [key for key in state_dict if key not in expected]
    if unexpected:
        raise CharlstmError(f"state_dict holds {unexpected[0]!r}, which a {L}-layer {cell} model has not")
    arrays = {key: _array(state_dict[key], key, shape) for key, shape in expected.items()}
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.0 if dropout is None else dropout,
                         cell=cell, embedding_size=E)
    params = from_torch_arrays(arrays, cell, L)
    _check_against_cell(params, config)
    return params, config


def _infer_shape(state_dict: Mapping, cell: str | None):
    """(cell, V, H, L, E) from the state_dict's keys and its first layer's shapes (E = 0: no
    embedding.weight, a one-hot input)."""
    for key in ("rnn.weight_ih_l0", "rnn.weight_hh_l0", "head.weight", "embedding.weight"):
        if key not in state_dict:
            if key == "embedding.weight":
                continue
            raise CharlstmError(f"not a charlstm model's state_dict: no {key}")
        if len(getattr(state_dict[key], "shape", ())) != 2:
            raise CharlstmError(f"state_dict: {key} must be a matrix, got shape "
                                f"{tuple(getattr(state_dict[key], 'shape', ()))}")
    L = 0
    while f"rnn.weight_ih_l{L}" in state_dict:
        L += 1
    H = state_dict["rnn.weight_hh_l0"].shape[1]
    V = state_dict["head.weight"].shape[0]
    rows = state_dict["rnn.weight_ih_l0"].shape[0]
    peephole = "rnn.peephole_i_l0" in state_dict
    by_blocks = {4: "peephole" if peephole else "lstm", 3: "gru", 1: "rnn"}
    found = by_blocks.get(rows // H) if H and rows % H == 0 else None
    if found is None:
        raise CharlstmError(f"state_dict: rnn.weight_ih_l0 has {rows} rows for {H} units, which no cell has "
                            "(4 blocks: lstm or peephole, 3: gru, 1: rnn)")
    if cell is not None and cell != found:
        raise CharlstmError(f"state_dict holds a {found} model, not {cell}")
    E = state_dict["embedding.weight"].shape[1] if "embedding.weight" in state_dict else 0
    return found, int(V), int(H), L, int(E)


def _array(tensor, key: str, shape) -> np.ndarray:
    """One tensor as a fresh float32 NumPy array on the CPU, checked."""
    if isinstance(tensor, np.ndarray):
        tensor = torch.from_numpy(tensor)
    if not isinstance(tensor, torch.Tensor):
        raise CharlstmError(f"state_dict: {key} is a {type(tensor).__name__}, not a tensor")
    if tuple(tensor.shape) != tuple(shape):
        raise CharlstmError(f"state_dict: {key} has shape {tuple(tensor.shape)}, expected {tuple(shape)}")
    if not (tensor.is_floating_point()):
        raise CharlstmError(f"state_dict: {key} is not floating point ({tensor.dtype})")
    if tensor.device.type == "meta":
        raise CharlstmError(f"state_dict: {key} is on the meta device and holds no values; load the weights first")
    # copy=True: the array must not share memory with a parameter that training goes on changing
    array = tensor.detach().to(device="cpu", dtype=torch.float32, copy=True).numpy()
    if not np.isfinite(array).all():
        raise CharlstmError(f"state_dict: {key} holds NaN or infinite values")
    return array


def _check_against_cell(params: dict, config: ModelConfig) -> None:
    """The mapping's keys and shapes must be the registered cell's own (a guard on layouts.py)."""
    shapes = param_shapes(config)
    if set(shapes) != set(params) or any(params[k].shape != s for k, s in shapes.items()):
        raise CharlstmError(f"the {config.cell} cell's parameters differ from its PyTorch mapping; "
                            "this charlstm cannot import it")


# --- .pt files -----------------------------------------------------------------------------------

def write_pt(path, params, config: ModelConfig, vocab: Vocab) -> None:
    """Write {"format", "version", "config", "vocab", "state_dict"} with torch.save, atomically.
    Only dicts, lists, strings, numbers, None and CPU float32 tensors: torch.load(path,
    weights_only=True) reads it."""
    state_dict = {key: torch.from_numpy(np.asarray(a, dtype=np.float32))
                  for key, a in to_torch_arrays(params, config.cell, config.num_layers).items()}
    record = {"format": FORMAT, "version": VERSION, "config": module_config(config), "vocab": vocab.to_dict(),
              "state_dict": state_dict}
    write_atomically(path, lambda f: torch.save(record, f), "PyTorch file")


def read_pt(path):
    """(params, config, vocab) from a file written by write_pt, read with weights_only=True (no
    Python object is ever unpickled); every problem is one CharlstmError line."""
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise CharlstmError(f"{name}: no such file")
    if not path.is_file():
        raise CharlstmError(f"{name}: not a regular file")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not zipfile.is_zipfile(path):
            raise CharlstmError(f"{name}: not a PyTorch file, or damaged") from None
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CharlstmError(f"{name}: holds pickled Python objects{what}; refusing to load it "
                            "(charlstm loads .pt files with weights_only=True)") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as e:
        raise CharlstmError(f"{name}: not a PyTorch file, or damaged ({type(e).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CharlstmError(f"{name}: not a charlstm .pt file (no format record {FORMAT!r}); for a bare "
                            "state_dict use charlstm.torch.from_torch(state_dict, vocab)")
    if record.get("version") != VERSION:
        raise CharlstmError(f"{name}: format version {record.get('version')!r}; this charlstm reads {VERSION}")
    try:
        for key in ("config", "vocab", "state_dict"):
            if not isinstance(record.get(key), dict):
                raise CharlstmError(f"no {key} record")
        config = ModelConfig.from_dict(record["config"])
        vocab = Vocab.from_dict(record["vocab"])
        if len(vocab) != config.vocab_size:
            raise CharlstmError(f"the vocabulary holds {len(vocab)} symbols but the config says {config.vocab_size}")
        params, found = read_module(record["state_dict"], config.vocab_size, cell=config.cell, dropout=config.dropout)
        for field in ("hidden_size", "num_layers", "embedding_size"):
            if getattr(found, field) != getattr(config, field):
                raise CharlstmError(f"the config says {field} {getattr(config, field)} but the weights have "
                                    f"{getattr(found, field)}")
    except CharlstmError as e:
        raise CharlstmError(f"{name}: {e}") from None
    return params, config, vocab


__all__ = ["CharModel", "PeepholeLSTM", "module_config", "to_torch", "read_module", "write_pt", "read_pt", "FORMAT", "VERSION"]
