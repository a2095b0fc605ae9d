"""espeak-ng voices in the synthetic corpus: event -> label conversion (pure), voice selection, the large
size's plan, and real espeak-ng synthesis read back by read_corpus (skipped when libespeak-ng is absent)."""

from __future__ import annotations

import json

import pytest

from scratchasr.data import espeak, synth
from scratchasr.data.phones import PHONES_61
from scratchasr.data.timit import read_corpus

W, P = espeak.EVENT_WORD, espeak.EVENT_PHONEME


def test_every_ipa_maps_to_timit_symbols():
    for ipa, phones in espeak.IPA_TO_TIMIT.items():
        assert phones and set(phones) <= set(PHONES_61), ipa
    assert espeak.timit_of_ipa(["ð", "ɑːɹ", "ʘ"]) == ["dh", "aa", "r", "?ʘ"]


def test_labels_from_events():
    sr = 1000                          # 1 sample = 1 ms: MIN_PAUSE_S = 50 samples
    events = [(W, 0, 1), (P, 5, "ð"), (P, 40, "ə"), (P, 80, ""),       # 30-sample silence: absorbed
              (W, 110, 2), (P, 110, "k"), (P, 150, "ɑːɹ"), (P, 250, ""),
              (P, 290, ""),                                   # 40 + 60 samples of silence: one pau
              (W, 350, 3), (P, 350, "ʘ"), (P, 400, ""), (P, 410, "")]     # 20 samples: absorbed
    segs = espeak.labels_from_events(events, 420, sr, pad_samples=100)
    assert segs == [(0.105, "pau", -1), (0.140, "dh", 0), (0.210, "ax", 0), (0.250, "k", 1),
                    (0.300, "aa", 1), (0.350, "r", 1), (0.450, "pau", -1), (0.520, "?ʘ", 2),
                    (0.620, "pau", -1)]
    # no padding, no trailing silence: a final pau of zero length is still closed at n_samples
    segs = espeak.labels_from_events([(W, 0, 1), (P, 0, "s"), (P, 10, "iː")], 30, sr)
    assert [p for _, p, _ in segs] == ["pau", "s", "iy", "pau"] and segs[-1][0] == 0.030


def test_voice_keys_codes_and_sexes():
    keys = espeak.voice_keys()
    assert len(keys) == len(espeak.ACCENTS) * len(espeak.VARIANTS) and "en-gb-x-rp+f2" in keys
    assert espeak.voice_code("en-gb-x-rp+f2") == "RF2" and espeak.voice_sex("en-gb-x-rp+f2") == "F"
    assert len({espeak.voice_code(k) for k in keys}) == len(keys)
    assert all(synth.VOICE_BY_KEY[k].engine == "espeak-ng" for k in keys)


def test_resolve_voices():
    among = ["kal", "slt", "en-us+m1", "en-us+f2", "en-029+m1"]
    assert synth.resolve_voices(["espeak-ng"], among) == ["en-us+m1", "en-us+f2", "en-029+m1"]
    assert synth.resolve_voices(["espeak", "kal"], among) == ["kal", "en-us+m1", "en-us+f2", "en-029+m1"]
    assert synth.resolve_voices(["en-us"], among) == ["en-us+m1", "en-us+f2"]
    assert synth.resolve_voices(["all"], among) == among
    assert synth.resolve_voices(["flite", "festival"], among) == ["kal", "slt"]
    with pytest.raises(ValueError, match=r"^voices: unknown voice 'nope'"):
        synth.resolve_voices(["nope"], among)
    with pytest.raises(ValueError, match=r"^holdout_voices: 'en-gb-x-rp' selects no voice"):
        synth.resolve_voices(["en-gb-x-rp"], among, arg="holdout_voices")


def test_large_plan_shares_train_sentences_only():
    sentences = [f"Sentence number {i} is here." for i in range(14800)]
    speakers, jobs, spare = synth.plan_corpus(sentences, ["kal", "slt", "en-us+m1"], size="large", seed=0)
    n_train, n_dev, n_core, per = synth.SIZES["large"]
    assert len(jobs) == (n_train + n_dev + n_core) * per
    assert len({j.utt_id for j in jobs}) == len(jobs)                 # a speaker never repeats a sentence
    train = {j.sentence_id for j in jobs if j.speaker.split == "train"}
    test = {j.sentence_id for j in jobs if j.speaker.split != "train"}
    assert not train & test
    assert len(train) < n_train * per                                   # shared between train speakers
    assert not {f"SI{i + 1}" for g in spare for i, _ in spare[g]} & (train | test)
    assert {s.engine for s in speakers} == {"festival", "flite", "espeak-ng"}
    with pytest.raises(ValueError, match="too few"):                    # other sizes still refuse
        synth.plan_corpus(sentences[:5000], ["kal"], size="full")


def test_engines_get_equal_shares_and_holdout_test_sets_mix():
    from collections import Counter
    sentences = [f"Sentence number {i} is here." for i in range(14800)]
    voices = ["kal", "ked", "awb", "slt"] + espeak.voice_keys()
    speakers, _, _ = synth.plan_corpus(sentences, voices, size="small", seed=1)
    train = Counter(s.engine for s in speakers if s.split == "train")
    assert max(train.values()) - min(train.values()) <= 1 and len(train) == 3   # 104 espeak voices: 1/3
    held = synth.resolve_voices(["espeak-ng"], voices)
    speakers, _, _ = synth.plan_corpus(sentences, voices, size="small", seed=1, holdout_voices=held)
    assert "espeak-ng" not in {s.engine for s in speakers if s.split == "train"}
    for split in ("dev", "core_test"):     # held-out and seen voices alternate: both are measured
        engines = [s.engine for s in speakers if s.split == split]
        assert engines[0] == "espeak-ng" and engines[1] != "espeak-ng"
        assert abs(sum(e == "espeak-ng" for e in engines) - len(engines) / 2) <= 1


