"""Layer norm and batch norm over valid frames: gradchecks, running statistics, torch oracles."""

import numpy as np
import pytest

from scratchasr.ops import batch_norm_backward, batch_norm_forward, layer_norm_backward, layer_norm_forward
from scratchasr.testing import gradcheck

# Finite-difference step 1e-5 (relative): at 1e-6 the float64 round-off of L = sum(out * dout),
# about 1e-16 |L| / h, alone reaches 1e-9 on entries with small gradients; the O(h^2) truncation
# error at 1e-5 stays below 1e-9 relative for these smooth ops.
EPS = 1e-5


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 5, 6)])
def test_layer_norm_gradcheck(shape, rng):
    D = shape[-1]
    x = 2 * rng.standard_normal(shape) + 1
    gamma, beta = rng.standard_normal(D), rng.standard_normal(D)
    rep = gradcheck(layer_norm_forward, layer_norm_backward, [x, gamma, beta], rtol=1e-7, eps=EPS)
    assert rep.ok, str(rep)


def test_layer_norm_normalises(rng):
    x = 5 * rng.standard_normal((3, 7)) + 2
    y, _ = layer_norm_forward(x, np.ones(7), np.zeros(7), eps=0.0)
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-13)
    np.testing.assert_allclose(y.var(-1), 1, rtol=1e-12)


def test_layer_norm_bad_input(rng):
    with pytest.raises(ValueError, match=r"^gamma:"):
        layer_norm_forward(rng.standard_normal((2, 3)), np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match=r"^eps:"):
        layer_norm_forward(rng.standard_normal((2, 3)), np.ones(3), np.zeros(3), eps=-1)


@pytest.mark.oracle
def test_layer_norm_torch_oracle(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 5, 6))
    gamma, beta, dy = rng.standard_normal(6), rng.standard_normal(6), rng.standard_normal(x.shape)
    y, cache = layer_norm_forward(x, gamma, beta)
    grads = layer_norm_backward(dy, cache)
    ts = [torch.tensor(a, requires_grad=True) for a in (x, gamma, beta)]
    yt = torch.nn.functional.layer_norm(ts[0], (6,), ts[1], ts[2], eps=1e-5)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-9, atol=1e-12)


def _bn(training, lengths, rm, rv):
    def fwd(x, gamma, beta):
        return batch_norm_forward(x, gamma, beta, lengths, running_mean=rm, running_var=rv, training=training)
    return fwd


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("B,T,C,lengths", [(2, 5, 3, [5, 3]), (3, 6, 2, [2, 6, 4]), (1, 4, 4, None)])
def test_batch_norm_gradcheck_and_padding(training, B, T, C, lengths, rng):
    x = 2 * rng.standard_normal((B, T, C)) + 0.5
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    rm, rv = rng.standard_normal(C), rng.random(C) + 0.5
    rm0, rv0 = rm.copy(), rv.copy()
    fwd = _bn(training, None if lengths is None else np.array(lengths), rm, rv)
    # atol 1e-9: dx sums to zero per channel, so a few entries are ~1e-7 where the finite-difference
    # round-off floor (~1e-16 |L| / h ~ 1e-10) dominates the relative error
    rep = gradcheck(fwd, batch_norm_backward, [x, gamma, beta], rtol=1e-7, atol=1e-9, eps=EPS)
    assert rep.ok, str(rep)
    np.testing.assert_array_equal(rm, rm0)  # running statistics are returned, never written
    np.testing.assert_array_equal(rv, rv0)
    if lengths is not None:
        xp = x.copy()
        for b, L in enumerate(lengths):
            xp[b, L:] = np.nan  # padding is never read
        y, _, cache = fwd(xp, gamma, beta)
        dx, dgamma, dbeta = batch_norm_backward(rng.standard_normal(y.shape), cache)
        for b, L in enumerate(lengths):
            assert np.all(y[b, L:] == 0) and np.all(dx[b, L:] == 0)
        assert np.isfinite(y).all() and np.isfinite(dgamma).all() and np.isfinite(dbeta).all()


