"""Property tests (hypothesis): mass bookkeeping of the expected alignment and the chunk weights."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from scratchasr.ops.mocha import mocha_chunk_forward, monotonic_attention_forward

unit = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.just(1), st.integers(1, 12)), elements=unit), st.data())
def test_alignment_mass_bookkeeping(p, data):
    T = p.shape[1]
    a = data.draw(arrays(np.float64, (1, T), elements=unit))
    a = a / max(1.0, a.sum())  # a valid previous alignment: non-negative, total <= 1
    alpha, _ = monotonic_attention_forward(p, a)
    assert np.all(alpha >= 0)
    # every path that starts at k either stops somewhere at or after k or walks off the end
    survive = np.array([np.prod(1 - p[0, k:]) for k in range(T)])
    np.testing.assert_allclose(alpha.sum(), np.sum(a[0] * (1 - survive)), rtol=1e-12, atol=1e-15)
    # monotonic: no mass lands before the first frame that held mass in the previous step
    first = np.flatnonzero(a[0])
    if first.size:
        assert not alpha[0, :first[0]].any()


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.just(1), st.integers(1, 12)), elements=unit),
       st.integers(1, 5), st.data())
def test_chunk_weights_keep_mass_and_stay_behind(alpha, w, data):
    T = alpha.shape[1]
    u = data.draw(arrays(np.float64, (1, T), elements=st.floats(-300, 300, allow_nan=False)))
    beta, _ = mocha_chunk_forward(alpha, u, chunk_size=w)
    assert np.all(np.isfinite(beta)) and np.all(beta >= 0)
    np.testing.assert_allclose(beta.sum(), alpha.sum(), rtol=1e-12, atol=1e-300)
    last = np.flatnonzero(alpha[0])
    if last.size:  # chunks only look back: nothing beyond the last frame holding alpha mass
        assert not beta[0, last[-1] + 1:].any()
