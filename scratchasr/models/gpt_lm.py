"""A small decoder-only transformer language model (Radford et al. 2018/2019, GPT and GPT-2; the layout of
Karpathy's nanoGPT ``model.py`` and llm.c ``train_gpt2.c``), registered as ``"gpt_lm"``, with every
backward written by hand from this project's ops.

    inputs 0 y_1 .. y_S -> h_0 = W_tok[y_t] + W_pos[t]                        [lm:gpt-embed]
    L blocks (pre-norm):  a = h + MHA(LN_1(h), causal mask)                    [lm:gpt-block] [lm:gpt-causal]
                          h = a + W_2 GELU(W_1 LN_2(a) + b_1) + b_2            [lm:gelu]
    logits = LN_f(h_L) W_tok^T   (the output layer is the token embedding)    [lm:gpt-tied]
    loss = cross-entropy against y_1 .. y_S 0   (id 0: <sos> input, <eos> target; docs/equations/lm.md)

Options: hidden (128) the model width E; num_layers (2) blocks; heads (4) attention heads (must divide
hidden); ff (0 = 4 hidden) feed-forward width; dropout (0.0) on the attention and feed-forward outputs
before each residual sum, training only; max_len (128) positions (a sentence holds at most max_len - 1
tokens, <eos> takes the last position). Parameters: ``tok.W`` (V, E) (embedding AND output layer),
``pos.W`` (max_len, E), ``blocks.<l>.{ln1,attn,ln2,fc1,fc2}.*``, ``ln_f.*``.

Incremental decoding (the step interface) keeps a key/value cache [lm:gpt-kv-cache]:
``GPTState(k, v (B, L, heads, max_len, E/heads), pos (B,))``: the keys and values of every token fed so
far in each layer (zeros beyond ``pos``), so ``step`` computes only the new position, attending to the
cached keys ``0 .. pos``; its log-probabilities equal the full forward's row ``pos`` (tests/models/
test_lm.py). The cache has a fixed size so that hypotheses of different lengths stack into one batch
(the CTC prefix beam search stacks them); ``pos`` marks each row's length.
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import int_array, positive_int
from ..nn.attention import MultiHeadAttention
from ..nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear
from ..nn.module import Module, ModuleList
from ..ops.attention import causal_mask, padding_mask, sdpa_forward
from ..ops.gelu import gelu_forward
from ..ops.linear import linear_backward, linear_forward
from ..ops.norm import layer_norm_forward
from ..ops.softmax import log_softmax_forward
from ._lm import LanguageModel
from .base import register

__all__ = ["GPTLM", "GPTState", "GELU", "Block"]

INIT_STD = 0.02   # GPT-2's N(0, 0.02) for the token and position embeddings


class GPTState(NamedTuple):
    k: np.ndarray     # (B, L, heads, max_len, dk) keys of the tokens fed so far (zero beyond pos)
    v: np.ndarray     # (B, L, heads, max_len, dk) their values
    pos: np.ndarray   # (B,) int64 number of tokens fed so far (the position of the next one)


class Block(Module):
    """Pre-norm block: causal self-attention and a GELU feed-forward, each in a residual [lm:gpt-block]."""

    def __init__(self, E: int, heads: int, F: int, *, dropout: float, seed: int, dtype) -> None:
        super().__init__()
        self.ln1 = LayerNorm(E, dtype=dtype)
        self.attn = MultiHeadAttention(E, heads, seed=seed, dtype=dtype)
        self.ln2 = LayerNorm(E, dtype=dtype)
        self.fc1 = Linear(E, F, rng=np.random.default_rng([seed, 1]), dtype=dtype)
        self.act = GELU()
        self.fc2 = Linear(F, E, rng=np.random.default_rng([seed, 2]), dtype=dtype)
        self.drop1 = Dropout(dropout, rng=np.random.default_rng([seed, 3]))
        self.drop2 = Dropout(dropout, rng=np.random.default_rng([seed, 4]))

    def forward(self, x, lengths, mask):
        a = x + self.drop1(self.attn(self.ln1(x, lengths), None, mask))                    # [lm:gpt-block]
        f = self.fc2(self.act(self.fc1(self.ln2(a, lengths), lengths), lengths), lengths)
        return a + self.drop2(f)                                                           # [lm:gpt-block]

    def backward(self, dy):
        df = self.drop2.backward(dy)                       # residual: dy reaches a directly and through f
        da = dy + self.ln2.backward(self.fc1.backward(self.act.backward(self.fc2.backward(df))))
        return da + self.ln1.backward(self.attn.backward(self.drop1.backward(da)))

    def step(self, x: np.ndarray, K: np.ndarray, V: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """One new position per row (eval): x (B, E); K, V (B, heads, max_len, dk) written at ``pos``
        (the caller's copies) -> (B, E) [lm:gpt-kv-cache]."""
        B, E = x.shape
        H = self.attn.H
        p = self.attn.params
        a, _ = layer_norm_forward(x, self.ln1.params["gamma"], self.ln1.params["beta"], eps=self.ln1.eps)
        q = (a @ p["W_q"].T + p["b_q"]).reshape(B, H, 1, E // H)                           # [attn:proj]
        rows = np.arange(B)
        K[rows, :, pos] = (a @ p["W_k"].T + p["b_k"]).reshape(B, H, E // H)                # the new key
        V[rows, :, pos] = (a @ p["W_v"].T + p["b_v"]).reshape(B, H, E // H)                # and value
        allowed = (np.arange(K.shape[2])[None, :] <= pos[:, None])[:, None, None, :]       # keys 0 .. pos
        o, _ = sdpa_forward(q, K, V, allowed)                                              # (B, H, 1, dk)
        x = x + o.reshape(B, E) @ p["W_o"].T + p["b_o"]                                    # [attn:mha-out]
        m, _ = layer_norm_forward(x, self.ln2.params["gamma"], self.ln2.params["beta"], eps=self.ln2.eps)
        g, _ = gelu_forward(m @ self.fc1.params["W"].T + self.fc1.params["b"])             # [lm:gelu]
        return x + g @ self.fc2.params["W"].T + self.fc2.params["b"]                        # [lm:gpt-block]


@register("gpt_lm")
class GPTLM(LanguageModel):
    """Decoder-only transformer LM with tied input/output embedding; see the module docstring."""

    OPTIONS = dict(hidden=128, num_layers=2, heads=4, dropout=0.0, ff=0, max_len=128)

    def __init__(self, *, input_dim, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 heads: int, dropout: float, ff: int, max_len: int) -> None:
        super().__init__()
        E = positive_int("hidden", hidden)
        positive_int("num_layers", num_layers)
        positive_int("heads", heads)
        if E % heads:
            raise ValueError(f"heads: expected a divisor of hidden={E}, got {heads}")
        F = positive_int("ff", ff, minimum=0) or 4 * E
        self.max_len = positive_int("max_len", max_len, minimum=2)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.vocab_size, self.dtype, self.heads = vocab_size, np.dtype(dtype), heads
        self.tok = Embedding(vocab_size, E, rng=np.random.default_rng([seed, 1]), dtype=dtype)
        self.pos = Embedding(self.max_len, E, rng=np.random.default_rng([seed, 2]), dtype=dtype)
        for emb in (self.tok, self.pos):
            emb.params["W"][...] *= INIT_STD
        self.blocks = ModuleList(Block(E, heads, F, dropout=float(dropout), seed=seed * 1000 + 10 + i,
                                       dtype=dtype) for i in range(num_layers))
        self.ln_f = LayerNorm(E, dtype=dtype)

    # ------------------------------------------------------------------ the network
    def logits(self, inputs: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """inputs (B, T) ids, lengths (B,) -> logits (B, T, V); caches pushed in training."""
        B, T = inputs.shape
        if lengths.size and lengths.max() > self.max_len:
            raise ValueError(f"batch.targets: expected at most max_len - 1 = {self.max_len - 1} tokens per "
                             f"sentence (<eos> takes the last position), got {lengths.max() - 1}")
        positions = np.broadcast_to(np.arange(T), (B, T))
        x = self.tok(inputs, lengths) + self.pos(positions, lengths)                        # [lm:gpt-embed]
        mask = causal_mask(T) & padding_mask(lengths, T, queries=True)                      # [lm:gpt-causal]
        for blk in self.blocks:
            x = blk(x, lengths, mask)
        h = self.ln_f(x, lengths)                                                           # (B, T, E)
        logits, cache = linear_forward(h, self.tok.params["W"], None)                       # [lm:gpt-tied]
        self.push(cache)
        return logits

    def backward_logits(self, dlogits: np.ndarray) -> None:
        dh, dW = linear_backward(dlogits, self.pop())
        self.tok.grads["W"] += dW                          # the output use of W_tok   [lm:gpt-tied-back]
        dx = self.ln_f.backward(dh)
        for blk in reversed(list(self.blocks)):
            dx = blk.backward(dx)
        self.pos.backward(dx)
        self.tok.backward(dx)                              # ... plus its input use   [lm:gpt-tied-back]

    # ------------------------------------------------------------------ step interface
    def init_state(self, batch_size: int) -> GPTState:
        B = positive_int("batch_size", batch_size, minimum=0)
        E = self.tok.params["W"].shape[1]
        shape = (B, len(self.blocks), self.heads, self.max_len, E // self.heads)
        return GPTState(np.zeros(shape, self.dtype), np.zeros(shape, self.dtype), np.zeros(B, np.int64))

    def step(self, state: GPTState, tokens) -> Tuple[np.ndarray, GPTState]:
        """tokens (B,) int64 (0 = <sos>) -> log_probs (B, V) float64 (column 0 = <eos>), new state.

        The new position's keys and values go into copies of the cache (the input state is untouched:
        a beam search keeps it for other hypotheses) [lm:gpt-kv-cache]."""
        return self._step(state, tokens)

    def _step(self, state: GPTState, tokens, offset: int = 0) -> Tuple[np.ndarray, GPTState]:
        """``step`` with the token at cache slot ``pos`` given position embedding ``pos - offset``:
        ``offset`` = k for a soft prompt filling slots 0..k-1 (models/prompt_tuning.py), whose slots must
        then be in [k, max_len)."""
        if not isinstance(state, GPTState):
            raise TypeError(f"state: expected a GPTState (from init_state), got {type(state).__name__}")
        B = state.pos.shape[0]
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {self.vocab_size}), got min {tokens.min()} "
                             f"max {tokens.max()}")
        pos = state.pos
        if offset and pos.size and (pos.max() >= self.max_len or pos.min() < offset):
            raise ValueError(f"state: expected cache slots in [{offset}, {self.max_len}) (from init_state), "
                             f"got {pos.min()} .. {pos.max()}")
        if pos.size and pos.max() >= self.max_len:
            raise ValueError(f"state: a row already holds max_len = {self.max_len} tokens; no position left")
        x = self.tok.params["W"][tokens] + self.pos.params["W"][pos - offset]  # [lm:gpt-embed] [prompt:input]
        K, V = state.k.copy(), state.v.copy()
        for i, blk in enumerate(self.blocks):
            x = blk.step(x, K[:, i], V[:, i], pos)         # K[:, i] is a view: the block writes into K
        h, _ = layer_norm_forward(x, self.ln_f.params["gamma"], self.ln_f.params["beta"], eps=self.ln_f.eps)
        logits = h @ self.tok.params["W"].T                                                 # [lm:gpt-tied]
        log_probs, _ = log_softmax_forward(logits.astype(np.float64))                   # [ops:log-softmax]
        return log_probs, GPTState(K, V, pos + 1)
