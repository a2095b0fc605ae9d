"""The int8 product on AVX-512 VNNI: ``vpdpbusd`` (64 unsigned-by-signed byte products per instruction).

NumPy twins (same arguments, same results, exactly): ``scratchasr.nn.conformer_int8`` functions
``quantize_rows_u8_numpy``, ``int8_matmul_vnni_numpy`` and ``int8_linear_vnni_numpy``. Equation tags:
docs/equations/conformer.md [conformer:int8-act], [conformer:int8-matmul], [conformer:int8-offset],
[conformer:int8-pack].

LLVM's auto-vectoriser does not emit VNNI dot products from a Numba loop, so the register tile is written
as LLVM IR (``numba.extending.intrinsic``) calling ``llvm.x86.avx512.vpdpbusd.512``: one instruction adds,
to each of 16 int32 lanes, the sum of 4 products u8 x s8. A tile of ``MR`` rows times ``NR`` vectors of 16
outputs keeps ``MR * NR`` accumulators in zmm registers (8 x 3 = 24 of the 32) for the whole K loop; each
step of 4 k loads ``NR`` weight vectors and broadcasts 4 bytes of each row.

Operands, prepared by ``scratchasr.nn.conformer_int8`` (the wrapper validates, packs, allocates):

* ``xu (N, Kp)`` uint8: activations shifted to unsigned, ``xq + 128``, K padded to ``Kp = 4 ceil(K/4)``
  (the padding value is irrelevant: its weights are 0);
* ``wp`` int8, flat: the weights packed once at quantisation time [conformer:int8-pack]: output vectors of
  16 in groups of ``NR``; a full group ``g`` at ``g * K4 * NR * 64`` holds ``(K4, NR, 16, 4)`` =
  ``W[o, 4 k4 + r]`` at ``[k4, v, l, r]`` for ``o = 16 (NR g + v) + l``; the last 1..NR-1 vectors (if any)
  follow as groups of one vector ``(K4, 16, 4)``; outputs past ``O`` and k past ``K`` are 0;
* ``corr (O,)`` int32: ``128 * sum_k wq[o, k]``, subtracted from the unsigned sums [conformer:int8-offset].

Integer sums wrap modulo 2**32 (vpdpbusd does not saturate); the final result is exact whenever the true
sum fits in int32, which the caller checks (``K * 127**2 < 2**31``). Rows are split into tiles of 8, 4 and
1 rows. The kernels are serial: the project decodes on one thread. (A ``prange`` over row tiles, with the
tile loop in a helper function, matched the serial kernel at one thread and cost +1 us at 4 rows; with 2
Numba threads on this shared 2-core machine it cost ~8 ms of CPU per call, the workers waiting.)

``VNNI`` says whether this process can run these kernels (host CPU features through llvmlite, Numba's
target CPU not overridden, JIT enabled); callers fall back to ``kernels/int8_matmul.py`` when it is False.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.extending import intrinsic

from ._njit import njit

MR = 8  # rows per full tile
NR = 3  # 16-output vectors per full tile: MR * NR = 24 zmm accumulators
VEC = 16  # int32 lanes per zmm register


def _host_has_vnni() -> bool:
    if numba.config.DISABLE_JIT:
        return False
    need = ("avx512f", "avx512bw", "avx512vnni")
    if numba.config.CPU_FEATURES:  # an explicit feature string decides (e.g. a portable cache)
        return all(f"+{f}" in numba.config.CPU_FEATURES.split(",") for f in need)
    if numba.config.CPU_NAME not in (None, "", "host"):
        return False  # a named target CPU without an explicit feature list: do not guess
    try:
        from llvmlite import binding
        feats = binding.get_host_cpu_features()
    except Exception:  # noqa: BLE001 -- any failure to query means: do not use the instruction
        return False
    return all(feats.get(f, False) for f in need)


VNNI: bool = _host_has_vnni()


def _make_tile(mr: int, nr: int):
    """An intrinsic ``tile(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)`` for ``mr`` rows
    from ``n0`` and the ``nr`` output vectors from ``o0`` whose packed weights start at ``wp[woff]``:
    s[i, 16 v + l] = sum_k xu[n0 + i, k] W[o0 + 16 v + l, k]. With ``direct`` (all nr * 16 outputs exist)
    it writes y[n0 + i, o] itself: ``s - corr[o]`` for an int32 ``y``; for a float ``y``,
    ``dtype(float64(s - corr[o]) * float64(sx[n]) * float64(sw[o]))`` then ``+ b[o]`` if ``has_b``
    (IEEE operations in the order of the NumPy twin, no fast-math flags). Otherwise it stores the raw sums
    into ``acc (MR, NR * 16)`` int32 and the caller finishes the last, partial vector."""

    @intrinsic
    def tile(typingctx, xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y):
        if any(isinstance(t, types.Array) and t.layout != "C" for t in (xu, wp, acc, corr, sx, sw, b, y)):
            raise TypingError("tile: the arrays must be C-contiguous (raw pointer offsets)")
        sig = types.void(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)
        is_float = isinstance(y.dtype, types.Float)

        def codegen(context, builder, sig, args):
            i64, i32, i8 = ir.IntType(64), ir.IntType(32), ir.IntType(8)
            v16 = ir.VectorType(i32, VEC)
            f64v = ir.VectorType(ir.DoubleType(), VEC)
            arr = [context.make_array(t)(context, builder, a) if isinstance(t, types.Array) else None
                   for t, a in zip(sig.args, args)]
            xa, wa, aa, ca, sxa, swa, ba, ya = (arr[j] for j in (0, 1, 4, 7, 8, 9, 10, 12))
            n0v, woffv, o0v, directv, has_bv = args[2], args[3], args[5], args[6], args[11]
            fnty = ir.FunctionType(v16, [v16, v16, v16])
            dpbusd = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.vpdpbusd.512")
            Kp = builder.extract_value(xa.shape, 1)
            K4 = builder.udiv(Kp, i64(4))
            xrow0 = builder.gep(builder.bitcast(xa.data, i8.as_pointer()), [builder.mul(n0v, Kp)])
            xrows = [builder.gep(xrow0, [builder.mul(i64(i), Kp)]) for i in range(mr)]
            wbase = builder.gep(builder.bitcast(wa.data, i8.as_pointer()), [woffv])
            zero = ir.Constant(v16, None)
            accs = [[cgutils.alloca_once_value(builder, zero) for _ in range(nr)] for _ in range(mr)]
            with cgutils.for_range(builder, K4) as loop:  # one step = 4 values of k
                wk = builder.gep(wbase, [builder.mul(loop.index, i64(nr * 64))])
                ws = [builder.load(builder.bitcast(builder.gep(wk, [i64(64 * v)]), v16.as_pointer()), align=1)
                      for v in range(nr)]  # (16, 4) int8 each
                for i in range(mr):
                    xp = builder.gep(xrows[i], [builder.mul(loop.index, i64(4))])
                    x4 = builder.load(builder.bitcast(xp, i32.as_pointer()), align=1)  # 4 uint8 of row i
                    xb = builder.shuffle_vector(builder.insert_element(zero, x4, i32(0)), zero, zero)
                    for v in range(nr):
                        builder.store(builder.call(dpbusd, [builder.load(accs[i][v]), xb, ws[v]]), accs[i][v])
            def vload(data, index, elem):  # 16 consecutive elements data[index : index + 16]
                return builder.load(builder.bitcast(builder.gep(data, [index]),
                                                    ir.VectorType(elem, VEC).as_pointer()), align=1)

            def splat(value, vtype):
                return builder.shuffle_vector(builder.insert_element(ir.Constant(vtype, None), value, i32(0)),
                                              ir.Constant(vtype, None), ir.Constant(v16, None))

            nonzero = builder.icmp_unsigned("!=", directv, ir.Constant(directv.type, 0))
            with builder.if_else(nonzero) as (then, otherwise):
                with then:
                    n_out = builder.extract_value(ya.shape, 1)
                    ytype = context.get_value_type(sig.args[12].dtype)
                    with_b = builder.icmp_unsigned("!=", has_bv, ir.Constant(has_bv.type, 0))
                    for v in range(nr):
                        o = builder.add(o0v, i64(VEC * v))
                        cv = vload(ca.data, o, i32)
                        if is_float:
                            swd = builder.fpext(vload(swa.data, o, ir.FloatType()), f64v)
                            bv = vload(ba.data, o, ytype)
                        for i in range(mr):
                            q = builder.sub(builder.load(accs[i][v]), cv)  # [conformer:int8-offset] mod 2**32
                            if is_float:  # [conformer:int8-matmul] (q a_n) s_o in float64, then y's dtype
                                a = builder.load(builder.gep(sxa.data, [builder.add(n0v, i64(i))]))
                                a16 = splat(builder.fpext(a, ir.DoubleType()), f64v)
                                d = builder.fmul(builder.fmul(builder.sitofp(q, f64v), a16), swd)
                                if ytype != ir.DoubleType():
                                    d = builder.fptrunc(d, ir.VectorType(ytype, VEC))
                                q = builder.select(with_b, builder.fadd(d, bv), d)
                            row = builder.mul(builder.add(n0v, i64(i)), n_out)
                            yp = builder.gep(ya.data, [builder.add(row, o)])
                            builder.store(q, builder.bitcast(yp, q.type.as_pointer()), align=1)
                with otherwise:
                    abase = builder.bitcast(aa.data, v16.as_pointer())  # acc (MR, NR * 16) int32, C order
                    for i in range(mr):
                        for v in range(nr):
                            builder.store(builder.load(accs[i][v]), builder.gep(abase, [i64(i * NR + v)]),
                                          align=1)
            return context.get_dummy_value()

        return sig, codegen

    return tile


_tile_8x3, _tile_8x1 = _make_tile(8, 3), _make_tile(8, 1)
_tile_4x3, _tile_4x1 = _make_tile(4, 3), _make_tile(4, 1)
_tile_1x3, _tile_1x1 = _make_tile(1, 3), _make_tile(1, 1)


@njit(fastmath=False)  # no contraction of the rescale's multiply and the bias add
def _tile(xu, wp, n0, mr, woff, nr, acc, o0, direct, corr, sx, sw, b, has_b, y):
    """Dispatch to the compiled tile of ``mr`` in (8, 4, 1) rows and ``nr`` in (3, 1) vectors."""
    if mr == 8:
        if nr == 3:
            _tile_8x3(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)
        else:
            _tile_8x1(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)
    elif mr == 4:
        if nr == 3:
            _tile_4x3(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)
        else:
            _tile_4x1(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)
    elif nr == 3:
        _tile_1x3(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)
    else:
        _tile_1x1(xu, wp, n0, woff, acc, o0, direct, corr, sx, sw, b, has_b, y)


@njit
def _row_tiles(N):
    """Row tiles (start, rows): tiles of 8, then at most one of 4, then single rows."""
    n8 = N // MR
    n4 = (N - MR * n8) // 4
    n1 = N - MR * n8 - 4 * n4
    starts = np.empty(n8 + n4 + n1, np.int64)
    rows = np.empty(n8 + n4 + n1, np.int64)
    for t in range(n8 + n4 + n1):
        if t < n8:
            starts[t], rows[t] = MR * t, MR
        elif t < n8 + n4:
            starts[t], rows[t] = MR * n8, 4
        else:
            starts[t], rows[t] = MR * n8 + 4 * n4 + (t - n8 - n4), 1
    return starts, rows


@njit
def _col_groups(n_out, K4):
    """Output groups (first output, vectors, offset in wp) in the packed order of ``wp``."""
    nvec = (n_out + VEC - 1) // VEC
    full = nvec // NR
    G = full + nvec - NR * full
    first = np.empty(G, np.int64)
    nvecs = np.empty(G, np.int64)
    offs = np.empty(G, np.int64)
    for g in range(G):
        if g < full:
            first[g], nvecs[g], offs[g] = NR * VEC * g, NR, g * K4 * NR * 64
        else:
            v = NR * full + (g - full)  # a remainder vector, packed alone
            first[g], nvecs[g], offs[g] = VEC * v, 1, full * K4 * NR * 64 + (g - full) * K4 * 64
    return first, nvecs, offs


@njit
def int8_matmul_vnni_kernel(xu, wp, corr, out):
    """out (N, O) int32 = (xu - 128) @ W^T for unsigned-shifted rows ``xu (N, Kp)`` and packed ``wp``."""
    N, Kp = xu.shape
    n_out = out.shape[1]
    starts, rows = _row_tiles(N)
    first, nvecs, offs = _col_groups(n_out, Kp // 4)
    none = np.zeros(0, np.float32)
    for t in range(starts.shape[0]):
        acc = np.empty((MR, NR * VEC), np.int32)
        n0, mr = starts[t], rows[t]
        for g in range(first.shape[0]):
            direct = first[g] + nvecs[g] * VEC <= n_out
            _tile(xu, wp, n0, mr, offs[g], nvecs[g], acc, first[g], direct, corr, none, none, none, False,
                  out)  # [conformer:int8-matmul] sum_k xu W, written as s - corr when direct
            if not direct:  # the last vector, partly past O
                for i in range(mr):
                    for j in range(n_out - first[g]):
                        o = first[g] + j
                        out[n0 + i, o] = np.int32(acc[i, j] - corr[o])  # [conformer:int8-offset] mod 2**32


@njit(fastmath=False)
def int8_linear_vnni_kernel(xu, sx, wp, corr, sw, b, has_b, y):
    """y (N, O) = dtype(float64(sum_k xq W) a_n s_o) (+ b if ``has_b``): the int32 product of
    ``int8_matmul_vnni_kernel`` rescaled as ``Int8Linear`` does, fused into the tile's stores."""
    N, Kp = xu.shape
    n_out = y.shape[1]
    starts, rows = _row_tiles(N)
    first, nvecs, offs = _col_groups(n_out, Kp // 4)
    for t in range(starts.shape[0]):
        acc = np.empty((MR, NR * VEC), np.int32)
        n0, mr = starts[t], rows[t]
        for g in range(first.shape[0]):
            direct = first[g] + nvecs[g] * VEC <= n_out
            _tile(xu, wp, n0, mr, offs[g], nvecs[g], acc, first[g], direct, corr, sx, sw, b, has_b,
                  y)  # [conformer:int8-matmul]
            if not direct:  # the last vector, partly past O
                for i in range(mr):
                    a = np.float64(sx[n0 + i])
                    for j in range(n_out - first[g]):
                        o = first[g] + j
                        q = np.int32(acc[i, j] - corr[o])  # [conformer:int8-offset] exact sum_k xq W
                        y[n0 + i, o] = np.float64(q) * a * np.float64(sw[o])  # [conformer:int8-matmul]
                        if has_b:
                            y[n0 + i, o] += b[o]


@njit(fastmath=False)
def quantize_rows_u8_kernel(x, xbits, mask, qmax, amax, amax_bits, xu, sx):
    """Per-row scales ``sx (N,)`` float32 and unsigned codes ``xu (N, Kp)`` = round(x / s) + 128 (padding 128)
    [conformer:int8-act]. ``qmax`` is 127 in x's dtype, so each division rounds as NumPy's does.

    ``max_k |x[n, k]|`` is taken on the bit patterns: ``xbits`` is ``x`` viewed as same-width integers and
    ``mask`` clears the sign bit; non-negative floats order as their bits do (a NaN compares above inf, and
    its row gets scale 1 as in NumPy), and an integer max vectorises where a float max with NaN semantics
    does not. ``amax (N,)`` and ``amax_bits`` are one buffer viewed as x's dtype and as integers."""
    N, K = x.shape
    Kp = xu.shape[1]
    for n in range(N):
        m = mask & 0
        for k in range(K):
            m = max(m, xbits[n, k] & mask)  # |x| as bits
        amax_bits[n] = m
        a = amax[n]
        s = np.float32(a / qmax) if a > 0 else np.float32(1.0)  # [conformer:int8-act]
        sx[n] = s
        for k in range(K):
            q = np.rint(x[n, k] / s)  # round half to even, as np.rint
            q = min(max(q, -qmax), qmax)
            xu[n, k] = np.uint8(np.int32(q) + 128)  # [conformer:int8-offset] u = xq + 128
        for k in range(K, Kp):
            xu[n, k] = 128


@njit
def same_bytes(a, b):
    """True when the integer arrays ``a`` and ``b`` (same shape and dtype, C order) hold the same values
    (twin: ``np.array_equal``); a vectorised OR of XORs, used to notice that packed weights went stale."""
    fa, fb = a.ravel(), b.ravel()
    d = 0
    for i in range(fa.shape[0]):
        d |= fa[i] ^ fb[i]
    return d == 0
