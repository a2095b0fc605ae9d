"""Benchmark: scratchasr LSTM and SDPA (forward + backward) against torch, one thread each side.

    .venv/bin/python experiments/bench/bench_lstm_attention.py [--repeats 5] [--no-numpy]

* 2-layer bidirectional LSTM, hidden 256, input 40, batch 8, 300 frames, float32, loss = sum(y);
  ours (Numba and NumPy cell backends) vs ``torch.nn.LSTM``.
* SDPA, B 8, heads 4, T 300, d 64, float32, loss = sum(out); ours vs
  ``torch.nn.functional.scaled_dot_product_attention``.
* numpy's own float32 GEMM peak (1024^3 and the LSTM's recurrent shape) measured in the same run,
  and the LSTM's achieved GFLOP/s (gate GEMM flops / CPU time) against it.
* All contenders run interleaved (``_timing.interleaved``): every repeat calls each once, timed in wall
  and in thread CPU time; the machine is shared, so the CPU-time ratio is the steadier one.

Results: experiments/bench/lstm_attention.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy / numba / torch are imported

import argparse  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr.ops.attention import sdpa_backward, sdpa_forward  # noqa: E402
from scratchasr.ops.lstm import lstm_backward, lstm_forward  # noqa: E402

from _timing import interleaved, load, ratio, summary  # noqa: E402

B, T, D, H, LAYERS = 8, 300, 40, 256, 2


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
    ap.add_argument("--no-numpy", action="store_true", help="skip the slower NumPy-backend rows")
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"load average at start: {load()}; torch {torch.__version__}, numpy {np.__version__}")

    a = rng.standard_normal((1024, 1024)).astype(np.float32)
    hs = rng.standard_normal((B, H)).astype(np.float32)
    Whh = np.ascontiguousarray(rng.standard_normal((4 * H, H)).astype(np.float32))  # W_hh @ h^T

    x = rng.standard_normal((B, T, D)).astype(np.float32)
    lengths = np.full(B, T)
    params = make_weights(rng)
    m = torch.nn.LSTM(D, H, num_layers=LAYERS, bidirectional=True, batch_first=True)
    tx = torch.tensor(x, requires_grad=True)

    def torch_lstm():
        m.zero_grad()
        y, _ = m(tx)
        y.sum().backward()

    q, k, v = (rng.standard_normal((8, 4, 300, 64)).astype(np.float32) for _ in range(3))
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))

    def ours_sdpa(backend):
        out, cache = sdpa_forward(q, k, v, backend=backend)
        return sdpa_backward(np.ones_like(out), cache)

    def torch_sdpa():
        out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
        out.sum().backward()

    fns = {
        "gemm": lambda: [a @ a for _ in range(4)],  # numpy's float32 GEMM peak, 4 x 1024^3 per call
        "step": lambda: [Whh @ hs.T for _ in range(100)],  # 100 recurrent steps with BLAS
        "lstm numba": lambda: ours_bilstm(x, lengths, params, "numba"),
        "lstm torch": torch_lstm,
        "sdpa numba": lambda: ours_sdpa("numba"),
        "sdpa torch": torch_sdpa,
    }
    if not args.no_numpy:
        fns["lstm numpy"] = lambda: ours_bilstm(x, lengths, params, "numpy")
        fns["sdpa numpy"] = lambda: ours_sdpa("numpy")
    res = interleaved(fns, args.repeats)
    print(f"load average at end: {load()}; repeats {args.repeats}, interleaved; "
          "times in ms: median (min..max); CPU = thread CPU time, wall = elapsed")
    _, total = lstm_flops()
    gf = {kind: 4 * 2 * 1024 ** 3 / np.median(res["gemm"][kind]) / 1e9 for kind in ("cpu", "wall")}
    step = {kind: 100 * 2 * B * H * 4 * H / np.median(res["step"][kind]) / 1e9 for kind in ("cpu", "wall")}
    print(f"numpy fp32 GEMM 1024^3: {gf['cpu']:.1f} GFLOP/s (CPU time), {gf['wall']:.1f} (wall); "
          f"BLAS recurrent step (1024x256)@(256x8): {step['cpu']:.1f} GFLOP/s (CPU time)")
    print("| | CPU ms | wall ms | GFLOP/s (CPU) | of GEMM peak (CPU) | ratio / torch, CPU | ratio, wall |")
    print("|---|---|---|---|---|---|---|")
    for name in fns:
        if name in ("gemm", "step"):
            continue
        r, peer = res[name], res[name.split()[0] + " torch"]
        cpu_ratio, wall_ratio = ratio(r["cpu"], peer["cpu"]), ratio(r["wall"], peer["wall"])
        flops = " | "
        if name.startswith("lstm"):
            g = total / np.median(r["cpu"]) / 1e9
            flops = f"{g:.1f} | {100 * g / gf['cpu']:.0f} %"
        print(f"| {name} | {summary(r['cpu'])} | {summary(r['wall'])} | {flops} | {cpu_ratio:.2f} | "
              f"{wall_ratio:.2f} |")


if __name__ == "__main__":
    main()
