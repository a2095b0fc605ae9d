"""Language models (lstm_lm, gpt_lm) beyond the contract test: the step interface equals the full
forward (the GPT's key/value cache included), score = -loss = the chained step log-probabilities,
decode = the most probable continuation, GELU's gradient, perplexity, option errors, and both LMs
fused into the CTC prefix beam search and used for n-best rescoring."""

import math

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.ctc import Hypothesis, ctc_prefix_beam_search
from scratchasr.decode.lm import BigramLM
from scratchasr.decode.rescore import rescore_nbest, sentence_log_probs
from scratchasr.models._lm import frame_sentences
from scratchasr.ops.gelu import gelu_backward, gelu_forward
from scratchasr.testing import gradcheck

V = 7
LMS = ("lstm_lm", "gpt_lm")
TINY = dict(lstm_lm=dict(hidden=8, num_layers=2), gpt_lm=dict(hidden=8, num_layers=2, heads=2, max_len=12))


def _lm(name, dtype=np.float64, seed=0, scale=3.0):
    m = models.build(name, input_dim=None, vocab_size=V, dtype=dtype, seed=seed, **TINY[name])
    for p in m.parameters().values():       # sharper distributions than the init: differences show
        p[...] *= scale
    m.eval()
    return m


SENTS = [[1, 2, 2, 5], [3], [], [6, 1, 4, 4, 4, 2, 3]]


def _step_log_probs(lm, seqs):
    """Row-by-row log-probabilities of every position (B, S+1, V) through step, all rows in one batch."""
    inputs, _, lengths = frame_sentences(*make_batch(None, seqs)[2:4])
    state = lm.init_state(len(seqs))
    out = []
    for t in range(inputs.shape[1]):
        lp, state = lm.step(state, inputs[:, t])
        out.append(lp)
    return np.stack(out, axis=1), lengths


