"""Conformer models: streaming with carried state equals the chunk-masked offline model (float64, 1e-6);
the chunk mask really hides the future; decoding the streamed frames gives the offline hypotheses."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.decode.ctc import ctc_greedy_decode
from scratchasr.decode.transducer import greedy_search
from scratchasr.models.conformer import ConformerStreamer
from scratchasr.nn.conformer import StreamState, subsampled_lengths

D, V = 3, 6


def _model(name, *, chunk_size=2, left_chunks=1, causal=True, seed=0, **kw):
    m = models.build(name, input_dim=D, vocab_size=V, dtype=np.float64, seed=seed, hidden=8, num_layers=2,
                     heads=2, ff_mult=2, conv_kernel=4 if causal else 3, dropout=0.0, chunk_size=chunk_size,
                     left_chunks=left_chunks, causal=causal, **kw)
    rng = np.random.default_rng(seed + 7)
    for p in m.parameters().values():
        p[...] += 0.2 * rng.standard_normal(p.shape)
    for name_, m_ in m.named_modules():  # batch norm running statistics away from (0, 1)
        if "running_mean" in m_.buffers:
            m_.buffers["running_mean"][...] = 0.3 * rng.standard_normal(m_.buffers["running_mean"].shape)
            m_.buffers["running_var"][...] = rng.uniform(0.5, 2.0, m_.buffers["running_var"].shape)
    m.eval()
    return m


def _offline(m, x):
    B, T, _ = x.shape
    if isinstance(m, models.conformer.ConformerCTC):
        lp, ol = m.log_probs(make_batch(list(x), [[1]] * B))
        return lp, ol
    return m.encode(x, np.full(B, T))


def _stream(m, x, pieces):
    state = m.stream_init(x.shape[0])
    outs, t = [], 0
    for i, n in enumerate(pieces):
        out, state = m.stream(x[:, t:t + n], state, final=i == len(pieces) - 1)
        assert isinstance(state, StreamState)
        outs.append(out)
        t += n
    assert t == x.shape[1]
    return np.concatenate(outs, axis=1), state


@pytest.mark.parametrize("name", ["conformer_ctc", "conformer_transducer"])
@pytest.mark.parametrize("chunk_size,left_chunks,memory", [(1, 0, False), (2, 1, False), (3, -1, False),
                                                           (2, 2, False), (1, 0, True), (2, 1, True)])
def test_streaming_equals_the_chunk_masked_offline_model(name, chunk_size, left_chunks, memory):
    kw = dict(pred_hidden=5, joint_dim=7) if name == "conformer_transducer" else {}
    m = _model(name, chunk_size=chunk_size, left_chunks=left_chunks, memory=memory, **kw)
    rng = np.random.default_rng(chunk_size * 10 + left_chunks)
    T = 45  # 10 encoder frames
    x = rng.standard_normal((2, T, D))
    ref, ref_len = _offline(m, x)
    assert list(ref_len) == [10, 10]
    for trial in range(3):  # random piece sizes, including empty pieces and single frames
        cuts = np.sort(rng.choice(np.arange(0, T + 1), size=6, replace=True))
        pieces = np.diff(np.concatenate([[0], cuts, [T]])).tolist()
        out, state = _stream(m, x, pieces)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-6)
        assert np.max(np.abs(out - ref)) < 1e-9  # in practice: rounding only
        keep = 10 if left_chunks < 0 else min(10, left_chunks * chunk_size)  # carried keys at the end
        assert all(layer.k.shape[2] == keep for layer in state.layers), [la.k.shape for la in state.layers]
        n_chunks = -(-10 // chunk_size)  # memory bank: one key/value per chunk seen
        assert all(layer.mem_k.shape[2] == (n_chunks if memory else 0) for layer in state.layers)


def test_carried_keys_are_bounded_by_left_chunks():
    m = _model("conformer_ctc", chunk_size=2, left_chunks=1)
    x = np.random.default_rng(0).standard_normal((1, 61, D))  # 14 encoder frames
    state = m.stream_init(1)
    for t in range(0, 61, 8):
        _, state = m.stream(x[:, t:t + 8], state)
        for layer in state.layers:
            assert layer.k.shape[2] <= 2 and layer.v.shape == layer.k.shape
            assert layer.conv.shape == (1, 3, 8)  # K - 1 frames of the convolution input
        assert state.feats.shape[1] <= 6 + 8 and state.pending.shape[1] < 2


def test_the_chunk_mask_hides_the_future():
    """With chunk_size C, encoder frame t's output does not change when input frames past its chunk's
    last window change: chunk c depends on inputs < 4 (c + 1) C + 3."""
    m = _model("conformer_ctc", chunk_size=2, left_chunks=-1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 45, D))
    ref, _ = _offline(m, x)
    x2 = x.copy()
    x2[:, 4 * 2 * 2 + 3:] += rng.standard_normal(x2[:, 19:].shape)  # change inputs from frame 19 on
    out, _ = _offline(m, x2)
    np.testing.assert_array_equal(out[:, :4], ref[:, :4])  # chunks 0 and 1 (frames 0..3) unchanged
    assert np.abs(out[:, 4:] - ref[:, 4:]).max() > 1e-3


def test_streamed_frames_decode_to_the_offline_hypotheses():
    ctc = _model("conformer_ctc", chunk_size=3, left_chunks=1, seed=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 53, D))
    lp, _ = _stream(ctc, x, [5, 20, 0, 28])
    assert ctc_greedy_decode(lp, np.array([lp.shape[1]])) == ctc.decode(make_batch([x[0]], [[1]]))
    rnnt = _model("conformer_transducer", chunk_size=3, left_chunks=1, seed=2, pred_hidden=5, joint_dim=7)
    f, _ = _stream(rnnt, x, [5, 20, 0, 28])
    assert greedy_search(rnnt, f, np.array([f.shape[1]])) == rnnt.decode(make_batch([x[0]], [[1]]))


def test_streaming_needs_chunks_and_a_causal_convolution():
    with pytest.raises(ValueError, match=r"^chunk_size:"):
        _model("conformer_ctc", chunk_size=0).stream_init(1)
    with pytest.raises(ValueError, match=r"^causal:"):
        _model("conformer_ctc", causal=False).stream_init(1)
    m = _model("conformer_ctc")
    with pytest.raises(TypeError, match=r"^state:"):
        m.stream(np.zeros((1, 4, D)), None)
    with pytest.raises(ValueError, match=r"^x:"):
        m.stream(np.zeros((2, 4, D)), m.stream_init(1))
    with pytest.raises(ValueError, match=r"^left_chunks:"):
        _model("conformer_ctc", left_chunks=-2)
    with pytest.raises(ValueError, match=r"^memory:"):
        _model("conformer_ctc", left_chunks=-1, memory=True)
    with pytest.raises(ValueError, match=r"^heads:"):
        models.build("conformer_ctc", input_dim=D, vocab_size=V, hidden=8, heads=3)


def test_short_batches_give_no_frames_and_an_infeasible_loss():
    m = models.build("conformer_ctc", input_dim=D, vocab_size=V, dtype=np.float64, hidden=8, num_layers=1,
                     heads=2, ff_mult=2, conv_kernel=3, dropout=0.0)
    rng = np.random.default_rng(4)
    batch = make_batch([rng.standard_normal((11, D)), rng.standard_normal((5, D))], [[1], [2]])
    loss, _ = m.forward_loss(batch)
    assert np.isfinite(loss[0]) and loss[1] == np.inf
    dx = m.backward(np.ones(2))
    assert dx.shape == (2, 11, D) and np.all(dx[1] == 0)
    assert m.decode(make_batch([rng.standard_normal((5, D))], [[1]])) == [[]]


@pytest.mark.parametrize("name", ["conformer_ctc", "conformer_transducer"])
def test_streamer_equals_offline_greedy_decoding(name):
    kw = dict(pred_hidden=5, joint_dim=7) if name == "conformer_transducer" else {}
    rng = np.random.default_rng(6)
    nonempty = 0
    for seed in range(3):
        m = _model(name, chunk_size=2, left_chunks=1, seed=seed, **kw)
        out = m.output if name == "conformer_ctc" else m.joint_out
        out.params["b"][1:] += 2.0  # labels win some frames: non-trivial hypotheses
        x = rng.standard_normal((41 + 4 * seed, D))
        ref = m.decode(make_batch([x], [[1]]))[0]
        streamer = ConformerStreamer(m)
        partial = []
        for t in range(0, x.shape[0], 5):
            now = streamer.accept(x[t:t + 5])
            assert now[:len(partial)] == partial  # a partial hypothesis only grows
            partial = now
        assert streamer.finish() == ref
        assert streamer.state.frames == subsampled_lengths([x.shape[0]])[0]
        nonempty += bool(ref)
        with pytest.raises(RuntimeError, match=r"^accept:"):
            streamer.accept(x[:1])
        streamer.reset()
        assert streamer.accept(x) == ref[:len(streamer.state.tokens)] and streamer.finish() == ref
    assert nonempty >= 2
    with pytest.raises(TypeError, match=r"^model:"):
        ConformerStreamer(models.build("ctc_blstm", input_dim=D, vocab_size=V))


def test_pretrans_from_a_conformer_ctc_checkpoint(tmp_path):
    """PreTrans: an offline conformer_ctc's encoder.* initialises a streaming conformer_transducer's encoder
    (chunking and causality change no shape); nothing else is copied; mismatches are refused by name."""
    from scratchasr.io import save_checkpoint

    def build(name, **kw):
        return models.build(name, input_dim=D, vocab_size=V, dtype=np.float64, hidden=8, num_layers=2,
                            heads=2, ff_mult=2, conv_kernel=3, dropout=0.0, **kw)

    ctc = build("conformer_ctc", seed=5)                                   # offline: full attention
    path = str(tmp_path / "ctc.npz")
    save_checkpoint(path, ctc.state_dict(), meta={})
    stream = dict(chunk_size=2, left_chunks=1, causal=True, seed=0)
    t = build("conformer_transducer", pretrained_encoder=path, **stream)
    fresh = build("conformer_transducer", **stream)
    src = dict(ctc.encoder.state_dict())
    assert any("running_var" in k for k in src)                            # batch-norm statistics too
    for k, v in src.items():
        np.testing.assert_array_equal(t.encoder.state_dict()[k], v)
    assert any(not np.array_equal(fresh.encoder.state_dict()[k], v) for k, v in src.items())
    for k, v in fresh.joint_out.parameters().items():
        np.testing.assert_array_equal(t.joint_out.parameters()[k], v)   # the rest as a fresh model
    with pytest.raises(ValueError, match=r"^pretrained_encoder:"):
        models.build("conformer_transducer", input_dim=D, vocab_size=V, hidden=12, num_layers=2, heads=2,
                     conv_kernel=3, pretrained_encoder=path)
    with pytest.raises(TypeError, match=r"^pretrained_encoder:"):
        build("conformer_transducer", pretrained_encoder=3)


def test_conformer_ctc_init_from_a_checkpoint(tmp_path):
    """init_from: every encoder and output array of a conformer_ctc checkpoint (an offline model) starts a
    streaming conformer_ctc; a wrong file is refused by the option's name."""
    from scratchasr.io import save_checkpoint

    def build(**kw):
        return models.build("conformer_ctc", input_dim=D, vocab_size=V, dtype=np.float64, hidden=8,
                            num_layers=2, heads=2, ff_mult=2, conv_kernel=3, dropout=0.0, **kw)

    src = build(seed=5)
    path = str(tmp_path / "ctc.npz")
    save_checkpoint(path, src.state_dict(), meta={})
    m = build(seed=0, chunk_size=2, left_chunks=1, causal=True, init_from=path)
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k], v)
    with pytest.raises(ValueError, match=r"^init_from:"):
        models.build("conformer_ctc", input_dim=D, vocab_size=V + 1, hidden=8, num_layers=2, heads=2,
                     conv_kernel=3, init_from=path)                  # output layer of another shape
    with pytest.raises(TypeError, match=r"^init_from:"):
        build(init_from=1)
