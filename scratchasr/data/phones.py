"""TIMIT's phone sets and the Lee & Hon folding 61 -> 48 -> 39.

TIMIT transcribes with 61 symbols (60 phones plus the glottal stop ``q``). Lee & Hon (1989) trained on
48 classes and scored on 39 after merging confusable pairs; every TIMIT paper since (Graves et al.
2013 included) reports PER on the 39-phone folding, with ``q`` deleted. The table below is Kaldi's
``egs/timit/s5/conf/phones.60-48-39.map``:

    stop closures  bcl dcl gcl -> vcl -> sil;  pcl tcl kcl -> cl -> sil
    silences       h# pau -> sil; epi -> epi -> sil
    vowels         ao -> aa;  ax ax-h -> ax -> ah;  axr -> er;  ix -> ih;  ux -> uw
    consonants     hv -> hh;  el -> l;  em -> m;  en -> n;  nx -> n;  eng -> ng;  zh -> sh
    q              deleted

Reference: K.-F. Lee and H.-W. Hon, "Speaker-independent phone recognition using hidden Markov
models", IEEE Trans. ASSP 37(11), 1989.
"""

from __future__ import annotations

from typing import Iterable

# phone -> (48-set phone, 39-set phone); q is absent because it is deleted.
_FOLD = {
    "aa": ("aa", "aa"), "ae": ("ae", "ae"), "ah": ("ah", "ah"), "ao": ("ao", "aa"), "aw": ("aw", "aw"),
    "ax": ("ax", "ah"), "ax-h": ("ax", "ah"), "axr": ("er", "er"), "ay": ("ay", "ay"), "b": ("b", "b"),
    "bcl": ("vcl", "sil"), "ch": ("ch", "ch"), "d": ("d", "d"), "dcl": ("vcl", "sil"), "dh": ("dh", "dh"),
    "dx": ("dx", "dx"), "eh": ("eh", "eh"), "el": ("el", "l"), "em": ("m", "m"), "en": ("en", "n"),
    "eng": ("ng", "ng"), "epi": ("epi", "sil"), "er": ("er", "er"), "ey": ("ey", "ey"), "f": ("f", "f"),
    "g": ("g", "g"), "gcl": ("vcl", "sil"), "h#": ("sil", "sil"), "hh": ("hh", "hh"), "hv": ("hh", "hh"),
    "ih": ("ih", "ih"), "ix": ("ix", "ih"), "iy": ("iy", "iy"), "jh": ("jh", "jh"), "k": ("k", "k"),
    "kcl": ("cl", "sil"), "l": ("l", "l"), "m": ("m", "m"), "n": ("n", "n"), "ng": ("ng", "ng"),
    "nx": ("n", "n"), "ow": ("ow", "ow"), "oy": ("oy", "oy"), "p": ("p", "p"), "pau": ("sil", "sil"),
    "pcl": ("cl", "sil"), "r": ("r", "r"), "s": ("s", "s"), "sh": ("sh", "sh"), "t": ("t", "t"),
    "tcl": ("cl", "sil"), "th": ("th", "th"), "uh": ("uh", "uh"), "uw": ("uw", "uw"), "ux": ("uw", "uw"),
    "v": ("v", "v"), "w": ("w", "w"), "y": ("y", "y"), "z": ("z", "z"), "zh": ("zh", "sh"),
}

PHONES_61: tuple[str, ...] = tuple(sorted(list(_FOLD) + ["q"]))
"""The 61 symbols of TIMIT's .PHN files (q included), sorted."""

FOLD_61_TO_48: dict[str, str] = {p: f48 for p, (f48, _) in _FOLD.items()}
FOLD_61_TO_39: dict[str, str] = {p: f39 for p, (_, f39) in _FOLD.items()}
FOLD_48_TO_39: dict[str, str] = {f48: f39 for f48, f39 in _FOLD.values()}

PHONES_48: tuple[str, ...] = tuple(sorted(set(FOLD_61_TO_48.values())))
PHONES_39: tuple[str, ...] = tuple(sorted(set(FOLD_61_TO_39.values())))

assert len(PHONES_61) == 61 and len(PHONES_48) == 48 and len(PHONES_39) == 39


def fold_phones(phones: Iterable[str], *, to: int = 39) -> list[str]:
    """Fold TIMIT phones to the 48- or 39-phone set of Lee & Hon (1989); ``q`` is deleted.

    Args:
        phones: phone symbols from the 61-phone set; symbols already in the 48-phone set (``vcl``,
            ``cl``, ``sil``) are accepted too, so folding twice (61 -> 48 -> 39) works.
        to: 48 or 39.

    Returns:
        The folded list, the same length as the input minus the deleted ``q`` symbols. Neighbouring
        identical phones are NOT merged (e.g. ``bcl b`` becomes ``sil b``; ``pau h#`` becomes
        ``sil sil``); merge them yourself if your scoring wants it.
    """
    if isinstance(phones, str):
        raise TypeError("phones: expected a sequence of phone symbols, got a str (use .split())")
    if to == 48:
        table = FOLD_61_TO_48
        extra = {p: p for p in PHONES_48}
    elif to == 39:
        table = FOLD_61_TO_39
        extra = FOLD_48_TO_39
    else:
        raise ValueError(f"to: expected 48 or 39, got {to!r}")
    out = []
    for k, p in enumerate(phones):
        if p == "q":
            continue
        folded = table.get(p, extra.get(p))
        if folded is None:
            raise ValueError(f"phones[{k}]: {p!r} is not a TIMIT phone "
                             f"(expected one of the 61: {' '.join(PHONES_61)})")
        out.append(folded)
    return out
