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


def test_synth_timit_end_to_end_one_voice(tmp_path, capsys):
    from scratchasr.data import synth
    from scratchasr.data.timit import read_corpus

    if "kal" not in synth.available_voices() or not synth.WORDNET_DIR.is_dir():
        pytest.skip("festival kal_diphone voice or wordnet-base not installed")
    out = tmp_path / "corpus"
    assert main(["synth-timit", str(out), "--size", "tiny", "--voices", "kal", "--jobs", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "train 8, dev 4, core_test 4" in printed and "dropped 0" in printed
    assert {u.speaker[1:4] for u in read_corpus(out, "core_test")} == {"KAL"}
