"""The models that label whole examples (model/sequence.py, model/labels.py): every gradient of the
classifier and the tagger against central differences in float64, for every cell, one direction
and both, with ragged lengths in one batch and dropout masks fixed; padding that changes nothing;
reverse_within's properties; the bidirectional stack against each example read alone, both ways;
a one-direction classifier against the character model; and PyTorch's nn.Embedding + nn.LSTM /
nn.GRU / nn.RNN(bidirectional=True) + pooling + nn.Linear + cross_entropy, weight for weight."""

import numpy as np
import pytest

from charlstm.errors import CharlstmError
from charlstm.model import ModelConfig, forward, zero_state
from charlstm.model.labels import (classify_loss, classify_probs, pool_backward, pool_forward, tag_loss,
                                   tag_probs)
from charlstm.model.sequence import (SequenceConfig, direction_params, init_sequence_params, key_prefix,
                                     reverse_within, sequence_backward, sequence_dropout_masks, sequence_forward,
                                     sequence_param_shapes)
from charlstm.nn.cells import CELLS
from charlstm.nn.head import cross_entropy_forward, head_forward
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6
LENGTHS = np.array([5, 2, 7, 1])           # ragged, the longest as long as the batch, one of 1
T, B = 7, 4


def setup(cell, bidirectional, task="classify", pooling=None, V=5, N=3, H=3, L=2, E=2, dropout=0.3, seed=0):
    """A float64 model with every parameter of order one (non-trivial biases and peepholes), a
    batch of LENGTHS, its labels, and fixed dropout masks (or None)."""
    config = SequenceConfig(vocab_size=V, num_labels=N, hidden_size=H, num_layers=L, dropout=dropout, cell=cell,
                            embedding_size=E, bidirectional=bidirectional, task=task, pooling=pooling)
    rng = np.random.default_rng(seed)
    params = init_sequence_params(config, rng, np.float64)
    for key in params:
        params[key] = rng.standard_normal(params[key].shape) * 0.6
    ids = rng.integers(0, V, size=(T, B))
    labels = rng.integers(0, N, size=(B,) if task == "classify" else (T, B))
    masks = sequence_dropout_masks(config, T, B, rng, np.float64)
    return config, params, ids, labels, masks


def loss_of(params, config, ids, labels, masks):
    """The loss alone, forward only, from the public pieces (for the central differences)."""
    outputs, _ = sequence_forward(params, config, ids, LENGTHS, masks)
    if config.task == "tag":
        logits, _ = head_forward(outputs, params["head.W"], params["head.b"])
        weights = (np.arange(T)[:, None] < LENGTHS).reshape(-1).astype(float)
        return cross_entropy_forward(logits, labels.reshape(-1), weights)[0]
    pooled, _ = pool_forward(outputs, LENGTHS, config.pooling, config.bidirectional)
    logits, _ = head_forward(pooled.T[None], params["head.W"], params["head.b"])
    return cross_entropy_forward(logits, labels)[0]


def loss_and_grads(params, config, ids, labels, masks):
    loss_fn = classify_loss if config.task == "classify" else tag_loss
    return loss_fn(params, config, ids, LENGTHS, labels, masks)


def check_every_gradient(config, params, ids, labels, masks):
    loss, grads, _ = loss_and_grads(params, config, ids, labels, masks)
    assert loss == pytest.approx(loss_of(params, config, ids, labels, masks), rel=1e-13)
    assert list(grads) == list(params)
    for key, p in params.items():
        assert grads[key].shape == p.shape, key
        err = rel_error(grads[key], numerical_gradient(lambda: loss_of(params, config, ids, labels, masks), p))
        assert err < TOL, f"{config.cell} {key}: relative error {err:.2e}"
        assert np.abs(grads[key]).max() > 1e-6, f"{config.cell} {key}: a check of zeros checks nothing"


@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_gradient_of_a_classifier_with_ragged_lengths_and_dropout(cell, bidirectional, pooling):
    check_every_gradient(*setup(cell, bidirectional, pooling=pooling))


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_gradient_of_a_tagger_with_ragged_lengths_and_dropout(cell, bidirectional):
    check_every_gradient(*setup(cell, bidirectional, task="tag"))


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_every_gradient_of_a_bidirectional_model_that_reads_one_hot_ids(cell):
    """Without an embedding each direction's layer 0 reads its Wx (V, G·H) rows by id."""
    check_every_gradient(*setup(cell, True, task="tag", E=0, L=1, dropout=0.0))


