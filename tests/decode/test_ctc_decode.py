"""Greedy CTC decoding and prefix beam search: hand cases, brute-force oracles (plain and fused), beam 1 vs
greedy, LM fusion through the step interface, n-best lists, and kernel/reference parity (exact ids, scores
to 1e-10; ties included)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from typing import NamedTuple

import numpy as np
import pytest

from scratchasr.decode import (BigramLM, ctc_greedy_decode, ctc_prefix_beam_search,
                               ctc_prefix_beam_search_utterance)
from scratchasr.testing.reference import ctc_collapse, ctc_labelling_log_probs, log_softmax

BACKENDS = ["numpy", "numba"]


def _lm_log_prob(lm, tokens):
    """log P_lm(tokens </s>) by feeding <s> tokens through the step interface, one at a time."""
    state, total, prev = lm.init_state(1), 0.0, 0
    for c in list(tokens) + [0]:
        log_probs, state = lm.step(state, np.array([prev]))
        total += float(log_probs[0, c])
        prev = c
    return total


class StepOnly:
    """Hides a BigramLM's transition table: only init_state/step remain (the generic LM path)."""

    def __init__(self, lm):
        self.lm = lm

    def init_state(self, batch_size):
        return self.lm.init_state(batch_size)

    def step(self, state, tokens):
        return self.lm.step(state, tokens)


class CountState(NamedTuple):
    last: np.ndarray   # (B,) int64
    count: np.ndarray  # (B, 1) float64: tokens fed so far (a 2-D leaf, to exercise the state plumbing)


class CountingLM:
    """A toy LM whose distribution depends on the whole history (last token and length), not a bigram."""

    def __init__(self, V, seed=0):
        rng = np.random.default_rng(seed)
        self.W = rng.normal(0, 1, (V, V))
        self.U = rng.normal(0, 1, V)

    def init_state(self, batch_size):
        return CountState(np.zeros(batch_size, dtype=np.int64), np.zeros((batch_size, 1)))

    def step(self, state, tokens):
        count = state.count + 1.0
        logits = self.W[tokens] + count * self.U[None, :]
        return log_softmax(logits), CountState(np.asarray(tokens).copy(), count)


