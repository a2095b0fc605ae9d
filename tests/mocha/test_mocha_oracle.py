"""Oracle: the hand-derived backward against torch autograd of the same forward equations.

No peer library ships MoChA, so the oracle is torch's autograd run through a direct transcription
of the papers' equations (the recursion for alpha, TF's safe-cumprod closed form, and the chunk
double sum). It checks our gradients with an independent differentiation method."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.ops.mocha import (mocha_chunk_backward, mocha_chunk_forward, monotonic_attention_backward,
                                  monotonic_attention_forward)


def _torch_alpha(torch, p, a, mode):
    if mode == "recursive":
        q = a[:, 0]
        cols = [p[:, 0] * q]
        for j in range(1, p.shape[1]):
            q = (1 - p[:, j - 1]) * q + a[:, j]
            cols.append(p[:, j] * q)
        return torch.stack(cols, 1)
    tiny = torch.finfo(torch.float64).tiny
    log_x = torch.log(torch.clamp(1 - p, tiny, 1))
    cp = torch.exp(torch.cumsum(torch.nn.functional.pad(log_x, (1, 0))[:, :-1], 1))
    return p * cp * torch.cumsum(a / torch.clamp(cp, 1e-10, 1), 1)


def _torch_beta(torch, alpha, u, w):
    B, T = alpha.shape
    cols = []
    for j in range(T):
        acc = torch.zeros(B, dtype=alpha.dtype)
        for k in range(j, min(j + w, T)):
            lo = max(0, k - w + 1)
            acc = acc + alpha[:, k] * torch.softmax(u[:, lo:k + 1], 1)[:, j - lo]
        cols.append(acc)
    return torch.stack(cols, 1)


@pytest.mark.oracle
@pytest.mark.parametrize("mode", ["recursive", "parallel"])
@pytest.mark.parametrize("w", [1, 3])
def test_against_torch_autograd(mode, w):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(w)
    B, T = 3, 9
    p = rng.uniform(0.05, 0.95, size=(B, T))
    a = rng.dirichlet(np.ones(T), size=B)
    u = 3 * rng.standard_normal((B, T))
    dbeta = rng.standard_normal((B, T))
    alpha, ca = monotonic_attention_forward(p, a, mode=mode)
    beta, cb = mocha_chunk_forward(alpha, u, chunk_size=w)
    dalpha, du = mocha_chunk_backward(dbeta, cb)
    dp, da = monotonic_attention_backward(dalpha, ca)
    tp, ta, tu = (torch.tensor(x, requires_grad=True) for x in (p, a, u))
    tbeta = _torch_beta(torch, _torch_alpha(torch, tp, ta, mode), tu, w)
    (tbeta * torch.tensor(dbeta)).sum().backward()
    np.testing.assert_allclose(beta, tbeta.detach().numpy(), rtol=1e-12, atol=1e-15)
    for ours, theirs in ((dp, tp), (da, ta), (du, tu)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-13)
