"""RNN transducer (RNN-T) recognizer, registered as ``"transducer"``.

References: Graves 2012, "Sequence Transduction with Recurrent Neural Networks" (arXiv:1211.3711);
Graves, Mohamed & Hinton 2013, "Speech recognition with deep recurrent neural networks" (the TIMIT
transducer, its joint network ``W_out tanh(W_enc h + W_pred g + b)`` and "PreTrans": an encoder
initialised from a trained CTC network); Yu et al. 2021, "FastEmit" (arXiv:2010.11148); NeMo's
fused joint + loss over sub-batches (``fuse_loss_wer``), which the chunking below follows.
Equations: docs/equations/transducer.md (section "transducer model") and docs/equations/rnnt.md.

    x (B, T, D) --FrameStack k--> --LSTM (bi or uni)--> h (B, T', E) --W_enc, b--> f (B, T', J)
    [0, y_1 .. y_U] --Embedding--> --LSTM--> p (B, U+1, P) --W_pred--> g (B, U+1, J)
    z[b, t, u] = W_out tanh(f[b, t] + g[b, u]) + b_out          (B, T', U+1, V) logits
    loss = rnnt_loss(z, y)   (blank = id 0, FastEmit lambda, gradient clamp)

Parameters: ``encoder.*`` (nn.LSTM, the same names as ctc_blstm's encoder, so PreTrans copies them),
``embed.W``, ``predictor.*`` (nn.LSTM), ``joint_enc.W``/``joint_enc.b`` (W_enc, b),
``joint_pred.W`` (W_pred), ``joint_out.W``/``joint_out.b`` (W_out, b_out).

Memory. The joint's activations are (B, T', U+1, J) and its logits (B, T', U+1, V). ``forward_loss``
computes joint + loss + the joint's backward for ``joint_chunk`` utterances at a time (0: the whole
batch at once) [transducer:chunk]: the lattice-sized arrays of one chunk are freed before the next, and
only per-utterance gradients of ``f``, ``g``, ``W_out`` and ``b_out`` (for a unit ``dloss``) are kept;
``backward(dloss)`` scales them by ``dloss[b]`` (the loss is per utterance and its gradient is linear
in ``dloss[b]``, clamp included, since clamping acts before the scale).

Options (``models.build("transducer", ..., **options)``):
    hidden (256) encoder LSTM cells per direction; num_layers (2) encoder layers; dropout (0.0) between
    LSTM layers (encoder and prediction network), training only; stack (1) frame stacking factor;
    bidirectional (True): False gives a causal encoder (streaming, decode/transducer.py);
    pred_hidden (128) embedding size and prediction LSTM cells; pred_layers (1); joint_dim (256) J;
    fastemit_lambda (0.0); clamp (-1.0: off); joint_chunk (0: whole batch) utterances per joint chunk;
    pretrained_encoder (""): path of a ctc_blstm checkpoint (scratchasr.io.save_checkpoint) whose
    ``encoder.*`` arrays initialise the encoder (PreTrans), see :func:`load_pretrained_encoder`;
    pretrained_predictor (""): path of a checkpoint whose ``embed.*`` and ``predictor.*`` arrays
    initialise the prediction network, e.g. one written after :func:`pretrain_prediction_network`
    (the prediction network trained as a label language model, [transducer:pred-lm]).

Decoding (scratchasr/decode/transducer.py): ``method="greedy"`` (``max_symbols_per_frame``),
``"beam"`` (the one-symbol-per-frame modified beam search of k2/icefall) and ``"graves"`` (Graves 2012
beam search with prefix merging), each with shallow fusion (``lm``, ``lm_weight``) and a
``length_reward``. Decoders drive the model only through

    state = model.init_state(B)            # prediction-network state before any label
    g, state = model.step(state, tokens)   # tokens (B,) int64 (0 = <sos>); g (B, J) = W_pred p_u
    log_probs = model.joint_step(f, g)     # f (N, J) encoder rows, g (N, J) -> (N, V) float64
    f, lengths = model.encode(x, x_lengths)          # offline encoder output f (B, T', J)
    f, enc_state = model.encode_chunk(x, enc_state)  # causal encoder on a chunk, states carried

so ``step`` returns the prediction vector entering the joint, not log-probabilities: a transducer's
output distribution needs an encoder frame too, which ``joint_step`` takes.
"""

