"""A1 (features): the build's self-check and one planted bug per graded item (kaldi-native-fbank, librosa and
scipy terms run when installed, as in the project's venv)."""

import pytest

from scratchasr.assignments import build
from scratchasr.assignments.planted import Bug, grade_planted, run_student_tests, verify_planted

BUGS = [
    Bug("windows", "features/windows.py", "w = (0.5 - 0.5 * np.cos(a)) ** 0.85",
        "w = (0.5 - 0.5 * np.cos(a)) ** 0.8", "features:window-povey"),
    Bug("framing", "features/windows.py", 'yp = np.pad(y, (pad_left, pad_right), mode="symmetric")',
        'yp = np.pad(y, (pad_left, pad_right), mode="reflect")', "features:frames-snip"),
    Bug("frame-prep", "features/kaldi.py", "buf[:, 0] = (1.0 - preemph) * x[:, 0]", "buf[:, 0] = x[:, 0]",
        "features:preemph"),
    Bug("kaldi-mel", "features/mel.py", "delta = (mel_high - mel_low) / (num_bins + 1)",
        "delta = (mel_high - mel_low) / num_bins", "features:tri-mel"),
    Bug("librosa-mel", "features/mel.py", "weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]",
        "weights *= (1.0 / (mel_f[2:] - mel_f[:-2]))[:, None]", "features:slaney-norm", "constant factor"),
    Bug("dct-lifter", "features/kaldi.py", "D[0, :] = np.sqrt(1.0 / N)", "D[0, :] = np.sqrt(2.0 / N)",
        "features:dct"),
    Bug("deltas", "features/deltas.py", 'mode="edge")', 'mode="constant")', "features:deltas", "delta edges"),
    Bug("cmvn", "features/cmvn.py", "var = ((x - mean) ** 2).mean(axis=0)", "var = x.var(axis=0, ddof=1)",
        "features:cmvn"),
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("a1") / "build"
    summary = build("A1", out, seed=5, isolation="batch")
    return out, summary


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 15.0 and summary["stub"] == 0.0
    stub = (out / "student" / "scratchasr" / "kernels" / "fbank.py").read_text()
    assert "_frame_prep_numpy" in stub and "njit" not in stub


# Each A1 grade imports librosa and runs fbank against kaldi-native-fbank (~7 s on the shared machine): three
# bugs run by default, all of them with -m slow.
DEFAULT = {"windows", "kaldi-mel", "deltas"}


@pytest.mark.parametrize("bug", [b if b.item in DEFAULT else pytest.param(b, marks=pytest.mark.slow)
                                 for b in BUGS], ids=[b.item for b in BUGS])
def test_planted_bug(built, bug):
    out, _ = built
    verify_planted(grade_planted("A1", out / "autograder", bug), bug)


@pytest.mark.slow  # ~15-25 s; tests/assignments/test_assign_a3_ctc.py runs the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    out, _ = built
    stub = run_student_tests("A1", out, tmp_path / "stub", complete=False)
    assert stub.returncode != 0 and "8 failed" in stub.stdout and "test_equation_tags" not in stub.stdout, \
        stub.stdout[-3000:]
    done = run_student_tests("A1", out, tmp_path / "done", complete=True)
    assert done.returncode == 0, done.stdout[-3000:]
