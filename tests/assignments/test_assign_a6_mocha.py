"""A6 (monotonic attention and MoChA): the build's self-check, and one planted classic bug per graded item."""

from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A6", 7  # the `built` fixture (conftest.py) builds it once per module
BUGS = [
    # the mass that walks past frame j is what reached j and did not stop, not alpha_prev_j alone
    Bug("monotonic-forward", "ops/mocha.py", "        carry = (1.0 - p[:, j]) * qj\n",
        "        carry = (1.0 - p[:, j]) * alpha_prev[:, j]\n", "mocha:q-rec"),
    # dq_j forgets that q_{j+1} is reached only by not stopping at j
    Bug("monotonic-backward", "ops/mocha.py",
        "g = np.where(v, p[:, j] * dalpha[:, j] + (1.0 - p[:, j]) * g_next, 0.0)",
        "g = np.where(v, p[:, j] * dalpha[:, j] + g_next, 0.0)", "mocha:dq-rec"),
    # the authors' demo: exp of raw energies (no per-chunk maximum) overflows for large energies
    Bug("chunk-forward", "ops/mocha.py", "    ex = np.exp(uw - m)  # every exponent",
        "    ex = np.exp(uw)  # every exponent", "mocha:chunk-max", "NaN"),
    # the direct term of the chunk softmax's own energy dropped
    Bug("chunk-backward", "ops/mocha.py", "du[:] = np.where(valid, beta * dbeta - _scatter",
        "du[:] = np.where(valid, - _scatter", "mocha:du-chunk"),
    # inclusive instead of exclusive cumulative product: frame j's own (1 - p_j) divides it out
    Bug("parallel-form", "ops/mocha.py",
        "log_cp = np.concatenate([np.zeros((B, 1)), np.cumsum(log_x, axis=1)[:, :-1]], axis=1)",
        "log_cp = np.cumsum(log_x, axis=1)", "mocha:parallel"),
    # thresholding the energy at 0.5 instead of the probability sigma(e) at 0.5
    Bug("hard-attention", "ops/mocha.py", "fired = np.flatnonzero(e[b, t_prev[b]:lengths[b]] >= 0)",
        "fired = np.flatnonzero(e[b, t_prev[b]:lengths[b]] >= 0.5)", "mocha:hard"),
]


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 14.0 and summary["stub"] == 0.0
    student = out / "student" / "scratchasr"
    text = (student / "ops" / "mocha.py").read_text()
    assert "raise NotImplementedError('A6: implement [mocha:q-rec] [mocha:alpha-rec]" in text
    assert "carry = (1.0 - p[:, j]) * qj" not in text
    assert "removed_for_assignment = 'A6'" in (student / "kernels" / "mocha.py").read_text()
    assert (out / "student" / "README.md").read_text().startswith("# A6")


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)
