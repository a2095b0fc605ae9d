"""Language models beyond CTC: shallow fusion (`--lm`) and n-best rescoring (`--nbest N --rescore LM`) for
the transducer and the attention models (seq2seq, las, mocha) through the CLI, with an LM whose
vocabulary differs from the recognizer's (more words, so other ids) and is mapped by token string
(scratchasr/decode/vocab_map.py); the mapping itself is checked column by column."""

import numpy as np
import pytest

from scratchasr import inference, models
from scratchasr.cli import main
from scratchasr.data.batch import make_batch
from scratchasr.data.corpus import Vocabulary
from scratchasr.decode.attention import AttentionHypothesis
from scratchasr.decode.rescore import rescore_nbest
from scratchasr.decode.transducer import Hypothesis as TransducerHypothesis
from scratchasr.decode.vocab_map import VocabularyMappedLM
from scratchasr.testing.fixtures import write_kaldi_dir
from scratchasr.trainer import TrainConfig, train

TEXT = ["the cat", "a dog", "the dog", "a cat"]
LM_TEXT = ["a big cat", "the big dog", "a cat"]                  # "big": the LM's vocabulary is larger
RECOGNIZERS = dict(transducer=dict(hidden=8, num_layers=1, pred_hidden=8, joint_dim=8),
                   seq2seq=dict(hidden=8, num_layers=1, embed_dim=8, stack=2),
                   las=dict(hidden=8, num_layers=1, pyramid=0, embed_dim=8, att_dim=8, conv_channels=2,
                            conv_width=3),
                   mocha=dict(hidden=8, num_layers=1, embed_dim=8, att_dim=8, stack=2))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocabfusion")
    for split, lines in (("train", TEXT), ("dev", TEXT[:2])):
        write_kaldi_dir(root / "data", split, lines)
    (root / "lm.txt").write_text("".join(t + "\n" for t in LM_TEXT))
    args = [f"--data_dir={root / 'data'}", "--epochs=1", "--progress=False", "--batch_size=2",
            "--units=words", f"--exp_dir={root / 'lm'}", f"--text_train={root / 'lm.txt'}"]
    train(TrainConfig.from_overrides(dict(model="gpt_lm", hidden=8, num_layers=1, heads=2, max_len=40), args))
    return root


def _recognizer(corpus, name):
    exp = corpus / name
    if not (exp / "best.npz").is_file():
        train(TrainConfig.from_overrides(dict(model=name, **RECOGNIZERS[name]),
                                         [f"--data_dir={corpus / 'data'}", "--epochs=1", "--progress=False",
                                          "--batch_size=2", "--units=words", f"--exp_dir={exp}"]))
    return exp / "best.npz"


def test_the_lm_is_mapped_by_token_string(corpus):
    am = _recognizer(corpus, "seq2seq")
    model, _ = inference.load(am)
    raw, _ = inference.load(corpus / "lm" / "best.npz")
    assert raw.vocabulary.tokens != model.vocabulary.tokens          # "big" shifts the ids
    lm = inference.load_lm(corpus / "lm" / "best.npz", model.vocabulary)
    assert isinstance(lm, VocabularyMappedLM)
    ours, theirs = model.vocabulary, raw.vocabulary
    seqs = [[ours.index["the"], ours.index["cat"]], [ours.index["a"]]]
    np.testing.assert_allclose(
        lm.score(make_batch(None, seqs)),
        raw.score(make_batch(None, [[theirs.index[ours.tokens[i]] for i in s] for s in seqs])), rtol=1e-12)
    lp, _ = lm.step(lm.init_state(2), np.array([0, ours.index["the"]]))
    raw_lp, _ = raw.step(raw.init_state(2), np.array([0, theirs.index["the"]]))
    for i, tok in enumerate(ours.tokens):                            # column i is the LM's column of tok
        np.testing.assert_array_equal(lp[:, i], raw_lp[:, theirs.index[tok]])
    assert lp.shape == (2, len(ours))
    with pytest.raises(ValueError, match=r"^lm:.*lacks"):           # a recognizer label the LM never saw
        VocabularyMappedLM(raw, raw.vocabulary, Vocabulary(["<blank>", "a", "zebra"]))


