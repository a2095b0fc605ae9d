"""Whole-model finite-difference test of the BiLSTM-CTC model on two utterances (STYLE.md: rtol 1e-5)."""

import numpy as np
import pytest

from scratchasr.losses import ctc_loss, ctc_loss_backward
from scratchasr.models.ctc_blstm import CTCBLSTM, CTCBLSTMConfig, pad_batch, stack_frames
from scratchasr.testing import gradcheck


def _setup(stack, rng):
    cfg = CTCBLSTMConfig(input_dim=3, vocab_size=5, hidden=4, num_layers=2, stack=stack, dropout=0.0)
    model = CTCBLSTM(cfg, rng=rng, dtype=np.float64)
    for k in model.params:  # larger weights than the init: logits of scale 1..3, gradients well above noise
        model.params[k] = model.params[k] * 3.0
    x, lengths = pad_batch([rng.standard_normal((7, 3)), rng.standard_normal((5, 3))])
    targets = np.array([[1, 2], [3, 0]])
    tlen = np.array([2, 1])
    return model, x, lengths, targets, tlen


@pytest.mark.parametrize("stack", [1, 2])
def test_whole_model_gradcheck_two_utterances(stack, rng):
    model, x, lengths, targets, tlen = _setup(stack, rng)
    names = sorted(model.params)

    def forward(x, *arrays):
        for k, a in zip(names, arrays):
            model.params[k] = a
        logits, out_len, cache = model.forward(x, lengths)
        loss, lcache = ctc_loss(logits, targets, out_len, tlen, reduction="none")
        return loss, (cache, lcache)

    def backward(dloss, caches):
        cache, lcache = caches
        model.grads = {k: np.zeros_like(v) for k, v in model.params.items()}
        dx = model.backward(ctc_loss_backward(dloss, lcache), cache)
        return (dx,) + tuple(model.grads[k] for k in names)

    report = gradcheck(forward, backward, [x] + [model.params[k] for k in names], names=["x"] + names, rtol=1e-5,
                       atol=1e-9)  # FD rounding floor: eps_64 * |L| / h ~ 1e-9 for |L| ~ 10
    assert report.ok, str(report)
    dx = backward(np.ones(2), forward(x, *[model.params[k] for k in names])[1])[0]
    assert np.all(dx[1, 5:] == 0)  # padded frames get exactly zero gradient


def test_padding_does_not_change_outputs(rng):
    model, x, lengths, *_ = _setup(2, rng)
    logits, out_len, _ = model.forward(x, lengths)
    x2 = x.copy()
    x2[1, 5:] = 1e3  # garbage in the padding
    logits2, _, _ = model.forward(x2, lengths)
    np.testing.assert_allclose(logits, logits2, rtol=0, atol=0)
    assert np.all(logits[1, out_len[1]:] == 0)


def test_stack_frames_shapes():
    x = np.arange(2 * 5 * 2, dtype=np.float64).reshape(2, 5, 2)
    xs, L = stack_frames(x, np.array([5, 3]), 2)
    assert xs.shape == (2, 3, 4) and list(L) == [3, 2]
    np.testing.assert_array_equal(xs[0, 0], [0, 1, 2, 3])


def test_bad_input(rng):
    model, x, lengths, *_ = _setup(1, rng)
    with pytest.raises(ValueError, match="x: expected shape"):
        model.forward(x[:, :, :2], lengths)
    with pytest.raises(ValueError, match="lengths"):
        model.forward(x, np.array([8, 1]))
