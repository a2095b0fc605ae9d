"""Waveform augmentation: noise at a chosen SNR, simulated rooms, telephone band, G.711 mu-law, gain.

Every function takes a 1-D float waveform ``y`` (any scale; float32 or float64) and returns a NEW waveform of
the SAME length and dtype (never written into its arguments), so the feature frames of an augmented
utterance line up with the clean ones. All randomness comes from an explicit ``np.random.Generator``.
The equations are in docs/equations/augment.md; each implementing line cites its tag.

* additive noise at a signal-to-noise ratio (:func:`add_noise`) of white, pink (1/f power,
  :func:`pink_noise`) or babble noise (other utterances summed, :func:`babble_noise`);
* room reverberation: image-source room impulse responses of a shoebox room (:func:`image_source_rir`,
  Allen & Berkley 1979, with Peterson's 1986 windowed-sinc fractional delays), convolved by
  :func:`reverberate`; :func:`sabine_rt60`, :func:`eyring_rt60` and :func:`measure_rt60` (Schroeder's
  1965 backward integration) check the decay;
* telephone channel: 300-3400 Hz windowed-sinc band-pass and a round trip through 8 kHz
  (:func:`telephone`); G.711 mu-law 8-bit codec round trip (:func:`mulaw`, ITU-T G.711 1972, the
  segmented encoder of the CCITT/Sun reference code);
* gain in dB (:func:`apply_gain`);
* vocal tract length perturbation (VTLP, Jaitly & Hinton 2013): not a waveform effect; the training
  augmenter computes the utterance's features with Kaldi's VTLN warp of the mel filters at a random
  factor (:func:`vtlp_warp`, ``features.kaldi.fbank(vtln_warp=...)``).

:class:`AugmentOptions` and :func:`augment_waveform` chain them with a probability each (gain ->
reverb -> noise -> babble -> telephone -> mu-law); each effect draws from its own generator, so whether
one effect applies never changes the draws of another. The trainer uses them through
:class:`TrainingAugmenter` (see ``scratchasr/trainer.py`` and docs/augmentation.md).

References: J. B. Allen and D. A. Berkley, "Image method for efficiently simulating small-room acoustics",
JASA 65(4), 1979. R. L. Peterson, "Digital simulation of room acoustics", 1986 (fractional delays).
M. R. Schroeder, "New method of measuring reverberation time", JASA 37, 1965. W. C. Sabine, "Collected
papers on acoustics", 1922; C. F. Eyring, "Reverberation time in 'dead' rooms", JASA 1, 1930. ITU-T
Recommendation G.711, "Pulse code modulation of voice frequencies", 1972. T. Ko et al., "A study on data
augmentation of reverberant speech for robust speech recognition", ICASSP 2017 (Kaldi's recipe).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

__all__ = ["add_noise", "white_noise", "pink_noise", "babble_noise", "image_source_rir", "reverberate",
           "sabine_rt60", "eyring_rt60", "schroeder_decay", "measure_rt60", "Room", "random_room",
           "bandpass_fir", "telephone", "mulaw_encode", "mulaw_decode", "mulaw", "apply_gain",
           "AugmentOptions", "Applied", "augment_waveform", "vtlp_warp", "TrainingAugmenter",
           "SPEED_OF_SOUND"]

SPEED_OF_SOUND = 343.0          # m/s, dry air at 20 degrees C
SABINE_K = 0.161                # s/m: 24 ln(10) / c


# ----------------------------------------------------------------------------------------- validation


def _wave(name: str, y, *, allow_empty: bool = False) -> np.ndarray:
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of floats, got {type(y).__name__}")
    if y.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {y.dtype}")
    if y.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D waveform, got shape {y.shape}")
    if y.size == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one sample, got an empty waveform")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name}: expected finite samples, found {y[~np.isfinite(y)][0]}")
    return y


def _number(name: str, x, *, low: float = -math.inf, high: float = math.inf, low_open: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {x!r}")
    x = float(x)
    if not math.isfinite(x) or x < low or x > high or (low_open and x == low):
        what = f"{'>' if low_open else '>='} {low}" if high == math.inf else f"in [{low}, {high}]"
        raise ValueError(f"{name}: expected a finite number {what}, got {x!r}")
    return x


def _rate(name: str, sr) -> int:
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr < 1000:
        raise ValueError(f"{name}: expected an integer rate in Hz (>= 1000), got {sr!r}")
    return int(sr)


def _generator(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _power(y: np.ndarray) -> float:
    return float(np.mean(np.square(y, dtype=np.float64)))


# ----------------------------------------------------------------------------------------- noise


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-power white Gaussian noise (float64)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    return _generator(rng).standard_normal(int(n))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-power pink noise: power spectral density proportional to 1/f.

    White Gaussian noise shaped in the frequency domain by ``1/sqrt(f)`` (its power by ``1/f``); the DC bin
    is zeroed. Exact 1/f down to the lowest bin ``1/n`` of the sample rate."""
    w = white_noise(n, rng)
    W = np.fft.rfft(w)                                                  # (n//2 + 1,)
    k = np.arange(W.shape[0], dtype=np.float64)
    shape = np.zeros_like(k)
    shape[1:] = 1.0 / np.sqrt(k[1:])                                    # |P(f)|^2 ~ 1/f  [augment:pink]
    p = np.fft.irfft(W * shape, n=int(n))
    return p / math.sqrt(max(_power(p), 1e-300))


