"""An on-disk cache of a split's features, keyed by what determines them.

The key hashes the front end's options and sample rate, the speed-perturbation factor and the
corpus contents (each utterance's id and the bytes of its audio file), so a changed option, a
different corpus with the same ids or an edited file never serves stale features. One ``.npz`` per
(split, key): ``ids``, ``offsets`` (N+1,), all frames concatenated in ``feats`` (sum T, D) and
``errors`` (N,) (empty, or why the front end refused that utterance's audio: it is then skipped).

Loading reads the concatenated array ONCE and hands out views into it (the whole split costs its
own size in memory, not a copy per utterance). A damaged file is rebuilt with a warning.
"""

from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["corpus_digest", "cached_features"]


def corpus_digest(utts: Sequence, *, chunk: int = 1 << 20) -> str:
    """sha256 over every (id, audio bytes) pair, in order."""
    h = hashlib.sha256()
    for u in utts:
        h.update(u.id.encode() + b"\0")
        with open(u.wav_path, "rb") as f:
            while True:
                block = f.read(chunk)
                if not block:
                    break
                h.update(block)
        h.update(b"\1")
    return h.hexdigest()[:16]


def _load(path: Path, ids: List[str], skipped: Optional[Dict[str, str]]):
    with np.load(path, allow_pickle=False) as z:
        if list(z["ids"]) != ids:
            raise ValueError("ids differ")
        offsets = z["offsets"]
        errors = z["errors"]
        allf = z["feats"]                      # decompressed/read once
    if offsets.shape != (len(ids) + 1,) or offsets[-1] != allf.shape[0] or errors.shape != (len(ids),):
        raise ValueError("offsets or errors do not match the feature array")
    failed = {i: str(e) for i, e in zip(ids, errors) if e}
    if failed and skipped is None:
        raise _Refused(failed)
    if skipped is not None:
        skipped.update(failed)
    return [None if ids[i] in failed else allf[offsets[i]:offsets[i + 1]]   # views, no copies
            for i in range(len(ids))]


class _Refused(Exception):
    """A cached split holds utterances the front end refused, and the caller does not skip them."""

    def __init__(self, failed: Dict[str, str]) -> None:
        super().__init__(next(iter(failed.values())))


def cached_features(utts: Sequence, frontend, cache_dir, name: str, *, speed: float = 1.0,
                    progress: bool = True, skipped: Optional[Dict[str, str]] = None) -> List[np.ndarray]:
    """Unnormalised features of ``utts`` (one (T, D) array each), computed once and cached.

    An utterance whose audio the front end refuses (``ValueError``: unreadable, too short for one
    frame, ...) raises that error, or, when a dict ``skipped`` is given, is entered there
    (id -> the error message, which names the file) and gets ``None`` in the returned list.
    """
    cache_dir = Path(cache_dir)
    ids = [u.id for u in utts]
    key = hashlib.sha256(f"{frontend.key()}|{speed}|{corpus_digest(utts)}".encode()).hexdigest()[:16]
    path = cache_dir / f"{name}-{key}.npz"
    if path.exists():
        try:
            return _load(path, ids, skipped)
        except _Refused as e:
            raise ValueError(str(e)) from None
        except (ValueError, KeyError, OSError, zipfile.BadZipFile, EOFError) as e:
            print(f"warning: feature cache {path} is damaged ({e}); rebuilding it", file=sys.stderr)
    from tqdm import tqdm
    feats, errors = [], []
    for u in tqdm(utts, desc=f"features {name}", disable=not progress):
        try:
            # speed-perturbed copies: the resampling notice was given for the unperturbed file
            feats.append(frontend.file_features(u.wav_path, speed=speed, notice=speed == 1.0))
            errors.append("")
        except ValueError as e:
            if skipped is None:
                raise
            feats.append(np.zeros((0, frontend.dim), np.float32))
            errors.append(str(e) or type(e).__name__)
    cache_dir.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum([f.shape[0] for f in feats])]).astype(np.int64)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}.npz")
    np.savez(tmp, ids=np.array(ids), offsets=offsets, feats=np.concatenate(feats),
             errors=np.array(errors, dtype=str))
    os.replace(tmp, path)
    return _load(path, ids, skipped)
