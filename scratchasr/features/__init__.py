"""Front end: audio I/O and feature extraction matching librosa 0.11 and Kaldi.

- ``audio``: :func:`load_audio` (WAV, FLAC, NIST SPHERE) and :func:`write_sphere`.
"""

from .audio import load_audio, write_sphere

__all__ = ["load_audio", "write_sphere"]
