"""The decoder-only recognizer (scratchasr/models/decoder_only.py; the contract checks are in
test_contract.py): the KV-cache step equals the full forward, the loss reads the text positions only,
beam search with fusion equals brute force on a tiny case, initialisation from a gpt_lm checkpoint,
and argument checks."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.attention import attention_beam_search, attention_greedy_search
from scratchasr.io import save_checkpoint
from scratchasr.models.decoder_only import pack_backward, pack_forward, prefix_lm_mask
from scratchasr.testing.reference import brute_force_best

D, V = 3, 5
SMALL = dict(hidden=8, num_layers=2, heads=2, ff=12, max_len=8, stack=2, enc_layers=1)


def _model(seed=0, scale=1.0, **kw):
    opts = dict(SMALL)
    opts.update(kw)
    m = models.build("decoder_only", input_dim=D, vocab_size=V, dtype=np.float64, seed=seed, **opts)
    for p in m.parameters().values():
        p[...] *= scale
    return m


def _batch(rng, frames=(11, 6, 8), targets=([1, 2, 2, 4], [3], [4, 1])):
    return make_batch([rng.standard_normal((T, D)) for T in frames], [list(t) for t in targets])


@pytest.mark.parametrize("causal_prefix", [False, True])
def test_kv_cache_steps_equal_the_full_forward(rng, causal_prefix):
    model = _model(causal_prefix=causal_prefix, scale=2.0)
    batch = _batch(rng)
    full = model.log_probs(batch)                                        # (B, S+1, V)
    state = model.init_state(batch.size, memory=model.encode(batch))
    y = np.where(np.arange(4)[None] < batch.target_lengths[:, None], batch.targets, 0)
    tokens = np.zeros(batch.size, np.int64)                              # the separator
    for s in range(5):
        lp, state = model.step(state, tokens)
        for b in range(batch.size):
            if s <= batch.target_lengths[b]:
                np.testing.assert_allclose(lp[b], full[b, s], rtol=1e-10, atol=1e-12)
        tokens = y[:, s] if s < 4 else tokens
    # forward_loss (no smoothing, no CTC) is the negative sum of the picked log-probabilities
    model.eval()
    loss, _ = model.forward_loss(batch)
    outs = [list(batch.targets[b, :batch.target_lengths[b]]) + [0] for b in range(batch.size)]
    picked = [-sum(full[b, s, t] for s, t in enumerate(out)) for b, out in enumerate(outs)]
    np.testing.assert_allclose(loss, picked, rtol=1e-12)


def test_prefix_positions_carry_no_loss(rng):
    eps = 0.2
    model = _model(label_smoothing=eps, scale=2.0)
    batch = _batch(rng)
    lp = model.log_probs(batch)
    # the smoothed cross-entropy over the S_b + 1 text positions alone
    expect = []
    for b in range(batch.size):
        S = batch.target_lengths[b]
        out = list(batch.targets[b, :S]) + [0]
        expect.append(sum(-(1 - eps) * lp[b, s, out[s]] - eps * lp[b, s].mean() for s in range(S + 1)))
    model.train()
    seen = {}
    ln_f = model.gpt.ln_f
    original = ln_f.backward

    def spy(dout):  # the gradient reaching the last layer's output, packed positions
        seen["dout"] = dout.copy()
        return original(dout)

    ln_f.backward = spy
    try:
        loss, stats = model.forward_loss(batch)
        model.backward(np.ones(batch.size))
    finally:
        del ln_f.backward
    np.testing.assert_allclose(loss, expect, rtol=1e-10)
    assert stats["labels"] == float((batch.target_lengths + 1).sum())
    P = model.encoder.output_lengths(batch.feat_lengths)                 # ceil(T / 2) = 6, 3, 4
    dout = seen["dout"]
    for b in range(batch.size):
        assert np.all(dout[b, :P[b]] == 0), b                            # prefix rows: exactly zero
        assert np.all(np.abs(dout[b, P[b]:P[b] + batch.target_lengths[b] + 1]).sum(-1) > 0)


def test_pack_is_a_gather_and_its_backward_the_scatter(rng):
    prefix, text = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 3, 3))
    Pl, Ul = np.array([4, 2]), np.array([1, 3])
    x, cache = pack_forward(prefix, Pl, text, Ul)
    assert x.shape == (2, 5, 3)
    np.testing.assert_array_equal(x[0], np.concatenate([prefix[0], text[0, :1]]))
    np.testing.assert_array_equal(x[1], np.concatenate([prefix[1, :2], text[1], np.zeros((0, 3))]))
    dx = rng.standard_normal(x.shape)
    dp, dt = pack_backward(dx, cache)
    # adjoint: <pack(p, t), dx> = <p, dp> + <t, dt> for every p, t (padding of p and t masked)
    pm = (np.arange(4)[None] < Pl[:, None])[:, :, None]
    tm = (np.arange(3)[None] < Ul[:, None])[:, :, None]
    np.testing.assert_allclose((x * dx).sum(), (prefix * pm * dp).sum() + (text * tm * dt).sum())
    assert np.all(dp[~pm[..., 0]] == 0) and np.all(dt[~tm[..., 0]] == 0)


def test_prefix_lm_mask():
    m = prefix_lm_mask(np.array([2]), np.array([4]), 5)[0, 0]
    expect = np.array([[1, 1, 0, 0, 0],      # prefix sees the whole prefix, no text
                       [1, 1, 0, 0, 0],
                       [1, 1, 1, 0, 0],      # text: the prefix and itself
                       [1, 1, 1, 1, 0],
                       [0, 0, 0, 0, 0]], bool)  # padding
    np.testing.assert_array_equal(m, expect)
    c = prefix_lm_mask(np.array([2]), np.array([4]), 5, causal_prefix=True)[0, 0]
    np.testing.assert_array_equal(c, expect & np.tril(np.ones((5, 5), bool)))


class TableLM:
    """A random bigram with the step interface (0 = <sos> as input, <eos> as output)."""

    def __init__(self, seed):
        z = np.random.default_rng(seed).standard_normal((V, V))
        self.table = z - np.log(np.exp(z).sum(1, keepdims=True))

    def init_state(self, B):
        return (np.zeros(B, np.int64),)

    def step(self, state, tokens):
        return self.table[tokens], (np.asarray(tokens).copy(),)

    def log_prob(self, seq):
        return float(sum(self.table[p, c] for p, c in zip([0] + list(seq), list(seq) + [0])))


@pytest.mark.parametrize("lm_weight,reward", [(0.0, 0.0), (0.6, 0.8)])
def test_exhaustive_beam_is_the_brute_force_argmax(rng, lm_weight, reward):
    N = 3
    model = _model(seed=1, scale=3.0)                                    # peaked, varied distributions
    feats = rng.standard_normal((5, D))                                  # 3 prefix vectors
    lm = TableLM(2) if lm_weight else None

    def score(seq):  # the full forward's log P(seq <eos> | audio), no cache
        model.eval()
        b = make_batch([feats], [list(seq)])
        s = -float(model.forward_loss(b)[0][0]) + reward * (len(seq) + 1)
        return s + (lm_weight * lm.log_prob(seq) if lm else 0.0)

    best = tuple(brute_force_best(score, V, N))
    batch = make_batch([feats], [[1]])
    state = model.init_state(1, memory=model.encode(batch))
    hyps = attention_beam_search(model, state, beam_size=V * (V - 1) ** N, max_len=N, lm=lm,
                                 lm_weight=lm_weight, length_reward=reward)
    assert hyps[0].tokens == best
    np.testing.assert_allclose(hyps[0].score, score(best), rtol=1e-9)
    # the model's own decode, its maximum length tied to the prefix: ceil(1.0 * 3) = 3 labels
    got = model.decode(batch, method="beam", beam_size=V * (V - 1) ** N, lm=lm, lm_weight=lm_weight,
                       length_reward=reward, max_len_ratio=1.0)
    assert tuple(got[0]) == best


def test_greedy_equals_beam_one_and_stops_at_the_length_limit(rng):
    model = _model(seed=3, scale=2.0)
    batch = _batch(rng)
    greedy = model.decode(batch)
    assert model.decode(batch, method="beam", beam_size=1) == greedy
    mem = model.encode(batch)
    capped = attention_greedy_search(model, model.init_state(3, memory=mem), np.array([1, 1, 1]))
    assert all(len(h) <= 1 for h in capped)
    limit = model.decode(batch, max_len_ratio=0.5)                      # ceil(0.5 P): 3, 2, 2
    assert all(len(h) <= n for h, n in zip(limit, (3, 2, 2)))


def test_joint_ctc_decoding_needs_the_branch(rng):
    batch = _batch(rng)
    with pytest.raises(ValueError, match=r"^ctc_weight:"):
        _model().decode(batch, method="beam", beam_size=2, ctc_weight=0.3)
    model = _model(ctc_weight=0.3)
    hyps = model.decode(batch, method="beam", beam_size=2, ctc_weight=0.3)
    assert len(hyps) == 3 and all(1 <= t < V for h in hyps for t in h)


def test_init_from_a_gpt_lm_checkpoint(tmp_path, rng):
    lm = models.build("gpt_lm", input_dim=None, vocab_size=V, dtype=np.float64, seed=7, hidden=8,
                      num_layers=2, heads=2, ff=12, max_len=8)
    path = tmp_path / "gpt.npz"
    arrays = dict(lm.state_dict(), **{"frontend.cmvn_mean": np.zeros(3)})   # as the trainer writes them
    save_checkpoint(path, arrays, meta=dict(model=lm.config))
    model = _model(init_gpt=str(path))
    for k, v in lm.parameters().items():
        np.testing.assert_array_equal(model.parameters()["gpt." + k], v, err_msg=k)
    # an utterance without frames: the decoder is exactly the language model
    batch = make_batch([rng.standard_normal((0, D)), rng.standard_normal((4, D))], [[1, 3, 2], [4]])
    model.eval()
    lm.eval()
    loss, _ = model.forward_loss(batch)
    lm_loss, _ = lm.forward_loss(make_batch(None, [[1, 3, 2], [4]]))
    np.testing.assert_allclose(loss[0], lm_loss[0], rtol=1e-12)
    assert abs(loss[1] - lm_loss[1]) > 1e-6                              # the audio changes the second
    # rebuilding a trained model from its config does not read the checkpoint again
    cfg = dict(model.config)
    assert models.build_from_config(cfg).config["options"]["init_gpt"] == ""


def test_init_from_a_mismatched_checkpoint_names_the_option(tmp_path):
    lm = models.build("gpt_lm", input_dim=None, vocab_size=V, dtype=np.float64, hidden=8, num_layers=2,
                      heads=2, ff=12, max_len=8)
    path = tmp_path / "gpt.npz"
    save_checkpoint(path, lm.state_dict(), meta=dict(model=lm.config))
    with pytest.raises(ValueError, match=r"^init_gpt:.*tok\.W"):
        _model(init_gpt=str(path), ff=12, hidden=12, heads=2, enc_hidden=8)
    with pytest.raises(ValueError, match=r"^init_gpt:.*num_layers=1"):
        _model(init_gpt=str(path), num_layers=1)
    other = models.build("lstm_lm", input_dim=None, vocab_size=V, dtype=np.float64, hidden=4, num_layers=1)
    opath = tmp_path / "lstm.npz"
    save_checkpoint(opath, other.state_dict(), meta=dict(model=other.config))
    with pytest.raises(ValueError, match=r"^init_gpt:.*'lstm_lm'"):
        _model(init_gpt=str(opath))


def test_bad_options_and_arguments_are_refused_by_name(rng):
    with pytest.raises(ValueError, match=r"^enc_hidden:"):
        _model(enc_hidden=7)
    with pytest.raises(TypeError, match=r"^causal_prefix:"):
        _model(causal_prefix=1)
    with pytest.raises(ValueError, match=r"^label_smoothing:"):
        _model(label_smoothing=1.5)
    model = _model()
    batch = _batch(rng)
    state = model.init_state(3, memory=model.encode(batch))
    with pytest.raises(ValueError, match=r"^tokens:"):
        model.step(state, np.array([0, V, 1]))
    with pytest.raises(TypeError, match=r"^state:"):
        model.step((state.k,), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"^memory:"):
        model.init_state(2, memory=model.encode(batch))
    with pytest.raises(ValueError, match=r"^batch\.targets:"):
        model.forward_loss(make_batch([rng.standard_normal((9, D))], [[1] * 8]))   # max_len - 1 = 7
    for s in range(8):                                                   # 8 text positions, then none
        _, state = model.step(state, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"^state:"):
        model.step(state, np.zeros(3, np.int64))



def test_nbest_lists_for_rescoring(rng):
    model = _model(seed=4, scale=2.0)
    batch = _batch(rng)
    lists = model.decode(batch, method="beam", beam_size=4, nbest=3)
    best = model.decode(batch, method="beam", beam_size=4)
    for hyps, b in zip(lists, best):
        assert 1 <= len(hyps) <= 3 and list(hyps[0].tokens) == b
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    with pytest.raises(ValueError, match=r"^nbest:"):
        model.decode(batch, nbest=2)


def test_ctc_method_is_best_path_over_the_branch(rng):
    from scratchasr.testing.reference import ctc_greedy_naive
    model = _model(ctc_weight=0.3, scale=2.0)
    batch = _batch(rng)
    mem = model.encode(batch)
    expect = [ctc_greedy_naive(mem.ctc_log_probs[b], mem.lengths[b]) for b in range(batch.size)]
    assert model.decode(batch, method="ctc") == expect
    with pytest.raises(ValueError, match=r"^method:"):
        _model().decode(batch, method="ctc")
