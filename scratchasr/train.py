"""Train, decode and score a BiLSTM-CTC phone recogniser on a TIMIT-layout corpus.

The recipe of Graves et al. 2013 at laptop scale: 40 log-mel fbank + energy with deltas (123 dims),
global CMVN from the training set, a stacked BiLSTM, CTC over the 61 TIMIT phones (+ blank),
Adam with global-norm clipping, greedy or prefix-beam decoding, PER after folding to 39 phones.

Everything a run produces goes into ``exp_dir``: ``feats/`` (the feature cache), ``cmvn.npz``,
``checkpoint.npz`` (latest, atomic), ``best.npz`` (best dev PER), ``log.csv`` / ``log.json``, and PNG
plots (loss curves; the CTC alignment of a dev utterance over its spectrogram).
Resuming (``resume=True``) continues bit-exactly: the data order of epoch ``e`` is drawn from
``default_rng([seed, e])`` and the dropout generator's state is stored in the checkpoint.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from .data.phones import PHONES_61, fold_phones
from .data.timit import read_corpus
from .features.audio import load_audio
from .features.cmvn import CmvnStats
from .features.pipeline import compute_features
from .io import load_checkpoint, save_checkpoint
from .losses import ctc_loss, ctc_loss_backward
from .metrics import error_rate
from .models.ctc_blstm import CTCBLSTM, CTCBLSTMConfig, pad_batch
from .optim import Adam, clip_grad_norm

BLANK = 0
VOCAB = ("<blank>",) + tuple(PHONES_61)  # index 0 is the CTC blank
PHONE_ID = {p: i for i, p in enumerate(VOCAB)}


@dataclass
class TrainConfig:
    data_dir: str = "data/synth_small"
    exp_dir: str = "exp/ctc_blstm"
    hidden: int = 256
    num_layers: int = 2
    stack: int = 2
    dropout: float = 0.2
    lr: float = 2e-3
    clip: float = 5.0
    batch_size: int = 16
    epochs: int = 30
    max_minutes: float = 0.0  # 0 = no time budget
    patience: int = 4  # epochs without dev improvement before stopping
    lr_halving: bool = True  # NewBob-style: halve lr when dev PER does not improve
    seed: int = 0
    max_train_utts: int = 0  # 0 = all (smoke tests use a handful)
    max_dev_utts: int = 0
    beam: int = 1  # 1 = greedy decoding for dev scoring
    progress: bool = True

    @classmethod
    def from_overrides(cls, base: Optional[dict] = None, overrides: Optional[List[str]] = None) -> "TrainConfig":
        """``base`` dict (a config file's CONFIG) updated by ``--key=value`` strings, types from the fields."""
        values = dict(base or {})
        types = {f.name: f.type for f in fields(cls)}
        for item in overrides or []:
            key, sep, val = item.lstrip("-").partition("=")
            key = key.replace("-", "_")
            if not sep or key not in types:
                raise ValueError(f"override {item!r}: expected --key=value with key one of {sorted(types)}")
            default = getattr(cls, key)
            if isinstance(default, bool):
                values[key] = val.lower() in ("1", "true", "yes", "on")
            else:
                values[key] = type(default)(val)
        unknown = set(values) - set(types)
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        return cls(**values)


# ----------------------------------------------------------------------------------------- data


def phone_ids(phones: List[str]) -> np.ndarray:
    """61-phone symbols -> vocabulary ids (blank is 0)."""
    try:
        return np.array([PHONE_ID[p] for p in phones], dtype=np.int64)
    except KeyError as e:
        raise ValueError(f"phones: {e.args[0]!r} is not a TIMIT phone") from None


def utterance_features(wav_path: str) -> np.ndarray:
    y, sr = load_audio(wav_path)
    return compute_features(y, sr)  # (T, 123) float32


def load_split(data_dir: str, split: str, cache_dir: Path, *, limit: int = 0, progress: bool = True):
    """Features (cached on disk, one .npz per split) and phone ids of one split."""
    utts = read_corpus(data_dir, split)
    if limit:
        utts = utts[:limit]
    cache = cache_dir / f"{split}{'_' + str(limit) if limit else ''}.npz"
    ids = [u.id for u in utts]
    if cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["ids"]) == ids:
                offsets = z["offsets"]
                feats = [z["feats"][offsets[i]:offsets[i + 1]] for i in range(len(ids))]
                return utts, feats
    from tqdm import tqdm
    feats = [utterance_features(u.wav_path) for u in tqdm(utts, desc=f"features {split}", disable=not progress)]
    cache_dir.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum([f.shape[0] for f in feats])])
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, ids=np.array(ids), offsets=offsets, feats=np.concatenate(feats))
    os.replace(tmp, cache)
    return utts, feats


