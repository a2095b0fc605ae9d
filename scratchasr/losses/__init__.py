"""Sequence losses with hand-derived, fused gradients: CTC and RNN-T (docs/equations/ctc.md, rnnt.md)."""

from .ctc import CTCAlignment, CTCCache, ctc_align, ctc_loss, ctc_loss_backward
from .rnnt import RNNTCache, rnnt_loss, rnnt_loss_backward

__all__ = ["ctc_loss", "ctc_loss_backward", "ctc_align", "CTCCache", "CTCAlignment",
           "rnnt_loss", "rnnt_loss_backward", "RNNTCache"]
