"""Character units end to end: the documented normalisation, one scoring function for references and
hypotheses (CER without word boundaries as sclite -c counts it, WER on words), `scratchasr decode`
reporting both for a character model and `scratchasr transcribe` printing text."""

import shutil
import subprocess

import pytest

from scratchasr import inference
from scratchasr.cli import main
from scratchasr.data.corpus import (WORD_BOUNDARY, _tokens_from_text, normalise_text, text_scoring_tokens,
                                    tokens_to_text)
from scratchasr.metrics import error_rate
from scratchasr.testing.fixtures import write_kaldi_dir
from scratchasr.trainer import TrainConfig, train

TEXT = ["The cat's hat.", "A dog-house!", "the dog", "'Tis a cat"]


def test_normalisation_is_the_documented_one():
    assert normalise_text("Mr. Smith's dog-house  'tis, ok?") == "mr smith's dog house tis ok"
    assert normalise_text("ÉLAN 42 -- x") == "lan x"                      # only a-z, ' and space survive
    chars = _tokens_from_text("The cat's hat.", "chars")
    assert chars == list("the|cat's|hat")
    assert tokens_to_text(chars, "chars") == "the cat's hat"
    assert tokens_to_text(["dh", "ax"], "phones") == "dh ax"


def test_references_and_hypotheses_are_scored_by_one_function():
    ref = _tokens_from_text("The cat's hat.", "chars")
    for hyp, words in ((list("|the||cat's|hat|"), ["the", "cat's", "hat"]),     # stray boundaries: no error
                       (list("thecat's|hat"), ["thecat's", "hat"])):            # a missing one: words only
        c_ref, w_ref = text_scoring_tokens(ref, "chars")
        c_hyp, w_hyp = text_scoring_tokens(hyp, "chars")
        assert c_ref == c_hyp == list("thecat'shat") and WORD_BOUNDARY not in c_hyp
        assert w_hyp == words and w_ref == ["the", "cat's", "hat"]
    assert text_scoring_tokens(["the", "Cat"], "words") == (list("thecat"), ["the", "cat"])
    with pytest.raises(ValueError, match=r"^units:"):
        text_scoring_tokens(["dh"], "phones")
    with pytest.raises(ValueError, match=r"^units:"):
        tokens_to_text(["a"], "letters")


def _sclite():
    for cmd in (["sclite"], ["sctk", "sclite"], ["/usr/lib/sctk/bin/sclite"]):
        if shutil.which(cmd[0]):
            return cmd
    pytest.skip("NIST sclite not installed (apt-get install sctk)")


@pytest.mark.oracle
def test_cer_equals_sclite_character_mode(tmp_path):
    """sclite -c splits words into characters and drops the boundaries: our CER counts the same."""
    pairs = [("the cat's hat", "the cats hat"), ("a dog house", "adog hose"), ("tis a cat", ""),
             ("ab", "ab cd"), ("one two three", "one too tree")]
    refs = [_tokens_from_text(r, "chars") for r, _ in pairs]
    hyps = [_tokens_from_text(h, "chars") for _, h in pairs]
    ids = [f"spk_u{k}" for k in range(len(pairs))]
    (tmp_path / "ref.trn").write_text("".join(f"{r} ({u})\n" for (r, _), u in zip(pairs, ids)))
    (tmp_path / "hyp.trn").write_text("".join(f"{h} ({u})\n" for (_, h), u in zip(pairs, ids)))
    out = subprocess.run(_sclite() + ["-r", str(tmp_path / "ref.trn"), "trn", "-h", str(tmp_path / "hyp.trn"),
                                      "trn", "-i", "spu_id", "-c", "-o", "pralign", "stdout"],
                         capture_output=True, text=True, check=True).stdout
    counts = [tuple(int(x) for x in line.split()[-4:]) for line in out.splitlines()
              if line.startswith("Scores: (#C #S #D #I)")]
    assert len(counts) == len(pairs)
    for (c, s, d, i), r, h in zip(counts, refs, hyps):
        er = error_rate([text_scoring_tokens(r, "chars")[0]], [text_scoring_tokens(h, "chars")[0]])
        assert (er.substitutions, er.deletions, er.insertions) == (s, d, i)
        assert er.ref_tokens == c + s + d


def test_a_character_model_reports_cer_and_wer_and_prints_text(tmp_path, capsys):
    for split, lines in (("train", TEXT), ("dev", TEXT[:2])):
        write_kaldi_dir(tmp_path / "data", split, lines)
    train(TrainConfig.from_overrides(dict(model="ctc_blstm", hidden=8, num_layers=1, units="chars"),
                                     [f"--data_dir={tmp_path / 'data'}", "--epochs=1", "--progress=False",
                                      "--batch_size=2", f"--exp_dir={tmp_path / 'am'}"]))
    am = tmp_path / "am" / "best.npz"
    model, _ = inference.load(am)
    assert model.units == "chars" and WORD_BOUNDARY in model.vocabulary.tokens
    capsys.readouterr()
    assert main(["decode", str(am), str(tmp_path / "data"), "--split", "dev", "--no-progress",
                 "--out", str(tmp_path / "dec")]) == 0
    out = capsys.readouterr().out.splitlines()
    r = inference.evaluate(am, tmp_path / "data", "dev", progress=False)
    assert r["metric"] == "CER" and r["ref_tokens"] == len("thecat'shat") + len("adoghouse")
    assert r["wer"]["metric"] == "WER" and r["wer"]["ref_tokens"] == 3 + 3
    assert out[0].startswith("dev: 2 utterances, 20 reference tokens: CER ")
    assert out[1].startswith(f"dev: 6 reference words: WER {100 * r['wer']['rate']:.2f}%")
    hyp_lines = (tmp_path / "dec" / "hyp.text").read_text().splitlines()
    assert len(hyp_lines) == 2 and not any(WORD_BOUNDARY in h for h in hyp_lines)
    wavs = [str(tmp_path / "data" / "dev" / f"dev{i}.wav") for i in range(2)]
    assert main(["transcribe", str(am)] + wavs) == 0
    printed = capsys.readouterr().out.splitlines()
    tokens = inference.transcribe(am, wavs)
    assert printed == [f"{w}\t{tokens_to_text(t, 'chars')}" for w, t in zip(wavs, tokens)]
    assert printed == [f"{w}\t{t}" for w, t in zip(wavs, inference.transcribe_texts(am, wavs))]
