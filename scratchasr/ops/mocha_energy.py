"""Energies of monotonic attention and MoChA, and the noisy selection probability, one step at a time.

References: Raffel et al. 2017, appendix (practitioner's guide: weight-normalised energy
with scalar gain ``g`` and offset ``r``, pre-sigmoid Gaussian noise in training); Salimans &
Kingma 2016 (weight normalisation); Chiu & Raffel 2018 (the chunk energy is a plain additive
energy, without ``g`` and ``r``). Equations and backward: docs/equations/mocha.md.

As in ``ops/additive_attention.py``, the memory projection ``keys = h W_h^T + b`` does not change
across decoder steps, so the caller computes it once for all frames and passes ``keys (B, T, A)``;
``dkeys`` is returned for the caller to push through that projection.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import numpy as np

from .._validate import float_array, lengths_array, length_mask, same_dtype

__all__ = ["monotonic_energy_forward", "monotonic_energy_backward", "chunk_energy_forward",
           "chunk_energy_backward", "monotonic_probability_forward", "monotonic_probability_backward",
           "sigmoid", "MonotonicEnergyCache", "ChunkEnergyCache", "MonotonicProbabilityCache"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Overflow-free logistic: exp is only ever taken of -|x|, so energies of +-1000 are fine."""
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))


def _check(query, keys, W_q, v, lengths):
    float_array("query", query, ndim=2)
    B, Dq = query.shape
    float_array("keys", keys, shape=(B, None, None))
    T, A = keys.shape[1:]
    float_array("W_q", W_q, shape=(A, Dq))
    float_array("v", v, shape=(A,))
    valid = length_mask(lengths_array("lengths", lengths, B, T), T)  # (B, T)
    keys = np.where(valid[:, :, None], keys, 0)  # padded frames never reach the arithmetic (NaN-safe)
    z = np.tanh((query @ W_q.T)[:, None, :] + keys)  # (B, T, A) [mocha:energy-tanh]
    return z, valid


def _tanh_backward(dz, z, query, W_q):
    dpre = dz * (1 - z * z)  # (B, T, A) = dkeys
    dq_proj = dpre.sum(axis=1)  # (B, A): the query projection is shared by all frames
    return dq_proj @ W_q, dpre, dq_proj.T @ query  # dquery, dkeys, dW_q [mocha:denergy-tanh]


# ----------------------------------------------------------------------------- monotonic energy

class MonotonicEnergyCache(NamedTuple):
    query: np.ndarray  # (B, Dq) decoder state s_{i-1}
    W_q: np.ndarray  # (A, Dq)
    v: np.ndarray  # (A,) unnormalised direction
    g: np.ndarray  # () gain
    z: np.ndarray  # (B, T, A) tanh(W_q s + keys)
    zv: np.ndarray  # (B, T) z . v / ||v||, 0 at padding
    valid: np.ndarray  # (B, T) bool


def monotonic_energy_forward(query: np.ndarray, keys: np.ndarray, W_q: np.ndarray, v: np.ndarray,
                             g: np.ndarray, r: np.ndarray, *, lengths=None
                             ) -> Tuple[np.ndarray, MonotonicEnergyCache]:
    """Monotonic energy ``e_j = g v^T/||v|| tanh(W_q s + keys_j) + r`` for one decoder step.

    query (B, Dq); keys (B, T, A) = h W_h^T + b; W_q (A, Dq); v (A,); g, r 0-d arrays (gain, offset;
    initialise r negative, e.g. -4, so that p starts small); lengths (B,).
    -> e (B, T), 0 at padded frames, and the cache. [mocha:energy-tanh] [mocha:mono-energy]
    """
    float_array("g", g, shape=())
    float_array("r", r, shape=())
    same_dtype(query=query, keys=keys, W_q=W_q, v=v, g=g, r=r)
    z, valid = _check(query, keys, W_q, v, lengths)
    zv = np.where(valid, z @ (v / np.linalg.norm(v)), 0)  # (B, T) weight-normalised score
    e = np.where(valid, g * zv + r, 0)  # [mocha:mono-energy]
    return e, MonotonicEnergyCache(query, W_q, v, g, z, zv, valid)


def monotonic_energy_backward(de: np.ndarray, cache: MonotonicEnergyCache) -> Tuple[np.ndarray, ...]:
    """de (B, T) -> dquery (B, Dq), dkeys (B, T, A), dW_q (A, Dq), dv (A,), dg (), dr ().

    [mocha:dmono-energy] [mocha:dweight-norm] [mocha:denergy-tanh]
    """
    query, W_q, v, g, z, zv = cache.query, cache.W_q, cache.v, cache.g, cache.z, cache.zv
    valid = cache.valid
    float_array("de", de, shape=zv.shape)
    de = np.where(valid, de, 0)
    dr = np.asarray(de.sum(), dtype=g.dtype)  # [mocha:dmono-energy]
    dg = np.asarray(np.sum(de * zv), dtype=g.dtype)
    norm = np.linalg.norm(v)
    v_hat = v / norm
    dzv = g * de  # (B, T)
    dv_hat = np.einsum("bt,bta->a", dzv, z)  # (A,)
    dv = (dv_hat - v_hat * (v_hat @ dv_hat)) / norm  # [mocha:dweight-norm]
    dquery, dkeys, dW_q = _tanh_backward(dzv[:, :, None] * v_hat, z, query, W_q)
    return dquery, dkeys, dW_q, dv, dg, dr