from __future__ import annotations

import os
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .._validate import float_array, int_array, positive_int
from ..data.batch import Batch
from ..losses import cross_entropy_loss, cross_entropy_loss_backward, rnnt_loss, rnnt_loss_backward
from ..nn.layers import Embedding, Linear
from ..nn.lstm import LSTM
from ..nn.stack import FrameStack, stack_frames
from ..ops.lstm import lstm_forward, lstm_step_forward
from .base import Model, check_batch, register

__all__ = ["Transducer", "JointCache", "joint_forward", "joint_backward", "load_pretrained_encoder",
           "load_pretrained_predictor", "pretrain_prediction_network",
           "PredState", "EncoderState"]

BLANK = 0


# ---------------------------------------------------------------------------------------- the joint
class JointCache(NamedTuple):
    s: np.ndarray      # (B, T, U+1, J) tanh(f_t + g_u), the joint's hidden activations
    W_out: np.ndarray  # (V, J)


def joint_forward(f: np.ndarray, g: np.ndarray, W_out: np.ndarray, b_out: np.ndarray
                  ) -> Tuple[np.ndarray, JointCache]:
    """Joint network over the lattice: f (B, T, J), g (B, U+1, J), W_out (V, J), b_out (V,)
    -> z (B, T, U+1, V).

    ``f`` already holds ``W_enc h_t + b`` and ``g`` holds ``W_pred p_u``. [transducer:joint]
    """
    s = f[:, :, None, :] + g[:, None, :, :]          # (B, T, U+1, J) broadcast sum   [transducer:joint]
    np.tanh(s, out=s)                                 # in place: one lattice-sized hidden array
    z = s @ W_out.T                                   # (B, T, U+1, V)                [transducer:joint]
    z += b_out
    return z, JointCache(s, W_out)


def joint_backward(dz: np.ndarray, cache: JointCache, *, per_utterance: bool = False):
    """Backward of :func:`joint_forward`: dz (B, T, U+1, V) -> (df (B, T, J), dg (B, U+1, J), dW_out, db_out).

    ``dW_out`` is (V, J) and ``db_out`` (V,), or (B, V, J) and (B, V) per utterance with
    ``per_utterance=True`` (what the chunked loss keeps until ``dloss`` is known).
    [transducer:joint-back] [transducer:sum-u] [transducer:sum-t] [transducer:dweights]
    """
    s, W_out = cache.s, cache.W_out
    B, T, U1, J = s.shape
    V = W_out.shape[0]
    da = dz @ W_out                                   # (B, T, U+1, J) dL/ds     [transducer:joint-back]
    one_minus = s * s
    np.subtract(1, one_minus, out=one_minus)
    da *= one_minus                                   # dL/da = dL/ds (1 - s^2)  [transducer:joint-back]
    del one_minus
    df = da.sum(axis=2)                               # (B, T, J) sum over u            [transducer:sum-u]
    dg = da.sum(axis=1)                               # (B, U+1, J) sum over t          [transducer:sum-t]
    del da
    dz2 = dz.reshape(B, T * U1, V)
    s2 = s.reshape(B, T * U1, J)
    if per_utterance:
        dW_out = np.matmul(dz2.transpose(0, 2, 1), s2)  # (B, V, J)                     [transducer:dweights]
        db_out = dz2.sum(axis=1)                        # (B, V)
    else:
        dW_out = dz2.reshape(-1, V).T @ s2.reshape(-1, J)  # (V, J)                     [transducer:dweights]
        db_out = dz2.sum(axis=(0, 1))
    return df, dg, dW_out, db_out


# ------------------------------------------------------------------------------------ states
class PredState(NamedTuple):
    """Prediction-network state (the step interface), batch first."""
    h: np.ndarray   # (B, L, P) hidden state of each prediction LSTM layer
    c: np.ndarray   # (B, L, P) cell state


class EncoderState(NamedTuple):
    """Causal encoder state carried between chunks (unidirectional encoders only), batch first."""
    h: np.ndarray   # (B, L, H)
    c: np.ndarray   # (B, L, H)


class LMCache(NamedTuple):
    joint: JointCache     # joint over (B, 1, U+1) with the encoder term replaced by its bias
    xent: object          # CrossEntropyCache of the next-label loss


