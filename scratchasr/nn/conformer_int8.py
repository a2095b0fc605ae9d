"""Post-training int8 quantisation of a Conformer model's linear layers, with an integer inference path.

    qmodel = quantize_int8(model)        # a copy; the float model is untouched
    hyps = qmodel.decode(batch)          # same API, linear layers run in int8 with int32 sums

Every ``Linear`` (feed-forward, pointwise convolutions, subsampling projection, output or joint layers)
and every projection of the relative-position attention (q, k, v, position, output) is replaced by an
:class:`Int8Linear`: weights int8 with one scale per output channel [conformer:int8-scale], activations
quantised per row (frame) at run time [conformer:int8-act], an integer matrix product accumulated in
int32, then one float rescale [conformer:int8-matmul]. Where the CPU has AVX-512 VNNI (detected at import,
:func:`vnni_available`) the product is ``kernels/int8_vnni.py``: unsigned-shifted activations
[conformer:int8-offset] against weights packed once per layer [conformer:int8-pack], with the rescale and
bias fused into its stores (NumPy twins :func:`quantize_rows_u8_numpy`, :func:`int8_matmul_vnni_numpy`,
:func:`int8_linear_vnni_numpy`); elsewhere the portable ``kernels/int8_matmul.py`` (twin
:func:`int8_matmul_numpy`). Both return exactly the NumPy path's numbers; ``backend=`` picks one.
Layer and batch norms, the depthwise and subsampling convolutions, the softmax, the prediction LSTM and
the two joint matrices the transducer's step interface reads directly (``joint_pred``, ``joint_out``)
stay in float (together a few percent of the parameters and of the
multiply-adds of a 144-wide encoder). The error of each quantised product is bounded by
[conformer:int8-bound], which the tests check output by output.

Inference only: the quantised modules have no backward, and the int8 copy decodes offline (the streaming
path of nn/conformer.py reads float attention weights, which the copy no longer holds).
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np

from .._validate import float_array, length_mask, lengths_array
from ..ops.attention import masked_softmax, merge_heads, query_rows, split_heads
from ..ops.rel_attention import rel_positions, rel_shift_index
from .attention import RelPositionMultiHeadAttention
from .layers import Linear
from .module import Module, ModuleList

__all__ = ["Int8Linear", "Int8RelMHA", "quantize_int8", "quantize_weight", "quantize_rows", "int8_matmul",
           "int8_matmul_numpy", "int8_error_bound", "vnni_available", "pack_weight_vnni",
           "unpack_weight_vnni", "quantize_rows_u8_numpy", "int8_matmul_vnni_numpy", "int8_linear_vnni_numpy"]

QMAX = 127  # symmetric int8 range [-127, 127] (-128 unused, so negation never overflows)


def quantize_weight(W: np.ndarray):
    """Per-output-channel symmetric quantisation of ``W (O, K)`` -> (Wq int8 (O, K), scale float32 (O,)).

    ``scale[o] = max_k |W[o, k]| / 127`` (1 for an all-zero row), ``Wq = round(W / scale)``
    [conformer:int8-scale].
    """
    W = float_array("W", W, ndim=2)
    amax = np.abs(W).max(axis=1)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)  # [conformer:int8-scale]
    Wq = np.clip(np.rint(W / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return Wq, scale


def quantize_rows(x: np.ndarray):
    """Dynamic per-row quantisation of activations ``x (N, K)`` -> (xq int8, scale (N,))
    [conformer:int8-act]."""
    amax = np.abs(x).max(axis=1)
    scale = np.where(amax > 0, amax / QMAX, 1.0).astype(np.float32)  # [conformer:int8-act]
    xq = np.clip(np.rint(x / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return xq, scale


def int8_matmul_numpy(xq: np.ndarray, wq: np.ndarray, out: np.ndarray) -> None:
    """The readable twin of ``kernels.int8_matmul.int8_matmul_kernel``: out = xq @ wq^T in int32."""
    out[...] = xq.astype(np.int32) @ wq.astype(np.int32).T  # [conformer:int8-matmul]


# ---------------------------------------------------------------- AVX-512 VNNI path (kernels/int8_vnni.py)
VEC, NR = 16, 3  # the packed layout of kernels/int8_vnni.py: vectors of 16 outputs, groups of 3 vectors


def _vnni_kernels():
    """kernels/int8_vnni.py, imported on first use (Numba loads only when an int8 product runs)."""
    global _KV
    if _KV is None:
        from ..kernels import int8_vnni as _KV
    return _KV


_KV = None


def vnni_available() -> bool:
    """True when ``kernels/int8_vnni.py`` can run here (AVX-512 VNNI host, JIT on); read at call time."""
    return _vnni_kernels().VNNI


def _vnni_groups(n_out: int):
    """(first output, vectors) of each packed group: full groups of NR vectors, then single vectors."""
    nvec = -(-n_out // VEC)
    full = nvec // NR
    return [(NR * VEC * g, NR) for g in range(full)] + [(VEC * v, 1) for v in range(NR * full, nvec)]


def pack_weight_vnni(wq: np.ndarray):
    """``wq (O, K)`` int8 -> (wp flat int8, corr (O,) int32), the layout of kernels/int8_vnni.py
    [conformer:int8-pack]: K padded to Kp = 4 ceil(K/4) and O to 16 ceil(O/16) with zeros; each group of
    ``nv`` vectors stored as ``(Kp/4, nv, 16, 4)`` (one 64-byte load = 16 outputs x 4 k);
    ``corr[o] = 128 sum_k wq[o, k]`` [conformer:int8-offset]."""
    n_out, K = wq.shape
    Kp, Op = -(-K // 4) * 4, -(-n_out // VEC) * VEC
    w = np.zeros((Op, Kp), np.int8)
    w[:n_out, :K] = wq
    parts = [w[o0:o0 + nv * VEC].reshape(nv * VEC, Kp // 4, 4).transpose(1, 0, 2).ravel()
             for o0, nv in _vnni_groups(n_out)]  # (Kp/4, nv * 16, 4) per group [conformer:int8-pack]
    wp = np.concatenate(parts) if parts else np.zeros(0, np.int8)
    corr = (128 * wq.astype(np.int64).sum(axis=1)).astype(np.int32)  # [conformer:int8-offset]
    return np.ascontiguousarray(wp), corr


def unpack_weight_vnni(wp: np.ndarray, n_out: int, Kp: int) -> np.ndarray:
    """The inverse of :func:`pack_weight_vnni`: ``(O, Kp)`` int8 (the K padding holds zeros)."""
    w, off = np.zeros((-(-n_out // VEC) * VEC, Kp), np.int8), 0
    for o0, nv in _vnni_groups(n_out):
        size = nv * VEC * Kp
        w[o0:o0 + nv * VEC] = wp[off:off + size].reshape(Kp // 4, nv * VEC, 4).transpose(1, 0, 2).reshape(
            nv * VEC, Kp)
        off += size
    return w[:n_out]


def quantize_rows_u8_numpy(x, xbits, mask, qmax, amax, amax_bits, xu, sx) -> None:
    """Twin of ``kernels.int8_vnni.quantize_rows_u8_kernel``: :func:`quantize_rows` of ``x (N, K)`` into
    ``sx (N,)`` and the unsigned codes ``xu (N, Kp)`` = xq + 128, padding 128 [conformer:int8-offset];
    ``amax (N,)`` = max_k |x| (``xbits``, ``mask``, ``amax_bits``: the kernel's bit-pattern views)."""
    xq, sx[...] = quantize_rows(x)
    amax[...] = np.abs(x).max(axis=1) if x.shape[1] else 0
    xu[...] = 128
    xu[:, :x.shape[1]] = (xq.astype(np.int16) + 128).astype(np.uint8)  # [conformer:int8-offset]


def int8_matmul_vnni_numpy(xu: np.ndarray, wp: np.ndarray, corr: np.ndarray, out: np.ndarray) -> None:
    """Twin of ``kernels.int8_vnni.int8_matmul_vnni_kernel``: out = (xu - 128) @ wq^T in int32, computed as
    ``xu @ wq^T - 128 sum_k wq`` [conformer:int8-offset]."""
    w = unpack_weight_vnni(wp, out.shape[1], xu.shape[1]).astype(np.int64)
    out[...] = (xu.astype(np.int64) @ w.T - corr).astype(np.int32)  # [conformer:int8-offset]


def int8_linear_vnni_numpy(xu, sx, wp, corr, sw, b, has_b, y) -> None:
    """Twin of ``kernels.int8_vnni.int8_linear_vnni_kernel``: the rescale of :class:`Int8Linear`, y (N, O)
    in y's dtype, plus ``b (O,)`` (same dtype as y) if ``has_b`` [conformer:int8-matmul]."""
    acc = np.empty(y.shape, np.int32)
    int8_matmul_vnni_numpy(xu, wp, corr, acc)
    y[...] = acc * sx[:, None].astype(np.float64) * sw[None, :]  # [conformer:int8-matmul]
    if has_b:
        y += b


_SIGN_MASK = {4: (np.int32, np.int32(2**31 - 1)), 8: (np.int64, np.int64(2**63 - 1))}  # |x| on the bits


def _u8_rows(x: np.ndarray, backend: Optional[str]):
    """Quantised unsigned rows of ``x (N, K)`` for the VNNI kernels: (xu (N, Kp) uint8, sx (N,) float32)."""
    x = np.ascontiguousarray(x)
    N, K = x.shape
    xu, sx = np.empty((N, -(-K // 4) * 4), np.uint8), np.empty(N, np.float32)
    ibits, mask = _SIGN_MASK[x.dtype.itemsize]
    amax = np.empty(N, x.dtype)
    args = (x, x.view(ibits), mask, x.dtype.type(QMAX), amax, amax.view(ibits), xu, sx)
    if backend == "numpy":
        quantize_rows_u8_numpy(*args)
    else:
        _vnni_kernels().quantize_rows_u8_kernel(*args)
    return xu, sx


def _resolve(backend: Optional[str]) -> str:
    """None -> "vnni" where the CPU has it, else "numba"; "vnni" without the instruction is refused."""
    if backend not in (None, "numpy", "numba", "vnni"):
        raise ValueError(f"backend: expected None, 'numpy', 'numba' or 'vnni', got {backend!r}")
    if backend is None:
        return "vnni" if vnni_available() else "numba"
    if backend == "vnni" and not vnni_available():
        raise ValueError("backend: 'vnni' needs an AVX-512 VNNI CPU (and Numba's JIT); use None or 'numba'")
    return backend


def int8_matmul(xq: np.ndarray, wq: np.ndarray, *, backend: Optional[str] = None) -> np.ndarray:
    """``xq (N, K) int8 @ wq (O, K)^T int8 -> (N, O) int32`` (exact integer sums).

    ``backend``: None (the VNNI kernel where the CPU has AVX-512 VNNI, else the portable Numba kernel),
    ``"vnni"``, ``"numba"`` (portable, kernels/int8_matmul.py) or ``"numpy"`` (the twin)."""
    if xq.dtype != np.int8 or wq.dtype != np.int8:
        raise TypeError(f"xq: expected int8 operands, got {xq.dtype} and {wq.dtype}")
    if xq.ndim != 2 or wq.ndim != 2 or xq.shape[1] != wq.shape[1]:
        raise ValueError(f"xq: expected (N, K) and (O, K) operands, got {xq.shape} and {wq.shape}")
    if xq.shape[1] * QMAX * QMAX >= 2**31:
        raise ValueError(f"xq: K={xq.shape[1]} could overflow the int32 sums")
    backend = _resolve(backend)
    out = np.empty((xq.shape[0], wq.shape[0]), np.int32)
    if backend == "numpy":
        int8_matmul_numpy(xq, wq, out)
    elif backend == "numba":
        from ..kernels.int8_matmul import int8_matmul_kernel
        int8_matmul_kernel(np.ascontiguousarray(xq), np.ascontiguousarray(wq), out)
    else:
        N, K = xq.shape
        xu = np.full((N, -(-K // 4) * 4), 128, np.uint8)
        xu[:, :K] = (xq.astype(np.int16) + 128).astype(np.uint8)  # [conformer:int8-offset]
        wp, corr = pack_weight_vnni(wq)
        _vnni_kernels().int8_matmul_vnni_kernel(xu, wp, corr, out)
    return out


def int8_error_bound(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Worst-case |y - y_int8| of each output of ``x (N, K) @ W (O, K)^T`` [conformer:int8-bound]."""
    _, sw = quantize_weight(W)
    _, sx = quantize_rows(x)
    a, s = sx[:, None].astype(np.float64), sw[None, :].astype(np.float64)  # (N, 1), (1, O)
    return (a / 2 * np.abs(W).sum(axis=1)[None, :] + s / 2 * np.abs(x).sum(axis=1)[:, None]
            + W.shape[1] * a * s / 4)  # [conformer:int8-bound]


def _words(a: np.ndarray) -> np.ndarray:
    """An int8 array as flat int64 words when its size allows (8x fewer compares), else flat int8."""
    a = np.ascontiguousarray(a).reshape(-1)
    return a.view(np.int64) if a.size % 8 == 0 else a


class Int8Linear(Module):
    """``y = x W^T + b`` with W stored as int8 rows and per-row scales; inference only."""

    def __init__(self, W: np.ndarray, b: Optional[np.ndarray], *, backend: Optional[str] = None) -> None:
        super().__init__()
        Wq, scale = quantize_weight(W)
        self.dtype = W.dtype
        self.backend = backend
        self.add_buffer("W_q", Wq)
        self.add_buffer("scale", scale)
        if b is not None:
            self.add_buffer("b", b.copy())

    @classmethod
    def from_linear(cls, lin: Linear, **kw) -> "Int8Linear":
        return cls(lin.params["W"], lin.params.get("b"), **kw)

    def _packed(self):
        """(wp, corr) of :func:`pack_weight_vnni`, built once and rebuilt if ``W_q`` changed since (e.g. by
        ``load_state_dict``, which copies into the buffer): the packed copy is not part of the state."""
        Wq = self.buffers["W_q"]
        cached = getattr(self, "_vnni", None)
        if (cached is None or cached[0] != Wq.shape
                or not _vnni_kernels().same_bytes(cached[1], _words(Wq))):
            if Wq.shape[1] * QMAX * QMAX >= 2**31:
                raise ValueError(f"x: K={Wq.shape[1]} could overflow the int32 sums")
            self._vnni = cached = (Wq.shape, _words(Wq.copy()), *pack_weight_vnni(Wq))
        return cached[2], cached[3]

    def _fusable(self, x2: np.ndarray) -> bool:
        """The fused VNNI kernel takes float32/float64 rows and output, and a bias of the output's dtype
        (anything else, e.g. float16, takes the unfused path with the same integer product)."""
        floats = (np.float32, np.float64)
        return (x2.dtype in floats and self.dtype in floats
                and ("b" not in self.buffers or self.buffers["b"].dtype == self.dtype))

    def forward(self, x, lengths=None):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        backend = _resolve(self.backend)
        if backend == "vnni" and self._fusable(x2):  # unsigned codes, VNNI product, offset, rescale
            wp, corr = self._packed()
            xu, sx = _u8_rows(x2, backend)
            y = np.empty((x2.shape[0], self.buffers["W_q"].shape[0]), self.dtype)
            b = self.buffers["b"] if "b" in self.buffers else np.zeros(y.shape[1], self.dtype)
            _vnni_kernels().int8_linear_vnni_kernel(xu, sx, wp, corr, self.buffers["scale"], b,
                                                    "b" in self.buffers, y)  # [conformer:int8-matmul]
        else:
            xq, sx = quantize_rows(x2)
            acc = int8_matmul(xq, self.buffers["W_q"], backend=backend)  # int32 (N, O)
            y = (acc * sx[:, None].astype(np.float64) * self.buffers["scale"][None, :]).astype(self.dtype)
            if "b" in self.buffers:
                y += self.buffers["b"]  # [conformer:int8-matmul]
        y = y.reshape(*lead, self.buffers["W_q"].shape[0])  # explicit: lead may hold no rows
        if lengths is not None:
            y = np.where(length_mask(lengths_array("lengths", lengths, x.shape[0], x.shape[1]),
                                     x.shape[1])[..., None], y, 0)
        return y

    def backward(self, dout):
        raise RuntimeError("Int8Linear: inference only (quantised after training)")


class Int8RelMHA(Module):
    """Relative-position self-attention with int8 projections (same arithmetic as ops.rel_attention)."""

    def __init__(self, mha: RelPositionMultiHeadAttention, *, backend: Optional[str] = None) -> None:
        super().__init__()
        P = mha.params
        self.H, self.E = mha.H, mha.E
        self.q = Int8Linear(P["W_q"], P["b_q"], backend=backend)
        self.k = Int8Linear(P["W_k"], P["b_k"], backend=backend)
        self.v = Int8Linear(P["W_v"], P["b_v"], backend=backend)
        self.pos = Int8Linear(P["W_pos"], None, backend=backend)
        self.o = Int8Linear(P["W_o"], P["b_o"], backend=backend)
        self.add_buffer("pos_bias_u", P["pos_bias_u"].copy())
        self.add_buffer("pos_bias_v", P["pos_bias_v"].copy())

    def forward(self, x: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
        B, T, E = x.shape
        H, dk = self.H, E // self.H
        q, k, v = split_heads(self.q(x), H), split_heads(self.k(x), H), split_heads(self.v(x), H)
        p = self.pos(rel_positions(T, E, dtype=x.dtype)).reshape(2 * T - 1, H, dk).transpose(1, 0, 2)
        ac = (q + self.buffers["pos_bias_u"][None, :, None, :]) @ k.swapaxes(-1, -2)  # [attn:rel-scores]
        bd_full = (q + self.buffers["pos_bias_v"][None, :, None, :]) @ p.swapaxes(-1, -2)[None]
        bd = np.take_along_axis(bd_full, np.broadcast_to(rel_shift_index(T), (B, H, T, T)), axis=-1)
        P = masked_softmax((ac + bd) * x.dtype.type(1.0 / np.sqrt(dk)), mask)
        out = self.o(merge_heads(P @ v))
        rows = query_rows(mask, B, T)
        return out if rows is None else np.where(rows, out, 0)

    __call__ = forward

    def backward(self, dout):
        raise RuntimeError("Int8RelMHA: inference only (quantised after training)")


def _swap(module: Module, backend, keep_float, prefix: str = "") -> None:
    """Replace Linear and RelPositionMultiHeadAttention children of ``module`` (recursively), in place,
    except those whose dotted name is in ``keep_float``."""
    if isinstance(module, ModuleList):
        for i, child in enumerate(module._items):
            if prefix + str(i) not in keep_float:
                module._items[i] = _quantized(child, backend)
            _swap(module._items[i], backend, keep_float, f"{prefix}{i}.")
        return
    for name, child in list(vars(module).items()):
        if isinstance(child, Module):
            if prefix + name not in keep_float:
                setattr(module, name, _quantized(child, backend))
            _swap(getattr(module, name), backend, keep_float, f"{prefix}{name}.")


def _quantized(child: Module, backend) -> Module:
    if isinstance(child, Linear):
        return Int8Linear.from_linear(child, backend=backend)
    if type(child) is RelPositionMultiHeadAttention:  # a memory-bank subclass keeps its float attention
        return Int8RelMHA(child, backend=backend)
    return child


# Read as float arrays by the transducer's step interface (models/transducer.py: step, joint_step), so
# they stay float: the prediction network's output projection and the joint's output layer.
KEEP_FLOAT = ("joint_pred", "joint_out")


def quantize_int8(model: Module, *, backend: Optional[str] = None, keep_float=KEEP_FLOAT) -> Module:
    """An eval-mode copy of ``model`` whose linear layers and attention projections run in int8
    (except the modules named in ``keep_float``)."""
    q = copy.deepcopy(model)
    q.clear_caches()
    _swap(q, backend, set(keep_float))
    q.eval()
    q.quantized = "int8"
    return q
