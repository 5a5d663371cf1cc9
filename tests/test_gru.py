"""charlstm.nn.cells.gru: what is particular to the GRU: its record, its initialisation, where the
reset gate acts, parity with torch.nn.GRU, and the stack's one call for every layer's recurrent
product. What every cell keeps (the twin, the gradients, the workspace, the step, float32, ...)
is tested for all of them in test_cells*.py."""

import numpy as np
import pytest

from charlstm.nn.cells import get_cell
from charlstm.nn.cells.gru import CELL, GRUStep, gru_backward, gru_forward, init, param_shapes

PARAMS = ("Wx", "Wh", "bx", "bh")


def random_params(rng, D, H, scale=0.7):
    return {key: rng.standard_normal(shape) * scale for key, shape in param_shapes(D, H).items()}


def test_the_cell_is_registered_and_describes_itself():
    assert get_cell("gru") is CELL and CELL.stepper is GRUStep
    assert CELL.state == ("h",) and CELL.quantities == ("h", "r", "z", "n")
    assert param_shapes(7, 4) == {"Wx": (7, 12), "Wh": (4, 12), "bx": (12,), "bh": (12,)}


@pytest.mark.parametrize("one_hot", [True, False])
def test_init_leans_the_update_gate_to_the_old_state(one_hot):
    """Biases zero but the update gate's input bias, at 1 (the GRU's forget bias); Wh uniform in
    +-1/sqrt(H), drawn after Wx."""
    D, H = 9, 16
    p = init(D, H, np.random.default_rng(0), one_hot)
    expected_bx = np.zeros(3 * H)
    expected_bx[H:2 * H] = 1.0                  # blocks r, z, n
    np.testing.assert_array_equal(p["bx"], expected_bx)
    np.testing.assert_array_equal(p["bh"], np.zeros(3 * H))
    rng = np.random.default_rng(0)
    rng.uniform(size=(D, 3 * H))                # Wx
    bound = 1.0 / np.sqrt(H)
    np.testing.assert_array_equal(p["Wh"], rng.uniform(-bound, bound, (H, 3 * H)))


def test_the_reset_gate_scales_the_whole_recurrent_part_of_n_bias_included():
    """n = tanh(x Wx_n + bx_n + r * (h Wh_n + bh_n)), as PyTorch and cuDNN place r (the paper's
    r * h before Wh_n would leave bh_n ungated): with r closed, Wh_n and bh_n change nothing; with
    r open, bh_n acts exactly as bx_n does."""
    rng = np.random.default_rng(1)
    T, B, D, H = 4, 3, 5, 2
    x, state = rng.standard_normal((T, D, B)), (rng.standard_normal((B, H)),)
    n = slice(2 * H, 3 * H)

    def out(p):
        return CELL.forward(x, state, p)[0]

    closed = random_params(rng, D, H)
    closed["bx"][:H] = -60.0                            # r = sigmoid(-60 + ...) ~ 1e-26
    moved = {k: v.copy() for k, v in closed.items()}
    moved["bh"][n] += 1.0
    moved["Wh"][:, n] += 1.0
    np.testing.assert_allclose(out(moved), out(closed), rtol=0, atol=1e-14)

    opened = random_params(rng, D, H)
    opened["bx"][:H] = 60.0                             # r = 1 to rounding
    via_bh, via_bx = ({k: v.copy() for k, v in opened.items()} for _ in range(2))
    via_bh["bh"][n] += 0.3
    via_bx["bx"][n] += 0.3
    np.testing.assert_allclose(out(via_bh), out(via_bx), rtol=1e-13, atol=1e-14)
    assert np.abs(out(via_bh) - out(opened)).max() > 1e-2


# --- parity with PyTorch ----------------------------------------------------------------------

def to_torch(torch, layers, input_size, H):
    """nn.GRU holding charlstm's layers: weight_ih = Wx^T, weight_hh = Wh^T, bias_ih = bx, bias_hh = bh."""
    gru = torch.nn.GRU(input_size, H, num_layers=len(layers), dtype=torch.float64)
    with torch.no_grad():
        for k, p in enumerate(layers):
            getattr(gru, f"weight_ih_l{k}").copy_(torch.from_numpy(p["Wx"].T.copy()))
            getattr(gru, f"weight_hh_l{k}").copy_(torch.from_numpy(p["Wh"].T.copy()))
            getattr(gru, f"bias_ih_l{k}").copy_(torch.from_numpy(p["bx"]))
            getattr(gru, f"bias_hh_l{k}").copy_(torch.from_numpy(p["bh"]))
    return gru


