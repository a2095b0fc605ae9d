"""A toy monotonic transduction task and a tiny MoChA decoder trained on it (walkthrough + tests).

Each utterance is a label sequence y_1..y_U over {2, ..., V-1} (0 = sos, 1 = eos) without immediate
repeats; its "encoder output" (D = V + 1) holds each label for 2-4 frames as a noisy one-hot vector,
plus an onset feature on the first frame of each segment (what a real encoder learns to provide).
The decoder must read the frames left to right and emit y followed by eos: a task monotonic
attention can solve exactly (fire at the next onset whose label differs from the previous output).

    .venv/bin/python docs/walkthroughs/mocha_toy.py      # trains, prints loss and hard-decoding accuracy
"""

from __future__ import annotations

import numpy as np

from scratchasr.decode.mocha_streaming import mocha_hard_decode
from scratchasr.nn.mocha import MochaDecoder

SOS, EOS = 0, 1


def make_batch(rng: np.random.Generator, B: int, V: int = 6, max_labels: int = 4, noise: float = 0.3):
    """-> enc (B, T, V + 1), lengths (B,), prev (B, U+1), targets (B, U+1), label_lengths (B,), refs."""
    refs = []
    for _ in range(B):
        n_labels = int(rng.integers(2, max_labels + 1))
        r = [int(rng.integers(2, V))]
        while len(r) < n_labels:
            r.append(int((r[-1] - 2 + rng.integers(1, V - 2)) % (V - 2) + 2))  # any label but the last one
        refs.append(r)
    segs = [[int(rng.integers(2, 5)) for _ in r] for r in refs]
    lengths = np.array([sum(s) for s in segs])
    T, U1 = int(lengths.max()), max(len(r) for r in refs) + 1
    enc = np.zeros((B, T, V + 1))
    prev = np.full((B, U1), EOS, dtype=np.int64)
    targets = np.full((B, U1), EOS, dtype=np.int64)
    for b, (r, s) in enumerate(zip(refs, segs)):
        t = 0
        for y, n in zip(r, s):
            enc[b, t:t + n, y] = 1.0
            enc[b, t, V] = 1.0  # onset
            t += n
        enc[b, :t] += noise * rng.standard_normal((t, V + 1))
        prev[b, :len(r) + 1] = [SOS] + r
        targets[b, :len(r) + 1] = r + [EOS]
    label_lengths = np.array([len(r) + 1 for r in refs])
    return enc, lengths, prev, targets, label_lengths, refs


def cross_entropy(logits, targets, label_lengths):
    """Summed softmax cross-entropy over valid steps, divided by B -> (loss, dlogits)."""
    B, U, V = logits.shape
    m = np.arange(U)[None, :] < label_lengths[:, None]
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    loss = -(picked * m).sum() / B
    dlogits = np.exp(logp)
    picked_p = np.take_along_axis(dlogits, targets[..., None], -1)
    np.put_along_axis(dlogits, targets[..., None], picked_p - 1, -1)  # softmax - one-hot
    return loss, dlogits * m[..., None] / B


def train_toy(steps: int = 300, seed: int = 0, V: int = 6, chunk_size: int = 2, lr: float = 0.02,
              noise_std: float = 1.0, r_init: float = -1.0,
              verbose: bool = False) -> MochaDecoder:
    """Adam on the toy task; returns the trained decoder (in eval mode)."""
    rng = np.random.default_rng(seed)
    dec = MochaDecoder(enc_dim=V + 1, vocab=V, embed_dim=8, hidden=24, att_dim=12, chunk_size=chunk_size,
                       noise_std=noise_std, r_init=r_init, seed=seed, dtype=np.float64)
    mom = {k: np.zeros_like(v) for k, v in dec.params.items()}
    vel = {k: np.zeros_like(v) for k, v in dec.params.items()}
    for it in range(1, steps + 1):
        enc, lengths, prev, targets, label_lengths, _ = make_batch(rng, 16, V)
        dec.zero_grad()
        logits = dec.forward(enc, lengths, prev, label_lengths)
        loss, dlogits = cross_entropy(logits, targets, label_lengths)
        dec.backward(dlogits)
        for k, p in dec.params.items():
            g = np.clip(dec.grads[k], -5, 5)
            mom[k] = 0.9 * mom[k] + 0.1 * g
            vel[k] = 0.999 * vel[k] + 0.001 * g * g
            p -= lr * (mom[k] / (1 - 0.9 ** it)) / (np.sqrt(vel[k] / (1 - 0.999 ** it)) + 1e-8)
        if verbose and it % 50 == 0:
            print(f"step {it:4d}  loss/utt {loss:.3f}")
    return dec.eval()


def accuracy(dec: MochaDecoder, seed: int = 123, n: int = 64, V: int = 6) -> float:
    """Fraction of toy utterances whose greedy hard-MoChA output equals the reference exactly."""
    enc, lengths, _, _, _, refs = make_batch(np.random.default_rng(seed), n, V)
    out = mocha_hard_decode(dec.params, enc, lengths, chunk_size=dec.chunk_size, sos=SOS, eos=EOS, max_len=10)
    return float(np.mean([h == r for h, r in zip(out.labels, refs)]))


if __name__ == "__main__":
    model = train_toy(verbose=True)
    print(f"hard-decoding sequence accuracy: {accuracy(model):.3f}")
