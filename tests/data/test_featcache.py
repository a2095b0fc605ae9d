"""The feature cache: keyed by options and corpus contents, loaded once (views, not copies), repaired."""

import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from scratchasr.data.corpus import CorpusUtterance
from scratchasr.data.featcache import cached_features
from scratchasr.frontend import Frontend


@pytest.fixture
def utts(tmp_path):
    rng = np.random.default_rng(0)
    out = []
    for i in range(300):
        p = tmp_path / f"u{i:03d}.wav"
        sf.write(p, (0.1 * rng.standard_normal(1600 + 16 * i)).astype(np.float32), 16000, subtype="FLOAT")
        out.append(CorpusUtterance(f"u{i:03d}", "s", str(p), ["a"]))
    return out


def test_loading_a_cached_split_costs_about_one_copy(utts, tmp_path):
    fe = Frontend(dict(num_mel_bins=23, delta_order=0))
    first = cached_features(utts, fe, tmp_path / "cache", "train", progress=False)
    size = sum(f.nbytes for f in first)
    del first
    tracemalloc.start()
    again = cached_features(utts, fe, tmp_path / "cache", "train", progress=False)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2.0 * size + 2_000_000, (peak, size)
    assert all(f.base is not None for f in again)            # views into one array
    assert len(again) == 300 and all(f.shape[1] == 24 for f in again)


def test_options_and_contents_change_the_key(utts, tmp_path):
    a = Frontend(dict(num_mel_bins=23, delta_order=0))
    b = Frontend(dict(num_mel_bins=20, delta_order=0))
    fa = cached_features(utts[:3], a, tmp_path, "dev", progress=False)
    fb = cached_features(utts[:3], b, tmp_path, "dev", progress=False)
    assert fa[0].shape[1] == 24 and fb[0].shape[1] == 21
    sf.write(utts[0].wav_path, np.zeros(1600, np.float32), 16000, subtype="FLOAT")   # same id, new audio
    fc = cached_features(utts[:3], a, tmp_path, "dev", progress=False)
    assert fc[0].shape != fa[0].shape or not np.array_equal(fc[0], fa[0])   # recomputed, not served stale
    assert len(list(tmp_path.glob("dev-*.npz"))) == 3


def test_a_damaged_cache_is_rebuilt_with_a_warning(utts, tmp_path, capsys):
    fe = Frontend(dict(num_mel_bins=23, delta_order=0))
    good = [f.copy() for f in cached_features(utts[:4], fe, tmp_path, "dev", progress=False)]
    (path,) = tmp_path.glob("dev-*.npz")
    path.write_bytes(path.read_bytes()[:100])                   # truncated
    again = cached_features(utts[:4], fe, tmp_path, "dev", progress=False)
    assert "damaged" in capsys.readouterr().err
    for g, a in zip(good, again):
        np.testing.assert_array_equal(g, a)


def test_audio_at_another_rate_is_resampled_with_a_notice_per_file(tmp_path, capsys):
    """A training corpus holding 8 kHz and 44.1 kHz files gets the model's 16 kHz features, not features
    computed at the files' own rates; each such file is named once."""
    from scipy.signal import resample_poly
    rng = np.random.default_rng(1)
    y = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    utts = []
    for rate, up, down in ((16000, 1, 1), (8000, 1, 2), (44100, 441, 160)):
        p = tmp_path / f"r{rate}.wav"
        sf.write(p, resample_poly(y, up, down).astype(np.float32), rate, subtype="FLOAT")
        utts.append(CorpusUtterance(f"r{rate}", "s", str(p), ["a"]))
    fe = Frontend(dict(num_mel_bins=23, delta_order=0, high_freq=3800.0, use_energy=False))
    feats = cached_features(utts, fe, tmp_path / "cache", "train", progress=False)
    notes = [line for line in capsys.readouterr().err.splitlines() if "resampling" in line]
    assert len(notes) == 2 and "r8000.wav: resampling 8000 Hz -> 16000 Hz" in notes[0]
    assert "r44100.wav: resampling 44100 Hz -> 16000 Hz" in notes[1]
    assert all(f.shape == feats[0].shape for f in feats)             # 100 frames each, at 16 kHz
    for f in feats[1:]:                                              # below 3.8 kHz they hold the same signal
        assert np.abs(f - feats[0]).mean() < 0.05, np.abs(f - feats[0]).mean()
    cached_features(utts, fe, tmp_path / "cache", "train-sp1.1", speed=1.1, progress=False)
    assert "resampling" not in capsys.readouterr().err              # speed copies: announced once already
    with pytest.raises(ValueError, match=r"^.*r8000\.wav: sample rate 8000 Hz, the model expects 16000 Hz"):
        fe.file_features(utts[1].wav_path, resample=False)
