"""Checkpoints: one ``.npz`` file with the parameters, the optimizer state and a JSON blob.

Layout of the archive (every member is a plain ndarray, so it loads with ``allow_pickle=False``):

- ``param/<dotted name>``: each parameter array (``encoder.layers.2.W_ih``), dtype kept;
- ``optim/<key>``: each optimizer array (moment buffers such as ``exp_avg.encoder.W``);
- ``meta.json``: a uint8 array holding UTF-8 JSON ``{"format", "version", "meta", "optimizer",
  "optimizer_form"}``: the caller's ``meta`` (config, step, epoch, RNG states, history...) and the
  optimizer's scalars (step count, lr, hyper-parameters).

The optimizer state may be given either as one flat mapping mixing arrays and scalars (what
``Optimizer.state_dict()`` returns) or as a pair ``(arrays, scalars)``; ``load_checkpoint`` gives it
back in the same form it was saved in.

Writing is atomic (the usual recipe, as in e.g. ``atomicwrites`` and SQLite's journal): write to a
temporary file in the same directory, ``flush`` + ``os.fsync`` it, ``os.replace`` it over the target
(atomic on POSIX within one file system), then ``fsync`` the directory so the rename itself is
durable. A crash at any point leaves either the old checkpoint or the new one, never half a file.

RNG state: ``np.random.Generator.bit_generator.state`` is a dict of ints and strings, hence JSON-able;
``rng_state`` / ``rng_from_state`` wrap it so that a resumed run draws the very same numbers.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import zipfile
import zlib
from typing import Any, Dict, Mapping, Optional, Tuple

import numpy as np

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "rng_from_state"]

FORMAT = "scratchasr-checkpoint"
VERSION = 1
_PARAM, _OPTIM, _META = "param/", "optim/", "meta.json"


# ---------------------------------------------------------------- RNG state
def rng_state(rng: np.random.Generator) -> Dict[str, Any]:
    """A JSON-able copy of ``rng``'s bit-generator state (``{"bit_generator": "PCG64", "state": ...}``)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator, got {type(rng).__name__}")
    return _plain(rng.bit_generator.state)


def _plain(obj):
    """Nested dicts with NumPy arrays/scalars (Philox, SFC64 and MT19937 keep arrays) -> JSON types.
    Every NumPy bit generator accepts the lists back when its ``state`` is set."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    return copy.deepcopy(obj)


def rng_from_state(state: Mapping[str, Any]) -> np.random.Generator:
    """A new ``Generator`` that continues exactly where the one ``rng_state`` saw left off."""
    name = state.get("bit_generator") if isinstance(state, Mapping) else None
    cls = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, np.random.BitGenerator)):
        raise ValueError(f"state: expected a bit-generator state dict with 'bit_generator' naming a "
                         f"numpy.random bit generator (e.g. 'PCG64'), got {name!r}")
    bit_gen = cls()
    bit_gen.state = copy.deepcopy(dict(state))
    return np.random.Generator(bit_gen)


# ---------------------------------------------------------------- JSON helpers
def _to_json(obj):
    """``json.dumps`` hook: NumPy scalars and small arrays become plain Python numbers and lists."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return obj.tolist()
    raise TypeError(f"meta: {type(obj).__name__} is not JSON-serialisable (store arrays as parameters)")


def _split_optimizer_state(state) -> Tuple[Dict[str, np.ndarray], Dict[str, Any], str]:
    """-> (arrays, scalars, form) from a flat mapping or an ``(arrays, scalars)`` pair."""
    if isinstance(state, tuple) and len(state) == 2 and all(isinstance(s, Mapping) for s in state):
        arrays, scalars = dict(state[0]), dict(state[1])
        bad = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
        if bad:
            raise TypeError(f"optimizer_state: the arrays part holds non-arrays under {bad[:3]}")
        return arrays, scalars, "pair"
    if isinstance(state, Mapping):
        arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
        scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
        return arrays, scalars, "flat"
    raise TypeError("optimizer_state: expected a dict or an (arrays, scalars) pair, "
                    f"got {type(state).__name__}")


