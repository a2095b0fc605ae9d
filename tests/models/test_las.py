"""LAS beyond the contract test: multi-head / two-layer speller / sigmoid attention gradients (input too),
scheduled sampling's gradient, the teacher-forced loss equals the step interface, the joint CTC loss, the
pyramid's lengths, infeasible CTC utterances, joint CTC/attention beam search against brute force."""

import itertools

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.losses import ctc_loss
from scratchasr.models.base import gather_state
from scratchasr.testing import model_gradcheck
from scratchasr.testing.reference import ctc_prefix_probs

SMALL = dict(hidden=4, num_layers=2, pyramid=1, embed_dim=3, att_dim=4, conv_channels=2, conv_width=3)


def _model(V=5, dtype=np.float64, **kw):
    opts = dict(SMALL)
    opts.update(kw)
    return models.build("las", input_dim=3, vocab_size=V, dtype=dtype, seed=0, **opts)


def _batch(rng, T=(9, 6), targets=([1, 2, 2], [4])):
    return make_batch([rng.standard_normal((T[0], 3)), rng.standard_normal((T[1], 3))], list(targets))


@pytest.mark.parametrize("kw", [dict(heads=2, speller_layers=2), dict(smoothing=True, label_smoothing=0.1,
                                                                      stack=2, dropout=0.0)])
def test_gradients_with_input(rng, kw):
    model = _model(**kw)
    for p in model.parameters().values():
        p[...] *= 2.0
    batch = _batch(rng)
    report = model_gradcheck(model, batch, feats=True)
    assert report.ok, str(report)
    model.forward_loss(batch)
    dx = model.backward(np.ones(2))
    assert np.all(dx[1, 6:] == 0)


def test_scheduled_sampling_gradient_treats_samples_as_inputs(rng):
    model = _model(sampling_prob=0.7)
    batch = _batch(rng)
    forward = model.forward_loss

    def seeded(b):  # the same samples at every finite-difference evaluation
        model.sampling_rng = np.random.default_rng(3)
        return forward(b)

    model.forward_loss = seeded
    report = model_gradcheck(model, batch)
    assert report.ok, str(report)
    model.train()
    a = seeded(batch)[0]
    model.clear_caches()
    model.eval()
    b = forward(batch)[0]  # evaluation never samples
    assert not np.allclose(a, b)


@pytest.mark.parametrize("heads", [1, 2])
def test_loss_equals_the_step_interface(rng, heads):
    model = _model(heads=heads, label_smoothing=0.0)
    model.eval()
    batch = _batch(rng)
    loss, _ = model.forward_loss(batch)
    mem = model.encode(batch)
    for b, labels in enumerate([[1, 2, 2], [4]]):
        state = model.init_state(1, memory=gather_state(mem, [b]))
        total, prev = 0.0, 0
        for y in labels + [0]:
            lp, state = model.step(state, np.array([prev]))
            total -= lp[0, y]
            prev = y
        np.testing.assert_allclose(loss[b], total, rtol=1e-10)


def test_joint_loss_is_the_weighted_sum(rng):
    lam = 0.3
    model = _model(ctc_weight=lam)
    model.eval()
    batch = _batch(rng)
    joint, stats = model.forward_loss(batch)
    mem = model.encode(batch)
    nll, _ = ctc_loss(mem.ctc_log_probs, batch.targets, mem.lengths, batch.target_lengths, reduction="none")
    att = (joint - lam * nll) / (1 - lam)
    np.testing.assert_allclose(att.sum(), stats["att_loss"], rtol=1e-10)
    np.testing.assert_allclose(nll.sum(), stats["ctc_loss"], rtol=1e-10)
    assert "ctc.W" in model.parameters() and "ctc.W" not in _model().parameters()


def test_pyramid_halves_the_frames_per_reduction(rng):
    model = _model(num_layers=3, pyramid=2, stack=1)
    mem = model.encode(_batch(rng, T=(13, 9)))
    np.testing.assert_array_equal(mem.lengths, [4, 3])  # ceil(ceil(13/2)/2), ceil(ceil(9/2)/2)
    assert mem.h.shape == (2, 4, 8)


def test_infeasible_ctc_utterance_is_inf_without_gradient(rng):
    model = _model(ctc_weight=0.5, num_layers=3, pyramid=2)
    batch = _batch(rng, T=(13, 9), targets=([1, 2, 3, 4, 1], [2]))  # 4 encoder frames < 5 labels
    loss, _ = model.forward_loss(batch)
    assert np.isinf(loss[0]) and np.isfinite(loss[1])
    model.backward(np.array([1.0, 0.0]))
    assert all(np.all(g == 0) for g in model.gradients().values())


@pytest.mark.parametrize("lam,length_norm", [(0.3, False), (0.5, True), (1.0, False)])
def test_joint_ctc_attention_beam_is_the_brute_force_argmax(rng, lam, length_norm):
    V = 4
    model = _model(V=V, ctc_weight=0.3, num_layers=2, pyramid=1)
    for p in model.parameters().values():
        p[...] *= 2.5
    batch = make_batch([rng.standard_normal((8, 3))], [[1]])
    mem = model.encode(batch)
    T = int(mem.lengths[0])
    N = T  # max_len_ratio 1.0
    full = ctc_prefix_probs(mem.ctc_log_probs[0, :T])[1]

    def score(seq):
        state, total, prev = model.init_state(1, memory=mem), 0.0, 0
        for y in list(seq) + [0]:
            lp, state = model.step(state, np.array([prev]))
            total += lp[0, y]
            prev = y
        p = full.get(tuple(seq), 0.0)
        s = (1 - lam) * total + lam * (np.log(p) if p > 0 else -np.inf)
        return s / (len(seq) + 1) if length_norm else s

    seqs = [s for n in range(N + 1) for s in itertools.product(range(1, V), repeat=n)]
    best = max(seqs, key=score)
    hyp = model.decode(batch, method="beam", beam_size=V * (V - 1) ** N, ctc_weight=lam,
                       length_norm=length_norm)
    assert hyp == [list(best)]


def test_joint_decoding_needs_the_branch_and_greedy_is_batched(rng):
    batch = _batch(rng)
    with pytest.raises(ValueError, match=r"^ctc_weight:"):
        _model().decode(batch, method="beam", ctc_weight=0.3)
    m = _model(ctc_weight=0.3)
    one = [m.decode(make_batch([batch.feats[b, :batch.feat_lengths[b]]], [[1]]))[0] for b in range(2)]
    assert m.decode(batch) == one


@pytest.mark.parametrize("opt,value,err", [("pyramid", 2, ValueError), ("conv_width", 4, ValueError),
                                           ("sampling_prob", 1.5, ValueError),
                                           ("ctc_weight", 1.0, ValueError),
                                           ("heads", 0, ValueError), ("smoothing", 1, TypeError),
                                           ("att_dim", 0, ValueError)])
def test_bad_options_are_named(opt, value, err):
    with pytest.raises(err, match=rf"^{opt}:"):
        _model(**{opt: value})
