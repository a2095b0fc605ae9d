"""A0 (basic ops): the build's self-check, and one planted classic bug per graded item."""

import pytest

from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A0", 7  # the `built` fixture (conftest.py) builds it once per module
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


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 15.0 and summary["stub"] == 0.0
    assert (out / "student" / "scratchasr" / "ops" / "linear.py").is_file()
    assert "raise NotImplementedError('A0: implement [ops:linear]" in \
        (out / "student" / "scratchasr" / "ops" / "linear.py").read_text()
    assert not (out / "student" / "scratchasr" / "assignments" / "specs" / "a3_ctc.py").exists()


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


@pytest.mark.slow  # ~15-25 s; tests/assignments/test_assign_a3_ctc.py runs the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)
