"""Hard MoChA decoding: the streaming decoder equals offline decoding, on random and trained models."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.decode.mocha_streaming import MochaStreamingDecoder, mocha_hard_decode
from scratchasr.nn.mocha import init_mocha_params


def _stream(params, enc, w, splits, **kw):
    dec = MochaStreamingDecoder(params, chunk_size=w, **kw)
    out, emitted_at = [], []
    start = 0
    for n in splits:
        new = dec.push(enc[start:start + n])
        start += n
        out += new
        emitted_at += [start] * len(new)
    new = dec.finish()
    out += new
    emitted_at += [None] * len(new)
    assert out == dec.labels
    return dec, emitted_at


def _random_splits(rng, T):
    cuts = np.sort(rng.choice(np.arange(1, T), size=min(3, T - 1), replace=False))
    return list(np.diff(np.concatenate([[0], cuts, [T]])))


@pytest.mark.parametrize("seed", range(6))
def test_streaming_equals_offline_random_models(seed):
    rng = np.random.default_rng(seed)
    D, V, w = 4, 6, int(rng.integers(1, 4))
    params = init_mocha_params(rng, enc_dim=D, vocab=V, embed_dim=3, hidden=5, att_dim=4,
                               r_init=float(rng.uniform(-1, 1)), dtype=np.float64)
    params["g"] = np.array(3.0)  # energies of both signs, so some frames fire and some do not
    B, T = 3, 15
    enc = 2 * rng.standard_normal((B, T, D))
    lengths = np.array([15, 9, 4])
    off = mocha_hard_decode(params, enc, lengths, chunk_size=w, sos=0, eos=1, max_len=12)
    for b in range(B):
        L = lengths[b]
        for splits in ([L], [1] * L, _random_splits(rng, L) if L > 1 else [1]):
            dec, emitted_at = _stream(params, enc[b, :L], w, splits, sos=0, eos=1, max_len=12)
            assert dec.labels == off.labels[b]
            assert dec.frames == off.frames[b]
            if splits == [1] * L:  # frame by frame: each label leaves with the frame that decides it
                assert emitted_at == [t + 1 if t >= 0 else None for t in dec.frames]
        att = off.attention[b]
        assert att.shape == (len(off.labels[b]), T)
        for row, t in zip(att, off.frames[b]):  # a softmax over the chunk ending at t, or nothing
            inside = abs(row.sum() - 1) < 1e-12 and row[t] > 0
            outside_zero = not row[t + 1:].any() and not row[:max(0, t - w + 1)].any()
            assert (t < 0 and not row.any()) or (inside and outside_zero)
    # the scenario is not degenerate: some labels attend a frame and some attend nothing, somewhere
    assert any(len(x) for x in off.labels)


def test_streaming_emits_before_the_end(rng):
    """A label is emitted as soon as its frame has arrived (the frame fires immediately here)."""
    D, V = 3, 5
    params = init_mocha_params(rng, enc_dim=D, vocab=V, embed_dim=2, hidden=3, att_dim=3, r_init=5.0,
                               dtype=np.float64)
    params["g"] = np.array(0.0)  # e = r = 5 > 0 everywhere: every step attends the current frame
    params["b_o"] = np.array([0.0, -50, 50, 0, 0])  # always label 2, never eos
    enc = rng.standard_normal((10, D))
    dec, emitted_at = _stream(params, enc, 2, [1] * 10, sos=0, eos=1, max_len=4)
    assert dec.labels == [2, 2, 2, 2] and emitted_at == [1, 1, 1, 1] and dec.frames == [0, 0, 0, 0]
    with pytest.raises(RuntimeError, match="finished"):
        dec.push(enc[:1])


def test_nothing_fires_waits_for_the_end(rng):
    D, V = 3, 5
    params = init_mocha_params(rng, enc_dim=D, vocab=V, embed_dim=2, hidden=3, att_dim=3, r_init=-50.0,
                               dtype=np.float64)
    enc = rng.standard_normal((6, D))
    dec, emitted_at = _stream(params, enc, 2, [2, 2, 2], sos=0, eos=1, max_len=3)
    assert all(a is None for a in emitted_at)  # undecidable until the input ends
    assert all(f == -1 for f in dec.frames)
    off = mocha_hard_decode(params, enc[None], chunk_size=2, sos=0, eos=1, max_len=3)
    assert off.labels[0] == dec.labels


def test_streaming_equals_offline_trained_toy_model():
    """A decoder trained briefly on the toy task of docs/walkthroughs/mocha_toy.py (its attention moves)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "docs" / "walkthroughs" / "mocha_toy.py"
    spec = importlib.util.spec_from_file_location("mocha_toy", path)
    toy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toy)
    model = toy.train_toy(steps=300, lr=0.03)
    enc, lengths, _, _, _, _ = toy.make_batch(np.random.default_rng(5), 8)
    off = mocha_hard_decode(model.params, enc, lengths, chunk_size=model.chunk_size, sos=toy.SOS, eos=toy.EOS,
                            max_len=10)
    assert any(t >= 0 for fr in off.frames for t in fr)  # some labels are decided before the input ends
    for b in range(8):
        L = lengths[b]
        for splits in ([1] * L, [L // 2, L - L // 2]):
            dec, emitted_at = _stream(model.params, enc[b, :L], model.chunk_size, [s for s in splits if s],
                             sos=toy.SOS, eos=toy.EOS, max_len=10)
            assert dec.labels == off.labels[b] and dec.frames == off.frames[b]
            if splits == [1] * L:
                assert emitted_at == [t + 1 if t >= 0 else None for t in dec.frames]
