"""PNG plots of a training run (matplotlib, the optional ``plot`` extra).

``plot_run(exp_dir, best_checkpoint, data_dir)`` writes ``loss.png`` (train loss per utterance and
dev PER per epoch) and ``alignment.png`` (the CTC Viterbi alignment of the first dev utterance
drawn over its log-mel spectrogram, with the reference phone boundaries for comparison).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import numpy as np


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_history(history: List[dict], path: Path) -> Path:
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-")
    ax[0].set(xlabel="epoch", ylabel="loss per utterance", title="training loss")
    if all("dev_per" in h for h in history):
        ax[1].plot(ep, [100 * h["dev_per"] for h in history], "o-", color="C1")
        ax[1].set(xlabel="epoch", ylabel="error rate (%)", title="dev error rate (PER: 39 phones)")
    else:
        ax[1].plot(ep, [h.get("dev_loss", np.nan) for h in history], "o-", color="C1")
        ax[1].set(xlabel="epoch", ylabel="loss per token", title="dev loss")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_alignment(checkpoint: str, data_dir: str, path: Path, split: str = "dev") -> Optional[Path]:
    """CTC models only (they expose ``log_probs``); returns None for other models."""
    from .data.batch import make_batch
    from .data.corpus import read_split
    from .inference import load
    from .losses import ctc_align
    model, frontend = load(checkpoint)
    if not hasattr(model, "log_probs"):
        return None
    from .data.timit import read_corpus
    utt = read_corpus(data_dir, split)[0]
    cu = [u for u in read_split(data_dir, split, model.units) if u.id == utt.id][0]
    plt = _plt()
    raw = frontend.file_features(utt.wav_path)
    y = model.vocabulary.encode(cu.tokens)
    lp, out_len = model.log_probs(make_batch([frontend.normalise(raw)], [y]))
    al = ctc_align(lp, y[None], out_len, np.array([len(y)]), blank=0)
    k = getattr(getattr(model, "stack", None), "k", 1)
    fig, ax = plt.subplots(2, 1, figsize=(12, 5), sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    ax[0].imshow(raw[:, :40].T, origin="lower", aspect="auto", cmap="magma")
    ax[0].set(ylabel="log-mel bin")
    ax[0].set_title(f"{utt.id}: CTC Viterbi alignment (cyan lines, labels) over the log-mel spectrogram; "
                    f"below, 1 - P(blank) with the reference phone boundaries (grey)", fontsize=9)
    labels = al.labels[0]
    for t in range(int(out_len[0])):
        if labels[t] > 0 and (t == 0 or labels[t] != labels[t - 1]):
            ax[0].axvline(t * k, color="cyan", lw=0.6)
            ax[0].text(t * k + 0.5, 38.5, model.vocabulary.tokens[labels[t]], color="white", fontsize=7,
                       va="top")
    probs = np.exp(lp[0, : int(out_len[0])])
    ax[1].plot(np.arange(probs.shape[0]) * k, 1 - probs[:, 0], lw=0.8)
    for s, e, p in utt.phones:
        ax[1].axvline(s / 160, color="gray", lw=0.4)
    ax[1].set(xlabel="frame (10 ms)", ylabel="1 - P(blank)", ylim=(0, 1.05))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_run(exp_dir: str, *, best_checkpoint: str, data_dir: str) -> List[Path]:
    exp = Path(exp_dir)
    history = json.loads((exp / "log.json").read_text())
    out = [plot_history(history, exp / "loss.png")]
    al = plot_alignment(best_checkpoint, data_dir, exp / "alignment.png")
    return out + ([al] if al is not None else [])
