"""Corpus helpers: subsets spread over speakers, vocabularies, units, scoring rules."""

import pytest

from scratchasr.data.corpus import RESERVED, Vocabulary, normalise_text, scoring_tokens, spread_subset


def test_spread_subset_takes_evenly_spaced_items_in_order():
    items = list(range(10))
    assert spread_subset(items, 0) == items and spread_subset(items, 20) == items
    assert spread_subset(items, 4) == [0, 3, 6, 9]
    assert spread_subset(items, 1) == [0]


def test_vocabulary_reserves_id_zero_and_names_unknown_tokens():
    v = Vocabulary([RESERVED, "a", "b"])
    assert list(v.encode(["b", "a"])) == [2, 1] and v.decode([1, 2]) == ["a", "b"]
    with pytest.raises(ValueError, match=r"^utt7: token 'c'"):
        v.encode(["c"], where="utt7")
    with pytest.raises(ValueError, match=r"^tokens:"):
        Vocabulary(["a", "b"])


def test_text_normalisation_and_scoring_rules():
    assert normalise_text("Don't STOP -- it's 'fine', ok?") == "don't stop it's fine ok"
    assert scoring_tokens(["q", "ax", "pcl"], "timit39") == ["ah", "sil"]
    with pytest.raises(ValueError, match=r"^scoring:"):
        scoring_tokens(["a"], "nope")
