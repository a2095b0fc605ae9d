"""The synthetic TIMIT-layout corpus: planning (pure) and a real tiny synthesis read back by read_corpus."""

from __future__ import annotations

import json
import shutil

import pytest

from scratchasr.data import synth
from scratchasr.data.phones import PHONES_61
from scratchasr.data.timit import read_corpus
from scratchasr.features import load_audio

SENTENCES = [f"Sentence number {i} is here today." for i in range(20000)]
VOICES = ["kal", "ked", "slt_hts", "awb", "rms", "slt"]


@pytest.mark.parametrize("size", ["tiny", "small", "full"])
def test_plan_sizes_and_disjointness(size):
    speakers, jobs, spare = synth.plan_corpus(SENTENCES, VOICES, size=size, seed=3)
    n_train, n_dev, n_core, per = synth.SIZES[size]
    by_split = {sp: [s for s in speakers if s.split == sp] for sp in ("train", "dev", "core_test")}
    assert [len(by_split[k]) for k in ("train", "dev", "core_test")] == [n_train, n_dev, n_core]
    assert len({s.id for s in speakers}) == len(speakers)                  # speakers disjoint between splits
    assert len(jobs) == (n_train + n_dev + n_core) * per
    train_sent = {j.sentence_id for j in jobs if j.speaker.split == "train"}
    test_sent = {j.sentence_id for j in jobs if j.speaker.split != "train"}
    assert not train_sent & test_sent                                      # sentence sets disjoint
    assert len({j.utt_id for j in jobs}) == len(jobs)
    spare_ids = {f"SI{i + 1}" for g in spare for i, _ in spare[g]}
    assert not spare_ids & (train_sent | test_sent)
    if size == "full":   # TIMIT's sizes
        assert sum(j.speaker.split == "train" for j in jobs) == 3696
        assert sum(j.speaker.split == "dev" for j in jobs) == 400
        assert sum(j.speaker.split == "core_test" for j in jobs) == 192
    for s in speakers:
        assert synth.TEMPO_RANGE[0] <= s.tempo <= synth.TEMPO_RANGE[1]
        assert synth.WARP_RANGE[0] <= s.warp <= synth.WARP_RANGE[1]


def test_plan_deterministic_and_holdout():
    a = synth.plan_corpus(SENTENCES, VOICES, size="small", seed=5, holdout_voices=["slt", "kal"])
    b = synth.plan_corpus(SENTENCES, VOICES, size="small", seed=5, holdout_voices=["slt", "kal"])
    c = synth.plan_corpus(SENTENCES, VOICES, size="small", seed=6, holdout_voices=["slt", "kal"])
    assert a == b and a != c
    speakers = a[0]
    assert not {s.voice for s in speakers if s.split == "train"} & {"slt", "kal"}
    assert {"slt", "kal"} <= {s.voice for s in speakers if s.split != "train"}
    tiny = synth.plan_corpus(SENTENCES, VOICES, size="tiny", seed=5, holdout_voices=["slt", "kal"])[0]
    for split in ("dev", "core_test"):   # even 2-speaker test sets hold the held-out voices
        assert {s.voice for s in tiny if s.split == split} == {"slt", "kal"}
    with pytest.raises(ValueError, match=r"^holdout_voices:"):
        synth.plan_corpus(SENTENCES, ["kal"], size="tiny", holdout_voices=["kal"])
    with pytest.raises(ValueError, match=r"^size:"):
        synth.plan_corpus(SENTENCES, VOICES, size="huge")
    with pytest.raises(ValueError, match=r"^voices:"):
        synth.plan_corpus(SENTENCES, ["nope"], size="tiny")
    with pytest.raises(ValueError, match="too few"):
        synth.plan_corpus(SENTENCES[:50], VOICES, size="small")


def test_align_words_recovers_boundaries():
    owner = synth._align_words([["dh", "ax"], ["k", "ae", "t"]], ["dh", "iy", "k", "ae", "t", "s"])
    assert owner == [0, 0, 1, 1, 1, 1]


def _needs_synth():
    if not (shutil.which("festival") or shutil.which("flite")) or not synth.WORDNET_DIR.is_dir():
        pytest.skip("festival/flite or wordnet-base not installed")
    if not synth.available_voices():
        pytest.skip("no synthesis voice installed")


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    _needs_synth()
    root = tmp_path_factory.mktemp("synth") / "corpus"
    summary = synth.synth_timit(root, size="tiny", seed=0, jobs=2, progress=False)
    return root, summary