def _random_lm(rng, V, n=20):
    return BigramLM.estimate([list(rng.integers(1, V, rng.integers(0, 8))) for _ in range(n)], vocab_size=V,
                             k=0.5)


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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(8))
def test_exact_search_matches_brute_force(seed, backend):
    """A beam that holds every prefix returns every labelling with its exact log-probability, best first."""
    rng = np.random.default_rng(seed)
    T, V = [(3, 3), (4, 3), (5, 3), (3, 4), (4, 4), (5, 4), (4, 3), (5, 3)][seed]
    lp = log_softmax(rng.normal(0, 1.5, (T, V)))
    exact = ctc_labelling_log_probs(lp)
    hyps = ctc_prefix_beam_search_utterance(lp, beam_size=10_000, backend=backend)
    best = max(exact, key=exact.get)
    assert hyps[0].tokens == best
    assert hyps[0].ctc_log_prob == pytest.approx(exact[best], rel=1e-10, abs=1e-12)
    # with no pruning every prefix's probability is the exact sum over its alignments
    assert len(hyps) == len(exact)
    for h in hyps:
        assert h.ctc_log_prob == pytest.approx(exact[h.tokens], rel=1e-10, abs=1e-12)
        assert h.score == h.ctc_log_prob and h.lm_log_prob == 0.0
    assert math.isclose(np.logaddexp.reduce([h.ctc_log_prob for h in hyps]), 0.0, abs_tol=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_exact_fused_search_matches_brute_force(seed, backend):
    """With fusion and no pruning, the best hypothesis maximises log P_ctc + w log P_lm(z </s>) + b |z|."""
    rng = np.random.default_rng(100 + seed)
    T, V = [(4, 3), (5, 3), (3, 4), (4, 4)][seed]
    lp = log_softmax(rng.normal(0, 1.5, (T, V)))
    exact = ctc_labelling_log_probs(lp)
    lm = _random_lm(rng, V)
    w, bonus = 0.8, 0.4
    fused = {z: p + w * lm.sequence_log_prob(z) + bonus * len(z) for z, p in exact.items()}
    hyps = ctc_prefix_beam_search_utterance(lp, beam_size=10_000, lm=lm, lm_weight=w, insertion_bonus=bonus,
                                            backend=backend)
    assert len(hyps) == len(exact)
    assert hyps[0].tokens == max(fused, key=fused.get)
    for h in hyps:
        assert h.score == pytest.approx(fused[h.tokens], rel=1e-10, abs=1e-12)
        assert h.ctc_log_prob == pytest.approx(exact[h.tokens], rel=1e-10, abs=1e-12)
        assert h.lm_log_prob == pytest.approx(lm.sequence_log_prob(h.tokens), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_generic_step_lm_matches_brute_force(seed):
    """An LM that is not a bigram (its state is a NamedTuple of two arrays) fuses through the reference."""
    rng = np.random.default_rng(200 + seed)
    T, V = [(4, 3), (3, 4), (5, 3)][seed]
    lp = log_softmax(rng.normal(0, 1.5, (T, V)))
    exact = ctc_labelling_log_probs(lp)
    lm = CountingLM(V, seed)
    w = 0.6
    fused = {z: p + w * _lm_log_prob(lm, z) - 0.2 * len(z) for z, p in exact.items()}
    hyps = ctc_prefix_beam_search_utterance(lp, beam_size=10_000, lm=lm, lm_weight=w, insertion_bonus=-0.2)
    assert hyps[0].tokens == max(fused, key=fused.get)
    assert len(hyps) == len(exact)
    for h in hyps:
        assert h.score == pytest.approx(fused[h.tokens], rel=1e-10, abs=1e-12)
        assert h.lm_log_prob == pytest.approx(_lm_log_prob(lm, h.tokens), rel=1e-10)
    with pytest.raises(ValueError, match=r"^backend:"):
        ctc_prefix_beam_search_utterance(lp, lm=lm, lm_weight=w, backend="numba")


@pytest.mark.parametrize("backend", BACKENDS)
def test_most_probable_labelling_beats_best_path(backend):
    """Best path and most probable labelling differ: greedy is wrong, exhaustive beam search is right."""
    # V = 3 (blank, a, b), two frames. The best path is "a b" (.38 * .37 = .1406), but the labelling
    # (a) collects three paths: a a, a _, _ a = .1254 + .114 + .099 = .3384.
    lp = np.log(np.array([[0.3, 0.38, 0.32], [0.3, 0.33, 0.37]]))
    exact = ctc_labelling_log_probs(lp)
    best = max(exact, key=exact.get)
    greedy = tuple(ctc_greedy_decode(lp[None])[0])
    assert greedy == (1, 2)                               # best path "a b"
    assert best != greedy and exact[best] > exact[greedy]  # a single-token labelling has more mass
    assert ctc_prefix_beam_search_utterance(lp, beam_size=100, backend=backend)[0].tokens == best


@pytest.mark.parametrize("backend", BACKENDS)
def test_beam_one_equals_greedy_on_peaky_outputs(backend):
    """When one symbol holds > 1/2 of every frame's mass, beam 1 follows the best path, like greedy."""
    rng = np.random.default_rng(7)
    B, T, V = 6, 30, 6
    path = rng.integers(0, V, (B, T))
    logits = rng.normal(0, 0.3, (B, T, V))
    logits[np.arange(B)[:, None], np.arange(T)[None, :], path] += 4.0
    lp = log_softmax(logits)
    assert np.exp(lp.max(-1)).min() > 0.5
    lengths = np.array([30, 25, 1, 0, 17, 30])
    assert ctc_prefix_beam_search(lp, lengths, beam_size=1, backend=backend) == ctc_greedy_decode(lp, lengths)


@pytest.mark.parametrize("backend", BACKENDS)
def test_wider_beam_never_scores_worse(backend):
    rng = np.random.default_rng(8)
    for _ in range(6):
        lp = log_softmax(rng.normal(0, 1.0, (7, 4)))
        s = [ctc_prefix_beam_search_utterance(lp, beam_size=k, backend=backend)[0].ctc_log_prob
             for k in (1, 4, 10**6)]
        assert s[2] >= s[1] - 1e-12 and s[2] >= s[0] - 1e-12
        # and the greedy labelling is never more probable than the exhaustive search's result
        g = tuple(ctc_greedy_decode(lp[None])[0])
        all_hyps = {h.tokens: h.ctc_log_prob for h in ctc_prefix_beam_search_utterance(lp, beam_size=10**6)}
        assert all_hyps[g] <= s[2] + 1e-12


@pytest.mark.parametrize("backend", BACKENDS)
def test_token_threshold_keeps_result_on_peaky_input(backend):
    rng = np.random.default_rng(9)
    logits = rng.normal(0, 0.3, (40, 8))
    logits[np.arange(40), rng.integers(0, 8, 40)] += 8.0
    lp = log_softmax(logits)
    a = ctc_prefix_beam_search_utterance(lp, beam_size=8, backend=backend)[0]
    b = ctc_prefix_beam_search_utterance(lp, beam_size=8, token_threshold=-12.0, backend=backend)[0]
    assert a.tokens == b.tokens and a.ctc_log_prob == pytest.approx(b.ctc_log_prob, rel=1e-9)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lm_fusion_scores_and_preference(backend):
    # acoustics ambiguous between tokens 1 and 2 at the single frame; the LM prefers 2 after <s>
    lp = np.log(np.array([[0.02, 0.49, 0.49]]))
    lm = BigramLM.estimate([[2], [2], [2, 1]], vocab_size=3, k=0.5)
    plain = ctc_prefix_beam_search_utterance(lp, beam_size=4, backend=backend)
    fused = ctc_prefix_beam_search_utterance(lp, beam_size=4, lm=lm, lm_weight=1.0, insertion_bonus=0.3,
                                             backend=backend)
    assert fused[0].tokens == (2,)
    h = fused[0]
    want = h.ctc_log_prob + lm.score(None, 2) + lm.score(2, None) + 0.3
    assert h.score == pytest.approx(want, rel=1e-12)
    assert h.lm_log_prob == pytest.approx(lm.score(None, 2) + lm.score(2, None), rel=1e-12)
    assert {x.tokens for x in plain} == {x.tokens for x in fused}
    # a large insertion bonus favours emitting over the empty output; a large penalty the opposite
    lp2 = np.log(np.array([[0.6, 0.4, 1e-9]]))
    assert ctc_prefix_beam_search_utterance(lp2, insertion_bonus=2.0, backend=backend)[0].tokens == (1,)
    assert ctc_prefix_beam_search_utterance(lp2, insertion_bonus=-2.0, backend=backend)[0].tokens == ()


@pytest.mark.parametrize("backend", BACKENDS)
def test_nbest_lists(backend):
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1.5, (3, 9, 5))
    lengths = np.array([9, 4, 0])
    nb = ctc_prefix_beam_search(x, lengths, beam_size=6, nbest=4, backend=backend)
    best = ctc_prefix_beam_search(x, lengths, beam_size=6, backend=backend)
    assert [list(h[0].tokens) for h in nb] == best
    assert [len(h) for h in nb] == [4, 4, 1]            # an empty utterance has one hypothesis: ()
    assert nb[2][0].tokens == () and nb[2][0].score == 0.0
    for hyps in nb:
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True) and len({h.tokens for h in hyps}) == len(hyps)
    # nbest above beam_size gives the whole final beam, as the utterance function without nbest
    full = ctc_prefix_beam_search(x, lengths, beam_size=6, nbest=50, backend=backend)
    assert full[0] == ctc_prefix_beam_search_utterance(x[0], beam_size=6, backend=backend)
    assert len(full[0]) == 6


