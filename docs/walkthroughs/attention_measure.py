"""Numbers quoted in docs/walkthroughs/attention.md: masks, reference agreement, gradient checks, planted
bugs and timings of SDPA, multi-head and location-aware attention.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python docs/walkthroughs/attention_measure.py
"""

from __future__ import annotations

import time

import numpy as np

from scratchasr.ops.additive_attention import location_attention_backward, location_attention_forward
from scratchasr.ops.attention import (SDPACache, causal_mask, chunk_mask, mha_backward, mha_forward,
                                      padding_mask, sdpa_backward, sdpa_forward)
from scratchasr.testing import gradcheck
from scratchasr.testing.reference import location_attention_naive, sdpa_naive


def best_of(fn, reps=5):
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def masks():
    print("== masks (True = may attend)")
    show = lambda m: "\n".join("  " + " ".join("x" if v else "." for v in row) for row in m)  # noqa: E731
    print("causal_mask(4)[0, 0]\n" + show(causal_mask(4)[0, 0]))
    print("chunk_mask(6, 2)[0, 0]\n" + show(chunk_mask(6, 2)[0, 0]))
    print("chunk_mask(6, 2, left_chunks=1)[0, 0]\n" + show(chunk_mask(6, 2, left_chunks=1)[0, 0]))
    print("padding_mask([4, 2], 4)[1, 0] (keys only, broadcast over queries)\n"
          + show(np.broadcast_to(padding_mask(np.array([4, 2]), 4)[1, 0], (4, 4))))


def agreement(rng):
    print("\n== sdpa_naive (loops) vs sdpa_forward, B 2, H 2, Tq 4, Tk 5, d 3, float64")
    q, k = rng.standard_normal((2, 2, 4, 3)), rng.standard_normal((2, 2, 5, 3))
    v = rng.standard_normal((2, 2, 5, 2))
    empty = np.ones((2, 2, 4, 5), bool)
    empty[1, 0, 2] = False
    for name, m in [("none", None), ("padding [5, 3]", padding_mask(np.array([5, 3]), 5)),
                    ("causal", causal_mask(4, 5)), ("chunk 2", chunk_mask(5, 2)[..., :4, :]),
                    ("one empty row", empty)]:
        out = sdpa_forward(q, k, v, m)[0]
        print(f"mask {name:<15} max abs diff {np.abs(sdpa_naive(q, k, v, m) - out).max():.1e}"
              f"   finite {np.isfinite(out).all()}")
    print(f"empty row output: {sdpa_forward(q, k, v, empty)[0][1, 0, 2]}")


def sdpa_checks(rng):
    print("\n== gradcheck sdpa (padding mask [5, 3], one fully masked query row)")
    q, k = rng.standard_normal((2, 2, 4, 3)), rng.standard_normal((2, 2, 5, 3))
    v = rng.standard_normal((2, 2, 5, 2))
    mask = np.broadcast_to(padding_mask(np.array([5, 3]), 5), (2, 2, 4, 5)).copy()
    mask[1, 0, 2] = False
    fwd = lambda q, k, v: sdpa_forward(q, k, v, mask)  # noqa: E731
    print(gradcheck(fwd, sdpa_backward, [q, k, v], rtol=1e-7, atol=1e-9, names=["q", "k", "v"]))
    _, cache = fwd(q, k, v)
    dq, dk, dv = sdpa_backward(rng.standard_normal((2, 2, 4, 2)), cache)
    print(f"masked keys: max |dk| {np.abs(dk[1, :, 3:]).max()}, max |dv| {np.abs(dv[1, :, 3:]).max()}; "
          f"empty row: max |dq| {np.abs(dq[1, 0, 2]).max()}")

    print("\n== planted bug: the 1/sqrt(d) forgotten in the backward")

    def bad_backward(dout, cache: SDPACache):
        dq, dk, dv = sdpa_backward(dout, cache)
        return dq * np.sqrt(q.shape[-1]), dk * np.sqrt(q.shape[-1]), dv
    print(gradcheck(fwd, bad_backward, [q, k, v], rtol=1e-7, atol=1e-9, names=["q", "k", "v"]))

    print("\n== planted bug: masking after the softmax (weights zeroed, not renormalised)")
    p = np.exp(np.einsum("bhqd,bhkd->bhqk", q, k) / np.sqrt(3))
    p = p / p.sum(-1, keepdims=True) * mask
    bad = np.einsum("bhqk,bhkv->bhqv", p, v)
    print(f"max abs diff to sdpa_naive: {np.abs(bad - sdpa_naive(q, k, v, mask)).max():.2f}")


