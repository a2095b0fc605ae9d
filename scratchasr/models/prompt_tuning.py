"""Prompt tuning (Lester, Al-Rfou & Constant 2021, "The Power of Scale for Parameter-Efficient Prompt
Tuning"): a trained ``gpt_lm`` is frozen and ``k`` soft prompt vectors ``P (k, E)``, prepended to every
input, are the only trained numbers. Equations: docs/equations/prompt_tuning.md.

    h_0 = [P_1 .. P_k, W_tok[0] + W_pos[0], .., W_tok[y_S] + W_pos[S]]            [prompt:input]
    the frozen GPT's blocks and final norm on those k + S + 1 positions (causal)
    logits of the last S + 1 positions only (the prompt predicts nothing)          [prompt:loss]
    dL/dP_j = sum over the batch of dL/dh_0 at position j                          [prompt:grad]

The gradient reaching the prompt is the input gradient of the GPT's own hand-written backward (the same
blocks, the same caches): nothing new is derived except the slice ``[prompt:grad]``. The base model's
modules still add their parameter gradients into their ``grads`` on the way (the backward has to run
through them for the input gradient anyway); they are frozen because no optimizer is given them:
train with ``Adam(m.trainable_parameters())`` and ``opt.step(m.trainable_gradients())``.
``parameters()`` keeps the Module meaning (every array, the base's included, as ``lm.*`` plus
``prompt``), so checkpoints hold the whole model and the contract's gradient check covers both.

    lm, _ = scratchasr.inference.load("exp/lm/gpt_lm_phones/best.npz")
    m = PromptTunedLM(lm, prompt_length=8)                  # 8 x E trained numbers
    opt = Adam(m.trainable_parameters(), lr=3e-2)
    loss, _ = m.forward_loss(batch); m.zero_grad(); m.backward(np.ones_like(loss) / len(loss))
    opt.step(m.trainable_gradients())

Positions. The GPT has learned absolute position embeddings and always saw ``<sos>`` at position 0. By
default the tokens keep the positions 0 .. S they had in training and the prompt vectors get none (a
trained free vector would absorb a constant position vector anyway). ``shift_positions=True`` is the
literal reading of "prepend k vectors": prompt at positions 0 .. k-1, tokens shifted to k .. k+S, so
every token sits at a position embedding it never had there in training (the walkthrough measures what
that costs).

Initialisation (Lester et al. section 3.2): each prompt vector is a copy of the token embedding of a
token drawn at random (seeded) from the vocabulary's labels, so it starts inside the region of
embedding space the frozen model has seen.

The step interface (fusion, rescoring, ``decode``, ``perplexity``) works as for ``gpt_lm``:
``init_state`` runs the prompt through the key/value cache once [prompt:step], after which ``step`` is
the base model's own (positions continue at ``k``). A sentence may hold at most ``max_len - k - 1``
tokens.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

import numpy as np

from .._validate import positive_int
from ..ops.attention import causal_mask, padding_mask
from ..ops.linear import linear_backward, linear_forward
from ._lm import LanguageModel
from .gpt_lm import GPTLM, GPTState

__all__ = ["PromptTunedLM", "PromptCache"]


class PromptCache(NamedTuple):
    head: object      # LinearCache of the tied output layer on the S + 1 token positions
    k: int            # prompt length: the first k positions of the blocks' input are the prompt
    T: int            # token positions (S + 1)


class PromptTunedLM(LanguageModel):
    """A frozen :class:`GPTLM` with ``prompt_length`` trained input vectors; see the module docstring."""

    def __init__(self, lm: GPTLM, prompt_length: int, *, seed: int = 0,
                 shift_positions: bool = False) -> None:
        super().__init__()
        if not isinstance(lm, GPTLM):
            raise TypeError(f"lm: expected a gpt_lm model (GPTLM), got {type(lm).__name__}")
        k = positive_int("prompt_length", prompt_length)
        if k > lm.max_len - 2:
            raise ValueError(f"prompt_length: expected at most max_len - 2 = {lm.max_len - 2} (the base "
                             f"model's positions), got {k}")
        if not isinstance(shift_positions, bool):
            raise TypeError(f"shift_positions: expected a bool, got {shift_positions!r}")
        self.lm = lm                              # a child module: train()/eval()/caches follow it
        self.k, self.max_len, self.shift = k, lm.max_len, shift_positions
        self.vocab_size, self.dtype = lm.vocab_size, lm.dtype
        if hasattr(lm, "vocabulary"):
            self.vocabulary = lm.vocabulary
        W = lm.tok.params["W"]                                                  # (V, E)
        rows = np.random.default_rng(seed).integers(1, lm.vocab_size, size=k)   # label ids, never id 0
        self.add_param("prompt", W[rows].copy())                                # (k, E)
        self.config = dict(name="prompt_tuned", base=getattr(lm, "config", {}), prompt_length=k, seed=seed,
                           shift_positions=shift_positions)
        self.train(lm.training)

    # ------------------------------------------------------------------ what is trained
    def trainable_parameters(self) -> Dict[str, np.ndarray]:
        """The arrays an optimizer may update: the prompt only (the base model is frozen)."""
        return {"prompt": self.params["prompt"]}

    def trainable_gradients(self) -> Dict[str, np.ndarray]:
        return {"prompt": self.grads["prompt"]}

    def num_trainable(self) -> int:
        return int(self.params["prompt"].size)

    # ------------------------------------------------------------------ the network
    def logits(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """inputs (B, T) ids (``0 y_1 .. y_S``), lengths (B,) -> logits (B, T, V) of the token positions."""
        lm, k = self.lm, self.k
        B, T = inputs.shape
        if lengths.size and lengths.max() + k > self.max_len:
            raise ValueError(f"batch.targets: expected at most max_len - prompt_length - 1 = "
                             f"{self.max_len - k - 1} tokens per sentence, got {lengths.max() - 1}")
        L = lengths + k                                                     # (B,) positions per row
        P = np.broadcast_to(self.params["prompt"], (B, k, self.params["prompt"].shape[1]))
        if self.shift:                                                      # prompt 0..k-1, tokens k..k+S
            positions = np.broadcast_to(np.arange(k + T), (B, k + T))
            x = np.concatenate([P, lm.tok(inputs, lengths)], axis=1) + lm.pos(positions, L)  # [prompt:input]
        else:                                                               # tokens at 0..S, prompt none
            positions = np.broadcast_to(np.arange(T), (B, T))
            e = lm.tok(inputs, lengths) + lm.pos(positions, lengths)                       # (B, T, E)
            x = np.concatenate([P, e], axis=1)                                              # [prompt:input]
        mask = causal_mask(k + T) & padding_mask(L, k + T, queries=True)               # [lm:gpt-causal]
        for blk in lm.blocks:
            x = blk(x, L, mask)
        h = lm.ln_f(x, L)[:, k:]                                            # (B, T, E) token positions
        logits, head = linear_forward(h, lm.tok.params["W"], None)          # [prompt:loss] [lm:gpt-tied]
        self.push(PromptCache(head, k, T))
        return logits

    def backward_logits(self, dlogits: np.ndarray) -> None:
        cache: PromptCache = self.pop()
        lm, k = self.lm, cache.k
        dh, dW = linear_backward(dlogits, cache.head)
        lm.tok.grads["W"] += dW                                             # [lm:gpt-tied-back]
        B, _, E = dh.shape
        dx = lm.ln_f.backward(np.concatenate([np.zeros((B, k, E), dh.dtype), dh], axis=1))  # (B, k+T, E)
        for blk in reversed(list(lm.blocks)):
            dx = blk.backward(dx)
        lm.pos.backward(dx if self.shift else dx[:, k:])
        lm.tok.backward(dx[:, k:])
        self.grads["prompt"] += dx[:, :k].sum(axis=0)                       # [prompt:grad]

    # ------------------------------------------------------------------ step interface
    def init_state(self, batch_size: int) -> GPTState:
        """The base model's cache after the k prompt vectors (``pos == k``: cache slots) [prompt:step]."""
        B = positive_int("batch_size", batch_size, minimum=0)
        state = self.lm.init_state(B)
        K, V = state.k, state.v                                             # fresh arrays: ours to fill
        for j in range(self.k):
            pos = np.full(B, j, np.int64)
            p = self.params["prompt"][j] + (self.lm.pos.params["W"][j] if self.shift else 0)
            x = np.broadcast_to(p, (B, K.shape[-1] * self.lm.heads)).copy()  # [prompt:input]
            for i, blk in enumerate(self.lm.blocks):
                x = blk.step(x, K[:, i], V[:, i], pos)
        return GPTState(K, V, np.full(B, self.k, np.int64))

    def step(self, state: GPTState, tokens) -> Tuple[np.ndarray, GPTState]:
        """As ``GPTLM.step``, the token written at cache slot ``pos`` with position embedding ``pos - k``
        (``pos`` with ``shift_positions``) [prompt:step]."""
        if self.shift:
            return self.lm.step(state, tokens)              # slots and positions coincide
        return self.lm._step(state, tokens, offset=self.k)
