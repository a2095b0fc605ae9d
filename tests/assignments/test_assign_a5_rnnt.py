"""A5 (RNN transducer): the build's self-check, and one planted classic bug per graded item."""

import pytest

from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A5", 7  # the `built` fixture (conftest.py) builds it once per module
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


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


@pytest.mark.slow  # ~20-40 s; test_assign_a3_ctc.py and test_assign_a6_mocha.py run the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)
