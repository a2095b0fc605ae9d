"""Benchmark: scratchasr LSTM and SDPA (forward + backward) against torch, one thread each side.

    .venv/bin/python experiments/bench/bench_lstm_attention.py [--repeats 5]

* 2-layer bidirectional LSTM, hidden 256, input 40, batch 8, 300 frames, float32, loss = sum(y);
  ours (Numba and NumPy cell backends) vs ``torch.nn.LSTM``.
* SDPA, B 8, heads 4, T 300, d 64, float32, loss = sum(out); ours vs
  ``torch.nn.functional.scaled_dot_product_attention``.
* numpy's own float32 GEMM peak (1024^3 and the LSTM's recurrent shape) measured in the same run,
  and the LSTM's achieved GFLOP/s (gate GEMM flops / wall time) against it.

Results: experiments/bench/lstm_attention.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy / numba / torch are imported

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr.ops.attention import sdpa_backward, sdpa_forward  # noqa: E402
from scratchasr.ops.lstm import lstm_backward, lstm_forward  # noqa: E402

B, T, D, H, LAYERS = 8, 300, 40, 256, 2


def median_time(fn, repeats):
    fn()  # warm-up (JIT, caches, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def lstm_flops():
    """Gate GEMM flops of forward + backward (backward = 2x forward: input/state grads + weight grads)."""
    fwd = 0
    for layer in range(LAYERS):
        d_in = D if layer == 0 else 2 * H
        fwd += 2 * 2 * B * T * 4 * H * (d_in + H)  # 2 directions, 2 flops per multiply-add
    return fwd, 3 * fwd


def make_weights(rng):
    params = []
    for layer in range(LAYERS):
        d_in = D if layer == 0 else 2 * H
        k = 1 / np.sqrt(H)
        shapes = [(4 * H, d_in), (4 * H, H), (4 * H,)]
        params.append([tuple(rng.uniform(-k, k, s).astype(np.float32) for s in shapes) for _ in range(2)])
    return params


def ours_bilstm(x, lengths, params, backend):
    """Forward + backward of the stacked BiLSTM with loss = sum(y); returns dx."""
    zeros = np.zeros((B, H), np.float32)
    caches, inp = [], x
    for layer in params:
        outs = []
        for direction, (W_ih, W_hh, b) in enumerate(layer):
            y, _, cache = lstm_forward(inp, lengths, zeros, zeros, W_ih, W_hh, b, reverse=bool(direction),
                                       backend=backend)
            outs.append(y)
            caches.append(cache)
        inp = np.concatenate(outs, axis=2)
    dy = np.ones_like(inp)
    for _ in range(LAYERS):
        c_b, c_f = caches.pop(), caches.pop()
        dx = lstm_backward(dy[:, :, :H], c_f)[0] + lstm_backward(dy[:, :, H:], c_b)[0]
        dy = dx
    return dy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    # numpy's own GEMM peak, float32, one thread
    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    t = median_time(lambda: a @ a, args.repeats)
    peak = 2 * 1024 ** 3 / t / 1e9
    hs = rng.standard_normal((B, H)).astype(np.float32)
    WT = rng.standard_normal((H, 4 * H)).astype(np.float32)
    Whh = np.ascontiguousarray(WT.T)  # (4H, H): the layout the forward loop uses, W_hh @ h^T
    t_step = median_time(lambda: [Whh @ hs.T for _ in range(100)], args.repeats) / 100
    step_gflops = 2 * B * H * 4 * H / t_step / 1e9
    print(f"numpy fp32 GEMM 1024^3: {peak:.1f} GFLOP/s; "
          f"recurrent step (1024x256)@(256x8): {step_gflops:.1f} GFLOP/s")

    x = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = np.full(B, T)
    params = make_weights(rng)
    _, total_flops = lstm_flops()
    res = {}
    for backend in ("numba", "numpy"):
        res[backend] = median_time(lambda: ours_bilstm(x, lengths, params, backend), args.repeats)
        gflops = total_flops / res[backend] / 1e9
        print(f"ours BiLSTM fwd+bwd ({backend}): {res[backend] * 1e3:.1f} ms = {gflops:.1f} GFLOP/s "
              f"({100 * gflops / peak:.0f}% of GEMM peak)")

    # SDPA
    q, k, v = (rng.standard_normal((8, 4, 300, 64)).astype(np.float32) for _ in range(3))

    def ours_sdpa():
        out, cache = sdpa_forward(q, k, v)
        return sdpa_backward(np.ones_like(out), cache)
    t_sdpa = median_time(ours_sdpa, args.repeats)
    print(f"ours SDPA fwd+bwd: {t_sdpa * 1e3:.1f} ms")

    try:
        import torch
    except ImportError:
        print("torch not installed: no ratios")
        return
    torch.set_num_threads(1)
    m = torch.nn.LSTM(D, H, num_layers=LAYERS, bidirectional=True, batch_first=True)
    tx = torch.tensor(x, requires_grad=True)

    def torch_lstm():
        m.zero_grad()
        y, _ = m(tx)
        y.sum().backward()
    t_torch = median_time(torch_lstm, args.repeats)
    print(f"torch BiLSTM fwd+bwd: {t_torch * 1e3:.1f} ms = {total_flops / t_torch / 1e9:.1f} GFLOP/s")
    for backend in ("numba", "numpy"):
        print(f"ratio ours({backend}) / torch, BiLSTM: {res[backend] / t_torch:.2f}")
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))

    def torch_sdpa():
        out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
        out.sum().backward()
    t_tsdpa = median_time(torch_sdpa, args.repeats)
    print(f"torch SDPA fwd+bwd: {t_tsdpa * 1e3:.1f} ms; ratio ours / torch: {t_sdpa / t_tsdpa:.2f}")


if __name__ == "__main__":
    main()
