"""Masked mean pooling, embedding and dropout: finite differences, padding, purity, bad input, oracles."""

import numpy as np
import pytest

from scratchasr.ops import (dropout_backward, dropout_forward, dropout_mask, embedding_backward,
                            embedding_forward, masked_mean_backward, masked_mean_forward)
from scratchasr.testing.gradcheck import gradcheck


@pytest.mark.parametrize("shape,lengths", [((2, 5, 3), [5, 2]), ((3, 7, 4), [7, 1, 4]), ((2, 4, 2), [0, 3])])
def test_masked_mean_gradcheck_and_padding(shape, lengths):
    rng = np.random.default_rng(0)
    lengths = np.array(lengths)
    x = rng.standard_normal(shape)
    rep = gradcheck(lambda x: masked_mean_forward(x, lengths), masked_mean_backward, [x], rtol=1e-7)
    assert rep, str(rep)
    y, cache = masked_mean_forward(x, lengths)
    for b, L in enumerate(lengths):
        want = x[b, :L].mean(axis=0) if L else np.zeros(shape[2])
        np.testing.assert_allclose(y[b], want, rtol=1e-12, atol=1e-15)
    (dx,) = masked_mean_backward(rng.standard_normal(y.shape), cache)
    for b, L in enumerate(lengths):
        assert np.all(dx[b, L:] == 0)


def test_masked_mean_ignores_nan_padding_and_is_pure():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 3))
    x[1, 2:] = np.nan
    lengths = np.array([6, 2])
    x0, l0 = x.copy(), lengths.copy()
    y, cache = masked_mean_forward(x, lengths)
    assert np.all(np.isfinite(y))
    dy = rng.standard_normal(y.shape)
    dy0, w0 = dy.copy(), cache.weights.copy()
    masked_mean_backward(dy, cache)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(lengths, l0)
    np.testing.assert_array_equal(dy, dy0)
    np.testing.assert_array_equal(cache.weights, w0)


def test_masked_mean_bad_input():
    with pytest.raises(ValueError, match=r"^x:"):
        masked_mean_forward(np.zeros((2, 3)), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"^lengths:"):
        masked_mean_forward(np.zeros((2, 3, 4)), np.array([1, 4]))
    with pytest.raises(TypeError, match=r"^lengths:"):
        masked_mean_forward(np.zeros((2, 3, 4)), np.array([1.0, 2.0]))
    _, cache = masked_mean_forward(np.zeros((2, 3, 4)), np.array([1, 2]))
    with pytest.raises(ValueError, match=r"^dout:"):
        masked_mean_backward(np.zeros((3, 4)), cache)


@pytest.mark.parametrize("V,D", [(5, 3), (9, 2)])
def test_embedding_gradcheck_repeated_ids_and_padding(V, D):
    rng = np.random.default_rng(2)
    ids = np.array([[1, 1, V - 1, 0, 2], [3, 1, -1, 99, -5]])  # repeats; garbage in the padding of row 1
    lengths = np.array([5, 2])
    W = rng.standard_normal((V, D))
    rep = gradcheck(lambda W: embedding_forward(ids, W, lengths=lengths), embedding_backward, [W], rtol=1e-7)
    assert rep, str(rep)
    y, cache = embedding_forward(ids, W, lengths=lengths)
    np.testing.assert_array_equal(y[0], W[ids[0]])
    assert np.all(y[1, 2:] == 0)
    dy = rng.standard_normal(y.shape)
    (dW,) = embedding_backward(dy, cache)
    np.testing.assert_allclose(dW[1], dy[0, 0] + dy[0, 1] + dy[1, 1], rtol=1e-12)  # id 1 used three times
    unused = [v for v in range(V) if v not in (0, 1, 2, 3, V - 1)]
    assert np.all(dW[unused] == 0)


