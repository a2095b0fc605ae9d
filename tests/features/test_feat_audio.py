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
    with pytest.raises(TypeError, match=r"^samples_int16:"):
        write_sphere(tmp_path / "f.wav", np.zeros(10), 16000)
    with pytest.raises(ValueError, match=r"^samples_int16:"):
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


# ---------------------------------------------------------------- headers that disagree with their data


def _sphere_bytes(fields: str, data: bytes) -> bytes:
    head = ("NIST_1A\n   1024\n" + fields + "end_head\n").encode()
    return head + b" " * (1024 - len(head)) + data


def test_sphere_channel_count_zero_is_an_error_not_a_zero_division(tmp_path):
    p = tmp_path / "c0.sph"
    p.write_bytes(_sphere_bytes("channel_count -i 0\nsample_count -i 4\nsample_rate -i 16000\n"
                                "sample_n_bytes -i 2\n", b"\0" * 8))
    with pytest.raises(ValueError, match=r"c0\.sph.*channel_count must be >= 1, got 0"):
        load_audio(p)


def test_sphere_sample_count_must_match_the_data_exactly(tmp_path):
    x = _tone_int16(100)
    fields = "channel_count -i 1\nsample_count -i {}\nsample_rate -i 16000\nsample_n_bytes -i 2\n"
    short = tmp_path / "short.sph"                 # header says 60, the file holds 100: never truncate
    short.write_bytes(_sphere_bytes(fields.format(60), x.astype("<i2").tobytes()))
    with pytest.raises(ValueError, match=r"short\.sph.*sample_count 60.*holds 100"):
        load_audio(short)
    long_ = tmp_path / "long.sph"
    long_.write_bytes(_sphere_bytes(fields.format(120), x.astype("<i2").tobytes()))
    with pytest.raises(ValueError, match=r"long\.sph.*120 samples.*only 100"):
        load_audio(long_)
    odd = tmp_path / "odd.sph"                     # no sample_count: still a whole number of samples
    odd.write_bytes(_sphere_bytes("sample_rate -i 16000\nsample_n_bytes -i 2\n", b"\0" * 7))
    with pytest.raises(ValueError, match=r"odd\.sph.*7 data bytes"):
        load_audio(odd)


def test_sphere_byte_order_checked_against_format_and_sample_range(tmp_path):
    x = _tone_int16(200)
    lo, hi = int(x.min()), int(x.max())
    fields = (f"channel_count -i 1\nsample_count -i 200\nsample_rate -i 16000\nsample_min -i {lo}\n"
              f"sample_max -i {hi}\nsample_n_bytes -i 2\nsample_byte_format -s2 {{}}\n")
    ok = tmp_path / "ok.sph"
    ok.write_bytes(_sphere_bytes(fields.format("10"), x.astype(">i2").tobytes()))
    y, _ = load_audio(ok)
    np.testing.assert_array_equal(y, x / np.float32(32768))
    lie = tmp_path / "lie.sph"                     # header says little-endian, the data are big-endian
    lie.write_bytes(_sphere_bytes(fields.format("01"), x.astype(">i2").tobytes()))
    with pytest.raises(ValueError, match=r"lie\.sph.*sample_byte_format 01.*byte order is wrong"):
        load_audio(lie)
    wrong_width = tmp_path / "w.sph"               # a 4-byte order for 2-byte samples
    wrong_width.write_bytes(_sphere_bytes(fields.format("0123").replace("-s2 0123", "-s4 0123"),
                                          x.astype("<i2").tobytes()))
    with pytest.raises(ValueError, match=r"w\.sph.*'0123' does not fit sample_n_bytes 2"):
        load_audio(wrong_width)
    off = tmp_path / "off.sph"                     # a range that fits neither order: warn, keep the data
    off_fields = fields.format("01").replace(f"sample_max -i {hi}", f"sample_max -i {hi + 7}")
    off.write_bytes(_sphere_bytes(off_fields, x.astype("<i2").tobytes()))
    with pytest.warns(UserWarning, match=r"off\.sph.*sample_max"):
        y, _ = load_audio(off)
    np.testing.assert_array_equal(y, x / np.float32(32768))


