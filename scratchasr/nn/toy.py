"""A small end-to-end showcase of the module layer: classify synthetic chirps from their framed spectra.

    python -m scratchasr.nn.toy [--steps 300] [--n-train 512]

Four classes of 8 kHz signals, 0.25-0.6 s long (so a batch has unequal lengths): a rising chirp, a
falling chirp, a steady tone and a two-tone warble, each at a random base frequency with noise and a
random level. Features are log-magnitude spectra of 32 ms Hann frames (hop 16 ms), pooled to 32 bands:
a (T, 32) "spectrogram", padded per batch. The network is built from the modules alone:

    Conv1d(32 -> 32, k=5) -> BatchNorm -> Swish -> Conv1d(32 -> 32, k=5, dilation 2) -> LayerNorm
    -> ReLU -> masked mean over valid frames -> Linear(32 -> 4) -> log-softmax cross-entropy

trained with Adam, global-norm clipping and a cosine schedule. The class is only visible in how the
spectrum moves over time, so the convolutions must look across frames. It also prints a gradcheck table
(finite differences) of the first convolution and of the layer norm inside the network.
"""

from __future__ import annotations

import argparse
import time
from typing import Dict, List

import numpy as np

from .. import ops
from ..losses import cross_entropy_loss, cross_entropy_loss_backward
from ..optim import Adam, clip_grad_norm, cosine_with_warmup
from ..testing.gradcheck import gradcheck
from .layers import BatchNorm, Conv1d, LayerNorm, Linear, MaskedMeanPool, ReLU, Sequential, Swish

SR, FRAME, HOP, BANDS = 8000, 256, 128, 32
CLASSES = ["rising chirp", "falling chirp", "steady tone", "two-tone warble"]


