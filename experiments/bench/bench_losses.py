"""Benchmark: scratchasr's CTC and RNN-T loss + gradient against peers, one thread each side.

    .venv/bin/python experiments/bench/bench_losses.py [--repeat 7]

RNN-T: B 8, T 200, U 50, V 64 and V 500, float32, full lengths, reduction "sum", from raw logits.
Same-run peer: a pure-PyTorch autograd lattice (the anti-diagonal reference of
../shared/peers/bench_rnnt.py, copied below). optimized_transducer and torchaudio are not installed
in this venv; their numbers from ../shared/notes/peers.md (same machine type, one thread) are printed
as RECORDED, not same-run. CTC: B 8, T 200, S 50, V 64 against torch.nn.functional.ctc_loss (with
its log_softmax), measured in the same run. Results: experiments/bench/losses.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy / numba / torch are imported

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr.losses import ctc_loss, ctc_loss_backward, rnnt_loss, rnnt_loss_backward  # noqa: E402

RECORDED_RNNT_MS = {  # ../shared/notes/peers.md section 1, thr1 medians (not measured in this run)
    64: {"optimized_transducer 1.4": 59.0, "torchaudio 2.11": 338.0},
    500: {"optimized_transducer 1.4": 384.0, "torchaudio 2.11": 1892.0},
}
RECORDED_RNNT_LOSS = {64: 7592.15, 500: 11735.27}  # same seed as bench_rnnt.py (torch.manual_seed(0))
# The pure-PyTorch reference below was also timed when the peers were recorded (peers.md, thr1), so
# ours/ref(same run) * ref(recorded)/peer(recorded) estimates ours/peer with the machine load cancelled.
RECORDED_REF_MS = {64: 115.0, 500: 577.0}


def timeit(fn, warmup: int, repeat: int) -> float:
    """Median wall time in ms over ``repeat`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def rnnt_torch_ref(torch, logits, targets):
    """Pure-PyTorch RNN-T NLL (full-length batch), from ../shared/peers/bench_rnnt.py: the lattice skewed
    onto anti-diagonals n = t + u with one gather, then a T+U-1 step loop of slice + logaddexp."""
    Bq, Tq, U1, V = logits.shape
    lp = logits.log_softmax(-1)
    blank = lp[..., 0]
    emit = lp[:, :, :-1, :].gather(-1, targets[:, None, :, None].expand(Bq, Tq, U1 - 1, 1).long()).squeeze(-1)
    emit = torch.cat([emit, torch.zeros(Bq, Tq, 1)], dim=2)
    N = Tq + U1 - 1
    u = torch.arange(U1)
    t = torch.arange(N)[:, None] - u
    valid = (t >= 0) & (t < Tq)
    flat = (t.clamp(0, Tq - 1) * U1 + u).reshape(-1)
    sk_b = blank.reshape(Bq, -1)[:, flat].reshape(Bq, N, U1).masked_fill(~valid, -1e30)
    sk_e = emit.reshape(Bq, -1)[:, flat].reshape(Bq, N, U1).masked_fill(~valid, -1e30)
    pad = torch.full((Bq, 1), -1e30)
    prev = torch.cat([torch.zeros(Bq, 1), torch.full((Bq, U1 - 1), -1e30)], 1)
    for k in range(1, N):
        a_b = prev + sk_b[:, k - 1]
        a_e = torch.cat([pad, prev[:, :-1] + sk_e[:, k - 1, :-1]], 1)
        prev = torch.logaddexp(a_b, a_e).masked_fill(~valid[k], -1e30)
    return -(prev[:, U1 - 1] + blank[:, Tq - 1, U1 - 1]).sum()


def bench_rnnt(torch, repeat: int):
    B, T, U = 8, 200, 50
    torch.manual_seed(0)
    for V in (64, 500):
        logits_t = torch.randn(B, T, U + 1, V)
        targets_t = torch.randint(1, V, (B, U), dtype=torch.int32)
        x, y = logits_t.numpy(), targets_t.numpy().astype(np.int64)
        Tl, Ul = np.full(B, T), np.full(B, U)

        def ours():
            loss, cache = rnnt_loss(x, y, Tl, Ul, reduction="sum")
            return loss, rnnt_loss_backward(1.0, cache)

        def ref():
            xt = logits_t.clone().requires_grad_()
            loss = rnnt_torch_ref(torch, xt, targets_t)
            loss.backward()
            return loss, xt.grad

        (l_ours, g_ours), (l_ref, g_ref) = ours(), ref()
        t_ours = timeit(ours, 2, repeat)
        t_fwd = timeit(lambda: rnnt_loss(x, y, Tl, Ul), 1, repeat)
        t_ref = timeit(ref, 1, max(3, repeat // 2))
        gdiff = np.abs(g_ours - g_ref.numpy()).max()
        print(f"RNN-T B{B} T{T} U{U} V{V} float32: loss ours {float(l_ours):.2f}, torch ref "
              f"{l_ref.item():.2f}, recorded peers {RECORDED_RNNT_LOSS[V]}; max |grad diff| {gdiff:.2e}")
        print(f"  scratchasr numba loss+grad {t_ours:8.1f} ms (forward alone {t_fwd:.1f} ms)")
        print(f"  torch autograd reference    {t_ref:8.1f} ms  (same run)   "
              f"ratio ours/ref {t_ours / t_ref:.2f}")
        for name, ms in RECORDED_RNNT_MS[V].items():
            est = t_ours / t_ref * RECORDED_REF_MS[V] / ms
            print(f"  {name:<27} {ms:8.1f} ms  (RECORDED)     ratio ours/peer {t_ours / ms:.2f} "
                  f"(load-normalised through the reference: {est:.2f})")


def bench_ctc(torch, repeat: int):
    B, T, S, V = 8, 200, 50, 64
    torch.manual_seed(0)
    logits_t = torch.randn(B, T, V)
    targets_t = torch.randint(1, V, (B, S), dtype=torch.long)
    x, y = logits_t.numpy(), targets_t.numpy()
    Tl, Sl = np.full(B, T), np.full(B, S)
    tl_t, sl_t = torch.full((B,), T, dtype=torch.long), torch.full((B,), S, dtype=torch.long)

    def ours():
        loss, cache = ctc_loss(x, y, Tl, Sl, reduction="sum")
        return loss, ctc_loss_backward(1.0, cache)

    def ref():
        xt = logits_t.clone().requires_grad_()
        loss = torch.nn.functional.ctc_loss(xt.log_softmax(-1).transpose(0, 1), targets_t, tl_t, sl_t,
                                            blank=0, reduction="sum")
        loss.backward()
        return loss, xt.grad

    (l_ours, g_ours), (l_ref, g_ref) = ours(), ref()
    t_ours, t_ref = timeit(ours, 3, 4 * repeat), timeit(ref, 3, 4 * repeat)
    print(f"CTC B{B} T{T} S{S} V{V} float32: loss ours {float(l_ours):.2f}, torch {l_ref.item():.2f}; "
          f"max |grad diff| {np.abs(g_ours - g_ref.numpy()).max():.2e}")
    print(f"  scratchasr numba loss+grad {t_ours:8.2f} ms")
    print(f"  torch ctc_loss+log_softmax {t_ref:8.2f} ms  (same run)   ratio ours/torch {t_ours / t_ref:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    print(f"numpy {np.__version__}, torch {torch.__version__} (threads {torch.get_num_threads()}), "
          f"NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']}")
    bench_ctc(torch, args.repeat)
    bench_rnnt(torch, args.repeat)


if __name__ == "__main__":
    main()
