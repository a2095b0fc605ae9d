"""The generic trainer: any registered model, from a recipe config, with nothing model-specific inside.

    recipe config (dict: model + options) -> data (corpus -> features -> batches) -> model (owns its loss)
        -> trainer (optimiser, schedule, checkpoints, logs) -> inference and scoring

A config is a dict with a ``model`` key, the trainer's keys (:class:`TrainConfig`) and the model's
options (every other key goes to ``models.build``). ``--key=value`` overrides take the type of the
key's default and are validated by range, naming the key.

What one run does (everything lands in ``exp_dir``):
- reads the train and dev splits (TIMIT layout or Kaldi data dirs, :mod:`scratchasr.data.corpus`),
  computes features once per split into ``feats/`` (keyed by the front end's options and the corpus
  contents), fits global CMVN on the training features;
- optional Kaldi-style speed perturbation (0.9, 1.0, 1.1: the audio resampled, each factor a new
  speaker) and SpecAugment (masks drawn from ``default_rng([seed, epoch, batch])``, so resuming
  redraws the same ones);
- optional waveform augmentation (``aug_*`` keys, all 0 = off by default; :mod:`scratchasr.data.augment`,
  docs/augmentation.md): gain, room reverberation, white/pink noise, babble, telephone band, mu-law, each
  with a probability per utterance and epoch, drawn from ``default_rng([seed, 11, epoch, utterance index])``
  (stateless, so resuming redraws them). Design: the clean features stay cached; an utterance that draws
  at least one effect has its audio read, augmented and its features computed ON THE FLY in the batch
  hook (``_wave_augment``), on the MPI rank that trains it. Trade-off against K augmented copies cached
  like speed perturbation: a fresh draw every epoch (no K-fold disk and memory cost, no fixed set of
  rooms and noises) for the price of the front end's time on the augmented utterances (about 1/600 of
  real time, small next to a model's forward and backward pass); every effect keeps the length, so the
  batches and SpecAugment masks are those of the clean run;
- bucketed batches (sorted by length, the batch order drawn from ``default_rng([seed, epoch])``),
  ``model.forward_loss`` / ``model.backward``, gradient accumulation over ``grad_accum`` batches,
  global-norm clipping, Adam/AdamW/SGD, a schedule (NewBob on the dev score, constant, Noam warm-up
  peaking at ``lr``, cosine with warm-up), dev scoring each epoch, early stopping;
- ``best.npz`` is written before ``checkpoint.npz`` (a kill between the two leaves a checkpoint one
  epoch behind a consistent best; resuming redoes that epoch bit-exactly and rewrites best), both
  atomically; logs (``log.csv``, ``log.json``) are written atomically too, and ``--resume`` first
  rewrites them from the checkpoint's history (a kill inside the log writing loses nothing);
  temporary files of a killed run are removed on the next start. A finished run is marked in its
  checkpoint: after an early stop ``--resume`` never trains further; after the last epoch only a
  larger ``epochs`` continues it. ``--overwrite`` removes the old run's checkpoints and logs first;
  without it (or ``--resume``) an existing run is refused. On ``--resume`` only the keys in
  ``RESUME_MAY_CHANGE`` may differ from the checkpoint's config; any other difference is named
  and refused. tests/test_faults.py kills (SIGKILL) runs at these moments and checks that
  ``--resume`` ends with the checkpoint, best model and logs of an uninterrupted run;
- Ctrl-C (SIGINT) finishes the batch in flight, writes a resumable mid-epoch checkpoint (epoch,
  batch, partial sums, every RNG), and ``--resume`` continues bit-exactly;
- a NaN loss names its utterances and stops without touching the checkpoint; an utterance a model
  cannot align (too few frames for its labels: loss ``inf``) is named, skipped and counted (log
  field ``skipped``, per epoch); an utterance whose features cannot be computed (audio shorter than
  one frame, unreadable or refused by the front end) is named in a warning, left out and counted
  (log fields ``skipped_train_utts`` / ``skipped_dev_utts``; ids and reasons in the checkpoint's
  ``skipped_utterances``).
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import models
from .data.batch import Batch, bucket_batches, make_batch
from .data.corpus import (UNITS, CorpusUtterance, Vocabulary, build_vocabulary, read_split, scoring_tokens,
                          spread_subset, text_scoring_tokens)
from .distributed import world
from .frontend import Frontend, check_options
from .inference import MAX_BEAM, check_meta
from .io import load_checkpoint, rng_from_state, rng_state, save_checkpoint
from .metrics import error_rate
from .optim import SGD, Adam, AdamW, clip_grad_norm
from .optim.schedules import cosine_with_warmup, noam

__all__ = ["TrainConfig", "train", "NonFiniteLoss", "RESUME_MAY_CHANGE", "MAX_BEAM", "decode_features",
           "score_hypotheses"]

# Keys --resume accepts with another value than the checkpoint's: the run's length and budget (epochs,
# max_minutes, patience; an early stop stays final all the same), display (progress), where things are
# (data_dir for a moved corpus: the vocabulary must still match; exp_dir) and the dev decoding beam. Any
# other difference (model options, features, lr, batch_size, seed, ...) is named and refused.
RESUME_MAY_CHANGE = ("epochs", "max_minutes", "progress", "patience", "data_dir", "exp_dir", "beam")
_RESUME_KEYS = ("config", "epoch", "best", "best_epoch", "bad_epochs", "lr", "step", "history", "rngs")
SPEEDS = (0.9, 1.0, 1.1)
AUG_EFFECTS = ("aug_gain", "aug_reverb", "aug_noise", "aug_babble", "aug_telephone", "aug_mulaw", "aug_vtlp")
SCHEDULES = ("newbob", "constant", "noam", "cosine")
OPTIMIZERS = ("adam", "adamw", "sgd")


class NonFiniteLoss(RuntimeError):
    """A batch gave a NaN loss or gradient; the message names the utterances."""


@dataclass
class TrainConfig:
    model: str = "ctc_blstm"
    data_dir: str = "data/synth_small"
    exp_dir: str = "exp/ctc_blstm"
    train_split: str = "train"
    dev_split: str = "dev"
    units: str = "phones"            # phones | words | chars
    text_train: str = ""             # language models: extra text, one sentence per line (data/text.py)
    epochs: int = 30
    max_minutes: float = 0.0         # 0: no time budget (checked between epochs)
    max_train_utts: int = 0          # 0: all
    max_dev_utts: int = 0
    seed: int = 0
    batch_size: int = 16
    grad_accum: int = 1              # batches per optimiser step
    lr: float = 2e-3
    optimizer: str = "adam"          # adam | adamw | sgd
    weight_decay: float = 0.0
    clip: float = 5.0                # global gradient norm; 0: no clipping
    schedule: str = "newbob"         # newbob | constant | noam | cosine
    lr_halving: bool = True          # newbob: halve lr when the dev score does not improve
    halve_after: List[int] = field(default_factory=list)  # newbob/constant: also halve after these epochs
    warmup_steps: int = 0            # noam / cosine
    patience: int = 4                # epochs without dev improvement before stopping
    spec_augment: bool = False
    speed_perturb: bool = False
    # waveform augmentation (data/augment.py): each the probability that an utterance gets the effect in an
    # epoch; 0 (the default) is off. Applied in this order: gain, reverb, noise, babble, telephone, mulaw.
    aug_gain: float = 0.0            # gain uniform in [-aug_gain_db, aug_gain_db] dB
    aug_reverb: float = 0.0          # image-source room: size 3-10 x 3-8 x 2.4-4 m, absorption 0.2-0.8
    aug_noise: float = 0.0           # white or pink noise (equally likely) at an SNR in [snr_low, snr_high]
    aug_babble: float = 0.0          # 3-7 other training utterances summed, at an SNR in [snr_low, snr_high]
    aug_telephone: float = 0.0       # band-pass 300-3400 Hz, through 8 kHz and back
    aug_mulaw: float = 0.0           # G.711 mu-law 8-bit codec round trip
    aug_snr_low: float = 5.0         # dB
    aug_snr_high: float = 20.0       # dB
    aug_gain_db: float = 6.0
    aug_vtlp: float = 0.0            # vocal tract length perturbation: mel filters warped (Kaldi VTLN) by a
    aug_vtlp_range: float = 0.1      # factor uniform in [1 - aug_vtlp_range, 1 + aug_vtlp_range]
    beam: int = 1                    # dev decoding: 1 greedy, > 1 beam search
    progress: bool = True
    imports: List[str] = field(default_factory=list)      # modules that register models
    features: Dict[str, object] = field(default_factory=dict)  # front-end options (features.compute_features)
    model_options: Dict[str, object] = field(default_factory=dict)

    # ------------------------------------------------------------------ building and validation
    @classmethod
    def from_overrides(cls, base: Optional[dict] = None,
                       overrides: Optional[Sequence[str]] = None) -> "TrainConfig":
        """``base`` (a config file's CONFIG) updated by ``--key=value`` strings; unknown keys are model
        options."""
        values = dict(base or {})
        for item in overrides or []:
            key, sep, val = str(item).lstrip("-").partition("=")
            key = key.replace("-", "_")
            if not sep or not key:
                raise ValueError(f"override {item!r}: expected --key=value")
            values[key] = _Raw(val)
        own = {f.name for f in fields(cls)}
        model_opts = dict(values.pop("model_options", {}) or {})
        for k in list(values):
            if k not in own:
                model_opts[k] = values.pop(k)
        cfg, defaults_cfg = cls(), cls()
        for k, v in values.items():
            setattr(cfg, k, _convert(k, v, getattr(defaults_cfg, k)))
        cfg.model_options = model_opts
        cfg.validate()
        _import_all(cfg.imports)
        if cfg.model not in models.available():
            raise ValueError(f"model: unknown model {cfg.model!r}; registered: {models.available()}")
        defaults = models.base._REGISTRY[cfg.model].OPTIONS
        for k, v in model_opts.items():
            if k not in defaults:
                raise ValueError(f"{k}: neither a trainer key nor an option of model {cfg.model!r} "
                                 f"(its options: {sorted(defaults)})")
            model_opts[k] = _convert(k, v, defaults[k])
        return cfg

    def validate(self) -> None:
        def need(ok, key, what):
            if not ok:
                raise ValueError(f"{key}: expected {what}, got {getattr(self, key)!r}")
        need(self.epochs >= 1, "epochs", "an integer >= 1")
        need(self.max_minutes >= 0 and math.isfinite(self.max_minutes), "max_minutes", "a number >= 0")
        for k in ("max_train_utts", "max_dev_utts", "seed", "patience", "warmup_steps"):
            need(getattr(self, k) >= 0, k, "an integer >= 0")
        for k in ("batch_size", "grad_accum"):
            need(getattr(self, k) >= 1, k, "an integer >= 1")
        need(self.lr > 0 and math.isfinite(self.lr), "lr", "a positive number")
        need(self.clip >= 0 and math.isfinite(self.clip), "clip", "a number >= 0 (0: no clipping)")
        need(self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(1 <= self.beam <= MAX_BEAM, "beam", f"an integer in [1, {MAX_BEAM}]")
        need(self.units in UNITS, "units", f"one of {list(UNITS)}")
        need(self.schedule in SCHEDULES, "schedule", f"one of {list(SCHEDULES)}")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {list(OPTIMIZERS)}")
        need(self.schedule != "noam" or self.warmup_steps > 0, "warmup_steps", "> 0 for the noam schedule")
        need(isinstance(self.imports, (list, tuple)), "imports", "a list of module names")
        need(isinstance(self.halve_after, (list, tuple)), "halve_after", "a list of epoch numbers")
        try:
            self.halve_after = sorted({int(e) for e in self.halve_after})
        except (TypeError, ValueError):
            raise ValueError(f"halve_after: expected epoch numbers >= 1, got {self.halve_after!r}") from None
        need(all(e >= 1 for e in self.halve_after), "halve_after", "epoch numbers >= 1")
        need(not self.halve_after or self.schedule in ("newbob", "constant"), "halve_after",
             "no epochs with a per-step schedule (noam, cosine)")
        for k in AUG_EFFECTS:
            need(0.0 <= getattr(self, k) <= 1.0, k, "a probability in [0, 1] (0: off)")
        need(-30.0 <= self.aug_snr_low <= 100.0, "aug_snr_low", "an SNR in [-30, 100] dB")
        need(self.aug_snr_low <= self.aug_snr_high <= 100.0, "aug_snr_high",
             "an SNR in [aug_snr_low, 100] dB")
        need(0.0 <= self.aug_gain_db <= 60.0, "aug_gain_db", "a number of dB in [0, 60]")
        need(0.0 <= self.aug_vtlp_range <= 0.4, "aug_vtlp_range", "a number in [0, 0.4]")
        need(isinstance(self.features, dict), "features", "a dict of front-end options")
        check_options(self.features)          # unknown names and values the feature code refuses

    def as_dict(self) -> dict:
        return asdict(self)


class _Raw(str):
    """A command-line string still to be converted to the key's type."""


def _convert(key: str, value, default):
    """Convert/validate one config value against the type of its default (bool before int)."""
    raw = isinstance(value, _Raw)
    if isinstance(default, bool):
        if raw:
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{key}: expected True or False, got {value!r}")
        return bool(value)
    if isinstance(default, int):
        if raw:
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"{key}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{key}: expected an integer, got {value!r}")
        if not -2**63 <= int(value) < 2**63:          # NumPy would raise OverflowError far from here
            raise ValueError(f"{key}: expected an integer below 2**63 in size, got {value!r}")
        return int(value)
    if isinstance(default, float):
        if raw:
            try:
                v = float(value)
            except ValueError:
                raise ValueError(f"{key}: expected a number, got {value!r}") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{key}: expected a number, got {value!r}")
        else:
            v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{key}: expected a finite number, got {value!r}")
        return v
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if isinstance(default, (list, tuple)):
        if raw:
            return [v for v in value.split(",") if v]
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{key}: expected a list, got {value!r}")
        return list(value)
    if isinstance(default, dict):
        if raw:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"{key}: expected a JSON object, got {value!r}") from None
        if not isinstance(value, dict):
            raise TypeError(f"{key}: expected a dict, got {value!r}")
        return dict(value)
    return value


