"""charlstm: character-level text generation with a multi-layer LSTM written in NumPy.

    import charlstm
    model = charlstm.train("corpus.txt", out_dir="run", max_time=300)
    print(model.sample(500, temperature=0.8))
    model = charlstm.load("run/best.npz")
    charlstm.evaluate(model, path="heldout.txt")

The public names: Model, load, train, evaluate, TrainConfig, ModelConfig, Vocab, build_vocab,
CharlstmError. The math lives in charlstm.lstm, charlstm.softmax, charlstm.optim and
charlstm.model as pure functions.
"""

from charlstm.api import Model, evaluate, load, train
from charlstm.errors import CharlstmError
from charlstm.analysis.traces import Trace, trace
from charlstm.model import ModelConfig
from charlstm.training.config import TrainConfig
from charlstm.data.vocab import Vocab, build_vocab

__version__ = "0.1.0"

__all__ = ["Model", "load", "train", "evaluate", "trace", "Trace", "TrainConfig", "ModelConfig", "Vocab", "build_vocab",
           "CharlstmError", "__version__"]