def mha_check(rng, E=4, H=2):
    print(f"\n== gradcheck multi-head attention (E {E}, H {H}, causal mask, self-attention x_q = x_kv)")
    x = rng.standard_normal((2, 3, E))
    Ws = [a for _ in range(4) for a in (0.5 * rng.standard_normal((E, E)), 0.1 * rng.standard_normal(E))]
    fwd = lambda xq, xkv, *w: mha_forward(xq, xkv, *w, num_heads=H, mask=causal_mask(3))  # noqa: E731
    names = ["x_q", "x_kv", "W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o"]
    print(gradcheck(fwd, mha_backward, [x, x.copy(), *Ws], rtol=1e-6, atol=1e-9, names=names))
    _, cache = fwd(x, x, *Ws)
    db_k = mha_backward(rng.standard_normal((2, 3, E)), cache)[5]
    print(f"max |db_k| = {np.abs(db_k).max():.1e} (zero up to round-off)")


def location_check(rng):
    print("\n== location-aware attention (B 2, T 6, lengths [6, 4], C 2 filters of width K 3)")
    B, T, Dq, A, Dv, C, K = 2, 6, 3, 4, 3, 2, 3
    inp = [rng.standard_normal((B, Dq)), rng.standard_normal((B, T, A)), rng.standard_normal((B, T, Dv)),
           rng.dirichlet(np.ones(T), size=B), np.array([6, 4]), 0.7 * rng.standard_normal((A, Dq)),
           rng.standard_normal(A), rng.standard_normal((C, K)), rng.standard_normal((A, C))]
    ctx, alpha, _ = location_attention_forward(*inp)
    ref_ctx, ref_alpha = location_attention_naive(*inp)
    print(f"vs location_attention_naive: context {np.abs(ctx - ref_ctx).max():.1e}, "
          f"alpha {np.abs(alpha - ref_alpha).max():.1e}")

    def fwd(*a):
        c, al, cache = location_attention_forward(*a)
        return np.concatenate([c, al], axis=1), cache

    def bwd(d, cache):
        return location_attention_backward(d[:, :Dv], cache, d[:, Dv:])
    names = ["query", "keys", "values", "alpha_prev", "lengths", "W_q", "w", "F", "U"]
    print(gradcheck(fwd, bwd, inp, rtol=1e-6, atol=1e-9, names=names))


def timing(rng, B=8, H=4, T=300, d=64):
    print(f"\n== timing, one thread, float32, B {B}, H {H}, T {T}, d {d}, no mask")
    q, k, v = (rng.standard_normal((B, H, T, d)).astype(np.float32) for _ in range(3))
    out, cache = sdpa_forward(q, k, v)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    tf = best_of(lambda: sdpa_forward(q, k, v), reps=10)
    tb = best_of(lambda: sdpa_backward(dout, cache), reps=10)
    rows = 2
    tn = best_of(lambda: sdpa_naive(q[:1, :1, :rows], k[:1, :1], v[:1, :1]), reps=3) * B * H * T / rows
    print(f"sdpa_forward {tf * 1e3:.1f} ms, sdpa_backward {tb * 1e3:.1f} ms; "
          f"sdpa_naive (2 query rows timed, scaled) {tn:.0f} s, {tn / tf:.0f}x the forward")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    qt, kt, vt = (torch.tensor(a, requires_grad=True) for a in (q, k, v))

    def torch_fwd_bwd():
        o = torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
        o.backward(torch.tensor(dout))
    ours = best_of(lambda: sdpa_backward(dout, sdpa_forward(q, k, v)[1]), reps=10)
    theirs = best_of(torch_fwd_bwd, reps=10)
    print(f"forward + backward: ours {ours * 1e3:.1f} ms, torch {theirs * 1e3:.1f} ms,"
          f" ratio {ours / theirs:.2f}")


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    masks()
    agreement(rng)
    sdpa_checks(rng)
    mha_check(rng)
    location_check(rng)
    timing(rng)