def _import_all(names: Sequence[str]) -> None:
    for n in names:
        try:
            importlib.import_module(n)
        except ImportError as e:
            raise ValueError(f"imports: cannot import {n!r}: {e}") from None


# ----------------------------------------------------------------------------------------- data


class Split:
    """One split in memory: utterances, normalised features, label ids."""

    def __init__(self, utts: List[CorpusUtterance], feats: List[np.ndarray], labels: List[np.ndarray]):
        self.utts, self.feats, self.labels = utts, feats, labels

    def __len__(self) -> int:
        return len(self.utts)

    def batch(self, idx, *, augment=None) -> Batch:
        feats = [self.feats[i] for i in idx]
        if augment is not None:
            feats = [augment(f, j) for j, f in enumerate(feats)]
        return make_batch(feats, [self.labels[i] for i in idx], ids=[self.utts[i].id for i in idx])


def _read(cfg: TrainConfig, split: str, limit: int) -> List[CorpusUtterance]:
    if not Path(cfg.data_dir).is_dir():
        raise ValueError(f"data_dir: {cfg.data_dir} is not a directory (a TIMIT-layout corpus or Kaldi data "
                         f"dir)")
    utts = read_split(cfg.data_dir, split, cfg.units)
    if not utts:
        raise ValueError(f"data_dir: split {split!r} of {cfg.data_dir} holds no utterances")
    return spread_subset(utts, limit)             # evenly over the (speaker-sorted) list, not the first few


