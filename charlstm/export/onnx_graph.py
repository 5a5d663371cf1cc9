"""A charlstm model as an ONNX graph of ONNX's own recurrent operators (needs the onnx package).

The graph, opset 17, sequence-major as ONNX's LSTM, GRU and RNN operators are (their layout=0),
so no Transpose is needed and a step of generation is a [1, B] input:

    inputs   ids  int64 [T, B]        symbol ids
             h0   float [L, B, H]     the initial state (zeros to start)
             c0   float [L, B, H]     for "lstm" and "peephole" only
    outputs  logits float [T, B, V]   the scores for the symbol after each one read
             hT   float [L, B, H]     the final state, to feed back as h0 (and cT as c0)
             cT   float [L, B, H]

    x = Gather(embedding, ids) (float [T, B, E])   a model with an input embedding
    x = OneHot(ids, V)         (float [T, B, V])   one without
    for each layer l: LSTM | GRU | RNN(x, W_l, R_l, B_l, h0[l], c0[l] [, P_l]) -> Y [T, 1, B, H],
                      x = Squeeze(Y, axis 1)
    logits = x @ head.W + head.b

A model with an embedding reads each id's row of it (charlstm computes the same numbers as one
table, embedding @ Wx, but the graph keeps the factors a user would write: an id outside 0..V-1
is an error there). A model without one reads a one-hot vector, as charlstm's first layer does:
the recurrent operators take only a dense input, and a one-hot vector against W is exactly
charlstm's row lookup in Wx; an id outside 0..V-1 reads a zero vector (OneHot's rule). The weights, in float32, map as export/layouts.py says
(gate blocks reordered to ONNX's i, o, f, c and z, r, h; the GRU with linear_before_reset=1).

The model's metadata (`metadata_props`) holds the config and the vocabulary as JSON under
"charlstm.config" and "charlstm.vocab", so a runtime alone can decode ids back to text.
"""

from __future__ import annotations

import json

import numpy as np

from charlstm.errors import CharlstmError
from charlstm.files import write_atomically
from charlstm.export.layouts import LAYOUTS, onnx_layer
from charlstm.model import unconditioned

OPSET = 17
IR_VERSION = 8        # the IR of opset 17: runtimes older than the onnx package can still read it
FORMAT = "charlstm-onnx"
VERSION = 1


def _onnx():
    try:
        import onnx
    except ImportError:
        raise CharlstmError("the onnx package is not installed: python3 -m pip install '.[onnx]' from the charlstm "
                            "checkout (or pip install onnx onnxruntime)") from None
    return onnx


def to_onnx(model):
    """An onnx.ModelProto computing the model (its .params, .config and .vocab) in float32."""
    unconditioned(model.config, "the ONNX export")
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    config, vocab = model.config, model.vocab
    V, H, L, cell = config.vocab_size, config.hidden_size, config.num_layers, config.cell
    if cell not in LAYOUTS:
        raise CharlstmError(f"no ONNX mapping for the {cell!r} cell")
    layout = LAYOUTS[cell]
    has_c = "c" in layout.state
    initializers, nodes = [], []

    def constant(name, array):
        initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    constant("direction_axis", np.array([1], dtype=np.int64))
    if config.embedding_size:
        constant("embedding", np.asarray(model.params["embedding"], dtype=np.float32))
        nodes.append(helper.make_node("Gather", ["embedding", "ids"], ["x0"], axis=0))
    else:
        constant("vocab_size", np.array(V, dtype=np.int64))
        constant("one_hot_values", np.array([0.0, 1.0], dtype=np.float32))
        nodes.append(helper.make_node("OneHot", ["ids", "vocab_size", "one_hot_values"], ["x0"], axis=-1))
    x = "x0"
    finals = {"h": [], "c": []}
    for l in range(L):
        weights = onnx_layer(model.params, cell, l)
        names = {key: constant(f"{cell}.{l}.{key}", a) for key, a in weights.items()}
        index = constant(f"layer_{l}", np.array([l], dtype=np.int64))
        nodes.append(helper.make_node("Gather", ["h0", index], [f"h0_{l}"], axis=0))   # [1, B, H]
        inputs = [x, names["W"], names["R"], names["B"], "", f"h0_{l}"]
        outputs = [f"y_{l}", f"hT_{l}"]
        attributes = {"hidden_size": H}
        if has_c:
            nodes.append(helper.make_node("Gather", ["c0", index], [f"c0_{l}"], axis=0))
            inputs.append(f"c0_{l}")
            outputs.append(f"cT_{l}")
            if "P" in names:
                inputs.append(names["P"])
        if layout.onnx_op == "GRU":
            attributes["linear_before_reset"] = 1
        if layout.onnx_op == "RNN":
            attributes["activations"] = ["Tanh"]
        nodes.append(helper.make_node(layout.onnx_op, inputs, outputs, name=f"{cell}.{l}", **attributes))
        nodes.append(helper.make_node("Squeeze", [f"y_{l}", "direction_axis"], [f"x{l + 1}"]))   # [T, B, H]
        x = f"x{l + 1}"
        finals["h"].append(f"hT_{l}")
        if has_c:
            finals["c"].append(f"cT_{l}")
    head_W = constant("head.W", np.asarray(model.params["head.W"], dtype=np.float32))
    head_b = constant("head.b", np.asarray(model.params["head.b"], dtype=np.float32))
    nodes.append(helper.make_node("MatMul", [x, head_W], ["scores"]))
    nodes.append(helper.make_node("Add", ["scores", head_b], ["logits"]))
    for part in layout.state:
        nodes.append(helper.make_node("Concat", finals[part], [f"{part}T"], axis=0))

    state_shape = [L, "B", H]
    float_ = TensorProto.FLOAT
    graph_inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["T", "B"])]
    graph_inputs += [helper.make_tensor_value_info(f"{part}0", float_, state_shape) for part in layout.state]
    graph_outputs = [helper.make_tensor_value_info("logits", float_, ["T", "B", V])]
    graph_outputs += [helper.make_tensor_value_info(f"{part}T", float_, state_shape) for part in layout.state]
    graph = helper.make_graph(nodes, f"charlstm_{cell}", graph_inputs, graph_outputs, initializers,
                              doc_string=f"charlstm {L} x {H} {cell}, {V} symbols: ids [T, B] -> logits [T, B, V]")
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="charlstm")
    helper.set_model_props(proto, {
        "charlstm.format": FORMAT, "charlstm.version": str(VERSION),
        "charlstm.config": json.dumps(config.to_dict()),
        "charlstm.vocab": json.dumps(vocab.to_dict(), ensure_ascii=False)})
    onnx.checker.check_model(proto)
    return proto


def save_onnx(model, path) -> None:
    """Write to_onnx(model) to path, atomically."""
    data = to_onnx(model).SerializeToString()
    write_atomically(path, lambda f: f.write(data), "ONNX file")


__all__ = ["to_onnx", "save_onnx", "OPSET", "FORMAT", "VERSION"]