@pytest.mark.parametrize("name", LMS)
def test_step_equals_the_full_forward(name):
    lm = _lm(name)
    batch = make_batch(None, SENTS)
    inputs, _, lengths = frame_sentences(batch.targets, batch.target_lengths)
    logits = lm.logits(inputs, lengths)
    full = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    stepped, _ = _step_log_probs(lm, SENTS)
    for b, L in enumerate(lengths):
        np.testing.assert_allclose(stepped[b, :L], full[b, :L], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", LMS)
def test_score_is_minus_the_loss_and_the_chained_steps(name):
    lm = _lm(name)
    batch = make_batch(None, SENTS)
    score = lm.score(batch)
    loss, stats = lm.forward_loss(batch)
    np.testing.assert_allclose(score, -loss, rtol=1e-12)
    assert stats["tokens"] == sum(len(s) + 1 for s in SENTS)
    stepped, lengths = _step_log_probs(lm, SENTS)
    _, outputs, _ = frame_sentences(batch.targets, batch.target_lengths)
    chained = [sum(stepped[b, t, outputs[b, t]] for t in range(lengths[b])) for b in range(len(SENTS))]
    np.testing.assert_allclose(score, chained, rtol=1e-10)
    # one step is a distribution over the V - 1 labels and <eos>
    lp, _ = lm.step(lm.init_state(1), np.array([0]))
    assert abs(np.exp(lp).sum() - 1) < 1e-12
    ppl = lm.perplexity(SENTS, batch_size=3)
    assert math.isclose(ppl, math.exp(-score.sum() / stats["tokens"]), rel_tol=1e-12)


@pytest.mark.parametrize("name", LMS)
def test_padding_and_batch_composition_do_not_change_scores(name):
    lm = _lm(name)
    alone = [lm.score(make_batch(None, [s]))[0] for s in SENTS]
    batch = make_batch(None, SENTS)
    noisy = batch._replace(targets=np.where(batch.targets == 0, 99, batch.targets))  # junk in the padding
    np.testing.assert_allclose(lm.score(noisy), alone, rtol=1e-12)


@pytest.mark.parametrize("name", LMS)
def test_state_rows_are_independent_and_reorderable(name):
    lm = _lm(name)
    state = lm.init_state(3)
    for toks in ([0, 0, 0], [1, 2, 3], [4, 4, 5]):
        lp, state = lm.step(state, np.array(toks))
    idx = np.array([2, 0])
    lp_g, _ = lm.step(models.gather_state(state, idx), np.array([6, 1]))
    lp_a, _ = lm.step(state, np.array([1, 1, 6]))
    np.testing.assert_allclose(lp_g, lp_a[[2, 0]], rtol=1e-12)
    before = [a.copy() for a in state]
    lm.step(state, np.array([1, 2, 3]))
    for a, b in zip(before, state):          # step never writes into the state it was given
        np.testing.assert_array_equal(a, b)


def _brute_force_best(lm, prompt, max_tokens):
    """The most probable continuation among every sequence of up to max_tokens tokens (tiny V), scored
    in one batch (log P(prompt + continuation <eos>); the prompt's own probability is a common factor)."""
    import itertools
    conts = [c for n in range(max_tokens + 1) for c in itertools.product(range(1, V), repeat=n)]
    scores = lm.score(make_batch(None, [list(prompt) + list(c) for c in conts]))
    best = min(range(len(conts)), key=lambda i: (-scores[i], conts[i]))
    return list(conts[best])


@pytest.mark.parametrize("name", LMS)
def test_decode_greedy_and_beam(name):
    lm = _lm(name, seed=1)
    batch = make_batch(None, [[2, 3], []])
    greedy = lm.decode(batch, max_tokens=4)
    for prompt, cont in zip([[2, 3], []], greedy):           # greedy = argmax at every step
        state, hist = lm.init_state(1), [0] + prompt
        for t in hist:
            lp, state = lm.step(state, np.array([t]))
        for c in cont:
            assert int(np.argmax(lp[0])) == c
            lp, state = lm.step(state, np.array([c]))
        if len(cont) < 4:
            assert int(np.argmax(lp[0])) == 0                # stopped at <eos>
    wide = lm.decode(batch, method="beam", beam_size=V ** 3, max_tokens=3)
    for prompt, cont in zip([[2, 3], []], wide):             # exhaustive beam = brute force
        assert cont == _brute_force_best(lm, prompt, 3)
    narrow = lm.decode(batch, method="beam", beam_size=2, max_tokens=3)
    for prompt, a, b in zip([[2, 3], []], narrow, wide):
        sa, sb = (lm.score(make_batch(None, [prompt + c]))[0] for c in (a, b))
        assert sa <= sb + 1e-12


def test_gelu_gradient_and_values():
    x = np.linspace(-4, 4, 41).reshape(1, 41) + 0.013
    y, _ = gelu_forward(x)
    np.testing.assert_allclose(y[0, [0, 20, 40]],
                               0.5 * x[0, [0, 20, 40]] * (1 + np.tanh(np.sqrt(2 / np.pi) * (
                                   x[0, [0, 20, 40]] + 0.044715 * x[0, [0, 20, 40]] ** 3))), rtol=1e-15)
    assert gradcheck(gelu_forward, gelu_backward, [x], rtol=1e-7).ok
    with pytest.raises(ValueError, match=r"^dy:"):
        gelu_backward(np.ones((2, 2)), gelu_forward(x)[1])


@pytest.mark.oracle
def test_gelu_matches_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((5, 7)) * 3
    ref = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    np.testing.assert_allclose(gelu_forward(x)[0], ref, rtol=1e-12, atol=1e-14)


def test_options_are_checked_by_name():
    with pytest.raises(ValueError, match=r"^heads:"):
        models.build("gpt_lm", input_dim=None, vocab_size=V, hidden=6, heads=4)
    with pytest.raises(ValueError, match=r"^max_len:"):
        models.build("gpt_lm", input_dim=None, vocab_size=V, max_len=1)
    with pytest.raises(ValueError, match=r"^dropout:"):
        models.build("lstm_lm", input_dim=None, vocab_size=V, dropout=1.0)
    gpt = _lm("gpt_lm")
    with pytest.raises(ValueError, match=r"^batch\.targets:.*max_len"):
        gpt.forward_loss(make_batch(None, [[1] * 12]))
    gpt.forward_loss(make_batch(None, [[1] * 11]))           # 11 tokens + <eos> fill max_len = 12
    state = gpt.init_state(1)
    for _ in range(12):
        _, state = gpt.step(state, np.array([1]))
    with pytest.raises(ValueError, match=r"^state:"):
        gpt.step(state, np.array([1]))
    for name in LMS:
        lm = _lm(name)
        with pytest.raises(ValueError, match=r"^tokens:"):
            lm.step(lm.init_state(2), np.array([0, V]))
        with pytest.raises(TypeError, match=r"^state:"):
            lm.step((np.zeros(2),), np.array([0, 0]))
        with pytest.raises(ValueError, match=r"^max_tokens:"):
            lm.decode(make_batch(None, [[1]]), max_tokens=-1)


# ----------------------------------------------------------------------------- fusion and rescoring


def _ctc_model():
    m = models.build("ctc_blstm", input_dim=3, vocab_size=V, dtype=np.float64, seed=0, hidden=6, num_layers=1)
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((9, 3)), rng.standard_normal((6, 3))]
    return m, make_batch(feats, [[1, 2], [3]])


