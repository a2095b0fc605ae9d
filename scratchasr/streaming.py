"""Streaming recognition: audio in chunks -> features as they become final -> a model's streamer.

    fe = StreamingFrontend(frontend)               # the checkpoint's front end
    st = make_streamer(model)                      # transducer (unidirectional), conformer_*, mocha
    for chunk in audio_chunks:                     # e.g. 100 ms of samples each
        partial = st.accept(fe.accept(chunk))      # label ids recognised so far
    final = st.finish_with(fe.finish())

Features. A Kaldi fbank frame (``snip_edges``) depends only on its own 25 ms of samples, but deltas
of order ``k`` with window ``w`` read ``k * w`` frames on each side and replicate the last frame at
the end of the utterance. A frame is therefore final once ``k * w`` later frames exist; the rest are
emitted by :meth:`StreamingFrontend.finish`. The streamed frames equal the offline features exactly
(tested), so a streamer that equals its offline decoder on frames equals it on audio too.
"""

from __future__ import annotations

from typing import List

import numpy as np

__all__ = ["StreamingFrontend", "make_streamer", "stream_transcribe"]


class StreamingFrontend:
    """Feeds normalised feature frames as audio arrives; identical to ``frontend`` on the whole file."""

    def __init__(self, frontend, sample_rate: int | None = None) -> None:
        self.fe = frontend
        self.sr = int(sample_rate or frontend.sample_rate)
        o = frontend.options
        if o.get("utt_cmvn", "none") != "none":
            raise ValueError(f"frontend: utt_cmvn={o['utt_cmvn']!r} normalises by the whole utterance's "
                             f"statistics, which a stream does not have until it ends; streaming needs a "
                             f"model trained with utt_cmvn='none' (global CMVN)")
        self.lookahead = int(o.get("delta_order", 2)) * int(o.get("delta_window", 2))
        self.samples: List[np.ndarray] = []
        self.emitted = 0

    def _features(self) -> np.ndarray:
        y = np.concatenate(self.samples) if self.samples else np.zeros(0, np.float32)
        try:
            return self.fe.normalise(self.fe.raw_features(y, self.sr))
        except ValueError:                       # shorter than one frame so far
            return np.zeros((0, self.fe.dim), np.float32)

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """New final frames ``(n, D)`` after appending ``samples`` (may be empty)."""
        self.samples.append(np.asarray(samples, dtype=np.float32).reshape(-1))
        feats = self._features()
        ready = max(feats.shape[0] - self.lookahead, self.emitted)
        out = feats[self.emitted:ready]
        self.emitted = ready
        return out

    def finish(self) -> np.ndarray:
        feats = self._features()
        out = feats[self.emitted:]
        self.emitted = feats.shape[0]
        return out


def make_streamer(model):
    """The model's streaming decoder: ``accept(frames) -> ids so far``, ``finish() -> ids``."""
    if hasattr(model, "streamer"):
        return model.streamer()
    name = getattr(model, "name", "")
    if name.startswith("conformer"):
        from .models.conformer import ConformerStreamer
        return ConformerStreamer(model)
    if name == "transducer":
        from .decode.transducer import TransducerStreamer
        return TransducerStreamer(model)
    raise ValueError(f"model: {name!r} has no streaming decoder (streaming: transducer with "
                     f"bidirectional=False, conformer_ctc/conformer_transducer, mocha)")


def stream_transcribe(model, frontend, y: np.ndarray, sr: int, *, chunk_ms: float = 100.0,
                      on_partial=None):
    """Decode ``y`` fed in ``chunk_ms`` pieces; ``on_partial(ids)`` after each piece; the final ids."""
    if not chunk_ms > 0:
        raise ValueError(f"chunk_ms: expected a positive number of milliseconds, got {chunk_ms!r}")
    if sr != frontend.sample_rate:
        from .frontend import resample_to
        y, sr = resample_to(y, sr, frontend.sample_rate), frontend.sample_rate
    fe = StreamingFrontend(frontend, sr)
    st = make_streamer(model)
    step = max(1, int(round(sr * chunk_ms / 1000.0)))
    dtype = getattr(model, "dtype", np.float32)
    for start in range(0, len(y), step):
        frames = fe.accept(y[start:start + step]).astype(dtype, copy=False)
        ids = st.accept(frames) if frames.shape[0] else None
        if on_partial is not None and ids is not None:
            on_partial(list(ids))
    tail = fe.finish().astype(dtype, copy=False)
    if tail.shape[0]:
        st.accept(tail)
    return list(st.finish())
