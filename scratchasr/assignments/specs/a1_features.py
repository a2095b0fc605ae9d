"""A1: speech features: framing, windows, pre-emphasis, mel filters, DCT and lifter, deltas, CMVN.

Handout: scratchasr/assignments/handouts/a1_features.md. Equations: docs/equations/features.md.
Evidence: hidden references recorded from the solution, the peers where installed (kaldi-native-fbank,
librosa, scipy; a term is skipped, not failed, when its peer is missing), and invariants. End-to-end
terms run the solution's fbank/mfcc with ONE student function swapped in (``ctx.swap``), so a bug in
one function costs points on its own item only.
"""

from __future__ import annotations

import numpy as np

from ..spec import Assignment, Item, Term


def _signal(rng, n=8000):
    """Half a second at 16 kHz, int16 scale: a chirp in noise 12 dB below it, plus a DC offset."""
    t = np.arange(n) / 16000.0
    chirp = 4000 * np.sin(2 * np.pi * (100 + 3000 * t) * t)
    return (chirp + 1000 * rng.standard_normal(n) + 300.0).astype(np.float32)


def _knf(ctx):
    try:
        import kaldi_native_fbank as knf
    except ImportError:
        ctx.skip("kaldi-native-fbank is not installed")
    return knf


def _knf_features(knf, x, kind="fbank", **frame):
    o = knf.FbankOptions() if kind == "fbank" else knf.MfccOptions()
    o.frame_opts.dither = 0.0
    for k, v in frame.items():
        setattr(o.frame_opts, k, v)
    comp = knf.OnlineFbank(o) if kind == "fbank" else knf.OnlineMfcc(o)
    comp.accept_waveform(16000, x.tolist())
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)], dtype=np.float64)


def _vs_kaldi(ctx, swap, what, kind="fbank", **frame):
    """The solution's fbank/mfcc with the student's ``swap`` functions, against kaldi-native-fbank."""
    knf = _knf(ctx)
    x = _signal(ctx.rng)
    ours_kw = {"snip_edges": frame.get("snip_edges", True), "window_type": frame.get("window_type", "povey")}
    with ctx.swap(*swap):
        f = ctx.impl(f"features.kaldi.{kind}")
        ours = np.asarray(f(x, backend="numpy", **ours_kw), dtype=np.float64)
    ref = _knf_features(knf, x, kind, **frame)
    if ours.shape != ref.shape:
        ctx.fail(f"{kind} with your {what}: {ours.shape[0]} frames, kaldi-native-fbank gives {ref.shape[0]}")
    atol = 1e-3 * max(1.0, np.abs(ref).max() / 10)
    bad = np.argwhere(~np.isclose(ours, ref, rtol=1e-3, atol=atol))
    first = tuple(int(v) for v in bad[0]) if bad.size else (0, 0)
    ctx.expect(bad.size == 0, f"{kind} with your {what} differs from kaldi-native-fbank "
               f"({len(bad)} entries; first at frame t={first[0]}, bin {first[1]})")


# ----------------------------------------------------------------------------------------- windows

def _windows_values(ctx):
    for name in ("rectangular", "hann", "hamming", "povey", "blackman"):
        for periodic in (True, False):
            for N in (7, 400):
                w = ctx.fn("features.windows._window_cached")(name, N, periodic)
                ctx.compare(f"{name}-{periodic}-{N}", w, axes=("n",), name=f"{name} window, N={N}, "
                            f"{'periodic' if periodic else 'symmetric'}", tol="smooth")


def _windows_scipy(ctx):
    try:
        import scipy.signal
    except ImportError:
        ctx.skip("scipy is not installed")
    for name in ("hann", "hamming", "blackman"):
        for periodic in (True, False):
            w = ctx.fn("features.windows._window_cached")(name, 400, periodic)
            ref = scipy.signal.get_window(name, 400, fftbins=periodic)
            ctx.expect(np.allclose(w, ref, rtol=1e-12, atol=1e-14), f"{name} window (N=400, "
                       f"{'periodic' if periodic else 'symmetric'}) differs from scipy.signal.get_window",
                       hint="window")


# ----------------------------------------------------------------------------------------- framing

