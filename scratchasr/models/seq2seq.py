"""RNN encoder-decoder WITHOUT attention (Sutskever, Vinyals & Le 2014, "Sequence to sequence learning with
neural networks"; Cho et al. 2014, "Learning phrase representations using RNN encoder-decoder"),
registered as ``"seq2seq"``: the fixed-vector bottleneck, kept deliberately simple.

    x (B, T, D) --FrameStack k--> LSTM encoder (L layers) --> final states (h_T^l, c_T^l) of every layer
    decoder LSTM (L layers) starts from them [s2s:bridge]; inputs <sos> y_1 .. y_S, targets y_1 .. y_S <eos>
    z_i = W_o s_i + b_o, loss = sum_i CE(z_i, y_i) (label smoothing optional)       [s2s:decoder]

Everything the decoder knows about the utterance passes through the 2 L H numbers of the encoder's final
states, whatever its length: the lecture's point is that this degrades as inputs grow. Equations and the
backward (the bridge carries the decoder's initial-state gradients into the encoder's final states):
docs/equations/attention_models.md.

Options (``models.build("seq2seq", ..., **options)``):
    hidden (256): LSTM cells (encoder and decoder: the states are copied); num_layers (2); dropout (0.0)
    between encoder layers and on the decoder's embeddings, training only; stack (3): frame stacking
    factor of the encoder input; embed_dim (64): label embedding size; label_smoothing (0.0).

Decoding (``method="greedy"`` or ``"beam"``; options ``max_len_ratio`` (labels per encoder frame, default
1.0), ``length_norm``, ``length_reward``; LM shallow fusion with ``lm``/``lm_weight``) goes through the
step interface with scratchasr/decode/attention.py:

    memory = model.encode(batch)                   # Seq2SeqMemory(h, c (B, L, H), lengths (B,))
    state = model.init_state(B, memory=memory)     # Seq2SeqState(h, c (B, L, H))
    log_probs, state = model.step(state, tokens)   # (B, V) float64, column 0 = <eos>
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .._validate import positive_int
from ..data.batch import Batch
from ..decode.attention import decode_attention
from ..losses import cross_entropy_loss, cross_entropy_loss_backward
from ..nn.layers import Embedding, Linear
from ..nn.lstm import init_lstm_params
from ..nn.module import Module
from ..nn.stack import FrameStack
from ..ops.dropout import dropout_mask
from ..ops.lstm import lstm_backward, lstm_forward, lstm_step_forward
from ..ops.softmax import log_softmax_forward
from .base import Model, check_batch, register

__all__ = ["Seq2Seq", "StatefulLSTM", "Seq2SeqMemory", "Seq2SeqState", "teacher_forcing", "check_probability"]

SOS = EOS = 0


def check_probability(name: str, value, *, high_inclusive: bool = False) -> float:
    """A float in [0, 1) (or [0, 1]); the error names the option."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = 0.0 <= v <= 1.0 if high_inclusive else 0.0 <= v < 1.0
    if not ok:
        raise ValueError(f"{name}: expected a number in [0, 1{']' if high_inclusive else ')'}, got {value!r}")
    return float(value)


def teacher_forcing(targets: np.ndarray, target_lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray,
                                                                              np.ndarray]:
    """(B, S) targets -> decoder inputs ``<sos> y_1 .. y_S`` and outputs ``y_1 .. y_S <eos>``, (B, S+1) each,
    and their lengths S_b + 1 [s2s:teacher]. Padding holds 0."""
    B, S = targets.shape
    valid = np.arange(S)[None, :] < target_lengths[:, None]
    y = np.where(valid, targets, 0)
    inputs = np.concatenate([np.full((B, 1), SOS, np.int64), y], axis=1)  # [s2s:teacher]
    outputs = np.concatenate([y, np.zeros((B, 1), np.int64)], axis=1)
    outputs[np.arange(B), target_lengths] = EOS  # <eos> right after the last label
    return inputs, outputs, target_lengths + 1


class StatefulCache(NamedTuple):
    lstm: List[object]  # per layer: ops.lstm LSTMCache
    dropout: List[Optional[np.ndarray]]  # per layer boundary: (B, T, H) scaled keep mask, or None


