"""charlstm models in PyTorch and back (needs PyTorch: python3 -m pip install '.[torch]' from the checkout).

    import charlstm, charlstm.torch
    model = charlstm.load("run/best.npz")
    module = charlstm.torch.to_torch(model)            # a torch.nn.Module: same weights, same scores
    logits, state = module(ids)                        # ids (B, T) long -> logits (B, T, V)
    ...train it on, on any device...
    tuned = charlstm.torch.from_torch(module, model.vocab)     # a charlstm Model again
    charlstm.torch.save_torch(tuned, "tuned.pt")      # loadable with torch.load(weights_only=True)
    tuned = charlstm.torch.load_torch("tuned.pt")

The module and the exact mapping of every cell's weights: charlstm/export/torch_module.py and
docs/handoff.md. PyTorch is imported only when one of these functions is called.
"""

from __future__ import annotations

from charlstm.api import Model
from charlstm import validate
from charlstm.export.formats import torch_module
from charlstm.files import require_regular_file


def to_torch(model: Model, dtype=None):
    """A `CharModel` (torch.nn.Module) with the model's weights, on the CPU, in eval mode.

    forward(ids (B, T) long, state=None) -> (logits (B, T, V), state): batch first; the state is
    PyTorch's, (h, c) each (L, B, H) for the LSTM cells, h (L, B, H) for GRU and RNN. dtype:
    torch.float32 unless given (torch.float64 for checks).
    """
    impl = torch_module()
    return impl.to_torch(model, impl.torch.float32 if dtype is None else dtype)


def from_torch(module, vocab, cell: str | None = None, dropout: float | None = None) -> Model:
    """A charlstm Model from a CharModel or its state_dict (any device, any floating dtype; the
    weights are copied to the CPU as float32) and the vocabulary it was trained with.

    A bare state_dict gives its cell by its shapes except lstm/peephole (by the peephole keys);
    `cell` checks it, `dropout` sets the config's (0 unless given; a CharModel knows its own).
    """
    params, config = torch_module().read_module(module, len(vocab), cell=cell, dropout=dropout)
    return Model(params, config, vocab)


def save_torch(model: Model, path) -> None:
    """Write the model as a .pt file, atomically: {"format": "charlstm-torch", "version": 1,
    "config": {...}, "vocab": {...}, "state_dict": {...}} of plain values and CPU float32
    tensors, so torch.load(path, weights_only=True) reads it."""
    torch_module().write_pt(path, model.params, model.config, model.vocab)


def load_torch(path) -> Model:
    """A Model from a file written by save_torch (read with weights_only=True: a file holding
    pickled Python objects is refused with one line). The file is looked at before PyTorch is
    imported: a name that does not exist is that, not a missing PyTorch."""
    require_regular_file(validate.path(path, "path"), "charlstm .pt file")
    return Model(*torch_module().read_pt(path))


__all__ = ["to_torch", "from_torch", "save_torch", "load_torch"]
