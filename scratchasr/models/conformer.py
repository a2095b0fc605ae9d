"""Conformer acoustic models (Gulati et al. 2020): ``"conformer_ctc"`` and ``"conformer_transducer"``.

    x (B, T, D) --Conv2dSubsampling (x4)--> --N Conformer blocks--> h (B, T', E)      [conformer:block]
    conformer_ctc:        logits = h W^T + b (B, T', V); loss = CTC (blank 0, docs/equations/ctc.md)
    conformer_transducer: f = W_enc h + b, the prediction and joint networks of ``models.transducer``
                          (imported, not copied); loss = RNN-T (docs/equations/transducer.md)

The encoder (scratchasr/nn/conformer.py, docs/equations/conformer.md) has its own hand-written backward;
the model only adds the output layer and the loss. SpecAugment and Noam warm-up come from the trainer
(``spec_augment=True``, ``schedule="noam"``, ``warmup_steps``).

Options (both models):
    hidden (144) encoder width E (also the subsampling's channels); num_layers (4) Conformer blocks;
    dropout (0.1) in every block (training only); heads (4); ff_mult (4) feed-forward width F = ff_mult E;
    conv_kernel (15) depthwise kernel (odd unless causal); chunk_size (0: full attention) attention
    chunk in encoder frames (40 ms each at a 10 ms frame shift); left_chunks (-1: all) left chunks seen;
    causal (False): causal depthwise convolution; sub_channels (0: hidden) channels of the two subsampling
    convolutions (the second one's cost grows with their square); memory (False): an Emformer-style memory
    bank, one summary key/value per chunk beyond the left_chunks window (needs chunk_size >= 1 and
    left_chunks >= 0; nn/conformer_memory.py).
conformer_ctc adds init_from (""): a conformer_ctc checkpoint whose encoder.* and output.* arrays
initialise the model (e.g. an offline model fine-tuned with a chunk mask and causal convolution).
conformer_transducer adds pred_hidden (128), pred_layers (1), joint_dim (256), fastemit_lambda (0.0),
clamp (-1.0), joint_chunk (0) with the meaning of ``models.transducer``, and pretrained_encoder (""):
a conformer_ctc checkpoint whose ``encoder.*`` arrays initialise the encoder (PreTrans, Graves et al. 2013;
the shapes must agree; chunk_size/left_chunks/causal change no shape, so an offline CTC encoder can start
a streaming transducer).

Streaming (``chunk_size > 0`` and ``causal=True``): ``state = model.stream_init(B)``, then
``out, state = model.stream(x_piece (B, n, D), state, final=False)`` any number of times (``final=True``
with the last piece). ``conformer_ctc`` returns log-posteriors ``(B, m, V)`` (float64) of the frames the
piece completed, ``conformer_transducer`` the joint's encoder rows ``f (B, m, J)``; concatenated, they
equal the offline model's (eval mode) with the same chunk mask [conformer:stream-attn].
"""

from __future__ import annotations

import os
from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, positive_int
from ..nn.conformer import ConformerEncoder, StreamState
from ..nn.layers import Embedding, Linear
from ..nn.lstm import LSTM
from ..nn.stack import FrameStack
from ..ops.softmax import log_softmax_forward
from .base import Model, register
from .ctc_model import CTCModel
from .transducer import Transducer, _check_prob, _copy_from_checkpoint, load_pretrained_encoder

__all__ = ["ConformerCTC", "ConformerTransducer", "ConformerStreamer", "StreamerState"]

BLANK = 0
ENCODER_OPTIONS = dict(hidden=144, num_layers=4, dropout=0.1, heads=4, ff_mult=4, conv_kernel=15,
                       chunk_size=0, left_chunks=-1, causal=False, sub_channels=0, memory=False)


