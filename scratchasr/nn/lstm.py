"""LSTM module: uni/bidirectional, stacked, optional per-layer projection, dropout between layers.

Built from ``scratchasr.ops.lstm`` pairs (docs/equations/lstm.md). The forward/backward core is
functional (``lstm_stack_forward``/``lstm_stack_backward`` take the parameter dict) so finite
differences can perturb any parameter; ``LSTM`` keeps ``params``/``grads`` dicts and a cache stack.

Parameter names follow ``torch.nn.LSTM`` with our single bias: ``W_ih_l{k}``, ``W_hh_l{k}``,
``b_l{k}`` and ``..._reverse`` for the backward direction; ``from_torch_state_dict`` maps a
``torch.nn.LSTM`` state_dict (``weight_ih_l0``, ``bias_ih_l0 + bias_hh_l0``, ...) onto them.

Projection (``proj_size > 0``) is the ESPnet "BLSTMP" layer projection (Sainath/ESPnet style):
after each layer, ``y = tanh(concat(directions) W_proj^T + b_proj)``, zero at padded frames. It is
NOT PyTorch's recurrent ``proj_size`` (LSTMP of Sak et al. 2014, where the projected state feeds
the recurrence), so ``from_torch_state_dict`` refuses a state_dict with ``weight_hr``.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

import numpy as np

from .._validate import float_array, lengths_array, length_mask, positive_int
from ..ops.lstm import lstm_backward, lstm_forward
from .module import Module

__all__ = ["LSTM", "init_lstm_params", "lstm_stack_forward", "lstm_stack_backward", "from_torch_state_dict"]


def _suffix(direction: int) -> str:
    return "_reverse" if direction else ""


def init_lstm_params(rng: np.random.Generator, *, input_size: int, hidden_size: int, num_layers: int = 1,
                     bidirectional: bool = False, proj_size: int = 0, dtype=np.float32
                     ) -> Dict[str, np.ndarray]:
    """Uniform(+-1/sqrt(H)) weights as ``torch.nn.LSTM``; the single bias is the sum of two such draws."""
    H, dirs = hidden_size, 2 if bidirectional else 1
    k = 1.0 / np.sqrt(H)
    params: Dict[str, np.ndarray] = {}
    d_in = input_size
    for layer in range(num_layers):
        for d in range(dirs):
            s = f"_l{layer}{_suffix(d)}"
            params["W_ih" + s] = rng.uniform(-k, k, (4 * H, d_in)).astype(dtype)
            params["W_hh" + s] = rng.uniform(-k, k, (4 * H, H)).astype(dtype)
            params["b" + s] = (rng.uniform(-k, k, 4 * H) + rng.uniform(-k, k, 4 * H)).astype(dtype)
        d_in = dirs * H
        if proj_size:
            kp = 1.0 / np.sqrt(d_in)
            params[f"W_proj_l{layer}"] = rng.uniform(-kp, kp, (proj_size, d_in)).astype(dtype)
            params[f"b_proj_l{layer}"] = rng.uniform(-kp, kp, proj_size).astype(dtype)
            d_in = proj_size
    return params


class StackCache(NamedTuple):
    lengths: np.ndarray  # (B,)
    valid: np.ndarray  # (B, T, 1) bool
    lstm: List[list]  # per layer: one LSTMCache per direction
    proj_in: List[Optional[np.ndarray]]  # per layer: (B, T, dirs*H) input of the projection, or None
    proj_out: List[Optional[np.ndarray]]  # per layer: (B, T, P) tanh output of the projection, or None
    dropout: List[Optional[np.ndarray]]  # per layer boundary: (B, T, F) scaled keep mask, or None
    dirs: int
    H: int


def lstm_stack_forward(params: Dict[str, np.ndarray], x: np.ndarray, lengths, *, num_layers: int,
                       bidirectional: bool, dropout_masks: Optional[List[Optional[np.ndarray]]] = None,
                       backend: Optional[str] = None):
    """Stacked (Bi)LSTM over a padded batch: x (B, T, D) -> y (B, T, dirs*H or P), cache.

    ``dropout_masks[l]`` (optional) multiplies the output of layer l < num_layers - 1 (inverted
    dropout: entries 0 or 1/keep), so randomness stays outside the function.
    """
    float_array("x", x, ndim=3)
    B, T, _ = x.shape
    lengths = lengths_array("lengths", lengths, B, T)
    valid = length_mask(lengths, T)[:, :, None]
    dirs = 2 if bidirectional else 1
    H = params["W_hh_l0"].shape[1]
    zeros = np.zeros((B, H), x.dtype)
    caches, p_in, p_out, drops = [], [], [], []
    inp = x
    for layer in range(num_layers):
        outs, lc = [], []
        for d in range(dirs):
            s = f"_l{layer}{_suffix(d)}"
            y, _, c = lstm_forward(inp, lengths, zeros, zeros, params["W_ih" + s], params["W_hh" + s],
                                   params["b" + s], reverse=bool(d), backend=backend)
            outs.append(y)
            lc.append(c)
        caches.append(lc)
        inp = np.concatenate(outs, axis=2) if dirs == 2 else outs[0]  # (B, T, dirs*H)
        if f"W_proj_l{layer}" in params:
            p_in.append(inp)
            inp = np.where(valid, np.tanh(inp @ params[f"W_proj_l{layer}"].T + params[f"b_proj_l{layer}"]), 0)
            p_out.append(inp)
        else:
            p_in.append(None)
            p_out.append(None)
        m = dropout_masks[layer] if dropout_masks is not None and layer < num_layers - 1 else None
        if m is not None:
            inp = inp * m
        drops.append(m)
    return inp, StackCache(lengths, valid, caches, p_in, p_out, drops, dirs, H)


def lstm_stack_backward(dy: np.ndarray, params: Dict[str, np.ndarray], cache: StackCache):
    """Backward of ``lstm_stack_forward``: dy -> dx (B, T, D), grads dict (same keys as params)."""
    valid, caches, dirs, H = cache.valid, cache.lstm, cache.dirs, cache.H
    p_in, p_out, drops = cache.proj_in, cache.proj_out, cache.dropout
    grads: Dict[str, np.ndarray] = {}
    for layer in range(len(caches) - 1, -1, -1):
        if drops[layer] is not None:
            dy = dy * drops[layer]
        if p_out[layer] is not None:
            dz = np.where(valid, dy * (1 - p_out[layer] ** 2), 0)  # tanh'
            W = params[f"W_proj_l{layer}"]
            F = W.shape[1]
            grads[f"W_proj_l{layer}"] = dz.reshape(-1, dz.shape[2]).T @ p_in[layer].reshape(-1, F)
            grads[f"b_proj_l{layer}"] = dz.sum(axis=(0, 1))
            dy = dz @ W
        dx = 0
        for d in range(dirs):
            s = f"_l{layer}{_suffix(d)}"
            g = lstm_backward(dy[:, :, d * H:(d + 1) * H], caches[layer][d])
            dx = dx + g[0]
            grads["W_ih" + s], grads["W_hh" + s], grads["b" + s] = g[3], g[4], g[5]
        dy = dx
    return dy, grads


def from_torch_state_dict(state_dict, *, num_layers: int, bidirectional: bool) -> Dict[str, np.ndarray]:
    """Map ``torch.nn.LSTM(...).state_dict()`` (tensors or arrays) to our parameter dict.

    ``W_ih_l{k}`` = ``weight_ih_l{k}``, ``W_hh_l{k}`` = ``weight_hh_l{k}``,
    ``b_l{k}`` = ``bias_ih_l{k} + bias_hh_l{k}`` (the two biases only ever appear summed).
    """
    sd = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
          for k, v in state_dict.items()}
    if any(k.startswith("weight_hr") for k in sd):
        raise ValueError("state_dict: recurrent projection (proj_size > 0, weight_hr_*) is not supported")
    params = {}
    for layer in range(num_layers):
        for d in range(2 if bidirectional else 1):
            t, s = f"_l{layer}{_suffix(d)}", f"_l{layer}{_suffix(d)}"
            try:
                params["W_ih" + s] = sd["weight_ih" + t].copy()
                params["W_hh" + s] = sd["weight_hh" + t].copy()
                params["b" + s] = sd["bias_ih" + t] + sd["bias_hh" + t]
            except KeyError as e:
                raise ValueError(f"state_dict: missing key {e.args[0]!r}") from None
    return params


class LSTM(Module):
    """Stacked (bidirectional) LSTM module.

    ``forward(x (B, T, D), lengths) -> y (B, T, dirs*H or proj_size)``, zero at padded frames;
    ``backward(dy) -> dx`` adds into ``grads``. Dropout between layers only while ``training``,
    from the module's own seeded generator.
    """

    def __init__(self, input_size: int, hidden_size: int, *, num_layers: int = 1, bidirectional: bool = False,
                 proj_size: int = 0, dropout: float = 0.0, seed: int = 0, dtype=np.float32,
                 backend: Optional[str] = None):
        super().__init__()
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        self.proj_size = positive_int("proj_size", proj_size, minimum=0)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        self.dropout, self.backend = float(dropout), backend
        rng = np.random.default_rng(seed)
        for name, value in init_lstm_params(rng, input_size=input_size, hidden_size=hidden_size,
                                            num_layers=num_layers, bidirectional=bidirectional,
                                            proj_size=proj_size, dtype=dtype).items():
            self.add_param(name, value)
        self.dropout_rng = np.random.default_rng(seed + 1)

    @property
    def output_size(self) -> int:
        return self.proj_size or (2 if self.bidirectional else 1) * self.hidden_size

    def load_torch_state_dict(self, state_dict) -> "LSTM":
        """Copy a ``torch.nn.LSTM`` state_dict into the parameters in place (cast to their dtype)."""
        if self.proj_size:
            raise ValueError("proj_size: torch.nn.LSTM has no layer projection of this kind")
        new = from_torch_state_dict(state_dict, num_layers=self.num_layers, bidirectional=self.bidirectional)
        self.assign_params(new)
        return self

    def forward(self, x: np.ndarray, lengths=None) -> np.ndarray:
        masks = None
        if self.training and self.dropout > 0 and self.num_layers > 1:
            keep = 1.0 - self.dropout
            B, T, _ = x.shape
            F = self.proj_size or (2 if self.bidirectional else 1) * self.hidden_size
            masks = [(self.dropout_rng.random((B, T, F)) < keep).astype(x.dtype) / x.dtype.type(keep)
                     for _ in range(self.num_layers - 1)]
        y, cache = lstm_stack_forward(self.params, x, lengths, num_layers=self.num_layers,
                                      bidirectional=self.bidirectional, dropout_masks=masks,
                                      backend=self.backend)
        self.push(cache)
        return y

    __call__ = forward

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, G = lstm_stack_backward(dy, self.params, self.pop())
        for k, g in G.items():
            self.grads[k] += g
        return dx
