"""Handing a model to PyTorch and ONNX Runtime and back (charlstm.torch, charlstm.onnx,
charlstm/export/): the same scores, the same parameters after a round trip, PyTorch's training
brought back, .pt and .onnx files, one-line errors, the `export` and `import` commands, and the
code blocks of docs/handoff.md as written.

Two kinds of check:
- for every cell registered in charlstm.nn.cells.CELLS, charlstm's own forward against PyTorch and
  ONNX Runtime (so each cell is tested here as soon as its kernel lands);
- for every cell export/layouts.py maps (lstm, peephole, gru, rnn), registered or not, PyTorch and
  ONNX Runtime against the cell's equations written out below in NumPy, through a stand-in model,
  so that the mappings are checked before the kernels exist.
CUDA is not available here: tensors of other dtypes (float64, float16, bfloat16) and on the meta
device stand in for a state_dict from another device.
"""

from __future__ import annotations

import contextlib
import fractions
import io
import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

import charlstm  # noqa: E402
import charlstm.onnx  # noqa: E402
import charlstm.torch as ct  # noqa: E402
from charlstm.cli import main  # noqa: E402
from charlstm.data.vocab import build_vocab  # noqa: E402
from charlstm.errors import CharlstmError  # noqa: E402
from charlstm.export import torch_module  # noqa: E402
from charlstm.export.layouts import LAYOUTS, from_torch_arrays  # noqa: E402
from charlstm.model import ModelConfig, State, forward, init_params, zero_state  # noqa: E402
from charlstm.nn.cells import CELLS, reference  # noqa: E402

REGISTERED = sorted(CELLS)
INPUTS = [0, 5]          # embedding sizes: a one-hot input, and an embedding of 5
MAPPED = sorted(LAYOUTS)
DOC = Path(__file__).parent.parent / "docs" / "handoff.md"   # its code blocks run as written
TEXT = "".join(f"The line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(12))
HELD_OUT = "The lazy dog jumps over the quick brown fox: line 7.\nThe end.\n"


@pytest.fixture
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def close(ours, theirs, tol, what=""):
    """max |ours - theirs| <= tol * max(1, max |theirs|): relative to the values' scale."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    assert ours.shape == theirs.shape, (what, ours.shape, theirs.shape)
    err = np.abs(ours - theirs).max()
    assert err <= tol * max(1.0, np.abs(theirs).max()), f"{what}: max difference {err:.3g}"


def one_line(error: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(error.value)
    assert "\n" not in message and message, message
    for needle in needles:
        assert needle.lower() in message.lower(), message
    return message


def make_model(cell="lstm", H=6, L=2, dropout=0.0, dtype=np.float32, seed=0, embedding_size=0) -> charlstm.Model:
    """A registered cell's model with every parameter (biases too) away from its initial value;
    embedding_size 0 reads one-hot vectors, more an embedding (nn.Embedding in PyTorch)."""
    vocab = build_vocab(TEXT)
    config = ModelConfig(vocab_size=len(vocab), hidden_size=H, num_layers=L, dropout=dropout, cell=cell,
                         embedding_size=embedding_size)
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, np.float64)
    params = {k: (p + 0.3 * rng.standard_normal(p.shape)).astype(dtype) for k, p in params.items()}
    return charlstm.Model(params, config, vocab)


def random_state(cell_state, L, B, H, dtype, seed=1) -> State:
    rng = np.random.default_rng(seed)
    return State(**{part: (0.5 * rng.standard_normal((L, B, H))).astype(dtype) for part in cell_state})


def torch_state(state: State, cell_state, dtype=None):
    parts = [torch.from_numpy(getattr(state, part)) for part in cell_state]
    parts = [p if dtype is None else p.to(dtype) for p in parts]
    return tuple(parts) if len(parts) == 2 else parts[0]


def batch(vocab, T=25, B=3, seed=2):
    """(T, B) ids of TEXT at random offsets, and the next symbols."""
    ids = vocab.encode(TEXT).astype(np.int64)
    starts = np.random.default_rng(seed).integers(0, len(ids) - T - 1, size=B)
    window = np.stack([ids[s:s + T + 1] for s in starts], axis=1)
    return window[:-1], window[1:]


def torch_logits(module, inputs, state):
    """CharModel's scores for time-major inputs, as charlstm lays them out: (T*B, V)."""
    with torch.no_grad():
        logits, final = module(torch.from_numpy(inputs.T.copy()), state)
    return logits.transpose(0, 1).reshape(-1, logits.shape[-1]).numpy(), final


def nll(logits, targets) -> float:
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(targets)), targets].mean())


