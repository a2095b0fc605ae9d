"""Conformer block and subsampling: whole-block finite differences (float64), padding, masks, and a torch
oracle (the same block written in plain torch, weights copied in: same outputs and gradients)."""

import numpy as np
import pytest

from scratchasr.nn import Dropout
from scratchasr.nn.conformer import ConformerBlock, Conv2dSubsampling, encoder_mask, subsampled_lengths
from scratchasr.ops.attention import chunk_mask
from scratchasr.testing.gradcheck import gradcheck

f64 = np.float64


def block_gradcheck(block, x, lengths, mask, **kw):
    """gradcheck over x and every parameter of ``block``; backward re-runs the forward at the cached point."""
    names = [k for k, _ in block.named_parameters()]
    live = dict(block.named_parameters())

    def load(ps):
        for k, p in zip(names, ps):
            live[k][...] = p
        block.clear_caches()
        for i, (_, m) in enumerate(block.named_modules()):  # the same dropout masks at every call
            if isinstance(m, Dropout):
                m.rng = np.random.default_rng(i)

    def fwd(x, *ps):
        load(ps)
        return block(x, lengths, mask), (x.copy(), [p.copy() for p in ps])

    def bwd(dout, cache):
        x0, ps = cache
        load(ps)
        block(x0, lengths, mask)
        for _, g in block.named_grads():
            g[...] = 0
        dx = block.backward(dout)
        grads = dict(block.named_grads())
        return (dx, *[grads[k].copy() for k in names])

    params = [v.copy() for _, v in block.named_parameters()]
    return gradcheck(fwd, bwd, [x, *params], names=["x", *names], **kw)


def _block(causal, seed=0, K=3, dropout=0.0, **kw):
    return ConformerBlock(8, 2, ff_mult=2, conv_kernel=K, causal=causal, dropout=dropout, seed=seed,
                          dtype=f64, **kw)


@pytest.mark.parametrize("causal,chunk,dropout,memory", [(False, 0, 0.0, False), (True, 2, 0.0, False),
                                                          (False, 3, 0.3, False), (True, 1, 0.0, True)])
def test_block_gradient_equals_finite_differences(causal, chunk, dropout, memory):
    rng = np.random.default_rng(0)
    kw = dict(memory=True, chunk_size=chunk, left_chunks=1) if memory else {}  # memory: 6 chunks of 1 frame
    block = _block(causal, dropout=dropout, **kw)  # dropout: fixed masks (block_gradcheck reseeds them)
    for p in block.parameters().values():  # pos_bias etc. away from their init: scores of scale ~1
        p[...] += 0.3 * rng.standard_normal(p.shape)
    lengths = np.array([6, 4])
    x = rng.standard_normal((2, 6, 8))
    x[1, 4:] = 0.0
    mask = encoder_mask(lengths, 6, chunk, 1)
    # STYLE.md: blocks 1e-6. atol: the rounding of L = sum(y * dy) (~100 terms of scale 1) over 2 eps is
    # ~1.5e-9; b_k's gradient is exactly 0 (a key bias shifts a whole score row: softmax ignores it)
    rep = block_gradcheck(block, x, lengths, mask, rtol=1e-6, atol=5e-9)
    assert rep.ok, str(rep)


def test_block_gradcheck_catches_a_wrong_branch():
    rng = np.random.default_rng(1)
    block = _block(False)
    orig = block.conv.backward
    block.conv.backward = lambda d: 1.01 * orig(d)  # a 1 % error in one residual branch
    rep = block_gradcheck(block, rng.standard_normal((2, 6, 8)), np.array([6, 5]), None, rtol=1e-6,
                          atol=1e-9)
    assert not rep.ok


def test_padding_is_never_read_and_gets_no_gradient():
    rng = np.random.default_rng(2)
    block = _block(True)
    lengths = np.array([7, 4])
    x = rng.standard_normal((2, 7, 8))
    x[1, 4:] = 0
    y = block(x, lengths)
    dx = block.backward(rng.standard_normal(y.shape))
    assert np.all(y[1, 4:] == 0) and np.all(dx[1, 4:] == 0)
    block.zero_grad()
    x2 = x.copy()
    x2[1, 4:] = 5.0  # whatever sits in the padding (the block's input contract: zeros there) ...
    y2 = block(x2 * (np.arange(7)[None, :, None] < lengths[:, None, None]), lengths)
    block.clear_caches()
    np.testing.assert_array_equal(y, y2)
    # ... and (eval mode: no batch statistics) the short utterance alone gives its frames in the batch
    block.eval()
    np.testing.assert_allclose(block(x[1:, :4], lengths[1:])[0], block(x, lengths)[1, :4], rtol=0, atol=1e-12)


