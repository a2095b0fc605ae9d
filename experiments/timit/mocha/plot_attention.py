"""Attention of a trained "mocha" model over the spectrogram: the hard monotonic path and its chunks at test
time, and the expected (soft) chunkwise attention the model is trained with.

    .venv/bin/python experiments/timit/mocha/plot_attention.py EXP/best.npz DATA --split core_test \
        --n 2 --out experiments/timit/mocha/attention.png

For each utterance, three panels share the time axis (10 ms input frames):
1. the log-mel spectrogram; for each emitted label i, the chunk of w encoder frames ending at the frame
   t_i where hard attention stopped (shaded, the chunk's k-frame stacks) and the label, i.e. what the
   online decoder reads before emitting label i (docs/equations/mocha.md [mocha:hard]);
2. the hard chunk weights (softmax over the chunk, one row per emitted label) of greedy decoding;
3. the expected chunk weights beta (one row per reference label + <eos>) under teacher forcing, as in
   training ([mocha:beta]); noise off.
"""

from __future__ import annotations

import argparse
from pathlib import Path



def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("data_dir")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--n", type=int, default=2, help="number of utterances (the first of the split)")
    ap.add_argument("--out", default="attention.png")
    args = ap.parse_args(argv)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scratchasr.data.batch import make_batch
    from scratchasr.data.corpus import read_split
    from scratchasr.inference import load

    model, frontend = load(args.checkpoint)
    if model.name != "mocha":
        raise SystemExit(f"checkpoint: a 'mocha' model is needed, got {model.name!r}")
    utts = read_split(args.data_dir, args.split, model.units)[: args.n]
    k, w = model.stack.k, model.decoder.chunk_size
    tok = model.vocabulary.tokens
    fig, axes = plt.subplots(3 * len(utts), 1, figsize=(13, 6.2 * len(utts)),
                             gridspec_kw=dict(height_ratios=[2, 1.3, 1.3] * len(utts)))
    for n, u in enumerate(utts):
        raw = frontend.file_features(u.wav_path)
        y = model.vocabulary.encode(u.tokens)
        batch = make_batch([frontend.normalise(raw)], [y])
        hard = model.hard_decode(batch)
        model.eval()
        model.forward_loss(batch)                     # eval: no caches; the decoder keeps its last betas
        beta = model.decoder.last_betas[0]            # (U + 1, T')
        T_in = raw.shape[0]
        Tk = beta.shape[1] * k
        ax = axes[3 * n]
        ax.imshow(raw[:, :40].T, origin="lower", aspect="auto", cmap="magma", extent=[0, T_in, 0, 40])
        for i, (lab, t) in enumerate(zip(hard.labels[0], hard.frames[0])):
            if t < 0:
                continue
            lo, hi = max(0, t - w + 1) * k, (t + 1) * k
            ax.axvspan(lo, hi, ymin=0.0, ymax=0.12, color="cyan", alpha=0.35, lw=0)
            ax.axvline(hi, color="cyan", lw=0.6)
            ax.text(hi - 0.5, 38.5 - 4.5 * (i % 3), tok[lab], color="white", fontsize=7, ha="right", va="top")
        n_none = sum(t < 0 for t in hard.frames[0])
        ax.set(ylabel="log-mel bin", xlim=(0, Tk))
        none = f"; {n_none} labels attended nothing" if n_none else ""
        hyp = " ".join(tok[i] for i in hard.labels[0])
        hyp = hyp if len(hyp) < 200 else hyp[:200] + " ..."
        ax.set_title(f"{u.id}: hard MoChA path (cyan: chunk of w={w} encoder frames of k={k} input frames "
                     f"ending where attention stopped; label emitted there){none}\n"
                     f"REF {' '.join(u.tokens)}\nHYP {hyp}", fontsize=8)
        att = hard.attention[0]
        ax = axes[3 * n + 1]
        if att.size:
            ax.imshow(att, aspect="auto", cmap="Blues", interpolation="nearest",
                      extent=[0, Tk, att.shape[0] - 0.5, -0.5])
        ax.set(ylabel="emitted label", xlim=(0, Tk))
        ax.set_title("hard chunk weights at test time (greedy decoding)", fontsize=8)
        ax = axes[3 * n + 2]
        ax.imshow(beta, aspect="auto", cmap="Greens", interpolation="nearest",
                  extent=[0, Tk, beta.shape[0] - 0.5, -0.5])
        ax.set(ylabel="reference label", xlabel="input frame (10 ms)", xlim=(0, Tk))
        ax.set_title("expected chunkwise attention beta under teacher forcing (training-time attention)",
                     fontsize=8)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=85)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