def batches(lengths: List[int], batch_size: int, rng: Optional[np.random.Generator]) -> List[np.ndarray]:
    """Bucket by length: sort, cut into batches of similar length, shuffle the batch order."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    return groups


# ----------------------------------------------------------------------------------------- decode


def decode_logits(logits: np.ndarray, lengths: np.ndarray, beam: int = 1) -> List[List[str]]:
    from .decode.ctc import ctc_greedy_decode, ctc_prefix_beam_search
    if beam <= 1:
        ids = ctc_greedy_decode(logits, lengths, blank=BLANK)
    else:
        ids = ctc_prefix_beam_search(logits, lengths, beam_size=beam, blank=BLANK)
    return [[VOCAB[i] for i in seq] for seq in ids]


def score(model: CTCBLSTM, feats: List[np.ndarray], refs: List[List[str]], *, beam: int = 1, batch_size: int = 16):
    """PER after folding hypotheses and references to 39 phones."""
    hyps: List[List[str]] = [None] * len(feats)  # type: ignore
    for idx in batches([f.shape[0] for f in feats], batch_size, None):
        x, lengths = pad_batch([feats[i] for i in idx])
        logits, out_len, _ = model.forward(x, lengths)
        for i, h in zip(idx, decode_logits(logits, out_len, beam)):
            hyps[i] = h
    return error_rate([fold_phones(r) for r in refs], [fold_phones(h) for h in hyps]), hyps


# ----------------------------------------------------------------------------------------- train


class NonFiniteLoss(RuntimeError):
    """Raised when a batch gives a NaN/inf loss or gradient; names the utterances."""


def train(cfg: TrainConfig, *, resume: bool = False) -> dict:
    """Run the recipe; returns a summary dict (dev/test PER, epochs, time)."""
    from tqdm import tqdm
    t_start = time.perf_counter()
    exp = Path(cfg.exp_dir)
    exp.mkdir(parents=True, exist_ok=True)
    tr_utts, tr_feats = load_split(cfg.data_dir, "train", exp / "feats", limit=cfg.max_train_utts,
                                   progress=cfg.progress)
    dv_utts, dv_feats = load_split(cfg.data_dir, "dev", exp / "feats", limit=cfg.max_dev_utts, progress=cfg.progress)
    stats = CmvnStats()
    for f in tr_feats:
        stats.accumulate(f)
    stats.save(exp / "cmvn.npz")
    cmvn = (stats.mean, stats.var)  # the same normalise() that decoding and transcription use
    tr_x = [normalise(f, cmvn) for f in tr_feats]
    dv_x = [normalise(f, cmvn) for f in dv_feats]
    tr_y = [phone_ids(u.phone_labels) for u in tr_utts]
    dv_refs = [u.phone_labels for u in dv_utts]

    mcfg = CTCBLSTMConfig(input_dim=tr_x[0].shape[1], vocab_size=len(VOCAB), hidden=cfg.hidden,
                          num_layers=cfg.num_layers, stack=cfg.stack, dropout=cfg.dropout)
    model = CTCBLSTM(mcfg, rng=np.random.default_rng(cfg.seed))
    opt = Adam(model.params, lr=cfg.lr)
    drop_rng = np.random.default_rng([cfg.seed, 1])
    history: List[dict] = []
    epoch0, best, bad_epochs, lr = 0, float("inf"), 0, cfg.lr
    ckpt = exp / "checkpoint.npz"
    resume_batch, partial = 0, [0.0, 0, 0]
    if resume and ckpt.exists():
        params, opt_state, meta = load_checkpoint(ckpt)
        for k in model.params:
            model.params[k][...] = params[k]
        opt.load_state_dict(opt_state)
        drop_rng.bit_generator.state = meta["drop_rng"]
        epoch0, best, bad_epochs, lr, history = meta["epoch"], meta["best"], meta["bad_epochs"], meta["lr"], meta["history"]
        resume_batch, partial = meta.get("batch", 0), meta.get("partial", [0.0, 0, 0])
        print(f"resumed from {ckpt} at epoch {epoch0}")

    def save(path: Path, epoch: int, batch: int = 0, partial=(0.0, 0, 0)) -> None:
        """``epoch`` finished epochs plus ``batch`` finished batches of the next one (an interruption)."""
        meta = dict(config=asdict(cfg), model=model.config_dict(), vocab=list(VOCAB), epoch=epoch, best=best,
                    batch=batch, partial=list(partial),
                    bad_epochs=bad_epochs, lr=lr, history=history, drop_rng=drop_rng.bit_generator.state)
        params = dict(model.params)
        params["frontend.cmvn_mean"], params["frontend.cmvn_var"] = stats.mean, stats.var
        save_checkpoint(path, params, optimizer_state=opt.state_dict(), meta=meta)

    # Ctrl-C (SIGINT) only raises a flag; the batch in flight finishes, then a resumable checkpoint is
    # written and KeyboardInterrupt propagates. Nothing is saved half-updated.
    interrupted = []
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        previous_handler = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    epoch = epoch0
    try:
        for epoch in range(epoch0, cfg.epochs):
            if cfg.max_minutes and (time.perf_counter() - t_start) / 60 > cfg.max_minutes:
                print(f"time budget of {cfg.max_minutes} min reached before epoch {epoch + 1}")
                break
            opt.lr = lr
            order = batches([x.shape[0] for x in tr_x], cfg.batch_size, np.random.default_rng([cfg.seed, epoch]))
            tot_loss, tot_frames, tot_utts, t0 = 0.0, 0, 0, time.perf_counter()
            skip = 0
            if epoch == epoch0 and resume_batch:
                (tot_loss, tot_frames, tot_utts), skip = partial, resume_batch
            bar = tqdm(order, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress, leave=False)
            for done, idx in enumerate(bar):
                if done < skip:  # finished before the interruption we resume from
                    continue
                x, lengths = pad_batch([tr_x[i] for i in idx])
                ys = [tr_y[i] for i in idx]
                targets = np.zeros((len(idx), max(len(y) for y in ys)), np.int64)
                for j, y in enumerate(ys):
                    targets[j, :len(y)] = y
                tlen = np.array([len(y) for y in ys])
                logits, out_len, cache = model.forward(x, lengths, rng=drop_rng)
                loss, lcache = ctc_loss(logits, targets, out_len, tlen, blank=BLANK, reduction="none",
                                        zero_infinity=True)
                if not np.all(np.isfinite(loss)):
                    bad = [tr_utts[i].id for i, v in zip(idx, loss) if not np.isfinite(v)]
                    raise NonFiniteLoss(f"non-finite CTC loss for utterance(s) {bad} in epoch {epoch + 1}")
                dlogits = ctc_loss_backward(np.full(len(idx), 1.0 / len(idx), np.float32), lcache)
                model.zero_grad()
                model.backward(dlogits.astype(np.float32), cache)
                try:
                    clip_grad_norm(model.grads, cfg.clip)
                except ValueError as e:
                    raise NonFiniteLoss(f"non-finite gradient in the batch {[tr_utts[i].id for i in idx]}: {e}")
                opt.step(model.grads)
                tot_loss += float(loss.sum())
                tot_frames += int(lengths.sum())
                tot_utts += len(idx)
                bar.set_postfix(loss=f"{tot_loss / tot_utts:.2f}",
                                fps=f"{tot_frames / (time.perf_counter() - t0):.0f}")
                if interrupted:
                    save(ckpt, epoch, done + 1, (tot_loss, tot_frames, tot_utts))
                    raise KeyboardInterrupt
            dev, _ = score(model, dv_x, dv_refs, beam=cfg.beam)
            improved = dev.rate < best
            if improved:
                best, bad_epochs = dev.rate, 0
            else:
                bad_epochs += 1
                if cfg.lr_halving:
                    lr *= 0.5
            rec = dict(epoch=epoch + 1, train_loss=tot_loss / tot_utts, dev_per=dev.rate, lr=opt.lr,
                       seconds=time.perf_counter() - t0, frames_per_s=tot_frames / (time.perf_counter() - t0))
            history.append(rec)
            print(f"epoch {epoch + 1}: train loss/utt {rec['train_loss']:.2f}  dev PER {100 * dev.rate:.2f}% "
                  f"(S {dev.substitutions} D {dev.deletions} I {dev.insertions})  {rec['seconds']:.0f}s "
                  f"{rec['frames_per_s']:.0f} frames/s{'  *best*' if improved else ''}")
            save(ckpt, epoch + 1)
            if improved:
                save(exp / "best.npz", epoch + 1)
            _write_logs(exp, history)
            if bad_epochs >= cfg.patience:
                print(f"early stop: dev PER did not improve for {bad_epochs} epochs")
                break
    except KeyboardInterrupt:
        print(f"interrupted: {ckpt} holds the state after the last finished batch; continue with --resume")
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    return dict(epochs=len(history), best_dev_per=best, minutes=(time.perf_counter() - t_start) / 60,
                history=history, exp_dir=str(exp))


def _write_logs(exp: Path, history: List[dict]) -> None:
    with open(exp / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)
    (exp / "log.json").write_text(json.dumps(history, indent=1))


def load_model(path: str):
    """A checkpoint written by :func:`train` -> (model, cmvn CmvnStats-like (mean, var), meta)."""
    params, _, meta = load_checkpoint(path)
    mean, var = params.pop("frontend.cmvn_mean"), params.pop("frontend.cmvn_var")
    model = CTCBLSTM(CTCBLSTMConfig(**meta["model"]), params={k: v for k, v in params.items()})
    return model, (mean, var), meta


def normalise(feats: np.ndarray, cmvn) -> np.ndarray:
    mean, var = cmvn
    return ((feats - mean) / np.sqrt(np.maximum(var, 1e-10))).astype(np.float32)


def evaluate(checkpoint: str, data_dir: str, split: str = "core_test", *, beam: int = 1,
             progress: bool = True) -> Dict:
    model, cmvn, meta = load_model(checkpoint)
    utts = read_corpus(data_dir, split)
    from tqdm import tqdm
    feats = [normalise(utterance_features(u.wav_path), cmvn) for u in tqdm(utts, desc=f"decode {split}",
                                                                          disable=not progress)]
    er, hyps = score(model, feats, [u.phone_labels for u in utts], beam=beam)
    return dict(split=split, utterances=len(utts), per=er.rate, errors=er.errors, ref_tokens=er.ref_tokens,
                substitutions=er.substitutions, deletions=er.deletions, insertions=er.insertions,
                examples=[(u.id, " ".join(fold_phones(u.phone_labels)), " ".join(fold_phones(h)))
                          for u, h in list(zip(utts, hyps))[:3]])


def transcribe(checkpoint: str, paths: List[str], *, beam: int = 1) -> List[List[str]]:
    model, cmvn, _ = load_model(checkpoint)
    out = []
    for p in paths:
        x = normalise(utterance_features(p), cmvn)[None]
        logits, out_len, _ = model.forward(x, np.array([x.shape[1]]))
        out.append(decode_logits(logits, out_len, beam)[0])
    return out
