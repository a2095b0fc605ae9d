"""SDPA, masks, multi-head attention: finite differences, masking invariants, torch oracles."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.ops.attention import (causal_mask, chunk_mask, mha_backward, mha_forward, padding_mask,
                                      sdpa_backward, sdpa_forward, sinusoidal_positions)
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import sdpa_naive

# atol 1e-9: the float64 round-off floor of the finite-difference quotient of L = sum(out * dout).
RTOL, ATOL = 1e-7, 1e-9


def _qkv(rng, B, H, Tq, Tk, d, dv, scale=1.5):
    return (scale * rng.standard_normal((B, H, Tq, d)), scale * rng.standard_normal((B, H, Tk, d)),
            rng.standard_normal((B, H, Tk, dv)))


@pytest.mark.parametrize("shape", [(2, 1, 3, 4, 2, 3), (1, 2, 5, 5, 3, 2)])
@pytest.mark.parametrize("kind", ["none", "padding", "causal", "chunk", "empty-row"])
def test_sdpa_gradcheck(rng, shape, kind):
    B, H, Tq, Tk, d, dv = shape
    q, k, v = _qkv(rng, *shape)
    mask = {"none": None, "padding": padding_mask(np.array([Tk, 2] if B == 2 else [3]), Tk),
            "causal": causal_mask(Tq, Tk), "chunk": chunk_mask(Tk, 2)[..., :Tq, :] if Tq <= Tk else None,
            "empty-row": np.ones((B, H, Tq, Tk), bool)}[kind]
    if kind == "empty-row":
        mask[0, 0, 1] = False  # one query with no allowed key
    report = gradcheck(lambda q, k, v: sdpa_forward(q, k, v, mask), sdpa_backward, [q, k, v],
                       rtol=RTOL, atol=ATOL, names=["q", "k", "v"])
    assert report.ok, str(report)


def test_sdpa_masked_rows_zero_and_no_nan(rng):
    q, k, v = _qkv(rng, 2, 2, 3, 4, 5, 3)
    mask = padding_mask(np.array([4, 0]), 4)  # second sequence: no keys at all
    out, cache = sdpa_forward(q, k, v, mask)
    assert np.all(np.isfinite(out)) and np.all(out[1] == 0)
    dq, dk, dv = sdpa_backward(np.ones_like(out), cache)
    assert np.all(dq[1] == 0) and np.all(dk[1] == 0) and np.all(dv[1] == 0)
    # keys beyond the length get exactly zero gradient
    mask = padding_mask(np.array([4, 2]), 4)
    out, cache = sdpa_forward(q, k, v, mask)
    dq, dk, dv = sdpa_backward(np.ones_like(out), cache)
    assert np.all(dk[1, :, 2:] == 0) and np.all(dv[1, :, 2:] == 0)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-3)])
def test_sdpa_large_scores_stable(rng, dtype, rtol):
    """Scores of about 1e4 (exp overflows beyond 709 in float64, 88 in float32) with O(1) differences
    between keys, so the softmax is not one-hot: the output must equal the extended-precision
    reference, and the gradient must equal the float64 gradient (finite-difference checked above)."""
    B, H, Tq, Tk, d = 1, 2, 3, 4, 4
    q, k, v = _qkv(rng, B, H, Tq, Tk, d, 3)
    common = np.zeros(d)
    common[0] = 100.0
    q = q + common                                   # every score gets 100 * 100 / 2 = 5000 added ...
    k = k + common                                   # ... plus O(100) cross terms: no exp survives unshifted
    ref = sdpa_naive(q, k, v, dtype=np.longdouble)  # every sum in extended precision
    s = np.einsum("bhqd,bhkd->bhqk", q, k) / 2.0
    assert s.min() > 4000 and np.all(np.ptp(s, axis=-1) > 1.0)
    out, cache = sdpa_forward(*(a.astype(dtype) for a in (q, k, v)))
    assert out.dtype == dtype
    # rtol for float32: scores of 5e3 are rounded by ~3e-4, and their differences set the weights.
    np.testing.assert_allclose(out, ref.astype(np.float64), rtol=rtol, atol=rtol * np.abs(v).max())
    dout = rng.standard_normal(out.shape)
    grads = sdpa_backward(dout.astype(dtype), cache)
    _, cache64 = sdpa_forward(q, k, v)
    for g, g64 in zip(grads, sdpa_backward(dout, cache64)):
        assert g.dtype == dtype and np.all(np.isfinite(g))
        np.testing.assert_allclose(g, g64, rtol=rtol, atol=rtol * np.abs(g64).max() * 10)


def test_masks():
    m = causal_mask(3)
    assert m.shape == (1, 1, 3, 3) and np.array_equal(m[0, 0], np.tril(np.ones((3, 3), bool)))
    c = chunk_mask(5, 2)[0, 0]
    chunk = np.arange(5) // 2                                  # chunks 0 0 1 1 2
    assert np.array_equal(c, chunk[None, :] <= chunk[:, None])  # own chunk and earlier ones, no later one
    assert c[0, 1] and not c[1, 2] and c[3, 0] and c[4, 4] and not c[3, 4]
    assert not chunk_mask(6, 2, left_chunks=0)[0, 0, 4, 3] and chunk_mask(6, 2, left_chunks=1)[0, 0, 4, 3]
    p = padding_mask(np.array([2, 3]), 3, queries=True)
    assert p.shape == (2, 1, 3, 3) and not p[0, 0, 2].any() and p[1, 0, 2].all()
    with pytest.raises(ValueError, match=r"^chunk_size:"):
        chunk_mask(4, 0)
    pe = sinusoidal_positions(4, 6)
    np.testing.assert_allclose(pe[:, 0], np.sin(np.arange(4)))
    np.testing.assert_allclose(pe[:, 3], np.cos(np.arange(4) / 10000 ** (2 / 6)))


def test_sdpa_bad_input(rng):
    q, k, v = _qkv(rng, 1, 1, 3, 4, 2, 2)
    with pytest.raises(ValueError, match=r"^k:"):
        sdpa_forward(q, k[..., :1], v)
    with pytest.raises(TypeError, match=r"^mask:"):
        sdpa_forward(q, k, v, np.ones((1, 1, 3, 4)))
    with pytest.raises(ValueError, match=r"^mask:"):
        sdpa_forward(q, k, v, np.ones((1, 1, 3, 5), bool))


def _mha_params(rng, E, dtype=np.float64):
    return [(0.4 * rng.standard_normal(s)).astype(dtype) for s in [(E, E), (E,)] * 4]


def test_mha_bad_input(rng):
    B, T, E, H = 2, 3, 4, 2
    x = rng.standard_normal((B, T, E))
    P = _mha_params(rng, E)
    ok_out, cache = mha_forward(x, x, *P, num_heads=H)
    with pytest.raises(ValueError, match=r"^x_q:"):
        mha_forward(x[0], x, *P, num_heads=H)
    with pytest.raises(ValueError, match=r"^x_kv:"):
        mha_forward(x, x[..., :3], *P, num_heads=H)
    with pytest.raises(ValueError, match=r"^x_kv:"):
        mha_forward(x, x[:1], *P, num_heads=H)
    with pytest.raises(ValueError, match=r"^num_heads: expected a divisor of the embedding size 4, got 3"):
        mha_forward(x, x, *P, num_heads=3)
    with pytest.raises(ValueError, match=r"^num_heads:"):
        mha_forward(x, x, *P, num_heads=0)
    with pytest.raises(TypeError, match=r"^num_heads:"):
        mha_forward(x, x, *P, num_heads=2.0)
    for i, name in enumerate(["W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o"]):
        bad = list(P)
        bad[i] = P[i][:-1]                              # one row short
        with pytest.raises(ValueError, match=rf"^{name}:"):
            mha_forward(x, x, *bad, num_heads=H)
    with pytest.raises(TypeError, match=r"^expected one floating dtype for all arrays, got x_q=float32"):
        mha_forward(x.astype(np.float32), x, *P, num_heads=H)
    with pytest.raises(TypeError, match=r"^mask:"):
        mha_forward(x, x, *P, num_heads=H, mask=np.ones((B, 1, T, T)))
    with pytest.raises(ValueError, match=r"^mask:"):
        mha_forward(x, x, *P, num_heads=H, mask=np.ones((B, 1, T, T + 1), bool))
    with pytest.raises(ValueError, match=r"^dout:"):
        mha_backward(np.ones((B, T, E + 1)), cache)
    assert ok_out.shape == (B, T, E)


@pytest.mark.parametrize("cross", [False, True])
def test_mha_gradcheck(rng, cross):
    B, Tq, E, H = 2, 5, 6, 2
    Tk = 4 if cross else Tq
    x_q = rng.standard_normal((B, Tq, E))
    x_kv = rng.standard_normal((B, Tk, E)) if cross else x_q.copy()
    lengths = np.array([Tk, 2 if cross else 3])
    mask = padding_mask(lengths, Tk) if cross else padding_mask(lengths, Tq, queries=True)
    names = ["x_q", "x_kv", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o"]
    # b_k's true gradient is exactly 0 (adding q.b_k to every score of a row leaves the softmax
    # unchanged), so its numerical value is pure round-off of L, ~1e-9 here.
    report = gradcheck(lambda *a: mha_forward(*a, num_heads=H, mask=mask), mha_backward,
                       [x_q, x_kv, *_mha_params(rng, E)], rtol=1e-6, atol=3e-9, names=names)
    assert report.ok, str(report)
    out, cache = mha_forward(x_q, x_kv, *_mha_params(rng, E), num_heads=H, mask=mask)
    grads = mha_backward(rng.standard_normal(out.shape), cache)
    assert np.all(grads[1][1, lengths[1]:] == 0)  # padded keys: exactly zero gradient
    if not cross:
        assert np.all(out[1, 3:] == 0) and np.all(grads[0][1, 3:] == 0)


@pytest.mark.oracle
@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding"])
def test_sdpa_vs_torch(rng, mask_kind):
    torch = pytest.importorskip("torch")
    q, k, v = _qkv(rng, 2, 3, 5, 6, 4, 3)
    mask = {"none": None, "causal": causal_mask(5, 6),
            "padding": padding_mask(np.array([6, 3]), 6)}[mask_kind]
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tout = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=None if mask is None else torch.tensor(mask))
    dout = rng.standard_normal(tout.shape)
    tout.backward(torch.tensor(dout))
    out, cache = sdpa_forward(q, k, v, mask)
    np.testing.assert_allclose(out, tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(sdpa_backward(dout, cache), (tq, tk, tv)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.oracle
def test_mha_vs_torch(rng):
    torch = pytest.importorskip("torch")
    B, T, E, H = 2, 6, 8, 4
    lengths = np.array([6, 4])
    x = rng.standard_normal((B, T, E))
    m = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        m.in_proj_bias.normal_()
        m.out_proj.bias.normal_()
    tx = torch.tensor(x, requires_grad=True)
    key_pad = torch.tensor(np.arange(T)[None, :] >= lengths[:, None])  # torch: True = ignore
    tout, _ = m(tx, tx, tx, key_padding_mask=key_pad, need_weights=False)
    valid = (np.arange(T)[None, :] < lengths[:, None])[:, :, None]
    dout = rng.standard_normal(tout.shape) * valid  # compare only valid query rows
    tout.backward(torch.tensor(dout))
    Wq, Wk, Wv = (a.detach().numpy() for a in m.in_proj_weight.chunk(3))
    bq, bk, bv = (a.detach().numpy() for a in m.in_proj_bias.chunk(3))
    Wo, bo = m.out_proj.weight.detach().numpy(), m.out_proj.bias.detach().numpy()
    out, cache = mha_forward(x, x, Wq, bq, Wk, bk, Wv, bv, Wo, bo, num_heads=H,
                             mask=padding_mask(lengths, T, queries=True))
    np.testing.assert_allclose(out * valid, tout.detach().numpy() * valid, rtol=1e-10, atol=1e-12)
    g = mha_backward(dout, cache)
    np.testing.assert_allclose(g[0] + g[1], tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    dW_in = np.concatenate([g[2], g[4], g[6]])
    np.testing.assert_allclose(dW_in, m.in_proj_weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.concatenate([g[3], g[5], g[7]]), m.in_proj_bias.grad.numpy(), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(g[8], m.out_proj.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g[9], m.out_proj.bias.grad.numpy(), rtol=1e-9, atol=1e-12)
