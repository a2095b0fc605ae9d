"""Mel scales, triangular filterbanks and librosa's ``melspectrogram``.

Two mel scales (docs/equations/features.md):
- HTK: ``m = 2595 log10(1 + f / 700)``; Kaldi: ``1127 ln(1 + f / 700)`` (equal up to 1e-5 relative).
- Slaney (librosa's default, from the Auditory Toolbox): linear ``f / (200/3)`` below 1 kHz,
  logarithmic above with a step of ``ln(6.4) / 27`` per mel.

Two filterbanks:
- librosa (:func:`mel_filterbank`): ``n_mels + 2`` edge frequencies equally spaced *in mel*, the
  triangles are linear *in Hz* between their edges, and ``norm="slaney"`` divides each triangle by
  half its width in Hz so every filter has the same area.
- Kaldi (:func:`kaldi_mel_banks`): the same edges, but the triangles are linear *in mel*, peak 1,
  unnormalised, evaluated at the FFT bin centres (the Nyquist bin is never used).

References: librosa 0.11 ``filters.mel``; M. Slaney, "Auditory Toolbox" v2, Interval Research
TR 1998-010; Kaldi ``src/feat/mel-computations.cc``; S. Young et al., The HTK Book.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Optional

import numpy as np

from .._validate import positive_int
from .stft import _check_signal, stft

# Slaney scale constants.
_F_SP = 200.0 / 3             # Hz per mel in the linear part
_MIN_LOG_HZ = 1000.0          # where the log part begins
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f, *, htk: bool = False):
    """Frequency (Hz) to mel; HTK/Kaldi or Slaney scale. Works on scalars and arrays (float64)."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)                    # [features:mel-htk]
    mels = f / _F_SP                                                   # [features:mel-slaney]
    log_part = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(f >= _MIN_LOG_HZ, log_part, mels)


def mel_to_hz(m, *, htk: bool = False):
    """Mel to frequency (Hz), the inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)                  # [features:mel-htk-inv]
    freqs = _F_SP * m                                                  # [features:mel-slaney-inv]
    log_part = _MIN_LOG_HZ * np.exp(_LOGSTEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, log_part, freqs)


def kaldi_mel_scale(f):
    """Kaldi's ``MelScale``: ``1127 ln(1 + f/700)`` (natural log; equal to the HTK formula)."""
    return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)  # [features:mel-htk]


def _check_band(sr, fmin, fmax):
    if not np.isfinite(sr) or sr <= 0:
        raise ValueError(f"sr: expected a positive sample rate, got {sr}")
    nyquist = sr / 2.0
    fmax = nyquist if fmax is None else float(fmax)
    if not (0.0 <= fmin < fmax):
        raise ValueError(f"fmin/fmax: expected 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    if fmax > nyquist:
        raise ValueError(f"fmax: {fmax} Hz is above the Nyquist frequency {nyquist} Hz of sr={sr}; "
                         "is the sample rate the one the signal was recorded at?")
    return float(fmin), fmax


@lru_cache(maxsize=32)
def _mel_filterbank_cached(sr, n_fft, n_mels, fmin, fmax, htk, norm, dtype):
    # BEGIN ASSIGNMENT A1 points=2
    fftfreqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)                     # (K,) bin centre frequencies
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_f)                                             # (n_mels + 1,) widths in Hz
    ramps = mel_f[:, None] - fftfreqs[None, :]                         # (n_mels + 2, K)
    lower = -ramps[:-2] / fdiff[:-1, None]                             # rising edge, linear in Hz
    upper = ramps[2:] / fdiff[1:, None]                                # falling edge
    weights = np.maximum(0.0, np.minimum(lower, upper)).astype(dtype)  # [features:tri-hz]
    # END ASSIGNMENT
    if norm == "slaney":
        # BEGIN ASSIGNMENT A1
        weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]           # [features:slaney-norm]
        # END ASSIGNMENT
    elif norm is not None:
        length = np.sum(np.abs(weights.astype(np.float64)) ** norm, axis=1) ** (1.0 / norm) \
            if np.isfinite(norm) else np.max(np.abs(weights), axis=1)
        length = np.where(length < np.finfo(dtype).tiny, 1.0, length)
        weights = (weights / length[:, None]).astype(dtype)
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn("mel_filterbank: empty filters detected (n_mels too high for n_fft?)", stacklevel=3)
    weights.setflags(write=False)
    return weights


