"""CTC prefix beam search: scratchasr's Numba kernel vs its Python reference and vs peer CTC beam searches.

Same random log-probs for every side (B utterances of T frames over V symbols, blank 0), one thread each:

* scratchasr kernel  ``ctc_prefix_beam_search(..., backend="numba")`` (one batch call)
* scratchasr reference  ``backend="numpy"`` (the readable dict-of-prefixes search, pure Python)
* pyctcdecode 0.5 (pure Python, the usual HF/NeMo CTC decoder), if installed
* ctc-beam-decoder (a C++ port of pyctcdecode's search, ctypes binding), if installed
* flashlight-text LexiconFreeDecoder (torchaudio's ``ctc_decoder`` backend, C++), if installed

The peers are not the same algorithm: pyctcdecode and its C++ port merge beams by text but score a beam
with one log-prob (no blank / non-blank split) and prune by ``beam_prune_logp`` / ``token_min_logp``;
flashlight merges hypotheses by (LM state, last token, blank flag), which with no LM merges different
prefixes. So each peer is timed (a) with its pruning switched off (``-1e9``) and (b) with its defaults
(ours with ``token_threshold=-5``, the same per-frame cut), and the script prints how often its best
labelling equals ours (and, where it does not, which of the two labellings has the higher exact
log P(z | x), summed over all alignments by scratchasr's CTC loss). Two inputs: "flat" (N(0, 2) logits:
every symbol plausible at every frame, the worst case) and "peaky" (CTC-like: blank-dominated frames with
short symbol spikes).

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python experiments/bench/bench_ctc_decode.py
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import logging  # noqa: E402
import string  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402

from scratchasr.decode import BigramLM, ctc_prefix_beam_search  # noqa: E402
from scratchasr.losses import ctc_loss  # noqa: E402

LABELS = [""] + list((string.ascii_letters + string.digits)[:61])   # blank "" + 61 one-character symbols


def timed(fn, repeat):
    """Median and min wall time (s) of ``repeat`` runs after one warm-up run, and the last result."""
    out = fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), min(ts), out


def once(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def exact_log_prob(lp, tokens):
    """log P(tokens | x) summed over every alignment (the CTC forward of scratchasr.losses)."""
    target = np.array([list(tokens) or [1]])
    loss, _ = ctc_loss(lp[None], target, np.array([lp.shape[0]]), np.array([len(tokens)]), reduction="none")
    return -float(loss[0])


def make_inputs(kind, B, T, V, rng):
    if kind == "flat":
        x = rng.normal(0, 2, (B, T, V))
    else:                                          # blank-dominated with 2-3 frame spikes of a symbol
        x = rng.normal(0, 1, (B, T, V))
        x[:, :, 0] += 6.0
        for b in range(B):
            t = 0
            while t < T:
                t += int(rng.integers(1, 5))
                n = int(rng.integers(1, 4))
                x[b, t:t + n, int(rng.integers(1, V))] += 9.0
                t += n
    lp = x - x.max(-1, keepdims=True)
    return lp - np.log(np.exp(lp).sum(-1, keepdims=True))             # (B, T, V) float64 log-softmax


def collapse(path, blank=0):
    out, prev = [], None
    for s in path:
        if s != prev and s != blank:
            out.append(int(s))
        prev = s
    return tuple(out)


def peers(V):
    """(name, decode(lp (T, V) float32, beam, prune) -> best token ids) for every peer that imports."""
    found, missing = [], []
    char_id = {c: i for i, c in enumerate(LABELS)}
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    try:
        import pyctcdecode

        dec = pyctcdecode.build_ctcdecoder(LABELS[:V])

        def run_pyctc(lp, beam, prune):
            kw = {} if prune else dict(beam_prune_logp=-1e9, token_min_logp=-1e9)
            text = dec.decode_beams(lp, beam_width=beam, **kw)[0][0]
            return tuple(char_id[c] for c in text)
        from importlib.metadata import version
        found.append((f"pyctcdecode {version('pyctcdecode')} (Python)", run_pyctc))
    except ImportError as e:
        missing.append(f"pyctcdecode ({e})")
    try:
        import ctc_beam_decoder

        cdec = ctc_beam_decoder.BeamSearchDecoder(LABELS[:V])

        def run_cbd(lp, beam, prune):
            kw = {} if prune else dict(beam_prune_logp=-1e9, token_min_logp=-1e9)
            text = cdec.decode_beams(lp, beam_width=beam, **kw)[0][0]           # (same options)
            return tuple(char_id[c] for c in text)
        found.append(("ctc-beam-decoder (C++)", run_cbd))
    except ImportError as e:
        missing.append(f"ctc-beam-decoder ({e})")
    except Exception as e:                                                     # noqa: BLE001
        missing.append(f"ctc-beam-decoder (failed to build a decoder: {e})")
    try:
        from flashlight.lib.text.decoder import (CriterionType, LexiconFreeDecoder, LexiconFreeDecoderOptions,
                                                 ZeroLM)

        def run_fl(lp, beam, prune):
            # torchaudio's ctc_decoder defaults: beam_size_token = V, beam_threshold = 50; unpruned: 1e9
            opt = LexiconFreeDecoderOptions(beam_size=beam, beam_size_token=V,
                                            beam_threshold=50.0 if prune else 1e9, lm_weight=0.0,
                                            sil_score=0.0, log_add=True, criterion_type=CriterionType.CTC)
            res = LexiconFreeDecoder(opt, ZeroLM(), 0, 0, []).decode(lp.ctypes.data, lp.shape[0], lp.shape[1])
            return collapse(res[0].tokens)
        found.append(("flashlight-text LexiconFree (C++)", run_fl))
    except ImportError as e:
        missing.append(f"flashlight-text ({e})")
    try:
        import torchaudio  # noqa: F401
        missing.append("torchaudio imports; its ctc_decoder is flashlight-text's decoder (measured above)")
    except Exception as e:                                                     # noqa: BLE001
        missing.append(f"torchaudio ({type(e).__name__}: {e})")
    return found, missing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--vocab", type=int, default=62)
    ap.add_argument("--beams", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    B, T, V = args.batch, args.frames, args.vocab
    import numba
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=root).stdout.strip()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit}, numpy {np.__version__}, "
          f"numba {numba.__version__}, threads 1; B {B} T {T} V {V}")
    found, missing = peers(V)
    for m in missing:
        print(f"  not measured: {m}")
    ctc_prefix_beam_search(np.zeros((1, 2, V)), beam_size=2)                   # compile / load the kernel
    rng = np.random.default_rng(0)
    lm = BigramLM.estimate([list(rng.integers(1, V, rng.integers(5, 40))) for _ in range(500)], vocab_size=V)
    for kind in ("flat", "peaky"):
        lp = make_inputs(kind, B, T, V, np.random.default_rng(1))
        lp32 = np.ascontiguousarray(lp.astype(np.float32))
        for beam in args.beams:
            print(f"\n[{kind}] beam {beam}: per-utterance times (ms), ratio = other / scratchasr kernel")
            med, mn, ours = timed(lambda: ctc_prefix_beam_search(lp, beam_size=beam, backend="numba"),
                                  args.repeat)
            k_ms = 1e3 * med / B
            print(f"  {'scratchasr numba kernel':42s} {k_ms:9.3f}   (min {1e3 * mn / B:.3f})")
            t_ref, ref = once(lambda: ctc_prefix_beam_search(lp, beam_size=beam, backend="numpy"))
            print(f"  {'scratchasr Python reference':42s} {1e3 * t_ref / B:9.3f}   ratio {t_ref / med:7.1f}"
                  f"   same ids: {sum(a == b for a, b in zip(ref, ours))}/{B}")
            med_lm, _, ours_lm = timed(lambda: ctc_prefix_beam_search(
                lp, beam_size=beam, lm=lm, lm_weight=0.5, insertion_bonus=0.5, backend="numba"), args.repeat)
            t_lm, ref_lm = once(lambda: ctc_prefix_beam_search(
                lp, beam_size=beam, lm=lm, lm_weight=0.5, insertion_bonus=0.5, backend="numpy"))
            print(f"  {'  + bigram fusion: kernel':42s} {1e3 * med_lm / B:9.3f}")
            print(f"  {'  + bigram fusion: reference':42s} {1e3 * t_lm / B:9.3f}   ratio "
                  f"{t_lm / med_lm:7.1f}   same ids: {sum(a == b for a, b in zip(ref_lm, ours_lm))}/{B}")
            ours_t = [tuple(h) for h in ours]
            med_p, _, ours_p = timed(lambda: ctc_prefix_beam_search(lp, beam_size=beam, token_threshold=-5.0,
                                                                    backend="numba"), args.repeat)
            ours_p = [tuple(h) for h in ours_p]
            print(f"  {'  kernel, token_threshold -5':42s} {1e3 * med_p / B:9.3f}")
            for name, fn in found:
                for prune in (False, True):
                    label = f"{name}{', defaults' if prune else ', unpruned'}"
                    if name.startswith("pyctcdecode"):
                        t, hyp = once(lambda: [fn(lp32[b], beam, prune) for b in range(B)])
                    else:
                        t, _, hyp = timed(lambda: [fn(lp32[b], beam, prune) for b in range(B)], 3)
                    base, base_ids = (med_p, ours_p) if prune else (med, ours_t)
                    diff = [b for b in range(B) if hyp[b] != base_ids[b]]
                    wins = sum(exact_log_prob(lp[b], base_ids[b]) > exact_log_prob(lp[b], hyp[b])
                               for b in diff)
                    print(f"  {label:42s} {1e3 * t / B:9.3f}   ratio {t / base:7.1f}   same best as ours: "
                          f"{B - len(diff)}/{B}" + (f", where not ours is more probable {wins}/{len(diff)}"
                                                    if diff else ""))


if __name__ == "__main__":
    main()