@pytest.mark.parametrize("name", ["transducer", "seq2seq", "las", "mocha"])
def test_fusion_and_rescoring_through_the_cli(corpus, name, capsys):
    am, lm, data = _recognizer(corpus, name), corpus / "lm" / "best.npz", corpus / "data"
    base = ["decode", str(am), str(data), "--split", "dev", "--beam", "3", "--no-progress"]
    capsys.readouterr()                                              # the training's output
    assert main(base) == 0
    plain = capsys.readouterr().out
    assert main(base + ["--lm", str(lm), "--lm-weight", "0.7"]) == 0
    assert "dev: 2 utterances" in capsys.readouterr().out
    assert main(base + ["--rescore", str(lm), "--nbest", "3", "--lm-weight", "0"]) == 0
    assert capsys.readouterr().out == plain                          # weight 0: the first pass's best
    assert main(base + ["--rescore", str(lm), "--nbest", "3", "--lm-weight", "2"]) == 0
    assert "dev: 2 utterances" in capsys.readouterr().out


class _Unigram:
    """A step-interface LM whose next-token distribution never changes."""

    def __init__(self, log_probs):
        self.log_probs = np.asarray(log_probs, dtype=np.float64)

    def init_state(self, batch_size):
        return np.zeros(batch_size)

    def step(self, state, tokens):
        return np.tile(self.log_probs, (len(tokens), 1)), state


def test_rescoring_ranks_transducer_and_attention_hypotheses_by_the_combined_score():
    lm = _Unigram(np.log([0.5, 0.4, 0.1]))                            # column 0: </s>
    lm_1, lm_12 = np.log(0.4 * 0.5), np.log(0.4 * 0.1 * 0.5)         # log P(1 </s>), log P(1 2 </s>)
    td = [[TransducerHypothesis((1, 2), -1.0, -1.0, 0.0), TransducerHypothesis((1,), -1.5, -1.5, 0.0)]]
    at = [[AttentionHypothesis((1, 2), -1.0, -3.0, 0.0, 0.0),
           AttentionHypothesis((1,), -1.5, -2.0, 0.0, 0.0)]]
    for nbest, lm_field in ((td, "log_lm"), (at, "lm_log_prob")):
        assert rescore_nbest(nbest, lm, lm_weight=0.0)[0][0].tokens == (1, 2)
        out = rescore_nbest(nbest, lm, lm_weight=2.0)[0]              # -1 + 2 lm_12 < -1.5 + 2 lm_1
        assert [h.tokens for h in out] == [(1,), (1, 2)]
        assert type(out[0]) is type(nbest[0][0])
        np.testing.assert_allclose(out[0].score, -1.5 + 2 * lm_1)
        np.testing.assert_allclose(getattr(out[1], lm_field), lm_12)
    with pytest.raises(TypeError, match=r"^nbest:"):
        rescore_nbest([[("not", "a hypothesis")]], lm, lm_weight=1.0)


def test_nbest_is_checked_by_name():
    m = models.build("transducer", input_dim=4, vocab_size=4, dtype=np.float64, **RECOGNIZERS["transducer"])
    b = make_batch([np.zeros((5, 4))], [[]])
    with pytest.raises(ValueError, match=r"^nbest:"):
        m.decode(b, method="greedy", nbest=2)
    with pytest.raises(ValueError, match=r"^nbest:"):
        m.decode(b, method="beam", beam_size=2, nbest=0)
    hyps = m.decode(b, method="beam", beam_size=2, nbest=2)[0]
    assert hyps and all(isinstance(h, TransducerHypothesis) for h in hyps)
    s = models.build("seq2seq", input_dim=4, vocab_size=4, dtype=np.float64, **RECOGNIZERS["seq2seq"])
    with pytest.raises(ValueError, match=r"^nbest:"):
        s.decode(b, method="greedy", nbest=2)
    hyps = s.decode(b, method="beam", beam_size=2, nbest=2)[0]
    assert hyps and all(isinstance(h, AttentionHypothesis) for h in hyps)
