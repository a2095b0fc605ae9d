"""A decoder-only recognizer, registered as ``"decoder_only"``: acoustic frames become a prefix in the
embedding space of a GPT (scratchasr/models/gpt_lm.py), a separator follows, and the same decoder-only
transformer writes the transcript (the speech-LLM recipe at laptop scale). Equations and the backward:
docs/equations/decoder_only.md ([dec-only:*]).

References: Radford et al. 2018/2019 (GPT, GPT-2); Raffel et al. 2020 (T5's "prefix LM": bidirectional
attention within the prefix, causal after it); Liu, Li & Hakkani-Tur et al. / Chu et al. 2023
(Qwen-Audio), Tang et al. 2024 (SALMONN), Fathullah et al. 2024, "Prompting large language models with
speech recognition abilities" (an audio encoder's frames projected into an LLM's embedding space as a
prefix); Graves et al. 2006 and Watanabe et al. 2017 (the optional auxiliary CTC branch); Szegedy et al.
2016 (label smoothing).

    x (B, T, D) --FrameStack(k)--> Linear --(+ sinusoid)--> enc_layers bidirectional blocks --> LN
        --> e (B, P, Ee)                                                               [dec-only:encoder]
    prefix  p_t = W_proj e_t + b_proj, t < P_b  (into the GPT's E-dim embedding space) [dec-only:prefix]
    text    h_s = W_tok[u_s] + W_pos[s],  u = <sep>=0, y_1 .. y_S  (the GPT's own embeddings)
    row b   [p_0 .. p_{P_b-1}, h_0 .. h_{S_b}] packed contiguously, length P_b + S_b + 1 [dec-only:pack]
    GPT blocks with the prefix-LM mask, LN_f, tied output layer at the text positions only
    loss    CE(y_1 .. y_S <eos>) over the S_b + 1 text positions; prefix positions carry no loss
            (+ lambda CTC(W_ctc e, y) with ``ctc_weight`` > 0)                          [dec-only:loss]

The separator is the GPT's ``<sos>`` (id 0): the text half of every row is exactly what ``gpt_lm``
reads for a sentence ([lm:shift]), at the same positions 0 .. S, so a trained ``gpt_lm`` drops in as
the decoder (``init_gpt``) and the prefix only adds context in front of it. The prefix has no GPT
position embedding; its positions come from the encoder's sinusoid.

Attention mask (the choice, [dec-only:mask]): prefix positions attend to every prefix position of their
row (bidirectional, as in a prefix LM: an audio frame may use the frames after it) and to no text
position; text position s attends to the whole prefix and to text positions 0 .. s (causal).
``causal_prefix=True`` makes the prefix causal too (a plain GPT over the concatenation). Either way no
prefix position ever sees the text, so the prefix's keys and values are computed once per utterance
and the text is generated through a key/value cache ([dec-only:kv-cache]).

Options: hidden (128) GPT width E; num_layers (2) GPT blocks; heads (4); ff (0 = 4 hidden); dropout (0.0)
in every block; max_len (128) text positions (a transcript holds at most max_len - 1 labels); stack (4)
frames per prefix vector; enc_layers (2) bidirectional encoder blocks; enc_hidden (0 = hidden, even)
encoder width Ee; causal_prefix (False); label_smoothing (0.0); ctc_weight (0.0): lambda of an auxiliary
CTC loss on the encoder output (0: no branch, no parameters); init_gpt (""): path of a ``gpt_lm``
checkpoint whose ``tok``, ``pos``, ``blocks``, ``ln_f`` arrays initialise the decoder (vocabulary, hidden,
num_layers, heads, ff and max_len must match; the error names ``init_gpt``).

Decoding (scratchasr/decode/attention.py's searches, driven through the step interface):
``method="greedy"`` or ``"beam"``, ``lm``/``lm_weight`` (shallow fusion, [attn-dec:score]),
``max_len_ratio`` (1.5 labels per prefix vector at most, [attn-dec:max-len], never beyond max_len - 1),
``length_norm``, ``length_reward`` and ``ctc_weight`` (joint CTC/decoder scoring with the branch; default
0: the decoder alone); ``method="ctc"``: greedy CTC over the branch alone (what the encoder knows, without
the decoder). Step interface:

    memory = model.encode(batch)                   # DecoderOnlyMemory: the prefix's keys/values per layer
    state = model.init_state(B, memory=memory)     # DecoderOnlyState: the KV cache, positions
    log_probs, state = model.step(state, tokens)   # tokens (B,): 0 = the separator; column 0 = <eos>
"""