# --- every registered cell: charlstm against PyTorch ---------------------------------------------

@pytest.mark.parametrize("cell", REGISTERED)
def test_layouts_are_the_registered_cells_own(cell):
    layout, record = LAYOUTS[cell], CELLS[cell]
    assert layout.state == record.state
    for D, H in ((7, 3), (3, 5)):
        assert layout.param_shapes(D, H) == {k: tuple(s) for k, s in record.param_shapes(D, H).items()}


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_torch_scores_and_loss_equal_charlstms_float32(cell, embedding_size):
    model = make_model(cell, embedding_size=embedding_size)
    config = model.config
    inputs, targets = batch(model.vocab)
    state = random_state(CELLS[cell].state, config.num_layers, inputs.shape[1], config.hidden_size, np.float32)
    logits, final, _ = forward(model.params, config, inputs, state)
    module = ct.to_torch(model)
    assert isinstance(module, torch.nn.Module) and not module.training
    t_logits, t_final = torch_logits(module, inputs, torch_state(state, CELLS[cell].state))
    close(logits, t_logits, 1e-5, "logits")
    assert nll(logits, targets.reshape(-1)) == pytest.approx(nll(t_logits, targets.reshape(-1)), rel=1e-5)
    t_final = t_final if isinstance(t_final, tuple) else (t_final,)
    for part, t in zip(CELLS[cell].state, t_final):
        close(getattr(final, part), t.numpy(), 1e-5, f"final {part}")


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_torch_scores_equal_charlstms_float64(cell, embedding_size):
    model = make_model(cell, dtype=np.float64, embedding_size=embedding_size)
    inputs, _ = batch(model.vocab, T=40, B=2)
    state = zero_state(model.config, 2, np.float64)
    logits, _, _ = forward(model.params, model.config, inputs, state)
    module = ct.to_torch(model, dtype=torch.float64)
    t_logits, _ = torch_logits(module, inputs, None)
    assert t_logits.dtype == np.float64
    close(logits, t_logits, 1e-10, "logits")


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_round_trip_gives_identical_parameters(cell, embedding_size):
    model = make_model(cell, dropout=0.25, embedding_size=embedding_size)
    back = ct.from_torch(ct.to_torch(model), model.vocab)
    assert back.config == model.config
    assert set(back.params) == set(model.params)
    for key, p in model.params.items():
        assert back.params[key].dtype == np.float32
        np.testing.assert_array_equal(back.params[key], p, err_msg=key)
    # a plain state_dict gives the same, with the cell named or inferred
    state_dict = ct.to_torch(model).state_dict()
    again = ct.from_torch(state_dict, model.vocab, cell=cell, dropout=0.25)
    assert again.config == model.config
    for key, p in model.params.items():
        np.testing.assert_array_equal(again.params[key], p, err_msg=key)


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_imported_params_do_not_share_memory_with_the_module(cell, embedding_size):
    model = make_model(cell, embedding_size=embedding_size)
    module = ct.to_torch(model)
    back = ct.from_torch(module, model.vocab)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    for key, p in model.params.items():
        np.testing.assert_array_equal(back.params[key], p, err_msg=key)


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_trained_on_in_torch_and_imported_back_scores_as_torch(cell, embedding_size):
    torch.manual_seed(0)
    model = make_model(cell, dropout=0.1, embedding_size=embedding_size)
    module = ct.to_torch(model).train()
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    inputs, targets = batch(model.vocab, T=30, B=4)
    x, y = torch.from_numpy(inputs.T.copy()), torch.from_numpy(targets.T.copy())
    for _ in range(3):
        logits, _ = module(x)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    ids = torch.from_numpy(model.vocab.encode(HELD_OUT).astype(np.int64))
    with torch.no_grad():
        logits, _ = module(ids[None, :-1])
        torch_loss = torch.nn.functional.cross_entropy(logits[0], ids[1:]).item()

    tuned = ct.from_torch(module, model.vocab)
    assert any(not np.array_equal(tuned.params[k], model.params[k]) for k in model.params), "nothing trained"
    ours = tuned.evaluate(HELD_OUT)
    assert ours["symbols"] == len(ids) - 1
    assert ours["nats_per_char"] == pytest.approx(torch_loss, rel=1e-5)
    assert charlstm.evaluate(tuned, text=HELD_OUT)["nats_per_char"] == pytest.approx(torch_loss, rel=1e-5)


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_a_state_dict_of_another_dtype_loads_as_float32(cell, dtype, embedding_size):
    """What a GPU-trained state_dict looks like here: another dtype (a CUDA one would be moved the
    same way, by the same .to(device="cpu", dtype=float32))."""
    model = make_model(cell, embedding_size=embedding_size)
    module = ct.to_torch(model).to(getattr(torch, dtype))
    back = ct.from_torch(module.state_dict(), model.vocab)
    for key, p in model.params.items():
        assert back.params[key].dtype == np.float32
        rel = {"float64": 0, "float16": 1e-3, "bfloat16": 1e-2}[dtype]
        np.testing.assert_allclose(back.params[key], p, rtol=rel, atol=rel, err_msg=key)


