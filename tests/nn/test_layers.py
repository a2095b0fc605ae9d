"""Layer wrappers: shapes, padding, buffers, dropout RNG, and a whole-network finite-difference check."""

import numpy as np
import pytest

from scratchasr.nn import (GLU, BatchNorm, Conv1d, Conv2d, Dropout, Embedding, LayerNorm, Linear,
                           MaskedMeanPool, ReLU, Sequential, Sigmoid, Swish, Tanh)
from scratchasr.testing.gradcheck import gradcheck


def module_gradcheck(net, x, lengths, **kw):
    """gradcheck over the input and every parameter of ``net`` (a Sequential) at once.

    forward(x, *params) copies the parameters in and runs the network; backward(dout, cache) re-runs the
    forward at the cached point (finite-difference calls in between leave caches behind, which are
    dropped) and returns (dx, *dparams) in named_parameters order.
    """
    names = [k for k, _ in net.named_parameters()]
    live = dict(net.named_parameters())

    def load(ps):
        for k, p in zip(names, ps):
            live[k][...] = p
        net.clear_caches()

    def fwd(x, *ps):
        load(ps)
        y, _ = net(x, lengths)
        return y, (x.copy(), [p.copy() for p in ps])

    def bwd(dout, cache):
        x0, ps = cache
        load(ps)
        net(x0, lengths)
        for _, g in net.named_grads():
            g[...] = 0
        dx = net.backward(dout)
        grads = dict(net.named_grads())
        return (dx, *[grads[k].copy() for k in names])

    params = [v.copy() for _, v in net.named_parameters()]
    return gradcheck(fwd, bwd, [x, *params], names=["x", *names], **kw), names


def _net(rng, act):
    f64 = np.float64
    return Sequential(Conv1d(3, 5, 3, padding=1, rng=rng, dtype=f64), LayerNorm(5, dtype=f64), act(),
                      # no bias before BatchNorm: BN subtracts the channel mean, so that bias's gradient
                      # is exactly 0 and finite differences would only measure rounding noise
                      Conv1d(5, 5, 3, padding=2, dilation=2, groups=5, bias=False, rng=rng, dtype=f64),
                      BatchNorm(5, dtype=f64), Linear(5, 4, rng=rng, dtype=f64))


@pytest.mark.parametrize("act", [ReLU, Swish, Tanh])
@pytest.mark.parametrize("B,T,lengths", [(2, 6, [6, 3]), (3, 5, [2, 5, 4])])
def test_whole_network_gradcheck(act, B, T, lengths):
    rng = np.random.default_rng(0)
    net = _net(rng, act)
    x = rng.normal(size=(B, T, 3))
    lengths = np.array(lengths)
    rep, names = module_gradcheck(net, x, lengths, rtol=1e-5, atol=1e-9)  # STYLE.md: a small model
    assert rep, str(rep)
    checked = {c.name for c in rep.checks} if hasattr(rep.checks[0], "name") else None
    assert len(rep.checks) == 1 + len(names)
    if checked is not None:
        assert checked == {"x", *names}
    # padded input positions receive exactly zero gradient
    net.clear_caches()  # the finite-difference forwards left caches behind
    net.zero_grad()
    y, out_len = net(x, lengths)
    dx = net.backward(rng.normal(size=y.shape))
    for b, L in enumerate(lengths):
        assert np.all(y[b, L:] == 0)
        assert np.all(dx[b, L:] == 0)
    np.testing.assert_array_equal(out_len, lengths)


def test_pooled_classifier_gradcheck():
    rng = np.random.default_rng(2)
    f64 = np.float64
    net = Sequential(Conv1d(3, 4, 3, stride=2, padding=1, rng=rng, dtype=f64), Sigmoid(), MaskedMeanPool(),
                     Linear(4, 3, rng=rng, dtype=f64), Tanh())
    x = rng.normal(size=(3, 7, 3))
    lengths = np.array([7, 2, 5])
    rep, _ = module_gradcheck(net, x, lengths, rtol=1e-5, atol=1e-9)
    assert rep, str(rep)
    y, out_len = net(x, lengths)
    assert y.shape == (3, 3) and out_len is None
    dx = net.backward(np.ones_like(y))
    assert np.all(dx[1, 2:] == 0) and np.all(dx[2, 5:] == 0)


def test_module_gradcheck_catches_a_wrong_parameter_gradient():
    rng = np.random.default_rng(1)
    net = _net(rng, Swish)
    orig = net[5].backward

    def wrong(dout):
        dx = orig(dout)
        net[5].grads["W"][0, 0] *= 1.01
        return dx
    net[5].backward = wrong
    rep, _ = module_gradcheck(net, rng.normal(size=(2, 5, 3)), np.array([5, 3]), rtol=1e-5, atol=1e-9)
    assert not rep
    assert "5.W" in str(rep)


def test_names_state_dict_and_buffers():
    rng = np.random.default_rng(0)
    net = _net(rng, ReLU)
    names = [k for k, _ in net.named_parameters()]
    assert names[:3] == ["0.weight", "0.bias", "1.gamma"]
    sd = net.state_dict()
    assert "4.running_mean" in sd and "4.running_var" in sd
    assert net.num_parameters() == 3 * 5 * 3 + 5 + 10 + 5 * 3 + 10 + 5 * 4 + 4
    x = rng.normal(size=(2, 6, 3))
    net(x, [6, 4])
    net.backward(np.ones((2, 6, 4)))
    assert not np.allclose(net[4].buffers["running_mean"], 0)  # updated from the op's returned stats
    other = _net(np.random.default_rng(5), ReLU)
    other.load_state_dict(net.state_dict())
    other.eval()
    net.eval()
    np.testing.assert_array_equal(other(x, [6, 4])[0], net(x, [6, 4])[0])
    assert all(not m._caches for _, m in net.named_modules())  # eval pushes nothing


