"""What a term sees while it runs: the submission, the solution, a seeded generator, and the evidence API.

``ctx.sub`` is the submitted package (loaded under another name, so both can live in one process);
``ctx.sol`` the instructor's solution (the installed ``scratchasr``), or None when a student runs the
public checks in a student copy. ``ctx.impl(path)`` returns the solution's function where there is
one, else the submission's: backward items build their cache with it, so a wrong forward costs
points on the forward item only.

Evidence (each failure becomes a feedback line; hidden cases never show reference values):

* ``ctx.compare(key, got, ...)``: against the reference recorded from the solution in float64 at build
  time (``ctx.mode == "record"`` stores ``got``; ``"grade"`` compares). On failure: the first wrong
  index named with its axes (``log_alpha[b=1, t=3, s=4]``) and explained (``state l'_4 = y_2``),
  the equation tag, and a hint from the table of classic mistakes (mistakes.py);
* ``ctx.gradcheck(forward, backward, inputs, names=...)``: the shipped float64 finite-difference check;
  its table is the feedback;
* ``ctx.expect(condition, what, hint=None)``: an invariant or oracle (alpha/beta agreement, zeros on
  padding, brute force on tiny sizes);
* ``ctx.note(text)``: information shown in the feedback whether the term passes or not, never graded
  (a kernel's timing against its NumPy twin).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import mistakes as _mistakes

# Tolerances per class of computation (relative, absolute) for float64 forward values.
TOL = {
    "exact": (0.0, 0.0),  # integer results: ids, alignments
    "smooth": (1e-9, 1e-12),  # element-wise / matrix ops
    "sequence": (1e-8, 1e-10),  # recurrences over time, dynamic programmes
    "features": (1e-6, 1e-6),  # signal processing with float32 outputs
}


class TermFailure(Exception):
    """Raised by ``ctx.fail`` to stop a term early with a message."""


class TermSkipped(Exception):
    """Raised by ``ctx.skip``: the term cannot run here (an optional peer library is missing); it does
    not count, neither for nor against."""


class Context:
    def __init__(self, *, item, term, sub, sol, rng: np.random.Generator, mode: str,
                 refs: Dict[str, np.ndarray], prefix: str):
        self.item, self.term = item, term
        self.sub, self.sol = sub, sol
        self.rng = rng
        self.mode = mode  # "record" (store references) or "grade" (compare with them)
        self.refs = refs  # key -> array; record mode adds to it
        self.prefix = prefix  # "<item>/<term>/"
        self.failures: List[str] = []
        self.notes: List[str] = []
        self.hints: List[str] = []

    # ------------------------------------------------------------------ implementations

    def module(self, name: str, *, solution: bool = False):
        """The submission's module ``name`` (``"ops.linear"``), or the solution's with ``solution=True``."""
        pkg = self.sol if solution and self.sol is not None else self.sub
        return importlib.import_module(f"{pkg.__name__}.{name}")

    def fn(self, path: str) -> Callable:
        """The submission's ``"ops.linear.linear_forward"``."""
        mod, _, attr = path.rpartition(".")
        return getattr(self.module(mod), attr)

    def impl(self, path: str) -> Callable:
        """The solution's function when the solution is installed, else the submission's."""
        mod, _, attr = path.rpartition(".")
        return getattr(self.module(mod, solution=True), attr)

    @contextlib.contextmanager
    def swap(self, *paths: str):
        """Inside the block, the solution's functions ``paths`` (``"features.mel.kaldi_mel_banks"``) are
        replaced by the submission's, in every solution module that imported them by name; every
        ``lru_cache`` of those modules is cleared before and after. So an end-to-end check (the
        solution's fbank against kaldi-native-fbank) grades one student function at a time. Without
        the solution (a student copy) the block runs the submission's own pipeline unchanged.
        """
        if self.sol is None:
            yield
            return
        saved = []
        for path in paths:  # import first: the module list below must include them
            self.module(path.rpartition(".")[0], solution=True)
        mods = [m for name, m in list(sys.modules.items())
                if m is not None and (name == self.sol.__name__ or name.startswith(self.sol.__name__ + "."))]

        def clear():
            for m in mods:
                for v in list(vars(m).values()):
                    own = getattr(v, "__module__", "") == m.__name__
                    if own and callable(getattr(v, "cache_clear", None)):
                        v.cache_clear()
        try:
            for path in paths:
                mod, _, attr = path.rpartition(".")
                orig = getattr(self.module(mod, solution=True), attr)
                new = self.fn(path)
                for m in mods:
                    if vars(m).get(attr) is orig:
                        saved.append((m, attr, orig))
                        setattr(m, attr, new)
            clear()
            yield
        finally:
            for m, attr, orig in saved:
                setattr(m, attr, orig)
            clear()

    @contextlib.contextmanager
    def patched(self, path: str, fn: Callable):
        """Inside the block, the module global ``path`` (``"ops.lstm._cell_forward_numpy"``) of the
        implementation ``ctx.impl`` runs (the solution's, or the submission's in a student copy) is ``fn``:
        a student's Numba kernel graded inside the reference loop in place of its NumPy twin."""
        mod, _, attr = path.rpartition(".")
        m = self.module(mod, solution=True)
        orig = getattr(m, attr)
        setattr(m, attr, fn)
        try:
            yield
        finally:
            setattr(m, attr, orig)

    @contextlib.contextmanager
    def solution_inside(self, *paths: str):
        """Inside the block, the submission's module globals ``paths`` (``"ops.lstm._cell_forward_numpy"``)
        are the solution's: the student's sequence loop is graded with the solution's cell, so a wrong
        cell costs points on the cell item only. A no-op without the solution (a student copy)."""
        saved = []
        try:
            if self.sol is not None:
                for path in paths:
                    mod, _, attr = path.rpartition(".")
                    m = self.module(mod)
                    saved.append((m, attr, getattr(m, attr)))
                    setattr(m, attr, getattr(self.module(mod, solution=True), attr))
            yield
        finally:
            for m, attr, orig in saved:
                setattr(m, attr, orig)

    def skip(self, why: str):
        raise TermSkipped(why)

    # ------------------------------------------------------------------ evidence

    @property
    def tags(self) -> Sequence[str]:
        return tuple(self.term.tags) or tuple(self.item.tags)

    def note(self, text: str) -> None:
        """A line of information for the feedback (shown for passed terms too); never graded."""
        self.notes.append(str(text))

    def fail(self, what: str, hint: Optional[str] = None):
        self.failures.append(what)
        if hint:
            self.hints.append(hint)
        raise TermFailure(what)

    def expect(self, condition, what: str, hint: Optional[str] = None) -> bool:
        """Record a failure ``what`` (and an optional hint key or text) unless ``condition``."""
        if bool(condition):
            return True
        self.failures.append(what)
        if hint:
            self.hints.append(_mistakes.hint(hint))
        return False

    def compare(self, key: str, got, *, tol: str = "smooth", axes: Optional[Sequence[str]] = None,
                name: Optional[str] = None, explain: Optional[Callable] = None, mask=None,
                mistakes: Optional[Dict[str, Callable]] = None, input_dtype=np.float64) -> bool:
        """Compare ``got`` with the hidden reference ``key`` (recorded from the solution).

        ``axes`` names the axes for the feedback (``("b", "t", "s")``), ``name`` the array
        (default ``key``); ``explain(index) -> str`` adds the meaning of the first wrong index;
        ``mask`` (broadcastable bool, True = valid) lets a padding leak be recognised; ``mistakes``
        maps a classic-mistake key (mistakes.py) to a function computing what that mistake would
        give (recorded from the solution, so no solution code runs at grade time).
        """
        full = self.prefix + key
        name = name or key
        if self.mode == "record":
            self.refs[full] = np.array(got)
            for mk, f in (mistakes or {}).items():
                self.refs[f"{full}~{mk}"] = np.array(f())
            return True
        if full not in self.refs:
            self.failures.append(f"{name}: no reference recorded for {full!r} (rebuild the assignment)")
            return False
        ref = self.refs[full]
        ok, msg = _compare_arrays(name, got, ref, tol, axes, explain)
        if ok:
            return True
        self.failures.append(msg)
        hint = None
        for mk in (mistakes or {}):  # a recorded classic mistake is the most specific explanation
            variant = self.refs.get(f"{full}~{mk}")
            if hint is None and variant is not None and _close(got, variant, tol):
                hint = mk
        if hint is None:
            hint = _mistakes.diagnose(got, ref, mask=mask, input_dtype=input_dtype)
        if hint:
            self.hints.append(_mistakes.hint(hint))
        return False

    def gradcheck(self, forward: Callable, backward: Callable, inputs: Sequence, *, names: Sequence[str],
                  rtol: float = 1e-6, atol: float = 1e-10, wrt=None,
                  axes: Optional[Dict[str, Sequence]] = None, seed: int = 0) -> bool:
        """The shipped ``gradcheck`` (float64). Always run by the grading process's own copy."""
        from ..testing.gradcheck import gradcheck

        if self.mode == "record":
            return True  # the solution passes by construction; nothing to store
        report = gradcheck(forward, backward, inputs, names=list(names), rtol=rtol, atol=atol, wrt=wrt,
                           seed=seed)
        if report.ok:
            return True
        lines = [f"gradient check failed ({', '.join(self.tags)}):", str(report)]
        for c in report.checks:
            if not c.ok and c.worst_index is not None:
                ax = (axes or {}).get(c.name)
                lines.append(f"first failing entry: d{c.name}{_index_str(c.worst_index, ax)}")
                if abs(c.analytic + c.numeric) < 1e-3 * max(abs(c.numeric), 1e-12):
                    self.hints.append(_mistakes.hint("sign"))
                elif abs(c.analytic) < 1e-14 <= abs(c.numeric):
                    self.hints.append(_mistakes.hint("missing-term"))
        self.failures.append("\n".join(lines))
        return False


