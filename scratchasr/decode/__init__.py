"""Decoding: greedy CTC, CTC prefix beam search (Numba kernel + Python reference) with shallow fusion of any
step-interface LM, n-best lists, and the token bigram LM (docs/equations/decoding.md)."""

from .ctc import Hypothesis, ctc_greedy_decode, ctc_prefix_beam_search, ctc_prefix_beam_search_utterance
from .lm import BigramLM, BigramState

__all__ = ["ctc_greedy_decode", "ctc_prefix_beam_search", "ctc_prefix_beam_search_utterance", "Hypothesis",
           "BigramLM", "BigramState"]
