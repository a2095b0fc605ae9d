"""sclite-style edit distance and error rates: hand-worked cases, brute-force oracles, alignment display,
Numba/NumPy parity. The comparison with sclite itself is in tests/test_metrics_sclite.py."""

from __future__ import annotations

import functools
import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from scratchasr.metrics import (AlignedToken, EditResult, _align_batch, _sclite_align_numpy, align,
                                edit_distance, error_rate, format_alignment, levenshtein)
from scratchasr.testing.reference import edit_alignments

W = {"S": 4, "D": 3, "I": 3, "C": 0}  # sclite's costs


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_hand_worked_cases(backend):
    ed = functools.partial(edit_distance, backend=backend)
    assert ed([], []) == EditResult(0, 0, 0, 0)
    assert ed(["a", "b"], []) == EditResult(0, 2, 0, 2)
    assert ed([], ["a", "b", "c"]) == EditResult(0, 0, 3, 3)
    assert ed("a b c d".split(), "a b c d".split()) == EditResult(0, 0, 0, 0)
    assert ed("a b c d".split(), "a x c d".split()) == EditResult(1, 0, 0, 1)
    assert ed("a b c d".split(), "a c d".split()) == EditResult(0, 1, 0, 1)
    assert ed("a b c d".split(), "a b y c d".split()) == EditResult(0, 0, 1, 1)
    # kitten -> sitting: S S I costs 4 + 4 + 3; any D/I pair replacing a substitution costs 6 > 4
    assert ed(list("kitten"), list("sitting")) == EditResult(2, 0, 1, 3)
    # D + I (6) is cheaper than S + S (8): a b -> b c is D, C, I
    assert ed(["a", "b"], ["b", "c"]) == EditResult(0, 1, 1, 2)
    # ../shared/API.md's example (sclite: C 3 S 1 D 1 I 2)
    assert ed("a b c d e".split(), "a x c e f g".split()) == EditResult(1, 1, 2, 4)
    # weighted tie (15 = S S S C D = D D D C I C I): the tie rule picks 5 errors where 4 are possible
    assert ed("a a a b c".split(), "b c c b".split()) == EditResult(0, 3, 2, 5)
    assert levenshtein("a a a b c".split(), "b c c b".split()) == 4


def _random_pairs(rng, n, max_len=6, vocab=3):
    return [(list(rng.integers(0, vocab, rng.integers(0, max_len + 1))),
             list(rng.integers(0, vocab, rng.integers(0, max_len + 1)))) for _ in range(n)]


def _check_against_every_alignment(ref, hyp):
    paths = list(edit_alignments(ref, hyp))
    cols = align(ref, hyp)
    ops = tuple(c.op for c in cols)
    assert ops in paths  # a real alignment of these two sequences
    # it has the least weighted cost of all alignments (sclite's objective)
    assert sum(W[o] for o in ops) == min(sum(W[o] for o in p) for p in paths)
    # Levenshtein is the fewest errors of all alignments; sclite's count is never below it
    fewest = min(sum(o != "C" for o in p) for p in paths)
    assert levenshtein(ref, hyp) == fewest
    res = edit_distance(ref, hyp)
    assert res.distance >= fewest
    assert (res.substitutions, res.deletions, res.insertions) == tuple(ops.count(o) for o in "SDI")
    assert res.distance == res.substitutions + res.deletions + res.insertions


def test_against_every_alignment_random():
    rng = np.random.default_rng(0)
    for ref, hyp in _random_pairs(rng, 150, max_len=5):
        _check_against_every_alignment(ref, hyp)


def test_exhaustive_tiny_alphabet():
    seqs = [list(s) for n in range(4) for s in itertools.product([0, 1], repeat=n)]
    for r in seqs:
        for h in seqs:
            _check_against_every_alignment(r, h)


def _batch(pairs, backend):
    ops, starts, out = _align_batch(pairs, backend)
    return [ops[s:s + n].tolist() for s, n in zip(starts, out[:, 4])], out