# ----------------------------------------------------------------------------- chunk energy

class ChunkEnergyCache(NamedTuple):
    query: np.ndarray  # (B, Dq)
    W_q: np.ndarray  # (A, Dq)
    v: np.ndarray  # (A,)
    z: np.ndarray  # (B, T, A) tanh(W_q s + keys)
    valid: np.ndarray  # (B, T) bool


def chunk_energy_forward(query: np.ndarray, keys: np.ndarray, W_q: np.ndarray, v: np.ndarray, *, lengths=None
                         ) -> Tuple[np.ndarray, ChunkEnergyCache]:
    """MoChA chunk energy ``u_j = v^T tanh(W_q s + keys_j)`` (additive, no gain, no offset).

    query (B, Dq); keys (B, T, A); W_q (A, Dq); v (A,); lengths (B,) -> u (B, T), cache.
    [mocha:energy-tanh] [mocha:chunk-energy]
    """
    same_dtype(query=query, keys=keys, W_q=W_q, v=v)
    z, valid = _check(query, keys, W_q, v, lengths)
    u = np.where(valid, z @ v, 0)  # (B, T) [mocha:chunk-energy]
    return u, ChunkEnergyCache(query, W_q, v, z, valid)


def chunk_energy_backward(du: np.ndarray, cache: ChunkEnergyCache) -> Tuple[np.ndarray, ...]:
    """du (B, T) -> dquery (B, Dq), dkeys (B, T, A), dW_q (A, Dq), dv (A,). [mocha:dchunk-energy]"""
    query, W_q, v, z, valid = cache.query, cache.W_q, cache.v, cache.z, cache.valid
    float_array("du", du, shape=valid.shape)
    du = np.where(valid, du, 0)
    dv = np.einsum("bt,bta->a", du, z)  # [mocha:dchunk-energy]
    dquery, dkeys, dW_q = _tanh_backward(du[:, :, None] * v, z, query, W_q)
    return dquery, dkeys, dW_q, dv


# ----------------------------------------------------------------------------- selection probability

class MonotonicProbabilityCache(NamedTuple):
    p: np.ndarray  # (B, T) sigma(e + noise), 0 at padding
    noise: Optional[np.ndarray]  # (B, T) the pre-sigmoid noise drawn (training), None without noise
    valid: np.ndarray  # (B, T) bool


def monotonic_probability_forward(e: np.ndarray, *, noise_std: float = 0.0,
                                  rng: Optional[np.random.Generator] = None, lengths=None
                                  ) -> Tuple[np.ndarray, MonotonicProbabilityCache]:
    """Selection probability ``p = sigma(e + noise_std * n)``, ``n ~ N(0, 1)`` drawn from ``rng``.

    e (B, T) energies -> p (B, T), 0 at padded frames. Noise (training only: pass ``noise_std=0``
    at evaluation) pushes the energies apart so that p becomes nearly binary, which makes the
    training-time expectation match test-time hard attention. [mocha:prob-noise]
    """
    float_array("e", e, ndim=2)
    B, T = e.shape
    valid = length_mask(lengths_array("lengths", lengths, B, T), T)
    if not np.isscalar(noise_std) or not np.isreal(noise_std) or noise_std < 0:
        raise ValueError(f"noise_std: expected a real number >= 0, got {noise_std!r}")
    noise = None
    if noise_std > 0:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator when noise_std > 0, "
                            f"got {type(rng).__name__}")
        noise = (noise_std * rng.standard_normal((B, T))).astype(e.dtype)
    x = np.where(valid, e if noise is None else e + noise, 0)
    p = np.where(valid, sigmoid(x), 0).astype(e.dtype, copy=False)  # [mocha:prob-noise]
    return p, MonotonicProbabilityCache(p, noise, valid)


def monotonic_probability_backward(dp: np.ndarray, cache: MonotonicProbabilityCache) -> np.ndarray:
    """dp (B, T) -> de (B, T) = dp p (1 - p), 0 at padding (the noise is a constant). [mocha:dprob]"""
    p, valid = cache.p, cache.valid
    float_array("dp", dp, shape=p.shape)
    return np.where(valid, dp * p * (1 - p), 0)  # [mocha:dprob]
