"""Transducer decoders against brute-force enumeration (scratchasr.testing.transducer_reference).

* Graves 2012 beam search, no pruning: every score equals log P(y) summed over all alignments (for
  |y| <= max_symbols_per_frame), and the best is the exact argmax over ALL label sequences (certified:
  its probability exceeds the mass left outside the enumeration).
* Modified beam search, no pruning: scores equal log P_1(y) of the one-symbol-per-frame path model,
  whose distribution sums to 1 over the finite set |y| <= T; the best is its exact argmax.
* Both with shallow fusion (a bigram through the step interface) and a length reward.
* Greedy with one symbol per frame == modified beam search with beam 1; batched greedy == one by one.
* Streaming with random chunk sizes == offline greedy.
"""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.lm import BigramLM
from scratchasr.decode.transducer import (TransducerStreamer, graves_beam_search, greedy_search,
                                          modified_beam_search)
from scratchasr.testing.transducer_reference import label_sequences, one_symbol_log_prob, sequence_log_prob

D = 3


def _model(V=3, blank_bias=0.0, seed=0, out_scale=1.0, **kw):
    opts = dict(hidden=4, num_layers=1, pred_hidden=3, joint_dim=5)
    opts.update(kw)
    m = models.build("transducer", input_dim=D, vocab_size=V, dtype=np.float64, seed=seed, **opts)
    for p in m.parameters().values():
        p[...] *= 2.0
    m.joint_out.params["W"][...] *= out_scale     # sharper distributions: a clear argmax
    m.joint_out.params["b"][0] += blank_bias
    m.eval()
    return m


