"""What every CTC acoustic model shares: the loss on per-frame logits, its backward, and CTC decoding.

A subclass provides the network (``logits(x, lengths) -> (logits (B, T', V), out_lengths)``, pushing its
modules' caches in training) and its backward (``logits_backward(dlogits) -> dx``); this base class adds
``forward_loss`` / ``backward`` / ``decode`` / ``log_probs`` of the contract (API.md):

    loss_b = CTC(logits_b, y_b)   (blank = id 0; docs/equations/ctc.md)

An utterance too short for its labels (fewer frames than labels plus repeats, :func:`ctc_min_frames`)
has loss ``inf`` and receives no gradient; the trainer names and skips it. Decoding: ``"greedy"`` (best
path) or ``"beam"`` (prefix beam search, shallow fusion with any step-interface LM through
``lm``/``lm_weight``), see scratchasr/decode/ctc.py.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

import numpy as np

from .._validate import length_mask
from ..data.batch import Batch
from ..decode.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from ..losses import ctc_loss, ctc_loss_backward
from ..ops.softmax import log_softmax_forward
from .base import Model, check_batch

__all__ = ["CTCModel", "CTCModelCache", "ctc_min_frames", "BLANK"]

BLANK = 0


def ctc_min_frames(targets: np.ndarray, target_lengths: np.ndarray) -> np.ndarray:
    """Frames CTC needs to emit each target: its length plus one blank between each repeated pair."""
    valid = length_mask(target_lengths, targets.shape[1])
    repeats = (targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]
    return target_lengths + repeats.sum(axis=1)


class CTCModelCache(NamedTuple):
    ctc: object             # CTCCache of losses.ctc_loss
    feasible: np.ndarray    # (B,) bool: enough frames for the labels
    dtype: np.dtype


class CTCModel(Model):
    """Base class: a network emitting per-frame logits over blank + labels, trained with CTC."""

    input_dim: int
    vocab_size: int
    dtype: np.dtype

    def logits(self, x: np.ndarray, lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def logits_backward(self, dlogits: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def log_probs(self, batch: Batch) -> Tuple[np.ndarray, np.ndarray]:
        """Per-frame log-posteriors ``(B, T', V)`` (float64) and their lengths, without caches."""
        x, xl, _, _ = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                  dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            logits, out_len = self.logits(x, xl)
        finally:
            self.train(was)
        lp, _ = log_softmax_forward(logits.astype(np.float64))
        return lp, out_len

    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        logits, out_len = self.logits(x, xl)
        feasible = ctc_min_frames(y, yl) <= out_len
        # zero_infinity: an infeasible utterance gives 0 and no gradient inside the loss; reported as inf
        nll, cache = ctc_loss(logits, y, out_len, yl, blank=BLANK, reduction="none", zero_infinity=True)
        loss = np.where(feasible, nll, np.inf)
        self.push(CTCModelCache(ctc=cache, feasible=feasible, dtype=logits.dtype))
        stats = dict(loss=float(np.sum(nll[feasible])), utterances=float(feasible.sum()),
                     frames=float(out_len.sum()), labels=float(yl.sum()))
        return loss, stats

    def backward(self, dloss: np.ndarray) -> np.ndarray:
        cache: CTCModelCache = self.pop()
        dloss = self._check_dloss(dloss, cache.feasible.shape[0])
        dloss = np.where(cache.feasible, dloss, 0.0)                     # skipped utterances: no gradient
        dlogits = ctc_loss_backward(dloss, cache.ctc).astype(cache.dtype, copy=False)
        return self.logits_backward(dlogits)

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, **options) -> List[List[int]]:
        beam_size = self._check_decode_args(method, beam_size)
        lp, out_len = self.log_probs(batch)
        if method == "greedy":
            return ctc_greedy_decode(lp, out_len, blank=BLANK)
        return ctc_prefix_beam_search(lp, out_len, beam_size=beam_size, blank=BLANK, lm=lm,
                                      lm_weight=lm_weight, **options)
