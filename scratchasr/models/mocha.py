"""Online attention encoder-decoder with monotonic chunkwise attention (MoChA), registered as ``"mocha"``.

References: Raffel, Luong, Liu, Weiss & Eck 2017, "Online and linear-time attention by enforcing
monotonic alignments" (ICML); Chiu & Raffel 2018, "Monotonic chunkwise attention" (ICLR; chunk 1 is
the hard monotonic attention of Raffel et al.). Equations: docs/equations/mocha.md (decoder, ops,
hard attention) and docs/equations/mocha_model.md (this file: loss, decoding rules, streaming).

    x (B, T, D) --FrameStack k--> (B, T', kD) --LSTM (unidirectional, causal)--> h (B, T', H)
    h --MochaDecoder (inputs <sos> y_1 .. y_U, targets y_1 .. y_U <eos>)--> logits (B, U+1, V)
    loss = label-smoothed cross-entropy summed over the U + 1 steps of each utterance

Training uses the *expected* monotonic alignment and chunk weights (differentiable); decoding uses
*hard* monotonic attention: step i scans the encoder frames from where step i-1 stopped, stops at
the first frame whose energy is >= 0 and attends softly over the ``chunk_size`` frames ending there
[mocha:hard] [mocha:hard-chunk]. Nothing in the model looks to the right of the frame it stops on
(the encoder is causal), so :class:`MochaStreamer` emits each label as soon as that frame has
arrived, and its output equals the offline hard decoding.

Id 0 is both <sos> (decoder input) and <eos> (decoder target); labels are 1 .. V-1.

Options (``models.build("mocha", ..., **options)``):
    hidden (256): encoder LSTM cells and decoder LSTM cells; num_layers (3): encoder layers;
    dropout (0.0): between encoder layers, training only; stack (3): frame stacking factor;
    chunk_size (2): MoChA chunk width w (1 = hard monotonic attention); mode ("recursive"): how the
    expected alignment is computed, "recursive" (exact) or "parallel" (cumulative-product form);
    label_smoothing (0.1); noise_std (1.0): pre-sigmoid Gaussian noise on the monotonic energies in
    training [mocha:prob-noise] (Raffel et al.: pushes p towards 0/1 so that hard decoding matches
    training; like dropout it makes training random: forward_loss is deterministic when dropout = 0
    and noise_std = 0); r_init (-4.0): initial offset r of the monotonic energy [mocha:mono-energy]
    (Raffel et al.'s -4 makes p ~ 0.02 per frame: the expected alignment first advances ~50 frames per
    label, so on phone-rate outputs it runs off the end of the input within a few labels; a value near
    0 starts it at ~2 frames per label); embed_dim (64): label embedding width; att_dim (128): attention
    projection width; ctc_weight (0.0): lambda of a joint CTC branch on the encoder (a linear layer,
    blank = 0), loss (1 - lambda) CE + lambda CTC [mocha-model:joint-ctc] (Kim, Hori & Watanabe 2017:
    it speeds up and steadies the learning of the alignment); heads (1): MoChA is single-headed here
    (multi-head MoChA, Inaguma et al. 2020, is not implemented), so only heads=1 is accepted.

Decoding (``decode(batch, method=...)``): "greedy" (offline hard MoChA,
``scratchasr.decode.mocha_streaming.mocha_hard_decode``) or "beam" (the label-synchronous beam search
of ``scratchasr.decode.attention`` over the step interface below, optional shallow fusion with a
language model); both emit at most ``max(1, ceil(max_len_ratio * T'))`` labels [attn-dec:max-len].
Streaming: ``model.streamer()``.

Step interface (what ``step`` takes): ``memory = model.encode(batch)`` (the encoder outputs),
``state = model.init_state(batch_size, memory=memory)``, then ``log_probs, state =
model.step(state, tokens)``. The state carries each row's encoder memory, so a decoder that reorders
rows with ``models.gather_state`` reorders the memory with them.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, int_array, positive_int
from ..data.batch import Batch
from ..decode.attention import decode_attention, max_output_lengths
from ..decode.mocha_streaming import HardDecodeResult, mocha_hard_decode
from ..losses import ctc_loss, ctc_loss_backward
from ..losses.cross_entropy import cross_entropy_loss, cross_entropy_loss_backward
from ..nn.layers import Linear
from ..nn.lstm import LSTM
from ..nn.mocha import MochaDecoder
from ..nn.stack import FrameStack
from ..ops.lstm import lstm_forward, lstm_step_forward
from ..ops.mocha import hard_monotonic_attention
from ..ops.mocha_energy import chunk_energy_forward, monotonic_energy_forward
from ..ops.softmax import log_softmax_forward
from .base import Model, check_batch, gather_state, register
from .ctc_blstm import ctc_min_frames

__all__ = ["MochaModel", "MochaMemory", "MochaState", "MochaStreamer", "MochaStreamState", "max_labels"]

SOS = EOS = 0


def max_labels(frames, max_len_ratio: float) -> np.ndarray:
    """Most labels any decoder of this model emits for ``frames`` encoder frames [attn-dec:max-len]."""
    return max_output_lengths(frames, max_len_ratio)


def _check_ratio(max_len_ratio) -> float:
    if (isinstance(max_len_ratio, bool) or not isinstance(max_len_ratio, (int, float))
            or not max_len_ratio > 0):
        raise ValueError(f"max_len_ratio: expected a number > 0, got {max_len_ratio!r}")
    return float(max_len_ratio)


class MochaModelCache(NamedTuple):
    ce: object              # CrossEntropyCache of losses.cross_entropy_loss
    feasible: np.ndarray    # (B,) bool: at least one encoder frame
    enc_frames: int         # T', encoder frames of the batch
    ctc: object             # CTCCache of the CTC branch, or None (ctc_weight = 0 or no frame at all)


class MochaMemory(NamedTuple):
    """Encoder outputs of a batch, what the step interface attends to."""
    enc: np.ndarray         # (B, T', H) encoder outputs, 0 past lengths
    lengths: np.ndarray     # (B,) int64 encoder frames per utterance


class MochaState(NamedTuple):
    """Decoder state of the step interface (hard monotonic attention); every field batch-first."""
    s: np.ndarray           # (B, Hd) decoder LSTM output s_{i-1}
    cell: np.ndarray        # (B, Hd) decoder LSTM cell
    t: np.ndarray           # (B,) int64 frame attended at the previous step (0 at the start, -1: stopped)
    enc: np.ndarray         # (B, T', H) encoder memory of each row
    keys_m: np.ndarray      # (B, T', A) monotonic-energy keys h W_hm^T + b_m
    keys_c: np.ndarray      # (B, T', A) chunk-energy keys h W_hc^T + b_c
    lengths: np.ndarray     # (B,) int64 valid frames of each row


@register("mocha")
class MochaModel(Model):
    """Unidirectional LSTM encoder + MoChA decoder, cross-entropy; see the module docstring."""

    OPTIONS = dict(hidden=256, num_layers=3, dropout=0.0, stack=3, chunk_size=2, mode="recursive",
                   label_smoothing=0.1, noise_std=1.0, r_init=-4.0, embed_dim=64, att_dim=128, heads=1,
                   ctc_weight=0.0)
    TEST_OPTIONS = dict(heads=1, stack=1, chunk_size=2, embed_dim=4, att_dim=4, noise_std=0.0,
                        label_smoothing=0.1, ctc_weight=0.3)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 dropout: float, stack: int, chunk_size: int, mode: str, label_smoothing: float,
                 noise_std: float, r_init: float, embed_dim: int, att_dim: int, heads: int,
                 ctc_weight: float) -> None:
        super().__init__()
        positive_int("hidden", hidden)
        positive_int("num_layers", num_layers)
        positive_int("chunk_size", chunk_size)
        positive_int("stack", stack)
        positive_int("embed_dim", embed_dim)
        positive_int("att_dim", att_dim)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        if mode not in ("recursive", "parallel"):
            raise ValueError(f"mode: expected 'recursive' or 'parallel', got {mode!r}")
        if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float))
                or not 0.0 <= label_smoothing < 1.0):
            raise ValueError(f"label_smoothing: expected a float in [0, 1), got {label_smoothing!r}")
        if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std >= 0.0:
            raise ValueError(f"noise_std: expected a float >= 0, got {noise_std!r}")
        if isinstance(r_init, bool) or not isinstance(r_init, (int, float)) or not np.isfinite(r_init):
            raise ValueError(f"r_init: expected a finite number, got {r_init!r}")
        if (isinstance(ctc_weight, bool) or not isinstance(ctc_weight, (int, float))
                or not 0.0 <= ctc_weight < 1.0):
            raise ValueError(f"ctc_weight: expected a float in [0, 1), got {ctc_weight!r}")
        if isinstance(heads, bool) or heads != 1:
            raise ValueError(f"heads: this MoChA decoder has a single monotonic head (multi-head MoChA is "
                             f"not implemented), expected 1, got {heads!r}")
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.label_smoothing = float(label_smoothing)
        self.stack = FrameStack(stack)
        self.encoder = LSTM(input_dim * self.stack.k, hidden, num_layers=num_layers, bidirectional=False,
                            dropout=float(dropout), seed=seed, dtype=dtype)
        self.decoder = MochaDecoder(enc_dim=hidden, vocab=vocab_size, embed_dim=embed_dim, hidden=hidden,
                                    att_dim=att_dim, chunk_size=chunk_size, noise_std=float(noise_std),
                                    r_init=float(r_init), mode=mode, seed=seed + 7, dtype=dtype)
        self.ctc_weight = float(ctc_weight)
        if self.ctc_weight > 0:        # CTC branch on the encoder (Kim, Hori & Watanabe 2017)
            self.ctc = Linear(hidden, vocab_size, rng=np.random.default_rng([seed, 3]), dtype=dtype)

    # ------------------------------------------------------------------ encoder
    def encode(self, batch: Batch) -> MochaMemory:
        """Encoder outputs of a batch without caches (decoding, plots); training flag restored."""
        x, xl, _, _ = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                  dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            xs, out_len = self.stack(x, xl)
            h = self.encoder(xs, out_len)
        finally:
            self.train(was)
        return MochaMemory(h, out_len)

    # ------------------------------------------------------------------ contract: loss
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        xs, out_len = self.stack(x, xl)
        h = self.encoder(xs, out_len)                               # (B, T', H), causal, 0 past out_len
        B, S = y.shape
        valid = np.arange(S)[None, :] < yl[:, None]
        labels = np.where(valid, y, 0)
        prev = np.zeros((B, S + 1), np.int64)                       # <sos> y_1 .. y_U
        # [mocha-model:teacher-forcing]
        prev[:, 1:] = labels
        target = np.zeros((B, S + 1), np.int64)                     # y_1 .. y_U <eos> (eos = 0 at index U)
        target[:, :S] = labels
        feasible = out_len >= 1                                     # no frame: nothing to read
        T_enc = h.shape[1]
        lam, ctc, ctc_nll = self.ctc_weight, None, np.zeros(B)
        if lam > 0 and T_enc > 0:                                   # the CTC branch on the encoder
            ctc_logits = self.ctc(h, out_len)                       # (B, T', V), blank = 0
            feasible &= ctc_min_frames(y, yl) <= out_len
            ctc_nll, ctc = ctc_loss(ctc_logits, y, out_len, yl, blank=0, reduction="none", zero_infinity=True)
        T = max(T_enc, 1)
        if T_enc == 0:
            h = np.zeros((B, 1, h.shape[2]), h.dtype)
        logits = self.decoder(h, np.clip(out_len, 1, T), prev, yl + 1)   # (B, U+1, V)
        nll, ce = cross_entropy_loss(logits, target, yl + 1, label_smoothing=self.label_smoothing,
                                     reduction="none")              # [mocha-model:loss]
        total = (1.0 - lam) * nll + lam * ctc_nll                   # [mocha-model:joint-ctc]
        loss = np.where(feasible, total, np.inf)
        self.push(MochaModelCache(ce=ce, feasible=feasible, enc_frames=T_enc, ctc=ctc))
        stats = dict(loss=float(np.sum(total[feasible])), utterances=float(feasible.sum()),
                     frames=float(out_len.sum()), labels=float(yl.sum() + B))
        if lam > 0:
            stats.update(att_loss=float(np.sum(nll[feasible])), ctc_loss=float(np.sum(ctc_nll[feasible])))
        return loss, stats

    def backward(self, dloss: np.ndarray) -> np.ndarray:
        cache: MochaModelCache = self.pop()
        dloss = self._check_dloss(dloss, cache.feasible.shape[0])
        dloss = np.where(cache.feasible, dloss, 0.0)                # skipped utterances: no gradient
        lam = self.ctc_weight
        dlogits = cross_entropy_loss_backward((1.0 - lam) * dloss, cache.ce)   # (B, U+1, V)
        dh = self.decoder.backward(dlogits)[:, :cache.enc_frames]   # a 0-frame batch was padded to 1 frame
        if cache.ctc is not None:
            dctc = ctc_loss_backward(lam * dloss, cache.ctc).astype(dh.dtype, copy=False)
            dh = dh + self.ctc.backward(dctc)                       # (B, T', H)
        dxs = self.encoder.backward(dh)
        return self.stack.backward(dxs)

    # ------------------------------------------------------------------ step interface
    def init_state(self, batch_size: int, *, memory: MochaMemory) -> MochaState:
        """State before the first label: s = 0, cell = 0, t = 0, keys projected once from ``memory``."""
        B = positive_int("batch_size", batch_size)
        if not isinstance(memory, MochaMemory):
            raise TypeError(f"memory: expected the MochaMemory of model.encode(batch), "
                            f"got {type(memory).__name__}")
        enc = float_array("memory.enc", memory.enc, ndim=3)
        if enc.shape[0] != B:
            raise ValueError(f"batch_size: expected {enc.shape[0]} (the rows of memory), got {B}")
        if enc.shape[1] == 0 or np.any(memory.lengths < 1):
            raise ValueError("memory.lengths: every utterance needs at least one encoder frame")
        P = self.decoder.params
        Hd = P["W_hh"].shape[1]
        valid = (np.arange(enc.shape[1])[None, :] < memory.lengths[:, None])[:, :, None]
        enc = np.where(valid, enc, 0)
        return MochaState(s=np.zeros((B, Hd), self.dtype), cell=np.zeros((B, Hd), self.dtype),
                          t=np.zeros(B, np.int64), enc=enc, keys_m=enc @ P["W_hm"].T + P["b_m"],
                          keys_c=enc @ P["W_hc"].T + P["b_c"], lengths=np.asarray(memory.lengths, np.int64))

    def step(self, state: MochaState, tokens) -> Tuple[np.ndarray, MochaState]:
        """tokens (B,) previous labels (0 = <sos>) -> log P(label i | ...) (B, V) float64 (0: <eos>), state.

        Hard attention from s_{i-1} first [mocha:hard] [mocha:hard-chunk], then the decoder LSTM and the
        output layer [mocha:decoder-state] [mocha:output]: the same arithmetic as ``mocha_hard_decode``.
        """
        B = state.s.shape[0]
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {self.vocab_size - 1}], got {tokens}")
        P, w = self.decoder.params, self.decoder.chunk_size
        e, _ = monotonic_energy_forward(state.s, state.keys_m, P["W_qm"], P["v_m"], P["g"], P["r"],
                                        lengths=state.lengths)
        u, _ = chunk_energy_forward(state.s, state.keys_c, P["W_qc"], P["v_c"], lengths=state.lengths)
        beta, t = hard_monotonic_attention(e, u, state.t, chunk_size=w, lengths=state.lengths)  # [mocha:hard]
        c = np.einsum("bt,btd->bd", beta, state.enc)                              # [mocha:context]
        x = np.concatenate([P["embed"][tokens], c], axis=1)
        s, cell, _ = lstm_step_forward(x, state.s, state.cell, P["W_ih"], P["W_hh"], P["b"])
        logits = np.concatenate([s, c], axis=1) @ P["W_o"].T + P["b_o"]           # [mocha:output]
        log_probs, _ = log_softmax_forward(logits.astype(np.float64))
        return log_probs, state._replace(s=s, cell=cell, t=t)

    # ------------------------------------------------------------------ decoding
    def hard_decode(self, batch: Batch, *, max_len_ratio: float = 1.0) -> HardDecodeResult:
        """Offline greedy hard MoChA: labels, attended frame of each label, hard chunk weights (plots)."""
        ratio = _check_ratio(max_len_ratio)
        mem = self.encode(batch)
        B = mem.enc.shape[0]
        caps = max_labels(mem.lengths, ratio)
        keep = np.flatnonzero(mem.lengths >= 1)
        labels, frames, att = [[] for _ in range(B)], [[] for _ in range(B)], \
            [np.zeros((0, mem.enc.shape[1]), self.dtype) for _ in range(B)]
        if keep.size:
            res = mocha_hard_decode(self.decoder.params, mem.enc[keep], mem.lengths[keep],
                                    chunk_size=self.decoder.chunk_size, sos=SOS, eos=EOS,
                                    max_len=int(caps[keep].max()))
            for r, b in enumerate(keep):                                        # [attn-dec:max-len]
                n = int(caps[b])
                labels[b], frames[b], att[b] = res.labels[r][:n], res.frames[r][:n], res.attention[r][:n]
        return HardDecodeResult(labels, frames, att)

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, max_len_ratio: float = 1.0, length_norm: bool = False,
               length_reward: float = 0.0, nbest: Optional[int] = None) -> List[List[int]]:
        """Greedy without an LM: offline hard MoChA (:meth:`hard_decode`). Beam search, or greedy with an
        LM: ``scratchasr.decode.attention.decode_attention`` over :meth:`init_state`/:meth:`step` (scoring
        rule [attn-dec:score], ``length_norm`` [attn-dec:length-norm], exact stop [attn-dec:stop]);
        ``nbest`` (beam only) returns each utterance's n-best ``AttentionHypothesis`` list."""
        beam_size = self._check_decode_args(method, beam_size)
        ratio = _check_ratio(max_len_ratio)
        if method == "greedy" and lm is None and nbest is None:
            return self.hard_decode(batch, max_len_ratio=ratio).labels
        mem = self.encode(batch)
        out: List[List[int]] = [[] for _ in range(mem.enc.shape[0])]   # no frame: nothing to say
        keep = np.flatnonzero(mem.lengths >= 1)
        if keep.size:
            hyps = decode_attention(self, gather_state(mem, keep), method=method, beam_size=beam_size, lm=lm,
                                    lm_weight=lm_weight, max_len_ratio=ratio, length_norm=length_norm,
                                    length_reward=length_reward, nbest=nbest)
            for r, b in enumerate(keep):
                out[b] = hyps[r]
        return out

    def streamer(self, *, max_len_ratio: float = 1.0) -> "MochaStreamer":
        """An online greedy decoder of one utterance: ``accept(frames)``, ``finish()``."""
        return MochaStreamer(self, max_len_ratio=max_len_ratio)


