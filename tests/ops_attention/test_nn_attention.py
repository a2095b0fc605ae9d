"""Attention modules: gradients accumulate, torch.nn.MultiheadAttention import and oracle."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.nn.attention import MultiHeadAttention, RelPositionMultiHeadAttention
from scratchasr.ops.attention import padding_mask


def _numeric_dx(m, x, dout, i, eps=1e-6):
    m.eval()
    xp, xm = x.copy(), x.copy()
    xp.flat[i] += eps
    xm.flat[i] -= eps
    val = (np.sum(m(xp) * dout) - np.sum(m(xm) * dout)) / (2 * eps)
    m.train()
    return val


@pytest.mark.parametrize("cls", [MultiHeadAttention, RelPositionMultiHeadAttention])
def test_module_self_attention_dx_and_accumulation(rng, cls):
    m = cls(6, 2, dtype=np.float64)
    for k in m.params:
        m.params[k] = m.params[k] + 0.3 * rng.standard_normal(m.params[k].shape)
    x = rng.standard_normal((2, 4, 6))
    dout = rng.standard_normal((2, 4, 6))
    m(x)
    dx = m.backward(dout)
    for i in (0, 7, 20, 47):
        assert abs(dx.flat[i] - _numeric_dx(m, x, dout, i)) < 1e-7
    g1 = {k: v.copy() for k, v in m.grads.items()}
    m(x)
    m.backward(dout)
    for k in g1:
        np.testing.assert_allclose(m.grads[k], 2 * g1[k], rtol=1e-12, atol=1e-15)
    m(x)
    with pytest.raises(RuntimeError, match="never consumed"):
        m.zero_grad()


def test_cross_attention_returns_both(rng):
    m = MultiHeadAttention(4, 2, dtype=np.float64)
    xq, xkv = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    out = m(xq, xkv, mask=padding_mask(np.array([5, 2]), 5))
    dq, dkv = m.backward(np.ones_like(out))
    assert dq.shape == xq.shape and dkv.shape == xkv.shape and np.all(dkv[1, 2:] == 0)


@pytest.mark.oracle
def test_mha_module_vs_torch(rng):
    torch = pytest.importorskip("torch")
    E, H = 8, 2
    tm = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        tm.in_proj_bias.normal_()
    m = MultiHeadAttention(E, H, dtype=np.float64).load_torch_state_dict(tm.state_dict())
    x = rng.standard_normal((2, 5, E))
    tx = torch.tensor(x, requires_grad=True)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)  # torch: True = not allowed
    ty, _ = tm(tx, tx, tx, attn_mask=causal, need_weights=False)
    dy = rng.standard_normal(ty.shape)
    ty.backward(torch.tensor(dy))
    y = m(x, mask=~causal.numpy()[None, None])
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.backward(dy), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.grads["W_o"], tm.out_proj.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([m.grads["W_q"], m.grads["W_k"], m.grads["W_v"]]),
                               tm.in_proj_weight.grad.numpy(), rtol=1e-9, atol=1e-12)
