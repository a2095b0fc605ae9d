"""A4 (attention and a small LAS): the build's self-check, and one planted classic bug per graded item."""

import pytest

from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A4", 7  # the `built` fixture (conftest.py) builds it once per module
BUGS = [
    # a chunk may peek one chunk ahead: streaming outputs would depend on the future
    Bug("masks", "ops/attention.py", "allowed = c[None, :] <= c[:, None]  #",
        "allowed = c[None, :] <= c[:, None] + 1  #", "attn:mask"),
    # the mask is ignored: padded keys receive attention weight
    Bug("sdpa-forward", "ops/attention.py", "s = np.where(mask, s, -np.inf)  # [attn:softmax]",
        "s = np.array(s)  # [attn:softmax]", "attn:softmax"),
    # the 1/sqrt(d) forgotten in dq (dk keeps it)
    Bug("sdpa-backward", "ops/attention.py", "dq = (ds @ _finite_or_zero(k)) * sc",
        "dq = (ds @ _finite_or_zero(k))", "attn:dscores"),
    # a causal convolution of the previous weights instead of the centred one
    Bug("location-forward", "ops/additive_attention.py", "((0, 0), (K // 2, K // 2)))  # (B, T + K - 1)",
        "((0, 0), (K - 1, 0)))  # (B, T + K - 1)", "attn:location-conv"),
    # the transposed convolution read from the wrong offset
    Bug("location-backward", "ops/additive_attention.py",
        "dalpha_prev = np.where(valid, dpad[:, K // 2:K // 2 + T], 0)",
        "dalpha_prev = np.where(valid, dpad[:, :T], 0)", "attn:dlocation"),
    # attention queried with the previous decoder state instead of s_i (LAS attends with s_i)
    Bug("las-step", "models/las.py", "c, a, ac = location_attention_forward(x, keys[:, j]",
        "c, a, ac = location_attention_forward(s[:, -1], keys[:, j]", "las:attend"),
    # the gradient through input feeding (c_{i-1} is part of step i's input) dropped
    Bug("las-backward", "models/las.py", "dctx = dx[:, E:]  # c_{i-1}",
        "dctx = 0 * dx[:, E:]  # c_{i-1}", "las:dspeller"),
]


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 17.0 and summary["stub"] == 0.0
    student = out / "student" / "scratchasr"
    assert "raise NotImplementedError('A4: implement [attn:scores]" in \
        (student / "ops" / "attention.py").read_text()
    assert "raise NotImplementedError('A4: implement [las:speller-state]" in \
        (student / "models" / "las.py").read_text()
    solution = out / "autograder" / "solution" / "scratchasr"
    assert "# BLANK" not in (solution / "ops" / "attention.py").read_text()
    assert (out / "student" / "README.md").read_text().startswith("# A4")


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


@pytest.mark.slow  # ~20-40 s; test_assign_a3_ctc.py and test_assign_a6_mocha.py run the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)
