"""Benchmark: one full training step of the BiLSTM-CTC recipe's model, ours against the same model in torch.

    .venv/bin/python experiments/bench/bench_train_step.py [--repeats 5] [--batch 16] [--frames 300]

One step = forward, CTC loss (mean over utterances), backward, global-norm clipping (5.0), Adam (lr 2e-3),
zeroing the gradients; training mode (dropout 0.2 between the LSTM layers). One thread each side.

* Model: experiments/timit/ctc_blstm/config.py: 123-dim features, stack 2, 2 x BiLSTM 256, 62 outputs
  (blank + 61 phones), 2.64 M parameters, float32.
* Batch: B 16 ragged utterances, lengths spread evenly over [T/2, T] input frames (T = 300), one phone
  label every 8 input frames, random labels 1..61 and features (the cost does not depend on the values).
* ours: ``models.build("ctc_blstm", ...)``, ``forward_loss`` / ``backward`` / ``clip_grad_norm`` /
  ``Adam.step`` / ``zero_grad``, exactly what scratchasr/trainer.py runs per batch.
* torch packed: ``nn.LSTM`` over ``pack_padded_sequence`` (the same computation as ours: each direction
  sees only its utterance's frames), ``F.ctc_loss``, ``clip_grad_norm_``, ``torch.optim.Adam``.
* torch unpacked: the same on the zero-padded batch. NOT the same computation for a ragged batch (the
  backward direction starts in the padding); shown because it is the faster torch variant.

The losses of ours and torch packed are checked equal (same weights copied in, dropout off) before
timing. The three variants run interleaved (``_timing.interleaved``: each repeat calls each once, timed in
wall and thread CPU time) after one warm-up step each. Frames/s = input frames (sum of lengths, before
stacking) per CPU second of one step. Results: experiments/bench/train_step.md.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"  # before numpy / numba / torch are imported

import argparse  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr import models  # noqa: E402
from scratchasr.data.batch import make_batch  # noqa: E402
from scratchasr.optim import Adam, clip_grad_norm  # noqa: E402

from _timing import interleaved, load, ratio, summary  # noqa: E402

D, H, LAYERS, STACK, V, DROPOUT, LR, CLIP = 123, 256, 2, 2, 62, 0.2, 2e-3, 5.0


def make_data(B, T, seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.linspace(T // 2, T, B).astype(int)[rng.permutation(B)]
    feats = [rng.standard_normal((t, D)).astype(np.float32) for t in lengths]
    labels = [rng.integers(1, V, size=max(1, t // 8)).tolist() for t in lengths]
    return feats, labels, lengths


def ours_step(dropout):
    m = models.build("ctc_blstm", input_dim=D, vocab_size=V, dtype=np.float32, seed=0, hidden=H,
                     num_layers=LAYERS, stack=STACK, dropout=dropout)
    m.train()
    opt = Adam(m.parameters(), lr=LR)

    def step(batch):
        B = batch.feats.shape[0]
        loss, _ = m.forward_loss(batch)
        m.backward(np.full(B, 1.0 / B, np.float32))
        grads = m.gradients()
        clip_grad_norm(grads, CLIP)
        opt.step(grads)
        m.zero_grad()
        return float(loss.mean())
    return m, step


class TorchModel:
    def __init__(self, torch, dropout):
        nn = torch.nn
        self.torch = torch
        self.lstm = nn.LSTM(D * STACK, H, num_layers=LAYERS, bidirectional=True, dropout=dropout,
                            batch_first=True)
        self.out = nn.Linear(2 * H, V)
        self.params = list(self.lstm.parameters()) + list(self.out.parameters())
        self.opt = torch.optim.Adam(self.params, lr=LR)

    def copy_from(self, ours):
        """Our weights into torch's (same gate order i, f, g, o; our one bias -> b_ih, b_hh = 0)."""
        sd = ours.state_dict()
        with self.torch.no_grad():
            for layer in range(LAYERS):
                for sfx in ("", "_reverse"):
                    getattr(self.lstm, f"weight_ih_l{layer}{sfx}").copy_(
                        self.torch.from_numpy(sd[f"encoder.W_ih_l{layer}{sfx}"]))
                    getattr(self.lstm, f"weight_hh_l{layer}{sfx}").copy_(
                        self.torch.from_numpy(sd[f"encoder.W_hh_l{layer}{sfx}"]))
                    getattr(self.lstm, f"bias_ih_l{layer}{sfx}").copy_(
                        self.torch.from_numpy(sd[f"encoder.b_l{layer}{sfx}"]))
                    getattr(self.lstm, f"bias_hh_l{layer}{sfx}").zero_()
            self.out.weight.copy_(self.torch.from_numpy(sd["output.W"]))
            self.out.bias.copy_(self.torch.from_numpy(sd["output.b"]))

    def loss(self, x, xl, y, yl, packed):
        torch = self.torch
        B, T, _ = x.shape
        Tk = -(-T // STACK)
        xs = torch.nn.functional.pad(x, (0, 0, 0, Tk * STACK - T)).reshape(B, Tk, STACK * D)
        ol = (xl + STACK - 1) // STACK
        if packed:
            p = torch.nn.utils.rnn.pack_padded_sequence(xs, ol, batch_first=True, enforce_sorted=False)
            h, _ = self.lstm(p)
            h, _ = torch.nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=Tk)
        else:
            h, _ = self.lstm(xs)
        lp = torch.log_softmax(self.out(h), dim=-1).transpose(0, 1)       # (T', B, V)
        nll = torch.nn.functional.ctc_loss(lp, y, ol, yl, blank=0, reduction="none", zero_infinity=True)
        return nll.mean()

    def step(self, x, xl, y, yl, packed):
        loss = self.loss(x, xl, y, yl, packed)
        loss.backward()
        self.torch.nn.utils.clip_grad_norm_(self.params, CLIP)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(loss.detach())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=300)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(1)
    feats, labels, lengths = make_data(args.batch, args.frames)
    batch = make_batch(feats, labels)
    x = torch.from_numpy(np.ascontiguousarray(batch.feats))
    xl = torch.from_numpy(batch.feat_lengths.astype(np.int64))
    y = torch.from_numpy(batch.targets.astype(np.int64))
    yl = torch.from_numpy(batch.target_lengths.astype(np.int64))

    # correctness first: same weights, no dropout, ours vs torch packed loss
    m0, _ = ours_step(0.0)
    m0.eval()
    ours_loss = float(m0.forward_loss(batch)[0].mean())
    t0 = TorchModel(torch, 0.0)
    t0.copy_from(m0)
    with torch.no_grad():
        torch_packed = float(t0.loss(x, xl, y, yl, True))
        torch_unpacked = float(t0.loss(x, xl, y, yl, False))
    print(f"loss (same weights, eval): ours {ours_loss:.5f}  torch packed {torch_packed:.5f}  "
          f"torch unpacked {torch_unpacked:.5f} (padding enters the backward direction)")
    assert abs(ours_loss - torch_packed) < 1e-3 * abs(torch_packed), (ours_loss, torch_packed)

    frames = int(lengths.sum())
    _, ours = ours_step(DROPOUT)
    tm = TorchModel(torch, DROPOUT)
    print(f"load average at start: {load()}")
    fns = {"ours (numpy + numba)": lambda: ours(batch),
           "torch packed (the same computation)": lambda: tm.step(x, xl, y, yl, True),
           "torch unpacked (padded; not the same computation)": lambda: tm.step(x, xl, y, yl, False)}
    res = interleaved(fns, args.repeats)
    print(f"load average at end: {load()}")
    ours_r = res["ours (numpy + numba)"]
    print(f"B {args.batch}, T <= {args.frames} input frames ({frames} in the batch), repeats {args.repeats} "
          f"(interleaved), torch {torch.__version__}, numpy {np.__version__}; ms: median (min..max)")
    print("| variant | CPU ms per step | wall ms per step | input frames/s (CPU) | ours / this, CPU | "
          "ours / this, wall |")
    print("|---|---|---|---|---|---|")
    for name, r in res.items():
        print(f"| {name} | {summary(r['cpu'])} | {summary(r['wall'])} | {frames / np.median(r['cpu']):.0f} | "
              f"{ratio(ours_r['cpu'], r['cpu']):.2f} | {ratio(ours_r['wall'], r['wall']):.2f} |")

if __name__ == "__main__":
    main()