def _frames_values(ctx):
    y = ctx.rng.standard_normal(1234)
    for snip in (True, False):
        for L, S in ((400, 160), (25, 10), (300, 300)):
            n = ctx.fn("features.windows.num_frames_kaldi")(y.size, L, S, snip)
            ctx.compare(f"n-{snip}-{L}-{S}", np.array([n]), tol="exact", name=f"num_frames (L={L}, S={S}, "
                        f"snip_edges={snip})")
            sig, first, n2 = ctx.fn("features.windows.kaldi_frame_source")(y, L, S, snip)
            frames = np.lib.stride_tricks.sliding_window_view(np.asarray(sig)[first:], L)[::S][:n2]
            ctx.compare(f"frames-{snip}-{L}-{S}", frames, axes=("t", "n"), name=f"frames (L={L}, S={S}, "
                        f"snip_edges={snip})")


def _frames_short(ctx):
    y = ctx.rng.standard_normal(30)
    for snip in (True, False):
        n = ctx.fn("features.windows.num_frames_kaldi")(30, 400, 160, snip)
        ctx.compare(f"n-short-{snip}", np.array([n]), tol="exact",
                    name=f"num_frames (30 samples, snip={snip})")
        if n:
            sig, first, n2 = ctx.fn("features.windows.kaldi_frame_source")(y, 40, 16, snip)
            frames = np.lib.stride_tricks.sliding_window_view(np.asarray(sig)[first:], 40)[::16][:n2]
            ctx.compare(f"frames-short-{snip}", frames, axes=("t", "n"), name="frames (mirrored edges)")


# ----------------------------------------------------------------------------------------- frame prep

def _prep_values(ctx, preemph=0.97, dc=True):
    y = _signal(ctx.rng, 2000).astype(np.float64)
    L, S = 400, 160
    n = 1 + (y.size - L) // S
    window = ctx.impl("features.windows.get_window")("hamming", L, periodic=False)  # povey's w[0] is 0
    buf = np.zeros((n, 512))
    ctx.fn("features.kaldi._frame_prep_numpy")(y, 0, S, preemph, dc, window, buf)
    ctx.compare("buf", buf, axes=("t", "n"), name="buf (windowed, pre-emphasised frames)",
                mistakes={"dc-preemph": lambda: _prep_swapped(y, n, L, S, preemph, window)})


def _prep_swapped(y, n, L, S, k, window):
    """The classic mistake: pre-emphasis before removing the DC offset (the order matters at x[0])."""
    # BEGIN ASSIGNMENT A1
    x = np.lib.stride_tricks.sliding_window_view(y, L)[::S][:n].astype(np.float64)
    p = np.empty_like(x)
    p[:, 0] = (1 - k) * x[:, 0]
    p[:, 1:] = x[:, 1:] - k * x[:, :-1]
    p -= p.mean(axis=1, keepdims=True)
    out = np.zeros((n, 512))
    out[:, :L] = p * window
    return out
    # END ASSIGNMENT


# ----------------------------------------------------------------------------------------- mel

def _kaldi_mel(ctx):
    for bins, P, lo, hi in ((23, 512, 20.0, 0.0), (40, 512, 64.0, -400.0), (80, 1024, 0.0, 7600.0)):
        M = ctx.fn("features.mel.kaldi_mel_banks")(num_bins=bins, padded_window_size=P,
                                                   sample_frequency=16000.0, low_freq=lo, high_freq=hi)
        ctx.compare(f"M-{bins}-{P}", M, axes=("i", "k"), name=f"kaldi_mel_banks (num_bins={bins}, P={P})")


def _librosa_mel(ctx, norm="slaney", htk=False):
    for sr, n_fft, n_mels, fmax in ((16000, 512, 40, None), (22050, 2048, 128, 8000.0)):
        M = ctx.fn("features.mel.mel_filterbank")(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=fmax, htk=htk,
                                                  norm=norm, dtype=np.float64)
        ctx.compare(f"M-{sr}-{n_fft}", M, axes=("i", "k"), name=f"mel_filterbank (sr={sr}, n_fft={n_fft}, "
                    f"htk={htk}, norm={norm})")


def _librosa_mel_peer(ctx):
    try:
        import librosa
    except ImportError:
        ctx.skip("librosa is not installed")
    for htk in (False, True):
        M = ctx.fn("features.mel.mel_filterbank")(sr=16000, n_fft=512, n_mels=40, htk=htk, dtype=np.float64)
        ref = librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, htk=htk, dtype=np.float64)
        ctx.expect(np.allclose(M, ref, rtol=1e-6, atol=1e-10), f"mel_filterbank(htk={htk}) differs from "
                   f"librosa.filters.mel", hint="mel-scale")


# ----------------------------------------------------------------------------------------- DCT, lifter

