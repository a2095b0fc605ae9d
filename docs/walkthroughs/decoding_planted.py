"""Two classic prefix-beam-search bugs planted in a copy of the readable reference, run without pruning on one
random utterance and compared with the brute force (numbers quoted in docs/walkthroughs/decoding.md).

    .venv/bin/python docs/walkthroughs/decoding_planted.py
"""

from __future__ import annotations

import inspect
import math

import numpy as np

import scratchasr.decode.ctc as ctc_decode
from scratchasr.testing.reference import ctc_labelling_log_probs, log_softmax

BUGS = [
    ("a repeated symbol extended from p_b + p_nb", "src = h.p_b if c == last else p_tot", "src = p_tot"),
    ("the repeat term dropped", "p_nb = h.p_nb + row[prefix[-1]] if prefix else NEG_INF", "p_nb = NEG_INF"),
]


def main():
    lp = log_softmax(np.random.default_rng(0).normal(0, 1.5, (5, 3)))
    exact = ctc_labelling_log_probs(lp)
    src = inspect.getsource(ctc_decode._prefix_beam_search_numpy)
    for name, old, new in [("no bug", "", "")] + BUGS:
        namespace = dict(vars(ctc_decode))
        exec(src.replace(old, new) if old else src, namespace)
        hyps = namespace["_prefix_beam_search_numpy"](lp, beam_size=10_000, blank=0, lm=None, lm_weight=0.0,
                                                      insertion_bonus=0.0, token_threshold=None)
        err = max(abs(h.ctc_log_prob - exact.get(h.tokens, -math.inf)) for h in hyps)
        print(f"{name:<45} {len(hyps):3d} hypotheses ({len(exact)} labellings with P > 0), "
              f"max |log P - brute force| = {err:.3g}")


if __name__ == "__main__":
    main()
