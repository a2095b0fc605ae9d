"""Language models train from text with the generic trainer (feats=None batches, no audio read), and the
text tools: CMU-lexicon phone transcriptions, held-out sentences removed (overlap 0)."""

import json

import numpy as np
import pytest

from scratchasr import inference
from scratchasr.data.text import (build_lm_text, held_out_sentences, read_cmu_lexicon, read_text_file,
                                  words_to_phones)
from scratchasr.trainer import TrainConfig, train

PHONE_SENTS = ["h# dh ax k ae t s ae t h#", "h# ax d ao g r ae n h#", "h# dh ax d ao g s ae t h#",
               "h# ax k ae t r ae n h#"]


def _kaldi_dir(root, split, lines):
    d = root / split
    d.mkdir(parents=True)
    for i in range(len(lines)):          # empty "audio" files: a language model never reads them
        (d / f"{split}{i}.wav").write_bytes(b"")
    (d / "wav.scp").write_text("".join(f"{split}{i} {d}/{split}{i}.wav\n" for i in range(len(lines))))
    (d / "text").write_text("".join(f"{split}{i} {t}\n" for i, t in enumerate(lines)))
    return d


@pytest.mark.parametrize("name", ["lstm_lm", "gpt_lm"])
def test_trainer_trains_a_language_model_on_text(tmp_path, name):
    data = tmp_path / "data"
    _kaldi_dir(data, "train", PHONE_SENTS[:2])
    _kaldi_dir(data, "dev", PHONE_SENTS[2:3])
    extra = tmp_path / "extra.txt"
    extra.write_text("\n".join(PHONE_SENTS * 3) + "\n\n")
    exp = tmp_path / "exp"
    cfg = TrainConfig.from_overrides(dict(model=name, hidden=16, num_layers=1), [
        f"--data_dir={data}", f"--exp_dir={exp}", f"--text_train={extra}", "--epochs=4", "--batch_size=4",
        "--lr=0.01", "--progress=False", "--schedule=constant"])
    summary = train(cfg)
    hist = summary["history"]
    assert hist[-1]["dev_loss"] < min(hist[0]["dev_loss"], np.log(62)) - 0.5   # nats/token (62 ids: TIMIT)
    assert hist[0]["train_loss"] > hist[-1]["train_loss"]
    model, _ = inference.load(exp / "best.npz")
    assert model.IS_LM and model.vocabulary.tokens[0] == "<blank>"
    ids = model.vocabulary.encode(PHONE_SENTS[2].split())
    ppl = model.perplexity([list(ids)])
    assert np.isclose(np.log(ppl), min(h["dev_loss"] for h in hist), rtol=1e-4)
    assert not (exp / "feats").exists()                                  # no features were computed


def test_text_train_file_is_named_when_missing(tmp_path):
    data = tmp_path / "data"
    _kaldi_dir(data, "train", PHONE_SENTS[:2])
    _kaldi_dir(data, "dev", PHONE_SENTS[2:3])
    cfg = TrainConfig.from_overrides(dict(model="lstm_lm", hidden=4, num_layers=1), [
        f"--data_dir={data}", f"--exp_dir={tmp_path / 'exp'}", f"--text_train={tmp_path / 'nope.txt'}",
        "--epochs=1", "--progress=False"])
    with pytest.raises(FileNotFoundError, match=r"^text_train:"):
        train(cfg)


def test_words_to_phones_and_held_out_text(tmp_path):
    lex = read_cmu_lexicon()
    assert lex["cat"] == ["k", "ae", "t"]
    assert words_to_phones("The cat, the dog.", lex) == ["h#", "dh", "ax", "k", "ae", "t", "pau", "dh", "ax",
                                                         "d", "ao", "g", "h#"]
    assert words_to_phones("the qzxv", lex) is None
    data = tmp_path / "data"
    _kaldi_dir(data, "train", ["the cat sat"])
    _kaldi_dir(data, "dev", ["The dog ran."])
    _kaldi_dir(data, "core_test", ["a cat ran"])
    held = held_out_sentences(data)
    assert held == {"the dog ran", "a cat ran"}
    out = tmp_path / "lm.txt"
    stats = build_lm_text(["The dog, ran", "the dog ran!", "the cat sat", "The cat sat.", "qzxv cat"], out,
                          held_out=held, lexicon=lex)
    assert stats == dict(written=1, dropped_held_out=2, dropped_oov=1, duplicates=1, overlap=0)
    assert read_text_file(out, "phones") == [["h#", "dh", "ax", "k", "ae", "t", "s", "ae", "t", "h#"]]
    # "The dog, ran" normalises to a held-out sentence: commas never smuggle a test sentence in
    stats = build_lm_text(["The dog, ran"], out, units="words", held_out=held)
    assert stats["written"] == 0 and stats["dropped_held_out"] == 1
    assert json.dumps(stats)