# ---------------------------------------------------------------- real synthesis


def _needs_espeak():
    if espeak.library_path() is None or not synth.WORDNET_DIR.is_dir():
        pytest.skip("libespeak-ng (apt-get install espeak-ng) or wordnet-base not installed")


def _job(voice, text, utt_id="MUM1000_SI1"):
    v = synth.VOICE_BY_KEY[voice]
    spk = synth.Speaker(id=utt_id.split("_")[0], voice=voice, split="train", dialect="DR1", tempo=1.1, f0=0.9,
                        warp=1.03, engine=v.engine)
    return synth.Job(utt_id=utt_id, speaker=spk, sentence_id="SI1", text=text, words=synth._tokens(text))


def test_espeak_utterance_and_merged_word_events(tmp_path):
    _needs_espeak()
    # en-us-nyc sends one word event for "from the": the words are recovered by alignment
    text = "He got back his son from the kidnappers."
    (res,) = synth._run_batch((str(tmp_path / "c"), "en-us-nyc+m1", [_job("en-us-nyc+m1", text)]))
    assert res["ok"] and res["engine"] == "espeak-ng", res
    base = tmp_path / "c" / "TRAIN" / "DR1" / "MUM1000" / "SI1"
    words = [line.split() for line in base.with_suffix(".WRD").read_text().splitlines()]
    assert [w for _, _, w in words] == synth._tokens(text)
    phones = [line.split() for line in base.with_suffix(".PHN").read_text().splitlines()]
    assert phones[0][2] == "h#" and phones[-1][2] == "h#"
    assert {p for _, _, p in phones} <= set(PHONES_61)
    assert "k ih d n ae p" in " ".join(p for _, _, p in phones)
    # every word span lies on phone boundaries
    bounds = {int(a) for a, _, _ in phones} | {int(b) for _, b, _ in phones}
    assert all(int(a) in bounds and int(b) in bounds for a, b, _ in words)


def test_probe_skips_a_voice_whose_labels_fail(tmp_path, monkeypatch, capsys):
    _needs_espeak()
    assert synth.probe_voices(["kal", "en-us+m1", "en-029+f1"]) == {}
    monkeypatch.delitem(espeak.IPA_TO_TIMIT, "ð")        # the probe sentence has "the": no symbol now
    failed = synth.probe_voices(["en-us+m1"])
    assert list(failed) == ["en-us+m1"] and "no TIMIT symbol" in failed["en-us+m1"]
    monkeypatch.setattr(synth, "available_voices", lambda: ["en-us+m1", "en-us+f2"])
    with pytest.raises(ValueError, match=r"^voices: no synthesis voice"):
        synth.synth_timit(tmp_path / "c", size="tiny", voices=["espeak-ng"], jobs=1, progress=False)
    assert "voice en-us+m1 skipped: labels fail validation" in capsys.readouterr().err


@pytest.fixture(scope="module")
def espeak_corpus(tmp_path_factory):
    _needs_espeak()
    root = tmp_path_factory.mktemp("espeak")
    voices = ["en-us+m1", "en-gb-x-rp+f2", "en-gb-scotland+m3", "en-029+f4"]
    a = synth.synth_timit(root / "a", size="tiny", seed=2, voices=voices, holdout_voices=["en-029"], jobs=1,
                          progress=False)
    b = synth.synth_timit(root / "b", size="tiny", seed=2, voices=voices, holdout_voices=["en-029"], jobs=2,
                          progress=False)
    return root, a, b


def test_espeak_corpus_reads_back_and_records_engines(espeak_corpus):
    root, summary, _ = espeak_corpus
    assert summary["holdout_voices"] == ["en-029+f4"] and summary["skipped_voices"] == {}
    assert set(summary["engines"].values()) == {"espeak-ng"}
    on_disk = json.loads((root / "a" / "corpus.json").read_text())
    utts = {u: (e, v) for u, e, v in on_disk["utts"]}
    for split in ("train", "dev", "core_test"):
        read = read_corpus(root / "a", split)
        assert len(read) == summary["utterances"][split] > 0
        for u in read:
            engine, voice = utts[u.id]
            assert engine == "espeak-ng" and voice in summary["voices"]
            assert u.phones[0][2] == "h#" and u.phones[-1][2] == "h#"
            assert {p for _, _, p in u.phones} <= set(PHONES_61)
            assert [w for _, _, w in u.words] == [t.strip(",.").lower() for t in u.text.split()]
            if split == "train":
                assert voice != "en-029+f4"
    held = synth.speakers_of_voices(root / "a", "en-029")
    assert held and held == synth.speakers_of_voices(root / "a", ["en-029+f4"])
    assert set(synth.speakers_of_voices(root / "a", "espeak-ng")) == {s["id"] for s in summary["speakers"]}


def test_espeak_corpus_identical_whatever_jobs(espeak_corpus):
    root, a, b = espeak_corpus
    assert a == b
    files_a = sorted(p.relative_to(root / "a") for p in (root / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(root / "b") for p in (root / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (root / "a" / rel).read_bytes() == (root / "b" / rel).read_bytes(), rel
