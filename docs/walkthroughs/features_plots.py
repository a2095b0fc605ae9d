"""Figures for docs/walkthroughs/features.md (written to docs/walkthroughs/img/*.png).

    .venv/bin/python docs/walkthroughs/features_plots.py

Uses a LibriVox recording from Debian's pocketsphinx-testdata when installed, else a synthetic
vowel-like signal (so the script always runs).
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scratchasr.features import (add_deltas, fbank, get_window, kaldi_mel_banks, load_audio,  # noqa: E402
                                 mel_filterbank, power_to_db, spec_augment, stft)

OUT = Path(__file__).resolve().parent / "img"
WAV = Path("/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav")


def signal():
    if WAV.exists():
        y, sr = load_audio(WAV)
        return y, sr, WAV.name
    sr = 16000
    t = np.arange(3 * sr) / sr
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)                       # a gliding "voice"
    phase = 2 * np.pi * np.cumsum(f0) / sr
    y = sum(np.sin(h * phase) / h for h in range(1, 30)) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
    y += 0.01 * np.random.default_rng(0).standard_normal(t.size)
    return (0.3 * y / np.abs(y).max()).astype(np.float32), sr, "synthetic glide"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    y, sr, name = signal()

    # 1. waveform, linear-frequency spectrogram, Kaldi fbank, deltas.
    S = stft(y, n_fft=512, hop_length=160, win_length=400)
    db = power_to_db(np.abs(S) ** 2, ref=float(np.max(np.abs(S) ** 2)))
    F = fbank(y * 32768, num_mel_bins=40)
    D = add_deltas(F)
    fig, ax = plt.subplots(4, 1, figsize=(7, 7), constrained_layout=True)
    ax[0].plot(np.arange(y.size) / sr, y, lw=0.4)
    ax[0].set(title=f"waveform ({name})", xlabel="s", xlim=(0, y.size / sr))
    ax[1].imshow(db, origin="lower", aspect="auto", cmap="magma", extent=(0, y.size / sr, 0, sr / 2))
    ax[1].set(title="power spectrogram, dB (stft: n_fft 512, win 400, hop 160)", ylabel="Hz")
    ax[2].imshow(F.T, origin="lower", aspect="auto", cmap="magma")
    ax[2].set(title="Kaldi log-mel fbank, 40 bins (fbank)", ylabel="mel bin")
    ax[3].imshow(D[:, 40:80].T, origin="lower", aspect="auto", cmap="coolwarm", vmin=-3, vmax=3)
    ax[3].set(title="first-order deltas of the fbank (add_deltas)", ylabel="mel bin", xlabel="frame (10 ms)")
    fig.savefig(OUT / "features_spectrogram.png", dpi=60)
    plt.close(fig)

    # 2. filterbanks: Kaldi (triangles in mel, peak 1) vs librosa Slaney (triangles in Hz, equal area).
    K = kaldi_mel_banks(num_bins=23, padded_window_size=512, sample_frequency=16000.0)
    L = mel_filterbank(sr=16000, n_fft=512, n_mels=23)
    f = np.arange(257) * 16000 / 512
    fig, ax = plt.subplots(2, 1, figsize=(8, 5.5), constrained_layout=True)
    ax[0].plot(f, K.T, lw=0.9)
    ax[0].set(title="Kaldi mel banks: 23 bins, 20 Hz..Nyquist, linear in mel, peak 1", ylabel="weight")
    ax[1].plot(f, L.T, lw=0.9)
    ax[1].set(title='librosa mel_filterbank: 23 mels, Slaney scale, norm="slaney" (equal area)',
              xlabel="Hz", ylabel="weight")
    fig.savefig(OUT / "features_filterbank.png", dpi=72)
    plt.close(fig)

    # 3. windows and SpecAugment.
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    for w in ("rectangular", "hann", "hamming", "povey", "blackman"):
        ax[0].plot(get_window(w, 400, periodic=False), label=w)
    ax[0].legend(fontsize=8)
    ax[0].set(title="symmetric windows, 400 samples", xlabel="n")
    A, masks = spec_augment(F - F.mean(axis=0), np.random.default_rng(4), freq_mask_width=8,
                            time_mask_width=40, time_warp=20)
    ax[1].imshow(A.T, origin="lower", aspect="auto", cmap="magma")
    ax[1].set(title=f"spec_augment (warp {masks.warp_shift:+d} at frame {masks.warp_center})", xlabel="frame")
    fig.savefig(OUT / "features_windows_specaugment.png", dpi=72)
    plt.close(fig)
    for p in sorted(OUT.glob("features_*.png")):
        print(p, p.stat().st_size // 1024, "KiB")


if __name__ == "__main__":
    main()
