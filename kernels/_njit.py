"""The project's one Numba decorator.

Every kernel in ``kernels/`` is compiled with the same options:

* ``nopython=True``: a kernel that falls back to object mode is a bug, not a slow path.
* ``cache=True``: compiled code is written next to the source (``__pycache__``), so a warm
  process pays ~4 ms per kernel instead of ~0.5 s of LLVM work.
* ``fastmath=FASTMATH``: reassociation (vectorised reductions), contraction (FMA), reciprocal
  and signed-zero relaxations, but **never** ``nnan``/``ninf``: log-space dynamic programmes use
  ``-inf`` as log 0 and must see it compared and propagated correctly.

Kernel files import only this decorator from here and are otherwise self-contained, because
Numba's on-disk cache does not notice edits to helper functions that live in other files.
"""

from __future__ import annotations

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "reassoc"})
"""LLVM fast-math flags used by every kernel: no ``nnan``, no ``ninf``, no ``afn``."""


def njit(*args, parallel: bool = False, **kwargs):
    """``numba.njit`` with the project's defaults (nopython, cache, safe fastmath).

    Use bare (``@njit``) or with options (``@njit(parallel=True)`` for a kernel whose outer
    loop is a ``numba.prange`` over the batch; results never depend on the thread count
    because each batch element is computed by exactly one thread).
    """
    options = dict(cache=True, fastmath=set(FASTMATH), parallel=parallel)
    options.update(kwargs)
    if len(args) == 1 and callable(args[0]) and not kwargs:
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)


prange = numba.prange
