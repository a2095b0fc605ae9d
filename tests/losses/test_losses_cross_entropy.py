"""Cross-entropy with label smoothing: loop reference, finite differences, padding, torch oracle, errors."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.losses import cross_entropy_loss, cross_entropy_loss_backward
from scratchasr.testing import gradcheck

RTOL, ATOL = 1e-6, 1e-9


def _reference(logits, targets, target_lengths, eps, ignore_index=None):
    """Per-utterance loss by explicit loops: -sum_k q(k) log p(k) over valid positions [xent:smoothing]."""
    B, _, V = logits.shape
    out = np.zeros(B)
    for b in range(B):
        for s in range(int(target_lengths[b])):
            y = int(targets[b, s])
            if ignore_index is not None and y == ignore_index:
                continue
            x = logits[b, s].astype(np.float64)
            logp = x - np.log(np.sum(np.exp(x)))
            q = np.full(V, eps / V)
            q[y] += 1.0 - eps
            out[b] -= np.sum(q * logp)
    return out


def _batch(rng, B=3, S=5, V=6, dtype=np.float64):
    logits = (2.0 * rng.standard_normal((B, S, V))).astype(dtype)
    targets = rng.integers(0, V, size=(B, S))
    lengths = np.array([S, 2, 0, 4, 1][:B])
    return logits, targets, lengths


@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_matches_loop_reference(rng, eps):
    logits, targets, lengths = _batch(rng)
    loss, _ = cross_entropy_loss(logits, targets, lengths, label_smoothing=eps, reduction="none")
    assert loss.shape == (3,)
    np.testing.assert_allclose(loss, _reference(logits, targets, lengths, eps), rtol=1e-12)
    assert loss[2] == 0.0  # an empty utterance costs nothing
    total, _ = cross_entropy_loss(logits, targets, lengths, label_smoothing=eps)
    mean, _ = cross_entropy_loss(logits, targets, lengths, label_smoothing=eps, reduction="mean")
    assert total.shape == () and np.isclose(total, loss.sum()) and np.isclose(mean, loss.sum() / 3)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_gradcheck(rng, reduction, eps):
    logits, targets, lengths = _batch(rng)
    report = gradcheck(lambda x: cross_entropy_loss(x, targets, lengths, label_smoothing=eps,
                                                    reduction=reduction),
                       cross_entropy_loss_backward, [logits], rtol=RTOL, atol=ATOL, names=["logits"])
    assert report.ok, str(report)


def test_gradcheck_with_ignore_index(rng):
    logits, targets, lengths = _batch(rng, V=5)
    targets[0, 1] = targets[1, 0] = -100
    report = gradcheck(lambda x: cross_entropy_loss(x, targets, lengths, label_smoothing=0.1,
                                                    ignore_index=-100, reduction="none"),
                       cross_entropy_loss_backward, [logits], rtol=RTOL, atol=ATOL, names=["logits"])
    assert report.ok, str(report)
    loss, cache = cross_entropy_loss(logits, targets, lengths, label_smoothing=0.1, ignore_index=-100,
                                     reduction="none")
    np.testing.assert_allclose(loss, _reference(logits, targets, lengths, 0.1, ignore_index=-100), rtol=1e-12)
    d = cross_entropy_loss_backward(np.ones(3), cache)
    assert np.all(d[0, 1] == 0.0) and np.all(d[1, 0] == 0.0)


def test_a_wrong_gradient_fails_the_check(rng):
    logits, targets, lengths = _batch(rng)

    def wrong(dloss, cache):
        return 1.01 * cross_entropy_loss_backward(dloss, cache)

    assert not gradcheck(lambda x: cross_entropy_loss(x, targets, lengths, label_smoothing=0.1), wrong,
                         [logits]).ok


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_padding_gets_exactly_zero_gradient_and_nan_padding_does_not_leak(rng, dtype):
    logits, targets, lengths = _batch(rng, dtype=dtype)
    clean, _ = cross_entropy_loss(logits, targets, lengths, label_smoothing=0.1, reduction="none")
    dirty = logits.copy()
    targets = targets.copy()
    for b, L in enumerate(lengths):
        dirty[b, L:] = np.nan
        targets[b, L:] = 10 ** 6  # out-of-range labels in the padding are never read either
    loss, cache = cross_entropy_loss(dirty, targets, lengths, label_smoothing=0.1, reduction="none")
    assert loss.dtype == dtype
    np.testing.assert_array_equal(loss, clean)
    d = cross_entropy_loss_backward(np.array([1.0, -2.0, 3.0]), cache)
    assert d.dtype == dtype and np.all(np.isfinite(d))
    for b, L in enumerate(lengths):
        assert np.all(d[b, L:] == 0.0)
        assert np.all(d[b, :L] != 0.0)
    np.testing.assert_allclose(d.sum(axis=2), 0.0, atol=1e-6)  # each row of p - q sums to zero


def test_lengths_none_means_full_length(rng):
    logits, targets, _ = _batch(rng)
    a, _ = cross_entropy_loss(logits, targets, None, reduction="none")
    b, _ = cross_entropy_loss(logits, targets, np.full(3, 5), reduction="none")
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_name_the_argument(rng):
    logits, targets, lengths = _batch(rng)
    with pytest.raises(ValueError, match=r"^reduction:"):
        cross_entropy_loss(logits, targets, lengths, reduction="avg")
    with pytest.raises(ValueError, match=r"^label_smoothing:"):
        cross_entropy_loss(logits, targets, lengths, label_smoothing=1.5)
    with pytest.raises(TypeError, match=r"^label_smoothing:"):
        cross_entropy_loss(logits, targets, lengths, label_smoothing="0.1")
    with pytest.raises(TypeError, match=r"^ignore_index:"):
        cross_entropy_loss(logits, targets, lengths, ignore_index=1.0)
    with pytest.raises(ValueError, match=r"^logits:"):
        cross_entropy_loss(logits[0], targets, lengths)
    with pytest.raises(TypeError, match=r"^logits:"):
        cross_entropy_loss(logits.astype(np.float16), targets, lengths)
    with pytest.raises(ValueError, match=r"^targets:"):
        cross_entropy_loss(logits, targets[:, :4], lengths)
    with pytest.raises(TypeError, match=r"^targets:"):
        cross_entropy_loss(logits, targets.astype(float), lengths)
    with pytest.raises(ValueError, match=r"^target_lengths:"):
        cross_entropy_loss(logits, targets, np.array([6, 1, 1]))
    bad = targets.copy()
    bad[1, 1] = 6
    with pytest.raises(ValueError, match=r"^targets:.*\(1, 1\)"):
        cross_entropy_loss(logits, bad, lengths)
    nan = logits.copy()
    nan[3 - 2, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"^logits:.*\(1, 0\)"):
        cross_entropy_loss(nan, targets, lengths)
    _, cache = cross_entropy_loss(logits, targets, lengths, reduction="none")
    with pytest.raises(ValueError, match=r"^dloss:"):
        cross_entropy_loss_backward(np.float64(1.0), cache)


@pytest.mark.oracle
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_oracle_torch_cross_entropy(rng, eps):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    logits, targets, lengths = _batch(rng, B=3, S=6, V=7)
    lengths = np.array([6, 3, 1])
    targets[0, 2] = -100
    loss, cache = cross_entropy_loss(logits, targets, lengths, label_smoothing=eps, ignore_index=-100,
                                     reduction="none")
    x = torch.tensor(logits, requires_grad=True)
    t = torch.tensor(np.where(np.arange(6)[None, :] < lengths[:, None], targets, -100))
    per_pos = F.cross_entropy(x.reshape(-1, 7), t.reshape(-1), label_smoothing=eps, ignore_index=-100,
                              reduction="none").reshape(3, 6)
    dloss = np.array([0.5, -1.0, 2.0])
    (per_pos.sum(dim=1) * torch.tensor(dloss)).sum().backward()
    np.testing.assert_allclose(loss, per_pos.sum(dim=1).detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(cross_entropy_loss_backward(dloss, cache), x.grad.numpy(),
                               rtol=1e-10, atol=1e-14)
    total, _ = cross_entropy_loss(logits, targets, lengths, label_smoothing=eps, ignore_index=-100)
    ref = F.cross_entropy(torch.tensor(logits).reshape(-1, 7), t.reshape(-1), label_smoothing=eps,
                          ignore_index=-100, reduction="sum")
    np.testing.assert_allclose(total, ref.item(), rtol=1e-12)
