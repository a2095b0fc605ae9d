"""BiLSTM-CTC specifics beyond the contract test: input gradient, frame stacking, infeasible utterances,
and the recipe's exact loss against an independent composition of the ops."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.losses import ctc_loss
from scratchasr.models.ctc_blstm import ctc_min_frames
from scratchasr.nn.lstm import lstm_stack_forward
from scratchasr.nn.stack import stack_frames
from scratchasr.testing import model_gradcheck


def _model(stack, dtype=np.float64, **kw):
    opts = dict(hidden=4, num_layers=2, stack=stack)
    opts.update(kw)
    return models.build("ctc_blstm", input_dim=3, vocab_size=5, dtype=dtype, seed=0, **opts)


@pytest.mark.parametrize("stack", [1, 2])
def test_input_gradient_and_zero_gradient_on_padding(stack, rng):
    model = _model(stack)
    for p in model.parameters().values():
        p[...] *= 3.0
    x0, x1 = rng.standard_normal((7, 3)), rng.standard_normal((5, 3))
    batch = make_batch([x0, x1], [[1, 2], [3]])

    report = model_gradcheck(model, batch, feats=True)
    assert report.ok, str(report)
    model.forward_loss(batch)
    dx = model.backward(np.ones(2))
    assert np.all(dx[1, 5:] == 0)


def test_loss_equals_ops_composed_by_hand(rng):
    """forward_loss == CTC of (stack -> LSTM stack -> linear) written directly with the functional ops."""
    model = _model(2)
    batch = make_batch([rng.standard_normal((7, 3)), rng.standard_normal((6, 3))], [[1, 2], [4, 4]])
    loss, _ = model.forward_loss(batch)
    model.clear_caches()
    p = model.parameters()
    xs, L = stack_frames(batch.feats, batch.feat_lengths, 2)
    enc = {k[len("encoder."):]: v for k, v in p.items() if k.startswith("encoder.")}
    h, _ = lstm_stack_forward(enc, xs, L, num_layers=2, bidirectional=True)
    logits = h @ p["output.W"].T + p["output.b"]
    ref, _ = ctc_loss(logits, batch.targets, L, batch.target_lengths, reduction="none")
    np.testing.assert_allclose(loss, ref, rtol=1e-12)


def test_infeasible_utterance_is_inf_and_gets_no_gradient(rng):
    model = _model(2)
    # 4 frames -> 2 after stacking; [1, 1] needs 3 frames (a blank between the repeats)
    batch = make_batch([rng.standard_normal((4, 3)), rng.standard_normal((9, 3))], [[1, 1], [2]])
    assert list(ctc_min_frames(batch.targets, batch.target_lengths)) == [3, 1]
    model.zero_grad()
    loss, stats = model.forward_loss(batch)
    assert np.isinf(loss[0]) and np.isfinite(loss[1]) and stats["utterances"] == 1
    model.backward(np.array([1.0, 0.0]))
    assert all(np.all(g == 0) for g in model.gradients().values())


def test_stack_frames_shapes():
    x = np.arange(2 * 5 * 2, dtype=np.float64).reshape(2, 5, 2)
    xs, L = stack_frames(x, np.array([5, 3]), 2)
    assert xs.shape == (2, 3, 4) and list(L) == [3, 2]
    np.testing.assert_array_equal(xs[1, 1, :2], x[1, 2])  # frames 2 and 3 of utterance 1 form step 1
    assert np.all(xs[1, 1, 2:] == 0)  # frame 3 of utterance 1 is padding: never read


def test_options_are_validated():
    with pytest.raises(ValueError, match=r"^hidden:"):
        _model(1, hidden=0)
    with pytest.raises(ValueError, match=r"^dropout:"):
        _model(1, dropout=1.0)
    with pytest.raises(ValueError, match=r"^stack:"):
        _model(0)
