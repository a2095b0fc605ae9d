"""The generic trainer, inference and the CLI on the `tiny` synthetic corpus: the loss falls and a handful of
utterances is overfitted, resume is bit-exact (also after a mid-epoch Ctrl-C and with SpecAugment, speed
perturbation and gradient accumulation), a NaN names the utterance, a model registered only here trains
and decodes through the same trainer and CLI, a Kaldi data dir with words is scored with both files
written, and bad configs are refused by key."""

import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import read_split, spread_subset
from scratchasr.inference import evaluate, load, transcribe
from scratchasr.io import load_checkpoint
from scratchasr.losses import ctc_loss, ctc_loss_backward
from scratchasr.nn.layers import Linear
from scratchasr.nn.stack import FrameStack
from scratchasr.trainer import NonFiniteLoss, TrainConfig, decode_features, score_hypotheses, train

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
    base = dict(model="ctc_blstm", data_dir=str(corpus), exp_dir=str(exp), hidden=48, num_layers=1, stack=2,
                dropout=0.0, lr=1e-2, batch_size=4, epochs=3, patience=1000, lr_halving=False,
                max_train_utts=4,
                progress=False)
    base.update(kw)
    return TrainConfig.from_overrides(base)


def _params(path):
    arrays, _, meta = load_checkpoint(path)
    return arrays, meta


def test_overfits_a_handful_of_utterances(corpus, tmp_path):
    summary = train(_cfg(corpus, tmp_path / "exp", epochs=60))
    losses = [h["train_loss"] for h in summary["history"]]
    assert losses[-1] < 0.3 * losses[0], losses
    model, frontend = load(tmp_path / "exp" / "checkpoint.npz")
    utts = spread_subset(read_split(corpus, "train", "phones"), 4)      # the trainer's max_train_utts=4
    hyps = decode_features(model, [frontend.from_file(u.wav_path) for u in utts])
    er, _ = score_hypotheses(model.vocabulary, model.scoring, [u.tokens for u in utts], hyps)
    assert er.rate < 0.2, er
    log = json.loads((tmp_path / "exp" / "log.json").read_text())
    assert len(log) == 60
    assert (tmp_path / "exp" / "log.csv").exists() and (tmp_path / "exp" / "loss.png").exists()


@pytest.mark.parametrize("extra", [dict(), dict(spec_augment=True, speed_perturb=True, grad_accum=2,
                                                schedule="noam", warmup_steps=3)])
def test_resume_is_bit_exact(corpus, tmp_path, extra):
    kw = dict(dropout=0.3, num_layers=2, **extra)
    full = train(_cfg(corpus, tmp_path / "a", epochs=3, **kw))
    train(_cfg(corpus, tmp_path / "b", epochs=2, **kw))
    resumed = train(_cfg(corpus, tmp_path / "b", epochs=3, **kw), resume=True)
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    a, _ = _params(tmp_path / "a" / "checkpoint.npz")
    b, _ = _params(tmp_path / "b" / "checkpoint.npz")
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    if extra:
        assert full["history"][0]["lr"] != full["history"][-1]["lr"]  # the schedule moved