class StatefulLSTM(Module):
    """Unidirectional stacked LSTM that takes initial states and returns final states.

    ``forward(x (B, T, D), lengths, h0=None, c0=None) -> (y (B, T, H), h_n (B, L, H), c_n (B, L, H))``;
    ``backward(dy, dh_n=None, dc_n=None) -> (dx, dh0 (B, L, H), dc0 (B, L, H))``. Layer l's initial and
    final states are ``[:, l]``. Parameters as nn.LSTM (``W_ih_l0``, ``W_hh_l0``, ``b_l0``, ...).
    """

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int, dropout: float, seed: int,
                 dtype) -> None:
        super().__init__()
        self.H, self.L, self.dropout = hidden_size, num_layers, float(dropout)
        rng = np.random.default_rng(seed)
        for k, v in init_lstm_params(rng, input_size=input_size, hidden_size=hidden_size,
                                     num_layers=num_layers, dtype=dtype).items():
            self.add_param(k, v)
        self.dropout_rng = np.random.default_rng([seed, 1])

    def forward(self, x, lengths, h0=None, c0=None):
        B, T, _ = x.shape
        dt = x.dtype
        zeros = np.zeros((B, self.L, self.H), dt)
        h0 = zeros if h0 is None else h0
        c0 = zeros if c0 is None else c0
        caches, masks, hn, cn = [], [], np.zeros_like(zeros), np.zeros_like(zeros)
        inp = x
        for layer in range(self.L):
            P = {k: self.params[f"{k}_l{layer}"] for k in ("W_ih", "W_hh", "b")}
            y, (hn[:, layer], cn[:, layer]), c = lstm_forward(
                inp, lengths, np.ascontiguousarray(h0[:, layer]), np.ascontiguousarray(c0[:, layer]),
                P["W_ih"], P["W_hh"], P["b"])  # [lstm:preact]
            caches.append(c)
            m = None
            if self.training and self.dropout > 0 and layer < self.L - 1:
                m = dropout_mask(self.dropout_rng, y.shape, self.dropout, dt)
                y = y * m  # [ops:dropout]
            masks.append(m)
            inp = y
        self.push(StatefulCache(caches, masks))
        return inp, hn, cn

    def backward(self, dy, dh_n=None, dc_n=None):
        cache: StatefulCache = self.pop()
        B = dy.shape[0]
        dh0 = np.zeros((B, self.L, self.H), dy.dtype)
        dc0 = np.zeros_like(dh0)
        for layer in range(self.L - 1, -1, -1):
            if cache.dropout[layer] is not None:
                dy = dy * cache.dropout[layer]  # [ops:dropout-back]
            g = lstm_backward(dy, cache.lstm[layer], None if dh_n is None else dh_n[:, layer],
                              None if dc_n is None else dc_n[:, layer])  # [lstm:dcell]
            dy, dh0[:, layer], dc0[:, layer] = g[0], g[1], g[2]
            for k, d in zip(("W_ih", "W_hh", "b"), g[3:]):
                self.grads[f"{k}_l{layer}"] += d
        return dy, dh0, dc0

    def step(self, x, h, c):
        """One time step of every layer without caches: x (B, D), h, c (B, L, H) -> y (B, H), h, c."""
        h_new, c_new = np.empty_like(h), np.empty_like(c)
        for layer in range(self.L):
            P = {k: self.params[f"{k}_l{layer}"] for k in ("W_ih", "W_hh", "b")}
            x, c_new[:, layer], _ = lstm_step_forward(x, np.ascontiguousarray(h[:, layer]),
                                                      np.ascontiguousarray(c[:, layer]), P["W_ih"], P["W_hh"],
                                                      P["b"])  # [lstm:cell]
            h_new[:, layer] = x
        return x, h_new, c_new


class Seq2SeqMemory(NamedTuple):
    h: np.ndarray  # (B, L, H) encoder final hidden states, one per layer
    c: np.ndarray  # (B, L, H) encoder final cell states
    lengths: np.ndarray  # (B,) encoder frames (the decoding length limit is tied to them)


class Seq2SeqState(NamedTuple):
    h: np.ndarray  # (B, L, H) decoder hidden states
    c: np.ndarray  # (B, L, H) decoder cell states


class Seq2SeqCache(NamedTuple):
    ce: object  # losses.cross_entropy CrossEntropyCache
    emb_mask: Optional[np.ndarray]  # (B, S+1, E) dropout mask on the decoder inputs, or None
    enc_shape: tuple  # (B, T', H) of the encoder outputs (which receive no gradient: unused)
    dtype: np.dtype