def _lm(V, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [list(rng.integers(1, V, size=rng.integers(0, 4))) for _ in range(6)]
    return BigramLM.estimate(seqs, V, k=0.5, exclude=(0,))


def _fused(log_am, y, lm, lm_weight, reward):
    lm_term = lm.sequence_log_prob(list(y)) if lm is not None else 0.0
    return log_am + lm_weight * lm_term + reward * len(y)


@pytest.mark.parametrize("seed, scale, bias, lm_weight, reward",
                         [(0, 5.0, 0.0, 0.0, 0.0), (2, 5.0, 1.0, 0.0, 0.0), (5, 3.0, 2.0, 0.7, -0.3)])
def test_graves_beam_search_is_exact_with_a_wide_beam(seed, scale, bias, lm_weight, reward):
    V, T, L = 3, 3, 3
    model = _model(V, blank_bias=bias, seed=seed, out_scale=scale)
    f, _ = model.encode(np.random.default_rng(seed).standard_normal((1, T, D)), np.array([T]))
    f = f[0]
    lm = _lm(V, seed) if lm_weight else None
    exact = {y: sequence_log_prob(model, f, y) for y in label_sequences(V, L)}
    fused = {y: _fused(s, y, lm, lm_weight, reward) for y, s in exact.items()}
    best = max(fused, key=fused.get)
    outside = 1.0 - np.exp(np.logaddexp.reduce(list(exact.values())))   # mass of every |y| > L
    # certificate: fusion and reward terms are <= 0, so no longer y can beat the best found
    assert fused[best] > np.log(max(outside, 1e-300)), (fused[best], outside)
    hyps = graves_beam_search(model, f, beam_size=10_000, max_symbols_per_frame=L, lm=lm,
                              lm_weight=lm_weight, length_reward=reward, nbest=10_000)
    assert hyps[0].tokens == best
    checked = 0
    for h in hyps:
        if len(h.tokens) <= L:
            np.testing.assert_allclose(h.log_am, exact[h.tokens], rtol=1e-9)
            np.testing.assert_allclose(h.score, fused[h.tokens], rtol=1e-9)
            checked += 1
        else:
            assert h.log_am <= sequence_log_prob(model, f, h.tokens) + 1e-9   # a subset of the alignments
    assert checked == len(exact)          # no pruning: every short sequence is in the final set


@pytest.mark.parametrize("seed, lm_weight, reward", [(0, 0.0, 0.0), (3, 0.0, 0.0), (4, 0.5, 0.4)])
def test_modified_beam_search_is_exact_for_the_one_symbol_path_model(seed, lm_weight, reward):
    V, T = 3, 4
    model = _model(V, seed=seed)
    f, _ = model.encode(np.random.default_rng(seed).standard_normal((1, T, D)), np.array([T]))
    f = f[0]
    lm = _lm(V, seed) if lm_weight else None
    exact = {y: one_symbol_log_prob(model, f, y) for y in label_sequences(V, T)}
    np.testing.assert_allclose(np.logaddexp.reduce(list(exact.values())), 0.0, atol=1e-12)   # sums to 1
    fused = {y: _fused(s, y, lm, lm_weight, reward) for y, s in exact.items()}
    hyps = modified_beam_search(model, f, beam_size=1000, lm=lm, lm_weight=lm_weight, length_reward=reward,
                                nbest=1000)
    assert hyps[0].tokens == max(fused, key=fused.get)
    assert len(hyps) == len(exact)
    for h in hyps:
        np.testing.assert_allclose(h.log_am, exact[h.tokens], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(h.score, fused[h.tokens], rtol=1e-9, atol=1e-12)


def test_greedy_with_one_symbol_per_frame_equals_beam_one(rng):
    model = _model(V=5, seed=1, joint_dim=6, blank_bias=-1.0, out_scale=2.0)
    feats = [rng.standard_normal((n, D)) for n in (9, 6, 11, 3)]
    batch = make_batch(feats, [[1]] * 4)
    g1 = model.decode(batch, method="greedy", max_symbols_per_frame=1)
    b1 = model.decode(batch, method="beam", beam_size=1)
    assert g1 == b1
    assert any(len(h) for h in g1)
    # batched greedy == one utterance at a time, for several symbols per frame too
    f, fl = model.encode(batch.feats, batch.feat_lengths)
    for S in (1, 3):
        batched = greedy_search(model, f, fl, max_symbols_per_frame=S)
        single = [greedy_search(model, f[b:b + 1, :fl[b]], fl[b:b + 1], max_symbols_per_frame=S)[0]
                  for b in range(4)]
        assert batched == single


def test_graves_and_modified_beam_through_model_decode(rng):
    model = _model(V=5, seed=2, joint_dim=6)
    batch = make_batch([rng.standard_normal((7, D)), rng.standard_normal((4, D))], [[1], [2]])
    lm = _lm(5)
    for method in ("beam", "graves"):
        hyps = model.decode(batch, method=method, beam_size=3, lm=lm, lm_weight=0.3, length_reward=0.5)
        assert len(hyps) == 2 and all(all(1 <= t < 5 for t in h) for h in hyps)


def test_streaming_equals_offline_greedy(rng):
    model = _model(V=5, seed=3, stack=2, bidirectional=False, num_layers=2, joint_dim=6)
    model.joint_out.params["b"][0] -= 1.0          # emit often, so the comparison is not all-blank
    streamer = TransducerStreamer(model, max_symbols_per_frame=2)
    for n in (13, 8, 1):
        x = rng.standard_normal((n, D))
        offline = model.decode(make_batch([x], [[1]]), method="greedy", max_symbols_per_frame=2)[0]
        streamer.reset()
        pos, partials = 0, []
        while pos < n:
            step = int(rng.integers(0, 4))
            partials.append(streamer.accept(x[pos:pos + step]))
            pos += step
        final = streamer.finish()
        assert final == offline
        times = streamer.state.times            # emission frames: one per label, non-decreasing, in range
        assert len(times) == len(final) and list(times) == sorted(times)
        assert all(0 <= t < -(-n // 2) for t in times)
        for p in partials:
            assert final[:len(p)] == p            # partial hypotheses only grow
    assert any(len(model.decode(make_batch([rng.standard_normal((13, D))], [[1]]))[0]) for _ in range(3))
    with pytest.raises(RuntimeError, match=r"^accept:"):
        streamer.accept(np.zeros((1, D)))
    with pytest.raises(ValueError, match=r"^frames:"):
        TransducerStreamer(model).accept(np.zeros((2, D + 1)))
    with pytest.raises(ValueError, match=r"^model:"):
        TransducerStreamer(_model())


def test_bad_arguments_are_refused_by_name(rng):
    model = _model()
    f = rng.standard_normal((3, 5))
    with pytest.raises(ValueError, match=r"^beam_size:"):
        modified_beam_search(model, f, beam_size=0)
    with pytest.raises(ValueError, match=r"^max_symbols_per_frame:"):
        graves_beam_search(model, f, max_symbols_per_frame=0)
    with pytest.raises(ValueError, match=r"^lm_weight:"):
        graves_beam_search(model, f, lm=_lm(3), lm_weight=float("inf"))
    with pytest.raises(TypeError, match=r"^lm:"):
        modified_beam_search(model, f, lm=object(), lm_weight=1.0)
    with pytest.raises(ValueError, match=r"^f:"):
        modified_beam_search(model, f[None])
