"""The shape of a network (serialised into every checkpoint) and the state a stack carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.validate import Fields
from charlstm.nn.cells import CELLS, Cell, get_cell


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a network. Serialised into every checkpoint."""

    vocab_size: int
    hidden_size: int = 256
    num_layers: int = 3
    dropout: float = 0.2   # measured: closes most of the train/validation gap within minutes
    cell: str = "lstm"     # a name in charlstm.nn.cells.CELLS
    # E, the size of each symbol's learnt input vector (see model/stack.py); 0 is the one-hot
    # input that every model of checkpoint formats 1 and 2 has. None: as wide as a layer, E = H,
    # filled in here. Measured (docs/notes/input-embedding.md): E = H learnt more per step than
    # the one-hot input on the tweets and tinyshakespeare and as much on code, and a 1 x 32 LSTM
    # still learns `remember`'s gap of 50 at E = 32, where E = 8 and E = 256 did not.
    embedding_size: int | None = None

    def __post_init__(self):
        if self.embedding_size is None:          # frozen: the one place the default is filled in
            # (so build a config with its sizes, not by replace() on another's: that would copy
            # the other's filled-in width)
            object.__setattr__(self, "embedding_size", self.hidden_size)
        if self.vocab_size < 1:
            raise CharlstmError("vocab_size must be at least 1")
        if self.hidden_size < 1:
            raise CharlstmError("hidden size must be at least 1")
        if self.num_layers < 1:
            raise CharlstmError("the number of layers must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise CharlstmError("dropout must be in [0, 1)")
        if self.embedding_size < 0:
            raise CharlstmError("the embedding size must be 0 (one-hot input) or more")
        if self.cell not in CELLS:
            raise CharlstmError(f"unknown cell {self.cell!r}: use one of {', '.join(CELLS)}")

    @property
    def cell_type(self) -> Cell:
        """The cell's record: its math, parameter shapes, state and traced quantities."""
        return get_cell(self.cell)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "model config") -> "ModelConfig":
        """From a checkpoint's record (untrusted JSON): each field read by its type through
        charlstm.validate; checkpoints without dropout had none, those of format 1 were LSTMs, and
        those before format 3 read one-hot input (embedding_size 0)."""
        f = Fields(d, where)
        return cls(vocab_size=f.integer("vocab_size"), hidden_size=f.integer("hidden_size"),
                   num_layers=f.integer("num_layers"), dropout=f.number("dropout", default=0.0),
                   cell=f.text("cell", default="lstm"), embedding_size=f.integer("embedding_size", default=0))


class State(NamedTuple):
    """The recurrent state of a whole stack, passed in and returned, never kept in an object, so
    that truncated BPTT can carry it from one chunk to the next and sampling from one symbol to
    the next. Each part is (num_layers, B, H); `c` is None for cells without a memory cell."""

    h: np.ndarray
    c: np.ndarray | None = None

    def layer(self, cell: Cell, index: int) -> tuple:
        """One layer's state as the cell takes it: a tuple of (B, H) arrays in the cell's order."""
        return tuple(getattr(self, part)[index] for part in cell.state)

    @classmethod
    def of_layers(cls, cell: Cell, layers: list[tuple]) -> "State":
        """The stack's state from each layer's state tuple."""
        return cls(**{part: np.stack([s[k] for s in layers]) for k, part in enumerate(cell.state)})


def zero_state(config: ModelConfig, batch_size: int, dtype=np.float32) -> State:
    shape = (config.num_layers, batch_size, config.hidden_size)
    return State(**{part: np.zeros(shape, dtype=dtype) for part in config.cell_type.state})


__all__ = ["ModelConfig", "State", "zero_state"]