def _prepare_data(cfg: TrainConfig, exp: Path, frontend: Frontend):
    """-> (train Split, dev Split, vocabulary, skipped: {cache name: {utterance id: why}})."""
    if getattr(models.base._REGISTRY.get(cfg.model), "IS_LM", False):
        from .data.text import prepare_text_data
        return prepare_text_data(cfg, frontend)       # a language model: transcripts and text, no audio
    tr = _read(cfg, cfg.train_split, cfg.max_train_utts)
    dv = _read(cfg, cfg.dev_split, cfg.max_dev_utts)
    cache = exp / "feats"
    skipped: Dict[str, Dict[str, str]] = {}

    def features(utts, name, speed=1.0):
        """Utterances whose audio the front end refuses (too short for one frame, unreadable, ...) are
        skipped, each named in a warning, and counted in the logs (never hidden, never a crash)."""
        bad: Dict[str, str] = {}
        fs = world().cached_features(utts, frontend, cache, name, speed=speed, progress=cfg.progress,
                                     skipped=bad)          # MPI: each rank computes its part, all share it
        for uid, why in bad.items():
            print(f"warning: skipping {name} utterance {uid}: {why}", file=sys.stderr)
        if bad:
            skipped[name] = bad
        keep = [i for i, f in enumerate(fs) if f is not None]
        if not keep:
            raise ValueError(f"data_dir: no utterance of split {name!r} of {cfg.data_dir} gives features "
                             f"(all {len(utts)} skipped; first: {next(iter(bad.values()))})")
        return [utts[i] for i in keep], [fs[i] for i in keep]

    tr, tr_feats = features(tr, cfg.train_split)
    dv, dv_feats = features(dv, cfg.dev_split)
    if frontend.mean is None:
        frontend.fit(tr_feats)                                   # CMVN from the unperturbed training set
    vocab = build_vocabulary(cfg.units, tr)
    utts, feats = list(tr), list(tr_feats)
    speeds = [1.0] * len(utts)                   # per training utterance, for on-the-fly augmentation
    if cfg.speed_perturb:
        for s in SPEEDS:
            if s == 1.0:
                continue
            kept, fs = features(tr, f"{cfg.train_split}-sp{s}", s)
            utts += [CorpusUtterance(f"sp{s}-{u.id}", f"sp{s}-{u.speaker}", u.wav_path, u.tokens, u.text)
                     for u in kept]
            feats += fs
            speeds += [s] * len(kept)
    train = Split(utts, [frontend.normalise(f) for f in feats],
                  [vocab.encode(u.tokens, where=f"utterance {u.id}") for u in utts])
    train.speeds = speeds
    # dev is scored on its tokens (strings); ids only where every token is known (an LM's dev loss)
    dev = Split(dv, [frontend.normalise(f) for f in dv_feats],
                [vocab.encode(u.tokens) if all(t in vocab.index for t in u.tokens) else None for u in dv])
    return train, dev, vocab, skipped


