"""A2 (LSTM): the build's self-check and one planted bug per graded item."""

import pytest

from scratchasr.assignments import build
from scratchasr.assignments.planted import Bug, grade_planted, run_student_tests, verify_planted

BUGS = [
    Bug(
        "cell-forward", "ops/lstm.py", "cc = gf * c_prev + gi * gg", "cc = gi * c_prev + gf * gg", "lstm:cell"
    ),
    Bug(
        "sequence-forward", "ops/lstm.py", "t = T - 1 - step if reverse else step", "t = step", "lstm:reverse"
    ),
    Bug(
        "cell-backward",
        "ops/lstm.py",
        "dct = dc_next + dh * go * (1 - tanh_c * tanh_c)",
        "dct = dh * go * (1 - tanh_c * tanh_c)",
        "lstm:dcell",
    ),
    Bug(
        "bptt",
        "ops/lstm.py",
        "    db = da2.sum(0)\n",
        "    db = da2.mean(0)\n",
        "lstm:dweights",
        "constant factor",
    ),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("a2") / "build"
    summary = build("A2", out, seed=11, isolation="batch")
    return out, summary


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 11.0 and summary["stub"] == 0.0
    student = out / "student" / "scratchasr"
    assert "njit" not in (student / "kernels" / "lstm.py").read_text()
    ref = (student / "testing" / "reference.py").read_text()  # the naive LSTM is withheld too
    assert "raise NotImplementedError('A2: implement" in ref and "c = f * c + i * g" not in ref


@pytest.mark.parametrize("bug", BUGS, ids=[b.item for b in BUGS])
def test_planted_bug(built, bug):
    out, _ = built
    verify_planted(grade_planted("A2", out / "autograder", bug), bug)


@pytest.mark.slow  # ~15-25 s; tests/assignments/test_assign_a3_ctc.py runs the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    out, _ = built
    stub = run_student_tests("A2", out, tmp_path / "stub", complete=False)
    assert stub.returncode != 0 and "4 failed" in stub.stdout and "test_equation_tags" not in stub.stdout, \
        stub.stdout[-3000:]
    done = run_student_tests("A2", out, tmp_path / "done", complete=True)
    assert done.returncode == 0, done.stdout[-3000:]