def test_ctrl_c_mid_epoch_saves_and_resumes_bit_exactly(corpus, tmp_path, monkeypatch):
    from scratchasr.models import ctc_model as ctc_blstm  # the CTC loss of every CTC model lives there
    kw = dict(epochs=2, dropout=0.3, num_layers=2, max_train_utts=8, batch_size=2)
    full = train(_cfg(corpus, tmp_path / "a", **kw))
    real, calls = ctc_blstm.ctc_loss, []

    def interrupting(*a, **k):  # Ctrl-C arrives during the 2nd batch of epoch 2 (6th training batch overall)
        calls.append(1)
        if len(calls) == 6:
            os.kill(os.getpid(), signal.SIGINT)
        return real(*a, **k)

    # dev decoding does not call ctc_loss, so the count is training batches only
    monkeypatch.setattr(ctc_blstm, "ctc_loss", interrupting)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(corpus, tmp_path / "b", **kw))
    meta = load_checkpoint(tmp_path / "b" / "checkpoint.npz")[2]
    assert (meta["epoch"], meta["batch"]) == (1, 2)  # saved after the batch in flight, mid-epoch 2
    monkeypatch.setattr(ctc_blstm, "ctc_loss", real)
    resumed = train(_cfg(corpus, tmp_path / "b", **kw), resume=True)
    assert [h["train_loss"] for h in full["history"]] == [h["train_loss"] for h in resumed["history"]]
    a, _ = _params(tmp_path / "a" / "checkpoint.npz")
    b, _ = _params(tmp_path / "b" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_nan_names_the_utterance_and_keeps_checkpoint(corpus, tmp_path, monkeypatch):
    from scratchasr.models import ctc_model as ctc_blstm  # the CTC loss of every CTC model lives there
    train(_cfg(corpus, tmp_path / "exp", epochs=1))
    before = (tmp_path / "exp" / "checkpoint.npz").read_bytes()
    real = ctc_blstm.ctc_loss

    def poisoned(*a, **k):
        loss, cache = real(*a, **k)
        loss = loss.copy()
        loss[0] = np.nan
        return loss, cache

    monkeypatch.setattr(ctc_blstm, "ctc_loss", poisoned)
    with pytest.raises(NonFiniteLoss, match=r"utterance\(s\) \['[A-Z0-9]+_S[IX]\d+'\]"):
        train(_cfg(corpus, tmp_path / "exp", epochs=2), resume=True)
    assert (tmp_path / "exp" / "checkpoint.npz").read_bytes() == before


def test_run_protection_finished_runs_and_resume_differences(corpus, tmp_path):
    exp = tmp_path / "exp"
    train(_cfg(corpus, exp, epochs=1))
    with pytest.raises(ValueError, match=r"^exp_dir:.*--resume.*--overwrite"):
        train(_cfg(corpus, exp, epochs=1))
    before = (exp / "checkpoint.npz").read_bytes()
    s = train(_cfg(corpus, exp, epochs=1), resume=True)      # finished: nothing to do, nothing written
    assert s["finished"] and (exp / "checkpoint.npz").read_bytes() == before
    with pytest.raises(ValueError, match=r"^config:.*\blr\b"):
        train(_cfg(corpus, exp, epochs=2, lr=5e-3), resume=True)
    with pytest.raises(ValueError, match=r"^config: differs from the checkpoint in model_options\.hidden "
                                         r"\(checkpoint 48, now 32\).*only epochs, max_minutes"):
        train(_cfg(corpus, exp, epochs=2, hidden=32), resume=True)
    with pytest.raises(ValueError, match=r"^config:.*features\.num_mel_bins \(checkpoint None, now 23\)"):
        train(_cfg(corpus, exp, epochs=2, features=dict(num_mel_bins=23)), resume=True)
    with pytest.raises(ValueError, match=r"^overwrite:"):
        train(_cfg(corpus, exp, epochs=2), resume=True, overwrite=True)
    train(_cfg(corpus, exp, epochs=2), resume=True)          # epochs may grow
    assert load_checkpoint(exp / "checkpoint.npz")[2]["epoch"] == 2
    train(_cfg(corpus, exp, epochs=1), overwrite=True)
    assert load_checkpoint(exp / "checkpoint.npz")[2]["epoch"] == 1


@pytest.mark.parametrize("override, key", [
    ("--lr=abc", "lr"), ("--epochs=2.5", "epochs"), ("--batch_size=0", "batch_size"),
    ("--hidden=0", "hidden"),
    ("--stack=0", "stack"), ("--dropout=1.5", "dropout"), ("--dropout=1.0", "dropout"),
    ("--num_layers=0", "num_layers"), ("--clip=-1", "clip"), ("--epochs=-1", "epochs"),
    ("--max_train_utts=-2", "max_train_utts"), ("--progress=maybe", "progress"),
    ("--beam=100000", "beam"),
    ("--no_such_key=1", "no_such_key"), ("--units=syllables", "units"), ("--model=nope", "model"),
    ("--hidden=100000000000000000000", "hidden"), ("--features={\"mel\": 1}", "features"),
    ("--halve_after=0", "halve_after"), ("--halve_after=two", "halve_after"),
    ("--halve_after=3,4 --schedule=noam --warmup_steps=2", "halve_after")])
def test_bad_overrides_name_the_key(corpus, tmp_path, override, key):
    base = dict(model="ctc_blstm", data_dir=str(corpus), exp_dir=str(tmp_path / "exp"), progress=False,
                epochs=1)
    with pytest.raises((ValueError, TypeError), match=rf"^{key}:"):
        cfg = TrainConfig.from_overrides(base, override.split(" --"))
        models.build(cfg.model, input_dim=3, vocab_size=5, **cfg.model_options)


def test_halve_after_is_a_fixed_step_schedule(corpus, tmp_path):
    summary = train(_cfg(corpus, tmp_path / "exp", epochs=4, halve_after=[1, 3]))
    assert [h["lr"] for h in summary["history"]] == [1e-2, 5e-3, 5e-3, 2.5e-3]
    # from the command line: a comma-separated list
    assert TrainConfig.from_overrides(dict(model="ctc_blstm"), ["--halve_after=6,9"]).halve_after == [6, 9]


def test_feature_cache_follows_the_options(corpus, tmp_path):
    exp = tmp_path / "exp"
    train(_cfg(corpus, exp, epochs=1))
    first = sorted(p.name for p in (exp / "feats").glob("*.npz"))
    train(_cfg(corpus, exp, epochs=1, features=dict(num_mel_bins=23)), overwrite=True)
    second = sorted(p.name for p in (exp / "feats").glob("*.npz"))
    assert len(second) == 2 * len(first)            # new options: new cache files, nothing stale served
    model, frontend = load(exp / "checkpoint.npz")
    assert frontend.dim == (23 + 1) * 3 and model.config["input_dim"] == frontend.dim


# ---------------------------------------------------------------------------- a model registered only here


@models.register("test_ctc_mlp")
class CTCMLP(models.Model):
    """A frame-wise MLP with CTC: no recurrence at all (a model the trainer and CLI never heard of)."""

    OPTIONS = dict(hidden=32, num_layers=1, dropout=0.0, stack=3)

    def __init__(self, *, input_dim, vocab_size, dtype, seed, hidden, num_layers, dropout, stack):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.stack = FrameStack(stack)
        self.hidden = Linear(input_dim * stack, hidden, rng=rng, dtype=dtype)
        self.output = Linear(hidden, vocab_size, rng=rng, dtype=dtype)

    def _logits(self, batch):
        x, xl, y, yl = models.check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                          dtype=self.dtype)
        xs, L = self.stack(x, xl)
        h = self.hidden(xs, L)
        a = np.tanh(h)
        self.push(a)
        return self.output(a, L), L, y, yl

    def forward_loss(self, batch):
        logits, L, y, yl = self._logits(batch)
        loss, cache = ctc_loss(logits, y, L, yl, reduction="none", zero_infinity=True)
        self.push(cache)
        return loss, {}

    def backward(self, dloss):
        cache = self.pop()
        da = self.output.backward(ctc_loss_backward(dloss, cache).astype(self.dtype))
        a = self.pop()
        return self.stack.backward(self.hidden.backward(da * (1 - a * a)))

    def decode(self, batch, *, method="greedy", beam_size=1, lm=None, lm_weight=0.0):
        from scratchasr.decode.ctc import ctc_greedy_decode, ctc_prefix_beam_search
        self._check_decode_args(method, beam_size)
        was = self.training
        self.eval()
        logits, L, _, _ = self._logits(batch)
        self.train(was)
        if method == "greedy":
            return ctc_greedy_decode(logits, L)
        return ctc_prefix_beam_search(logits, L, beam_size=beam_size)


