"""Plot the training-time expected alignment against the test-time hard alignment (toy MoChA model).

    .venv/bin/python docs/walkthroughs/mocha_plot.py [--steps=3000] [--out=PATH.png]

Trains the toy decoder of mocha_toy.py, then for one held-out utterance draws
(1) alpha: the expected monotonic alignment (teacher forcing, no noise), (2) beta: the expected
chunkwise weights that form the training context, (3) the hard MoChA attention used at test
time (attended frame t_i and its chunk softmax), with the reference segment onsets marked.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mocha_toy as toy  # noqa: E402

from scratchasr.decode.mocha_streaming import mocha_hard_decode  # noqa: E402


def main(argv):
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--"))
    steps = int(opts.get("steps", 3000))
    out = opts.get("out", str(Path(__file__).resolve().parent / "mocha_alignments.png"))
    model = toy.train_toy(steps=steps, lr=0.03, r_init=-4.0)  # r = -4 as recommended by Raffel et al.
    print(f"toy model after {steps} steps: hard-decoding sequence accuracy {toy.accuracy(model):.3f}")
    enc, lengths, prev, targets, label_lengths, refs = toy.make_batch(np.random.default_rng(11), 16)
    b = int(np.argmax(label_lengths))  # the longest utterance of the batch
    T = int(lengths[b])
    enc, lengths = enc[b:b + 1, :T], lengths[b:b + 1]
    prev, label_lengths = prev[b:b + 1], label_lengths[b:b + 1]
    refs = [refs[b]]
    model.eval()
    model.forward(enc, lengths, prev, label_lengths)
    U = int(label_lengths[0])
    alpha, beta = model.last_alphas[0, :U], model.last_betas[0, :U]
    hard = mocha_hard_decode(model.params, enc, lengths, chunk_size=model.chunk_size, sos=toy.SOS,
                             eos=toy.EOS, max_len=U + 2)
    H = np.zeros((U, T))  # one row per output step, as alpha (eos and later steps attend nothing here)
    n = min(U, len(hard.frames[0]))
    H[:n] = hard.attention[0][:n]
    onsets = np.flatnonzero(enc[0, :, -1] > 0.5)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=False)
    for ax, M, title in ((axes[0], alpha, "expected alignment $\\alpha$ (training)"),
                         (axes[1], beta, f"expected chunk weights $\\beta$ (w={model.chunk_size})"),
                         (axes[2], H, "hard MoChA attention (test)")):
        im = ax.imshow(M, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xlabel("encoder frame j")
        ax.set_title(title, fontsize=10)
        ax.set_yticks(range(M.shape[0]))
        for o in onsets:
            ax.axvline(o - 0.5, color="tab:red", lw=0.6, alpha=0.6)
    axes[0].set_ylabel("output step i")
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.suptitle(f"reference {refs[0]}  hard output {hard.labels[0]}  frames {hard.frames[0]}", fontsize=9)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}; rows of alpha sum to {np.round(alpha.sum(1), 3).tolist()} (not renormalised)")


if __name__ == "__main__":
    main(sys.argv[1:])
