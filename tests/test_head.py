"""charlstm.nn.head: the head's linear layer and the softmax cross-entropy, against direct formulas
and central differences, and with scores large enough to overflow a naive softmax."""

import numpy as np
import pytest

from charlstm.nn.head import (cross_entropy_backward, cross_entropy_forward, head_backward, head_forward,
                              log_softmax)
from gradcheck import numerical_gradient, rel_error

TOL = 1e-6


def softmax(logits):
    return np.exp(log_softmax(logits))


def direct_loss(logits, targets, weights=None):
    """-log(exp(s_t) / sum exp(s)), averaged (weighted), written the obvious way."""
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    nll = -np.log(p[np.arange(len(targets)), targets])
    if weights is None:
        return nll.mean()
    return (nll * weights).sum() / weights.sum()


def test_loss_matches_direct_formula():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((7, 5)) * 2
    targets = rng.integers(0, 5, size=7)
    saved = logits.copy()
    loss, _ = cross_entropy_forward(logits, targets)
    assert isinstance(loss, float)
    assert loss == pytest.approx(direct_loss(logits, targets), rel=1e-12)
    np.testing.assert_array_equal(logits, saved)   # the caller's scores are not modified


def test_weighted_loss_matches_direct_formula():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((8, 4))
    targets = rng.integers(0, 4, size=8)
    weights = np.array([1, 1, 0, 1, 0, 1, 1, 0], dtype=np.float64)
    loss, _ = cross_entropy_forward(logits, targets, weights)
    assert loss == pytest.approx(direct_loss(logits, targets, weights), rel=1e-12)
    # zero-weight rows do not count at all: the loss equals that of the kept rows alone
    kept = weights > 0
    assert loss == pytest.approx(direct_loss(logits[kept], targets[kept]), rel=1e-12)


def test_uniform_scores_give_log_vocabulary_size():
    loss, _ = cross_entropy_forward(np.zeros((3, 7)), np.array([0, 3, 6]))
    assert loss == pytest.approx(np.log(7), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_check(weighted):
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 5)) * 3
    targets = rng.integers(0, 5, size=6)
    weights = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0]) if weighted else None
    _, cache = cross_entropy_forward(logits, targets, weights)
    analytic = cross_entropy_backward(cache)
    numeric = numerical_gradient(lambda: cross_entropy_forward(logits, targets, weights)[0], logits)
    assert rel_error(analytic, numeric) < TOL
    if weighted:
        assert np.all(analytic[weights == 0] == 0)
    # each row of dlogits sums to zero (softmax is shift invariant)
    np.testing.assert_allclose(analytic.sum(axis=1), 0, atol=1e-15)


def test_gradient_is_p_minus_one_hot_over_n():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    targets = np.array([2, 0])
    _, cache = cross_entropy_forward(logits, targets)
    d = cross_entropy_backward(cache)
    p = softmax(logits)
    expected = (p - np.eye(3)[targets]) / 2
    np.testing.assert_allclose(d, expected, rtol=1e-13)


def head_logits(top, W, b):
    """The head written plainly: each (t, b) column of top (T, H, B) times W, plus b."""
    T, H, B = top.shape
    return np.stack([top[t, :, k] @ W + b for t in range(T) for k in range(B)])


def test_head_forward_is_a_linear_map_of_every_column():
    rng = np.random.default_rng(3)
    top, W, b = rng.standard_normal((3, 4, 2)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    logits, _ = head_forward(top, W, b)
    np.testing.assert_allclose(logits, head_logits(top, W, b), rtol=1e-13)


def test_head_then_cross_entropy_gradient_check():
    """The head as the model uses it: scores of every (t, b) column, then the mean cross-entropy."""
    rng = np.random.default_rng(4)
    top, W, b = rng.standard_normal((3, 4, 2)), rng.standard_normal((4, 5)), rng.standard_normal(5)
    targets = rng.integers(0, 5, size=6)

    def f():
        return cross_entropy_forward(head_forward(top, W, b)[0], targets)[0]

    logits, cache = head_forward(top, W, b)
    _, ce = cross_entropy_forward(logits, targets)
    dtop, dW, db = head_backward(cross_entropy_backward(ce), cache, W)
    for name, analytic, array in (("dtop", dtop, top), ("dW", dW, W), ("db", db, b)):
        assert rel_error(analytic, numerical_gradient(f, array)) < TOL, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_scores_are_stable(dtype):
    logits = np.array([[1e4, 0.0, -1e4],
                       [3e4, 3e4 - 2.0, 3e4 - 1.0],
                       [-5e4, -5e4, -5e4]], dtype=dtype)
    targets = np.array([2, 1, 0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, cache = cross_entropy_forward(logits.copy(), targets)
        d = cross_entropy_backward(cache)
        p = softmax(logits)
        lp = log_softmax(logits)
    # row 0: -log p = 2e4 exactly up to rounding; rows 1 and 2: shift-invariant small problems
    row1 = -(-2.0 - np.log(np.exp(0.0) + np.exp(-2.0) + np.exp(-1.0)))
    expected = (2e4 + row1 + np.log(3.0)) / 3
    assert np.isfinite(loss)
    assert loss == pytest.approx(expected, rel=1e-6)
    assert np.isfinite(d).all() and d.dtype == dtype
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-6)
    assert np.isfinite(lp[1:]).all() and np.isfinite(lp[0, :2]).all()
    np.testing.assert_allclose(lp[2], np.log(1 / 3), rtol=1e-6)
    np.testing.assert_allclose(np.exp(lp), p, atol=1e-7)


def test_softmax_and_log_softmax_match_direct_formulas():
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((4, 6))
    direct = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax(logits), direct, rtol=1e-13)
    np.testing.assert_allclose(log_softmax(logits), np.log(direct), rtol=1e-12, atol=1e-14)


def test_float32_loss_and_gradient_stay_float32():
    rng = np.random.default_rng(6)
    logits = rng.standard_normal((5, 4)).astype(np.float32)
    targets = rng.integers(0, 4, size=5)
    weights = np.array([1, 1, 1, 0, 1], dtype=np.float32)
    for w in (None, weights):
        loss, cache = cross_entropy_forward(logits, targets, w)
        d = cross_entropy_backward(cache)
        assert d.dtype == np.float32
        assert loss == pytest.approx(direct_loss(logits.astype(np.float64), targets,
                                                 None if w is None else w.astype(np.float64)), rel=1e-5)