# ---------------------------------------------------------------------------------------------- streaming

class EncoderStreamState(NamedTuple):
    h: np.ndarray           # (L, 1, H) hidden state of each encoder layer after the frames so far
    c: np.ndarray           # (L, 1, H) cell state of each encoder layer
    pending: np.ndarray     # (r, D), r < stack: input frames waiting to fill a stack of k


class DecoderStreamState(NamedTuple):
    enc: np.ndarray         # (n, H) encoder outputs so far
    keys_m: np.ndarray      # (n, A) monotonic-energy keys
    keys_c: np.ndarray      # (n, A) chunk-energy keys
    s: np.ndarray           # (1, Hd) decoder LSTM output s_{i-1}
    cell: np.ndarray        # (1, Hd)
    y_prev: np.ndarray      # (1,) int64 previous label (0 = <sos>)
    t: int                  # frame attended by the previous label (0 at the start, -1: attention stopped)
    scan: int               # first frame not yet tested for the next label (frames t .. scan-1 did not fire)
    emitted: int            # labels emitted so far
    done: bool              # <eos> emitted


class MochaStreamState(NamedTuple):
    encoder: EncoderStreamState
    decoder: DecoderStreamState
    ended: bool             # finish() was called


class MochaStreamer:
    """Online greedy hard-MoChA decoding of one utterance whose feature frames arrive in pieces.

    ``accept(frames (n, D)) -> labels decided by these frames``; ``finish() -> the remaining labels``.
    Everything carried between calls is the explicit :class:`MochaStreamState` (``self.state``): each
    encoder layer's LSTM (h, c), the input frames not yet stacked, the encoder outputs so far with their
    keys, and the decoder's (s, cell, previous label, attended frame, scan position). Label i is emitted
    as soon as the frame t_i its hard attention stops on has arrived [mocha-model:stream]; the labels,
    and their frames (``self.frames``), equal ``model.hard_decode`` on the whole utterance.
    """

    def __init__(self, model: MochaModel, *, max_len_ratio: float = 1.0) -> None:
        self.model = model
        self.ratio = _check_ratio(max_len_ratio)
        enc, dec, dt = model.encoder, model.decoder.params, model.dtype
        L, H, Hd = enc.num_layers, enc.hidden_size, dec["W_hh"].shape[1]
        A_m, A_c = dec["W_hm"].shape[0], dec["W_hc"].shape[0]
        self.state = MochaStreamState(
            encoder=EncoderStreamState(np.zeros((L, 1, H), dt), np.zeros((L, 1, H), dt),
                                       np.zeros((0, model.input_dim), dt)),
            decoder=DecoderStreamState(np.zeros((0, H), dt), np.zeros((0, A_m), dt), np.zeros((0, A_c), dt),
                                       np.zeros((1, Hd), dt), np.zeros((1, Hd), dt), np.zeros(1, np.int64),
                                       0, 0, 0, False),
            ended=False)
        self.labels: List[int] = []
        self.frames: List[int] = []

    def accept(self, frames: np.ndarray) -> List[int]:
        """Append feature frames (n, D) (normalised as the model's input); return the labels now decided."""
        if self.state.ended:
            raise RuntimeError("accept: finish() was already called for this utterance")
        x = float_array("frames", frames, shape=(None, self.model.input_dim), finite=True)
        if x.dtype != self.model.dtype:
            raise TypeError(f"frames: expected the model's dtype {self.model.dtype}, got {x.dtype}")
        k = self.model.stack.k
        buf = np.concatenate([self.state.encoder.pending, x])
        n = buf.shape[0] // k * k
        enc_state = self._encode(buf[:n].reshape(1, n // k, k * x.shape[1]), buf[n:])
        return self._decode(enc_state, ended=False)

    def finish(self) -> List[int]:
        """End of input: the partial stack is zero-padded (as ``FrameStack``); return the remaining labels."""
        if self.state.ended:
            raise RuntimeError("finish: already called for this utterance")
        pend = self.state.encoder.pending
        k, D = self.model.stack.k, self.model.input_dim
        enc_state = self.state.encoder
        if pend.shape[0]:
            full = np.zeros((k, D), pend.dtype)
            full[:pend.shape[0]] = pend
            enc_state = self._encode(full.reshape(1, 1, k * D), pend[:0])
        return self._decode(enc_state, ended=True)

    # -------------------------------------------------------------- internals
    def _encode(self, xs: np.ndarray, pending: np.ndarray) -> EncoderStreamState:
        """Run the causal encoder over new stacked frames xs (1, n, kD) from each layer's carried (h, c)."""
        es, P = self.state.encoder, self.model.encoder.params
        hs, cs = es.h.copy(), es.c.copy()
        y = xs
        if xs.shape[1]:
            for layer in range(hs.shape[0]):
                y, (hs[layer], cs[layer]), _ = lstm_forward(y, None, es.h[layer], es.c[layer],
                                                            P[f"W_ih_l{layer}"], P[f"W_hh_l{layer}"],
                                                            P[f"b_l{layer}"])
            D, Pd = self.state.decoder, self.model.decoder.params
            h = y[0]
            self.state = self.state._replace(decoder=D._replace(
                enc=np.concatenate([D.enc, h]),
                keys_m=np.concatenate([D.keys_m, h @ Pd["W_hm"].T + Pd["b_m"]]),
                keys_c=np.concatenate([D.keys_c, h @ Pd["W_hc"].T + Pd["b_c"]])))
        return EncoderStreamState(hs, cs, pending)

    def _decode(self, enc_state: EncoderStreamState, *, ended: bool) -> List[int]:
        P, w = self.model.decoder.params, self.model.decoder.chunk_size
        d = self.state.decoder
        n = d.enc.shape[0]
        # the cap [attn-dec:max-len] grows with n: waiting at it only delays a label [mocha-model:stream]
        cap = int(max_labels(n, self.ratio))
        new: List[int] = []
        while not d.done and d.emitted < cap and n > 0:
            t, scan, c = d.t, d.scan, None
            if t >= 0 and scan < n:                                   # test frames scan .. n-1 at once
                e, _ = monotonic_energy_forward(d.s, d.keys_m[None, scan:], P["W_qm"], P["v_m"], P["g"],
                                                P["r"])
                fired = np.flatnonzero(e[0] >= 0)                     # [mocha:hard]
                if fired.size:
                    j = scan + int(fired[0])
                    lo = max(0, j - w + 1)
                    u, _ = chunk_energy_forward(d.s, d.keys_c[None, lo:j + 1], P["W_qc"], P["v_c"])
                    ex = np.exp(u[0] - u[0].max())                    # [mocha:hard-chunk]
                    c, t, scan = ((ex / ex.sum()) @ d.enc[lo:j + 1])[None, :], j, j
                else:
                    scan = n
            if c is None:
                if not ended and t >= 0:
                    d = d._replace(scan=scan)                         # the frame that fires may still come
                    break
                c, t = np.zeros((1, d.enc.shape[1]), d.enc.dtype), -1   # nothing fired before the end
            x = np.concatenate([P["embed"][d.y_prev], c], axis=1)
            # [mocha:decoder-state]
            s, cell, _ = lstm_step_forward(x, d.s, d.cell, P["W_ih"], P["W_hh"], P["b"])
            logits = np.concatenate([s, c], axis=1) @ P["W_o"].T + P["b_o"]               # [mocha:output]
            y = int(logits.argmax(axis=1)[0])
            d = d._replace(s=s, cell=cell, y_prev=np.array([y], np.int64), t=t, scan=max(t, 0), done=y == EOS)
            if y != EOS:
                d = d._replace(emitted=d.emitted + 1)
                new.append(y)
                self.labels.append(y)
                self.frames.append(t)
        self.state = MochaStreamState(encoder=enc_state, decoder=d, ended=ended)
        return new
