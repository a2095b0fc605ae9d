"""Issue 18: numbers that used to turn into NaN, or disagree between backends, without a word.

Non-finite logits inside the lengths (losses), NaN ``dloss``, NaN in masked-out attention rows, huge
attention scores, and a dtype mismatch in ``lstm_backward``. Padding may hold anything: NaN written
there must never raise nor leak into a result.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.losses import ctc_loss, ctc_loss_backward, rnnt_loss, rnnt_loss_backward

BACKENDS = ["numpy", "numba"]


def _ctc_batch(rng, dtype=np.float64):
    x = rng.standard_normal((2, 6, 5)).astype(dtype)
    y = np.array([[1, 2, 3], [4, 1, 0]])
    return x, y, np.array([6, 4]), np.array([3, 2])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_ctc_non_finite_logits_inside_the_lengths_are_an_error(backend, bad, zero_infinity):
    x, y, xl, yl = _ctc_batch(np.random.default_rng(0))
    x[1, 3, 2] = bad                                   # frame 3 < logit_lengths[1] = 4: read by the loss
    with pytest.raises(ValueError, match=r"^logits: .* at index \(1, 3, 2\), inside logit_lengths"):
        ctc_loss(x, y, xl, yl, backend=backend, zero_infinity=zero_infinity)
    x[1, 3, 2] = 0.0
    x[1, 2, :] = -np.inf                               # -inf masks symbols, but not all of them
    with pytest.raises(ValueError, match=r"^logits: every symbol is -inf at frame \(1, 2\)"):
        ctc_loss(x, y, xl, yl, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_ctc_nan_in_the_padding_is_ignored_and_backends_agree(backend):
    x, y, xl, yl = _ctc_batch(np.random.default_rng(1))
    clean, _ = ctc_loss(x, y, xl, yl, reduction="none", backend=backend)
    x[1, 4:] = np.nan                                  # padding of utterance 1
    x[0, 0, 0] = -np.inf                               # a masked symbol inside the lengths is fine
    loss, cache = ctc_loss(x, y, xl, yl, reduction="none", backend=backend)
    other, _ = ctc_loss(x, y, xl, yl, reduction="none", backend=[b for b in BACKENDS if b != backend][0])
    assert np.all(np.isfinite(loss)) and loss[1] == clean[1]
    np.testing.assert_allclose(loss, other, rtol=1e-10)
    d = ctc_loss_backward(np.ones(2), cache)
    assert np.all(np.isfinite(d)) and np.all(d[1, 4:] == 0.0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_dloss_is_an_error(backend, bad):
    x, y, xl, yl = _ctc_batch(np.random.default_rng(2))
    _, cache = ctc_loss(x, y, xl, yl, backend=backend)
    with pytest.raises(ValueError, match=r"^dloss: expected finite values"):
        ctc_loss_backward(bad, cache)
    _, cache = ctc_loss(x, y, xl, yl, reduction="none", backend=backend)
    with pytest.raises(ValueError, match=r"^dloss: expected finite values"):
        ctc_loss_backward(np.array([1.0, bad]), cache)
    z = np.random.default_rng(3).standard_normal((2, 4, 3, 5))
    _, rcache = rnnt_loss(z, np.array([[1, 2], [3, 0]]), [4, 3], [2, 1], backend=backend)
    with pytest.raises(ValueError, match=r"^dloss: expected finite values"):
        rnnt_loss_backward(bad, rcache)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rnnt_non_finite_logits_inside_the_lattice_are_an_error(backend):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 4, 3, 5))
    y, zl, yl = np.array([[1, 2], [3, 0]]), np.array([4, 3]), np.array([2, 1])
    clean, _ = rnnt_loss(z, y, zl, yl, reduction="none", backend=backend)
    z[1, 3] = np.nan                                   # t = 3 >= T_1 = 3: padding
    z[1, :, 2] = np.nan                                # u = 2 > U_1 = 1: padding
    loss, cache = rnnt_loss(z, y, zl, yl, reduction="none", backend=backend)
    np.testing.assert_array_equal(loss, clean)
    assert np.all(np.isfinite(rnnt_loss_backward(np.ones(2), cache)))
    for bad in (np.nan, np.inf):
        z2 = z.copy()
        z2[1, 2, 1, 4] = bad                           # inside T_1 x (U_1 + 1)
        with pytest.raises(ValueError, match=r"^logits: .* at index \(1, 2, 1, 4\), inside logit_lengths "
                                             r"and target_lengths"):
            rnnt_loss(z2, y, zl, yl, backend=backend)