def test_a_state_dict_on_the_meta_device_is_refused_in_one_line():
    model = make_model()
    with torch.device("meta"):
        module = torch_module.CharModel(**model.config.to_dict())
    with pytest.raises(CharlstmError) as e:
        ct.from_torch(module, model.vocab)
    one_line(e, "meta device")


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_pt_file_round_trip_with_weights_only(cell, tmp_path, embedding_size):
    model = make_model(cell, dropout=0.2, embedding_size=embedding_size)
    path = tmp_path / "model.pt"
    ct.save_torch(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]         # no temporary file left
    record = torch.load(path, weights_only=True)
    assert record["format"] == "charlstm-torch" and record["version"] == 1
    assert record["config"] == model.config.to_dict() and record["vocab"] == model.vocab.to_dict()
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in record["state_dict"].values())
    back = ct.load_torch(path)
    assert back.config == model.config and back.vocab == model.vocab
    for key, p in model.params.items():
        np.testing.assert_array_equal(back.params[key], p, err_msg=key)


# --- every mapped cell, registered or not: PyTorch and ONNX against the equations ----------------

def reference_step(cell, p, x, h, c):
    """One step of the cell as charlstm's textbook twin writes it (nn/cells/reference.py), x (B, D),
    h and c (B, H)."""
    if cell == "rnn":
        return reference.rnn_step_forward(x, h, p["Wx"], p["Wh"], p["b"])[0], None
    if cell == "gru":
        return reference.gru_step_forward(x, h, p["Wx"], p["Wh"], p["bx"], p["bh"])[0], None
    if cell == "lstm":
        return reference.lstm_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"])[:2]
    return reference.peephole_step_forward(x, h, c, p["Wx"], p["Wh"], p["b"], p["p_i"], p["p_f"], p["p_o"])[:2]


def reference_forward(cell, params, V, L, ids, state):
    """ids (T, B), state {part: (L, B, H)} -> logits (T, B, V), final state, in float64."""
    x = np.eye(V)[ids]
    final = {part: [] for part in state}
    for l in range(L):
        p = {k.split(".", 2)[2]: v.astype(np.float64) for k, v in params.items() if k.startswith(f"{cell}.{l}.")}
        h, c = state["h"][l], state["c"][l] if "c" in state else None
        outputs = []
        for t in range(len(x)):
            h, c = reference_step(cell, p, x[t], h, c)
            outputs.append(h)
        x = np.stack(outputs)
        final["h"].append(h)
        if c is not None:
            final["c"].append(c)
    logits = x @ params["head.W"].astype(np.float64) + params["head.b"]
    return logits, {part: np.stack(v) for part, v in final.items()}


