"""Inference apart from training (API.md "scratchasr.inference"): load a checkpoint, transcribe, score.

    model, frontend = load("exp/ctc_blstm/best.npz")          # any model the trainer wrote
    transcribe("exp/ctc_blstm/best.npz", ["a.wav"], beam_size=8)  -> [["sil", "hh", ...]]
    result = evaluate("exp/ctc_blstm/best.npz", "data/synth_full", split="core_test", out="exp/decode")

A checkpoint records the model's name and options (``meta["model"]``), the vocabulary, the units and
scoring rule, and the front end (feature options, sample rate, CMVN). ``evaluate`` reads a
TIMIT-layout corpus (with ``split``) or a Kaldi data dir (``wav.scp`` + ``text``), scores with sclite's
counts (:mod:`scratchasr.metrics`) and, with ``out``, writes ``hyp.text`` (Kaldi ``text`` format) and
``align.txt`` (sclite-pralign-style REF/HYP/Eval blocks per utterance).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import models
from .data.corpus import Vocabulary, read_split, scoring_tokens, text_scoring_tokens, tokens_to_text
from .frontend import Frontend
from .io import load_checkpoint
from .metrics import align, error_rate, format_alignment

__all__ = ["load", "load_lm", "transcribe", "transcribe_texts", "evaluate", "check_meta", "MAX_BEAM",
           "META_KEYS"]

# --beam / beam_size: at most MAX_BEAM hypotheses (a CTC prefix beam of 256 over 62 phones decodes a TIMIT
# utterance in about a second; 100000 ran for minutes on one file and never helps)
MAX_BEAM = 256
_META_KEYS = ("model", "vocab", "frontend")
# Every key a trainer checkpoint's metadata may hold; any other key means the file was edited or written by
# another program, and is refused (tests/test_trainer.py checks that the trainer writes only these).
META_KEYS = ("config", "model", "vocab", "units", "scoring", "frontend", "epoch", "batch", "partial", "best",
             "best_epoch", "bad_epochs", "lr", "step", "history", "finished", "stopped_early",
             "skipped_utterances", "rngs")
_MODEL_KEYS = ("name", "input_dim", "vocab_size", "dtype", "seed", "options")


INT8_MODELS = ("conformer_ctc", "conformer_transducer")


def load(checkpoint, *, int8: bool = False) -> Tuple["models.Model", Frontend]:
    """A trainer checkpoint -> ``(model in eval mode, frontend)``; sets ``model.vocabulary`` and
    ``model.scoring``. ``int8=True`` returns the post-training int8 copy (``nn.conformer_int8.quantize_int8``:
    linear layers and attention projections with int8 weights, per-output-channel scales) of a model in
    ``INT8_MODELS``."""
    if not isinstance(int8, bool):
        raise TypeError(f"int8: expected True or False, got {int8!r}")
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: no such file: {path}")
    arrays, _, meta = load_checkpoint(str(path))
    check_meta(path, meta)
    for name in meta.get("config", {}).get("imports", []):
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ValueError(f"checkpoint: {path}: its model needs module {name!r}, which cannot be imported "
                             f"({e})") from None
    try:
        model = models.build_from_config(meta["model"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint: {path}: cannot rebuild the model: {e}") from None
    state = {k: v for k, v in arrays.items() if not k.startswith("frontend.")}
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"checkpoint: {path}: {e}") from None
    bad = [k for k, v in state.items() if not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"checkpoint: {path}: non-finite values in {bad[:3]}")
    frontend = Frontend.from_checkpoint(arrays, meta, where=f"checkpoint: {path}")
    try:
        model.vocabulary = Vocabulary(meta["vocab"])
    except ValueError as e:
        raise ValueError(f"checkpoint: {path}: {e}") from None
    if len(model.vocabulary) != meta["model"]["vocab_size"]:
        raise ValueError(f"checkpoint: {path}: vocabulary of {len(model.vocabulary)} tokens for a model with "
                         f"vocab_size {meta['model']['vocab_size']}")
    model.scoring = meta.get("scoring", "timit39" if model.vocabulary.is_timit61 else "tokens")
    model.units = meta.get("units", "phones")
    model.eval()
    if int8:
        if meta["model"]["name"] not in INT8_MODELS:
            raise ValueError(f"int8: the int8 inference path covers {list(INT8_MODELS)}, not "
                             f"{meta['model']['name']!r} ({path})")
        from .nn.conformer_int8 import quantize_int8
        model = quantize_int8(model)  # a deep copy: vocabulary, scoring and units come along
    return model, frontend


def check_meta(path, meta: dict) -> None:
    """The metadata a trainer checkpoint holds, by key and type (a crafted file gets a message, not a
    traceback)."""
    from .data.corpus import UNITS
    missing = [k for k in _META_KEYS if k not in meta]
    if missing:
        raise ValueError(f"checkpoint: {path} lacks {missing} in its metadata (not written by the trainer?)")
    extra = sorted(set(meta) - set(META_KEYS))
    if extra:
        raise ValueError(f"checkpoint: {path}: unknown metadata key(s) {extra} (edited, or not written by "
                         f"the trainer?)")
    m = meta["model"]
    if not isinstance(m, dict) or set(m) - set(_MODEL_KEYS) or not isinstance(m.get("options", {}), dict):
        raise ValueError(f"checkpoint: {path}: metadata 'model' must be a dict with keys "
                         f"{list(_MODEL_KEYS)}, got {m!r}")
    v = meta["vocab"]
    if not isinstance(v, list) or not all(isinstance(t, str) for t in v):
        raise ValueError(f"checkpoint: {path}: metadata 'vocab' must be a list of token strings")
    if meta.get("scoring", "tokens") not in ("timit39", "tokens"):
        raise ValueError(f"checkpoint: {path}: metadata 'scoring' must be 'timit39' or 'tokens', "
                         f"got {meta['scoring']!r}")
    if meta.get("units", "phones") not in UNITS:
        raise ValueError(f"checkpoint: {path}: metadata 'units' must be one of {list(UNITS)}, "
                         f"got {meta['units']!r}")
    c = meta.get("config", {})
    if not isinstance(c, dict) or not isinstance(c.get("imports", []), list):
        raise ValueError(f"checkpoint: {path}: metadata 'config' must be a dict (with a list 'imports')")


def _beam(beam_size) -> int:
    if (isinstance(beam_size, bool) or not isinstance(beam_size, (int, np.integer))
            or not 1 <= beam_size <= MAX_BEAM):
        raise ValueError(f"beam_size: expected an integer in [1, {MAX_BEAM}], got {beam_size!r}")
    return int(beam_size)


def transcribe(checkpoint, paths: Sequence[str], *, beam_size: int = 1,
               resample: bool = True, int8: bool = False) -> List[List[str]]:
    """The tokens recognised in each audio file (the model's units: phones, words or characters; the text
    they say: ``scratchasr.data.corpus.tokens_to_text(tokens, model.units)``, as the CLI prints it).

    Audio at another sample rate than the model's is resampled to it (a notice per file on stderr), or
    refused with ``resample=False``. ``int8``: decode with the int8 copy of a Conformer (:func:`load`)."""
    model, hyps = _transcribe(checkpoint, paths, beam_size, resample, int8)
    return [model.vocabulary.decode(h) for h in hyps]


def _transcribe(checkpoint, paths, beam_size, resample, int8=False):
    from .trainer import decode_features
    beam_size = _beam(beam_size)
    model, frontend = load(checkpoint, int8=int8)
    feats = [frontend.from_file(str(p), resample=resample) for p in paths]
    return model, decode_features(model, feats, beam=beam_size, batch_size=1)


def transcribe_texts(checkpoint, paths: Sequence[str], *, beam_size: int = 1,
                     resample: bool = True, int8: bool = False) -> List[str]:
    """What each audio file says, as text: a character model's letters joined into words (``|`` -> space),
    words or phones joined by spaces (``scratchasr transcribe`` prints these)."""
    model, hyps = _transcribe(checkpoint, paths, beam_size, resample, int8)
    return [tokens_to_text(model.vocabulary.decode(h), model.units) for h in hyps]


def load_lm(checkpoint, vocabulary: Vocabulary, *, name: str = "lm"):
    """A trained language model (``scratchasr train`` with ``lstm_lm``/``gpt_lm``) over ``vocabulary``.

    Any recognizer (CTC, transducer, attention) can use it: id 0 is the LM's sentence boundary whatever
    it means to the recognizer. When the LM's vocabulary differs from the recognizer's but holds every
    recognizer label, the LM is wrapped to speak the recognizer's ids, mapped by token string
    (:class:`scratchasr.decode.vocab_map.VocabularyMappedLM`); a recognizer label it lacks is an error."""
    lm, _ = load(checkpoint)
    if not getattr(lm, "IS_LM", False):
        raise ValueError(f"{name}: {checkpoint} holds a {lm.config['name']!r} model, not a language model")
    if lm.vocabulary.tokens != vocabulary.tokens:
        from .decode.vocab_map import VocabularyMappedLM
        return VocabularyMappedLM(lm, lm.vocabulary, vocabulary, name=name)
    return lm


def evaluate(checkpoint, data, split: Optional[str] = "core_test", *, beam_size: int = 1, out=None,
             batch_size: int = 16, progress: bool = True, resample: bool = True, lm=None,
             lm_weight: float = 0.0, nbest: Optional[int] = None, rescore=None, method: Optional[str] = None,
             decode_options: Optional[dict] = None, int8: bool = False) -> Dict:
    """Decode and score a data set; ``out`` writes ``hyp.text`` and ``align.txt`` there; ``resample`` as
    in :func:`transcribe`. ``lm`` (a language-model checkpoint) is fused into the beam search with weight
    ``lm_weight``; ``rescore`` (a language-model checkpoint) rescores the beam's ``nbest`` hypotheses
    instead, with the same weight (scratchasr/decode/rescore.py). ``int8``: the int8 copy of a Conformer
    (:func:`load`)."""
    from tqdm import tqdm

    from .trainer import decode_features
    beam_size = _beam(beam_size)
    model, frontend = load(checkpoint, int8=int8)
    if out is not None:                    # before the decoding, not after it
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"out: cannot create {out}: {e.strerror or e}") from None
    if not Path(data).is_dir():
        raise ValueError(f"data: {data} is not a directory (a TIMIT-layout corpus or Kaldi data dir)")
    utts = read_split(data, split or "", model.units)
    if not utts:
        raise ValueError(f"data: no utterances in {data} (split {split!r})")
    if rescore is not None and lm is not None:
        raise ValueError("rescore: give lm (shallow fusion) or rescore (n-best rescoring), not both")
    fusion_lm = None if lm is None else load_lm(lm, model.vocabulary)
    rescore_lm = None if rescore is None else load_lm(rescore, model.vocabulary, name="rescore")
    feats = [frontend.from_file(u.wav_path, resample=resample)
             for u in tqdm(utts, desc="features", disable=not progress, leave=False)]
    if rescore is not None:
        from .decode.rescore import decode_nbest_rescored
        hyps_ids = decode_nbest_rescored(model, feats, rescore_lm, beam=beam_size, nbest=nbest or beam_size,
                                         lm_weight=lm_weight, batch_size=batch_size)
    else:
        hyps_ids = decode_features(model, feats, beam=beam_size, batch_size=batch_size, progress=progress,
                                   lm=fusion_lm, lm_weight=lm_weight, method=method, options=decode_options)
    hyps = [model.vocabulary.decode(h) for h in hyps_ids]
    wer = None
    if model.units == "chars":             # CER without word boundaries (sclite -c) and WER, data/corpus.py
        ref_cw = [text_scoring_tokens(u.tokens, "chars") for u in utts]
        hyp_cw = [text_scoring_tokens(h, "chars") for h in hyps]
        refs, scored = [c for c, _ in ref_cw], [c for c, _ in hyp_cw]
        w = error_rate([wd for _, wd in ref_cw], [wd for _, wd in hyp_cw])
        wer = dict(metric="WER", rate=w.rate, errors=w.errors, ref_tokens=w.ref_tokens,
                   substitutions=w.substitutions, deletions=w.deletions, insertions=w.insertions)
    else:
        refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]
        scored = [scoring_tokens(h, model.scoring) for h in hyps]
    er = error_rate(refs, scored)
    if out is not None:
        d = Path(out)
        (d / "hyp.text").write_text("".join(f"{u.id} {tokens_to_text(h, model.units)}\n".replace(" \n", "\n")
                                            for u, h in zip(utts, hyps)))
        (d / "align.txt").write_text("\n".join(format_alignment(align(r, h), utt_id=u.id)
                                               for u, r, h in zip(utts, refs, scored)))
    unit = {"timit39": "PER"}.get(model.scoring, {"words": "WER", "chars": "CER"}.get(model.units, "TER"))
    return dict(split=split, utterances=len(utts), metric=unit, rate=er.rate, per=er.rate, errors=er.errors,
                ref_tokens=er.ref_tokens, substitutions=er.substitutions, deletions=er.deletions,
                insertions=er.insertions, wer=wer,
                examples=[(u.id, " ".join(r), " ".join(h)) for u, r, h in list(zip(utts, refs, scored))[:3]])
