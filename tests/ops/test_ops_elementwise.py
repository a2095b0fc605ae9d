"""Linear, activations, softmax/log-softmax: gradchecks, purity, bad input, torch oracles."""

import math

import numpy as np
import pytest

from scratchasr.ops import (glu_backward, glu_forward,
                            linear_backward, linear_forward, log_softmax_backward, log_softmax_forward,
                            relu_backward, relu_forward, sigmoid_backward, sigmoid_forward, softmax_backward,
                            softmax_forward, swish_backward, swish_forward, tanh_backward, tanh_forward)
from scratchasr.testing import gradcheck

# Finite-difference step 1e-5 (relative): at 1e-6 the float64 round-off of L = sum(out * dout),
# about 1e-16 |L| / h, alone reaches 1e-9 on entries with small gradients; the O(h^2) truncation
# error at 1e-5 stays below 1e-9 relative for these smooth ops.
EPS = 1e-5

SHAPES = [(3,), (2, 5, 4), (2, 3, 2, 4)]


@pytest.mark.parametrize("shape", [(4, 3), (2, 5, 3), (2, 2, 3, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(shape, bias, rng):
    x = rng.standard_normal(shape)
    W = rng.standard_normal((4, shape[-1]))
    inputs = [x, W] + ([rng.standard_normal(4)] if bias else [])
    rep = gradcheck(linear_forward, linear_backward, inputs, rtol=1e-7, eps=EPS)
    assert rep.ok, str(rep)


def test_linear_matches_formula_and_lengths(rng):
    x = rng.standard_normal((2, 5, 3))
    x[1, 3:] = np.nan  # padding is never read
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(4)
    lengths = np.array([5, 3])
    y, cache = linear_forward(x, W, b, lengths=lengths)
    np.testing.assert_allclose(y[0], x[0] @ W.T + b, rtol=1e-12)
    assert np.all(y[1, 3:] == 0) and np.all(np.isfinite(y))
    dx, dW, db = linear_backward(rng.standard_normal(y.shape), cache)
    assert np.all(dx[1, 3:] == 0) and np.all(np.isfinite(dW))
    xc = np.where(np.isnan(x), 0, x)
    rep = gradcheck(lambda x, W, b: linear_forward(x, W, b, lengths=lengths), linear_backward, [xc, W, b],
                    rtol=1e-7, eps=EPS)
    assert rep.ok, str(rep)


def test_linear_bad_input(rng):
    x = rng.standard_normal((2, 3))
    with pytest.raises(ValueError, match=r"^W:"):
        linear_forward(x, rng.standard_normal((4, 2)), None)
    with pytest.raises(ValueError, match=r"^b:"):
        linear_forward(x, rng.standard_normal((4, 3)), rng.standard_normal(3))
    with pytest.raises(TypeError, match="dtype"):
        linear_forward(x.astype(np.float32), rng.standard_normal((4, 3)), None)
    with pytest.raises(ValueError, match=r"^lengths:"):
        linear_forward(rng.standard_normal((2, 3, 3)), rng.standard_normal((4, 3)), lengths=[4, 1])
    with pytest.raises(TypeError, match=r"^x:"):
        linear_forward([[1.0, 2.0]], rng.standard_normal((4, 2)))


ACTS = {"sigmoid": (sigmoid_forward, sigmoid_backward), "tanh": (tanh_forward, tanh_backward),
        "swish": (swish_forward, swish_backward)}


@pytest.mark.parametrize("name", sorted(ACTS))
@pytest.mark.parametrize("shape", SHAPES)
def test_smooth_activation_gradcheck(name, shape, rng):
    fwd, bwd = ACTS[name]
    x = 1.5 * rng.standard_normal(shape)  # scale ~1..3: no saturated unit with a vanishing derivative
    rep = gradcheck(fwd, bwd, [x], rtol=1e-7, eps=EPS)
    assert rep.ok, str(rep)


@pytest.mark.parametrize("shape", SHAPES)
def test_relu_gradcheck_away_from_kink(shape, rng):
    x = rng.standard_normal(shape)
    x = np.where(np.abs(x) < 0.1, 0.5, x)  # keep away from the kink at 0
    rep = gradcheck(relu_forward, relu_backward, [x], rtol=1e-4, eps=EPS)
    assert rep.ok, str(rep)
    y, _ = relu_forward(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_glu_gradcheck(axis, rng):
    x = rng.standard_normal((4, 6, 2))
    rep = gradcheck(lambda x: glu_forward(x, axis), glu_backward, [x], rtol=1e-7, eps=EPS)
    assert rep.ok, str(rep)


def test_sigmoid_extremes_and_values(rng):
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise", invalid="raise"):  # underflow to 0 is fine
        y, _ = sigmoid_forward(x)
    want = [0.0, 1 / (1 + np.exp(30)), 0.5, 1 / (1 + np.exp(-30)), 1.0]
    np.testing.assert_allclose(y, want, rtol=1e-14, atol=0)
    s, _ = swish_forward(x)
    assert np.all(np.isfinite(s))


def test_activation_values_closed_form(rng):
    """Forward values from the definitions, one scalar at a time with math.exp (a wrong forward with a
    consistent backward passes every gradcheck; this does not)."""
    x = np.concatenate([np.linspace(-8, 8, 33), 3 * rng.standard_normal(20)])
    tanh_want = [(math.exp(2 * v) - 1) / (math.exp(2 * v) + 1) for v in x]
    swish_want = [v / (1 + math.exp(-v)) for v in x]
    np.testing.assert_allclose(tanh_forward(x)[0], tanh_want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(swish_forward(x)[0], swish_want, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(relu_forward(x)[0], [max(v, 0.0) for v in x], rtol=0, atol=0)
    # GLU (PyTorch's convention): the first half gates through the sigmoid of the second half.
    z = rng.standard_normal((3, 4, 6))
    for axis in (-1, 1):
        a, b = np.split(z, 2, axis=axis)
        want = np.vectorize(lambda u, w: u / (1 + math.exp(-w)))(a, b)
        y, _ = glu_forward(z, axis)
        assert y.shape == a.shape
        np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-15)


@pytest.mark.oracle
def test_activations_torch_oracle(rng):
    torch = pytest.importorskip("torch")
    x = 3 * rng.standard_normal((4, 6))
    F = torch.nn.functional
    cases = [(tanh_forward, tanh_backward, torch.tanh), (swish_forward, swish_backward, F.silu),
             (sigmoid_forward, sigmoid_backward, torch.sigmoid),
             (lambda x: glu_forward(x, -1), glu_backward, lambda t: F.glu(t, dim=-1)),
             (lambda x: glu_forward(x, 0), glu_backward, lambda t: F.glu(t, dim=0))]
    for fwd, bwd, ref in cases:
        y, cache = fwd(x)
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        dy = rng.standard_normal(y.shape)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(bwd(dy, cache)[0], xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_activation_bad_input(rng):
    with pytest.raises(ValueError, match="even"):
        glu_forward(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match=r"^axis:"):
        glu_forward(rng.standard_normal((2, 4)), axis=2)
    with pytest.raises(TypeError, match=r"^x:"):
        tanh_forward(np.arange(3))
    _, cache = sigmoid_forward(rng.standard_normal(3))
    with pytest.raises(ValueError, match=r"^dy:"):
        sigmoid_backward(rng.standard_normal(4), cache)


@pytest.mark.parametrize("shape,axis", [((5,), -1), ((2, 3, 4), -1), ((2, 3, 4), 1), ((3, 4), 0)])
@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
def test_softmax_gradcheck(shape, axis, which, rng):
    fwd, bwd = {"softmax": (softmax_forward, softmax_backward),
                "log_softmax": (log_softmax_forward, log_softmax_backward)}[which]
    x = 3 * rng.standard_normal(shape)
    rep = gradcheck(lambda x: fwd(x, axis), bwd, [x], rtol=1e-7, eps=EPS)
    assert rep.ok, str(rep)


def test_softmax_stable_and_normalised(rng):
    x = np.array([[1000.0, 1000.0, -1000.0], [-5e4, 0.0, 5e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y, _ = softmax_forward(x)
        ly, _ = log_softmax_forward(x)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0], atol=1e-300)
    np.testing.assert_allclose(ly[0, :2], np.log(0.5), rtol=1e-15)
    assert ly[1, 0] == -1e5 and np.isfinite(ly).all()


def test_softmax_bad_input(rng):
    with pytest.raises(ValueError, match=r"^axis:"):
        softmax_forward(rng.standard_normal((2, 3)), axis=3)
    with pytest.raises(ValueError, match="non-empty"):
        log_softmax_forward(np.zeros((2, 0)))


@pytest.mark.oracle
def test_log_softmax_torch_oracle(rng):
    torch = pytest.importorskip("torch")
    x = 4 * rng.standard_normal((3, 5, 7))
    dy = rng.standard_normal(x.shape)
    for axis in (-1, 1):
        y, cache = log_softmax_forward(x, axis)
        (dx,) = log_softmax_backward(dy, cache)
        xt = torch.tensor(x, requires_grad=True)
        yt = torch.log_softmax(xt, dim=axis)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_gradcheck_catches_a_wrong_backward(rng):
    """The tests above can fail: a backward off by a factor is rejected."""
    def bad_backward(dy, cache):
        return tuple(2 * g for g in tanh_backward(dy, cache))
    assert not gradcheck(tanh_forward, bad_backward, [rng.standard_normal(4)], rtol=1e-7, eps=EPS).ok


def test_float32_in_float32_out(rng):
    """No silent up-casting: float32 inputs give float32 outputs and gradients."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    W, b = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)
    y, cache = linear_forward(x, W, b, lengths=np.array([3, 1]))
    assert y.dtype == np.float32
    assert all(g.dtype == np.float32 for g in linear_backward(np.ones_like(y), cache))
    for fwd, bwd in list(ACTS.values()) + [(relu_forward, relu_backward), (glu_forward, glu_backward),
                                           (softmax_forward, softmax_backward),
                                           (log_softmax_forward, log_softmax_backward)]:
        y, cache = fwd(x)
        (dx,) = bwd(np.ones_like(y), cache)
        assert y.dtype == np.float32 and dx.dtype == np.float32, fwd.__name__
