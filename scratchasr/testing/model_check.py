"""Finite-difference check of a whole registered model (the contract's ``forward_loss``/``backward``).

    report = model_gradcheck(model, batch)              # every parameter tensor
    report = model_gradcheck(model, batch, feats=True)  # ... and the input features

Finite differences run ``forward_loss`` many times without a backward; each call's caches are moved
out of the model (:func:`take_caches`) and the analytic backward puts its own back
(:func:`restore_caches`), so no module is left holding a stale cache. Run it in float64 with
``dropout=0`` (STYLE.md: whole-model tolerance 1e-5).
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from .gradcheck import GradcheckReport, gradcheck

__all__ = ["model_gradcheck", "take_caches", "restore_caches"]


def take_caches(model) -> Dict[str, List[object]]:
    """Move every module's cache stack out of ``model``; returns them by module prefix."""
    taken = {}
    for prefix, m in model.named_modules():
        taken[prefix], m._caches = m._caches, []
    return taken


def restore_caches(model, taken: Dict[str, List[object]]) -> None:
    """Put back caches taken by :func:`take_caches` (a copy of each stack)."""
    for prefix, m in model.named_modules():
        m._caches = list(taken[prefix])


def model_gradcheck(model, batch, *, feats: bool = False, params: bool = True, rtol: float = 1e-5,
                    atol: float = 1e-9, seed: int = 0, max_full: int = 300, n_directions: int = 3,
                    n_coords: int = 8) -> GradcheckReport:
    """Check ``model.backward`` against central differences of ``model.forward_loss(batch)`` per utterance."""
    P = model.parameters()
    names = sorted(P) if params else []
    inputs, labels = [], []
    if feats:
        if batch.feats is None:
            raise ValueError("feats: the batch has no features (a language model batch)")
        inputs.append(np.array(batch.feats, dtype=np.float64))
        labels.append("feats")
    inputs += [P[k].copy() for k in names]
    labels += names

    def forward(*arrays):
        arrays = list(arrays)
        b = batch._replace(feats=arrays.pop(0).astype(batch.feats.dtype)) if feats else batch
        for k, a in zip(names, arrays):
            P[k][...] = a
        loss, _ = model.forward_loss(b)
        return loss, take_caches(model)

    def backward(dloss, caches):
        model.zero_grad()
        restore_caches(model, caches)
        dx = model.backward(dloss)
        G = model.gradients()
        out = [np.asarray(dx, dtype=np.float64)] if feats else []
        return tuple(out + [G[k].copy() for k in names])

    try:
        return gradcheck(forward, backward, inputs, names=labels, rtol=rtol, atol=atol, seed=seed,
                         max_full=max_full, n_directions=n_directions, n_coords=n_coords)
    finally:
        for k, a in zip(names, inputs[int(feats):]):
            P[k][...] = a                                   # the model leaves with its original weights
        take_caches(model)
