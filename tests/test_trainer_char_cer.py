"""The trainer's dev error of a character model is `scratchasr decode`'s CER: characters without the word
boundaries (sclite -c, scratchasr.data.corpus.text_scoring_tokens), for references and hypotheses alike."""

from scratchasr import inference
from scratchasr.data.corpus import _tokens_from_text, build_vocabulary, read_split, text_scoring_tokens
from scratchasr.metrics import error_rate
from scratchasr.testing.fixtures import write_kaldi_dir
from scratchasr.trainer import TrainConfig, score_hypotheses, train

TEXT = ["The cat's hat.", "A dog-house!", "the dog", "'Tis a cat"]


def test_score_hypotheses_counts_characters_as_decode_does(tmp_path):
    write_kaldi_dir(tmp_path, "train", TEXT, samples=400, step=0)
    utts = read_split(tmp_path, "train", "chars")
    vocab = build_vocabulary("chars", utts)
    refs = [u.tokens for u in utts[:2]]
    hyps = [_tokens_from_text("the cats hat", "chars"), list("|adog|hose|")]      # stray/missing boundaries
    ids = [vocab.encode(h) for h in hyps]
    er, _ = score_hypotheses(vocab, "tokens", refs, ids, units="chars")
    want = error_rate([text_scoring_tokens(r, "chars")[0] for r in refs],
                      [text_scoring_tokens(h, "chars")[0] for h in hyps])
    assert er == want
    assert (er.substitutions, er.deletions, er.insertions, er.ref_tokens) == (0, 2, 0, 11 + 9)
    tokens_er, _ = score_hypotheses(vocab, "tokens", refs, ids)        # other units: every token counts
    assert tokens_er.ref_tokens == 11 + 2 + 9 + 2


def test_trainer_dev_cer_equals_decode_cer(tmp_path):
    for split, lines in (("train", TEXT), ("dev", TEXT[:3])):
        write_kaldi_dir(tmp_path / "data", split, lines)
    overrides = [f"--data_dir={tmp_path / 'data'}", "--epochs=1", "--progress=False", "--batch_size=2",
                 f"--exp_dir={tmp_path / 'am'}"]
    out = train(TrainConfig.from_overrides(dict(model="ctc_blstm", hidden=8, num_layers=1, units="chars"),
                                           overrides))
    rec = out["history"][-1]
    r = inference.evaluate(tmp_path / "am" / "best.npz", tmp_path / "data", "dev", progress=False)
    assert r["metric"] == "CER" and r["ref_tokens"] == 11 + 9 + 6
    assert (rec["dev_S"], rec["dev_D"], rec["dev_I"]) == (r["substitutions"], r["deletions"], r["insertions"])
    assert rec["dev_per"] == r["rate"]
