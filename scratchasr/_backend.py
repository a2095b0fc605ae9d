"""One rule for choosing between a readable NumPy twin and its Numba kernel.

``backend=None`` means the Numba kernel where one exists, else NumPy; ``"numpy"`` forces the readable
reference; ``"numba"`` forces the kernel (an error where there is none). Public functions resolve the
argument once, store the resolved name in their cache, and pick the implementation with ``dispatch``,
so the backward always runs the same implementation as its forward.
"""

from __future__ import annotations

from typing import Callable, Optional

BACKENDS = (None, "numpy", "numba")


def resolve_backend(backend: Optional[str], has_kernel: bool = True, *, name: str = "backend") -> str:
    """Validate ``backend`` and return ``"numpy"`` or ``"numba"``.

    ``has_kernel=False`` (an op with no Numba twin) turns ``None`` into ``"numpy"`` and rejects
    ``"numba"``. Errors start with ``name``: ``backend: expected one of [None, 'numpy', 'numba'] ...``.
    """
    if not (backend is None or isinstance(backend, str)) or backend not in BACKENDS:
        raise ValueError(f"{name}: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "numba" and not has_kernel:
        raise ValueError(f"{name}: 'numba' was requested but this function has no Numba kernel; "
                         f"use None or 'numpy'")
    if backend is None:
        return "numba" if has_kernel else "numpy"
    return backend


def dispatch(backend: str, numpy_twin: Callable, kernel: Callable) -> Callable:
    """The implementation for a resolved ``backend``: ``numpy_twin`` or ``kernel`` (same arguments)."""
    if backend == "numpy":
        return numpy_twin
    if backend == "numba":
        return kernel
    raise ValueError(f"backend: expected a resolved backend 'numpy' or 'numba', got {backend!r}")
