"""`assignment build --corpus DIR`: a TIMIT-layout corpus shipped in the student copy for the final run."""

import json
import shlex

import numpy as np
import pytest

from scratchasr.assignments import available, get
from scratchasr.assignments.builder import check_corpus, ship_corpus
from scratchasr.data.corpus import read_split
from scratchasr.features.audio import write_sphere
from scratchasr.testing.fixtures import write_kaldi_dir

PHN = "0 800 h#\n800 1600 sh\n1600 2400 iy\n2400 3200 b\n3200 4000 h#\n"


def write_tiny_corpus(root):
    """A TIMIT-layout tree as `scratchasr synth-timit` writes it: 2 train, 1 dev, 1 core-test speaker."""
    speakers = [("TRAIN", "FAAA0"), ("TRAIN", "MBBB0"), ("TEST", "FCCC0"), ("TEST", "MDDD0")]
    for k, (part, spk) in enumerate(speakers):
        d = root / part / "DR1" / spk
        d.mkdir(parents=True)
        for sent in ("SI1", "SX2"):
            x = (np.sin(np.arange(4000) * (0.05 + 0.01 * k)) * 3000).astype(np.int16)
            write_sphere(d / f"{sent}.WAV", x, 16000)
            (d / f"{sent}.PHN").write_text(PHN)
            (d / f"{sent}.WRD").write_text("800 2400 she\n2400 3200 b\n")
            (d / f"{sent}.TXT").write_text("0 4000 She b.\n")
    (root / "splits.json").write_text(json.dumps({"dev": ["FCCC0"], "core_test": ["MDDD0"]}))
    (root / "corpus.json").write_text(json.dumps({"generator": "scratchasr synth-timit", "size": "tiny",
                                                  "seed": 3, "hours": 0.002}))
    return root


def test_ship_corpus_copies_it_and_points_the_readme_at_it(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "synth_tiny")
    student = tmp_path / "student"
    student.mkdir()
    (student / "README.md").write_text("# A6\n\nThe final run: --data_dir=DATA\n")
    info = ship_corpus(get("A6"), student, corpus)
    assert info["corpus"] == "data/synth_tiny" and "corpus_warning" not in info
    assert info["corpus_utterances"] == {"train": 4, "dev": 2, "core_test": 2}
    shipped = student / "data" / "synth_tiny"
    # the copy stands alone: the trainer reads it from the student's folder
    assert [u.id for u in read_split(shipped, "train")] == [u.id for u in read_split(corpus, "train")]
    assert all(str(shipped) in u.wav_path for u in read_split(shipped, "dev"))
    readme = (student / "README.md").read_text()
    assert readme.startswith("# A6") and "## The corpus shipped with this copy" in readme
    assert "`scratchasr synth-timit --size tiny --seed 3`" in readme
    assert "--data_dir=data/synth_tiny" in readme and "DATA" not in readme.split("## The corpus shipped")[1] \
        .split("```")[1]
    with pytest.raises(ValueError, match=r"^corpus:"):  # never over an earlier copy
        ship_corpus(get("A6"), student, corpus)


def test_a_corpus_without_synth_timit_metadata_ships_with_a_licence_warning(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "mine")
    (corpus / "corpus.json").unlink()
    student = tmp_path / "student"
    student.mkdir()
    (student / "README.md").write_text("# A2\n")
    info = ship_corpus(get("A2"), student, corpus)
    assert "licence" in info["corpus_warning"] and info["corpus_utterances"]["train"] == 4


def test_check_corpus_refuses_what_it_cannot_ship(tmp_path):
    with pytest.raises(ValueError, match=r"^corpus:.*not a directory"):
        check_corpus(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"^corpus:"):
        check_corpus(tmp_path / "empty")
    write_kaldi_dir(tmp_path / "kaldi", "train", ["u1 a b"])
    with pytest.raises(ValueError, match=r"^corpus:.*Kaldi data dir"):
        check_corpus(tmp_path / "kaldi")


def test_cli_build_checks_the_corpus_before_building(tmp_path, capsys):
    from scratchasr.cli import main

    out = tmp_path / "course"
    assert main(["assignment", "build", "A0", "--out", str(out), "--corpus", str(tmp_path / "nope")]) == 2
    assert "corpus:" in capsys.readouterr().err and not out.exists()



@pytest.mark.parametrize("aid", [a for a in available() if get(a).training])
def test_the_final_run_is_a_valid_trainer_command(aid):
    """The command a spec prints (and its handout shows, and the corpus section repeats) parses: every
    --key is a trainer key or an option of the recipe's model, and every value converts."""
    from pathlib import Path

    from scratchasr.trainer import TrainConfig, load_config_file

    words = shlex.split(get(aid).training)
    assert words[:2] == ["scratchasr", "train"] and words[2] in get(aid).extras
    root = Path(__file__).resolve().parents[2]
    cfg = TrainConfig.from_overrides(load_config_file(str(root / words[2])), words[3:])
    assert cfg.data_dir == "DATA" and cfg.exp_dir.startswith("exp/")


def test_grade_timeout_scale_from_the_environment(monkeypatch):
    from scratchasr.assignments.grader import TIMEOUT_SCALE_ENV, env_timeout_scale
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, "2.5")
    assert env_timeout_scale() == 2.5
    monkeypatch.delenv(TIMEOUT_SCALE_ENV)
    assert env_timeout_scale() == 1.0
    for bad in ("x", "0", "-1", "inf", "nan"):
        monkeypatch.setenv(TIMEOUT_SCALE_ENV, bad)
        with pytest.raises(ValueError, match=f"^{TIMEOUT_SCALE_ENV}"):
            env_timeout_scale()
