"""Error rates for recognisers, scored exactly as NIST sclite scores them.

``edit_distance(ref, hyp)`` aligns two token sequences (phones, words, characters: anything hashable)
and counts substitutions S, deletions D and insertions I; ``error_rate(refs, hyps)`` sums the counts
over a corpus and divides by the number of reference tokens, which is the PER, WER or CER depending on
what the tokens are:

    rate = (S + D + I) / N_ref

The alignment is sclite's (NIST SCTK, ``src/sclite/net_dp.c`` ``Network_dpalign`` with the costs of
``src/sclite/word.c`` ``wwd_WORD``), the scorer behind the TIMIT papers' phone error rates: it
minimises a *weighted* cost, correct 0, insertion 3, deletion 3, substitution 4, not the number of
errors. A deletion plus an insertion (6) is cheaper than two substitutions (8), so where unit-cost
Levenshtein would write ``a b -> b c`` as two substitutions, sclite writes D, C, I; and because S + D + I
is then counted on that alignment, ``distance`` is in rare cases larger than the Levenshtein distance
(``levenshtein`` here gives the latter).

Tie-breaking is sclite's too. The DP stores one back-pointer per cell, chosen at the cell: the
diagonal (match or substitution) if it costs no more than the deletion and the insertion, else the
deletion if it costs strictly less than the insertion, else the insertion. The path is read back from
the last cell along those pointers. Example: ref ``a b c d e``, hyp ``a x c e f g`` gives C 3, S 1,
D 1, I 2 (unit-cost Levenshtein: S 3, I 1).

What we do not copy from sclite: it compares words case-insensitively unless run with ``-s`` (we
compare tokens with ``==``), and it gives special meaning to ``@`` (a null word), ``(word)``
(optionally deletable, with ``-D``) and ``-`` fragments (with ``-F``); here every token is an
ordinary token. On lower-case tokens without those marks the counts are sclite's, sentence by sentence
(tests/test_metrics_sclite.py runs sclite itself on random pairs).

``align(ref, hyp)`` returns that alignment token by token and ``format_alignment`` prints it the way
``sclite -o pralign`` does (errors upper-cased, ``***`` gaps, padded columns).

Tokens are mapped to integers first, then aligned by the Numba kernel ``kernels/edit_distance.py`` or by
its NumPy twin ``_sclite_align_numpy`` here (``backend="numpy"``). Equations: docs/equations/decoding.md
[edit:init] [edit:rec] [edit:tie] [edit:backtrace] [edit:counts] [edit:levenshtein].

References: Levenshtein 1966; Wagner & Fischer 1974 ("The string-to-string correction problem");
NIST Speech Recognition Scoring Toolkit (SCTK), sclite.
"""

from __future__ import annotations

from typing import Hashable, NamedTuple, Optional, Sequence

import numpy as np

from ._backend import resolve_backend

W_INS, W_DEL, W_SUB = 3, 3, 4  # sclite's costs (wwd_WORD); a correct token costs 0
OP_C, OP_S, OP_D, OP_I, OP_PAD = 0, 1, 2, 3, -1  # path codes shared with the kernel
BACK_DIAG, BACK_DEL, BACK_INS = 0, 1, 2  # back-pointers: (i-1, j-1), (i-1, j), (i, j-1)
OP_NAMES = "CSDI"


class EditResult(NamedTuple):
    """Edit operations turning a reference into a hypothesis (sclite's alignment)."""

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


class AlignedToken(NamedTuple):
    """One column of an alignment: ``op`` is ``"C"`` (correct), ``"S"``, ``"D"`` or ``"I"``."""

    ref: Optional[Hashable]  # None for an insertion
    hyp: Optional[Hashable]  # None for a deletion
    op: str


