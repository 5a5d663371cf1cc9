"""charlstm: character-level text generation with recurrent networks written in NumPy.

    import charlstm
    model = charlstm.train("corpus.txt", out_dir="run", max_time=300)        # cell="gru", ...
    print(model.sample(500, temperature=0.8))
    model = charlstm.load("run/best.npz")
    charlstm.evaluate(model, path="heldout.txt")
    t = charlstm.trace(model, "some text")                                     # every unit, every symbol
    charlstm.export_model("run/best.npz", "page.html", precision="int8")      # a page that writes in a browser

Every command of the CLI is one of these calls: train, evaluate, trace_file (trace, neurons, viz),
novelty, export_model, encode_corpus, write_code_corpus, write_tweets, write_synth.

The public names: Model, load, train, evaluate, trace, trace_file, Trace, novelty, export_model,
encode_corpus, write_code_corpus, write_tweets, write_synth, TrainConfig, ModelConfig, Vocab,
build_vocab, CharlstmError, CharlstmWarning. The math lives in charlstm.nn (the cells, their textbook twins in
charlstm.nn.cells.reference, the head, Adam) and charlstm.model (the stack over any cell) as pure
functions; charlstm.torch and charlstm.onnx hand a model to PyTorch and ONNX.

Labels (docs/labels.md): train_classifier(labelled, out_dir, ...) -> Classifier (.predict,
.evaluate), train_tagger(paths, out_dir, ...) -> Tagger (.tag, .evaluate), load_labels_model.
"""

from charlstm.analysis.traces import Trace, trace
from charlstm.api import (Model, encode_corpus, evaluate, export_model, load, novelty, trace_file, train,
                          write_code_corpus, write_synth, write_tweets)
from charlstm.data.vocab import Vocab, build_vocab
from charlstm.errors import CharlstmError, CharlstmWarning
from charlstm.model import ModelConfig
from charlstm.training.config import TrainConfig
# labels: a classifier (one label per text) and a tagger (a class per character); docs/labels.md
from charlstm.api import BayesClassifier, Classifier, Tagger, load_labels_model, train_classifier, train_tagger

__version__ = "0.1.0"

__all__ = ["Model", "load", "train", "evaluate", "trace", "trace_file", "Trace", "novelty", "export_model",
           "encode_corpus", "write_code_corpus", "write_tweets", "write_synth", "TrainConfig", "ModelConfig", "Vocab",
           "build_vocab", "CharlstmError", "CharlstmWarning", "__version__"]
__all__ += ["Classifier", "BayesClassifier", "Tagger", "load_labels_model", "train_classifier", "train_tagger"]
