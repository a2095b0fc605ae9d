"""The Kaldi front end's frame kernel (kernels/fbank.py) against its NumPy twin, and the float32 path.

The kernel writes DC removal, pre-emphasis and window into the float64 DFT buffer; its twin
(``scratchasr.features.kaldi._frame_prep_numpy``) does the same in Kaldi's order with whole-array
NumPy. The float32 path runs its DFT in float64, so float32 input must give the float64 features up
to the final float32 rounding.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchasr.features import fbank, frames_kaldi, mfcc
from scratchasr.features.kaldi import _frame_prep_numpy, _kaldi_window
from scratchasr.features.windows import kaldi_frame_source
from scratchasr.kernels.fbank import kaldi_frame_prep_kernel

ROOT = Path(__file__).resolve().parents[2]


def _kaldi_frame_reference(frame, k, remove_dc, window):
    """One frame, Kaldi's loop order: subtract the mean, pre-emphasise backwards, window."""
    x = [float(v) for v in frame]
    if remove_dc:
        m = sum(x) / len(x)
        x = [v - m for v in x]
    for i in range(len(x) - 1, 0, -1):
        x[i] -= k * x[i - 1]
    x[0] -= k * x[0]
    return np.array(x) * window


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,remove_dc", [(0.97, True), (0.0, True), (0.5, False), (1.0, True)])
@pytest.mark.parametrize("snip_edges", [True, False])
def test_frame_kernel_matches_numpy_twin_and_kaldi_loop(dtype, k, remove_dc, snip_edges):
    rng = np.random.default_rng(3)
    L, S, P = 25, 10, 32
    x = (500 + 1000 * rng.standard_normal(97)).astype(dtype)          # a DC offset of 500
    window = _kaldi_window("povey", L)
    signal, first, n = kaldi_frame_source(x, L, S, snip_edges)
    frames = frames_kaldi(x, L, S, snip_edges)
    assert frames.shape == (n, L)
    bufs = []
    for fn in (kaldi_frame_prep_kernel, _frame_prep_numpy):
        buf = np.full((n, P), np.nan)
        buf[:, L:] = 0.0
        fn(signal, first, S, k, remove_dc, window, buf)
        assert np.all(buf[:, L:] == 0.0), "the zero padding must stay untouched"
        bufs.append(buf)
    scale = np.abs(bufs[1]).max()
    np.testing.assert_allclose(bufs[0], bufs[1], rtol=0, atol=1e-12 * scale)
    ref = np.stack([_kaldi_frame_reference(f, k, remove_dc, window) for f in frames])
    np.testing.assert_allclose(bufs[1][:, :L], ref, rtol=0, atol=1e-12 * scale)


def test_frame_kernel_reads_frames_at_first_plus_t_shift():
    """A block that starts mid-signal (the pipeline's ``first + s * shift``) reads the right samples."""
    x = np.arange(200, dtype=np.float64) ** 1.5
    window = np.ones(8)
    buf = np.zeros((3, 8))
    kaldi_frame_prep_kernel(x, 37, 5, 0.0, False, window, buf)
    np.testing.assert_array_equal(buf, np.stack([x[37 + 5 * t: 45 + 5 * t] for t in range(3)]))


@pytest.mark.parametrize("kw", [dict(), dict(snip_edges=False, use_energy=True, window_type="hamming"),
                                dict(use_energy=True, raw_energy=False, preemphasis_coefficient=0.0),
                                dict(remove_dc_offset=False, num_mel_bins=40)])
def test_fbank_backends_agree_and_float32_equals_float64(kw):
    rng = np.random.default_rng(7)
    t = np.arange(4000) / 16000
    # A loud low tone over quiet noise: bins ~1e8 below the loudest, where a float32 DFT is rounding noise.
    x = (300 + 20000 * np.sin(2 * np.pi * 440 * t) + 3 * rng.standard_normal(t.size)).astype(np.float32)
    ref = fbank(x.astype(np.float64), backend="numpy", **kw)
    for dtype in (np.float32, np.float64):
        for backend in (None, "numba", "numpy"):
            ours = fbank(x.astype(dtype), backend=backend, **kw)
            assert ours.dtype == np.float32 and ours.shape == ref.shape
            np.testing.assert_allclose(ours, ref, rtol=2e-6, atol=2e-6, err_msg=f"{dtype}, {backend}")
    np.testing.assert_allclose(mfcc(x, backend="numpy"), mfcc(x.astype(np.float64)), rtol=1e-5, atol=1e-4)


def test_fbank_dither_goes_through_the_kernel():
    x = (1000 * np.random.default_rng(0).standard_normal(2000)).astype(np.float32)
    a = fbank(x, dither=1.0, rng=np.random.default_rng(5))
    b = fbank(x, dither=1.0, rng=np.random.default_rng(5), backend="numpy")
    c = fbank(x)
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-6)
    assert np.abs(a - c).max() > 1e-4      # the noise reached the features


def test_fbank_rejects_unknown_backend():
    with pytest.raises(ValueError, match=r"^backend:"):
        fbank(np.zeros(800), backend="cuda")


def test_frame_kernel_parity_without_jit():
    """The kernel's Python body (NUMBA_DISABLE_JIT=1) agrees with the NumPy twin and Kaldi's loop too:
    its explicit float64 casts keep float32 input from being computed in float32 there."""
    code = ("import numpy as np\n"
            "from tests.features.test_feat_kaldi_kernel import (\n"
            "    test_frame_kernel_matches_numpy_twin_and_kaldi_loop as check)\n"
            "from scratchasr.kernels.fbank import kaldi_frame_prep_kernel\n"
            "assert not hasattr(kaldi_frame_prep_kernel, 'py_func')\n"
            "for dt in (np.float32, np.float64):\n"
            "    for snip in (True, False):\n"
            "        check(dt, 0.97, True, snip)\n")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