@register("seq2seq")
class Seq2Seq(Model):
    """LSTM encoder -> final states -> LSTM decoder (no attention); see the module docstring."""

    OPTIONS = dict(hidden=256, num_layers=2, dropout=0.0, stack=3, embed_dim=64, label_smoothing=0.0)
    TEST_OPTIONS = dict(stack=2, embed_dim=5)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 dropout: float, stack: int, embed_dim: int, label_smoothing: float) -> None:
        super().__init__()
        positive_int("hidden", hidden)
        positive_int("num_layers", num_layers)
        positive_int("embed_dim", embed_dim)
        positive_int("stack", stack)
        self.dropout = check_probability("dropout", dropout)
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.stack = FrameStack(stack)
        self.encoder = StatefulLSTM(input_dim * self.stack.k, hidden, num_layers=num_layers, dropout=dropout,
                                    seed=seed, dtype=dtype)
        self.embed = Embedding(vocab_size, embed_dim, rng=np.random.default_rng([seed, 3]), dtype=dtype)
        self.decoder = StatefulLSTM(embed_dim, hidden, num_layers=num_layers, dropout=dropout, seed=seed + 7,
                                    dtype=dtype)
        self.output = Linear(hidden, vocab_size, rng=np.random.default_rng([seed, 2]), dtype=dtype)
        self.dropout_rng = np.random.default_rng([seed, 4])

    # ------------------------------------------------------------------ contract
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        xs, enc_len = self.stack(x, xl)
        enc, h_n, c_n = self.encoder(xs, enc_len)  # [s2s:encoder] only the final states are used
        inputs, outputs, out_len = teacher_forcing(y, yl)  # [s2s:teacher]
        e = self.embed(inputs, out_len)  # (B, S+1, E)
        mask = None
        if self.training and self.dropout > 0:
            mask = dropout_mask(self.dropout_rng, e.shape, self.dropout, e.dtype)
            e = e * mask  # [ops:dropout]
        s, _, _ = self.decoder(e, out_len, h_n, c_n)  # [s2s:bridge] [s2s:decoder]
        logits = self.output(s, out_len)  # (B, S+1, V) [s2s:decoder]
        loss, ce = cross_entropy_loss(logits, outputs, out_len, label_smoothing=self.label_smoothing,
                                      reduction="none")  # [xent:loss]
        self.push(Seq2SeqCache(ce, mask, enc.shape, logits.dtype))
        stats = dict(loss=float(loss.sum()), utterances=float(len(loss)), labels=float(out_len.sum()),
                     frames=float(enc_len.sum()))
        return loss.astype(np.float64), stats

    def backward(self, dloss: np.ndarray) -> np.ndarray:
        cache: Seq2SeqCache = self.pop()
        dloss = self._check_dloss(dloss, cache.ce.shape[0])
        dlogits = cross_entropy_loss_backward(dloss, cache.ce).astype(cache.dtype, copy=False)  # [xent:grad]
        ds = self.output.backward(dlogits)
        de, dh0, dc0 = self.decoder.backward(ds)
        if cache.emb_mask is not None:
            de = de * cache.emb_mask  # [ops:dropout-back]
        self.embed.backward(de)
        dxs, _, _ = self.encoder.backward(np.zeros(cache.enc_shape, cache.dtype), dh0, dc0)  # [s2s:dbridge]
        return self.stack.backward(dxs)

    # ------------------------------------------------------------------ step interface
    def encode(self, batch: Batch) -> Seq2SeqMemory:
        """Encoder final states of every utterance, without caches (eval mode inside)."""
        x, xl, _, _ = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                  dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            xs, enc_len = self.stack(x, xl)
            _, h_n, c_n = self.encoder(xs, enc_len)
        finally:
            self.train(was)
        return Seq2SeqMemory(h_n, c_n, enc_len)

    def init_state(self, batch_size: int, *, memory: Seq2SeqMemory) -> Seq2SeqState:
        B = positive_int("batch_size", batch_size)
        if not isinstance(memory, Seq2SeqMemory) or memory.h.shape[0] != B:
            raise ValueError(f"memory: expected a Seq2SeqMemory of {B} rows (model.encode(batch))")
        return Seq2SeqState(memory.h.copy(), memory.c.copy())  # [s2s:bridge]

    def step(self, state: Seq2SeqState, tokens) -> Tuple[np.ndarray, Seq2SeqState]:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.shape != (state.h.shape[0],) or tokens.min(initial=0) < 0 or \
                tokens.max(initial=0) >= self.vocab_size:
            raise ValueError(f"tokens: expected ({state.h.shape[0]},) ids in [0, {self.vocab_size})")
        s, h, c = self.decoder.step(self.embed.params["W"][tokens], state.h, state.c)  # [s2s:decoder]
        logits = s @ self.output.params["W"].T + self.output.params["b"]
        lp, _ = log_softmax_forward(logits.astype(np.float64))  # [ops:log-softmax]
        return lp, Seq2SeqState(h, c)

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, **options) -> List[List[int]]:
        beam_size = self._check_decode_args(method, beam_size)
        return decode_attention(self, self.encode(batch), method=method, beam_size=beam_size, lm=lm,
                                lm_weight=lm_weight, **options)
