"""The model contract (API.md), checked for EVERY registered model: whatever registers next gets these
proofs for free.

For each name in ``models.available()``, built tiny in float64 with ``dropout=0``:
- ``forward_loss``'s gradient (``scratchasr.testing.model_gradcheck``) equals central finite differences
  for every parameter tensor (sampled coordinates plus random directions above ~1000 elements;
  STYLE.md's whole-model tolerance 1e-5);
- padding of ``feats`` may hold anything, NaN included: losses, gradients and decodes do not change;
- ``decode`` returns label ids (1 .. V-1) for greedy and beam search;
- a few Adam steps on one fixed batch lower the loss, updating the very arrays ``parameters()`` holds;
- bad input is refused with the argument named.
A model class may set ``TEST_OPTIONS`` (e.g. a frame rate its subsampling needs); the defaults are
``hidden=8, num_layers=1, dropout=0`` (+ ``heads=2``).
"""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import Batch, make_batch
from scratchasr.optim import Adam
from scratchasr.testing import model_gradcheck

D, V = 3, 6


def _options(name):
    cls = models.base._REGISTRY[name]
    opts = {k: v for k, v in dict(hidden=8, num_layers=1, dropout=0.0, heads=2).items() if k in cls.OPTIONS}
    opts.update(getattr(cls, "TEST_OPTIONS", {}))
    return opts


def _build(name, dtype=np.float64, seed=0):
    cls = models.base._REGISTRY[name]
    return models.build(name, input_dim=None if cls.IS_LM else D, vocab_size=V, dtype=dtype, seed=seed,
                        **_options(name))


def _batch(name, rng, dtype=np.float64, scale=1.0):
    cls = models.base._REGISTRY[name]
    T = getattr(cls, "TEST_FRAMES", (13, 9))
    targets = [[1, 2, 2], [3]]  # a repeated label, unequal lengths
    if cls.IS_LM:
        return make_batch(None, targets, ids=["u0", "u1"])
    feats = [scale * rng.standard_normal((T[0], D)).astype(dtype),
             scale * rng.standard_normal((T[1], D)).astype(dtype)]
    return make_batch(feats, targets, ids=["u0", "u1"])


NAMES = models.available()



@pytest.mark.parametrize("name", NAMES)
def test_forward_loss_gradient_equals_finite_differences(name):
    rng = np.random.default_rng(1)
    model = _build(name)
    batch = _batch(name, rng, scale=2.0)
    for p in model.parameters().values():  # larger weights than the init: outputs of scale 1..3
        p[...] *= 2.0
    report = model_gradcheck(model, batch)
    assert report.ok, f"{name}\n{report}"


@pytest.mark.parametrize("name", NAMES)
def test_padding_may_hold_anything(name):
    cls = models.base._REGISTRY[name]
    if cls.IS_LM:
        pytest.skip("language models take no features")
    rng = np.random.default_rng(2)
    model = _build(name)
    batch = _batch(name, rng)
    feats = batch.feats.copy()
    L = batch.feat_lengths
    feats[1, L[1]:] = np.nan
    noisy = batch._replace(feats=feats)
    model.zero_grad()
    loss_a, _ = model.forward_loss(batch)
    model.backward(np.ones(2))
    grads_a = {k: g.copy() for k, g in model.gradients().items()}
    model.zero_grad()
    loss_b, _ = model.forward_loss(noisy)
    model.backward(np.ones(2))
    np.testing.assert_array_equal(loss_a, loss_b)
    for k, g in model.gradients().items():
        np.testing.assert_array_equal(grads_a[k], g, err_msg=k)
    model.zero_grad()
    assert model.decode(batch) == model.decode(noisy)
    assert model.decode(batch, method="beam", beam_size=3) == model.decode(noisy, method="beam", beam_size=3)


@pytest.mark.parametrize("name", NAMES)
def test_decode_returns_label_ids(name):
    rng = np.random.default_rng(3)
    model = _build(name, dtype=np.float32)
    batch = _batch(name, rng, dtype=np.float32)
    model.eval()
    for method, beam in (("greedy", 1), ("beam", 1), ("beam", 4)):
        hyps = model.decode(batch, method=method, beam_size=beam)
        assert isinstance(hyps, list) and len(hyps) == batch.size
        for h in hyps:
            assert isinstance(h, list) and all(isinstance(t, int) and 1 <= t < V for t in h), h
    with pytest.raises(ValueError, match=r"^method:"):
        model.decode(batch, method="nonsense")
    with pytest.raises(ValueError, match=r"^beam_size:"):
        model.decode(batch, method="beam", beam_size=0)


@pytest.mark.parametrize("name", NAMES)
def test_a_few_steps_lower_the_loss(name):
    rng = np.random.default_rng(4)
    model = _build(name, dtype=np.float32)
    batch = _batch(name, rng, dtype=np.float32)
    params = model.parameters()
    before = {k: id(v) for k, v in params.items()}
    opt = Adam(params, lr=0.02)
    first = None
    for _ in range(15):
        model.zero_grad()
        loss, _ = model.forward_loss(batch)
        model.backward(np.full(batch.size, 1.0 / batch.size, np.float32))
        opt.step(model.gradients())
        first = float(loss.mean()) if first is None else first
    model.eval()
    last = float(model.forward_loss(batch)[0].mean())
    assert last < 0.7 * first, (name, first, last)
    assert {k: id(v) for k, v in model.parameters().items()} == before  # updated in place, never rebound


@pytest.mark.parametrize("name", NAMES)
def test_bad_batches_are_refused_by_name(name):
    cls = models.base._REGISTRY[name]
    rng = np.random.default_rng(5)
    model = _build(name)
    batch = _batch(name, rng)
    with pytest.raises(ValueError, match=r"^batch\.targets:"):
        model.forward_loss(batch._replace(targets=np.where(batch.targets == 3, V, batch.targets)))
    if not cls.IS_LM:
        with pytest.raises(ValueError, match=r"^batch\.feats:"):
            model.forward_loss(batch._replace(feats=batch.feats[:, :, :2]))
        bad = batch.feats.copy()
        bad[0, 0, 0] = np.nan
        with pytest.raises(ValueError, match=r"^batch\.feats:.*u0"):
            model.forward_loss(batch._replace(feats=bad))
    model.clear_caches()


def test_batch_is_the_api_namedtuple():
    b = Batch(None, None, np.zeros((1, 0), np.int64), np.zeros(1, np.int64))
    assert b.ids is None and b.size == 1


def test_rebuilding_from_a_config_resets_init_only_options():
    class WithPath(models.base._REGISTRY["ctc_blstm"]):
        INIT_ONLY = ("init_from",)
        OPTIONS = dict(models.base._REGISTRY["ctc_blstm"].OPTIONS, init_from="")

        def __init__(self, *, init_from, **kw):
            if init_from:
                raise FileNotFoundError(init_from)   # a checkpoint that is gone by the time we reload
            super().__init__(**kw)

    models.register("test_init_only")(WithPath)
    try:
        m = models.build("test_init_only", input_dim=3, vocab_size=5, hidden=4, num_layers=1)
        cfg = dict(m.config, options=dict(m.config["options"], init_from="/gone/ctc.npz"))
        assert models.build_from_config(cfg).config["options"]["init_from"] == ""
    finally:
        models.base._REGISTRY.pop("test_init_only")
