"""`scratchasr decode --lm LM --lm-weight W` (shallow fusion) and `--nbest N --rescore LM` (n-best
rescoring) end to end: a tiny CTC model and a tiny LM trained on a Kaldi data dir of noise "audio"."""

import pytest

from scratchasr import inference
from scratchasr.cli import main
from scratchasr.testing.fixtures import write_kaldi_dir
from scratchasr.trainer import TrainConfig, train

TEXT = ["h# dh ax k ae t h#", "h# ax d ao g h#", "h# dh ax d ao g h#", "h# ax k ae t h#"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmdecode")
    for split, lines in (("train", TEXT), ("dev", TEXT[:2])):
        write_kaldi_dir(root / "data", split, lines, samples=4000, step=800)
    common = [f"--data_dir={root / 'data'}", "--epochs=1", "--progress=False", "--batch_size=2"]
    train(TrainConfig.from_overrides(dict(model="ctc_blstm", hidden=8, num_layers=1),
                                     common + [f"--exp_dir={root / 'am'}"]))
    train(TrainConfig.from_overrides(dict(model="lstm_lm", hidden=8, num_layers=1),
                                     common + [f"--exp_dir={root / 'lm'}"]))
    return root


def test_fusion_and_rescoring_through_the_cli(trained, capsys):
    am, lm, data = trained / "am" / "best.npz", trained / "lm" / "best.npz", trained / "data"
    base = [str(am), str(data), "--split", "dev", "--beam", "4", "--no-progress"]
    assert main(["decode"] + base) == 0
    plain = capsys.readouterr().out
    assert main(["decode"] + base + ["--lm", str(lm), "--lm-weight", "0.7"]) == 0
    assert "dev: 2 utterances" in capsys.readouterr().out
    assert main(["decode"] + base + ["--rescore", str(lm), "--nbest", "3", "--lm-weight", "0"]) == 0
    assert capsys.readouterr().out == plain            # weight 0: the first pass's best wins
    out = trained / "rescored"
    r = inference.evaluate(am, data, "dev", beam_size=4, rescore=lm, nbest=4, lm_weight=1.5, out=out,
                           progress=False)
    assert r["utterances"] == 2 and (out / "hyp.text").is_file()


def test_lm_errors_are_named(trained, capsys):
    am, lm, data = trained / "am" / "best.npz", trained / "lm" / "best.npz", trained / "data"
    base = ["decode", str(am), str(data), "--split", "dev", "--beam", "2", "--no-progress"]
    assert main(base + ["--lm", str(am)]) == 2
    assert "lm: " in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"^lm:.*not a language model"):
        inference.evaluate(am, data, "dev", beam_size=2, lm=am, progress=False)
    with pytest.raises(ValueError, match=r"^rescore:"):
        inference.evaluate(am, data, "dev", beam_size=2, lm=lm, rescore=lm, progress=False)
    with pytest.raises(ValueError, match=r"^beam:"):
        inference.evaluate(am, data, "dev", beam_size=2, rescore=lm, nbest=3, progress=False)