def test_causal_block_without_chunks_ignores_the_future():
    """causal conv + a chunk mask of size 1: frame t depends on frames <= t only."""
    rng = np.random.default_rng(3)
    block = _block(True, K=4)
    block.eval()  # batch statistics would mix frames across time
    x = rng.standard_normal((1, 7, 8))
    mask = chunk_mask(7, 1)
    y = block(x, None, mask)
    x2 = x.copy()
    x2[0, 4:] += rng.standard_normal((3, 8))  # (a constant shift would vanish in the layer norms)
    y2 = block(x2, None, mask)
    np.testing.assert_array_equal(y[0, :4], y2[0, :4])
    assert np.abs(y[0, 4:] - y2[0, 4:]).min() > 0


def test_subsampling_lengths_and_gradient():
    rng = np.random.default_rng(4)
    sub = Conv2dSubsampling(3, 2, 4, rng=rng, dtype=f64)
    lengths = np.array([13, 9])
    x = rng.standard_normal((2, 13, 3))
    x[1, 9:] = 0
    y, yl = sub(x, lengths)
    # each output frame t reads input frames 4t .. 4t + 6: T' = floor((floor((T - 3)/2) + 1 - 3)/2) + 1
    np.testing.assert_array_equal(yl, [2, 1])  # 13 -> 6 -> 2, 9 -> 4 -> 1
    np.testing.assert_array_equal(subsampled_lengths([7, 10, 11, 6]), [1, 1, 2, 0])
    assert y.shape == (2, 2, 4) and np.all(y[1, 1:] == 0)
    sub.backward(np.zeros_like(y))
    names = [k for k, _ in sub.named_parameters()]
    live = dict(sub.named_parameters())

    def fwd(x, *ps):
        for k, p in zip(names, ps):
            live[k][...] = p
        sub.clear_caches()
        y, _ = sub(x, lengths)
        return y, (x.copy(), [p.copy() for p in ps])

    def bwd(dout, cache):
        for k, p in zip(names, cache[1]):
            live[k][...] = p
        sub.clear_caches()
        sub(cache[0], lengths)
        for _, g in sub.named_grads():
            g[...] = 0
        dx = sub.backward(dout)
        grads = dict(sub.named_grads())
        return (dx, *[grads[k].copy() for k in names])

    rep = gradcheck(fwd, bwd, [x, *[live[k].copy() for k in names]], names=["x", *names], rtol=1e-6,
                    atol=1e-9)
    assert rep.ok, str(rep)
    with pytest.raises(ValueError, match=r"^x:"):
        sub(np.zeros((1, 6, 3)))


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^conv_kernel:"):
        ConformerBlock(8, 2, conv_kernel=4, causal=False)
    with pytest.raises(ValueError, match=r"^num_heads:"):
        ConformerBlock(8, 3)


