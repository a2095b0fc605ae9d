"""The context window of decode/lm_window.py [lm:window]: a gpt_lm fused past its positions.

Within the limit the window IS the LM's own step (same numbers, same cache); beyond it every step equals a
fresh full forward (``GPTLM.logits``, no key/value cache) over <sos> + the last W - 1 tokens; batches mixing
both kinds of rows equal their rows one by one; the input state is never written; ``score`` and n-best
rescoring follow the same rule; every decoder (CTC, transducer modified/Graves, attention beam and batched
greedy) fuses a 2-position gpt_lm past its limit (without the window each raised "no position left");
LMs of unbounded context are left alone."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import Vocabulary
from scratchasr.decode.attention import attention_beam_search
from scratchasr.decode.lm import BigramLM
from scratchasr.decode.lm_window import ContextWindowLM, WindowState, context_positions, with_context_window
from scratchasr.decode.rescore import sentence_log_probs
from scratchasr.decode.vocab_map import VocabularyMappedLM
from scratchasr.models.prompt_tuning import PromptTunedLM
from scratchasr.testing.reference import log_softmax


def _gpt(V=5, max_len=4, seed=0):
    lm = models.build("gpt_lm", input_dim=1, vocab_size=V, dtype=np.float64, seed=seed, hidden=8,
                      num_layers=2, heads=2, max_len=max_len)
    for p in lm.parameters().values():
        p[...] *= 8.0                         # GPT-2's 0.02 init is nearly uniform: make contexts matter
    lm.eval()
    return lm


def _forward_log_probs(lm, context):
    """log P(. | context) by the full forward (no cache), context = the LM's inputs from position 0."""
    logits = lm.logits(np.array([context], np.int64), np.array([len(context)]))
    return log_softmax(np.asarray(logits[0, -1], np.float64))


def _window(history, W):
    """The LM's inputs for the next prediction after ``history`` (<sos> first) [lm:window]."""
    return history if len(history) <= W else [history[0]] + history[-(W - 1):]


def _window_sentence_log_prob(lm, seq, W):
    """log P(seq <eos>) with every prediction a fresh forward over its window (the reference)."""
    hist, total = [0], 0.0
    for nxt in list(seq) + [0]:
        total += _forward_log_probs(lm, _window(hist, W))[nxt]
        hist.append(nxt)
    return total


def _leaves(state):
    if isinstance(state, np.ndarray):
        return [state]
    return [a for s in state for a in _leaves(s)]


def test_within_the_limit_the_window_is_the_lm_itself(rng):
    lm = _gpt(max_len=6)
    win = ContextWindowLM(lm)
    assert win.positions == 6
    tokens = np.stack([np.zeros(3, np.int64)] + [rng.integers(1, 5, 3) for _ in range(5)], axis=1)   # (3, 6)
    s_plain, s_win = lm.init_state(3), win.init_state(3)
    for j in range(6):
        lp, s_plain = lm.step(s_plain, tokens[:, j])
        lp_w, s_win = win.step(s_win, tokens[:, j])
        np.testing.assert_array_equal(lp_w, lp)
        for a, b in zip(_leaves(s_win.inner), _leaves(s_plain)):
            np.testing.assert_array_equal(a, b)
    assert win.window_steps == 0
    np.testing.assert_array_equal(s_win.context, tokens)


