"""Waveform augmentation under MPI: 2 ranks (each augmenting only its shard of every batch, the draws keyed by
utterance) train like 1 process, with SpecAugment on top (its masks are drawn from the shapes alone, which
augmentation keeps). Skipped without mpi4py and mpiexec, as tests/test_distributed.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchasr import distributed
from scratchasr.io import load_checkpoint

BIN = Path(sys.executable).parent


def _mpiexec():
    for p in (BIN / "mpiexec", shutil.which("mpiexec")):
        if p and Path(p).exists():
            return str(p)
    return None


def _have_mpi4py() -> bool:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def _corpus(root: Path) -> Path:
    """A Kaldi data dir of tones-in-noise audio with word transcripts: 8 train, 2 dev utterances."""
    import soundfile as sf
    rng = np.random.default_rng(1)
    words = ["red", "green", "blue"]
    for split, n in (("train", 8), ("dev", 2)):
        d = root / split
        d.mkdir(parents=True)
        scp, text = [], []
        for i in range(n):
            uid = f"{split}{i:02d}"
            m = int(16000 * rng.uniform(0.25, 0.4))
            y = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * np.arange(m) / 16000)
            sf.write(root / f"{uid}.wav", (y + 0.02 * rng.standard_normal(m)).astype(np.float32), 16000)
            scp.append(f"{uid} {root / f'{uid}.wav'}\n")
            text.append(f"{uid} {' '.join(rng.choice(words, size=rng.integers(1, 3)))}\n")
        (d / "wav.scp").write_text("".join(scp))
        (d / "text").write_text("".join(text))
    return root


@pytest.mark.skipif(not (_have_mpi4py() and _mpiexec()), reason="mpi4py and mpiexec needed")
def test_two_ranks_with_augmentation_train_like_one_process(tmp_path):
    from scratchasr.trainer import TrainConfig, load_config_file, train
    data = _corpus(tmp_path / "data")
    cfg = tmp_path / "config.py"
    cfg.write_text(f"CONFIG = dict(model='ctc_blstm', data_dir={str(data)!r}, units='words', hidden=8, "
                   f"num_layers=1, stack=1, dropout=0.0, batch_size=3, lr=1e-2, epochs=2, spec_augment=True, "
                   f"aug_gain=0.5, aug_reverb=0.4, aug_noise=0.5, aug_babble=0.5, aug_telephone=0.3, "
                   f"aug_mulaw=0.3, patience=100, progress=False, schedule='constant')\n")
    train(TrainConfig.from_overrides(load_config_file(str(cfg)), [f"--exp_dir={tmp_path / 'one'}"]))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    for v in distributed._SIZE_VARS:
        env.pop(v, None)
    r = subprocess.run([_mpiexec(), "-n", "2", str(BIN / "scratchasr"), "train", str(cfg),
                        f"--exp_dir={tmp_path / 'two'}"], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    a, _, meta_a = load_checkpoint(tmp_path / "one" / "checkpoint.npz")
    b, _, meta_b = load_checkpoint(tmp_path / "two" / "checkpoint.npz")
    for k in a:
        if not k.startswith("frontend."):
            rel = np.linalg.norm(a[k] - b[k]) / max(np.linalg.norm(a[k]), 1e-30)
            assert rel < 1e-5, (k, rel)
    for ha, hb in zip(meta_a["history"], meta_b["history"], strict=True):
        np.testing.assert_allclose(hb["train_loss"], ha["train_loss"], rtol=1e-5)
    off = [f"--aug_{k}=0" for k in ("gain", "reverb", "noise", "babble", "telephone", "mulaw")]
    clean = train(TrainConfig.from_overrides(load_config_file(str(cfg)),
                                             [f"--exp_dir={tmp_path / 'clean'}", "--epochs=1", *off]))
    assert clean["history"][0]["train_loss"] != meta_a["history"][0]["train_loss"]   # augmentation was on
