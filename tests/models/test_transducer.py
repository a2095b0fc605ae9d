"""Transducer model specifics beyond the contract test (tests/models/test_contract.py): the loss against
a brute-force sum over alignments of the model's own encoder/prediction outputs, the joint's backward,
chunking (same numbers, bounded memory), the step interface, the causal encoder on chunks, PreTrans,
FastEmit/clamp and option validation."""

import tracemalloc

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.io import save_checkpoint
from scratchasr.models.transducer import joint_backward, joint_forward
from scratchasr.testing import gradcheck, model_gradcheck
from scratchasr.testing.model_check import restore_caches, take_caches
from scratchasr.testing.transducer_reference import brute_force_log_likelihood, lattice_log_probs

D, V = 3, 4


def _model(dtype=np.float64, **kw):
    opts = dict(hidden=4, num_layers=1, pred_hidden=3, joint_dim=5)
    opts.update(kw)
    return models.build("transducer", input_dim=D, vocab_size=V, dtype=dtype, seed=0, **opts)


def _batch(rng, lengths=(5, 3), targets=([1, 2, 2], [3]), dtype=np.float64):
    return make_batch([rng.standard_normal((n, D)).astype(dtype) for n in lengths], list(targets))


@pytest.mark.parametrize("opts", [dict(), dict(stack=2, bidirectional=False, pred_layers=2)])
def test_loss_equals_brute_force_sum_over_alignments(rng, opts):
    """forward_loss == -log sum over every alignment of the joint outputs of the same encoder/predictor."""
    model = _model(**opts)
    model.eval()
    batch = _batch(rng, lengths=(5, 4))
    loss, _ = model.forward_loss(batch)
    f, f_len = model.encode(batch.feats, batch.feat_lengths)
    for b in range(2):
        y = list(batch.targets[b, :batch.target_lengths[b]])
        lp = lattice_log_probs(model, f[b, :f_len[b]], y)        # through init_state/step/joint_step
        np.testing.assert_allclose(loss[b], -brute_force_log_likelihood(lp, y), rtol=1e-10)


def test_joint_backward_gradcheck(rng):
    f, g = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 2, 4))
    W, b = rng.standard_normal((5, 4)), rng.standard_normal(5)
    report = gradcheck(joint_forward, lambda dz, c: joint_backward(dz, c)[:2] + joint_backward(dz, c)[2:],
                       [f, g, W, b], rtol=1e-7)
    assert report.ok, str(report)
    z, cache = joint_forward(f, g, W, b)
    dz = rng.standard_normal(z.shape)
    df, dg, dW, db = joint_backward(dz, cache)
    _, _, dWb, dbb = joint_backward(dz, cache, per_utterance=True)
    np.testing.assert_allclose(dWb.sum(0), dW, rtol=1e-12)
    np.testing.assert_allclose(dbb.sum(0), db, rtol=1e-12)


def test_whole_model_gradient_with_input_stacking_and_two_layer_predictor(rng):
    model = _model(stack=2, bidirectional=False, pred_layers=2, num_layers=2)
    for p in model.parameters().values():
        p[...] *= 2.0
    batch = _batch(rng, lengths=(7, 4))
    report = model_gradcheck(model, batch, feats=True)
    assert report.ok, str(report)
    model.forward_loss(batch)
    dx = model.backward(np.array([1.0, 0.5]))
    assert np.all(dx[1, 4:] == 0)


@pytest.mark.parametrize("chunk", [1, 2])
def test_chunking_gives_the_same_loss_and_gradients(rng, chunk):
    batch = _batch(rng, lengths=(6, 4, 5), targets=([1, 2], [3], [2, 2, 1]))
    out = []
    for c in (0, chunk):
        model = _model(joint_chunk=c)
        model.zero_grad()
        loss, _ = model.forward_loss(batch)
        dx = model.backward(np.array([1.0, -0.5, 2.0]))
        out.append((loss, dx, {k: g.copy() for k, g in model.gradients().items()}))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-12)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-10, atol=1e-14)
    for k in out[0][2]:
        np.testing.assert_allclose(out[0][2][k], out[1][2][k], rtol=1e-10, atol=1e-14, err_msg=k)