class TransducerCache(NamedTuple):
    df: np.ndarray        # (B, T', J) dL_b/df for a unit dloss[b] (zero past each length)
    dg: np.ndarray        # (B, U+1, J) dL_b/dg for a unit dloss[b]
    dW_out: np.ndarray    # (B, V, J) dL_b/dW_out per utterance
    db_out: np.ndarray    # (B, V) dL_b/db_out per utterance
    feasible: np.ndarray  # (B,) bool: at least one encoder frame
    dtype: np.dtype


def _copy_from_checkpoint(path, option: str, modules: Dict[str, object]) -> List[str]:
    """Copy the arrays ``<prefix>.*`` of a checkpoint into each module of ``modules`` (prefix -> module):
    every parameter and buffer of the module and of its sub-modules, by dotted name (an LSTM's flat
    weights, a Conformer encoder's blocks and batch-norm statistics)."""
    from ..io import load_checkpoint
    params, _, _ = load_checkpoint(path)
    where = f"checkpoint {os.fspath(path)!r}"
    found, targets = {}, {}
    for prefix, module in modules.items():
        arrays = {k[len(prefix) + 1:]: v for k, v in params.items() if k.startswith(prefix + ".")}
        if not arrays:
            raise ValueError(f"{option}: {where} holds no {prefix}.* arrays")
        targets[prefix] = {sub + k: a for sub, m in module.named_modules()
                           for store in (m.params, m.buffers) for k, a in store.items()}
        missing = sorted(set(targets[prefix]) - set(arrays))
        if missing:
            raise ValueError(f"{option}: {where} lacks {prefix}.{missing[0]} (layers or directions differ)")
        found[prefix] = arrays
    for prefix in modules:          # names and shapes of every module checked before any write
        for k, v in found[prefix].items():
            if k not in targets[prefix] or np.shape(v) != targets[prefix][k].shape:
                want = targets[prefix][k].shape if k in targets[prefix] else "no such parameter"
                raise ValueError(f"{option}: {where}: {prefix}.{k} has shape {np.shape(v)}, expected {want}")
    for prefix in modules:
        for k, v in found[prefix].items():
            targets[prefix][k][...] = v  # in place, cast to the model's dtype: optimizers hold these arrays
    return sorted(f"{p}.{k}" for p in found for k in found[p])


def load_pretrained_encoder(model: "Transducer", path) -> List[str]:
    """PreTrans (Graves et al. 2013): copy every ``encoder.*`` array of a checkpoint into ``model.encoder``.

    ``path``: a file written by ``scratchasr.io.save_checkpoint`` (e.g. a ctc_blstm ``best.npz``). The
    encoders must agree in input size (features x stack), hidden size, layers and directions; every
    name and shape is checked before anything is written. Returns the copied names. [transducer:pretrans]
    """
    return _copy_from_checkpoint(path, "pretrained_encoder", {"encoder": model.encoder})


def load_pretrained_predictor(model: "Transducer", path) -> List[str]:
    """Copy ``embed.*`` and ``predictor.*`` of a checkpoint (a prediction network pre-trained as an LM)."""
    modules = {"embed": model.embed, "predictor": model.predictor}
    return _copy_from_checkpoint(path, "pretrained_predictor", modules)


def pretrain_prediction_network(model: "Transducer", sequences: Sequence[Sequence[int]], *, epochs: int = 1,
                                lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
                                max_minutes: float = 0.0) -> List[float]:
    """Train the prediction network as a label LM on ``sequences`` (label id lists) [transducer:pred-lm].

    Adam on ``embed``, ``predictor``, ``joint_pred``, ``joint_out`` and the joint bias through
    :meth:`Transducer.lm_forward_loss`; returns the mean loss per label (</s> included) of each epoch.
    """
    from ..data.batch import make_batch
    from ..optim import Adam
    epochs = positive_int("epochs", epochs)
    batch_size = positive_int("batch_size", batch_size)
    seqs = [list(s) for s in sequences]
    if not seqs:
        raise ValueError("sequences: expected at least one label sequence")
    trained = ("embed", "predictor", "joint_pred", "joint_out")
    names = [k for k in model.parameters() if k.split(".")[0] in trained]
    names.append("joint_enc.b")
    P, G = model.parameters(), model.gradients()
    opt = Adam({k: P[k] for k in names}, lr=lr)
    rng = np.random.default_rng(seed)
    history, t0 = [], time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = rng.permutation(len(seqs))
        total = count = 0.0
        for s0 in range(0, len(seqs), batch_size):
            idx = order[s0:s0 + batch_size]
            batch = make_batch(None, [seqs[i] for i in idx])
            model.zero_grad()
            loss, _ = model.lm_forward_loss(batch)
            model.lm_backward(np.ones(len(idx)))
            opt.step({k: G[k] for k in names})
            total += float(loss.sum())
            count += float(batch.target_lengths.sum() + len(idx))
        history.append(total / count)
        if max_minutes and time.perf_counter() - t0 > 60 * max_minutes:
            break
    return history


