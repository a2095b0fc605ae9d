"""The "mocha" model beyond the contract walk (tests/models/test_contract.py): options, gradients in every
mode, batch independence, the step interface against offline hard decoding, the beam search against
brute-force enumeration (with and without a language model), and the streamer against offline decoding
for random chunkings, including *when* each label is emitted."""

import functools

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.attention import brute_force_best
from scratchasr.models.mocha import MochaMemory, max_labels
from scratchasr.optim import Adam
from scratchasr.testing import model_gradcheck

D = 3


def _build(V=6, dtype=np.float64, seed=0, **opts):
    base = dict(hidden=8, num_layers=1, dropout=0.0, stack=1, chunk_size=2, embed_dim=4, att_dim=4,
                noise_std=0.0, label_smoothing=0.1)
    base.update(opts)
    return models.build("mocha", input_dim=D, vocab_size=V, dtype=dtype, seed=seed, **base)


def _toy(rng, n, V=6):
    """Utterances of 2-5 labels, each label a few frames of its own feature vector plus noise."""
    emb = np.random.default_rng(123).standard_normal((V, D)) * 1.5
    feats, targets = [], []
    for _ in range(n):
        y = [int(v) for v in rng.integers(1, V, size=rng.integers(2, 6))]
        x = np.concatenate([np.repeat(emb[[v]], rng.integers(2, 5), 0) for v in y])
        feats.append(x + 0.3 * rng.standard_normal(x.shape))
        targets.append(y)
    return feats, targets


@functools.lru_cache(maxsize=None)
def _trained_state(stack):
    """A model trained for 200 Adam steps on the toy task: its hard attention moves from frame to frame
    (an untrained one stops on no frame at all, r = -4, or on one frame forever: trivial paths)."""
    rng = np.random.default_rng(stack)
    m = _build(hidden=16, num_layers=2, stack=stack, embed_dim=8, att_dim=8, noise_std=1.0,
               label_smoothing=0.0)
    m.decoder.params["r"][...] = -1.0
    opt = Adam(m.parameters(), lr=0.02)
    for _ in range(200):
        feats, targets = _toy(rng, 8)
        m.zero_grad()
        m.forward_loss(make_batch(feats, targets))
        m.backward(np.full(8, 1 / 8))
        opt.step(m.gradients())
    return m.state_dict()


def _trained(stack=2, chunk_size=2):
    m = _build(hidden=16, num_layers=2, stack=stack, embed_dim=8, att_dim=8, chunk_size=chunk_size)
    m.load_state_dict(_trained_state(stack))
    return m


def _feats(rng, lengths, dtype=np.float64):
    return [rng.standard_normal((T, D)).astype(dtype) for T in lengths]


# ------------------------------------------------------------------------------------------------ options

@pytest.mark.parametrize("opt, value", [("heads", 2), ("mode", "soft"), ("chunk_size", 0),
                                        ("label_smoothing", 1.0), ("noise_std", -1.0), ("dropout", 1.0),
                                        ("stack", 0), ("att_dim", 0),
                                        ("r_init", float("nan"))])
def test_bad_options_are_refused_by_name(opt, value):
    with pytest.raises((ValueError, TypeError), match=rf"^{opt}:"):
        _build(**{opt: value})


def test_bad_decode_arguments_are_refused_by_name():
    m = _build()
    batch = make_batch(_feats(np.random.default_rng(0), [5, 4]), [[1], [2]])
    with pytest.raises(ValueError, match=r"^max_len_ratio:"):
        m.decode(batch, max_len_ratio=0)
    with pytest.raises(TypeError, match=r"^length_reward:"):
        m.decode(batch, method="beam", beam_size=2, length_reward="x")
    with pytest.raises(ValueError, match=r"^beam_size:"):
        m.decode(batch, method="beam", beam_size=0)
    with pytest.raises(TypeError, match=r"^memory:"):
        m.init_state(2, memory=batch.feats)


# ------------------------------------------------------------------------------------------------ gradients

@pytest.mark.parametrize("opts", [dict(mode="parallel", chunk_size=3), dict(chunk_size=1, stack=2),
                                  dict(num_layers=2, label_smoothing=0.0)])
