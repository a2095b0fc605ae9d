"""BiLSTM-CTC acoustic model (Graves, Mohamed & Hinton 2013, "Speech recognition with deep recurrent
neural networks", the CTC baseline on TIMIT).

    x (B, T, D) --frame stacking k--> (B, T/k, k*D) --stacked BiLSTM--> (B, T/k, 2H) --linear--> logits (B, T/k, V)

Frame stacking (optional, ``stack > 1``) concatenates ``k`` consecutive frames and keeps every k-th
position: it divides the recurrent work by ``k`` (a 10 ms frame rate becomes 20 or 30 ms), which
still leaves more frames than phones. The output layer is ``y = h W^T + b`` (docs/equations/ops.md).
Parameters live in one dict with dotted names (``encoder.W_ih_l0``, ``output.W``) so that
checkpoints, the optimizer and finite-difference tests see every array by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, NamedTuple, Optional

import numpy as np

from .._validate import float_array, lengths_array
from ..nn.lstm import init_lstm_params, lstm_stack_backward, lstm_stack_forward

__all__ = ["CTCBLSTMConfig", "CTCBLSTM", "stack_frames", "unstack_frames_grad"]


@dataclass
class CTCBLSTMConfig:
    input_dim: int = 123
    vocab_size: int = 62  # blank + 61 TIMIT phones
    hidden: int = 256
    num_layers: int = 2
    stack: int = 1  # frame stacking / subsampling factor
    dropout: float = 0.0  # between LSTM layers, training only


def stack_frames(x: np.ndarray, lengths: np.ndarray, k: int):
    """(B, T, D) -> (B, ceil(T/k), k*D) by concatenating k consecutive frames; new lengths ceil(L/k).

    Frames past a length are replaced by zeros, so a partial last group is zero-padded.
    """
    B, T, D = x.shape
    if k == 1:
        return x, lengths
    Tk = -(-T // k)
    xp = np.zeros((B, Tk * k, D), x.dtype)
    xp[:, :T] = x * (np.arange(T)[None, :] < lengths[:, None])[:, :, None]  # padding is never read
    return xp.reshape(B, Tk, k * D), -(-lengths // k)


def unstack_frames_grad(dxs: np.ndarray, T: int, k: int, lengths: np.ndarray) -> np.ndarray:
    """Backward of :func:`stack_frames`: (B, ceil(T/k), k*D) -> (B, T, D), zero past each length."""
    if k == 1:
        return dxs * (np.arange(T)[None, :] < lengths[:, None])[:, :, None]
    B, Tk, kD = dxs.shape
    return dxs.reshape(B, Tk * k, kD // k)[:, :T] * (np.arange(T)[None, :] < lengths[:, None])[:, :, None]


class ModelCache(NamedTuple):
    T: int  # input frames before stacking
    in_lengths: np.ndarray  # (B,) input lengths
    lengths: np.ndarray  # (B,) output lengths
    h: np.ndarray  # (B, T', 2H) encoder output (input of the output layer)
    encoder: object  # StackCache of nn.lstm


class CTCBLSTM:
    """The model: ``params`` and ``grads`` dicts with dotted names, functional forward/backward."""

    def __init__(self, config: CTCBLSTMConfig, *, rng: Optional[np.random.Generator] = None,
                 dtype=np.float32, params: Optional[Dict[str, np.ndarray]] = None):
        self.config = config
        if params is None:
            rng = rng if rng is not None else np.random.default_rng(0)
            enc = init_lstm_params(rng, input_size=config.input_dim * config.stack, hidden_size=config.hidden,
                                   num_layers=config.num_layers, bidirectional=True, dtype=dtype)
            params = {f"encoder.{k}": v for k, v in enc.items()}
            a = 1.0 / np.sqrt(2 * config.hidden)
            params["output.W"] = rng.uniform(-a, a, (config.vocab_size, 2 * config.hidden)).astype(dtype)
            params["output.b"] = np.zeros(config.vocab_size, dtype)
        self.params = params
        self.grads = {k: np.zeros_like(v) for k, v in params.items()}

    def config_dict(self) -> dict:
        return asdict(self.config)

    def output_lengths(self, lengths: np.ndarray) -> np.ndarray:
        return -(-np.asarray(lengths) // self.config.stack)

    def forward(self, x: np.ndarray, lengths, *, rng: Optional[np.random.Generator] = None):
        """x (B, T, D) -> (logits (B, T', V), out_lengths (B,), cache). ``rng`` given = training dropout."""
        c = self.config
        float_array("x", x, ndim=3, shape=(None, None, c.input_dim))
        B, T, _ = x.shape
        lengths = lengths_array("lengths", lengths, B, T)
        xs, out_len = stack_frames(x, lengths, c.stack)
        enc = self._encoder_params()
        masks = None
        if rng is not None and c.dropout > 0 and c.num_layers > 1:
            keep = 1.0 - c.dropout
            masks = [(rng.random((B, xs.shape[1], 2 * c.hidden)) < keep).astype(x.dtype) / x.dtype.type(keep)
                     for _ in range(c.num_layers - 1)]
        h, enc_cache = lstm_stack_forward(enc, xs, out_len, num_layers=c.num_layers, bidirectional=True,
                                          dropout_masks=masks)
        logits = h @ self.params["output.W"].T + self.params["output.b"]  # [ops:linear]
        logits *= (np.arange(h.shape[1])[None, :] < out_len[:, None])[:, :, None]  # padding -> 0
        return logits, out_len, ModelCache(T, lengths, out_len, h, enc_cache)

    def backward(self, dlogits: np.ndarray, cache: ModelCache) -> np.ndarray:
        """Accumulates (+=) into ``self.grads``; returns dx (B, T, D)."""
        T, in_len, out_len, h, enc_cache = cache
        valid = (np.arange(h.shape[1])[None, :] < out_len[:, None])[:, :, None]
        dlogits = dlogits * valid
        W = self.params["output.W"]
        self.grads["output.W"] += dlogits.reshape(-1, W.shape[0]).T @ h.reshape(-1, W.shape[1])
        self.grads["output.b"] += dlogits.sum(axis=(0, 1))
        dh = dlogits @ W
        enc = self._encoder_params()
        dxs, g = lstm_stack_backward(dh, enc, enc_cache)
        for k, v in g.items():
            self.grads[f"encoder.{k}"] += v
        return unstack_frames_grad(dxs, T, self.config.stack, in_len)

    def _encoder_params(self) -> Dict[str, np.ndarray]:
        """The LSTM stack's parameters under the names nn.lstm expects (``encoder.`` stripped)."""
        return {k[len("encoder."):]: v for k, v in self.params.items() if k.startswith("encoder.")}

    def zero_grad(self) -> None:
        for v in self.grads.values():
            v[...] = 0

    def num_parameters(self) -> int:
        return int(sum(v.size for v in self.params.values()))


def pad_batch(feats: List[np.ndarray]):
    """List of (T_i, D) -> (B, T_max, D) zero-padded, lengths (B,)."""
    lengths = np.array([f.shape[0] for f in feats], dtype=np.int64)
    out = np.zeros((len(feats), int(lengths.max()), feats[0].shape[1]), feats[0].dtype)
    for i, f in enumerate(feats):
        out[i, : f.shape[0]] = f
    return out, lengths
