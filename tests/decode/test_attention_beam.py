"""Attention beam search (scratchasr/decode/attention.py): exactness against brute force, the CTC prefix
score against a sum over every CTC path, greedy = beam 1, and argument checks."""

import itertools

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.attention import (attention_beam_search, attention_greedy_search, ctc_prefix_extend,
                                         ctc_prefix_initial, ctc_prefix_scores, decode_attention,
                                         max_output_lengths)
from scratchasr.models.base import gather_state
from scratchasr.testing.reference import ctc_prefix_probs, log_softmax


class TableLM:
    """A random bigram over ids 0..V-1 (0 = <sos> as input, <eos> as output) with the step interface."""

    def __init__(self, V, seed):
        logits = np.random.default_rng(seed).standard_normal((V, V))
        self.table = logits - np.log(np.exp(logits).sum(1, keepdims=True))

    def init_state(self, B):
        return (np.zeros(B, np.int64),)

    def step(self, state, tokens):
        return self.table[tokens], (np.asarray(tokens).copy(),)

    def log_prob(self, seq):
        prev = [0] + list(seq)
        nxt = list(seq) + [0]
        return float(sum(self.table[p, c] for p, c in zip(prev, nxt)))


def test_ctc_prefix_scores_equal_brute_force_sums(rng):
    T, V = 5, 3
    lp = log_softmax(2 * rng.standard_normal((T, V)))
    prefix, full = ctc_prefix_probs(lp)
    # walk every prefix up to 3 labels through the recursion, comparing each extension's score
    states = {(): ctc_prefix_initial(lp)}
    for n in range(3):
        for g, st in list(states.items()):
            if len(g) != n:
                continue
            sc = ctc_prefix_scores(st, lp)  # (1, V)
            np.testing.assert_allclose(np.exp(sc[0, 0]), full.get(g, 0.0), rtol=1e-10, atol=1e-300)
            for c in range(1, V):
                np.testing.assert_allclose(np.exp(sc[0, c]), prefix.get(g + (c,), 0.0), rtol=1e-10,
                                           atol=1e-300)
                states[g + (c,)] = ctc_prefix_extend(st, np.array([0]), np.array([c]), sc[:, c], lp)
    assert len(states) == 1 + 2 + 4 + 8


def test_ctc_prefix_probability_of_a_repeat_needs_a_blank():
    lp = np.log(np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]]))  # V = 2: blank and 'a'
    st = ctc_prefix_initial(lp)
    sc = ctc_prefix_scores(st, lp)
    st_a = ctc_prefix_extend(st, np.array([0]), np.array([1]), sc[:, 1], lp)
    sc_a = ctc_prefix_scores(st_a, lp)
    # 'a a' needs a a-blank-a path: only "a _ a" of 3 frames: .9 * .1 * .9
    np.testing.assert_allclose(np.exp(sc_a[0, 1]), 0.9 * 0.1 * 0.9, rtol=1e-12)


def _tiny_model(V=4, seed=0):
    m = models.build("seq2seq", input_dim=3, vocab_size=V, dtype=np.float64, seed=seed, hidden=6,
                     num_layers=1, embed_dim=4, stack=1)
    for p in m.parameters().values():
        p[...] *= 3.0  # peaked, varied distributions
    return m


def _att_log_prob(model, state, seq):
    total, tokens = 0.0, np.zeros(1, np.int64)
    for c in list(seq) + [0]:
        lp, state = model.step(state, tokens)
        total += lp[0, c]
        tokens = np.array([c])
    return total


@pytest.mark.parametrize("length_norm,reward,lm_weight,ctc_weight", [
    (False, 0.0, 0.0, 0.0), (True, 0.0, 0.0, 0.0), (False, 1.5, 0.0, 0.0), (True, -0.5, 0.7, 0.0),
    (False, 0.3, 0.5, 0.3), (True, 0.0, 0.0, 0.5)])
def test_beam_holding_every_hypothesis_is_the_brute_force_argmax(rng, length_norm, reward, lm_weight,
                                                                   ctc_weight):
    V, N = 4, 3
    model = _tiny_model(V)
    batch = make_batch([rng.standard_normal((6, 3))], [[1]])
    state0 = model.init_state(1, memory=model.encode(batch))
    lm = TableLM(V, 1) if lm_weight else None
    ctc = log_softmax(2 * rng.standard_normal((4, V))) if ctc_weight else None
    full = ctc_prefix_probs(ctc)[1] if ctc_weight else {}

    def score(seq):
        s = (1 - ctc_weight) * _att_log_prob(model, state0, seq) + reward * (len(seq) + 1)
        if lm is not None:
            s += lm_weight * lm.log_prob(seq)
        if ctc_weight:
            p = full.get(tuple(seq), 0.0)
            s += ctc_weight * (np.log(p) if p > 0 else -np.inf)
        return s / (len(seq) + 1) if length_norm else s

    all_seqs = [s for n in range(N + 1) for s in itertools.product(range(1, V), repeat=n)]
    scores = {s: score(s) for s in all_seqs}
    best = max(all_seqs, key=lambda s: scores[s])
    hyps = attention_beam_search(model, state0, beam_size=V * (V - 1) ** N, max_len=N, lm=lm,
                                 lm_weight=lm_weight, ctc_log_probs=ctc, ctc_weight=ctc_weight,
                                 length_norm=length_norm, length_reward=reward, nbest=3)
    assert hyps[0].tokens == best
    np.testing.assert_allclose(hyps[0].score, scores[best], rtol=1e-9)
    assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    np.testing.assert_allclose(hyps[0].att_log_prob, _att_log_prob(model, state0, best), rtol=1e-9)