def _index_str(index, axes) -> str:
    if axes and len(axes) == len(index):
        return "[" + ", ".join(f"{a}={int(i)}" for a, i in zip(axes, index)) + "]"
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _close(got, ref, tol: str) -> bool:
    try:
        g = np.asarray(got)
        r = np.asarray(ref)
    except Exception:
        return False
    if g.shape != r.shape:
        return False
    rtol, atol = TOL[tol]
    if tol == "exact" or not np.issubdtype(r.dtype, np.floating):
        return bool(np.array_equal(g, r))
    with np.errstate(invalid="ignore"):
        return bool(np.allclose(g.astype(np.float64), r, rtol=rtol, atol=atol, equal_nan=True))


def _compare_arrays(name, got, ref, tol, axes, explain):
    try:
        g = np.asarray(got)
    except Exception:
        return False, f"{name}: expected an array, got {type(got).__name__}"
    if g.dtype == object:
        return False, f"{name}: expected a numeric array, got dtype object"
    if g.shape != ref.shape:
        return False, f"{name}: shape {g.shape}, expected {ref.shape}"
    if _close(g, ref, tol):
        return True, ""
    rtol, atol = TOL[tol]
    if tol == "exact" or not np.issubdtype(ref.dtype, np.floating):
        wrong = g != ref
    else:
        with np.errstate(invalid="ignore", over="ignore"):
            gf = g.astype(np.float64)
            both_inf = np.isinf(gf) & np.isinf(ref) & (np.sign(gf) == np.sign(ref))
            wrong = ~(np.isclose(gf, ref, rtol=rtol, atol=atol, equal_nan=True) | both_inf)
    n_wrong = int(np.count_nonzero(wrong))
    first = tuple(int(i) for i in np.argwhere(wrong)[0]) if n_wrong else ()
    where = f"{name}{_index_str(first, axes)}" if first else name
    msg = f"{where} is the first entry (of {n_wrong} / {wrong.size}) that differs from the hidden reference"
    if np.issubdtype(ref.dtype, np.floating) and n_wrong:
        with np.errstate(invalid="ignore", over="ignore"):
            gf = g.astype(np.float64)
            fin = np.isfinite(gf) & np.isfinite(ref)
            if not np.isfinite(gf[first]) and np.isfinite(ref[first]):
                msg += f"; your value there is {gf[first]} (not finite)"
            elif fin.any():
                err = np.abs(gf - ref)[fin & wrong]
                if err.size:
                    rel = err / np.maximum(np.abs(ref[fin & wrong]) + np.abs(gf[fin & wrong]), 1e-300)
                    msg += f"; largest relative error {rel.max():.1e} (tolerance {rtol:g})"
    if explain is not None and first:
        try:
            msg += f": {explain(first)}"
        except Exception:
            pass
    return False, msg
