"""Waveform augmentation (scratchasr.data.augment): each effect measured against its definition.

SNR achieved == requested; pink noise's log-log spectral slope is -1; the image-source response has its
direct path at distance / c with amplitude 1 / (4 pi d) and decays at a rate between Eyring's and Sabine's
(and matches pyroomacoustics when it is installed); the telephone band attenuates outside 300-3400 Hz;
G.711 mu-law matches the reference decoder's table and its error bound; a seed fixes every draw; every
effect keeps the length and dtype and never writes into its input; bad input names its argument.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchasr.data import augment as A


def _speechlike(n=16000, seed=0):
    """A test signal with speech-like level changes: a few harmonics under a slow on/off envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    y = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k for k, f in enumerate((150, 300, 450, 900), 1))
    return (0.3 * y * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)).astype(np.float32)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.5, 30.0])
@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_snr_achieved_equals_requested(snr, kind):
    y = _speechlike()
    rng = np.random.default_rng(1)
    if kind == "babble":
        noise = A.babble_noise([_speechlike(9000, s) for s in (2, 3, 4)], y.shape[0], rng)
    else:
        noise = (A.white_noise if kind == "white" else A.pink_noise)(y.shape[0], rng)
    y0 = y.copy()
    out = A.add_noise(y, noise, snr)
    np.testing.assert_array_equal(y, y0)                                # input untouched
    assert out.dtype == y.dtype and out.shape == y.shape
    n_added = out.astype(np.float64) - y
    achieved = 10 * np.log10(np.mean(y.astype(np.float64) ** 2) / np.mean(n_added ** 2))
    assert achieved == pytest.approx(snr, abs=1e-3)                     # float32 rounding of the sum


