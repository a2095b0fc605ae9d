"""mbrola voices are optional: detected (festival voice folder + the ``mbrola`` program), offered when
present, skipped with a notice when absent. Fake programs and voice folders in a tmp dir, no synthesis."""

from __future__ import annotations

import json

import pytest

from scratchasr.data import synth


def _fake_machine(tmp_path, monkeypatch, *, mbrola: bool):
    """PATH with a fake ``festival`` (and ``mbrola``); festival voice folders kal_diphone and us1_mbrola."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for prog in ("festival",) + (("mbrola",) if mbrola else ()):
        exe = bin_dir / prog
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    voices = tmp_path / "voices"
    for folder in ("kal_diphone", "us1_mbrola"):
        (voices / "english" / folder).mkdir(parents=True)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(synth, "FESTIVAL_VOICE_DIRS", (voices,))
    monkeypatch.setattr(synth.espeak, "library_path", lambda: None)     # espeak-ng voices out of the way


def _fake_synthesis(monkeypatch):
    """Sentences and a synthesiser stand-in, so that synth_timit plans and 'writes' without any engine."""
    monkeypatch.setattr(synth, "wordnet_sentences", lambda: [f"Sentence {i} is here." for i in range(200)])

    def run_batch(args):
        _, voice, jobs = args
        return [{"utt_id": j.utt_id, "speaker": j.speaker.id, "voice": j.speaker.voice, "engine": "festival",
                 "sentence_id": j.sentence_id, "ok": True, "seconds": 1.0} for j in jobs]
    monkeypatch.setattr(synth, "_run_batch", run_batch)


def test_mbrola_absent_voices_skipped_with_reason(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, mbrola=False)
    assert synth.available_voices() == ["kal"]
    missing = synth.missing_mbrola_voices()
    assert missing["us1"] == "the mbrola program is not on PATH"
    assert missing["us2"] == "festival voice folder us2_mbrola not found"
    assert set(missing) == {"us1", "us2", "us3"}


def test_mbrola_present_voice_offered(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, mbrola=True)
    assert synth.available_voices() == ["kal", "us1"]
    assert set(synth.missing_mbrola_voices()) == {"us2", "us3"}      # no festival folder for those two


def test_synth_timit_notice_when_mbrola_absent(tmp_path, monkeypatch, capsys):
    _fake_machine(tmp_path, monkeypatch, mbrola=False)
    _fake_synthesis(monkeypatch)
    summary = synth.synth_timit(tmp_path / "c", size="tiny", voices=["all"], jobs=1, progress=False)
    err = capsys.readouterr().err
    assert "mbrola voices us1, us2, us3 not used" in err and "the mbrola program is not on PATH" in err
    assert "contrib/non-free" in err
    assert summary["voices"] == ["kal"]
    with pytest.raises(ValueError, match=r"^voices: \['us1'\] not installed here.*us1: the mbrola program"):
        synth.synth_timit(tmp_path / "d", size="tiny", voices=["us1"], jobs=1, progress=False)


def test_synth_timit_uses_mbrola_voice_when_present_and_asked(tmp_path, monkeypatch, capsys):
    """Installed mbrola voices are used when asked for (all, mbrola, us1); the default corpus stays
    festival's and flite's, the same on every machine."""
    _fake_machine(tmp_path, monkeypatch, mbrola=True)
    _fake_synthesis(monkeypatch)
    default = synth.synth_timit(tmp_path / "default", size="tiny", jobs=1, progress=False)
    assert default["voices"] == ["kal"] and capsys.readouterr().err == ""
    summary = synth.synth_timit(tmp_path / "c", size="tiny", voices=["all"], jobs=1, progress=False)
    assert summary["voices"] == ["kal", "us1"]
    assert {s["voice"] for s in summary["speakers"]} == {"kal", "us1"}
    err = capsys.readouterr().err
    assert "mbrola voices us2, us3 not used (festival voice folder" in err    # us1 is not in the notice
    on_disk = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert {v for _, _, v in on_disk["utts"]} == {"kal", "us1"}


def test_mbrola_is_its_own_engine_driven_by_festival(tmp_path, monkeypatch, capsys):
    """us1..us3 are engine ``mbrola`` (for leave-one-engine-out) but synthesised by festival; ``festival``
    no longer selects them, ``mbrola`` does; corpus.json records the engine of every speaker and utterance."""
    assert {synth.VOICE_BY_KEY[k].engine for k in ("us1", "us2", "us3")} == {"mbrola"}
    assert {synth.VOICE_BY_KEY[k].driver for k in ("us1", "us2", "us3", "kal")} == {"festival"}
    assert synth.VOICE_BY_KEY["awb"].driver == "flite"
    among = ["kal", "ked", "us1", "us2", "awb"]
    assert synth.resolve_voices(["mbrola"], among) == ["us1", "us2"]
    assert synth.resolve_voices(["festival"], among) == ["kal", "ked"]
    _fake_machine(tmp_path, monkeypatch, mbrola=True)
    _fake_synthesis(monkeypatch)
    summary = synth.synth_timit(tmp_path / "c", size="tiny", voices=["kal", "mbrola"],
                                holdout_voices=["mbrola"], jobs=1, progress=False)
    assert summary["engines"] == {"kal": "festival", "us1": "mbrola"}
    spk = {s["voice"]: s for s in summary["speakers"]}
    assert spk["us1"]["engine"] == "mbrola" and spk["us1"]["split"] != "train"
    assert synth.speakers_of_voices(tmp_path / "c", "mbrola") == [s["id"] for s in summary["speakers"]
                                                                   if s["voice"] == "us1"]


def test_speakers_of_voices_finds_mbrola_in_a_corpus_made_before_it_was_an_engine(tmp_path):
    table = [dict(id="FUS1000", voice="us1", engine="festival"), dict(id="MKAL000", voice="kal",
                                                                         engine="festival")]
    (tmp_path / "corpus.json").write_text(json.dumps(dict(speakers=table)))
    assert synth.speakers_of_voices(tmp_path, "mbrola") == ["FUS1000"]
    assert synth.speakers_of_voices(tmp_path, "festival") == ["FUS1000", "MKAL000"]   # as recorded then
