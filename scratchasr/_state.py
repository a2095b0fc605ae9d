"""Row selection in decoder states: the (nested) tuples/NamedTuples/lists/dicts of arrays that models' and
language models' step interfaces carry, one row per hypothesis (leading axis). Beam searches keep the rows
of the surviving hypotheses (:func:`gather_state`) and overwrite the rows that advanced
(:func:`scatter_state`). A module of its own so that decode/ and models/ both use it without importing each
other at load time."""

from __future__ import annotations

import numpy as np

__all__ = ["gather_state", "scatter_state"]


def gather_state(state, idx):
    """Pick rows ``idx`` of every array in a (nested) tuple/NamedTuple/list/dict state; None stays None."""
    if state is None:
        return None
    if isinstance(state, np.ndarray):
        return state[idx]
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(gather_state(s, idx) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(gather_state(s, idx) for s in state)
    if isinstance(state, dict):
        return {k: gather_state(v, idx) for k, v in state.items()}
    return state  # scalars and other constants are shared by every row


def scatter_state(state, idx, sub):
    """A copy of ``state`` (nested NamedTuples/tuples/lists/dicts of arrays, leading axis = row) with rows
    ``idx`` replaced by ``sub`` (a state of the same structure, e.g. from :func:`gather_state`)."""
    if isinstance(state, np.ndarray):
        out = state.copy()
        out[idx] = sub
        return out
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(scatter_state(a, idx, b) for a, b in zip(state, sub)))
    if isinstance(state, (tuple, list)):
        return type(state)(scatter_state(a, idx, b) for a, b in zip(state, sub))
    if isinstance(state, dict):
        return {k: scatter_state(state[k], idx, sub[k]) for k in state}
    return state
