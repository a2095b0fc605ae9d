"""Kaldi's ``compute-fbank-feats`` and ``compute-mfcc-feats``, vectorised over frames.

Per frame, in Kaldi's order (``FeatureWindowFunction``/``ProcessWindow`` in
``src/feat/feature-window.cc``; docs/equations/features.md):

1. dither: add ``dither * N(0, 1)`` noise (only when ``dither != 0``; needs an explicit ``rng``);
2. remove the DC offset: subtract the frame's mean;
3. raw log-energy ``ln(max(sum x^2, FLT_EPS))`` (when ``use_energy`` and ``raw_energy``);
4. pre-emphasis ``x[n] - k x[n-1]`` inside the frame, and ``x[0] - k x[0]`` for the first sample;
5. window (povey by default), zero-pad to a power of two, real DFT, power spectrum;
6. Kaldi's mel triangles, then ``ln(max(., FLT_EPS))``;
7. MFCC only: orthonormal DCT-II, keep ``num_ceps``, multiply by the lifter; ``c0`` replaced by the
   log-energy when ``use_energy``.

The fast path: a strided view of the frames (no copy), then for each block of ``BLOCK`` frames
vectorised per-frame arithmetic on a ``(BLOCK, frame_length)`` array, one batched ``rfft`` and one
matmul with the mel matrix (blocks keep every temporary small; see ``BLOCK``). The DC removal of
step 2 is applied after pre-emphasis, as the equivalent subtraction of ``(1 - k) * mean``.

References: Kaldi ``src/feat/feature-{window,fbank,mfcc}.cc``, ``mel-computations.cc``; S. Davis and
P. Mermelstein, IEEE TASSP 28(4), 1980 (MFCC); B.-H. Juang et al., IEEE TASSP 35(7), 1987 (lifter).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple, Optional

import numpy as np
import scipy.fft

from .._validate import choice, positive_int
from .mel import kaldi_mel_banks
from .stft import _check_signal
from .windows import frames_kaldi, get_window, num_frames_kaldi

FLT_EPS = float(np.finfo(np.float32).eps)     # 1.1920929e-07, Kaldi's log floor
KALDI_WINDOWS = ("hamming", "hanning", "hann", "povey", "rectangular", "blackman")


class FrameOptions(NamedTuple):
    """Framing options resolved to samples (Kaldi's ``FrameExtractionOptions``)."""

    frame_length: int      # samples per frame, int(sample_frequency * 0.001 * frame_length_ms)
    frame_shift: int       # samples between frame starts
    padded_length: int     # DFT size: frame_length rounded up to a power of two (or not)


def frame_options(sample_frequency: float, frame_length: float, frame_shift: float,
                  round_to_power_of_two: bool) -> FrameOptions:
    if not (np.isfinite(sample_frequency) and sample_frequency > 0):
        raise ValueError(f"sample_frequency: expected a positive number, got {sample_frequency}")
    # Same expression order as Kaldi's WindowSize()/WindowShift() so the truncation agrees.
    L = int(sample_frequency * 0.001 * frame_length)
    S = int(sample_frequency * 0.001 * frame_shift)
    if L < 2:
        raise ValueError(f"frame_length: {frame_length} ms gives {L} samples at {sample_frequency} Hz; "
                         "need >= 2")
    if S < 1:
        raise ValueError(f"frame_shift: {frame_shift} ms gives {S} samples at {sample_frequency} Hz; "
                         "need >= 1")
    P = 1 << (L - 1).bit_length() if round_to_power_of_two else L
    return FrameOptions(L, S, P)


@lru_cache(maxsize=32)
def _kaldi_window(window_type: str, L: int) -> np.ndarray:
    name = "hann" if window_type == "hanning" else window_type
    return get_window(name, L, periodic=False)     # Kaldi's windows are symmetric (N - 1)


def dct_matrix(num_ceps: int, num_bins: int) -> np.ndarray:
    """First ``num_ceps`` rows of the orthonormal DCT-II of size ``num_bins``: ``(num_ceps, num_bins)``.

    ``D[0, n] = sqrt(1/N)``, ``D[k, n] = sqrt(2/N) cos(pi k (n + 1/2) / N)`` (Kaldi's ``ComputeDctMatrix``).
    """
    N = num_bins
    k = np.arange(num_ceps)[:, None]
    n = np.arange(N)[None, :]
    D = np.sqrt(2.0 / N) * np.cos(np.pi / N * (n + 0.5) * k)           # [features:dct]
    D[0, :] = np.sqrt(1.0 / N)
    return D


def lifter_coefficients(num_ceps: int, cepstral_lifter: float) -> np.ndarray:
    """Kaldi's ``ComputeLifterCoeffs``: ``1 + (Q/2) sin(pi i / Q)``, ``i = 0..num_ceps-1``."""
    i = np.arange(num_ceps)
    return 1.0 + 0.5 * cepstral_lifter * np.sin(np.pi * i / cepstral_lifter)   # [features:lifter]


# Frames are processed in blocks of this many: every temporary of a block (at most
# BLOCK x 512 complex64 = 96 KiB) stays below glibc's 128 KiB mmap threshold and in the L2 cache.
# Whole-utterance temporaries were fresh mmaps, and their page faults cost more than the
# arithmetic (0.6 of 1.2 ms for a 3 s utterance; experiments/bench/features.md).
BLOCK = 48


def _check_options(waveform, *, sample_frequency, frame_length, frame_shift, dither, preemphasis_coefficient,
                   window_type, round_to_power_of_two, snip_edges, rng):
    """Validate the framing options shared by fbank and mfcc; returns (x, opts, window_type, n_frames)."""
    x = _check_signal("waveform", waveform)
    window_type = "hann" if window_type == "hanning" else window_type
    choice("window_type", window_type, KALDI_WINDOWS)
    opts = frame_options(float(sample_frequency), frame_length, frame_shift, round_to_power_of_two)
    if not (0.0 <= preemphasis_coefficient <= 1.0):
        raise ValueError("preemphasis_coefficient: expected a value in [0, 1], "
                         f"got {preemphasis_coefficient}")
    if dither < 0:
        raise ValueError(f"dither: expected >= 0, got {dither}")
    if dither != 0.0 and not isinstance(rng, np.random.Generator):
        raise ValueError("rng: dither != 0 needs an explicit np.random.Generator "
                         "(rng=np.random.default_rng(seed))")
    T = num_frames_kaldi(x.size, opts.frame_length, opts.frame_shift, snip_edges)
    if T == 0 and not snip_edges:
        raise ValueError(f"waveform: {x.size} samples give no frame with frame_shift={opts.frame_shift}")
    return x, opts, window_type, T


def _log_energy(frames: np.ndarray) -> np.ndarray:
    energy = np.einsum("tl,tl->t", frames, frames, dtype=np.float64)  # sum_n x_t[n]^2
    return np.log(np.maximum(energy, FLT_EPS))                         # [features:energy]


def _power_spectrum(frames: np.ndarray, buf: np.ndarray, *, preemphasis_coefficient: float,
                    remove_dc_offset: bool, window: np.ndarray, want_energy: bool, raw_energy: bool):
    """Steps 2-5 for a block of frames ``(n, L)`` (a read-only view is fine: it is never written).

    Returns ``(power (n, P//2 + 1), log_energy (n,) or None)`` in the frames' dtype.
    """
    dtype = frames.dtype
    n, L = frames.shape
    if want_energy and raw_energy:
        centred = frames - frames.mean(axis=1, keepdims=True) if remove_dc_offset else frames
        log_energy = _log_energy(centred)
    else:
        log_energy = None
    # Pre-emphasis and window are written straight into the DFT buffer (n, P), whose columns
    # L..P-1 the caller has zeroed once (zero-padding to P); only columns 0..L-1 are written here.
    buf = buf[:n]
    k = dtype.type(preemphasis_coefficient)
    if k != 0.0:
        np.multiply(frames[:, :-1], -k, out=buf[:, 1:L])
        buf[:, 1:L] += frames[:, 1:]                                   # x[n] - k x[n-1] [features:preemph]
        np.multiply(frames[:, 0], 1 - k, out=buf[:, 0])               # Kaldi: x[0] -= k x[0]
    else:
        buf[:, :L] = frames
    if remove_dc_offset:
        # Removing the mean m before pre-emphasis equals removing (1 - k) m after it, for every
        # sample (n >= 1: (x_n - m) - k (x_{n-1} - m); n = 0: (1 - k)(x_0 - m)): one pass fewer.
        buf[:, :L] -= (1 - k) * frames.mean(axis=1, keepdims=True)    # [features:dc]
    buf[:, :L] *= window                                               # [features:window-povey]
    if want_energy and not raw_energy:
        log_energy = _log_energy(buf[:, :L])
    # scipy.fft is the same pocketfft as numpy.fft but keeps float32 in float32 (numpy 2.4's float32
    # rfft measured 5-7x slower). No overwrite_x: the buffer's zero padding is reused by the next block.
    X = scipy.fft.rfft(buf, axis=1)                                    # (n, K) [features:dft]
    Xv = X.view(dtype).reshape(n, -1, 2)                               # (n, K, 2): real, imaginary
    np.square(Xv, out=Xv)                                              # X is ours: square in place
    return Xv[:, :, 0] + Xv[:, :, 1], log_energy                       # |X|^2 [features:power]


def _kaldi_pipeline(x, opts, T, *, window_type, dither, rng, snip_edges, preemphasis_coefficient,
                    remove_dc_offset, want_energy, raw_energy, project, out_dim):
    """Frame ``x`` (Kaldi), and for each block of frames compute the power spectrum and
    ``project(power, log_energy) -> (n, out_dim)``; returns ``(T, out_dim)`` float32."""
    dtype = x.dtype
    frames = frames_kaldi(x, opts.frame_length, opts.frame_shift, snip_edges)   # (T, L) read-only view
    if dither != 0.0:
        frames = frames + (dither * rng.standard_normal(frames.shape)).astype(dtype)  # [features:dither]
    window = _kaldi_window(window_type, opts.frame_length).astype(dtype)
    out = np.empty((T, out_dim), dtype=np.float32)
    buf = np.zeros((min(T, BLOCK), opts.padded_length), dtype=dtype)  # DFT input, zero-padded to P
    for s in range(0, T, BLOCK):
        power, log_energy = _power_spectrum(
            frames[s:s + BLOCK], buf, preemphasis_coefficient=preemphasis_coefficient,
            remove_dc_offset=remove_dc_offset, window=window, want_energy=want_energy, raw_energy=raw_energy)
        out[s:s + BLOCK] = project(power, log_energy)
    return out


def fbank(waveform: np.ndarray, *, sample_frequency: float = 16000.0, frame_length: float = 25.0,
          frame_shift: float = 10.0, dither: float = 0.0, preemphasis_coefficient: float = 0.97,
          remove_dc_offset: bool = True, window_type: str = "povey", round_to_power_of_two: bool = True,
          snip_edges: bool = True, num_mel_bins: int = 23, low_freq: float = 20.0, high_freq: float = 0.0,
          use_energy: bool = False, energy_floor: float = 0.0, raw_energy: bool = True,
          use_log_fbank: bool = True, use_power: bool = True,
          rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Kaldi ``compute-fbank-feats``: log mel filterbank energies ``(n_frames, num_mel_bins)`` float32.

    Args:
        waveform: ``(N,)`` float32/float64 samples, any scale (Kaldi's convention is int16 scale;
            a signal in [-1, 1] gives the same features shifted by ``ln(32768^2)`` per bin).
            The arithmetic runs in this dtype. float32 is the fast path and, like Kaldi (itself
            float32), its FFT rounding reaches ~1e-3 in the log of bins 1e7 below a frame's loudest;
            float64 costs ~1.5x the time and agrees with Kaldi to ~5e-4 (Kaldi's own rounding).
        frame_length, frame_shift: milliseconds. snip_edges: only whole frames (True) or frames
            centred on ``i * shift + shift/2`` with mirrored edges (False).
        dither: Gaussian noise std added per frame (int16 scale); needs ``rng`` when non-zero.
        high_freq: ``<= 0`` means an offset below Nyquist (Kaldi).
        use_energy: prepend the log-energy column (raw: before pre-emphasis/window).
        energy_floor: floor on the energy (not its log); 0 means none.
        use_log_fbank / use_power: natural log of the mel energies; power (|X|^2) or magnitude.

    Returns:
        ``(n_frames, num_mel_bins + use_energy)`` float32; ``(0, ...)`` if the signal is shorter than
        one frame with ``snip_edges=True``.
    """
    num_mel_bins = positive_int("num_mel_bins", num_mel_bins, minimum=3)
    if energy_floor < 0:
        raise ValueError(f"energy_floor: expected >= 0, got {energy_floor}")
    x, opts, window_type, T = _check_options(
        waveform, sample_frequency=sample_frequency, frame_length=frame_length, frame_shift=frame_shift,
        dither=dither, preemphasis_coefficient=preemphasis_coefficient, window_type=window_type,
        round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges, rng=rng)
    M = kaldi_mel_banks(num_bins=num_mel_bins, padded_window_size=opts.padded_length,
                        sample_frequency=float(sample_frequency), low_freq=low_freq, high_freq=high_freq)
    MT = np.ascontiguousarray(M.T, dtype=x.dtype)                      # (K, num_mel_bins)
    log_floor = np.log(energy_floor) if energy_floor > 0.0 else -np.inf

    def project(power, log_energy):
        spec = power if use_power else np.sqrt(power)
        mel = spec @ MT                                                # (n, num_mel_bins)
        if use_log_fbank:
            mel = np.log(np.maximum(mel, FLT_EPS, out=mel), out=mel)   # [features:log-floor]
        if use_energy:
            mel = np.concatenate([np.maximum(log_energy, log_floor)[:, None].astype(mel.dtype), mel], axis=1)
        return mel

    return _kaldi_pipeline(x, opts, T, window_type=window_type, dither=dither, rng=rng, snip_edges=snip_edges,
                           preemphasis_coefficient=preemphasis_coefficient, remove_dc_offset=remove_dc_offset,
                           want_energy=use_energy, raw_energy=raw_energy, project=project,
                           out_dim=num_mel_bins + int(use_energy))


def mfcc(waveform: np.ndarray, *, num_ceps: int = 13, cepstral_lifter: float = 22.0, use_energy: bool = True,
         num_mel_bins: int = 23, sample_frequency: float = 16000.0, frame_length: float = 25.0,
         frame_shift: float = 10.0, dither: float = 0.0, preemphasis_coefficient: float = 0.97,
         remove_dc_offset: bool = True, window_type: str = "povey", round_to_power_of_two: bool = True,
         snip_edges: bool = True, low_freq: float = 20.0, high_freq: float = 0.0, energy_floor: float = 0.0,
         raw_energy: bool = True, rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Kaldi ``compute-mfcc-feats``: ``(n_frames, num_ceps)`` float32.

    log mel energies (as :func:`fbank`) -> orthonormal DCT-II -> first ``num_ceps`` -> lifter
    ``1 + Q/2 sin(pi i / Q)`` (``cepstral_lifter = Q``, 0 disables it) -> with ``use_energy``, ``c0``
    is replaced by the log-energy. Framing options as :func:`fbank`.
    """
    num_mel_bins = positive_int("num_mel_bins", num_mel_bins, minimum=3)
    num_ceps = positive_int("num_ceps", num_ceps)
    if num_ceps > num_mel_bins:
        raise ValueError(f"num_ceps: expected <= num_mel_bins={num_mel_bins}, got {num_ceps}")
    if cepstral_lifter < 0:
        raise ValueError(f"cepstral_lifter: expected >= 0, got {cepstral_lifter}")
    if energy_floor < 0:
        raise ValueError(f"energy_floor: expected >= 0, got {energy_floor}")
    x, opts, window_type, T = _check_options(
        waveform, sample_frequency=sample_frequency, frame_length=frame_length, frame_shift=frame_shift,
        dither=dither, preemphasis_coefficient=preemphasis_coefficient, window_type=window_type,
        round_to_power_of_two=round_to_power_of_two, snip_edges=snip_edges, rng=rng)
    M = kaldi_mel_banks(num_bins=num_mel_bins, padded_window_size=opts.padded_length,
                        sample_frequency=float(sample_frequency), low_freq=low_freq, high_freq=high_freq)
    MT = np.ascontiguousarray(M.T, dtype=x.dtype)                      # (K, num_mel_bins)
    D = dct_matrix(num_ceps, num_mel_bins)                             # (C, num_mel_bins)
    if cepstral_lifter != 0.0:
        D = D * lifter_coefficients(num_ceps, cepstral_lifter)[:, None]   # fold the lifter into the DCT
    DT = np.ascontiguousarray(D.T, dtype=x.dtype)                      # (num_mel_bins, C)
    log_floor = np.log(energy_floor) if energy_floor > 0.0 else -np.inf

    def project(power, log_energy):
        mel = power @ MT
        log_mel = np.log(np.maximum(mel, FLT_EPS, out=mel), out=mel)   # [features:log-floor]
        ceps = log_mel @ DT                                            # (n, C) [features:dct]
        if use_energy:
            ceps[:, 0] = np.maximum(log_energy, log_floor)             # c0 <- log-energy
        return ceps

    return _kaldi_pipeline(x, opts, T, window_type=window_type, dither=dither, rng=rng, snip_edges=snip_edges,
                           preemphasis_coefficient=preemphasis_coefficient, remove_dc_offset=remove_dc_offset,
                           want_energy=use_energy, raw_energy=raw_energy, project=project, out_dim=num_ceps)
