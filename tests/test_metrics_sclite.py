"""scratchasr.metrics against NIST sclite itself (Debian/Ubuntu package ``sctk``; installed by .ci/run).

Seeded random reference/hypothesis pairs over tiny vocabularies (so that equal-cost alignments, and
with them sclite's tie rule, are frequent), empty references and hypotheses included, are scored by
``sclite -o pralign rsum`` in one run; per sentence, our S/D/I and the printed alignment must equal
sclite's, and so must the corpus totals. Tokens are lower-case words without sclite's special marks
(``@``, ``(opt)``, ``-frag``), so sclite's case folding and special tokens play no part.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from scratchasr.metrics import align, edit_distance, error_rate, format_alignment

pytestmark = pytest.mark.oracle

VOCABS = (["a", "b"], ["a", "b", "c"], ["a", "bb", "ccc", "dd"])  # words of unequal width: padded columns


def _sclite_command() -> list[str]:
    if shutil.which("sclite"):
        return ["sclite"]
    if shutil.which("sctk"):
        return ["sctk", "sclite"]
    pytest.skip("NIST sclite not installed (apt-get install sctk)")


def _pairs(seed: int, n: int, max_len: int) -> list[tuple[list[str], list[str]]]:
    rng = np.random.default_rng(seed)
    pairs: list[tuple[list[str], list[str]]] = [
        ([], []), (["a"], []), ([], ["a", "b"]), ("a b".split(), "b c".split()),
        ("a b c d e".split(), "a x c e f g".split()),  # ../shared/API.md's example
        ("a a a b c".split(), "b c c b".split()),  # more errors than the Levenshtein distance
    ]
    while len(pairs) < n:
        vocab = VOCABS[rng.integers(len(VOCABS))]
        ref = [vocab[i] for i in rng.integers(0, len(vocab), rng.integers(0, max_len + 1))]
        hyp = [vocab[i] for i in rng.integers(0, len(vocab), rng.integers(0, max_len + 1))]
        pairs.append((ref, hyp))
    return pairs


def _run_sclite(tmp_path, pairs, ids):
    ref_trn, hyp_trn = tmp_path / "ref.trn", tmp_path / "hyp.trn"
    ref_trn.write_text("".join(f"{' '.join(r)} ({u})\n" for (r, _), u in zip(pairs, ids)))
    hyp_trn.write_text("".join(f"{' '.join(h)} ({u})\n" for (_, h), u in zip(pairs, ids)))
    cmd = _sclite_command() + ["-r", str(ref_trn), "trn", "-h", str(hyp_trn), "trn", "-i", "rm",
                               "-o", "pralign", "rsum", "stdout"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return proc.stdout


def _parse_pralign(text: str) -> dict[str, list[str]]:
    """Per utterance id: the lines from ``id:`` up to the next blank line, trailing blanks cut."""
    blocks: dict[str, list[str]] = {}
    lines = text.splitlines()
    for k, line in enumerate(lines):
        m = re.match(r"^id: \((\S+)\)\s*$", line)
        if m:
            block = [line.rstrip()]
            for nxt in lines[k + 1:]:
                if not nxt.strip():
                    break
                block.append(nxt.rstrip())
            blocks[m.group(1)] = block
    return blocks


def _scores(block: list[str]) -> tuple[int, int, int, int]:
    m = re.match(r"^Scores: \(#C #S #D #I\)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", block[1])
    assert m, f"unexpected sclite Scores line: {block[1]!r}"
    return tuple(int(g) for g in m.groups())


def _parse_sum(text: str) -> tuple[int, ...]:
    """The ``| Sum |`` row of ``rsum``: sentences, words, Corr, Sub, Del, Ins, Err, S.Err."""
    rows = [line for line in text.splitlines() if re.match(r"^\s*\|\s*Sum\s*\|", line)]
    assert len(rows) == 1, f"expected one 'Sum' row in sclite's rsum, got {rows}"
    return tuple(int(x) for x in re.findall(r"\d+", rows[0]))


@pytest.mark.parametrize("seed, n, max_len", [(0, 300, 12), (1, 60, 30)])
def test_counts_and_alignments_equal_sclite(tmp_path, seed, n, max_len):
    pairs = _pairs(seed, n, max_len)
    ids = [f"spk_u{k:04d}" for k in range(len(pairs))]
    out = _run_sclite(tmp_path, pairs, ids)
    blocks = _parse_pralign(out)
    assert sorted(blocks) == sorted(ids), "sclite's pralign output did not list every utterance"
    for (ref, hyp), u in zip(pairs, ids):
        c, s, d, i = _scores(blocks[u])
        res = edit_distance(ref, hyp)
        assert (res.substitutions, res.deletions, res.insertions) == (s, d, i), (u, ref, hyp, blocks[u])
        assert res.distance == s + d + i
        assert format_alignment(align(ref, hyp), utt_id=u).splitlines() == blocks[u], (u, ref, hyp)
    total = error_rate([r for r, _ in pairs], [h for _, h in pairs])
    snt, words, corr, sub, dele, ins, err, _ = _parse_sum(out)
    assert (snt, words) == (len(pairs), total.ref_tokens)
    assert (sub, dele, ins, err) == (total.substitutions, total.deletions, total.insertions, total.errors)
    assert corr == total.ref_tokens - total.substitutions - total.deletions
