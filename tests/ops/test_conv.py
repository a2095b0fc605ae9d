"""conv1d / conv2d: finite differences, lengths semantics, purity, bad input, torch oracle."""

import math

import numpy as np
import pytest

from scratchasr.ops import conv1d_backward, conv1d_forward, conv2d_backward, conv2d_forward, conv_out_lengths
from scratchasr.testing.gradcheck import gradcheck

# (T, C_in, C_out, K, stride, padding, dilation, groups, bias)
CONV1D_CASES = [
    (7, 3, 4, 3, 1, 1, 1, 1, True),
    (7, 4, 6, 3, 2, 2, 2, 2, True),  # grouped, strided, dilated
    (6, 4, 4, 5, 1, 2, 1, 4, False),  # depthwise ("same" padding), no bias
    (9, 2, 3, 2, 3, 0, 2, 1, True),
    (5, 2, 2, 3, 3, 0, 1, 1, True),  # one output frame; the shorter sequence has output length 0
    (8, 3, 3, 3, 2, 1, 2, 3, True),  # depthwise (tap-loop path), strided and dilated
    (6, 2, 4, 3, 1, 1, 1, 2, True),  # depthwise with channel multiplier 2 (grouped einsum path)
]


def _out_len(L, K, s, p, d):
    """Output frames of a convolution over L frames, from its definition: output j reads inputs
    j*s - p + i*d for i = 0..K-1 (zero padding outside 0..L+2p), so it exists while its last tap
    j*s - p + (K-1)*d <= L - 1 + p; PyTorch's formula floor((L + 2p - d(K-1) - 1) / s) + 1. An empty
    sequence has no output frame."""
    if L == 0:
        return 0
    n = 0
    while n * s - p + (K - 1) * d <= L - 1 + p:
        n += 1
    assert n == max(0, math.floor((L + 2 * p - d * (K - 1) - 1) / s) + 1)
    return n


@pytest.mark.parametrize("L,K,s,p,d", [(7, 3, 1, 1, 1), (4, 3, 2, 2, 2), (2, 3, 3, 0, 1), (1, 5, 1, 0, 1),
                                       (0, 3, 1, 1, 1), (23, 3, 2, 0, 1), (10, 4, 3, 1, 2)])
def test_conv_out_lengths_formula(L, K, s, p, d):
    assert conv_out_lengths(np.array([L]), K, s, p, d).tolist() == [_out_len(L, K, s, p, d)]
    if _out_len(L, K, s, p, d):   # the sequence alone, no lengths given: its output has that many frames
        y, out_len, _ = conv1d_forward(np.ones((1, L, 1)), np.ones((1, 1, K)), stride=s, padding=p,
                                       dilation=d)
        assert y.shape[1] == out_len[0] == _out_len(L, K, s, p, d)


def _conv1d(case, lengths):
    T, C_in, C_out, K, s, p, d, G, has_bias = case

    def fwd(x, w, *b):
        return conv1d_forward(x, w, b[0] if b else None, lengths=lengths, stride=s, padding=p, dilation=d,
                              groups=G)
    return fwd