def test_outputs_state_and_every_gradient_match_torch_gru():
    """Two stacked layers (one-hot ids, then vectors) against one nn.GRU(num_layers=2)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(18)
    V, T, B, H = 6, 7, 3, 5
    ids = rng.integers(0, V, (T, B))
    layers = [random_params(rng, V if k == 0 else H, H) for k in range(2)]
    h0 = rng.standard_normal((2, B, H)) * 0.5
    dout, dhT = rng.standard_normal((T, B, H)), rng.standard_normal((2, B, H))

    out0, hT0, cache0 = gru_forward(ids, h0[0], *(layers[0][k] for k in PARAMS))
    out1, hT1, cache1 = gru_forward(out0, h0[1], *(layers[1][k] for k in PARAMS))
    g1 = gru_backward(dout.transpose(0, 2, 1), cache1, dhT[1])
    g0 = gru_backward(g1.dx, cache0, dhT[0])

    gru = to_torch(torch, layers, V, H)
    x = torch.nn.functional.one_hot(torch.from_numpy(ids), V).to(torch.float64)
    th0 = torch.from_numpy(h0.copy()).requires_grad_()
    t_out, t_hT = gru(x, th0)
    (t_out * torch.from_numpy(dout)).sum().add((t_hT * torch.from_numpy(dhT)).sum()).backward()

    tol = dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out1.transpose(0, 2, 1), t_out.detach().numpy(), **tol)
    np.testing.assert_allclose(np.stack([hT0, hT1]), t_hT.detach().numpy(), **tol)
    for k, g in enumerate((g0, g1)):
        np.testing.assert_allclose(g.dWx, getattr(gru, f"weight_ih_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.dWh, getattr(gru, f"weight_hh_l{k}").grad.numpy().T, **tol)
        np.testing.assert_allclose(g.dbx, getattr(gru, f"bias_ih_l{k}").grad.numpy(), **tol)
        np.testing.assert_allclose(g.dbh, getattr(gru, f"bias_hh_l{k}").grad.numpy(), **tol)
    np.testing.assert_allclose(np.stack([g0.dh0, g1.dh0]), th0.grad.numpy(), **tol)


def test_input_gradient_matches_torch_gru():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(19)
    T, B, D, H = 6, 2, 4, 3
    p = random_params(rng, D, H)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H)) * 0.5
    mask = (rng.random(x.shape) > 0.3) / 0.7
    dout = rng.standard_normal((T, B, H))
    _, _, cache = gru_forward(x.transpose(0, 2, 1), h0, *(p[k] for k in PARAMS), x_mask=mask.transpose(0, 2, 1))
    g = gru_backward(dout.transpose(0, 2, 1), cache)
    tx = torch.from_numpy(x.copy()).requires_grad_()
    t_out, _ = to_torch(torch, [p], D, H)(tx * torch.from_numpy(mask), torch.from_numpy(h0[None].copy()))
    (t_out * torch.from_numpy(dout)).sum().backward()
    np.testing.assert_allclose(g.dx.transpose(0, 2, 1), tx.grad.numpy(), rtol=1e-10, atol=1e-10)


# --- the stack's step ---------------------------------------------------------------------------

@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_stack_makes_every_layers_recurrent_product_in_one_call_with_the_same_numbers(B, dtype):
    """model.Stepper does the GRU layers' ah = [bh | Wh^T] [1; h] for all layers in one stacked
    product: the scores and states are exactly those of the layers each making their own, and
    forward's within rounding."""
    from charlstm.model import ModelConfig, State, Stepper, forward, init_params
    config = ModelConfig(9, 8, 3, 0.0, cell="gru")
    rng = np.random.default_rng(16)
    params = {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(dtype)
              for k, v in init_params(config, rng).items()}
    stacked, apart = Stepper(params, config, B), Stepper(params, config, B)
    apart.recurrent = None
    assert stacked.recurrent is not None
    assert stacked.recurrent[0].shape == (3, 3 * 8, 9) and np.shares_memory(stacked.recurrent[1], stacked.rows)
    h0 = (0.5 * rng.standard_normal((3, B, 8))).astype(dtype)
    for s in (stacked, apart):
        s.set_state(State(h0))
    ids = rng.integers(0, 9, (12, B))
    logits, final, _ = forward(params, config, ids, State(h0))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for t in range(12):
        a, b = stacked.step(ids[t]).copy(), apart.step(ids[t])
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, logits[t * B:(t + 1) * B], rtol=tol, atol=tol)
    np.testing.assert_array_equal(stacked.state().h, apart.state().h)
    np.testing.assert_allclose(stacked.state().h, final.h, rtol=tol, atol=tol)