@pytest.mark.parametrize("name", LMS)
def test_ctc_model_fuses_a_neural_lm(name):
    am, batch = _ctc_model()
    lm = _lm(name)
    plain = am.decode(batch, method="beam", beam_size=4)
    assert plain == am.decode(batch, method="beam", beam_size=4, lm=lm, lm_weight=0.0)
    fused = am.decode(batch, method="beam", beam_size=4, lm=lm, lm_weight=2.0)
    assert all(all(1 <= t < V for t in h) for h in fused)
    # fusion = the reference search with the LM scores folded in: check the top hypothesis' bookkeeping
    lp, lens = am.log_probs(batch)
    hyps = ctc_prefix_beam_search(lp, lens, beam_size=4, lm=lm, lm_weight=2.0, nbest=4)
    for b, h in enumerate(hyps):
        assert list(h[0].tokens) == fused[b]
        lm_lp = sentence_log_probs(lm, [t.tokens for t in h])
        np.testing.assert_allclose([t.lm_log_prob for t in h], lm_lp, rtol=1e-9)
        np.testing.assert_allclose([t.score for t in h], [t.ctc_log_prob + 2.0 * t.lm_log_prob for t in h],
                                   rtol=1e-9)
    # a huge weight: the LM decides between hypotheses the acoustic model leaves in the beam
    big = ctc_prefix_beam_search(lp, lens, beam_size=4, lm=lm, lm_weight=50.0, nbest=4)
    for h in big:
        assert h[0].lm_log_prob == max(t.lm_log_prob for t in h)


def test_rescoring_reranks_by_the_combined_score():
    lm = _lm("gpt_lm")
    hyps = [[Hypothesis((1, 2), -1.0, -1.0), Hypothesis((3,), -1.5, -1.5), Hypothesis((), -9.0, -9.0)],
            [Hypothesis((4, 4, 4), -2.0, -2.0)], []]
    lm_lp = sentence_log_probs(lm, [(1, 2), (3,), ()])
    out = rescore_nbest(hyps, lm, lm_weight=0.7, insertion_bonus=0.2)
    assert [len(o) for o in out] == [3, 1, 0]
    want = sorted(zip([-1.0, -1.5, -9.0] + 0.7 * lm_lp + 0.2 * np.array([2, 1, 0]), [(1, 2), (3,), ()]),
                  key=lambda z: (-z[0], z[1]))
    assert [h.tokens for h in out[0]] == [w[1] for w in want]
    np.testing.assert_allclose([h.score for h in out[0]], [w[0] for w in want], rtol=1e-12)
    assert rescore_nbest(hyps, lm, lm_weight=0.0)[0][0].tokens == (1, 2)     # weight 0: the first pass
    with pytest.raises(ValueError, match=r"^lm_weight:"):
        rescore_nbest(hyps, lm, lm_weight=float("nan"))


def test_step_interface_scoring_equals_score_for_a_bigram_and_a_neural_lm():
    seqs = [[1, 2, 2, 5], [3], []]
    bigram = BigramLM.estimate([[1, 2, 3], [2, 2, 5, 6], [4]], V, k=0.5)
    np.testing.assert_allclose(sentence_log_probs(bigram, seqs), [bigram.sequence_log_prob(s) for s in seqs],
                               rtol=1e-12)
    lm = _lm("lstm_lm")

    class StepOnly:          # the same LM seen only through its step interface
        init_state, step = lm.init_state, lm.step
    np.testing.assert_allclose(sentence_log_probs(StepOnly(), seqs), lm.score(make_batch(None, seqs)),
                               rtol=1e-10)
