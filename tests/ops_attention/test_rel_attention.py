"""Relative-position multi-head attention: finite differences, rel-shift identity, naive oracle."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.ops.attention import padding_mask
from scratchasr.ops.rel_attention import rel_mha_backward, rel_mha_forward, rel_positions, rel_shift_index
from scratchasr.testing import gradcheck

NAMES = ["x", "pos", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_pos", "u", "v", "W_o", "b_o"]


def _inputs(rng, B, T, E, H):
    x = rng.standard_normal((B, T, E))
    pos = rel_positions(T, E)
    W = lambda *s: 0.4 * rng.standard_normal(s)  # noqa: E731
    return [x, pos, W(E, E), W(E), W(E, E), W(E), W(E, E), W(E), W(E, E), W(H, E // H), W(H, E // H),
            W(E, E), W(E)]


def test_rel_shift_matches_pad_reshape_trick(rng):
    T = 5
    x = rng.standard_normal((2, 3, T, 2 * T - 1))
    # ESPnet / Transformer-XL: pad a zero column, view as (2T, T), drop the first row, view back.
    padded = np.concatenate([np.zeros((2, 3, T, 1)), x], axis=-1).reshape(2, 3, 2 * T, T)
    trick = padded[:, :, 1:].reshape(2, 3, T, 2 * T - 1)[..., :T]
    gather = np.take_along_axis(x, np.broadcast_to(rel_shift_index(T), (2, 3, T, T)), axis=-1)
    np.testing.assert_array_equal(gather, trick)


def test_matches_naive_double_loop(rng):
    B, T, E, H = 2, 4, 6, 2
    inp = _inputs(rng, B, T, E, H)
    x, pos, Wq, bq, Wk, bk, Wv, bv, Wp, u, vb, Wo, bo = inp
    out, _ = rel_mha_forward(*inp, num_heads=H)
    dk = E // H
    q, k, v = (x @ Wq.T + bq), (x @ Wk.T + bk), (x @ Wv.T + bv)
    p = pos @ Wp.T
    ref = np.zeros((B, T, E))
    for b in range(B):
        for h in range(H):
            sl = slice(h * dk, (h + 1) * dk)
            S = np.empty((T, T))
            for i in range(T):
                for j in range(T):
                    r = T - 1 - (i - j)  # the row of distance i - j
                    content = (q[b, i, sl] + u[h]) @ k[b, j, sl]
                    position = (q[b, i, sl] + vb[h]) @ p[r, sl]
                    S[i, j] = (content + position) / np.sqrt(dk)
            A = np.exp(S - S.max(1, keepdims=True))
            A /= A.sum(1, keepdims=True)
            ref[b, :, sl] = A @ v[b, :, sl]
    np.testing.assert_allclose(out, ref @ Wo.T + bo, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("B,T,E,H", [(2, 4, 4, 2), (1, 3, 6, 3)])
def test_gradcheck(rng, B, T, E, H):
    lengths = np.array([T, T - 2])[:B]
    mask = padding_mask(lengths, T, queries=True)
    # atol 3e-9: b_k's true gradient is exactly 0 (softmax shift invariance), leaving round-off only.
    report = gradcheck(lambda *a: rel_mha_forward(*a, num_heads=H, mask=mask), rel_mha_backward,
                       _inputs(rng, B, T, E, H), rtol=1e-6, atol=3e-9, names=NAMES)
    assert report.ok, str(report)


def test_padding_zero_output_and_gradient(rng):
    B, T, E, H = 2, 5, 4, 2
    mask = padding_mask(np.array([5, 3]), T, queries=True)
    inp = _inputs(rng, B, T, E, H)
    out, cache = rel_mha_forward(*inp, num_heads=H, mask=mask)
    inp[0] = inp[0].copy()
    inp[0][1, 3:] = 100 * rng.standard_normal((2, E))  # padded frames never leak into valid ones
    out2, _ = rel_mha_forward(*inp, num_heads=H, mask=mask)
    np.testing.assert_array_equal(out, out2)
    assert np.all(out[1, 3:] == 0)
    grads = rel_mha_backward(rng.standard_normal(out.shape), cache)
    assert np.all(grads[0][1, 3:] == 0)


def test_bad_input(rng):
    inp = _inputs(rng, 1, 3, 4, 2)
    with pytest.raises(ValueError, match=r"^pos:"):
        rel_mha_forward(inp[0], inp[1][:-1], *inp[2:], num_heads=2)
    with pytest.raises(ValueError, match=r"^pos_bias_u:"):
        rel_mha_forward(*inp[:9], inp[9][:1], *inp[10:], num_heads=2)
