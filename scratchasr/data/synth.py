"""A license-free corpus in TIMIT's exact on-disk layout, synthesised with festival, flite and espeak-ng.

TIMIT is licensed; most students do not have it. ``synth_timit(out_dir, size=...)`` (the command
``scratchasr synth-timit OUT_DIR``) writes ``TRAIN/DR*/<SPEAKER>/<SENTENCE>.{WAV,PHN,WRD,TXT}`` and
``TEST/...`` exactly as TIMIT does (NIST SPHERE 16 kHz 16 bit; phone and word boundaries in samples;
TIMIT's 61-phone symbols), plus ``splits.json`` (dev and core-test speakers, read by
``timit.read_corpus``) and ``corpus.json`` (voices, speaker parameters, sentences, what was dropped).

How (docs/data.md, "The synthetic corpus"):

* Text: example sentences from WordNet 3.0 glosses (Debian ``wordnet-base``), 7-14 words, letters,
  spaces, commas and apostrophes only. Train and test (dev + core test) sentence pools are disjoint.
* Voices: festival ``kal_diphone``, ``ked_diphone``, ``cmu_us_slt_arctic_hts`` (+ mbrola's ``us1/us2/us3``
  through festival when installed: engine ``mbrola``, festival's labels) and flite ``awb``, ``rms``,
  ``slt`` (flite's ``kal16`` is avoided: its labels run ~116 ms past its audio). Phone end times come
  from the synthesisers (festival's Segment relation, flite's ``-psdur``); festival gives word membership
  directly, for flite it is recovered by aligning ``t2p``'s per-word pronunciations to the segments.
  espeak-ng's 104 voices (8 English accents x 13 variants; ``--voices all`` or ``espeak-ng``) come from
  libespeak-ng's word and IPA phoneme events, mapped to TIMIT phones (:mod:`scratchasr.data.espeak`);
  the default voice set is festival's and flite's (mbrola's and espeak-ng's are asked for by name).
* Speakers: a voice with its own tempo (the synthesiser's duration stretch), F0 target (where the
  voice exposes one) and a "vocal-tract" warp (the waveform is resampled as if recorded at
  ``warp * rate``, which scales F0 and formants by ``warp`` and durations by ``1 / warp``; labels are
  scaled to match). Each speaker belongs to one split only; ``holdout_voices`` keeps whole voices out
  of TRAIN.
* Labels: synthesiser phones (CMU/radio ARPAbet, all of them TIMIT symbols) are kept as they are;
  the leading and trailing ``pau`` become ``h#`` as in TIMIT, inner pauses stay ``pau``. TIMIT's
  closures (bcl, dcl, ...), flaps (dx), ix, ax-h, el/en, epi and q never occur (docs/data.md).
* Validation: festival can exit 0 with truncated audio, so every utterance is checked (last label
  vs audio length within 50 ms, every phone at least one sample long, known phones, word alignment);
  failures are dropped, retried once with another sentence, and listed in ``corpus.json``.

Everything is deterministic for a seed: speakers, parameters and sentences are drawn up front from
one ``np.random.Generator``, and the synthesisers are deterministic.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from . import espeak
from .phones import PHONES_61

SAMPLE_RATE = 16000
WORDNET_DIR = Path("/usr/share/wordnet")
FESTIVAL_VOICE_DIRS = (Path("/usr/share/festival/voices"), Path("/usr/lib/festival/voices"))
MAX_LABEL_MISMATCH_S = 0.050   # |audio end - last label end| above this: the utterance is dropped
MAX_TAIL_S = 0.300             # audio running this far past the labels is also suspicious


class SynthesisError(RuntimeError):
    """A synthesis run that produced no utterance for some split (every one failed or was dropped)."""


@dataclass(frozen=True)
class Voice:
    """A synthesiser voice: engine, name as the engine knows it, sex (for TIMIT's speaker-id letter)."""

    key: str          # our name: kal, ked, slt_hts, us1, us2, us3, awb, rms, slt, en-us+m3, ...
    engine: str       # "festival", "flite", "espeak-ng" or "mbrola" (diphones driven by festival's front end)
    name: str         # festival voice function (voice_kal_diphone), flite -voice name, espeak-ng voice
    sex: str          # "M" or "F"
    code: str         # three letters used in speaker ids, e.g. KAL
    base_f0: float    # flite: the F0 target mean (Hz) scaled by a speaker's f0 factor; festival: unused

    @property
    def driver(self) -> str:
        """The program that synthesises it: festival also runs the mbrola voices (its text analysis and
        phone labels, mbrola's diphone waveform), so they are a separate engine with festival's labels."""
        return "festival" if self.engine == "mbrola" else self.engine


VOICES = (
    Voice("kal", "festival", "voice_kal_diphone", "M", "KAL", 0.0),
    Voice("ked", "festival", "voice_ked_diphone", "M", "KED", 0.0),
    Voice("slt_hts", "festival", "voice_cmu_us_slt_arctic_hts", "F", "SLH", 0.0),
    Voice("us1", "mbrola", "voice_us1_mbrola", "F", "US1", 0.0),
    Voice("us2", "mbrola", "voice_us2_mbrola", "M", "US2", 0.0),
    Voice("us3", "mbrola", "voice_us3_mbrola", "M", "US3", 0.0),
    Voice("awb", "flite", "awb", "M", "AWB", 110.0),
    Voice("rms", "flite", "rms", "M", "RMS", 105.0),
    Voice("slt", "flite", "slt", "F", "SLT", 180.0),
) + tuple(Voice(k, "espeak-ng", k, espeak.voice_sex(k), espeak.voice_code(k), 0.0)
        for k in espeak.voice_keys())
VOICE_BY_KEY = {v.key: v for v in VOICES}
ENGINES = ("festival", "flite", "espeak-ng", "mbrola")
# voices=None: festival's and flite's Debian-main voices, the same corpus on every machine (mbrola's
# contrib/non-free voices, where installed, are asked for by name: --voices mbrola, all, us1, ...)
DEFAULT_ENGINES = ("festival", "flite")
PROBE_TEXT = "The judge found the building's thick walls strange, and they moved away quickly."

# size -> (train speakers, dev speakers, core-test speakers, sentences per speaker)
SIZES = {
    "tiny": (4, 2, 2, 2),        # 8 + 4 + 4 utterances: seconds, for tests
    "small": (100, 10, 8, 8),    # 800 + 80 + 64: the ~10-15 minute demo
    "full": (462, 50, 24, 8),    # TIMIT's 3696 + 400 + 192
    "large": (2700, 100, 48, 8),  # 21600 + 800 + 384: ~20 h; train sentences are shared by ~3 speakers
}
REUSE_SENTENCES = ("large",)     # sizes whose train speakers may share sentences (WordNet has ~14,800)

# speaker-variant ranges (uniform); wide enough to be different speakers, narrow enough to stay natural
TEMPO_RANGE = (0.85, 1.20)   # duration stretch (> 1 slower)
F0_RANGE = (0.80, 1.25)      # factor on the voice's F0 target
WARP_RANGE = (0.92, 1.08)    # vocal-tract / resampling warp


@dataclass
class Speaker:
    id: str
    voice: str
    split: str       # train, dev, core_test
    dialect: str     # DR1..DR8 (assigned round-robin; meaningless for synthetic speakers)
    tempo: float
    f0: float
    warp: float
    engine: str = ""   # filled by plan_corpus from the voice


@dataclass
class Job:
    """One utterance to synthesise."""

    utt_id: str
    speaker: Speaker
    sentence_id: str
    text: str
    words: list      # lower-case tokens written to .WRD


# ----------------------------------------------------------------------------------------------- text


_SENTENCE_RE = re.compile(r'"([A-Za-z][A-Za-z\',\s]+)"')


def _clean_token(tok: str) -> Optional[str]:
    tok = tok.strip(",")
    if not re.fullmatch(r"[A-Za-z]+('[A-Za-z]+)?", tok):
        return None
    if sum(c.isupper() for c in tok) > 1 or (tok[0].isupper() and len(tok) == 1 and tok != "I"):
        return None  # abbreviations and initials are spelled out letter by letter: avoid them
    return tok


def wordnet_sentences(wordnet_dir: Path = WORDNET_DIR, *, min_words: int = 7,
                      max_words: int = 14) -> list[str]:
    """Quoted example sentences of WordNet's glosses, cleaned, deduplicated and sorted."""
    files = [wordnet_dir / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"WordNet data files missing: {missing}; install them with "
                                "`apt-get install wordnet-base`")
    seen: dict[str, str] = {}
    for f in files:
        for m in _SENTENCE_RE.finditer(f.read_text(errors="replace")):
            s = " ".join(m.group(1).split()).strip(" ,")
            toks = s.split()
            if not (min_words <= len(toks) <= max_words) or ",," in s:
                continue
            if any(_clean_token(t) is None for t in toks):
                continue
            s = s[0].upper() + s[1:] + "."
            seen.setdefault(s.lower(), s)
    return sorted(seen.values())


def _tokens(text: str) -> list[str]:
    return [t.strip(",.").lower() for t in text.split()]


# ----------------------------------------------------------------------------------------------- voices


def speakers_of_voices(corpus_root, voices) -> list[str]:
    """Speaker ids of a synthesised corpus whose voice is in ``voices`` (list or "a,b"), from corpus.json.

    An entry may also name an engine (``espeak-ng``, ``festival``, ``flite``, ``mbrola``) or an espeak-ng
    accent (``en-gb-x-rp``): every voice of it. A voice's engine is the one corpus.json records or its
    engine today (corpora made before mbrola was an engine of its own record ``festival`` for us1..us3).
    """
    wanted = set(voices.split(",") if isinstance(voices, str) else voices)
    if "espeak" in wanted:
        wanted.add("espeak-ng")
    table = json.loads((Path(corpus_root) / "corpus.json").read_text())["speakers"]
    return [s["id"] for s in table
            if s["voice"] in wanted or s.get("engine") in wanted
            or (s["voice"] in VOICE_BY_KEY and VOICE_BY_KEY[s["voice"]].engine in wanted)
            or s["voice"].partition("+")[0] in wanted]


def resolve_voices(names: Sequence[str], among: Sequence[str], *, arg: str = "voices") -> list[str]:
    """Voice keys named by ``names``, in the order of ``among``: keys, engines, accents or ``all``.

    ``all`` is every voice of ``among``; ``festival``, ``flite``, ``espeak-ng`` (or ``espeak``), ``mbrola``
    every voice of that engine; an espeak-ng accent such as ``en-us`` or ``en-gb-x-rp`` its 13 variants. A
    name that is none of these, or that selects nothing from ``among``, is a ValueError starting with ``arg``.
    """
    chosen: set[str] = set()
    for name in names:
        engine = "espeak-ng" if name == "espeak" else name
        if name == "all":
            hit = list(among)
        elif engine in ENGINES:
            hit = [k for k in among if VOICE_BY_KEY[k].engine == engine]
        elif name in espeak.ACCENTS:
            hit = [k for k in among if k.partition("+")[0] == name and VOICE_BY_KEY[k].engine == "espeak-ng"]
        elif name in VOICE_BY_KEY:
            hit = [name] if name in among else []
        else:
            classic = ", ".join(v.key for v in VOICES if v.engine != "espeak-ng")
            raise ValueError(f"{arg}: unknown voice {name!r}; a voice ({classic}, en-us+m1 ...), an engine "
                             f"({', '.join(ENGINES)}), an espeak-ng accent "
                             f"({', '.join(espeak.ACCENTS)}) or 'all'")
        if not hit:
            raise ValueError(f"{arg}: {name!r} selects no voice among {len(among)} available "
                             f"({', '.join(list(among)[:12])}{' ...' if len(among) > 12 else ''})")
        chosen.update(hit)
    return [k for k in among if k in chosen]


MBROLA_PACKAGES = "mbrola, mbrola-us1..3 and festvox-us1..3 (Debian contrib/non-free; docs/data.md)"


def _festival_voice_missing(v: Voice) -> Optional[str]:
    """Why festival voice ``v`` cannot be used here (None: it can): festival, the voice's folder, and for
    the mbrola voices the ``mbrola`` program on PATH."""
    if not shutil.which("festival"):
        return "festival is not installed"
    folder = v.name[len("voice_"):]
    if not any((d / lang / folder).is_dir() for d in FESTIVAL_VOICE_DIRS for lang in ("english", "us")):
        return f"festival voice folder {folder} not found"
    if "mbrola" in v.name and not shutil.which("mbrola"):
        return "the mbrola program is not on PATH"
    return None


def missing_mbrola_voices() -> dict[str, str]:
    """``{voice: reason}`` for festival's mbrola voices (us1, us2, us3) that cannot be used here. They are
    optional (``MBROLA_PACKAGES``): detected, offered by ``available_voices`` when present, skipped with a
    notice by ``synth_timit`` when not."""
    reasons = {v.key: _festival_voice_missing(v) for v in VOICES if "mbrola" in v.name}
    return {k: r for k, r in reasons.items() if r is not None}


def available_voices() -> list[str]:
    """Keys of the voices installed on this machine (festival voices by folder, with the ``mbrola``
    program for the mbrola ones; flite by ``flite -lv``; espeak-ng's when libespeak-ng loads)."""
    out = [v.key for v in VOICES if v.driver == "festival" and _festival_voice_missing(v) is None]
    if shutil.which("flite") and shutil.which("t2p"):
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split()
        out += [v.key for v in VOICES if v.engine == "flite" and v.name in listed]
    if espeak.library_path() is not None:
        out += [v.key for v in VOICES if v.engine == "espeak-ng"]
    return out


# ----------------------------------------------------------------------------------------------- planning


def plan_corpus(sentences: Sequence[str], voices: Sequence[str], *, size: str = "small", seed: int = 0,
                holdout_voices: Sequence[str] = ()) -> tuple[list[Speaker], list[Job], dict]:
    """Draw speakers, their parameters and their sentences. Pure: no synthesis.

    Returns ``(speakers, jobs, spare)`` where ``spare`` maps each split group ("train", "test") to the
    unused sentences of its pool, in order, for replacing dropped utterances.
    """
    if size not in SIZES:
        raise ValueError(f"size: expected one of {list(SIZES)}, got {size!r}")
    unknown = [v for v in list(voices) + list(holdout_voices) if v not in VOICE_BY_KEY]
    if unknown:
        raise ValueError(f"voices: unknown voice(s) {unknown}; known: {list(VOICE_BY_KEY)}")
    if not voices:
        raise ValueError("voices: no synthesis voice available (install festival/flite, see docs/data.md)")
    train_voices = [v for v in voices if v not in holdout_voices]
    if not train_voices:
        raise ValueError(f"holdout_voices: holding out {list(holdout_voices)} leaves no voice for training")
    n_train, n_dev, n_core, per_spk = SIZES[size]
    rng = np.random.default_rng(seed)

    # sentence pools: a seeded permutation, test pool first; disjoint by construction
    order = rng.permutation(len(sentences))
    n_test_sent = (n_dev + n_core) * per_spk * 2     # twice what is needed, leaving spares for retries
    n_train_sent = n_train * per_spk * 2
    if size in REUSE_SENTENCES:     # not enough sentences: train speakers share them (as TIMIT's SX)
        n_train_sent = max(min(n_train_sent, len(sentences) - n_test_sent), 4 * per_spk)
    if len(sentences) < n_test_sent + n_train_sent:
        raise ValueError(f"sentences: {len(sentences)} are too few for size {size!r}")
    test_pool = [int(i) for i in order[:n_test_sent]]
    train_pool = [int(i) for i in order[n_test_sent:n_test_sent + n_train_sent]]

    counters: dict[str, int] = {}
    speakers: list[Speaker] = []
    for split, n, pool_voices in (("train", n_train, train_voices), ("dev", n_dev, list(voices)),
                                  ("core_test", n_core, list(voices))):
        # voices round-robin from a seeded rotation, so every voice gets its share in each split;
        # held-out voices come first in dev/core test so that even tiny test sets contain them. With
        # espeak-ng voices among them, engines get equal shares and held-out/other voices alternate
        offset = int(rng.integers(len(pool_voices)))
        rotation = pool_voices[offset:] + pool_voices[:offset]
        mixed = "espeak-ng" in {VOICE_BY_KEY[v].engine for v in rotation}
        if split != "train":
            held = [v for v in rotation if v in holdout_voices]
            rest = [v for v in rotation if v not in holdout_voices]
            rotation = _interleave([_by_engine(held), _by_engine(rest)]) if mixed else held + rest
        elif mixed:
            rotation = _by_engine(rotation)
        for k in range(n):
            key = rotation[k % len(rotation)]
            v = VOICE_BY_KEY[key]
            idx = counters.get(key, 0)
            counters[key] = idx + 1
            speakers.append(Speaker(id=f"{v.sex}{v.code}{idx:03d}", voice=key, split=split,
                                    dialect=f"DR{len(speakers) % 8 + 1}",
                                    tempo=round(float(rng.uniform(*TEMPO_RANGE)), 3),
                                    f0=round(float(rng.uniform(*F0_RANGE)), 3),
                                    warp=round(float(rng.uniform(*WARP_RANGE)), 3), engine=v.engine))

    jobs: list[Job] = []
    cursor = {"train": 0, "test": 0}
    pools = {"train": train_pool, "test": test_pool}
    for spk in speakers:
        group = "train" if spk.split == "train" else "test"
        for _ in range(per_spk):
            i = pools[group][cursor[group] % (len(pools[group]) // 2)]   # first half: primary sentences
            cursor[group] += 1
            jobs.append(_job(spk, i, sentences[i]))
    spare = {g: [(i, sentences[i]) for i in pools[g][len(pools[g]) // 2:]] for g in pools}
    return speakers, jobs, spare


def _interleave(queues: list[list[str]]) -> list[str]:
    """One from each non-empty queue in turn, cycling the shorter ones, until the longest is used up."""
    queues = [q for q in queues if q]
    n = max((len(q) for q in queues), default=0)
    return [q[k % len(q)] for k in range(n) for q in queues]


def _by_engine(voices: list[str]) -> list[str]:
    """``voices`` in a rotation that gives each engine an equal share (espeak-ng's 104 voices would
    otherwise outnumber festival's and flite's 3 each); used when espeak-ng voices are selected, so
    festival/flite-only corpora keep their plan."""
    engines = [e for e in ENGINES if any(VOICE_BY_KEY[v].engine == e for v in voices)]
    return _interleave([[v for v in voices if VOICE_BY_KEY[v].engine == e] for e in engines])


def _job(spk: Speaker, index: int, text: str) -> Job:
    sid = f"SI{index + 1}"
    return Job(utt_id=f"{spk.id}_{sid}", speaker=spk, sentence_id=sid, text=text, words=_tokens(text))


# ----------------------------------------------------------------------------------------------- synthesis

_FESTIVAL_DUMP = r"""
(define (scratchasr_dump u fname)
  (let ((fd (fopen fname "w")) (k 0))
    (mapcar (lambda (tok)
      (if (not (item.parent tok))   ; top-level tokens only (the list also holds their word daughters)
       (begin
        (mapcar (lambda (w)
          (mapcar (lambda (syl)
                    (mapcar (lambda (seg) (format fd "W %d %s %f\n" k (item.name seg) (item.feat seg "end")))
                            (item.daughters syl)))
                  (item.daughters (item.relation w 'SylStructure))))
          (item.daughters tok))
        (set! k (+ k 1)))))
     (utt.relation.items u 'Token))
    (mapcar (lambda (s) (format fd "S %s %f\n" (item.name s) (item.feat s "end")))
            (utt.relation.items u 'Segment))
    (fclose fd)))
"""


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def scheme_string(text: str) -> str:
    """``text`` as a Scheme (SIOD) string literal that festival reads back as exactly that text.

    Backslash and double quote are the only characters with a meaning inside a SIOD string; both
    are backslash-escaped, so nothing in ``text`` can close the literal and be evaluated as code
    (``(system ...)``). Control characters (newline, NUL, ...) become spaces: to the synthesiser they
    are word breaks anyway, and a NUL would end the string early.
    """
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    text = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_batch(voice: Voice, jobs: list[Job], tmp: Path) -> dict[str, tuple]:
    """Run one festival process for several utterances of one voice: {utt_id: (wav path, segments)}.

    Segments are ``[(end_seconds, phone, token_index or -1)]`` in order. Words are walked through
    festival's Token relation, so a token festival splits ("dictionary's" -> dictionary + 's) still
    counts as the one word of the text.

    The script is Scheme source, so nothing from outside goes into it unescaped: sentence text through
    :func:`scheme_string`, and no path at all (festival runs in ``tmp`` and writes plain file names,
    so a quote or space in ``TMPDIR`` cannot break the script).
    """
    for j in jobs:
        if not _SAFE_NAME.fullmatch(j.utt_id):
            raise ValueError(f"utt_id: expected letters, digits, '_', '.' or '-', got {j.utt_id!r}")
    lines = [f"({voice.name})", "(set! scratchasr_base_lr int_lr_params)", _FESTIVAL_DUMP]
    for j in jobs:
        s = j.speaker
        lines.append(f"(Parameter.set 'Duration_Stretch {float(s.tempo)!r})")
        # diphone/mbrola voices take their F0 target from int_lr_params; an entry consed in front
        # overrides the voice's own (assoc returns the first match). HTS voices ignore it.
        lines.append("(if (assoc 'target_f0_mean scratchasr_base_lr) (set! int_lr_params (cons (list "
                     f"'target_f0_mean (* {float(s.f0)!r} (car (cdr (assoc 'target_f0_mean "
                     "scratchasr_base_lr))))) scratchasr_base_lr)))")
        lines.append(f"(set! u (utt.synth (Utterance Text {scheme_string(j.text)})))")
        lines.append(f"(utt.save.wave u {scheme_string(j.utt_id + '.wav')} 'riff)")
        lines.append(f"(scratchasr_dump u {scheme_string(j.utt_id + '.lab')})")
    script = tmp / "batch.scm"
    script.write_text("\n".join(lines) + "\n")
    try:
        subprocess.run(["festival", "-b", script.name], cwd=tmp, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        pass  # whatever was written before the hang is validated below; the rest is reported as dropped
    out = {}
    for j in jobs:
        wav, lab = tmp / (j.utt_id + ".wav"), tmp / (j.utt_id + ".lab")
        if not (wav.is_file() and lab.is_file()):
            continue
        word_segs, segs = [], []
        for line in lab.read_text().splitlines():
            p = line.split()
            if p[0] == "W":
                word_segs.append((int(p[1]), p[2], p[3]))
            elif p[0] == "S":
                segs.append((p[1], p[2]))
        # non-pause segments appear in the Word walk in the same order as in the Segment relation
        labelled, w = [], 0
        for name, end in segs:
            if w < len(word_segs) and word_segs[w][1] == name and word_segs[w][2] == end:
                labelled.append((float(end), name, word_segs[w][0]))
                w += 1
            else:
                labelled.append((float(end), name, -1))
        out[j.utt_id] = (wav, labelled)
    return out


def _align_words(word_phones: list[list[str]], seg_phones: list[str]) -> list[int]:
    """Word index of each segment: Levenshtein-align the dictionary phones to the synthesised ones.

    Segments aligned to a dictionary phone take its word; inserted segments take the previous word.
    """
    ref = [(p, k) for k, ph in enumerate(word_phones) for p in ph]
    n, m = len(ref), len(seg_phones)
    cost = np.zeros((n + 1, m + 1), dtype=np.int64)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(cost[i - 1, j - 1] + (ref[i - 1][0] != seg_phones[j - 1]),
                             cost[i - 1, j] + 1, cost[i, j - 1] + 1)
    owner = [-1] * m
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1][0] != seg_phones[j - 1]):
            owner[j - 1] = ref[i - 1][1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    last = 0
    for j in range(m):
        if owner[j] < 0:
            owner[j] = last
        last = owner[j]
    return owner


def _flite_one(voice: Voice, job: Job, tmp: Path) -> Optional[tuple]:
    s = job.speaker
    wav = tmp / (job.utt_id + ".wav")
    try:
        r = subprocess.run(["flite", "-voice", voice.name, "-psdur", "--setf", f"duration_stretch={s.tempo}",
                            "--setf", f"int_f0_target_mean={voice.base_f0 * s.f0:.1f}", "-t", job.text,
                            "-o", str(wav)], capture_output=True, text=True, timeout=120)
        t2p = subprocess.run(["t2p", ", ".join(job.words) + "."], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0 or not wav.is_file():
        return None
    segs = []
    for item in r.stdout.split():
        name, _, end = item.rpartition(":")
        segs.append((float(end), name))
    # pronunciations word by word (t2p above): commas make t2p put a pause between words
    groups, cur = [], []
    for p in t2p.stdout.split():
        if p == "pau":
            if cur:
                groups.append(cur)
            cur = []
        else:
            cur.append(p.rstrip("012"))
    if cur:
        groups.append(cur)
    if len(groups) != len(job.words):
        return wav, [(end, name, -2) for end, name in segs]   # -2: word alignment failed
    inner = [k for k, (_, name) in enumerate(segs) if name != "pau"]
    owner = _align_words(groups, [segs[k][1] for k in inner])
    word_of = dict(zip(inner, owner))
    return wav, [(end, name, word_of.get(k, -1)) for k, (end, name) in enumerate(segs)]


def _espeak_batch(jobs: list[Job], tmp: Path) -> dict[str, tuple]:
    """Synthesise espeak-ng jobs (any voices) in one fresh process: {utt_id: (wav path, segments)}.

    A fresh process per batch: libespeak-ng keeps state between utterances (voice flutter), so the
    audio of a batch must not depend on what the worker synthesised before it.
    """
    payload = [{"utt_id": j.utt_id, "voice": VOICE_BY_KEY[j.speaker.voice].name, "text": j.text,
                "rate": int(round(espeak.DEFAULT_RATE / j.speaker.tempo)),
                "pitch": int(min(100, round(espeak.DEFAULT_PITCH * j.speaker.f0)))} for j in jobs]
    try:
        subprocess.run([sys.executable, "-m", "scratchasr.data.espeak", str(tmp)], input=json.dumps(payload),
                       capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        pass  # whatever was written is validated; the rest is reported as dropped
    out = {}
    for j in jobs:
        wav, ev = tmp / f"{j.utt_id}.wav", tmp / f"{j.utt_id}.events.json"
        if not (wav.is_file() and ev.is_file()):
            continue
        info = json.loads(ev.read_text())
        segs = espeak.labels_from_events(info["events"], info["n_samples"], info["sample_rate"],
                                         pad_samples=info["pad_samples"])
        if len({w for _, _, w in segs if w >= 0}) != len(j.words):
            # a word event for two words ("from the"): words from each word's own phones, aligned as flite's
            groups = [espeak.timit_of_ipa(ph) for ph in info["word_phones"]]
            inner = [k for k, (_, name, _) in enumerate(segs) if name != "pau"]
            owner = dict(zip(inner, _align_words(groups, [segs[k][1] for k in inner])))
            segs = [(end, name, owner.get(k, -1)) for k, (end, name, _) in enumerate(segs)]
        out[j.utt_id] = (wav, segs)
    return out


def _to_timit(job: Job, wav: Path, segs: list[tuple]) -> tuple[np.ndarray, list, list]:
    """Resample, warp and convert labels to TIMIT's layout; ValueError with the reason if invalid."""
    import soundfile as sf
    from scipy.signal import resample_poly

    x, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    x = x[:, 0]
    if x.size == 0:
        raise ValueError("empty audio")
    # warp: pretend the audio was recorded at sr * warp, then bring it to 16 kHz
    ratio = Fraction(SAMPLE_RATE / (sr * job.speaker.warp)).limit_denominator(400)
    y = resample_poly(x, ratio.numerator, ratio.denominator)
    scale = sr * ratio.numerator / ratio.denominator        # output samples per synthesiser second
    n = y.size
    if not segs:
        raise ValueError("no phone labels")
    if any(w == -2 for _, _, w in segs):
        raise ValueError("word alignment failed")
    last_end = segs[-1][0] * scale
    if last_end - n > MAX_LABEL_MISMATCH_S * SAMPLE_RATE:
        raise ValueError(f"truncated audio ({n / SAMPLE_RATE:.3f} s, labels end at "
                         f"{last_end / SAMPLE_RATE:.3f} s)")
    if n - last_end > MAX_TAIL_S * SAMPLE_RATE:
        raise ValueError(f"audio runs {(n - last_end) / SAMPLE_RATE:.3f} s past its labels")
    phones, word_spans = [], {}
    start = 0
    for k, (end_s, name, w) in enumerate(segs):
        end = min(int(round(end_s * scale)), n)
        if k == len(segs) - 1:
            end = n                                         # the final label closes the file, as in TIMIT
        if name == "pau":
            name = "h#" if k in (0, len(segs) - 1) else "pau"   # TIMIT: h# at both ends
        if name not in PHONES_61:
            raise ValueError(f"phone {name!r} has no TIMIT symbol")
        if end <= start:
            raise ValueError(f"zero-length phone {name!r} at sample {start}")
        if phones and name == "pau" and phones[-1][2] == "pau":
            phones[-1] = (phones[-1][0], end, "pau")
        else:
            phones.append((start, end, name))
        if w >= 0:
            s0, _ = word_spans.get(w, (start, end))
            word_spans[w] = (s0, end)
        start = end
    if phones[0][2] != "h#":
        raise ValueError("no leading silence")
    if phones[-1][2] != "h#":
        raise ValueError("no trailing silence")
    if sorted(word_spans) != list(range(len(job.words))):
        raise ValueError(f"{len(word_spans)} words timed, {len(job.words)} in the text")
    words = [(word_spans[k][0], word_spans[k][1], job.words[k]) for k in range(len(job.words))]
    y16 = np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)
    if np.abs(y16).max() < 100:
        raise ValueError("silent audio")
    return y16, phones, words


def _write_utt(root: Path, job: Job, y16: np.ndarray, phones: list, words: list) -> None:
    from ..features.audio import write_sphere

    spk = job.speaker
    folder = root / ("TRAIN" if spk.split == "train" else "TEST") / spk.dialect / spk.id
    folder.mkdir(parents=True, exist_ok=True)
    base = folder / job.sentence_id
    write_sphere(base.with_suffix(".WAV"), y16, SAMPLE_RATE,
                 extra_header={"database_id": "SCRATCHASR-SYNTH", "database_version": "1.0",
                               "utterance_id": f"{spk.id.lower()}_{job.sentence_id.lower()}"})
    base.with_suffix(".PHN").write_text("".join(f"{a} {b} {p}\n" for a, b, p in phones))
    base.with_suffix(".WRD").write_text("".join(f"{a} {b} {w}\n" for a, b, w in words))
    base.with_suffix(".TXT").write_text(f"0 {y16.size} {job.text}\n")


def _run_batch(args) -> list[dict]:
    """Worker: synthesise, validate and write a batch of jobs of one voice (of one engine for espeak-ng);
    one result dict per job."""
    root, voice_key, jobs = args
    voice = VOICE_BY_KEY[voice_key]
    results = []
    with tempfile.TemporaryDirectory(prefix="scratchasr-synth-") as tmpname:
        tmp = Path(tmpname)
        if voice.driver == "festival":
            raw = _festival_batch(voice, jobs, tmp)
        elif voice.engine == "espeak-ng":
            raw = _espeak_batch(jobs, tmp)
        else:
            raw = {}
            for j in jobs:
                r = _flite_one(voice, j, tmp)
                if r is not None:
                    raw[j.utt_id] = r
        for j in jobs:
            voice = VOICE_BY_KEY[j.speaker.voice]
            res = {"utt_id": j.utt_id, "speaker": j.speaker.id, "voice": voice.key, "engine": voice.engine,
                   "sentence_id": j.sentence_id}
            if j.utt_id not in raw:
                res.update(ok=False, reason=f"{voice.engine} produced no output")
            else:
                try:
                    y16, phones, words = _to_timit(j, *raw[j.utt_id])
                    _write_utt(Path(root), j, y16, phones, words)
                    res.update(ok=True, seconds=y16.size / SAMPLE_RATE)
                except ValueError as e:
                    res.update(ok=False, reason=str(e))
            results.append(res)
    return results


def _batches(jobs: list[Job], batch_size: int) -> list[tuple[str, list[Job]]]:
    """Batches of one voice (festival, flite) or of one engine (espeak-ng: a process per batch, the voice
    set per utterance), each named by its first job's voice; they depend on the jobs only, not on the
    number of workers."""
    by_voice: dict[str, list[Job]] = {}
    for j in jobs:
        group = "espeak-ng" if VOICE_BY_KEY[j.speaker.voice].engine == "espeak-ng" else j.speaker.voice
        by_voice.setdefault(group, []).append(j)
    out = []
    for key in sorted(by_voice):
        js = by_voice[key]
        size = 4 * batch_size if key == "espeak-ng" else batch_size
        out += [(js[i].speaker.voice, js[i:i + size]) for i in range(0, len(js), size)]
    return out


def probe_voices(keys: Sequence[str]) -> dict[str, str]:
    """Synthesise ``PROBE_TEXT`` with each espeak-ng voice of ``keys`` and validate its labels as a corpus
    utterance would be; returns ``{voice: reason}`` for the voices that fail (festival/flite voices are
    not probed: they are validated utterance by utterance)."""
    jobs = []
    for k in keys:
        if VOICE_BY_KEY[k].engine != "espeak-ng":
            continue
        v = VOICE_BY_KEY[k]
        spk = Speaker(id=f"{v.sex}{v.code}999", voice=k, split="train", dialect="DR1", tempo=1.0, f0=1.0,
                      warp=1.0, engine=v.engine)
        jobs.append(Job(utt_id=f"{spk.id}_PROBE", speaker=spk, sentence_id="PROBE", text=PROBE_TEXT,
                        words=_tokens(PROBE_TEXT)))
    failed = {}
    if not jobs:
        return failed
    with tempfile.TemporaryDirectory(prefix="scratchasr-probe-") as tmpname:
        raw = _espeak_batch(jobs, Path(tmpname))
        for j in jobs:
            if j.utt_id not in raw:
                failed[j.speaker.voice] = "espeak-ng produced no output (unknown voice?)"
                continue
            try:
                _to_timit(j, *raw[j.utt_id])
            except ValueError as e:
                failed[j.speaker.voice] = f"labels fail validation: {e}"
    return failed


def _run_all(root: Path, jobs: list[Job], n_jobs: int, progress: bool, desc: str) -> list[dict]:
    from multiprocessing import get_context

    from tqdm import tqdm

    tasks = [(str(root), key, js) for key, js in _batches(jobs, 16)]
    results: list[dict] = []
    bar = tqdm(total=len(jobs), desc=desc, unit="utt", disable=not progress)
    if n_jobs == 1:
        for t in tasks:
            r = _run_batch(t)
            results += r
            bar.update(len(r))
    else:
        with get_context("spawn").Pool(n_jobs) as pool:
            for r in pool.imap_unordered(_run_batch, tasks):
                results += r
                bar.update(len(r))
    bar.close()
    return results


def synth_timit(out_dir: str | os.PathLike, *, size: str = "small", seed: int = 0,
                holdout_voices: Sequence[str] = (), voices: Optional[Sequence[str]] = None,
                jobs: Optional[int] = None, progress: bool = True) -> dict:
    """Synthesise a TIMIT-layout corpus into ``out_dir`` (which must be empty or absent).

    Args:
        out_dir: corpus root to create.
        size: ``"tiny"`` (8/4/4 utterances), ``"small"`` (800/80/64), ``"full"`` (3696/400/192) or
            ``"large"`` (21600/800/384, ~20 h) for train/dev/core test; TEST holds the dev and core-test
            speakers.
        seed: seeds speakers, their parameters and the sentence choice.
        holdout_voices: voices kept out of TRAIN (they still appear in dev and core test); keys, engines,
            espeak-ng accents or ``all`` as in ``resolve_voices``.
        voices: the voices to use (keys, engines such as ``espeak-ng``, accents such as ``en-gb-x-rp``, or
            ``all``: see ``resolve_voices``). Default: every installed festival and flite voice (the
            corpus of earlier releases); ``["all"]`` adds espeak-ng's voices. espeak-ng voices whose
            probe sentence fails validation are skipped with a message (``probe_voices``).
        jobs: worker processes (default: the number of CPUs).
        progress: show a tqdm progress bar.

    Returns:
        The summary also written to ``out_dir/corpus.json``: counts per split, dropped utterances
        with reasons, voices (with their engines) and skipped voices, speakers and their parameters,
        and ``utts``: ``[utt_id, engine, voice]`` of every utterance written.

    Raises:
        SynthesisError (a RuntimeError) after writing ``corpus.json`` if a split ends up with no
        utterance at all (the synthesiser failed on every one): such a corpus must not look finished.
    """
    root = Path(out_dir)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"out_dir: {root} exists and is not empty; choose a new folder")
    installed = available_voices()
    no_mbrola = missing_mbrola_voices()
    if voices is not None and {"all", "mbrola"} & set(voices):
        if no_mbrola:     # optional voices: say once why they are not in this corpus
            print(f"synth-timit: mbrola voices {', '.join(no_mbrola)} not used "
                  f"({'; '.join(sorted(set(no_mbrola.values())))}); optional, they need {MBROLA_PACKAGES}",
                  file=sys.stderr)
    if voices is None:
        voices = [v for v in installed if VOICE_BY_KEY[v].engine in DEFAULT_ENGINES]
    else:
        missing = [v for v in voices if v in VOICE_BY_KEY and v not in installed]
        if missing:
            why = "".join(f"; {v}: {no_mbrola[v]}, install {MBROLA_PACKAGES}"
                          for v in missing if v in no_mbrola)
            raise ValueError(f"voices: {missing} not installed here (installed: {installed}){why}")
        voices = resolve_voices(voices, installed, arg="voices")
    holdout_voices = list(holdout_voices)
    not_used = [v for v in holdout_voices if v in VOICE_BY_KEY and v not in voices]
    if not_used:
        raise ValueError(f"holdout_voices: {not_used} are not among the voices used ({list(voices)})")
    holdout_voices = resolve_voices(holdout_voices, voices, arg="holdout_voices") if holdout_voices else []
    n_jobs = (os.cpu_count() or 1) if jobs is None else jobs
    if n_jobs < 1:
        raise ValueError(f"jobs: expected >= 1, got {n_jobs}")
    skipped = probe_voices(voices)
    for key, reason in skipped.items():
        print(f"synth-timit: voice {key} skipped: {reason}", file=sys.stderr)
    voices = [v for v in voices if v not in skipped]
    holdout_voices = [v for v in holdout_voices if v not in skipped]
    sentences = wordnet_sentences()
    speakers, plan, spare = plan_corpus(sentences, list(voices), size=size, seed=seed,
                                        holdout_voices=holdout_voices)
    root.mkdir(parents=True, exist_ok=True)
    results = _run_all(root, plan, n_jobs, progress, f"synth-timit {size}")

    # one retry round: each dropped utterance gets the next spare sentence of its pool
    dropped = [r for r in results if not r["ok"]]
    if dropped:
        spk_by_id = {s.id: s for s in speakers}
        cursor = {"train": 0, "test": 0}
        retry = []
        for r in sorted(dropped, key=lambda r: r["utt_id"]):
            spk = spk_by_id[r["speaker"]]
            group = "train" if spk.split == "train" else "test"
            if cursor[group] < len(spare[group]):
                i, text = spare[group][cursor[group]]
                cursor[group] += 1
                retry.append(_job(spk, i, text))
        results += _run_all(root, retry, n_jobs, progress, "retry")

    ok = [r for r in results if r["ok"]]
    split_of = {s.id: s.split for s in speakers}
    counts = {sp: sum(1 for r in ok if split_of[r["speaker"]] == sp) for sp in ("train", "dev", "core_test")}
    summary = {
        "generator": "scratchasr synth-timit", "size": size, "seed": seed, "voices": list(voices),
        "holdout_voices": holdout_voices, "skipped_voices": skipped,
        "engines": {v: VOICE_BY_KEY[v].engine for v in voices},
        "sample_rate": SAMPLE_RATE, "utterances": counts,
        "hours": round(sum(r["seconds"] for r in ok) / 3600.0, 4),
        "dropped": sorted(({k: r[k] for k in ("utt_id", "voice", "reason")} for r in results if not r["ok"]),
                          key=lambda d: d["utt_id"]),
        "speakers": [asdict(s) for s in speakers],
        "utts": sorted([r["utt_id"], VOICE_BY_KEY[r["voice"]].engine, r["voice"]] for r in ok),
    }
    # a speaker whose every utterance was dropped has no folder: leave it out of the lists
    present = {r["speaker"] for r in ok}
    (root / "splits.json").write_text(json.dumps(
        {"dev": [s.id for s in speakers if s.split == "dev" and s.id in present],
         "core_test": [s.id for s in speakers if s.split == "core_test" and s.id in present]},
        indent=1) + "\n")
    (root / "corpus.json").write_text(json.dumps(summary, indent=1) + "\n")
    empty = [sp for sp, n in counts.items() if n == 0]
    if empty:
        reasons = sorted({d["reason"] for d in summary["dropped"]})
        raise SynthesisError(f"synth_timit: no utterance was synthesised for split(s) {empty} "
                             f"({len(summary['dropped'])} dropped; reasons: {reasons[:3]}); the corpus in "
                             f"{root} is unusable, details in {root / 'corpus.json'}")
    return summary