@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d_gradcheck_unequal_lengths(case):
    T, C_in, C_out, K, s, p, d, G, has_bias = case
    rng = np.random.default_rng(1)
    lengths = np.array([T, T - 3])
    x = rng.standard_normal((2, T, C_in))
    w = rng.standard_normal((C_out, C_in // G, K))
    inputs = [x, w] + ([rng.standard_normal(C_out)] if has_bias else [])
    fwd = _conv1d(case, lengths)
    rep = gradcheck(fwd, conv1d_backward, inputs, rtol=1e-6, atol=1e-9)
    assert rep, str(rep)
    y, out_lengths, cache = fwd(*inputs)
    assert out_lengths.tolist() == [_out_len(L, K, s, p, d) for L in lengths]
    for b in range(2):  # outputs past the output length are exactly zero
        assert np.all(y[b, out_lengths[b]:] == 0)
    grads = conv1d_backward(rng.standard_normal(y.shape), cache)
    assert len(grads) == len(inputs)
    assert np.all(grads[0][1, lengths[1]:] == 0)  # padded input frames get exactly zero gradient


@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d_padding_frames_do_not_leak(case):
    """Each valid output equals the convolution of that utterance alone (garbage in padding ignored)."""
    T, C_in, C_out, K, s, p, d, G, has_bias = case
    rng = np.random.default_rng(2)
    lengths = np.array([T, T - 2])
    x = rng.standard_normal((2, T, C_in))
    x[1, lengths[1]:] = np.nan  # padding frames hold garbage
    w = rng.standard_normal((C_out, C_in // G, K))
    b = rng.standard_normal(C_out) if has_bias else None
    y, out_lengths, _ = conv1d_forward(x, w, b, lengths=lengths, stride=s, padding=p, dilation=d, groups=G)
    assert np.all(np.isfinite(y))
    alone, alone_len, _ = conv1d_forward(x[1:, :lengths[1]], w, b, stride=s, padding=p, dilation=d, groups=G)
    assert alone_len[0] == out_lengths[1]
    np.testing.assert_allclose(y[1, :out_lengths[1]], alone[0], rtol=1e-12, atol=1e-12)


def test_conv1d_does_not_mutate():
    rng = np.random.default_rng(3)
    x, w, b = rng.standard_normal((2, 6, 4)), rng.standard_normal((4, 2, 3)), rng.standard_normal(4)
    lengths = np.array([6, 3])
    copies = [a.copy() for a in (x, w, b, lengths)]
    y, _, cache = conv1d_forward(x, w, b, lengths=lengths, padding=1, groups=2)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    cache_copy = [c.copy() if isinstance(c, np.ndarray) else c for c in cache]
    conv1d_backward(dy, cache)
    for a, c in zip((x, w, b, lengths), copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(dy, dy0)
    for a, c in zip(cache, cache_copy):
        np.testing.assert_array_equal(a, c)


def test_conv1d_bad_input():
    x, w = np.zeros((2, 5, 4)), np.zeros((4, 2, 3))
    with pytest.raises(ValueError, match=r"^groups:"):
        conv1d_forward(x, w, groups=3)
    with pytest.raises(ValueError, match=r"^weight:"):
        conv1d_forward(x, w, groups=1)  # weight has C_in/groups = 2 != 4
    with pytest.raises(ValueError, match=r"^bias:"):
        conv1d_forward(x, w, np.zeros(3), groups=2)
    with pytest.raises(ValueError, match=r"^lengths:"):
        conv1d_forward(x, w, groups=2, lengths=np.array([6, 1]))
    with pytest.raises(ValueError, match=r"^stride:"):
        conv1d_forward(x, w, groups=2, stride=0)
    with pytest.raises(ValueError, match=r"^x:"):
        conv1d_forward(np.zeros((2, 1, 4)), w, groups=2)  # too short for the kernel
    with pytest.raises(TypeError, match="weight"):
        conv1d_forward(x, w.astype(np.float32), groups=2)
    y, _, cache = conv1d_forward(x, w, groups=2)
    with pytest.raises(ValueError, match=r"^dout:"):
        conv1d_backward(np.zeros((2, 4, 4)), cache)


# (T, F, C_in, C_out, (KT, KF), stride, padding, bias)
CONV2D_CASES = [
    (7, 6, 1, 2, (3, 3), 2, 0, True),  # Conformer subsampling layer
    (6, 5, 2, 3, (3, 2), (1, 2), (1, 0), False),
    (8, 4, 2, 2, (2, 3), 1, 1, True),
]


@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_gradcheck_unequal_lengths(case):
    T, F, C_in, C_out, (KT, KF), stride, padding, has_bias = case
    rng = np.random.default_rng(4)
    lengths = np.array([T, T - 3])
    x = rng.standard_normal((2, C_in, T, F))
    w = rng.standard_normal((C_out, C_in, KT, KF))
    inputs = [x, w] + ([rng.standard_normal(C_out)] if has_bias else [])

    def fwd(x, w, *b):
        return conv2d_forward(x, w, b[0] if b else None, lengths=lengths, stride=stride, padding=padding)
    rep = gradcheck(fwd, conv2d_backward, inputs, rtol=1e-6, atol=1e-9)
    assert rep, str(rep)
    y, out_lengths, cache = fwd(*inputs)
    sT = stride if isinstance(stride, int) else stride[0]      # the time axis's stride and padding
    pT = padding if isinstance(padding, int) else padding[0]
    assert out_lengths.tolist() == [_out_len(L, KT, sT, pT, 1) for L in lengths]
    assert np.all(y[1, :, out_lengths[1]:] == 0)
    dx = conv2d_backward(rng.standard_normal(y.shape), cache)[0]
    assert np.all(dx[1, :, lengths[1]:] == 0)


def test_conv2d_subsampling_lengths_and_isolation():
    """Two 3x3 stride-2 convolutions (Conformer's front end): lengths ((L - 1)//2 - 1)//2 as ESPnet."""
    rng = np.random.default_rng(5)
    lengths = np.array([23, 16, 9])
    x = rng.standard_normal((3, 1, 23, 10))
    x[1, :, 16:] = 1e6  # large garbage in padding must not reach valid outputs
    w1, w2 = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((2, 2, 3, 3))
    h, l1, _ = conv2d_forward(x, w1, lengths=lengths, stride=2)
    y, l2, _ = conv2d_forward(h, w2, lengths=l1, stride=2)
    np.testing.assert_array_equal(l2, ((lengths - 1) // 2 - 1) // 2)
    alone, _, _ = conv2d_forward(x[1:2, :, :16], w1, stride=2)
    alone, _, _ = conv2d_forward(alone, w2, stride=2)
    np.testing.assert_allclose(y[1, :, :l2[1]], alone[0], rtol=1e-10, atol=1e-10)


def test_conv2d_bad_input():
    x, w = np.zeros((2, 2, 7, 5)), np.zeros((3, 2, 3, 3))
    with pytest.raises(ValueError, match=r"^weight:"):
        conv2d_forward(x, np.zeros((3, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"^stride:"):
        conv2d_forward(x, w, stride=(1, 0))
    with pytest.raises(ValueError, match=r"^padding:"):
        conv2d_forward(x, w, padding=(1, 2, 3))
    with pytest.raises(ValueError, match=r"^x:"):
        conv2d_forward(np.zeros((2, 2, 7)), w)
    with pytest.raises(ValueError, match=r"^lengths:"):
        conv2d_forward(x, w, lengths=np.array([7]))


@pytest.mark.oracle
@pytest.mark.parametrize("case", CONV1D_CASES)
def test_conv1d_matches_torch(case):
    torch = pytest.importorskip("torch")
    T, C_in, C_out, K, s, p, d, G, has_bias = case
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, T, C_in))
    w = rng.standard_normal((C_out, C_in // G, K))
    b = rng.standard_normal(C_out) if has_bias else None
    y, _, cache = conv1d_forward(x, w, b, stride=s, padding=p, dilation=d, groups=G)
    xt = torch.tensor(x.transpose(0, 2, 1), requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if has_bias else None
    yt = torch.nn.functional.conv1d(xt, wt, bt, stride=s, padding=p, dilation=d, groups=G)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy.transpose(0, 2, 1)))
    grads = conv1d_backward(dy, cache)
    np.testing.assert_allclose(grads[0], xt.grad.numpy().transpose(0, 2, 1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1], wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if has_bias:
        np.testing.assert_allclose(grads[2], bt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("case", CONV2D_CASES)
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch")
    T, F, C_in, C_out, (KT, KF), stride, padding, has_bias = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, C_in, T, F))
    w = rng.standard_normal((C_out, C_in, KT, KF))
    b = rng.standard_normal(C_out) if has_bias else None
    y, _, cache = conv2d_forward(x, w, b, stride=stride, padding=padding)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if has_bias else None
    yt = torch.nn.functional.conv2d(xt, wt, bt, stride=stride, padding=padding)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    grads = conv2d_backward(dy, cache)
    np.testing.assert_allclose(grads[0], xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1], wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    if has_bias:
        np.testing.assert_allclose(grads[2], bt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_float32_in_float32_out():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 6, 4)).astype(np.float32)
    for G in (1, 2):
        w = rng.standard_normal((4, 4 // G, 3)).astype(np.float32)
        b = np.zeros(4, np.float32)
        y, _, cache = conv1d_forward(x, w, b, lengths=np.array([6, 4]), padding=1, groups=G)
        assert y.dtype == np.float32
        assert all(g.dtype == np.float32 for g in conv1d_backward(np.ones_like(y), cache))
        y64, _, _ = conv1d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                   lengths=np.array([6, 4]), padding=1, groups=G)
        np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-5)
    x4 = rng.standard_normal((2, 1, 7, 5)).astype(np.float32)
    y, _, cache = conv2d_forward(x4, rng.standard_normal((2, 1, 3, 3)).astype(np.float32), stride=2)
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in conv2d_backward(np.ones_like(y), cache))


def test_empty_sequence_gives_zero_output_and_gradient():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 4))
    w, b = rng.standard_normal((4, 1, 3)), rng.standard_normal(4)
    y, out_lengths, cache = conv1d_forward(x, w, b, lengths=np.array([6, 0]), padding=1, groups=4)
    assert out_lengths.tolist() == [6, 0] and np.all(y[1] == 0)
    dx, dw, db = conv1d_backward(rng.standard_normal(y.shape), cache)
    assert np.all(dx[1] == 0)
    x4 = rng.standard_normal((2, 1, 7, 5))
    w4 = rng.standard_normal((2, 1, 3, 3))
    y, out_lengths, cache = conv2d_forward(x4, w4, lengths=np.array([0, 7]), stride=2)
    assert out_lengths.tolist() == [0, 3] and np.all(y[0] == 0)
    assert np.all(conv2d_backward(rng.standard_normal(y.shape), cache)[0][0] == 0)
