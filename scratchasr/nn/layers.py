"""Thin module wrappers around the ops: Linear, Embedding, LayerNorm, BatchNorm, Conv1d, Conv2d, Dropout,
activations and a Sequential container.

Conventions (see ``module.py`` for the forward/backward/cache contract):

- Sequence inputs are batch-first ``(B, T, D)`` with optional ``lengths (B,)``; frames ``t >= lengths[b]``
  output 0 and receive exactly zero gradient. Conv2d is channels-first ``(B, C, T, F)``.
- ``Conv1d`` and ``Conv2d`` change the lengths, so their ``forward`` returns ``(y, out_lengths)``; every
  other layer returns ``y``. ``Sequential`` threads lengths through and returns ``(y, lengths)``.
- Initialisation follows PyTorch's defaults, drawn from an explicit ``rng`` (np.random.Generator):
  Linear and Conv weights and biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (what torch's
  ``kaiming_uniform_(a=sqrt(5))`` reduces to), Embedding ~ N(0, 1), norm scales 1 and shifts 0.
- Parameters are float32 by default; pass ``dtype=np.float64`` for gradient checks.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .. import ops
from ..ops.gelu import gelu_backward, gelu_forward
from .._validate import length_mask, lengths_array
from .module import Module, ModuleList

__all__ = ["Linear", "Embedding", "LayerNorm", "BatchNorm", "Conv1d", "Conv2d", "Dropout", "ReLU", "Tanh",
           "Sigmoid", "Swish", "GELU", "GLU", "MaskedMeanPool", "Sequential"]


def _rng(rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected a numpy.random.Generator (explicit seeding), "
                        f"got {type(rng).__name__}")
    return rng


def _dtype(dtype) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {dt}")
    return dt


def _uniform(rng, shape, fan_in, dtype) -> np.ndarray:
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def _mask3(lengths, x) -> Optional[np.ndarray]:
    """(B, T, 1) bool valid-frame mask for x (B, T, ...), or None without lengths."""
    if lengths is None:
        return None
    B, T = x.shape[:2]
    return length_mask(lengths_array("lengths", lengths, B, T), T).reshape(B, T, *([1] * (x.ndim - 2)))


class MaskedCache(NamedTuple):
    """An op's cache plus the valid-frame mask the module applied around the op."""
    op: object  # the op's own NamedTuple cache
    mask: Optional[np.ndarray]  # (B, T, 1...) bool valid frames, or None without lengths