def test_written_sphere_passes_its_own_checks(tmp_path):
    # write_sphere records sample_min/max: reading it back must raise nothing and warn nothing.
    import warnings
    p = tmp_path / "SI1.WAV"
    write_sphere(p, _tone_int16(300), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(p)


def test_float_wav_on_int16_scale_is_refused_naming_the_file(tmp_path):
    x = _tone_int16(2000).astype(np.float32)      # int16-scale values stored as float
    p = tmp_path / "scaled.wav"
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"^load_audio: .*scaled\.wav.*int16-scale"):
        load_audio(p)
    q = tmp_path / "hot.wav"                       # slight overshoot: a warning naming the file
    sf.write(q, np.array([0.0, 1.5, -0.2], np.float32), 16000, subtype="FLOAT")
    with pytest.warns(UserWarning, match=r"hot\.wav.*1\.5"):
        y, _ = load_audio(q)
    assert y[1] == np.float32(1.5)
    r = tmp_path / "nan.wav"
    sf.write(r, np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav.*NaN"):
        load_audio(r)


def test_audio_shorter_than_a_frame_gives_no_features_and_an_error(tmp_path):
    from scratchasr.features import compute_features
    p = tmp_path / "blip.wav"
    sf.write(p, _tone_int16(300), 16000, subtype="PCM_16")   # 300 samples < one 400-sample frame
    y, sr = load_audio(p)
    with pytest.raises(ValueError, match=r"^y: .*blip\.wav: 300 samples .*shorter than one 25.0 ms frame"):
        compute_features(y, sr, source=str(p))
    with pytest.raises(ValueError, match=r"^y: 300 samples"):
        compute_features(y, sr)
    assert compute_features(np.zeros(400, np.float32), 16000).shape == (1, 123)


# ---------------------------------------------------------------- resampling


def test_resample_keeps_a_sine_at_its_frequency():
    from scratchasr.features import resample
    sr = 16000
    t = np.arange(sr) / sr
    x = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    for target, n_out in ((8000, 8000), (44100, 44100), (22050, 22050), (11025, 11025)):
        y = resample(x, sr, target)
        assert y.dtype == np.float32 and y.shape == (n_out,)
        spec = np.abs(np.fft.rfft(y * np.hanning(y.size)))
        assert abs(np.argmax(spec) * target / y.size - 1000) <= 1.0
        mid = y[y.size // 4: 3 * y.size // 4]
        assert abs(np.sqrt(np.mean(mid.astype(np.float64) ** 2)) - np.sqrt(0.5)) < 2e-3   # amplitude kept
    stereo = np.stack([x, -x])                     # (C, N): time on the last axis
    ys = resample(stereo, 16000.0, 8000)
    assert ys.shape == (2, 8000)
    np.testing.assert_array_equal(ys[1], -ys[0])
    same = resample(x, 16000, 16000)
    assert same is not x
    np.testing.assert_array_equal(same, x)


def test_resample_argument_errors():
    from scratchasr.features import resample
    x = np.zeros(100, np.float32)
    with pytest.raises(ValueError, match=r"^orig_sr:"):
        resample(x, 0, 8000)
    with pytest.raises(TypeError, match=r"^target_sr:"):
        resample(x, 16000, 8000.5)
    with pytest.raises(TypeError, match=r"^y:"):
        resample(np.zeros(100, np.int16), 16000, 8000)
    with pytest.raises(ValueError, match=r"^y:"):
        resample(np.zeros((1, 2, 3)), 16000, 8000)


def test_resample_agrees_with_sox(tmp_path):
    import shutil
    import subprocess
    from scratchasr.features import resample
    if shutil.which("sox") is None:
        pytest.skip("sox not installed")
    sr = 16000
    t = np.arange(sr // 2) / sr
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1500 * t)
    src = tmp_path / "in.wav"
    sf.write(src, x, sr, subtype="FLOAT")
    for target in (8000, 22050):
        out = tmp_path / f"out{target}.wav"
        subprocess.run(["sox", "-V1", str(src), "-e", "floating-point", "-b", "32", str(out), "rate", "-v",
                        str(target)], check=True, capture_output=True)
        z, sr_z = sf.read(out)
        y = resample(x, sr, target)
        assert sr_z == target and y.shape == z.shape
        mid = slice(y.size // 4, 3 * y.size // 4)  # two different filters: compare away from the edges
        assert np.abs(y[mid] - z[mid]).max() < 2e-3


def test_load_audio_resamples_through_resample(tmp_path):
    from scratchasr.features import resample
    x = _tone_int16(16000)
    p = tmp_path / "r44.wav"
    sf.write(p, x, 44100, subtype="PCM_16")
    y, sr = load_audio(p, sample_rate=16000)
    assert sr == 16000
    np.testing.assert_array_equal(y, resample(x.astype(np.float32) / 32768, 44100, 16000))
