"""Conformer encoder in the module layer: convolutional subsampling, Conformer blocks, streaming.

References: Gulati et al. 2020, "Conformer: Convolution-augmented Transformer for Speech Recognition"
(the block: half-step macaron feed-forward, relative-position MHSA, convolution module, half-step
feed-forward, final layer norm); Dai et al. 2019 (Transformer-XL relative positions, as in ESPnet's
``RelPositionMultiHeadedAttention``); ESPnet/WeNet ``Conv2dSubsampling4`` (two 3x3 stride-2 convolutions,
ReLU, a linear projection); Zhang et al. 2020 (WeNet U2: chunk masks with a limited number of left
chunks, causal depthwise convolution, cached keys/values and convolution states for streaming).
Equations and backward: docs/equations/conformer.md.

    feats (B, T, D) --Conv2dSubsampling--> (B, T', E), T' = ((T - 1)//2 - 1)//2    [conformer:subsample]
        --N x ConformerBlock(mask = padding & chunk mask)--> (B, T', E)

Every module keeps the module-layer contract (nn/module.py): ``forward`` pushes its caches in training,
``backward`` pops them, adds into ``grads`` and returns the input gradient. Frames at or past the
lengths are zero in every output and receive zero gradient.

Streaming (:meth:`ConformerEncoder.stream_init`, :meth:`ConformerEncoder.stream`): input frames are fed
in pieces of any size with an explicit :class:`StreamState` (input frames not yet consumed by the
subsampling, subsampled frames waiting to fill a chunk, per layer the cached keys/values of the left
context and the last ``K - 1`` inputs of the causal depthwise convolution, and with ``memory=True`` the
memory bank of one summary key/value per chunk, nn/conformer_memory.py). The outputs equal the offline
encoder run with the same chunk mask (eval mode) [conformer:stream-attn].
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validate import float_array, lengths_array, positive_int
from ..ops.attention import chunk_mask, merge_heads, padding_mask, split_heads
from ..ops.conv import conv1d_forward, conv_out_lengths
from ..ops.rel_attention import rel_positions
from .attention import RelPositionMultiHeadAttention
from .conformer_memory import MemoryRelPositionMHA
from .layers import GLU, BatchNorm, Conv1d, Conv2d, Dropout, LayerNorm, Linear, ReLU, Swish
from .module import Module, ModuleList

__all__ = ["ConformerBlock", "ConformerEncoder", "Conv2dSubsampling", "ConvModule", "FeedForward",
           "LayerStreamState", "StreamState", "encoder_mask", "subsampled_lengths"]


def subsampled_lengths(lengths) -> np.ndarray:
    """Lengths after two 3-tap stride-2 convolutions without time padding [conformer:subsample-lengths]."""
    return conv_out_lengths(conv_out_lengths(lengths, 3, 2, 0), 3, 2, 0)


def encoder_mask(lengths: np.ndarray, T: int, chunk_size: int, left_chunks: int) -> np.ndarray:
    """(B, 1, T, T) bool: valid query and key frames, and the chunk mask when ``chunk_size > 0``."""
    m = padding_mask(lengths, T, queries=True)  # (B, 1, T, T)
    if chunk_size > 0:
        m = m & chunk_mask(T, chunk_size, left_chunks=left_chunks)  # [conformer:chunk-mask]
    return m


# ---------------------------------------------------------------------------------------- feed-forward
def _project(mha: Module, name: str, x: np.ndarray) -> np.ndarray:
    """``x W_name^T (+ b_name)`` of an attention module's projection ``name`` (q, k, v, pos, o) without
    touching its training caches: the float parameters [ops:linear], or the ``Int8Linear`` of an int8 copy
    (``nn.conformer_int8.Int8RelMHA``), so that the streaming path serves both."""
    P = getattr(mha, "params", {})
    if f"W_{name}" in P:
        y = x @ P[f"W_{name}"].T  # [ops:linear]
        return y + P[f"b_{name}"] if f"b_{name}" in P else y
    return getattr(mha, name)(x)


def _tensor(mha: Module, name: str) -> np.ndarray:
    """A parameter of a float attention module or the same-named buffer of its int8 copy."""
    P = getattr(mha, "params", {})
    return P[name] if name in P else mha.buffers[name]


class FeedForward(Module):
    """``LN -> Linear(E, F) -> Swish -> Dropout -> Linear(F, E) -> Dropout`` [conformer:ffn].

    Returns the branch output only; the block adds it at half step (macaron) [conformer:macaron].
    """

    def __init__(self, dim: int, inner: int, *, dropout: float, rng: np.random.Generator, dtype) -> None:
        super().__init__()
        self.norm = LayerNorm(dim, dtype=dtype)
        self.lin1 = Linear(dim, inner, rng=rng, dtype=dtype)
        self.act = Swish()
        self.drop1 = Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))
        self.lin2 = Linear(inner, dim, rng=rng, dtype=dtype)
        self.drop2 = Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))

    def forward(self, x, lengths=None):
        h = self.lin1(self.norm(x, lengths), lengths)  # [conformer:ffn]
        h = self.drop1(self.act(h, lengths))
        return self.drop2(self.lin2(h, lengths))  # [conformer:ffn]

    def backward(self, dout):
        dh = self.lin2.backward(self.drop2.backward(dout))
        dh = self.act.backward(self.drop1.backward(dh))
        return self.norm.backward(self.lin1.backward(dh))


# ---------------------------------------------------------------------------------------- convolution
class _ConvCache(NamedTuple):
    pad_left: int  # frames of zeros prepended before the depthwise convolution (causal: K - 1, else 0)


class ConvModule(Module):
    """``LN -> pointwise (E -> 2E) -> GLU -> depthwise conv K -> BatchNorm -> Swish -> pointwise -> Dropout``.

    [conformer:conv]. ``causal=True``: output t reads inputs t-K+1..t (K - 1 zeros prepended)
    [conformer:causal-conv]; otherwise a centred odd kernel (padding (K - 1) / 2 on both sides).
    """

    def __init__(self, dim: int, kernel_size: int, *, causal: bool, dropout: float, rng: np.random.Generator,
                 dtype) -> None:
        super().__init__()
        self.K = positive_int("conv_kernel", kernel_size)
        if not causal and self.K % 2 == 0:
            raise ValueError(f"conv_kernel: expected an odd kernel for a centred convolution, got {self.K}")
        self.causal = bool(causal)
        self.norm = LayerNorm(dim, dtype=dtype)
        self.pw1 = Linear(dim, 2 * dim, rng=rng, dtype=dtype)
        self.glu = GLU()
        # no bias: batch norm subtracts the channel mean right after, so a bias would have no effect
        self.dw = Conv1d(dim, dim, self.K, padding=0 if causal else (self.K - 1) // 2, groups=dim, bias=False,
                         rng=rng, dtype=dtype)
        self.bn = BatchNorm(dim, dtype=dtype)
        self.act = Swish()
        self.pw2 = Linear(dim, dim, rng=rng, dtype=dtype)
        self.drop = Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))

    def forward(self, x, lengths=None):
        B, T, _ = x.shape
        lengths = lengths_array("lengths", lengths, B, T)
        h = self.glu(self.pw1(self.norm(x, lengths), lengths), lengths)  # (B, T, E) [conformer:conv]
        pad = self.K - 1 if self.causal else 0
        if pad:  # [conformer:causal-conv] zeros before frame 0; the lengths grow by the same amount
            h = np.concatenate([np.zeros((B, pad, h.shape[2]), h.dtype), h], axis=1)
        h, _ = self.dw(h, lengths + pad)  # (B, T, E), zero past lengths
        h = self.act(self.bn(h, lengths), lengths)
        self.push(_ConvCache(pad))
        return self.drop(self.pw2(h, lengths))  # [conformer:conv]

    def backward(self, dout):
        dh = self.act.backward(self.pw2.backward(self.drop.backward(dout)))
        cache: _ConvCache = self.pop()
        dh = self.dw.backward(self.bn.backward(dh))
        if cache.pad_left:
            dh = dh[:, cache.pad_left:]  # the prepended zeros are constants
        return self.norm.backward(self.pw1.backward(self.glu.backward(dh)))


# ---------------------------------------------------------------------------------------- the block
class LayerStreamState(NamedTuple):
    """What one block carries from chunk to chunk (batch first)."""
    k: np.ndarray  # (B, H, L, dk) keys of the left context (L <= left_chunks * chunk_size)
    v: np.ndarray  # (B, H, L, dk) values of the left context
    conv: np.ndarray  # (B, K - 1, E) last K - 1 inputs of the causal depthwise convolution
    mem_k: np.ndarray  # (B, H, n, dk) memory bank: keys of the summaries of the n chunks seen (memory=True)
    mem_v: np.ndarray  # (B, H, n, dk) memory bank: values (empty without a memory bank)


class ConformerBlock(Module):
    """One Conformer block (Gulati et al. 2020, Fig. 1) [conformer:block]:

        x1 = x + 1/2 FFN(x);  x2 = x1 + Dropout(MHSA(LN(x1)));  x3 = x2 + Conv(x2)
        x4 = x3 + 1/2 FFN(x3);  y = LN(x4)

    ``forward(x (B, T, E), lengths, mask (B, 1, T, T) bool) -> y``; ``backward(dy) -> dx``.
    """

    def __init__(self, dim: int, heads: int, *, ff_mult: int = 4, conv_kernel: int = 31, causal: bool = False,
                 dropout: float = 0.0, memory: bool = False, chunk_size: int = 0, left_chunks: int = -1,
                 seed=0, dtype=np.float32) -> None:
        super().__init__()
        rng = np.random.default_rng(seed)
        self.ff1 = FeedForward(dim, ff_mult * dim, dropout=dropout, rng=rng, dtype=dtype)
        self.norm_mha = LayerNorm(dim, dtype=dtype)
        self.memory = bool(memory)
        if self.memory:  # the same parameters, plus the memory bank of chunk summaries
            self.mha = MemoryRelPositionMHA(dim, heads, chunk_size=chunk_size, left_chunks=left_chunks,
                                            seed=int(rng.integers(2**31)), dtype=dtype)
        else:
            self.mha = RelPositionMultiHeadAttention(dim, heads, seed=int(rng.integers(2**31)), dtype=dtype)
        self.drop_mha = Dropout(dropout, rng=np.random.default_rng(rng.integers(2**63)))
        self.conv = ConvModule(dim, conv_kernel, causal=causal, dropout=dropout, rng=rng, dtype=dtype)
        self.ff2 = FeedForward(dim, ff_mult * dim, dropout=dropout, rng=rng, dtype=dtype)
        self.norm_out = LayerNorm(dim, dtype=dtype)

    def forward(self, x, lengths=None, mask=None):
        B, T, _ = x.shape
        lengths = lengths_array("lengths", lengths, B, T)
        if mask is None:
            mask = padding_mask(lengths, T, queries=True)
        half = x.dtype.type(0.5)
        x1 = x + half * self.ff1(x, lengths)  # [conformer:macaron]
        a = self.norm_mha(x1, lengths)
        att = self.mha(a, mask, lengths) if self.memory else self.mha(a, mask)
        x2 = x1 + self.drop_mha(att)  # [conformer:mhsa]
        x3 = x2 + self.conv(x2, lengths)  # [conformer:conv]
        x4 = x3 + half * self.ff2(x3, lengths)  # [conformer:macaron]
        return self.norm_out(x4, lengths)  # [conformer:block]

    def backward(self, dy):
        """Residuals pass the gradient through unchanged and add each branch's [conformer:block-back]."""
        dx4 = self.norm_out.backward(dy)
        half = dx4.dtype.type(0.5)
        dx3 = dx4 + self.ff2.backward(half * dx4)  # the half step scales the branch's output gradient
        dx2 = dx3 + self.conv.backward(dx3)
        dx1 = dx2 + self.norm_mha.backward(self.mha.backward(self.drop_mha.backward(dx2)))
        return dx1 + self.ff1.backward(half * dx1)

    # ------------------------------------------------------------------ streaming (eval mode, no caches)
    def init_stream(self, B: int, dtype) -> LayerStreamState:
        H, E = self.mha.H, self.mha.E
        empty = np.zeros((B, H, 0, E // H), dtype)
        return LayerStreamState(empty, empty.copy(), np.zeros((B, self.conv.K - 1, E), dtype), empty.copy(),
                                empty.copy())

    def forward_chunk(self, x: np.ndarray, state: LayerStreamState, offset: int, keep: int
                      ) -> tuple[np.ndarray, LayerStreamState]:
        """One chunk ``x (B, C, E)`` whose first frame is encoder frame ``offset``; ``keep`` left frames of
        keys/values are carried (-1: all). Same arithmetic as :meth:`forward` on the chunk-masked input."""
        half = x.dtype.type(0.5)
        x1 = x + half * self.ff1(x)  # [conformer:macaron]
        a = self.norm_mha(x1)
        att, k, v = self._attend_chunk(a, state.k, state.v, offset, state.mem_k, state.mem_v)
        mem_k, mem_v = state.mem_k, state.mem_v
        if self.memory:  # this chunk's summary joins the bank [conformer:memory-summary]
            H = self.mha.H
            S = a.mean(axis=1, keepdims=True)  # (B, 1, E)
            mem_k = np.concatenate([mem_k, split_heads(_project(self.mha, "k", S), H)], axis=2)
            mem_v = np.concatenate([mem_v, split_heads(_project(self.mha, "v", S), H)], axis=2)
        x2 = x1 + att
        c, conv_state = self._conv_chunk(x2, state.conv)
        x3 = x2 + c
        y = self.norm_out(x3 + half * self.ff2(x3))
        if keep >= 0:
            k, v = k[:, :, k.shape[2] - min(keep, k.shape[2]):], v[:, :, v.shape[2] - min(keep, v.shape[2]):]
        return y, LayerStreamState(k, v, conv_state, mem_k, mem_v)

    def _attend_chunk(self, a: np.ndarray, k_cache: np.ndarray, v_cache: np.ndarray, offset: int,
                      mem_k: np.ndarray, mem_v: np.ndarray):
        """Relative-position attention of a chunk's queries over cached + new keys [conformer:stream-attn]."""
        mha, H = self.mha, self.mha.H
        B, C, E = a.shape
        dk = E // H
        bias_u, bias_v = _tensor(mha, "pos_bias_u"), _tensor(mha, "pos_bias_v")
        q = split_heads(_project(mha, "q", a), H)  # (B, H, C, dk)
        k = np.concatenate([k_cache, split_heads(_project(mha, "k", a), H)], axis=2)  # (B, H, L+C, dk)
        v = np.concatenate([v_cache, split_heads(_project(mha, "v", a), H)], axis=2)
        L = k_cache.shape[2]
        n = L + C
        pos = rel_positions(n, E, dtype=a.dtype)  # row r: distance n - 1 - r
        p = _project(mha, "pos", pos).reshape(2 * n - 1, H, dk).transpose(1, 0, 2)  # (H, 2n-1, dk)
        i = offset + np.arange(C)  # absolute query frames
        j = offset - L + np.arange(n)  # absolute key frames
        r = (n - 1) - (i[:, None] - j[None, :])  # (C, n) row of distance i - j
        ac = (q + bias_u[None, :, None, :]) @ k.swapaxes(-1, -2)  # (B, H, C, n)
        bd_full = (q + bias_v[None, :, None, :]) @ p.swapaxes(-1, -2)[None]  # (B, H, C, 2n-1)
        bd = np.take_along_axis(bd_full, np.broadcast_to(r, (B, H, C, n)), axis=-1)
        s = ac + bd  # every cached key is allowed by the chunk mask
        vv = v
        if self.memory:  # memory slots of the chunks before the window: content scores only
            m = max(0, offset // self.mha.chunk_size - self.mha.left_chunks)  # [conformer:memory-scores]
            am = (q + bias_u[None, :, None, :]) @ mem_k[:, :, :m].swapaxes(-1, -2)  # (B, H, C, m)
            s = np.concatenate([s, am], axis=-1)
            vv = np.concatenate([v, mem_v[:, :, :m]], axis=2)
        s = s * a.dtype.type(1.0 / np.sqrt(dk))
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        out = _project(mha, "o", merge_heads(s @ vv))
        return out, k, v

    def _conv_chunk(self, x: np.ndarray, cache: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The causal convolution module on a chunk; ``cache`` holds the last K - 1 GLU outputs
        [conformer:stream-conv]."""
        m = self.conv
        h = m.glu(m.pw1(m.norm(x)))
        hc = np.concatenate([cache, h], axis=1)  # (B, K-1+C, E)
        y, _, _ = conv1d_forward(hc, m.dw.params["weight"], m.dw.params.get("bias"), groups=hc.shape[2])
        y = m.pw2(m.act(m.bn(y)))
        return y, hc[:, hc.shape[1] - (m.K - 1):]


# ---------------------------------------------------------------------------------------- subsampling
class _SubCache(NamedTuple):
    shape: tuple[int, int, int, int]  # (B, C, T', F') of the second convolution's output


class Conv2dSubsampling(Module):
    """x4 subsampling in time: ``Conv2d(1->C, 3x3, stride 2) -> ReLU -> Conv2d(C->C, 3x3, stride 2) -> ReLU
    -> Linear(C F' -> E)`` [conformer:subsample].

    No time padding (each output frame t reads input frames 4t .. 4t + 6); one frequency bin of zero
    padding on each side (so that even 3 bins give one output bin). ``forward(x (B, T, D), lengths)
    -> (y (B, T', E), out_lengths)``.
    """

    def __init__(self, input_dim: int, channels: int, dim: int, *, rng: np.random.Generator, dtype) -> None:
        super().__init__()
        self.input_dim = positive_int("input_dim", input_dim)
        self.conv1 = Conv2d(1, channels, 3, stride=2, padding=(0, 1), rng=rng, dtype=dtype)
        self.act1 = ReLU()
        self.conv2 = Conv2d(channels, channels, 3, stride=2, padding=(0, 1), rng=rng, dtype=dtype)
        self.act2 = ReLU()
        F1 = (input_dim + 2 - 3) // 2 + 1
        self.F2 = (F1 + 2 - 3) // 2 + 1
        self.out = Linear(channels * self.F2, dim, rng=rng, dtype=dtype)

    def forward(self, x, lengths=None):
        B, T, _ = x.shape
        if T < 7:
            raise ValueError(f"x: the x4 subsampling needs at least 7 frames, got T={T}")
        h, l1 = self.conv1(x[:, None], lengths)  # (B, C, T1, F1) [conformer:subsample]
        h, l2 = self.conv2(self.act1(h), l1)  # (B, C, T', F'), zero past l2
        h = self.act2(h)
        self.push(_SubCache(h.shape))
        _, C, T2, F2 = h.shape
        y = self.out(h.transpose(0, 2, 1, 3).reshape(B, T2, C * F2), l2)  # [conformer:subsample]
        return y, l2

    def backward(self, dy):
        cache: _SubCache = self.pop()
        B, C, T2, F2 = cache.shape
        dh = self.out.backward(dy).reshape(B, T2, C, F2).transpose(0, 2, 1, 3)
        dh = self.conv2.backward(self.act2.backward(dh))
        return self.conv1.backward(self.act1.backward(dh))[:, 0]


# ---------------------------------------------------------------------------------------- encoder
class StreamState(NamedTuple):
    """The carried memory of a streaming Conformer encoder (batch first; every stream advances together)."""
    feats: np.ndarray  # (B, r, D) input frames not yet consumed by the subsampling (r <= 6 + new frames)
    pending: np.ndarray  # (B, p, E) subsampled frames waiting to fill a chunk (p < chunk_size)
    layers: tuple[LayerStreamState, ...]  # per block: cached keys/values, convolution cache
    offset: int  # encoder frames already emitted (absolute index of the next chunk's first frame)


class _EncoderCache(NamedTuple):
    T: int  # input frames before padding to one subsampling window


class ConformerEncoder(Module):
    """Subsampling + ``num_layers`` Conformer blocks with padding and (optionally) chunk masks.

    ``chunk_size`` (encoder frames after subsampling; 0 = full attention) and ``left_chunks`` (-1 =
    every past chunk) define the attention mask [conformer:chunk-mask]; ``causal`` makes the depthwise
    convolutions causal. With ``chunk_size > 0`` and ``causal=True`` the encoder streams exactly.
    ``sub_channels`` (0: ``dim``, as ESPnet) sets the subsampling's channels: its second convolution costs
    ``9 C^2`` multiply-adds per output cell, the largest single cost of a small encoder on a CPU.
    """

    def __init__(self, input_dim: int, dim: int, *, num_layers: int, heads: int, ff_mult: int,
                 conv_kernel: int, dropout: float, chunk_size: int = 0, left_chunks: int = -1,
                 causal: bool = False, sub_channels: int = 0, memory: bool = False, seed: int = 0,
                 dtype=np.float32) -> None:
        super().__init__()
        self.dim = positive_int("hidden", dim)
        positive_int("num_layers", num_layers)
        self.chunk_size = positive_int("chunk_size", chunk_size, minimum=0)
        if (isinstance(left_chunks, bool) or not isinstance(left_chunks, (int, np.integer))
                or left_chunks < -1):
            raise ValueError(f"left_chunks: expected an integer >= -1, got {left_chunks!r}")
        if not isinstance(causal, bool):
            raise TypeError(f"causal: expected True or False, got {causal!r}")
        self.left_chunks, self.causal = int(left_chunks), causal
        if not isinstance(memory, bool):
            raise TypeError(f"memory: expected True or False, got {memory!r}")
        if memory and (self.chunk_size < 1 or self.left_chunks < 0):
            raise ValueError(f"memory: a memory bank needs chunk_size >= 1 and left_chunks >= 0 (the chunks "
                             f"beyond the window), got chunk_size={chunk_size}, left_chunks={left_chunks}")
        self.dtype = np.dtype(dtype)
        sub_channels = positive_int("sub_channels", sub_channels, minimum=0) or dim
        self.subsample = Conv2dSubsampling(input_dim, sub_channels, dim,
                                           rng=np.random.default_rng([seed, 10]), dtype=dtype)
        self.layers = ModuleList([ConformerBlock(dim, heads, ff_mult=ff_mult, conv_kernel=conv_kernel,
                                                 causal=causal, dropout=dropout, memory=memory,
                                                 chunk_size=chunk_size, left_chunks=left_chunks,
                                                 seed=[seed, 11, i], dtype=dtype) for i in range(num_layers)])

    def forward(self, x, lengths=None):
        """x (B, T, D) zero-padded, lengths (B,) -> (h (B, T', E), out_lengths (B,)).

        A batch shorter than one subsampling window (7 frames) is zero-padded to it (its lengths give 0
        encoder frames)."""
        B, T, D = x.shape
        lengths = lengths_array("lengths", lengths, B, T)
        if T < 7:
            x = np.concatenate([x, np.zeros((B, 7 - T, D), x.dtype)], axis=1)
        h, hl = self.subsample(x, lengths)
        mask = encoder_mask(hl, h.shape[1], self.chunk_size, self.left_chunks)
        for layer in self.layers:
            h = layer(h, hl, mask)
        self.push(_EncoderCache(T))
        return h, hl

    def backward(self, dh):
        cache: _EncoderCache = self.pop()
        for layer in reversed(list(self.layers)):
            dh = layer.backward(dh)
        return self.subsample.backward(dh)[:, :cache.T]

    # ------------------------------------------------------------------ streaming
    def _check_streamable(self) -> None:
        if self.chunk_size <= 0:
            raise ValueError("chunk_size: streaming needs chunk_size > 0 (full attention sees the future)")
        if not self.causal:
            raise ValueError("causal: streaming needs causal=True (a centred convolution sees the future)")

    def stream_init(self, batch_size: int) -> StreamState:
        """The state before any frame."""
        self._check_streamable()
        B = positive_int("batch_size", batch_size)
        return StreamState(np.zeros((B, 0, self.subsample.input_dim), self.dtype),
                           np.zeros((B, 0, self.dim), self.dtype),
                           tuple(layer.init_stream(B, self.dtype) for layer in self.layers), 0)

    def stream(self, x: np.ndarray, state: StreamState, *, final: bool = False
               ) -> tuple[np.ndarray, StreamState]:
        """Feed ``x (B, n, D)`` (any n >= 0) -> (encoder frames completed by it ``(B, m, E)``, new state).

        ``final=True`` ends the utterance: the last partial chunk is encoded. Concatenating every
        output equals the offline encoder (eval mode) on the whole utterance. Runs in eval mode; no cache
        is pushed. [conformer:stream-subsample] [conformer:stream-attn] [conformer:stream-conv]
        """
        self._check_streamable()
        if not isinstance(state, StreamState):
            raise TypeError(f"state: expected a StreamState (from stream_init), got {type(state).__name__}")
        B = state.feats.shape[0]
        x = float_array("x", x, ndim=3, shape=(B, None, self.subsample.input_dim), finite=True)
        was = self.training
        self.eval()
        try:
            buf = np.concatenate([state.feats, x.astype(self.dtype, copy=False)], axis=1)
            R = buf.shape[1]
            m = max(0, (R - 7) // 4 + 1)  # new subsampled frames: output t reads inputs 4t .. 4t + 6
            pending = state.pending
            if m:
                h, _ = self.subsample(buf[:, :4 * (m - 1) + 7])  # [conformer:stream-subsample]
                pending = np.concatenate([pending, h], axis=1)
            buf = buf[:, 4 * m:]
            C = self.chunk_size
            keep = -1 if self.left_chunks < 0 else self.left_chunks * C
            layers, offset, outs = list(state.layers), state.offset, []
            while pending.shape[1] >= C or (final and pending.shape[1] > 0):
                h, pending = pending[:, :C], pending[:, C:]
                for i, layer in enumerate(self.layers):
                    h, layers[i] = layer.forward_chunk(h, layers[i], offset, keep)
                offset += h.shape[1]
                outs.append(h)
        finally:
            self.train(was)
        out = np.concatenate(outs, axis=1) if outs else np.zeros((B, 0, self.dim), self.dtype)
        return out, StreamState(buf, pending, tuple(layers), offset)
