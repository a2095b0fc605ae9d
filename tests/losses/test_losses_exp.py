"""The kernels' vectorisable exponential ([rnnt:exp-poly]) against np.exp, in both kernel files."""

from __future__ import annotations

import numpy as np
import pytest

from scratchasr.kernels import ctc as kctc
from scratchasr.kernels import rnnt as krnnt


@pytest.mark.parametrize("module", [kctc, krnnt])
def test_exp_parts_matches_numpy(module):
    z = np.concatenate([-np.logspace(-12, np.log10(707.9), 20001), [0.0, -0.5 * np.log(2), -1e-300]])
    got = np.array([p * 2.0 ** n for p, n in (module._exp_parts(v) for v in z)])
    np.testing.assert_allclose(got, np.exp(z), rtol=4e-16, atol=0)
    for v in (-708.5, -1e4, -np.inf):  # the denormal range and log 0 give exactly 0
        p, _ = module._exp_parts(v)
        assert p == 0.0
