"""A3 (CTC): the build's self-check, the tag test on the student copy, one planted bug per graded item."""

import subprocess
import sys

import pytest

from scratchasr.assignments import build
from scratchasr.assignments.planted import Bug, grade_planted, verify_planted

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


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("a3") / "build"
    summary = build("A3", out, seed=3, isolation="batch")
    return out, summary


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


def test_student_copy_passes_the_tag_test(built):
    out, _ = built
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/test_equation_tags.py"], cwd=out / "student", capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:]


@pytest.mark.parametrize("bug", BUGS, ids=[b.item for b in BUGS])
def test_planted_bug(built, bug):
    out, _ = built
    verify_planted(grade_planted("A3", out / "autograder", bug), bug)
