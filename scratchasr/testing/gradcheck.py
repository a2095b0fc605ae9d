"""Finite-difference gradient checking for forward/backward pairs (docs/gradcheck.md).

The contract (docs/gradcheck.md): ``forward(*inputs) -> (out, cache)`` or ``(out, ..., cache)``,
where the first element is the output that is checked; ``backward(dout, cache)`` returns one
gradient per floating-point array in ``inputs``, in order. We form the scalar

    L(x) = sum(out(x) * dout)                                   [gradcheck:scalar]

for a seeded Gaussian ``dout`` and compare the analytic gradient ``backward(dout, cache)`` with
central differences

    dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / (2 h),   h = eps * max(1, |x_i|)   [gradcheck:central]

using the relative error ``|a - n| / max(|a| + |n|, 1e-12)`` [gradcheck:relerr]. An entry passes
when its relative error is at most ``rtol`` or its absolute error at most ``atol``.

Small inputs (up to ``max_full`` elements) have every element checked. Larger ones get three
random unit directions ``d`` (directional derivative ``(L(x + h d) - L(x - h d)) / 2h`` against
``<g, d>``) [gradcheck:direction] plus about ten sampled coordinates, the first and last element
included. When a direction fails, the culprit is located by bisection: the direction is split in
two halves, each half is re-checked, and the worse half is followed down to a single element, so
the report can name an index even for a large tensor.

Everything is computed in float64: floating inputs are copied to float64 first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np

__all__ = ["gradcheck", "GradcheckReport", "InputCheck"]


@dataclass
class InputCheck:
    """The result for one floating-point input."""

    name: str
    shape: tuple
    method: str  # "full" (every element) or "sampled" (directions + coordinates)
    n_checks: int
    max_rel_error: float
    max_abs_error: float
    worst_index: Optional[tuple]  # index into the input, or None when no element failed/was worse
    analytic: float  # analytic value at the worst check
    numeric: float  # numerical value at the worst check
    ok: bool


@dataclass
class GradcheckReport:
    """What ``gradcheck`` found. ``ok`` is True only when every checked input passed."""

    ok: bool
    checks: List[InputCheck] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # structural failures (shapes, mutation, ...)
    rtol: float = 1e-6
    atol: float = 1e-10

    def __bool__(self) -> bool:  # `assert report` reads naturally
        return self.ok

    def __str__(self) -> str:
        head = f"{'input':<14} {'shape':<18} {'method':<8} {'checks':>6} {'max rel err':>12} " \
               f"{'max abs err':>12} {'worst index':<16} {'analytic':>13} {'numeric':>13}  ok"
        lines = [f"gradcheck: {'PASS' if self.ok else 'FAIL'} (rtol={self.rtol:g}, atol={self.atol:g})", head,
                 "-" * len(head)]
        for c in self.checks:
            idx = "-" if c.worst_index is None else str(c.worst_index)
            lines.append(f"{c.name:<14} {str(c.shape):<18} {c.method:<8} {c.n_checks:>6} "
                         f"{c.max_rel_error:>12.3e} {c.max_abs_error:>12.3e} {idx:<16} "
                         f"{c.analytic:>13.6g} {c.numeric:>13.6g}  "
                         f"{'yes' if c.ok else 'NO'}")
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def gradcheck(forward: Callable, backward: Callable, inputs: Sequence, *, wrt: Optional[Sequence] = None,
              eps: float = 1e-6, rtol: float = 1e-6, atol: float = 1e-10, seed: int = 0,
              names: Optional[Sequence[str]] = None, max_full: int = 1000, n_directions: int = 3,
              n_coords: int = 10) -> GradcheckReport:
    """Check ``backward`` against central finite differences of ``forward`` in float64.

    Parameters
    ----------
    forward, backward : the op pair; ``forward(*inputs)`` returns ``(out, cache)`` or
        ``(out, ..., cache)``; ``backward(dout, cache)`` returns the gradients of the floating-point
        array inputs in order (a bare array is accepted when there is exactly one).
    inputs : the positional arguments of ``forward``. Floating-point ndarrays are differentiated
        (copied to float64); everything else (integer arrays, lengths, masks, scalars) is passed
        through unchanged and never perturbed.
    wrt : which floating inputs to check, as positions in ``inputs`` or names; default all.
    eps : relative finite-difference step; ``h = eps * max(1, |x|)``.
    rtol, atol : an entry passes when its relative error <= rtol or its absolute error <= atol.
    seed : seeds ``dout``, the random directions and the sampled coordinates.
    names : display names for the inputs (default ``x0, x1, ...``).
    max_full : inputs up to this many elements are checked element by element.
    """
    inputs = list(inputs)
    if names is None:
        names = [f"x{i}" for i in range(len(inputs))]
    elif len(names) != len(inputs):
        raise ValueError(f"names: expected {len(inputs)} names, one per input, got {len(names)}")
    float_pos = [i for i, x in enumerate(inputs)
                 if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)]
    if not float_pos:
        raise ValueError("inputs: expected at least one floating-point numpy array to differentiate")
    xs = list(inputs)
    for i in float_pos:
        xs[i] = np.array(inputs[i], dtype=np.float64)  # a float64 copy; the caller's array is untouched
    if wrt is None:
        check_pos = list(float_pos)
    else:
        check_pos = []
        for w in wrt:
            i = names.index(w) if isinstance(w, str) else int(w)
            if i not in float_pos:
                raise ValueError(f"wrt: {w!r} is not a floating-point array input")
            check_pos.append(i)

    report = GradcheckReport(ok=True, rtol=rtol, atol=atol)
    rng = np.random.default_rng(seed)

    # One analytic pass, with purity checks on the way.
    snapshot = [x.copy() if isinstance(x, np.ndarray) else None for x in xs]
    out, cache = _split(forward(*xs))
    if not all(s is None or np.array_equal(s, x, equal_nan=True) for s, x in zip(snapshot, xs)):
        report.problems.append("forward wrote into one of its inputs")
    out = np.asarray(out, dtype=np.float64)
    dout = rng.standard_normal(out.shape)
    dout_copy = dout.copy()
    cache_arrays = _arrays_in(cache)
    cache_copies = [a.copy() for a in cache_arrays]
    grads = backward(dout, cache)
    if isinstance(grads, np.ndarray):
        grads = (grads,)
    grads = list(grads)
    if not np.array_equal(dout, dout_copy):
        report.problems.append("backward wrote into dout")
    if not all(np.array_equal(a, c, equal_nan=True) for a, c in zip(cache_arrays, cache_copies)):
        report.problems.append("backward wrote into the cache")
    if not all(s is None or np.array_equal(s, x, equal_nan=True) for s, x in zip(snapshot, xs)):
        report.problems.append("backward wrote into one of the inputs")
    if len(grads) != len(float_pos):
        report.problems.append(f"backward returned {len(grads)} gradients, expected {len(float_pos)} "
                               f"(one per floating-point input)")
        report.ok = False
        return report
    grad_of = dict(zip(float_pos, grads))

    def loss(i: int, xi: np.ndarray) -> float:  # [gradcheck:scalar]
        args = list(xs)
        args[i] = xi
        o = np.asarray(_split(forward(*args))[0], dtype=np.float64)
        return float(np.sum(o * dout))

    for i in check_pos:
        x, g = xs[i], grad_of[i]
        if g is None or np.shape(g) != x.shape:
            report.problems.append(f"{names[i]}: gradient has shape {np.shape(g)}, expected {x.shape}")
            continue
        g = np.asarray(g, dtype=np.float64)
        if x.size <= max_full:
            report.checks.append(_check_full(names[i], x, g, lambda v, i=i: loss(i, v), eps, rtol, atol))
        else:
            report.checks.append(_check_sampled(names[i], x, g, lambda v, i=i: loss(i, v), eps, rtol, atol,
                                                rng, n_directions, n_coords))
    report.ok = not report.problems and all(c.ok for c in report.checks)
    return report


def _arrays_in(obj, depth: int = 0) -> list:
    """Every ndarray reachable through tuples, lists and dicts (NamedTuple caches included)."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if depth > 8:
        return []
    if isinstance(obj, dict):
        obj = list(obj.values())
    if isinstance(obj, (tuple, list)):
        return [a for item in obj for a in _arrays_in(item, depth + 1)]
    return []