def _dct_values(ctx):
    for C, N in ((13, 23), (23, 23), (40, 80)):
        ctx.compare(f"D-{C}-{N}", ctx.fn("features.kaldi.dct_matrix")(C, N), axes=("k", "n"),
                    name=f"dct_matrix({C}, {N})")


def _dct_ortho(ctx):
    D = np.asarray(ctx.fn("features.kaldi.dct_matrix")(23, 23), dtype=np.float64)
    ctx.expect(np.allclose(D @ D.T, np.eye(23), atol=1e-12),
               "dct_matrix(23, 23) is not orthonormal (D D^T != I)")
    try:
        import scipy.fft
    except ImportError:
        return
    x = ctx.rng.standard_normal(23)
    ctx.expect(np.allclose(D @ x, scipy.fft.dct(x, type=2, norm="ortho"), atol=1e-12),
               "dct_matrix(23, 23) @ x differs from scipy.fft.dct(x, type=2, norm='ortho')")


def _lifter_values(ctx):
    for C, Q in ((13, 22.0), (20, 40.0)):
        ctx.compare(f"lift-{C}-{Q}", ctx.fn("features.kaldi.lifter_coefficients")(C, Q), axes=("i",),
                    name=f"lifter_coefficients({C}, {Q})")


# ----------------------------------------------------------------------------------------- deltas, CMVN

def _deltas_values(ctx, order=2, window=2, T=12):
    feats = ctx.rng.standard_normal((T, 5))
    out = ctx.fn("features.deltas.add_deltas")(feats, order=order, window=window)
    ctx.compare("deltas", out, axes=("t", "d"), name=f"add_deltas(order={order}, window={window})",
                mistakes={"delta-edge": lambda: _deltas_zero_pad(feats, order, window)})


def _deltas_zero_pad(feats, order, window):
    """The classic mistake: zeros instead of the edge frames beyond both ends."""
    # BEGIN ASSIGNMENT A1
    n = np.arange(-window, window + 1, dtype=np.float64)
    first = n / np.sum(n * n)
    filters = [np.ones(1)]
    for _ in range(order):
        filters.append(np.convolve(filters[-1], first))
    T, D = feats.shape
    P = order * window
    padded = np.pad(feats, ((P, P), (0, 0)))
    out = []
    for f in filters:
        h = (f.size - 1) // 2
        out.append(sum(f[j + h] * padded[P + j:P + j + T] for j in range(-h, h + 1)))
    return np.concatenate(out, axis=1)
    # END ASSIGNMENT


def _deltas_invariants(ctx):
    T = 10
    ramp = np.outer(np.arange(T, dtype=np.float64), [1.0, -2.0])  # c_t = a t: delta = a, delta^2 = 0 inside
    out = np.asarray(ctx.fn("features.deltas.add_deltas")(ramp, order=2, window=2), dtype=np.float64)
    inner = slice(4, T - 4)
    ctx.expect(np.allclose(out[inner, 2:4], [1.0, -2.0], atol=1e-12), "the first delta of a linear ramp "
               "c_t = a t must be a (away from the edges)")
    ctx.expect(np.allclose(out[inner, 4:6], 0.0, atol=1e-12), "the second delta of a linear ramp must be 0")
    const = np.ones((T, 3)) * 2.5
    out = np.asarray(ctx.fn("features.deltas.add_deltas")(const, order=2, window=2), dtype=np.float64)
    ctx.expect(np.allclose(out[:, 3:], 0.0, atol=1e-12), "deltas of a constant input must be 0 everywhere, "
               "edges included", hint="delta-edge")


def _cmvn_values(ctx):
    feats = ctx.rng.standard_normal((20, 6)) * 3 + 5
    f = ctx.fn("features.cmvn.cmvn")
    ctx.compare("means", f(feats), axes=("t", "d"), name="cmvn(norm_vars=False)")
    ctx.compare("vars", f(feats, norm_vars=True), axes=("t", "d"), name="cmvn(norm_vars=True)")


def _cmvn_props(ctx):
    feats = (ctx.rng.standard_normal((20, 6)) * 3 + 5).astype(np.float32)
    out = ctx.fn("features.cmvn.cmvn")(feats, norm_vars=True)
    ctx.expect(np.asarray(out).dtype == np.float32, "cmvn must return the input's dtype (float32 here)")
    o = np.asarray(out, dtype=np.float64)
    ctx.expect(np.allclose(o.mean(0), 0, atol=1e-5) and np.allclose(o.std(0), 1, atol=1e-4),
               "cmvn(norm_vars=True) output must have zero mean and unit (population) variance per dimension")
    const = np.ones((5, 2))
    out = np.asarray(ctx.fn("features.cmvn.cmvn")(const, norm_vars=True))
    ctx.expect(np.all(np.isfinite(out)), "a constant dimension must stay finite (variance floor)", hint="nan")


