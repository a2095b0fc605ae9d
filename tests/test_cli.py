"""The scratchasr command line (argument handling; synthesis itself is tested in tests/data)."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from scratchasr.cli import build_parser, main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("synth-timit", "train", "decode", "transcribe"):
        assert cmd in out


def test_synth_timit_arguments():
    args = build_parser().parse_args(["synth-timit", "OUT", "--size", "tiny", "--seed", "4",
                                      "--holdout-voices", "awb,slt", "--jobs", "1"])
    assert (args.out_dir, args.size, args.seed, args.holdout_voices, args.jobs) == \
        ("OUT", "tiny", 4, ["awb", "slt"], 1)
    assert build_parser().parse_args(["synth-timit", "OUT"]).size == "small"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["synth-timit", "OUT", "--size", "huge"])


def test_synth_timit_refuses_nonempty_dir(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["synth-timit", str(tmp_path), "--size", "tiny", "--no-progress"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_unknown_argument_rejected():
    with pytest.raises(SystemExit):
        main(["synth-timit", "OUT", "--sise", "tiny"])


def test_synth_timit_end_to_end_one_voice(tmp_path, capsys):
    from scratchasr.data import synth
    from scratchasr.data.timit import read_corpus

    if "kal" not in synth.available_voices() or not synth.WORDNET_DIR.is_dir():
        pytest.skip("festival kal_diphone voice or wordnet-base not installed")
    out = tmp_path / "corpus"
    assert main(["synth-timit", str(out), "--size", "tiny", "--voices", "kal", "--jobs", "1",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "train 8, dev 4, core_test 4" in printed and "dropped 0" in printed
    assert {u.speaker[1:4] for u in read_corpus(out, "core_test")} == {"KAL"}


# ------------------------------------------------------------------------ with a corpus and a trained model

needs_synth = pytest.mark.skipif(not (shutil.which("festival") and shutil.which("flite")
                                      and Path("/usr/share/wordnet").exists()),
                                 reason="festival/flite/wordnet-base not installed")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny corpus and a model overfitted on 4 of its utterances with a telephone-band front end (23 mel
    bins up to 3.8 kHz, no energy), so its transcripts depend only on what 8 kHz audio also holds."""
    from scratchasr.data.synth import synth_timit
    from scratchasr.trainer import TrainConfig, train
    root = tmp_path_factory.mktemp("cli")
    synth_timit(str(root / "tiny"), size="tiny", seed=0, progress=False)
    cfg = TrainConfig.from_overrides(dict(
        model="ctc_blstm", data_dir=str(root / "tiny"), exp_dir=str(root / "exp"), hidden=48, num_layers=1,
        stack=2, dropout=0.0, lr=1e-2, batch_size=4, epochs=60, patience=1000, lr_halving=False,
        max_train_utts=4, progress=False, features=dict(high_freq=3800.0, use_energy=False, num_mel_bins=23)))
    train(cfg)
    (root / "config.py").write_text(f"CONFIG = dict(model='ctc_blstm', data_dir={str(root / 'tiny')!r}, "
                                    "hidden=8, num_layers=1, epochs=1, max_train_utts=2, max_dev_utts=2, "
                                    "progress=False)\n")
    return dict(root=root, corpus=root / "tiny", ckpt=str(root / "exp" / "checkpoint.npz"),
                config=str(root / "config.py"))


def _rate_copies(trained, tmp_path):
    """A training utterance at 16 kHz and its copies resampled to 8 kHz and 44.1 kHz (float WAV)."""
    from scipy.signal import resample_poly

    from scratchasr.data.corpus import read_split
    from scratchasr.features.audio import load_audio
    u = read_split(trained["corpus"], "train", "phones")[0]
    y, sr = load_audio(u.wav_path)
    assert sr == 16000
    f8, f44 = str(tmp_path / "u8k.wav"), str(tmp_path / "u44k.wav")
    sf.write(f8, resample_poly(y, 1, 2).astype(np.float32), 8000, subtype="FLOAT")
    sf.write(f44, resample_poly(y, 441, 160).astype(np.float32), 44100, subtype="FLOAT")
    return u, f8, f44