def test_float32_default_and_pytorch_like_init():
    lin = Linear(100, 50, rng=np.random.default_rng(0))
    assert lin.params["W"].dtype == np.float32 and lin.params["b"].shape == (50,)
    assert np.abs(lin.params["W"]).max() <= 0.1 and np.abs(lin.params["W"]).max() > 0.09
    conv = Conv1d(4, 6, 5, groups=2, rng=np.random.default_rng(0))
    assert conv.params["weight"].shape == (6, 2, 5) and np.abs(conv.params["weight"]).max() <= 10 ** -0.5
    with pytest.raises(TypeError, match=r"^rng:"):
        Linear(2, 3, rng=0)
    with pytest.raises(TypeError, match=r"^dtype:"):
        Linear(2, 3, rng=np.random.default_rng(0), dtype=np.int32)


def test_conv2d_embedding_glu_sigmoid_shapes_and_grads():
    rng = np.random.default_rng(0)
    conv = Conv2d(1, 2, 3, stride=2, rng=rng, dtype=np.float64)
    x = rng.normal(size=(2, 1, 9, 7))
    y, L = conv(x, [9, 5])
    assert y.shape == (2, 2, 4, 3) and list(L) == [4, 2]
    dx = conv.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.all(dx[1, :, 5:] == 0)
    emb = Embedding(10, 4, rng=rng, dtype=np.float64)
    e = emb(np.array([[1, 2, 1], [3, -1, -1]]), [3, 1])
    assert emb.backward(np.ones_like(e)) is None
    np.testing.assert_array_equal(emb.grads["W"][1], 2.0)
    np.testing.assert_array_equal(emb.grads["W"][3], 1.0)
    g = GLU()
    assert g(np.ones((2, 3, 8)), [3, 1]).shape == (2, 3, 4)
    g.backward(np.ones((2, 3, 4)))
    s = Sigmoid()
    out = s(np.zeros((2, 3, 2)), [3, 1])
    assert np.all(out[1, 1:] == 0) and np.all(out[0] == 0.5)


def test_dropout_rng_eval_and_backward():
    x = np.ones((4, 50), dtype=np.float32)
    a = Dropout(0.5, rng=np.random.default_rng(3))
    b = Dropout(0.5, rng=np.random.default_rng(3))
    ya, yb = a(x), b(x)
    np.testing.assert_array_equal(ya, yb)  # same seed, same mask
    assert set(np.unique(ya)) == {0.0, 2.0}
    np.testing.assert_array_equal(a.backward(np.ones_like(x)), ya)  # dx = dout * mask
    a.eval()
    assert a(x) is x and not a._caches  # eval: identity, nothing pushed
    a.train()
    a.p = 0.0
    assert a(x) is x
    np.testing.assert_array_equal(a.backward(x), x)
    with pytest.raises(ValueError, match=r"^rng:"):
        Dropout(0.1)(x)
    y = Dropout(0.1)(x, rng=np.random.default_rng(0))
    assert y.shape == x.shape


def test_zero_grad_names_the_module_with_a_leftover_cache():
    rng = np.random.default_rng(0)
    net = Sequential(Linear(3, 3, rng=rng), Tanh())
    net(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match="module 0"):
        net.zero_grad()


@pytest.mark.oracle
def test_modules_against_torch_nn():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    f64 = np.float64
    conv = Conv1d(3, 4, 3, padding=1, rng=rng, dtype=f64)
    bn = BatchNorm(4, momentum=0.2, dtype=f64)
    lin = Linear(4, 2, rng=rng, dtype=f64)
    tconv = torch.nn.Conv1d(3, 4, 3, padding=1).double()
    tbn = torch.nn.BatchNorm1d(4, momentum=0.2).double()
    tlin = torch.nn.Linear(4, 2).double()
    with torch.no_grad():
        tconv.weight.copy_(torch.tensor(conv.params["weight"]))
        tconv.bias.copy_(torch.tensor(conv.params["bias"]))
        tlin.weight.copy_(torch.tensor(lin.params["W"]))
        tlin.bias.copy_(torch.tensor(lin.params["b"]))
    net = Sequential(conv, bn, lin)

    def tnet(x):  # torch layout: (B, C, T) for conv and batch norm
        h = tbn(tconv(x.transpose(1, 2)))
        return tlin(h.transpose(1, 2))

    for step in range(3):  # training: batch statistics, running stats move each step
        x = rng.normal(size=(2, 6, 3))
        y, _ = net(x)
        net.backward(np.zeros_like(y))
        np.testing.assert_allclose(y, tnet(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_mean"], tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.buffers["running_var"], tbn.running_var.numpy(), rtol=1e-12)
    net.eval()
    tbn.eval()
    x = rng.normal(size=(2, 6, 3))
    np.testing.assert_allclose(net(x)[0], tnet(torch.tensor(x)).detach().numpy(), rtol=1e-10, atol=1e-12)
    # gradients through the whole stack match autograd too
    net.train()
    tbn.train()
    xt = torch.tensor(x, requires_grad=True)
    dout = rng.normal(size=(2, 6, 2))
    net.zero_grad()
    net(x)
    dx = net.backward(dout)
    (tnet(xt) * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(conv.grads["weight"], tconv.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bn.grads["gamma"], tbn.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(lin.grads["W"], tlin.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