def test_tiny_corpus_reads_back(tiny_corpus):
    root, summary = tiny_corpus
    n = summary["utterances"]
    splits = json.loads((root / "splits.json").read_text())
    for split in ("train", "dev", "core_test"):
        utts = read_corpus(root, split)
        assert len(utts) == n[split] and len(utts) >= synth.SIZES["tiny"][3]
        if split != "train":
            assert {u.speaker for u in utts} == set(splits[split])
        for u in utts:
            x, sr = load_audio(u.wav_path)
            assert sr == 16000
            assert u.phones[0][0] == 0 and u.phones[0][2] == "h#" and u.phones[-1][2] == "h#"
            assert u.phones[-1][1] == x.size == u.sample_range[1]             # labels close the file
            assert all(a < b for a, b, _ in u.phones)
            assert all(p1[1] == p2[0] for p1, p2 in zip(u.phones, u.phones[1:]))  # contiguous
            assert {p for _, _, p in u.phones} <= set(PHONES_61)
            assert [w for _, _, w in u.words] == [t.strip(",.").lower() for t in u.text.split()]
            assert all(u.phones[0][1] <= a < b <= u.phones[-1][0] for a, b, _ in u.words)
    train_spk = {u.speaker for u in read_corpus(root, "train")}
    test_spk = {u.speaker for u in read_corpus(root, "test")}
    assert not train_spk & test_spk
    train_text = {u.text for u in read_corpus(root, "train")}
    assert not train_text & {u.text for u in read_corpus(root, "test")}


def test_tiny_synthesis_deterministic(tmp_path):
    _needs_synth()
    voices = [v for v in ("kal", "slt") if v in synth.available_voices()]
    a = synth.synth_timit(tmp_path / "a", size="tiny", seed=1, voices=voices, jobs=1, progress=False)
    b = synth.synth_timit(tmp_path / "b", size="tiny", seed=1, voices=voices, jobs=2, progress=False)
    assert a == b
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_refuses_nonempty_out_dir(tmp_path):
    (tmp_path / "x").write_text("")
    with pytest.raises(FileExistsError, match=r"^out_dir:"):
        synth.synth_timit(tmp_path, size="tiny", progress=False)


def _fake_job(words=("she", "bib")):
    spk = synth.Speaker(id="MKAL000", voice="kal", split="train", dialect="DR1", tempo=1.0, f0=1.0, warp=1.0)
    return synth.Job(utt_id="MKAL000_SI1", speaker=spk, sentence_id="SI1", text="She bib.", words=list(words))


def _fake_wav(path, seconds, sr=16000):
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * 220 * t), sr, subtype="PCM_16")
    return path


SEGS = [(0.10, "pau", -1), (0.20, "sh", 0), (0.30, "iy", 0), (0.35, "b", 1), (0.45, "ih", 1), (0.50, "b", 1),
        (0.60, "pau", -1)]


def test_to_timit_labels_and_validation(tmp_path):
    y, phones, words = synth._to_timit(_fake_job(), _fake_wav(tmp_path / "ok.wav", 0.61), SEGS)
    assert y.dtype.name == "int16" and y.size == 9760
    assert phones[0] == (0, 1600, "h#") and phones[-1] == (8000, 9760, "h#")   # last label closes the file
    assert words == [(1600, 4800, "she"), (4800, 8000, "bib")]
    # festival's failure mode: exit 0, labels written, audio truncated -> dropped with the reason
    with pytest.raises(ValueError, match="truncated audio"):
        synth._to_timit(_fake_job(), _fake_wav(tmp_path / "short.wav", 0.3), SEGS)
    with pytest.raises(ValueError, match="past its labels"):
        synth._to_timit(_fake_job(), _fake_wav(tmp_path / "long.wav", 1.5), SEGS)
    with pytest.raises(ValueError, match="no TIMIT symbol"):
        synth._to_timit(_fake_job(), tmp_path / "ok.wav", SEGS[:2] + [(0.30, "@@", 0)] + SEGS[3:])
    with pytest.raises(ValueError, match="words timed"):
        synth._to_timit(_fake_job(("she", "bib", "extra")), tmp_path / "ok.wav", SEGS)
    # a warp of 1.05 shortens the audio and its labels by the same factor
    job = _fake_job()
    job.speaker.warp = 1.05
    y2, phones2, _ = synth._to_timit(job, tmp_path / "ok.wav", SEGS)
    assert abs(y2.size - 9760 / 1.05) <= 2 and abs(phones2[1][0] - 1600 / 1.05) <= 1


