"""Relative-position (and plain multi-head) attention never read padded frames: NaN there stays out of
outputs and gradients (as SDPA: tests/test_reliability_inputs.py)."""

from __future__ import annotations

import numpy as np

from scratchasr.ops.attention import padding_mask
from scratchasr.ops.rel_attention import rel_mha_backward, rel_mha_forward, rel_positions


def _inputs(rng, B, T, E, H):
    W = lambda *s: 0.4 * rng.standard_normal(s)  # noqa: E731
    return [rng.standard_normal((B, T, E)), rel_positions(T, E), W(E, E), W(E), W(E, E), W(E), W(E, E), W(E),
            W(E, E), W(H, E // H), W(H, E // H), W(E, E), W(E)]


def test_nan_in_padded_frames_stays_out(rng):
    B, T, E, H = 2, 6, 8, 2
    lengths = np.array([6, 3])
    pad = np.arange(T)[None, :] >= lengths[:, None]
    inp = _inputs(rng, B, T, E, H)
    x_nan = inp[0].copy()
    x_nan[pad] = np.nan
    mask = padding_mask(lengths, T, queries=True)  # the Conformer's mask
    dout = rng.standard_normal((B, T, E))
    out, cache = rel_mha_forward(*inp, num_heads=H, mask=mask)
    ref = rel_mha_backward(dout, cache)
    out2, cache2 = rel_mha_forward(x_nan, *inp[1:], num_heads=H, mask=mask)
    np.testing.assert_array_equal(out2, out)
    grads = rel_mha_backward(dout, cache2)
    for g, r in zip(grads, ref):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
    assert np.all(grads[0][pad] == 0)  # padded frames: exactly zero gradient

    # a key-only mask: padded frames are still queries (their own rows see NaN), but as keys and values
    # they are never read, so every valid frame's output is unchanged
    mask = padding_mask(lengths, T)
    out, _ = rel_mha_forward(*inp, num_heads=H, mask=mask)
    out2, _ = rel_mha_forward(x_nan, *inp[1:], num_heads=H, mask=mask)
    np.testing.assert_allclose(out2[~pad], out[~pad], rtol=1e-12, atol=1e-12)


def test_mha_nan_in_padded_frames_stays_out_of_weight_gradients(rng):
    from scratchasr.ops.attention import mha_backward, mha_forward
    B, T, E, H = 2, 5, 8, 2
    lengths = np.array([5, 3])
    pad = np.arange(T)[None, :] >= lengths[:, None]
    x = rng.standard_normal((B, T, E))
    P = [0.3 * rng.standard_normal(s) for s in [(E, E), (E,)] * 4]
    x_nan = x.copy()
    x_nan[pad] = np.nan
    mask = padding_mask(lengths, T, queries=True)
    dout = rng.standard_normal((B, T, E))
    ref = mha_backward(dout, mha_forward(x, x, *P, num_heads=H, mask=mask)[1])
    out, cache = mha_forward(x_nan, x_nan, *P, num_heads=H, mask=mask)
    assert np.all(np.isfinite(out))
    for g, r in zip(mha_backward(dout, cache), ref):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)


def test_memory_attention_nan_in_padded_frames_stays_out(rng):
    """The Emformer-style memory bank (nn/conformer_memory.py): chunk summaries average only valid frames
    and padded frames are never keys, so NaN there reaches neither outputs nor gradients."""
    from scratchasr.nn.conformer import encoder_mask
    from scratchasr.nn.conformer_memory import memory_rel_mha_backward, memory_rel_mha_forward
    B, T, E, H, C, L = 2, 7, 8, 2, 2, 1
    lengths = np.array([7, 4])
    pad = np.arange(T)[None, :] >= lengths[:, None]
    inp = _inputs(rng, B, T, E, H)
    x_nan = inp[0].copy()
    x_nan[pad] = np.nan
    mask = encoder_mask(lengths, T, C, L)
    kw = dict(num_heads=H, mask=mask, lengths=lengths, chunk_size=C, left_chunks=L)
    dout = rng.standard_normal((B, T, E))
    out, cache = memory_rel_mha_forward(*inp, **kw)
    ref = memory_rel_mha_backward(dout, cache)
    out2, cache2 = memory_rel_mha_forward(x_nan, *inp[1:], **kw)
    np.testing.assert_array_equal(out2, out)
    grads = memory_rel_mha_backward(dout, cache2)
    for g, r in zip(grads, ref):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12)
    assert np.all(grads[0][pad] == 0)
