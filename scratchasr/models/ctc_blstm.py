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

The loss, its backward and the decoders (greedy, prefix beam search with LM fusion) are those of
every CTC model: scratchasr/models/ctc_model.py.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from .._validate import positive_int
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.stack import FrameStack
from .base import register
from .ctc_model import BLANK, CTCModel, CTCModelCache, ctc_min_frames

__all__ = ["CTCBLSTM", "ctc_min_frames", "CTCModelCache", "BLANK"]


@register("ctc_blstm")
class CTCBLSTM(CTCModel):
    """Stacked (Bi)LSTM encoder, linear output layer, CTC loss (scratchasr/models/ctc_model.py)."""

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

    def logits(self, x: np.ndarray, lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """x (B, T, D), zero padding -> (logits (B, T', V), out_lengths (B,)); caches pushed in training."""
        xs, out_len = self.stack(x, lengths)
        h = self.encoder(xs, out_len)                     # (B, T', dirs*H), zero past out_len
        return self.output(h, out_len), out_len           # [ops:linear], zero past out_len

    def logits_backward(self, dlogits: np.ndarray) -> np.ndarray:
        dh = self.output.backward(dlogits)
        dxs = self.encoder.backward(dh)
        return self.stack.backward(dxs)
