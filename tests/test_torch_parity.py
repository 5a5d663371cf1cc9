"""Parity with PyTorch: the same weights, mapped through the documented checkpoint layout, give
the same loss and every gradient as torch.nn.LSTM + nn.Linear + cross_entropy, in float64."""

import numpy as np
import pytest

from charlstm.model import ModelConfig, State, dropout_masks, forward, init_params, loss_and_grads

torch = pytest.importorskip("torch")

TOL = 1e-8


def setup(V=7, H=5, L=3, T=6, B=4, dropout=0.0, seed=0):
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout,
                         embedding_size=0)   # the one-hot input; tests/test_embedding.py holds the embedding
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, np.float64)
    for key in params:                       # every bias block non-zero, weights of order one
        params[key] = params[key] + rng.standard_normal(params[key].shape) * 0.3
    inputs = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    state = State(rng.standard_normal((L, B, H)) * 0.5, rng.standard_normal((L, B, H)) * 0.5)
    return config, params, inputs, targets, state


def to_torch_lstm(params, config, layers):
    """One nn.LSTM holding `layers` of charlstm's layers: W_ih = Wx.T, W_hh = Wh.T, b_ih = b, b_hh = 0."""
    first = layers[0]
    input_size = config.vocab_size if first == 0 else config.hidden_size
    lstm = torch.nn.LSTM(input_size, config.hidden_size, num_layers=len(layers), dtype=torch.float64)
    with torch.no_grad():
        for k, layer in enumerate(layers):
            getattr(lstm, f"weight_ih_l{k}").copy_(torch.from_numpy(params[f"lstm.{layer}.Wx"].T.copy()))
            getattr(lstm, f"weight_hh_l{k}").copy_(torch.from_numpy(params[f"lstm.{layer}.Wh"].T.copy()))
            getattr(lstm, f"bias_ih_l{k}").copy_(torch.from_numpy(params[f"lstm.{layer}.b"]))
            getattr(lstm, f"bias_hh_l{k}").zero_()
    return lstm


def to_torch_head(params, config):
    head = torch.nn.Linear(config.hidden_size, config.vocab_size, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(params["head.W"].T.copy()))
        head.bias.copy_(torch.from_numpy(params["head.b"]))
    return head


def one_hot(inputs, V):
    return torch.nn.functional.one_hot(torch.from_numpy(inputs).long(), V).to(torch.float64)


def assert_close(ours, theirs, name):
    theirs = theirs.detach().numpy()
    assert ours.shape == theirs.shape, name
    np.testing.assert_allclose(ours, theirs, rtol=TOL, atol=TOL, err_msg=name)


def test_loss_and_every_gradient_match_torch():
    config, params, inputs, targets, state = setup()
    T, B = inputs.shape
    loss, grads, new_state, dstate = loss_and_grads(params, config, inputs, targets, state)

    lstm = to_torch_lstm(params, config, list(range(config.num_layers)))
    head = to_torch_head(params, config)
    h0 = torch.from_numpy(state.h.copy()).requires_grad_()
    c0 = torch.from_numpy(state.c.copy()).requires_grad_()
    out, (hT, cT) = lstm(one_hot(inputs, config.vocab_size), (h0, c0))
    logits = head(out.reshape(T * B, config.hidden_size))
    t_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets.reshape(-1)).long())
    t_loss.backward()

    assert loss == pytest.approx(t_loss.item(), rel=TOL, abs=TOL)
    assert_close(new_state.h, hT, "final h")
    assert_close(new_state.c, cT, "final c")
    for layer in range(config.num_layers):
        assert_close(grads[f"lstm.{layer}.Wx"], getattr(lstm, f"weight_ih_l{layer}").grad.T, f"lstm.{layer}.Wx")
        assert_close(grads[f"lstm.{layer}.Wh"], getattr(lstm, f"weight_hh_l{layer}").grad.T, f"lstm.{layer}.Wh")
        assert_close(grads[f"lstm.{layer}.b"], getattr(lstm, f"bias_ih_l{layer}").grad, f"lstm.{layer}.b")
        assert_close(grads[f"lstm.{layer}.b"], getattr(lstm, f"bias_hh_l{layer}").grad, f"lstm.{layer}.b (hh)")
    assert_close(grads["head.W"], head.weight.grad.T, "head.W")
    assert_close(grads["head.b"], head.bias.grad, "head.b")
    assert_close(dstate.h, h0.grad, "initial h")
    assert_close(dstate.c, c0.grad, "initial c")
    assert np.abs(dstate.h).max() > 1e-4 and np.abs(dstate.c).max() > 1e-4


def test_forward_scores_match_torch_for_a_long_sequence():
    config, params, inputs, _, state = setup(T=40, B=2, L=2, seed=1)
    logits, _, _ = forward(params, config, inputs, state)
    lstm = to_torch_lstm(params, config, [0, 1])
    head = to_torch_head(params, config)
    with torch.no_grad():
        out, _ = lstm(one_hot(inputs, config.vocab_size),
                      (torch.from_numpy(state.h), torch.from_numpy(state.c)))
        t_logits = head(out.reshape(-1, config.hidden_size))
    assert_close(logits, t_logits, "logits")