def test_batch_norm_statistics_from_valid_frames_only(rng):
    x = rng.standard_normal((2, 6, 3))
    lengths = np.array([6, 2])
    rm, rv = np.zeros(3), np.ones(3)
    y, (nm, nv), _ = batch_norm_forward(x, np.ones(3), np.zeros(3), lengths, running_mean=rm, running_var=rv,
                                        momentum=0.25)
    valid = np.concatenate([x[0], x[1, :2]])  # (8, 3)
    np.testing.assert_allclose(nm, 0.25 * valid.mean(0), rtol=1e-12)
    np.testing.assert_allclose(nv, 0.75 + 0.25 * valid.var(0, ddof=1), rtol=1e-12)
    yv = np.concatenate([y[0], y[1, :2]])
    np.testing.assert_allclose(yv, (valid - valid.mean(0)) / np.sqrt(valid.var(0) + 1e-5), rtol=1e-10)
    ye, stats, _ = batch_norm_forward(x, np.ones(3), np.zeros(3), lengths, running_mean=nm, running_var=nv,
                                      training=False)
    np.testing.assert_allclose(ye[0], (x[0] - nm) / np.sqrt(nv + 1e-5), rtol=1e-12)
    np.testing.assert_array_equal(stats[0], nm)


def test_batch_norm_bad_input(rng):
    x = rng.standard_normal((2, 3, 4))
    kw = dict(running_mean=np.zeros(4), running_var=np.ones(4))
    with pytest.raises(ValueError, match=r"^gamma:"):
        batch_norm_forward(x, np.ones(3), np.zeros(4), **kw)
    with pytest.raises(ValueError, match=r"^lengths:"):
        batch_norm_forward(x, np.ones(4), np.zeros(4), [1, 0], **kw)
    with pytest.raises(ValueError, match=r"^lengths:"):
        batch_norm_forward(x, np.ones(4), np.zeros(4), [4, 1], **kw)
    with pytest.raises(ValueError, match=r"^momentum:"):
        batch_norm_forward(x, np.ones(4), np.zeros(4), momentum=2.0, **kw)
    with pytest.raises(ValueError, match=r"^running_var:"):
        batch_norm_forward(x, np.ones(4), np.zeros(4), running_mean=np.zeros(4), running_var=np.ones(3))


@pytest.mark.oracle
def test_batch_norm_torch_oracle_on_valid_frames(rng):
    """torch's BatchNorm1d applied to the valid frames only (packed to (N, C)) equals ours with lengths."""
    torch = pytest.importorskip("torch")
    lengths = np.array([7, 3, 5])
    x = rng.standard_normal((3, 7, 4))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    rm, rv = rng.standard_normal(4), rng.random(4) + 0.5
    dy = rng.standard_normal(x.shape)
    valid = np.arange(7)[None, :] < lengths[:, None]
    for training in (True, False):
        y, (nm, nv), cache = batch_norm_forward(x, gamma, beta, lengths, running_mean=rm, running_var=rv,
                                                training=training, momentum=0.1)
        dx, dgamma, dbeta = batch_norm_backward(dy, cache)
        bn = torch.nn.BatchNorm1d(4, eps=1e-5, momentum=0.1).double()
        with torch.no_grad():
            bn.weight.copy_(torch.tensor(gamma))
            bn.bias.copy_(torch.tensor(beta))
            bn.running_mean.copy_(torch.tensor(rm))
            bn.running_var.copy_(torch.tensor(rv))
        bn.train(training)
        xt = torch.tensor(x[valid], requires_grad=True)  # (N, C)
        yt = bn(xt)
        yt.backward(torch.tensor(dy[valid]))
        np.testing.assert_allclose(y[valid], yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx[valid], xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(dgamma, bn.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(dbeta, bn.bias.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(nm, bn.running_mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(nv, bn.running_var.numpy(), rtol=1e-12)


def test_norms_float32_and_wrong_backward_detected(rng):
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    g, b = np.ones(3, np.float32), np.zeros(3, np.float32)
    y, cache = layer_norm_forward(x, g, b)
    assert y.dtype == np.float32
    assert all(d.dtype == np.float32 for d in layer_norm_backward(np.ones_like(y), cache))
    y, _, cache = batch_norm_forward(x, g, b, [4, 2], running_mean=np.zeros(3, np.float32),
                                     running_var=np.ones(3, np.float32))
    assert y.dtype == np.float32
    assert all(d.dtype == np.float32 for d in batch_norm_backward(np.ones_like(y), cache))

    def no_centering(dy, cache):  # forgets the -mean(g) term of the backward: must be caught
        dx, dgamma, dbeta = layer_norm_backward(dy, cache)
        gdy = dy * cache.gamma
        return dx + cache.rstd * gdy.mean(-1, keepdims=True), dgamma, dbeta
    x64 = rng.standard_normal((3, 5))
    params = [x64, rng.standard_normal(5), rng.standard_normal(5)]
    assert not gradcheck(layer_norm_forward, no_centering, params, rtol=1e-7, eps=EPS).ok
