"""Log-mel spectrograms of one utterance under each waveform augmentation (docs/img/augment.png).

    .venv/bin/python experiments/voices/plot_augment.py [DATA_DIR] [--out docs/img/augment.png]

DATA_DIR is a TIMIT-layout corpus (default data/synth_small, from ``scratchasr synth-timit data/synth_small
--size small``); the first training utterance is shown clean, with pink noise at 10 dB SNR, with babble of
5 other training utterances at 10 dB, in a simulated room (image-source response drawn below), and
through the telephone channel with the G.711 mu-law codec, and with VTLP's warp of the mel filters at
0.9 and 1.1 (the range's ends; the audio unchanged). Every parameter is fixed here (seed 0).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from scratchasr.data import augment as A
from scratchasr.data.corpus import read_split
from scratchasr.features import fbank, load_audio


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", nargs="?", default="data/synth_small")
    ap.add_argument("--out", default="docs/img/augment.png")
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    utts = read_split(args.data_dir, "train", "phones")
    y, sr = load_audio(utts[0].wav_path)
    rng = np.random.default_rng(0)
    others = [load_audio(u.wav_path)[0] for u in utts[1:6]]
    room = A.Room((7.0, 5.0, 3.0), (1.5, 1.2, 1.6), (5.0, 3.5, 1.2), 0.3)
    h = A.image_source_rir(room.size, room.source, room.mic, absorption=room.absorption, sample_rate=sr,
                           duration=0.5)
    t0 = math.dist(room.source, room.mic) / A.SPEED_OF_SOUND
    rt = A.measure_rt60(h, sr)
    rows = [
        ("clean", y, 1.0),
        ("pink noise, SNR 10 dB", A.add_noise(y, A.pink_noise(len(y), rng), 10.0), 1.0),
        ("babble of 5 utterances, SNR 10 dB", A.add_noise(y, A.babble_noise(others, len(y), rng), 10.0), 1.0),
        (f"room {room.size[0]:g} x {room.size[1]:g} x {room.size[2]:g} m, absorption {room.absorption}, "
         f"T20 {rt:.2f} s (Eyring {A.eyring_rt60(room.size, room.absorption):.2f} s, "
         f"Sabine {A.sabine_rt60(room.size, room.absorption):.2f} s)",
         A.reverberate(y, h, sample_rate=sr, direct_delay=t0), 1.0),
        ("telephone 300-3400 Hz via 8 kHz + G.711 mu-law", A.telephone(y, sr, codec=True), 1.0),
        ("VTLP: mel filters warped by 0.9 (Kaldi VTLN; formants look 0.9 x as high)", y, 0.9),
        ("VTLP: mel filters warped by 1.1 (formants look 1.1 x as high)", y, 1.1),
    ]
    fig, axes = plt.subplots(len(rows) + 1, 1, figsize=(9, 15), constrained_layout=True)
    for ax, (title, z, warp) in zip(axes, rows):
        f = fbank(z * 32768.0, sample_frequency=sr, num_mel_bins=40, vtln_warp=warp)
        ax.imshow(f.T, origin="lower", aspect="auto", cmap="magma", vmin=f.max() - 12, vmax=f.max(),
                  extent=(0, f.shape[0] / 100, 0, 40))
        ax.set(title=title, ylabel="mel bin")
    axes[-2].set_xlabel("time (s)")
    t = np.arange(len(h)) / sr
    axes[-1].plot(1000 * t, h, lw=0.6)
    axes[-1].set(title=f"its room impulse response (image-source method; direct path at {1000 * t0:.1f} ms)",
                 xlabel="time (ms)", ylabel="h", xlim=(0, 1000 * t[-1]))
    fig.suptitle(f"utterance {utts[0].id}: log-mel filterbank (40 bins) under each augmentation")
    fig.savefig(args.out, dpi=70)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