def test_numba_numpy_parity_long_and_ragged():
    rng = np.random.default_rng(1)
    pairs = _random_pairs(rng, 50, max_len=80, vocab=5) + [([], []), ([1], []), ([], [2]), ([3], [3])]
    paths_np, out_np = _batch(pairs, "numpy")
    paths_nb, out_nb = _batch(pairs, "numba")
    assert paths_np == paths_nb
    assert out_np.tolist() == out_nb.tolist()
    refs = [r for r, _ in pairs]
    hyps = [h for _, h in pairs]
    assert error_rate(refs, hyps, backend="numpy") == error_rate(refs, hyps, backend="numba")
    # the ops array is filled to the end of each pair's slot: path, then padding
    ops, starts, out = _align_batch(pairs, "numba")
    for (r, h), s, row in zip(pairs, starts, out):
        assert set(ops[s + row[4]:s + len(r) + len(h)].tolist()) <= {-1}


def test_kernel_without_jit_matches_twin():
    """The kernel's Python source (``py_func``) and the twin agree on tiny inputs."""
    from scratchasr.kernels.edit_distance import _sclite_align_one

    rng = np.random.default_rng(2)
    for ref, hyp in _random_pairs(rng, 40, max_len=5):
        r = np.array(ref, dtype=np.int64)
        h = np.array(hyp, dtype=np.int64)
        ops_a = np.zeros(r.size + h.size, dtype=np.int8)
        out_a = np.zeros(5, dtype=np.int64)
        _sclite_align_one.py_func(r, h, ops_a, out_a)
        ops_b = np.zeros(r.size + h.size, dtype=np.int8)
        out_b = np.zeros((1, 5), dtype=np.int64)
        _sclite_align_numpy(r, np.array([0, r.size]), h, np.array([0, h.size]), ops_b, out_b)
        assert out_a.tolist() == out_b[0].tolist()
        assert ops_a.tolist() == ops_b.tolist()


def test_parity_under_numba_disable_jit():
    code = ("from scratchasr.metrics import edit_distance as e, align as a;"
            "r, h = 'a b c d e'.split(), 'a x c e f g'.split();"
            "assert e(r, h) == e(r, h, backend='numpy') == (1, 1, 2, 4);"
            "assert a(r, h) == a(r, h, backend='numpy');"
            "assert tuple(e([1, 2, 3], [3, 2], backend='numba')) == (1, 1, 0, 2)")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def test_error_rate_sums_over_corpus():
    refs = [["a", "b", "c"], ["d"], [], ["a", "b"]]
    hyps = [["a", "c"], ["d", "e", "f"], ["g"], ["b", "c"]]
    res = error_rate(refs, hyps)
    assert (res.substitutions, res.deletions, res.insertions) == (0, 2, 4)
    assert res.errors == 6 and res.ref_tokens == 6 and res.rate == 1.0
    per_pair = [edit_distance(r, h) for r, h in zip(refs, hyps)]
    assert res.errors == sum(p.distance for p in per_pair)
    assert error_rate([[]], [[]]).rate == 0.0
    assert error_rate([[]], [["x"]]).rate == float("inf")
    assert error_rate([], []).errors == 0


def test_tokens_of_any_hashable_type():
    assert edit_distance(("sil", "b", "aa"), np.array(["sil", "p", "aa"])).substitutions == 1
    assert edit_distance([(1, 2), (3,)], [(1, 2)]).deletions == 1
    # tokens are compared with ==, so case matters (sclite without -s would ignore it)
    assert edit_distance(["A"], ["a"]).substitutions == 1


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_align_columns(backend):
    ref, hyp = "a b c d e".split(), "a x c e f g".split()
    cols = align(ref, hyp, backend=backend)
    assert cols == [AlignedToken("a", "a", "C"), AlignedToken("b", "x", "S"), AlignedToken("c", "c", "C"),
                    AlignedToken("d", None, "D"), AlignedToken("e", "e", "C"), AlignedToken(None, "f", "I"),
                    AlignedToken(None, "g", "I")]
    assert align([], [], backend=backend) == []
    rng = np.random.default_rng(4)
    for r, h in _random_pairs(rng, 50, max_len=8, vocab=3):
        cols = align(r, h, backend=backend)
        assert [c.ref for c in cols if c.ref is not None] == r
        assert [c.hyp for c in cols if c.hyp is not None] == h
        for c in cols:
            assert (c.op == "C") == (c.ref == c.hyp and c.ref is not None)
        res = edit_distance(r, h, backend=backend)
        assert [sum(c.op == o for c in cols) for o in "SDI"] == list(res[:3])


