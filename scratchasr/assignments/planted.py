"""Planted bugs: prove that the grader takes points off the right item and names the right equation.

``grade_planted(aid, autograder, bug)`` copies the solution copy of a built assignment, applies one
textual edit (``Bug.file``, ``Bug.old`` -> ``Bug.new``; ``old`` must occur exactly once), grades it,
and returns the result; ``verify_planted`` asserts that only ``Bug.item`` lost points and that its
feedback names ``Bug.tag`` (and ``Bug.hint`` when given). tests/assignments/ holds one bug per graded item.
``verify_student_copy`` runs a built student copy's own tests, untouched and completed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .grader import GradeResult, format_table, grade


@dataclass(frozen=True)
class Bug:
    item: str  # the item that must lose points
    file: str  # package-relative file, e.g. "ops/linear.py"
    old: str  # exact text in the solution (occurs once)
    new: str  # the buggy text
    tag: str  # the equation tag the feedback must name, e.g. "ops:linear-back"
    hint: Optional[str] = None  # a substring the feedback's hint must contain (e.g. "transpose")


def grade_planted(aid: str, autograder, bug: Bug, *, isolation: str = "batch") -> GradeResult:
    autograder = Path(autograder)
    with tempfile.TemporaryDirectory(prefix="scratchasr-planted-") as tmp:
        sub = Path(tmp) / "submission"
        shutil.copytree(autograder / "solution" / "scratchasr", sub / "scratchasr",
                        ignore=shutil.ignore_patterns("__pycache__"))
        f = sub / "scratchasr" / bug.file
        text = f.read_text()
        n = text.count(bug.old)
        if n != 1:
            raise ValueError(f"bug: {bug.old!r} occurs {n} times in {bug.file}, expected once")
        f.write_text(text.replace(bug.old, bug.new))
        return grade(aid, sub, autograder=autograder, isolation=isolation)


def verify_planted(res: GradeResult, bug: Bug) -> None:
    """AssertionError unless only ``bug.item`` lost points and its feedback names the tag (and hint)."""
    table = format_table(res)
    for it in res.items:
        full = abs(it["score"] - it["max_score"]) < 1e-9
        if it["name"] == bug.item:
            assert not full, f"planted bug in {bug.file} did not cost points on {bug.item}:\n{table}"
        else:
            assert full, f"planted bug for {bug.item} also cost points on {it['name']}:\n{table}"
    out = res.feedback(bug.item)
    assert f"[{bug.tag}]" in out, f"feedback of {bug.item} does not name [{bug.tag}]:\n{out}"
    if bug.hint is not None:
        assert bug.hint in out, f"feedback of {bug.item} has no hint containing {bug.hint!r}:\n{out}"


def verify_student_copy(aid: str, out, work) -> None:
    """AssertionError unless the handed-out copy of a build ``out``, used as the installed package, fails
    its public checks untouched (one failure per item; the equation-tag test passes) and passes them
    once the solution's files are put in."""
    from .spec import get

    n = len(get(aid).items)
    work = Path(work)
    stub = run_student_tests(aid, out, work / "stub", complete=False)
    failed = stub.returncode != 0 and f"{n} failed" in stub.stdout
    assert failed and "test_equation_tags" not in stub.stdout, stub.stdout[-3000:]
    done = run_student_tests(aid, out, work / "done", complete=True)
    assert done.returncode == 0, done.stdout[-3000:]


def run_student_tests(aid: str, out, work, *, complete: bool) -> subprocess.CompletedProcess:
    """Copy ``out/student`` to ``work``, optionally fill it in with the solution's files (``complete``), and
    run its own tests (public checks + equation tags) with the copy as the installed package."""
    from .spec import get

    a = get(aid)
    out, work = Path(out), Path(work)
    shutil.copytree(out / "student", work, ignore=shutil.ignore_patterns("__pycache__"))
    if complete:
        for rel in list(a.files) + list(a.withheld):
            shutil.copyfile(out / "autograder" / "solution" / "scratchasr" / rel, work / "scratchasr" / rel)
    env = dict(os.environ, PYTHONPATH=str(work), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=900)