def _check_prob(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a probability in [0, 1), got {value!r}")
    return float(value)


@register("transducer")
class Transducer(Model):
    """Encoder + prediction network + joint network, RNN-T loss; see the module docstring."""

    INIT_ONLY = ("pretrained_encoder", "pretrained_predictor")
    OPTIONS = dict(hidden=256, num_layers=2, dropout=0.0, stack=1, bidirectional=True, pred_hidden=128,
                   pred_layers=1, joint_dim=256, fastemit_lambda=0.0, clamp=-1.0, joint_chunk=0,
                   pretrained_encoder="", pretrained_predictor="")
    TEST_OPTIONS = dict(pred_hidden=5, joint_dim=7, joint_chunk=1)

    def __init__(self, *, input_dim: int, vocab_size: int, dtype, seed: int, hidden: int, num_layers: int,
                 dropout: float, stack: int, bidirectional: bool, pred_hidden: int, pred_layers: int,
                 joint_dim: int, fastemit_lambda: float, clamp: float, joint_chunk: int,
                 pretrained_encoder: str, pretrained_predictor: str) -> None:
        super().__init__()
        positive_int("hidden", hidden)
        positive_int("num_layers", num_layers)
        positive_int("pred_hidden", pred_hidden)
        positive_int("pred_layers", pred_layers)
        positive_int("joint_dim", joint_dim)
        self.joint_chunk = positive_int("joint_chunk", joint_chunk, minimum=0)
        dropout = _check_prob("dropout", dropout)
        if not isinstance(bidirectional, bool):
            raise TypeError(f"bidirectional: expected True or False, got {bidirectional!r}")
        for name, v in (("fastemit_lambda", fastemit_lambda), ("clamp", clamp)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ValueError(f"{name}: expected a finite number, got {v!r}")
        if fastemit_lambda < 0:
            raise ValueError(f"fastemit_lambda: expected a number >= 0, got {fastemit_lambda!r}")
        for name, v in (("pretrained_encoder", pretrained_encoder),
                        ("pretrained_predictor", pretrained_predictor)):
            if not isinstance(v, (str, os.PathLike)):
                raise TypeError(f"{name}: expected a path or '', got {v!r}")
        self.fastemit_lambda, self.clamp = float(fastemit_lambda), float(clamp)
        self.input_dim, self.vocab_size, self.dtype = input_dim, vocab_size, np.dtype(dtype)
        self.bidirectional = bidirectional
        self.stack = FrameStack(stack)
        self.encoder = LSTM(input_dim * self.stack.k, hidden, num_layers=num_layers,
                            bidirectional=bidirectional, dropout=dropout, seed=seed, dtype=dtype)
        self.embed = Embedding(vocab_size, pred_hidden, rng=np.random.default_rng([seed, 3]), dtype=dtype)
        self.predictor = LSTM(pred_hidden, pred_hidden, num_layers=pred_layers, dropout=dropout,
                              seed=seed + 1000, dtype=dtype)
        self.joint_enc = Linear(self.encoder.output_size, joint_dim, rng=np.random.default_rng([seed, 4]),
                                dtype=dtype)
        self.joint_pred = Linear(pred_hidden, joint_dim, bias=False, rng=np.random.default_rng([seed, 5]),
                                 dtype=dtype)
        self.joint_out = Linear(joint_dim, vocab_size, rng=np.random.default_rng([seed, 6]), dtype=dtype)
        if pretrained_encoder:
            load_pretrained_encoder(self, pretrained_encoder)
        if pretrained_predictor:
            load_pretrained_predictor(self, pretrained_predictor)

    # ------------------------------------------------------------------ encoder and prediction network
    def _encoder_out(self, x: np.ndarray, lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        xs, out_len = self.stack(x, lengths)
        h = self.encoder(xs, out_len)                             # (B, T', E)    [transducer:encoder]
        return self.joint_enc(h, out_len), out_len                # f = W_enc h + b, 0 past out_len

    def _prediction_out(self, y: np.ndarray, y_len: np.ndarray) -> np.ndarray:
        B = y.shape[0]
        tokens = np.concatenate([np.zeros((B, 1), np.int64), y], axis=1)  # (B, U+1): <sos>=0, y_1..y_U
        p_len = y_len + 1
        e = self.embed(tokens, p_len)                             # (B, U+1, P)   [transducer:prediction]
        p = self.predictor(e, p_len)                              # (B, U+1, P)   [transducer:prediction]
        return self.joint_pred(p, p_len)                          # g = W_pred p, 0 past U_b + 1

    def encode(self, x: np.ndarray, x_lengths: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Offline encoder output ``f (B, T', J)`` and its lengths, without caches (decoding)."""
        was = self.training
        self.eval()
        try:
            return self._encoder_out(x, x_lengths)
        finally:
            self.train(was)

    def encoder_init_state(self, batch_size: int) -> EncoderState:
        """Zero states of the causal encoder for :meth:`encode_chunk`."""
        B = positive_int("batch_size", batch_size)
        L, H = self.encoder.num_layers, self.encoder.hidden_size
        return EncoderState(np.zeros((B, L, H), self.dtype), np.zeros((B, L, H), self.dtype))

    def encode_chunk(self, x: np.ndarray, state: EncoderState) -> Tuple[np.ndarray, EncoderState]:
        """Causal encoder on a chunk: x (B, n, D) -> (f (B, ceil(n/k), J), new state) [transducer:stream].

        Feeding an utterance chunk by chunk (each chunk a multiple of ``stack`` frames except the last)
        gives the frames :meth:`encode` gives for the whole utterance: the LSTM states are carried.
        """
        if self.bidirectional:
            raise ValueError("model: encode_chunk needs a unidirectional encoder (bidirectional=False)")
        x = float_array("x", x, ndim=3, shape=(None, None, self.input_dim))
        if not isinstance(state, EncoderState):
            raise TypeError(f"state: expected an EncoderState, got {type(state).__name__}")
        B, n, _ = x.shape
        xs, L = stack_frames(x.astype(self.dtype, copy=False), np.full(B, n, np.int64), self.stack.k)
        P = self.encoder.params
        hs, cs = [], []
        inp = xs
        for layer in range(self.encoder.num_layers):
            s = f"_l{layer}"
            h0, c0 = state.h[:, layer], state.c[:, layer]                     # carried [transducer:stream]
            inp, (h_n, c_n), _ = lstm_forward(inp, L, h0, c0, P["W_ih" + s], P["W_hh" + s], P["b" + s])
            hs.append(h_n)
            cs.append(c_n)
        f = inp @ self.joint_enc.params["W"].T + self.joint_enc.params["b"]  # [transducer:joint]
        return f, EncoderState(np.stack(hs, axis=1), np.stack(cs, axis=1))

    def init_state(self, batch_size: int) -> PredState:
        """Prediction-network state before any label (feed token 0 = <sos> first, with :meth:`step`)."""
        B = positive_int("batch_size", batch_size, minimum=0)
        L, H = self.predictor.num_layers, self.predictor.hidden_size
        return PredState(np.zeros((B, L, H), self.dtype), np.zeros((B, L, H), self.dtype))

    def step(self, state: PredState, tokens) -> Tuple[np.ndarray, PredState]:
        """Feed the previous labels: tokens (B,) int64 (0 = <sos>) -> (g (B, J) = W_pred p, new state)."""
        if not isinstance(state, PredState):
            raise TypeError(f"state: expected a PredState (from init_state), got {type(state).__name__}")
        B = state.h.shape[0]
        tokens = int_array("tokens", tokens, ndim=1, shape=(B,))
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
            raise ValueError(f"tokens: expected ids in [0, {self.vocab_size}), got min {tokens.min()} "
                             f"max {tokens.max()}")
        P = self.predictor.params
        inp = self.embed.params["W"][tokens]                     # (B, P)        [transducer:prediction]
        hs, cs = [], []
        for layer in range(self.predictor.num_layers):
            s = f"_l{layer}"
            h, c, _ = lstm_step_forward(inp, state.h[:, layer], state.c[:, layer],  # [transducer:prediction]
                                        P["W_ih" + s], P["W_hh" + s], P["b" + s])
            hs.append(h)
            cs.append(c)
            inp = h
        g = inp @ self.joint_pred.params["W"].T                  # (B, J)
        return g, PredState(np.stack(hs, axis=1), np.stack(cs, axis=1))

    def joint_step(self, f: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Log-probabilities ``(N, V)`` float64 of the joint at N (frame, prefix) pairs: f, g (N, J)."""
        s = np.tanh(f + g)                                       # [transducer:joint]
        z = (s @ self.joint_out.params["W"].T + self.joint_out.params["b"]).astype(np.float64)
        m = z.max(axis=-1, keepdims=True)
        return z - (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))  # [rnnt:log-softmax]

    # ------------------------------------------------------------------ the chunked joint + loss
    def lattice_loss(self, f: np.ndarray, g: np.ndarray, y: np.ndarray, f_len: np.ndarray, y_len: np.ndarray,
                     *, need_grad: bool):
        """Per-utterance RNN-T loss from f (B, T', J), g (B, U+1, J), chunk by chunk [transducer:chunk].

        Returns ``(loss (B,), grads)`` where grads = (df, dg, dW_out (B, V, J), db_out (B, V)) for a unit
        dloss per utterance, or None without ``need_grad``.
        """
        B, T, J = f.shape
        V = self.vocab_size
        W_out, b_out = self.joint_out.params["W"], self.joint_out.params["b"]
        C = self.joint_chunk or max(B, 1)
        loss = np.zeros(B, f.dtype)
        grads = None
        if need_grad:
            grads = (np.zeros_like(f), np.zeros_like(g), np.zeros((B, V, J), f.dtype),
                     np.zeros((B, V), f.dtype))
        for s0 in range(0, B, C):
            sl = slice(s0, min(B, s0 + C))
            Tc, Uc = int(f_len[sl].max()), int(y_len[sl].max())   # trim the chunk's padding
            z, jcache = joint_forward(f[sl, :Tc], g[sl, :Uc + 1], W_out, b_out)
            nll, lcache = rnnt_loss(z, y[sl, :Uc], f_len[sl], y_len[sl], blank=BLANK, reduction="none",
                                    fastemit_lambda=self.fastemit_lambda, clamp=self.clamp)
            loss[sl] = nll
            if need_grad:
                dz = rnnt_loss_backward(np.ones(sl.stop - sl.start), lcache)  # unit dloss, scaled in backward
                del z, lcache                                     # the logits go before the joint's backward
                df, dg, dW, db = joint_backward(dz, jcache, per_utterance=True)
                grads[0][sl, :Tc] = df
                grads[1][sl, :Uc + 1] = dg
                grads[2][sl] = dW
                grads[3][sl] = db
            else:
                del z, lcache
            del jcache                                            # nothing lattice-sized outlives the chunk
        return loss, grads

    # ------------------------------------------------------------------ the prediction network as a label LM
    def lm_forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        """Label-LM loss of the prediction network (no audio): -sum_u log P(y_{u+1} | y_1..u), y_{U+1} = 0.

        The joint with the encoder term replaced by its bias ``b`` gives the next-label distribution,
        ``W_out tanh(b + W_pred p_u) + b_out``; id 0 (the blank) plays </s> [transducer:pred-lm].
        """
        _, _, y, yl = check_batch(batch, input_dim=None, vocab_size=self.vocab_size, need_feats=False)
        B, U = y.shape
        y = np.where(np.arange(U)[None, :] < yl[:, None], y, 1)
        g = self._prediction_out(y, yl)                                   # (B, U+1, J)
        f = np.broadcast_to(self.joint_enc.params["b"], (B, 1, g.shape[2])).copy()
        z, jcache = joint_forward(f, g, self.joint_out.params["W"], self.joint_out.params["b"])
        nxt = np.concatenate([y, np.zeros((B, 1), np.int64)], axis=1)      # targets y_1..y_U then </s> = 0
        nxt[np.arange(B), yl] = 0                                         # [transducer:pred-lm]
        nll, ccache = cross_entropy_loss(z[:, 0], nxt, yl + 1, reduction="none")
        if self.training:
            self.push(LMCache(jcache, ccache))
        return nll, dict(loss=float(nll.sum()), labels=float(yl.sum() + B))

    def lm_backward(self, dloss: np.ndarray) -> None:
        cache: LMCache = self.pop()
        dz = cross_entropy_loss_backward(dloss, cache.xent)[:, None]      # (B, 1, U+1, V)
        df, dg, dW, db = joint_backward(dz, cache.joint)                  # [transducer:sum-t]
        self.joint_out.grads["W"] += dW
        self.joint_out.grads["b"] += db
        self.joint_enc.grads["b"] += df.sum(axis=(0, 1))
        self.embed.backward(self.predictor.backward(self.joint_pred.backward(dg)))

    # ------------------------------------------------------------------ contract
    def forward_loss(self, batch: Batch) -> Tuple[np.ndarray, Dict[str, float]]:
        x, xl, y, yl = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                   dtype=self.dtype)
        y = np.where(np.arange(y.shape[1])[None, :] < yl[:, None], y, 1)  # padding: any valid id, never read
        f, f_len = self._encoder_out(x, xl)
        g = self._prediction_out(y, yl)
        feasible = f_len >= 1                                     # RNN-T needs one frame; any U fits
        nll, grads = self.lattice_loss(f, g, y, np.maximum(f_len, 1), yl, need_grad=self.training)
        loss = np.where(feasible, nll, np.inf)
        if self.training:
            self.push(TransducerCache(*grads, feasible=feasible, dtype=f.dtype))
        stats = dict(loss=float(np.sum(nll[feasible])), utterances=float(feasible.sum()),
                     frames=float(f_len.sum()), labels=float(yl.sum()))
        return loss, stats

    def backward(self, dloss: np.ndarray) -> np.ndarray:
        cache: TransducerCache = self.pop()
        dloss = self._check_dloss(dloss, cache.feasible.shape[0])
        w = np.where(cache.feasible, dloss, 0.0).astype(cache.dtype)  # skipped utterances: no gradient
        self.joint_out.grads["W"] += np.tensordot(w, cache.dW_out, axes=1)  # [transducer:dweights]
        self.joint_out.grads["b"] += w @ cache.db_out
        dp = self.joint_pred.backward(cache.dg * w[:, None, None])
        self.embed.backward(self.predictor.backward(dp))
        dh = self.joint_enc.backward(cache.df * w[:, None, None])
        return self.stack.backward(self.encoder.backward(dh))

    def decode(self, batch: Batch, *, method: str = "greedy", beam_size: int = 1, lm=None,
               lm_weight: float = 0.0, max_symbols_per_frame: int = 3,
               length_reward: float = 0.0, nbest: Optional[int] = None) -> List[List[int]]:
        """Greedy, ``"beam"`` (modified beam search, one symbol per frame) or ``"graves"`` (Graves 2012).
        With ``nbest`` (beam methods), each utterance gets its ``nbest`` best ``decode.transducer.Hypothesis``
        (tokens and scores, for n-best rescoring, scratchasr/decode/rescore.py) instead of one id list."""
        from ..decode import transducer as td
        beam_size = self._check_decode_args(method, beam_size, methods=("greedy", "beam", "graves"))
        if nbest is not None:
            nbest = positive_int("nbest", nbest)
            if method == "greedy":
                raise ValueError("nbest: n-best lists come from a beam search (method 'beam' or 'graves')")
        x, xl, _, _ = check_batch(batch, input_dim=self.input_dim, vocab_size=self.vocab_size,
                                  dtype=self.dtype)
        f, f_len = self.encode(x, xl)
        if method == "greedy":
            return td.greedy_search(self, f, f_len, max_symbols_per_frame=max_symbols_per_frame)
        out = []
        for b in range(f.shape[0]):
            fb = f[b, :f_len[b]]
            if method == "beam":
                hyps = td.modified_beam_search(self, fb, beam_size=beam_size, lm=lm, lm_weight=lm_weight,
                                               length_reward=length_reward, nbest=nbest)
            else:
                hyps = td.graves_beam_search(self, fb, beam_size=beam_size, lm=lm, lm_weight=lm_weight,
                                             length_reward=length_reward, nbest=nbest,
                                             max_symbols_per_frame=max_symbols_per_frame)
            out.append(list(hyps) if nbest is not None else list(hyps[0].tokens))
        return out

