"""The table of classic mistakes behind the grader's hints, and the generic detectors.

``diagnose(got, ref)`` recognises mistakes from the numbers alone (sign, transpose, padding leak,
float32 downcast, a constant factor, NaN). Spec modules recognise the others (the CTC skip rule, a
reversed sequence, ...) by recording, at build time, what the mistake would give
(``ctx.compare(..., mistakes={"skip-rule": f})``) and matching the submission against it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

CLASSIC = {
    "sign": "sign error: your result is the negative of the expected one (a gradient is dL/dx, "
            "not -dL/dx; log-likelihood vs negative log-likelihood).",
    "transpose": "transpose: your array has the expected values with two axes swapped "
                 "(W is stored (out, in): y = x @ W.T, dW = dy.T @ x; see docs/notation.md).",
    "padding-leak": "padding leak: the valid positions are right but positions at or past a length are "
                    "not zero (outputs) or not exactly zero (gradients); mask with lengths.",
    "float32": "float32 downcast detected: the values agree only to float32 precision; keep the "
               "computation in the inputs' dtype (float64 here): no np.float32 constants or casts.",
    "scale": "constant factor: your values are the expected ones times a constant (a missing 1/N, "
             "a factor 2, a wrong normaliser).",
    "nan": "NaN/inf where the reference is finite: subtract the maximum before exp (log-sum-exp), "
           "and never read padded positions (they may hold NaN).",
    "unreachable": "log 0 (-inf) where the reference is finite: a state or path you never reach should be "
                   "reachable; check the initialisation and which transitions are allowed.",
    "missing-term": "missing term: the gradient is zero where finite differences are not; a path of "
                    "the computation graph is not back-propagated (e.g. the mean or variance in "
                    "layer norm, the carried cell state in BPTT).",
    "skip-rule": "skip rule: the transition s-2 -> s is allowed only into a label state whose label "
                 "differs from the label two states back; between two equal labels the blank is "
                 "compulsory [ctc:alpha-rec].",
    "no-skip": "skip rule: the transition s-2 -> s (skipping a blank between two different labels) is "
               "missing [ctc:alpha-rec].",
    "linear-domain": "log domain: the sums of the recursion must be log-sum-exp of log values, not "
                     "sums of logs (or products of probabilities that underflow).",
    "init": "initialisation: alpha starts in the first blank AND the first label (beta ends in the last "
            "blank AND the last label) [ctc:alpha-init] [ctc:beta-init].",
    "repeat-merge": "collapse rule: merge repeated symbols first, then remove blanks (a blank separates "
                    "two copies of the same label).",
    "reverse": "reverse direction: each sequence is reversed within its own length, padding stays at "
               "the end [lstm:reverse].",
    "gate-order": "gate order: the 4H pre-activations are stacked i, f, g, o (PyTorch); g uses tanh, "
                  "the other three the sigmoid [lstm:gates].",
    "state-carry": "state carry: at padded steps h and c keep their last valid value, and the final "
                   "states are the ones after each sequence's last valid step [lstm:mask].",
    "variance": "variance: layer norm uses the biased (1/D) variance with eps inside the square root.",
    "softmax-grad": "softmax Jacobian: dx = y * (dy - sum_j dy_j y_j); the sum runs over the softmax "
                    "axis only.",
    "window": "window: Kaldi's povey window is hann(L, symmetric) ** 0.85; librosa's hann is periodic.",
    "dc-preemph": "order of operations: remove the DC offset, then pre-emphasise, then window "
                  "[features:dc] [features:preemph].",
    "mel-scale": "mel scale: Kaldi uses 1127 ln(1 + f / 700); librosa's default is Slaney's (linear "
                 "below 1 kHz).",
    "delta-edge": "delta edges: frames past the ends are replaced by the first/last frame (Kaldi "
                  "add-deltas).",
}


def hint(key: str) -> str:
    """The hint text for a classic-mistake key (or the text itself when it is not a key).

    ``"skip-rule/any"`` is a variant of ``"skip-rule"``: the part before ``/`` picks the text."""
    return CLASSIC.get(key.split("/")[0], key)


def diagnose(got, ref, *, mask=None, input_dtype=np.float64) -> Optional[str]:
    """The classic mistake that explains ``got`` against ``ref``, if a generic one does, else None."""
    try:
        g = np.asarray(got)
        r = np.asarray(ref)
    except Exception:
        return None
    if not (np.issubdtype(r.dtype, np.floating) and np.issubdtype(g.dtype, np.number)):
        return None
    if g.ndim >= 2 and g.shape != r.shape and g.shape == np.swapaxes(r, -1, -2).shape:
        return "transpose"  # the expected shape with its last two axes swapped
    if g.shape != r.shape:
        return None
    g = g.astype(np.float64)
    fin = np.isfinite(r)
    with np.errstate(invalid="ignore", over="ignore"):
        if np.any((np.isnan(g) | np.isposinf(g)) & fin):
            return "nan"
        if np.any(np.isneginf(g) & fin):
            return "unreachable"
        gf, rf = g[fin], r[fin]
        if gf.size == 0:
            return None
        if np.max(np.abs(rf)) > 1e-12 and np.allclose(gf, -rf, rtol=1e-7, atol=1e-10):
            return "sign"
        if g.dtype == np.float32 or (np.asarray(got).dtype == np.float32 and input_dtype == np.float64):
            return "float32"
        if np.allclose(gf, rf, rtol=1e-5, atol=1e-6) and input_dtype == np.float64:
            return "float32"
        if mask is not None:
            m = np.broadcast_to(np.asarray(mask, bool), r.shape)
            if np.allclose(g[m & fin], r[m & fin], rtol=1e-8, atol=1e-10) and not np.allclose(
                    g[~m & fin], r[~m & fin], rtol=1e-8, atol=1e-10):
                return "padding-leak"
        nz = np.abs(rf) > 1e-9
        if nz.sum() >= 2:
            ratio = gf[nz] / rf[nz]
            c = float(np.median(ratio))
            if abs(c - 1) > 1e-6 and abs(c) > 1e-9 and np.allclose(ratio, c, rtol=1e-6, atol=0):
                return "scale"
    return None