def _encoder(input_dim, dtype, seed, *, hidden, num_layers, dropout, heads, ff_mult, conv_kernel, chunk_size,
             left_chunks, causal, sub_channels, memory) -> ConformerEncoder:
    positive_int("heads", heads)
    if positive_int("hidden", hidden) % heads:
        raise ValueError(f"heads: expected a divisor of hidden={hidden}, got {heads}")
    positive_int("ff_mult", ff_mult)
    dropout = _check_prob("dropout", dropout)
    return ConformerEncoder(input_dim, hidden, num_layers=num_layers, heads=heads, ff_mult=ff_mult,
                            conv_kernel=conv_kernel, dropout=dropout, chunk_size=chunk_size,
                            left_chunks=left_chunks, causal=causal, sub_channels=sub_channels, memory=memory,
                            seed=seed, dtype=dtype)


@register("conformer_ctc")
class ConformerCTC(CTCModel):
    """Conformer encoder, linear output layer, CTC loss (loss and decoders: models/ctc_model.py)."""

    INIT_ONLY = ("init_from",)
    OPTIONS = dict(ENCODER_OPTIONS, init_from="")
    TEST_OPTIONS = dict(ff_mult=2, conv_kernel=3, sub_channels=3)
    TEST_FRAMES = (23, 13)  # 5 and 2 encoder frames after x4 subsampling: enough for [1, 2, 2] and [3]

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, init_from: str = "",
                 **options) -> None:
        super().__init__()
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.encoder = _encoder(input_dim, dtype, seed, **options)
        self.output = Linear(options["hidden"], vocab_size, rng=np.random.default_rng([seed, 2]), dtype=dtype)
        if not isinstance(init_from, (str, os.PathLike)):
            raise TypeError(f"init_from: expected a path or '', got {init_from!r}")
        if init_from:  # e.g. an offline model fine-tuned into a streaming one (chunk mask, causal conv)
            _copy_from_checkpoint(init_from, "init_from", {"encoder": self.encoder, "output": self.output})

    # ------------------------------------------------------------------ encoder
    def logits(self, x: np.ndarray, lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """x (B, T, D) zero-padded -> (logits (B, T', V), out_lengths); caches pushed in training."""
        h, hl = self.encoder(x, lengths)
        return self.output(h, hl), hl  # [ops:linear]

    def logits_backward(self, dlogits: np.ndarray) -> np.ndarray:
        return self.encoder.backward(self.output.backward(dlogits))

    # ------------------------------------------------------------------ streaming
    def stream_init(self, batch_size: int) -> StreamState:
        """Streaming state before any frame (needs chunk_size > 0 and causal=True)."""
        return self.encoder.stream_init(batch_size)

    def stream(self, x: np.ndarray, state: StreamState, *, final: bool = False
               ) -> Tuple[np.ndarray, StreamState]:
        """Feed ``x (B, n, D)`` -> (log-posteriors (B, m, V) float64 of the frames completed, new state)."""
        h, state = self.encoder.stream(x, state, final=final)
        logits = self.output(h)  # [ops:linear] (eval mode: no cache; an int8 copy's Int8Linear alike)
        lp, _ = log_softmax_forward(logits.astype(np.float64))
        return lp, state


@register("conformer_transducer")
class ConformerTransducer(Transducer):
    """Conformer encoder + the prediction and joint networks of ``models.transducer`` (inherited methods:
    ``init_state``, ``step``, ``joint_step``, ``lattice_loss``, ``forward_loss``, ``backward``, ``decode``).

    Streaming: ``stream_init``/``stream`` give the joint's encoder rows ``f``; the transducer decoders
    (``decode.transducer.greedy_search``) are frame-synchronous, so decoding the streamed rows as they
    arrive gives the offline result of the chunk-masked model.
    """

    INIT_ONLY = ("pretrained_encoder",)
    OPTIONS = dict(ENCODER_OPTIONS, pred_hidden=128, pred_layers=1, joint_dim=256, fastemit_lambda=0.0,
                   clamp=-1.0, joint_chunk=0, pretrained_encoder="")
    TEST_OPTIONS = dict(ff_mult=2, conv_kernel=3, sub_channels=3, pred_hidden=5, joint_dim=7, joint_chunk=1)
    TEST_FRAMES = (23, 13)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, pred_hidden: int,
                 pred_layers: int, joint_dim: int, fastemit_lambda: float, clamp: float, joint_chunk: int,
                 pretrained_encoder: str = "", **options) -> None:
        Model.__init__(self)  # the parent's constructor builds an LSTM encoder; we build ours
        positive_int("pred_hidden", pred_hidden)
        positive_int("pred_layers", pred_layers)
        positive_int("joint_dim", joint_dim)
        self.joint_chunk = positive_int("joint_chunk", joint_chunk, minimum=0)
        for name, v in (("fastemit_lambda", fastemit_lambda), ("clamp", clamp)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        if fastemit_lambda < 0:
            raise ValueError(f"fastemit_lambda: expected a number >= 0, got {fastemit_lambda!r}")
        self.fastemit_lambda, self.clamp = float(fastemit_lambda), float(clamp)
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.encoder = _encoder(input_dim, dtype, seed, **options)
        # inherited code reads these: no frame stacking (k = 1), and the encoder is not an LSTM
        self.stack = FrameStack(1)
        self.bidirectional = not (self.encoder.chunk_size > 0 and self.encoder.causal)
        self.embed = Embedding(vocab_size, pred_hidden, rng=np.random.default_rng([seed, 3]), dtype=dtype)
        self.predictor = LSTM(pred_hidden, pred_hidden, num_layers=pred_layers,
                              dropout=float(options["dropout"]), seed=seed + 1000, dtype=dtype)
        self.joint_enc = Linear(options["hidden"], joint_dim, rng=np.random.default_rng([seed, 4]),
                                dtype=dtype)
        self.joint_pred = Linear(pred_hidden, joint_dim, bias=False, rng=np.random.default_rng([seed, 5]),
                                 dtype=dtype)
        self.joint_out = Linear(joint_dim, vocab_size, rng=np.random.default_rng([seed, 6]), dtype=dtype)
        if not isinstance(pretrained_encoder, (str, os.PathLike)):
            raise TypeError(f"pretrained_encoder: expected a path or '', got {pretrained_encoder!r}")
        if pretrained_encoder:  # PreTrans from a conformer_ctc checkpoint [transducer:pretrans]
            load_pretrained_encoder(self, pretrained_encoder)

    def _encoder_out(self, x: np.ndarray, lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """f = W_enc h + b on the Conformer output [transducer:encoder] [conformer:block]."""
        xs, _ = self.stack(x, lengths)  # k = 1: the identity, so the inherited backward applies
        h, hl = self.encoder(xs, lengths)
        return self.joint_enc(h, hl), hl

    def encoder_init_state(self, batch_size: int):  # the LSTM-state API of the parent does not apply
        raise ValueError("model: a Conformer encoder streams with stream_init/stream (chunks, caches)")

    def encode_chunk(self, x, state):
        raise ValueError("model: a Conformer encoder streams with stream_init/stream (chunks, caches)")

    def stream_init(self, batch_size: int) -> StreamState:
        return self.encoder.stream_init(batch_size)

    def stream(self, x: np.ndarray, state: StreamState, *, final: bool = False
               ) -> Tuple[np.ndarray, StreamState]:
        """Feed ``x (B, n, D)`` -> (joint encoder rows f (B, m, J) of the frames completed, new state)."""
        h, state = self.encoder.stream(x, state, final=final)
        return self.joint_enc(h), state  # [transducer:joint] (the float Linear or an int8 copy's)


# ---------------------------------------------------------------------------------------- streaming decoder
class StreamerState(NamedTuple):
    """Everything a :class:`ConformerStreamer` carries between calls (one utterance, batch of 1)."""
    encoder: StreamState  # the encoder's carried memory (caches, remainders)
    tokens: Tuple[int, ...]  # labels emitted so far
    prev: int  # CTC: the previous frame's best id (repeats merge); transducer: unused (-1)
    pred: object  # transducer: prediction-network state (models.transducer.PredState); CTC: None
    g: Optional[np.ndarray]  # transducer: (1, J) prediction vector of the emitted prefix; CTC: None
    frames: int  # encoder frames decoded so far


class ConformerStreamer:
    """Greedy streaming recognition with a streaming ``conformer_ctc`` or ``conformer_transducer``:

        streamer = ConformerStreamer(model)
        for piece in pieces:                  # (n, D) normalised features, any n >= 0
            partial = streamer.accept(piece)  # every label emitted so far
        final = streamer.finish()             # == model.decode(batch) (greedy) on the whole utterance

    CTC: per-frame argmax, repeats merged across chunk boundaries, blanks dropped [ctc-decode:greedy].
    Transducer: frame-synchronous greedy search with at most ``max_symbols_per_frame`` labels per
    frame, the rule of ``decode.transducer.greedy_search`` [transducer:greedy], driven through the
    model's ``step``/``joint_step``. The state is an explicit :class:`StreamerState`.
    """

    def __init__(self, model, *, max_symbols_per_frame: int = 3) -> None:
        if not isinstance(model, (ConformerCTC, ConformerTransducer)):
            raise TypeError(f"model: expected a conformer_ctc or conformer_transducer, "
                            f"got {type(model).__name__}")
        self.model = model
        self.max_symbols = positive_int("max_symbols_per_frame", max_symbols_per_frame)
        self.reset()

    def reset(self) -> None:
        m = self.model
        pred = g = None
        if isinstance(m, ConformerTransducer):
            g, pred = m.step(m.init_state(1), np.zeros(1, np.int64))  # the empty prefix: <sos> = 0
        self.state = StreamerState(m.stream_init(1), (), -1, pred, g, 0)
        self.finished = False

    def _decode_frames(self, out: np.ndarray) -> None:
        st, tokens = self.state, list(self.state.tokens)
        prev, pred, g = st.prev, st.pred, st.g
        for t in range(out.shape[1]):
            if isinstance(self.model, ConformerCTC):
                k = int(out[0, t].argmax())  # ties -> the lowest id, as ctc_greedy_decode
                if k != BLANK and k != prev:
                    tokens.append(k)
                prev = k
                continue
            for _ in range(self.max_symbols):  # [transducer:greedy]
                k = int(self.model.joint_step(out[:, t], g).argmax(axis=1)[0])
                if k == BLANK:
                    break
                tokens.append(k)
                g, pred = self.model.step(pred, np.array([k], np.int64))
        self.state = st._replace(tokens=tuple(tokens), prev=prev, pred=pred, g=g,
                                 frames=st.frames + out.shape[1])

    def accept(self, frames: np.ndarray) -> List[int]:
        """Feed ``frames (n, D)``; returns every label emitted so far (a partial hypothesis)."""
        if self.finished:
            raise RuntimeError("accept: finish() was called; call reset() to start a new utterance")
        frames = float_array("frames", frames, ndim=2, shape=(None, self.model.input_dim), finite=True)
        out, enc = self.model.stream(frames[None].astype(self.model.dtype, copy=False), self.state.encoder)
        self.state = self.state._replace(encoder=enc)
        self._decode_frames(out)
        return list(self.state.tokens)

    def finish(self) -> List[int]:
        """Encode the last partial chunk, decode it and return the final labels."""
        if not self.finished:
            out, enc = self.model.stream(np.zeros((1, 0, self.model.input_dim), self.model.dtype),
                                         self.state.encoder, final=True)
            self.state = self.state._replace(encoder=enc)
            self._decode_frames(out)
        self.finished = True
        return list(self.state.tokens)
