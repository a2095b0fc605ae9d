"""Every beam search that takes ``lm``, fused with the registered language models, against brute force.

For the CTC prefix beam search, the transducer's modified and Graves beam searches and the attention beam
search: with a beam that holds every hypothesis, the best returned hypothesis is the arg-max over every
label sequence of

    score(y) = log P_am(y | x) + w log P_lm(y <eos>) + r |y|        [lm:fusion]

(the attention search counts ``|y| + 1``, its <eos> included), with ``P_lm`` a tiny ``lstm_lm`` or
``gpt_lm`` built through the model contract with fixed (seeded) weights, and the scores agree with the
brute-force ones. The LM's reference score is its own ``score(batch)`` (a full forward, not the step
interface the searches use); the ``gpt_lm`` with only 2 positions is scored past them by fresh full
forwards over <sos> + the last label [lm:window], so the windowed fusion is checked end to end. The
acoustic references are scratchasr.testing's enumerations (every CTC path, every transducer alignment)
and the attention decoder's own chain of steps.
"""

import itertools

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.attention import attention_beam_search
from scratchasr.decode.ctc import ctc_prefix_beam_search_utterance
from scratchasr.decode.transducer import graves_beam_search, modified_beam_search
from scratchasr.testing.reference import ctc_labelling_log_probs, ctc_prefix_probs, log_softmax
from scratchasr.testing.transducer_reference import label_sequences, one_symbol_log_prob, sequence_log_prob

LMS = ["lstm_lm", "gpt_lm", "gpt_lm_2_positions"]


def _lm(kind, V, seed=0):
    if kind == "lstm_lm":
        lm = models.build("lstm_lm", input_dim=1, vocab_size=V, dtype=np.float64, seed=seed, hidden=5,
                          num_layers=1)
        scale = 2.0
    else:
        lm = models.build("gpt_lm", input_dim=1, vocab_size=V, dtype=np.float64, seed=seed, hidden=8,
                          num_layers=1, heads=2, max_len=2 if kind.endswith("2_positions") else 16)
        scale = 8.0                                      # GPT-2's 0.02 init is nearly uniform
    for p in lm.parameters().values():
        p[...] *= scale
    lm.eval()
    return lm


class _Reference:
    """log P_lm(y <eos>) by the LM's full forward; past a gpt_lm's positions, every prediction from a
    fresh forward over <sos> + the last max_len - 1 labels [lm:window]."""

    def __init__(self, lm):
        self.lm, self.cache = lm, {}
        self.W = getattr(lm, "max_len", None)

    def _next(self, history):
        ctx = history if len(history) <= self.W else [0] + history[-(self.W - 1):]
        logits = self.lm.logits(np.array([ctx], np.int64), np.array([len(ctx)]))
        return log_softmax(np.asarray(logits[0, -1], np.float64))

    def __call__(self, y):
        y = tuple(int(t) for t in y)
        if y not in self.cache:
            if self.W is None or len(y) <= self.W - 1:
                self.cache[y] = float(self.lm.score(make_batch(None, [list(y)]))[0])     # [lm:chain]
            else:
                hist = [0] + list(y)
                self.cache[y] = float(sum(self._next(hist[: s + 1])[nxt]
                                          for s, nxt in enumerate(list(y) + [0])))
        return self.cache[y]


# ------------------------------------------------------------------------------------------------- CTC
@pytest.mark.parametrize("kind", LMS)
def test_ctc_prefix_beam_search_with_a_contract_lm_is_the_brute_force_argmax(kind):
    rng = np.random.default_rng(11)
    T, V = 4, 3
    lp = log_softmax(rng.normal(0, 1.5, (T, V)))
    lm = _lm(kind, V, seed=1)
    ref = _Reference(lm)
    w, bonus = 0.9, 0.6
    exact = ctc_labelling_log_probs(lp)                  # every labelling of every CTC path
    fused = {z: p + w * ref(z) + bonus * len(z) for z, p in exact.items()}
    hyps = ctc_prefix_beam_search_utterance(lp, beam_size=10_000, lm=lm, lm_weight=w, insertion_bonus=bonus)
    assert len(hyps) == len(exact)
    assert hyps[0].tokens == max(fused, key=fused.get)
    for h in hyps:
        np.testing.assert_allclose(h.score, fused[h.tokens], rtol=1e-9)
        np.testing.assert_allclose(h.lm_log_prob, ref(h.tokens), rtol=1e-9)


# ------------------------------------------------------------------------------------------ transducer
def _transducer(V, seed, blank_bias=0.0, out_scale=1.0):
    m = models.build("transducer", input_dim=3, vocab_size=V, dtype=np.float64, seed=seed, hidden=4,
                     num_layers=1, pred_hidden=3, joint_dim=5)
    for p in m.parameters().values():
        p[...] *= 2.0
    m.joint_out.params["W"][...] *= out_scale
    m.joint_out.params["b"][0] += blank_bias
    m.eval()
    return m


