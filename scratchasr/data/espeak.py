"""espeak-ng voices for the synthetic corpus: libespeak-ng through ctypes, its IPA phone events -> TIMIT.

espeak-ng (Debian ``espeak-ng``, GPL-3+) is a formant synthesiser: a different engine from festival's
diphone/HTS and flite's clustergen voices, which is what a leave-one-engine-out test needs. Its
library reports, while it synthesises, an event at the start of every word (its index in the text)
and of every phoneme (with ``espeakINITIALIZE_PHONEME_IPA``, the phoneme as the IPA string of what is
actually said: ``ɑːɹ`` where the phoneme is followed by an r, ``ɑː`` where the next word links it).
``labels_from_events`` turns those events into the corpus' ``(end seconds, TIMIT phone, word)``
segments through ``IPA_TO_TIMIT`` (docs/data.md, "espeak-ng voices").

A voice is an English accent (``en-us``, ``en-gb-x-rp``, ``en-gb-scotland``, ``en-029``, ...) with one
of espeak-ng's voice variants (``+m1`` .. ``+m8``, ``+f1`` .. ``+f5``: formant scalings, pitch ranges,
flutter and roughness), written ``en-us+m3`` as espeak-ng itself writes it.

The synthesiser keeps state between utterances (its flutter table position), so every batch of
utterances is synthesised by a fresh process (``python -m scratchasr.data.espeak``, jobs as JSON on
stdin): a batch's audio depends only on the batch, never on which worker ran what before it.

References: espeak-ng's ``speak_lib.h`` (``espeak_EVENT``, ``espeak_Initialize`` options) and
``docs/phonemes.md``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

# accent (espeak-ng language/voice name) -> one letter for speaker ids
ACCENTS = {"en-us": "U", "en-us-nyc": "N", "en": "E", "en-gb-x-rp": "R", "en-gb-scotland": "S",
           "en-029": "C", "en-gb-x-gbclan": "L", "en-gb-x-gbcwmd": "W"}
# espeak-ng's numbered voice variants (voices/!v/m1 ...): sex from the file's "gender" line
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5")
DEFAULT_RATE = 175      # words per minute: espeak-ng's default speed
DEFAULT_PITCH = 50      # 0..100: espeak-ng's default pitch parameter
MIN_PAUSE_S = 0.050     # a silence event shorter than this is absorbed into the phone before it
PAD_S = 0.150           # silence added at both ends: espeak starts speaking within ~10 ms

# The IPA strings libespeak-ng emits for its English voices -> TIMIT phones (several where the string
# is a vowel + r or a centring diphthong; the event's span is then split equally). Nearest American
# phone for the British, Scottish and Caribbean accents' vowels (docs/data.md has the reasoning).
IPA_TO_TIMIT: dict[str, tuple[str, ...]] = {
    # vowels
    "i": ("iy",), "iː": ("iy",), "ɪ": ("ih",), "ᵻ": ("ix",), "e": ("eh",), "ɛ": ("eh",),
    "æ": ("ae",), "a": ("ae",), "ɐ": ("ax",), "ə": ("ax",), "ʌ": ("ah",), "ɚ": ("axr",),
    "ɜ": ("er",), "ɜː": ("er",), "əɹ": ("er",), "ɑː": ("aa",), "ɑ": ("aa",), "aː": ("aa",), "a:": ("aa",),
    "aa": ("aa",), "ɒ": ("aa",), "ɔ": ("ao",), "ɔː": ("ao",), "o": ("ao",), "ʊ": ("uh",), "uː": ("uw",),
    "u": ("uw",), "ʉ": ("uw",), "ʉː": ("uw",), "əu": ("uw",),
    # diphthongs
    "eɪ": ("ey",), "ei": ("ey",), "eː": ("ey",), "aɪ": ("ay",), "əɪ": ("ay",), "ɔɪ": ("oy",), "oɪ": ("oy",),
    "aʊ": ("aw",), "æʊ": ("aw",), "ʌʉ": ("aw",), "oʊ": ("ow",), "oː": ("ow",), "əʊ": ("ow",),
    "ʌʊ": ("ow",),
    # vowel + r, centring diphthongs, triphthongs: split into their TIMIT phones
    "ɑːɹ": ("aa", "r"), "ɔːɹ": ("ao", "r"), "oːɹ": ("ao", "r"), "ɛɹ": ("eh", "r"), "ɪɹ": ("ih", "r"),
    "ʊɹ": ("uh", "r"), "ʉɹ": ("uw", "r"), "ʌɹ": ("ah", "r"), "iə": ("iy", "ax"), "ɪə": ("ih", "ax"),
    "eə": ("eh", "ax"), "ɛə": ("eh", "ax"), "ʊə": ("uh", "ax"), "oə": ("ow", "ax"), "ɔə": ("ao", "ax"),
    "ɑə": ("aa", "ax"), "aɪə": ("ay", "ax"), "aɪɚ": ("ay", "axr"), "aʊə": ("aw", "ax"),
    # syllabic consonants
    "əl": ("el",), "l̩": ("el",), "n̩": ("en",), "m̩": ("em",),
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "t̪": ("t",), "d": ("d",), "k": ("k",), "ɡ": ("g",),
    "g": ("g",), "f": ("f",), "v": ("v",), "θ": ("th",), "ð": ("dh",), "s": ("s",), "z": ("z",),
    "ʃ": ("sh",), "ʒ": ("zh",), "h": ("hh",), "tʃ": ("ch",), "dʒ": ("jh",), "m": ("m",), "n": ("n",),
    "ŋ": ("ng",), "l": ("l",), "ɫ": ("l",), "ɹ": ("r",), "r": ("r",), "j": ("y",), "ʲ": ("y",),
    "w": ("w",), "ʍ": ("w",), "ɾ": ("dx",), "ʔ": ("q",), "x": ("k",),
}

# event types of speak_lib.h
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_END, EVENT_MSG_TERMINATED, EVENT_PHONEME = 0, 1, 5, 6, 7
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA = 0x0001, 0x0002
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_PARAM_RATE, _PARAM_PITCH = 1, 3
_CHARS_UTF8 = 1
_IPA_SEPARATED = 0x02 | (ord("|") << 8)   # espeak_TextToPhonemes: IPA, "|" between phonemes


def library_path() -> Optional[str]:
    """Where libespeak-ng is (None when it is not installed)."""
    found = ctypes.util.find_library("espeak-ng")
    for name in ([found] if found else []) + ["libespeak-ng.so.1", "libespeak-ng.so"]:
        try:
            ctypes.CDLL(name)
            return name
        except OSError:
            continue
    return None


def voice_keys() -> list[str]:
    """Every accent x variant, e.g. ``en-us+m3``, variant by variant (``en-us+m1``, ``en-us-nyc+m1``, ...,
    ``en-us+m2``, ...): speakers take voices round-robin, so a few consecutive ones span every accent."""
    return [f"{a}+{v}" for v in VARIANTS for a in ACCENTS]


def voice_sex(key: str) -> str:
    """"M" or "F" from the variant (``en-us+f2`` -> "F")."""
    return "F" if key.rpartition("+")[2].startswith("f") else "M"


def voice_code(key: str) -> str:
    """Three letters for speaker ids: accent letter + variant (``en-gb-x-rp+m3`` -> ``RM3``)."""
    accent, _, variant = key.partition("+")
    return ACCENTS[accent] + variant.upper()


def timit_of_ipa(phonemes: Sequence[str]) -> list[str]:
    """TIMIT phones of a list of IPA phonemes (``?<ipa>`` for one without a mapping)."""
    return [p for ipa in phonemes for p in IPA_TO_TIMIT.get(ipa, ("?" + ipa,))]


def labels_from_events(events: Sequence[tuple], n_samples: int, sample_rate: int, *,
                       pad_samples: int = 0) -> list[tuple]:
    """Segments ``[(end seconds, phone, word index or -1)]`` from espeak-ng's events.

    Args:
        events: ``(type, sample, value)`` in order: ``(1, sample, word number from 1)`` at each word and
            ``(7, sample, ipa)`` at each phoneme's start (``ipa == ""`` for a silence); other types are
            ignored. ``sample`` counts from the start of the synthesised audio.
        n_samples: length of the synthesised audio (the last phoneme ends there).
        sample_rate: espeak-ng's output rate (22,050 Hz).
        pad_samples: silence added before and after the audio; the labels get a ``pau`` at both ends
            (``h#`` in the corpus) and shift by it.

    Consecutive silences are merged; a silence shorter than ``MIN_PAUSE_S`` is absorbed into the phone
    before it; a longer one is a ``pau``. An IPA string without a TIMIT phone is kept as ``?<ipa>`` so that
    validation names it.
    """
    spans = []                      # [start sample, end sample, ipa, word]
    word = -1
    for typ, sample, value in events:
        if typ == EVENT_WORD:
            word = int(value) - 1
        elif typ == EVENT_PHONEME:
            if spans and spans[-1][2] == "" and value == "":
                continue                                    # consecutive silences are one silence
            if spans:
                spans[-1][1] = sample
            spans.append([sample, n_samples, value, -1 if value == "" else word])
    min_pause = MIN_PAUSE_S * sample_rate
    segs: list[list] = [[0, pad_samples, "pau", -1]]       # [start, end, phone, word]
    for start, end, ipa, w in spans:
        start, end = start + pad_samples, end + pad_samples
        if end <= start:
            continue                                        # zero-length event (e.g. a stress pause)
        segs[-1][1] = start          # only the leading silence can end before this start: it grows to it
        if ipa == "":
            if segs[-1][2] == "pau" or end - start >= min_pause:
                if segs[-1][2] == "pau":
                    segs[-1][1] = end
                else:
                    segs.append([start, end, "pau", -1])
            else:
                segs[-1][1] = end                            # short silence: part of the phone before
            continue
        phones = IPA_TO_TIMIT.get(ipa, ("?" + ipa,))
        for k, p in enumerate(phones):                       # equal shares of the span
            a = start + (end - start) * k // len(phones)
            b = start + (end - start) * (k + 1) // len(phones)
            segs.append([a, b, p, w])
    total = n_samples + 2 * pad_samples
    if segs[-1][2] == "pau":
        segs[-1][1] = total
    else:
        segs.append([segs[-1][1], total, "pau", -1])
    return [(end / sample_rate, p, w) for _, end, p, w in segs]


# ----------------------------------------------------------------------------------------------- synthesis


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


def synthesise(jobs: Sequence[dict], out_dir: str) -> None:
    """Synthesise ``jobs`` in this process: ``{utt_id}.wav`` (22,050 Hz, ``PAD_S`` of silence added at
    both ends) and ``{utt_id}.events.json`` (events of the unpadded audio, for ``labels_from_events``).

    Each job is ``{"utt_id", "voice" (e.g. "en-us+m3"), "text", "rate" (words/min), "pitch" (0..100)}``.
    A job whose voice espeak-ng does not know is skipped (no files): the caller reports it.
    """
    import numpy as np
    import soundfile as sf

    lib = ctypes.CDLL(library_path() or "libespeak-ng.so.1")
    pcm: list = []
    events: list = []

    def callback(wav, n, ev):
        if n > 0:
            pcm.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while ev[i].type != EVENT_LIST_TERMINATED:
            e = ev[i]
            if e.type == EVENT_WORD:
                events.append((EVENT_WORD, e.sample, e.id.number))
            elif e.type == EVENT_PHONEME:
                events.append((EVENT_PHONEME, e.sample, bytes(e.id.string).split(b"\0")[0].decode("utf-8")))
            i += 1
        return 0

    cb = _CALLBACK(callback)
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                        _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA)
    if sample_rate <= 0:
        raise RuntimeError("espeak_Initialize failed (espeak-ng-data missing?)")
    lib.espeak_SetSynthCallback(cb)
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    out = Path(out_dir)
    for job in jobs:
        if lib.espeak_SetVoiceByName(job["voice"].encode()) != 0:
            continue
        lib.espeak_SetParameter(_PARAM_RATE, int(job["rate"]), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(job["pitch"]), 0)
        pcm.clear()
        events.clear()
        text = job["text"].encode("utf-8")
        lib.espeak_Synth(text, len(text) + 1, 0, 0, 0, 0, None, None)
        lib.espeak_Synchronize()
        audio = np.concatenate(pcm) if pcm else np.zeros(0, np.int16)
        # each word's phonemes on its own (IPA, "|" between phonemes, stress marks dropped): espeak-ng
        # sends one word event for some word pairs ("from the"), whose phones are then aligned to these
        word_phones = []
        for word in job["text"].split():
            buf = ctypes.create_string_buffer(word.strip(",.").encode("utf-8"))
            ptr = ctypes.c_void_p(ctypes.addressof(buf))
            ipa = (lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, _IPA_SEPARATED) or b"").decode()
            word_phones.append([p for p in ipa.replace("ˈ", "").replace("ˌ", "").split("|") if p.strip()])
        pad = np.zeros(int(round(PAD_S * sample_rate)), np.int16)
        sf.write(str(out / f"{job['utt_id']}.wav"), np.concatenate([pad, audio, pad]), sample_rate,
                 subtype="PCM_16")
        (out / f"{job['utt_id']}.events.json").write_text(json.dumps(
            {"sample_rate": sample_rate, "n_samples": int(audio.size), "pad_samples": int(pad.size),
             "events": events, "word_phones": word_phones}, ensure_ascii=False))


def main() -> None:
    """``python -m scratchasr.data.espeak OUT_DIR`` with the jobs as a JSON list on stdin."""
    synthesise(json.loads(sys.stdin.read()), sys.argv[1])


if __name__ == "__main__":
    main()