@pytest.mark.parametrize("task, pooling", [("classify", "last"), ("classify", "mean"), ("tag", None)])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_what_the_padding_holds_changes_neither_the_loss_nor_any_gradient(cell, bidirectional, task, pooling):
    """No padded step is read by a counted output, so new padded ids, tags and dropout units give
    the same numbers to the bit: uncounted outputs get a gradient of exactly 0."""
    config, params, ids, labels, masks = setup(cell, bidirectional, task=task, pooling=pooling)
    loss, grads, probs = loss_and_grads(params, config, ids, labels, masks)
    padding = np.arange(T)[:, None] >= LENGTHS
    rng = np.random.default_rng(99)
    other_ids = np.where(padding, rng.integers(0, config.vocab_size, size=(T, B)), ids)
    assert np.any(other_ids != ids)
    other_labels = np.where(padding, -100, labels) if task == "tag" else labels     # PyTorch's ignore_index
    other_masks = [np.where(padding[:, None, :], rng.random(m.shape), m) for m in masks]
    other_loss, other_grads, other_probs = loss_and_grads(params, config, other_ids, other_labels, other_masks)
    assert other_loss == loss
    np.testing.assert_array_equal(other_probs, probs)
    for key in params:
        np.testing.assert_array_equal(other_grads[key], grads[key], err_msg=key)


# --- reverse_within ------------------------------------------------------------------------------

def test_reverse_within_reverses_each_example_within_its_length_and_leaves_the_padding_at_the_end():
    ids = np.array([[1, 5, 9], [2, 6, 0], [3, 0, 0], [4, 0, 0]], dtype=np.uint8)   # lengths 4, 2, 1
    out = reverse_within(ids, np.array([4, 2, 1]))
    np.testing.assert_array_equal(out, [[4, 6, 9], [3, 5, 0], [2, 0, 0], [1, 0, 0]])
    assert out.dtype == np.uint8


def test_reverse_within_is_its_own_inverse_and_its_own_transpose():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((2, T, 3, B))
    rx = reverse_within(x, LENGTHS)
    np.testing.assert_array_equal(reverse_within(rx, LENGTHS), x)
    # <R x, y> = <x, R y>: the backward pass of y = R x is R dy
    assert np.sum(rx * y) == pytest.approx(np.sum(x * reverse_within(y, LENGTHS)), rel=1e-14)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(rx[:n, :, b], x[:n, :, b][::-1])
        np.testing.assert_array_equal(rx[n:, :, b], x[n:, :, b])
    np.testing.assert_array_equal(reverse_within(x, np.full(B, T)), x[::-1])


# --- the stack against plainer readings of it ----------------------------------------------------

