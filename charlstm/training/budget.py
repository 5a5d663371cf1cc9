"""What a model and a training run would hold in memory, estimated from their sizes
before anything is allocated (validate.fits compares it with the memory available).

The estimates count the arrays that grow with the sizes a user gives and leave out the constant
rest (the interpreter, numpy, a corpus read whole, which has its own bound): they are meant to
catch a --layers of 10^8 or a --sample-length of 10^12 in a moment, not to predict a peak.
"""

from __future__ import annotations

import math

from charlstm import validate
from charlstm.nn.cells import get_cell

# Per layer, time step and stream, a training step keeps the cell's inputs, gates, memory and
# output for the backward pass, its dropout mask and the gradients flowing back: about this many
# vectors of H values for the LSTM (4 gates, c, tanh c, h, the input, a mask, 5 in backward).
TRAIN_VECTORS_PER_UNIT = 14
# Adam keeps two moments beside the weights and their gradients; a checkpoint is written from a copy.
TRAIN_PARAM_COPIES = 5


def param_count(vocab_size: int, hidden_size: int, num_layers: int, embedding_size: int = 0,
                cell: str = "lstm") -> int:
    """The model's parameters, from the shapes the cell declares (no array made: a count of
    10^20 is a number, not an allocation)."""
    c = get_cell(cell)
    V, H, E, L = vocab_size, hidden_size, embedding_size, num_layers

    def layer(D: int) -> int:
        return sum(math.prod(shape) for shape in c.param_shapes(D, H).values())

    return V * E + layer(E or V) + (L - 1) * layer(H) + H * V + V


def check_model(vocab_size: int, hidden_size: int, num_layers: int, embedding_size: int = 0, cell: str = "lstm",
                itemsize: int = 4) -> None:
    """A model's weights fit in memory (Model.create, or a run before its optimiser exists)."""
    def estimate(hidden_size, num_layers, embedding_size):
        return itemsize * param_count(vocab_size, hidden_size, num_layers, embedding_size, cell)

    validate.fits(estimate, {"hidden_size": hidden_size, "num_layers": num_layers, "embedding_size": embedding_size},
                  "the model's weights", floors={"embedding_size": 0})


def check_training(vocab_size: int, hidden_size: int, num_layers: int, embedding_size: int, batch_size: int,
                   seq_length: int, cell: str = "lstm", itemsize: int = 4) -> None:
    """A training step's weights, optimiser, activations and gradients fit in memory."""
    def estimate(hidden_size, num_layers, embedding_size, batch_size, seq_length):
        params = param_count(vocab_size, hidden_size, num_layers, embedding_size, cell)
        per_symbol = num_layers * hidden_size * TRAIN_VECTORS_PER_UNIT + 3 * vocab_size + embedding_size
        return itemsize * (TRAIN_PARAM_COPIES * params + batch_size * seq_length * per_symbol)

    validate.fits(estimate, {"hidden_size": hidden_size, "num_layers": num_layers, "embedding_size": embedding_size,
                             "batch_size": batch_size, "seq_length": seq_length},
                  "training", floors={"embedding_size": 0})



__all__ = ["param_count", "check_model", "check_training"]