@needs_synth
def test_transcribe_resamples_other_rates_with_one_notice_per_file(trained, tmp_path, capsys):
    from scratchasr.inference import load, transcribe
    from scratchasr.metrics import error_rate
    from scratchasr.trainer import decode_features
    u, f8, f44 = _rate_copies(trained, tmp_path)
    assert main(["transcribe", trained["ckpt"], u.wav_path, f8, f44]) == 0
    out, err = capsys.readouterr()
    hyps = {line.split("\t")[0]: line.split("\t")[1].split() for line in out.splitlines()}
    h16 = hyps[u.wav_path]
    assert error_rate([u.tokens], [h16]).rate < 0.2                  # the model knows this utterance
    assert error_rate([h16], [hyps[f8]]).rate <= 0.1 and error_rate([h16], [hyps[f44]]).rate <= 0.1
    notes = [line for line in err.splitlines() if "resampling" in line]
    assert len(notes) == 2, err                                     # once per resampled file, none for 16 kHz
    assert f8 in notes[0] and "8000 Hz -> 16000 Hz" in notes[0]
    assert f44 in notes[1] and "44100 Hz -> 16000 Hz" in notes[1]
    # control: the 8 kHz samples featurised as if they were 16 kHz give another transcript
    model, frontend = load(trained["ckpt"])
    y8, _ = sf.read(f8, dtype="float32")
    wrong = frontend.normalise(frontend.raw_features(y8, 16000))
    assert error_rate([h16], [model.vocabulary.decode(decode_features(model, [wrong])[0])]).rate > 0.3
    assert transcribe(trained["ckpt"], [f44]) == [hyps[f44]]