# ----------------------------------------------------------------------------------------------- parity


def _parity_cases(seed, n=6):
    """(log_probs, lengths, options): ragged lengths, NaN padding, ties, repeats, fusion, thresholds."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        V = int(rng.integers(2, 9))
        T = int(rng.integers(1, 16))
        kind = i % 3
        if kind == 0:                                     # with some -inf (log 0) entries
            x = rng.normal(0, rng.uniform(0.5, 4.0), (3, T, V))
            x[rng.random((3, T, V)) < 0.15] = -np.inf
            x[:, :, 0] = np.where(np.isinf(x).all(-1), 0.0, x[:, :, 0])
        elif kind == 1:                                   # quantised logits: many exactly equal scores
            x = rng.integers(0, 2, (3, T, V)).astype(np.float64) * math.log(2.0)
        else:                                             # peaky with long runs of one symbol (repeats)
            x = rng.normal(0, 0.3, (3, T, V))
            sym = np.repeat(rng.integers(0, V, (3, T // 3 + 1)), 3, axis=1)[:, :T]
            x[np.arange(3)[:, None], np.arange(T)[None, :], sym] += 5.0
        lengths = np.array([T, int(rng.integers(0, T + 1)), 1])
        for b in range(3):
            x[b, lengths[b]:] = np.nan                    # padding is never read
        beam = int(rng.integers(1, 10))
        yield x, lengths, dict(beam_size=beam, nbest=beam)
        yield x, lengths, dict(beam_size=beam, nbest=beam, insertion_bonus=float(rng.normal()),
                               token_threshold=-2.5)
        if V > 2:
            lm = _random_lm(rng, V)
            yield x, lengths, dict(beam_size=beam, nbest=beam, lm=lm, lm_weight=float(rng.uniform(0.1, 2)),
                                   insertion_bonus=float(rng.normal()))


def _assert_same(a, b):
    assert len(a) == len(b)
    for ha, hb in zip(a, b):
        assert [h.tokens for h in ha] == [h.tokens for h in hb]           # ids exactly, same order
        for x, y in zip(ha, hb):
            for f in ("score", "ctc_log_prob", "lm_log_prob"):
                assert getattr(x, f) == pytest.approx(getattr(y, f), rel=1e-10, abs=1e-12)


def run_parity(seed=0, n=6):
    """Kernel vs reference on every case; LM cases also run the reference through the step interface only."""
    for x, lengths, opts in _parity_cases(seed, n):
        ref = ctc_prefix_beam_search(x, lengths, backend="numpy", **opts)
        ker = ctc_prefix_beam_search(x, lengths, backend="numba", **opts)
        _assert_same(ref, ker)
        if "lm" in opts:
            generic = dict(opts, lm=StepOnly(opts["lm"]))
            _assert_same(ctc_prefix_beam_search(x, lengths, **generic), ker)   # None -> reference
        for h in ker:
            assert all(np.isfinite(v.score) for v in h)


@pytest.mark.parametrize("seed", range(4))
def test_kernel_parity(seed):
    run_parity(seed)


def test_kernel_parity_float32_and_logits():
    rng = np.random.default_rng(12)
    x = rng.normal(0, 2, (2, 12, 6)).astype(np.float32)
    opts = dict(beam_size=5, nbest=5)
    _assert_same(ctc_prefix_beam_search(x, backend="numpy", **opts),
                 ctc_prefix_beam_search(x, backend="numba", **opts))
    # logits and their log-softmax decode to the same ids
    assert ctc_prefix_beam_search(x.astype(np.float64), beam_size=100) == \
        ctc_prefix_beam_search(log_softmax(x.astype(np.float64)), beam_size=100)


def test_ties_break_by_token_sequence():
    """All-equal frames: many hypotheses tie exactly; both backends order them by token sequence."""
    x = np.zeros((1, 4, 3))
    for backend in BACKENDS:
        hyps = ctc_prefix_beam_search(x, beam_size=5, nbest=5, backend=backend)[0]
        assert [h.tokens for h in hyps] == [(1, 2), (2, 1), (1,), (2,), (1, 2, 1)]
        assert hyps[0].score == hyps[1].score and hyps[2].score == hyps[3].score


def test_parity_without_jit():
    """The kernel's Python body (NUMBA_DISABLE_JIT=1) agrees with the reference."""
    code = "from tests.decode.test_ctc_decode import run_parity\nrun_parity(seed=5, n=3)\n"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------------------------------------- validation


