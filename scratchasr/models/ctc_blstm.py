"""BiLSTM-CTC acoustic model (Graves, Mohamed & Hinton 2013, "Speech recognition with deep recurrent
neural networks", the CTC baseline on TIMIT), registered as ``"ctc_blstm"``.

    x (B, T, D) --FrameStack k--> (B, T/k, k*D) --LSTM (bi)--> (B, T/k, 2H) --Linear--> logits (B, T/k, V)
    loss = CTC(logits, targets)  (blank = id 0; docs/equations/ctc.md)

Frame stacking (``stack > 1``) concatenates ``k`` consecutive frames and keeps every k-th position:
it divides the recurrent work by ``k`` and still leaves more frames than phones. The output layer is
``y = h W^T + b`` [ops:linear]. Parameters: ``encoder.W_ih_l0`` ... (nn.LSTM), ``output.W``,
``output.b``.

Options (``models.build("ctc_blstm", ..., **options)``):
    hidden (256): LSTM cells per direction; num_layers (2); dropout (0.0) between LSTM layers, training
    only; stack (1): frame stacking factor; bidirectional (True): False gives a causal (streamable)
    encoder.

Decoding: ``method="greedy"`` (best path) or ``"beam"`` (CTC prefix beam search, optional shallow
fusion with a language model through ``lm``/``lm_weight``), see scratchasr/decode/ctc.py.
An utterance too short for its labels (fewer frames than labels plus repeats) has loss ``inf`` and
receives no gradient; the trainer names and skips it.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

import numpy as np

from .._validate import length_mask, positive_int
from ..data.batch import Batch
from ..decode.ctc import ctc_greedy_decode, ctc_prefix_beam_search
from ..losses import ctc_loss, ctc_loss_backward
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.stack import FrameStack
from ..ops.softmax import log_softmax_forward
from .base import Model, check_batch, register

__all__ = ["CTCBLSTM", "ctc_min_frames"]

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


@register("ctc_blstm")
class CTCBLSTM(Model):
    """Stacked (Bi)LSTM encoder, linear output layer, CTC loss; see the module docstring."""

    OPTIONS = dict(hidden=256, num_layers=2, dropout=0.0, stack=1, bidirectional=True)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 dropout: float, stack: int, bidirectional: bool) -> None:
        super().__init__()
        positive_int("hidden", hidden)
        positive_int("num_layers", num_layers)
        positive_int("stack", stack)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if not isinstance(bidirectional, bool):
            raise TypeError(f"bidirectional: expected True or False, got {bidirectional!r}")
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.stack = FrameStack(stack)
        self.encoder = LSTM(input_dim * self.stack.k, hidden, num_layers=num_layers,
                            bidirectional=bidirectional, dropout=float(dropout), seed=seed, dtype=dtype)
        self.output = Linear(self.encoder.output_size, vocab_size, rng=np.random.default_rng([seed, 2]),
                             dtype=dtype)

    # ------------------------------------------------------------------ encoder
    def logits(self, x: np.ndarray, lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """x (B, T, D), zero padding -> (logits (B, T', V), out_lengths (B,)); caches pushed in training."""
        xs, out_len = self.stack(x, lengths)
        h = self.encoder(xs, out_len)                     # (B, T', dirs*H), zero past out_len
        return self.output(h, out_len), out_len           # [ops:linear], zero past out_len

    def log_probs(self, batch: Batch) -> Tuple[np.ndarray, np.ndarray]:
        """Per-frame log-posteriors ``(B, T', V)`` (float64) and their lengths, no caches (plots, decode)."""
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

    # ------------------------------------------------------------------ contract
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        logits, out_len = self.logits(x, xl)
        feasible = ctc_min_frames(y, yl) <= out_len
        # zero_infinity: an infeasible utterance gives 0 and no gradient inside the loss; we report it as inf
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
        dh = self.output.backward(dlogits)
        dxs = self.encoder.backward(dh)
        return self.stack.backward(dxs)

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, **options) -> List[List[int]]:
        beam_size = self._check_decode_args(method, beam_size)
        lp, out_len = self.log_probs(batch)
        if method == "greedy":
            return ctc_greedy_decode(lp, out_len, blank=BLANK)
        return ctc_prefix_beam_search(lp, out_len, beam_size=beam_size, blank=BLANK, lm=lm,
                                      lm_weight=lm_weight, **options)