@dataclass(frozen=True)
class StandInConfig:
    """ModelConfig's fields without its check that the cell is registered."""
    vocab_size: int
    hidden_size: int
    num_layers: int
    dropout: float
    cell: str
    embedding_size: int = 0

    def to_dict(self):
        return asdict(self)


def stand_in_model(cell, V=9, H=5, L=2, seed=3):
    rng = np.random.default_rng(seed)
    layout = LAYOUTS[cell]
    params = {}
    for l in range(L):
        for key, shape in layout.param_shapes(V if l == 0 else H, H).items():
            params[f"{cell}.{l}.{key}"] = (0.6 * rng.standard_normal(shape)).astype(np.float32)
    params["head.W"] = rng.standard_normal((H, V)).astype(np.float32)
    params["head.b"] = rng.standard_normal(V).astype(np.float32)
    vocab = charlstm.Vocab(tuple("abcdefghi"[:V]), unit="codepoint")
    return SimpleNamespace(params=params, config=StandInConfig(V, H, L, 0.0, cell), vocab=vocab)


@pytest.mark.parametrize("cell", MAPPED)
def test_torch_mapping_follows_the_cells_equations(cell):
    model = stand_in_model(cell)
    c = model.config
    rng = np.random.default_rng(4)
    ids = rng.integers(0, c.vocab_size, size=(7, 3))
    state = {part: 0.5 * rng.standard_normal((c.num_layers, 3, c.hidden_size)) for part in LAYOUTS[cell].state}
    ref_logits, ref_final = reference_forward(cell, model.params, c.vocab_size, c.num_layers, ids, state)
    module = torch_module.to_torch(model, torch.float64)
    t_state = tuple(torch.from_numpy(state[p]) for p in LAYOUTS[cell].state)
    with torch.no_grad():
        logits, final = module(torch.from_numpy(ids.T.copy()), t_state if len(t_state) == 2 else t_state[0])
    close(logits.numpy().transpose(1, 0, 2), ref_logits, 1e-10, "logits")
    final = final if isinstance(final, tuple) else (final,)
    for part, t in zip(LAYOUTS[cell].state, final):
        close(t.numpy(), ref_final[part], 1e-10, f"final {part}")
    # and back: the state_dict's arrays give the same parameters
    params = from_torch_arrays({k: v.numpy() for k, v in module.float().state_dict().items()}, cell, c.num_layers)
    for key, p in model.params.items():
        np.testing.assert_array_equal(params[key], p, err_msg=key)


def test_peephole_module_trains_like_any_module():
    model = stand_in_model("peephole")
    module = torch_module.to_torch(model).train()
    logits, (h, c) = module(torch.tensor([[0, 1, 2, 3]]))
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    assert h.shape == c.shape == (2, 1, 5)


@pytest.mark.parametrize("cell", MAPPED)
def test_onnx_mapping_follows_the_cells_equations(cell, ort):
    import onnx
    from charlstm.export.onnx_graph import to_onnx
    model = stand_in_model(cell)
    c = model.config
    rng = np.random.default_rng(5)
    ids = rng.integers(0, c.vocab_size, size=(7, 3))
    state = {part: (0.5 * rng.standard_normal((c.num_layers, 3, c.hidden_size))).astype(np.float32)
             for part in LAYOUTS[cell].state}
    ref_logits, ref_final = reference_forward(cell, model.params, c.vocab_size, c.num_layers, ids, state)
    proto = to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"ids": ids, **{f"{p}0": s for p, s in state.items()}})
    close(outputs[0], ref_logits, 1e-5, "logits")
    for part, out in zip(LAYOUTS[cell].state, outputs[1:]):
        close(out, ref_final[part], 1e-5, f"final {part}")


# --- ONNX for every registered cell --------------------------------------------------------------