def _augmenter(cfg: TrainConfig, train: Split, frontend: Frontend):
    """The on-the-fly waveform augmenter of the training set, or None when every ``aug_*`` is 0."""
    from .data.augment import AugmentOptions, TrainingAugmenter
    opts = AugmentOptions(gain=cfg.aug_gain, reverb=cfg.aug_reverb, noise=cfg.aug_noise,
                          babble=cfg.aug_babble, telephone=cfg.aug_telephone, mulaw=cfg.aug_mulaw,
                          snr_low=cfg.aug_snr_low, snr_high=cfg.aug_snr_high, gain_db=cfg.aug_gain_db,
                          vtlp=cfg.aug_vtlp, vtlp_range=cfg.aug_vtlp_range)
    if not opts.active or not hasattr(train, "speeds"):             # off, or a language model's text
        return None
    return TrainingAugmenter(opts, frontend, [u.wav_path for u in train.utts], train.speeds)


class _Overlay:
    """A list of features with some entries replaced (the augmented utterances of one batch)."""

    def __init__(self, base, replaced: Dict[int, np.ndarray]) -> None:
        self.base, self.replaced = base, replaced

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        return self.replaced.get(int(i), self.base[int(i)])


def _wave_augment(cfg: TrainConfig, epoch: int, train: Split, augmenter, mine) -> Split:
    """``train`` as the batch hook sees it: the utterances ``mine`` (this rank's shard of the batch) that
    draw an effect get features of their augmented audio; utterance i's draws come from
    ``default_rng([seed, 11, epoch, i])`` alone (independent of batches, ranks and resumes). Every
    effect keeps the length, so SpecAugment (drawn from shapes alone) masks the same frames."""
    if augmenter is None:
        return train
    new = {}
    for i in map(int, mine):
        f = augmenter.features(i, np.random.default_rng([cfg.seed, 11, epoch, i]),
                               clean_frames=train.feats[i].shape[0])
        if f is not None:
            new[i] = f
    return Split(train.utts, _Overlay(train.feats, new), train.labels) if new else train