def test_chunking_bounds_peak_memory(rng):
    """Peak traced memory of forward_loss + backward with one utterance per chunk is well below the whole
    batch at once (the lattice-sized arrays dominate: B T U J)."""
    batch = _batch(rng, lengths=(40,) * 8, targets=[[1, 2, 3] * 5] * 8, dtype=np.float32)
    peaks = {}
    for c in (0, 1):
        model = _model(dtype=np.float32, joint_dim=64, joint_chunk=c)
        model.forward_loss(batch)   # warm up (Numba compilation allocates)
        model.backward(np.ones(8, np.float32))
        tracemalloc.start()
        model.forward_loss(batch)
        model.backward(np.ones(8, np.float32))
        peaks[c] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[1] < 0.5 * peaks[0], peaks


def test_step_interface_matches_the_training_graph(rng):
    model = _model(pred_layers=2)
    model.eval()
    y = np.array([[1, 3, 2]])
    g_full = model._prediction_out(y, np.array([3]))[0]           # (U+1, J)
    state = model.init_state(1)
    g, state = model.step(state, np.zeros(1, np.int64))
    rows = [g[0]]
    for k in y[0]:
        g, state = model.step(state, np.array([k]))
        rows.append(g[0])
    np.testing.assert_allclose(np.array(rows), g_full, rtol=1e-12, atol=1e-14)
    f = rng.standard_normal((4, 5))
    z, _ = joint_forward(f[None], g_full[None], model.joint_out.params["W"], model.joint_out.params["b"])
    lp = model.joint_step(f[1:2], g_full[2:3])
    ref = z[0, 1, 2] - np.logaddexp.reduce(z[0, 1, 2])
    np.testing.assert_allclose(lp[0], ref, rtol=1e-12)
    with pytest.raises(ValueError, match=r"^tokens:"):
        model.step(state, np.array([V]))


def test_encode_chunk_carries_states(rng):
    model = _model(stack=2, bidirectional=False, num_layers=2)
    x = rng.standard_normal((1, 11, D))
    f, _ = model.encode(x, np.array([11]))
    state = model.encoder_init_state(1)
    parts = []
    for a, b in ((0, 4), (4, 6), (6, 10), (10, 11)):
        fc, state = model.encode_chunk(x[:, a:b], state)
        parts.append(fc)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), f, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match=r"^model:"):
        _model().encode_chunk(x, _model().encoder_init_state(1))


def test_pretrans_copies_the_ctc_encoder(tmp_path):
    ctc = models.build("ctc_blstm", input_dim=D, vocab_size=V, dtype=np.float64, seed=7, hidden=4,
                       num_layers=2)
    path = tmp_path / "ctc.npz"
    save_checkpoint(path, ctc.parameters())
    model = _model(num_layers=2, pretrained_encoder=str(path))
    for k, v in ctc.parameters().items():
        if k.startswith("encoder."):
            np.testing.assert_array_equal(model.parameters()[k], v)
    with pytest.raises(ValueError, match=r"^pretrained_encoder:"):
        _model(num_layers=3, pretrained_encoder=str(path))   # a layer missing in the checkpoint
    with pytest.raises(ValueError, match=r"^pretrained_encoder:"):
        _model(num_layers=2, hidden=5, pretrained_encoder=str(path))   # shapes differ


def test_fastemit_changes_the_gradient_not_the_loss_and_clamp_bounds_it(rng):
    batch = _batch(rng)
    res = {}
    for lam, clamp in ((0.0, -1.0), (0.5, -1.0), (0.0, 1e-3)):
        model = _model(fastemit_lambda=lam, clamp=clamp)
        loss, _ = model.forward_loss(batch)
        model.backward(np.ones(2))
        res[(lam, clamp)] = (loss, model.gradients()["joint_out.b"].copy())
    base = res[(0.0, -1.0)]
    np.testing.assert_allclose(res[(0.5, -1.0)][0], base[0], rtol=1e-12)
    assert not np.allclose(res[(0.5, -1.0)][1], base[1])
    assert not np.allclose(res[(0.0, 1e-3)][1], base[1])


