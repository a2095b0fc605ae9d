"""The module protocol, checked on every nn class and, statically, on the source of ops/losses/nn/decode.

1. Parameters are registered with ``add_param`` (same keys in params and grads, fresh zero gradients).
2. Caches go through ``push``/``pop``: eval-mode forwards keep nothing; ``clear_caches`` drops them.
3. Parameter arrays are updated in place, never rebound, so an optimizer built before a conversion or a
   load keeps updating the module's own arrays.
4. Backward functions read caches by field name: no positional unpacking of a cache anywhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from scratchasr import nn
from scratchasr.nn.mocha import MochaDecoder
from scratchasr.optim import Adam

ROOT = Path(__file__).resolve().parents[2]


def _modules(rng):
    """One small instance of every nn class with parameters, and a training forward for each."""
    x = rng.standard_normal((2, 5, 4))
    lengths = np.array([5, 3])
    ids = np.array([[1, 2, 3, 0, 0], [4, 1, 0, 0, 0]])
    return {
        "LSTM": (nn.LSTM(4, 3, num_layers=2, bidirectional=True, proj_size=2, dtype=np.float64),
                 lambda m: m(x, lengths)),
        "MultiHeadAttention": (nn.MultiHeadAttention(4, 2, dtype=np.float64), lambda m: m(x)),
        "RelPositionMultiHeadAttention": (nn.RelPositionMultiHeadAttention(4, 2, dtype=np.float64),
                                          lambda m: m(x)),
        "MochaDecoder": (MochaDecoder(enc_dim=4, vocab=5, embed_dim=3, hidden=4, att_dim=3, dtype=np.float64),
                         lambda m: m(x, lengths, ids[:, :3])),
        "Linear": (nn.Linear(4, 3, rng=rng, dtype=np.float64), lambda m: m(x, lengths)),
        "Embedding": (nn.Embedding(6, 3, rng=rng, dtype=np.float64), lambda m: m(ids, lengths)),
        "LayerNorm": (nn.LayerNorm(4, dtype=np.float64), lambda m: m(x, lengths)),
        "BatchNorm": (nn.BatchNorm(4, dtype=np.float64), lambda m: m(x, lengths)),
        "Conv1d": (nn.Conv1d(4, 3, 3, rng=rng, dtype=np.float64), lambda m: m(x, lengths)[0]),
        "Conv2d": (nn.Conv2d(1, 3, 3, rng=rng, dtype=np.float64), lambda m: m(x[:, None], lengths)[0]),
    }


NAMES = ["LSTM", "MultiHeadAttention", "RelPositionMultiHeadAttention", "MochaDecoder", "Linear", "Embedding",
         "LayerNorm", "BatchNorm", "Conv1d", "Conv2d"]


@pytest.mark.parametrize("name", NAMES)
def test_parameters_registered_and_caches_on_the_stack(rng, name):
    m, fwd = _modules(rng)[name]
    assert m.params and list(m.params) == list(m.grads)
    for k, p in m.params.items():
        g = m.grads[k]
        assert g is not p and g.shape == p.shape and g.dtype == p.dtype and not g.any()
    y = fwd(m)
    assert len(m._caches) == 1  # one push per forward
    with pytest.raises(RuntimeError, match=r"^zero_grad:"):
        m.zero_grad()
    m.clear_caches()
    m.zero_grad()
    m.eval()
    y_eval = fwd(m)
    assert not m._caches  # nothing kept in eval mode
    m.train()
    fwd(m)
    m.backward(np.ones_like(y))  # the pushed cache is consumed through pop
    assert not m._caches and any(g.any() for g in m.grads.values())
    with pytest.raises(RuntimeError, match="no cache left"):
        m.backward(np.ones_like(y_eval))


def test_clear_caches_reaches_children(rng):
    net = nn.Sequential(nn.Linear(4, 4, rng=rng), nn.ReLU(), nn.Linear(4, 2, rng=rng))
    net(rng.standard_normal((2, 3, 4)).astype(np.float32), np.array([3, 2]))
    assert sum(len(m._caches) for _, m in net.named_modules()) == 3
    net.clear_caches()
    assert all(not m._caches for _, m in net.named_modules())
    net.zero_grad()


def _torch_lstm_state(rng, D, H, layers, dtype=np.float64):
    sd = {}
    for layer in range(layers):
        for sfx in ("", "_reverse"):
            d_in = D if layer == 0 else 2 * H
            sd[f"weight_ih_l{layer}{sfx}"] = rng.standard_normal((4 * H, d_in)).astype(dtype)
            sd[f"weight_hh_l{layer}{sfx}"] = rng.standard_normal((4 * H, H)).astype(dtype)
            sd[f"bias_ih_l{layer}{sfx}"] = rng.standard_normal(4 * H).astype(dtype)
            sd[f"bias_hh_l{layer}{sfx}"] = rng.standard_normal(4 * H).astype(dtype)
    return sd


def _step_moves_module_arrays(m, load):
    """Build Adam first, then load/convert, then step: the module's own arrays must move."""
    before_ids = {k: id(v) for k, v in m.parameters().items()}
    opt = Adam(m.parameters(), lr=0.1)
    load()
    assert {k: id(v) for k, v in m.parameters().items()} == before_ids  # nothing rebound
    loaded = m.state_dict()
    grads = {k: np.ones_like(v) for k, v in m.parameters().items()}
    opt.step(grads)
    for k, v in m.parameters().items():
        assert opt.params[k] is v
        assert not np.allclose(v, loaded[k]), k  # the optimizer's step reached the module


