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
    (d / "wav.scp").write_text(f"u2 /usr/bin/sph2pipe -f wav -p -c 1 {audio / 'B.WAV'} |\n"
                               f"u1 {audio / 'a.wav'}\n")
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


def test_sph2pipe_options_that_would_be_dropped_are_refused_with_the_line(tmp_path):
    d = _dir(tmp_path)
    b = tmp_path / "audio" / "B.WAV"
    a = tmp_path / "audio" / "a.wav"
    for opts, message in (("-t 0.5:1.0", r"-t 0\.5:1\.0 \(a time or sample range\)"),
                          ("-s 100:900", r"-s 100:900"),
                          ("-c 2", r"-c 2 selects one channel"),
                          ("-u", r"option -u is not supported"),
                          ("-x", r"unknown sph2pipe option -x"),
                          ("{b} -f", r"option -f needs a value")):
        cmd = opts.format(b=b) if "{b}" in opts else f"{opts} {b}"
        (d / "wav.scp").write_text(f"u1 {a}\nu2 sph2pipe {cmd} |\n")
        with pytest.raises(ValueError, match=r"wav\.scp:2 \(u2\): .*" + message):
            read_data_dir(d)


def test_sph2pipe_channel_of_a_stereo_file_is_refused(tmp_path):
    d = _dir(tmp_path)
    st = tmp_path / "audio" / "st.sph"
    write_sphere(st, np.zeros((100, 2), dtype=np.int16), 16000)
    (d / "wav.scp").write_text(f"u1 sph2pipe -f wav -c 1 {st} |\nu2 {tmp_path / 'audio' / 'B.WAV'}\n")
    with pytest.raises(ValueError, match=r"wav\.scp:1 \(u1\): sph2pipe -c 1 .*\(2 channel\(s\)\)"):
        read_data_dir(d)
    (d / "wav.scp").write_text(f"u1 sph2pipe -p -f wav {st} |\nu2 {tmp_path / 'audio' / 'B.WAV'}\n")
    assert read_data_dir(d)[0].wav_path == str(st)     # no channel selection: read whole, as sph2pipe does


@pytest.mark.parametrize("name", ["text", "wav.scp", "utt2spk"])
def test_non_utf8_files_are_refused_with_the_line(tmp_path, name):
    d = _dir(tmp_path)
    lines = (d / name).read_bytes().splitlines(keepends=True)
    if name == "text":
        lines[1] = lines[1].rstrip(b"\n") + b" caf\xe9\n"
    else:
        lines[1] = lines[1].replace(b"u", b"\xff", 1)
    (d / name).write_bytes(b"".join(lines))
    with pytest.raises(ValueError, match=rf"{name}:2: not UTF-8 text \(byte 0x(e9|ff)"):
        read_data_dir(d)


def test_utf8_text_with_bom_is_read(tmp_path):
    d = _dir(tmp_path)
    (d / "text").write_bytes("\ufeffu1 café au lait\nu2 naïve\n".encode("utf-8"))
    assert [u.text for u in read_data_dir(d)] == ["café au lait", "naïve"]