from __future__ import annotations

import os
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np

from .._validate import int_array, length_mask, positive_int
from ..data.batch import Batch
from ..decode.attention import attention_beam_search, attention_greedy_search, max_output_lengths
from ..decode.ctc import ctc_greedy_decode
from ..losses import cross_entropy_loss, cross_entropy_loss_backward, ctc_loss, ctc_loss_backward
from ..nn.layers import LayerNorm, Linear
from ..nn.module import Module, ModuleList
from ..nn.stack import FrameStack
from ..ops.attention import padding_mask, sinusoidal_positions
from ..ops.linear import linear_backward, linear_forward
from ..ops.norm import layer_norm_forward
from ..ops.softmax import log_softmax_forward
from .base import Model, check_batch, register
from .ctc_blstm import ctc_min_frames
from .gpt_lm import GPTLM, Block
from .seq2seq import check_probability, teacher_forcing

__all__ = ["DecoderOnly", "AudioEncoder", "DecoderOnlyMemory", "DecoderOnlyState", "prefix_lm_mask",
           "pack_forward", "pack_backward", "load_gpt_decoder"]

BLANK = SEP = EOS = 0


# ----------------------------------------------------------------------------- packing and the mask


class PackCache(NamedTuple):
    prefix_shape: tuple      # (B, P, E)
    text_shape: tuple        # (B, U, E)
    p_rows: np.ndarray       # (N_p,) row of every valid prefix vector
    p_cols: np.ndarray       # (N_p,) its column in the prefix (= in the packed row)
    t_rows: np.ndarray       # (N_t,) row of every valid text position
    t_cols: np.ndarray       # (N_t,) its column in the text
    t_packed: np.ndarray     # (N_t,) its column in the packed row: P_b + s


def pack_forward(prefix: np.ndarray, prefix_lengths: np.ndarray, text: np.ndarray,
                 text_lengths: np.ndarray) -> Tuple[np.ndarray, PackCache]:
    """prefix (B, P, E), text (B, U, E) -> x (B, T, E), T = max(P_b + U_b): row b holds its P_b prefix
    vectors then its U_b text vectors, zeros after [dec-only:pack]."""
    B, P, E = prefix.shape
    U = text.shape[1]
    T = int((prefix_lengths + text_lengths).max(initial=0))
    p_rows, p_cols = np.nonzero(length_mask(prefix_lengths, P))
    t_rows, t_cols = np.nonzero(length_mask(text_lengths, U))
    t_packed = prefix_lengths[t_rows] + t_cols
    x = np.zeros((B, T, E), np.result_type(prefix, text))
    x[p_rows, p_cols] = prefix[p_rows, p_cols]                                       # [dec-only:pack]
    x[t_rows, t_packed] = text[t_rows, t_cols]                                       # [dec-only:pack]
    return x, PackCache(prefix.shape, text.shape, p_rows, p_cols, t_rows, t_cols, t_packed)


def pack_backward(dx: np.ndarray, cache: PackCache) -> Tuple[np.ndarray, np.ndarray]:
    """dx (B, T, E) -> (dprefix (B, P, E), dtext (B, U, E)): the gather read backwards, zero at padding."""
    dprefix = np.zeros(cache.prefix_shape, dx.dtype)
    dtext = np.zeros(cache.text_shape, dx.dtype)
    dprefix[cache.p_rows, cache.p_cols] = dx[cache.p_rows, cache.p_cols]             # [dec-only:pack]
    dtext[cache.t_rows, cache.t_cols] = dx[cache.t_rows, cache.t_packed]
    return dprefix, dtext


