"""charlstm.optim: Adam against the textbook algorithm, clipping by global norm, the lr schedules."""

import math

import numpy as np
import pytest

from charlstm.nn.optim import adam_init, adam_update, clip_by_global_norm, global_norm, learning_rate


def reference_adam(params, grads_per_step, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam as written in the paper's Algorithm 1, with bias-corrected moments."""
    params = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    for t, grads in enumerate(grads_per_step, start=1):
        for k in params:
            g = grads[k]
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1 ** t)
            v_hat = v[k] / (1 - beta2 ** t)
            params[k] = params[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
    return params, m, v


def make_problem(rng, steps=6, dtype=np.float64):
    params = {"lstm.0.Wx": rng.standard_normal((3, 8)), "lstm.0.b": rng.standard_normal(8),
              "head.W": rng.standard_normal((2, 3))}
    grads_per_step = []
    for t in range(steps):
        grads = {k: rng.standard_normal(p.shape) * 10.0 ** rng.integers(-3, 2) for k, p in params.items()}
        grads["lstm.0.b"][:3] = [0.0, 1e-9, -1e-10]   # tiny gradients, where eps matters
        grads_per_step.append(grads)
    cast = lambda d: {k: v.astype(dtype) for k, v in d.items()}  # noqa: E731
    return cast(params), [cast(g) for g in grads_per_step]


@pytest.mark.parametrize("lr,betas", [(1e-2, (0.9, 0.999)), (3e-3, (0.5, 0.9))])
def test_adam_matches_reference(lr, betas):
    params, grads_per_step = make_problem(np.random.default_rng(0))
    expected, m_ref, v_ref = reference_adam(params, grads_per_step, lr, *betas)
    state = adam_init(params)
    for grads in grads_per_step:
        adam_update(params, {k: g.copy() for k, g in grads.items()}, state, lr, *betas)
    assert state.step == len(grads_per_step)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, atol=1e-15, err_msg=k)
        np.testing.assert_allclose(state.m[k], m_ref[k], rtol=1e-12, atol=1e-20, err_msg=k)
        np.testing.assert_allclose(state.v[k], v_ref[k], rtol=1e-12, atol=1e-30, err_msg=k)


def test_adam_first_step_moves_each_weight_by_about_lr():
    params = {"w": np.array([1.0, -2.0, 3.0])}
    state = adam_init(params)
    adam_update(params, {"w": np.array([0.5, -7.0, 1e-3])}, state, lr=0.1)
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 2.9], rtol=1e-6)


def test_adam_is_in_place_and_keeps_float32():
    params, grads_per_step = make_problem(np.random.default_rng(1), dtype=np.float32)
    originals = dict(params)
    state = adam_init(params)
    for grads in grads_per_step:
        adam_update(params, grads, state, 1e-2)
    for k in params:
        assert params[k] is originals[k]                     # updated in place
        assert params[k].dtype == np.float32 and state.m[k].dtype == np.float32
        assert state.v[k].dtype == np.float32
    params64, grads64 = make_problem(np.random.default_rng(1))
    expected, _, _ = reference_adam(params64, grads64, 1e-2)
    for k in params:
        np.testing.assert_allclose(params[k], expected[k], rtol=1e-4, atol=1e-5)


def test_adam_state_uses_the_parameter_keys():
    params = {"lstm.0.Wx": np.zeros((2, 4)), "head.b": np.zeros(3)}
    state = adam_init(params)
    assert set(state.m) == set(state.v) == set(params) and state.step == 0
    assert state.m["lstm.0.Wx"].shape == (2, 4)


def test_global_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]]), "c": np.zeros(5)}
    assert global_norm(grads) == pytest.approx(5.0, rel=1e-15)


def test_global_norm_of_large_float32_gradients_does_not_overflow():
    """Squares of float32 gradients above ~1.8e19 overflow float32; the norm is accumulated in
    float64, so an exploding gradient is still clipped instead of reported as non-finite."""
    grads = {"w": np.array([3e20, 4e20], dtype=np.float32), "b": np.zeros(3, dtype=np.float32)}
    assert global_norm(grads) == pytest.approx(5e20, rel=1e-6)
    norm = clip_by_global_norm(grads, 5.0)
    assert norm == pytest.approx(5e20, rel=1e-6)
    np.testing.assert_allclose(grads["w"], [3.0, 4.0], rtol=1e-5)
    assert grads["w"].dtype == np.float32


def test_global_norm_accumulates_float32_in_float64():
    g = np.full(1_000_003, 0.1, dtype=np.float32)
    exact = math.sqrt(g.size * float(np.float32(0.1)) ** 2)
    assert global_norm({"g": g}) == pytest.approx(exact, rel=1e-9)


def test_clip_scales_to_max_norm_and_returns_pre_clip_norm():
    rng = np.random.default_rng(2)
    grads = {"a": rng.standard_normal((4, 5)) * 10, "b": rng.standard_normal(7) * 10}
    before = {k: v.copy() for k, v in grads.items()}
    pre = global_norm(grads)
    assert pre > 5
    returned = clip_by_global_norm(grads, 5.0)
    assert returned == pytest.approx(pre, rel=1e-15)
    assert global_norm(grads) == pytest.approx(5.0, rel=1e-6)
    scale = grads["a"] / before["a"]                      # one common factor for every entry
    np.testing.assert_allclose(scale, 5.0 / pre, rtol=1e-6)
    np.testing.assert_allclose(grads["b"] / before["b"], 5.0 / pre, rtol=1e-6)


def test_clip_leaves_small_gradients_and_zero_means_off():
    grads = {"a": np.array([0.3, 0.4])}
    assert clip_by_global_norm(grads, 5.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(grads["a"], [0.3, 0.4])
    big = {"a": np.array([300.0, 400.0])}
    assert clip_by_global_norm(big, 0) == pytest.approx(500.0)
    np.testing.assert_array_equal(big["a"], [300.0, 400.0])


def test_clip_reports_non_finite_and_does_not_scale():
    grads = {"a": np.array([1.0, np.nan]), "b": np.array([10.0, 0.0])}
    assert not math.isfinite(clip_by_global_norm(grads, 1.0))
    np.testing.assert_array_equal(grads["b"], [10.0, 0.0])
    grads = {"a": np.array([np.inf, 1.0])}
    assert clip_by_global_norm(grads, 1.0) == math.inf


def test_learning_rate_constant_and_warmup():
    assert learning_rate(2e-3, "constant", step=0) == 2e-3
    assert learning_rate(2e-3, "constant", step=12345, fraction=0.9) == 2e-3
    warm = [learning_rate(1.0, "constant", step=s, warmup_steps=4) for s in range(6)]
    assert warm == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_learning_rate_step_schedule():
    lrs = [learning_rate(1.0, "step", step=s, decay_rate=0.5, decay_every=10) for s in (0, 9, 10, 19, 20, 35)]
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_learning_rate_cosine_schedule():
    lr = lambda f: learning_rate(1.0, "cosine", fraction=f, min_lr_fraction=0.1)  # noqa: E731
    assert lr(0.0) == pytest.approx(1.0)
    assert lr(0.5) == pytest.approx(0.55)
    assert lr(1.0) == pytest.approx(0.1)
    assert lr(2.0) == pytest.approx(0.1)          # past the end: stays at the floor
    values = [lr(f) for f in np.linspace(0, 1, 11)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_learning_rate_unknown_schedule():
    with pytest.raises(ValueError):
        learning_rate(1.0, "exponential")
