"""Data: the TIMIT reader and phone tables, Kaldi data directories, the synthetic TIMIT-layout corpus.

* :mod:`scratchasr.data.timit`: ``read_corpus(root, split)``, ``fold_phones`` (Lee & Hon 61 -> 48 -> 39).
* :mod:`scratchasr.data.kaldi_dir`: ``read_data_dir`` for ``wav.scp`` + ``text`` (+ ``utt2spk``).
* :mod:`scratchasr.data.synth`: ``synth_timit`` (``scratchasr synth-timit``), festival/flite voices.

See docs/data.md.
"""

from . import timit
from .kaldi_dir import DataDirUtterance, read_data_dir
from .phones import PHONES_39, PHONES_48, PHONES_61, fold_phones
from .timit import Utterance, read_corpus

__all__ = ["timit", "read_data_dir", "DataDirUtterance", "Utterance", "read_corpus", "fold_phones",
           "PHONES_61", "PHONES_48", "PHONES_39"]