@pytest.mark.parametrize("cell", REGISTERED)
def test_onnx_graph_passes_the_checker_and_says_what_it_is(cell, ort):
    import onnx
    model = make_model(cell)
    proto = charlstm.onnx.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    props = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(props["charlstm.config"]) == model.config.to_dict()
    assert json.loads(props["charlstm.vocab"]) == model.vocab.to_dict()
    names = [i.name for i in proto.graph.input]
    assert names == ["ids", *(f"{p}0" for p in CELLS[cell].state)]
    assert [o.name for o in proto.graph.output] == ["logits", *(f"{p}T" for p in CELLS[cell].state)]
    ops = {n.op_type for n in proto.graph.node}
    assert LAYOUTS[cell].onnx_op in ops and "OneHot" in ops


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_onnxruntime_scores_a_whole_text_as_charlstm(cell, ort, tmp_path, embedding_size):
    model = make_model(cell, embedding_size=embedding_size)
    config = model.config
    inputs, _ = batch(model.vocab, T=60, B=3)
    state = random_state(CELLS[cell].state, config.num_layers, 3, config.hidden_size, np.float32)
    logits, final, _ = forward(model.params, config, inputs, state)
    path = tmp_path / "model.onnx"
    charlstm.onnx.save_onnx(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"ids": inputs, **{f"{p}0": getattr(state, p) for p in CELLS[cell].state}})
    close(outputs[0].reshape(-1, config.vocab_size), logits, 1e-5, "logits")
    for part, out in zip(CELLS[cell].state, outputs[1:]):
        close(out, getattr(final, part), 1e-5, f"final {part}")


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_onnxruntime_symbol_by_symbol_with_the_state_carried(cell, ort, embedding_size):
    model = make_model(cell, embedding_size=embedding_size)
    config = model.config
    ids = model.vocab.encode(HELD_OUT).astype(np.int64)[:, None]           # (T, 1)
    logits, _, _ = forward(model.params, config, ids, zero_state(config, 1))
    session = ort.InferenceSession(charlstm.onnx.to_onnx(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    state = {f"{p}0": np.zeros((config.num_layers, 1, config.hidden_size), np.float32) for p in CELLS[cell].state}
    steps = []
    for t in range(len(ids)):
        out, *final = session.run(None, {"ids": ids[t:t + 1], **state})
        state = dict(zip(state, final))
        steps.append(out[0])
    close(np.concatenate(steps), logits, 1e-5, "logits step by step")


# --- errors: one line each -----------------------------------------------------------------------

def test_a_pickled_pt_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "charlstm-torch", "payload": fractions.Fraction(1, 3)}, path)
    with pytest.raises(CharlstmError) as e:
        ct.load_torch(path)
    one_line(e, "pickled", "fractions.Fraction", "weights_only")


@pytest.mark.parametrize("content, needle", [
    (b"not a torch file at all" * 10, "not a PyTorch file"),
    (b"", "not a PyTorch file"),
])
def test_a_file_that_is_not_torchs_is_refused_in_one_line(tmp_path, content, needle):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(CharlstmError) as e:
        ct.load_torch(path)
    one_line(e, needle)


def test_pt_records_that_are_not_charlstms_are_refused(tmp_path):
    model = make_model()
    good = torch.load(_saved(model, tmp_path), weights_only=True)
    cases = {
        "bare state_dict": (good["state_dict"], "from_torch(state_dict, vocab)"),
        "a later version": ({**good, "version": 2}, "version 2"),
        "no vocab": ({k: v for k, v in good.items() if k != "vocab"}, "no vocab record"),
        "a vocabulary of another size": ({**good, "vocab": {**good["vocab"], "symbols": good["vocab"]["symbols"][:-1]}},
                                         "symbols"),
        "a config of another width": ({**good, "config": {**good["config"], "hidden_size": 7}}, "hidden_size 7"),
        "a config of fewer layers": ({**good, "config": {**good["config"], "num_layers": 1}}, "num_layers 1"),
    }
    for name, (record, needle) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(record, path)
        with pytest.raises(CharlstmError) as e:
            ct.load_torch(path)
        one_line(e, needle, str(path))
    with pytest.raises(CharlstmError) as e:
        ct.load_torch(tmp_path / "missing.pt")
    one_line(e, "no such file")