@pytest.mark.parametrize("cell", sorted(CELLS))
def test_bidirectional_outputs_are_each_example_read_alone_forwards_and_backwards(cell):
    """The plain twin: each example alone (batch 1, no padding), each direction's layer run by the
    cell on it and on it reversed with [::-1], concatenated; the batch's counted outputs equal it."""
    config, params, ids, _, _ = setup(cell, True, L=3, dropout=0.0)
    outputs, _ = sequence_forward(params, config, ids, LENGTHS)
    cell_type = config.cell_type
    for b, n in enumerate(LENGTHS):
        x = ids[:n, b:b + 1]
        for layer in range(config.num_layers):
            zero = tuple(np.zeros((1, config.hidden_size)) for _ in cell_type.state)
            ahead, _, _ = cell_type.forward(x, zero, direction_params(params, config, layer, "forward"))
            behind, _, _ = cell_type.forward(x[::-1], zero, direction_params(params, config, layer, "reverse"))
            x = np.concatenate([ahead, behind[::-1]], axis=1)
        np.testing.assert_allclose(outputs[:n, :, b], x[:, :, 0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_a_one_direction_classifier_pools_the_character_models_top_h_at_the_last_step(cell):
    config, params, ids, _, _ = setup(cell, False, pooling="last", dropout=0.0)
    outputs, _ = sequence_forward(params, config, ids, LENGTHS)
    pooled, _ = pool_forward(outputs, LENGTHS, "last")
    model = ModelConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_layers,
                        dropout=0.0, cell=cell, embedding_size=config.embedding_size)
    stack_params = {key: value for key, value in params.items() if not key.startswith("head.")}
    stack_params["head.W"] = np.zeros((config.hidden_size, config.vocab_size))    # one model's keys, its head
    stack_params["head.b"] = np.zeros(config.vocab_size)
    for b, n in enumerate(LENGTHS):
        _, _, cache = forward(stack_params, model, ids[:n, b:b + 1], zero_state(model, 1, np.float64))
        np.testing.assert_allclose(pooled[b], cache.top[n - 1, :, 0], rtol=1e-12, atol=1e-14)


def test_pooling_reads_the_step_that_has_read_the_whole_example_in_each_direction():
    outputs = np.random.default_rng(1).standard_normal((T, 4, B))      # H = 2, both directions
    pooled, cache = pool_forward(outputs, LENGTHS, "last", bidirectional=True)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_array_equal(pooled[b], np.r_[outputs[n - 1, :2, b], outputs[0, 2:, b]])
    mean, _ = pool_forward(outputs, LENGTHS, "mean")
    for b, n in enumerate(LENGTHS):
        np.testing.assert_allclose(mean[b], outputs[:n, :, b].mean(axis=0), rtol=1e-14)
    doutputs = pool_backward(np.ones((B, 4)), cache)              # (T, F, B)
    assert np.all(doutputs.transpose(0, 2, 1)[np.arange(T)[:, None] >= LENGTHS] == 0)
    assert doutputs.sum() == 4 * B


# --- parameters, configs, predictions and refusals ------------------------------------------------

def test_parameter_keys_and_shapes_of_a_bidirectional_model():
    config = SequenceConfig(vocab_size=7, num_labels=4, hidden_size=3, num_layers=2, cell="gru",
                            embedding_size=5, bidirectional=True)
    assert sequence_param_shapes(config) == {
        "embedding": (7, 5),
        "gru.0.Wx": (5, 9), "gru.0.Wh": (3, 9), "gru.0.bx": (9,), "gru.0.bh": (9,),
        "gru.0.reverse.Wx": (5, 9), "gru.0.reverse.Wh": (3, 9), "gru.0.reverse.bx": (9,), "gru.0.reverse.bh": (9,),
        "gru.1.Wx": (6, 9), "gru.1.Wh": (3, 9), "gru.1.bx": (9,), "gru.1.bh": (9,),
        "gru.1.reverse.Wx": (6, 9), "gru.1.reverse.Wh": (3, 9), "gru.1.reverse.bx": (9,), "gru.1.reverse.bh": (9,),
        "head.W": (6, 4), "head.b": (4,),
    }
    params = init_sequence_params(config, np.random.default_rng(0))
    assert list(params) == list(sequence_param_shapes(config))
    assert all(p.dtype == np.float32 for p in params.values())
    assert np.abs(params["gru.1.reverse.Wx"]).max() <= 1 / np.sqrt(6)      # reads F = 2H inputs
    assert np.abs(params["head.W"]).max() <= 1 / np.sqrt(6)


def test_a_one_direction_model_has_the_character_models_keys_below_its_head():
    from charlstm.model import param_shapes
    config = SequenceConfig(vocab_size=7, num_labels=2, hidden_size=3, num_layers=2, cell="lstm", embedding_size=4)
    model = ModelConfig(vocab_size=7, hidden_size=3, num_layers=2, cell="lstm", embedding_size=4)
    ours, theirs = sequence_param_shapes(config), param_shapes(model)
    assert [k for k in ours if not k.startswith("head.")] == [k for k in theirs if not k.startswith("head.")]
    assert ours["head.W"] == (3, 2) and key_prefix(config, 1, "forward") == "lstm.1."


def test_the_config_fills_its_defaults_once_and_round_trips():
    classify = SequenceConfig(vocab_size=11, num_labels=3, hidden_size=8)
    assert classify.embedding_size == 8 and classify.pooling == "mean" and classify.features == 8
    tag = SequenceConfig(vocab_size=11, num_labels=3, hidden_size=8, task="tag", bidirectional=True, embedding_size=0)
    assert tag.pooling is None and tag.features == 16 and tag.directions == ("forward", "reverse")
    for config in (classify, tag):
        assert SequenceConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("options, message", [
    ({"task": "tag", "pooling": "mean"}, "pooling is for task classify"),
    ({"pooling": "max"}, "unknown pooling"),
    ({"task": "translate"}, "unknown task"),
    ({"num_labels": 1}, "num_labels"),
    ({"cell": "transformer"}, "unknown cell"),
    ({"bidirectional": "yes"}, "bidirectional"),
    ({"dropout": 1.0}, "dropout"),
])
def test_the_config_refuses_what_it_cannot_build(options, message):
    with pytest.raises(CharlstmError, match=message):
        SequenceConfig(**{"vocab_size": 5, "num_labels": 2, **options})


def test_a_saved_config_that_was_edited_is_refused_with_its_field():
    record = SequenceConfig(vocab_size=5, num_labels=2).to_dict()
    with pytest.raises(CharlstmError, match="'hidden_size'"):
        SequenceConfig.from_dict({**record, "hidden_size": "big"})
    with pytest.raises(CharlstmError, match="bidirectional"):
        SequenceConfig.from_dict({**record, "bidirectional": 1})


def test_a_batch_the_model_cannot_read_is_refused():
    config, params, ids, labels, _ = setup("lstm", True, dropout=0.0)
    for lengths, message in [(np.array([5, 0, 7, 1]), "between 1 and"), (np.array([5, 2, 8, 1]), "between 1 and"),
                             (np.array([5, 2, 7]), "one per example")]:
        with pytest.raises(CharlstmError, match=message):
            classify_loss(params, config, ids, lengths, labels)
    with pytest.raises(CharlstmError, match="padding included"):
        classify_loss(params, config, np.where(ids == 0, config.vocab_size, ids), LENGTHS, labels)
    with pytest.raises(CharlstmError, match="labels must be"):
        classify_loss(params, config, ids, LENGTHS, labels + config.num_labels)
    with pytest.raises(CharlstmError, match="task is classify"):
        tag_loss(params, config, ids, LENGTHS, np.zeros((T, B), dtype=int))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_predictions_are_the_losses_probabilities_without_dropout(bidirectional):
    config, params, ids, labels, _ = setup("gru", bidirectional, pooling="mean", dropout=0.0)
    _, _, probs = classify_loss(params, config, ids, LENGTHS, labels)
    np.testing.assert_allclose(classify_probs(params, config, ids, LENGTHS), probs, rtol=1e-12)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)
    config, params, ids, tags, _ = setup("rnn", bidirectional, task="tag", dropout=0.0)
    _, _, probs = tag_loss(params, config, ids, LENGTHS, tags)
    np.testing.assert_allclose(tag_probs(params, config, ids, LENGTHS), probs, rtol=1e-12, atol=1e-15)
    counted = np.arange(T)[:, None] < LENGTHS
    np.testing.assert_allclose(probs.sum(axis=2), counted * 1.0, rtol=1e-12)


