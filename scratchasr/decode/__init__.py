"""Decoding: greedy CTC, CTC prefix beam search with bigram LM fusion (docs/equations/decoding.md)."""

from .ctc import Hypothesis, ctc_greedy_decode, ctc_prefix_beam_search, ctc_prefix_beam_search_utterance
from .lm import BigramLM

__all__ = ["ctc_greedy_decode", "ctc_prefix_beam_search", "ctc_prefix_beam_search_utterance", "Hypothesis",
           "BigramLM"]
