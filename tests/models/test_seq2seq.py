"""The fixed-vector encoder-decoder beyond the contract test: the teacher-forced loss equals the step
interface's log-probabilities started from the encoder's final states alone (the bottleneck), label
smoothing, input gradient, two layers, dropout, option checks."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.models.base import gather_state
from scratchasr.models.seq2seq import teacher_forcing
from scratchasr.testing import model_gradcheck


def _model(**kw):
    opts = dict(hidden=5, num_layers=2, stack=2, embed_dim=4)
    opts.update(kw)
    return models.build("seq2seq", input_dim=3, vocab_size=5, dtype=np.float64, seed=0, **opts)


def _batch(rng):
    return make_batch([rng.standard_normal((7, 3)), rng.standard_normal((4, 3))], [[1, 2, 2], [4]])


def test_teacher_forcing_layout():
    inp, out, n = teacher_forcing(np.array([[3, 4, 1], [2, 0, 0]]), np.array([3, 1]))
    np.testing.assert_array_equal(inp, [[0, 3, 4, 1], [0, 2, 0, 0]])
    np.testing.assert_array_equal(out, [[3, 4, 1, 0], [2, 0, 0, 0]])
    np.testing.assert_array_equal(n, [4, 2])


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_loss_equals_the_step_interface(rng, eps):
    model = _model(label_smoothing=eps)
    batch = _batch(rng)
    model.eval()
    loss, _ = model.forward_loss(batch)
    mem = model.encode(batch)
    V = model.vocab_size
    for b, labels in enumerate([[1, 2, 2], [4]]):
        state = model.init_state(1, memory=gather_state(mem, [b]))
        total, prev = 0.0, 0
        for y in labels + [0]:
            lp, state = model.step(state, np.array([prev]))
            total += -(1 - eps) * lp[0, y] - eps / V * lp[0].sum()
            prev = y
        np.testing.assert_allclose(loss[b], total, rtol=1e-10)


def test_input_gradient_two_layers(rng):
    model = _model()
    for p in model.parameters().values():
        p[...] *= 2.0
    batch = _batch(rng)
    report = model_gradcheck(model, batch, feats=True)
    assert report.ok, str(report)
    model.forward_loss(batch)
    dx = model.backward(np.ones(2))
    assert np.all(dx[1, 4:] == 0)


def test_dropout_only_in_training(rng):
    model = _model(dropout=0.5)
    batch = _batch(rng)
    model.eval()
    a = model.forward_loss(batch)[0]
    ref = _model(dropout=0.0)
    ref.eval()
    np.testing.assert_array_equal(a, ref.forward_loss(batch)[0])
    model.train()
    b = model.forward_loss(batch)[0]
    model.backward(np.ones(2))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("opt,value", [("dropout", 1.0), ("label_smoothing", 1.0), ("hidden", 0),
                                       ("embed_dim", 0), ("stack", 0), ("label_smoothing", -0.1)])
def test_bad_options_are_named(opt, value):
    with pytest.raises(ValueError, match=rf"^{opt}:"):
        _model(**{opt: value})
