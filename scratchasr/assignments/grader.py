"""Grading: every item in its own process, own seed, own timeout; partial credit; Gradescope's results.json.

``grade(aid, submission)`` overlays the files the assignment names (found in ``submission`` as a
package tree, a student copy, or loose files) onto the untouched student copy, runs each item with
``python -m scratchasr.assignments.runner`` and collects the scores. Nothing stops at the first failure.
``results.json`` follows Gradescope's autograder format (``score``, ``tests`` with ``name``, ``score``,
``max_score``, ``output``, ``visibility``); ``format_table`` is the same for a terminal.

Time limits are wall-clock seconds per item (``Item.timeout``) times ``timeout_scale`` times the
environment variable ``SCRATCHASR_GRADE_TIMEOUT_SCALE`` (default 1): a loaded machine (the project's test
suite beside training runs, a shared grading server) sets it so that correctness checks do not fail on
speed; the student copy's public tests, run as a subprocess, inherit it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from .spec import Assignment, get


@dataclass
class GradeResult:
    assignment: str
    items: List[dict]  # runner results, one per item, in spec order
    notes: List[str]

    @property
    def score(self) -> float:
        return float(sum(i["score"] for i in self.items))

    @property
    def max_score(self) -> float:
        """The regular points; bonus items come on top (``bonus_score``, included in ``score``)."""
        return float(sum(i["max_score"] for i in self.items if not i.get("bonus")))

    @property
    def bonus_max(self) -> float:
        return float(sum(i["max_score"] for i in self.items if i.get("bonus")))

    @property
    def complete(self) -> bool:
        """Every item, bonus included, has its full score."""
        return all(abs(i["score"] - i["max_score"]) < 1e-9 for i in self.items)

    def item(self, name: str) -> dict:
        for i in self.items:
            if i["name"] == name:
                return i
        raise KeyError(name)

    def feedback(self, name: str) -> str:
        return item_output(self.item(name))


def _find_submitted(submission: Path, rel: str, *, loose: bool = True) -> Optional[Path]:
    """``rel`` in a package tree, a student copy, or (``loose``) by its bare name beside the others."""
    cands = [submission / "scratchasr" / rel, submission / rel]
    if loose:
        cands.append(submission / Path(rel).name)
    for cand in cands:
        if cand.is_file():
            return cand
    return None


def prepare(a: Assignment, submission: Path, base_package: Path, work: Path) -> tuple:
    """``work/scratchasr``: the student copy ``base_package`` with the submitted files of ``a`` on top."""
    pkg = work / "scratchasr"
    shutil.copytree(base_package, pkg, ignore=shutil.ignore_patterns("__pycache__"))
    notes = []
    names = [Path(rel).name for rel in a.files]
    for rel in a.files:
        loose = names.count(Path(rel).name) == 1  # A2's ops/lstm.py and kernels/lstm.py: paths needed
        src = _find_submitted(submission, rel, loose=loose)
        if src is None:
            where = "" if loose else f" (submit it as {rel} or scratchasr/{rel}: another file has its name)"
            notes.append(f"{rel}: not found in the submission{where}; graded as the untouched stub")
            continue
        shutil.copyfile(src, pkg / rel)
    return pkg, notes


def _child_env() -> dict:
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[k] = "1"
    env.pop("PYTHONPATH", None)  # the grader's scratchasr is the installed one, never the submission's
    from .builder import PKG, is_student_copy

    if is_student_copy():  # a student copy run from its folder: the child imports that same copy
        env["PYTHONPATH"] = str(PKG.parent)
    return env


TIMEOUT_SCALE_ENV = "SCRATCHASR_GRADE_TIMEOUT_SCALE"


def env_timeout_scale() -> float:
    """``SCRATCHASR_GRADE_TIMEOUT_SCALE`` as a positive number (1 when unset); anything else is a ValueError
    naming the variable."""
    raw = os.environ.get(TIMEOUT_SCALE_ENV, "1")
    try:
        v = float(raw)
    except ValueError:
        v = float("nan")
    if not (v > 0 and v < float("inf")):
        raise ValueError(f"{TIMEOUT_SCALE_ENV}: expected a positive number, got {raw!r}")
    return v


def run_items(a: Assignment, package: Path, *, items: List[str], seeds: Dict[str, int], refs: Optional[Path],
              public_only: bool, solution: bool, isolation: str = "process", timeout_scale: float = 1.0
              ) -> List[dict]:
    """Run ``items`` in child processes: one per item (``"process"``) or one for all (``"batch"``)."""
    if isolation not in ("process", "batch"):
        raise ValueError(f"isolation: expected 'process' or 'batch', got {isolation!r}")
    groups = [[n] for n in items] if isolation == "process" else [list(items)]
    timeout_scale = timeout_scale * env_timeout_scale()
    results: Dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="scratchasr-grade-") as tmp:
        tmp = Path(tmp)
        for k, group in enumerate(groups):
            limit = sum(a.item(n).timeout for n in group) * timeout_scale
            args = {"assignment": a.id, "items": group, "package": str(package),
                    "refs": str(refs) if refs else None, "seeds": {n: seeds[n] for n in group},
                    "public_only": public_only, "solution": solution, "alarm": isolation == "batch",
                    "timeout": max(a.item(n).timeout for n in group) * timeout_scale}
            argf, outf = tmp / f"args{k}.json", tmp / f"out{k}.json"
            argf.write_text(json.dumps(args))
            err = ""
            try:
                proc = subprocess.run(
                    [sys.executable, "-m", "scratchasr.assignments.runner", str(argf), str(outf)],
                    cwd=tmp, env=_child_env(), capture_output=True, text=True, timeout=limit + 30)
                if proc.returncode != 0:
                    err = f"the grading process exited with code {proc.returncode}: " + \
                          (proc.stderr.strip().splitlines() or [""])[-1]
            except subprocess.TimeoutExpired:
                err = f"time limit ({limit:g} s) reached"
            got = json.loads(outf.read_text()) if outf.is_file() and not err else []
            for r in got:
                results[r["name"]] = r
            for n in group:
                if n not in results:
                    it = a.item(n)
                    term = {"name": "run", "weight": 1.0, "public": True, "tags": list(it.tags),
                            "passed": False, "failures": [err or "no result"], "hints": [], "ran": True}
                    results[n] = {"name": n, "score": 0.0, "max_score": float(it.points),
                                  "tags": list(it.tags), "bonus": bool(it.bonus), "terms": [term]}
    return [results[n] for n in items]


def item_output(r: dict) -> str:
    """The feedback of one item: every failed term, its equation tags and hints; every term's notes."""
    lines = []
    for t in r["terms"]:
        if not t["ran"]:
            if t.get("skipped"):
                lines.append(f"  skip {t['name']}: {t['skipped']} (not counted)")
            else:
                lines.append(f"  [hidden] {t['name']}: run by the grader only")
            continue
        status = "ok  " if t["passed"] else "FAIL"
        kind = "" if t["public"] else " [hidden case]"
        lines.append(f"  {status} {t['name']}{kind}")
        if not t["passed"]:
            tags = " ".join(f"[{x}]" for x in t["tags"])
            if tags:
                lines.append(f"       equation: {tags}")
            for f in t["failures"]:
                for k, fl in enumerate(str(f).splitlines()):
                    lines.append(("       " if k == 0 else "         ") + fl)
            for h in t["hints"]:
                lines.append(f"       hint: {h}")
        for n in t.get("notes", ()):
            lines.append(f"       note (not graded): {n}")
    return "\n".join(lines)