def _sclite_align_numpy(ref_flat: np.ndarray, ref_offsets: np.ndarray, hyp_flat: np.ndarray,
                        hyp_offsets: np.ndarray, ops: np.ndarray, out: np.ndarray) -> None:
    """NumPy twin of ``kernels.edit_distance.sclite_align_kernel``: fill ``ops`` and ``out (N, 5)``.

    ``out[k] = (S, D, I, S + D + I, path length)``; pair k's path (codes ``OP_C/S/D/I``, first to last,
    then ``OP_PAD``) is written to ``ops[ref_offsets[k] + hyp_offsets[k]:]``, at most n + m steps.

    Row i of the cost matrix is computed from row i - 1 in vectorised steps: the diagonal and vertical
    candidates, ``tmp[j] = min(sub[j], del[j])``, then the horizontal (insertion) moves, which chain
    along the row: ``cost[i, j] = min_{k <= j} tmp[k] + W_INS (j - k) = W_INS j + cummin(tmp[k] - W_INS k)``
    [edit:rec]. With the row known, each cell's back-pointer follows sclite's tie rule [edit:tie].
    """
    N = ref_offsets.shape[0] - 1
    for k in range(N):
        ref = ref_flat[ref_offsets[k]:ref_offsets[k + 1]]
        hyp = hyp_flat[hyp_offsets[k]:hyp_offsets[k + 1]]
        n, m = ref.shape[0], hyp.shape[0]
        cost = np.empty((n + 1, m + 1), dtype=np.int64)            # weighted cost of ref[:i] vs hyp[:j]
        back = np.empty((n + 1, m + 1), dtype=np.int8)             # the move that reached (i, j)
        cost[0, :] = W_INS * np.arange(m + 1)                       # [edit:init]
        cost[:, 0] = W_DEL * np.arange(n + 1)                       # [edit:init]
        back[0, :] = BACK_INS
        back[:, 0] = BACK_DEL
        jj = np.arange(m + 1)
        for i in range(1, n + 1):
            sub = cost[i - 1, :-1] + W_SUB * (ref[i - 1] != hyp)     # (m,) [edit:rec]
            dele = cost[i - 1, 1:] + W_DEL                           # (m,) [edit:rec]
            tmp = np.concatenate(([cost[i, 0]], np.minimum(sub, dele)))  # (m + 1,)
            cost[i, :] = W_INS * jj + np.minimum.accumulate(tmp - W_INS * jj)  # insertions chain
            ins = cost[i, :-1] + W_INS                               # (m,) [edit:rec]
            diag = (sub <= dele) & (sub <= ins)                      # [edit:tie]
            back[i, 1:] = np.where(diag, BACK_DIAG, np.where(dele < ins, BACK_DEL, BACK_INS))  # [edit:tie]
        # follow the back-pointers from (n, m) [edit:backtrace]
        path = []
        i, j = n, m
        while i > 0 or j > 0:
            if back[i, j] == BACK_DIAG:
                path.append(OP_C if ref[i - 1] == hyp[j - 1] else OP_S)
                i, j = i - 1, j - 1
            elif back[i, j] == BACK_DEL:
                path.append(OP_D)
                i -= 1
            else:
                path.append(OP_I)
                j -= 1
        path.reverse()
        start = ref_offsets[k] + hyp_offsets[k]
        ops[start:start + n + m] = OP_PAD
        ops[start:start + len(path)] = path
        counts = np.bincount(np.asarray(path, dtype=np.int64), minlength=4)
        S, D, I = int(counts[OP_S]), int(counts[OP_D]), int(counts[OP_I])  # noqa: E741
        out[k] = (S, D, I, S + D + I, len(path))                     # [edit:counts]


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


