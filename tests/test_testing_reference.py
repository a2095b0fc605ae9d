"""scratchasr.testing.reference: the naive loops agree with the library's vectorised ops on tiny shapes
(the references not already exercised by the op and loss tests that import them)."""

from __future__ import annotations

import numpy as np

from scratchasr.decode import ctc_greedy_decode
from scratchasr.metrics import levenshtein
from scratchasr.ops.attention import causal_mask, padding_mask, sdpa_forward
from scratchasr.ops.linear import linear_forward
from scratchasr.ops.norm import layer_norm_forward
from scratchasr.ops.softmax import softmax_forward
from scratchasr.testing import reference as ref


def test_basic_ops_match_the_library(rng):
    x, W, b = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal(5)
    np.testing.assert_allclose(ref.linear_naive(x, W, b), linear_forward(x, W, b)[0], rtol=1e-13)
    np.testing.assert_allclose(ref.linear_naive(x, W), linear_forward(x, W)[0], rtol=1e-13)
    s = 30 * rng.standard_normal((3, 6))
    np.testing.assert_allclose(ref.softmax_naive(s), softmax_forward(s)[0], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.exp(ref.log_softmax(s)), softmax_forward(s)[0], rtol=1e-12, atol=1e-300)
    g, be = rng.standard_normal(3), rng.standard_normal(3)
    np.testing.assert_allclose(ref.layer_norm_naive(x, g, be), layer_norm_forward(x, g, be)[0], rtol=1e-12)


def test_sdpa_naive_matches_sdpa_with_masks(rng):
    q, k = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 2, 5, 4))
    v = rng.standard_normal((2, 2, 5, 3))
    masks = (None, padding_mask(np.array([5, 2]), 5), causal_mask(3, 5), padding_mask(np.array([5, 0]), 5))
    for mask in masks:
        np.testing.assert_allclose(ref.sdpa_naive(q, k, v, mask), sdpa_forward(q, k, v, mask)[0], rtol=1e-12,
                                   atol=1e-15)
    assert np.all(ref.sdpa_naive(q, k, v, padding_mask(np.array([5, 0]), 5))[1] == 0)  # no key: zero row


def test_greedy_and_edit_references(rng):
    lp = ref.log_softmax(rng.standard_normal((2, 7, 4)))
    hyps = ctc_greedy_decode(lp, np.array([7, 4]))
    assert [ref.ctc_greedy_naive(lp[0]), ref.ctc_greedy_naive(lp[1], 4)] == [list(h) for h in hyps]
    for _ in range(20):
        r, h = list(rng.integers(0, 3, rng.integers(0, 5))), list(rng.integers(0, 3, rng.integers(0, 5)))
        assert ref.levenshtein_naive(r, h) == levenshtein(r, h)
    assert ref.alignment_cost(("C", "S", "D", "I")) == 10


def test_brute_force_best_and_prefix_probabilities(rng):
    assert ref.brute_force_best(lambda s: -abs(len(s) - 2) - 0.1 * sum(s), 3, 3) == (1, 1)
    lp = ref.log_softmax(rng.standard_normal((3, 3)))
    prefix, full = ref.ctc_prefix_probs(lp)
    np.testing.assert_allclose(sum(full.values()), 1.0, rtol=1e-12)       # every path collapses somewhere
    np.testing.assert_allclose(prefix[()], 1.0, rtol=1e-12)               # the empty prefix holds all of it
    logs = ref.ctc_labelling_log_probs(lp)
    assert set(logs) == set(full) and all(np.isclose(np.exp(logs[z]), full[z]) for z in full)
