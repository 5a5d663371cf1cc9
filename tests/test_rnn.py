"""charlstm.nn.cells.rnn: what is particular to the tanh RNN: its record, the orthogonal
initialisation, the layout of its input gradient, and parity with torch.nn.RNN. What every cell
keeps (the twin, the gradients, the workspace, the step, float32, ...) is tested for all of them
in test_cells*.py."""

import numpy as np
import pytest

from charlstm.nn.cells import get_cell
from charlstm.nn.cells.rnn import CELL, RNNStep, init, orthogonal, param_shapes, rnn_backward, rnn_forward
from charlstm.nn.workspace import Workspace

PARAMS = ("Wx", "Wh", "b")


def random_params(rng, D, H, scale=0.7):
    return {key: rng.standard_normal(shape) * scale for key, shape in param_shapes(D, H).items()}


def test_the_cell_is_registered_and_describes_itself():
    assert get_cell("rnn") is CELL and CELL.stepper is RNNStep
    assert CELL.state == ("h",) and CELL.quantities == ("h",)
    assert param_shapes(7, 4) == {"Wx": (7, 4), "Wh": (4, 4), "b": (4,)}


@pytest.mark.parametrize("one_hot", [True, False])
def test_init_draws_an_orthogonal_wh_after_wx_and_a_zero_bias(one_hot):
    D, H = 9, 16
    p = init(D, H, np.random.default_rng(0), one_hot)
    np.testing.assert_allclose(p["Wh"].T @ p["Wh"], np.eye(H), atol=1e-12)
    np.testing.assert_array_equal(p["b"], np.zeros(H))
    rng = np.random.default_rng(0)
    rng.uniform(size=(D, H))                    # Wx
    np.testing.assert_array_equal(p["Wh"], orthogonal(H, rng))


def test_orthogonal_is_sign_corrected():
    """The signs are fixed by R's diagonal, so the matrix is Haar-distributed: over many draws a
    diagonal entry averages zero (the Q of numpy's QR alone averages about -0.4 there)."""
    rng = np.random.default_rng(1)
    q, r = np.linalg.qr(np.random.default_rng(2).standard_normal((3, 3)))
    signs = np.sign(np.diag(r))
    np.testing.assert_allclose(orthogonal(3, np.random.default_rng(2)), q * signs)
    diag = np.array([np.diag(orthogonal(4, rng)) for _ in range(2000)])
    assert np.all(np.abs(diag.mean(axis=0)) < 0.05)


@pytest.mark.parametrize("use_workspace", [False, True], ids=["fresh", "workspace"])
def test_dx_is_written_in_time_order_in_a_buffer_one_block_larger(use_workspace):
    """dx and the running dh share one buffer of T*D*B + H*B; dx, its first T*D*B, is contiguous
    (never copied)."""
    rng = np.random.default_rng(13)
    T, B, D, H = 6, 3, 5, 4
    ws = Workspace() if use_workspace else None
    part = (lambda prefix: None) if ws is None else ws.part
    out, _, cache = CELL.forward(rng.standard_normal((T, D, B)), (rng.standard_normal((B, H)),),
                                 random_params(rng, D, H), workspace=part("f"))
    g = CELL.backward(rng.standard_normal(out.shape), cache, workspace=part("b"), dx_workspace=part("dx"))
    assert g.dx.shape == (T, D, B) and g.dx.flags.c_contiguous
    if ws is not None:
        assert ws.part("dx").empty("dx", (1,), np.float64).base.size == T * D * B + H * B


# --- parity with PyTorch ----------------------------------------------------------------------

def to_torch(torch, layers, V, H, bias_hh=None):
    rnn = torch.nn.RNN(V, H, num_layers=len(layers), nonlinearity="tanh", dtype=torch.float64)
    with torch.no_grad():
        for k, p in enumerate(layers):
            getattr(rnn, f"weight_ih_l{k}").copy_(torch.from_numpy(p["Wx"].T.copy()))
            getattr(rnn, f"weight_hh_l{k}").copy_(torch.from_numpy(p["Wh"].T.copy()))
            hh = np.zeros_like(p["b"]) if bias_hh is None else bias_hh[k]
            getattr(rnn, f"bias_ih_l{k}").copy_(torch.from_numpy(p["b"] - hh))
            getattr(rnn, f"bias_hh_l{k}").copy_(torch.from_numpy(hh))
    return rnn


@pytest.mark.parametrize("split_bias", [False, True])
def test_outputs_state_and_every_gradient_match_torch_rnn(split_bias):
    """Two stacked layers (one-hot ids, then vectors) against nn.RNN(num_layers=2): weight_ih =
    Wx^T, weight_hh = Wh^T, bias_ih = b, bias_hh = 0; or any split with bias_ih + bias_hh = b."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    V, T, B, H = 6, 7, 3, 5
    ids = rng.integers(0, V, (T, B))
    layers = [random_params(rng, V if k == 0 else H, H) for k in range(2)]
    h0 = rng.standard_normal((2, B, H)) * 0.5
    dout, dhT = rng.standard_normal((T, B, H)), rng.standard_normal((2, B, H))

    out0, hT0, cache0 = rnn_forward(ids, h0[0], *(layers[0][k] for k in PARAMS))
    out1, hT1, cache1 = rnn_forward(out0, h0[1], *(layers[1][k] for k in PARAMS))
    g1 = rnn_backward(dout.transpose(0, 2, 1), cache1, dhT[1])
    g0 = rnn_backward(g1.dx, cache0, dhT[0])

    bias_hh = [rng.standard_normal(H) for _ in range(2)] if split_bias else None
    rnn = to_torch(torch, layers, V, H, bias_hh)
    x = torch.nn.functional.one_hot(torch.from_numpy(ids), V).to(torch.float64)
    th0 = torch.from_numpy(h0.copy()).requires_grad_()
    t_out, t_hT = rnn(x, th0)
    (t_out * torch.from_numpy(dout)).sum().add((t_hT * torch.from_numpy(dhT)).sum()).backward()

    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out1.transpose(0, 2, 1), t_out.detach().numpy(), **tol)
    np.testing.assert_allclose(np.stack([hT0, hT1]), t_hT.detach().numpy(), **tol)
    for k, g in enumerate((g0, g1)):
        np.testing.assert_allclose(g.dWx, getattr(rnn, f"weight_ih_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.dWh, getattr(rnn, f"weight_hh_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.db, getattr(rnn, f"bias_ih_l{k}").grad.numpy(), **tol)
        np.testing.assert_allclose(g.db, getattr(rnn, f"bias_hh_l{k}").grad.numpy(), **tol)
    np.testing.assert_allclose(np.stack([g0.dh0, g1.dh0]), th0.grad.numpy(), **tol)


def test_input_gradient_matches_torch_rnn():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    T, B, D, H = 6, 2, 4, 3
    p = random_params(rng, D, H)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    mask = (rng.random(x.shape) > 0.3) / 0.7
    dout = rng.standard_normal((T, B, H))
    _, _, cache = rnn_forward(x.transpose(0, 2, 1), h0, *(p[k] for k in PARAMS), x_mask=mask.transpose(0, 2, 1))
    g = rnn_backward(dout.transpose(0, 2, 1), cache)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, _ = to_torch(torch, [p], D, H)(tx * torch.from_numpy(mask), torch.from_numpy(h0[None].copy()))
    (t_out * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(g.dx.transpose(0, 2, 1), tx.grad.numpy(), rtol=1e-10, atol=1e-10)
