"""A1 (features): the build's self-check and one planted bug per graded item (kaldi-native-fbank, librosa and
scipy terms run when installed, as in the project's venv)."""

import pytest

from scratchasr.assignments.planted import Bug, grade_planted, verify_planted, verify_student_copy

AID, SEED = "A1", 5  # the `built` fixture (conftest.py) builds it once per module
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


# Each A1 grade imports librosa and runs fbank against kaldi-native-fbank (~7 s on the shared machine): three
# bugs run by default, all of them with -m slow.
SLOW_BUGS = [b.item for b in BUGS if b.item not in {"windows", "kaldi-mel", "deltas"}]


def test_build_self_check(built):
    out, summary = built
    assert summary["solution"] == summary["max"] == 15.0 and summary["stub"] == 0.0
    stub = (out / "student" / "scratchasr" / "kernels" / "fbank.py").read_text()
    assert "_frame_prep_numpy" in stub and "njit" not in stub


def test_planted_bug(built, bug):  # parametrised over BUGS by conftest.py
    verify_planted(grade_planted(AID, built.autograder, bug), bug)


@pytest.mark.slow  # ~15-25 s; tests/assignments/test_assign_a3_ctc.py runs the same proof by default
def test_student_copy_runs_its_own_tests(built, tmp_path):
    """The handed-out copy, installed as the package: its public checks fail on the stub (the tag test
    passes), and pass once the student's files are right."""
    verify_student_copy(AID, built.out, tmp_path)