@pytest.mark.parametrize("kind", LMS)
def test_modified_beam_search_with_a_contract_lm_is_the_brute_force_argmax(kind):
    V, T, seed = 3, 4, 4
    model = _transducer(V, seed)
    f, _ = model.encode(np.random.default_rng(seed).standard_normal((1, T, 3)), np.array([T]))
    f = f[0]
    lm = _lm(kind, V, seed=2)
    ref = _Reference(lm)
    w, r = 0.7, 0.5
    exact = {y: one_symbol_log_prob(model, f, y) for y in label_sequences(V, T)}   # the path model's P_1
    fused = {y: s + w * ref(y) + r * len(y) for y, s in exact.items()}
    hyps = modified_beam_search(model, f, beam_size=1000, lm=lm, lm_weight=w, length_reward=r, nbest=1000)
    assert len(hyps) == len(exact)
    assert hyps[0].tokens == max(fused, key=fused.get)
    for h in hyps:
        np.testing.assert_allclose(h.score, fused[h.tokens], rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(h.log_lm, ref(h.tokens), rtol=1e-9)


@pytest.mark.parametrize("kind", LMS)
def test_graves_beam_search_with_a_contract_lm_is_the_brute_force_argmax(kind):
    V, T, L, seed = 3, 3, 3, 5
    model = _transducer(V, seed, blank_bias=2.0, out_scale=3.0)
    f, _ = model.encode(np.random.default_rng(seed).standard_normal((1, T, 3)), np.array([T]))
    f = f[0]
    lm = _lm(kind, V, seed=3)
    ref = _Reference(lm)
    w, r = 0.7, -0.3
    exact = {y: sequence_log_prob(model, f, y) for y in label_sequences(V, L)}    # all alignments
    fused = {y: s + w * ref(y) + r * len(y) for y, s in exact.items()}
    best = max(fused, key=fused.get)
    outside = 1.0 - np.exp(np.logaddexp.reduce(list(exact.values())))            # mass of every |y| > L
    # certificate: the LM and reward terms are <= 0, so no longer y can beat the best enumerated
    assert fused[best] > np.log(max(outside, 1e-300)), (fused[best], outside)
    hyps = graves_beam_search(model, f, beam_size=10_000, max_symbols_per_frame=L, lm=lm, lm_weight=w,
                              length_reward=r, nbest=10_000)
    assert hyps[0].tokens == best
    short = [h for h in hyps if len(h.tokens) <= L]
    assert len(short) == len(exact)                      # nothing pruned
    for h in short:
        np.testing.assert_allclose(h.score, fused[h.tokens], rtol=1e-9)
        np.testing.assert_allclose(h.log_lm, ref(h.tokens), rtol=1e-9)


# ------------------------------------------------------------------------------------------- attention
def _decoder(V, seed=0):
    m = models.build("seq2seq", input_dim=3, vocab_size=V, dtype=np.float64, seed=seed, hidden=6,
                     num_layers=1, embed_dim=4, stack=1)
    for p in m.parameters().values():
        p[...] *= 3.0
    return m


def _att_log_prob(model, state, seq):
    total, tokens = 0.0, np.zeros(1, np.int64)
    for c in list(seq) + [0]:
        lp, state = model.step(state, tokens)
        total += lp[0, c]
        tokens = np.array([c])
    return total


@pytest.mark.parametrize("kind, ctc_weight", [(k, 0.0) for k in LMS] + [("gpt_lm_2_positions", 0.3)])
def test_attention_beam_search_with_a_contract_lm_is_the_brute_force_argmax(kind, ctc_weight):
    rng = np.random.default_rng(7)
    V, N = 4, 3
    model = _decoder(V)
    state0 = model.init_state(1, memory=model.encode(make_batch([rng.standard_normal((6, 3))], [[1]])))
    lm = _lm(kind, V, seed=4)
    ref = _Reference(lm)
    w, r = 0.8, 2.0
    ctc = log_softmax(2 * rng.standard_normal((4, V))) if ctc_weight else None
    full = ctc_prefix_probs(ctc)[1] if ctc_weight else {}

    def score(seq):
        s = (1 - ctc_weight) * _att_log_prob(model, state0, seq) + w * ref(seq) + r * (len(seq) + 1)
        if ctc_weight:
            p = full.get(tuple(seq), 0.0)
            s += ctc_weight * (np.log(p) if p > 0 else -np.inf)
        return s

    seqs = [s for n in range(N + 1) for s in itertools.product(range(1, V), repeat=n)]
    scores = {s: score(s) for s in seqs}
    best = max(seqs, key=scores.get)
    hyps = attention_beam_search(model, state0, beam_size=V * (V - 1) ** N, max_len=N, lm=lm, lm_weight=w,
                                 ctc_log_probs=ctc, ctc_weight=ctc_weight, length_reward=r, nbest=len(seqs))
    assert hyps[0].tokens == best
    assert max(len(h.tokens) for h in hyps) == N      # past the 2-position gpt_lm's limit too
    for h in hyps:                                    # every finished hypothesis, not only the best
        np.testing.assert_allclose(h.score, scores[h.tokens], rtol=1e-9)
        np.testing.assert_allclose(h.lm_log_prob, ref(h.tokens), rtol=1e-9)