def _saved(model, tmp_path) -> Path:
    path = tmp_path / "good.pt"
    ct.save_torch(model, path)
    return path


def test_state_dicts_of_the_wrong_shape_keys_or_vocabulary_are_refused():
    model = make_model()
    good = ct.to_torch(model).state_dict()
    V, H = model.config.vocab_size, model.config.hidden_size
    cases = {
        "missing key": ({k: v for k, v in good.items() if k != "rnn.bias_hh_l1"}, "missing rnn.bias_hh_l1"),
        "extra key": ({**good, "rnn.extra": torch.zeros(3)}, "'rnn.extra'"),
        "a weight of the wrong shape": ({**good, "rnn.weight_hh_l1": torch.zeros(4 * H, H + 1)},
                                        "rnn.weight_hh_l1 has shape"),
        "no blocks fit": ({**good, "rnn.weight_ih_l0": torch.zeros(2 * H, V)}, "no cell has"),
        "integer weights": ({**good, "head.bias": torch.zeros(V, dtype=torch.int64)}, "not floating point"),
        "NaN": ({**good, "head.bias": torch.full((V,), float("nan"))}, "NaN"),
        "not a tensor": ({**good, "head.bias": [0.0] * V}, "not a tensor"),
        "no head": ({k: v for k, v in good.items() if not k.startswith("head.")}, "no head.weight"),
    }
    for name, (state_dict, needle) in cases.items():
        with pytest.raises(CharlstmError) as e:
            ct.from_torch(state_dict, model.vocab)
        one_line(e, needle)
    smaller = build_vocab(TEXT[:30])
    with pytest.raises(CharlstmError) as e:
        ct.from_torch(good, smaller)
    one_line(e, f"predicts {V} symbols", f"holds {len(smaller)}")
    with pytest.raises(CharlstmError) as e:
        ct.from_torch(good, model.vocab, cell="gru")
    one_line(e, "lstm model, not gru")
    with pytest.raises(CharlstmError) as e:
        ct.from_torch(object(), model.vocab)
    one_line(e, "expected a CharModel or its state_dict")


def test_without_torch_or_onnx_the_error_says_how_to_install(monkeypatch):
    model = make_model()
    monkeypatch.setitem(sys.modules, "torch", None)        # import torch now raises ImportError
    with pytest.raises(CharlstmError) as e:
        ct.to_torch(model)
    one_line(e, "pip install '.[torch]'")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(CharlstmError) as e:
        charlstm.onnx.to_onnx(model)
    one_line(e, "pip install '.[onnx]'")


# --- the command line ----------------------------------------------------------------------------

def invoke(root: Path, *args):
    cwd = os.getcwd()
    os.chdir(root)
    try:
        return CliRunner().invoke(main, [str(a) for a in args])
    finally:
        os.chdir(cwd)


