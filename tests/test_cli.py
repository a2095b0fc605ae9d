"""The scratchasr command line (argument handling; synthesis itself is tested in tests/data)."""

from __future__ import annotations

import pytest

from scratchasr.cli import build_parser, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("synth-timit", "train", "decode", "transcribe"):
        assert cmd in out


def test_synth_timit_arguments():
    args = build_parser().parse_args(["synth-timit", "OUT", "--size", "tiny", "--seed", "4",
                                      "--holdout-voices", "awb,slt", "--jobs", "1"])
    assert (args.out_dir, args.size, args.seed, args.holdout_voices, args.jobs) == ("OUT", "tiny", 4, ["awb", "slt"], 1)
    assert build_parser().parse_args(["synth-timit", "OUT"]).size == "small"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["synth-timit", "OUT", "--size", "huge"])


def test_synth_timit_refuses_nonempty_dir(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["synth-timit", str(tmp_path), "--size", "tiny", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_unknown_argument_rejected():
    with pytest.raises(SystemExit):
        main(["synth-timit", "OUT", "--sise", "tiny"])
