"""Numbers quoted in docs/walkthroughs/decoding.md: greedy vs best labelling, prefix beam search against
the brute force, LM fusion, sclite-style alignment (against sclite itself when installed), timings.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python docs/walkthroughs/decoding_measure.py
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from scratchasr.decode import (BigramLM, ctc_greedy_decode, ctc_prefix_beam_search,
                               ctc_prefix_beam_search_utterance)
from scratchasr.metrics import align, edit_distance, error_rate, format_alignment, levenshtein
from scratchasr.testing.reference import (alignment_cost, ctc_labelling_log_probs, edit_alignments,
                                          levenshtein_naive, log_softmax)


def best_of(fn, reps=5):
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def greedy_vs_labelling():
    print("== the best path is not the best labelling (docs/equations/decoding.md, [ctc-decode:greedy])")
    y = np.array([[0.3, 0.38, 0.32], [0.3, 0.33, 0.37]])           # symbols: blank, a, b
    lp = np.log(y)
    exact = ctc_labelling_log_probs(lp)
    for z, v in sorted(exact.items(), key=lambda kv: -kv[1]):
        print(f"  P({''.join('_ab'[k] for k in z) or 'empty'}) = {math.exp(v):.4f}")
    print(f"  greedy: {ctc_greedy_decode(lp[None])[0]}  (the path a b, probability {0.38 * 0.37:.4f})")
    print(f"  prefix beam search, beam 2: {ctc_prefix_beam_search(lp[None], beam_size=2)[0]}")


def beam_vs_exact(n=300, T=6, V=4):
    print(f"\n== prefix beam search vs the brute force over all V^T paths ({n} random utterances,"
          f" T {T}, V {V})")
    rng = np.random.default_rng(0)
    utts = [log_softmax(rng.normal(0, 1.5, (T, V))) for _ in range(n)]
    exact = [ctc_labelling_log_probs(lp) for lp in utts]
    best = [max(e.items(), key=lambda kv: (kv[1], tuple(-k for k in kv[0])))[0] for e in exact]
    greedy = ctc_greedy_decode(np.stack(utts))
    hit = np.mean([tuple(g) == b for g, b in zip(greedy, best)])
    print(f"  greedy                finds the most probable labelling in {hit:.3f}")
    for beam in (1, 2, 4, 8, 64):
        hyps = ctc_prefix_beam_search(np.stack(utts), beam_size=beam)
        print(f"  beam {beam:<3d}              finds the most probable labelling in "
              f"{np.mean([tuple(h) == b for h, b in zip(hyps, best)]):.3f}")
    h = ctc_prefix_beam_search_utterance(utts[0], beam_size=10_000, nbest=10_000)
    err = max(abs(x.ctc_log_prob - exact[0][x.tokens]) for x in h)
    print(f"  unpruned beam: {len(h)} hypotheses = {len(exact[0])} labellings with P > 0; "
          f"max |log P beam - log P brute force| = {err:.1e}")


def fusion():
    print("\n== shallow fusion with a bigram LM ([ctc-decode:fusion])")
    rng = np.random.default_rng(1)
    V, T = 4, 6
    lp = log_softmax(rng.normal(0, 1.5, (T, V)))
    lm = BigramLM.estimate([[1, 2, 3], [1, 2], [2, 3, 3], [1, 2, 3, 1]], V, k=0.5)
    exact = ctc_labelling_log_probs(lp)

    def lm_score(z):
        prev, s = None, 0.0
        for c in z:
            s += lm.score(prev, c)
            prev = c
        return s + lm.score(prev, None)
    for lam, beta in ((0.0, 0.0), (0.5, 0.0), (1.0, 0.0), (1.0, 1.0)):
        fused = {z: v + lam * lm_score(z) + beta * len(z) for z, v in exact.items()}
        target = min(fused, key=lambda z: (-fused[z], z))
        opts = dict(lm=lm, lm_weight=lam, insertion_bonus=beta)
        hyp = ctc_prefix_beam_search_utterance(lp, beam_size=10_000, **opts)[0]
        narrow = ctc_prefix_beam_search_utterance(lp, beam_size=3, **opts)[0]
        print(f"  lm_weight {lam:.1f} bonus {beta:.1f}: brute-force argmax {list(target)}, unpruned beam "
              f"{list(hyp.tokens)} (score {hyp.score:.4f} vs {fused[target]:.4f}),"
              f" beam 3 {list(narrow.tokens)}")


def edit():
    print("\n== sclite-style alignment ([edit:rec], [edit:tie])")
    for r, h in (("a b c d e", "a x c e f g"), ("a a a b c", "b c c b")):
        ref, hyp = r.split(), h.split()
        res = edit_distance(ref, hyp)
        paths = list(edit_alignments(ref, hyp))
        cheapest = min(alignment_cost(p) for p in paths)
        fewest = min(sum(o != "C" for o in p) for p in paths)
        print(f"  ref '{r}' hyp '{h}': S {res.substitutions} D {res.deletions} I {res.insertions} "
              f"(distance {res.distance}); {len(paths)} alignments, least weighted cost {cheapest}, "
              f"fewest errors {fewest} = levenshtein {levenshtein(ref, hyp)} = naive "
              f"{levenshtein_naive(ref, hyp)}")
        print("\n".join("    " + line for line in format_alignment(align(ref, hyp)).splitlines()))
    cmd = ["sclite"] if shutil.which("sclite") else ["sctk", "sclite"] if shutil.which("sctk") else None
    if cmd is None:
        return
    with tempfile.TemporaryDirectory() as d:
        ref_trn, hyp_trn = Path(d) / "ref.trn", Path(d) / "hyp.trn"
        ref_trn.write_text("a a a b c (u1)\n")
        hyp_trn.write_text("b c c b (u1)\n")
        args = ["-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm", "-o", "pralign", "stdout"]
        out = subprocess.run(cmd + args, capture_output=True, text=True, check=True).stdout
    keep = ("Scores:", "REF:", "HYP:", "Eval:")
    lines = [line.rstrip() for line in out.splitlines() if line.startswith(keep)]
    print("  sclite -o pralign on the second pair:\n" + "\n".join("    " + line for line in lines))


def timing():
    print("\n== timing, one thread")
    rng = np.random.default_rng(2)
    B, T, V = 4, 150, 62
    x = rng.normal(0, 2, (B, T, V))
    ctc_prefix_beam_search(x[:1, :5], beam_size=8, backend="numba")  # compile / load the cache
    tk = best_of(lambda: ctc_prefix_beam_search(x, beam_size=8, backend="numba"), reps=5) / B
    tn = best_of(lambda: ctc_prefix_beam_search(x, beam_size=8, backend="numpy"), reps=1) / B
    print(f"  prefix beam 8, flat N(0, 2) logits, T {T}, V {V}: reference {tn * 1e3:.0f} ms/utt, "
          f"Numba kernel {tk * 1e3:.2f} ms/utt ({tn / tk:.0f}x)")
    same = ctc_prefix_beam_search(x, beam_size=8, backend="numba") == ctc_prefix_beam_search(x, beam_size=8,
                                                                                              backend="numpy")
    print(f"  same hypotheses from both: {same}")
    pairs = [(list(rng.integers(0, 40, 60)), list(rng.integers(0, 40, 55))) for _ in range(200)]
    refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
    error_rate(refs[:2], hyps[:2], backend="numba")
    tk = best_of(lambda: error_rate(refs, hyps, backend="numba"))
    tn = best_of(lambda: error_rate(refs, hyps, backend="numpy"), reps=2)
    er = error_rate(refs, hyps)
    both = error_rate(refs, hyps, backend="numpy") == er
    print(f"  error_rate over 200 pairs of ~60 tokens: numpy twin {tn * 1e3:.1f} ms, Numba {tk * 1e3:.2f} ms "
          f"({tn / tk:.0f}x); rate {er.rate:.4f} both: {both}")


if __name__ == "__main__":
    greedy_vs_labelling()
    beam_vs_exact()
    fusion()
    edit()
    timing()
