"""gradcheck must pass a correct backward and catch a 1 % error in a single element, naming it."""

import numpy as np
import pytest

from scratchasr.testing import gradcheck


def affine_forward(x, W, b):
    return x @ W.T + b, (x, W)


def affine_backward(dout, cache):
    x, W = cache
    return dout @ W, dout.T @ x, dout.sum(0)


def _perturbed_backward(which, index, factor=1.01):
    def backward(dout, cache):
        grads = [g.copy() for g in affine_backward(dout, cache)]
        grads[which][index] *= factor
        return tuple(grads)
    return backward


@pytest.mark.parametrize("shape", [((4, 5), (3, 5)), ((60, 50), (40, 50))])
def test_correct_backward_passes(shape, rng):
    x, W = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
    b = rng.standard_normal(shape[1][0])
    report = gradcheck(affine_forward, affine_backward, (x, W, b), names=["x", "W", "b"])
    assert report.ok, str(report)
    assert "PASS" in str(report)


@pytest.mark.parametrize("shape,which,index", [
    (((4, 5), (3, 5)), 1, (1, 2)),       # small: every element is checked
    (((60, 50), (40, 50)), 1, (17, 23)),  # large: a random direction fails, bisection finds the element
    (((60, 50), (40, 50)), 0, (59, 49)),  # large: the last element
])
def test_one_percent_error_in_one_element_is_caught_and_located(shape, which, index, rng):
    x, W = rng.standard_normal(shape[0]), rng.standard_normal(shape[1])
    b = rng.standard_normal(shape[1][0])
    report = gradcheck(affine_forward, _perturbed_backward(which, index), (x, W, b), names=["x", "W", "b"])
    assert not report.ok
    bad = [c for c in report.checks if not c.ok]
    assert [c.name for c in bad] == [["x", "W", "b"][which]]
    assert bad[0].worst_index == index
    text = str(report)
    assert "FAIL" in text and str(index) in text


def test_integer_inputs_are_not_perturbed(rng):
    x = rng.standard_normal((3, 4))
    idx = np.array([2, 0, 1])

    def fwd(x, idx):
        return x[np.arange(3), idx], (x.shape, idx)

    def bwd(dout, cache):
        shape, idx = cache
        dx = np.zeros(shape)
        dx[np.arange(3), idx] = dout
        return (dx,)

    assert gradcheck(fwd, bwd, (x, idx)).ok


def test_detects_mutation_of_dout_and_cache(rng):
    x = rng.standard_normal(5)

    def fwd(x):
        return 2 * x, (x.copy(),)

    def bwd_mutating(dout, cache):
        dout *= 1.0  # same values, but a write: detected by value comparison only if changed
        cache[0][0] += 1.0
        return (2 * dout,)

    report = gradcheck(fwd, bwd_mutating, (x,))
    assert not report.ok
    assert any("cache" in p for p in report.problems)


def test_wrong_number_of_gradients_fails(rng):
    x, W, b = rng.standard_normal((2, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    report = gradcheck(affine_forward, lambda d, c: affine_backward(d, c)[:2], (x, W, b))
    assert not report.ok and report.problems


def test_wrt_and_float32_inputs(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    W = rng.standard_normal((2, 4)).astype(np.float32)
    b = np.zeros(2, np.float32)
    report = gradcheck(affine_forward, affine_backward, (x, W, b), wrt=[1], names=["x", "W", "b"])
    assert report.ok and [c.name for c in report.checks] == ["W"]


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"^inputs:"):
        gradcheck(affine_forward, affine_backward, (np.arange(3),))
    with pytest.raises(ValueError, match=r"^forward:"):
        gradcheck(lambda x: x, lambda d, c: d, (np.ones(3),))
