"""Waveform augmentation in the trainer (aug_* keys): off by default, changes the training, is deterministic
for a seed, resumes bit-exactly (also with speed perturbation and SpecAugment on top), refuses a changed
option on --resume, and the on-the-fly features of an identity effect equal the cached clean features."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from scratchasr.data.augment import AugmentOptions, TrainingAugmenter
from scratchasr.data.corpus import read_split, spread_subset
from scratchasr.frontend import Frontend
from scratchasr.io import load_checkpoint
from scratchasr.trainer import TrainConfig, train

pytestmark = pytest.mark.skipif(not (shutil.which("festival") and shutil.which("flite")
                                     and Path("/usr/share/wordnet").exists()),
                                reason="festival/flite/wordnet-base not installed")

AUG = dict(aug_gain=0.5, aug_reverb=0.3, aug_noise=0.5, aug_babble=0.5, aug_telephone=0.3, aug_mulaw=0.3)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from scratchasr.data.synth import synth_timit
    root = tmp_path_factory.mktemp("synth_aug") / "tiny"
    synth_timit(str(root), size="tiny", seed=0, progress=False)
    return root


def _cfg(corpus, exp, **kw):
    base = dict(model="ctc_blstm", data_dir=str(corpus), exp_dir=str(exp), hidden=16, num_layers=1, stack=2,
                dropout=0.0, lr=1e-2, batch_size=3, epochs=3, patience=1000, lr_halving=False,
                max_train_utts=5, max_dev_utts=3, progress=False)
    base.update(kw)
    return TrainConfig.from_overrides(base)


def _params(path):
    arrays, _, meta = load_checkpoint(path)
    return arrays, meta


def test_defaults_are_off_and_bad_values_name_the_key():
    cfg = TrainConfig()
    assert all(getattr(cfg, k) == 0.0 for k in AUG)
    for override, key in (("--aug_noise=1.5", "aug_noise"), ("--aug_reverb=-0.1", "aug_reverb"),
                          ("--aug_snr_high=1", "aug_snr_high"), ("--aug_gain_db=-3", "aug_gain_db"),
                          ("--aug_mulaw=x", "aug_mulaw")):
        with pytest.raises(ValueError, match=rf"^{key}:"):
            TrainConfig.from_overrides({}, [override])


@pytest.mark.parametrize("extra", [dict(), dict(speed_perturb=True, spec_augment=True, grad_accum=2)])
def test_augmented_training_resumes_bit_exactly(corpus, tmp_path, extra):
    kw = dict(AUG, **extra)
    full = train(_cfg(corpus, tmp_path / "a", **kw))
    train(_cfg(corpus, tmp_path / "b", epochs=2, **kw))
    resumed = train(_cfg(corpus, tmp_path / "b", **kw), resume=True)
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    a, _ = _params(tmp_path / "a" / "checkpoint.npz")
    b, _ = _params(tmp_path / "b" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    if extra:
        return
    clean = train(_cfg(corpus, tmp_path / "clean", epochs=1))                   # augmentation changes the run
    assert clean["history"][0]["train_loss"] != full["history"][0]["train_loss"]
    with pytest.raises(ValueError, match=r"^config: differs from the checkpoint in aug_noise"):
        train(_cfg(corpus, tmp_path / "b", **dict(kw, aug_noise=0.2, epochs=4)), resume=True)


def test_identity_effect_gives_the_cached_features_and_draws_are_keyed(corpus):
    utts = spread_subset(read_split(corpus, "train", "phones"), 4)
    fe = Frontend({})
    clean = [fe.file_features(u.wav_path) for u in utts]
    fe.fit(clean)
    speeds = [1.0, 1.0, 0.9, 1.1]
    aug = TrainingAugmenter(AugmentOptions(gain=1.0, gain_db=0.0), fe, [u.wav_path for u in utts], speeds)
    for i, u in enumerate(utts):
        f = aug.features(i, np.random.default_rng([0, 11, 0, i]))
        want = fe.normalise(fe.file_features(u.wav_path, speed=speeds[i], notice=False))
        np.testing.assert_array_equal(f, want)                                 # gain 0 dB: bit-identical
    noisy = TrainingAugmenter(AugmentOptions(noise=0.5, babble=0.5), fe, [u.wav_path for u in utts])
    got = [noisy.features(1, np.random.default_rng([0, 11, e, 1])) for e in range(6)]
    again = [noisy.features(1, np.random.default_rng([0, 11, e, 1])) for e in range(6)]
    assert any(g is None for g in got) and any(g is not None for g in got)    # probability per utterance
    for g, h in zip(got, again):
        assert (g is None and h is None) or np.array_equal(g, h)


def test_vtlp_warps_the_filters_by_the_drawn_factor_and_leaves_other_draws_alone(corpus):
    """VTLP (aug_vtlp): the augmented features are the front end's with Kaldi's VTLN warp at the factor
    drawn from the effect's own generator; a zero range gives the cached features bit for bit; turning
    VTLP on changes no other effect's draw; in training it resumes bit-exactly like the others."""
    from scratchasr.data.augment import draw_effects, vtlp_warp
    utts = spread_subset(read_split(corpus, "train", "phones"), 3)
    fe = Frontend({})
    fe.fit([fe.file_features(u.wav_path) for u in utts])
    opts = AugmentOptions(vtlp=1.0, vtlp_range=0.15)
    aug = TrainingAugmenter(opts, fe, [u.wav_path for u in utts])
    warps = []
    for i, u in enumerate(utts):
        rng = np.random.default_rng([0, 11, 0, i])
        (name, g), = draw_effects(opts, np.random.default_rng([0, 11, 0, i]))
        warp = vtlp_warp(opts, g)
        assert name == "vtlp" and 0.85 <= warp <= 1.15
        warps.append(warp)
        want = fe.normalise(fe.file_features(u.wav_path, vtln_warp=warp))
        np.testing.assert_array_equal(aug.features(i, rng), want)
    assert len(set(warps)) == 3
    flat = TrainingAugmenter(AugmentOptions(vtlp=1.0, vtlp_range=0.0), fe, [u.wav_path for u in utts])
    np.testing.assert_array_equal(flat.features(0, np.random.default_rng(3)),
                                  fe.normalise(fe.file_features(utts[0].wav_path)))
    base = AugmentOptions(noise=0.5, gain=0.5)
    for s in range(20):
        a = draw_effects(base, np.random.default_rng(s))
        b = [e for e in draw_effects(AugmentOptions(noise=0.5, gain=0.5, vtlp=0.5), np.random.default_rng(s))
             if e[0] != "vtlp"]
        assert [n for n, _ in a] == [n for n, _ in b]
        assert [g.random() for _, g in a] == [g.random() for _, g in b]


def test_vtlp_training_resumes_bit_exactly_and_checks_its_range(corpus, tmp_path):
    kw = dict(aug_vtlp=0.7, aug_vtlp_range=0.12)
    full = train(_cfg(corpus, tmp_path / "a", **kw))
    train(_cfg(corpus, tmp_path / "b", epochs=2, **kw))
    resumed = train(_cfg(corpus, tmp_path / "b", **kw), resume=True)
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    clean = train(_cfg(corpus, tmp_path / "clean", epochs=1))
    assert clean["history"][0]["train_loss"] != full["history"][0]["train_loss"]
    for override, key in (("--aug_vtlp=2", "aug_vtlp"), ("--aug_vtlp_range=0.5", "aug_vtlp_range")):
        with pytest.raises(ValueError, match=rf"^{key}:"):
            TrainConfig.from_overrides({}, [override])