def test_a_model_registered_in_a_test_trains_and_decodes_through_trainer_and_cli(corpus, tmp_path, capsys):
    from scratchasr.cli import main
    cfg_file = tmp_path / "config.py"
    cfg_file.write_text(f"CONFIG = dict(model='test_ctc_mlp', data_dir={str(corpus)!r}, "
                        f"exp_dir={str(tmp_path / 'exp')!r}, hidden=24, epochs=40, lr=1e-2, batch_size=4, "
                        f"max_train_utts=4, progress=False, patience=1000, lr_halving=False)\n")
    assert main(["train", str(cfg_file)]) == 0
    log = json.loads((tmp_path / "exp" / "log.json").read_text())
    assert log[-1]["train_loss"] < 0.6 * log[0]["train_loss"]
    ckpt = str(tmp_path / "exp" / "checkpoint.npz")
    assert main(["decode", ckpt, str(corpus), "--split", "core_test", "--beam", "3", "--no-progress"]) == 0
    assert "PER" in capsys.readouterr().out


def test_cli_decode_kaldi_dir_with_words_writes_hyp_and_align(corpus, tmp_path, capsys):
    """A word-level model (units=words) trained on the tiny corpus; its Kaldi data dir is scored as WER."""
    from scratchasr.cli import main
    exp = tmp_path / "exp"
    train(_cfg(corpus, exp, units="words", epochs=2, max_train_utts=0))
    kd = tmp_path / "kaldi"
    kd.mkdir()
    utts = read_split(corpus, "core_test", "words")
    (kd / "wav.scp").write_text("".join(f"{u.id} {u.wav_path}\n" for u in utts))
    (kd / "text").write_text("".join(f"{u.id} {u.text}\n" for u in utts))
    out = tmp_path / "dec"
    assert main(["decode", str(exp / "best.npz"), str(kd), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "WER" in printed and "S " in printed
    hyp = (out / "hyp.text").read_text().splitlines()
    assert [h.split()[0] for h in hyp] == sorted(u.id for u in utts)
    align = (out / "align.txt").read_text()
    assert align.count("REF:") == len(utts) and align.count("HYP:") == len(utts)
    r = evaluate(exp / "best.npz", kd, None, progress=False)
    assert r["ref_tokens"] == sum(len(u.tokens) for u in utts) and r["metric"] == "WER"


def test_cli_train_decode_transcribe_and_errors(corpus, tmp_path, capsys):
    from scratchasr.cli import main
    cfg_file = tmp_path / "config.py"
    cfg_file.write_text(f"CONFIG = dict(model='ctc_blstm', data_dir={str(corpus)!r}, "
                        f"exp_dir={str(tmp_path / 'exp')!r}, "
                        f"hidden=16, num_layers=1, epochs=1, max_train_utts=4, progress=False)\n")
    assert main(["train", str(cfg_file), "--batch_size=2"]) == 0
    ckpt = str(tmp_path / "exp" / "checkpoint.npz")
    assert main(["decode", ckpt, str(corpus), "--split", "core_test", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "PER" in out and "S " in out
    wav = next(Path(corpus).rglob("*.WAV"))
    assert main(["transcribe", ckpt, str(wav)]) == 0
    assert str(wav) in capsys.readouterr().out
    assert transcribe(ckpt, [str(wav)]) == transcribe(ckpt, [str(wav)], beam_size=1)
    assert main(["train", str(cfg_file), "--no_such_key=1"]) == 2
    assert main(["train", str(cfg_file)]) == 2                      # exists: needs --resume or --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert main(["decode", str(tmp_path / "missing.npz"), str(corpus)]) == 2
    with pytest.raises(SystemExit):
        main(["transcribe", ckpt, str(wav), "--beam", "100000"])


def test_crafted_checkpoints_are_refused(corpus, tmp_path):
    from scratchasr.io import save_checkpoint
    train(_cfg(corpus, tmp_path / "exp", epochs=1))
    arrays, opt, meta = load_checkpoint(tmp_path / "exp" / "checkpoint.npz")
    cases = {
        "missing": ({k: v for k, v in arrays.items() if k != "output.W"}, meta, r"output\.W"),
        "no_cmvn": ({k: v for k, v in arrays.items() if k != "frontend.cmvn_mean"}, meta, r"CMVN"),
        "nan": ({**arrays, "output.b": np.full_like(arrays["output.b"], np.nan)}, meta, r"non-finite"),
        "no_model": (arrays, {k: v for k, v in meta.items() if k != "model"}, r"lacks"),
        "extra_meta_key": (arrays, {**meta, "surprise": 1}, r"unknown metadata key\(s\) \['surprise'\]"),
        "extra_model_key": (arrays, {**meta, "model": {**meta["model"], "surprise": 1}}, r"metadata 'model'"),
        "vocab_not_list": (arrays, {**meta, "vocab": 5}, r"metadata 'vocab'"),
        "frontend_not_dict": (arrays, {**meta, "frontend": 7}, r"metadata 'frontend'"),
        "frontend_option": (arrays, {**meta, "frontend": {**meta["frontend"], "options": {"mel": 1}}},
                            r"unknown front-end option"),
        "cmvn_shape": ({**arrays, "frontend.cmvn_mean": arrays["frontend.cmvn_mean"][:3]}, meta,
                       r"cmvn_mean must be a finite vector of the feature dimension"),
        "scoring": (arrays, {**meta, "scoring": "nope"}, r"metadata 'scoring'"),
        "imports": (arrays, {**meta, "config": {**meta["config"], "imports": ["no_such_module_xyz"]}},
                    r"no_such_module_xyz"),
    }
    for name, (a, m, pattern) in cases.items():
        p = tmp_path / f"{name}.npz"
        save_checkpoint(p, a, meta=m)
        with pytest.raises(ValueError, match=rf"^checkpoint:.*{pattern}"):
            load(p)
    from scratchasr.inference import META_KEYS
    assert set(meta) <= set(META_KEYS)               # the trainer writes only keys inference knows
    for key in ("history", "rngs"):                  # --resume of a checkpoint lacking what it needs
        save_checkpoint(tmp_path / "exp" / "checkpoint.npz", arrays, optimizer_state=opt,
                        meta={k: v for k, v in meta.items() if k != key})
        with pytest.raises(ValueError, match=rf"^checkpoint:.*lacks \['{key}'\].*cannot be resumed"):
            train(_cfg(corpus, tmp_path / "exp", epochs=2), resume=True)


def test_parameters_that_blow_up_stop_the_run_before_any_save(corpus, tmp_path):
    with pytest.raises(NonFiniteLoss, match=r"^parameters .* became non-finite in epoch 1 \(lr 1e\+300"):
        train(_cfg(corpus, tmp_path / "exp", epochs=1, lr=1e300))
    assert not (tmp_path / "exp" / "checkpoint.npz").exists() and not (tmp_path / "exp" / "best.npz").exists()


def test_batches_hold_the_corpus_ids(corpus, tmp_path):
    train(_cfg(corpus, tmp_path / "exp", epochs=1))
    model, frontend = load(tmp_path / "exp" / "checkpoint.npz")
    utts = read_split(corpus, "dev", "phones")
    b = make_batch([frontend.from_file(u.wav_path) for u in utts],
                   [model.vocabulary.encode(u.tokens) for u in utts],
                   ids=[u.id for u in utts])
    loss, _ = model.forward_loss(b)
    assert loss.shape == (len(utts),) and np.all(np.isfinite(loss))


def _kaldi_copy(corpus, root, split, extra):
    """A Kaldi data dir holding ``split`` of the tiny corpus (phones) plus ``extra`` (id -> wav path)."""
    d = root / split
    d.mkdir(parents=True)
    utts = read_split(corpus, split, "phones")
    rows = [(u.id, u.wav_path, " ".join(u.tokens)) for u in utts]
    rows += [(k, v, "sil aa sil") for k, v in extra.items()]
    rows.sort()
    (d / "wav.scp").write_text("".join(f"{i} {w}\n" for i, w, _ in rows))
    (d / "text").write_text("".join(f"{i} {t}\n" for i, _, t in rows))


def test_utterances_without_features_are_skipped_named_and_counted(corpus, tmp_path, capsys):
    import soundfile as sf
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)       # shorter than one 25 ms frame
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really a wav file")      # unreadable
    data = tmp_path / "data"
    _kaldi_copy(corpus, data, "train", {"zz_short": str(tmp_path / "short.wav"),
                                        "zz_junk": str(tmp_path / "junk.wav")})
    _kaldi_copy(corpus, data, "dev", {"zz_devshort": str(tmp_path / "short.wav")})
    s = train(_cfg(corpus, tmp_path / "exp", data_dir=str(data), epochs=1, max_train_utts=0))
    err = capsys.readouterr().err
    for uid, what in (("zz_short", "short.wav: y: 100 samples"), ("zz_junk", "junk.wav"),
                      ("zz_devshort", "short.wav: y: 100 samples")):
        assert any(uid in line and what in line for line in err.splitlines()), (uid, err)
    log = json.loads((tmp_path / "exp" / "log.json").read_text())
    first = s["history"][0]
    assert (log[0]["skipped_train_utts"], log[0]["skipped_dev_utts"]) == (2, 1)
    assert (first["skipped_train_utts"], first["skipped_dev_utts"]) == (2, 1)
    meta = load_checkpoint(tmp_path / "exp" / "checkpoint.npz")[2]
    assert set(meta["skipped_utterances"]["train"]) == {"zz_short", "zz_junk"}
    assert set(meta["skipped_utterances"]["dev"]) == {"zz_devshort"}
    train(_cfg(corpus, tmp_path / "exp", data_dir=str(data), epochs=2, max_train_utts=0), resume=True)
    assert "zz_junk" in capsys.readouterr().err                 # from the feature cache: still named
    assert json.loads((tmp_path / "exp" / "log.json").read_text())[1]["skipped_train_utts"] == 2


def test_a_split_without_any_features_is_an_error_naming_it(corpus, tmp_path):
    import soundfile as sf
    sf.write(tmp_path / "short.wav", np.zeros(100, np.float32), 16000)
    data = tmp_path / "data"
    _kaldi_copy(corpus, data, "train", {})
    d = data / "dev"
    d.mkdir()
    (d / "wav.scp").write_text(f"a {tmp_path / 'short.wav'}\n")
    (d / "text").write_text("a sil\n")
    with pytest.raises(ValueError, match=r"^data_dir: no utterance of split 'dev'.*short\.wav"):
        train(_cfg(corpus, tmp_path / "exp", data_dir=str(data), epochs=1))


def test_resume_accepts_trainer_keys_added_after_the_checkpoint_at_their_default():
    from scratchasr.trainer import _config_differences
    now = TrainConfig().as_dict()
    saved = {k: v for k, v in now.items() if k != "text_train"}
    assert _config_differences(saved, now) == []
    changed = dict(now, lr=1.0)
    assert _config_differences(saved, changed) == ["lr (checkpoint 0.002, now 1.0)"]


def test_cli_decode_passes_method_and_decode_options(corpus, tmp_path, capsys):
    from scratchasr.cli import main
    train(_cfg(corpus, tmp_path / "exp", epochs=1))
    ckpt = str(tmp_path / "exp" / "checkpoint.npz")
    args = ["decode", ckpt, str(corpus), "--split", "core_test", "--no-progress"]
    assert main(args + ["--beam", "3", "--decode-option", "insertion_bonus=0.5"]) == 0
    assert main(args + ["--method", "greedy"]) == 0
    capsys.readouterr()
    assert main(args + ["--beam", "3", "--decode-option", "no_such_option=1"]) == 2
    assert capsys.readouterr().err.startswith("scratchasr decode: error: decode_options:")
    assert main(args + ["--decode-option", "not a pair"]) == 2
    assert main(args + ["--method", "nonsense"]) == 2
