"""A3 (CTC): the build's self-check, the tag test on the student copy, one planted bug per graded item."""

import pytest

from scratchasr.assignments import build
from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A3", 3  # the `built` fixture (conftest.py) builds it once per module
BUGS = [
    Bug("ctc-alpha", "losses/ctc.py", "a2 = np.where(skip, _shift(a, 2), NEG_INF)", "a2 = _shift(a, 2)",
        "ctc:alpha-rec", "skip rule"),
    Bug("ctc-beta", "losses/ctc.py", "beta[max(N - 2, 0):] = 0.0", "beta[N - 1:] = 0.0", "ctc:beta-init"),
    Bug("ctc-gradient", "losses/ctc.py", "dlogits[b, :Tb] = g * scale[b]", "dlogits[b, :Tb] = -g * scale[b]",
        "ctc:grad", "sign"),
    Bug("ctc-viterbi", "losses/ctc.py", "delta = cand[k, np.arange(N)] + log_y[t]",
        "delta = np.logaddexp.reduce(cand, axis=0) + log_y[t]", "ctc:viterbi"),
    Bug("ctc-greedy", "decode/ctc.py", "        keep = np.ones(best.shape, dtype=bool)\n",
        "        best = best[best != blank]\n        keep = np.ones(best.shape, dtype=bool)\n",
        "ctc-decode:greedy", "collapse rule"),
    Bug("ctc-prefix-beam", "decode/ctc.py", "src = h.p_b if c == last else p_tot", "src = p_tot",
        "ctc-decode:prefix-extend"),
]


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 18.0 and summary["stub"] == 0.0
    student = out / "student" / "scratchasr"
    text = (student / "losses" / "ctc.py").read_text()
    assert "raise NotImplementedError('A3: implement [ctc:alpha-init] [ctc:alpha-rec] [ctc:loglik]" in text
    assert "np.logaddexp(np.logaddexp(a, _shift(a, 1)), a2)" not in text
    assert "ctc_forward_kernel" in (student / "kernels" / "ctc.py").read_text()
    assert "@" not in (student / "kernels" / "ctc.py").read_text()  # the Numba solution is not shipped
    assert "_ctc_forward_numpy" in (student / "kernels" / "ctc.py").read_text()


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)


@pytest.mark.slow  # tests/assignments/test_assign_markers.py grades A0 item per process by default
def test_build_with_one_process_per_item(tmp_path):
    """The CLI's default isolation (each item in its own process) for a whole build with its self-check."""
    summary = build("A3", tmp_path / "build", seed=4, isolation="process")
    assert summary["solution"] == 18.0 and summary["stub"] == 0.0
