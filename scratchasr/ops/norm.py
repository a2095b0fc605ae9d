"""Layer normalisation (Ba et al. 2016) and batch normalisation over valid frames (Ioffe & Szegedy 2015).

Batch norm on ``(B, T, C)`` sequences takes its statistics over the valid frames only (padding
never shifts the mean), returns its new running statistics instead of updating them in place, and
updates the running variance with the unbiased estimate, as ``torch.nn.BatchNorm1d`` does.
Equations: docs/equations/ops.md, sections "Layer norm" and "Batch norm".
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array, length_mask, lengths_array, same_dtype

__all__ = ["layer_norm_forward", "layer_norm_backward", "batch_norm_forward", "batch_norm_backward",
           "LayerNormCache", "BatchNormCache"]


def _eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps >= 0:
        raise ValueError(f"eps: expected a non-negative float, got {eps!r}")
    return float(eps)


class LayerNormCache(NamedTuple):
    xhat: np.ndarray  # (..., D) normalised input (x - mu) * rstd
    rstd: np.ndarray  # (..., 1) 1 / sqrt(var + eps)
    gamma: np.ndarray  # (D,)


def layer_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *,
                       eps: float = 1e-5) -> Tuple[np.ndarray, LayerNormCache]:
    """Normalise over the last axis: ``y = gamma * (x - mu) / sqrt(var + eps) + beta``.

    x : (..., D); gamma, beta : (D,). ``var`` is the biased (1/D) variance, as PyTorch.
    """
    x = float_array("x", x)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(f"x: expected a non-empty last axis (..., D), got shape {x.shape}")
    D = x.shape[-1]
    gamma = float_array("gamma", gamma, ndim=1, shape=(D,))
    beta = float_array("beta", beta, ndim=1, shape=(D,))
    same_dtype(x=x, gamma=gamma, beta=beta)
    eps = _eps(eps)
    # BEGIN ASSIGNMENT A0 points=2
    mu = x.mean(axis=-1, keepdims=True)  # [ops:layer-norm] (..., 1)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)  # [ops:layer-norm] biased variance
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * rstd  # [ops:layer-norm]
    return xhat * gamma + beta, LayerNormCache(xhat, rstd, gamma)  # [ops:layer-norm]
    # END ASSIGNMENT


def layer_norm_backward(dy: np.ndarray, cache: LayerNormCache):
    """``(dx, dgamma, dbeta)``; ``dx = rstd (g - mean(g) - xhat mean(g xhat))`` with ``g = dy gamma``."""
    xhat, rstd, gamma = cache.xhat, cache.rstd, cache.gamma
    dy = float_array("dy", dy, shape=xhat.shape)
    # BEGIN ASSIGNMENT A0 points=3
    g = dy * gamma  # dL/dxhat
    dx = rstd * (g - g.mean(axis=-1, keepdims=True)
                 - xhat * np.mean(g * xhat, axis=-1, keepdims=True))  # [ops:layer-norm-back]
    lead = tuple(range(xhat.ndim - 1))
    dgamma = np.sum(dy * xhat, axis=lead)  # [ops:layer-norm-back]
    dbeta = np.sum(dy, axis=lead)  # [ops:layer-norm-back]
    return dx, dgamma, dbeta
    # END ASSIGNMENT


class BatchNormCache(NamedTuple):
    xhat: np.ndarray  # (B, T, C) normalised input, 0 at padded frames
    rstd: np.ndarray  # (C,) 1 / sqrt(var + eps) (batch var in training, running var in eval)
    gamma: np.ndarray  # (C,)
    mask: np.ndarray  # (B, T, 1) bool, valid frames
    n: int  # number of valid frames N = sum(lengths)
    training: bool  # batch statistics (True) or running statistics (False)


def batch_norm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, lengths=None, *,
                       running_mean: np.ndarray, running_var: np.ndarray, training: bool = True,
                       momentum: float = 0.1, eps: float = 1e-5):
    """Batch norm over channels ``C`` of ``x (B, T, C)`` with statistics from the valid frames.

    Returns ``(y (B, T, C), (new_running_mean (C,), new_running_var (C,)), cache)``. In training the
    mean and biased variance of the ``N = sum(lengths)`` valid frames normalise ``x``, and the running
    statistics move by ``momentum`` toward the mean and the *unbiased* variance (``N / (N - 1)``), as
    PyTorch. In eval mode the running statistics normalise and are returned unchanged (copies).
    Padded frames give ``y = 0`` and zero gradient.
    """
    x = float_array("x", x, ndim=3)
    B, T, C = x.shape
    gamma = float_array("gamma", gamma, ndim=1, shape=(C,))
    beta = float_array("beta", beta, ndim=1, shape=(C,))
    running_mean = float_array("running_mean", running_mean, ndim=1, shape=(C,))
    running_var = float_array("running_var", running_var, ndim=1, shape=(C,))
    same_dtype(x=x, gamma=gamma, beta=beta)
    if (isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating))
            or not 0 <= momentum <= 1):
        raise ValueError(f"momentum: expected a float in [0, 1], got {momentum!r}")
    eps = _eps(eps)
    lengths = lengths_array("lengths", lengths, B, T)
    mask = length_mask(lengths, T)[..., None]  # (B, T, 1)
    n = int(lengths.sum())
    xm = np.where(mask, x, 0)  # padded frames are never read
    if training:
        if n < 2:
            raise ValueError(f"lengths: training batch norm needs at least 2 valid frames, got {n}")
        mu = xm.sum(axis=(0, 1)) / n  # [ops:batch-norm] (C,) mean over valid frames
        xc = np.where(mask, xm - mu, 0)
        var = np.sum(xc * xc, axis=(0, 1)) / n  # [ops:batch-norm] biased variance normalises
        new_mean = (1 - momentum) * running_mean + momentum * mu  # [ops:batch-norm-running]
        new_var = (1 - momentum) * running_var + momentum * var * (n / (n - 1))  # [ops:batch-norm-running]
    else:
        mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        xc = np.where(mask, xm - mu, 0)
        new_mean, new_var = running_mean.copy(), running_var.copy()
    rstd = 1.0 / np.sqrt(var + eps)  # (C,)
    xhat = xc * rstd  # [ops:batch-norm] 0 at padded frames
    y = np.where(mask, xhat * gamma + beta, 0)  # [ops:batch-norm]
    return y, (new_mean, new_var), BatchNormCache(xhat, rstd, gamma, mask, n, bool(training))


def batch_norm_backward(dy: np.ndarray, cache: BatchNormCache):
    """``(dx, dgamma, dbeta)``; training: ``dx = rstd/N (N g - sum g - xhat sum(g xhat))`` at valid frames."""
    xhat, rstd, gamma, mask, n = cache.xhat, cache.rstd, cache.gamma, cache.mask, cache.n
    training = cache.training
    dy = float_array("dy", dy, shape=xhat.shape)
    dy = np.where(mask, dy, 0)  # padded outputs pass no gradient
    dgamma = np.sum(dy * xhat, axis=(0, 1))  # [ops:batch-norm-back]
    dbeta = np.sum(dy, axis=(0, 1))  # [ops:batch-norm-back]
    g = dy * gamma  # dL/dxhat, 0 at padded frames
    if training:
        sum_g, sum_gx = g.sum(axis=(0, 1)), np.sum(g * xhat, axis=(0, 1))  # (C,) sums over valid frames
        dx = rstd / n * (n * g - sum_g - xhat * sum_gx)  # [ops:batch-norm-back]
        dx = np.where(mask, dx, 0)  # the bracket is nonzero at padding, which never entered the statistics
    else:
        dx = g * rstd  # [ops:batch-norm-back] running statistics are constants
    return dx, dgamma, dbeta
