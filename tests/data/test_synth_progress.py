"""synth-timit in parallel (--jobs) shows a progress bar that counts every utterance (the `large` size is
made this way); a tiny corpus with real synthesis."""

from __future__ import annotations

import re
import shutil

import pytest

from scratchasr.data import synth


def test_parallel_synthesis_progress_bar(tmp_path, capsys):
    if shutil.which("festival") is None or "kal" not in synth.available_voices() \
            or not synth.WORDNET_DIR.is_dir():
        pytest.skip("festival kal_diphone voice or wordnet-base not installed")
    summary = synth.synth_timit(tmp_path / "c", size="tiny", voices=["kal"], jobs=2, progress=True)
    n = sum(summary["utterances"].values())
    assert n == 16
    err = capsys.readouterr().err
    assert re.search(r"synth-timit tiny: 100%.*\b16/16 ", err), err[-500:]
