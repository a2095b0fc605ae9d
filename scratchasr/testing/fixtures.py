"""Small on-disk fixtures for tests: a Kaldi data dir of seeded noise "utterances" with given transcripts."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["write_noise_wav", "write_kaldi_dir"]


def write_noise_wav(path, n: int, seed: int) -> None:
    """``n`` samples of seeded Gaussian noise (int16, 16 kHz, mono) written as a WAV file."""
    y = (np.random.default_rng(seed).standard_normal(n) * 3000).astype(np.int16)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(y.tobytes())


def write_kaldi_dir(root, split: str, lines: Sequence[str], *, samples: int = 3000, step: int = 600) -> Path:
    """``root/split`` with ``wav.scp`` and ``text``: utterance ``{split}{i}`` is ``samples + step * i``
    samples of noise (seed i) transcribed as ``lines[i]``."""
    d = Path(root) / split
    d.mkdir(parents=True)
    for i in range(len(lines)):
        write_noise_wav(d / f"{split}{i}.wav", samples + step * i, i)
    (d / "wav.scp").write_text("".join(f"{split}{i} {d}/{split}{i}.wav\n" for i in range(len(lines))))
    (d / "text").write_text("".join(f"{split}{i} {t}\n" for i, t in enumerate(lines)))
    return d
