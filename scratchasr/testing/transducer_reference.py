"""Brute-force references for the transducer (tests, walkthroughs): sums over every alignment, by enumeration.

* :func:`alignments` lists every RNN-T alignment of U labels over T frames (how many labels each frame
  emits before its blank);
* :func:`brute_force_log_likelihood` sums the path probabilities of all of them (no dynamic programme);
* :func:`lattice_log_probs` computes the (T, U+1, V) joint log-probabilities of one label sequence
  through a model's step interface (``init_state``/``step``/``joint_step``), so a decoder's scores can
  be compared with the exact ones;
* :func:`sequence_log_prob` is log P(y | x) (every alignment) and :func:`one_symbol_log_prob` the
  one-symbol-per-frame path model of modified beam search, both by explicit enumeration;
* :func:`label_sequences` enumerates every label sequence up to a length.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence, Tuple

import numpy as np

__all__ = ["alignments", "brute_force_log_likelihood", "lattice_log_probs", "sequence_log_prob",
           "one_symbol_log_prob", "label_sequences"]


def alignments(T: int, U: int) -> Iterator[Tuple[int, ...]]:
    """Every (n_0, ..., n_{T-1}) with n_t >= 0 labels emitted at frame t before its blank, sum = U."""
    for cuts in itertools.combinations(range(U + T - 1), T - 1):  # stars and bars
        bounds = (-1,) + cuts + (U + T - 1,)
        yield tuple(bounds[i + 1] - bounds[i] - 1 for i in range(T))


def brute_force_log_likelihood(log_probs: np.ndarray, y: Sequence[int], blank: int = 0) -> float:
    """log sum over alignments of prod of P(symbol | t, u): log_probs (T, U+1, V) normalised."""
    T = log_probs.shape[0]
    U = len(y)
    terms = []
    for counts in alignments(T, U):
        u, total = 0, 0.0
        for t, n in enumerate(counts):
            for _ in range(n):
                total += log_probs[t, u, y[u]]       # emit y_{u+1} at (t, u)
                u += 1
            total += log_probs[t, u, blank]          # the frame's blank at (t, u)
        terms.append(total)
    return float(np.logaddexp.reduce(np.array(terms)))


def lattice_log_probs(model, f: np.ndarray, y: Sequence[int]) -> np.ndarray:
    """(T, U+1, V) joint log-probabilities of prefix y_{1..u} at frame t, through the step interface."""
    state = model.init_state(1)
    gs = []
    g, state = model.step(state, np.zeros(1, np.int64))
    gs.append(g)
    for k in y:
        g, state = model.step(state, np.array([k], np.int64))
        gs.append(g)
    G = np.concatenate(gs, axis=0)                    # (U+1, J)
    T, U1 = f.shape[0], G.shape[0]
    lp = model.joint_step(np.repeat(f, U1, axis=0), np.tile(G, (T, 1)))
    return lp.reshape(T, U1, -1)


def sequence_log_prob(model, f: np.ndarray, y: Sequence[int]) -> float:
    """log P(y | x) of the transducer: every alignment of y, enumerated."""
    return brute_force_log_likelihood(lattice_log_probs(model, f, y), list(y))


def one_symbol_log_prob(model, f: np.ndarray, y: Sequence[int], blank: int = 0) -> float:
    """log P_1(y): paths that emit, at each frame, either the blank or exactly one label (and move on)."""
    T, U = f.shape[0], len(y)
    if U > T:
        return -np.inf
    lp = lattice_log_probs(model, f, y)
    terms = []
    for frames in itertools.combinations(range(T), U):   # the frames that emit a label
        u, total = 0, 0.0
        for t in range(T):
            if u < U and t == frames[u]:
                total += lp[t, u, y[u]]
                u += 1
            else:
                total += lp[t, u, blank]
        terms.append(total)
    return float(np.logaddexp.reduce(np.array(terms)))


def label_sequences(V: int, max_len: int, blank: int = 0) -> Iterator[Tuple[int, ...]]:
    """Every sequence over labels {0..V-1} minus blank of length 0..max_len."""
    labels = [k for k in range(V) if k != blank]
    for n in range(max_len + 1):
        yield from itertools.product(labels, repeat=n)