def _align_batch(pairs, backend: Optional[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the kernel (or its twin) on validated pairs: ``(ops, starts (N,), out (N, 5))``."""
    backend = resolve_backend(backend)
    ref_flat, ref_off, hyp_flat, hyp_off = _encode(pairs)
    ops = np.empty(int(ref_off[-1] + hyp_off[-1]), dtype=np.int8)
    out = np.zeros((len(pairs), 5), dtype=np.int64)
    if backend == "numpy":
        _sclite_align_numpy(ref_flat, ref_off, hyp_flat, hyp_off, ops, out)
    else:
        from .kernels.edit_distance import sclite_align_kernel
        sclite_align_kernel(ref_flat, ref_off, hyp_flat, hyp_off, ops, out)
    return ops, (ref_off + hyp_off)[:-1], out


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable], *,
                  backend: Optional[str] = None) -> EditResult:
    """Substitutions, deletions and insertions of sclite's alignment of two token sequences.

    Args:
        ref: reference tokens (list/tuple/1-D array of hashables; a bare ``str`` is refused).
        hyp: hypothesis tokens.
        backend: ``None``/``"numba"`` (kernel) or ``"numpy"`` (readable twin); same results.

    Returns:
        ``EditResult(substitutions, deletions, insertions, distance)`` with ``distance = S + D + I``;
        see the module docstring for sclite's weights and tie-breaking.
    """
    ref = _check_sequence("ref", ref)
    hyp = _check_sequence("hyp", hyp)
    S, D, I, dist, _ = (int(v) for v in _align_batch([(ref, hyp)], backend)[2][0])  # noqa: E741
    return EditResult(S, D, I, dist)


def error_rate(refs: Sequence[Sequence[Hashable]], hyps: Sequence[Sequence[Hashable]], *,
               backend: Optional[str] = None) -> ErrorRate:
    """Corpus error rate ``(S + D + I) / N_ref`` summed over utterance pairs (PER, WER, CER), as sclite.

    Args:
        refs: list of reference token sequences.
        hyps: list of hypothesis token sequences, same length as ``refs``.
        backend: as in :func:`edit_distance`.

    Returns:
        ``ErrorRate(errors, ref_tokens, rate, substitutions, deletions, insertions)``. With no reference
        tokens at all, ``rate`` is 0.0 when there are no errors and ``inf`` otherwise.
    """
    if isinstance(refs, (str, bytes)):
        raise TypeError("refs: expected a list of token sequences, got a string")
    if isinstance(hyps, (str, bytes)):
        raise TypeError("hyps: expected a list of token sequences, got a string")
    refs = list(refs)
    hyps = list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"refs, hyps: expected the same number of utterances, "
                         f"got {len(refs)} and {len(hyps)}")
    pairs = [(_check_sequence(f"refs[{k}]", r), _check_sequence(f"hyps[{k}]", h))
             for k, (r, h) in enumerate(zip(refs, hyps))]
    ops = _align_batch(pairs, backend)[2][:, :4].sum(axis=0) if pairs else np.zeros(4, dtype=np.int64)
    S, D, I, errors = (int(v) for v in ops)  # noqa: E741
    n_ref = sum(len(r) for r, _ in pairs)
    rate = errors / n_ref if n_ref else (0.0 if errors == 0 else float("inf"))
    return ErrorRate(errors=errors, ref_tokens=n_ref, rate=rate, substitutions=S, deletions=D, insertions=I)


def align(ref: Sequence[Hashable], hyp: Sequence[Hashable], *,
          backend: Optional[str] = None) -> list[AlignedToken]:
    """sclite's alignment of two token sequences, one ``AlignedToken(ref, hyp, op)`` per column.

    ``op`` is ``"C"`` (``ref == hyp``), ``"S"``, ``"D"`` (``hyp is None``) or ``"I"`` (``ref is None``);
    the columns are in sentence order, and their S/D/I counts are :func:`edit_distance`'s.
    Arguments as in :func:`edit_distance`.
    """
    ref = _check_sequence("ref", ref)
    hyp = _check_sequence("hyp", hyp)
    ops, starts, out = _align_batch([(ref, hyp)], backend)
    columns = []
    i = j = 0
    for code in ops[starts[0]:starts[0] + out[0, 4]]:
        op = OP_NAMES[code]
        r = ref[i] if op != "I" else None
        h = hyp[j] if op != "D" else None
        i += op != "I"
        j += op != "D"
        columns.append(AlignedToken(r, h, op))
    return columns


def format_alignment(alignment: Sequence[AlignedToken], *, utt_id: Optional[str] = None) -> str:
    """Print an alignment (from :func:`align`) the way ``sclite -o pralign`` does.

    Returns the lines ``id: (utt_id)`` (only when ``utt_id`` is given), ``Scores: (#C #S #D #I) c s d i``,
    ``REF:  ...``, ``HYP:  ...`` and ``Eval: ...``, each ending in a newline. Every column is as wide as
    its longer token (``str(token)``); erroneous tokens are upper-cased, a gap is ``*`` repeated to the
    column's width and ``Eval`` holds ``S``, ``D`` or ``I`` (blank for a correct column). Trailing
    blanks are stripped (sclite leaves one). An empty alignment gives only the ``id``/``Scores`` lines,
    as in sclite.
    """
    if isinstance(alignment, (str, bytes)) or not isinstance(alignment, Sequence):
        raise TypeError("alignment: expected a list of (ref, hyp, op) from align(), "
                        f"got {type(alignment).__name__}")
    if utt_id is not None and not isinstance(utt_id, str):
        raise TypeError(f"utt_id: expected a str or None, got {type(utt_id).__name__}")
    counts = dict.fromkeys(OP_NAMES, 0)
    rows: tuple[list[str], list[str], list[str]] = ([], [], [])
    for k, col in enumerate(alignment):
        if not (isinstance(col, tuple) and len(col) == 3 and col[2] in counts):
            raise ValueError(f"alignment: item {k} is not (ref, hyp, op) with op in C/S/D/I: {col!r}")
        ref, hyp, op = col
        if (ref is None) != (op == "I") or (hyp is None) != (op == "D"):
            raise ValueError(f"alignment: item {k} has op {op!r} but ref={ref!r}, hyp={hyp!r}")
        counts[op] += 1
        r = "" if ref is None else str(ref)
        h = "" if hyp is None else str(hyp)
        if op != "C":
            r, h = r.upper(), h.upper()
        width = max(len(r), len(h), 1)
        rows[0].append(r.ljust(width) if ref is not None else "*" * width)
        rows[1].append(h.ljust(width) if hyp is not None else "*" * width)
        rows[2].append((op if op != "C" else "").ljust(width))
    lines = [] if utt_id is None else [f"id: ({utt_id})"]
    lines.append("Scores: (#C #S #D #I) " + " ".join(str(counts[o]) for o in OP_NAMES))
    if alignment:  # sclite prints no REF/HYP/Eval lines for an empty reference and hypothesis
        for label, cells in zip(("REF:  ", "HYP:  ", "Eval: "), rows):
            lines.append((label + " ".join(cells)).rstrip())
    return "".join(line + "\n" for line in lines)


def levenshtein(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> int:
    """Unit-cost Levenshtein distance (the fewest substitutions + deletions + insertions).

    Not sclite's count: :func:`edit_distance` minimises sclite's weighted cost and may count more
    errors. This is what unit-cost scorers (jiwer, Kaldi's ``compute-wer``) report as S + D + I.
    """
    ref = _check_sequence("ref", ref)
    hyp = _check_sequence("hyp", hyp)
    vocab: dict = {}
    r = np.array([vocab.setdefault(t, len(vocab)) for t in ref], dtype=np.int64)
    h = np.array([vocab.setdefault(t, len(vocab)) for t in hyp], dtype=np.int64)
    jj = np.arange(h.size + 1)
    row = jj.copy()                                                   # C[0, j] = j [edit:levenshtein]
    for i in range(1, r.size + 1):
        tmp = np.concatenate(([i], np.minimum(row[:-1] + (r[i - 1] != h), row[1:] + 1)))
        row = jj + np.minimum.accumulate(tmp - jj)                    # [edit:levenshtein]
    return int(row[-1])
