"""Kaldi data directories: wav.scp/text/utt2spk parsing, simple pipes, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from scratchasr.data.kaldi_dir import read_data_dir
from scratchasr.features import load_audio
from scratchasr.features.audio import write_sphere


def _dir(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "a.wav", np.zeros(1600, dtype=np.int16), 16000, subtype="PCM_16")
    write_sphere(audio / "B.WAV", np.ones(800, dtype=np.int16), 16000)
    d = tmp_path / "data"
    d.mkdir()
    (d / "wav.scp").write_text(f"u2 /usr/bin/sph2pipe -f wav -p -c 1 {audio / 'B.WAV'} |\nu1 {audio / 'a.wav'}\n")
    (d / "text").write_text("u1 sil hh iy sil\nu2 sil b sil\n")
    (d / "utt2spk").write_text("u1 spkA\nu2 spkB\n")
    return d


def test_read(tmp_path):
    d = _dir(tmp_path)
    utts = read_data_dir(d)
    assert [u.id for u in utts] == ["u1", "u2"]
    assert utts[0].speaker == "spkA" and utts[0].tokens == ["sil", "hh", "iy", "sil"]
    assert utts[1].wav_path.endswith("B.WAV")
    assert load_audio(utts[1].wav_path)[0].shape == (800,)
    (d / "utt2spk").unlink()
    assert [u.speaker for u in read_data_dir(d)] == ["u1", "u2"]


def test_relative_paths_and_cat_pipe(tmp_path):
    d = _dir(tmp_path)
    (d / "wav.scp").write_text("u1 ../audio/a.wav\nu2 cat ../audio/B.WAV |\n")
    assert [u.wav_path.endswith(n) for u, n in zip(read_data_dir(d), ("a.wav", "B.WAV"))] == [True, True]


def test_errors(tmp_path):
    d = _dir(tmp_path)
    (d / "wav.scp").write_text("u1 sox x.flac -t wav - |\nu2 b.wav\n")
    with pytest.raises(ValueError, match="command pipes are not supported"):
        read_data_dir(d)
    (d / "wav.scp").write_text(f"u1 {tmp_path / 'nope.wav'}\nu2 {tmp_path / 'audio' / 'B.WAV'}\n")
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_data_dir(d)
    (d / "wav.scp").write_text(f"u1 {tmp_path / 'audio' / 'a.wav'}\n")
    with pytest.raises(ValueError, match="disagree"):
        read_data_dir(d)
    (d / "wav.scp").write_text("u1\n")
    with pytest.raises(ValueError, match="wav.scp:1"):
        read_data_dir(d)
    (d / "wav.scp").write_text(f"u1 {tmp_path / 'audio' / 'a.wav'}\nu1 {tmp_path / 'audio' / 'a.wav'}\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_data_dir(d)
    (d / "text").unlink()
    with pytest.raises(FileNotFoundError, match="text"):
        read_data_dir(d)
    with pytest.raises(FileNotFoundError, match="no such directory"):
        read_data_dir(tmp_path / "missing")
