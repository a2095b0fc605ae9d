"""LSTM module: finite differences through the stacked core, torch.nn.LSTM oracle (packed, ragged)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.nn.lstm import LSTM, init_lstm_params, lstm_stack_backward, lstm_stack_forward
from scratchasr.testing import gradcheck


@pytest.mark.parametrize("bidirectional,proj,dropout", [(True, 0, False), (False, 3, True), (True, 3, True)])
def test_stack_gradcheck(rng, bidirectional, proj, dropout):
    B, T, D, H, layers = 2, 5, 3, 3, 2
    params = init_lstm_params(rng, input_size=D, hidden_size=H, num_layers=layers,
                              bidirectional=bidirectional,
                              proj_size=proj, dtype=np.float64)
    names = list(params)
    x = rng.standard_normal((B, T, D))
    lengths = np.array([5, 3])
    F = proj or (2 if bidirectional else 1) * H
    masks = [(rng.random((B, T, F)) < 0.7) / 0.7] if dropout else None

    def fwd(x, *ps):
        return lstm_stack_forward(dict(zip(names, ps)), x, lengths, num_layers=layers,
                                  bidirectional=bidirectional,
                                  dropout_masks=masks)

    def bwd(dy, cache):
        dx, G = lstm_stack_backward(dy, params, cache)
        return (dx, *[G[k] for k in names])

    # params is rebound by fwd only through its arguments; bwd reads the same values (gradcheck's
    # float64 copies equal them), so the closure over ``params`` is exact.
    report = gradcheck(fwd, bwd, [x, *params.values()], rtol=1e-6, atol=1e-9, names=["x", *names])
    assert report.ok, str(report)
    y, cache = fwd(x, *params.values())
    assert np.all(y[1, 3:] == 0)
    dx, _ = lstm_stack_backward(rng.standard_normal(y.shape), params, cache)
    assert np.all(dx[1, 3:] == 0)


def test_module_accumulates_and_checks_caches(rng):
    m = LSTM(3, 4, num_layers=2, bidirectional=True, dropout=0.2, dtype=np.float64)
    x = rng.standard_normal((2, 5, 3))
    y = m(x, np.array([5, 2]))
    assert y.shape == (2, 5, 8) and m.output_size == 8
    with pytest.raises(RuntimeError, match="never consumed"):
        m.zero_grad()
    m.backward(np.ones_like(y))
    g1 = {k: v.copy() for k, v in m.grads.items()}
    m.eval()
    y_eval = m(x, np.array([5, 2]))
    assert np.all(y_eval[1, 2:] == 0) and not m._caches
    m.train()
    m(x, np.array([5, 2]))
    m.backward(np.ones_like(y))
    assert any(not np.allclose(m.grads[k], g1[k]) for k in g1)  # accumulated (+=), new dropout masks
    m.zero_grad()
    assert all(np.all(g == 0) for g in m.grads.values())


@pytest.mark.oracle
@pytest.mark.parametrize("num_layers,bidirectional", [(1, False), (2, True)])
def test_vs_torch_packed(rng, num_layers, bidirectional):
    torch = pytest.importorskip("torch")
    B, T, D, H = 3, 7, 4, 5
    lengths = np.array([7, 4, 2])
    tm = torch.nn.LSTM(D, H, num_layers=num_layers, bidirectional=bidirectional, batch_first=True,
                       dtype=torch.float64)
    m = LSTM(D, H, num_layers=num_layers, bidirectional=bidirectional, dtype=np.float64)
    m.load_torch_state_dict(tm.state_dict())
    x = rng.standard_normal((B, T, D))
    tx = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    ty, _ = tm(packed)
    ty, _ = torch.nn.utils.rnn.pad_packed_sequence(ty, batch_first=True, total_length=T)
    dy = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(dy))
    y = m(x, lengths)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    dx = m.backward(dy)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    for name, p in tm.named_parameters():
        ours = name.replace("weight_ih", "W_ih").replace("weight_hh", "W_hh").replace("bias_ih", "b").replace(
            "bias_hh", "b")
        np.testing.assert_allclose(m.grads[ours], p.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.oracle
def test_final_states_vs_torch(rng):
    """lstm_forward's (h_n, c_n) and their gradients equal torch's (ragged packed input, both directions)."""
    torch = pytest.importorskip("torch")
    from scratchasr.ops.lstm import lstm_backward, lstm_forward
    B, T, D, H = 3, 6, 3, 4
    lengths = np.array([6, 2, 4])
    tm = torch.nn.LSTM(D, H, bidirectional=True, batch_first=True, dtype=torch.float64)
    sd = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    x, h0, c0 = rng.standard_normal((B, T, D)), rng.standard_normal((2, B, H)), rng.standard_normal((2, B, H))
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    _, (thn, tcn) = tm(packed, (th0, tc0))
    dhn, dcn = rng.standard_normal((2, 2, B, H))
    torch.autograd.backward([thn, tcn], [torch.tensor(dhn), torch.tensor(dcn)])
    dx = 0
    for d, suf in enumerate(("", "_reverse")):
        W_ih, W_hh = sd["weight_ih_l0" + suf], sd["weight_hh_l0" + suf]
        b = sd["bias_ih_l0" + suf] + sd["bias_hh_l0" + suf]
        _, (hn, cn), cache = lstm_forward(x, lengths, h0[d], c0[d], W_ih, W_hh, b, reverse=bool(d))
        np.testing.assert_allclose(hn, thn[d].detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(cn, tcn[d].detach().numpy(), rtol=1e-10, atol=1e-12)
        g = lstm_backward(np.zeros((B, T, H)), cache, dhn[d], dcn[d])
        dx = dx + g[0]
        np.testing.assert_allclose(g[1], th0.grad[d].numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(g[2], tc0.grad[d].numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-9, atol=1e-12)
