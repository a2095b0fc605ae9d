"""The front end a model was trained with: feature options, sample rate and global CMVN statistics.

    frontend = Frontend(options, sample_rate=16000)          # options of features.compute_features
    frontend.fit(train_feats)                                 # global mean and variance (CmvnStats)
    x = frontend.from_file("a.wav")                           # (T, D) float32, normalised

Checkpoints store it (``frontend.cmvn_mean``/``frontend.cmvn_var`` arrays plus the options and rate in
the metadata), so ``scratchasr.inference`` computes exactly the features the model was trained on.
Audio at another sample rate is resampled with a polyphase filter (scipy's ``resample_poly``), with a
notice, unless ``resample=False``, which refuses it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from fractions import Fraction
from typing import Dict, Iterable, Optional

import numpy as np

from .features.audio import load_audio
from .features.cmvn import CmvnStats
from .features.pipeline import compute_features

__all__ = ["Frontend", "DEFAULT_FEATURES", "resample_to", "check_options"]

DEFAULT_FEATURES = dict(num_mel_bins=40, use_energy=True, delta_order=2, delta_window=2)
_NOT_OPTIONS = ("y", "sample_rate", "rng", "source", "fbank_options", "waveform", "sample_frequency")


def _known_options() -> set:
    import inspect

    from .features.kaldi import fbank
    names = set(inspect.signature(compute_features).parameters) | set(inspect.signature(fbank).parameters)
    return names - set(_NOT_OPTIONS)


def check_options(options, *, sample_rate: int = 16000, where: str = "features") -> dict:
    """Front-end options (``compute_features`` / ``fbank`` keywords) checked by name and by use: unknown
    keys and values the feature code refuses raise ``ValueError`` starting with ``where``."""
    if not isinstance(options, dict):
        raise ValueError(f"{where}: expected a dict of front-end options, got {options!r}")
    unknown = sorted(set(options) - _known_options())
    if unknown:
        raise ValueError(f"{where}: unknown front-end option(s) {unknown}; known: {sorted(_known_options())}")
    opts = dict(DEFAULT_FEATURES)
    opts.update(options)
    try:                                   # 0.1 s of a deterministic tone: every option is exercised once
        tone = (0.1 * np.sin(np.arange(1600) * 0.3)).astype(np.float32)
        compute_features(tone, sample_rate, **opts)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: {e}") from None
    return opts


def resample_to(y: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling by the reduced ratio ``target_sr / sr`` (identity when equal)."""
    if sr == target_sr:
        return y
    from scipy.signal import resample_poly
    r = Fraction(int(target_sr), int(sr))
    return resample_poly(y, r.numerator, r.denominator).astype(y.dtype, copy=False)