def _split(result):
    if not isinstance(result, tuple) or len(result) < 2:
        raise ValueError("forward: expected a tuple (out, cache) or (out, ..., cache)")
    return result[0], result[-1]


def _errors(a: float, n: float):
    abs_err = abs(a - n)
    return abs_err / max(abs(a) + abs(n), 1e-12), abs_err  # [gradcheck:relerr]


def _numeric_coord(loss, x, flat_index, eps):
    h = eps * max(1.0, abs(x.flat[flat_index]))
    xp = x.copy()
    xp.flat[flat_index] += h
    xm = x.copy()
    xm.flat[flat_index] -= h
    return (loss(xp) - loss(xm)) / (2 * h)  # [gradcheck:central]


def _numeric_direction(loss, x, d, eps):
    h = eps * max(1.0, float(np.max(np.abs(x))))
    return (loss(x + h * d) - loss(x - h * d)) / (2 * h)  # [gradcheck:direction]


class _Worst:
    """Keeps the worst entry seen: failing entries rank above passing ones, then by relative error."""

    def __init__(self):
        self.key, self.abs, self.index, self.a, self.n, self.count = (False, -1.0), 0.0, None, 0.0, 0.0, 0

    @property
    def failed(self) -> bool:
        return self.key[0]

    @property
    def rel(self) -> float:
        return max(self.key[1], 0.0)

    def add(self, a, n, index, rtol, atol) -> bool:
        rel, ab = _errors(a, n)
        self.count += 1
        bad = rel > rtol and ab > atol
        if (bad, rel) > self.key:
            self.key, self.abs, self.index, self.a, self.n = (bad, rel), ab, index, a, n
        return bad