def test_beyond_the_limit_each_step_is_a_fresh_forward_over_the_window(rng):
    W = 4
    lm = _gpt(max_len=W)
    win = ContextWindowLM(lm)
    seq = [0] + [int(t) for t in rng.integers(1, 5, 9)]
    state = win.init_state(1)
    for j, tok in enumerate(seq):
        lp, state = win.step(state, np.array([tok]))
        ctx = _window(seq[: j + 1], W)
        np.testing.assert_allclose(lp[0], _forward_log_probs(lm, ctx), rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(state.context[0, : len(ctx)], ctx)
        # the cache left behind is the one a fresh state gets from the window's tokens
        fresh = lm.init_state(1)
        for t in ctx:
            _, fresh = lm.step(fresh, np.array([t]))
        for a, b in zip(_leaves(state.inner), _leaves(fresh)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert win.window_steps == len(seq) - W
    with pytest.raises(ValueError, match=r"^state:"):          # the LM alone has no position left
        s = lm.init_state(1)
        for tok in seq[: W + 1]:
            _, s = lm.step(s, np.array([tok]))


def _stack(states):
    first = states[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(states, axis=0)
    return type(first)(*(_stack([s[i] for s in states]) for i in range(len(first))))


def test_a_batch_mixing_full_and_free_rows_equals_its_rows_one_by_one(rng):
    W = 3
    win = ContextWindowLM(_gpt(max_len=W))
    rows = []
    for n in (1, 3, 5):                                        # tokens fed: free, just full, sliding
        st = win.init_state(1)
        for tok in [0] + [int(t) for t in rng.integers(1, 5, n - 1)]:
            _, st = win.step(st, np.array([tok]))
        rows.append(st)
    batch = _stack(rows)
    before = [a.copy() for a in _leaves(batch)]
    nxt = np.array([2, 3, 4])
    lp, new = win.step(batch, nxt)
    for a, b in zip(_leaves(batch), before):                  # the input state is not written
        np.testing.assert_array_equal(a, b)
    for r, st in enumerate(rows):
        lp_r, new_r = win.step(st, nxt[r: r + 1])
        np.testing.assert_allclose(lp[r], lp_r[0], rtol=1e-12, atol=1e-14)
        for a, b in zip(_leaves(new), _leaves(new_r)):
            np.testing.assert_allclose(a[r], b[0], rtol=1e-12, atol=1e-14)
    assert np.all(np.isfinite(lp))


def test_score_and_rescoring_follow_the_window(rng):
    W = 4
    lm = _gpt(max_len=W)
    seqs = [[1, 2], [3, 1, 2], [int(t) for t in rng.integers(1, 5, 7)], [], [4] * 9]
    got = ContextWindowLM(lm).score(make_batch(None, seqs))
    for s, g in zip(seqs, got):
        np.testing.assert_allclose(g, _window_sentence_log_prob(lm, s, W), rtol=1e-10)
    short = make_batch(None, seqs[:2])                         # fits: the LM's own score, exactly
    np.testing.assert_array_equal(ContextWindowLM(lm).score(short), lm.score(short))
    np.testing.assert_allclose(sentence_log_probs(lm, seqs), got, rtol=1e-12)  # rescoring wraps too
    with pytest.raises(ValueError, match=r"^batch.targets:"):  # the LM alone refuses them
        lm.score(make_batch(None, seqs))


def test_attention_fusion_past_the_positions_scores_like_the_reference(rng):
    """A gpt_lm with 2 positions fused into the attention beam: hypotheses of 3 labels, no error, and the
    fused LM score of each equals the reference window score (and rescoring's)."""
    V = 4
    lm = _gpt(V=V, max_len=2, seed=3)
    dec = models.build("seq2seq", input_dim=3, vocab_size=V, dtype=np.float64, seed=0, hidden=6,
                       num_layers=1, embed_dim=4, stack=1)
    state0 = dec.init_state(1, memory=dec.encode(make_batch([rng.standard_normal((6, 3))], [[1]])))
    hyps = attention_beam_search(dec, state0, beam_size=V * (V - 1) ** 3, max_len=3, lm=lm, lm_weight=0.8,
                                 length_reward=20.0, nbest=50)   # long ones win
    assert max(len(h.tokens) for h in hyps) == 3
    lm_lp = sentence_log_probs(lm, [h.tokens for h in hyps])
    for h, r in zip(hyps, lm_lp):
        assert np.isfinite(h.score)
        np.testing.assert_allclose(h.lm_log_prob, _window_sentence_log_prob(lm, h.tokens, 2), rtol=1e-9)
        np.testing.assert_allclose(h.lm_log_prob, r, rtol=1e-9)


def test_which_lms_get_a_window():
    gpt = _gpt(max_len=5)
    win = with_context_window(gpt)
    assert isinstance(win, ContextWindowLM) and win.positions == 5 and win.vocab_size == 5
    assert with_context_window(win) is win
    lstm = models.build("lstm_lm", input_dim=1, vocab_size=5, dtype=np.float64, seed=0, hidden=4,
                        num_layers=1)
    bigram = BigramLM.estimate([[1, 2]], vocab_size=5)
    for lm in (None, lstm, bigram):
        assert with_context_window(lm) is lm
    assert context_positions(lstm) is None and context_positions(bigram) is None
    vocab = Vocabulary(["<blank>", "a", "b", "c", "d"])
    mapped = VocabularyMappedLM(gpt, vocab, Vocabulary(["<blank>", "c", "a"]))
    assert with_context_window(mapped).positions == 5
    assert context_positions(PromptTunedLM(_gpt(max_len=6), 2)) == 4    # the prompt holds 2 slots


def test_bad_arguments_are_named():
    lstm = models.build("lstm_lm", input_dim=1, vocab_size=5, dtype=np.float64, seed=0, hidden=4,
                        num_layers=1)
    with pytest.raises(ValueError, match=r"^lm:"):
        ContextWindowLM(lstm)
    with pytest.raises(TypeError, match=r"^lm:"):
        ContextWindowLM(object())
    with pytest.raises(ValueError, match=r"^positions:"):
        ContextWindowLM(_gpt(), positions=1)
    win = ContextWindowLM(_gpt())
    with pytest.raises(TypeError, match=r"^state:"):
        win.step(_gpt().init_state(1), np.zeros(1, np.int64))
    with pytest.raises(ValueError, match=r"^tokens:"):
        win.step(win.init_state(2), np.zeros(3, np.int64))
    assert isinstance(win.init_state(0), WindowState)


@pytest.mark.parametrize("name, method, options", [
    ("ctc_blstm", "beam", dict(insertion_bonus=6.0)),
    ("transducer", "beam", dict(length_reward=6.0)),
    ("transducer", "graves", dict(length_reward=6.0, max_symbols_per_frame=2)),
    ("las", "beam", dict(length_reward=6.0, ctc_weight=0.0)),
    ("seq2seq", "greedy", {}),
])
def test_every_decoder_fuses_a_gpt_lm_past_its_positions(rng, name, method, options):
    """model.decode with a 2-position gpt_lm: hypotheses of several labels, no error, nothing NaN."""
    V = 4
    opts = dict(ctc_blstm=dict(hidden=4, num_layers=1), transducer=dict(hidden=4, num_layers=1, pred_hidden=3,
                joint_dim=5), las=dict(hidden=4, num_layers=2, pyramid=1, embed_dim=4, att_dim=5,
                conv_channels=2, conv_width=3), seq2seq=dict(hidden=4, num_layers=1, embed_dim=4, stack=1))
    model = models.build(name, input_dim=3, vocab_size=V, dtype=np.float64, seed=0, **opts[name])
    model.eval()
    feats = [rng.standard_normal((n, 3)) for n in (9, 6)]
    lm = _gpt(V=V, max_len=2, seed=1)
    if name == "seq2seq":                                     # batched greedy: rows of unequal lengths
        lm.tok.params["W"][0] *= -1.0                        # ... and an LM that dislikes <eos>
    hyps = model.decode(make_batch(feats, [[1], [1]]), method=method, beam_size=3, lm=lm, lm_weight=1.0,
                        **options)
    assert max(len(h) for h in hyps) >= 3                    # 2 labels past the LM's last position
    assert all(0 < t < V for h in hyps for t in h)
