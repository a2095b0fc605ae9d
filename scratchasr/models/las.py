"""Listen, Attend and Spell with location-aware attention and an optional joint CTC branch, registered as
``"las"``.

References: Chan, Jaitly, Le & Vinyals 2016, "Listen, attend and spell" (ICASSP; the pyramidal BiLSTM
listener and the speller s_i = RNN(s_{i-1}, y_{i-1}, c_{i-1}), c_i = Attend(s_i, h), P(y_i) from
[s_i; c_i]); Chorowski, Bahdanau, Serdyuk, Cho & Bengio 2015, "Attention-based models for speech
recognition" (location-aware attention, the ops in scratchasr/ops/additive_attention.py); Bengio, Vinyals,
Jaitly & Shazeer 2015, "Scheduled sampling for sequence prediction with recurrent neural networks";
Szegedy et al. 2016 (label smoothing); Watanabe, Hori, Kim, Hershey & Hayashi 2017, "Hybrid
CTC/attention architecture for end-to-end speech recognition" (the CTC branch, lambda = 0.3).
Equations and the hand-derived backward: docs/equations/attention_models.md ([las:*]).

    x (B, T, D) --FrameStack--> BLSTM --[concat 2 neighbours, BLSTM] x pyramid--> h (B, T', 2H)  [las:pyramid]
    speller, step i = 0..S (inputs <sos> y_1 .. y_S, targets y_1 .. y_S <eos>):
        s_i = LSTM([E u_i ; c_{i-1}], s_{i-1})                                         [las:speller-state]
        c_i, alpha_i = LocationAttention(s_i, h, alpha_{i-1}) per head, concatenated    [las:attend]
        z_i = W_o [s_i ; c_i] + b_o                                                      [las:output]
    loss = (1 - lambda) CE(z, y) + lambda CTC(W_ctc h + b_ctc, y)                       [las:joint-loss]

Options (``models.build("las", ..., **options)``):
    hidden (256): cells per direction of each listener BLSTM and of the speller LSTM; num_layers (3):
    listener BLSTM layers; pyramid (2): how many of the upper layers read pairs of concatenated frames
    (time reduction 2^pyramid; at most num_layers - 1); stack (1): frame stacking of the input;
    dropout (0.0): on the outputs of the listener layers below the top, training only; heads (1):
    location-aware attention heads (each with its own parameters; contexts concatenated); embed_dim (64);
    att_dim (128): attention projection width; conv_channels (10), conv_width (31, odd): the location
    filters over alpha_{i-1}; speller_layers (1); smoothing (False): sigmoid instead of softmax
    attention [attn:smooth]; label_smoothing (0.0); sampling_prob (0.0): scheduled sampling, the
    probability of feeding the speller its own sampled prediction instead of the reference label
    (training only, seeded generator: off by default so forward_loss is deterministic); ctc_weight (0.0):
    lambda of the joint CTC branch (0 = no branch, no parameters; 0.3 is Watanabe et al.'s setting).
    An utterance too short for CTC (with the branch on) has loss ``inf`` and no gradient.

Decoding (scratchasr/decode/attention.py): ``method="greedy"`` or ``"beam"``, options ``max_len_ratio``
(labels per encoder frame, 1.0), ``length_norm``, ``length_reward``, ``lm``/``lm_weight``, and
``ctc_weight`` (joint CTC/attention decoding with the CTC branch; default: the training ctc_weight for
beam search, 0 for greedy). Step interface:

    memory = model.encode(batch)                   # LASMemory(h, keys, lengths, ctc_log_probs)
    state = model.init_state(B, memory=memory)     # LASState: LSTM states, context, alpha + the memory
    log_probs, state = model.step(state, tokens)   # (B, V) float64, column 0 = <eos>
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .._validate import positive_int
from ..data.batch import Batch
from ..decode.attention import decode_attention
from ..losses import cross_entropy_loss, cross_entropy_loss_backward, ctc_loss, ctc_loss_backward
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.module import Module, ModuleList
from ..nn.stack import FrameStack
from ..ops.additive_attention import location_attention_backward, location_attention_forward
from ..ops.dropout import dropout_mask
from ..ops.lstm import lstm_step_backward, lstm_step_forward
from ..ops.softmax import log_softmax_forward
from .base import Model, check_batch, register
from .ctc_blstm import ctc_min_frames
from .seq2seq import check_probability, teacher_forcing

__all__ = ["LAS", "Listener", "Speller", "LASMemory", "LASState"]

BLANK = SOS = EOS = 0


# ----------------------------------------------------------------------------- listener


class ListenerCache(NamedTuple):
    masks: List[Optional[np.ndarray]]  # per layer: (B, T_l, 2H) dropout mask on its output, or None


class Listener(Module):
    """Pyramidal BiLSTM: ``forward(x (B, T, D), lengths) -> (h (B, T', 2H), lengths')``;
    ``backward(dh) -> dx``.

    Layer l >= num_layers - pyramid first concatenates neighbouring frames 2i, 2i+1 of the layer below
    (``FrameStack(2)``, a zero frame completes an odd length) [las:pyramid].
    """

    def __init__(self, input_size: int, hidden: int, *, num_layers: int, pyramid: int, stack: int,
                 dropout: float, seed: int, dtype) -> None:
        super().__init__()
        self.stack = FrameStack(stack)
        self.reduce = ModuleList([FrameStack(2 if k >= num_layers - pyramid and k > 0 else 1)
                                  for k in range(num_layers)])
        layers, d_in = [], input_size * stack
        for k in range(num_layers):
            d_in = d_in * self.reduce[k].k
            layers.append(LSTM(d_in, hidden, bidirectional=True, seed=seed + 11 * k, dtype=dtype))
            d_in = 2 * hidden
        self.layers = ModuleList(layers)
        self.output_size = 2 * hidden
        self.dropout = dropout
        self.dropout_rng = np.random.default_rng([seed, 5])

    def output_lengths(self, lengths) -> np.ndarray:
        L = self.stack.output_lengths(lengths)
        for r in self.reduce:
            L = r.output_lengths(L)
        return L

    def forward(self, x, lengths):
        h, L = self.stack(x, lengths)
        masks = []
        for k, (reduce, lstm) in enumerate(zip(self.reduce, self.layers)):
            h, L = reduce(h, L)  # [las:pyramid] concatenate 2 neighbours (k = 2) or pass through (k = 1)
            h = lstm(h, L)  # (B, T_l, 2H), zero past L
            m = None
            if self.training and self.dropout > 0 and k < len(self.layers) - 1:
                m = dropout_mask(self.dropout_rng, h.shape, self.dropout, h.dtype)
                h = h * m  # [ops:dropout]
            masks.append(m)
        self.push(ListenerCache(masks))
        return h, L

    def backward(self, dh):
        cache: ListenerCache = self.pop()
        for k in range(len(self.layers) - 1, -1, -1):
            if cache.masks[k] is not None:
                dh = dh * cache.masks[k]  # [ops:dropout-back]
            dh = self.reduce[k].backward(self.layers[k].backward(dh))
        return self.stack.backward(dh)


# ----------------------------------------------------------------------------- speller


class StepCache(NamedTuple):
    u: np.ndarray  # (B,) int64 input label of the step
    lstm: List[object]  # per speller layer: ops.lstm LSTMStepCache
    att: List[object]  # per head: ops.additive_attention AdditiveAttentionCache
    o: np.ndarray  # (B, H + heads*D) [s_i ; c_i], the output layer's input


class SpellerCache(NamedTuple):
    h: np.ndarray  # (B, T', D) listener outputs, 0 at padding
    steps: List[StepCache]  # one per output step
    out_valid: np.ndarray  # (B, U) bool, steps inside the output lengths


def _uniform(rng, shape, fan_in, dtype):
    k = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-k, k, shape).astype(dtype)


class Speller(Module):
    """Attention decoder. ``forward(h, lengths, inputs (B, U), out_lengths, sampling_prob=0, rng=None)
    -> (logits (B, U, V), alphas (B, U, heads, T'))``; ``backward(dlogits) -> dh``.
    Parameters: ``embed``, ``W_ih_l{k}``/``W_hh_l{k}``/``b_l{k}`` (LSTM),
    per head ``W_k{j}``, ``b_k{j}`` (keys), ``W_q{j}``, ``w{j}``, ``F{j}``, ``U{j}`` (location-aware
    energy), ``W_o``, ``b_o``.
    """

    def __init__(self, *, enc_dim: int, vocab: int, hidden: int, layers: int, embed_dim: int, att_dim: int,
                 heads: int, conv_channels: int, conv_width: int, smoothing: bool, seed: int, dtype) -> None:
        super().__init__()
        rng = np.random.default_rng([seed, 6])
        D, V, H, E, A, C, K = enc_dim, vocab, hidden, embed_dim, att_dim, conv_channels, conv_width
        self.H, self.L, self.heads, self.D, self.smoothing = H, layers, heads, D, smoothing
        self.add_param("embed", rng.standard_normal((V, E)).astype(dtype))
        d_in = E + heads * D
        for k in range(layers):
            self.add_param(f"W_ih_l{k}", _uniform(rng, (4 * H, d_in), H, dtype))
            self.add_param(f"W_hh_l{k}", _uniform(rng, (4 * H, H), H, dtype))
            self.add_param(f"b_l{k}", _uniform(rng, (4 * H,), H, dtype))
            d_in = H
        for j in range(heads):
            self.add_param(f"W_k{j}", _uniform(rng, (A, D), D, dtype))
            self.add_param(f"b_k{j}", _uniform(rng, (A,), D, dtype))
            self.add_param(f"W_q{j}", _uniform(rng, (A, H), H, dtype))
            self.add_param(f"w{j}", _uniform(rng, (A,), A, dtype))
            self.add_param(f"F{j}", _uniform(rng, (C, K), K, dtype))
            self.add_param(f"U{j}", _uniform(rng, (A, C), C, dtype))
        self.add_param("W_o", _uniform(rng, (V, H + heads * D), H + heads * D, dtype))
        self.add_param("b_o", _uniform(rng, (V,), H + heads * D, dtype))

    # the per-step computation, shared by training (with caches) and the step interface
    def keys(self, h: np.ndarray) -> np.ndarray:
        """(B, heads, T', A) projected memory k_j = W_k h_j + b_k, once per utterance [las:attend]."""
        P = self.params
        return np.stack([h @ P[f"W_k{j}"].T + P[f"b_k{j}"] for j in range(self.heads)], axis=1)

    def initial(self, h: np.ndarray, lengths: np.ndarray):
        """s_{-1} = 0, cell 0, c_{-1} = 0, alpha_{-1} uniform over the valid frames [las:speller-state]."""
        B, T, D = h.shape
        dt = h.dtype
        valid = np.arange(T)[None, :] < lengths[:, None]
        alpha = np.where(valid, 1.0 / np.maximum(lengths, 1)[:, None], 0).astype(dt)
        return (np.zeros((B, self.L, self.H), dt), np.zeros((B, self.L, self.H), dt),
                np.zeros((B, self.heads * D), dt), np.repeat(alpha[:, None, :], self.heads, axis=1))

    def one_step(self, u, s, cell, context, alpha, h, keys, lengths):
        """One speller step -> (logits (B, V), s, cell, context, alpha, lstm caches, attention caches, o)."""
        P = self.params
        # BEGIN ASSIGNMENT A4 points=2
        x = np.concatenate([P["embed"][u], context], axis=1)  # (B, E + heads*D) [las:speller-state]
        s_new, cell_new, lcs = np.empty_like(s), np.empty_like(cell), []
        for k in range(self.L):
            x, cell_new[:, k], lc = lstm_step_forward(x, np.ascontiguousarray(s[:, k]),
                                                      np.ascontiguousarray(cell[:, k]), P[f"W_ih_l{k}"],
                                                      P[f"W_hh_l{k}"], P[f"b_l{k}"])  # [lstm:cell]
            s_new[:, k] = x
            lcs.append(lc)
        ctx, alphas, acs = [], [], []
        for j in range(self.heads):
            c, a, ac = location_attention_forward(x, keys[:, j], h, alpha[:, j], lengths, P[f"W_q{j}"],
                                                  P[f"w{j}"], P[f"F{j}"], P[f"U{j}"],
                                                  smoothing=self.smoothing)  # [las:attend]
            ctx.append(c)
            alphas.append(a)
            acs.append(ac)
        context = np.concatenate(ctx, axis=1)  # (B, heads*D)
        o = np.concatenate([x, context], axis=1)  # (B, H + heads*D)
        logits = o @ P["W_o"].T + P["b_o"]  # [las:output]
        return logits, s_new, cell_new, context, np.stack(alphas, axis=1), lcs, acs, o
        # END ASSIGNMENT

    def forward(self, h, lengths, inputs, out_lengths, *, sampling_prob: float = 0.0, rng=None):
        B, T, D = h.shape
        U = inputs.shape[1]
        valid = np.arange(T)[None, :] < lengths[:, None]
        h = np.where(valid[:, :, None], h, 0)
        keys = self.keys(h)
        s, cell, context, alpha = self.initial(h, lengths)
        out_valid = np.arange(U)[None, :] < out_lengths[:, None]
        logits = np.zeros((B, U, self.params["W_o"].shape[0]), h.dtype)
        alphas = np.zeros((B, U, self.heads, T), h.dtype)
        steps = []
        u = inputs[:, 0]
        for i in range(U):
            if i > 0:
                u = inputs[:, i]
                if sampling_prob > 0:  # [las:scheduled-sampling] the model's own sample replaces u_i
                    z = logits[:, i - 1].astype(np.float64)
                    p = np.exp(z - z.max(1, keepdims=True))
                    p /= p.sum(1, keepdims=True)
                    sampled = (p.cumsum(1) < rng.random((B, 1))).sum(1).clip(0, p.shape[1] - 1)
                    u = np.where(rng.random(B) < sampling_prob, sampled, u)
            z, s, cell, context, alpha, lcs, acs, o = self.one_step(u, s, cell, context, alpha, h, keys,
                                                                    lengths)
            logits[:, i] = np.where(out_valid[:, i:i + 1], z, 0)
            alphas[:, i] = alpha
            steps.append(StepCache(u.astype(np.int64), lcs, acs, o))
        self.push(SpellerCache(h, steps, out_valid))
        return logits, alphas

    def backward(self, dlogits):
        """Backward through the U steps carrying ds, dcell (per layer), dc_{i-1}, dalpha_{i-1}.

        [las:dspeller]"""
        cache: SpellerCache = self.pop()
        P, G = self.params, self.grads
        h, steps = cache.h, cache.steps
        B, T, D = h.shape
        E = P["embed"].shape[1]
        H, L, heads = self.H, self.L, self.heads
        dh = np.zeros_like(h)
        dkeys = np.zeros((B, heads, T, P["W_k0"].shape[0]), h.dtype)
        ds = np.zeros((B, L, H), h.dtype)  # gradient reaching s_i of each layer from step i+1
        dcell = np.zeros((B, L, H), h.dtype)
        dctx = np.zeros((B, heads * D), h.dtype)  # gradient reaching c_i from step i+1's input
        dalpha = np.zeros((B, heads, T), h.dtype)  # gradient reaching alpha_i from step i+1's location conv
        # BEGIN ASSIGNMENT A4 points=3
        for i in range(len(steps) - 1, -1, -1):
            st = steps[i]
            dz = np.where(cache.out_valid[:, i:i + 1], dlogits[:, i], 0)  # (B, V)
            G["W_o"] += dz.T @ st.o  # [las:output]
            G["b_o"] += dz.sum(0)
            do = dz @ P["W_o"]  # (B, H + heads*D)
            ds_top = ds[:, L - 1] + do[:, :H]
            dctx = dctx + do[:, H:]
            for j in range(heads):  # [las:dspeller] attention: query s_i, memory h, alpha_{i-1}
                g = location_attention_backward(dctx[:, j * D:(j + 1) * D], st.att[j], dalpha[:, j])
                dquery, dk, dv, dalpha_prev, dW_q, dw, dF, dU = g  # the op's return order [attn:dlocation]
                ds_top = ds_top + dquery
                dkeys[:, j] += dk
                dh += dv
                dalpha[:, j] = dalpha_prev
                G[f"W_q{j}"] += dW_q
                G[f"w{j}"] += dw
                G[f"F{j}"] += dF
                G[f"U{j}"] += dU
            dx = ds_top
            for k in range(L - 1, -1, -1):  # LSTM layers, top first [lstm:dcell]
                dh_k = dx if k == L - 1 else dx + ds[:, k]
                g = lstm_step_backward(dh_k, dcell[:, k], st.lstm[k])
                dx, ds[:, k], dcell[:, k], dW_ih, dW_hh, db = g
                G[f"W_ih_l{k}"] += dW_ih
                G[f"W_hh_l{k}"] += dW_hh
                G[f"b_l{k}"] += db
            np.add.at(G["embed"], st.u, dx[:, :E])  # [ops:embedding-back]
            dctx = dx[:, E:]  # c_{i-1} was part of this step's input
        for j in range(heads):  # keys were computed once: their gradient is summed over steps
            G[f"W_k{j}"] += np.einsum("bta,btd->ad", dkeys[:, j], h)
            G[f"b_k{j}"] += dkeys[:, j].sum((0, 1))
            dh += dkeys[:, j] @ P[f"W_k{j}"]
        return dh
        # END ASSIGNMENT


# ----------------------------------------------------------------------------- the model


class LASMemory(NamedTuple):
    h: np.ndarray  # (B, T', D) listener outputs
    keys: np.ndarray  # (B, heads, T', A) projected memory
    lengths: np.ndarray  # (B,) encoder frames
    ctc_log_probs: Optional[np.ndarray]  # (B, T', V) float64 CTC branch log-posteriors, or None


class LASState(NamedTuple):
    s: np.ndarray  # (B, L, H) speller LSTM outputs
    cell: np.ndarray  # (B, L, H) speller LSTM cells
    context: np.ndarray  # (B, heads*D) c_{i-1}
    alpha: np.ndarray  # (B, heads, T') alpha_{i-1}
    h: np.ndarray  # (B, T', D) the memory rows travel with the hypotheses
    keys: np.ndarray  # (B, heads, T', A)
    lengths: np.ndarray  # (B,)


class LASCache(NamedTuple):
    ce: object  # CrossEntropyCache
    ctc: Optional[object]  # CTCCache or None
    feasible: np.ndarray  # (B,) bool
    h_shape: tuple  # (B, T', D)
    dtype: np.dtype


@register("las")
class LAS(Model):
    """Pyramidal BiLSTM listener + location-aware attention speller (+ CTC); see the module docstring."""

    OPTIONS = dict(hidden=256, num_layers=3, pyramid=2, stack=1, dropout=0.0, heads=1, embed_dim=64,
                   att_dim=128, conv_channels=10, conv_width=31, speller_layers=1, smoothing=False,
                   label_smoothing=0.0, sampling_prob=0.0, ctc_weight=0.0)
    TEST_OPTIONS = dict(num_layers=2, pyramid=1, embed_dim=4, att_dim=5, conv_channels=2, conv_width=3,
                        ctc_weight=0.3)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 pyramid: int, stack: int, dropout: float, heads: int, embed_dim: int, att_dim: int,
                 conv_channels: int, conv_width: int, speller_layers: int, smoothing: bool,
                 label_smoothing: float, sampling_prob: float, ctc_weight: float) -> None:
        super().__init__()
        for name, v in (("hidden", hidden), ("num_layers", num_layers), ("stack", stack), ("heads", heads),
                        ("embed_dim", embed_dim), ("att_dim", att_dim), ("conv_channels", conv_channels),
                        ("conv_width", conv_width), ("speller_layers", speller_layers)):
            positive_int(name, v)
        positive_int("pyramid", pyramid, minimum=0)
        if pyramid > num_layers - 1:
            raise ValueError(f"pyramid: expected at most num_layers - 1 = {num_layers - 1} reductions (the "
                             f"first layer reads the input frames), got {pyramid}")
        if conv_width % 2 == 0:
            raise ValueError(f"conv_width: expected an odd width (a centred filter), got {conv_width}")
        if not isinstance(smoothing, bool):
            raise TypeError(f"smoothing: expected True or False, got {smoothing!r}")
        self.dropout = check_probability("dropout", dropout)
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)
        self.sampling_prob = check_probability("sampling_prob", sampling_prob, high_inclusive=True)
        self.ctc_weight = check_probability("ctc_weight", ctc_weight)
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.listener = Listener(input_dim, hidden, num_layers=num_layers, pyramid=pyramid, stack=stack,
                                 dropout=self.dropout, seed=seed, dtype=dtype)
        self.speller = Speller(enc_dim=self.listener.output_size, vocab=vocab_size, hidden=hidden,
                               layers=speller_layers, embed_dim=embed_dim, att_dim=att_dim, heads=heads,
                               conv_channels=conv_channels, conv_width=conv_width, smoothing=smoothing,
                               seed=seed, dtype=dtype)
        if self.ctc_weight > 0:
            self.ctc = Linear(self.listener.output_size, vocab_size, rng=np.random.default_rng([seed, 8]),
                              dtype=dtype)
        self.sampling_rng = np.random.default_rng([seed, 9])

    # ------------------------------------------------------------------ contract
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        h, enc_len = self.listener(x, xl)  # [las:pyramid]
        inputs, outputs, out_len = teacher_forcing(y, yl)
        p = self.sampling_prob if self.training else 0.0
        logits, _ = self.speller(h, enc_len, inputs, out_len, sampling_prob=p, rng=self.sampling_rng)
        att, ce = cross_entropy_loss(logits, outputs, out_len, label_smoothing=self.label_smoothing,
                                     reduction="none")  # [xent:loss]
        att = att.astype(np.float64)
        lam = self.ctc_weight
        feasible = np.ones(len(yl), bool)
        ctc_cache, stats = None, {}
        loss = att
        if lam > 0:
            ctc_logits = self.ctc(h, enc_len)  # [ops:linear]
            feasible = ctc_min_frames(y, yl) <= enc_len
            nll, ctc_cache = ctc_loss(ctc_logits, y, enc_len, yl, blank=BLANK, reduction="none",
                                      zero_infinity=True)
            loss = np.where(feasible, (1 - lam) * att + lam * nll, np.inf)  # [las:joint-loss]
            stats["ctc_loss"] = float(nll[feasible].sum())
        self.push(LASCache(ce, ctc_cache, feasible, h.shape, logits.dtype))
        stats.update(loss=float(loss[feasible].sum()), att_loss=float(att[feasible].sum()),
                     utterances=float(feasible.sum()), labels=float(out_len.sum()),
                     frames=float(enc_len.sum()))
        return loss, stats

    def backward(self, dloss: np.ndarray) -> np.ndarray:
        cache: LASCache = self.pop()
        dloss = self._check_dloss(dloss, cache.feasible.shape[0])
        dloss = np.where(cache.feasible, dloss, 0.0)  # skipped utterances: no gradient
        lam = self.ctc_weight
        dlogits = cross_entropy_loss_backward((1 - lam) * dloss, cache.ce).astype(cache.dtype, copy=False)
        dh = self.speller.backward(dlogits)  # [las:dspeller]
        if cache.ctc is not None:
            dctc = ctc_loss_backward(lam * dloss, cache.ctc)  # [las:joint-loss]
            dctc = dctc.astype(cache.dtype, copy=False)
            dh = dh + self.ctc.backward(dctc)
        return self.listener.backward(dh)

    # ------------------------------------------------------------------ step interface
    def encode(self, batch: Batch) -> LASMemory:
        """Listener outputs, attention keys and (with the branch) CTC log-posteriors; no caches."""
        x, xl, _, _ = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                  dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            h, enc_len = self.listener(x, xl)
            lp = None
            if self.ctc_weight > 0:
                lp, _ = log_softmax_forward(self.ctc(h, enc_len).astype(np.float64))
        finally:
            self.train(was)
        return LASMemory(h, self.speller.keys(h), enc_len, lp)

    def init_state(self, batch_size: int, *, memory: LASMemory) -> LASState:
        B = positive_int("batch_size", batch_size)
        if not isinstance(memory, LASMemory) or memory.h.shape[0] != B:
            raise ValueError(f"memory: expected an LASMemory of {B} rows (model.encode(batch))")
        s, cell, context, alpha = self.speller.initial(memory.h, memory.lengths)
        return LASState(s, cell, context, alpha, memory.h, memory.keys, memory.lengths)

    def step(self, state: LASState, tokens) -> Tuple[np.ndarray, LASState]:
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.shape != (state.s.shape[0],) or tokens.min(initial=0) < 0 or \
                tokens.max(initial=0) >= self.vocab_size:
            raise ValueError(f"tokens: expected ({state.s.shape[0]},) ids in [0, {self.vocab_size})")
        z, s, cell, context, alpha, _, _, _ = self.speller.one_step(
            tokens, state.s, state.cell, state.context, state.alpha, state.h, state.keys, state.lengths)
        lp, _ = log_softmax_forward(z.astype(np.float64))  # [ops:log-softmax]
        return lp, state._replace(s=s, cell=cell, context=context, alpha=alpha)

    def attention(self, batch: Batch) -> Tuple[np.ndarray, np.ndarray]:
        """Teacher-forced attention weights (B, S+1, heads, T') and the encoder lengths (for plots)."""
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            h, enc_len = self.listener(x, xl)
            inputs, _, out_len = teacher_forcing(y, yl)
            _, alphas = self.speller(h, enc_len, inputs, out_len)
        finally:
            self.train(was)
        return alphas, enc_len

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, ctc_weight: Optional[float] = None, **options) -> List[List[int]]:
        beam_size = self._check_decode_args(method, beam_size)
        if ctc_weight is None:
            ctc_weight = self.ctc_weight if method == "beam" else 0.0
        return decode_attention(self, self.encode(batch), method=method, beam_size=beam_size, lm=lm,
                                lm_weight=lm_weight, ctc_weight=ctc_weight, **options)