def _check_arrays(what: str, arrays: Mapping[str, np.ndarray]) -> None:
    for k, v in arrays.items():
        if not isinstance(k, str) or not k:
            raise TypeError(f"{what}: expected non-empty str names, got {k!r}")
        if not isinstance(v, np.ndarray):
            raise TypeError(f"{what}[{k!r}]: expected a numpy.ndarray, got {type(v).__name__}")
        if v.dtype.hasobject:
            raise TypeError(f"{what}[{k!r}]: object arrays would need pickle, which checkpoints never use")


# ---------------------------------------------------------------- save / load
def _fsync_dir(directory: str) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(path, params: Mapping[str, np.ndarray], *, optimizer_state=None,
                    meta: Optional[Mapping[str, Any]] = None) -> None:
    """Write ``params`` (dotted name -> ndarray), the optimizer state and ``meta`` to ``path`` atomically.

    ``meta`` must be JSON-able (NumPy scalars and arrays are converted to numbers and lists); put
    RNG states in it with :func:`rng_state`. ``path`` is used as given (no ``.npz`` is appended).
    """
    path = os.fspath(path)
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected a dict of name -> ndarray, got {type(params).__name__}")
    _check_arrays("params", params)
    if meta is not None and not isinstance(meta, Mapping):
        raise TypeError(f"meta: expected a dict or None, got {type(meta).__name__}")
    members: Dict[str, np.ndarray] = {_PARAM + k: v for k, v in params.items()}
    blob: Dict[str, Any] = {"format": FORMAT, "version": VERSION, "meta": dict(meta or {}),
                            "optimizer": None, "optimizer_form": None}
    if optimizer_state is not None:
        arrays, scalars, form = _split_optimizer_state(optimizer_state)
        _check_arrays("optimizer_state", arrays)
        members.update({_OPTIM + k: v for k, v in arrays.items()})
        blob["optimizer"], blob["optimizer_form"] = scalars, form
    try:
        text = json.dumps(blob, default=_to_json, allow_nan=True)
    except (TypeError, ValueError) as e:
        raise TypeError(f"meta/optimizer scalars: not JSON-serialisable: {e}") from e
    members[_META] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **members)
            f.flush()
            os.fsync(f.fileno())                 # the bytes are on disk before the rename
        os.chmod(tmp, 0o644)                     # mkstemp creates 0600
        os.replace(tmp, path)                    # atomic: readers see the old file or the new one
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)                        # the rename itself survives a power cut


def load_checkpoint(path) -> Tuple[Dict[str, np.ndarray], Optional[Any], Dict[str, Any]]:
    """Read a file written by :func:`save_checkpoint` -> ``(params, optimizer_state, meta)``.

    ``optimizer_state`` is ``None`` if none was saved, else in the form it was saved in (a flat dict,
    or an ``(arrays, scalars)`` pair). Never unpickles. A truncated or corrupt file, or an ``.npz``
    that is not a scratchasr checkpoint, raises ``ValueError`` naming the file; a missing file raises
    ``FileNotFoundError``.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a bare .npy array, not an .npz archive")
            data = {k: z[k] for k in z.files}   # read every member now: errors surface here
    except (zipfile.BadZipFile, zlib.error, ValueError, EOFError, KeyError, OSError) as e:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupt ({type(e).__name__}: {e})") from e
    if _META not in data:
        raise ValueError(f"checkpoint {path!r} has no {_META} member: not a scratchasr checkpoint")
    try:
        blob = json.loads(data.pop(_META).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"checkpoint {path!r}: unreadable {_META} ({e})") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path!r}: {_META} does not describe a {FORMAT}")

    params = {k[len(_PARAM):]: v for k, v in data.items() if k.startswith(_PARAM)}
    arrays = {k[len(_OPTIM):]: v for k, v in data.items() if k.startswith(_OPTIM)}
    form, scalars = blob.get("optimizer_form"), blob.get("optimizer")
    if form is None:
        optimizer_state = None
    elif form == "pair":
        optimizer_state = (arrays, scalars)
    else:
        optimizer_state = {**scalars, **arrays}
    return params, optimizer_state, blob.get("meta") or {}
