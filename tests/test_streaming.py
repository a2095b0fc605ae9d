"""Streaming: features fed in chunks equal the offline features exactly, and streamed decoding of audio equals
offline greedy decoding for every model with a streaming decoder (tiny random models, float64)."""

import numpy as np
import pytest

from scratchasr import models
from scratchasr.data.batch import make_batch
from scratchasr.frontend import Frontend
from scratchasr.streaming import StreamingFrontend, make_streamer, stream_transcribe


def _frontend(rng):
    fe = Frontend(dict(num_mel_bins=10, delta_order=2, delta_window=2))
    y = (0.1 * rng.standard_normal(16000)).astype(np.float32)
    fe.fit([fe.raw_features(y, 16000)])
    return fe


def _audio(rng, n=12345):
    t = np.arange(n) / 16000
    return (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streamed_features_equal_offline_features(seed):
    rng = np.random.default_rng(seed)
    fe = _frontend(rng)
    y = _audio(rng)
    offline = fe.normalise(fe.raw_features(y, 16000))
    sf = StreamingFrontend(fe)
    pieces, start = [], 0
    while start < len(y):
        n = int(rng.integers(1, 3000))
        pieces.append(sf.accept(y[start:start + n]))
        start += n
    pieces.append(sf.finish())
    np.testing.assert_array_equal(np.concatenate(pieces), offline)


STREAMABLE = [("transducer", dict(bidirectional=False, hidden=8, num_layers=1, pred_hidden=8, joint_dim=8)),
              ("conformer_ctc", dict(hidden=8, num_layers=1, heads=2, chunk_size=2, left_chunks=1,
                                     causal=True, ff_mult=2, conv_kernel=3, sub_channels=3, dropout=0.0)),
              ("conformer_transducer", dict(hidden=8, num_layers=1, heads=2, chunk_size=2, left_chunks=1,
                                            causal=True, ff_mult=2, conv_kernel=3, sub_channels=3,
                                            dropout=0.0)),
              ("mocha", dict(hidden=8, num_layers=1))]


@pytest.mark.parametrize("name, options", [s for s in STREAMABLE if s[0] in models.available()])
def test_stream_transcribe_equals_offline_greedy(name, options):
    rng = np.random.default_rng(4)
    fe = _frontend(rng)
    cls = models.base._REGISTRY[name]
    opts = {k: v for k, v in options.items() if k in cls.OPTIONS}
    model = models.build(name, input_dim=fe.dim, vocab_size=6, dtype=np.float64, seed=3, **opts)
    for p in model.parameters().values():
        p[...] *= 3.0                                # a random model that emits labels
    model.eval()
    y = _audio(rng, 9000)
    x = fe.normalise(fe.raw_features(y, 16000)).astype(np.float64)
    offline = model.decode(make_batch([x], [[]]))[0]
    partials = []
    streamed = stream_transcribe(model, fe, y, 16000, chunk_ms=37.0, on_partial=partials.append)
    assert streamed == offline
    assert len(partials) > 3


def test_models_without_a_streamer_are_named():
    model = models.build("ctc_blstm", input_dim=3, vocab_size=5, hidden=4, num_layers=1)
    with pytest.raises(ValueError, match=r"^model:"):
        make_streamer(model)
