"""compute_features(utt_cmvn=...): per-utterance CMVN before the deltas, its invariance to a fixed channel,
and its option checking through the front end."""

import numpy as np
import pytest

from scratchasr.features import add_deltas, cmvn, compute_features
from scratchasr.features.kaldi import fbank
from scratchasr.frontend import Frontend, check_options


def _speech_like(rng, n=16000):
    t = np.arange(n) / 16000.0
    y = 0.2 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(n)
    return y.astype(np.float32)


@pytest.mark.parametrize("mode", ["mean", "mean_var"])
def test_utt_cmvn_is_cmvn_of_fbank_then_deltas(mode, rng):
    y = _speech_like(rng)
    raw = fbank(y.astype(np.float64) * 32768.0, sample_frequency=16000.0, num_mel_bins=40, use_energy=True)
    want = add_deltas(cmvn(raw, norm_vars=mode == "mean_var"), order=2, window=2)
    got = compute_features(y, 16000, utt_cmvn=mode)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    static = got[:, :41]
    np.testing.assert_allclose(static.mean(axis=0), 0.0, atol=1e-4)
    if mode == "mean_var":
        np.testing.assert_allclose(static.std(axis=0), 1.0, atol=1e-3)


def test_utt_cmvn_cancels_a_fixed_gain(rng):
    """A gain is a constant added to every log-mel energy: per-utterance mean subtraction removes it
    (up to the energy floor), the unnormalised features move by log(gain^2) (power)."""
    y = _speech_like(rng)
    a = compute_features(y, 16000, utt_cmvn="mean")
    b = compute_features(0.25 * y, 16000, utt_cmvn="mean")
    np.testing.assert_allclose(a, b, atol=2e-3)
    ra, rb = compute_features(y, 16000), compute_features(0.25 * y, 16000)
    np.testing.assert_allclose((ra - rb)[:, :40].mean(), -2 * np.log(0.25), rtol=1e-2)


def test_utt_cmvn_none_is_the_default(rng):
    y = _speech_like(rng)
    np.testing.assert_array_equal(compute_features(y, 16000), compute_features(y, 16000, utt_cmvn="none"))


def test_utt_cmvn_bad_value_names_the_option(rng):
    with pytest.raises(ValueError, match="^utt_cmvn"):
        compute_features(_speech_like(rng), 16000, utt_cmvn="global")
    with pytest.raises(ValueError, match="^features: utt_cmvn"):
        check_options({"utt_cmvn": "yes"})
    fe = Frontend({"utt_cmvn": "mean"})
    assert fe.options["utt_cmvn"] == "mean" and fe.key() != Frontend({}).key()


def test_streaming_frontend_refuses_utterance_cmvn():
    from scratchasr.streaming import StreamingFrontend
    with pytest.raises(ValueError, match="^frontend: utt_cmvn"):
        StreamingFrontend(Frontend({"utt_cmvn": "mean_var"}))
    StreamingFrontend(Frontend({}))
