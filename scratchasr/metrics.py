"""Error rates for recognisers: Levenshtein alignment with substitution, deletion and insertion counts.

``edit_distance(ref, hyp)`` aligns two token sequences (phones, words, characters: anything hashable);
``error_rate(refs, hyps)`` sums the counts over a corpus and divides by the number of reference tokens,
which is the PER, WER or CER depending on what the tokens are:

    rate = (S + D + I) / N_ref

Tokens are mapped to integers first, then aligned by the Numba kernel ``kernels/edit_distance.py`` or by
its NumPy twin ``_edit_ops_numpy`` here (``backend="numpy"``). Equations: docs/equations/decoding.md
[edit:init] [edit:rec] [edit:backtrace].

Tie-breaking. The distance is unique, but several alignments may reach it, and they can split it into
S, D and I differently (ref ``a b``, hyp ``b c``: 2 substitutions, or 1 deletion + 1 insertion). We
backtrace from the end and prefer, at each step, the diagonal (match or substitution), then a deletion,
then an insertion (the rule of most textbook Levenshtein backtraces). The total ``S + D + I`` never
depends on the rule, only its split does. NIST sclite weights its alignment differently by default
(insertion 3, deletion 3, substitution 4), so it may report a deletion plus an insertion where we report
one substitution, and then counts one more error than the Levenshtein distance; jiwer (RapidFuzz) uses
unit costs like us, so its totals match ours, but its split of ties comes from RapidFuzz's bit-parallel
backtrace (Hyyro 2004), which is not documented, and may differ from ours.

References: Levenshtein 1966; Wagner & Fischer 1974 ("The string-to-string correction problem").
"""

from __future__ import annotations

from typing import Hashable, NamedTuple, Optional, Sequence

import numpy as np

from ._validate import choice


class EditResult(NamedTuple):
    """Edit operations turning a reference into a hypothesis."""

    substitutions: int
    deletions: int    # reference tokens missing from the hypothesis
    insertions: int   # hypothesis tokens with no reference counterpart
    distance: int     # substitutions + deletions + insertions


class ErrorRate(NamedTuple):
    """Corpus-level error rate: ``rate = errors / ref_tokens``."""

    errors: int
    ref_tokens: int
    rate: float
    substitutions: int
    deletions: int
    insertions: int


def _edit_ops_numpy(ref_flat: np.ndarray, ref_offsets: np.ndarray, hyp_flat: np.ndarray,
                    hyp_offsets: np.ndarray, out: np.ndarray) -> None:
    """NumPy twin of ``kernels.edit_distance.edit_ops_kernel``: fill out (N, 4) with (S, D, I, distance).

    Row i of the cost matrix is computed from row i - 1 in two vectorised steps: first the diagonal
    and vertical moves, ``tmp[j] = min(cost[i-1, j-1] + sub(i, j), cost[i-1, j] + 1)``, then the
    horizontal (insertion) moves, which chain along the row: ``cost[i, j] = min_{k <= j} tmp[k] + (j - k)``,
    i.e. ``j + cumulative_min(tmp[k] - k)`` [edit:rec].
    """
    N = ref_offsets.shape[0] - 1
    for k in range(N):
        ref = ref_flat[ref_offsets[k]:ref_offsets[k + 1]]
        hyp = hyp_flat[hyp_offsets[k]:hyp_offsets[k + 1]]
        n, m = ref.shape[0], hyp.shape[0]
        cost = np.empty((n + 1, m + 1), dtype=np.int64)
        cost[0, :] = np.arange(m + 1)                               # [edit:init]
        cost[:, 0] = np.arange(n + 1)                               # [edit:init]
        for i in range(1, n + 1):
            sub = (ref[i - 1] != hyp).astype(np.int64)              # (m,)
            tmp = np.minimum(cost[i - 1, :-1] + sub, cost[i - 1, 1:] + 1)
            tmp = np.concatenate(([cost[i, 0]], tmp))               # (m + 1,), tmp[0] = cost[i, 0]
            idx = np.arange(m + 1)
            cost[i, :] = idx + np.minimum.accumulate(tmp - idx)     # insertions chain along the row
        # backtrace: diagonal, then deletion, then insertion [edit:backtrace]
        S = D = I = 0  # noqa: E741
        i, j = n, m
        while i > 0 or j > 0:
            if i > 0 and j > 0:
                sub_ij = int(ref[i - 1] != hyp[j - 1])
                if cost[i, j] == cost[i - 1, j - 1] + sub_ij:
                    S += sub_ij
                    i, j = i - 1, j - 1
                    continue
            if i > 0 and cost[i, j] == cost[i - 1, j] + 1:
                D += 1
                i -= 1
            else:
                I += 1  # noqa: E741
                j -= 1
        out[k] = (S, D, I, cost[n, m])


