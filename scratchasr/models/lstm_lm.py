"""LSTM language model (Mikolov et al. 2010, "Recurrent neural network based language model"; the LSTM
version of Sundermeyer, Schlueter & Ney 2012, "LSTM neural networks for language modeling"), registered
as ``"lstm_lm"``.

    inputs 0 y_1 .. y_S --Embedding--> (B, S+1, E) --LSTM x L--> (B, S+1, H) --Linear--> logits (B, S+1, V)
    loss = cross-entropy against y_1 .. y_S 0   (id 0: <sos> as input, <eos> as target; docs/equations/lm.md)

Options: hidden (256) LSTM cells; num_layers (2); dropout (0.0) between LSTM layers, training only;
embed_dim (0 = hidden). Parameters: ``embedding.W``, ``lstm.W_ih_l0`` ..., ``output.W``, ``output.b``.

The step interface (scratchasr/models/base.py) carries the recurrent state, one row per hypothesis:
``LSTMLMState(h (B, L, H), c (B, L, H))``; ``step(state, tokens)`` feeds the previous tokens (0 = <sos>)
and returns ``log P(. | history)`` (B, V) with column 0 = ``<eos>`` [lm:step]. ``score``, ``perplexity``
and ``decode`` (the most probable continuation of a prompt) are shared with ``gpt_lm`` (models/_lm.py).
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import int_array, positive_int
from ..nn.layers import Embedding, Linear
from ..nn.lstm import LSTM
from ..ops.lstm import lstm_step_forward
from ..ops.softmax import log_softmax_forward
from ._lm import LanguageModel
from .base import register

__all__ = ["LSTMLM", "LSTMLMState"]


class LSTMLMState(NamedTuple):
    h: np.ndarray   # (B, L, H) hidden state of each layer after the tokens fed so far
    c: np.ndarray   # (B, L, H) cell state


@register("lstm_lm")
class LSTMLM(LanguageModel):
    """Embedding, stacked LSTM, output layer; see the module docstring."""

    OPTIONS = dict(hidden=256, num_layers=2, dropout=0.0, embed_dim=0)

    def __init__(self, *, input_dim, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 dropout: float, embed_dim: int) -> None:
        super().__init__()
        positive_int("hidden", hidden)
        positive_int("num_layers", num_layers)
        positive_int("embed_dim", embed_dim, minimum=0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.vocab_size, self.dtype = vocab_size, np.dtype(dtype)
        E = embed_dim or hidden
        self.embedding = Embedding(vocab_size, E, rng=np.random.default_rng([seed, 1]), dtype=dtype)
        self.lstm = LSTM(E, hidden, num_layers=num_layers, dropout=float(dropout), seed=seed, dtype=dtype)
        self.output = Linear(hidden, vocab_size, rng=np.random.default_rng([seed, 2]), dtype=dtype)

    # ------------------------------------------------------------------ the network
    def logits(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """inputs (B, T) ids, lengths (B,) -> logits (B, T, V), zero past the lengths; caches pushed when
        training."""
        x = self.embedding(inputs, lengths)                  # (B, T, E) [ops:embedding]
        h = self.lstm(x, lengths)                            # (B, T, H)
        return self.output(h, lengths)                       # (B, T, V) [ops:linear]

    def backward_logits(self, dlogits: np.ndarray) -> None:
        dh = self.output.backward(dlogits)
        dx = self.lstm.backward(dh)
        self.embedding.backward(dx)

    # ------------------------------------------------------------------ step interface
    def init_state(self, batch_size: int) -> LSTMLMState:
        B = positive_int("batch_size", batch_size, minimum=0)
        shape = (B, self.lstm.num_layers, self.lstm.hidden_size)
        return LSTMLMState(np.zeros(shape, self.dtype), np.zeros(shape, self.dtype))

    def step(self, state: LSTMLMState, tokens) -> Tuple[np.ndarray, LSTMLMState]:
        """tokens (B,) int64 (0 = <sos>) -> log_probs (B, V) float64 (column 0 = <eos>), new state
        [lm:step]."""
        if not isinstance(state, LSTMLMState):
            raise TypeError(f"state: expected an LSTMLMState (from init_state), got {type(state).__name__}")
        B = state.h.shape[0]
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {self.vocab_size}), got min {tokens.min()} "
                             f"max {tokens.max()}")
        p = self.lstm.params
        x = self.embedding.params["W"][tokens]               # (B, E) [ops:embedding]
        hs, cs = [], []
        for layer in range(self.lstm.num_layers):
            s = f"_l{layer}"
            h, c, _ = lstm_step_forward(x, state.h[:, layer], state.c[:, layer], p["W_ih" + s], p["W_hh" + s],
                                        p["b" + s])          # [lstm:preact] [lstm:cell]
            hs.append(h)
            cs.append(c)
            x = h
        logits = x @ self.output.params["W"].T + self.output.params["b"]       # (B, V) [ops:linear]
        log_probs, _ = log_softmax_forward(logits.astype(np.float64))          # [ops:log-softmax]
        return log_probs, LSTMLMState(np.stack(hs, axis=1), np.stack(cs, axis=1))