def _check_full(name, x, g, loss, eps, rtol, atol) -> InputCheck:
    w = _Worst()
    for k in range(x.size):
        w.add(float(g.flat[k]), _numeric_coord(loss, x, k, eps), np.unravel_index(k, x.shape), rtol, atol)
    return InputCheck(name, x.shape, "full", w.count, w.rel, w.abs, _tup(w.index), w.a, w.n, not w.failed)


def _check_sampled(name, x, g, loss, eps, rtol, atol, rng, n_directions, n_coords) -> InputCheck:
    w = _Worst()
    for _ in range(n_directions):
        d = rng.standard_normal(x.shape)
        d /= np.linalg.norm(d)
        a, n = float(np.sum(g * d)), _numeric_direction(loss, x, d, eps)
        if w.add(a, n, None, rtol, atol) and w.index is None:  # a failing direction: find the element
            k, _, _ = _bisect(loss, x, g, d, eps)
            w.index = np.unravel_index(k, x.shape)
    coords = {0, x.size - 1} | set(rng.choice(x.size, size=min(n_coords, x.size), replace=False).tolist())
    for k in sorted(coords):
        w.add(float(g.flat[k]), _numeric_coord(loss, x, k, eps), np.unravel_index(k, x.shape), rtol, atol)
    return InputCheck(name, x.shape, "sampled", w.count, w.rel, w.abs, _tup(w.index), w.a, w.n, not w.failed)


def _bisect(loss, x, g, d, eps):
    """Follow the half of a failing direction's support with the larger discrepancy to one element."""
    support = np.arange(x.size)
    while support.size > 1:
        best = None
        for half in (support[: support.size // 2], support[support.size // 2:]):
            dh = np.zeros(x.size)
            dh[half] = d.flat[half]
            dh = dh.reshape(x.shape)
            gap = abs(float(np.sum(g * dh)) - _numeric_direction(loss, x, dh, eps))
            if best is None or gap > best[0]:
                best = (gap, half)
        support = best[1]
    k = int(support[0])
    return k, float(g.flat[k]), _numeric_coord(loss, x, k, eps)


def _tup(index):
    return None if index is None else tuple(int(i) for i in index)