def synth(label: int, rng: np.random.Generator) -> np.ndarray:
    """One waveform of class ``label``: instantaneous frequency f(t), phase = 2 pi cumsum(f) / SR."""
    n = int(rng.uniform(0.25, 0.6) * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(400, 1600)
    span = rng.uniform(600, 1500)
    if label == 0:
        f = f0 + span * t / t[-1]
    elif label == 1:
        f = f0 + span * (1 - t / t[-1])
    elif label == 2:
        f = np.full(n, f0 + span / 2)
    else:  # alternate between two tones every 60-100 ms
        period = rng.uniform(0.06, 0.1)
        f = f0 + span * ((t // period) % 2)
    x = np.sin(2 * np.pi * np.cumsum(f) / SR) * rng.uniform(0.2, 1.0)
    return x + 0.05 * rng.standard_normal(n)


def spectrogram(x: np.ndarray) -> np.ndarray:
    """Framed log-magnitude spectrum pooled into BANDS linear bands: (T, BANDS) float32."""
    n_frames = 1 + (len(x) - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n_frames)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(FRAME), axis=1))[:, :128]  # 0..4 kHz minus Nyquist
    bands = mag.reshape(n_frames, BANDS, -1).mean(axis=2)
    return np.log(bands + 1e-3).astype(np.float32)


def make_data(n: int, rng: np.random.Generator):
    labels = rng.integers(0, len(CLASSES), size=n)
    feats = [spectrogram(synth(int(k), rng)) for k in labels]
    mu = np.concatenate(feats).mean(axis=0)
    sd = np.concatenate(feats).std(axis=0) + 1e-5
    return [(f - mu) / sd for f in feats], labels


def pad(feats: List[np.ndarray]):
    lengths = np.array([f.shape[0] for f in feats])
    x = np.zeros((len(feats), lengths.max(), feats[0].shape[1]), dtype=feats[0].dtype)
    for b, f in enumerate(feats):
        x[b, :len(f)] = f
    return x, lengths


def build(rng: np.random.Generator, dtype=np.float32, width: int = 32) -> Sequential:
    return Sequential(Conv1d(BANDS, width, 5, padding=2, rng=rng, dtype=dtype), BatchNorm(width, dtype=dtype),
                      Swish(), Conv1d(width, width, 5, padding=4, dilation=2, rng=rng, dtype=dtype),
                      LayerNorm(width, dtype=dtype), ReLU(), MaskedMeanPool(),
                      Linear(width, len(CLASSES), rng=rng, dtype=dtype))


def cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """Mean negative log-likelihood over the batch and its gradient with respect to the logits (B, V).

    One "position" per utterance: the sequence loss ``losses.cross_entropy_loss`` on (B, 1, V).
    """
    B = len(labels)
    loss, cache = cross_entropy_loss(logits[:, None, :], labels[:, None], np.ones(B, dtype=np.int64),
                                     reduction="mean")
    return float(loss), cross_entropy_loss_backward(np.ones((), dtype=logits.dtype), cache)[:, 0, :]


def gradcheck_table(seed: int = 0) -> str:
    """Finite-difference checks of a Conv1d and of the LayerNorm module over a padded float64 batch."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 7, 4))
    lengths = np.array([7, 4])
    w, b = rng.normal(size=(3, 4, 3)), rng.normal(size=3)
    conv = gradcheck(lambda x, w, b: (lambda y, L, c: (y, c))(*ops.conv1d_forward(x, w, b, lengths=lengths,
                                                                                   padding=1)),
                     ops.conv1d_backward, [x, w, b], names=["conv.x", "conv.weight", "conv.bias"])
    ln = LayerNorm(4, dtype=np.float64)

    def fwd(x, g, bt):
        ln.params["gamma"][...], ln.params["beta"][...] = g, bt
        ln.clear_caches()
        return ln(x, lengths), (x, g, bt)

    def bwd(dout, cache):
        fwd(*cache)
        for v in ln.grads.values():
            v[...] = 0
        dx = ln.backward(dout)
        return dx, ln.grads["gamma"].copy(), ln.grads["beta"].copy()

    norm = gradcheck(fwd, bwd, [x, rng.normal(size=4), rng.normal(size=4)],
                     names=["ln.x", "ln.gamma", "ln.beta"])
    return f"{conv}\n\n{norm}", bool(conv) and bool(norm)


def main(argv=None) -> Dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=512)
    ap.add_argument("--n-test", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=10)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    feats, labels = make_data(args.n_train + args.n_test, rng)
    net = build(rng)
    print(f"{len(CLASSES)} classes, {args.n_train} train / {args.n_test} test utterances, "
          f"{min(f.shape[0] for f in feats)}-{max(f.shape[0] for f in feats)} frames x {BANDS} bands; "
          f"{net.num_parameters()} parameters")
    opt = Adam(net.parameters(), lr=args.lr)
    sched = cosine_with_warmup(args.lr, total_steps=args.steps, warmup=max(1, args.steps // 20))
    losses: List[float] = []
    tr_idx = np.arange(args.n_train)
    for step in range(args.steps):
        idx = rng.choice(tr_idx, size=args.batch, replace=False)
        x, lengths = pad([feats[i] for i in idx])
        net.zero_grad()
        logits, _ = net(x, lengths)
        loss, dlogits = cross_entropy(logits, labels[idx])
        net.backward(dlogits.astype(np.float32))
        norm = clip_grad_norm(net.gradients(), 5.0)
        opt.lr = sched(step)
        opt.step(net.gradients())
        losses.append(loss)
        if step % args.every == 0 or step == args.steps - 1:
            recent = np.mean(losses[-args.every:])
            n_recent = min(len(losses), args.every)
            print(f"step {step:4d}  loss {loss:.4f}  (mean of last {n_recent}: {recent:.4f})"
                  f"  |g| {norm:.3f}  lr {opt.lr:.2e}")
    net.eval()
    correct = 0
    for s in range(args.n_train, args.n_train + args.n_test, 64):
        ids = np.arange(s, min(s + 64, args.n_train + args.n_test))
        x, lengths = pad([feats[i] for i in ids])
        logits, _ = net(x, lengths)
        correct += int(np.sum(logits.argmax(axis=1) == labels[ids]))
    acc = correct / args.n_test
    print(f"test accuracy {acc:.3f} (chance {1 / len(CLASSES):.2f}) after {args.steps} steps, "
          f"{time.perf_counter() - t0:.1f} s")
    table, ok = gradcheck_table(args.seed)
    print("\nfinite-difference gradient checks (float64, padded batch with lengths [7, 4]):")
    print(table)
    return dict(losses=losses, accuracy=acc, gradcheck_ok=ok)


if __name__ == "__main__":
    main()