def test_noise_generators_have_unit_power_and_pink_slope_is_minus_one():
    rng = np.random.default_rng(0)
    for gen in (A.white_noise, A.pink_noise):
        assert np.mean(gen(4096, rng) ** 2) == pytest.approx(1.0, rel=1e-9 if gen is A.pink_noise else 0.1)
    # average periodogram over 64 segments; fit log10 power against log10 frequency over 3 decades
    segs = np.stack([A.pink_noise(4096, rng) for _ in range(64)])
    P = np.mean(np.abs(np.fft.rfft(segs, axis=1)) ** 2, axis=0)
    k = np.arange(2, 2049)
    slope = np.polyfit(np.log10(k), np.log10(P[k]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.05)
    w = np.stack([A.white_noise(4096, rng) for _ in range(64)])
    Pw = np.mean(np.abs(np.fft.rfft(w, axis=1)) ** 2, axis=0)
    assert abs(np.polyfit(np.log10(k), np.log10(Pw[k]), 1)[0]) < 0.05   # white: flat


def test_babble_sums_the_talkers_at_equal_power():
    rng = np.random.default_rng(0)
    a, b = _speechlike(8000, 1), 10 * _speechlike(8000, 2)              # one talker 20 dB louder
    out = A.babble_noise([a, b], 8000, np.random.default_rng(5))
    assert np.mean(out ** 2) == pytest.approx(1.0)
    # with both talkers at unit power neither dominates: the output correlates about equally with each
    g = np.random.default_rng(5)
    oa, ob = int(g.integers(0, 8000)), int(g.integers(0, 8000))
    ra, rb = np.roll(a, -oa), np.roll(b, -ob)
    ca, cb = (abs(np.corrcoef(out, r)[0, 1]) for r in (ra, rb))
    assert ca == pytest.approx(cb, rel=0.15) and ca > 0.5
    short = A.babble_noise([a[:100]], 1000, rng)                        # wrapped to the length
    assert short.shape == (1000,)


def test_rir_direct_path_delay_and_amplitude():
    room, src, mic = (5.0, 4.0, 3.0), (1.0, 1.5, 1.2), (3.5, 2.0, 1.5)
    sr = 16000
    h = A.image_source_rir(room, src, mic, absorption=0.5, sample_rate=sr, duration=0.05, highpass=0.0)
    d = math.dist(src, mic)
    peak = int(np.argmax(h))
    assert abs(peak - d / A.SPEED_OF_SOUND * sr) <= 0.5
    # the first reflection comes from the closest wall image; nothing arrives before the direct path
    assert np.max(np.abs(h[:peak - 8])) < 1e-12
    # the direct pulse (a windowed sinc around the fractional delay, the first reflection 54 samples later)
    assert np.sum(h[peak - 8:peak + 9]) == pytest.approx(1 / (4 * np.pi * d), rel=0.02)


@pytest.mark.parametrize("room, absorption", [((5.0, 4.0, 3.0), 0.4), ((7.0, 5.0, 3.0), 0.5)])
def test_rir_decay_between_eyring_and_sabine(room, absorption):
    eyring, sabine = A.eyring_rt60(room, absorption), A.sabine_rt60(room, absorption)
    assert eyring < sabine
    h = A.image_source_rir(room, (1.2, 1.5, 1.4), (3.1, 2.2, 1.6), absorption=absorption,
                           duration=1.5 * eyring)
    t20 = A.measure_rt60(h, 16000)
    assert 0.9 * eyring <= t20 <= 1.15 * sabine, (t20, eyring, sabine)


def test_sabine_eyring_formulas_and_room_validation():
    # V = 60, S = 94: Sabine 0.161 * 60 / (94 a); Eyring replaces a by -ln(1 - a)
    assert A.sabine_rt60((5, 4, 3), 0.4) == pytest.approx(0.161 * 60 / (94 * 0.4))
    assert A.eyring_rt60((5, 4, 3), 0.4) == pytest.approx(0.161 * 60 / (-94 * math.log(0.6)))
    with pytest.raises(ValueError, match=r"^mic:"):
        A.image_source_rir((5, 4, 3), (1, 1, 1), (6, 1, 1), absorption=0.3)
    with pytest.raises(ValueError, match=r"^absorption:"):
        A.image_source_rir((5, 4, 3), (1, 1, 1), (2, 1, 1), absorption=1.0)
    with pytest.raises(ValueError, match=r"^room:"):
        A.image_source_rir((5, -4, 3), (1, 1, 1), (2, 1, 1), absorption=0.3)


@pytest.mark.oracle
def test_rir_matches_pyroomacoustics():
    pra = pytest.importorskip("pyroomacoustics")
    room, src, mic, a, sr = (5.0, 4.0, 3.0), (1.2, 1.5, 1.4), (3.1, 2.2, 1.6), 0.4, 16000
    h = A.image_source_rir(room, src, mic, absorption=a, sample_rate=sr, duration=0.3)
    r = pra.ShoeBox(list(room), fs=sr, materials=pra.Material(energy_absorption=a), max_order=80,
                    air_absorption=False)
    r.add_source(list(src))
    r.add_microphone(np.array(mic)[:, None])
    r.compute_rir()
    off = pra.constants.get("frac_delay_length") // 2                   # pyroomacoustics' global delay
    g = r.rir[0][0][off:off + h.shape[0]] / (4 * np.pi)                 # it leaves out the 1/(4 pi)
    assert np.dot(h, g) / (np.linalg.norm(h) * np.linalg.norm(g)) > 0.95
    assert np.sum(h ** 2) == pytest.approx(np.sum(g ** 2), rel=0.1)
    assert A.measure_rt60(h, sr) == pytest.approx(A.measure_rt60(g, sr), rel=0.05)


def test_reverberate_keeps_length_timing_and_power():
    y = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)   # white: xcorr = h
    room = A.Room((6.0, 5.0, 3.0), (1.0, 1.0, 1.7), (3.0, 2.0, 1.2), 0.5)
    h = A.image_source_rir(room.size, room.source, room.mic, absorption=room.absorption)
    d = math.dist(room.source, room.mic) / A.SPEED_OF_SOUND
    out = A.reverberate(y, h, direct_delay=d)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert np.mean(out.astype(np.float64) ** 2) == pytest.approx(np.mean(y.astype(np.float64) ** 2), rel=1e-5)
    # the direct path (the largest tap) lines up with the dry signal: the cross-correlation peaks at lag 0
    xc = np.correlate(out[2000:10000].astype(np.float64), y[2000:10000].astype(np.float64), "full")
    assert int(np.argmax(xc)) == 8000 - 1
    with pytest.raises(ValueError, match=r"^direct_delay:"):
        A.reverberate(y, h, direct_delay=10.0)