# ---------------------------------------------------------------- festival's script is code: nothing leaks in


def _festival_job(text, utt_id="MKAL000_SI1"):
    if shutil.which("festival") is None or "kal" not in synth.available_voices():
        pytest.skip("festival with voice_kal_diphone not installed")
    spk = synth.Speaker(id="MKAL000", voice="kal", split="train", dialect="DR1", tempo=1.0, f0=1.0, warp=1.0)
    return synth.Job(utt_id=utt_id, speaker=spk, sentence_id="SI1", text=text, words=synth._tokens(text))


@pytest.mark.parametrize("text", ['He said "hi".',
                                  'x\\" (system "touch {p}") "',
                                  'x\\\\" (system "touch {p}") "',
                                  'x")(system "touch {p}")("',
                                  'Hello") (system "touch {p}") (set! x "',
                                  'line one\n(system "touch {p}")\n"'])
def test_scheme_string_reads_back_as_the_same_text(tmp_path, text):
    import subprocess
    if shutil.which("festival") is None:
        pytest.skip("festival not installed")
    marker = tmp_path / "pwned"
    text = text.format(p=marker)
    script = tmp_path / "t.scm"
    script.write_text(f'(format t "[%s]\\n" {synth.scheme_string(text)})\n')
    out = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[" + text.replace("\n", " ") + "]"
    assert not marker.exists()


def test_crafted_sentence_cannot_run_code_through_the_library(tmp_path):
    marker = tmp_path / "pwned"
    # with the text pasted between quotes this closes the string and the call, runs system, and
    # leaves the parentheses balanced: before escaping, festival ran it
    text = f'Hello") (system "touch {marker}") (set! x "'
    job = _festival_job(text)
    results = synth._run_batch((str(tmp_path / "corpus"), "kal", [job]))
    assert not marker.exists()
    assert len(results) == 1 and results[0]["utt_id"] == job.utt_id
    with pytest.raises(ValueError, match=r"^utt_id:"):
        synth._festival_batch(synth.VOICE_BY_KEY["kal"], [_festival_job("Hi.", utt_id='x" y')], tmp_path)


def test_quote_in_tmpdir_does_not_break_synthesis(tmp_path, monkeypatch):
    import tempfile
    weird = tmp_path / 'my "tmp" dir'
    weird.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(weird))
    job = _festival_job("The cat sat on the mat.")
    (res,) = synth._run_batch((str(tmp_path / "corpus"), "kal", [job]))
    assert res["ok"], res
    assert (tmp_path / "corpus" / "TRAIN" / "DR1" / "MKAL000" / "SI1.WAV").is_file()


def test_a_split_with_no_utterance_is_an_error(tmp_path, monkeypatch):
    if not synth.WORDNET_DIR.is_dir():
        pytest.skip("wordnet-base not installed")
    monkeypatch.setattr(synth, "available_voices", lambda: ["kal"])

    def run_batch(args):       # stands in for the synthesiser: everything but dev succeeds
        _, voice, jobs = args
        return [{"utt_id": j.utt_id, "speaker": j.speaker.id, "voice": voice, "sentence_id": j.sentence_id,
                 **({"ok": False, "reason": "festival produced no output"} if j.speaker.split == "dev"
                    else {"ok": True, "seconds": 1.0})} for j in jobs]

    monkeypatch.setattr(synth, "_run_batch", run_batch)
    with pytest.raises(synth.SynthesisError, match=r"^synth_timit: .*split\(s\) \['dev'\].*no output"):
        synth.synth_timit(tmp_path / "c", size="tiny", jobs=1, progress=False)
    summary = json.loads((tmp_path / "c" / "corpus.json").read_text())
    assert summary["utterances"]["dev"] == 0 and summary["utterances"]["train"] == 8
    monkeypatch.setattr(synth, "_run_batch", lambda args: [dict(r, ok=True, seconds=1.0)
                                                          for r in run_batch(args)])
    assert synth.synth_timit(tmp_path / "d", size="tiny", jobs=1, progress=False)["utterances"]["dev"] == 4
