"""Numba twins of the equation layer's hot loops (installed as ``scratchasr.kernels``).

One file per NumPy reference. Each kernel's docstring names its NumPy twin and the equation tags
it implements; parity tests in ``tests/`` compare the two. Kernels only loop and fill: the
public functions in ``scratchasr`` validate, make contiguous, cast and allocate.
"""
