"""Cepstral mean and variance normalisation (CMVN).

Per utterance (Kaldi's ``apply-cmvn`` with the utterance's own statistics): subtract the mean over
frames, and with ``norm_vars`` divide by the standard deviation.

Global: :class:`CmvnStats` accumulates the count, mean and sum of squared deviations over a whole
corpus in **one streaming pass** (one utterance at a time, never all in memory), merging each batch
with Chan et al.'s pairwise update, which, unlike ``sum x^2 - n mean^2``, does not lose precision
when the mean is large compared with the spread (log-energies around 20 with a spread of 2):

    n = n_a + n_b,  delta = mean_b - mean_a,
    mean = mean_a + delta n_b / n,  M2 = M2_a + M2_b + delta^2 n_a n_b / n.

The statistics are saved with ``np.savez`` (plain arrays, loaded with ``allow_pickle=False``).

Reference: T. Chan, G. Golub, R. LeVeque, "Updating formulae and a pairwise algorithm for computing
sample variances", Stanford CS tech report STAN-CS-79-773, 1979; Kaldi ``compute-cmvn-stats``.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from .._validate import float_array


def cmvn(feats: np.ndarray, *, norm_means: bool = True, norm_vars: bool = False,
         var_floor: float = 1e-10) -> np.ndarray:
    """Per-utterance CMVN of ``(n_frames, D)``; returns a new array of the same dtype.

    ``norm_vars`` divides by ``sqrt(max(var, var_floor))`` (population variance, as Kaldi).
    """
    feats = float_array("feats", feats, ndim=2, finite=True)
    if feats.shape[0] == 0:
        raise ValueError("feats: expected at least one frame")
    # BEGIN ASSIGNMENT A1 points=1
    x = feats.astype(np.float64)
    mean = x.mean(axis=0)
    out = x - mean if norm_means else x.copy()                            # [features:cmvn]
    if norm_vars:
        var = ((x - mean) ** 2).mean(axis=0)
        out = (x - mean if norm_means else x) / np.sqrt(np.maximum(var, var_floor))
    return out.astype(feats.dtype)
    # END ASSIGNMENT


class CmvnStats:
    """Global mean/variance accumulated over a corpus in one pass.

    >>> stats = CmvnStats()
    >>> for feats in corpus: stats.accumulate(feats)      # (n_frames, D) each
    >>> stats.save("cmvn.npz"); stats = CmvnStats.load("cmvn.npz")
    >>> normed = stats.apply(feats, norm_vars=True)
    """

    def __init__(self, dim: Optional[int] = None):
        self.dim = dim
        self.count = 0                                     # frames seen
        self.mean = None if dim is None else np.zeros(dim)          # (D,) float64
        self.m2 = None if dim is None else np.zeros(dim)            # (D,) sum of squared deviations

    def accumulate(self, feats: np.ndarray) -> "CmvnStats":
        """Merge the frames of one utterance ``(n_frames, D)``; returns self."""
        feats = float_array("feats", feats, ndim=2, finite=True)
        n_b, D = feats.shape
        if self.dim is None:
            self.dim, self.mean, self.m2 = D, np.zeros(D), np.zeros(D)
        if D != self.dim:
            raise ValueError(f"feats: expected {self.dim} columns (as the earlier utterances), got {D}")
        if n_b == 0:
            return self
        x = feats.astype(np.float64)
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        n_a, n = self.count, self.count + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)                           # [features:cmvn]
        self.m2 = self.m2 + m2_b + delta ** 2 * (n_a * n_b / n)
        self.count = n
        return self

    @property
    def var(self) -> np.ndarray:
        """Population variance ``(D,)``."""
        if not self.count:
            raise ValueError("CmvnStats: no frames accumulated")
        return self.m2 / self.count

    def apply(self, feats: np.ndarray, *, norm_means: bool = True, norm_vars: bool = True,
              var_floor: float = 1e-10) -> np.ndarray:
        """Normalise ``(n_frames, D)`` with the global statistics; same dtype out."""
        feats = float_array("feats", feats, ndim=2, finite=True)
        var = self.var
        if feats.shape[1] != self.dim:
            raise ValueError(f"feats: expected {self.dim} columns, got {feats.shape[1]}")
        x = feats.astype(np.float64)
        if norm_means:
            x = x - self.mean
        if norm_vars:
            x = x / np.sqrt(np.maximum(var, var_floor))
        return x.astype(feats.dtype)

    def save(self, path: str | os.PathLike) -> None:
        """Write ``count``, ``mean``, ``m2`` with ``np.savez`` (no pickle)."""
        if not self.count:
            raise ValueError("CmvnStats: nothing to save, no frames accumulated")
        np.savez(path, count=np.int64(self.count), mean=self.mean, m2=self.m2)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CmvnStats":
        with np.load(path, allow_pickle=False) as z:
            missing = {"count", "mean", "m2"} - set(z.files)
            if missing:
                raise ValueError(f"{os.fspath(path)}: not a CmvnStats file (missing {sorted(missing)})")
            s = cls(int(z["mean"].shape[0]))
            s.count, s.mean, s.m2 = int(z["count"]), z["mean"].astype(np.float64), z["m2"].astype(np.float64)
        return s
