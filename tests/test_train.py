"""Smoke tests of the BiLSTM-CTC recipe on the `tiny` synthetic corpus: the loss falls, a handful of
utterances is overfitted to a low PER, resume is bit-exact, a NaN names the utterance, the CLI works."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from scratchasr.train import TrainConfig, load_split, score, train, load_model, normalise

pytestmark = pytest.mark.skipif(not (shutil.which("festival") and shutil.which("flite")
                                     and Path("/usr/share/wordnet").exists()),
                                reason="festival/flite/wordnet-base not installed")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from scratchasr.data.synth import synth_timit
    root = tmp_path_factory.mktemp("synth") / "tiny"
    synth_timit(str(root), size="tiny", seed=0, progress=False)
    return root


def _cfg(corpus, exp, **kw):
    base = dict(data_dir=str(corpus), exp_dir=str(exp), hidden=48, num_layers=1, stack=2, dropout=0.0, lr=1e-2,
                batch_size=4, epochs=3, patience=1000, lr_halving=False, max_train_utts=4, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_overfits_a_handful_of_utterances(corpus, tmp_path):
    cfg = _cfg(corpus, tmp_path / "exp", epochs=60)
    summary = train(cfg)
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < 0.3 * losses[0], losses
    model, cmvn, meta = load_model(str(tmp_path / "exp" / "checkpoint.npz"))
    utts, feats = load_split(cfg.data_dir, "train", tmp_path / "exp" / "feats", limit=4, progress=False)
    er, _ = score(model, [normalise(f, cmvn) for f in feats], [u.phone_labels for u in utts])
    assert er.rate < 0.2, er
    log = json.loads((tmp_path / "exp" / "log.json").read_text())
    assert len(log) == 60 and (tmp_path / "exp" / "log.csv").exists()


def test_resume_is_bit_exact(corpus, tmp_path):
    full = train(_cfg(corpus, tmp_path / "a", epochs=3, dropout=0.3, num_layers=2))
    train(_cfg(corpus, tmp_path / "b", epochs=2, dropout=0.3, num_layers=2))
    resumed = train(_cfg(corpus, tmp_path / "b", epochs=3, dropout=0.3, num_layers=2), resume=True)
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    a, _, _ = load_model(str(tmp_path / "a" / "checkpoint.npz"))
    b, _, _ = load_model(str(tmp_path / "b" / "checkpoint.npz"))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_nan_names_the_utterance_and_keeps_checkpoint(corpus, tmp_path, monkeypatch):
    from scratchasr import train as train_mod
    cfg = _cfg(corpus, tmp_path / "exp", epochs=1)
    train(cfg)
    before = (tmp_path / "exp" / "checkpoint.npz").read_bytes()
    real = train_mod.ctc_loss

    def poisoned(logits, *a, **k):
        loss, cache = real(logits, *a, **k)
        loss = loss.copy()
        loss[0] = np.nan
        return loss, cache

    monkeypatch.setattr(train_mod, "ctc_loss", poisoned)
    with pytest.raises(train_mod.NonFiniteLoss, match=r"utterance\(s\) \['[A-Z0-9]+_S[IX]\d+'\]"):
        train(_cfg(corpus, tmp_path / "exp", epochs=2), resume=True)
    assert (tmp_path / "exp" / "checkpoint.npz").read_bytes() == before


def test_cli_train_decode_transcribe(corpus, tmp_path, capsys):
    from scratchasr.cli import main
    cfg_file = tmp_path / "config.py"
    cfg_file.write_text(f"CONFIG = dict(data_dir={str(corpus)!r}, exp_dir={str(tmp_path / 'exp')!r}, hidden=16, "
                        f"num_layers=1, epochs=1, max_train_utts=4, progress=False)\n")
    assert main(["train", str(cfg_file), "--batch_size=2"]) == 0
    ckpt = str(tmp_path / "exp" / "checkpoint.npz")
    assert main(["decode", ckpt, str(corpus), "--split", "core_test"]) == 0
    out = capsys.readouterr().out
    assert "PER" in out and "S " in out
    wav = next(Path(corpus).rglob("*.WAV"))
    assert main(["transcribe", ckpt, str(wav)]) == 0
    assert str(wav) in capsys.readouterr().out
    assert main(["train", str(cfg_file), "--no_such_key=1"]) == 2


def test_ctrl_c_mid_epoch_saves_and_resumes_bit_exactly(corpus, tmp_path, monkeypatch):
    import os
    import signal
    from scratchasr import train as train_mod
    kw = dict(epochs=2, dropout=0.3, num_layers=2, max_train_utts=8, batch_size=2)
    full = train(_cfg(corpus, tmp_path / "a", **kw))
    real, calls = train_mod.ctc_loss, []

    def interrupting(*a, **k):  # Ctrl-C arrives during the 2nd batch of epoch 2 (6th batch overall)
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    monkeypatch.setattr(train_mod, "ctc_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(corpus, tmp_path / "b", **kw))
    from scratchasr.io import load_checkpoint
    meta = load_checkpoint(tmp_path / "b" / "checkpoint.npz")[2]
    assert (meta["epoch"], meta["batch"]) == (1, 2)  # saved after the batch in flight, mid-epoch 2
    monkeypatch.setattr(train_mod, "ctc_loss", real)
    resumed = train(_cfg(corpus, tmp_path / "b", **kw), resume=True)
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    a, _, _ = load_model(str(tmp_path / "a" / "checkpoint.npz"))
    b, _, _ = load_model(str(tmp_path / "b" / "checkpoint.npz"))
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
