"""Assignment markers: blanking keeps indentation and equation tags, other assignments stay solved,
malformed markers are refused; the CLI lists, builds nothing twice into one folder, and grades."""

import json

import pytest

from scratchasr.assignments.markers import MarkerError, blank_text, scan

SRC = '''def f(x):
    """Doc."""
    y = x + 1
    # BEGIN ASSIGNMENT A3 points=2
    z = y * 2  # [ctc:alpha-rec]
    if z:
        z = z + 1  # [ctc:beta-rec]
    # END ASSIGNMENT
    w = z - 1  # [ctc:grad]  # BLANK A3
    # BEGIN ASSIGNMENT A4
    w = w + 3
    # END ASSIGNMENT
    return w
'''
TAGS = {"ctc:alpha-rec": "docs/equations/ctc.md", "ctc:beta-rec": "docs/equations/ctc.md",
        "ctc:grad": "docs/equations/ctc.md"}


def test_scan_finds_regions_points_and_tags():
    regions = scan(SRC)
    assert [(r.assignment, r.kind, r.points, r.tags) for r in regions] == [
        ("A3", "region", 2, ["ctc:alpha-rec", "ctc:beta-rec"]), ("A3", "line", None, ["ctc:grad"]),
        ("A4", "region", None, [])]


def test_blank_replaces_regions_keeps_indentation_and_tags():
    out = blank_text(SRC, "A3", TAGS)
    assert ("    raise NotImplementedError('A3: implement [ctc:alpha-rec] [ctc:beta-rec], see "
            "docs/equations/ctc.md')\n") in out
    assert "    raise NotImplementedError('A3: implement [ctc:grad], see docs/equations/ctc.md')\n" in out
    assert "z = y * 2" not in out and "w = z - 1" not in out
    assert "    w = w + 3\n" in out and "ASSIGNMENT" not in out  # A4 stays solved, its markers go
    compile(out, "<out>", "exec")


def test_solution_copy_only_drops_markers():
    out = blank_text(SRC, None, TAGS)
    assert "ASSIGNMENT" not in out and "BLANK" not in out
    ns = {}
    exec(out, ns)
    assert ns["f"](1) == 7


@pytest.mark.parametrize("bad, msg", [
    ("    # BEGIN ASSIGNMENT A1\n    x = 1\n", "without an END"),
    ("    x = 1\n    # END ASSIGNMENT\n", "without a BEGIN"),
    ("# BEGIN ASSIGNMENT A1\n# BEGIN ASSIGNMENT A2\n# END ASSIGNMENT\n# END ASSIGNMENT\n", "inside the open"),
    ("# BEGIN ASSIGNMENT 3\n", "malformed marker"),
])
def test_malformed_markers_are_refused(bad, msg):
    with pytest.raises(MarkerError, match=msg):
        scan(bad, "f.py")


def test_blank_line_must_be_a_statement():
    src = "def f():\n    return (1 +  # BLANK A1\n            2)\n"
    with pytest.raises(MarkerError, match="BLANK line must be one complete statement"):
        blank_text(src, "A1", {})


def test_cli_lists_and_refuses_a_non_empty_out(tmp_path, capsys):
    from scratchasr.cli import main

    assert main(["assignment", "list"]) == 0
    listed = capsys.readouterr().out
    for aid in ("A0", "A1", "A2", "A3"):
        assert f"{aid}  " in listed
    (tmp_path / "x").write_text("")
    assert main(["assignment", "build", "A0", "--out", str(tmp_path)]) == 2
    assert "out:" in capsys.readouterr().err
    assert main(["assignment", "build", "A9", "--out", str(tmp_path / "new")]) == 2
    assert "assignment: unknown id" in capsys.readouterr().err


def test_cli_grade_writes_gradescope_results(tmp_path, capsys):
    """grade without --autograder records the hidden cases on the fly; a submission of loose files."""
    from pathlib import Path

    import scratchasr
    from scratchasr.cli import main

    sub = tmp_path / "submission"
    sub.mkdir()
    pkg = Path(scratchasr.__file__).parent
    for rel in ("ops/linear.py", "ops/softmax.py"):  # norm.py missing: graded as the stub
        (sub / Path(rel).name).write_text((pkg / rel).read_text())
    res = tmp_path / "out" / "results.json"
    assert main(["assignment", "grade", "A0", str(sub), "--results", str(res)]) == 0  # an item per process
    table = capsys.readouterr().out
    assert "ops/norm.py: not found in the submission" in table
    r = json.loads(res.read_text())
    scores = {t["name"]: (t["score"], t["max_score"]) for t in r["tests"]}
    assert scores["linear-backward"] == (3.0, 3.0) and scores["softmax-backward"] == (2.0, 2.0)
    assert scores["layer-norm-forward"] == (0.0, 2.0) and scores["layer-norm-backward"] == (0.0, 3.0)
    assert r["score"] == 10.0 and all(t["visibility"] == "visible" for t in r["tests"])


def test_files_sharing_a_name_are_taken_only_from_their_paths(tmp_path):
    """A2 submits ops/lstm.py and kernels/lstm.py: a loose lstm.py is ambiguous and overwrites neither."""
    from scratchasr.assignments import get
    from scratchasr.assignments.grader import prepare

    base = tmp_path / "base"
    for rel in ("ops/lstm.py", "kernels/lstm.py", "ops/other.py"):
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_text(f"# stub {rel}\n")
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "lstm.py").write_text("# the student's ops\n")
    pkg, notes = prepare(get("A2"), loose, base, tmp_path / "w1")
    assert (pkg / "ops" / "lstm.py").read_text() == "# stub ops/lstm.py\n"
    assert (pkg / "kernels" / "lstm.py").read_text() == "# stub kernels/lstm.py\n"
    assert len(notes) == 2 and all("another file has its name" in n for n in notes)
    tree = tmp_path / "tree"
    (tree / "kernels").mkdir(parents=True)
    (tree / "kernels" / "lstm.py").write_text("# the student's kernel\n")
    pkg, notes = prepare(get("A2"), tree, base, tmp_path / "w2")
    assert (pkg / "kernels" / "lstm.py").read_text() == "# the student's kernel\n"
    assert [n.split(":")[0] for n in notes] == ["ops/lstm.py"]


def test_generic_mistakes_are_recognised():
    import numpy as np

    from scratchasr.assignments.mistakes import diagnose, hint

    rng = np.random.default_rng(0)
    ref = rng.standard_normal((3, 4))
    mask = np.array([[True] * 3 + [False]] * 3)
    assert diagnose(-ref, ref) == "sign"
    assert diagnose(ref.T.copy(), ref) == "transpose"
    assert diagnose(ref.astype(np.float32), ref) == "float32"
    assert diagnose(2.0 * ref, ref) == "scale"
    nan = ref.copy()
    nan[1, 2] = np.nan
    assert diagnose(nan, ref) == "nan"
    neg = ref.copy()
    neg[0, 0] = -np.inf
    assert diagnose(neg, ref) == "unreachable"
    ref_pad = np.where(mask, ref, 0.0)
    assert diagnose(ref, ref_pad, mask=mask) == "padding-leak"
    assert diagnose(ref + rng.standard_normal(ref.shape), ref) is None
    assert "skip rule" in hint("skip-rule/any") and hint("not a key") == "not a key"