def test_accepts_logits_and_validates():
    rng = np.random.default_rng(10)
    logits = rng.normal(0, 2, (1, 5, 4))
    assert ctc_prefix_beam_search(logits, beam_size=100) == \
        ctc_prefix_beam_search(log_softmax(logits), beam_size=100)
    with pytest.raises(ValueError, match=r"^log_probs:"):
        ctc_prefix_beam_search(logits[0])
    with pytest.raises(TypeError, match=r"^log_probs:"):
        ctc_greedy_decode(np.zeros((1, 2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"^lengths:"):
        ctc_greedy_decode(logits, np.array([6]))
    with pytest.raises(ValueError, match=r"^blank:"):
        ctc_prefix_beam_search(logits, blank=4)
    with pytest.raises(ValueError, match=r"^beam_size:"):
        ctc_prefix_beam_search(logits, beam_size=0)
    with pytest.raises(ValueError, match=r"^nbest:"):
        ctc_prefix_beam_search(logits, nbest=0)
    with pytest.raises(ValueError, match=r"^lm:"):
        ctc_prefix_beam_search(logits, lm=BigramLM.estimate([[1]], vocab_size=3), lm_weight=1.0)
    with pytest.raises(TypeError, match=r"^lm:"):
        ctc_prefix_beam_search(logits, lm=object(), lm_weight=1.0)
    with pytest.raises(ValueError, match=r"^blank:"):
        ctc_prefix_beam_search(logits, blank=1, lm=BigramLM.estimate([[1]], vocab_size=4), lm_weight=1.0)
    with pytest.raises(ValueError, match=r"^lm_weight:"):
        ctc_prefix_beam_search(logits, lm_weight=float("nan"))
    with pytest.raises(ValueError, match=r"^insertion_bonus:"):
        ctc_prefix_beam_search(logits, insertion_bonus="1")
    with pytest.raises(ValueError, match=r"^token_threshold:"):
        ctc_prefix_beam_search(logits, token_threshold=float("nan"))
    with pytest.raises(ValueError, match=r"^backend:"):
        ctc_prefix_beam_search(logits, backend="torch")
    bad = logits.copy()
    bad[0, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^log_probs:"):
        ctc_prefix_beam_search(bad)
    assert ctc_prefix_beam_search(bad, np.array([2])) == ctc_prefix_beam_search(logits[:, :2])  # NaN past end
    bad[0, 2] = -np.inf                                   # a frame with no possible symbol
    with pytest.raises(ValueError, match=r"^log_probs:"):
        ctc_prefix_beam_search(bad, backend="numba")
    # lm_weight 0 ignores the LM entirely (even a generic one: the kernel runs)
    assert ctc_prefix_beam_search(logits, lm=CountingLM(4), lm_weight=0.0, backend="numba") == \
        ctc_prefix_beam_search(logits)


# ---------------------------------------------------------------------------------------------- oracles


def _peaky(rng, B, T, V):
    x = rng.normal(0, 1, (B, T, V))
    x[:, :, 0] += 5.0
    spikes = rng.random((B, T)) < 0.3
    x[np.nonzero(spikes) + (rng.integers(1, V, spikes.sum()),)] += 9.0
    return log_softmax(x)


@pytest.mark.oracle
def test_same_best_labelling_as_pyctcdecode():
    pyctcdecode = pytest.importorskip("pyctcdecode")
    rng = np.random.default_rng(13)
    B, T, V = 6, 30, 8
    lp = _peaky(rng, B, T, V)
    labels = [""] + list("abcdefg")
    dec = pyctcdecode.build_ctcdecoder(labels)
    theirs = [[labels.index(c) for c in dec.decode_beams(lp[b].astype(np.float32), beam_width=16,
                                                          beam_prune_logp=-1e9, token_min_logp=-1e9)[0][0]]
              for b in range(B)]
    assert ctc_prefix_beam_search(lp, beam_size=16) == theirs


@pytest.mark.oracle
def test_same_best_labelling_as_flashlight_text():
    """flashlight-text's lexicon-free CTC decoder (torchaudio's ctc_decoder backend), summing merged paths."""
    fl = pytest.importorskip("flashlight.lib.text.decoder")
    rng = np.random.default_rng(14)
    B, T, V = 6, 30, 8
    lp = _peaky(rng, B, T, V).astype(np.float32)
    opt = fl.LexiconFreeDecoderOptions(beam_size=16, beam_size_token=V, beam_threshold=1e9, lm_weight=0.0,
                                       sil_score=0.0, log_add=True, criterion_type=fl.CriterionType.CTC)
    theirs = []
    for b in range(B):
        em = np.ascontiguousarray(lp[b])
        path = fl.LexiconFreeDecoder(opt, fl.ZeroLM(), 0, 0, []).decode(em.ctypes.data, T, V)[0].tokens
        theirs.append(list(ctc_collapse(path)))
    assert ctc_prefix_beam_search(lp, beam_size=16) == theirs