def babble_noise(talkers: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """Babble of ``n`` samples (unit power): each talker's waveform scaled to unit power, repeated
    (wrapped) to ``n`` samples from a random start, and all summed.  [augment:babble]"""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n!r}")
    if not isinstance(talkers, (list, tuple)) or not talkers:
        raise ValueError(f"talkers: expected a non-empty list of waveforms, got {talkers!r:.60}")
    rng = _generator(rng)
    out = np.zeros(int(n), np.float64)
    for j, t in enumerate(talkers):
        t = _wave(f"talkers[{j}]", t).astype(np.float64)
        p = _power(t)
        if p == 0.0:
            raise ValueError(f"talkers[{j}]: is silent (zero power); babble needs speech")
        start = int(rng.integers(0, t.shape[0]))
        out += np.resize(np.roll(t, -start), int(n)) / math.sqrt(p)    # [augment:babble]
    return out / math.sqrt(max(_power(out), 1e-300))


def add_noise(y: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``y + g noise`` with ``g`` chosen so that ``10 log10(P_y / P_gn) = snr_db``, powers being means of
    squares over the whole waveform (silences included). A silent ``y`` is returned unchanged."""
    y = _wave("y", y)
    noise = _wave("noise", noise)
    if noise.shape != y.shape:
        raise ValueError(f"noise: expected the shape of y {y.shape}, got {noise.shape}")
    snr_db = _number("snr_db", snr_db, low=-100.0, high=200.0)
    p_y, p_n = _power(y), _power(noise)
    if p_n == 0.0:
        raise ValueError("noise: has zero power; cannot reach an SNR")
    g = math.sqrt(p_y / (p_n * 10.0 ** (snr_db / 10.0)))                # [augment:snr]
    return (y.astype(np.float64) + g * noise.astype(np.float64)).astype(y.dtype)


def apply_gain(y: np.ndarray, gain_db: float) -> np.ndarray:
    """``y`` scaled by ``10^(gain_db / 20)``."""
    y = _wave("y", y)
    gain_db = _number("gain_db", gain_db, low=-120.0, high=120.0)
    return (y.astype(np.float64) * 10.0 ** (gain_db / 20.0)).astype(y.dtype)   # [augment:gain]


# ----------------------------------------------------------------------------------------- rooms


def _room(room, source, mic, absorption):
    L = np.asarray(room, dtype=np.float64)
    if L.shape != (3,) or not np.all(np.isfinite(L)) or np.any(L <= 0):
        raise ValueError(f"room: expected three positive dimensions (m), got {room!r}")
    pts = []
    for name, p in (("source", source), ("mic", mic)):
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (3,) or not np.all(np.isfinite(p)) or np.any(p <= 0) or np.any(p >= L):
            raise ValueError(f"{name}: expected a point strictly inside the room {L.tolist()}, "
                             f"got {p.tolist()}")
        pts.append(p)
    a = _number("absorption", absorption, low=0.0, high=1.0, low_open=True)
    if a == 1.0:
        raise ValueError("absorption: expected a number in (0, 1): 1 is an anechoic room (no reflections)")
    return L, pts[0], pts[1], a


def sabine_rt60(room, absorption: float) -> float:
    """Sabine's reverberation time ``0.161 V / (S a)`` (s) of a shoebox room with walls of absorption a."""
    L, _, _, a = _room(room, np.asarray(room) / 2, np.asarray(room) / 2, absorption)
    V, S = float(np.prod(L)), 2.0 * float(L[0] * L[1] + L[0] * L[2] + L[1] * L[2])
    return SABINE_K * V / (S * a)                                       # [augment:sabine]


def eyring_rt60(room, absorption: float) -> float:
    """Eyring's reverberation time ``0.161 V / (-S ln(1 - a))`` (s); close to Sabine's for small a."""
    L, _, _, a = _room(room, np.asarray(room) / 2, np.asarray(room) / 2, absorption)
    V, S = float(np.prod(L)), 2.0 * float(L[0] * L[1] + L[0] * L[2] + L[1] * L[2])
    return SABINE_K * V / (-S * math.log1p(-a))                         # [augment:eyring]


def image_source_rir(room, source, mic, *, absorption: float, sample_rate: int = 16000,
                     duration: Optional[float] = None, c: float = SPEED_OF_SOUND,
                     half_width: int = 8, highpass: float = 10.0) -> np.ndarray:
    """Room impulse response from ``source`` to ``mic`` in a shoebox ``room`` (Allen & Berkley 1979).

    ``room`` = (Lx, Ly, Lz) in metres with one corner at the origin; ``source``/``mic`` points inside.
    Every wall has the energy absorption coefficient ``absorption`` (the pressure reflection coefficient is
    ``beta = sqrt(1 - absorption)``). Each image source (every reflection path up to the length travelled in
    ``duration`` seconds, default Eyring's RT60) adds ``beta^reflections / (4 pi d)`` at the delay ``d / c``,
    placed between samples by a Hann-windowed sinc of ``2 half_width`` taps (Peterson 1986) instead of
    Allen & Berkley's rounding to the nearest sample, then high-passed at ``highpass`` Hz (0: not) as they
    recommend. Returns ``(ceil(duration * sample_rate),)`` float64;
    the direct path arrives at ``|source - mic| / c`` with amplitude ``1 / (4 pi |source - mic|)``."""
    L, s, m, a = _room(room, source, mic, absorption)
    sr = _rate("sample_rate", sample_rate)
    c = _number("c", c, low=0.0, low_open=True)
    if isinstance(half_width, bool) or not isinstance(half_width, (int, np.integer)) or half_width < 1:
        raise ValueError(f"half_width: expected an integer >= 1, got {half_width!r}")
    highpass = _number("highpass", highpass, low=0.0, high=sr / 2)
    if duration is None:
        duration = eyring_rt60(L, a)
    duration = _number("duration", duration, low=0.0, high=10.0, low_open=True)
    n_out = int(math.ceil(duration * sr))
    beta = math.sqrt(1.0 - a)
    reach = c * duration + float(np.linalg.norm(s - m))                # longest path still inside the window
    axes = []
    for ax in range(3):
        N = int(math.ceil(reach / (2.0 * L[ax]))) + 1
        n = np.arange(-N, N + 1)                                        # image cell index along this axis
        q = np.array([0, 1])                                            # mirrored (1) or not (0)
        nn, qq = np.meshgrid(n, q, indexing="ij")
        coord = (1 - 2 * qq) * s[ax] + 2 * nn * L[ax]                   # [augment:image]
        count = np.abs(nn - qq) + np.abs(nn)                            # walls hit along this axis
        axes.append((coord.ravel() - m[ax], count.ravel()))
    (dx, kx), (dy, ky), (dz, kz) = axes
    taps = np.arange(-half_width + 1, half_width + 1)                   # (2 half_width,)
    h = np.zeros(n_out + 3 * half_width)
    for x0, k0 in zip(dx, kx):                                          # one slab of images at a time
        d = np.sqrt(x0 ** 2 + dy[:, None] ** 2 + dz[None, :] ** 2).ravel()
        k = (k0 + ky[:, None] + kz[None, :]).ravel()
        delay = d / c * sr                                              # samples, fractional
        keep = delay < n_out + half_width
        if not keep.any():
            continue
        d, k, delay = d[keep], k[keep], delay[keep]
        amp = beta ** k / (4.0 * math.pi * d)                           # [augment:image]
        idx = np.floor(delay).astype(np.int64)[:, None] + taps[None, :]  # (images, 2 half_width)
        x = idx - delay[:, None]                                        # distance from the true delay
        kernel = np.sinc(x) * 0.5 * (1.0 + np.cos(np.pi * x / half_width))  # [augment:fracdelay]
        h += np.bincount((idx + half_width).ravel(), weights=(amp[:, None] * kernel).ravel(),
                         minlength=h.shape[0])
    h = h[half_width:half_width + n_out]                                # taps before t = 0 dropped
    if highpass > 0:
        # every image adds a positive pulse: their DC adds up coherently and would dominate the tail's
        # energy; Allen & Berkley high-pass the response (here 2nd-order Butterworth, as pyroomacoustics)
        from scipy.signal import butter, sosfilt
        h = sosfilt(butter(2, highpass, btype="highpass", fs=sr, output="sos"), h)
    return h


def schroeder_decay(h: np.ndarray) -> np.ndarray:
    """Schroeder's energy decay curve in dB: ``10 log10(sum_{k >= t} h[k]^2 / sum_k h[k]^2)``."""
    h = _wave("h", h).astype(np.float64)
    e = np.cumsum(np.square(h)[::-1])[::-1]                             # [augment:schroeder]
    if e[0] == 0.0:
        raise ValueError("h: is all zeros; no decay to measure")
    return 10.0 * np.log10(np.maximum(e / e[0], 1e-300))


def measure_rt60(h: np.ndarray, sample_rate: int, *, from_db: float = -5.0, to_db: float = -25.0) -> float:
    """Reverberation time of an impulse response: the least-squares slope of Schroeder's decay curve
    between ``from_db`` and ``to_db`` (T20 by default), extrapolated to 60 dB."""
    sr = _rate("sample_rate", sample_rate)
    if not (0.0 > from_db > to_db):
        raise ValueError(f"from_db: expected 0 > from_db > to_db, got {from_db} and {to_db}")
    edc = schroeder_decay(h)
    sel = np.nonzero((edc <= from_db) & (edc >= to_db))[0]
    if sel.size < 2 or edc[-1] > to_db:
        raise ValueError(f"h: its decay does not reach {to_db} dB; use a longer response")
    slope = np.polyfit(sel / sr, edc[sel], 1)[0]                        # dB per second (negative)
    return -60.0 / slope


class Room(NamedTuple):
    """A shoebox room with a source and a microphone (metres), and the walls' absorption coefficient."""

    size: Tuple[float, float, float]
    source: Tuple[float, float, float]
    mic: Tuple[float, float, float]
    absorption: float


def random_room(rng: np.random.Generator, *, size_low=(3.0, 3.0, 2.4), size_high=(10.0, 8.0, 4.0),
                absorption=(0.2, 0.8), margin: float = 0.5) -> Room:
    """A room drawn uniformly: each dimension in ``[size_low, size_high]``, the absorption in the range
    given, source and microphone uniformly at least ``margin`` metres from every wall."""
    rng = _generator(rng)
    lo, hi = np.asarray(size_low, np.float64), np.asarray(size_high, np.float64)
    if lo.shape != (3,) or hi.shape != (3,) or np.any(lo <= 2 * margin) or np.any(hi < lo):
        raise ValueError(f"size_low: expected three dimensions > 2 margin and <= size_high, got {size_low!r} "
                         f"and {size_high!r}")
    if not (0.0 < absorption[0] <= absorption[1] < 1.0):
        raise ValueError(f"absorption: expected a range (low, high) inside (0, 1), got {absorption!r}")
    size = rng.uniform(lo, hi)
    src = rng.uniform(margin, size - margin)
    mic = rng.uniform(margin, size - margin)
    a = float(rng.uniform(absorption[0], absorption[1]))
    return Room(tuple(size.tolist()), tuple(src.tolist()), tuple(mic.tolist()), a)


def reverberate(y: np.ndarray, h: np.ndarray, *, sample_rate: int = 16000,
                direct_delay: float = 0.0) -> np.ndarray:
    """``y`` convolved with the room response ``h``, advanced by ``direct_delay`` seconds (pass the
    direct-path delay ``|source - mic| / c`` so that the speech keeps its timing), cut to ``len(y)`` and
    scaled back to the power of ``y`` (the level is :func:`apply_gain`'s business)."""
    y = _wave("y", y)
    h = _wave("h", h)
    sr = _rate("sample_rate", sample_rate)
    direct_delay = _number("direct_delay", direct_delay, low=0.0)
    shift = int(round(direct_delay * sr))
    if shift >= h.shape[0]:
        raise ValueError(f"direct_delay: {direct_delay} s is past the end of h ({h.shape[0]} samples)")
    n = y.shape[0] + h.shape[0] - 1
    nfft = 1 << (n - 1).bit_length()
    r = np.fft.irfft(np.fft.rfft(y, nfft) * np.fft.rfft(h, nfft), nfft)  # [augment:reverb]
    r = r[shift:shift + y.shape[0]]
    p_r = _power(r)
    if p_r > 0.0:
        r = r * math.sqrt(_power(y) / p_r)
    return r.astype(y.dtype)


# ----------------------------------------------------------------------------------------- telephone


def bandpass_fir(low: float, high: float, sample_rate: int, *, taps: int = 401) -> np.ndarray:
    """A linear-phase band-pass FIR filter: the difference of two ideal low-passes, Hamming-windowed."""
    sr = _rate("sample_rate", sample_rate)
    if isinstance(taps, bool) or not isinstance(taps, (int, np.integer)) or taps < 3 or taps % 2 == 0:
        raise ValueError(f"taps: expected an odd integer >= 3, got {taps!r}")
    low = _number("low", low, low=0.0)
    high = _number("high", high, low=0.0, high=sr / 2)
    if not low < high:
        raise ValueError(f"low: expected low < high, got {low} and {high}")
    f1, f2 = low / sr, high / sr                                        # cycles per sample
    t = np.arange(taps) - (taps - 1) / 2
    w = 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(taps) / (taps - 1))   # Hamming
    return w * (2 * f2 * np.sinc(2 * f2 * t) - 2 * f1 * np.sinc(2 * f1 * t))  # [augment:bandpass]


