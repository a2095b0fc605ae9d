"""Edit distance and error rates: hand-worked cases, brute-force oracle, Numba/NumPy parity."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchasr.metrics import EditResult, _edit_ops_numpy, edit_distance, error_rate


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_hand_worked_cases(backend):
    ed = lambda r, h: edit_distance(r, h, backend=backend)  # noqa: E731
    assert ed([], []) == EditResult(0, 0, 0, 0)
    assert ed(["a", "b"], []) == EditResult(0, 2, 0, 2)
    assert ed([], ["a", "b", "c"]) == EditResult(0, 0, 3, 3)
    assert ed("a b c d".split(), "a b c d".split()) == EditResult(0, 0, 0, 0)
    assert ed("a b c d".split(), "a x c d".split()) == EditResult(1, 0, 0, 1)
    assert ed("a b c d".split(), "a c d".split()) == EditResult(0, 1, 0, 1)
    assert ed("a b c d".split(), "a b y c d".split()) == EditResult(0, 0, 1, 1)
    # kitten -> sitting: 2 substitutions and 1 insertion
    assert ed(list("kitten"), list("sitting")) == EditResult(2, 0, 1, 3)
    # tie: substitutions are preferred to a deletion + insertion pair
    assert ed(["a", "b"], ["b", "c"]) == EditResult(2, 0, 0, 2)


def _brute_distance(ref, hyp):
    """Levenshtein distance by plain recursion (exponential; tiny inputs only)."""
    if not ref:
        return len(hyp)
    if not hyp:
        return len(ref)
    return min(_brute_distance(ref[1:], hyp[1:]) + (ref[0] != hyp[0]),
               _brute_distance(ref[1:], hyp) + 1, _brute_distance(ref, hyp[1:]) + 1)


def _random_pairs(rng, n, max_len=6, vocab=3):
    return [(list(rng.integers(0, vocab, rng.integers(0, max_len + 1))),
             list(rng.integers(0, vocab, rng.integers(0, max_len + 1)))) for _ in range(n)]


def test_against_brute_force_and_consistency():
    rng = np.random.default_rng(0)
    for ref, hyp in _random_pairs(rng, 200):
        res = edit_distance(ref, hyp)
        assert res.distance == _brute_distance(tuple(ref), tuple(hyp))
        assert res.substitutions + res.deletions + res.insertions == res.distance
        # the counts describe a real alignment: lengths must balance
        assert len(ref) - res.deletions + res.insertions == len(hyp)


def test_numba_numpy_parity_long_and_ragged():
    rng = np.random.default_rng(1)
    pairs = _random_pairs(rng, 50, max_len=80, vocab=5) + [([], []), ([1], []), ([], [2])]
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    for r, h in pairs:
        assert edit_distance(r, h, backend="numpy") == edit_distance(r, h, backend="numba")
    assert error_rate(refs, hyps, backend="numpy") == error_rate(refs, hyps, backend="numba")


def test_kernel_without_jit_matches_twin():
    """The kernel's Python source (``py_func``) and the twin agree on tiny inputs."""
    from scratchasr.kernels.edit_distance import _edit_ops_one

    rng = np.random.default_rng(2)
    for ref, hyp in _random_pairs(rng, 30, max_len=4):
        r = np.array(ref, dtype=np.int64)
        h = np.array(hyp, dtype=np.int64)
        a = np.zeros(4, dtype=np.int64)
        _edit_ops_one.py_func(r, h, a)
        b = np.zeros((1, 4), dtype=np.int64)
        _edit_ops_numpy(r, np.array([0, r.size]), h, np.array([0, h.size]), b)
        assert a.tolist() == b[0].tolist()


def test_parity_under_numba_disable_jit():
    code = ("from scratchasr.metrics import edit_distance as e;"
            "assert e(list('kitten'), list('sitting')) == e(list('kitten'), list('sitting'), backend='numpy');"
            "assert tuple(e([1, 2, 3], [3, 2], backend='numba')) == (1, 1, 0, 2)")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def test_error_rate_sums_over_corpus():
    refs = [["a", "b", "c"], ["d"], []]
    hyps = [["a", "c"], ["d", "e", "f"], ["g"]]
    res = error_rate(refs, hyps)
    assert (res.substitutions, res.deletions, res.insertions) == (0, 1, 3)
    assert res.errors == 4 and res.ref_tokens == 4 and res.rate == 1.0
    assert error_rate([[]], [[]]).rate == 0.0
    assert error_rate([[]], [["x"]]).rate == float("inf")
    assert error_rate([], []).errors == 0


def test_tokens_of_any_hashable_type():
    assert edit_distance(("sil", "b", "aa"), np.array(["sil", "p", "aa"])).substitutions == 1
    assert edit_distance([(1, 2), (3,)], [(1, 2)]).deletions == 1


def test_bad_input():
    with pytest.raises(TypeError, match="ref"):
        edit_distance("abc", ["a"])
    with pytest.raises(TypeError, match="hyp"):
        edit_distance(["a"], [["unhashable"]])
    with pytest.raises(ValueError, match="refs, hyps"):
        error_rate([["a"]], [])
    with pytest.raises(ValueError, match="backend"):
        edit_distance(["a"], ["a"], backend="cuda")
    with pytest.raises(TypeError, match="hyps\\[1\\]"):
        error_rate([["a"], ["b"]], [["a"], "b"])


@pytest.mark.oracle
def test_against_jiwer():
    jiwer = pytest.importorskip("jiwer")
    rng = np.random.default_rng(3)
    words = "the cat sat on a mat".split()
    for _ in range(50):
        ref = " ".join(rng.choice(words, rng.integers(1, 8)))
        hyp = " ".join(rng.choice(words, rng.integers(0, 8))) or "x"
        out = jiwer.process_words(ref, hyp)
        res = edit_distance(ref.split(), hyp.split())
        assert res.distance == out.substitutions + out.deletions + out.insertions


def test_exhaustive_tiny_alphabet():
    # every pair of sequences of length <= 3 over {0, 1}: distance matches brute force
    seqs = [list(s) for n in range(4) for s in itertools.product([0, 1], repeat=n)]
    for r in seqs:
        for h in seqs:
            assert edit_distance(r, h).distance == _brute_distance(tuple(r), tuple(h))