ITEMS = [
    Item("windows", 2, ("features:window-hann", "features:window-hamming", "features:window-povey",
                        "features:window-blackman", "features:window-rect"), [
        Term("every window, periodic and symmetric", _windows_values),
        Term("against scipy.signal.get_window", _windows_scipy),
        Term("fbank with your windows (povey, hamming) against kaldi-native-fbank",
             lambda ctx: [_vs_kaldi(ctx, ["features.windows._window_cached"], "window", window_type=w)
                          for w in ("povey", "hamming")], public=False),
    ]),
    Item("framing", 2, ("features:frames-snip",), [
        Term("num_frames and frames, snip_edges True and False", _frames_values),
        Term("fbank with your framing (snip_edges=False) against kaldi-native-fbank",
             lambda ctx: _vs_kaldi(ctx, ["features.windows.kaldi_frame_source",
                                         "features.windows.num_frames_kaldi"], "framing", snip_edges=False)),
        Term("signals shorter than a frame, mirrored edges", _frames_short, public=False),
    ]),
    Item("frame-prep", 2, ("features:dc", "features:preemph"), [
        Term("DC removal, pre-emphasis, window", _prep_values),
        Term("fbank with your frame preparation against kaldi-native-fbank",
             lambda ctx: _vs_kaldi(ctx, ["features.kaldi._frame_prep_numpy"], "frame preparation")),
        Term("no DC removal, pre-emphasis 0.5", lambda ctx: _prep_values(ctx, 0.5, False), public=False),
    ]),
    Item("kaldi-mel", 2, ("features:tri-mel",), [
        Term("kaldi_mel_banks for three band/bin settings", _kaldi_mel),
        Term("fbank with your mel banks against kaldi-native-fbank",
             lambda ctx: _vs_kaldi(ctx, ["features.mel._kaldi_mel_banks_cached"], "mel banks")),
    ]),
    Item("librosa-mel", 2, ("features:tri-hz", "features:slaney-norm"), [
        Term("mel_filterbank, Slaney scale and norm", _librosa_mel),
        Term("against librosa.filters.mel", _librosa_mel_peer),
        Term("HTK scale, no norm", lambda ctx: _librosa_mel(ctx, norm=None, htk=True), public=False),
    ]),
    Item("dct-lifter", 2, ("features:dct", "features:lifter"), [
        Term("dct_matrix and lifter_coefficients", lambda ctx: (_dct_values(ctx), _lifter_values(ctx))),
        Term("orthonormal, equal to scipy's DCT-II", _dct_ortho),
        Term("mfcc with your DCT and lifter against kaldi-native-fbank",
             lambda ctx: _vs_kaldi(ctx, ["features.kaldi.dct_matrix", "features.kaldi.lifter_coefficients"],
                                   "DCT and lifter", kind="mfcc"), public=False),
    ]),
    Item("deltas", 2, ("features:deltas",), [
        Term("order 2, window 2", _deltas_values),
        Term("a ramp and a constant (edges replicate the end frames)", _deltas_invariants),
        Term("order 3, window 1, 3 frames", lambda ctx: _deltas_values(ctx, 3, 1, 3), public=False),
    ]),
    Item("cmvn", 1, ("features:cmvn",), [
        Term("means, and means and variances", _cmvn_values),
        Term("float32 in and out, unit variance, constant dimension", _cmvn_props, public=False),
    ]),
]

ASSIGNMENT = Assignment(
    id="A1", slug="a1_features",
    title="Features: framing, windows, pre-emphasis, mel filters, DCT and lifter, deltas, CMVN",
    files=("features/windows.py", "features/kaldi.py", "features/mel.py", "features/deltas.py",
           "features/cmvn.py"),
    items=ITEMS, handout="a1_features.md", docs=("walkthroughs/features.md",),
    kernels={"kernels/fbank.py": {"kaldi_frame_prep_kernel": "features.kaldi._frame_prep_numpy"}},
    force_numpy=True,
    extras=("experiments/timit/ctc_blstm/config.py",),
    training="scratchasr train experiments/timit/ctc_blstm/config.py --data_dir=DATA --exp_dir=exp/a1 "
             "--hidden=96 --num_layers=1 --epochs=6 --dropout=0.0",
)
