"""MoChA attention decoder: LSTM decoder + monotonic energy + chunk energy + output layer.

References: Raffel et al. 2017 (monotonic attention, decoder s_i = RNN(s_{i-1}, y_{i-1}, c_i),
energy of the practitioner's guide); Chiu & Raffel 2018 (MoChA). Equations: docs/equations/mocha.md.

One output step i (teacher forcing: y_{i-1} is the previous reference label, y_0 = sos):

    e_i   = MonotonicEnergy(s_{i-1}, h)          [mocha:mono-energy]
    p_i   = sigmoid(e_i + noise)                 [mocha:prob-noise]   (noise in training only)
    a_i   = MonotonicAttention(p_i, a_{i-1})     [mocha:alpha-rec]    (a_0 one-hot on frame 0)
    u_i   = ChunkEnergy(s_{i-1}, h)              [mocha:chunk-energy]
    b_i   = ChunkWeights(a_i, u_i)               [mocha:beta]
    c_i   = sum_j b_ij h_j                       [mocha:context]
    s_i   = LSTM([E y_{i-1}; c_i], s_{i-1})      [mocha:decoder-state]
    z_i   = W_o [s_i; c_i] + b_o                 [mocha:output]

The attention at step i reads only s_{i-1}, so at test time the hard attention decision for step i
is made before the LSTM runs, and label i can be emitted as soon as frame t_i has arrived
(``scratchasr.decode.mocha_streaming``).

The forward/backward core is functional (``decoder_forward``/``decoder_backward`` take the
parameter dict) so finite differences can perturb any parameter; ``MochaDecoder`` keeps
``params``/``grads`` dicts and a cache stack like every module.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

import numpy as np

from .._validate import float_array, int_array, lengths_array, length_mask, positive_int
from .module import Module
from ..ops.lstm import lstm_step_backward, lstm_step_forward
from ..ops.mocha import mocha_chunk_backward, mocha_chunk_forward, monotonic_attention_backward, \
    monotonic_attention_forward
from ..ops.mocha_energy import chunk_energy_backward, chunk_energy_forward, monotonic_energy_backward, \
    monotonic_energy_forward, monotonic_probability_backward, monotonic_probability_forward

__all__ = ["MochaDecoder", "init_mocha_params", "decoder_forward", "decoder_backward", "PARAM_NAMES"]

PARAM_NAMES = ("embed", "W_ih", "W_hh", "b", "W_hm", "b_m", "W_qm", "v_m", "g", "r",
               "W_hc", "b_c", "W_qc", "v_c", "W_o", "b_o")


def init_mocha_params(rng: np.random.Generator, *, enc_dim: int, vocab: int, embed_dim: int, hidden: int,
                      att_dim: int, r_init: float = -4.0, dtype=np.float32) -> Dict[str, np.ndarray]:
    """Uniform(+-1/sqrt(fan_in)) weights (PyTorch's LSTM/Linear default), g = sqrt(1/A), r = r_init."""
    D, V, E, H, A = enc_dim, vocab, embed_dim, hidden, att_dim

    def U(shape, fan_in):
        k = 1 / np.sqrt(fan_in)
        return rng.uniform(-k, k, size=shape)

    params = {"embed": rng.standard_normal((V, E)) * 0.3,
            "W_ih": U((4 * H, E + D), H), "W_hh": U((4 * H, H), H), "b": U((4 * H,), H),
            "W_hm": U((A, D), D), "b_m": U((A,), D), "W_qm": U((A, H), H), "v_m": U((A,), A),
            "g": np.array(np.sqrt(1.0 / A)), "r": np.array(float(r_init)),
            "W_hc": U((A, D), D), "b_c": U((A,), D), "W_qc": U((A, H), H), "v_c": U((A,), A),
            "W_o": U((V, H + D), H + D), "b_o": U((V,), H + D)}
    return {k: np.asarray(v, dtype=dtype) for k, v in params.items()}


class StepCache(NamedTuple):
    y_prev: np.ndarray  # (B,) int previous labels
    e_cache: tuple  # MonotonicEnergyCache
    p_cache: tuple  # MonotonicProbabilityCache
    a_cache: tuple  # MonotonicAttentionCache
    u_cache: tuple  # ChunkEnergyCache
    b_cache: tuple  # MochaChunkCache
    beta: np.ndarray  # (B, T)
    lstm_cache: tuple  # LSTMStepCache
    sc: np.ndarray  # (B, H + D) output layer input [s_i; c_i]


class DecoderCache(NamedTuple):
    enc: np.ndarray  # (B, T, D) encoder outputs, 0 at padding
    valid: np.ndarray  # (B, T) bool
    out_valid: np.ndarray  # (B, U) bool, label steps inside label_lengths
    steps: List[StepCache]  # one per output step
    alphas: np.ndarray  # (B, U, T) expected alignments (for plots)
    betas: np.ndarray  # (B, U, T) chunkwise weights


def decoder_forward(params: Dict[str, np.ndarray], enc: np.ndarray, lengths, prev_labels, *, chunk_size: int,
                    mode: str = "recursive", noise_std: float = 0.0,
                    rng: Optional[np.random.Generator] = None, label_lengths=None):
    """Teacher-forced MoChA decoder over U steps.

    enc (B, T, D) encoder outputs; lengths (B,) >= 1; prev_labels (B, U) int (sos then the reference
    shifted right); label_lengths (B,) steps to keep (default U) -> logits (B, U, V), 0 at padded
    steps, and the cache.
    """
    float_array("enc", enc, ndim=3)
    B, T, D = enc.shape
    lengths = lengths_array("lengths", lengths, B, T, allow_zero=False)
    prev_labels = int_array("prev_labels", prev_labels, ndim=2, shape=(B, None))
    U = prev_labels.shape[1]
    V = params["W_o"].shape[0]
    if prev_labels.size and (prev_labels.min() < 0 or prev_labels.max() >= V):
        raise ValueError(f"prev_labels: expected values in [0, {V}), "
                         f"got [{prev_labels.min()}, {prev_labels.max()}]")
    out_valid = length_mask(lengths_array("label_lengths", label_lengths, B, U), U)
    valid = length_mask(lengths, T)
    P = params
    dtype = P["W_hh"].dtype
    if enc.dtype != dtype:
        raise TypeError(f"enc: expected the parameters' dtype {dtype}, got {enc.dtype}")
    enc = np.where(valid[:, :, None], enc, 0)  # NaN in padding never reaches the arithmetic
    H = P["W_hh"].shape[1]
    keys_m = enc @ P["W_hm"].T + P["b_m"]  # (B, T, A) computed once for all steps
    keys_c = enc @ P["W_hc"].T + P["b_c"]
    s, cell = np.zeros((B, H), dtype), np.zeros((B, H), dtype)
    alpha = np.zeros((B, T), dtype)
    alpha[:, 0] = 1.0  # a_0: one-hot on the first frame
    steps, logits = [], np.zeros((B, U, V), dtype)
    alphas, betas = np.zeros((B, U, T), dtype), np.zeros((B, U, T), dtype)
    for i in range(U):
        e, ec = monotonic_energy_forward(s, keys_m, P["W_qm"], P["v_m"], P["g"], P["r"], lengths=lengths)
        p, pc = monotonic_probability_forward(e, noise_std=noise_std, rng=rng, lengths=lengths)
        alpha, ac = monotonic_attention_forward(p, alpha, mode=mode, lengths=lengths)
        u, uc = chunk_energy_forward(s, keys_c, P["W_qc"], P["v_c"], lengths=lengths)
        beta, bc = mocha_chunk_forward(alpha, u, chunk_size=chunk_size, lengths=lengths)
        c = np.einsum("bt,btd->bd", beta, enc)  # (B, D) [mocha:context]
        y = prev_labels[:, i]
        x = np.concatenate([P["embed"][y], c], axis=1)  # (B, E + D)
        s, cell, lc = lstm_step_forward(x, s, cell, P["W_ih"], P["W_hh"], P["b"])  # [mocha:decoder-state]
        sc = np.concatenate([s, c], axis=1)  # (B, H + D)
        logits[:, i] = np.where(out_valid[:, i:i + 1], sc @ P["W_o"].T + P["b_o"], 0)  # [mocha:output]
        steps.append(StepCache(y, ec, pc, ac, uc, bc, beta, lc, sc))
        alphas[:, i], betas[:, i] = alpha, beta
    return logits, DecoderCache(enc, valid, out_valid, steps, alphas, betas)


def decoder_backward(dlogits: np.ndarray, params: Dict[str, np.ndarray], cache: DecoderCache):
    """dlogits (B, U, V) -> denc (B, T, D), grads dict (one entry per parameter).

    Reverse loop over steps carrying ds (B, H), dcell (B, H) and dalpha (B, T) (the gradient that
    step i+1 sends to its alpha_prev). [mocha:ddecoder]
    """
    enc, valid, out_valid, steps = cache.enc, cache.valid, cache.out_valid, cache.steps
    B, T, D = enc.shape
    U = len(steps)
    P = params
    H = P["W_hh"].shape[1]
    E = P["embed"].shape[1]
    float_array("dlogits", dlogits, shape=(B, U, P["W_o"].shape[0]))
    G = {k: np.zeros_like(v) for k, v in P.items()}
    denc = np.zeros((B, T, D), enc.dtype)
    dkeys_m, dkeys_c = np.zeros((B, T, P["W_hm"].shape[0])), np.zeros((B, T, P["W_hc"].shape[0]))
    # ds, dcell in the forward's dtype: lstm_step_backward refuses a gradient in another dtype
    ds, dcell, dalpha_next = np.zeros((B, H), enc.dtype), np.zeros((B, H), enc.dtype), np.zeros((B, T))
    for i in range(U - 1, -1, -1):
        st = steps[i]
        dz = np.where(out_valid[:, i:i + 1], dlogits[:, i], 0)  # (B, V)
        G["W_o"] += dz.T @ st.sc  # [mocha:output]
        G["b_o"] += dz.sum(0)
        dsc = dz @ P["W_o"]  # (B, H + D)
        ds = ds + dsc[:, :H]
        dc = dsc[:, H:]
        # [mocha:decoder-state] backward
        dx, ds, dcell, dW_ih, dW_hh, db = lstm_step_backward(ds, dcell, st.lstm_cache)
        G["W_ih"] += dW_ih
        G["W_hh"] += dW_hh
        G["b"] += db
        np.add.at(G["embed"], st.y_prev, dx[:, :E])  # embedding rows receive their gradient
        dc = dc + dx[:, E:]
        denc += st.beta[:, :, None] * dc[:, None, :]  # [mocha:context]
        dbeta = np.einsum("btd,bd->bt", enc, dc)
        dalpha, du = mocha_chunk_backward(dbeta, st.b_cache)
        dp, dalpha_next = monotonic_attention_backward(dalpha + dalpha_next, st.a_cache)
        de = monotonic_probability_backward(dp, st.p_cache)
        dq_m, dk_m, dW_qm, dv_m, dg, dr = monotonic_energy_backward(de, st.e_cache)
        dq_c, dk_c, dW_qc, dv_c = chunk_energy_backward(du, st.u_cache)
        ds = ds + dq_m + dq_c  # s_{i-1} is the query of step i
        dkeys_m += dk_m
        dkeys_c += dk_c
        for k, gk in (("W_qm", dW_qm), ("v_m", dv_m), ("g", dg), ("r", dr), ("W_qc", dW_qc), ("v_c", dv_c)):
            G[k] += gk
    # keys = enc W_h^T + b was computed once, so its gradient is taken once, summed over steps
    for kw, kb, dk in (("W_hm", "b_m", dkeys_m), ("W_hc", "b_c", dkeys_c)):
        G[kw] += np.einsum("bta,btd->ad", dk, enc)
        G[kb] += dk.sum((0, 1))
        denc += dk @ P[kw]
    denc = np.where(valid[:, :, None], denc, 0)
    return denc, G


class MochaDecoder(Module):
    """Module wrapper: ``params``/``grads`` dicts, a cache stack, ``training`` flag.

    ``forward(enc, lengths, prev_labels, label_lengths=None) -> logits (B, U, V)``;
    ``backward(dlogits) -> denc (B, T, D)`` adds into ``grads``. Pre-sigmoid noise (``noise_std``)
    is used only while ``training`` is True, drawn from the module's own seeded generator.
    """

    def __init__(self, *, enc_dim: int, vocab: int, embed_dim: int = 16, hidden: int = 32, att_dim: int = 16,
                 chunk_size: int = 2, noise_std: float = 1.0, r_init: float = -4.0, mode: str = "recursive",
                 seed: int = 0, dtype=np.float32):
        super().__init__()
        self.chunk_size = positive_int("chunk_size", chunk_size)
        self.noise_std, self.mode = float(noise_std), mode
        rng = np.random.default_rng(seed)
        for name, value in init_mocha_params(rng, enc_dim=enc_dim, vocab=vocab, embed_dim=embed_dim,
                                             hidden=hidden, att_dim=att_dim, r_init=r_init,
                                             dtype=dtype).items():
            self.add_param(name, value)
        self.noise_rng = np.random.default_rng(seed + 1)
        self.last_alphas: Optional[np.ndarray] = None
        self.last_betas: Optional[np.ndarray] = None

    def forward(self, enc, lengths, prev_labels, label_lengths=None) -> np.ndarray:
        noise = self.noise_std if self.training else 0.0
        logits, cache = decoder_forward(self.params, enc, lengths, prev_labels, chunk_size=self.chunk_size,
                                        mode=self.mode, noise_std=noise, rng=self.noise_rng,
                                        label_lengths=label_lengths)
        self.last_alphas, self.last_betas = cache.alphas, cache.betas
        self.push(cache)
        return logits

    __call__ = forward

    def backward(self, dlogits) -> np.ndarray:
        denc, G = decoder_backward(dlogits, self.params, self.pop())
        for k, g in G.items():
            self.grads[k] += g
        return denc
