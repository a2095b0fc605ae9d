"""A0 (basic ops): the build's self-check, and one planted classic bug per graded item."""

import pytest

from scratchasr.assignments import build
from scratchasr.assignments.planted import Bug, grade_planted, run_student_tests, verify_planted

BUGS = [
    Bug("linear-forward", "ops/linear.py", "        y = y + b\n", "        y = y - b\n", "ops:linear"),
    Bug("linear-backward", "ops/linear.py", "dW = dy2.T @ x2", "dW = (x2.T @ dy2).T * 1.5", "ops:linear-back",
        "constant factor"),
    Bug("softmax-forward", "ops/softmax.py", "    z = x - m\n", "    z = x\n", "ops:log-softmax", "NaN"),
    Bug("softmax-backward", "ops/softmax.py", "return (y * (dy - np.sum(dy * y, axis=axis, keepdims=True)),)",
        "return (-y * (dy - np.sum(dy * y, axis=axis, keepdims=True)),)", "ops:softmax-back", "sign"),
    Bug("log-softmax-backward", "ops/softmax.py", "return (dy - np.exp(log_y) * np.sum(dy, axis=axis, "
        "keepdims=True),)", "return (dy - np.exp(log_y) * np.sum(dy, axis=-1, keepdims=True),)",
        "ops:log-softmax-back"),
    Bug("layer-norm-forward", "ops/norm.py", "var = np.mean(xc * xc, axis=-1, keepdims=True)",
        "var = np.sum(xc * xc, axis=-1, keepdims=True) / (x.shape[-1] - 1)", "ops:layer-norm"),
    Bug("layer-norm-backward", "ops/norm.py", "    dx = rstd * (g - g.mean(axis=-1, keepdims=True)\n",
        "    dx = rstd * (g\n", "ops:layer-norm-back"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("a0") / "build"
    summary = build("A0", out, seed=7, isolation="batch")
    return out, summary


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 15.0 and summary["stub"] == 0.0
    assert (out / "student" / "scratchasr" / "ops" / "linear.py").is_file()
    assert "raise NotImplementedError('A0: implement [ops:linear]" in \
        (out / "student" / "scratchasr" / "ops" / "linear.py").read_text()
    assert not (out / "student" / "scratchasr" / "assignments" / "specs" / "a3_ctc.py").exists()


@pytest.mark.parametrize("bug", BUGS, ids=[b.item for b in BUGS])
def test_planted_bug(built, bug):
    out, _ = built
    verify_planted(grade_planted("A0", out / "autograder", bug), bug)


@pytest.mark.slow  # ~15-25 s; tests/assignments/test_assign_a3_ctc.py runs the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    out, _ = built
    stub = run_student_tests("A0", out, tmp_path / "stub", complete=False)
    assert stub.returncode != 0 and "7 failed" in stub.stdout and "test_equation_tags" not in stub.stdout, \
        stub.stdout[-3000:]
    done = run_student_tests("A0", out, tmp_path / "done", complete=True)
    assert done.returncode == 0, done.stdout[-3000:]
