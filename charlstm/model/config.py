"""The shape of a network (serialised into every checkpoint) and the state a stack carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

from charlstm import validate
from charlstm.errors import ArgumentError, CharlstmError
from charlstm.validate import Fields
from charlstm.nn.cells import CELLS, Cell, get_cell


def check_stack(config) -> None:
    """The sizes every stack of cells shares (ModelConfig's, and model/sequence.py's
    SequenceConfig's): a vocabulary, units, layers, a dropout rate, an embedding width, a cell."""
    if config.vocab_size < 1:
        raise CharlstmError("vocab_size must be at least 1")
    if config.hidden_size < 1:
        raise CharlstmError("hidden size must be at least 1")
    if config.num_layers < 1:
        raise CharlstmError("the number of layers must be at least 1")
    if not 0.0 <= config.dropout < 1.0:
        raise CharlstmError("dropout must be in [0, 1)")
    if config.embedding_size < 0:
        raise CharlstmError("the embedding size must be 0 (one-hot input) or more")
    if config.cell not in CELLS:
        raise CharlstmError(f"unknown cell {config.cell!r}: use one of {', '.join(CELLS)}")


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
    # N, the labels the model is conditioned on (0: none, every model before labels): symbol k
    # under label l reads embedding[k] + label_embedding[l] (see model/stack.py), so labels need
    # an embedding (E > 0).
    num_labels: int = 0

    def __post_init__(self):
        if self.embedding_size is None:          # frozen: the one place the default is filled in
            # (so build a config with its sizes, not by replace() on another's: that would copy
            # the other's filled-in width)
            object.__setattr__(self, "embedding_size", self.hidden_size)
        check_stack(self)
        if self.num_labels < 0:
            raise CharlstmError("the number of labels must be 0 (none) or more")
        if self.num_labels and not self.embedding_size:
            raise CharlstmError("a model conditioned on labels reads them through its input embedding: "
                                "give an embedding size above 0 (0 is a one-hot input)")

    @property
    def cell_type(self) -> Cell:
        """The cell's record: its math, parameter shapes, state and traced quantities."""
        return get_cell(self.cell)

    def to_dict(self) -> dict:
        # num_labels only when there are labels: the record of a model without them stays the one
        # every charlstm before labels wrote and reads
        record = asdict(self)
        if not self.num_labels:
            del record["num_labels"]
        return record

    @classmethod
    def from_dict(cls, d: dict, where: str = "model config") -> "ModelConfig":
        """From a checkpoint's record (untrusted JSON): each field read by its type through
        charlstm.validate; checkpoints without dropout had none, those of format 1 were LSTMs, and
        those before format 3 read one-hot input (embedding_size 0); those before format 4 have
        no labels (num_labels 0)."""
        f = Fields(d, where)
        return cls(vocab_size=f.integer("vocab_size"), hidden_size=f.integer("hidden_size"),
                   num_layers=f.integer("num_layers"), dropout=f.number("dropout", default=0.0),
                   cell=f.text("cell", default="lstm"), embedding_size=f.integer("embedding_size", default=0),
                   num_labels=f.integer("num_labels", lo=0, default=0))


@dataclass(frozen=True)
class LabelSet:
    """The labels of a model conditioned on them: their names, in the order of label_embedding's
    rows, and how many training examples had each (the prior p(label) of Model.classify).
    Serialised into the checkpoint beside the vocabulary."""

    names: tuple[str, ...]
    examples: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "examples", tuple(int(n) for n in self.examples))
        if not self.names or len(self.names) != len(self.examples):
            raise CharlstmError(f"{len(self.names)} label names for {len(self.examples)} counts of examples")
        if len(set(self.names)) != len(self.names):
            raise CharlstmError("the label names are not distinct")
        if min(self.examples) < 0 or sum(self.examples) == 0:
            raise CharlstmError("the counts of examples per label must be >= 0, and not all 0")

    def __len__(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """The row of label `name`; an unknown name is one line listing the labels."""
        if name not in self.names:
            raise ArgumentError("label", f"{{name}} {validate.shown(name)} is not one of the model's labels "
                                f"({self.listed()})")
        return self.names.index(name)

    def listed(self) -> str:
        """The names for a message, each quoted (they come from files: nothing in them acts on a terminal)."""
        return ", ".join(validate.shown(n) for n in self.names)

    def priors(self) -> np.ndarray:
        """(N,) p(label): each label's share of the training examples."""
        counts = np.array(self.examples, dtype=np.float64)
        return counts / counts.sum()

    def to_dict(self) -> dict:
        return {"names": list(self.names), "examples": list(self.examples)}

    @classmethod
    def from_dict(cls, d: dict, where: str = "the labels") -> "LabelSet":
        f = Fields(d, where)
        names = f.strings("names", nonempty=True)
        examples = f.record.get("examples")
        if not isinstance(examples, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                                     for n in examples):
            raise CharlstmError(f"{where}: 'examples' must be a list of whole numbers >= 0")
        try:
            return cls(tuple(names), tuple(examples))
        except CharlstmError as e:
            raise CharlstmError(f"{where}: {e}") from None


def label_row(config: ModelConfig, labels: LabelSet | None, name) -> int | None:
    """The row of label `name` for decoding or scoring with this model: a model conditioned on
    labels needs one of its labels, and a model without labels takes none (both refused in one
    line, here, for every caller)."""
    if not config.num_labels:
        if name is not None:
            raise ArgumentError("label", "{name}: this model is not conditioned on labels (train one on a "
                                "labelled file with --labels)")
        return None
    if labels is None or len(labels) != config.num_labels:
        raise CharlstmError("the model is conditioned on labels but their names are missing")
    if name is None:
        raise ArgumentError("label", f"this model is conditioned on a label: give {{name}}, one of {labels.listed()}")
    if not isinstance(name, str):
        raise ArgumentError("label", f"{{name}} must be a label's name (a str), got {type(name).__name__}")
    return labels.index(name)


def unconditioned(config: ModelConfig, what: str) -> None:
    """`what` reads plain symbols with no label: a model conditioned on labels is refused in one line.
    (config: a ModelConfig, or anything with its fields; one without num_labels has none.)"""
    if getattr(config, "num_labels", 0):
        raise CharlstmError(f"{what} does not support a model conditioned on labels (trained with --labels) yet")


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


__all__ = ["ModelConfig", "LabelSet", "State", "label_row", "unconditioned", "zero_state"]
