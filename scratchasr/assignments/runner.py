"""Runs graded items against one submitted package; the child-process side of the grader.

``python -m scratchasr.assignments.runner ARGS.json OUT.json`` runs the items named in ARGS.json and
writes their results to OUT.json. The submission is imported under another package name
(``scratchasr_submission``) so that the grading code, the float64 gradient checker and the solution
(all from the installed ``scratchasr``) stay the instructor's. Every term runs inside its own
try/except: no early exit, an exception costs that term only.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
import traceback
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from .context import Context, TermFailure, TermSkipped
from .spec import Assignment, Item, get

ALIAS = "scratchasr_submission"


def load_package(pkg_dir: Path, alias: str = ALIAS):
    """Import the package in ``pkg_dir`` (a folder holding ``__init__.py``) under the name ``alias``."""
    pkg_dir = Path(pkg_dir).resolve()
    if alias in sys.modules:
        return sys.modules[alias]
    spec = importlib.util.spec_from_file_location(alias, pkg_dir / "__init__.py",
                                                  submodule_search_locations=[str(pkg_dir)])
    if spec is None or spec.loader is None:
        raise ImportError(f"package: cannot import {pkg_dir}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[alias] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[alias]
        raise
    return mod


def _student_frame(tb, pkg_name: str) -> str:
    """The innermost traceback line inside the submitted package, for the feedback."""
    where = ""
    for fs in traceback.extract_tb(tb):
        if f"{pkg_name}" in fs.filename or "/scratchasr/" in fs.filename:
            where = f" (at {Path(fs.filename).name}:{fs.lineno}: {fs.line})"
    return where


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def run_item(assignment: Assignment, item: Item, *, sub, sol, seed: int, mode: str,
             refs: Dict[str, np.ndarray], public_only: bool = False, timeout: Optional[float] = None) -> dict:
    """Run every term of ``item``; return ``{"name", "score", "max_score", "terms": [...]}``."""
    terms = []
    use_alarm = timeout is not None and hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, float(timeout))
    timed_out = False
    try:
        for k, term in enumerate(item.terms):
            rec = {"name": term.name, "weight": float(term.weight), "public": bool(term.public),
                   "tags": list(term.tags or item.tags), "passed": False, "failures": [], "hints": [],
                   "ran": True}
            if (public_only and not term.public) or timed_out:
                rec["ran"] = not public_only or term.public
                if timed_out:
                    rec["failures"].append(f"not run: the item's time limit ({timeout:g} s) was reached")
                terms.append(rec)
                continue
            ctx = Context(item=item, term=term, sub=sub, sol=sol, rng=np.random.default_rng([seed, k]),
                          mode=mode, refs=refs, prefix=f"{item.name}/{term.name}/")
            try:
                with np.errstate(all="ignore"):
                    term.fn(ctx)
            except TermFailure:
                pass
            except TermSkipped as e:
                rec["ran"] = False
                rec["skipped"] = str(e)
            except _Timeout:
                timed_out = True
                ctx.failures.append(f"time limit ({timeout:g} s) reached")
            except NotImplementedError as e:
                ctx.failures.append(f"not implemented yet: {e}")
            except Exception as e:  # the submission's error is feedback, not a grader crash
                if mode == "record":
                    raise
                msg = str(e).splitlines()[0] if str(e) else ""
                ctx.failures.append(f"{type(e).__name__}: {msg}{_student_frame(e.__traceback__, ALIAS)}")
            rec["passed"] = not ctx.failures
            rec["failures"] = ctx.failures
            rec["hints"] = list(dict.fromkeys(ctx.hints))
            if ctx.notes:
                rec["notes"] = list(ctx.notes)
            terms.append(rec)
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    ran = [t for t in terms if t["ran"]]
    total = sum(t["weight"] for t in ran)
    got = sum(t["weight"] for t in ran if t["passed"])
    score = float(item.points) * got / total if total else 0.0
    return {"name": item.name, "score": score, "max_score": float(item.points), "tags": list(item.tags),
            "bonus": bool(item.bonus), "terms": terms}


def load_refs(path: Optional[str]) -> Dict[str, np.ndarray]:
    if not path:
        return {}
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = json.loads(Path(argv[0]).read_text())
    out_path = Path(argv[1])
    a = get(args["assignment"])
    refs = load_refs(args.get("refs"))
    results = []
    try:
        sub = load_package(Path(args["package"]))
    except BaseException as e:  # an import error in the submission: every item scores 0, with the reason
        msg = f"your package does not import: {type(e).__name__}: {e}"
        for name in args["items"]:
            it = a.item(name)
            term = {"name": "import", "weight": 1.0, "public": True, "tags": [], "passed": False,
                    "failures": [msg], "hints": [], "ran": True}
            results.append({"name": name, "score": 0.0, "max_score": float(it.points), "tags": list(it.tags),
                            "bonus": bool(it.bonus), "terms": [term]})
        out_path.write_text(json.dumps(results))
        return 0
    sol = None
    if args.get("solution", True):
        import scratchasr as sol  # the grader's own package: the instructor's solution
    for name in args["items"]:
        it = a.item(name)
        results.append(run_item(a, it, sub=sub, sol=sol, seed=int(args["seeds"][name]), mode="grade",
                                refs=refs, public_only=bool(args.get("public_only")),
                                timeout=args.get("timeout") if args.get("alarm") else None))
    out_path.write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