def mel_filterbank(*, sr: float, n_fft: int, n_mels: int = 128, fmin: float = 0.0,
                   fmax: Optional[float] = None, htk: bool = False, norm="slaney",
                   dtype=np.float32) -> np.ndarray:
    """librosa 0.11's ``filters.mel``: ``(n_mels, 1 + n_fft // 2)`` triangular filters.

    Args:
        sr: sample rate (Hz). n_fft: DFT size. n_mels: number of filters.
        fmin, fmax: band edges in Hz; ``fmax=None`` is ``sr / 2``. ``fmax > sr / 2`` is refused.
        htk: HTK mel scale instead of Slaney's (only the placement of the edges changes).
        norm: ``"slaney"`` (area normalisation), ``None``, or a number ``p`` (divide each filter
            by its p-norm, as ``librosa.util.normalize``).
        dtype: librosa stores the filters in float32; the returned array is read-only and cached.
    """
    n_fft = positive_int("n_fft", n_fft)
    n_mels = positive_int("n_mels", n_mels)
    fmin, fmax = _check_band(float(sr), float(fmin), fmax)
    if not (norm is None or norm == "slaney" or (isinstance(norm, (int, float)) and norm > 0)):
        raise ValueError(f"norm: expected 'slaney', None or a positive number, got {norm!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    return _mel_filterbank_cached(float(sr), n_fft, n_mels, fmin, fmax, bool(htk), norm, dtype.type)


@lru_cache(maxsize=32)
def _kaldi_mel_banks_cached(num_bins, padded_len, sample_frequency, low_freq, high_freq):
    # BEGIN ASSIGNMENT A1 points=2
    K = padded_len // 2 + 1
    fft_bin_width = sample_frequency / padded_len
    mel_low, mel_high = kaldi_mel_scale(low_freq), kaldi_mel_scale(high_freq)
    delta = (mel_high - mel_low) / (num_bins + 1)                      # equal steps in mel
    edges = mel_low + delta * np.arange(num_bins + 2)                  # (num_bins + 2,)
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = kaldi_mel_scale(fft_bin_width * np.arange(K))[None, :]       # (1, K); Kaldi uses bins 0..K-2
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    w = np.where(mel <= center, up, down)                              # [features:tri-mel]
    w = np.where((mel > left) & (mel < right), w, 0.0)
    w[:, K - 1] = 0.0                                                  # Kaldi never uses the Nyquist bin
    # END ASSIGNMENT
    w.setflags(write=False)
    return w


def kaldi_inverse_mel_scale(m):
    """Kaldi's ``InverseMelScale``: ``700 (exp(m / 1127) - 1)``."""
    return 700.0 * np.expm1(np.asarray(m, dtype=np.float64) / 1127.0)


def vtln_warp_freq(freq, *, warp: float, low_freq: float, high_freq: float, vtln_low: float,
                   vtln_high: float):
    """Kaldi's ``VtlnWarpFreq``: the piecewise-linear frequency warp of vocal tract length normalisation.

    Inside ``[l, h]`` with ``l = vtln_low max(1, warp)``, ``h = vtln_high min(1, warp)`` a frequency is
    divided by ``warp``; below ``l`` and above ``h`` straight lines join that segment to the fixed band
    edges ``low_freq`` and ``high_freq``; outside the band frequencies are unchanged. ``vtln_high`` is in Hz
    here (already resolved from a negative offset). Works on arrays."""
    f = np.asarray(freq, dtype=np.float64)
    lo, hi = vtln_low * max(1.0, warp), vtln_high * min(1.0, warp)
    scale = 1.0 / warp
    scale_left = (scale * lo - low_freq) / (lo - low_freq)
    scale_right = (high_freq - scale * hi) / (high_freq - hi)
    out = np.where(f < lo, low_freq + scale_left * (f - low_freq),                   # [features:vtln]
                   np.where(f < hi, scale * f, high_freq + scale_right * (f - high_freq)))
    return np.where((f < low_freq) | (f > high_freq), f, out)


@lru_cache(maxsize=64)
def _kaldi_mel_banks_warped(num_bins, padded_len, sample_frequency, low_freq, high_freq, warp, vtln_low,
                            vtln_high):
    """``_kaldi_mel_banks_cached`` with every filter's left, centre and right edge moved by the VTLN warp
    (Kaldi's ``MelBanks`` with ``vtln_warp_factor != 1``: the edges are warped in Hz, the FFT bins are
    not)."""
    K = padded_len // 2 + 1
    mel_low, mel_high = kaldi_mel_scale(low_freq), kaldi_mel_scale(high_freq)
    edges = mel_low + (mel_high - mel_low) / (num_bins + 1) * np.arange(num_bins + 2)
    edges = kaldi_mel_scale(vtln_warp_freq(kaldi_inverse_mel_scale(edges), warp=warp, low_freq=low_freq,
                                           high_freq=high_freq, vtln_low=vtln_low, vtln_high=vtln_high))
    left, center, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    mel = kaldi_mel_scale(sample_frequency / padded_len * np.arange(K))[None, :]
    w = np.where(mel <= center, (mel - left) / (center - left), (right - mel) / (right - center))
    w = np.where((mel > left) & (mel < right), w, 0.0)                 # [features:tri-mel]
    w[:, K - 1] = 0.0
    w.setflags(write=False)
    return w


def kaldi_mel_banks(*, num_bins: int, padded_window_size: int, sample_frequency: float,
                    low_freq: float = 20.0, high_freq: float = 0.0, vtln_warp: float = 1.0,
                    vtln_low: float = 100.0, vtln_high: float = -500.0) -> np.ndarray:
    """Kaldi's ``MelBanks`` as a dense float64 matrix ``(num_bins, padded_window_size // 2 + 1)``.

    ``high_freq <= 0`` means ``nyquist + high_freq`` (an offset below Nyquist), as in Kaldi.
    As Kaldi, refuses a band and bin count that leave some filter without any FFT bin.
    ``vtln_warp != 1`` warps the filters' edges with :func:`vtln_warp_freq` (Kaldi's ``--vtln-warp``,
    ``--vtln-low``, ``--vtln-high``; ``vtln_high <= 0`` is an offset below Nyquist): > 1 moves the
    filters down in frequency, so a spectrum's features look as if its formants were ``warp`` times
    higher, as for a shorter vocal tract. Jaitly and Hinton's VTLP draws it per utterance in training.
    """
    num_bins = positive_int("num_mel_bins", num_bins, minimum=3)
    padded_window_size = positive_int("padded_window_size", padded_window_size)
    nyquist = 0.5 * sample_frequency
    hf = high_freq if high_freq > 0.0 else nyquist + high_freq
    if not (0.0 <= low_freq < nyquist):
        raise ValueError(f"low_freq: expected 0 <= low_freq < Nyquist ({nyquist} Hz), got {low_freq}")
    if not (0.0 < hf <= nyquist) or hf <= low_freq:
        raise ValueError(f"high_freq: resolves to {hf} Hz, expected low_freq ({low_freq}) < high_freq <= "
                         f"Nyquist ({nyquist} Hz) for sample_frequency={sample_frequency}")
    if not (isinstance(vtln_warp, (int, float, np.integer, np.floating)) and not isinstance(vtln_warp, bool)
            and np.isfinite(vtln_warp) and 0.5 <= vtln_warp <= 2.0):
        raise ValueError(f"vtln_warp: expected a number in [0.5, 2], got {vtln_warp!r}")
    if vtln_warp == 1.0:
        w = _kaldi_mel_banks_cached(num_bins, padded_window_size, float(sample_frequency),
                                    float(low_freq), float(hf))
    else:
        vh = vtln_high if vtln_high > 0.0 else nyquist + vtln_high
        if not (low_freq < vtln_low < vh < hf):
            # Kaldi: "Bad values in options: vtln-low ... and vtln-high ..., versus low-freq ... high-freq"
            raise ValueError(f"vtln_low: expected low_freq ({low_freq}) < vtln_low ({vtln_low}) < vtln_high "
                             f"({vh} Hz) < high_freq ({hf} Hz)")
        w = _kaldi_mel_banks_warped(num_bins, padded_window_size, float(sample_frequency), float(low_freq),
                                    float(hf), float(vtln_warp), float(vtln_low), float(vh))
    empty = np.flatnonzero(~(w > 0).any(axis=1))
    if empty.size:
        # Kaldi's MelBanks refuses this too ("You may have set --num-mel-bins too large"): an empty
        # filter is a constant log(FLT_EPS) column, a feature that carries nothing
        raise ValueError(f"num_mel_bins: {num_bins} filters between {low_freq} and {hf} Hz leave "
                         f"{empty.size} filter(s) without any FFT bin (first: filter {empty[0]}) at a "
                         f"{padded_window_size}-point DFT and {sample_frequency} Hz; use fewer mel bins, "
                         "a wider band or a longer frame")
    return w


def melspectrogram(*, y: np.ndarray, sr: float = 22050, n_fft: int = 2048, hop_length: int = 512,
                   win_length: Optional[int] = None, window="hann", center: bool = True,
                   pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128, fmin: float = 0.0,
                   fmax: Optional[float] = None, htk: bool = False, norm="slaney") -> np.ndarray:
    """librosa 0.11's ``feature.melspectrogram``: ``mel_filterbank @ |stft(y)| ** power``.

    Returns ``(n_mels, n_frames)`` in the signal's dtype (float32 or float64). No log: use
    :func:`power_to_db` for librosa's dB scale.
    """
    y = _check_signal("y", y)
    if not (isinstance(power, (int, float)) and power > 0):
        raise ValueError(f"power: expected a positive number, got {power!r}")
    M = mel_filterbank(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    X = stft(y, n_fft=n_fft, hop_length=hop_length, win_length=win_length, window=window,
             center=center, pad_mode=pad_mode)                         # (K, T) complex
    if power == 2.0:
        S = X.real ** 2 + X.imag ** 2                                  # [features:power]
    else:
        S = np.abs(X) ** power
    return (M.astype(S.dtype) @ S).astype(y.dtype, copy=False)        # (n_mels, T)


def power_to_db(S: np.ndarray, *, ref: float = 1.0, amin: float = 1e-10,
                top_db: Optional[float] = 80.0) -> np.ndarray:
    """librosa's ``power_to_db``: ``10 log10(max(S, amin)) - 10 log10(ref)``, clipped to ``max - top_db``."""
    if amin <= 0:
        raise ValueError(f"amin: expected > 0, got {amin}")
    log_spec = 10.0 * np.log10(np.maximum(amin, S))                   # [features:log-floor]
    log_spec -= 10.0 * np.log10(np.maximum(amin, ref))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db: expected >= 0, got {top_db}")
        log_spec = np.maximum(log_spec, log_spec.max() - top_db)
    return log_spec