def test_gradient_in_every_mode(opts):
    rng = np.random.default_rng(11)
    m = _build(**opts)
    for p in m.parameters().values():
        p[...] *= 2.0
    m.decoder.params["r"][...] = -1.0  # the alignment moves within these few frames
    batch = make_batch(_feats(rng, [8, 5], np.float64), [[1, 2, 2], [3]])
    report = model_gradcheck(m, batch, feats=True)
    assert report.ok, str(report)


def test_parallel_mode_gives_the_recursive_loss_on_short_inputs():
    """The cumulative-product form is exact while the products stay above its 1e-10 floor (short inputs)."""
    rng = np.random.default_rng(12)
    batch = make_batch(_feats(rng, [8, 5]), [[1, 2, 2], [3]])
    losses = []
    for mode in ("recursive", "parallel"):
        m = _build(mode=mode, chunk_size=3)
        m.decoder.params["r"][...] = -1.0
        loss, _ = m.forward_loss(batch)
        m.clear_caches()
        losses.append(loss)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-9)


def test_noise_and_dropout_act_in_training_only():
    rng = np.random.default_rng(13)
    m = _build(noise_std=1.0, dropout=0.3, num_layers=2)
    batch = make_batch(_feats(rng, [8, 5]), [[1, 2], [3]])
    a, _ = m.forward_loss(batch)
    b, _ = m.forward_loss(batch)
    m.clear_caches()
    assert not np.allclose(a, b)                       # a new noise draw and dropout mask each time
    m.eval()
    c, _ = m.forward_loss(batch)
    d, _ = m.forward_loss(batch)
    np.testing.assert_array_equal(c, d)
    m.train()
    m.decoder.noise_std, m.encoder.dropout = 0.0, 0.0
    e, _ = m.forward_loss(batch)
    m.clear_caches()
    np.testing.assert_allclose(c, e, rtol=1e-12)       # eval = training without noise and dropout


def test_loss_of_an_utterance_does_not_depend_on_its_batch():
    rng = np.random.default_rng(3)
    m = _build()
    feats = _feats(rng, [9, 6, 12])
    targets = [[1, 2], [4, 4, 5], [3]]
    together, _ = m.forward_loss(make_batch(feats, targets))
    m.clear_caches()
    for b in range(3):
        alone, _ = m.forward_loss(make_batch([feats[b]], [targets[b]]))
        m.clear_caches()
        np.testing.assert_allclose(together[b], alone[0], rtol=1e-12)


def test_loss_is_teacher_forced_cross_entropy_ending_with_eos():
    """label_smoothing 0: the loss is -sum_i log P(y_i | <sos> y_<i) with y_{U+1} = <eos>, where P comes from
    the decoder's logits for the inputs <sos> y_1 .. y_U."""
    from scratchasr.nn.mocha import decoder_forward
    rng = np.random.default_rng(4)
    m = _build(label_smoothing=0.0)
    m.eval()
    batch = make_batch(_feats(rng, [7]), [[2, 5, 1]])
    loss, _ = m.forward_loss(batch)
    h = m.encode(batch).enc
    logits, _ = decoder_forward(m.decoder.params, h, [7], np.array([[0, 2, 5, 1]]), chunk_size=2)
    lp = logits[0] - np.log(np.exp(logits[0]).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss[0], -(lp[0, 2] + lp[1, 5] + lp[2, 1] + lp[3, 0]), rtol=1e-12)


def test_an_utterance_without_frames_has_inf_loss_and_no_gradient():
    rng = np.random.default_rng(5)
    m = _build()
    batch = make_batch([rng.standard_normal((6, D)), np.zeros((0, D))], [[1, 2], [3]])
    loss, _ = m.forward_loss(batch)
    assert np.isfinite(loss[0]) and loss[1] == np.inf
    dx = m.backward(np.array([0.0, 1.0]))
    assert all(not g.any() for g in m.gradients().values())
    assert not dx.any()
    assert m.decode(batch)[1] == [] and m.decode(batch, method="beam", beam_size=2)[1] == []


