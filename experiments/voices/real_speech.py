"""Phone error rate on the little real speech there is: pocketsphinx-testdata's 10 recordings (34 s).

    .venv/bin/python experiments/voices/real_speech.py [CHECKPOINT ...] [--pocketsphinx] [--out FILE.json]

Data: Debian ``pocketsphinx-testdata`` (``/usr/share/pocketsphinx/test/data``): ``cards/001-005.wav`` (a man
reading playing cards, 9.7 s) and ``librivox/sense_and_sensibility_*.wav`` (5 LibriVox sentences, 24.7 s),
with their word transcripts. References: each word's FIRST pronunciation in CMU's dictionary as shipped with
pip ``pocketsphinx`` (``en-us/cmudict-en-us.dict``; ARPAbet without stress), folded to TIMIT's 39 phones
like pocketsphinx_phones.py; pauses are unknown, so ``sil`` is removed from references and hypotheses.
A dictionary pronunciation is not what the reader said (reductions, "a" as ey or ah): a real recogniser
is far from 0 here too, so read the numbers side by side, not as absolute accuracy; 10 utterances and
~430 phones: a difference under ~5 points is within what other sentences could change.

Every checkpoint decodes greedily through ``scratchasr.inference`` (its own front end and CMVN);
``--pocketsphinx`` adds the peer (allphone with its phone trigram, real-speech acoustic model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DATA = Path("/usr/share/pocketsphinx/test/data")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def utterances() -> list[tuple[str, str, list[str]]]:
    """``(set, wav path, words)`` of the 10 transcribed recordings."""
    out = []
    for sub, trans in (("cards", "cards.transcription"), ("librivox", "transcription")):
        for line in (DATA / sub / trans).read_text().splitlines():
            words, _, rest = line.partition("(")
            uid = rest.rstrip(")").strip()
            words = [w for w in words.split() if w not in ("<s>", "</s>")]
            if words:
                out.append((sub, str(DATA / sub / f"{uid}.wav"), words))
    return out


def cmudict() -> dict[str, list[str]]:
    from pocketsphinx import get_model_path
    pron: dict[str, list[str]] = {}
    for line in Path(get_model_path("en-us/cmudict-en-us.dict")).read_text().splitlines():
        word, *phones = line.split()
        pron.setdefault(word, phones)          # the first entry; variants are "word(2)"
    return pron


def system_phones(checkpoints, wav_paths, *, pocketsphinx: bool = False) -> dict:
    """``{checkpoint (or "pocketsphinx"): [39-phone hypothesis without sil, per file]}``: each checkpoint
    decodes greedily through its own front end; pocketsphinx is allphone with its CMU phones folded."""
    from pocketsphinx_phones import decode_phones, decoder, fold_cmu

    from scratchasr.data.phones import fold_phones
    from scratchasr.inference import load
    from scratchasr.trainer import decode_features

    systems = {}
    for ckpt in checkpoints:
        model, fe = load(ckpt)
        hyps = decode_features(model, [fe.from_file(w) for w in wav_paths], beam=1, progress=False)
        systems[ckpt] = [[p for p in fold_phones(model.vocabulary.decode(h)) if p != "sil"] for h in hyps]
    if pocketsphinx:
        dec = decoder()
        systems["pocketsphinx"] = [[p for p in fold_cmu(decode_phones(dec, w)) if p != "sil"]
                                   for w in wav_paths]
    return systems


def main(argv=None) -> None:
    from pocketsphinx_phones import fold_cmu

    from scratchasr.metrics import error_rate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--pocketsphinx", action="store_true")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: apt-get install pocketsphinx-testdata")
    utts, pron = utterances(), cmudict()
    missing = sorted({w for _, _, ws in utts for w in ws if w not in pron})
    if missing:
        raise SystemExit(f"words not in the CMU dictionary: {missing}")
    refs = [[p for p in fold_cmu([q for w in ws for q in pron[w]]) if p != "sil"] for _, _, ws in utts]
    systems = system_phones(a.checkpoints, [path for _, path, _ in utts], pocketsphinx=a.pocketsphinx)
    result = {}
    print("| system | cards (5 utts) | librivox (5 utts) | all 10 |\n|---|---|---|---|")
    for name, hyps in systems.items():
        row = {}
        for part in ("cards", "librivox", "all"):
            idx = [i for i, (s, _, _) in enumerate(utts) if part in (s, "all")]
            er = error_rate([refs[i] for i in idx], [hyps[i] for i in idx])
            row[part] = dict(per=round(100 * er.rate, 2), S=er.substitutions, D=er.deletions,
                             I=er.insertions, ref_phones=er.ref_tokens)
        result[name] = row
        print(f"| {name} | {row['cards']['per']:.2f} | {row['librivox']['per']:.2f} | "
              f"**{row['all']['per']:.2f}** (S {row['all']['S']} D {row['all']['D']} I {row['all']['I']} "
              f"of {row['all']['ref_phones']}) |", flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