class Frontend:
    def __init__(self, options: Optional[dict] = None, *, sample_rate: int = 16000,
                 mean: Optional[np.ndarray] = None, var: Optional[np.ndarray] = None) -> None:
        if (isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer))
                or sample_rate < 1000):
            raise ValueError(f"sample_rate: expected an integer rate in Hz (>= 1000), got {sample_rate!r}")
        self.sample_rate = int(sample_rate)
        self.options = check_options(dict(options or {}), sample_rate=self.sample_rate)
        self.mean, self.var = mean, var

    # ---------------------------------------------------------------- features
    def raw_features(self, y: np.ndarray, sr: int, *, where: str = "audio", resample: bool = True,
                     speed: float = 1.0, notice: bool = True, vtln_warp: float = 1.0) -> np.ndarray:
        """Unnormalised features of a waveform; ``speed`` != 1 is Kaldi-style speed perturbation; a
        waveform at another rate is resampled with a notice on stderr (``notice=False``: silently, for
        a file already announced) or, with ``resample=False``, refused. ``vtln_warp`` != 1 multiplies
        the front end's own VTLN warp (1 unless its options set one): VTLP in training."""
        if sr != self.sample_rate:
            if not resample:
                raise ValueError(f"{where}: sample rate {sr} Hz, the model expects {self.sample_rate} Hz "
                                 f"(resampling is off)")
            if notice:
                print(f"note: {where}: resampling {sr} Hz -> {self.sample_rate} Hz", file=sys.stderr)
            y = resample_to(y, sr, self.sample_rate)
        if speed != 1.0:
            # play the samples at `speed` times the rate: tempo and pitch both change (Ko et al. 2015)
            y = resample_to(y, int(round(speed * 1000)), 1000)
        opts = self.options
        if vtln_warp != 1.0:
            opts = dict(opts, vtln_warp=float(opts.get("vtln_warp", 1.0)) * float(vtln_warp))
        try:
            feats = compute_features(y, self.sample_rate, **opts)
        except ValueError as e:              # e.g. audio shorter than one frame: name the file
            raise ValueError(f"{where}: {e}") from None
        if feats.shape[0] == 0:
            raise ValueError(f"{where}: audio too short for one feature frame ({len(y)} samples)")
        return feats

    def file_features(self, path: str, **kw) -> np.ndarray:
        y, sr = load_audio(path)
        return self.raw_features(y, sr, where=str(path), **kw)

    # ---------------------------------------------------------------- normalisation
    def fit(self, feats: Iterable[np.ndarray]) -> "Frontend":
        stats = CmvnStats()
        for f in feats:
            stats.accumulate(f)
        self.mean, self.var = stats.mean.astype(np.float64), stats.var.astype(np.float64)
        return self

    def normalise(self, feats: np.ndarray) -> np.ndarray:
        if self.mean is None:
            raise ValueError("frontend: no CMVN statistics (fit() was not called / not in the checkpoint)")
        return ((feats - self.mean) / np.sqrt(np.maximum(self.var, 1e-10))).astype(np.float32)

    def from_file(self, path: str, **kw) -> np.ndarray:
        return self.normalise(self.file_features(path, **kw))

    @property
    def dim(self) -> int:
        o = self.options
        return (o["num_mel_bins"] + bool(o["use_energy"])) * (o["delta_order"] + 1)

    # ---------------------------------------------------------------- checkpoints and caches
    def key(self) -> str:
        """A hash of everything that changes the unnormalised features."""
        blob = json.dumps(dict(options=self.options, sample_rate=self.sample_rate), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def arrays(self) -> Dict[str, np.ndarray]:
        return {"frontend.cmvn_mean": self.mean, "frontend.cmvn_var": self.var}

    def meta(self) -> dict:
        return dict(options=self.options, sample_rate=self.sample_rate)

    @classmethod
    def from_checkpoint(cls, arrays: Dict[str, np.ndarray], meta: dict, *, where: str = "checkpoint"):
        missing = [k for k in ("frontend.cmvn_mean", "frontend.cmvn_var") if k not in arrays]
        if missing:
            raise ValueError(f"{where}: missing CMVN statistics {missing}")
        fm = meta.get("frontend", {"options": {}, "sample_rate": 16000})
        if not isinstance(fm, dict) or set(fm) - {"options", "sample_rate"}:
            raise ValueError(f"{where}: metadata 'frontend' must be a dict with keys options and "
                             f"sample_rate, got {fm!r}")
        try:
            fe = cls(fm.get("options"), sample_rate=fm.get("sample_rate", 16000),
                     mean=arrays["frontend.cmvn_mean"], var=arrays["frontend.cmvn_var"])
        except ValueError as e:
            raise ValueError(f"{where}: frontend {e}") from None
        for k in ("mean", "var"):
            a = getattr(fe, k)
            if a.shape != (fe.dim,) or not np.all(np.isfinite(a)) or (k == "var" and np.any(a < 0)):
                raise ValueError(f"{where}: frontend.cmvn_{k} must be a finite vector of the feature "
                                 f"dimension {fe.dim}{' (non-negative)' if k == 'var' else ''}, "
                                 f"got shape {a.shape}")
        return fe
