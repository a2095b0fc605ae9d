"""SpecAugment (Park et al., Interspeech 2019, arXiv:1904.08779): time warp, frequency and time masks.

For features ``x (T, D)``:
- time warp (optional, ``time_warp = W > 0``): pick a centre ``w0`` uniformly in ``[W, T - W)`` and a
  shift ``w`` uniformly in ``[-W, W]``; frame ``w0`` moves to ``w0 + w`` and each side is stretched
  linearly. Output frame ``t`` reads input position ``s(t)`` by linear interpolation, with
  ``s(t) = t w0 / (w0 + w)`` left of the new centre and
  ``s(t) = w0 + (t - w0 - w)(T - 1 - w0) / (T - 1 - w0 - w)`` right of it.
- ``num_freq_masks`` frequency masks: width ``f ~ U{0..F}``, start ``f0 ~ U{0..D - f}``.
- ``num_time_masks`` time masks: width ``t ~ U{0..min(Tw, p T)}``, start ``t0 ~ U{0..T - t}``.
Masked entries are set to ``mask_value`` (0 after mean normalisation = the mean).

All randomness comes from the ``rng`` argument; the masks and the warp are returned so a test (or a
backward pass) can reproduce them exactly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._validate import float_array, positive_int


class SpecAugmentMasks(NamedTuple):
    """What spec_augment did, enough to reproduce it with :func:`apply_spec_augment`."""

    freq_mask: np.ndarray    # (D,) bool, True where a frequency mask covers the bin
    time_mask: np.ndarray    # (T,) bool, True where a time mask covers the frame
    warp_center: int         # w0 (0 when no warp)
    warp_shift: int          # w (0 when no warp)


def time_warp_positions(T: int, w0: int, w: int) -> np.ndarray:
    """Input position ``s(t)`` read by each output frame ``t`` (float64 ``(T,)``)."""
    t = np.arange(T, dtype=np.float64)
    if w == 0:
        return t
    c = w0 + w                                                         # new position of frame w0
    left = t * (w0 / c)                                                # [features:specaugment]
    right = w0 + (t - c) * ((T - 1 - w0) / (T - 1 - c))
    return np.where(t < c, left, right)


def apply_spec_augment(feats: np.ndarray, masks: SpecAugmentMasks, *, mask_value: float = 0.0) -> np.ndarray:
    """Apply a given warp and masks to ``feats (T, D)``; a new array, same dtype."""
    x = feats.astype(np.float64)
    T = x.shape[0]
    if masks.warp_shift != 0:
        s = time_warp_positions(T, masks.warp_center, masks.warp_shift)
        i0 = np.clip(np.floor(s).astype(np.int64), 0, T - 1)
        i1 = np.minimum(i0 + 1, T - 1)
        a = (s - i0)[:, None]
        x = (1.0 - a) * x[i0] + a * x[i1]                              # linear interpolation in time
    x = np.where(masks.time_mask[:, None] | masks.freq_mask[None, :], mask_value, x)
    return x.astype(feats.dtype)


def spec_augment(feats: np.ndarray, rng: np.random.Generator, *, num_freq_masks: int = 2,
                 freq_mask_width: int = 27, num_time_masks: int = 2, time_mask_width: int = 100,
                 max_time_ratio: float = 1.0, time_warp: int = 0,
                 mask_value: float = 0.0) -> tuple[np.ndarray, SpecAugmentMasks]:
    """Randomly warp and mask ``feats (T, D)``; returns ``(augmented (T, D), masks)``.

    Defaults are Park et al.'s LibriSpeech "LB" policy without warping (F=27, m_F=2, T=100, m_T=2,
    p=1.0); their time warp used W=80. The input is never modified.
    """
    feats = float_array("feats", feats, ndim=2, finite=True)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    num_freq_masks = positive_int("num_freq_masks", num_freq_masks, minimum=0)
    num_time_masks = positive_int("num_time_masks", num_time_masks, minimum=0)
    freq_mask_width = positive_int("freq_mask_width", freq_mask_width, minimum=0)
    time_mask_width = positive_int("time_mask_width", time_mask_width, minimum=0)
    time_warp = positive_int("time_warp", time_warp, minimum=0)
    if not (0.0 <= max_time_ratio <= 1.0):
        raise ValueError(f"max_time_ratio: expected a value in [0, 1], got {max_time_ratio}")
    T, D = feats.shape
    w0 = w = 0
    if time_warp > 0 and T > 2 * time_warp + 1:                       # too short: no warp
        w0 = int(rng.integers(time_warp, T - time_warp))
        w = int(rng.integers(-time_warp, time_warp + 1))
    freq_mask = np.zeros(D, dtype=bool)
    for _ in range(num_freq_masks):
        f = int(rng.integers(0, min(freq_mask_width, D) + 1))
        f0 = int(rng.integers(0, D - f + 1))
        freq_mask[f0:f0 + f] = True
    time_mask = np.zeros(T, dtype=bool)
    t_max = min(time_mask_width, int(max_time_ratio * T))
    for _ in range(num_time_masks):
        t = int(rng.integers(0, t_max + 1))
        t0 = int(rng.integers(0, T - t + 1))
        time_mask[t0:t0 + t] = True
    masks = SpecAugmentMasks(freq_mask, time_mask, w0, w)
    return apply_spec_augment(feats, masks, mask_value=mask_value), masks