# ---------------------------------------------------------------------------------------- torch oracle
def _torch_block(torch, P, *, H, K, causal, mask):
    """The Conformer block in plain torch (functional ops, autograd), from a dict of parameters."""
    F = torch.nn.functional

    def ffn(x, pre):
        h = F.layer_norm(x, (x.shape[-1],), P[pre + "norm.gamma"], P[pre + "norm.beta"], eps=1e-5)
        h = F.silu(F.linear(h, P[pre + "lin1.W"], P[pre + "lin1.b"]))
        return F.linear(h, P[pre + "lin2.W"], P[pre + "lin2.b"])

    def rel_shift(x):  # ESPnet's pad-and-reshape rel_shift (B, H, T, 2T-1) -> (B, H, T, T)
        B, Hh, T, _ = x.shape
        zero_pad = torch.zeros((B, Hh, T, 1), dtype=x.dtype)
        xp = torch.cat([zero_pad, x], dim=-1).view(B, Hh, 2 * T, T)
        return xp[:, :, 1:].view_as(x)[:, :, :, : T]

    def mhsa(x):
        B, T, E = x.shape
        dk = E // H
        q = F.linear(x, P["mha.W_q"], P["mha.b_q"]).view(B, T, H, dk).transpose(1, 2)
        k = F.linear(x, P["mha.W_k"], P["mha.b_k"]).view(B, T, H, dk).transpose(1, 2)
        v = F.linear(x, P["mha.W_v"], P["mha.b_v"]).view(B, T, H, dk).transpose(1, 2)
        d = torch.arange(T - 1, -T, -1, dtype=x.dtype)[:, None]  # distances T-1 .. -(T-1)
        div = torch.exp(torch.arange(0, E, 2, dtype=x.dtype) * (-np.log(10000.0) / E))
        pe = torch.zeros(2 * T - 1, E, dtype=x.dtype)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(d * div), torch.cos(d * div)
        p = F.linear(pe, P["mha.W_pos"]).view(2 * T - 1, H, dk).transpose(0, 1)  # (H, 2T-1, dk)
        ac = (q + P["mha.pos_bias_u"][None, :, None]) @ k.transpose(-1, -2)
        bd = rel_shift((q + P["mha.pos_bias_v"][None, :, None]) @ p.transpose(-1, -2))
        s = (ac + bd) / np.sqrt(dk)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, dim=-1)
        if mask is not None:
            a = torch.nan_to_num(a, nan=0.0)
        o = F.linear((a @ v).transpose(1, 2).reshape(B, T, E), P["mha.W_o"], P["mha.b_o"])
        if mask is not None:
            o = o * mask.any(dim=-1).any(dim=1)[..., None]
        return o

    def conv(x):
        E = x.shape[-1]
        h = F.layer_norm(x, (E,), P["conv.norm.gamma"], P["conv.norm.beta"], eps=1e-5)
        h = F.glu(F.linear(h, P["conv.pw1.W"], P["conv.pw1.b"]), dim=-1).transpose(1, 2)  # (B, E, T)
        h = F.pad(h, (K - 1, 0)) if causal else F.pad(h, ((K - 1) // 2, (K - 1) // 2))
        h = F.conv1d(h, P["conv.dw.weight"], groups=E)
        h = F.batch_norm(h, None, None, P["conv.bn.gamma"], P["conv.bn.beta"], training=True, eps=1e-5)
        return F.linear(F.silu(h.transpose(1, 2)), P["conv.pw2.W"], P["conv.pw2.b"])

    def block(x):
        x = x + 0.5 * ffn(x, "ff1.")
        x = x + mhsa(F.layer_norm(x, (x.shape[-1],), P["norm_mha.gamma"], P["norm_mha.beta"], eps=1e-5))
        x = x + conv(x)
        x = x + 0.5 * ffn(x, "ff2.")
        return F.layer_norm(x, (x.shape[-1],), P["norm_out.gamma"], P["norm_out.beta"], eps=1e-5)

    return block


@pytest.mark.oracle
@pytest.mark.parametrize("causal,chunk,left", [(False, 0, -1), (True, 2, 1), (True, 3, 0)])
def test_block_against_plain_torch(causal, chunk, left):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    K, T = 5 if not causal else 4, 7
    block = ConformerBlock(8, 2, ff_mult=3, conv_kernel=K, causal=causal, dropout=0.0, seed=3, dtype=f64)
    for p in block.parameters().values():
        p[...] += 0.2 * rng.standard_normal(p.shape)
    x = rng.standard_normal((2, T, 8))  # full lengths: torch's batch norm uses every frame
    mask = chunk_mask(T, chunk, left_chunks=left) if chunk else None
    dy = rng.standard_normal((2, T, 8))
    y = block(x, None, mask)
    dx = block.backward(dy)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in block.parameters().items()}
    tmask = None if mask is None else torch.tensor(mask)
    xt = torch.tensor(x, requires_grad=True)
    yt = _torch_block(torch, P, H=2, K=K, causal=causal, mask=tmask)(xt)
    (yt * torch.tensor(dy)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    grads = block.gradients()
    for k, p in P.items():
        np.testing.assert_allclose(grads[k], p.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=k)


def test_memory_bank_reaches_beyond_the_window():
    """With memory, frame 5 (chunk 5 of size 1, left window = chunk 4) depends on frames 0..3 through the
    chunk summaries; without it, it does not."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 6, 8))
    x2 = x.copy()
    x2[0, 1] += rng.standard_normal(8)
    mask = chunk_mask(6, 1, left_chunks=1)
    for memory, changes in ((False, False), (True, True)):
        kw = dict(memory=True, chunk_size=1, left_chunks=1) if memory else {}
        block = _block(True, K=1, **kw)  # K = 1: the convolution does not mix frames
        block.eval()
        d = np.abs(block(x, None, mask)[0, 5] - block(x2, None, mask)[0, 5]).max()
        assert (d > 1e-6) == changes, (memory, d)
    with pytest.raises(ValueError, match=r"^memory:"):
        ConformerBlock(8, 2, memory=True, chunk_size=0, left_chunks=1)