def _spec_augment(cfg: TrainConfig, epoch: int, batch_index: int):
    if not cfg.spec_augment:
        return None
    from .features.specaugment import spec_augment
    rng = np.random.default_rng([cfg.seed, 7, epoch, batch_index])
    opts = dict(num_freq_masks=2, freq_mask_width=8, num_time_masks=2, time_mask_width=20, max_time_ratio=0.2)
    return lambda f, j: spec_augment(f, rng, **opts)[0]


# ----------------------------------------------------------------------------------------- scoring


def decode_features(model, feats: Sequence[np.ndarray], *, beam: int = 1, batch_size: int = 16,
                    lm=None, lm_weight: float = 0.0, progress: bool = False, desc: str = "decode",
                    method: Optional[str] = None, options: Optional[dict] = None) -> List[List[int]]:
    """Decode a list of normalised (T, D) feature arrays in length-sorted batches; ids per utterance.

    ``method`` defaults to ``"greedy"`` for ``beam == 1`` and ``"beam"`` otherwise; a model's own methods
    (e.g. the transducer's ``"graves"``) and ``options`` (keyword arguments of its ``decode``, e.g.
    ``ctc_weight`` for las, ``length_reward``) pass through.
    """
    from tqdm import tqdm
    hyps: List[Optional[List[int]]] = [None] * len(feats)
    groups = bucket_batches([f.shape[0] for f in feats], batch_size, None)
    method = method or ("greedy" if beam <= 1 else "beam")
    for idx in tqdm(groups, desc=desc, disable=not progress, leave=False):
        b = make_batch([feats[i] for i in idx], [[] for _ in idx])
        try:
            out = model.decode(b, method=method, beam_size=beam, lm=lm, lm_weight=lm_weight,
                               **(options or {}))
        except TypeError as e:
            if options and "keyword argument" in str(e):
                raise ValueError(f"decode_options: {sorted(options)} not all accepted by {model.name}'s "
                                 f"decode ({e})") from None
            raise
        for i, h in zip(idx, out):
            hyps[i] = list(h)
    return hyps  # type: ignore[return-value]


def score_hypotheses(vocab: Vocabulary, scoring: str, refs: Sequence[Sequence[str]], hyps_ids, *,
                     units: str = ""):
    """Error rate (sclite counts) after mapping both sides to scored tokens; returns (ErrorRate, hyp
    tokens). ``units="chars"``: the CER of ``scratchasr decode`` (characters without the word boundaries,
    sclite -c: :func:`scratchasr.data.corpus.text_scoring_tokens`)."""
    def scored(tokens):
        if units == "chars":
            return text_scoring_tokens(tokens, "chars")[0]
        return scoring_tokens(tokens, scoring)
    hyp_tokens = [vocab.decode(h) for h in hyps_ids]
    er = error_rate([scored(r) for r in refs], [scored(h) for h in hyp_tokens])
    return er, hyp_tokens


def _scoring_rule(vocab: Vocabulary) -> str:
    return "timit39" if vocab.is_timit61 else "tokens"


