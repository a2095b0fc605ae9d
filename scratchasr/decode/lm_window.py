"""Shallow fusion with a language model of finite context (``gpt_lm``): a sliding window kept after ``<sos>``.

A ``gpt_lm`` has ``max_len`` learned position embeddings, so a fresh state accepts ``W = max_len`` step
calls: ``<sos>`` and ``W - 1`` labels; it cannot say ``log P(. | y_1 .. y_n)`` for ``n >= W`` (its step
raises). A recognizer's hypotheses are not bounded by the LM: an attention decoder may emit up to
``ceil(max_len_ratio * encoder frames)`` labels, a CTC or transducer search one or more per frame. Three
ways out were possible: refuse before decoding whenever the search's length limit exceeds ``W - 1`` (that
refuses every utterance longer than ~``W`` encoder frames, although hypotheses almost never grow that
long), shorten the recognizer's length limit to fit the LM (that changes the acoustic search), or give the
LM a bounded context. We do the last, exactly where it is needed and nowhere else [lm:window]:

* while a hypothesis has at most ``W - 1`` labels, :class:`ContextWindowLM` is the LM itself (the same
  ``step``, the same numbers: its key/value cache grows as usual);
* beyond, the context is ``<sos>`` followed by the last ``W - 1`` labels, at positions ``0 .. W - 1``:
  the log-probabilities are those of a fresh forward over that window, and the state is the cache that
  fresh forward leaves. The sentence start stays as the first token, as in every training sentence (the
  "attention sink" of Xiao et al. 2023, "Efficient streaming language models with attention sinks",
  whose Figure 1 also shows why the window must be re-computed: with absolute position embeddings every
  cached key and value changes when the window slides). So each step past the limit costs a forward over
  ``W`` tokens instead of one position; ``window_steps`` counts them (rows x steps) so that experiments
  can report how often the approximation was used.

Every decoder that takes ``lm`` (CTC prefix beam search, the transducer's searches, the attention
decoders) and n-best rescoring wrap their LM with :func:`with_context_window`, so ``gpt_lm`` fusion never
fails in the middle of an utterance, never reads a position it has no embedding for and never returns NaN;
LMs of unbounded context (``lstm_lm``, the bigram) are returned unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from .._validate import int_array, length_mask, positive_int
from ..data.batch import Batch
from .._state import gather_state, scatter_state
from .vocab_map import VocabularyMappedLM

__all__ = ["ContextWindowLM", "WindowState", "context_positions", "with_context_window"]


class WindowState(NamedTuple):
    """The step-interface state of :class:`ContextWindowLM` (one row per hypothesis)."""

    inner: Any            # the wrapped LM's state after feeding the tokens of ``context``
    context: np.ndarray   # (B, W) int64 tokens in the LM's cache, in order (slot 0: <sos>); -1 = empty slot
    fed: np.ndarray       # (B,) int64 tokens fed since init_state, <sos> included (may exceed W)


def context_positions(lm) -> Optional[int]:
    """How many step calls a fresh state of ``lm`` accepts (``<sos>`` included); ``None`` when unbounded.

    An LM of finite context says so with ``max_len`` (``gpt_lm``); key/value-cache states record their
    used slots in ``pos`` (a soft prompt of ``k`` vectors, models/prompt_tuning.py, starts at ``pos = k``),
    so the answer is ``max_len - pos`` of a fresh state."""
    inner = lm.lm if isinstance(lm, VocabularyMappedLM) else lm
    max_len = getattr(inner, "max_len", None)
    if max_len is None:
        return None
    used = getattr(inner.init_state(1), "pos", None)
    return int(max_len) - (int(np.asarray(used)[0]) if used is not None else 0)


def with_context_window(lm):
    """``lm`` itself when its context is unbounded (or ``lm`` is None or already wrapped), else
    :class:`ContextWindowLM` (lm)."""
    if lm is None or isinstance(lm, ContextWindowLM):
        return lm
    if not (hasattr(lm, "init_state") and hasattr(lm, "step")):
        return lm                        # the searches' own checks name the argument
    return lm if context_positions(lm) is None else ContextWindowLM(lm)


class ContextWindowLM:
    """``lm`` (step interface, ``W = context_positions(lm)`` positions) with the window of [lm:window].

    ``step`` equals ``lm.step`` for every row that has fed at most ``W`` tokens (``<sos>`` included);
    past that, it returns the log-probabilities of a fresh forward over ``<sos>`` + the last ``W - 1``
    tokens. ``score(batch)`` is the sentence log-probability under the same rule (``lm.score`` itself for
    sentences of at most ``W - 1`` labels)."""

    IS_LM = True

    def __init__(self, lm, *, positions: Optional[int] = None) -> None:
        if not (hasattr(lm, "init_state") and hasattr(lm, "step")):
            raise TypeError(f"lm: expected a language model with init_state/step, got {type(lm).__name__}")
        W = context_positions(lm) if positions is None else positive_int("positions", positions, minimum=2)
        if W is None:
            raise ValueError(f"lm: {type(lm).__name__} has no max_len (its context is unbounded): no window "
                             f"needed")
        if W < 2:
            raise ValueError(f"lm: a fresh state accepts {W} step calls; a window needs at least 2")
        self.lm, self.positions = lm, W
        if hasattr(lm, "vocab_size"):    # the searches compare it with the recognizer's
            self.vocab_size = lm.vocab_size
        self.window_steps = 0            # rows x steps that needed a fresh forward over the window

    def init_state(self, batch_size: int) -> WindowState:
        B = positive_int("batch_size", batch_size, minimum=0)
        return WindowState(self.lm.init_state(B), np.full((B, self.positions), -1, np.int64),
                           np.zeros(B, np.int64))

    def _fresh(self, context: np.ndarray):
        """Log-probs and state after feeding ``context`` (R, W) to a fresh state [lm:window]."""
        state = self.lm.init_state(context.shape[0])
        lp = None
        for j in range(context.shape[1]):
            lp, state = self.lm.step(state, context[:, j])
        return np.asarray(lp, dtype=np.float64), state

    def step(self, state: WindowState, tokens) -> tuple:
        """tokens (B,) int64 -> (log_probs (B, V) float64, new :class:`WindowState`); the input state is
        never written."""
        if not isinstance(state, WindowState):
            raise TypeError(f"state: expected a WindowState (from init_state), got {type(state).__name__}")
        B, W = state.context.shape
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        full = state.fed >= W                                     # (B,) the cache has no free slot
        plain, slide = np.flatnonzero(~full), np.flatnonzero(full)
        context = state.context.copy()
        context[plain, state.fed[plain]] = tokens[plain]          # the new token takes the next slot
        context[slide] = np.concatenate([context[slide, :1], context[slide, 2:], tokens[slide, None]], axis=1)
        if slide.size == 0:                                       # the common case: the LM's own step
            lp, inner = self.lm.step(state.inner, tokens)
            return np.asarray(lp, dtype=np.float64), WindowState(inner, context, state.fed + 1)
        lp_s, inner_s = self._fresh(context[slide])                                       # [lm:window]
        self.window_steps += int(slide.size)
        if plain.size == 0:
            return lp_s, WindowState(inner_s, context, state.fed + 1)
        lp_p, inner_p = self.lm.step(gather_state(state.inner, plain), tokens[plain])
        lp = np.empty((B, lp_s.shape[1]))
        lp[plain], lp[slide] = np.asarray(lp_p, dtype=np.float64), lp_s
        inner = scatter_state(scatter_state(state.inner, plain, inner_p), slide, inner_s)
        return lp, WindowState(inner, context, state.fed + 1)

    def score(self, batch: Batch) -> np.ndarray:
        """(B,) ``log P(y <eos>)`` under the window rule [lm:chain] [lm:window]."""
        y = np.asarray(batch.targets, dtype=np.int64)
        lengths = np.asarray(batch.target_lengths, dtype=np.int64)
        out = np.zeros(y.shape[0])
        short = lengths <= self.positions - 1                     # fits: the LM's own score, exactly
        if short.any() and getattr(self.lm, "IS_LM", False):
            idx = np.flatnonzero(short)
            n = int(lengths[idx].max(initial=0))
            out[idx] = self.lm.score(Batch(None, None, y[idx, :n], lengths[idx]))
            rest = np.flatnonzero(~short)
        else:
            rest = np.arange(y.shape[0])
        if rest.size:                                             # through step, one token at a time
            lr = lengths[rest]
            S = int(lr.max())
            y_r = np.where(length_mask(lr, y.shape[1]), y[rest], 0)[:, :S]
            nxt_all = np.concatenate([y_r, np.zeros((rest.size, 1), np.int64)], axis=1)   # y then <eos>
            rows = np.arange(rest.size)
            state, total = self.init_state(rest.size), np.zeros(rest.size)
            prev = np.zeros(rest.size, np.int64)                  # <sos>
            for s in range(S + 1):
                lp, state = self.step(state, prev)
                nxt = np.where(s < lr, nxt_all[:, s], 0)                          # 0 = <eos> after the last
                total += np.where(s <= lr, lp[rows, nxt], 0.0)
                prev = nxt
            out[rest] = total
        return out

