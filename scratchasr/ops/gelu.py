"""GELU activation (Hendrycks & Gimpel 2016, "Gaussian Error Linear Units"), in the tanh form GPT-2 uses
(``torch.nn.functional.gelu(x, approximate="tanh")``). Equations: docs/equations/lm.md, [lm:gelu].
"""

from __future__ import annotations

from typing import NamedTuple, Tuple

import numpy as np

from .._validate import float_array

__all__ = ["gelu_forward", "gelu_backward", "GELUCache"]

_C = np.sqrt(2.0 / np.pi)   # sqrt(2 / pi)
_A = 0.044715


class GELUCache(NamedTuple):
    x: np.ndarray   # (...) the input
    t: np.ndarray   # (...) tanh(sqrt(2/pi) (x + 0.044715 x^3))


def gelu_forward(x: np.ndarray) -> Tuple[np.ndarray, GELUCache]:
    """``y = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` element-wise, any shape [lm:gelu]."""
    x = float_array("x", x)
    c, a = x.dtype.type(_C), x.dtype.type(_A)
    t = np.tanh(c * (x + a * x * x * x))              # [lm:gelu]
    return x.dtype.type(0.5) * x * (1 + t), GELUCache(x, t)   # [lm:gelu]


def gelu_backward(dy: np.ndarray, cache: GELUCache):
    """``(dx,)``, ``dx = dy (1/2 (1 + t) + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 0.044715 x^2))`` [lm:gelu-back]."""
    x, t = cache.x, cache.t
    dy = float_array("dy", dy, shape=x.shape)
    c, a = x.dtype.type(_C), x.dtype.type(_A)
    half = x.dtype.type(0.5)
    return (dy * (half * (1 + t) + half * x * (1 - t * t) * c * (1 + 3 * a * x * x)),)   # [lm:gelu-back]
