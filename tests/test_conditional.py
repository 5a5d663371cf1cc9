"""A generator conditioned on a label (model/stack.py's "Labels"): symbol k under label l reads
embedding[k] + label_embedding[l], computed as one input table per label stacked (N·V, G·H) and
read by joint id l·V + k. Its gradients against central differences in float64 for every cell,
with carried state and dropout; a zero label embedding is the unconditional model; decoding,
training, sampling, the Bayes classifier, the checkpoint and the command line."""

import numpy as np
import pytest

from charlstm.errors import CharlstmError
from charlstm.model import (LabelSet, ModelConfig, State, Stepper, dropout_masks, forward, init_params, input_table,
                            joint_ids, loss_and_grads, param_shapes, symbol_ids, zero_state)
from charlstm.nn.cells import CELLS
from charlstm.nn.head import cross_entropy_forward
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def setup(cell, V=5, E=3, H=4, L=2, T=4, B=2, N=3, dropout=0.0, seed=0):
    """A labelled model with every parameter random and not small, a carried state, and joint
    ids that use every label."""
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout, cell=cell, embedding_size=E,
                         num_labels=N)
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, np.float64)
    for key in params:
        params[key] = rng.standard_normal(params[key].shape) * 0.6
    ids = rng.integers(0, V, size=(T, B))
    labels = rng.integers(0, N, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    state = State(**{part: rng.standard_normal((L, B, H)) * 0.7 for part in config.cell_type.state})
    return config, params, joint_ids(ids, labels, V), targets, state


# --- the math ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_gradients_of_the_label_conditioned_input_with_carried_state_and_dropout(cell, dropout):
    config, params, inputs, targets, state = setup(cell, dropout=dropout)
    masks = dropout_masks(config, 4, 2, np.random.default_rng(7), np.float64) if dropout else None
    loss, grads, _, dstate = loss_and_grads(params, config, inputs, targets, state, masks)

    def f():
        logits, _, _ = forward(params, config, inputs, state, masks)
        return cross_entropy_forward(logits, targets.reshape(-1))[0]

    assert loss == pytest.approx(f(), rel=1e-14)
    assert set(grads) == set(params) and {"embedding", "label_embedding"} <= set(grads)
    for key, p in params.items():
        assert grads[key].shape == p.shape, key
        err = rel_error(grads[key], numerical_gradient(f, p))
        assert err < TOL, f"{cell} {key}: relative error {err:.2e}"
    for name in config.cell_type.state:
        err = rel_error(getattr(dstate, name), numerical_gradient(f, getattr(state, name)))
        assert err < TOL, f"{cell} initial state {name}: relative error {err:.2e}"


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_the_stacked_table_is_the_embedding_of_symbol_plus_label_times_wx(cell):
    config, params, *_ = setup(cell, V=4, E=3, H=2, N=3)
    table = input_table(params, config)
    Wx = params[f"{cell}.0.Wx"]
    assert table.shape == (3 * 4, Wx.shape[1])
    for label in range(3):
        for k in range(4):
            row = (params["embedding"][k] + params["label_embedding"][label]) @ Wx
            np.testing.assert_allclose(table[joint_ids(k, label, 4)], row, rtol=1e-12, atol=1e-12)
    assert symbol_ids(joint_ids(np.arange(4), 2, 4), 4).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("num_labels", [1, 3])
def test_a_zero_label_embedding_computes_exactly_the_unconditional_model(cell, num_labels):
    """Every label then reads the unconditional table: the same loss and state to the bit
    (float32, as training computes); the same gradient of every shared parameter to the bit with
    one label, and to rounding with several (the table's gradient is then summed over labels)."""
    config, params, inputs, targets, state = setup(cell, N=num_labels, dropout=0.3)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    params["label_embedding"][:] = 0
    state = State(*(None if part is None else part.astype(np.float32) for part in state))
    plain = ModelConfig(**{**config.to_dict(), "num_labels": 0})
    plain_params = {k: v for k, v in params.items() if k != "label_embedding"}
    masks = dropout_masks(config, 4, 2, np.random.default_rng(7), np.float32)
    loss, grads, final, dstate = loss_and_grads(params, config, inputs, targets, state, masks)
    plain_loss, plain_grads, plain_final, plain_dstate = loss_and_grads(plain_params, plain, symbol_ids(inputs, 5),
                                                                         targets, state, masks)
    assert loss == plain_loss
    for key, value in plain_grads.items():
        if num_labels == 1:
            np.testing.assert_array_equal(grads[key], value, err_msg=key)
        else:
            np.testing.assert_allclose(grads[key], value, rtol=1e-5, atol=1e-7, err_msg=key)
    for part in config.cell_type.state:       # the cells' backward is the same: only the table's sum differs
        np.testing.assert_array_equal(getattr(final, part), getattr(plain_final, part))
        np.testing.assert_array_equal(getattr(dstate, part), getattr(plain_dstate, part))


def test_a_new_labelled_model_is_the_unconditional_one_plus_a_zero_label_embedding():
    config = ModelConfig(vocab_size=7, hidden_size=5, num_layers=2, cell="gru", embedding_size=4, num_labels=3)
    plain = ModelConfig(vocab_size=7, hidden_size=5, num_layers=2, cell="gru", embedding_size=4)
    params = init_params(config, np.random.default_rng(3))
    plain_params = init_params(plain, np.random.default_rng(3))
    assert list(params) == list(param_shapes(config))
    assert param_shapes(config)["label_embedding"] == (3, 4)
    assert not params["label_embedding"].any()
    for key, value in plain_params.items():
        np.testing.assert_array_equal(params[key], value, err_msg=key)


def test_labels_need_an_embedding_and_round_trip_through_the_config():
    with pytest.raises(CharlstmError, match="embedding size above 0"):
        ModelConfig(vocab_size=3, embedding_size=0, num_labels=2)
    with pytest.raises(CharlstmError, match="number of labels"):
        ModelConfig(vocab_size=3, num_labels=-1)
    config = ModelConfig(vocab_size=3, hidden_size=4, embedding_size=2, num_labels=5)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({"vocab_size": 3, "hidden_size": 2, "num_layers": 1}).num_labels == 0


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch", [1, 3])
def test_decoding_joint_ids_one_at_a_time_equals_the_forward_pass(cell, batch):
    config, params, inputs, _, _ = setup(cell, V=6, E=4, H=5, L=2, T=6, B=batch, N=2)
    params = {k: (v * 0.5).astype(np.float32) for k, v in params.items()}
    state = zero_state(config, batch, np.float32)
    logits, final, _ = forward(params, config, inputs, state)
    stepper = Stepper(params, config, batch)
    stepper.set_state(state)
    for t in range(inputs.shape[0]):
        np.testing.assert_allclose(stepper.step(inputs[t]), logits.reshape(6, batch, 6)[t], rtol=1e-5, atol=1e-6)
    for part in config.cell_type.state:
        np.testing.assert_allclose(getattr(stepper.state(), part), getattr(final, part), rtol=1e-5, atol=1e-6)


def test_a_label_set_names_its_labels_and_their_priors():
    labels = LabelSet(("a", "b"), (3, 1))
    assert labels.index("b") == 1
    np.testing.assert_allclose(labels.priors(), [0.75, 0.25])
    assert LabelSet.from_dict(labels.to_dict()) == labels
    with pytest.raises(CharlstmError, match="not one of the model's labels \\('a', 'b'\\)"):
        labels.index("c")
    with pytest.raises(CharlstmError, match="examples"):
        LabelSet.from_dict({"names": ["a"], "examples": ["x"]})