def test_utterance_without_frames_is_inf_and_gets_no_gradient(rng):
    model = _model()
    batch = _batch(rng, lengths=(5, 3))
    batch = batch._replace(feat_lengths=np.array([5, 0]))
    loss, stats = model.forward_loss(batch)
    assert np.isfinite(loss[0]) and loss[1] == np.inf and stats["utterances"] == 1.0
    model.backward(np.ones(2))
    g1 = {k: g.copy() for k, g in model.gradients().items()}
    model.zero_grad()
    model.forward_loss(batch)
    model.backward(np.array([1.0, 0.0]))
    for k, g in model.gradients().items():
        np.testing.assert_array_equal(g, g1[k], err_msg=k)


@pytest.mark.parametrize("opt, value", [("joint_chunk", -1), ("fastemit_lambda", -0.1), ("dropout", 1.0),
                                        ("joint_dim", 0), ("pred_hidden", 0), ("clamp", float("nan"))])
def test_bad_options_are_refused_by_name(opt, value):
    with pytest.raises((ValueError, TypeError), match=rf"^{opt}:"):
        _model(**{opt: value})


def test_prediction_network_lm_loss_gradient_and_pretraining(rng, tmp_path):
    """The label-LM loss of the prediction network: exact next-label log-probs, FD gradient, training lowers
    it, and its embed/predictor arrays initialise a transducer through ``pretrained_predictor``."""
    from scratchasr.models.transducer import pretrain_prediction_network
    model = _model(pred_layers=2)
    batch = make_batch(None, [[1, 2, 2], [3], []])
    loss, _ = model.lm_forward_loss(batch)
    model.clear_caches()
    # by hand: prefix 1 2 predicts 2, ..., the full prefix predicts id 0 (</s>)
    model.eval()
    state = model.init_state(1)
    b = model.joint_enc.params["b"][None]
    total = 0.0
    for prev, nxt in zip([0, 1, 2, 2], [1, 2, 2, 0]):
        g, state = model.step(state, np.array([prev]))
        total -= model.joint_step(b, g)[0, nxt]
    np.testing.assert_allclose(loss[0], total, rtol=1e-10)
    model.train()

    P = model.parameters()
    names = [k for k in sorted(P) if not k.startswith("encoder.")]

    def forward(*arrays):
        for k, a in zip(names, arrays):
            P[k][...] = a
        out, _ = model.lm_forward_loss(batch)
        return out, take_caches(model)

    def backward(dloss, caches):
        model.zero_grad()
        restore_caches(model, caches)
        model.lm_backward(dloss)
        G = model.gradients()
        return tuple(G[k].copy() for k in names)

    originals = [P[k].copy() for k in names]
    report = gradcheck(forward, backward, originals, names=names, rtol=1e-5, atol=1e-9)  # a whole model's
    for k, a in zip(names, originals):
        P[k][...] = a
    take_caches(model)
    assert report.ok, str(report)

    starts, lens = rng.integers(1, V, size=20), rng.integers(1, 6, size=20)
    seqs = [[(s - 1 + j) % (V - 1) + 1 for j in range(n)] for s, n in zip(starts, lens)]   # 1 2 3 1 2 ...
    hist = pretrain_prediction_network(model, seqs, epochs=15, lr=0.05, batch_size=8)
    assert hist[-1] < 0.8 * hist[0], hist
    path = tmp_path / "pred.npz"
    save_checkpoint(path, model.parameters())
    fresh = _model(pred_layers=2, pretrained_predictor=str(path))
    for k in names:
        if k.startswith(("embed.", "predictor.")):
            np.testing.assert_array_equal(fresh.parameters()[k], model.parameters()[k])
    with pytest.raises(ValueError, match=r"^pretrained_predictor:"):
        _model(pred_layers=1, pred_hidden=4, pretrained_predictor=str(path))
