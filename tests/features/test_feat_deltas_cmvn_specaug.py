"""add_deltas (Kaldi), CMVN (per utterance and streaming global), SpecAugment (masks reproducible)."""

import numpy as np
import pytest

from scratchasr.features import (CmvnStats, SpecAugmentMasks, add_deltas, apply_spec_augment, cmvn,
                                 spec_augment)


def kaldi_deltas_loop(c, order=2, window=2):
    """Kaldi's DeltaFeatures, transcribed: scales built by repeated convolution, edge frames clamped."""
    scales = [np.array([1.0])]
    for _ in range(order):
        prev = scales[-1]
        po = (prev.size - 1) // 2
        co = po + window
        cur = np.zeros(prev.size + 2 * window)
        normalizer = 0.0
        for j in range(-window, window + 1):
            normalizer += j * j
            for k in range(-po, po + 1):
                cur[j + k + co] += j * prev[k + po]
        scales.append(cur / normalizer)
    T, D = c.shape
    out = np.zeros((T, D * (order + 1)))
    for t in range(T):
        for i, s in enumerate(scales):
            mo = (s.size - 1) // 2
            for j in range(-mo, mo + 1):
                out[t, i * D:(i + 1) * D] += s[j + mo] * c[min(max(t + j, 0), T - 1)]
    return out


@pytest.mark.parametrize("T,order,window",
                         [(1, 2, 2), (3, 2, 2), (20, 2, 2), (9, 1, 3), (15, 3, 1), (6, 0, 2)])
def test_add_deltas_matches_kaldi_loop(T, order, window, rng):
    c = rng.standard_normal((T, 4))
    out = add_deltas(c, order=order, window=window)
    assert out.shape == (T, 4 * (order + 1)) and out.dtype == np.float64
    np.testing.assert_allclose(out, kaldi_deltas_loop(c, order, window), atol=1e-12)
    assert add_deltas(c.astype(np.float32), order=order, window=window).dtype == np.float32


def test_deltas_of_a_ramp():
    c = np.arange(10.0)[:, None] * 3.0                      # slope 3 per frame
    out = add_deltas(c)
    np.testing.assert_allclose(out[2:-2, 1], 3.0)           # exact away from the edges
    np.testing.assert_allclose(out[4:-4, 2], 0.0, atol=1e-12)
    with pytest.raises(ValueError, match=r"^feats:"):
        add_deltas(np.zeros(5))
    with pytest.raises(ValueError, match="finite"):
        add_deltas(np.full((3, 2), np.nan))


def test_cmvn_per_utterance(rng):
    x = rng.standard_normal((50, 6)) * 3 + 10
    y = cmvn(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), x.std(axis=0))
    z = cmvn(x, norm_vars=True)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-12)
    x0 = x.copy()
    cmvn(x, norm_vars=True)
    np.testing.assert_array_equal(x, x0)                    # input untouched


def test_global_cmvn_streaming_equals_one_shot_and_saves(tmp_path, rng):
    utts = [rng.standard_normal((int(n), 5)) * 2 + 1e4 for n in rng.integers(1, 40, size=12)]
    stats = CmvnStats()
    for u in utts:
        stats.accumulate(u)
    allx = np.concatenate(utts)
    np.testing.assert_allclose(stats.mean, allx.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(stats.var, allx.var(axis=0), rtol=1e-9)   # large mean: no cancellation
    p = tmp_path / "cmvn.npz"
    stats.save(p)
    back = CmvnStats.load(p)
    assert back.count == allx.shape[0]
    np.testing.assert_array_equal(back.apply(utts[0]), stats.apply(utts[0]))
    np.testing.assert_allclose(back.apply(allx).std(axis=0), 1, rtol=1e-9)
    with pytest.raises(ValueError, match="columns"):
        stats.accumulate(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="no frames"):
        CmvnStats().save(tmp_path / "x.npz")


def test_spec_augment_masks_reproduce(rng):
    x = rng.standard_normal((120, 40)) + 5
    y, m = spec_augment(x, np.random.default_rng(7), num_freq_masks=2, freq_mask_width=10,
                        num_time_masks=3, time_mask_width=20, time_warp=5)
    assert isinstance(m, SpecAugmentMasks) and m.freq_mask.shape == (40,) and m.time_mask.shape == (120,)
    assert m.freq_mask.any() and m.time_mask.any()          # seed 7 draws non-empty masks
    assert np.all(y[m.time_mask] == 0) and np.all(y[:, m.freq_mask] == 0)
    keep = ~m.time_mask[:, None] & ~m.freq_mask[None, :]
    assert np.all(y[keep] != 0)
    np.testing.assert_array_equal(apply_spec_augment(x, m), y)
    y2, m2 = spec_augment(x, np.random.default_rng(7), num_freq_masks=2, freq_mask_width=10,
                          num_time_masks=3, time_mask_width=20, time_warp=5)
    np.testing.assert_array_equal(y, y2)
    assert x.min() > 0                                      # input untouched (still all positive)


def test_time_warp_moves_the_centre():
    T = 50
    x = np.arange(T, dtype=np.float64)[:, None] * np.ones((1, 3))
    m = SpecAugmentMasks(np.zeros(3, bool), np.zeros(T, bool), warp_center=20, warp_shift=5)
    y = apply_spec_augment(x, m)
    assert y[25, 0] == pytest.approx(20.0)                 # frame 20 now sits at 25
    assert y[0, 0] == 0.0 and y[-1, 0] == T - 1            # the ends stay put
    assert np.all(np.diff(y[:, 0]) > 0)                    # monotone: no frame order swapped
    no = SpecAugmentMasks(np.zeros(3, bool), np.zeros(T, bool), 0, 0)
    np.testing.assert_array_equal(apply_spec_augment(x, no), x)


def test_spec_augment_bad_input(rng):
    with pytest.raises(TypeError, match=r"^rng:"):
        spec_augment(np.zeros((5, 3)), 0)
    with pytest.raises(ValueError, match=r"^max_time_ratio:"):
        spec_augment(np.zeros((5, 3)), rng, max_time_ratio=2.0)
    y, m = spec_augment(np.ones((3, 2)), rng, time_warp=80)  # too short to warp: no warp, no crash
    assert m.warp_shift == 0 and y.shape == (3, 2)


def test_compute_features_is_fbank_energy_deltas(rng):
    from scratchasr.features import compute_features, fbank
    y = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    f = compute_features(y, 16000)
    assert f.shape == (1 + (8000 - 400) // 160, 123) and f.dtype == np.float32
    base = fbank(y * 32768, num_mel_bins=40, use_energy=True)
    np.testing.assert_array_equal(f[:, :41], base)
    np.testing.assert_allclose(f, add_deltas(base), rtol=1e-6, atol=1e-5)
    assert compute_features(y, 16000, delta_order=0, num_mel_bins=23, snip_edges=False).shape == (50, 24)
