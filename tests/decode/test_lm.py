"""The add-k bigram LM: probabilities normalise, hand-computed values, serialisation, validation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from scratchasr.decode import BigramLM


def test_rows_normalise_and_blank_excluded():
    lm = BigramLM.estimate([[1, 2, 3], [3, 3], [2]], vocab_size=5, k=0.5, exclude=(0,))
    P = np.exp(lm.log_probs)
    rows = [r for r in range(6) if r != 0]            # every history except the blank
    assert np.allclose(P[rows].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(P[:, 0] == 0) and np.all(P[0] == 0)  # the blank is neither predicted nor a history


def test_hand_computed_value():
    # V=4 (blank 0), k=1; predictable symbols W = {1, 2, 3, </s>}, |W| = 4
    lm = BigramLM.estimate([[1, 2], [1, 1]], vocab_size=4, k=1.0)
    # history 1 is followed by: 2 once, 1 once, </s> once -> n(1) = 3
    assert lm.score(1, 2) == pytest.approx(math.log((1 + 1) / (3 + 4)))
    assert lm.score(1, 3) == pytest.approx(math.log((0 + 1) / (3 + 4)))
    assert lm.score(None, 1) == pytest.approx(math.log((2 + 1) / (2 + 4)))
    assert lm.score(2, None) == pytest.approx(math.log((1 + 1) / (1 + 4)))
    assert lm.sequence_log_prob([1, 2]) == pytest.approx(
        lm.score(None, 1) + lm.score(1, 2) + lm.score(2, None))
    ppl = lm.perplexity([[1, 2]])
    assert ppl == pytest.approx(math.exp(-lm.sequence_log_prob([1, 2]) / 3))


def test_smaller_k_trusts_counts_more():
    data = [[1, 2]] * 10
    sharp = BigramLM.estimate(data, vocab_size=4, k=0.01)
    flat = BigramLM.estimate(data, vocab_size=4, k=10.0)
    assert sharp.score(1, 2) > flat.score(1, 2)
    assert sharp.perplexity(data) < flat.perplexity(data)


def test_round_trip_through_json():
    lm = BigramLM.estimate([[1, 2, 3]], vocab_size=4, k=0.3)
    back = BigramLM.from_dict(json.loads(json.dumps(lm.to_dict())))
    assert np.array_equal(back.log_probs, lm.log_probs) and back.k == lm.k and back.excluded == lm.excluded


def test_validation():
    with pytest.raises(ValueError, match="sequences\\[1\\]"):
        BigramLM.estimate([[1], [0]], vocab_size=3)
    with pytest.raises(ValueError, match="sequences\\[0\\]"):
        BigramLM.estimate([[3]], vocab_size=3)
    with pytest.raises(ValueError, match=r"^k:"):
        BigramLM.estimate([[1]], vocab_size=3, k=0)
    with pytest.raises(ValueError, match=r"^exclude:"):
        BigramLM.estimate([[1]], vocab_size=3, exclude=(5,))
    with pytest.raises(ValueError, match=r"^log_probs:"):
        BigramLM(np.zeros((3, 4)))


def test_step_interface_matches_score():
    """init_state/step (id 0 = <s> as input, </s> as column 0) give the same numbers as score()."""
    lm = BigramLM.estimate([[1, 2, 3], [3, 3], [2]], vocab_size=5, k=0.5)
    state = lm.init_state(3)
    assert state.last.shape == (3,) and np.all(state.last == 0)
    log_probs, state = lm.step(state, np.array([0, 2, 3]))
    assert log_probs.shape == (3, 5) and np.array_equal(state.last, [0, 2, 3])
    for row, prev in zip(log_probs, [None, 2, 3]):
        assert row[0] == lm.score(prev, None)                       # column 0 is </s>
        assert [row[c] for c in range(1, 5)] == [lm.score(prev, c) for c in range(1, 5)]
        assert np.exp(row).sum() == pytest.approx(1.0, abs=1e-12)
    # a sequence fed one token at a time sums to sequence_log_prob; rows gathered like a decoder does
    seq, total = [1, 2, 3, 3], 0.0
    state, prev = lm.init_state(2), np.zeros(2, dtype=np.int64)
    for c in seq + [0]:
        log_probs, state = lm.step(state, prev)
        total += log_probs[1, c]
        state = type(state)(*(a[[1, 1]] for a in state))            # tree_map(lambda a: a[idx], state)
        prev = np.array([c, c])
    assert total == pytest.approx(lm.sequence_log_prob(seq), rel=1e-12)
    assert np.array_equal(lm.transition_table()[2], lm.step(lm.init_state(1), np.array([2]))[0][0])


def test_step_interface_validation():
    lm = BigramLM.estimate([[1, 2]], vocab_size=4)
    with pytest.raises(ValueError, match=r"^tokens:"):
        lm.step(lm.init_state(1), np.array([4]))
    with pytest.raises(ValueError, match=r"^tokens:"):
        lm.step(lm.init_state(2), np.array([1]))
    with pytest.raises(TypeError, match=r"^state:"):
        lm.step((np.zeros(1, dtype=np.int64),), np.array([1]))
    with pytest.raises(ValueError, match=r"^batch_size:"):
        lm.init_state(-1)
    # a bigram that predicts token 0 cannot use the step interface (0 is the sentence boundary)
    with pytest.raises(ValueError, match=r"^lm:"):
        BigramLM.estimate([[1, 0]], vocab_size=3, exclude=(2,)).init_state(1)
