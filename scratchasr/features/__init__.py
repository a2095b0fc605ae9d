"""Front end: audio I/O and feature extraction matching librosa 0.11 and Kaldi.

- ``audio``: :func:`load_audio` (WAV, FLAC, NIST SPHERE), :func:`write_sphere`, :func:`resample`.
- ``windows``: :func:`get_window` (rectangular, hann, hamming, povey, blackman; periodic or
  symmetric), framing with Kaldi's ``snip_edges`` and librosa's ``center``.
- ``stft``: :func:`stft`, :func:`istft` (librosa), :func:`stft_reference` (the DFT as a matrix).
- ``mel``: :func:`mel_filterbank`, :func:`melspectrogram`, :func:`power_to_db` (librosa),
  :func:`kaldi_mel_banks`, mel scales both ways.
- ``kaldi``: :func:`fbank`, :func:`mfcc` (Kaldi's compute-fbank-feats / compute-mfcc-feats).
- ``deltas``: :func:`add_deltas`; ``cmvn``: :func:`cmvn`, :class:`CmvnStats`;
  ``specaugment``: :func:`spec_augment`.
- ``pipeline``: :func:`compute_features` (fbank + energy + deltas, the 123-dim TIMIT input).

Equations: docs/equations/features.md. Walkthrough: docs/walkthroughs/features.md.
"""

from .audio import load_audio, read_sphere, read_sphere_header, resample, write_sphere
from .cmvn import CmvnStats, cmvn
from .deltas import add_deltas, delta_filters
from .kaldi import dct_matrix, fbank, lifter_coefficients, mfcc
from .pipeline import compute_features
from .mel import hz_to_mel, kaldi_mel_banks, mel_filterbank, mel_to_hz, melspectrogram, power_to_db
from .specaugment import SpecAugmentMasks, apply_spec_augment, spec_augment
from .stft import dft_matrix, istft, stft, stft_reference
from .windows import frame_signal, frames_kaldi, get_window, num_frames_kaldi

__all__ = [
    "load_audio", "read_sphere", "read_sphere_header", "resample", "write_sphere",
    "compute_features", "CmvnStats", "cmvn", "add_deltas", "delta_filters",
    "dct_matrix", "fbank", "lifter_coefficients", "mfcc",
    "hz_to_mel", "kaldi_mel_banks", "mel_filterbank", "mel_to_hz", "melspectrogram", "power_to_db",
    "SpecAugmentMasks", "apply_spec_augment", "spec_augment",
    "dft_matrix", "istft", "stft", "stft_reference",
    "frame_signal", "frames_kaldi", "get_window", "num_frames_kaldi",
]