def prefix_lm_mask(prefix_lengths: np.ndarray, lengths: np.ndarray, T: int, *,
                   causal_prefix: bool = False) -> np.ndarray:
    """(B, 1, T, T) bool: query i may attend key j of a packed row [dec-only:mask].

    Both valid (< lengths[b]); and j <= i (causal), or, unless ``causal_prefix``, j in the prefix
    (j < prefix_lengths[b]) while i is in it too or after it (every position sees the whole prefix; a
    prefix position sees no text since text positions come after it)."""
    valid = padding_mask(lengths, T, queries=True)                                   # (B, 1, T, T)
    j = np.arange(T)
    allowed = j[None, :] <= j[:, None]                                               # (T, T) causal
    if not causal_prefix:
        in_prefix = j[None, :] < prefix_lengths[:, None]                             # (B, T) key j
        allowed = allowed[None] | in_prefix[:, None, :]                              # [dec-only:mask]
        return valid & allowed[:, None]
    return valid & allowed[None, None]


# ----------------------------------------------------------------------------- encoder


class AudioEncoder(Module):
    """``forward(x (B, T, D), lengths) -> (e (B, P, Ee), P_lengths)``; ``backward(de) -> dx``.

    Frame stacking (k frames per vector), a linear layer, sinusoidal positions, ``layers`` pre-norm
    bidirectional blocks (gpt_lm's Block with a padding-only mask) and a final layer norm
    [dec-only:encoder]."""

    def __init__(self, input_dim: int, dim: int, *, stack: int, layers: int, heads: int, dropout: float,
                 seed: int, dtype) -> None:
        super().__init__()
        self.stack = FrameStack(stack)
        self.inp = Linear(input_dim * stack, dim, rng=np.random.default_rng([seed, 21]), dtype=dtype)
        self.blocks = ModuleList(Block(dim, heads, 4 * dim, dropout=dropout, seed=seed * 1000 + 500 + i,
                                       dtype=dtype) for i in range(layers))
        self.ln = LayerNorm(dim, dtype=dtype)
        self.dim = dim

    def output_lengths(self, lengths) -> np.ndarray:
        return self.stack.output_lengths(lengths)

    def forward(self, x, lengths):
        xs, L = self.stack(x, lengths)                                                  # (B, P, kD)
        h = self.inp(xs, L)                                                             # (B, P, Ee)
        P = h.shape[1]
        pos = sinusoidal_positions(P, self.dim, dtype=h.dtype)                          # [attn:sinusoid]
        h = h + np.where(length_mask(L, P)[:, :, None], pos[None], 0)                   # [dec-only:encoder]
        mask = padding_mask(L, P, queries=True)                                         # bidirectional
        for blk in self.blocks:
            h = blk(h, L, mask)                                                         # [lm:gpt-block]
        return self.ln(h, L), L

    def backward(self, de):
        dh = self.ln.backward(de)
        for blk in reversed(list(self.blocks)):
            dh = blk.backward(dh)
        return self.stack.backward(self.inp.backward(dh))  # the fixed positions take no gradient


# ----------------------------------------------------------------------------- the model


class DecoderOnlyMemory(NamedTuple):
    k: np.ndarray                        # (B, L, heads, P, dk) the prefix's keys per GPT layer (0: padding)
    v: np.ndarray                        # (B, L, heads, P, dk) its values
    lengths: np.ndarray                  # (B,) prefix lengths P_b
    ctc_log_probs: Optional[np.ndarray]  # (B, P, V) float64 log-posteriors of the CTC branch, or None


class DecoderOnlyState(NamedTuple):
    k: np.ndarray        # (B, L, heads, P + max_len, dk) keys: the prefix at 0 .. P_b - 1, then the text
    v: np.ndarray        # (B, L, heads, P + max_len, dk) values
    pos: np.ndarray      # (B,) int64 packed position of the next token (P_b + tokens fed so far)
    prefix: np.ndarray   # (B,) int64 P_b (so the text position is pos - prefix)


class DecoderOnlyCache(NamedTuple):
    pack: PackCache
    lengths: np.ndarray       # (B,) packed lengths P_b + S_b + 1
    head: object              # ops.linear LinearCache of the tied output layer at the text positions
    text_shape: tuple         # (B, S + 1, E)
    xent: object              # CrossEntropyCache
    ctc: Optional[object]     # CTCCache or None
    feasible: np.ndarray      # (B,) bool
    dtype: np.dtype


