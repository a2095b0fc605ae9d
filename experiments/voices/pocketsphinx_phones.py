"""Peer: pocketsphinx (trained on real speech) decoding phones, PER per voice of a synthetic corpus.

    python experiments/voices/pocketsphinx_phones.py DATA_DIR [--split core_test] [--out DIR] [--max-utts N]

pocketsphinx 5 (pip ``pocketsphinx``; the wheel ships CMU's continuous en-us acoustic model, trained on
real read speech, and ``en-us-phone.lm.bin``, a phone trigram) in allphone mode: phones are decoded with
that phone language model, no lexicon and no word LM (the CMU Sphinx "phoneme recognition" setup:
``-allphone``, ``-lw 2.0``, ``-beam 1e-20``, ``-pbeam 1e-20``). Its 39 CMU phones (ARPAbet without stress)
are folded to TIMIT's 39-phone scoring set: lower case, ``ao`` -> ``aa`` and ``zh`` -> ``sh`` (Lee & Hon),
``SIL`` -> ``sil``; fillers (``+NSN+``, ``+SPN+``, ...) are dropped. References are the corpus' ``.PHN``
phones folded 61 -> 39 exactly as ``scratchasr decode`` scores (``sil`` at both ends included), and
``scratchasr.metrics.error_rate`` (sclite's alignment) counts errors.

A voice is read from ``DATA_DIR/corpus.json`` (``scratchasr synth-timit``); ``--hyp`` scores another
system's ``hyp.text`` (``scratchasr decode ... --out DIR``, 61 phones) per voice the same way instead of
running pocketsphinx, so both systems' tables come from one scorer. Writes ``per_voice.json`` (and the
hypotheses as ``hyp.text``) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from scratchasr.data.phones import FOLD_61_TO_39, fold_phones
from scratchasr.data.timit import read_corpus
from scratchasr.metrics import error_rate

CMU_TO_TIMIT39 = {p.upper(): FOLD_61_TO_39[p] for p in (
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh"
).split()}
CMU_TO_TIMIT39["SIL"] = "sil"


def fold_cmu(phones) -> list[str]:
    """pocketsphinx's CMU phones -> TIMIT's 39 (fillers such as ``+NSN+`` dropped); unknown -> ValueError."""
    out = []
    for p in phones:
        if p.startswith("+") or p in ("<s>", "</s>", "<sil>"):
            continue
        if p not in CMU_TO_TIMIT39:
            raise ValueError(f"phones: {p!r} is not a CMU phone")
        out.append(CMU_TO_TIMIT39[p])
    return out


def voices_of(data_dir: Path) -> dict[str, tuple[str, str]]:
    """speaker id -> (engine, voice) from corpus.json."""
    from scratchasr.data.synth import VOICE_BY_KEY
    table = json.loads((data_dir / "corpus.json").read_text())["speakers"]
    return {s["id"]: (s.get("engine") or VOICE_BY_KEY[s["voice"]].engine, s["voice"]) for s in table}


def decoder(lw: float = 2.0, beam: float = 1e-20):
    from pocketsphinx import Config, Decoder, get_model_path
    cfg = Config(hmm=get_model_path("en-us/en-us"), allphone=get_model_path("en-us/en-us-phone.lm.bin"),
                 lw=lw, beam=beam, pbeam=beam, loglevel="FATAL", samprate=16000)
    cfg["lm"] = None                      # allphone replaces the word LM
    return Decoder(cfg)


def decode_phones(dec, wav_path: str) -> list[str]:
    from scratchasr.features import load_audio
    x, sr = load_audio(wav_path)
    if sr != 16000:
        raise ValueError(f"wav_path: {wav_path} is {sr} Hz; the en-us model wants 16 kHz")
    return decode_pcm(dec, x)


def decode_pcm(dec, x: np.ndarray) -> list[str]:
    """pocketsphinx's phones of 16 kHz float audio ``x`` in [-1, 1] (rounded and clipped to 16 bits)."""
    pcm = np.clip(np.round(np.asarray(x, np.float64) * 32768.0), -32768, 32767).astype("<i2").tobytes()
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    return [s.word for s in dec.seg()]