def test_pruned_beam_agrees_with_greedy_at_size_one(rng):
    model = _tiny_model(5, seed=3)
    batch = make_batch([rng.standard_normal((9, 3)), rng.standard_normal((5, 3))], [[1], [2]])
    mem = model.encode(batch)
    greedy = attention_greedy_search(model, model.init_state(2, memory=mem), np.array([6, 6]))
    for b in range(2):
        one = attention_beam_search(model, model.init_state(1, memory=gather_state(mem, [b])), beam_size=1,
                                    max_len=6)
        assert list(one[0].tokens) == greedy[b]
    assert decode_attention(model, mem, method="beam", beam_size=1, max_len_ratio=6 / 9) == \
        decode_attention(model, mem, method="greedy", max_len_ratio=6 / 9)


def test_larger_beam_never_scores_worse(rng):
    model = _tiny_model(6, seed=5)
    batch = make_batch([rng.standard_normal((8, 3))], [[1]])
    state0 = model.init_state(1, memory=model.encode(batch))
    best = [attention_beam_search(model, state0, beam_size=k, max_len=5)[0].score
            for k in (1, 2, 4, 6 * 5 ** 5)]
    exhaustive = best[-1]
    assert all(s <= exhaustive + 1e-12 for s in best)


def test_max_length_is_tied_to_the_encoder_length():
    np.testing.assert_array_equal(max_output_lengths(np.array([0, 3, 10]), 0.5), [1, 2, 5])
    with pytest.raises(ValueError, match=r"^max_len_ratio:"):
        max_output_lengths(np.array([3]), 0.0)


def test_bad_arguments_are_named(rng):
    model = _tiny_model()
    batch = make_batch([rng.standard_normal((6, 3))], [[1]])
    state0 = model.init_state(1, memory=model.encode(batch))
    with pytest.raises(ValueError, match=r"^beam_size:"):
        attention_beam_search(model, state0, beam_size=0, max_len=3)
    with pytest.raises(ValueError, match=r"^lm_weight:"):
        attention_beam_search(model, state0, beam_size=2, max_len=3, lm_weight=-1.0)
    with pytest.raises(ValueError, match=r"^ctc_weight:"):
        attention_beam_search(model, state0, beam_size=2, max_len=3, ctc_weight=0.5)
    with pytest.raises(ValueError, match=r"^ctc_weight:"):
        attention_beam_search(model, state0, beam_size=2, max_len=3, ctc_weight=1.5,
                              ctc_log_probs=np.zeros((3, 4)))
    with pytest.raises(TypeError, match=r"^length_norm:"):
        attention_beam_search(model, state0, beam_size=2, max_len=3, length_norm=1)
    with pytest.raises(ValueError, match=r"^ctc_log_probs:"):
        attention_beam_search(model, state0, beam_size=2, max_len=3, ctc_weight=0.5,
                              ctc_log_probs=np.zeros((3, 7)))
    with pytest.raises(ValueError, match=r"^method:"):
        decode_attention(model, model.encode(batch), method="sampling")
    with pytest.raises(ValueError, match=r"^ctc_weight:"):
        decode_attention(model, model.encode(batch), method="beam", ctc_weight=0.3)


def test_shallow_fusion_with_the_bigram_lm_changes_the_search(rng):
    from scratchasr.decode.lm import BigramLM
    V = 5
    model = _tiny_model(V, seed=2)
    batch = make_batch([rng.standard_normal((7, 3)), rng.standard_normal((6, 3))], [[1], [2]])
    lm = BigramLM.estimate([[4, 4, 4, 4], [4, 4]] * 5, V, k=0.01)  # a prior that loves label 4
    plain = model.decode(batch, method="beam", beam_size=3)
    fused = model.decode(batch, method="beam", beam_size=3, lm=lm, lm_weight=5.0)
    assert fused != plain and all(t == 4 for h in fused for t in h)
    greedy = model.decode(batch, lm=lm, lm_weight=5.0)  # greedy fuses too
    assert greedy != model.decode(batch) and all(t == 4 for h in greedy for t in h)
