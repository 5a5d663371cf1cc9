"""The factored input: an embedding (V, E) before layer 0's Wx (E, G·H), computed as one table per
forward pass and handed to the one-hot path (model/stack.py). Its gradients against central
differences in float64 for every cell, with carried state and dropout; the table's equivalence
with a one-hot model; its initialisation; decoding through it."""

import numpy as np
import pytest

from charlstm.model import (ModelConfig, State, Stepper, dropout_masks, forward, init_params, input_table,
                            loss_and_grads, param_shapes, zero_state)
from charlstm.nn.cells import CELLS
from charlstm.nn.head import cross_entropy_forward
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def setup(cell, V=6, E=3, H=4, L=2, T=4, B=2, dropout=0.0, seed=0):
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout, cell=cell, embedding_size=E)
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, np.float64)
    for key in params:                     # non-trivial biases and a larger scale than at init
        params[key] = rng.standard_normal(params[key].shape) * 0.6
    inputs = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    state = State(**{part: rng.standard_normal((L, B, H)) * 0.7 for part in config.cell_type.state})
    return config, params, inputs, targets, state


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_gradients_of_the_factored_input_with_carried_state_and_dropout(cell, dropout):
    config, params, inputs, targets, state = setup(cell, dropout=dropout)
    masks = dropout_masks(config, 4, 2, np.random.default_rng(7), np.float64) if dropout else None
    loss, grads, _, dstate = loss_and_grads(params, config, inputs, targets, state, masks)

    def f():
        logits, _, _ = forward(params, config, inputs, state, masks)
        return cross_entropy_forward(logits, targets.reshape(-1))[0]

    assert loss == pytest.approx(f(), rel=1e-14)
    assert set(grads) == set(params) and "embedding" in grads
    for key, p in params.items():
        assert grads[key].shape == p.shape, key
        err = rel_error(grads[key], numerical_gradient(f, p))
        assert err < TOL, f"{cell} {key}: relative error {err:.2e}"
    for name in config.cell_type.state:
        err = rel_error(getattr(dstate, name), numerical_gradient(f, getattr(state, name)))
        assert err < TOL, f"{cell} initial state {name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_an_embedded_model_is_the_one_hot_model_whose_rows_are_its_table(cell):
    config, params, inputs, _, state = setup(cell, V=7, E=2, H=5, L=2, T=6, B=3)
    one_hot = ModelConfig(**{**config.to_dict(), "embedding_size": 0})
    flat = {k: v for k, v in params.items() if k != "embedding"}
    flat[f"{cell}.0.Wx"] = input_table(params, config)
    assert flat[f"{cell}.0.Wx"].shape == param_shapes(one_hot)[f"{cell}.0.Wx"]
    a, a_state, _ = forward(params, config, inputs, state)
    b, b_state, _ = forward(flat, one_hot, inputs, state)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    for part in config.cell_type.state:
        np.testing.assert_allclose(getattr(a_state, part), getattr(b_state, part), rtol=1e-12, atol=1e-12)


def test_parameters_keys_and_shapes_with_an_embedding():
    config = ModelConfig(vocab_size=7, hidden_size=3, num_layers=2, cell="gru", embedding_size=5)
    assert param_shapes(config) == {
        "embedding": (7, 5),
        "gru.0.Wx": (5, 9), "gru.0.Wh": (3, 9), "gru.0.bx": (9,), "gru.0.bh": (9,),
        "gru.1.Wx": (3, 9), "gru.1.Wh": (3, 9), "gru.1.bx": (9,), "gru.1.bh": (9,),
        "head.W": (3, 7), "head.b": (7,),
    }
    assert list(param_shapes(config)) == list(init_params(config, np.random.default_rng(0)))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_first_layer_starts_as_loud_as_a_one_hot_model(cell):
    """The table embedding @ Wx has entries of standard deviation 0.58 at init, as a one-hot
    model's first-layer rows (uniform in +-1) have: neither input starts deaf."""
    V, E, H = 300, 64, 128
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=1, cell=cell, embedding_size=E)
    params = init_params(config, np.random.default_rng(0), np.float64)
    one_hot = init_params(ModelConfig(vocab_size=V, hidden_size=H, num_layers=1, cell=cell, embedding_size=0),
                          np.random.default_rng(0), np.float64)
    assert params["embedding"].std() == pytest.approx(1.0, rel=0.02)
    bound = 1 / np.sqrt(E)
    Wx = params[f"{cell}.0.Wx"]
    assert np.abs(Wx).max() <= bound and np.abs(Wx).max() > 0.95 * bound
    table = input_table(params, config)
    expected = one_hot[f"{cell}.0.Wx"].std()
    assert expected == pytest.approx(1 / np.sqrt(3), rel=0.02)
    assert table.std() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch", [1, 3])
