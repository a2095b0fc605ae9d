"""Hard monotonic chunkwise attention decoding: offline (whole utterance) and streaming (frames in chunks).

References: Raffel et al. 2017 (test-time hard monotonic attention, linear time, online);
Chiu & Raffel 2018 (the chunk softmax at test time). Equations: docs/equations/mocha.md
[mocha:hard] [mocha:hard-chunk].

Greedy label choice (argmax of the logits, then fed back). Step i first decides where to attend
using only s_{i-1}: scanning from the previous attended frame, the first frame with e >= 0. That
decision needs the frames up to the one that fires, never the future, so the streaming decoder
emits label i as soon as that frame has arrived. If no frame fires, the decision can only be made
once the input has ended ("attend nothing": context 0, and nothing at every later step).
Both decoders run the same ops on the same parameters (``scratchasr.nn.mocha`` layout), so their
outputs agree; the tests check it on random and trained models.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple

import numpy as np

from .._validate import float_array, length_mask, lengths_array, positive_int
from ..ops.lstm import lstm_step_forward
from ..ops.mocha import hard_monotonic_attention
from ..ops.mocha_energy import chunk_energy_forward, monotonic_energy_forward

__all__ = ["mocha_hard_decode", "MochaStreamingDecoder", "HardDecodeResult"]


class HardDecodeResult(NamedTuple):
    labels: List[List[int]]  # per utterance, eos excluded
    frames: List[List[int]]  # attended frame t_i per emitted label (-1: attended nothing)
    attention: List[np.ndarray]  # per utterance (n_emitted, T): the hard chunk weights of each label


def _output(P, s, cell, y_prev, c):
    """Decoder LSTM step and output layer [mocha:decoder-state] [mocha:output] -> s, cell, argmax labels."""
    x = np.concatenate([P["embed"][y_prev], c], axis=1)
    s, cell, _ = lstm_step_forward(x, s, cell, P["W_ih"], P["W_hh"], P["b"])
    logits = np.concatenate([s, c], axis=1) @ P["W_o"].T + P["b_o"]
    return s, cell, logits.argmax(axis=1)


def mocha_hard_decode(params: Dict[str, np.ndarray], enc: np.ndarray, lengths=None, *, chunk_size: int,
                      sos: int, eos: int, max_len: int = 200) -> HardDecodeResult:
    """Offline greedy hard-MoChA decoding of a batch. enc (B, T, D), lengths (B,) -> HardDecodeResult."""
    w = positive_int("chunk_size", chunk_size)
    float_array("enc", enc, ndim=3)
    B, T, D = enc.shape
    lengths = lengths_array("lengths", lengths, B, T, allow_zero=False)
    P = params
    dtype = P["W_hh"].dtype
    if enc.dtype != dtype:
        raise TypeError(f"enc: expected the parameters' dtype {dtype}, got {enc.dtype}")
    valid = length_mask(lengths, T)  # (B, T)
    enc = np.where(valid[:, :, None], enc, 0)
    keys_m = enc @ P["W_hm"].T + P["b_m"]
    keys_c = enc @ P["W_hc"].T + P["b_c"]
    H = P["W_hh"].shape[1]
    s, cell = np.zeros((B, H), dtype), np.zeros((B, H), dtype)
    y = np.full(B, sos, dtype=np.int64)
    t = np.zeros(B, dtype=np.int64)
    labels, frames, att = [[] for _ in range(B)], [[] for _ in range(B)], [[] for _ in range(B)]
    done = np.zeros(B, dtype=bool)
    for _ in range(max_len):
        e, _ = monotonic_energy_forward(s, keys_m, P["W_qm"], P["v_m"], P["g"], P["r"], lengths=lengths)
        u, _ = chunk_energy_forward(s, keys_c, P["W_qc"], P["v_c"], lengths=lengths)
        beta, t = hard_monotonic_attention(e, u, t, chunk_size=w, lengths=lengths)  # [mocha:hard]
        c = np.einsum("bt,btd->bd", beta, enc)  # [mocha:hard-chunk]
        s, cell, y = _output(P, s, cell, y, c)
        for b in np.flatnonzero(~done):
            if y[b] == eos:
                done[b] = True
            else:
                labels[b].append(int(y[b]))
                frames[b].append(int(t[b]))
                att[b].append(beta[b])
        if done.all():
            break
    return HardDecodeResult(labels, frames, [np.array(a).reshape(len(a), T) for a in att])


class MochaStreamingDecoder:
    """Greedy hard-MoChA decoding of one utterance whose encoder frames arrive in chunks.

    ``push(frames (n, D)) -> labels decided by these frames``; ``finish() -> the remaining labels``.
    State kept between calls: the frames so far and their key projections, the decoder LSTM state
    (s, cell), the previous label, the previously attended frame t and the scan position.
    """

    def __init__(self, params: Dict[str, np.ndarray], *, chunk_size: int, sos: int, eos: int,
                 max_len: int = 200):
        self.P = params
        self.w = positive_int("chunk_size", chunk_size)
        self.eos, self.max_len = eos, positive_int("max_len", max_len)
        H = params["W_hh"].shape[1]
        D = params["W_hm"].shape[1]
        dtype = self.dtype = params["W_hh"].dtype
        self.enc = np.zeros((0, D), dtype)
        self.keys_m = np.zeros((0, params["W_hm"].shape[0]), dtype)
        self.keys_c = np.zeros((0, params["W_hc"].shape[0]), dtype)
        self.s, self.cell = np.zeros((1, H), dtype), np.zeros((1, H), dtype)
        self.y_prev = np.array([sos])
        self.t = 0  # previously attended frame (0 before the first step, -1 once attention stopped)
        self.scan = 0  # next frame to test at the current step (frames t..scan-1 did not fire)
        self.labels: List[int] = []
        self.frames: List[int] = []
        self.done = False
        self.ended = False

    def push(self, frames: np.ndarray) -> List[int]:
        """Append encoder frames (n, D); return the labels that became decidable."""
        if self.ended:
            raise RuntimeError("push: the input has already been finished")
        float_array("frames", frames, shape=(None, self.enc.shape[1]))
        if frames.dtype != self.dtype:
            raise TypeError(f"frames: expected the parameters' dtype {self.dtype}, got {frames.dtype}")
        P = self.P
        self.enc = np.concatenate([self.enc, frames])
        self.keys_m = np.concatenate([self.keys_m, frames @ P["W_hm"].T + P["b_m"]])
        self.keys_c = np.concatenate([self.keys_c, frames @ P["W_hc"].T + P["b_c"]])
        return self._advance()

    def finish(self) -> List[int]:
        """Signal the end of the input; return the labels decided by it."""
        self.ended = True
        return self._advance()

    def _attend(self) -> Tuple[bool, np.ndarray]:
        """Try to decide step i's attention. -> (decided, context (1, D))."""
        P, n = self.P, self.enc.shape[0]
        if self.t >= 0:
            while self.scan < n:  # frames t..scan-1 already failed for this query
                j = self.scan
                e, _ = monotonic_energy_forward(self.s, self.keys_m[None, j:j + 1], P["W_qm"], P["v_m"],
                                                P["g"], P["r"])
                if e[0, 0] >= 0:  # p >= 0.5 [mocha:hard]
                    lo = max(0, j - self.w + 1)
                    u, _ = chunk_energy_forward(self.s, self.keys_c[None, lo:j + 1], P["W_qc"], P["v_c"])
                    ex = np.exp(u[0] - u[0].max())  # [mocha:hard-chunk]
                    self.t = j
                    return True, ((ex / ex.sum()) @ self.enc[lo:j + 1])[None, :]  # [mocha:context]
                self.scan += 1
            if not self.ended:
                return False, None  # the frame that fires may still come
            self.t = -1  # no frame fired before the end: attend nothing from now on
        return True, np.zeros((1, self.enc.shape[1]), self.dtype)

    def _advance(self) -> List[int]:
        new: List[int] = []
        while not self.done and len(self.labels) < self.max_len:
            decided, c = self._attend()
            if not decided:
                break
            self.s, self.cell, y = _output(self.P, self.s, self.cell, self.y_prev, c)
            self.y_prev = y
            self.scan = max(self.t, 0)  # the next step scans from the attended frame
            if y[0] == self.eos:
                self.done = True
            else:
                self.labels.append(int(y[0]))
                self.frames.append(self.t)
                new.append(int(y[0]))
        return new
