"""MoChA decoder module: finite differences through several output steps, padding, module mechanics."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.nn.mocha import (PARAM_NAMES, MochaDecoder, decoder_backward, decoder_forward,
                                 init_mocha_params)
from scratchasr.testing import gradcheck

# a whole block over several steps: STYLE 1e-6; atol above the float64 round-off floor
RTOL, ATOL = 1e-6, 1e-9


def _setup(seed, B=2, T=6, D=3, V=5, U=4, w=2):
    rng = np.random.default_rng(seed)
    params = init_mocha_params(rng, enc_dim=D, vocab=V, embed_dim=3, hidden=4, att_dim=3, r_init=-0.5,
                               dtype=np.float64)
    enc = rng.standard_normal((B, T, D))
    prev = rng.integers(0, V, size=(B, U))
    return params, enc, prev


SLOW = pytest.mark.slow


@pytest.mark.parametrize("mode,w,noise,max_full", [("recursive", 3, 1.0, 40),
                                                   pytest.param("recursive", 2, 0.0, 1000, marks=SLOW),
                                                   pytest.param("parallel", 1, 0.0, 1000, marks=SLOW)])
def test_decoder_gradcheck(mode, w, noise, max_full):
    """max_full=40: tensors above 40 elements get 3 directions + ~10 coordinates; 1000: every element."""
    params, enc, prev = _setup(w)
    lengths, label_lengths = np.array([6, 4]), np.array([4, 3])

    def fwd(enc, *ps):
        P = dict(zip(PARAM_NAMES, ps))
        return decoder_forward(P, enc, lengths, prev, chunk_size=w, mode=mode, noise_std=noise,
                               rng=np.random.default_rng(5), label_lengths=label_lengths)

    def bwd(dlogits, cache):
        denc, G = decoder_backward(dlogits, dict(zip(PARAM_NAMES, [params[k] for k in PARAM_NAMES])), cache)
        return (denc, *[G[k] for k in PARAM_NAMES])

    inputs = [enc] + [params[k] for k in PARAM_NAMES]
    rep = gradcheck(fwd, bwd, inputs, names=["enc", *PARAM_NAMES], rtol=RTOL, atol=ATOL,
                    max_full=max_full)
    assert rep.ok, str(rep)
    logits, cache = fwd(*inputs)
    assert np.all(logits[1, 3] == 0)  # padded output step
    denc, _ = decoder_backward(np.ones_like(logits), params, cache)
    assert np.all(denc[1, 4:] == 0)


@pytest.mark.parametrize("mode,w", [("recursive", 2), ("parallel", 2), ("parallel", 1)])
def test_decoder_gradcheck_small_every_element(mode, w):
    """The reduced proof for the default suite: the slow cases above on a smaller decoder (T 4, D 2,
    V 3, U 3, embedding 2, hidden 3, attention 2: at most 72 elements per tensor), every element of
    every input and parameter checked, in both monotonic-attention modes through the whole decoder."""
    rng = np.random.default_rng(11 + w)
    params = init_mocha_params(rng, enc_dim=2, vocab=3, embed_dim=2, hidden=3, att_dim=2, r_init=-0.5,
                               dtype=np.float64)
    enc = rng.standard_normal((2, 4, 2))
    prev = rng.integers(0, 3, size=(2, 3))
    lengths, label_lengths = np.array([4, 3]), np.array([3, 2])

    def fwd(enc, *ps):
        return decoder_forward(dict(zip(PARAM_NAMES, ps)), enc, lengths, prev, chunk_size=w, mode=mode,
                               label_lengths=label_lengths)

    def bwd(dlogits, cache):
        denc, G = decoder_backward(dlogits, params, cache)
        return (denc, *[G[k] for k in PARAM_NAMES])

    inputs = [enc] + [params[k] for k in PARAM_NAMES]
    assert max(x.size for x in inputs) <= 1000                      # gradcheck checks every element
    rep = gradcheck(fwd, bwd, inputs, names=["enc", *PARAM_NAMES], rtol=RTOL, atol=ATOL)
    assert rep.ok, str(rep)
    logits, cache = fwd(*inputs)
    assert np.all(logits[1, 2] == 0)                                # padded output step
    denc, _ = decoder_backward(np.ones_like(logits), params, cache)
    assert np.all(denc[1, 3:] == 0)                                 # padded encoder frame


def test_padding_nan_does_not_leak_and_alignment_mass():
    params, enc, prev = _setup(1)
    enc[1, 4:] = np.nan
    logits, cache = decoder_forward(params, enc, np.array([6, 4]), prev, chunk_size=2)
    assert np.all(np.isfinite(logits))
    assert np.all(cache.alphas.sum(-1) <= 1 + 1e-12)
    np.testing.assert_allclose(cache.betas.sum(-1), cache.alphas.sum(-1), rtol=1e-12)


def test_module_mechanics():
    rng = np.random.default_rng(0)
    dec = MochaDecoder(enc_dim=3, vocab=5, embed_dim=3, hidden=4, att_dim=3, chunk_size=2, noise_std=1.0,
                       dtype=np.float64)
    enc = rng.standard_normal((2, 6, 3))
    prev = rng.integers(0, 5, size=(2, 3))
    lengths = np.array([6, 5])
    out = dec(enc, lengths, prev)
    with pytest.raises(RuntimeError, match=r"^zero_grad:"):
        dec.zero_grad()
    denc = dec.backward(np.ones_like(out))
    assert denc.shape == enc.shape and any(np.abs(g).sum() > 0 for g in dec.grads.values())
    dec.zero_grad()
    assert all(np.all(g == 0) for g in dec.grads.values())
    dec.eval()  # no noise at evaluation: deterministic
    a, b = dec(enc, lengths, prev), dec(enc, lengths, prev)
    assert np.array_equal(a, b)
    dec.train()
    assert not np.array_equal(dec(enc, lengths, prev), a)  # training noise
    dec.backward(np.zeros_like(a))
    with pytest.raises(ValueError, match=r"^prev_labels:"):
        dec(enc, lengths, prev + 10)


def test_float32_decoder_and_dtype_check():
    rng = np.random.default_rng(2)
    dec = MochaDecoder(enc_dim=3, vocab=5, embed_dim=3, hidden=4, att_dim=3)  # float32 by default
    enc = rng.standard_normal((2, 6, 3)).astype(np.float32)
    prev = rng.integers(0, 5, size=(2, 3))
    out = dec(enc, np.array([6, 4]), prev)
    assert out.dtype == np.float32
    denc = dec.backward(np.ones_like(out))
    assert denc.dtype == np.float32 and all(g.dtype == np.float32 for g in dec.grads.values())
    P64 = {k: v.astype(np.float64) for k, v in dec.params.items()}
    ref, _ = decoder_forward(P64, enc.astype(np.float64), np.array([6, 4]), prev, chunk_size=2,
                             noise_std=1.0, rng=np.random.default_rng(1))
    # the module draws its training noise from default_rng(seed + 1) = default_rng(1): same noise
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-4)
    with pytest.raises(TypeError, match=r"^enc:"):
        dec(enc.astype(np.float64), np.array([6, 4]), prev)