def format_table(res: GradeResult) -> str:
    w = max([len(i["name"]) for i in res.items] + [4])
    bonus = f" (bonus items: up to {res.bonus_max:g} more)" if res.bonus_max else ""
    lines = [f"{res.assignment}: {res.score:.2f} / {res.max_score:.2f} points{bonus}", "",
             f"{'item':<{w}}  {'score':>6}  {'max':>5}  equation tags", "-" * (w + 40)]
    for i in res.items:
        lines.append(f"{i['name']:<{w}}  {i['score']:>6.2f}  {i['max_score']:>5.1f}  "
                     + " ".join(f"[{t}]" for t in i["tags"]) + ("  (bonus)" if i.get("bonus") else ""))
    lines += [f"note: {n}" for n in res.notes]
    for i in res.items:
        failed = any(not t["passed"] for t in i["terms"] if t["ran"])
        if i["score"] < i["max_score"] or failed or any(t.get("notes") for t in i["terms"]):
            lines += ["", f"{i['name']} ({i['score']:.2f} / {i['max_score']:.1f}):", item_output(i)]
    return "\n".join(lines)


def results_json(res: GradeResult) -> dict:
    """Gradescope's ``results.json``."""
    tests = []
    for n, i in enumerate(res.items, 1):
        tests.append({"name": i["name"] + (" (bonus)" if i.get("bonus") else ""), "number": str(n),
                      "score": round(i["score"], 4),
                      "max_score": i["max_score"], "tags": i["tags"], "output": item_output(i),
                      "visibility": "visible"})
    return {"score": round(res.score, 4),
            "output": f"{res.assignment}: {res.score:.2f} / {res.max_score:.2f}",
            "tests": tests, "visibility": "visible", "stdout_visibility": "hidden"}