def test_a_workspace_holds_the_caches_without_changing_a_number():
    from charlstm.nn.workspace import Workspace
    config, params, ids, labels, masks = setup("lstm", True)
    outputs, cache = sequence_forward(params, config, ids, LENGTHS, masks)
    grads = sequence_backward(np.ones_like(outputs), params, config, cache)
    ws = Workspace()
    ws_outputs, ws_cache = sequence_forward(params, config, ids, LENGTHS, masks, workspace=ws)
    assert ws.nbytes > 0
    np.testing.assert_array_equal(ws_outputs, outputs)
    for key, value in sequence_backward(np.ones_like(outputs), params, config, ws_cache).items():
        np.testing.assert_array_equal(value, grads[key], err_msg=key)


# --- PyTorch -------------------------------------------------------------------------------------

def torch_model(torch, params, config, batch_first):
    """nn.Embedding, nn.LSTM / nn.GRU / nn.RNN (bidirectional as the config says) and nn.Linear
    holding the model's weights, mapped by charlstm/export/layouts.py: each direction's layers
    as a one-direction model's, the reverse one under PyTorch's "_reverse" names."""
    from charlstm.export.layouts import LAYOUTS, to_torch_arrays
    cell, L, H, E = config.cell, config.num_layers, config.hidden_size, config.embedding_size
    kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    rnn = kind(E, H, num_layers=L, bidirectional=config.bidirectional, batch_first=batch_first, dtype=torch.float64)
    state = {}
    for direction, suffix in zip(config.directions, ("", "_reverse")):
        one_way = {f"{cell}.{layer}.{key}": params[key_prefix(config, layer, direction) + key]
                   for layer in range(L) for key in LAYOUTS[cell].param_shapes(1, 1)}
        one_way.update({"head.W": params["head.W"], "head.b": params["head.b"]})
        state.update({name.removeprefix("rnn.") + suffix: torch.from_numpy(array)
                      for name, array in to_torch_arrays(one_way, cell, L).items() if name.startswith("rnn.")})
    rnn.load_state_dict(state)
    embedding = torch.nn.Embedding(config.vocab_size, E, dtype=torch.float64)
    head = torch.nn.Linear(config.features, config.num_labels, dtype=torch.float64)
    with torch.no_grad():
        embedding.weight.copy_(torch.from_numpy(params["embedding"]))
        head.weight.copy_(torch.from_numpy(params["head.W"].T.copy()))
        head.bias.copy_(torch.from_numpy(params["head.b"]))
    return embedding, rnn, head