class Linear(Module):
    """``y = x W^T + b``; W (out_features, in_features), b (out_features,)."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__()
        rng, dt = _rng(rng), _dtype(dtype)
        self.add_param("W", _uniform(rng, (out_features, in_features), in_features, dt))
        if bias:
            self.add_param("b", _uniform(rng, (out_features,), in_features, dt))

    def forward(self, x, lengths=None):
        y, cache = ops.linear_forward(x, self.params["W"], self.params.get("b"), lengths=lengths)
        self.push(cache)
        return y

    def backward(self, dout):
        dx, dW, *db = ops.linear_backward(dout, self.pop())
        self.grads["W"] += dW
        if db:
            self.grads["b"] += db[0]
        return dx


class Embedding(Module):
    """Rows of ``W (num_embeddings, dim)`` picked by integer ids; backward returns None (ids: no gradient)."""

    def __init__(self, num_embeddings: int, dim: int, *, rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        self.add_param("W", _rng(rng).standard_normal((num_embeddings, dim)).astype(_dtype(dtype)))

    def forward(self, ids, lengths=None):
        y, cache = ops.embedding_forward(ids, self.params["W"], lengths=lengths)
        self.push(cache)
        return y

    def backward(self, dout):
        (dW,) = ops.embedding_backward(dout, self.pop())
        self.grads["W"] += dW
        return None


class LayerNorm(Module):
    """Normalise over the last axis with scale ``gamma`` and shift ``beta``; padded frames output 0."""

    def __init__(self, dim: int, *, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__()
        dt = _dtype(dtype)
        self.eps = eps
        self.add_param("gamma", np.ones(dim, dtype=dt))
        self.add_param("beta", np.zeros(dim, dtype=dt))

    def forward(self, x, lengths=None):
        mask = _mask3(lengths, x)
        y, cache = ops.layer_norm_forward(x, self.params["gamma"], self.params["beta"], eps=self.eps)
        if mask is not None:
            y = np.where(mask, y, 0)  # padded frames would otherwise output beta
        self.push(MaskedCache(cache, mask))
        return y

    def backward(self, dout):
        cache = self.pop()
        if cache.mask is not None:
            dout = np.where(cache.mask, dout, 0)  # nothing flows back from padded frames
        dx, dgamma, dbeta = ops.layer_norm_backward(dout, cache.op)
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


class BatchNorm(Module):
    """Batch norm over channels of ``x (B, T, C)`` with statistics from valid frames only.

    ``running_mean`` / ``running_var`` are buffers (saved by ``state_dict``, not trained): in training
    they are replaced by the statistics the op returns; in eval mode they normalise.
    """

    def __init__(self, channels: int, *, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32) -> None:
        super().__init__()
        dt = _dtype(dtype)
        self.momentum, self.eps = momentum, eps
        self.add_param("gamma", np.ones(channels, dtype=dt))
        self.add_param("beta", np.zeros(channels, dtype=dt))
        self.add_buffer("running_mean", np.zeros(channels, dtype=dt))
        self.add_buffer("running_var", np.ones(channels, dtype=dt))

    def forward(self, x, lengths=None):
        y, (mean, var), cache = ops.batch_norm_forward(
            x, self.params["gamma"], self.params["beta"], lengths, running_mean=self.buffers["running_mean"],
            running_var=self.buffers["running_var"], training=self.training, momentum=self.momentum,
            eps=self.eps)
        if self.training:  # the op returns new statistics rather than mutating ours
            self.buffers["running_mean"][...] = mean
            self.buffers["running_var"][...] = var
        self.push(cache)
        return y

    def backward(self, dout):
        dx, dgamma, dbeta = ops.batch_norm_backward(dout, self.pop())
        self.grads["gamma"] += dgamma
        self.grads["beta"] += dbeta
        return dx


class Conv1d(Module):
    """1-D convolution over time of ``x (B, T, C_in)``; ``forward`` -> ``(y (B, T_out, C_out), out_lengths)``.

    weight (C_out, C_in / groups, K), bias (C_out,); depthwise when groups == C_in == C_out.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, dilation: int = 1, groups: int = 1, bias: bool = True,
                 rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        rng, dt = _rng(rng), _dtype(dtype)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups: expected a divisor of in_channels={in_channels} and "
                             f"out_channels={out_channels}, got {groups}")
        fan_in = in_channels // groups * kernel_size
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        shape = (out_channels, in_channels // groups, kernel_size)
        self.add_param("weight", _uniform(rng, shape, fan_in, dt))
        if bias:
            self.add_param("bias", _uniform(rng, (out_channels,), fan_in, dt))

    def forward(self, x, lengths=None):
        y, out_lengths, cache = ops.conv1d_forward(
            x, self.params["weight"], self.params.get("bias"), lengths=lengths, stride=self.stride,
            padding=self.padding, dilation=self.dilation, groups=self.groups)
        self.push(cache)
        return y, out_lengths

    def backward(self, dout):
        dx, dw, *db = ops.conv1d_backward(dout, self.pop())
        self.grads["weight"] += dw
        if db:
            self.grads["bias"] += db[0]
        return dx


class Conv2d(Module):
    """2-D convolution of ``x (B, C_in, T, F)``; ``forward`` -> ``(y (B, C_out, T_out, F_out), out_len)``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0,
                 bias: bool = True, rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        rng, dt = _rng(rng), _dtype(dtype)
        kt, kf = (kernel_size, kernel_size) if np.isscalar(kernel_size) else tuple(kernel_size)
        fan_in = in_channels * kt * kf
        self.stride, self.padding = stride, padding
        self.add_param("weight", _uniform(rng, (out_channels, in_channels, kt, kf), fan_in, dt))
        if bias:
            self.add_param("bias", _uniform(rng, (out_channels,), fan_in, dt))

    def forward(self, x, lengths=None):
        y, out_lengths, cache = ops.conv2d_forward(x, self.params["weight"], self.params.get("bias"),
                                                   lengths=lengths, stride=self.stride, padding=self.padding)
        self.push(cache)
        return y, out_lengths

    def backward(self, dout):
        dx, dw, *db = ops.conv2d_backward(dout, self.pop())
        self.grads["weight"] += dw
        if db:
            self.grads["bias"] += db[0]
        return dx


class Dropout(Module):
    """Inverted dropout with drop probability ``p``; identity in eval mode.

    The mask comes from ``rng`` given to ``forward`` or, by default, the Generator held by the module
    (``Dropout(p, rng=...)``), so a run is reproducible from its seeds and resumable from the RNG state.
    """

    def __init__(self, p: float, *, rng: Optional[np.random.Generator] = None) -> None:
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ValueError(f"p: expected a drop probability in [0, 1), got {p!r}")
        self.p = float(p)
        self.rng = None if rng is None else _rng(rng)

    def forward(self, x, lengths=None, *, rng: Optional[np.random.Generator] = None):
        if not self.training or self.p == 0:
            self.push(None)
            return x
        rng = rng if rng is not None else self.rng
        if rng is None:
            raise ValueError("rng: Dropout in training mode needs a Generator "
                             "(Dropout(p, rng=...) or forward(rng=...))")
        mask = ops.dropout_mask(_rng(rng), x.shape, self.p, dtype=x.dtype)
        y, cache = ops.dropout_forward(x, mask)
        self.push(cache)
        return y

    def backward(self, dout):
        cache = self.pop()
        return dout if cache is None else ops.dropout_backward(dout, cache)[0]


class _Activation(Module):
    """Element-wise op; with ``lengths`` the padded frames output 0 (sigmoid(0) would be 0.5)."""

    _fwd = _bwd = None

    def forward(self, x, lengths=None):
        mask = _mask3(lengths, x)
        y, cache = type(self)._fwd(x)
        if mask is not None:
            y = np.where(mask, y, 0)
        self.push(MaskedCache(cache, mask))
        return y

    def backward(self, dout):
        cache = self.pop()
        if cache.mask is not None:
            dout = np.where(cache.mask, dout, 0)
        return type(self)._bwd(dout, cache.op)[0]


class ReLU(_Activation):
    _fwd, _bwd = staticmethod(ops.relu_forward), staticmethod(ops.relu_backward)


class Tanh(_Activation):
    _fwd, _bwd = staticmethod(ops.tanh_forward), staticmethod(ops.tanh_backward)


class Sigmoid(_Activation):
    _fwd, _bwd = staticmethod(ops.sigmoid_forward), staticmethod(ops.sigmoid_backward)


class Swish(_Activation):
    _fwd, _bwd = staticmethod(ops.swish_forward), staticmethod(ops.swish_backward)


class GELU(_Activation):
    """GELU, tanh form (scratchasr/ops/gelu.py; the GPT feed-forward's activation)."""

    _fwd, _bwd = staticmethod(gelu_forward), staticmethod(gelu_backward)


class GLU(_Activation):
    """Gated linear unit over the last axis: ``(..., 2H) -> (..., H)``."""
    _fwd, _bwd = staticmethod(ops.glu_forward), staticmethod(ops.glu_backward)


class MaskedMeanPool(Module):
    """Average over the valid frames: ``(B, T, D), lengths -> (B, D)`` (padded frames never read).

    The time axis is gone afterwards, so ``Sequential`` passes no lengths to the following modules.
    """

    drops_time = True

    def forward(self, x, lengths=None):
        y, cache = ops.masked_mean_forward(x, lengths)
        self.push(cache)
        return y

    def backward(self, dout):
        return ops.masked_mean_backward(dout, self.pop())[0]


class Sequential(ModuleList):
    """Run modules in order: ``forward(x, lengths=None) -> (y, lengths)``; backward in reverse.

    Each child is called as ``m(x, lengths)``; a child returning a tuple ``(y, new_lengths)`` (Conv1d,
    Conv2d) updates the lengths seen by the following children; after a module with ``drops_time``
    (MaskedMeanPool) no lengths are passed on.
    """

    def __init__(self, *modules: Module) -> None:
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"modules[{i}]: expected a Module, got {type(m).__name__}")
        super().__init__(modules)

    def forward(self, x, lengths=None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        for m in self:
            out = m(x, lengths)
            x, lengths = out if isinstance(out, tuple) else (out, lengths)
            if getattr(m, "drops_time", False):
                lengths = None
        return x, lengths

    def backward(self, dout):
        for m in reversed(list(self)):
            dout = m.backward(dout)
        return dout
