"""TIMIT reader and phone folding, on tiny TIMIT-layout trees built in tmp_path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchasr.data import timit
from scratchasr.data.timit import PHONES_39, PHONES_48, PHONES_61, fold_phones, read_corpus, speaker_list
from scratchasr.features import load_audio
from scratchasr.features.audio import write_sphere

PHN = "0 800 h#\n800 1600 sh\n1600 2400 iy\n2400 3000 q\n3000 3200 bcl\n3200 3600 b\n3600 4000 h#\n"
WRD = "800 2400 she\n2400 3600 bib\n"


def _utt(folder, name, *, lower=False, n=4000, phn=PHN, wrd=WRD, text="She bib."):
    folder.mkdir(parents=True, exist_ok=True)
    ext = (lambda e: e.lower()) if lower else (lambda e: e)
    name = name.lower() if lower else name
    x = (np.sin(np.arange(n) * 0.05) * 3000).astype(np.int16)
    write_sphere(folder / (name + ext(".WAV")), x, 16000)
    (folder / (name + ext(".PHN"))).write_text(phn)
    (folder / (name + ext(".WRD"))).write_text(wrd)
    (folder / (name + ext(".TXT"))).write_text(f"0 {n} {text}\n")


def _tree(root, *, lower=False):
    c = (lambda s: s.lower()) if lower else (lambda s: s)
    for part, dr, spk in [("TRAIN", "DR1", "FCJF0"), ("TRAIN", "DR2", "MABC0"),
                          ("TEST", "DR1", "FAKS0"), ("TEST", "DR1", "MDAB0"), ("TEST", "DR3", "MXYZ0")]:
        for sent in ("SA1", "SA2", "SX13", "SI943"):
            _utt(root / c(part) / c(dr) / c(spk), sent, lower=lower)
    return root


@pytest.fixture
def one_dev_one_core(monkeypatch):
    """Pretend the standard lists hold only the speakers of the tiny tree."""
    lists = {"dev": ["FAKS0"], "core_test": ["MDAB0"]}
    monkeypatch.setattr(timit, "speaker_list", lambda name: lists[name])


def test_standard_speaker_lists():
    dev, core = speaker_list("dev"), speaker_list("core_test")
    assert len(dev) == len(set(dev)) == 50 and len(core) == len(set(core)) == 24
    assert not set(dev) & set(core)
    # core test: two men and one woman per dialect region
    assert sum(s.startswith("F") for s in core) == 8
    assert "FAKS0" in dev and "MDAB0" in core


@pytest.mark.parametrize("lower", [False, True])
def test_read_splits(tmp_path, lower, one_dev_one_core):
    root = _tree(tmp_path, lower=lower)
    train = read_corpus(root, "train")
    assert [u.id for u in train] == ["FCJF0_SI943", "FCJF0_SX13", "MABC0_SI943", "MABC0_SX13"]  # no SA
    u = train[0]
    assert u.speaker == "FCJF0" and u.dialect == "DR1" and u.sentence_id == "SI943"
    assert u.phones[:3] == [(0, 800, "h#"), (800, 1600, "sh"), (1600, 2400, "iy")]
    assert u.words == [(800, 2400, "she"), (2400, 3600, "bib")]
    assert u.text == "She bib." and u.sample_range == (0, 4000)
    x, sr = load_audio(u.wav_path)
    assert sr == 16000 and x.shape == (4000,)
    assert {v.speaker for v in read_corpus(root, "test")} == {"FAKS0", "MDAB0", "MXYZ0"}
    assert {v.speaker for v in read_corpus(root, "dev")} == {"FAKS0"}
    assert {v.speaker for v in read_corpus(root, "core_test")} == {"MDAB0"}


def test_nested_timit_folder(tmp_path, one_dev_one_core):
    _tree(tmp_path / "TIMIT")
    assert len(read_corpus(tmp_path, "train")) == 4


def test_splits_json_overrides_standard_lists(tmp_path):
    root = _tree(tmp_path)
    (root / "splits.json").write_text(json.dumps({"dev": ["MXYZ0"], "core_test": ["FAKS0", "MDAB0"]}))
    assert {u.speaker for u in read_corpus(root, "dev")} == {"MXYZ0"}
    assert {u.speaker for u in read_corpus(root, "core_test")} == {"FAKS0", "MDAB0"}


def test_standard_lists_missing_speakers_is_clear(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(ValueError, match="splits.json"):
        read_corpus(root, "dev")


def test_errors_name_the_file(tmp_path, one_dev_one_core):
    root = _tree(tmp_path)
    spk = root / "TRAIN" / "DR1" / "FCJF0"
    (spk / "SX13.WRD").unlink()
    with pytest.raises(FileNotFoundError, match="SX13.WRD"):
        read_corpus(root, "train")
    _utt(spk, "SX13")
    (spk / "SI943.PHN").write_text("0 800 h#\n800 oops sh\n")
    with pytest.raises(ValueError, match=r"SI943.PHN:2"):
        read_corpus(root, "train")
    (spk / "SI943.PHN").write_text("0 800 h#\n800 1600 xx\n")
    with pytest.raises(ValueError, match="not one of TIMIT's 61"):
        read_corpus(root, "train")
    (spk / "SI943.PHN").write_text("0 800 h#\n900 800 sh\n")
    with pytest.raises(ValueError, match="start <= end"):
        read_corpus(root, "train")
    (spk / "SI943.PHN").write_text(PHN)
    (spk / "SI943.TXT").write_text("hello\n")
    with pytest.raises(ValueError, match="SI943.TXT"):
        read_corpus(root, "train")
    with pytest.raises(ValueError, match=r"^split:"):
        read_corpus(root, "validation")
    with pytest.raises(FileNotFoundError, match="TRAIN"):
        read_corpus(tmp_path / "TRAIN", "train")
    (root / "splits.json").write_text("{not json")
    with pytest.raises(ValueError, match="splits.json"):
        read_corpus(root, "dev")


def test_fold_tables():
    assert len(PHONES_61) == 61 and len(PHONES_48) == 48 and len(PHONES_39) == 39
    assert fold_phones(["h#", "q", "bcl", "b", "ax-h", "ao", "zh", "ux", "nx", "epi"]) == \
        ["sil", "sil", "b", "ah", "aa", "sh", "uw", "n", "sil"]
    assert fold_phones(["bcl", "pcl", "ax-h", "ao", "el", "q"], to=48) == ["vcl", "cl", "ax", "ao", "el"]
    # 61 -> 48 -> 39 equals 61 -> 39 for every phone
    for p in PHONES_61:
        assert fold_phones(fold_phones([p], to=48), to=39) == fold_phones([p])
    assert set(fold_phones([p for p in PHONES_61])) == set(PHONES_39)
    with pytest.raises(ValueError, match="phones\\[1\\]"):
        fold_phones(["aa", "xx"])
    with pytest.raises(ValueError, match=r"^to:"):
        fold_phones(["aa"], to=61)
    with pytest.raises(TypeError, match=r"^phones:"):
        fold_phones("aa b")


@pytest.mark.parametrize("ext,text,message", [
    (".PHN", "0 800 h#\n1600 2400 iy\n800 1600 sh\n2400 4000 h#\n", r"SX13\.PHN:3: segments out of order"),
    (".PHN", "0 800 h#\n700 1600 sh\n1600 4000 h#\n", r"SX13\.PHN:2: phone 700 1600 overlaps"),
    (".PHN", "0 800 h#\n800 1600 sh\n1600 4100 h#\n", r"SX13\.PHN:3: .*past the audio's 4000 samples"),
    (".WRD", "2400 3600 bib\n800 2400 she\n", r"SX13\.WRD:2: segments out of order"),
    (".WRD", "800 3600 she\n1000 2400 bib\n", r"SX13\.WRD:2: segments out of order"),   # inside another
    (".WRD", "800 2400 she\n2400 4400 bib\n", r"SX13\.WRD:2: .*past the audio's 4000 samples"),
])
def test_unsorted_overlapping_or_overlong_segments_name_file_and_line(tmp_path, ext, text, message):
    spk = tmp_path / "TRAIN" / "DR1" / "FCJF0"
    _utt(spk, "SX13")
    (spk / ("SX13" + ext)).write_text(text)
    with pytest.raises(ValueError, match=message):
        timit.read_labels(spk / "SX13.WAV")


def test_words_sharing_a_boundary_phone_may_overlap(tmp_path):
    # TIMIT lets two words share a phone ("gas shortage"): the second starts before the first ends.
    spk = tmp_path / "TRAIN" / "DR1" / "FCJF0"
    _utt(spk, "SX13", wrd="800 2400 she\n1600 3600 bib\n")
    u = timit.read_labels(spk / "SX13.PHN")
    assert u.words == [(800, 2400, "she"), (1600, 3600, "bib")]


def test_label_files_must_be_utf8_with_the_line_named(tmp_path):
    spk = tmp_path / "TRAIN" / "DR1" / "FCJF0"
    _utt(spk, "SX13")
    (spk / "SX13.WRD").write_bytes(b"800 2400 she\n2400 3600 b\xe9b\n")
    with pytest.raises(ValueError, match=r"SX13\.WRD:2: not UTF-8"):
        timit.read_labels(spk / "SX13.WAV")
