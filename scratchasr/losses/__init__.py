"""Losses with hand-derived, fused gradients: CTC, RNN-T and cross-entropy
(docs/equations/ctc.md, rnnt.md, cross_entropy.md)."""

from .cross_entropy import CrossEntropyCache, cross_entropy_loss, cross_entropy_loss_backward
from .ctc import CTCAlignment, CTCCache, ctc_align, ctc_loss, ctc_loss_backward
from .rnnt import RNNTCache, rnnt_loss, rnnt_loss_backward

__all__ = ["ctc_loss", "ctc_loss_backward", "ctc_align", "CTCCache", "CTCAlignment",
           "rnnt_loss", "rnnt_loss_backward", "RNNTCache",
           "cross_entropy_loss", "cross_entropy_loss_backward", "CrossEntropyCache"]