def _tone_gain_db(f, sr=16000, n=16000):
    t = np.arange(n) / sr
    x = np.sin(2 * np.pi * f * t)
    y = A.telephone(x, sr)
    mid = slice(2000, n - 2000)                                          # away from the edges
    return 10 * np.log10(np.mean(y[mid] ** 2) / np.mean(x[mid] ** 2))


def test_telephone_band_attenuation():
    for f in (500.0, 1000.0, 3000.0):
        assert abs(_tone_gain_db(f)) < 1.0, f
    for f in (60.0, 100.0, 4500.0, 6000.0, 7500.0):
        assert _tone_gain_db(f) < -30.0, f
    y = _speechlike()
    out = A.telephone(y, 16000)
    assert out.shape == y.shape and out.dtype == y.dtype
    assert A.telephone(y, 16000, codec=True).shape == y.shape


def test_bandpass_fir_response():
    h = A.bandpass_fir(300, 3400, 16000)
    H = np.abs(np.fft.rfft(h, 16000))                                  # 1 Hz bins
    assert np.all(np.abs(20 * np.log10(H[600:3100])) < 0.1)
    assert np.all(20 * np.log10(H[3800:]) < -40) and np.all(20 * np.log10(H[:40]) < -40)
    np.testing.assert_allclose(h, h[::-1])                              # linear phase
    with pytest.raises(ValueError, match=r"^taps:"):
        A.bandpass_fir(300, 3400, 16000, taps=400)
    with pytest.raises(ValueError, match=r"^low:"):
        A.bandpass_fir(3400, 300, 16000)


