"""Greedy CTC decoding and prefix beam search: hand cases, brute-force oracle, beam-1 vs greedy, LM fusion."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from scratchasr.decode import BigramLM, ctc_greedy_decode, ctc_prefix_beam_search, ctc_prefix_beam_search_utterance


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _collapse(path, blank=0):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(s)
        prev = s
    return tuple(out)


def _brute_force(lp, blank=0):
    """log P(labelling | x) for every labelling: sum over all V**T paths (tiny T, V only)."""
    T, V = lp.shape
    probs: dict = {}
    for path in itertools.product(range(V), repeat=T):
        p = math.exp(sum(lp[t, s] for t, s in enumerate(path)))
        key = _collapse(path, blank)
        probs[key] = probs.get(key, 0.0) + p
    return {k: math.log(v) for k, v in probs.items()}


def test_greedy_hand_case_and_lengths():
    # frames: a a _ a b b _ | padding
    seq = [1, 1, 0, 1, 2, 2, 0]
    lp = np.full((2, 9, 3), -5.0)
    for t, s in enumerate(seq):
        lp[0, t, s] = 0.0
    lp[0, 7:, 2] = 10.0                      # padding says "b": must be ignored
    lp[1, :3, 2] = 0.0                       # b b b -> b
    lp[1, 3:] = np.nan                       # padding NaN: never read
    out = ctc_greedy_decode(lp, np.array([7, 3]))
    assert out == [[1, 1, 2], [2]]
    assert ctc_greedy_decode(lp[:1, :0], np.array([0])) == [[]]
    assert ctc_greedy_decode(lp[:1, :7], blank=2) == [[1, 0, 1, 0]]


@pytest.mark.parametrize("seed", range(6))
def test_exact_search_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    T, V = (4, 3) if seed % 2 else (5, 3)
    lp = _log_softmax(rng.normal(0, 1.5, (T, V)))
    exact = _brute_force(lp)
    hyps = ctc_prefix_beam_search_utterance(lp, beam_size=10_000)
    best = max(exact, key=exact.get)
    assert hyps[0].tokens == best
    # with no pruning every prefix's probability is the exact sum over its alignments
    assert len(hyps) == len(exact)
    for h in hyps:
        assert h.ctc_log_prob == pytest.approx(exact[h.tokens], rel=1e-10, abs=1e-12)
        assert h.score == h.ctc_log_prob
    assert math.isclose(np.logaddexp.reduce([h.ctc_log_prob for h in hyps]), 0.0, abs_tol=1e-10)


def test_most_probable_labelling_beats_best_path():
    """Best path and most probable labelling differ: greedy is wrong, exhaustive beam search is right."""
    # V = 3 (blank, a, b), two frames. The best path is "a b" (.38 * .37 = .1406), but the labelling
    # (a) collects three paths: a a, a _, _ a = .1254 + .114 + .099 = .3384.
    lp = np.log(np.array([[0.3, 0.38, 0.32], [0.3, 0.33, 0.37]]))
    exact = _brute_force(lp)
    best = max(exact, key=exact.get)
    greedy = tuple(ctc_greedy_decode(lp[None])[0])
    assert greedy == (1, 2)                               # best path "a b"
    assert best != greedy and exact[best] > exact[greedy]  # a single-token labelling has more mass
    assert ctc_prefix_beam_search_utterance(lp, beam_size=100)[0].tokens == best


def test_beam_one_equals_greedy_on_peaky_outputs():
    """When one symbol holds > 1/2 of every frame's mass, beam 1 follows the best path, like greedy."""
    rng = np.random.default_rng(7)
    B, T, V = 6, 30, 6
    path = rng.integers(0, V, (B, T))
    logits = rng.normal(0, 0.3, (B, T, V))
    logits[np.arange(B)[:, None], np.arange(T)[None, :], path] += 4.0
    lp = _log_softmax(logits)
    assert np.exp(lp.max(-1)).min() > 0.5
    lengths = np.array([30, 25, 1, 0, 17, 30])
    assert ctc_prefix_beam_search(lp, lengths, beam_size=1) == ctc_greedy_decode(lp, lengths)