def torch_grads(embedding, rnn, head, config) -> dict:
    """The torch modules' gradients under charlstm's keys. An LSTM's or RNN's b is bias_ih (its
    bias_hh is held at 0, and the two only ever add, so either gradient is b's); a GRU's bx and bh
    are bias_ih and bias_hh."""
    grads = {"embedding": embedding.weight.grad}
    for layer in range(config.num_layers):
        for direction, suffix in zip(config.directions, ("", "_reverse")):
            prefix = key_prefix(config, layer, direction)
            grads[prefix + "Wx"] = getattr(rnn, f"weight_ih_l{layer}{suffix}").grad.T
            grads[prefix + "Wh"] = getattr(rnn, f"weight_hh_l{layer}{suffix}").grad.T
            bias_ih, bias_hh = (getattr(rnn, f"{name}_l{layer}{suffix}").grad for name in ("bias_ih", "bias_hh"))
            if config.cell == "gru":
                grads[prefix + "bx"], grads[prefix + "bh"] = bias_ih, bias_hh
            else:
                grads[prefix + "b"] = bias_ih
    grads["head.W"], grads["head.b"] = head.weight.grad.T, head.bias.grad
    return {key: value.detach().numpy() for key, value in grads.items()}


def torch_loss(torch, modules, config, ids, labels, reference, batch_first):
    """The loss as people write it in PyTorch: the batch packed (pack_padded_sequence, the last
    step of each direction from h_n), or each example run alone (no padding at all)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    embedding, rnn, head = modules
    H, F = config.hidden_size, config.features
    lengths = torch.from_numpy(LENGTHS)
    if reference == "packed":
        x = embedding(torch.from_numpy(ids.T.copy() if batch_first else ids))
        out, h_n = rnn(pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False))
        out, _ = pad_packed_sequence(out, batch_first=batch_first, total_length=T)    # zeros past each end
        outputs = out.transpose(0, 1) if batch_first else out                          # (T, B, F)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n                                # an LSTM's (h_n, c_n)
        last = torch.cat(list(h_n.view(config.num_layers, len(config.directions), B, H)[-1]), dim=1)
    else:
        outputs = torch.zeros(T, B, F, dtype=torch.float64)
        rows = []
        for b, n in enumerate(LENGTHS):
            x = embedding(torch.from_numpy(ids[:n, b])).unsqueeze(0 if batch_first else 1)
            out = rnn(x)[0].reshape(n, F)                                              # a batch of 1
            rows.append(out)
            outputs = outputs.index_put((torch.arange(n), torch.full((n,), b)), out)
        last = torch.stack([torch.cat([out[-1, :H], out[0, H:]]) for out in rows])
    if config.task == "tag":
        counted = torch.from_numpy(np.arange(T)[:, None] < LENGTHS)
        return torch.nn.functional.cross_entropy(head(outputs)[counted], torch.from_numpy(labels)[counted])
    pooled = last if config.pooling == "last" else outputs.sum(dim=0) / lengths[:, None]
    return torch.nn.functional.cross_entropy(head(pooled), torch.from_numpy(labels))


@pytest.mark.parametrize("reference, batch_first", [("packed", False), ("packed", True), ("alone", True),
                                                    ("alone", False)])
@pytest.mark.parametrize("task, pooling", [("classify", "last"), ("classify", "mean"), ("tag", None)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_loss_and_every_gradient_equal_pytorchs_bidirectional_module(cell, task, pooling, reference, batch_first):
    torch = pytest.importorskip("torch")
    config, params, ids, labels, _ = setup(cell, True, task=task, pooling=pooling, H=4, L=2, E=3, dropout=0.0)
    loss, grads, _ = loss_and_grads(params, config, ids, labels, None)
    modules = torch_model(torch, params, config, batch_first)
    t_loss = torch_loss(torch, modules, config, ids, labels, reference, batch_first)
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    theirs = torch_grads(*modules, config)
    assert set(theirs) == set(grads)
    for key, value in grads.items():
        err = rel_error(value, theirs[key])
        assert err < 1e-9, f"{cell} {key}: relative error {err:.2e}"
