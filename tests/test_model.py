"""charlstm.model: the whole stack's loss and gradients against central differences (every parameter
and the initial state), dropout with fixed masks, parameter layout and initialisation."""

import numpy as np
import pytest

from charlstm.errors import CharlstmError
from charlstm.model import (ModelConfig, State, backward, dropout_masks, forward, init_params,
                            loss_and_grads, param_shapes, zero_state)
from charlstm.nn.cells import CELLS
from charlstm.nn.head import cross_entropy_forward
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def setup(V=5, H=4, L=3, T=4, B=2, dropout=0.0, seed=0):
    config = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=dropout)
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, np.float64)
    for key in params:                     # non-trivial biases and a larger scale than at init
        params[key] = rng.standard_normal(params[key].shape) * 0.6
    inputs = rng.integers(0, V, size=(T, B))
    targets = rng.integers(0, V, size=(T, B))
    state = State(rng.standard_normal((L, B, H)) * 0.7, rng.standard_normal((L, B, H)) * 0.7)
    return config, params, inputs, targets, state, rng


def check_model_grads(config, params, inputs, targets, state, masks=None, weights=None):
    loss, grads, _, dstate = loss_and_grads(params, config, inputs, targets, state, masks, weights)
    w = None if weights is None else weights.reshape(-1)

    def f():
        logits, _, _ = forward(params, config, inputs, state, masks)
        return cross_entropy_forward(logits, targets.reshape(-1), w)[0]

    assert loss == pytest.approx(f(), rel=1e-14)
    assert set(grads) == set(params)
    for key, p in params.items():
        assert grads[key].shape == p.shape, key
        err = rel_error(grads[key], numerical_gradient(f, p))
        assert err < TOL, f"{key}: relative error {err:.2e}"
    for name in ("h", "c"):
        analytic = getattr(dstate, name)
        assert analytic.shape == state.h.shape
        assert np.abs(analytic).max() > 1e-4, f"initial-state gradient d{name} is zero"
        err = rel_error(analytic, numerical_gradient(f, getattr(state, name)))
        assert err < TOL, f"initial state {name}: relative error {err:.2e}"
    return grads, dstate


def test_full_model_gradients_three_layers_with_carried_state():
    config, params, inputs, targets, state, _ = setup(L=3)
    check_model_grads(config, params, inputs, targets, state)


def test_full_model_gradients_with_ragged_weights():
    config, params, inputs, targets, state, _ = setup(L=2, T=5, B=3)
    weights = np.ones((5, 3))
    weights[3:, 1:] = 0.0                 # rows that ran out, as at the end of a pass
    check_model_grads(config, params, inputs, targets, state, weights=weights)


def test_dropout_with_fixed_masks():
    config, params, inputs, targets, state, _ = setup(L=3, T=4, B=3, H=5, dropout=0.4)
    masks = dropout_masks(config, 4, 3, np.random.default_rng(123), np.float64)
    assert len(masks) == config.num_layers
    keep = 1 / (1 - 0.4)
    for m in masks:
        assert m.shape == (4, 5, 3) and m.dtype == np.float64   # (T, H, B)
        np.testing.assert_allclose(np.unique(m), [0.0, keep], rtol=1e-15)   # some dropped, some kept
    again = dropout_masks(config, 4, 3, np.random.default_rng(123), np.float64)
    for a, b in zip(masks, again):
        np.testing.assert_array_equal(a, b)
    check_model_grads(config, params, inputs, targets, state, masks=masks)
    # the masks change the loss (they are really applied) ...
    with_masks, *_ = loss_and_grads(params, config, inputs, targets, state, masks)
    without, *_ = loss_and_grads(params, config, inputs, targets, state)
    assert with_masks != pytest.approx(without)


def test_dropped_units_get_no_gradient_through_the_head():
    config, params, inputs, targets, state, _ = setup(L=1, T=3, B=2, H=4, dropout=0.5)
    masks = [np.ones((3, 4, 2))]            # (T, H, B)
    masks[0][:, 1, :] = 0.0                 # unit 1 of the top layer always dropped
    _, grads, _, _ = loss_and_grads(params, config, inputs, targets, state, masks)
    np.testing.assert_array_equal(grads["head.W"][1], 0.0)


