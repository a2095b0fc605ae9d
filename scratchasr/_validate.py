"""Input validation shared by every layer.

Public functions call these before doing any arithmetic, so that bad input fails with a
``ValueError``/``TypeError`` naming the argument and what was expected, never deep inside NumPy,
never as a silent broadcast, truncation or NaN.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def float_array(name: str, x, *, ndim: Optional[int | Sequence[int]] = None,
                shape: Optional[Sequence[Optional[int]]] = None, finite: bool = False) -> np.ndarray:
    """Check that ``x`` is a floating-point ndarray (float32 or float64) and return it unchanged.

    ``ndim`` is an int or a collection of allowed ranks; ``shape`` may hold ``None`` wildcards.
    ``finite=True`` also rejects NaN and inf.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of floats, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {x.dtype}")
    _check_rank_shape(name, x, ndim, shape)
    if finite and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        where = tuple(int(i) for i in bad)
        raise ValueError(f"{name}: expected finite values, found {x[tuple(bad)]} at index {where}")
    return x


def int_array(name: str, x, *, ndim: Optional[int | Sequence[int]] = None,
              shape: Optional[Sequence[Optional[int]]] = None) -> np.ndarray:
    """Check that ``x`` is an integer array (or a list of ints) and return it as an int64 ndarray."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected an integer numpy.ndarray, got {type(x).__name__}")
    if x.size == 0 and x.dtype == np.float64:  # np.asarray([]) is float64
        x = x.astype(np.int64)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name}: expected an integer dtype, got {x.dtype}")
    _check_rank_shape(name, x, ndim, shape)
    return x.astype(np.int64, copy=False)


def lengths_array(name: str, lengths, B: int, T: int, *, allow_zero: bool = True) -> np.ndarray:
    """Validate per-sequence lengths: an integer array of shape ``(B,)`` with ``0 <= L <= T``.

    ``None`` means every sequence is full length ``T``.
    """
    if lengths is None:
        return np.full(B, T, dtype=np.int64)
    lengths = int_array(name, lengths, ndim=1, shape=(B,))
    lo = 0 if allow_zero else 1
    if lengths.size and (lengths.min() < lo or lengths.max() > T):
        raise ValueError(f"{name}: expected values in [{lo}, {T}], "
                         f"got min {lengths.min()} and max {lengths.max()}")
    return lengths


def length_mask(lengths: np.ndarray, T: int) -> np.ndarray:
    """Boolean ``(B, T)`` mask, True at valid positions ``t < lengths[b]``."""
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def same_dtype(**arrays: np.ndarray) -> np.dtype:
    """Check that all named float arrays share one dtype (no silent up/down-casting) and return it."""
    dtypes = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(dtypes.values())) > 1:
        listing = ", ".join(f"{n}={d}" for n, d in dtypes.items())
        raise TypeError(f"expected one floating dtype for all arrays, got {listing}")
    return next(iter(dtypes.values()))


def positive_int(name: str, value, *, minimum: int = 1) -> int:
    """Check that ``value`` is an integer ``>= minimum`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def choice(name: str, value, options: Sequence) -> None:
    """Check that ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{name}: expected one of {list(options)}, got {value!r}")


def _check_rank_shape(name, x, ndim, shape):
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected a {want}-D array, got shape {x.shape}")
    if shape is not None:
        if len(shape) != x.ndim or any(s is not None and s != d for s, d in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name}: expected shape {want}, got {x.shape}")