def _resample(y: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return y
    from scipy.signal import resample_poly
    r = Fraction(int(target), int(sr))
    return resample_poly(y, r.numerator, r.denominator)


def telephone(y: np.ndarray, sample_rate: int = 16000, *, low: float = 300.0, high: float = 3400.0,
              phone_rate: int = 8000, codec: bool = False) -> np.ndarray:
    """A telephone channel: band-pass ``low``..``high`` Hz (zero phase: the filter's delay is removed),
    down to ``phone_rate`` Hz and back (polyphase, scipy's ``resample_poly``), optionally through the
    G.711 mu-law codec at ``phone_rate`` (``codec=True``). Same length and dtype as ``y``."""
    y = _wave("y", y)
    sr = _rate("sample_rate", sample_rate)
    pr = _rate("phone_rate", phone_rate)
    if pr > sr:
        raise ValueError(f"phone_rate: expected at most sample_rate {sr}, got {pr}")
    h = bandpass_fir(low, min(high, pr / 2), sr)
    half = (h.shape[0] - 1) // 2
    z = np.convolve(y.astype(np.float64), h)[half:half + y.shape[0]]    # centred: zero phase
    z = _resample(z, sr, pr)
    if codec:
        z = mulaw(z)
    z = _resample(z, pr, sr)
    out = np.zeros(y.shape[0], np.float64)
    out[:min(z.shape[0], y.shape[0])] = z[:y.shape[0]]
    return out.astype(y.dtype)


# ----------------------------------------------------------------------------------------- G.711 mu-law

_BIAS = 0x84          # 132: the encoder's bias (16-bit scale)
_CLIP = 8159          # largest 14-bit magnitude before the bias
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def mulaw_encode(y: np.ndarray) -> np.ndarray:
    """G.711 mu-law codes (uint8) of a waveform in [-1, 1] (clipped; scaled to 16-bit by 32768).

    The segmented encoder of the CCITT reference code: 14-bit magnitude ``v = |x| + 33`` (clipped at
    8159 + 33), segment ``s`` = the position of its leading bit (8 segments, each twice as wide as the
    previous), 4 mantissa bits ``(v >> (s + 1)) & 15``, sign, all bits inverted. It approximates the
    continuous law ``F(x) = sgn(x) ln(1 + 255 |x|) / ln(256)`` by 8 chords."""
    y = _wave("y", y, allow_empty=True)
    x = np.clip(np.round(y.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int64)
    v = x >> 2                                                          # 14-bit (arithmetic shift)
    neg = v < 0
    v = np.minimum(np.where(neg, -v, v), _CLIP) + (_BIAS >> 2)          # biased magnitude
    seg = np.searchsorted(_SEG_END, v, side="left")                     # first s with v <= SEG_END[s]
    code = (seg << 4) | ((v >> (np.minimum(seg, 7) + 1)) & 0xF)         # [augment:mulaw]
    code = np.where(seg >= 8, 0x7F, code)                               # v = 8192 (clipped): the top code
    mask = np.where(neg, 0x7F, 0xFF)
    return (code ^ mask).astype(np.uint8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """Waveform (float64 in [-1, 1)) of G.711 mu-law codes: each code decodes to its step's midpoint."""
    if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8:
        raise TypeError(f"codes: expected a numpy.ndarray of uint8 mu-law codes, got "
                        f"{getattr(codes, 'dtype', type(codes).__name__)}")
    u = (~codes).astype(np.int64) & 0xFF
    seg = (u & 0x70) >> 4
    t = (((u & 0x0F) << 3) + _BIAS) << seg                              # [augment:mulaw]
    return np.where(u & 0x80, _BIAS - t, t - _BIAS) / 32768.0


def mulaw(y: np.ndarray) -> np.ndarray:
    """G.711 mu-law round trip (8 bits a sample) of a waveform in [-1, 1]; same length and dtype."""
    y = _wave("y", y)
    return mulaw_decode(mulaw_encode(y)).astype(y.dtype)


# ----------------------------------------------------------------------------------------- chains


@dataclass(frozen=True)
class AugmentOptions:
    """Which effects an utterance gets: each a probability (0: never, the default; 1: always), drawn
    independently per utterance, applied in this order. ``snr_low``/``snr_high`` (dB) bound the uniform
    SNR of noise and babble; ``gain_db`` the uniform gain in [-gain_db, gain_db]; ``babble_talkers`` the
    number of other utterances in a babble (uniform in the inclusive range); ``rir_max_seconds`` cuts long
    room responses (the cost grows with its cube)."""

    gain: float = 0.0
    reverb: float = 0.0
    noise: float = 0.0            # white or pink, equally likely
    babble: float = 0.0
    telephone: float = 0.0
    mulaw: float = 0.0
    snr_low: float = 5.0
    snr_high: float = 20.0
    gain_db: float = 6.0
    babble_talkers: Tuple[int, int] = (3, 7)
    rir_max_seconds: float = 0.5
    vtlp: float = 0.0             # vocal tract length perturbation: a feature-domain effect (see below)
    vtlp_range: float = 0.1       # its warp factor is uniform in [1 - vtlp_range, 1 + vtlp_range]

    # vtlp last: its seed is the seventh, so the six waveform effects draw exactly what they drew before it
    EFFECTS = ("gain", "reverb", "noise", "babble", "telephone", "mulaw", "vtlp")
    WAVEFORM_EFFECTS = EFFECTS[:-1]     # what augment_waveform applies; vtlp is the front end's

    def __post_init__(self) -> None:
        for k in self.EFFECTS:
            _number(k, getattr(self, k), low=0.0, high=1.0)
        _number("snr_low", self.snr_low, low=-30.0, high=100.0)
        _number("snr_high", self.snr_high, low=self.snr_low, high=100.0)
        _number("gain_db", self.gain_db, low=0.0, high=60.0)
        _number("rir_max_seconds", self.rir_max_seconds, low=0.0, high=5.0, low_open=True)
        _number("vtlp_range", self.vtlp_range, low=0.0, high=0.4)
        t = self.babble_talkers
        if (not isinstance(t, (tuple, list)) or len(t) != 2 or not all(isinstance(v, int) for v in t)
                or not 1 <= t[0] <= t[1]):
            raise ValueError(f"babble_talkers: expected (low, high) integers, 1 <= low <= high, got {t!r}")

    @property
    def active(self) -> bool:
        return any(getattr(self, k) > 0 for k in self.EFFECTS)

    @classmethod
    def names(cls) -> List[str]:
        return [f.name for f in fields(cls)]


class Applied(NamedTuple):
    """One effect an utterance got and its drawn parameters (for logs, tests and plots)."""

    effect: str
    params: dict


def draw_effects(options: AugmentOptions, rng: np.random.Generator) -> List[Tuple[str, np.random.Generator]]:
    """The effects one utterance gets, each with its own generator: one seed per effect is drawn from
    ``rng`` first, so an effect's decision and parameters do not depend on the other effects'
    probabilities."""
    rng = _generator(rng)
    seeds = rng.integers(0, 2**63 - 1, size=len(AugmentOptions.EFFECTS))
    chosen = []
    for name, seed in zip(AugmentOptions.EFFECTS, seeds):
        g = np.random.default_rng(int(seed))
        if g.random() < getattr(options, name):
            chosen.append((name, g))
    return chosen


def augment_waveform(y: np.ndarray, sample_rate: int, rng: np.random.Generator, options: AugmentOptions, *,
                     talkers: Optional[Callable[[int, np.random.Generator], List[np.ndarray]]] = None,
                     effects=None) -> Tuple[np.ndarray, List[Applied]]:
    """Apply the effects ``options`` draws for this utterance (or the given ``effects`` of
    :func:`draw_effects`); returns ``(waveform, what was applied)``. ``talkers(k, rng)`` must return ``k``
    other utterances' waveforms at ``sample_rate`` (needed when babble is on)."""
    y = _wave("y", y)
    sr = _rate("sample_rate", sample_rate)
    if not isinstance(options, AugmentOptions):
        raise TypeError(f"options: expected AugmentOptions, got {type(options).__name__}")
    if options.babble > 0 and talkers is None:
        raise ValueError("talkers: needed when options.babble > 0 (a function (k, rng) -> k waveforms)")
    if effects is None:
        effects = draw_effects(options, rng)
    out, applied = y, []
    for name, g in effects:
        if name == "vtlp":      # not a waveform effect: the front end warps its filters (vtlp_warp)
            continue
        if name == "gain":
            db = float(g.uniform(-options.gain_db, options.gain_db))
            out, p = apply_gain(out, db), dict(gain_db=db)
        elif name == "reverb":
            room = random_room(g)
            dur = min(eyring_rt60(room.size, room.absorption), options.rir_max_seconds)
            h = image_source_rir(room.size, room.source, room.mic, absorption=room.absorption,
                                 sample_rate=sr, duration=dur)
            dist = float(np.linalg.norm(np.subtract(room.source, room.mic)))
            out = reverberate(out, h, sample_rate=sr, direct_delay=dist / SPEED_OF_SOUND)
            p = dict(room._asdict(), rt60=eyring_rt60(room.size, room.absorption))
        elif name in ("noise", "babble"):
            snr = float(g.uniform(options.snr_low, options.snr_high))
            if name == "noise":
                color = "pink" if g.random() < 0.5 else "white"
                n = (pink_noise if color == "pink" else white_noise)(out.shape[0], g)
                p = dict(color=color, snr_db=snr)
            else:
                k = int(g.integers(options.babble_talkers[0], options.babble_talkers[1] + 1))
                n = babble_noise(list(talkers(k, g)), out.shape[0], g)
                p = dict(talkers=k, snr_db=snr)
            out = add_noise(out, n, snr)
        elif name == "telephone":
            out, p = telephone(out, sr), dict(band=(300.0, 3400.0), phone_rate=8000)
        elif name == "mulaw":
            peak = float(np.max(np.abs(out)))
            out, p = mulaw(np.clip(out, -1.0, 1.0)), dict(clipped=peak > 1.0)
        else:
            raise ValueError(f"effects: unknown effect {name!r}; known: {list(AugmentOptions.EFFECTS)}")
        applied.append(Applied(name, p))
    return out, applied


def vtlp_warp(options: AugmentOptions, g: np.random.Generator) -> float:
    """The VTLP warp factor of an utterance that drew the ``vtlp`` effect, from that effect's generator:
    uniform in ``[1 - vtlp_range, 1 + vtlp_range]`` (Jaitly & Hinton 2013 used 0.9-1.1). The front end
    applies it as Kaldi's VTLN warp of the mel filters ([features:vtln]), so the utterance sounds as if
    its speaker's vocal tract were ``1 / warp`` times as long."""
    return float(_generator(g).uniform(1.0 - options.vtlp_range, 1.0 + options.vtlp_range))


# ----------------------------------------------------------------------------------------- training


class TrainingAugmenter:
    """Features of augmented training utterances, computed on the fly (the trainer's batch hook).

    ``features(i, rng)`` draws the effects of utterance ``i`` from ``rng``; with none drawn it returns
    None (the caller keeps the cached clean features: no audio is read); otherwise it reads the audio,
    resamples it to the front end's rate, applies the utterance's speed factor exactly as the feature
    cache does, augments it (babble talkers are other utterances of the same list, drawn from the
    effect's generator), and returns the NORMALISED features, which have the clean features' shape."""

    def __init__(self, options: AugmentOptions, frontend, wav_paths: Sequence[str],
                 speeds: Optional[Sequence[float]] = None) -> None:
        if not isinstance(options, AugmentOptions):
            raise TypeError(f"options: expected AugmentOptions, got {type(options).__name__}")
        self.options, self.frontend, self.wav_paths = options, frontend, list(wav_paths)
        self.speeds = [1.0] * len(self.wav_paths) if speeds is None else list(speeds)
        if len(self.speeds) != len(self.wav_paths):
            raise ValueError(f"speeds: expected one per utterance ({len(self.wav_paths)}), "
                             f"got {len(self.speeds)}")

    def waveform(self, i: int) -> np.ndarray:
        """Utterance ``i``'s audio at the front end's rate, speed-perturbed as the feature cache does."""
        from ..features import load_audio
        from ..frontend import resample_to
        y, sr = load_audio(self.wav_paths[i])
        y = resample_to(y, sr, self.frontend.sample_rate)
        if self.speeds[i] != 1.0:
            y = resample_to(y, int(round(self.speeds[i] * 1000)), 1000)   # as Frontend.raw_features
        return y

    def features(self, i: int, rng: np.random.Generator, *, clean_frames: Optional[int] = None):
        effects = draw_effects(self.options, rng)
        if not effects:
            return None
        n = len(self.wav_paths)

        def talkers(k, g):
            others = g.choice(n - 1, size=min(k, n - 1), replace=False) if n > 1 else np.zeros(k, int)
            return [self.waveform(int(j + (j >= i)) if n > 1 else i) for j in others]   # never i itself

        warp = 1.0
        for name, g in effects:
            if name == "vtlp":
                warp = vtlp_warp(self.options, g)
        y, _ = augment_waveform(self.waveform(i), self.frontend.sample_rate, rng, self.options,
                                talkers=talkers, effects=effects)
        f = self.frontend.raw_features(y, self.frontend.sample_rate, where=self.wav_paths[i], vtln_warp=warp)
        if clean_frames is not None and f.shape[0] != clean_frames:
            raise RuntimeError(f"augmented features of {self.wav_paths[i]} have {f.shape[0]} frames, the "
                               f"clean ones {clean_frames}")
        return self.frontend.normalise(f)
