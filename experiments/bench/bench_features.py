"""Time scratchasr's Kaldi fbank (80 bins) on 100 utterances of 3 s against the peers, one thread each.

Peers measured in the same run: librosa 0.11 log-mel (melspectrogram + power_to_db with the speech
settings n_fft 512, win 400, hop 160, 80 mels), kaldi-native-fbank (OnlineFbank, 80 bins, dither 0),
and torchaudio.compliance.kaldi.fbank when torchaudio imports. Every peer gets the same float32
int16-scale signals; each row is the median of `--repeat` runs over all 100 utterances (ms), and the
ratio column is peer time / our time (> 1: we are faster).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/bench/bench_features.py [--repeat 7] [--cpu-time]
        [--baseline OLD_KALDI_PY]

``--cpu-time`` times with the process's CPU time instead of the wall clock (steadier on a shared
machine: time spent waiting for a core is not counted; all timed code is single-threaded).
``--baseline`` loads an older ``scratchasr/features/kaldi.py`` (e.g. from
``git show COMMIT:scratchasr/features/kaldi.py > /tmp/kaldi_old.py``) as a module of the package and
times its ``fbank`` interleaved with the current one, for before/after comparisons in one run.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"          # before numpy (and its BLAS) is imported

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr.features import fbank, melspectrogram, power_to_db  # noqa: E402


CLOCK = time.perf_counter


def timeit(fn, warmup=2, repeat=7):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t0 = CLOCK()
        fn()
        ts.append((CLOCK() - t0) * 1e3)
    return statistics.median(ts), min(ts)


def timeit_interleaved(fns, warmup=2, repeat=7):
    """Time several functions in alternating order (ABBA...), so drifting load hits them alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    ts = [[] for _ in fns]
    for r in range(repeat):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            t0 = CLOCK()
            fns[i]()
            ts[i].append((CLOCK() - t0) * 1e3)
    return [(statistics.median(t), min(t)) for t in ts]


def load_baseline(path):
    """An older kaldi.py, imported as ``scratchasr.features._baseline_kaldi`` (its relative imports
    resolve against the installed package)."""
    spec = importlib.util.spec_from_file_location("scratchasr.features._baseline_kaldi", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.fbank


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--n-utts", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall clock")
    ap.add_argument("--baseline", help="an older scratchasr/features/kaldi.py to time against")
    args = ap.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time

    rng = np.random.default_rng(0)
    n = int(16000 * args.seconds)
    utts = [(3000 * rng.standard_normal(n)).astype(np.float32) for _ in range(args.n_utts)]
    batch = np.stack(utts)
    rows = []

    def ours():
        return [fbank(u, num_mel_bins=80) for u in utts]
    if args.baseline:
        old = load_baseline(args.baseline)
        (m_new, t_new), (m_old, t_old) = timeit_interleaved(
            [ours, lambda: [old(u, num_mel_bins=80) for u in utts]], repeat=args.repeat)
        rows.append(("scratchasr fbank 80 (float32 in, per utterance)", m_new, t_new))
        rows.append((f"baseline {args.baseline} fbank 80 (float32 in, per utterance)", m_old, t_old))
    else:
        rows.append(("scratchasr fbank 80 (float32 in, per utterance)", *timeit(ours, repeat=args.repeat)))
    ours64 = [u.astype(np.float64) for u in utts]
    rows.append(("scratchasr fbank 80 (float64 in, per utterance)",
                 *timeit(lambda: [fbank(u, num_mel_bins=80) for u in ours64], repeat=args.repeat)))
    rows.append(("scratchasr melspectrogram+power_to_db 80 (librosa settings)",
                 *timeit(lambda: [power_to_db(melspectrogram(y=u, sr=16000, n_fft=512, hop_length=160,
                                                             win_length=400, n_mels=80)) for u in utts],
                         repeat=args.repeat)))
    versions = {"numpy": np.__version__}
    try:
        import librosa
        versions["librosa"] = librosa.__version__
        kw = dict(sr=16000, n_fft=512, hop_length=160, win_length=400, n_mels=80)
        rows.append(("librosa melspectrogram+power_to_db 80 (per utterance)",
                     *timeit(lambda: [librosa.power_to_db(librosa.feature.melspectrogram(y=u, **kw))
                                      for u in utts], repeat=args.repeat)))
        rows.append(("librosa melspectrogram+power_to_db 80 (one batched call)",
                     *timeit(lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=batch, **kw)),
                             repeat=args.repeat)))
    except ImportError:
        print("librosa not installed: skipped")
    try:
        import kaldi_native_fbank as knf
        versions["kaldi_native_fbank"] = getattr(knf, "__version__", "?")
        opts = knf.FbankOptions()
        opts.frame_opts.dither = 0.0
        opts.mel_opts.num_bins = 80

        def knf_run():
            out = []
            for u in utts:
                f = knf.OnlineFbank(opts)
                f.accept_waveform(16000, u)
                f.input_finished()
                out.append(np.array([f.get_frame(i) for i in range(f.num_frames_ready)]))
            return out
        a, b = knf_run()[0], ours()[0]
        print(f"kaldi-native-fbank vs ours: max |diff| {np.abs(a - b).max():.2e} on {a.shape}")
        rows.append(("kaldi-native-fbank OnlineFbank 80 (per utterance)",
                     *timeit(knf_run, repeat=args.repeat)))
    except ImportError:
        print("kaldi-native-fbank not installed: skipped")
    try:
        import torch
        torch.set_num_threads(1)
        import torchaudio
        versions["torchaudio"] = torchaudio.__version__
        tus = [torch.from_numpy(u)[None] for u in utts]
        rows.append(("torchaudio compliance.kaldi.fbank 80 (per utterance)",
                     *timeit(lambda: [torchaudio.compliance.kaldi.fbank(t, num_mel_bins=80) for t in tus],
                             repeat=args.repeat)))
    except (ImportError, OSError) as e:
        print(f"torchaudio not importable ({type(e).__name__}): skipped")

    base = rows[0][1]
    clock = "process CPU time" if args.cpu_time else "wall clock"
    print(f"\n{args.n_utts} utterances x {args.seconds} s at 16 kHz, 1 thread; median of {args.repeat} runs "
          f"({clock})")
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, {versions}\n")
    print("| implementation | median ms | min ms | ratio peer/ours |")
    print("|---|---|---|---|")
    for name, med, mn in rows:
        print(f"| {name} | {med:.1f} | {mn:.1f} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
