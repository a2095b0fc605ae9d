"""The usual ASR input in one call: Kaldi log-mel fbank (+ log-energy) with deltas.

Graves et al. 2013 and Chorowski et al. 2015 fed TIMIT models 40 log-mel filterbank energies plus the
log-energy, with first and second deltas: 41 x 3 = 123 numbers per 10 ms frame. Normalise them
afterwards with global statistics (:class:`scratchasr.features.CmvnStats`) accumulated on the
training set.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .cmvn import cmvn as _cmvn
from .deltas import add_deltas
from .kaldi import fbank

UTT_CMVN = ("none", "mean", "mean_var")


def compute_features(y: np.ndarray, sample_rate: int, *, num_mel_bins: int = 40, use_energy: bool = True,
                     delta_order: int = 2, delta_window: int = 2, int16_scale: bool = True,
                     dither: float = 0.0, rng: Optional[np.random.Generator] = None,
                     utt_cmvn: str = "none", source: Optional[str] = None, **fbank_options) -> np.ndarray:
    """``(N,)`` waveform -> ``(n_frames, (num_mel_bins + use_energy) * (delta_order + 1))`` float32.

    Args:
        y: samples as returned by :func:`load_audio` (float in [-1, 1]).
        sample_rate: Hz; passed to :func:`fbank` as ``sample_frequency``.
        int16_scale: multiply by 32768 first, so the features (and ``dither``) are on Kaldi's scale.
        utt_cmvn: ``"none"``, ``"mean"`` (subtract the utterance's own mean of every fbank/energy
            coefficient: a fixed channel or spectral tilt, a constant in the log domain, cancels) or
            ``"mean_var"`` (also divide by its standard deviation), applied before the deltas
            (Kaldi's ``apply-cmvn`` with per-utterance statistics; [features:cmvn]).
        source: where ``y`` came from (a file name or utterance id), quoted in error messages.
        fbank_options: any other :func:`fbank` option (``snip_edges``, ``low_freq``, ...).

    Raises:
        ValueError (starting ``y:`` and naming ``source``) if the signal is shorter than one frame:
        zero frames would give an empty transcript at inference and a silently zero loss in training.
    """
    if isinstance(y, np.ndarray) and y.dtype in (np.float32, np.float64) and int16_scale:
        y = y * y.dtype.type(32768.0)
    feats = fbank(y, sample_frequency=float(sample_rate), num_mel_bins=num_mel_bins, use_energy=use_energy,
                  dither=dither, rng=rng, **fbank_options)
    if utt_cmvn not in UTT_CMVN:
        raise ValueError(f"utt_cmvn: expected one of {UTT_CMVN}, got {utt_cmvn!r}")
    if feats.shape[0] == 0:
        where = f"{source}: " if source else ""
        frame_ms = fbank_options.get("frame_length", 25.0)
        n = np.shape(y)[-1]
        raise ValueError(f"y: {where}{n} samples ({n / float(sample_rate):.4f} s) are shorter than one "
                         f"{frame_ms} ms frame at {sample_rate} Hz: no features")
    if utt_cmvn != "none":
        feats = _cmvn(feats, norm_vars=utt_cmvn == "mean_var")                     # [features:cmvn]
    if delta_order == 0:
        return feats
    return add_deltas(feats, order=delta_order, window=delta_window)