def test_wider_beam_never_scores_worse():
    rng = np.random.default_rng(8)
    for _ in range(10):
        lp = _log_softmax(rng.normal(0, 1.0, (8, 4)))
        s = [ctc_prefix_beam_search_utterance(lp, beam_size=k)[0].ctc_log_prob for k in (1, 4, 1000)]
        assert s[2] >= s[1] - 1e-12 and s[2] >= s[0] - 1e-12
        # and the greedy labelling is never more probable than the exhaustive search's result
        g = tuple(ctc_greedy_decode(lp[None])[0])
        all_hyps = {h.tokens: h.ctc_log_prob for h in ctc_prefix_beam_search_utterance(lp, beam_size=100_000)}
        assert all_hyps[g] <= s[2] + 1e-12


def test_token_threshold_keeps_result_on_peaky_input():
    rng = np.random.default_rng(9)
    logits = rng.normal(0, 0.3, (40, 8))
    logits[np.arange(40), rng.integers(0, 8, 40)] += 8.0
    lp = _log_softmax(logits)
    a = ctc_prefix_beam_search_utterance(lp, beam_size=8)[0]
    b = ctc_prefix_beam_search_utterance(lp, beam_size=8, token_threshold=-12.0)[0]
    assert a.tokens == b.tokens and a.ctc_log_prob == pytest.approx(b.ctc_log_prob, rel=1e-9)


def test_lm_fusion_scores_and_preference():
    # acoustics ambiguous between tokens 1 and 2 at the single frame; the LM prefers 2 after <s>
    lp = np.log(np.array([[0.02, 0.49, 0.49]]))
    lm = BigramLM.estimate([[2], [2], [2, 1]], vocab_size=3, k=0.5)
    plain = ctc_prefix_beam_search_utterance(lp, beam_size=4)
    fused = ctc_prefix_beam_search_utterance(lp, beam_size=4, lm=lm, lm_weight=1.0, insertion_bonus=0.3)
    assert fused[0].tokens == (2,)
    h = fused[0]
    want = h.ctc_log_prob + lm.score(None, 2) + lm.score(2, None) + 0.3
    assert h.score == pytest.approx(want, rel=1e-12)
    assert {x.tokens for x in plain} == {x.tokens for x in fused}
    # a large insertion bonus favours emitting over the empty output; a large penalty the opposite
    lp2 = np.log(np.array([[0.6, 0.4, 1e-9]]))
    assert ctc_prefix_beam_search_utterance(lp2, insertion_bonus=2.0)[0].tokens == (1,)
    assert ctc_prefix_beam_search_utterance(lp2, insertion_bonus=-2.0)[0].tokens == ()


def test_accepts_logits_and_validates():
    rng = np.random.default_rng(10)
    logits = rng.normal(0, 2, (1, 5, 4))
    assert ctc_prefix_beam_search(logits, beam_size=100) == ctc_prefix_beam_search(_log_softmax(logits), beam_size=100)
    with pytest.raises(ValueError, match="log_probs"):
        ctc_prefix_beam_search(logits[0])
    with pytest.raises(TypeError, match="log_probs"):
        ctc_greedy_decode(np.zeros((1, 2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="lengths"):
        ctc_greedy_decode(logits, np.array([6]))
    with pytest.raises(ValueError, match="blank"):
        ctc_prefix_beam_search(logits, blank=4)
    with pytest.raises(ValueError, match="beam_size"):
        ctc_prefix_beam_search(logits, beam_size=0)
    with pytest.raises(ValueError, match="lm"):
        ctc_prefix_beam_search(logits, lm=BigramLM.estimate([[1]], vocab_size=3), lm_weight=1.0)
