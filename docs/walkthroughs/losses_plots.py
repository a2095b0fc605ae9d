"""Plots for docs/walkthroughs/losses.md: CTC occupancy with the Viterbi path, RNN-T alpha and occupancy.

    .venv/bin/python docs/walkthroughs/losses_plots.py

The "utterance" is generated, so the figures need no training run and no checkpoint (the trained
BiLSTM-CTC of experiments/timit/ctc_blstm is not committed): a phone sequence with random durations,
and logits that favour the aligned phone (or blank) at each frame plus Gaussian noise. The lattices
are computed from these logits exactly as they would be from a network's. The phones of "the cat
took" hold a repeated phone ("k") and an adjacent repeat ("t t"), so the CTC path has to pass
through the blank between the two t's. Writes losses_ctc_occupancy.png and losses_rnnt_lattice.png
next to this file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scratchasr.losses import ctc_align, ctc_loss, ctc_loss_backward, rnnt_loss, rnnt_loss_backward  # noqa: E402

HERE = Path(__file__).resolve().parent
PHONES = ["<b>", "sil", "dh", "ax", "k", "ae", "t", "uh"]  # the vocabulary, each phone once (0 = blank)
UTTERANCE = ["sil", "dh", "ax", "k", "ae", "t", "t", "uh", "k", "sil"]  # "the cat took"


def generated_utterance(rng, T=60):
    """The utterance's phone ids with random durations; returns targets (S,) and the frame-level
    index into the targets (T,), so two adjacent equal phones stay two segments."""
    y = np.array([PHONES.index(p) for p in UTTERANCE])
    dur = rng.multinomial(T - len(y), np.ones(len(y)) / len(y)) + 1  # every phone gets >= 1 frame
    return y, np.repeat(np.arange(len(y)), dur)


def main():
    rng = np.random.default_rng(3)
    V = len(PHONES)
    y, seg = generated_utterance(rng)
    T, S = seg.shape[0], y.shape[0]
    frames = y[seg]  # (T,) the phone id at each frame

    # CTC: peaky logits, the label on the first frame of each phone, blank elsewhere (as trained CTC does)
    first = np.r_[True, seg[1:] != seg[:-1]]
    ctc_logits = rng.normal(0, 1.0, (1, T, V))
    ctc_logits[0, np.arange(T), np.where(first, frames, 0)] += 4.0
    ctc_logits[0, np.arange(T), frames] += 1.5
    loss, cache = ctc_loss(ctc_logits, y[None], [T], [S], reduction="none")
    dlogits = ctc_loss_backward(np.ones(1), cache)
    gamma = np.exp(cache.log_alpha[0] + cache.log_beta[0] - cache.log_like[0, 0])  # (T, 2S+1) [ctc:occupancy]
    path = ctc_align(ctc_logits, y[None], [T], [S])

    fig, axes = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ax = axes[0]
    ax.imshow(gamma.T, origin="lower", aspect="auto", cmap="viridis")
    ax.plot(np.arange(T), path.states[0], "w.", ms=3, label="Viterbi path (ctc_align)")
    ext = [PHONES[0] if s % 2 == 0 else PHONES[y[s // 2]] for s in range(2 * S + 1)]
    ax.set_yticks(range(2 * S + 1))
    ax.set_yticklabels(ext, fontsize=6)
    ax.set_ylabel("state s of l'")
    ax.set_title(f"CTC occupancy gamma_t(s) = alpha*beta/P, loss {loss[0]:.2f} (generated logits)")
    ax.legend(loc="upper left", fontsize=7)
    ax = axes[1]
    im = ax.imshow(dlogits[0].T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_yticks(range(V))
    ax.set_yticklabels(PHONES, fontsize=7)
    ax.set_xlabel("frame t")
    ax.set_title("dL/dlogits = softmax - occupancy (per label)")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(HERE / "losses_ctc_occupancy.png", dpi=110)
    plt.close(fig)

    # RNN-T: joiner logits favour blank unless the next label is due at this frame
    Tr = 30
    y_r, seg_r = generated_utterance(rng, Tr)
    U = y_r.shape[0]
    rnnt_logits = rng.normal(0, 1.0, (1, Tr, U + 1, V))
    onset = seg_r  # (Tr,) index of the phone under way at frame t
    for t in range(Tr):
        for u in range(U + 1):
            if u < U and u <= onset[t]:
                rnnt_logits[0, t, u, y_r[u]] += 3.0  # labels up to the current phone are due
            else:
                rnnt_logits[0, t, u, 0] += 3.0  # caught up: emit blank and move on
    loss_r, cache_r = rnnt_loss(rnnt_logits, y_r[None], [Tr], [U], reduction="none")
    rnnt_loss_backward(np.ones(1), cache_r)
    la = cache_r.log_alpha[0]
    occ = np.exp(la + cache_r.log_beta[0] - cache_r.log_like[0, 0])  # node occupancy [rnnt:diagonal]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, img, title in ((axes[0], la.T, "log alpha(t, u)"), (axes[1], occ.T, "occupancy alpha*beta/P")):
        im = ax.imshow(img, origin="lower", aspect="auto", cmap="magma")
        ax.set_xlabel("frame t")
        ax.set_yticks(range(U + 1))
        ax.set_yticklabels(["-"] + [PHONES[k] for k in y_r], fontsize=7)
        ax.set_ylabel("labels emitted u")
        ax.set_title(title)
        fig.colorbar(im, ax=ax, fraction=0.04)
    fig.suptitle(f"RNN-T lattice, generated logits, loss {loss_r[0]:.2f}")
    fig.tight_layout()
    fig.savefig(HERE / "losses_rnnt_lattice.png", dpi=110)
    plt.close(fig)
    print("wrote", HERE / "losses_ctc_occupancy.png", "and", HERE / "losses_rnnt_lattice.png")


if __name__ == "__main__":
    main()