def _check_sequence(name: str, seq) -> list:
    if isinstance(seq, (str, bytes)):
        # a plain string would silently become a character sequence; make the caller say so
        raise TypeError(f"{name}: expected a sequence of tokens (list or tuple), got {type(seq).__name__}; "
                        "use list(s) for characters or s.split() for words")
    if isinstance(seq, np.ndarray):
        if seq.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array of tokens, got shape {seq.shape}")
        return seq.tolist()
    try:
        seq = list(seq)
    except TypeError:
        raise TypeError(f"{name}: expected a sequence of tokens, got {type(seq).__name__}") from None
    for t in seq:
        if not isinstance(t, Hashable):
            raise TypeError(f"{name}: tokens must be hashable, got {type(t).__name__}")
    return seq


def _encode(pairs: list[tuple[list, list]]):
    """Map tokens to integers (one shared vocabulary) and flatten the pairs with offsets."""
    vocab: dict = {}
    refs, hyps = [], []
    for ref, hyp in pairs:
        refs.append([vocab.setdefault(t, len(vocab)) for t in ref])
        hyps.append([vocab.setdefault(t, len(vocab)) for t in hyp])

    def flat(seqs):
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        offsets[1:] = np.cumsum([len(s) for s in seqs])
        data = np.fromiter((x for s in seqs for x in s), dtype=np.int64, count=int(offsets[-1]))
        return data, offsets

    return (*flat(refs), *flat(hyps))


def _edit_ops(pairs, backend: Optional[str]) -> np.ndarray:
    choice("backend", backend, (None, "numpy", "numba"))
    ref_flat, ref_off, hyp_flat, hyp_off = _encode(pairs)
    out = np.zeros((len(pairs), 4), dtype=np.int64)
    if backend == "numpy":
        _edit_ops_numpy(ref_flat, ref_off, hyp_flat, hyp_off, out)
    else:
        from .kernels.edit_distance import edit_ops_kernel
        edit_ops_kernel(ref_flat, ref_off, hyp_flat, hyp_off, out)
    return out


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable], *, backend: Optional[str] = None) -> EditResult:
    """Levenshtein distance between two token sequences, split into substitutions, deletions, insertions.

    Args:
        ref: reference tokens (list/tuple/1-D array of hashables; a bare ``str`` is refused).
        hyp: hypothesis tokens.
        backend: ``None``/``"numba"`` (kernel) or ``"numpy"`` (readable twin); same results.

    Returns:
        ``EditResult(substitutions, deletions, insertions, distance)``; see the module docstring for
        how ties between equally short alignments are broken.
    """
    ref = _check_sequence("ref", ref)
    hyp = _check_sequence("hyp", hyp)
    S, D, I, dist = (int(v) for v in _edit_ops([(ref, hyp)], backend)[0])  # noqa: E741
    return EditResult(S, D, I, dist)


def error_rate(refs: Sequence[Sequence[Hashable]], hyps: Sequence[Sequence[Hashable]], *,
               backend: Optional[str] = None) -> ErrorRate:
    """Corpus error rate ``(S + D + I) / N_ref`` summed over utterance pairs (PER, WER, CER).

    Args:
        refs: list of reference token sequences.
        hyps: list of hypothesis token sequences, same length as ``refs``.
        backend: as in :func:`edit_distance`.

    Returns:
        ``ErrorRate(errors, ref_tokens, rate, substitutions, deletions, insertions)``. With no reference
        tokens at all, ``rate`` is 0.0 when there are no errors and ``inf`` otherwise.
    """
    if isinstance(refs, (str, bytes)) or isinstance(hyps, (str, bytes)):
        raise TypeError("refs, hyps: expected lists of token sequences, got a string")
    refs = list(refs)
    hyps = list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"refs, hyps: expected the same number of utterances, got {len(refs)} and {len(hyps)}")
    pairs = [(_check_sequence(f"refs[{k}]", r), _check_sequence(f"hyps[{k}]", h))
             for k, (r, h) in enumerate(zip(refs, hyps))]
    ops = _edit_ops(pairs, backend).sum(axis=0) if pairs else np.zeros(4, dtype=np.int64)
    S, D, I, errors = (int(v) for v in ops)  # noqa: E741
    n_ref = sum(len(r) for r, _ in pairs)
    rate = errors / n_ref if n_ref else (0.0 if errors == 0 else float("inf"))
    return ErrorRate(errors=errors, ref_tokens=n_ref, rate=rate, substitutions=S, deletions=D, insertions=I)
