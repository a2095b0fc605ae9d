"""Reading TIMIT (and any corpus in TIMIT's on-disk layout): utterances, phone/word alignments, splits.

Layout (names in upper or lower case, as on the LDC disc or on copies that lower-cased them)::

    ROOT/TRAIN/DR1/FCJF0/SA1.WAV     NIST SPHERE, 16 kHz, 16 bit (read with scratchasr.features.load_audio)
                          SA1.PHN     "start end phone" per line, in samples: 0 3050 h#
                          SA1.WRD     "start end word" per line, in samples:  3050 5723 she
                          SA1.TXT     "start end text":                        0 46797 She had your ...
    ROOT/TEST/DR1/FAKS0/...

``ROOT`` may also be a folder holding ``TIMIT/`` or ``data/`` with that layout inside.

Splits (``read_corpus(root, split)``):

* ``"train"``: every speaker under ``TRAIN`` (462 in TIMIT), SA sentences excluded: 3696 utterances.
* ``"dev"``: the standard 50 speakers (``timit_dev_speakers.txt``, from ``TEST``): 400 utterances.
* ``"core_test"``: the 24 core-test speakers (``timit_core_test_speakers.txt``): 192 utterances.
* ``"test"``: every speaker under ``TEST`` (168 in TIMIT, so it includes the dev and core-test speakers).

SA1/SA2 are the two "dialect" sentences read by every speaker; including them would let a model
memorise them, so every split excludes them, as in the literature.

A corpus in TIMIT's layout but with other speakers (the synthetic corpus of ``scratchasr synth-timit``,
or your own) names its dev and core-test speakers in ``ROOT/splits.json``::

    {"dev": ["MKAL001", ...], "core_test": ["FSLT003", ...]}

which ``read_corpus`` then uses instead of the package's lists (the listed speakers must live under
``TEST``). Labels are read and checked, never audio: load it with ``load_audio(utt.wav_path)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ._text import read_lines
from .phones import FOLD_48_TO_39, FOLD_61_TO_39, FOLD_61_TO_48, PHONES_39, PHONES_48, PHONES_61, fold_phones

__all__ = ["Utterance", "read_corpus", "read_labels", "speaker_list", "fold_phones", "PHONES_61", "PHONES_48",
           "PHONES_39", "FOLD_61_TO_48", "FOLD_61_TO_39", "FOLD_48_TO_39", "SPLITS"]

SPLITS = ("train", "dev", "core_test", "test")
SPLITS_FILE = "splits.json"
LABEL_EXTENSIONS = (".wav", ".phn", ".wrd", ".txt")


@dataclass
class Utterance:
    """One TIMIT utterance: where its audio is and what was said, with times in samples."""

    id: str                       # "<SPEAKER>_<SENTENCE>", e.g. "FAKS0_SX13"
    speaker: str                  # folder name, upper case, e.g. "FAKS0"
    wav_path: str                 # the .WAV file (NIST SPHERE in TIMIT)
    phones: list = field(default_factory=list)   # [(start_sample, end_sample, phone)], 61-phone set
    words: list = field(default_factory=list)    # [(start_sample, end_sample, word)]
    text: str = ""                # the prompt, as in the .TXT file
    dialect: str = ""             # dialect-region folder, e.g. "DR1"
    sentence_id: str = ""         # e.g. "SX13", "SI1573"
    sample_range: tuple = (0, 0)  # the (start, end) pair at the head of the .TXT file

    @property
    def phone_labels(self) -> list[str]:
        """The phone symbols without times."""
        return [p for _, _, p in self.phones]


def _child(parent: Path, name: str) -> Optional[Path]:
    """The entry of ``parent`` called ``name``, compared case-insensitively (exact case preferred)."""
    exact = parent / name
    if exact.exists():
        return exact
    if not parent.is_dir():
        return None
    for entry in parent.iterdir():
        if entry.name.lower() == name.lower():
            return entry
    return None


def _corpus_dirs(root: Path) -> Path:
    """The folder holding TRAIN/ and TEST/ (root itself, or root/TIMIT, or root/data)."""
    if not root.is_dir():
        raise FileNotFoundError(f"root: no such directory: {root}")
    for candidate in (root, _child(root, "timit"), _child(root, "data")):
        if candidate is not None and (_child(candidate, "train") or _child(candidate, "test")):
            return candidate
    raise FileNotFoundError(f"root: {root} has no TRAIN/ or TEST/ folder (nor TIMIT/TRAIN, data/TRAIN); "
                            "expected TIMIT's layout ROOT/TRAIN/DR1/<SPEAKER>/<SENTENCE>.WAV")


def speaker_list(name: str) -> list[str]:
    """The package's standard TIMIT speaker list: ``"dev"`` (50 speakers) or ``"core_test"`` (24)."""
    if name not in ("dev", "core_test"):
        raise ValueError(f"name: expected 'dev' or 'core_test', got {name!r}")
    text = (Path(__file__).parent / f"timit_{name}_speakers.txt").read_text()
    return [line.strip().upper() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _split_speakers(root: Path, corpus: Path, split: str) -> list[str]:
    """The split's speakers: from splits.json in the corpus folder (or the root given) if present."""
    splits_file = _child(corpus, SPLITS_FILE) or _child(root, SPLITS_FILE)
    if splits_file is None:
        return speaker_list(split)
    try:
        spec = json.loads(splits_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{splits_file}: malformed JSON ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get(split), list):
        raise ValueError(f"{splits_file}: expected an object with a list of speakers under {split!r}")
    return [str(s).upper() for s in spec[split]]


def _read_segments(path: Path, *, phones: bool,
                   n_samples: Optional[int] = None) -> list[tuple[int, int, str]]:
    """Parse a .PHN or .WRD file: one "start end label" triple per line, sample offsets.

    Segments must come in time order and stay inside the audio (``end <= n_samples``). Phones may not
    overlap (TIMIT's tile the utterance); a word may start before the previous one ends, because TIMIT
    lets two words share a phone at their boundary, but may not start or end before it does.
    """
    out = []
    prev: Optional[tuple[int, int, int]] = None         # (start, end, line number) of the last segment
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{lineno}: expected 'start end label', got {line!r}")
        try:
            start, end = int(parts[0]), int(parts[1])
        except ValueError:
            raise ValueError(f"{path}:{lineno}: start and end must be integer sample offsets, "
                             f"got {line!r}") from None
        if start < 0 or end < start:
            raise ValueError(f"{path}:{lineno}: expected 0 <= start <= end, got {start} {end}")
        if n_samples is not None and end > n_samples:
            raise ValueError(f"{path}:{lineno}: segment {start} {end} ends past the audio's "
                             f"{n_samples} samples")
        if prev is not None:
            p_start, p_end, p_line = prev
            if start < p_start or end < p_end:
                raise ValueError(f"{path}:{lineno}: segments out of order: {start} {end} comes after "
                                 f"{p_start} {p_end} (line {p_line})")
            if phones and start < p_end:
                raise ValueError(f"{path}:{lineno}: phone {start} {end} overlaps the previous one "
                                 f"{p_start} {p_end} (line {p_line})")
        prev = (start, end, lineno)
        label = parts[2].lower() if phones else parts[2]
        if phones and label not in PHONES_61:
            raise ValueError(f"{path}:{lineno}: {parts[2]!r} is not one of TIMIT's 61 phones")
        out.append((start, end, label))
    if phones and not out:
        raise ValueError(f"{path}: no phone labels")
    return out


def _num_samples(wav: Path) -> int:
    """Samples per channel of an utterance's audio, from its header alone (SPHERE or soundfile)."""
    from ..features.audio import _is_sphere, read_sphere_header
    if _is_sphere(str(wav)):
        h = read_sphere_header(wav)
        if h.sample_count >= 0:
            return h.sample_count
        data = wav.stat().st_size - h.header_size
        return data // (h.sample_n_bytes * h.channel_count)
    import soundfile as sf
    try:
        return int(sf.info(str(wav)).frames)
    except Exception as e:  # libsndfile's errors are RuntimeError / LibsndfileError
        raise ValueError(f"{wav}: cannot read the audio header: {e}") from None


def _read_txt(path: Path) -> tuple[tuple[int, int], str]:
    line = "\n".join(read_lines(path)).strip()
    parts = line.split(None, 2)
    try:
        start, end = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: expected 'start end text', got {line[:60]!r}") from None
    return (start, end), (parts[2] if len(parts) == 3 else "")


def _sibling(stem_path: Path, ext: str) -> Path:
    """``stem_path`` with extension ``ext`` in the case the folder uses; FileNotFoundError if absent."""
    for candidate in (stem_path.with_suffix(ext.upper()), stem_path.with_suffix(ext.lower())):
        if candidate.is_file():
            return candidate
    found = _child(stem_path.parent, stem_path.name + ext)
    if found is not None and found.is_file():
        return found
    raise FileNotFoundError(f"{stem_path.with_suffix(ext.upper())}: missing (each utterance needs .WAV, "
                            ".PHN, "
                            ".WRD and .TXT)")


def read_labels(path: str | os.PathLike, *, speaker: str = "", dialect: str = "") -> Utterance:
    """Read one utterance given any of its four files (.WAV, .PHN, .WRD, .TXT: all four must exist).

    The labels are checked (phones known, segments in order, inside the audio, whose length is read
    from its header); ValueError names the file and line of the first problem.
    """
    stem = Path(path).with_suffix("")
    wav = _sibling(stem, ".wav")
    phn = _sibling(stem, ".phn")
    wrd = _sibling(stem, ".wrd")
    txt = _sibling(stem, ".txt")
    speaker = (speaker or phn.parent.name).upper()
    sentence = stem.name.upper()
    sample_range, text = _read_txt(txt)
    n = _num_samples(wav)
    return Utterance(id=f"{speaker}_{sentence}", speaker=speaker, wav_path=str(wav),
                     phones=_read_segments(phn, phones=True, n_samples=n),
                     words=_read_segments(wrd, phones=False, n_samples=n),
                     text=text, dialect=(dialect or phn.parent.parent.name).upper(), sentence_id=sentence,
                     sample_range=sample_range)


def _speaker_dirs(part: Path) -> dict[str, Path]:
    """{SPEAKER: folder} over the DR* folders of TRAIN/ or TEST/."""
    out = {}
    for dr in sorted(part.iterdir()):
        if not dr.is_dir() or not dr.name.lower().startswith("dr"):
            continue
        for spk in sorted(dr.iterdir()):
            if spk.is_dir():
                out[spk.name.upper()] = spk
    return out


def read_corpus(root: str | os.PathLike, split: str) -> list[Utterance]:
    """All utterances of one split of a TIMIT-layout corpus, SA sentences excluded, sorted by id.

    Args:
        root: the corpus folder (holding ``TRAIN/`` and ``TEST/``, in any case).
        split: ``"train"``, ``"dev"``, ``"core_test"`` or ``"test"`` (see the module docstring).

    Raises:
        FileNotFoundError naming the missing folder or file; ValueError naming the malformed file and
        line, or a split whose listed speakers are not in the corpus.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {list(SPLITS)}, got {split!r}")
    root = Path(root)
    corpus = _corpus_dirs(root)
    part = _child(corpus, "train" if split == "train" else "test")
    if part is None or not part.is_dir():
        raise FileNotFoundError(f"root: {corpus} has no {'TRAIN' if split == 'train' else 'TEST'}/ folder "
                                f"(needed for split {split!r})")
    speakers = _speaker_dirs(part)
    if split in ("dev", "core_test"):
        wanted = _split_speakers(root, corpus, split)
        missing = [s for s in wanted if s not in speakers]
        if missing:
            raise ValueError(f"split {split!r}: {len(missing)} of its {len(wanted)} speakers are not under "
                             f"{part} "
                             f"(first: {missing[:5]}); a corpus with other speakers must list its own in "
                             f"{corpus / SPLITS_FILE}")
        speakers = {s: speakers[s] for s in wanted}
    utts = []
    for spk, folder in speakers.items():
        # an utterance is any stem with one of the four files; read_labels insists on all four
        stems = {f.with_suffix("").name.upper(): f for f in sorted(folder.iterdir())
                 if f.suffix.lower() in LABEL_EXTENSIONS and "." not in f.stem}
        for name, f in sorted(stems.items()):
            if not name.startswith("SA"):
                utts.append(read_labels(f, speaker=spk, dialect=folder.parent.name))
    if not utts:
        raise ValueError(f"split {split!r}: no utterances (other than SA*) found under {part}")
    utts.sort(key=lambda u: u.id)
    return utts