# ----------------------------------------------------------------------------------------- checkpoints


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_logs(exp: Path, history: List[dict]) -> None:
    """``log.csv`` and ``log.json`` from ``history``, each atomically (files already holding it are left
    alone)."""
    keys: List[str] = []
    for h in history:
        keys += [k for k in h if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    for path, text in ((exp / "log.csv", buf.getvalue()), (exp / "log.json", json.dumps(history, indent=1))):
        try:
            if path.read_text() == text:
                continue
        except (OSError, UnicodeDecodeError):
            pass
        _atomic_write(path, text)


def _plot(exp: Path, history: List[dict]) -> None:
    try:
        from .plots import plot_history
    except ImportError:
        return
    if history:
        plot_history(history, exp / "loss.png")


def _check_best(best_path: Path, meta: dict) -> None:
    """On resume: ``best.npz`` must hold the epoch the checkpoint calls best (or a later one that a kill
    between the two writes left ahead of the checkpoint: that epoch is redone and rewrites it)."""
    want = meta.get("best_epoch", 0)
    if not want:
        return
    try:
        have = load_checkpoint(best_path)[2].get("epoch") if best_path.exists() else None
    except ValueError as e:
        have = f"unreadable ({e})"
    if have == want or (isinstance(have, int) and have > meta["epoch"]):
        return
    print(f"warning: {best_path} holds epoch {have}, but the checkpoint's best is epoch {want}: the best "
          f"model was lost outside the trainer (decode checkpoint.npz, or retrain with --overwrite)",
          file=sys.stderr)


def _config_differences(saved: dict, now: dict, prefix: str = "") -> List[str]:
    """The keys (dotted inside ``model_options`` and ``features``) whose values differ, with both values."""
    diffs = []
    defaults = TrainConfig().as_dict() if not prefix else {}
    for k in sorted(set(saved) | set(now)):
        if k in RESUME_MAY_CHANGE and not prefix:
            continue
        if k not in saved and k in defaults and now.get(k) == defaults[k]:
            continue        # a trainer key added after the checkpoint was written, left at its default
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += _config_differences(a, b, f"{prefix}{k}.")
        elif a != b:
            diffs.append(f"{prefix}{k} (checkpoint {a!r}, now {b!r})")
    return diffs


def _make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _step_schedule(cfg: TrainConfig, steps_per_epoch: int):
    if cfg.schedule == "noam":   # peak-normalised: lr at step warmup_steps  [optim:noam]
        return noam(cfg.lr * math.sqrt(cfg.warmup_steps), 1, cfg.warmup_steps)
    if cfg.schedule == "cosine":
        total = max(cfg.epochs * steps_per_epoch, cfg.warmup_steps + 1)
        return cosine_with_warmup(cfg.lr, total, cfg.warmup_steps)
    return None  # newbob / constant: lr changes only between epochs


# ----------------------------------------------------------------------------------------- train


def train(cfg: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> dict:
    """Run a recipe; returns a summary dict (best dev score, epochs, minutes, history, exp_dir)."""
    from tqdm import tqdm
    t_start = time.perf_counter()
    if resume and overwrite:
        raise ValueError("overwrite: --resume continues a run, --overwrite replaces it; give one of them")
    cfg.validate()
    _import_all(cfg.imports)
    dist = world()                    # MPI ranks (docs/distributed.md); one process: no-ops
    if not dist.is_root:
        from dataclasses import replace
        cfg = replace(cfg, progress=False)
    exp = Path(cfg.exp_dir)
    try:
        exp.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"exp_dir: cannot create {exp}: {e.strerror or e}") from None
    for leftover in (list(exp.glob(".*.tmp")) + list(exp.glob("feats/*.tmp*.npz")) if dist.is_root else []):
        leftover.unlink()                                         # temporary files of a killed run
    ckpt, best_path = exp / "checkpoint.npz", exp / "best.npz"
    if ckpt.exists() and not resume and not overwrite:
        raise ValueError(f"exp_dir: {exp} already holds a run (checkpoint.npz); continue it with --resume or "
                         f"start afresh with --overwrite")
    if overwrite and not resume and dist.is_root:
        for old in (ckpt, best_path, exp / "log.csv", exp / "log.json", exp / "loss.png"):
            if old.exists():
                old.unlink()          # a kill early in the new run must not leave the old run to --resume
    dist.barrier()                    # rank 0 has cleaned up before any rank reads or writes
    saved = None
    if resume and not ckpt.exists():
        print(f"--resume: no checkpoint in {exp} yet; starting afresh")
    if resume and ckpt.exists():
        saved = load_checkpoint(ckpt)
        check_meta(ckpt, saved[2])
        lacking = [k for k in _RESUME_KEYS if k not in saved[2]]
        if lacking:
            raise ValueError(f"checkpoint: {ckpt} lacks {lacking} in its metadata: it cannot be resumed")
        diffs = _config_differences(saved[2]["config"], cfg.as_dict())
        if diffs:
            raise ValueError(f"config: differs from the checkpoint in {', '.join(diffs)}; only "
                             f"{', '.join(RESUME_MAY_CHANGE)} may change on --resume")
        meta = saved[2]
        if dist.is_root:
            _write_logs(exp, meta["history"])    # the logs of the checkpoint (a kill may have cut them short)
        _check_best(best_path, meta)
        # an early stop is final; a run that used up its epochs continues only if more are given
        if meta.get("finished") and (meta.get("stopped_early") or meta["epoch"] >= cfg.epochs):
            print(f"{ckpt}: the run finished ({meta['finished']}); nothing to do")
            if not (exp / "loss.png").exists() and dist.is_root:
                _plot(exp, meta["history"])
            return dict(epochs=len(meta["history"]), best_dev=meta["best"], best_dev_per=meta["best"],
                        minutes=0.0, history=meta["history"], exp_dir=str(exp), finished=meta["finished"])
    frontend = Frontend(cfg.features)
    if saved is not None:
        frontend = Frontend.from_checkpoint(saved[0], saved[2], where=str(ckpt))
    train_set, dev_set, vocab, skipped_data = _prepare_data(cfg, exp, frontend)
    n_skipped = dict(train=sum(len(v) for n, v in skipped_data.items()
                               if n == cfg.train_split or n.startswith(f"{cfg.train_split}-sp")),
                     dev=len(skipped_data.get(cfg.dev_split, {})))
    scoring = _scoring_rule(vocab)
    augmenter = _augmenter(cfg, train_set, frontend)

    model = models.build(cfg.model, input_dim=frontend.dim, vocab_size=len(vocab), dtype=np.float32,
                         seed=cfg.seed,
                         **cfg.model_options)
    opt = _make_optimizer(cfg, model.parameters())
    history: List[dict] = []
    epoch0, best, best_epoch, bad_epochs, step = 0, float("inf"), 0, 0, 0
    resume_batch, partial = 0, [0.0, 0, 0, 0]
    lr = cfg.lr
    gens = model.random_generators()
    if saved is not None:
        params, opt_state, meta = saved
        state = {k: v for k, v in params.items() if not k.startswith("frontend.")}
        model.load_state_dict(state)
        opt.load_state_dict(opt_state)
        for k, st in meta["rngs"].items():
            gens[k].bit_generator.state = rng_from_state(st).bit_generator.state
        epoch0, best, best_epoch = meta["epoch"], meta["best"], meta["best_epoch"]
        bad_epochs = meta["bad_epochs"]
        lr, history, step = meta["lr"], meta["history"], meta["step"]
        resume_batch = meta.get("batch", 0)
        partial = meta.get("partial", partial) if dist.is_root else partial   # global sums: counted once
        if vocab.tokens != meta["vocab"]:
            raise ValueError("data_dir: the training transcripts give a vocabulary different from the "
                             "checkpoint's")
        print(f"resumed from {ckpt} at epoch {epoch0}{f', batch {resume_batch}' if resume_batch else ''}")

    def save(path: Path, epoch: int, batch: int = 0, part=(0.0, 0, 0, 0), finished: str = "") -> None:
        if not dist.is_root:
            return
        meta = dict(config=cfg.as_dict(), model=model.config, vocab=vocab.tokens, units=cfg.units,
                    scoring=scoring,
                    frontend=frontend.meta(), epoch=epoch, batch=batch, partial=list(part), best=best,
                    best_epoch=best_epoch, bad_epochs=bad_epochs, lr=lr, step=step, history=history,
                    finished=finished, stopped_early=bad_epochs >= cfg.patience,
                    skipped_utterances=skipped_data,
                    rngs={k: rng_state(g) for k, g in gens.items()})
        arrays = dict(model.state_dict())
        arrays.update(frontend.arrays())
        save_checkpoint(path, arrays, optimizer_state=opt.state_dict(), meta=meta)

    metric = "dev_loss" if model.IS_LM else "dev_err"
    n_batches = -(-len(train_set) // cfg.batch_size)
    schedule = _step_schedule(cfg, -(-n_batches // cfg.grad_accum))
    print(f"model {cfg.model}: {model.num_parameters():,} parameters; {len(train_set)} training / "
          f"{len(dev_set)} dev "
          f"utterances, vocabulary {len(vocab)} ({cfg.units}, scored as {scoring})"
          + (f"; skipped {n_skipped['train']} training / {n_skipped['dev']} dev utterances whose features "
             f"could not be computed (named above)" if skipped_data else ""))

    interrupted: List[bool] = []
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    finished = ""
    epoch = epoch0
    try:
        for epoch in range(epoch0, cfg.epochs):
            if cfg.max_minutes and dist.root_decides((time.perf_counter() - t_start) / 60 > cfg.max_minutes):
                print(f"time budget of {cfg.max_minutes} min reached before epoch {epoch + 1}")
                break
            model.train()
            order = bucket_batches([f.shape[0] for f in train_set.feats], cfg.batch_size,
                                   np.random.default_rng([cfg.seed, epoch]))
            tot_loss, tot_frames, tot_utts, skipped = 0.0, 0, 0, 0
            run_frames = 0
            skip = 0
            if epoch == epoch0 and resume_batch:
                (tot_loss, tot_frames, tot_utts, skipped), skip = partial, resume_batch
            t0 = time.perf_counter()
            bar = tqdm(order, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
            model.zero_grad()
            stop = False
            for done, idx in enumerate(bar):
                if done < skip:          # finished before the interruption we resume from
                    continue
                # MPI: this rank's shard of the global batch idx (the weights below stay 1 / len(idx));
                # None when the shard is empty (a last batch smaller than the number of ranks)
                batch = dist.batch(_wave_augment(cfg, epoch, train_set, augmenter, dist.shard(idx)), idx,
                                   _spec_augment(cfg, epoch, done), generators=gens,
                                   key=(cfg.seed, epoch, done))
                if batch is not None:
                    loss, _ = model.forward_loss(batch)
                    if np.any(np.isnan(loss)):
                        model.clear_caches()
                        bad = [u for u, v in zip(batch.ids, loss) if np.isnan(v)]
                        raise NonFiniteLoss(f"NaN loss for utterance(s) {bad} in epoch {epoch + 1}; the "
                                            f"checkpoint holds the last good state")
                    ok = np.isfinite(loss)
                    if not ok.all():
                        names = [u for u, v in zip(batch.ids, ok) if not v]
                        skipped += len(names)
                        tqdm.write(f"skipped (too short for its labels): {', '.join(names)}")
                    dloss = np.where(ok, 1.0 / (len(idx) * cfg.grad_accum), 0.0).astype(model.dtype)
                    model.backward(dloss)
                    tot_loss += float(loss[ok].sum())
                    tot_frames += int(batch.feat_lengths.sum())
                    run_frames += int(batch.feat_lengths.sum())  # since t0 (resumed epoch: since the resume)
                    tot_utts += int(ok.sum())
                boundary = (done + 1) % cfg.grad_accum == 0 or done + 1 == len(order)
                if boundary:
                    grads = model.gradients()
                    stop = dist.allreduce_grads(grads, bool(interrupted))  # over ranks [dist:allreduce]
                    try:
                        if cfg.clip > 0:
                            clip_grad_norm(grads, cfg.clip)
                        elif not all(np.all(np.isfinite(g)) for g in grads.values()):
                            raise ValueError("non-finite gradient")
                    except ValueError as e:
                        raise NonFiniteLoss(f"non-finite gradient in the batch "
                                            f"{[train_set.utts[i].id for i in idx]}: "
                                            f"{e}") from None
                    if schedule is not None:
                        lr = schedule(step)
                    opt.lr = lr
                    opt.step(grads)
                    step += 1
                    model.zero_grad()
                bar.set_postfix(loss=f"{tot_loss / max(tot_utts, 1):.2f}",
                                fps=f"{run_frames / (time.perf_counter() - t0):.0f}")
                if stop:
                    save(ckpt, epoch, done + 1, dist.sum((tot_loss, tot_frames, tot_utts, skipped)))
                    raise KeyboardInterrupt
            secs = time.perf_counter() - t0
            tot_loss, tot_frames, tot_utts, skipped, run_frames = dist.sum(
                (tot_loss, tot_frames, tot_utts, skipped, run_frames))
            bad_params = [k for k, v in model.state_dict().items() if not np.all(np.isfinite(v))]
            if bad_params:           # finite losses, but a step blew up (e.g. an absurd lr): never saved
                raise NonFiniteLoss(f"parameters {bad_params[:3]} became non-finite in epoch {epoch + 1} (lr "
                                    f"{opt.lr:g} too large?); the checkpoint holds the last good state")
            dev_score, dev_er = dist.evaluate_dev(_evaluate_dev, model, dev_set, vocab, scoring, cfg)
            improved = dev_score < best
            if improved:
                best, best_epoch, bad_epochs = dev_score, epoch + 1, 0
            else:
                bad_epochs += 1
            rec = dict(epoch=epoch + 1, train_loss=tot_loss / max(tot_utts, 1), lr=opt.lr, step=step,
                       seconds=round(secs, 2), frames_per_s=round(run_frames / secs, 1), skipped=skipped,
                       skipped_train_utts=n_skipped["train"], skipped_dev_utts=n_skipped["dev"])
            rec[metric] = dev_score
            if dev_er is not None:
                rec.update(dev_per=dev_er.rate, dev_S=dev_er.substitutions, dev_D=dev_er.deletions,
                           dev_I=dev_er.insertions)
            history.append(rec)
            what = (f"dev {'PER' if scoring == 'timit39' else 'error'} {100 * dev_score:.2f}% "
                    f"(S {dev_er.substitutions} "
                    f"D {dev_er.deletions} I {dev_er.insertions})" if dev_er is not None else
                    f"dev loss/token {dev_score:.3f}")
            print(f"epoch {epoch + 1}: train loss/utt {rec['train_loss']:.2f}  {what}  {secs:.0f}s "
                  f"{rec['frames_per_s']:.0f} frames/s{'  *best*' if improved else ''}"
                  f"{f'  skipped {skipped}' if skipped else ''}", flush=True)
            if cfg.schedule == "newbob" and not improved and cfg.lr_halving:
                lr *= 0.5                                            # NewBob: halve on a plateau
            elif epoch + 1 in cfg.halve_after:
                lr *= 0.5                                            # a fixed step schedule
            if bad_epochs >= cfg.patience or epoch + 1 == cfg.epochs:
                finished = (f"early stop: no dev improvement for {bad_epochs} epochs"
                            if bad_epochs >= cfg.patience
                            else f"finished {cfg.epochs} epochs")
            if improved:
                save(best_path, epoch + 1, finished=finished)        # best first: see the module docstring
            save(ckpt, epoch + 1, finished=finished)
            if dist.is_root:
                _write_logs(exp, history)
            if bad_epochs >= cfg.patience:
                print(finished)
                break
    except KeyboardInterrupt:
        print(f"interrupted: {ckpt} holds the state after the last finished batch; continue with --resume")
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    if dist.is_root:
        _plot(exp, history)
    return dict(epochs=len(history), best_dev=best, best_dev_per=best,
                minutes=(time.perf_counter() - t_start) / 60,
                history=history, exp_dir=str(exp), finished=finished)


def _evaluate_dev(model, dev: Split, vocab: Vocabulary, scoring: str, cfg: TrainConfig):
    model.eval()
    try:
        if model.IS_LM:
            tot, n = 0.0, 0
            labels = [y for y in dev.labels if y is not None]      # utterances with unknown tokens skipped
            for idx in bucket_batches([len(y) for y in labels], cfg.batch_size, None):
                b = make_batch(None, [labels[i] for i in idx])
                loss, _ = model.forward_loss(b)
                tot += float(loss.sum())
                n += int(b.target_lengths.sum() + len(idx))
            return tot / max(n, 1), None
        hyps = decode_features(model, dev.feats, beam=cfg.beam, batch_size=cfg.batch_size,
                               progress=cfg.progress,
                               desc="dev")
        er, _ = score_hypotheses(vocab, scoring, [u.tokens for u in dev.utts], hyps, units=cfg.units)
        return er.rate, er
    finally:
        model.train()


def load_config_file(path: str) -> dict:
    """Run a recipe config file and return its ``CONFIG`` dict; any error inside the file (a syntax error,
    a ``KeyError``, ...) is a ``ValueError`` naming the file and line."""
    import runpy
    import traceback
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"CONFIG: {path} is a directory; expected a Python file defining CONFIG")
    if not p.is_file():
        raise FileNotFoundError(f"CONFIG: no such file: {path}")
    try:
        ns = runpy.run_path(path)
    except SyntaxError as e:
        raise ValueError(f"CONFIG: {path}, line {e.lineno}: {type(e).__name__}: {e.msg}") from None
    except Exception as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == p]
        line = f", line {frames[-1].lineno}" if frames else ""
        raise ValueError(f"CONFIG: {path}{line}: {type(e).__name__}: {e}") from None
    if not isinstance(ns.get("CONFIG"), dict):
        raise ValueError(f"CONFIG: {path} must define a dict named CONFIG")
    return ns["CONFIG"]