def test_ctc_branch_adds_weighted_ctc_and_refuses_too_short_utterances():
    """loss = (1 - lambda) attention CE + lambda CTC; an utterance with fewer frames than CTC needs (3 labels
    with a repeat need 4) is inf with no gradient, the other one trains."""
    from scratchasr.losses import ctc_loss
    rng = np.random.default_rng(14)
    m = _build(ctc_weight=0.4)
    m.eval()
    batch = make_batch(_feats(rng, [9, 3]), [[1, 2], [4, 4, 5]])
    loss, stats = m.forward_loss(batch)
    assert np.isfinite(loss[0]) and loss[1] == np.inf
    plain = _build(ctc_weight=0.0)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if not k.startswith("ctc.")})
    plain.eval()
    att, _ = plain.forward_loss(batch)
    mem = m.encode(batch)
    ctc, _ = ctc_loss(m.ctc(mem.enc, mem.lengths), batch.targets, mem.lengths, batch.target_lengths,
                      reduction="none")
    np.testing.assert_allclose(loss[0], 0.6 * att[0] + 0.4 * ctc[0], rtol=1e-12)
    m.train()
    m.forward_loss(batch)
    m.backward(np.array([0.0, 1.0]))
    assert all(not g.any() for g in m.gradients().values())


# ------------------------------------------------------------------------------------------------ decoding

def _greedy_by_steps(m, batch, ratio=1.0):
    mem = m.encode(batch)
    out = []
    for b in range(mem.enc.shape[0]):
        L = int(mem.lengths[b])
        state = m.init_state(1, memory=MochaMemory(mem.enc[b:b + 1, :L], mem.lengths[b:b + 1]))
        tok, seq = np.zeros(1, np.int64), []
        for _ in range(int(max_labels(L, ratio))):
            lp, state = m.step(state, tok)
            y = int(lp[0].argmax())
            if y == 0:
                break
            seq.append(y)
            tok = np.array([y])
        out.append(seq)
    return out


@pytest.mark.parametrize("chunk_size, stack", [(1, 2), (2, 3), (3, 2)])
def test_step_interface_greedy_equals_offline_hard_decoding(chunk_size, stack):
    rng = np.random.default_rng(6)
    m = _trained(stack, chunk_size)
    batch = make_batch(_toy(rng, 6)[0], [[1]] * 6)
    hard = m.hard_decode(batch)
    assert sum(len(h) for h in hard.labels) >= 8, hard.labels            # not a trivial output
    assert sum(len(set(fr)) >= 2 for fr in hard.frames) >= 3, hard.frames  # attention moves
    assert _greedy_by_steps(m, batch) == hard.labels
    assert m.decode(batch) == hard.labels
    assert m.decode(batch, method="beam", beam_size=1) == hard.labels
    for labels, frames in zip(hard.labels, hard.frames):
        assert len(labels) == len(frames)
        moving = [f for f in frames if f >= 0]
        assert moving == sorted(moving)                                  # monotonic
        assert all(f >= 0 for f in frames[:len(moving)])                 # -1 only at the end


class _TableLM:
    """A bigram language model through the step interface: log P(next | previous) from a fixed table."""

    def __init__(self, V, seed):
        t = np.random.default_rng(seed).standard_normal((V, V)) * 2
        self.table = t - np.log(np.exp(t).sum(axis=1, keepdims=True))

    def init_state(self, batch_size):
        return (np.zeros(batch_size, np.int64),)

    def step(self, state, tokens):
        return self.table[tokens], (tokens.copy(),)


def _score(m, memory, seq, lm=None, lm_weight=0.0, length_reward=0.0, length_norm=False):
    """[attn-dec:score] of one label sequence followed by <eos>, teacher-forced through the step interface."""
    state = m.init_state(1, memory=memory)
    lm_state = lm.init_state(1) if lm is not None else None
    tok, total = np.zeros(1, np.int64), 0.0
    for y in list(seq) + [0]:
        lp, state = m.step(state, tok)
        total += lp[0, y]
        if lm is not None:
            llp, lm_state = lm.step(lm_state, tok)
            total += lm_weight * llp[0, y]
        tok = np.array([y])
    total += length_reward * (len(seq) + 1)
    return total / (len(seq) + 1) if length_norm else total


@pytest.mark.parametrize("lm_weight, length_reward, length_norm", [(0.0, 0.0, False), (0.0, 1.5, False),
                                                                   (0.7, -0.5, False), (0.3, 0.0, True)])