def fails(root: Path, *args, needle: str):
    before = sorted(p.name for p in root.iterdir())
    result = invoke(root, *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charlstm: error: "), result.stderr
    assert needle.lower() in lines[0].lower(), lines[0]
    assert sorted(p.name for p in root.iterdir()) == before, "something was written"


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_cli_export_torch_and_import_back(cell, tmp_path, embedding_size):
    model = make_model(cell, embedding_size=embedding_size)
    model.save(tmp_path / "model.npz")
    result = invoke(tmp_path, "export", "model.npz", "-o", "model.pt")
    assert result.exit_code == 0, result.output
    assert "model.pt" in result.stderr and result.stdout == ""
    assert torch.load(tmp_path / "model.pt", weights_only=True)["format"] == "charlstm-torch"
    result = invoke(tmp_path, "export", "model.npz", "-o", "copy.bin", "--format", "torch")
    assert result.exit_code == 0, result.output
    result = invoke(tmp_path, "import", "model.pt", "-o", "back.npz")
    assert result.exit_code == 0, result.output
    back = charlstm.load(tmp_path / "back.npz")
    assert back.config == model.config and back.vocab == model.vocab
    for key, p in model.params.items():
        np.testing.assert_array_equal(back.params[key], p, err_msg=key)


@pytest.mark.parametrize("cell", REGISTERED)
@pytest.mark.parametrize("embedding_size", INPUTS)
def test_cli_export_onnx(cell, tmp_path, ort, embedding_size):
    model = make_model(cell, embedding_size=embedding_size)
    model.save(tmp_path / "model.npz")
    for args in (["-o", "model.onnx"], ["-o", "model.bin", "--format", "onnx"]):
        result = invoke(tmp_path, "export", "model.npz", *args)
        assert result.exit_code == 0, result.output
        session = ort.InferenceSession(str(tmp_path / args[1]), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()][0] == "ids"


def test_cli_bad_inputs_fail_in_one_line_and_write_nothing(tmp_path):
    make_model().save(tmp_path / "model.npz")
    torch.save({"x": fractions.Fraction(1, 2)}, tmp_path / "evil.pt")
    fails(tmp_path, "export", "model.npz", "-o", "model.txt", needle="--format")
    fails(tmp_path, "export", "missing.npz", "-o", "model.pt", needle="no such checkpoint")
    fails(tmp_path, "export", "model.npz", "-o", "no/such/dir/model.pt", needle="cannot write")
    fails(tmp_path, "import", "evil.pt", "-o", "back.npz", needle="pickled")
    fails(tmp_path, "import", "model.npz", "-o", "back.npz", needle="not a PyTorch file")
    fails(tmp_path, "import", "missing.pt", "-o", "back.npz", needle="no such file")


# --- the code of docs/handoff.md, as written -----------------------------------------------------

def doc_block(marker: str) -> str:
    found = re.search(rf"<!-- test: {re.escape(marker)} -->\s*```python\n(.*?)```", DOC.read_text("utf-8"), re.S)
    assert found, f"no block {marker!r} in {DOC}"
    return found.group(1)


def run_block(code: str, cwd: Path) -> str:
    out = io.StringIO()
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(DOC), "exec"), {"__name__": "__doc_block__"})
    finally:
        os.chdir(previous)
    return out.getvalue()


@pytest.mark.parametrize("cell", REGISTERED)
def test_the_docs_onnxruntime_generation_loop_runs_as_written(cell, tmp_path, ort):
    model = make_model(cell)
    charlstm.onnx.save_onnx(model, tmp_path / "best.onnx")
    code = doc_block("onnxruntime generation")
    assert len([line for line in code.splitlines() if line.strip()]) <= 17
    text = run_block(code, tmp_path)[:-1]              # print's newline
    assert text.startswith("The ") and len(model.vocab.encode(text)) == 4 + 200


def test_the_docs_gpu_walk_through_runs_as_written(tmp_path):
    model = make_model("lstm", dropout=0.1)
    (tmp_path / "run").mkdir()
    model.save(tmp_path / "run" / "best.npz")
    (tmp_path / "run" / "corpus.txt").write_text(TEXT, encoding="utf-8")
    code = doc_block("gpu walk-through")
    sizes = "steps, batch_size, seq_length = 2000, 64, 128\n"
    assert sizes in code
    run_block(code.replace(sizes, "steps, batch_size, seq_length = 3, 4, 16\n"), tmp_path)
    tuned = charlstm.load(tmp_path / "run" / "tuned.npz")
    assert tuned.config == model.config
    assert any(not np.array_equal(tuned.params[k], model.params[k]) for k in model.params)


@pytest.mark.parametrize("cell", sorted(set(REGISTERED) - {"peephole"}))
def test_the_docs_plain_pytorch_block_rebuilds_the_network(cell, tmp_path):
    model = make_model(cell)
    ct.save_torch(model, tmp_path / "best.pt")
    code = doc_block("plain pytorch")
    scope = {}
    previous = os.getcwd()
    os.chdir(tmp_path)
    try:
        exec(compile(code, str(DOC), "exec"), scope)
    finally:
        os.chdir(previous)
    expected, _ = torch_logits(ct.to_torch(model), np.array([[0], [1], [2]]), None)
    close(scope["logits"].detach().numpy()[0], expected, 1e-6, "logits")