def _reference_ulaw2linear(u: int) -> int:
    """The CCITT/Sun reference decoder, one code at a time."""
    u = ~u & 0xFF
    t = ((u & 0x0F) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return (0x84 - t) if (u & 0x80) else (t - 0x84)


def test_mulaw_codes_round_trip_and_error_bound():
    codes = np.arange(256, dtype=np.uint8)
    dec = A.mulaw_decode(codes) * 32768
    np.testing.assert_array_equal(dec, [_reference_ulaw2linear(int(u)) for u in codes])
    assert dec[0] == -32124 and dec[0x80] == 32124 and dec[0xFF] == 0
    # every decoded level encodes back to its own code (0x7F, negative zero, decodes to 0 = code 0xFF)
    again = A.mulaw_encode(dec / 32768)
    np.testing.assert_array_equal(again[codes != 0x7F], codes[codes != 0x7F])
    # the error bound of docs/equations/augment.md over every 16-bit value up to the clip level
    x = np.arange(-32635, 32636, dtype=np.float64)
    err = np.abs(A.mulaw(x / 32768) * 32768 - x)
    assert np.all(err <= (np.abs(x) + 132) / 32 + 4)
    assert np.max(err[np.abs(x) > 1000] / np.abs(x[np.abs(x) > 1000])) < 0.036
    assert A.mulaw_encode(np.zeros(0)).shape == (0,)
    with pytest.raises(TypeError, match=r"^codes:"):
        A.mulaw_decode(np.zeros(3, np.int16))


def test_gain():
    y = _speechlike()
    out = A.apply_gain(y, 6.0)
    np.testing.assert_allclose(out, y * 10 ** 0.3, rtol=1e-6)
    np.testing.assert_array_equal(A.apply_gain(y, 0.0), y)
    with pytest.raises(ValueError, match=r"^gain_db:"):
        A.apply_gain(y, float("nan"))


def test_chain_is_deterministic_for_a_seed_and_effects_draw_independently():
    y = _speechlike(8000)
    talk = [_speechlike(6000, s) for s in range(8)]
    opts = A.AugmentOptions(gain=0.5, reverb=0.5, noise=0.5, babble=0.5, telephone=0.5, mulaw=0.5,
                            rir_max_seconds=0.2)

    def talkers(k, g):
        return [talk[int(j)] for j in g.choice(8, size=k, replace=False)]

    runs = [A.augment_waveform(y, 16000, np.random.default_rng([3, i]), opts, talkers=talkers)
            for i in range(12) for _ in range(2)]
    for (a, wa), (b, wb) in zip(runs[::2], runs[1::2]):
        np.testing.assert_array_equal(a, b)
        assert wa == wb
        assert a.shape == y.shape and a.dtype == y.dtype
    assert len({tuple(e.effect for e in w) for _, w in runs}) > 3       # different seeds, different chains
    # turning noise off changes nothing in the other effects' decisions
    quiet = A.AugmentOptions(gain=0.5, reverb=0.5, noise=0.0, babble=0.5, telephone=0.5, mulaw=0.5)
    for i in range(12):
        with_noise = [n for n, _ in A.draw_effects(opts, np.random.default_rng([3, i])) if n != "noise"]
        without = [n for n, _ in A.draw_effects(quiet, np.random.default_rng([3, i]))]
        assert with_noise == without


def test_bad_inputs_name_the_argument():
    y = _speechlike(100)
    with pytest.raises(ValueError, match=r"^noise:"):
        A.add_noise(y, np.ones(99), 10.0)
    with pytest.raises(ValueError, match=r"^noise:"):
        A.add_noise(y, np.zeros(100), 10.0)
    with pytest.raises(TypeError, match=r"^y:"):
        A.add_noise(y.astype(np.int16), np.ones(100), 10.0)
    with pytest.raises(ValueError, match=r"^y:"):
        A.telephone(np.full(10, np.nan), 16000)
    with pytest.raises(ValueError, match=r"^snr_db:"):
        A.add_noise(y, np.ones(100), float("inf"))
    with pytest.raises(ValueError, match=r"^talkers:"):
        A.babble_noise([], 10, np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"^rng:"):
        A.white_noise(10, 0)
    with pytest.raises(ValueError, match=r"^phone_rate:"):
        A.telephone(y, 8000, phone_rate=16000)
    with pytest.raises(ValueError, match=r"^noise:"):
        A.AugmentOptions(noise=1.5)
    with pytest.raises(ValueError, match=r"^snr_high:"):
        A.AugmentOptions(snr_low=10.0, snr_high=5.0)
    with pytest.raises(ValueError, match=r"^talkers:"):
        A.augment_waveform(y, 16000, np.random.default_rng(0), A.AugmentOptions(babble=1.0))
    with pytest.raises(ValueError, match=r"^h:"):
        A.measure_rt60(np.zeros(100), 16000)


@pytest.mark.parametrize("n", [50, 3000])
def test_every_effect_keeps_length_dtype_and_input(n):
    y = _speechlike(n)
    y0 = y.copy()
    everything = A.AugmentOptions(gain=1.0, reverb=1.0, noise=1.0, babble=1.0, telephone=1.0, mulaw=1.0,
                                  rir_max_seconds=0.1)
    out, applied = A.augment_waveform(y, 16000, np.random.default_rng(0), everything,
                                      talkers=lambda k, g: [_speechlike(700, s) for s in range(k)])
    assert [a.effect for a in applied] == list(A.AugmentOptions.WAVEFORM_EFFECTS)
    assert out.shape == y.shape and out.dtype == y.dtype and np.all(np.isfinite(out))
    np.testing.assert_array_equal(y, y0)