def test_dropout_off_gives_no_masks_and_mean_keep_is_one():
    assert dropout_masks(ModelConfig(vocab_size=3, hidden_size=4, dropout=0.0), 5, 2,
                         np.random.default_rng(0)) is None
    config = ModelConfig(vocab_size=3, hidden_size=64, num_layers=2, dropout=0.3)
    masks = dropout_masks(config, 50, 8, np.random.default_rng(1))
    assert masks[0].dtype == np.float32
    for m in masks:          # inverted dropout: the expected value of a mask entry is 1
        assert m.mean() == pytest.approx(1.0, abs=0.03)
        assert (m == 0).mean() == pytest.approx(0.3, abs=0.02)
    assert not np.array_equal(masks[0], masks[1])


def test_chunked_forward_equals_one_forward():
    """Carrying the state from one chunk to the next computes the same as one long chunk."""
    config, params, inputs, targets, state, _ = setup(L=3, T=8, B=2)
    logits, final, cache = forward(params, config, inputs, state)
    l1, mid, _ = forward(params, config, inputs[:3], state)
    l2, end, _ = forward(params, config, inputs[3:], mid)
    np.testing.assert_allclose(np.concatenate([l1, l2]), logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(end.h, final.h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(end.c, final.c, rtol=1e-12, atol=1e-14)
    # the returned state is each layer's output at the last step
    for layer, layer_cache in enumerate(cache.layers):
        np.testing.assert_array_equal(final.h[layer], layer_cache.hidden()[-1])
        np.testing.assert_array_equal(final.c[layer], layer_cache.cell()[-1])
    np.testing.assert_array_equal(cache.top[-1].T, final.h[-1])


def test_loss_and_grads_leaves_params_and_state_alone():
    config, params, inputs, targets, state, _ = setup(L=2)
    saved = {k: v.copy() for k, v in params.items()}
    h, c = state.h.copy(), state.c.copy()
    loss_and_grads(params, config, inputs, targets, state)
    for k in params:
        np.testing.assert_array_equal(params[k], saved[k])
    np.testing.assert_array_equal(state.h, h)
    np.testing.assert_array_equal(state.c, c)


def test_backward_returns_grads_of_every_key_in_float32():
    config = ModelConfig(vocab_size=6, hidden_size=5, num_layers=2)
    params = init_params(config, np.random.default_rng(0))
    inputs = np.random.default_rng(1).integers(0, 6, size=(4, 3))
    logits, new_state, cache = forward(params, config, inputs, zero_state(config, 3))
    assert logits.dtype == np.float32 and new_state.h.dtype == np.float32
    grads, dstate = backward(np.ones_like(logits), params, config, cache)
    assert list(grads) and set(grads) == set(param_shapes(config))
    for k, g in grads.items():
        assert g.dtype == np.float32, k
    assert dstate.h.dtype == np.float32 and dstate.c.dtype == np.float32


def test_param_shapes_and_keys():
    config = ModelConfig(vocab_size=7, hidden_size=3, num_layers=2, embedding_size=0)
    assert param_shapes(config) == {
        "lstm.0.Wx": (7, 12), "lstm.0.Wh": (3, 12), "lstm.0.b": (12,),
        "lstm.1.Wx": (3, 12), "lstm.1.Wh": (3, 12), "lstm.1.b": (12,),
        "head.W": (3, 7), "head.b": (7,),
    }
    assert list(param_shapes(config)) == list(init_params(config, np.random.default_rng(0)))


def test_init_forget_bias_one_and_bounds():
    H = 16
    config = ModelConfig(vocab_size=9, hidden_size=H, num_layers=3, embedding_size=0)
    params = init_params(config, np.random.default_rng(0))
    for layer in range(3):
        b = params[f"lstm.{layer}.b"]
        np.testing.assert_array_equal(b[H:2 * H], 1.0)        # forget gate
        np.testing.assert_array_equal(b[:H], 0.0)
        np.testing.assert_array_equal(b[2 * H:], 0.0)
    np.testing.assert_array_equal(params["head.b"], 0.0)
    # one-hot rows (lstm.0.Wx) are uniform in +-1, everything that multiplies a hidden state in
    # +-1/sqrt(H)
    for key in ("lstm.0.Wx", "lstm.1.Wh", "lstm.2.Wx", "head.W"):
        bound = 1.0 if key == "lstm.0.Wx" else 1 / np.sqrt(H)
        w = params[key]
        assert np.abs(w).max() <= bound
        assert np.abs(w).max() > 0.8 * bound          # uniform over the whole range
        assert w.std() == pytest.approx(bound / np.sqrt(3), rel=0.15)
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(p.dtype == np.float64 for p in init_params(config, np.random.default_rng(0), np.float64).values())


def test_init_is_seeded():
    config = ModelConfig(vocab_size=5, hidden_size=4, num_layers=2)
    a = init_params(config, np.random.default_rng(42))
    b = init_params(config, np.random.default_rng(42))
    c = init_params(config, np.random.default_rng(43))
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["lstm.0.Wx"], c["lstm.0.Wx"])
    # float64 and float32 inits of one seed are the same numbers
    d = init_params(config, np.random.default_rng(42), np.float64)
    for k in a:
        np.testing.assert_array_equal(a[k], d[k].astype(np.float32))


def test_zero_state_shape():
    s = zero_state(ModelConfig(vocab_size=5, hidden_size=4, num_layers=3), 6, np.float64)
    assert s.h.shape == s.c.shape == (3, 6, 4)
    assert s.h.dtype == np.float64 and not s.h.any() and not s.c.any()


def test_config_round_trip_and_validation():
    config = ModelConfig(vocab_size=11, hidden_size=8, num_layers=2, dropout=0.25)
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.from_dict({"vocab_size": 3, "hidden_size": 2, "num_layers": 1}).dropout == 0.0
    for bad in ({"vocab_size": 0}, {"vocab_size": 3, "hidden_size": 0}, {"vocab_size": 3, "num_layers": 0},
                {"vocab_size": 3, "dropout": 1.0}, {"vocab_size": 3, "dropout": -0.1}):
        with pytest.raises(CharlstmError):
            ModelConfig(**bad)
    with pytest.raises(CharlstmError):
        ModelConfig.from_dict({"vocab_size": 3})


def test_a_workspace_changes_nothing_but_where_the_arrays_live():
    """Two steps through one workspace (the second reusing the first's memory) give exactly the
    gradients of fresh arrays, with dropout and a ragged last chunk too."""
    from charlstm.nn.workspace import Workspace
    config, params, inputs, targets, state, _ = setup(L=3, T=9, B=4, H=5, dropout=0.3)
    ws = Workspace()
    for seed in (1, 2):
        masks = dropout_masks(config, 9, 4, np.random.default_rng(seed), np.float64)
        masks_ws = dropout_masks(config, 9, 4, np.random.default_rng(seed), np.float64, ws)
        weights = np.ones((9, 4))
        weights[6:, 1] = 0.0
        fresh = loss_and_grads(params, config, inputs, targets, state, masks, weights)
        reused = loss_and_grads(params, config, inputs, targets, state, masks_ws, weights, workspace=ws)
        assert fresh[0] == reused[0]
        for key in params:
            np.testing.assert_array_equal(fresh[1][key], reused[1][key])
        for a, b in zip(fresh[2] + fresh[3], reused[2] + reused[3]):
            np.testing.assert_array_equal(a, b)
    assert ws.nbytes > 0


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_evaluation_through_a_reused_workspace_is_the_plain_forward_pass(cell):
    """Evaluation reuses one workspace across chunks (and the ragged last one): the figure must be
    the one fresh arrays give, bit for bit, state carried from chunk to chunk."""
    from charlstm.data.streams import make_streams
    from charlstm.nn.head import cross_entropy_forward
    from charlstm.training.evaluation import evaluate_blocks, evaluate_streams
    config = ModelConfig(vocab_size=20, hidden_size=16, num_layers=3, cell=cell)
    params = init_params(config, np.random.default_rng(1), np.float32)
    ids = np.random.default_rng(2).integers(0, 20, 5003)
    streams = make_streams(ids, 7, 50)
    state, total, count = zero_state(config, 7, np.float32), 0.0, 0.0
    for index in range(streams.chunks_per_pass):
        inputs, targets, weights = streams.chunk(index)
        logits, state, _ = forward(params, config, inputs.astype(np.intp), state)
        w = None if weights is None else weights.reshape(-1)
        loss, _ = cross_entropy_forward(logits, targets.reshape(-1).astype(np.intp), w)
        n = float(targets.size if w is None else w.sum())
        total, count = total + loss * n, count + n
    assert evaluate_streams(params, config, streams) == (total / count, int(count))
    state, total, count = zero_state(config, 1, np.float32), 0.0, 0.0
    for start in range(0, len(ids) - 1, 256):
        chunk = ids[start:start + 257]
        logits, state, _ = forward(params, config, chunk[:-1, None], state)
        loss, _ = cross_entropy_forward(logits, chunk[1:], None)
        total, count = total + loss * (len(chunk) - 1), count + len(chunk) - 1
    assert evaluate_blocks(params, config, [ids[:1000], ids[1000:]]) == (total / count, int(count))
