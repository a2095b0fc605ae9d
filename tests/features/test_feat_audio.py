"""load_audio / write_sphere: our SPHERE parser against soundfile's, WAV/FLAC, resampling, errors."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from scratchasr.features import load_audio, write_sphere
from scratchasr.features.audio import read_sphere_header

PS_DATA = Path("/usr/share/pocketsphinx/test/data")


def _tone_int16(n=4000, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sr
    x = 8000 * np.sin(2 * np.pi * 440 * t) + 500 * rng.standard_normal(n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def test_sphere_roundtrip_and_soundfile_agree(tmp_path):
    x = _tone_int16()
    x[0], x[1] = -32768, 32767                     # the extremes survive
    p = tmp_path / "SA1.WAV"
    write_sphere(p, x, 16000, {"database_id": "TIMIT", "utterance_id": "dab0_sa1", "gain": 1.5})
    raw = p.read_bytes()
    assert raw[:16] == b"NIST_1A\n   1024\n" and len(raw) == 1024 + 2 * x.size
    h = read_sphere_header(p)
    assert h.fields["utterance_id"] == "dab0_sa1" and h.fields["gain"] == 1.5
    assert h.fields["sample_min"] == -32768 and h.fields["sample_count"] == x.size
    y, sr = load_audio(p)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_array_equal(y, x.astype(np.float32) / 32768)
    # Cross-check with libsndfile's own NIST reader.
    z, sr2 = sf.read(p, dtype="int16")
    assert sr2 == 16000
    np.testing.assert_array_equal(z, x)


def test_sphere_big_endian_and_stereo(tmp_path):
    # Hand-made big-endian two-channel header: our parser must honour sample_byte_format 10.
    x = _tone_int16(1000).reshape(500, 2)
    head = ("NIST_1A\n   1024\nchannel_count -i 2\nsample_count -i 500\nsample_rate -i 8000\n"
            "sample_n_bytes -i 2\nsample_byte_format -s2 10\nsample_coding -s3 pcm\nend_head\n").encode()
    p = tmp_path / "be.sph"
    p.write_bytes(head + b" " * (1024 - len(head)) + x.astype(">i2").tobytes())
    y, sr = load_audio(p)
    assert sr == 8000 and y.shape == (2, 500)
    np.testing.assert_array_equal(y, x.T / np.float32(32768))
    z, _ = sf.read(p, dtype="int16")
    np.testing.assert_array_equal(z, x)
    m, _ = load_audio(p, mono=True)
    np.testing.assert_allclose(m, x.mean(axis=1) / 32768, rtol=1e-6)


def test_sphere_refuses_shorten_and_truncation(tmp_path):
    head = ("NIST_1A\n   1024\nsample_count -i 10\nsample_rate -i 16000\nsample_n_bytes -i 2\n"
            "sample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n").encode()
    p = tmp_path / "shn.wav"
    p.write_bytes(head + b" " * (1024 - len(head)) + b"\0" * 20)
    with pytest.raises(ValueError, match="shn.wav.*shorten"):
        load_audio(p)
    x = _tone_int16(100)
    q = tmp_path / "cut.wav"
    write_sphere(q, x, 16000)
    q.write_bytes(q.read_bytes()[:-50])
    with pytest.raises(ValueError, match="cut.wav.*truncated"):
        load_audio(q)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("WAV", "FLOAT")])
def test_wav_flac_int16_and_float(tmp_path, fmt, subtype):
    x = _tone_int16(3000)
    p = tmp_path / f"a.{fmt.lower()}"
    data = x if subtype == "PCM_16" else x.astype(np.float32) / 32768
    sf.write(p, data, 16000, format=fmt, subtype=subtype)
    y, sr = load_audio(p)
    assert sr == 16000 and y.dtype == np.float32 and y.ndim == 1
    np.testing.assert_array_equal(y, x.astype(np.float32) / 32768)


def test_stereo_wav_needs_mono_to_downmix(tmp_path):
    x = np.stack([_tone_int16(800, seed=1), _tone_int16(800, seed=2)], axis=1)
    p = tmp_path / "st.wav"
    sf.write(p, x, 16000, subtype="PCM_16")
    y, _ = load_audio(p)
    assert y.shape == (2, 800)
    m, _ = load_audio(p, mono=True)
    assert m.shape == (800,)
    np.testing.assert_allclose(m, (x[:, 0].astype(np.float64) + x[:, 1]) / 2 / 32768, rtol=1e-6)


def test_resampling_matches_scipy_polyphase(tmp_path):
    from scipy.signal import resample_poly
    x = _tone_int16(16000)
    p = tmp_path / "r.wav"
    sf.write(p, x, 16000, subtype="PCM_16")
    y, sr = load_audio(p, sample_rate=8000)
    assert sr == 8000 and y.shape == (8000,)
    np.testing.assert_allclose(y, resample_poly(x / 32768.0, 1, 2), atol=1e-6)
    y3, sr3 = load_audio(p, sample_rate=22050)      # 22050/16000 = 441/320
    assert sr3 == 22050 and y3.shape == (22050,)
    # A 440 Hz tone stays at 440 Hz.
    spec = np.abs(np.fft.rfft(y3))
    assert abs(np.argmax(spec) * 22050 / y3.size - 440) < 2


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")
    bad = tmp_path / "garbage.wav"
    bad.write_bytes(b"RIFF not really a wav file at all")
    with pytest.raises(ValueError, match="garbage.wav"):
        load_audio(bad)
    with pytest.raises(TypeError, match="samples_int16"):
        write_sphere(tmp_path / "f.wav", np.zeros(10), 16000)
    with pytest.raises(ValueError, match="samples_int16"):
        write_sphere(tmp_path / "f.wav", np.array([40000]), 16000)


def test_real_speech_pocketsphinx():
    files = sorted((PS_DATA / "librivox").glob("*.wav")) + sorted((PS_DATA / "cards").glob("*.wav"))
    if not files:
        pytest.skip("pocketsphinx-testdata not installed")
    for f in files:
        y, sr = load_audio(f)
        z, sr2 = sf.read(f, dtype="int16")
        assert sr == sr2 and y.ndim == 1
        np.testing.assert_array_equal(y, z.astype(np.float32) / 32768)


def test_sphere_ulaw_matches_libsndfile(tmp_path):
    # Every one of the 256 G.711 mu-law codes, decoded by us and by libsndfile.
    head = ("NIST_1A\n   1024\nchannel_count -i 1\nsample_count -i 256\nsample_rate -i 8000\n"
            "sample_n_bytes -i 1\nsample_coding -s4 ulaw\nend_head\n").encode()
    p = tmp_path / "u.sph"
    p.write_bytes(head + b" " * (1024 - len(head)) + np.arange(256, dtype=np.uint8).tobytes())
    y, sr = load_audio(p)
    z, _ = sf.read(p, dtype="float32")
    assert sr == 8000 and sf.info(p).subtype == "ULAW"
    np.testing.assert_array_equal(y, z)
    assert y.min() == -32124 / 32768 and y.max() == 32124 / 32768
