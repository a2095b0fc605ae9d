"""What the two language models (``lstm_lm``, ``gpt_lm``) share: sentence framing, the loss, ``score``,
``perplexity`` and generation through the step interface. Equations: docs/equations/lm.md.

A language model assigns a sentence ``y = y_1 .. y_S`` (ids ``1 .. V-1``) the probability

    log P(y) = sum_{s=1}^{S+1} log P(y_s | y_0 .. y_{s-1}),   y_0 = <sos> = 0,  y_{S+1} = <eos> = 0

[lm:chain]. The network reads the inputs ``0 y_1 .. y_S`` and predicts the targets ``y_1 .. y_S 0``
[lm:shift]; the training loss is the negative of that sum (cross-entropy, reduction "none",
scratchasr/losses/cross_entropy.py), per sentence, ``<eos>`` included; perplexity is
``exp(total loss / (total S + number of sentences))`` [lm:ppl].

``decode`` for a language model: there is no audio; each row's ``targets`` is a prompt (possibly
empty) and ``decode`` returns the model's most probable continuation of it, up to ``<eos>`` or
``max_tokens`` new tokens: greedy (argmax at every step) or a beam search over whole continuations
(``beam_size`` hypotheses, finished ones ranked by total log-probability including ``<eos>``). It never
samples, so it is deterministic. The continuation excludes the prompt and ``<eos>``.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Tuple

import numpy as np

from .._validate import length_mask, positive_int
from ..data.batch import Batch
from ..losses.cross_entropy import cross_entropy_loss, cross_entropy_loss_backward
from .base import Model, check_batch, gather_state

__all__ = ["LanguageModel", "frame_sentences", "LMLossCache"]


def frame_sentences(targets: np.ndarray, target_lengths: np.ndarray
                    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """targets (B, S), lengths (B,) -> inputs ``0 y`` (B, S+1), outputs ``y 0`` (B, S+1), lengths + 1
    [lm:shift].

    Padding of ``targets`` may hold anything: it is replaced by 0 before use.
    """
    B, S = targets.shape
    y = np.where(length_mask(target_lengths, S), targets, 0).astype(np.int64)   # (B, S) padding -> 0
    zero = np.zeros((B, 1), np.int64)
    inputs = np.concatenate([zero, y], axis=1)                          # (B, S+1) <sos> y  [lm:shift]
    outputs = np.concatenate([y, zero], axis=1)                         # (B, S+1) y <eos>; y[L] = 0
    return inputs, outputs, target_lengths.astype(np.int64) + 1


class LMLossCache(NamedTuple):
    xent: object          # CrossEntropyCache of losses.cross_entropy_loss
    dtype: np.dtype       # the logits' dtype


class LanguageModel(Model):
    """Base of the registered LMs: subclasses define ``logits(inputs, lengths)`` (caches pushed in training),
    ``backward_logits(dlogits)``, ``init_state`` and ``step``."""

    IS_LM = True
    DECODE_MAX_TOKENS = 50

    # ------------------------------------------------------------------ contract
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        _, _, y, yl = check_batch(batch, input_dim=None, vocab_size=self.vocab_size, need_feats=False)
        y = y[:, : int(yl.max(initial=0))]                  # columns past every length are padding only
        inputs, outputs, lengths = frame_sentences(y, yl)
        logits = self.logits(inputs, lengths)                                         # (B, S+1, V)
        nll, cache = cross_entropy_loss(logits, outputs, lengths, reduction="none")   # [lm:chain]
        self.push(LMLossCache(cache, logits.dtype))
        stats = dict(loss=float(nll.sum()), utterances=float(len(nll)), tokens=float(lengths.sum()))
        return nll, stats

    def backward(self, dloss: np.ndarray) -> None:
        cache: LMLossCache = self.pop()
        dloss = self._check_dloss(dloss, cache.xent.shape[0])
        dlogits = cross_entropy_loss_backward(dloss, cache.xent).astype(cache.dtype, copy=False)
        self.backward_logits(dlogits)
        return None

    def score(self, batch: Batch) -> np.ndarray:
        """(B,) float64 total log-probability ``log P(y_1 .. y_S <eos>)`` of each row [lm:chain]."""
        was = self.training
        self.eval()
        try:
            nll, _ = self.forward_loss(batch)
        finally:
            self.train(was)
        return -np.asarray(nll, dtype=np.float64)

    def perplexity(self, sequences: List[List[int]], *, batch_size: int = 32) -> float:
        """``exp(-sum log P / (tokens + sentences))`` over id sequences (``<eos>`` counted) [lm:ppl]."""
        from ..data.batch import bucket_batches, make_batch
        batch_size = positive_int("batch_size", batch_size)
        total, n = 0.0, 0
        for idx in bucket_batches([len(s) for s in sequences], batch_size, None):
            b = make_batch(None, [sequences[i] for i in idx])
            total += float(self.score(b).sum())
            n += int(b.target_lengths.sum()) + len(idx)
        return math.exp(-total / max(n, 1))                                           # [lm:ppl]

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, max_tokens: int = DECODE_MAX_TOKENS) -> List[List[int]]:
        """The most probable continuation of each row's targets (a prompt); see the module docstring.

        ``lm``/``lm_weight`` fuse a second language model (``log P + lm_weight log P_lm``)."""
        beam_size = self._check_decode_args(method, beam_size)
        max_tokens = positive_int("max_tokens", max_tokens, minimum=0)
        _, _, y, yl = check_batch(batch, input_dim=None, vocab_size=self.vocab_size, need_feats=False)
        was = self.training
        self.eval()
        try:
            out = []
            for b in range(y.shape[0]):
                prompt = [int(t) for t in y[b, : yl[b]]]
                width = 1 if method == "greedy" else beam_size
                out.append(self._generate(prompt, width, max_tokens, lm, float(lm_weight)))
            return out
        finally:
            self.train(was)

    # ------------------------------------------------------------------ generation
    def _advance(self, states, tokens, lm, lm_weight):
        """One step of this model (and of the fused ``lm``): (B,) tokens -> (B, V) scores, states."""
        lp, s0 = self.step(states[0], tokens)
        lp = np.asarray(lp, np.float64)
        if lm is None or lm_weight == 0.0:
            return lp, (s0, None)
        lp2, s1 = lm.step(states[1], tokens)
        return lp + lm_weight * np.asarray(lp2, np.float64), (s0, s1)      # [lm:fusion]

    def _generate(self, prompt: List[int], width: int, max_tokens: int, lm, lm_weight: float) -> List[int]:
        use_lm = lm is not None and lm_weight != 0.0
        states = (self.init_state(1), lm.init_state(1) if use_lm else None)
        lp = None
        for t in [0] + prompt:                        # <sos> then the prompt: the history of the continuation
            lp, states = self._advance(states, np.array([t]), lm if use_lm else None, lm_weight)
        alive = [((), 0.0)]                           # (continuation, score) per row of `states`
        finished: List[Tuple[tuple, float]] = []
        for n in range(max_tokens + 1):
            cand = [(sc + lp[r, c], toks, c, r) for r, (toks, sc) in enumerate(alive)
                    for c in (range(self.vocab_size) if n < max_tokens else (0,))]  # <eos> forced at the end
            cand.sort(key=lambda z: (-z[0], z[1] + (z[2],)))            # score down, ties by tokens
            keep = []
            for sc, toks, c, r in cand[:width]:                          # the best `width` extensions
                if c == 0:
                    finished.append((toks, sc))                          # <eos>: a finished continuation
                else:
                    keep.append((sc, toks, c, r))
            best_done = max((f[1] for f in finished), default=-math.inf)
            keep = [k for k in keep if k[0] > best_done]       # log-probs only fall: they cannot win
            if not keep:
                break
            idx = np.array([k[3] for k in keep])
            states = (gather_state(states[0], idx), gather_state(states[1], idx))
            alive = [(toks + (c,), sc) for sc, toks, c, _ in keep]
            lp, states = self._advance(states, np.array([k[2] for k in keep]), lm if use_lm else None,
                                       lm_weight)
        if not finished:                              # every continuation has probability 0
            return []
        finished.sort(key=lambda f: (-f[1], f[0]))
        return [int(t) for t in finished[0][0]]