def test_weighted_loss_and_dropout_masks_match_torch():
    """The ragged last chunk (weights) and fixed dropout masks on every layer's output, with the
    stack built from one single-layer nn.LSTM per layer so the masks can go between them."""
    config, params, inputs, targets, state = setup(dropout=0.3, seed=2)
    T, B = inputs.shape
    masks = dropout_masks(config, T, B, np.random.default_rng(5), np.float64)
    weights = np.ones((T, B))
    weights[4:, 2:] = 0.0
    loss, grads, _, dstate = loss_and_grads(params, config, inputs, targets, state, masks, weights)

    layers = [to_torch_lstm(params, config, [layer]) for layer in range(config.num_layers)]
    head = to_torch_head(params, config)
    h0 = torch.from_numpy(state.h.copy()).requires_grad_()
    c0 = torch.from_numpy(state.c.copy()).requires_grad_()
    x = one_hot(inputs, config.vocab_size)
    for layer, lstm in enumerate(layers):
        x, _ = lstm(x, (h0[layer:layer + 1], c0[layer:layer + 1]))
        x = x * torch.from_numpy(masks[layer].transpose(0, 2, 1))   # masks are (T, H, B)
    logits = head(x.reshape(T * B, config.hidden_size))
    nll = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets.reshape(-1)).long(), reduction="none")
    w = torch.from_numpy(weights.reshape(-1))
    t_loss = (nll * w).sum() / w.sum()
    t_loss.backward()

    assert loss == pytest.approx(t_loss.item(), rel=TOL, abs=TOL)
    for layer, lstm in enumerate(layers):
        assert_close(grads[f"lstm.{layer}.Wx"], lstm.weight_ih_l0.grad.T, f"lstm.{layer}.Wx")
        assert_close(grads[f"lstm.{layer}.Wh"], lstm.weight_hh_l0.grad.T, f"lstm.{layer}.Wh")
        assert_close(grads[f"lstm.{layer}.b"], lstm.bias_ih_l0.grad, f"lstm.{layer}.b")
    assert_close(grads["head.W"], head.weight.grad.T, "head.W")
    assert_close(grads["head.b"], head.bias.grad, "head.b")
    assert_close(dstate.h, h0.grad, "initial h")
    assert_close(dstate.c, c0.grad, "initial c")


# --- every cell: the loss and every gradient through charlstm's hand-off module ---------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "peephole"])
def test_loss_and_every_gradient_equal_pytorchs_for_every_cell(cell):
    """The whole stack (3 layers, a carried initial state, the head and the mean cross-entropy)
    against PyTorch's nn.LSTM / nn.GRU / nn.RNN (and charlstm's PeepholeLSTM in PyTorch) holding
    the same weights, in float64: the loss, every parameter's gradient and the initial state's."""
    import charlstm
    from charlstm.data.vocab import Vocab
    from charlstm.export.layouts import to_torch_arrays
    from charlstm.torch import to_torch
    V, H, L, T, B = 7, 5, 3, 6, 4
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.0, cell=cell)
    rng = np.random.default_rng(1)
    params = {k: v + rng.standard_normal(v.shape) * 0.3 for k, v in init_params(config, rng, np.float64).items()}
    inputs, targets = rng.integers(0, V, size=(T, B)), rng.integers(0, V, size=(T, B))
    parts = {"h": rng.standard_normal((L, B, H)) * 0.5}
    if "c" in config.cell_type.state:
        parts["c"] = rng.standard_normal((L, B, H)) * 0.5
    loss, grads, _, dstate = loss_and_grads(params, config, inputs, targets, State(**parts))

    module = to_torch(charlstm.Model(params, config, Vocab(tuple("abcdefg"))), torch.float64)
    start = {k: torch.from_numpy(v.copy()).requires_grad_() for k, v in parts.items()}
    state = (start["h"], start["c"]) if "c" in start else start["h"]
    logits, _ = module(torch.from_numpy(inputs.T.copy()), state)            # batch first
    theirs = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(targets.T.reshape(-1)))
    theirs.backward()
    assert loss == pytest.approx(theirs.item(), rel=1e-12)
    torch_grads = {k: p.grad.numpy() for k, p in module.named_parameters()}
    expected = to_torch_arrays(grads, cell, L)            # charlstm's gradients in PyTorch's names
    for key, g in torch_grads.items():
        if key.startswith("rnn.bias_hh") and cell != "gru":
            # b = bias_ih + bias_hh: both get the gradient of b
            np.testing.assert_allclose(g, torch_grads[key.replace("_hh", "_ih")], rtol=1e-9, atol=1e-12)
            continue
        np.testing.assert_allclose(expected[key], g, rtol=1e-8, atol=1e-11, err_msg=key)
        assert np.abs(g).max() > 1e-6, key
    for part, tensor in start.items():
        np.testing.assert_allclose(getattr(dstate, part), tensor.grad.numpy(), rtol=1e-8, atol=1e-11)