def score_by_voice(utts, hyps39: dict, voice_of: dict) -> dict:
    """{"voices": {voice: row}, "engines": {engine: row}, "all": row}; a row has PER and S/D/I counts."""
    groups: dict = defaultdict(lambda: ([], []))
    for u in utts:
        engine, voice = voice_of[u.speaker]
        ref = fold_phones([p for _, _, p in u.phones])
        for key in (("voice", voice), ("engine", engine), ("all", "all")):
            groups[key][0].append(ref)
            groups[key][1].append(hyps39[u.id])

    def row(refs, hyps):
        er = error_rate(refs, hyps)
        return dict(utts=len(refs), ref_phones=er.ref_tokens, per=round(100 * er.rate, 2),
                    S=er.substitutions, D=er.deletions, I=er.insertions)

    out: dict = {"voices": {}, "engines": {}}
    for (kind, name), (refs, hyps) in sorted(groups.items()):
        if kind == "voice":
            out["voices"][name] = dict(row(refs, hyps), engine=voice_of_engine(voice_of, name))
        elif kind == "engine":
            out["engines"][name] = row(refs, hyps)
        else:
            out["all"] = row(refs, hyps)
    return out


def voice_of_engine(voice_of: dict, voice: str) -> str:
    return next(e for e, v in voice_of.values() if v == voice)


def print_table(result: dict, title: str) -> None:
    print(f"# {title}")
    print(f"{'voice':24s} {'engine':10s} {'utts':>5s} {'phones':>7s} {'PER %':>7s}   S/D/I")
    for name, r in result["voices"].items():
        print(f"{name:24s} {r['engine']:10s} {r['utts']:5d} {r['ref_phones']:7d} {r['per']:7.2f}   "
              f"{r['S']}/{r['D']}/{r['I']}")
    for name, r in result["engines"].items():
        print(f"{'[' + name + ']':24s} {'':10s} {r['utts']:5d} {r['ref_phones']:7d} {r['per']:7.2f}   "
              f"{r['S']}/{r['D']}/{r['I']}")
    r = result["all"]
    print(f"{'[all]':24s} {'':10s} {r['utts']:5d} {r['ref_phones']:7d} {r['per']:7.2f}   "
          f"{r['S']}/{r['D']}/{r['I']}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--split", default="core_test", help="train, dev, core_test or test (default core_test)")
    ap.add_argument("--out", type=Path, default=None, help="write hyp.text and per_voice.json here")
    ap.add_argument("--max-utts", type=int, default=None, help="only the first N utterances (sorted ids)")
    ap.add_argument("--hyp", type=Path, default=None,
                    help="score this hyp.text (61 TIMIT phones, from scratchasr decode --out) per voice "
                         "instead of running pocketsphinx")
    ap.add_argument("--lw", type=float, default=2.0, help="phone LM weight (default 2.0)")
    args = ap.parse_args(argv)
    utts = sorted(read_corpus(args.data_dir, args.split), key=lambda u: u.id)
    if args.max_utts is not None:
        utts = utts[:args.max_utts]
    voice_of = voices_of(args.data_dir)
    t0 = time.perf_counter()
    if args.hyp is not None:
        lines = dict(line.partition(" ")[::2] for line in args.hyp.read_text().splitlines())
        missing = [u.id for u in utts if u.id not in lines]
        if missing:
            raise SystemExit(f"--hyp: {len(missing)} utterances have no hypothesis, e.g. {missing[:3]}")
        hyps39 = {u.id: fold_phones(lines[u.id].split()) for u in utts}
        title = f"{args.hyp} on {args.data_dir} {args.split}"
        raw = None
    else:
        dec = decoder(lw=args.lw)
        raw = {}
        for k, u in enumerate(utts):
            raw[u.id] = decode_phones(dec, u.wav_path)
            if (k + 1) % 20 == 0:
                print(f"  {k + 1}/{len(utts)} utterances, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        hyps39 = {i: fold_cmu(p) for i, p in raw.items()}
        title = f"pocketsphinx allphone (lw {args.lw}) on {args.data_dir} {args.split}"
    result = score_by_voice(utts, hyps39, voice_of)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["title"] = title
    print_table(result, title)
    print(f"{result['seconds']} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "per_voice.json").write_text(json.dumps(result, indent=1) + "\n")
        if raw is not None:
            (args.out / "hyp.text").write_text("".join(f"{i} {' '.join(p)}\n" for i, p in raw.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
