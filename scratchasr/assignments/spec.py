"""How an assignment is declared: an ``Assignment`` of graded ``Item``s, each a list of ``Term``s.

A spec module ``scratchasr/assignments/specs/<slug>.py`` defines ``ASSIGNMENT = Assignment(...)``;
the registry below finds it by its id. docs/assignments.md, "How to add an assignment".

* ``Term(name, fn, weight=1.0, public=True)``: ``fn(ctx)`` generates its inputs from ``ctx.rng`` and
  records evidence through ``ctx.compare`` / ``ctx.gradcheck`` / ``ctx.expect`` (context.py). A term
  passes when it raised nothing and recorded no failure. ``public=False`` terms run only in the
  grader (the handout lists their names, never their inputs).
* ``Item(name, points, tags, terms)``: partial credit ``points * passed weight / total weight``; run in
  its own process with its own seed and ``timeout`` (seconds). ``bonus=True``: its points come on top
  of ``Assignment.points`` (the self-check still wants them from the solution and 0 from the stub).
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

WRITE_KERNEL = "write"  # Assignment.kernels value: a "write the kernel" item, the NumPy twin is the oracle


@dataclass(frozen=True)
class Term:
    name: str
    fn: Callable
    weight: float = 1.0
    public: bool = True  # False: hidden case, run by the grader only
    tags: Sequence[str] = ()  # default: the item's tags


@dataclass(frozen=True)
class Item:
    name: str  # kebab-case, unique within the assignment, e.g. "linear-backward"
    points: float
    tags: Sequence[str]  # equation tags the item grades, e.g. ("ops:linear-back",)
    terms: Sequence[Term]
    description: str = ""
    timeout: float = 120.0  # seconds, per item, in its own process
    bonus: bool = False  # extra credit: not counted in Assignment.points

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(f"term: {name!r} is not a term of item {self.name!r}")


@dataclass(frozen=True)
class Assignment:
    id: str  # "A0"
    slug: str  # "a0_ops": the spec module, the handout and the fixture names
    title: str
    files: Sequence[str]  # files the student edits, relative to the package root ("ops/linear.py")
    items: Sequence[Item]
    handout: str  # handout file name in scratchasr/assignments/handouts/
    docs: Sequence[str] = ()  # extra docs shipped to the student (walkthroughs), relative to docs/
    # kernel file -> {kernel name: "module.path.numpy_twin" (same arguments), None (the stub raises), or
    # WRITE_KERNEL (the kernel stays in the student copy with its regions blanked: the student writes it)}
    kernels: Dict[str, Dict[str, Optional[str]]] = field(default_factory=dict)
    force_numpy: bool = False  # the student copy resolves every backend to "numpy"
    fixtures: Optional[Callable] = None  # fixtures(out_dir: Path) writes small data files for the student
    training: str = ""  # the final training run, shown by `assignment check`
    extras: Sequence[str] = ()  # repository files shipped as they are (a recipe config)
    withheld: Sequence[str] = ()  # files with regions blanked for the student but not submitted (references)

    @property
    def points(self) -> float:
        """The regular points (bonus items excluded)."""
        return float(sum(i.points for i in self.items if not i.bonus))

    @property
    def bonus_points(self) -> float:
        return float(sum(i.points for i in self.items if i.bonus))

    def item(self, name: str) -> Item:
        for i in self.items:
            if i.name == name:
                return i
        raise KeyError(f"item: {name!r} is not an item of {self.id} (items: {[i.name for i in self.items]})")


def _spec_modules():
    from . import specs

    for info in sorted(pkgutil.iter_modules(specs.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{specs.__name__}.{info.name}")


def available() -> List[str]:
    """Ids of the assignments whose spec module is present (A0, A1, ...)."""
    return sorted((m.ASSIGNMENT.id for m in _spec_modules() if hasattr(m, "ASSIGNMENT")),
                  key=lambda a: int(a[1:]))


def get(aid: str) -> Assignment:
    """The assignment with id ``aid`` (case-insensitive, ``a0`` == ``A0``)."""
    if not isinstance(aid, str):
        raise TypeError(f"assignment: expected an id such as 'A0', got {aid!r}")
    found: Dict[str, Assignment] = {}
    for m in _spec_modules():
        a = getattr(m, "ASSIGNMENT", None)
        if a is not None:
            found[a.id] = a
    key = aid.strip().upper()
    if key not in found:
        raise ValueError(f"assignment: unknown id {aid!r}; available: {sorted(found)}")
    return found[key]