def load_gpt_decoder(model: "DecoderOnly", path, option: str = "init_gpt") -> List[str]:
    """Copy a ``gpt_lm`` checkpoint's ``tok``, ``pos``, ``blocks``, ``ln_f`` arrays into ``model.gpt``.

    Every name and shape is checked before anything is written; a mismatch (another vocabulary, width,
    depth, feed-forward width or max_len) raises ValueError naming ``option``. Returns the copied names."""
    from ..io import load_checkpoint
    params, _, meta = load_checkpoint(path)
    where = f"checkpoint {os.fspath(path)!r}"
    name = (meta.get("model") or {}).get("name")
    if name is not None and name != "gpt_lm":
        raise ValueError(f"{option}: {where} holds a {name!r} model, expected a 'gpt_lm' checkpoint")
    want = model.gpt.parameters()
    # the trainer also stores its front end (frontend.*) in checkpoints: only the LM's modules count
    params = {k: v for k, v in params.items() if k.split(".")[0] in ("tok", "pos", "blocks", "ln_f")}
    missing = sorted(set(want) - set(params))
    extra = sorted(set(params) - set(want))
    if missing or extra:
        raise ValueError(f"{option}: {where} does not match the decoder (num_layers="
                         f"{len(model.gpt.blocks)}): missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in want.items():
        if params[k].shape != v.shape:
            raise ValueError(f"{option}: {where}: {k} has shape {params[k].shape}, expected {v.shape} "
                             "(vocab_size, hidden, heads, ff and max_len must match the gpt_lm's)")
    for k, v in want.items():
        v[...] = params[k]                 # in place: the arrays optimizers hold
    return sorted(want)


@register("decoder_only")
class DecoderOnly(Model):
    """Audio prefix + GPT decoder; see the module docstring."""

    INIT_ONLY = ("init_gpt",)
    OPTIONS = dict(hidden=128, num_layers=2, heads=4, ff=0, dropout=0.0, max_len=128, stack=4, enc_layers=2,
                   enc_hidden=0, causal_prefix=False, label_smoothing=0.0, ctc_weight=0.0, init_gpt="")
    TEST_OPTIONS = dict(stack=2, enc_layers=1, ff=12, max_len=8, ctc_weight=0.3)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 heads: int, ff: int, dropout: float, max_len: int, stack: int, enc_layers: int,
                 enc_hidden: int, causal_prefix: bool, label_smoothing: float, ctc_weight: float,
                 init_gpt: str) -> None:
        super().__init__()
        positive_int("stack", stack)
        positive_int("enc_layers", enc_layers, minimum=0)
        Ee = positive_int("enc_hidden", enc_hidden, minimum=0) or positive_int("hidden", hidden)
        if Ee % 2:
            raise ValueError(f"enc_hidden: expected an even width (sinusoidal positions), got {Ee}")
        if Ee % heads:
            raise ValueError(f"heads: expected a divisor of enc_hidden={Ee}, got {heads}")
        if not isinstance(causal_prefix, bool):
            raise TypeError(f"causal_prefix: expected True or False, got {causal_prefix!r}")
        if not isinstance(init_gpt, (str, os.PathLike)):
            raise TypeError(f"init_gpt: expected a path or '', got {init_gpt!r}")
        self.label_smoothing = check_probability("label_smoothing", label_smoothing)
        self.ctc_weight = check_probability("ctc_weight", ctc_weight)
        self.causal_prefix = causal_prefix
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        # the decoder: a gpt_lm's modules (tok, pos, blocks, ln_f), so that its checkpoints load as they are
        self.gpt = GPTLM(input_dim=None, vocab_size=vocab_size, dtype=dtype, seed=seed, hidden=hidden,
                         num_layers=num_layers, heads=heads, dropout=dropout, ff=ff, max_len=max_len)
        E = hidden
        self.encoder = AudioEncoder(input_dim, Ee, stack=stack, layers=enc_layers, heads=heads,
                                    dropout=float(dropout), seed=seed, dtype=dtype)
        self.proj = Linear(Ee, E, rng=np.random.default_rng([seed, 22]), dtype=dtype)
        if self.ctc_weight > 0:
            self.ctc = Linear(Ee, vocab_size, rng=np.random.default_rng([seed, 23]), dtype=dtype)
        if init_gpt:
            load_gpt_decoder(self, init_gpt)

    # ------------------------------------------------------------------ the network
    def _logits(self, x, xl, y, yl):
        """Encoder, prefix, packed GPT, tied output at the text positions -> logits (B, S+1, V) and parts."""
        gpt = self.gpt
        if yl.size and yl.max() >= gpt.max_len:
            raise ValueError(f"batch.targets: expected at most max_len - 1 = {gpt.max_len - 1} labels per "
                             f"utterance (<eos> takes the last text position), got {yl.max()}")
        e, P_len = self.encoder(x, xl)                                               # [dec-only:encoder]
        prefix = self.proj(e, P_len)                                                 # [dec-only:prefix]
        inputs, outputs, U_len = teacher_forcing(y, yl)                  # <sep> y / y <eos>  [lm:shift]
        B, U = inputs.shape
        positions = np.broadcast_to(np.arange(U), (B, U))
        text = gpt.tok(inputs, U_len) + gpt.pos(positions, U_len)                   # [lm:gpt-embed]
        h, pack = pack_forward(prefix, P_len, text, U_len)                           # [dec-only:pack]
        lengths = P_len + U_len
        mask = prefix_lm_mask(P_len, lengths, h.shape[1], causal_prefix=self.causal_prefix)
        for blk in gpt.blocks:
            h = blk(h, lengths, mask)                                                # [dec-only:mask]
        h = gpt.ln_f(h, lengths)
        h_text = np.zeros(text.shape, h.dtype)
        h_text[pack.t_rows, pack.t_cols] = h[pack.t_rows, pack.t_packed]             # the text positions only
        logits, head = linear_forward(h_text, gpt.tok.params["W"], None)             # [lm:gpt-tied]
        return logits, e, P_len, outputs, U_len, pack, lengths, head

    def log_probs(self, batch: Batch) -> np.ndarray:
        """Teacher-forced full forward (no cache): (B, S+1, V) float64 log P(. | prefix, <sep> y_<s) at the
        text positions, 0 past each row's S_b + 1 (the reference the step interface is tested against)."""
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            logits, _, _, _, U_len, _, _, _ = self._logits(x, xl, y[:, : int(yl.max(initial=0))], yl)
        finally:
            self.train(was)
        lp, _ = log_softmax_forward(logits.astype(np.float64))                       # [ops:log-softmax]
        return np.where(length_mask(U_len, lp.shape[1])[:, :, None], lp, 0.0)

    # ------------------------------------------------------------------ contract
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        y = y[:, : int(yl.max(initial=0))]
        logits, e, P_len, outputs, U_len, pack, lengths, head = self._logits(x, xl, y, yl)
        B = logits.shape[0]
        ce, xent = cross_entropy_loss(logits, outputs, U_len, label_smoothing=self.label_smoothing,
                                      reduction="none")                              # [dec-only:loss]
        ce = ce.astype(np.float64)
        loss, feasible, ctc_cache, stats = ce, np.ones(B, bool), None, {}
        if self.ctc_weight > 0:
            lam = self.ctc_weight
            feasible = ctc_min_frames(y, yl) <= P_len
            nll, ctc_cache = ctc_loss(self.ctc(e, P_len), y, P_len, yl, blank=BLANK, reduction="none",
                                      zero_infinity=True)
            loss = np.where(feasible, (1 - lam) * ce + lam * nll, np.inf)             # [dec-only:loss]
            stats["ctc_loss"] = float(nll[feasible].sum())
        text_shape = logits.shape[:2] + (self.gpt.tok.params["W"].shape[1],)                # (B, S+1, E)
        self.push(DecoderOnlyCache(pack, lengths, head, text_shape, xent, ctc_cache, feasible, logits.dtype))
        stats.update(loss=float(loss[feasible].sum()), ce_loss=float(ce[feasible].sum()),
                     utterances=float(feasible.sum()), labels=float(U_len.sum()), frames=float(P_len.sum()))
        return loss, stats

    def backward(self, dloss: np.ndarray) -> np.ndarray:
        cache: DecoderOnlyCache = self.pop()
        dloss = self._check_dloss(dloss, cache.feasible.shape[0])
        dloss = np.where(cache.feasible, dloss, 0.0)
        lam = self.ctc_weight
        gpt = self.gpt
        dlogits = cross_entropy_loss_backward((1 - lam) * dloss, cache.xent).astype(cache.dtype, copy=False)
        dh_text, dW = linear_backward(dlogits, cache.head)
        gpt.tok.grads["W"] += dW                                    # output use of W_tok [lm:gpt-tied-back]
        pk = cache.pack
        B, U, E = cache.text_shape
        dh = np.zeros((B, int(cache.lengths.max(initial=0)), E), dh_text.dtype)     # prefix rows: no loss
        dh[pk.t_rows, pk.t_packed] = dh_text[pk.t_rows, pk.t_cols]                   # [dec-only:loss]
        dh = gpt.ln_f.backward(dh)
        for blk in reversed(list(gpt.blocks)):
            dh = blk.backward(dh)
        dprefix, dtext = pack_backward(dh, pk)                                       # [dec-only:pack]
        gpt.pos.backward(dtext)
        gpt.tok.backward(dtext)                                     # input use of W_tok [lm:gpt-tied-back]
        de = self.proj.backward(dprefix)
        if cache.ctc is not None:
            dctc = ctc_loss_backward(lam * dloss, cache.ctc).astype(cache.dtype, copy=False)
            de = de + self.ctc.backward(dctc)
        return self.encoder.backward(de)

    # ------------------------------------------------------------------ step interface
    def encode(self, batch: Batch) -> DecoderOnlyMemory:
        """The prefix's keys and values in every GPT layer (and the CTC log-posteriors); no caches.

        The prefix never attends to text ([dec-only:mask]), so running the blocks over the prefix alone
        gives its keys and values exactly as in the full forward [dec-only:kv-cache]."""
        x, xl, _, _ = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                  dtype=self.dtype)
        was = self.training
        self.eval()
        try:
            e, P_len = self.encoder(x, xl)
            h = self.proj(e, P_len)                                                  # (B, P, E)
            B, P, E = h.shape
            H = self.gpt.heads
            valid = length_mask(P_len, P)[:, None, :, None]                          # (B, 1, P, 1)
            mask = prefix_lm_mask(P_len, P_len, P, causal_prefix=self.causal_prefix)
            ks, vs = [], []
            for blk in self.gpt.blocks:
                p = blk.attn.params
                a, _ = layer_norm_forward(h, blk.ln1.params["gamma"], blk.ln1.params["beta"], eps=blk.ln1.eps)
                k = (a @ p["W_k"].T + p["b_k"]).reshape(B, P, H, E // H).transpose(0, 2, 1, 3)  # [attn:proj]
                v = (a @ p["W_v"].T + p["b_v"]).reshape(B, P, H, E // H).transpose(0, 2, 1, 3)
                ks.append(np.where(valid, k, 0))
                vs.append(np.where(valid, v, 0))
                h = blk(h, P_len, mask)                                              # [dec-only:mask]
            lp = None
            if self.ctc_weight > 0:
                lp, _ = log_softmax_forward(self.ctc(e, P_len).astype(np.float64))   # [ops:log-softmax]
        finally:
            self.train(was)
        shape = (B, len(ks), H, P, E // H)
        k = np.stack(ks, axis=1) if ks else np.zeros(shape, self.dtype)
        v = np.stack(vs, axis=1) if vs else np.zeros(shape, self.dtype)
        return DecoderOnlyMemory(k, v, P_len.astype(np.int64), lp)

    def init_state(self, batch_size: int, *, memory: DecoderOnlyMemory) -> DecoderOnlyState:
        """The cache holds the prefix (positions 0 .. P_b - 1) and room for max_len text positions."""
        B = positive_int("batch_size", batch_size)
        if not isinstance(memory, DecoderOnlyMemory) or memory.k.shape[0] != B:
            raise ValueError(f"memory: expected a DecoderOnlyMemory of {B} rows (model.encode(batch))")
        Bm, L, H, P, dk = memory.k.shape
        shape = (B, L, H, P + self.gpt.max_len, dk)
        k, v = np.zeros(shape, memory.k.dtype), np.zeros(shape, memory.v.dtype)
        k[:, :, :, :P], v[:, :, :, :P] = memory.k, memory.v
        return DecoderOnlyState(k, v, memory.lengths.copy(), memory.lengths.copy())

    def step(self, state: DecoderOnlyState, tokens) -> Tuple[np.ndarray, DecoderOnlyState]:
        """tokens (B,) int64 (0 = the separator first) -> log_probs (B, V) float64, new state.

        The new position's keys and values go into copies of the cache [dec-only:kv-cache]."""
        if not isinstance(state, DecoderOnlyState):
            raise TypeError(f"state: expected a DecoderOnlyState (from init_state), got "
                            f"{type(state).__name__}")
        B = state.pos.shape[0]
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {self.vocab_size}), got min {tokens.min()} "
                             f"max {tokens.max()}")
        gpt = self.gpt
        s = state.pos - state.prefix                                                 # text positions
        if s.size and s.max() >= gpt.max_len:
            raise ValueError(f"state: a row already holds max_len = {gpt.max_len} text positions")
        x = gpt.tok.params["W"][tokens] + gpt.pos.params["W"][s]                     # [lm:gpt-embed]
        K, V = state.k.copy(), state.v.copy()
        for i, blk in enumerate(gpt.blocks):
            x = blk.step(x, K[:, i], V[:, i], state.pos)  # keys 0 .. pos: the prefix + text so far
        h, _ = layer_norm_forward(x, gpt.ln_f.params["gamma"], gpt.ln_f.params["beta"], eps=gpt.ln_f.eps)
        logits = h @ gpt.tok.params["W"].T                                           # [lm:gpt-tied]
        log_probs, _ = log_softmax_forward(logits.astype(np.float64))                # [ops:log-softmax]
        return log_probs, state._replace(k=K, v=V, pos=state.pos + 1)

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, max_len_ratio: float = 1.5, length_norm: bool = False,
               length_reward: float = 0.0, ctc_weight: float = 0.0, nbest: Optional[int] = None) -> list:
        """Greedy or beam search over the step interface (see the module docstring); ``nbest`` (beam only)
        returns each utterance's ``nbest`` best ``AttentionHypothesis`` (for n-best LM rescoring)."""
        beam_size = self._check_decode_args(method, beam_size, methods=("greedy", "beam", "ctc"))
        if method == "ctc":                        # the auxiliary branch alone: a diagnostic of the encoder
            if self.ctc_weight == 0:
                raise ValueError("method: 'ctc' needs the CTC branch (train with ctc_weight > 0)")
            memory = self.encode(batch)
            return ctc_greedy_decode(memory.ctc_log_probs, memory.lengths, blank=BLANK)
        if nbest is not None:
            if method != "beam":
                raise ValueError(f"nbest: n-best lists come from the beam search (method='beam'), got "
                                 f"method={method!r}")
            nbest = positive_int("nbest", nbest)
        lam = check_probability("ctc_weight", ctc_weight)
        if lam > 0 and self.ctc_weight == 0:
            raise ValueError("ctc_weight: this model has no CTC branch (train it with ctc_weight > 0)")
        memory = self.encode(batch)
        max_len = np.minimum(max_output_lengths(memory.lengths, max_len_ratio),      # [attn-dec:max-len]
                             self.gpt.max_len - 1)
        B = memory.lengths.shape[0]
        if method == "greedy" and lam == 0:
            return attention_greedy_search(self, self.init_state(B, memory=memory), max_len, lm=lm,
                                           lm_weight=lm_weight)
        K = 1 if method == "greedy" else beam_size
        out = []
        for b in range(B):
            mem_b = DecoderOnlyMemory(memory.k[b:b + 1], memory.v[b:b + 1], memory.lengths[b:b + 1], None)
            ctc = None if lam == 0 else memory.ctc_log_probs[b, :memory.lengths[b]]
            hyps = attention_beam_search(self, self.init_state(1, memory=mem_b), beam_size=K,
                                         max_len=int(max_len[b]), lm=lm, lm_weight=lm_weight,
                                         ctc_log_probs=ctc, ctc_weight=lam, length_norm=length_norm,
                                         length_reward=length_reward, nbest=nbest or 1)
            out.append(hyps if nbest is not None else list(hyps[0].tokens) if hyps else [])
        return out