def test_lstm_torch_load_keeps_optimizer_arrays(rng):
    m = nn.LSTM(3, 2, num_layers=2, bidirectional=True)  # float32 parameters
    sd = _torch_lstm_state(rng, 3, 2, 2)  # float64 source, cast on the way in
    _step_moves_module_arrays(m, lambda: m.load_torch_state_dict(sd))
    assert m.params["W_ih_l0"].dtype == np.float32


def test_lstm_torch_load_values_and_shape_errors(rng):
    m = nn.LSTM(3, 2, num_layers=1, bidirectional=True, dtype=np.float64)
    sd = _torch_lstm_state(rng, 3, 2, 1)
    m.load_torch_state_dict(sd)
    np.testing.assert_array_equal(m.params["b_l0_reverse"],
                                  sd["bias_ih_l0_reverse"] + sd["bias_hh_l0_reverse"])
    before = m.state_dict()
    bad = dict(sd, weight_hh_l0_reverse=np.zeros((8, 3)))
    with pytest.raises(ValueError, match=r"^state_dict:"):
        m.load_torch_state_dict(bad)
    for k, v in m.state_dict().items():  # checked before anything was written
        np.testing.assert_array_equal(v, before[k])


def test_mha_torch_load_keeps_optimizer_arrays(rng):
    E = 4
    m = nn.MultiHeadAttention(E, 2)
    sd = {"in_proj_weight": rng.standard_normal((3 * E, E)), "in_proj_bias": rng.standard_normal(3 * E),
          "out_proj.weight": rng.standard_normal((E, E)), "out_proj.bias": rng.standard_normal(E)}
    _step_moves_module_arrays(m, lambda: m.load_torch_state_dict(sd))


def test_assign_params_checks_names_and_shapes(rng):
    m = nn.Linear(3, 2, rng=rng)
    with pytest.raises(ValueError, match=r"^weights: unexpected parameter 'V'"):
        m.assign_params({"V": np.zeros((2, 3))}, source="weights")
    with pytest.raises(ValueError, match=r"^state_dict: W has shape"):
        m.assign_params({"W": np.zeros((3, 2))})
    W = m.params["W"]
    m.assign_params({"W": np.arange(6.0).reshape(2, 3)})
    assert m.params["W"] is W and W.dtype == np.float32 and W[1, 2] == 5.0


# ----------------------------------------------------------------------------- static checks of the source

def _py_files(*subdirs):
    for sub in subdirs:
        yield from sorted((ROOT / "scratchasr" / sub).rglob("*.py"))


def _is_cache_source(node) -> bool:
    """``cache``, ``*_cache``, ``self.pop()``, ``caches[i]``/``caches.pop()``: things that hold a cache."""
    if isinstance(node, ast.Name):
        return node.id == "cache" or node.id.endswith("_cache")
    if isinstance(node, ast.Attribute):
        return node.attr == "cache" or node.attr.endswith("_cache")
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("pop", "_pop")):
        return True
    if isinstance(node, ast.Subscript):
        return _is_cache_source(node.value) or (isinstance(node.value, ast.Name) and "cache" in node.value.id)
    return False


def test_no_positional_unpacking_of_caches():
    bad = []
    for f in _py_files("ops", "losses", "nn", "decode"):
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.Assign):  # (iterating over a list of caches is fine)
                continue
            unpacks = any(isinstance(t, (ast.Tuple, ast.List)) for t in node.targets)
            if unpacks and _is_cache_source(node.value):
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    assert not bad, "caches unpacked by position (read them by field name):\n" + "\n".join(bad)


def test_nn_modules_never_rebind_parameters_or_touch_the_cache_stack():
    bad = []
    for f in _py_files("nn"):
        if f.name == "module.py":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    base = t.value if isinstance(t, ast.Subscript) else t
                    if (isinstance(base, ast.Attribute) and base.attr in ("params", "grads", "_caches")
                            and not (isinstance(node, ast.AugAssign) and base.attr == "grads")):
                        bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
            if isinstance(node, ast.Attribute) and node.attr == "_caches":
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno}: uses _caches (push/pop/clear_caches)")
    assert not bad, "use add_param, push/pop/clear_caches and in-place updates:\n" + "\n".join(bad)
