"""A2 (LSTM): the build's self-check and one planted bug per graded item, the Numba-kernel bonus included."""

import pytest

from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A2", 11  # the `built` fixture (conftest.py) builds it once per module
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
    Bug(  # the bonus: the student's backward kernel drops the carried cell gradient
        "numba-cell",
        "kernels/lstm.py",
        "dct = dc_next[b, j] + dh * go * (1.0 - tc * tc)",
        "dct = dh * go * (1.0 - tc * tc)",
        "lstm:dcell",
    ),
]


def test_build_self_check(built):
    out, summary = built
    assert summary["max"] == 11.0 and summary["bonus"] == 2.0  # the Numba cell is a graded bonus
    assert summary["solution"] == 13.0 and summary["stub"] == 0.0
    student = out / "student" / "scratchasr"
    kernel = (student / "kernels" / "lstm.py").read_text()  # write-the-kernel: the cell kernels are blanked
    for tags in ("[lstm:gates] [lstm:cell] [lstm:hidden] [lstm:mask]",
                 "[lstm:dcell] [lstm:dgates] [lstm:dmask]"):
        assert f"    raise NotImplementedError('A2: implement {tags}" in kernel
    assert "cc = gf * c_prev[b, j] + gi * gg" not in kernel and "@njit" in kernel
    # the whole-sequence kernels would answer the loop items: stubs running the NumPy twins
    assert "def lstm_sequence_forward_kernel(*args, **kwargs):" in kernel and "T - 1 - step" not in kernel
    ref = (student / "testing" / "reference.py").read_text()  # the naive LSTM is withheld too
    assert "raise NotImplementedError('A2: implement" in ref and "c = f * c + i * g" not in ref


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


@pytest.mark.slow  # ~15-25 s; tests/assignments/test_assign_a3_ctc.py runs the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)
