"""Attention weights over the spectrogram for a few utterances.

    python experiments/timit/attention/plot_attention.py CHECKPOINT DATA --split core_test --out DIR [--n 3]

For ``las`` (any model with ``attention(batch)``): the soft location-aware weights of every output step
under teacher forcing (reference labels fed), one row per output label (heads averaged). For ``mocha``
(any model with ``hard_decode(batch)``): the hard monotonic path at test time, each emitted label's
chunk of weights ending on the frame where its monotonic attention stopped. The upper panel is the
normalised input features (time in seconds); encoder frames are mapped back to seconds with the
model's time reduction. Utterances: the shortest, the median and the longest of the split (``--n``
evenly spaced by duration). Writes DIR/attention_<model>_<utt>.png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import read_split
from scratchasr.inference import load


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("data")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=3)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, frontend = load(args.checkpoint)
    name = model.config["name"]
    utts = read_split(args.data, args.split, model.units)
    feats = [frontend.from_file(u.wav_path) for u in utts]
    order = np.argsort([f.shape[0] for f in feats], kind="stable")
    pick = [int(order[int(round(q * (len(order) - 1)))]) for q in np.linspace(0, 1, args.n)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in pick:
        u, f = utts[i], feats[i]
        labels = model.vocabulary.encode(u.tokens, where=u.id)
        batch = make_batch([f], [labels], ids=[u.id])
        if hasattr(model, "attention"):
            alphas, enc_len = model.attention(batch)  # (1, S+1, heads, T')
            A = alphas[0].mean(axis=1)[:, :enc_len[0]]
            rows = list(u.tokens) + ["<eos>"]
            what = "soft location-aware attention, teacher forcing (reference labels fed)"
        elif hasattr(model, "hard_decode"):
            res = model.hard_decode(batch)
            A = np.asarray(res.attention[0])
            enc_len = np.array([A.shape[1]])
            rows = model.vocabulary.decode(res.labels[0])
            what = "hard monotonic attention at test time (chunk weights of each emitted label)"
        else:
            raise SystemExit(f"checkpoint: model {name!r} has neither attention() nor hard_decode()")
        T = f.shape[0]
        sec_per_enc = T / max(int(enc_len[0]), 1) / 100.0
        fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(10, 2.5 + 0.06 * len(rows)), sharex=True,
                                       gridspec_kw=dict(height_ratios=[1, max(1.5, 0.08 * len(rows))]))
        ax0.imshow(frontend.normalise(f).T[:40], aspect="auto", origin="lower", cmap="magma",
                   extent=[0, T / 100.0, 0, 40])
        ax0.set_ylabel("feature")
        ax0.set_title(f"{name}: {u.id} ({T / 100:.2f} s) - {what}", fontsize=9)
        ax1.imshow(A, aspect="auto", origin="upper", cmap="Greys", interpolation="nearest",
                   extent=[0, A.shape[1] * sec_per_enc, len(rows) - 0.5, -0.5])
        if len(rows) <= 60:
            ax1.set_yticks(range(len(rows)))
            ax1.set_yticklabels(rows, fontsize=6)
        ax1.set_ylabel("output label")
        ax1.set_xlabel("time (s)")
        fig.tight_layout()
        path = out / f"attention_{name}_{u.id}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