def test_format_alignment_like_sclite_pralign():
    # the expected lines are sclite's own output (sctk sclite ... -o pralign), trailing blank removed
    text = format_alignment(align("a b c d e".split(), "a x c e f g".split()), utt_id="spk_utt1")
    assert text == ("id: (spk_utt1)\n"
                    "Scores: (#C #S #D #I) 3 1 1 2\n"
                    "REF:  a B c D e * *\n"
                    "HYP:  a X c * e F G\n"
                    "Eval:   S   D   I I\n")
    ref, hyp = "hello there general kenobi".split(), "hello their kenobi xx yyyyy".split()
    text = format_alignment(align(ref, hyp))
    assert text.splitlines() == ["Scores: (#C #S #D #I) 2 1 1 2",
                                 "REF:  hello THERE GENERAL kenobi ** *****",
                                 "HYP:  hello ***** THEIR   kenobi XX YYYYY",
                                 "Eval:       D     S              I  I"]
    assert format_alignment([], utt_id="u") == "id: (u)\nScores: (#C #S #D #I) 0 0 0 0\n"
    # non-string tokens are printed with str()
    assert format_alignment(align([1, 22], [1, 3])).splitlines()[1:] == ["REF:  1 22", "HYP:  1 3",
                                                                         "Eval:   S"]


def test_bad_input():
    with pytest.raises(TypeError, match=r"^ref:"):
        edit_distance("abc", ["a"])
    with pytest.raises(TypeError, match=r"^hyp:"):
        edit_distance(["a"], [["unhashable"]])
    with pytest.raises(ValueError, match=r"^ref:"):
        edit_distance(np.zeros((2, 2)), ["a"])
    with pytest.raises(TypeError, match=r"^hyp:"):
        edit_distance(["a"], 3)
    with pytest.raises(ValueError, match=r"^refs, hyps:"):
        error_rate([["a"]], [])
    with pytest.raises(TypeError, match=r"^refs:"):
        error_rate("a b", [["a"]])
    with pytest.raises(TypeError, match=r"^hyps:"):
        error_rate([["a"]], "a")
    with pytest.raises(ValueError, match=r"^backend:"):
        edit_distance(["a"], ["a"], backend="cuda")
    with pytest.raises(ValueError, match=r"^backend:"):
        align(["a"], ["a"], backend="cuda")
    with pytest.raises(TypeError, match=r"^hyps\[1\]:"):
        error_rate([["a"], ["b"]], [["a"], "b"])
    with pytest.raises(TypeError, match=r"^ref:"):
        align("ab", ["a"])
    with pytest.raises(TypeError, match=r"^hyp:"):
        levenshtein(["a"], "ab")
    with pytest.raises(TypeError, match=r"^alignment:"):
        format_alignment("a b")
    with pytest.raises(ValueError, match=r"^alignment:"):
        format_alignment([("a", "b", "X")])
    with pytest.raises(ValueError, match=r"^alignment:"):
        format_alignment([("a", None, "S")])
    with pytest.raises(TypeError, match=r"^utt_id:"):
        format_alignment([], utt_id=3)


@pytest.mark.oracle
def test_levenshtein_against_jiwer():
    """jiwer (RapidFuzz) uses unit costs: its S + D + I is our ``levenshtein``, not sclite's count."""
    jiwer = pytest.importorskip("jiwer")
    rng = np.random.default_rng(3)
    words = "the cat sat on a mat".split()
    for _ in range(100):
        ref = " ".join(rng.choice(words, rng.integers(1, 10)))
        hyp = " ".join(rng.choice(words, rng.integers(0, 10))) or "x"
        out = jiwer.process_words(ref, hyp)
        jiwer_errors = out.substitutions + out.deletions + out.insertions
        assert levenshtein(ref.split(), hyp.split()) == jiwer_errors
        assert edit_distance(ref.split(), hyp.split()).distance >= jiwer_errors