def grade(aid: str, submission, *, autograder=None, results=None, isolation: str = "process",
          items: Optional[List[str]] = None, timeout_scale: float = 1.0) -> GradeResult:
    """Grade ``submission`` (a folder) for assignment ``aid``.

    ``autograder`` is the folder written by ``build`` (hidden references, seeds, the untouched student
    package); without it one is built on the fly in a temporary folder (no self-check). ``results``:
    where to write Gradescope's ``results.json``.
    """
    from .builder import build_autograder, is_student_copy

    if is_student_copy():
        raise ValueError("grade: this installation is a student copy; grading needs the instructor's "
                         "solution package (use `scratchasr assignment check` for the public checks)")
    a = get(aid)
    submission = Path(submission)
    if not submission.is_dir():
        raise ValueError(f"submission: expected a folder, got {str(submission)!r}")
    with tempfile.TemporaryDirectory(prefix="scratchasr-grade-") as tmp:
        tmp = Path(tmp)
        if autograder is None:
            autograder = tmp / "autograder"
            build_autograder(a, autograder)
        autograder = Path(autograder)
        manifest = json.loads((autograder / "manifest.json").read_text())
        if manifest["assignment"] != a.id:
            raise ValueError(f"autograder: {autograder} was built for {manifest['assignment']}, not {a.id}")
        pkg, notes = prepare(a, submission, autograder / "student" / "scratchasr", tmp / "work")
        names = items or [i.name for i in a.items]
        out = run_items(a, pkg, items=names, seeds={k: int(v) for k, v in manifest["seeds"].items()},
                        refs=autograder / "hidden.npz", public_only=False, solution=True, isolation=isolation,
                        timeout_scale=timeout_scale)
    res = GradeResult(a.id, out, notes)
    if results is not None:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
        Path(results).write_text(json.dumps(results_json(res), indent=1))
    return res


def check(aid: str, student_dir=None, *, isolation: str = "batch") -> GradeResult:
    """The public checks in a student copy: the same terms as the grader, public seeds and references."""
    a = get(aid)
    root = Path(student_dir) if student_dir is not None else _default_student_dir()
    pkg = root / "scratchasr"
    pub = root / "fixtures" / f"{a.slug}_public.json"
    if not pkg.is_dir() or not pub.is_file():
        raise ValueError(f"student_dir: {str(root)!r} is not a student copy of {a.id} "
                         f"(expected scratchasr/ and fixtures/{pub.name})")
    manifest = json.loads(pub.read_text())
    from .builder import is_student_copy

    out = run_items(a, pkg, items=[i.name for i in a.items],
                    seeds={k: int(v) for k, v in manifest["seeds"].items()},
                    refs=root / "fixtures" / f"{a.slug}_public.npz", public_only=True,
                    solution=not is_student_copy(), isolation=isolation)
    return GradeResult(a.id, out, [])


def _default_student_dir() -> Path:
    cwd = Path.cwd()
    if (cwd / "scratchasr").is_dir():
        return cwd
    import scratchasr

    return Path(scratchasr.__file__).resolve().parents[1]
