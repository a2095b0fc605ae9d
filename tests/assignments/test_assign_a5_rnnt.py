"""A5 (RNN transducer): the build's self-check, and one planted classic bug per graded item."""

import pytest

from scratchasr.assignments import build
from scratchasr.assignments.planted import Bug, grade_planted, run_student_tests, verify_planted

BUGS = [
    # log-sum-exp without the maximum: exp overflows for large logits
    Bug("lattice", "losses/rnnt.py", "lz = m + np.log(np.exp(x - m[:, None]).sum(axis=1))",
        "lz = np.log(np.exp(x).sum(axis=1))", "rnnt:log-softmax", "NaN"),
    # the blank that leads into (t, u) is emitted at (t-1, u), not at (t, u)
    Bug("alpha", "losses/rnnt.py", "from_blank[k] = la[t[k] - 1, u[k]] + lb[t[k] - 1, u[k]]",
        "from_blank[k] = la[t[k] - 1, u[k]] + lb[t[k], u[k]]", "rnnt:alpha-rec"),
    # beta starts at the last node without the final blank that leaves the lattice
    Bug("beta", "losses/rnnt.py", "lbeta[Tb - 1, Ub] = lb[Tb - 1, Ub]", "lbeta[Tb - 1, Ub] = 0.0",
        "rnnt:beta-rec"),
    # the blank entry subtracts the whole node occupancy instead of the blank transition's posterior
    Bug("fused-gradient", "losses/rnnt.py", "g[:, blank] -= g_blank  # [rnnt:grad]",
        "g[:, blank] -= occ  # [rnnt:grad]", "rnnt:grad"),
    # FastEmit scales the label entry but forgets the softmax term: the gradient no longer sums to 0
    Bug("fastemit", "losses/rnnt.py", "coef = (occ + fastemit_lambda * g_emit) * np.exp(",
        "coef = (occ) * np.exp(", "rnnt:fastemit"),
    # one label per frame at most: the frame ends after the first label instead of at a blank
    Bug("greedy", "decode/transducer.py", "    for _ in range(max_symbols):\n        if not going.any():",
        "    for _ in range(1):\n        if not going.any():", "transducer:greedy"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("a5") / "build"
    summary = build("A5", out, seed=7, isolation="batch")
    return out, summary


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 14.0 and summary["stub"] == 0.0
    student = out / "student" / "scratchasr"
    text = (student / "losses" / "rnnt.py").read_text()
    assert "raise NotImplementedError('A5: implement [rnnt:alpha-rec] [rnnt:loglik]" in text
    assert "raise NotImplementedError('A5: implement [transducer:greedy]" in \
        (student / "decode" / "transducer.py").read_text()
    assert "removed_for_assignment = 'A5'" in (student / "kernels" / "rnnt.py").read_text()
    assert (out / "student" / "README.md").read_text().startswith("# A5")


@pytest.mark.parametrize("bug", BUGS, ids=[b.item for b in BUGS])
def test_planted_bug(built, bug):
    out, _ = built
    verify_planted(grade_planted("A5", out / "autograder", bug), bug)


def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    out, _ = built
    stub = run_student_tests("A5", out, tmp_path / "stub", complete=False)
    assert stub.returncode != 0 and "6 failed" in stub.stdout and "test_equation_tags" not in stub.stdout, \
        stub.stdout[-3000:]
    done = run_student_tests("A5", out, tmp_path / "done", complete=True)
    assert done.returncode == 0, done.stdout[-3000:]