def test_embedding_pure_and_bad_input():
    W = np.arange(12.0).reshape(4, 3)
    ids = np.array([[0, 3], [2, 2]])
    W0, ids0 = W.copy(), ids.copy()
    y, cache = embedding_forward(ids, W)
    dy = np.ones_like(y)
    embedding_backward(dy, cache)
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(ids, ids0)
    assert np.all(dy == 1)
    with pytest.raises(ValueError, match=r"^ids:"):
        embedding_forward(np.array([[0, 4]]), W)
    with pytest.raises(ValueError, match=r"^ids:"):
        embedding_forward(np.array([[0, -1]]), W)
    with pytest.raises(TypeError, match=r"^ids:"):
        embedding_forward(np.array([[0.0, 1.0]]), W)
    with pytest.raises(ValueError, match=r"^W:"):
        embedding_forward(ids, np.zeros(3))
    with pytest.raises(ValueError, match=r"^lengths:"):
        embedding_forward(ids, W, lengths=np.array([3, 1]))


@pytest.mark.oracle
def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    W = rng.standard_normal((7, 4))
    ids = rng.integers(0, 7, size=(3, 6))
    y, cache = embedding_forward(ids, W)
    Wt = torch.tensor(W, requires_grad=True)
    yt = torch.nn.functional.embedding(torch.tensor(ids), Wt)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(embedding_backward(dy, cache)[0], Wt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape,p", [((2, 5, 3), 0.3), ((4, 6), 0.5), ((3,), 0.0)])
def test_dropout_gradcheck_with_fixed_mask(shape, p):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape)
    mask = dropout_mask(rng, shape, p)
    rep = gradcheck(lambda x: dropout_forward(x, mask), dropout_backward, [x], rtol=1e-7)
    assert rep, str(rep)
    (dx,) = dropout_backward(np.ones(shape), dropout_forward(x, mask)[1])
    assert np.all(dx[mask == 0] == 0)


def test_dropout_mask_statistics_and_seed():
    p = 0.3
    m = dropout_mask(np.random.default_rng(5), (200, 500), p)
    assert set(np.unique(m)) <= {0.0, 1 / (1 - p)}
    assert abs(np.mean(m == 0) - p) < 0.01  # 1e5 Bernoulli draws: std of the rate is 0.0014
    assert abs(m.mean() - 1.0) < 0.02  # inverted scaling keeps E[y] = x
    np.testing.assert_array_equal(m, dropout_mask(np.random.default_rng(5), (200, 500), p))
    assert dropout_mask(np.random.default_rng(0), (3,), 0.5, np.float32).dtype == np.float32
    assert np.all(dropout_mask(np.random.default_rng(0), (10,), 0.0) == 1)


def test_dropout_pure_and_bad_input():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4))
    mask = dropout_mask(rng, x.shape, 0.5)
    x0, m0 = x.copy(), mask.copy()
    y, cache = dropout_forward(x, mask)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    dropout_backward(dy, cache)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(mask, m0)
    np.testing.assert_array_equal(dy, dy0)
    with pytest.raises(ValueError, match=r"^mask:"):
        dropout_forward(x, mask[:2])
    with pytest.raises(TypeError, match=r"^mask:"):
        dropout_forward(x, mask.astype(np.float32))
    with pytest.raises(TypeError, match=r"^mask:"):
        dropout_forward(x, mask > 0)
    with pytest.raises(ValueError, match=r"^p:"):
        dropout_mask(rng, (3,), 1.0)
    with pytest.raises(TypeError, match=r"^rng:"):
        dropout_mask(np.random.RandomState(0), (3,), 0.5)
    with pytest.raises(ValueError, match=r"^dout:"):
        dropout_backward(np.zeros((4, 3)), cache)


def test_float32_in_float32_out():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    y, cache = masked_mean_forward(x, np.array([5, 2]))
    assert y.dtype == np.float32 and masked_mean_backward(np.ones_like(y), cache)[0].dtype == np.float32
    W = rng.standard_normal((4, 3)).astype(np.float32)
    y, cache = embedding_forward(np.array([[0, 3, 1]]), W, lengths=np.array([2]))
    assert y.dtype == np.float32 and embedding_backward(np.ones_like(y), cache)[0].dtype == np.float32
    m = dropout_mask(rng, x.shape, 0.2, np.float32)
    y, cache = dropout_forward(x, m)
    assert y.dtype == np.float32 and dropout_backward(np.ones_like(y), cache)[0].dtype == np.float32
