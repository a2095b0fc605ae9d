"""The module-layer showcase trains for real: its loss falls and its gradcheck table passes."""

import numpy as np

from scratchasr.nn import toy


def test_toy_trains_and_its_gradchecks_pass(capsys):
    out = toy.main(["--steps", "60", "--n-train", "96", "--n-test", "32", "--every", "20"])
    losses = out["losses"]
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    assert out["accuracy"] > 0.4  # chance is 0.25
    assert out["gradcheck_ok"]
    text = capsys.readouterr().out
    assert "test accuracy" in text and "gradcheck: PASS" in text and "FAIL" not in text


def test_features_are_framed_spectra_with_unequal_lengths():
    rng = np.random.default_rng(0)
    feats, labels = toy.make_data(8, rng)
    assert all(f.shape[1] == toy.BANDS and f.dtype == np.float32 for f in feats)
    assert len({f.shape[0] for f in feats}) > 1
    # a rising chirp's spectral peak moves up over time, a falling one's moves down
    up = toy.spectrogram(toy.synth(0, np.random.default_rng(1)))
    down = toy.spectrogram(toy.synth(1, np.random.default_rng(1)))
    assert up[-1].argmax() > up[0].argmax() and down[-1].argmax() < down[0].argmax()