def test_beam_search_that_holds_everything_is_the_brute_force_best(lm_weight, length_reward, length_norm):
    V = 4
    rng = np.random.default_rng(7)
    m = _build(V=V, seed=3)
    m.decoder.params["r"][...] = 0.0  # energies of both signs: attention stops on some frames
    lm = _TableLM(V, 1) if lm_weight else None
    for T in (3, 4):
        batch = make_batch(_feats(rng, [T]), [[1]])
        mem = m.encode(batch)
        cap = int(max_labels(T, 1.0))
        n_seqs = sum((V - 1) ** n for n in range(cap + 1))
        best = list(brute_force_best(lambda s: _score(m, mem, s, lm, lm_weight, length_reward, length_norm),
                                     V, cap))
        hyp = m.decode(batch, method="beam", beam_size=n_seqs, lm=lm, lm_weight=lm_weight,
                       length_reward=length_reward, length_norm=length_norm)[0]
        assert hyp == best, (T, hyp, best)


def test_beam_search_scores_at_least_as_well_as_greedy():
    rng = np.random.default_rng(8)
    m = _trained(2)
    batch = make_batch(_toy(rng, 4)[0], [[1]] * 4)
    mem = m.encode(batch)
    greedy, beam = m.decode(batch), m.decode(batch, method="beam", beam_size=4)
    assert m.decode(batch, method="greedy", lm=_TableLM(6, 0), lm_weight=0.0) == greedy  # step-driven greedy
    for b, (g, h) in enumerate(zip(greedy, beam)):
        L = int(mem.lengths[b])
        one = MochaMemory(mem.enc[b:b + 1, :L], mem.lengths[b:b + 1])
        assert _score(m, one, h) >= _score(m, one, g) - 1e-12


# ------------------------------------------------------------------------------------------------ streaming

@pytest.mark.parametrize("chunk_size, stack", [(1, 2), (2, 2), (3, 3)])
def test_streaming_equals_offline_for_random_chunkings(chunk_size, stack):
    rng = np.random.default_rng(9 + stack)
    m = _trained(stack, chunk_size)
    feats = _toy(rng, 4)[0]
    offline = m.hard_decode(make_batch(feats, [[1]] * 4))
    assert sum(len(x) for x in offline.labels) >= 6, offline.labels
    for b, x in enumerate(feats):
        for trial in range(4):
            cuts = np.sort(rng.integers(0, len(x) + 1, size=rng.integers(0, 8)))  # empty pieces allowed
            s = m.streamer()
            got = []
            for piece in np.split(x, cuts):
                got += s.accept(piece)
            got += s.finish()
            assert got == offline.labels[b] == s.labels, (b, trial, cuts)
            assert s.frames == offline.frames[b]


def test_streamer_emits_each_label_as_soon_as_its_frame_has_arrived():
    """Frame by frame: label i comes out exactly when input frame k (t_i + 1) arrives (and label i-1 is out,
    and the length cap allows i labels), or at finish() when it attends the partial last stack or nothing."""
    rng = np.random.default_rng(10)
    k = 2
    m = _trained(k)
    x = np.concatenate(_toy(rng, 3)[0])
    offline = m.hard_decode(make_batch([x], [[1]]))
    assert len(offline.labels[0]) >= 3
    s = m.streamer()
    when = []
    for n in range(1, len(x) + 1):
        when += [n] * len(s.accept(x[n - 1:n]))
    when += [None] * len(s.finish())
    expected, prev = [], 0
    for i, t in enumerate(offline.frames[0], start=1):
        need = None if t < 0 or k * (t + 1) > len(x) or k * i > len(x) else max(prev, k * (t + 1), k * i)
        if prev is None:
            need = None
        expected.append(need)
        prev = need
    assert when == expected
    assert sum(w is not None for w in when) >= 2  # labels left before the end of the input


def test_streamer_refuses_bad_frames_and_use_after_finish():
    m = _build()
    s = m.streamer()
    with pytest.raises(ValueError, match=r"^frames:"):
        s.accept(np.zeros((2, D + 1)))
    with pytest.raises(TypeError, match=r"^frames:"):
        s.accept(np.zeros((2, D), np.float32))
    s.finish()
    with pytest.raises(RuntimeError, match=r"^accept:"):
        s.accept(np.zeros((1, D)))