@needs_synth
def test_no_resample_refuses_other_rates_naming_the_file(trained, tmp_path, capsys):
    from scratchasr.inference import transcribe
    u, f8, _ = _rate_copies(trained, tmp_path)
    assert main(["transcribe", trained["ckpt"], f8, "--no-resample"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"scratchasr transcribe: error: {f8}: sample rate 8000 Hz") and "\n" not in err
    with pytest.raises(ValueError, match=r"^.*u8k\.wav: sample rate 8000 Hz, the model expects 16000 Hz"):
        transcribe(trained["ckpt"], [f8], resample=False)
    kd = tmp_path / "kaldi"
    kd.mkdir()
    (kd / "wav.scp").write_text(f"a {f8}\n")
    (kd / "text").write_text(f"a {' '.join(u.tokens)}\n")
    assert main(["decode", trained["ckpt"], str(kd), "--no-resample", "--no-progress"]) == 2
    assert "sample rate 8000 Hz" in capsys.readouterr().err
    assert main(["decode", trained["ckpt"], str(kd), "--no-progress"]) == 0      # resampled: scored
    assert capsys.readouterr().err.count("resampling 8000 Hz") == 1


@needs_synth
def test_beam_has_a_documented_upper_bound(trained, capsys):
    from scratchasr.inference import MAX_BEAM, transcribe
    from scratchasr.trainer import TrainConfig
    wav = next(Path(trained["corpus"]).rglob("*.WAV"))
    for cmd in ("transcribe", "decode"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        assert f"at most scratchasr.inference.MAX_BEAM ({MAX_BEAM})" in help_text
    for bad in (str(MAX_BEAM + 1), "100000", "0", "-3", "2.5", "abc"):
        with pytest.raises(SystemExit) as e:
            main(["transcribe", trained["ckpt"], str(wav), "--beam", bad])
        assert e.value.code == 2
        assert "argument --beam:" in capsys.readouterr().err
    assert main(["transcribe", trained["ckpt"], str(wav), "--beam", str(MAX_BEAM)]) == 0
    with pytest.raises(ValueError, match=r"^beam_size:"):
        transcribe(trained["ckpt"], [str(wav)], beam_size=MAX_BEAM + 1)
    with pytest.raises(ValueError, match=r"^beam:"):
        TrainConfig.from_overrides(dict(model="ctc_blstm"), [f"--beam={MAX_BEAM + 1}"])


def _config(tmp_path, body):
    p = tmp_path / "config.py"
    p.write_text(body)
    return str(p)


@needs_synth
@pytest.mark.parametrize("case", ["syntax", "keyerror", "config_dir", "lr_string", "hidden_string",
                                  "feature_unknown", "exp_is_file", "exp_under_file", "hidden_overflow",
                                  "data_is_file", "transcribe_dir", "transcribe_channels0", "decode_out_file",
                                  "decode_data_file", "decode_ckpt_dir", "read_only_exp", "transcribe_short"])
def test_expected_errors_are_one_line_naming_the_file_or_option(trained, tmp_path, capsys, monkeypatch, case):
    """Each gives exit code 2 and one line on stderr that names the file or option (no traceback)."""
    ckpt, corpus = trained["ckpt"], str(trained["corpus"])
    base = f"model='ctc_blstm', data_dir={corpus!r}, exp_dir={str(tmp_path / 'exp')!r}, hidden=8, " \
           "num_layers=1, epochs=1, max_train_utts=2, max_dev_utts=2, progress=False"
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    if case == "syntax":                 # a broken config file: SyntaxError -> names the file and line
        cfg = _config(tmp_path, "CONFIG = dict(\n")
        argv, want = ["train", cfg], f"CONFIG: {cfg}, line 1: SyntaxError"
    elif case == "keyerror":             # KeyError inside the config file
        cfg = _config(tmp_path, "BASE = dict()\nCONFIG = BASE['model']\n")
        argv, want = ["train", cfg], f"CONFIG: {cfg}, line 2: KeyError: 'model'"
    elif case == "config_dir":           # IsADirectoryError
        argv, want = ["train", str(tmp_path)], f"CONFIG: {tmp_path} is a directory"
    elif case == "lr_string":            # a config value of the wrong type
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict({base}, lr='abc')\n")], \
            "lr: expected a number"
    elif case == "hidden_string":
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict(dict({base}), hidden='16')\n")], \
            "hidden: expected an integer"
    elif case == "feature_unknown":
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict({base}, features=dict(mel_bins=40))\n")], \
            "features: unknown front-end option(s) ['mel_bins']"
    elif case == "exp_is_file":          # FileExistsError
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict({base})\n"), f"--exp_dir={a_file}"], \
            f"exp_dir: cannot create {a_file}"
    elif case == "exp_under_file":       # NotADirectoryError
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict({base})\n"), f"--exp_dir={a_file}/exp"], \
            f"exp_dir: cannot create {a_file}/exp"
    elif case == "hidden_overflow":      # would be an OverflowError inside NumPy
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict({base})\n"), f"--hidden={10 ** 20}"], \
            "hidden: expected an integer below 2**63"
    elif case == "data_is_file":
        argv, want = ["train", _config(tmp_path, f"CONFIG = dict({base})\n"), f"--data_dir={a_file}"], \
            f"data_dir: {a_file} is not a directory"
    elif case == "transcribe_dir":       # IsADirectoryError
        argv, want = ["transcribe", ckpt, str(tmp_path)], f"Is a directory: '{tmp_path}'"
    elif case == "transcribe_channels0":  # a SPHERE header with channel_count 0 (was a ZeroDivisionError)
        from scratchasr.features.audio import write_sphere
        sph = tmp_path / "zero.wav"
        write_sphere(sph, np.zeros(1600, np.int16), 16000)
        raw = sph.read_bytes()
        assert b"channel_count -i 1" in raw
        sph.write_bytes(raw.replace(b"channel_count -i 1", b"channel_count -i 0"))
        argv, want = ["transcribe", ckpt, str(sph)], f"{sph}: SPHERE channel_count must be >= 1"
    elif case == "transcribe_short":     # shorter than one frame: no empty transcript with exit 0
        short = tmp_path / "short.wav"
        sf.write(short, np.zeros(100, np.float32), 16000)
        argv, want = ["transcribe", ckpt, str(short)], \
            f"{short}: y: 100 samples (0.0063 s) are shorter than one"
    elif case == "decode_out_file":
        argv, want = ["decode", ckpt, corpus, "--out", str(a_file), "--no-progress"], \
            f"out: cannot create {a_file}"
    elif case == "decode_data_file":
        argv, want = ["decode", ckpt, str(a_file), "--no-progress"], f"data: {a_file} is not a directory"
    elif case == "decode_ckpt_dir":
        argv, want = ["decode", str(tmp_path), corpus, "--no-progress"], \
            f"checkpoint: no such file: {tmp_path}"
    else:                                # read-only experiment dir: PermissionError
        exp = tmp_path / "ro"
        exp.mkdir()
        argv = ["train", _config(tmp_path, f"CONFIG = dict({base})\n"), f"--exp_dir={exp}"]
        if os.geteuid() == 0:   # root ignores permissions: fail the write as a read-only dir would
            from scratchasr.data import featcache

            def refuse(path, *a, **k):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            monkeypatch.setattr(featcache.np, "savez", refuse)
        else:
            exp.chmod(0o555)
        want = "Permission denied"
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"scratchasr {argv[0]}: error: ") and want in err, (want, err)


def test_unexpected_errors_keep_their_traceback(tmp_path, monkeypatch):
    from scratchasr import inference, trainer
    cfg = _config(tmp_path, "CONFIG = dict(model='ctc_blstm', progress=False)\n")
    for exc in (RuntimeError("a bug"), KeyError("a bug"), ZeroDivisionError("a bug"), OverflowError("a bug")):
        def boom(*a, **k):
            raise exc
        monkeypatch.setattr(trainer, "train", boom)
        monkeypatch.setattr(inference, "transcribe", boom)
        monkeypatch.setattr(inference, "transcribe_texts", boom)      # what the CLI calls
        with pytest.raises(type(exc), match="a bug"):
            main(["train", cfg])
        with pytest.raises(type(exc), match="a bug"):
            main(["transcribe", str(tmp_path / "x.npz"), str(tmp_path / "x.wav")])