def test_decoding_one_symbol_at_a_time_equals_the_forward_pass(cell, batch):
    config, params, inputs, _, _ = setup(cell, V=9, E=4, H=6, L=3, T=7, B=batch)
    params = {k: (v * 0.5).astype(np.float32) for k, v in params.items()}
    state = zero_state(config, batch, np.float32)
    logits, final, _ = forward(params, config, inputs, state)
    stepper = Stepper(params, config, batch)
    stepper.set_state(state)
    for t in range(inputs.shape[0]):
        np.testing.assert_allclose(stepper.step(inputs[t]), logits.reshape(7, batch, 9)[t], rtol=1e-5, atol=1e-6)
    for part in config.cell_type.state:
        np.testing.assert_allclose(getattr(stepper.state(), part), getattr(final, part), rtol=1e-5, atol=1e-6)


def test_the_embedding_size_is_validated_and_round_trips():
    from charlstm.errors import CharlstmError
    config = ModelConfig(vocab_size=11, hidden_size=8, embedding_size=16)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({"vocab_size": 3, "hidden_size": 2, "num_layers": 1}).embedding_size == 0
    with pytest.raises(CharlstmError, match="embedding size"):
        ModelConfig(vocab_size=3, embedding_size=-1)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_loss_and_every_gradient_equal_pytorchs_embedding_before_the_cell_module(cell):
    """The PyTorch model people write, nn.Embedding(V, E) -> nn.LSTM(E, H) / nn.GRU / nn.RNN (the
    peephole LSTM: charlstm's own module) -> nn.Linear, holding the same weights in float64."""
    torch = pytest.importorskip("torch")
    from charlstm import Model
    from charlstm.data.vocab import build_vocab
    from charlstm.torch import to_torch
    vocab = build_vocab("abcdefgh")
    config, params, inputs, targets, state = setup(cell, V=len(vocab), E=3, H=4, L=2, T=5, B=3)
    loss, grads, final, dstate = loss_and_grads(params, config, inputs, targets, state)

    module = to_torch(Model(params, config, vocab), dtype=torch.float64)
    parts = [torch.from_numpy(getattr(state, part).copy()).requires_grad_() for part in config.cell_type.state]
    logits, t_final = module(torch.from_numpy(inputs.T.copy()), tuple(parts) if len(parts) == 2 else parts[0])
    t_loss = torch.nn.functional.cross_entropy(logits.transpose(0, 1).reshape(-1, config.vocab_size),
                                               torch.from_numpy(targets.reshape(-1)))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-10)

    def same(ours, theirs, what):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-8, atol=1e-10, err_msg=what)

    same(grads["embedding"], module.embedding.weight.grad, "embedding")
    for layer in range(config.num_layers):
        prefix = f"{cell}.{layer}."
        same(grads[prefix + "Wx"], getattr(module.rnn, f"weight_ih_l{layer}").grad.T, prefix + "Wx")
        same(grads[prefix + "Wh"], getattr(module.rnn, f"weight_hh_l{layer}").grad.T, prefix + "Wh")
        same(grads[prefix + ("bx" if cell == "gru" else "b")], getattr(module.rnn, f"bias_ih_l{layer}").grad,
             prefix + "bias")
    same(grads["head.W"], module.head.weight.grad.T, "head.W")
    same(grads["head.b"], module.head.bias.grad, "head.b")
    for part, tensor in zip(config.cell_type.state, parts):
        same(getattr(dstate, part), tensor.grad, f"initial {part}")


def test_a_format_2_checkpoint_resumes_exactly_as_the_same_one_hot_run(tmp_path):
    """A run saved by a charlstm before embeddings (format 2: no embedding_size, no embedding)
    resumes as a one-hot model, to the bits of the same run resumed from its format-3 copy."""
    import json
    import shutil
    import zipfile
    from charlstm.training.loop import TrainConfig, train
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(60))
    config = TrainConfig(batch_size=3, seq_length=10, max_steps=20, eval_every=10, sample_length=0, seed=4)
    run = tmp_path / "run"

    def keep(evaluation):
        if evaluation.step == 10:
            shutil.copy(run / "latest.npz", tmp_path / "step10.npz")

    train(text=text, out_dir=run, config=config, progress=False, on_eval=keep,
          model_options={"cell": "gru", "hidden_size": 8, "num_layers": 2, "embedding_size": 0})
    with np.load(tmp_path / "step10.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    assert meta["version"] == 3 and meta["config"]["embedding_size"] == 0
    meta["version"] = 2
    del meta["config"]["embedding_size"]
    arrays["meta"] = np.array(json.dumps(meta))
    results = {}
    for name in ("format3", "format2"):
        directory = tmp_path / name
        directory.mkdir()
        if name == "format3":
            shutil.copy(tmp_path / "step10.npz", directory / "latest.npz")
        else:
            np.savez(directory / "latest.npz", **arrays)
            with zipfile.ZipFile(directory / "latest.npz") as archive:
                assert "embedding_size" not in json.loads(str(np.load(directory / "latest.npz")["meta"]))["config"]
                assert "embedding.npy" not in archive.namelist()
        results[name] = train(text=text, out_dir=directory, config=config, resume=directory / "latest.npz",
                              progress=False)
    assert results["format2"].config.embedding_size == 0 and results["format2"].step == 20
    for key, value in results["format3"].params.items():
        np.testing.assert_array_equal(results["format2"].params[key], value, err_msg=key)
