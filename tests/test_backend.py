"""One backend rule for every function with a Numba twin (scratchasr._backend, ../shared/API.md)."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr import ops
from scratchasr._backend import dispatch, resolve_backend
from scratchasr.losses import ctc_loss, rnnt_loss


def test_resolve_backend():
    assert resolve_backend(None) == "numba"
    assert resolve_backend(None, has_kernel=False) == "numpy"
    assert resolve_backend("numpy") == "numpy" and resolve_backend("numpy", has_kernel=False) == "numpy"
    assert resolve_backend("numba") == "numba"
    with pytest.raises(ValueError, match=r"^backend: 'numba' was requested"):
        resolve_backend("numba", has_kernel=False)
    for bad in ("Numba", "torch", 1, np.array(["numpy", "numba"])):
        with pytest.raises(ValueError, match=r"^backend: expected one of"):
            resolve_backend(bad)
    with pytest.raises(ValueError, match=r"^engine:"):
        resolve_backend("c", name="engine")


def test_dispatch():
    def twin():
        return "twin"

    def kernel():
        return "kernel"

    assert dispatch("numpy", twin, kernel) is twin and dispatch("numba", twin, kernel) is kernel
    with pytest.raises(ValueError, match=r"^backend:"):
        dispatch(None, twin, kernel)  # unresolved: callers resolve first


def _calls(rng):
    B, T, D, H = 2, 3, 2, 2
    x = rng.standard_normal((B, T, D))
    h0 = np.zeros((B, H))
    W_ih, W_hh, b = rng.standard_normal((4 * H, D)), rng.standard_normal((4 * H, H)), np.zeros(4 * H)
    p = rng.uniform(0.1, 0.9, (B, T))
    a0 = np.zeros((B, T))
    a0[:, 0] = 1.0
    logits3, logits4 = rng.standard_normal((B, T, 3)), rng.standard_normal((B, T, 2, 3))
    tg = np.ones((B, 1), dtype=np.int64)
    lens, tl = np.array([3, 2]), np.array([1, 1])
    return {
        "lstm_forward": lambda be: ops.lstm_forward(x, lens, h0, h0, W_ih, W_hh, b, backend=be)[2],
        "lstm_step_forward": lambda be: ops.lstm_step_forward(x[:, 0], h0, h0, W_ih, W_hh, b, backend=be)[2],
        "monotonic_attention_forward": lambda be: ops.monotonic_attention_forward(p, a0, backend=be)[1],
        "mocha_chunk_forward": lambda be: ops.mocha_chunk_forward(a0, p, chunk_size=2, backend=be)[1],
        "ctc_loss": lambda be: ctc_loss(logits3, tg, lens, tl, backend=be)[1],
        "rnnt_loss": lambda be: rnnt_loss(logits4, tg, lens, tl, backend=be)[1],
    }


@pytest.mark.parametrize("fn", ["lstm_forward", "lstm_step_forward", "monotonic_attention_forward",
                                "mocha_chunk_forward", "ctc_loss", "rnnt_loss"])
def test_every_kernel_backed_function_follows_the_rule(rng, fn):
    call = _calls(rng)[fn]
    assert call(None).backend == "numba"  # the cache holds the resolved name its backward will use
    assert call("numpy").backend == "numpy"
    assert call("numba").backend == "numba"
    with pytest.raises(ValueError, match=r"^backend:"):
        call("cuda")


def test_parallel_monotonic_attention_has_no_kernel(rng):
    p = rng.uniform(0.1, 0.9, (1, 4))
    a0 = np.eye(1, 4)
    assert ops.monotonic_attention_forward(p, a0, mode="parallel")[1].backend == "numpy"
    with pytest.raises(ValueError, match=r"^backend: 'numba' was requested"):
        ops.monotonic_attention_forward(p, a0, mode="parallel", backend="numba")
