"""Multi-head attention modules (absolute and relative positions) over ``scratchasr.ops`` pairs.

``MultiHeadAttention`` wraps ``ops.attention.mha_forward/backward`` (Vaswani et al. 2017, PyTorch
``nn.MultiheadAttention`` layout); ``RelPositionMultiHeadAttention`` wraps
``ops.rel_attention.rel_mha_forward/backward`` (Transformer-XL / Conformer). Equations:
docs/equations/attention.md. Each keeps ``params``/``grads`` dicts and a cache stack.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import numpy as np

from .._validate import positive_int
from .module import Module
from ..ops.attention import mha_backward, mha_forward
from ..ops.rel_attention import rel_mha_backward, rel_mha_forward, rel_positions

__all__ = ["MultiHeadAttention", "RelPositionMultiHeadAttention"]


def _xavier(rng, shape, dtype):
    limit = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-limit, limit, shape).astype(dtype)


class _Base(Module):
    params: Dict[str, np.ndarray]

    def _init_common(self, embed_dim, num_heads, seed, dtype, names):
        """Validate the sizes; draw the (E, E) matrices and (E,) biases of ``names`` in order.

        Returns the generator (for further draws) and the arrays by name."""
        Module.__init__(self)
        self.E = positive_int("embed_dim", embed_dim)
        self.H = positive_int("num_heads", num_heads)
        if self.E % self.H:
            raise ValueError(f"num_heads: expected a divisor of embed_dim {self.E}, got {self.H}")
        rng = np.random.default_rng(seed)
        arrays = {n: _xavier(rng, (self.E, self.E), dtype) if n.startswith("W") else np.zeros(self.E, dtype)
                  for n in names}
        return rng, arrays

    def _register(self, arrays: Dict[str, np.ndarray]) -> None:
        for n in self.NAMES:  # registration order = NAMES order (state_dict and gradient order)
            self.add_param(n, arrays[n])



class _MHACache(NamedTuple):
    op: object  # ops.attention.MHACache
    self_attention: bool  # x_kv was x_q: the two input gradients are summed

class MultiHeadAttention(_Base):
    """``forward(x_q (B, Tq, E), x_kv=None, mask=None) -> (B, Tq, E)``; ``x_kv=None`` is self-attention.

    ``backward(dout) -> dx`` for self-attention, ``(dx_q, dx_kv)`` for cross-attention.
    """

    NAMES = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_o", "b_o")

    def __init__(self, embed_dim: int, num_heads: int, *, seed: int = 0, dtype=np.float32):
        _, arrays = self._init_common(embed_dim, num_heads, seed, dtype, self.NAMES)
        self._register(arrays)

    def load_torch_state_dict(self, state_dict) -> "MultiHeadAttention":
        """From ``torch.nn.MultiheadAttention(...).state_dict()``: in_proj_weight (3E, E) split in q, k, v."""
        sd = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v)
              for k, v in state_dict.items()}
        W, b = np.split(sd["in_proj_weight"], 3), np.split(sd["in_proj_bias"], 3)
        new = dict(W_q=W[0], W_k=W[1], W_v=W[2], b_q=b[0], b_k=b[1], b_v=b[2], W_o=sd["out_proj.weight"],
                   b_o=sd["out_proj.bias"])
        self.assign_params(new)
        return self

    def forward(self, x_q: np.ndarray, x_kv: Optional[np.ndarray] = None, mask: Optional[np.ndarray] = None):
        self_attention = x_kv is None
        out, cache = mha_forward(x_q, x_q if self_attention else x_kv, *(self.params[n] for n in self.NAMES),
                                 num_heads=self.H, mask=mask)
        self.push(_MHACache(cache, self_attention))
        return out

    __call__ = forward

    def backward(self, dout: np.ndarray):
        cache = self.pop()
        g = mha_backward(dout, cache.op)
        for n, d in zip(self.NAMES, g[2:]):
            self.grads[n] += d
        return g[0] + g[1] if cache.self_attention else (g[0], g[1])


class RelPositionMultiHeadAttention(_Base):
    """Relative-position self-attention.

    ``forward(x (B, T, E), mask=None) -> (B, T, E)``, ``backward(dout) -> dx``.

    The sinusoidal relative encodings are fixed (not trained); ``W_pos``, ``pos_bias_u``,
    ``pos_bias_v`` are (as in ESPnet's ``RelPositionMultiHeadedAttention``).
    """

    NAMES = ("W_q", "b_q", "W_k", "b_k", "W_v", "b_v", "W_pos", "pos_bias_u", "pos_bias_v", "W_o", "b_o")

    def __init__(self, embed_dim: int, num_heads: int, *, seed: int = 0, dtype=np.float32):
        rng, arrays = self._init_common(embed_dim, num_heads, seed, dtype,
                                        [n for n in self.NAMES if not n.startswith("pos_bias")])
        dk = self.E // self.H
        for n in ("pos_bias_u", "pos_bias_v"):  # drawn after the matrices, as before
            arrays[n] = _xavier(rng, (self.H, dk), dtype)
        self._register(arrays)

    def forward(self, x: np.ndarray, mask: Optional[np.ndarray] = None) -> np.ndarray:
        pos = rel_positions(x.shape[1], self.E, dtype=x.dtype)
        p = self.params
        out, cache = rel_mha_forward(x, pos, *(p[n] for n in self.NAMES), num_heads=self.H, mask=mask)
        self.push(cache)
        return out

    __call__ = forward

    def backward(self, dout: np.ndarray) -> np.ndarray:
        g = rel_mha_backward(dout, self.pop())
        # g = dx, dpos (fixed encodings: dropped), then the parameters in NAMES order
        for n, d in zip(self.NAMES, g[2:]):
            self.grads[n] += d
        return g[0]
