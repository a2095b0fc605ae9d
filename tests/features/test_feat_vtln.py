"""Kaldi's VTLN warp of the mel filters (fbank(vtln_warp=...)): against kaldi-native-fbank's MelBanks, a
transcription of Kaldi's VtlnWarpFreq, the warp's own invariants, and its option checks."""

import numpy as np
import pytest

from scratchasr.features.kaldi import fbank
from scratchasr.features.mel import kaldi_mel_banks, kaldi_mel_scale, vtln_warp_freq


def kaldi_vtln_warp_freq_loop(vtln_low, vtln_high, low_freq, high_freq, warp, freq):
    """Kaldi's MelBanks::VtlnWarpFreq (src/feat/mel-computations.cc), one frequency at a time."""
    if freq < low_freq or freq > high_freq:
        return freq
    lo = vtln_low * max(1.0, warp)
    hi = vtln_high * min(1.0, warp)
    scale = 1.0 / warp
    Fl, Fh = scale * lo, scale * hi
    scale_left = (Fl - low_freq) / (lo - low_freq)
    scale_right = (high_freq - Fh) / (high_freq - hi)
    if freq < lo:
        return low_freq + scale_left * (freq - low_freq)
    if freq < hi:
        return scale * freq
    return high_freq + scale_right * (freq - high_freq)


@pytest.mark.parametrize("warp", [0.8, 0.9, 1.0, 1.05, 1.2])
def test_warp_freq_matches_kaldi_loop_and_is_continuous(warp):
    f = np.linspace(0.0, 8000.0, 1601)
    got = vtln_warp_freq(f, warp=warp, low_freq=20.0, high_freq=8000.0, vtln_low=100.0, vtln_high=7500.0)
    want = [kaldi_vtln_warp_freq_loop(100.0, 7500.0, 20.0, 8000.0, warp, x) for x in f]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.all(np.diff(got) > 0)                         # monotone: the filters keep their order
    assert got[f == 20.0][0] == pytest.approx(20.0) and got[-1] == pytest.approx(8000.0)   # band edges fixed


def test_linear_region_divides_by_the_warp():
    """Between the breakpoints, a filter's centre moves from f to f / warp: a formant at F then shows in the
    bin that sat at warp F, as if the formants were warp times higher (VTLP draws warp to perturb a
    speaker; VTLN estimates it to normalise one)."""
    M0 = kaldi_mel_banks(num_bins=40, padded_window_size=512, sample_frequency=16000.0)
    M = kaldi_mel_banks(num_bins=40, padded_window_size=512, sample_frequency=16000.0, vtln_warp=1.1)
    peak0, peak = M0.argmax(axis=1) * 31.25, M.argmax(axis=1) * 31.25
    mid = (peak0 > 400) & (peak0 < 6000)
    np.testing.assert_allclose(peak[mid], peak0[mid] / 1.1, atol=2 * 31.25)


@pytest.mark.parametrize("warp", [0.85, 0.93, 1.0, 1.1, 1.2])
@pytest.mark.parametrize("bins,low,high,vlow,vhigh", [(40, 20.0, 0.0, 100.0, -500.0),
                                                       (23, 60.0, 7000.0, 300.0, 6000.0)])
def test_mel_banks_match_kaldi_native_fbank(warp, bins, low, high, vlow, vhigh):
    knf = pytest.importorskip("kaldi_native_fbank")
    mo = knf.MelBanksOptions()
    mo.num_bins, mo.low_freq, mo.high_freq, mo.vtln_low, mo.vtln_high = bins, low, high, vlow, vhigh
    fo = knf.FrameExtractionOptions()
    fo.samp_freq = 16000
    want = np.array(knf.MelBanks(mo, fo, warp).get_matrix())
    got = kaldi_mel_banks(num_bins=bins, padded_window_size=512, sample_frequency=16000.0, low_freq=low,
                          high_freq=high, vtln_warp=warp, vtln_low=vlow, vtln_high=vhigh)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=5e-5)        # knf keeps the weights in float32


def test_fbank_warp_one_is_the_unwarped_fbank_and_bad_options_name_themselves(rng):
    y = rng.standard_normal(8000) * 1000.0
    np.testing.assert_array_equal(fbank(y, num_mel_bins=40), fbank(y, num_mel_bins=40, vtln_warp=1.0))
    assert np.abs(fbank(y, num_mel_bins=40) - fbank(y, num_mel_bins=40, vtln_warp=1.1)).max() > 0.1
    with pytest.raises(ValueError, match="^vtln_warp"):
        fbank(y, vtln_warp=3.0)
    with pytest.raises(ValueError, match="^vtln_warp"):
        fbank(y, vtln_warp=float("nan"))
    with pytest.raises(ValueError, match="^vtln_low"):
        fbank(y, vtln_warp=1.1, vtln_low=10.0)               # not above low_freq (20 Hz), as Kaldi refuses
    assert kaldi_mel_scale(1000.0) == pytest.approx(1127.0 * np.log(1 + 1000.0 / 700.0))
