"""The ``scratchasr`` command line: ``synth-timit``, ``train``, ``decode``, ``transcribe``.

Each subcommand has a ``_add_<name>(subparsers)`` that declares its arguments and a ``_cmd_<name>(args)``
that runs it and returns the exit code. ``main(argv)`` is the console-script entry point.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from typing import Optional, Sequence


def _voice_list(text: str) -> list[str]:
    return [v for v in text.replace(",", " ").split() if v]


# ------------------------------------------------------------------------------------------ synth-timit


def _add_synth_timit(sub) -> None:
    from .data.espeak import ACCENTS
    from .data.synth import SIZES, VOICES

    keys = ", ".join(v.key for v in VOICES if v.engine != "espeak-ng")
    selection = (f"voice keys ({keys}; espeak-ng's ACCENT+VARIANT such as en-us+m3 or en-gb-x-rp+f2), "
                 f"engines (festival, flite, espeak-ng, mbrola), espeak-ng accents ({', '.join(ACCENTS)}: "
                 "their 13 variants) or all")
    p = sub.add_parser(
        "synth-timit", help="synthesise a license-free corpus in TIMIT's layout (festival, flite, espeak-ng)",
        description="Synthesise a corpus in TIMIT's exact on-disk layout (TRAIN/TEST, DR*, speaker folders, "
                    "SPHERE .WAV, .PHN/.WRD/.TXT) from WordNet example sentences with festival, flite and "
                    "espeak-ng voices; read it with scratchasr.data.timit.read_corpus. See docs/data.md.")
    p.add_argument("out_dir", metavar="OUT_DIR", help="corpus root to create (must be new or empty)")
    p.add_argument("--size", choices=list(SIZES), default="small",
                   help="tiny: 8/4/4 utterances (tests); small: 800/80/64 (demo); full: TIMIT's "
                        "3696/400/192; large: 21600/800/384, ~20 h (train/dev/core test). Default: small")
    p.add_argument("--seed", type=int, default=0, help="seed for speakers, their parameters and sentences")
    p.add_argument("--holdout-voices", type=_voice_list, default=[], metavar="V[,V...]",
                   help=f"voices kept out of TRAIN (still in dev/core test): {selection}")
    p.add_argument("--voices", type=_voice_list, default=None, metavar="V[,V...]",
                   help="use only these voices, named as for --holdout-voices (default: every installed "
                        "festival and flite voice; 'all' adds installed mbrola voices and espeak-ng's 104)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: number of CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth_timit)


def _cmd_synth_timit(args) -> int:
    from .data.synth import SynthesisError, synth_timit

    t0 = time.perf_counter()
    try:
        summary = synth_timit(args.out_dir, size=args.size, seed=args.seed,
                              holdout_voices=args.holdout_voices,
                              voices=args.voices, jobs=args.jobs, progress=not args.no_progress)
    except USER_ERRORS + (SynthesisError,) as e:
        return _fail("synth-timit", e)
    n = summary["utterances"]

    def names(voices):   # long lists (espeak-ng's 104 voices) as counts per engine
        if len(voices) <= 12:
            return ", ".join(voices)
        per = Counter(summary["engines"][v] for v in voices)
        return ", ".join(f"{c} {e}" for e, c in per.items())

    held = summary["holdout_voices"]
    held = f" (held out of train: {names(held)})" if held else ""
    print(f"wrote {args.out_dir}: train {n['train']}, dev {n['dev']}, core_test {n['core_test']} utterances, "
          f"{summary['hours']:.2f} h of audio, voices {names(summary['voices'])}"
          f"{held}"
          f", {time.perf_counter() - t0:.1f} s")
    dropped = summary["dropped"]
    if dropped:
        reasons = Counter(d["reason"].split(" (")[0] for d in dropped)
        print(f"dropped {len(dropped)} utterance(s) that failed validation (replaced where a spare sentence "
              f"was left): " + "; ".join(f"{r}: {c}" for r, c in reasons.most_common()) +
              f". Details in {args.out_dir}/corpus.json")
    else:
        print("dropped 0 utterances")
    return 0


# ------------------------------------------------------------------------------------------ train

# Expected failures: one line naming the file or option, exit code 2. Anything else keeps its traceback.
# ValueError/TypeError are the library's argument errors (message starting with the argument, option or
# file); OSError covers the file system (PermissionError on a read-only experiment dir, IsADirectoryError,
# NotADirectoryError, FileExistsError, a full disk: the message names the path). KeyError, OverflowError
# and ZeroDivisionError that come from bad input are turned into ValueErrors where they arise (config
# files, checkpoints, SPHERE headers, integer options beyond int64); elsewhere they are bugs and keep
# their traceback.
USER_ERRORS = (ValueError, TypeError, OSError)


def _fail(cmd: str, e: BaseException) -> int:
    print(f"scratchasr {cmd}: error: {e}", file=sys.stderr)
    return 2


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train any registered model from a recipe config",
                       description="CONFIG is a Python file defining a dict CONFIG with a key 'model' (see "
                                   "experiments/timit/*/config.py); --key=value overrides any trainer key or "
                                   "model option.")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("overrides", nargs="*", metavar="--key=value")
    p.add_argument("--resume", action="store_true", help="continue from EXP_DIR/checkpoint.npz")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an EXP_DIR that holds a run")
    p.set_defaults(func=_cmd_train)


def load_config_file(path: str) -> dict:
    from .trainer import load_config_file as load
    return load(path)


def _cmd_train(args) -> int:
    from .distributed import world
    from .trainer import NonFiniteLoss, TrainConfig, train

    try:
        dist = world()                     # under mpiexec: one of N ranks (docs/distributed.md)
        if not dist.is_root:
            sys.stdout = open(os.devnull, "w")           # rank 0 alone prints; errors still reach stderr
        cfg = TrainConfig.from_overrides(load_config_file(args.config), args.overrides)
        summary = train(cfg, resume=args.resume, overwrite=args.overwrite)
    except USER_ERRORS + (NonFiniteLoss,) as e:
        code = _fail("train", e)
        if "dist" in locals():
            dist.abort(code)      # an error on one rank must not leave the others waiting in the allreduce
        return code
    except KeyboardInterrupt:
        return 130
    lm = any("dev_loss" in h for h in summary["history"])          # a language model: loss per token
    best = f"loss/token {summary['best_dev']:.3f}" if lm else f"score {100 * summary['best_dev']:.2f}%"
    print(f"best dev {best} after {summary['epochs']} epochs, "
          f"{summary['minutes']:.1f} min; checkpoints in {summary['exp_dir']}")
    return 0


# ------------------------------------------------------------------------------------------ decode


def _beam_arg(text: str) -> int:
    from .inference import MAX_BEAM
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= v <= MAX_BEAM:
        raise argparse.ArgumentTypeError(f"expected an integer in [1, {MAX_BEAM}], got {v}")
    return v


_BEAM_HELP = ("1: greedy (default); N > 1: the model's beam search with N hypotheses, at most "
              "scratchasr.inference.MAX_BEAM (256)")
_RESAMPLE_HELP = ("refuse audio whose sample rate differs from the model's (default: resample it with a "
                  "polyphase filter and print a notice per file)")


def _decode_options(items) -> dict:
    """``KEY=VALUE`` strings -> dict; values are Python literals (numbers, True/False) or strings."""
    import ast
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"decode-option: expected KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(val)
        except (ValueError, SyntaxError):
            out[key] = val
    return out


_INT8_HELP = ("decode with the post-training int8 copy of a Conformer (int8 weights, per-output-channel "
              "scales, int32 sums; conformer_ctc / conformer_transducer)")


def _add_decode(sub) -> None:
    p = sub.add_parser("decode", help="decode a TIMIT-layout corpus or a Kaldi data dir and score it (S/D/I)",
                       description="DATA is a TIMIT-layout corpus (choose --split) or a Kaldi data dir "
                                   "(wav.scp + text; tokens as the model emits them: phones, words or "
                                   "characters). Scores "
                                   "with NIST sclite's alignment counts.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("data_dir", metavar="DATA")
    p.add_argument("--split", default="core_test",
                   help="TIMIT layout: train, dev, core_test (default) or test; Kaldi: a subdirectory name")
    p.add_argument("--beam", type=_beam_arg, default=1, help=_BEAM_HELP)
    p.add_argument("--no-resample", action="store_true", help=_RESAMPLE_HELP)
    p.add_argument("--out", default=None, metavar="DIR", help="write DIR/hyp.text and DIR/align.txt")
    p.add_argument("--lm", default=None, metavar="LM_CHECKPOINT",
                   help="fuse this language model (an lstm_lm/gpt_lm checkpoint) into the beam search")
    p.add_argument("--lm-weight", type=float, default=0.5, metavar="W",
                   help="weight of the LM's log-probability (--lm and --rescore; default 0.5)")
    p.add_argument("--nbest", type=_beam_arg, default=None, metavar="N",
                   help="with --rescore: hypotheses kept by the beam for rescoring (default: --beam)")
    p.add_argument("--method", default=None,
                   help="decoding method: greedy, beam (the default for --beam > 1) or a model's own "
                        "(e.g. graves for the transducer)")
    p.add_argument("--decode-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a keyword of the model's decode (e.g. ctc_weight=0.3 for las, length_reward=0.5); "
                        "repeatable")
    p.add_argument("--rescore", default=None, metavar="LM_CHECKPOINT",
                   help="n-best rescoring: the beam's N best hypotheses re-ranked by acoustic + W x LM score")
    p.add_argument("--int8", action="store_true", help=_INT8_HELP)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_decode)


def _cmd_decode(args) -> int:
    from .inference import evaluate

    try:
        r = evaluate(args.checkpoint, args.data_dir, args.split, beam_size=args.beam, out=args.out,
                     progress=not args.no_progress, resample=not args.no_resample, lm=args.lm,
                     lm_weight=args.lm_weight if (args.lm or args.rescore) else 0.0, nbest=args.nbest,
                     rescore=args.rescore, method=args.method,
                     decode_options=_decode_options(args.decode_option), int8=args.int8)
    except USER_ERRORS as e:
        return _fail("decode", e)
    except KeyboardInterrupt:
        return 130
    print(f"{r['split']}: {r['utterances']} utterances, {r['ref_tokens']} reference tokens: {r['metric']} "
          f"{100 * r['rate']:.2f}% (S {r['substitutions']}, D {r['deletions']}, I {r['insertions']})")
    w = r.get("wer")
    if w:                                   # a character model: its words too
        print(f"{r['split']}: {w['ref_tokens']} reference words: WER {100 * w['rate']:.2f}% "
              f"(S {w['substitutions']}, D {w['deletions']}, I {w['insertions']})")
    if args.out:
        print(f"wrote {args.out}/hyp.text and {args.out}/align.txt")
    return 0


# ------------------------------------------------------------------------------------------ transcribe


def _add_transcribe(sub) -> None:
    p = sub.add_parser("transcribe", help="print the tokens recognised in each audio file")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("audio", nargs="+", metavar="AUDIO")
    p.add_argument("--beam", type=_beam_arg, default=1, help=_BEAM_HELP)
    p.add_argument("--no-resample", action="store_true", help=_RESAMPLE_HELP)
    p.add_argument("--stream", action="store_true",
                   help="feed the audio in --chunk-ms pieces and print partial hypotheses as they grow "
                        "(models with a streaming decoder: transducer with bidirectional=False, "
                        "conformer_*, mocha); the final line equals offline greedy decoding")
    p.add_argument("--chunk-ms", type=float, default=100.0,
                   help="streaming chunk in milliseconds (default 100)")
    p.add_argument("--int8", action="store_true", help=_INT8_HELP)
    p.set_defaults(func=_cmd_transcribe)


def _cmd_transcribe(args) -> int:
    from .inference import transcribe_texts

    if args.stream:
        return _cmd_transcribe_stream(args)
    try:
        texts = transcribe_texts(args.checkpoint, args.audio, beam_size=args.beam,
                                 resample=not args.no_resample, int8=args.int8)
        for path, text in zip(args.audio, texts):
            print(f"{path}\t{text}")
    except USER_ERRORS as e:
        return _fail("transcribe", e)
    except KeyboardInterrupt:
        return 130
    return 0


def _cmd_transcribe_stream(args) -> int:
    from .data.corpus import tokens_to_text
    from .features.audio import load_audio
    from .inference import load
    from .streaming import stream_transcribe

    try:
        model, frontend = load(args.checkpoint, int8=args.int8)
        for path in args.audio:
            y, sr = load_audio(path)
            if sr != frontend.sample_rate and args.no_resample:
                raise ValueError(f"{path}: sample rate {sr} Hz, the model expects {frontend.sample_rate} Hz")

            def show(ids, path=path):
                print(f"{path}\t(partial) {tokens_to_text(model.vocabulary.decode(ids), model.units)}",
                      flush=True)

            ids = stream_transcribe(model, frontend, y, sr, chunk_ms=args.chunk_ms, on_partial=show)
            print(f"{path}\t{tokens_to_text(model.vocabulary.decode(ids), model.units)}", flush=True)
    except USER_ERRORS as e:
        return _fail("transcribe", e)
    except KeyboardInterrupt:
        return 130
    return 0


# ------------------------------------------------------------------------------------------ main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scratchasr",
                                     description="Speech recognition from first principles.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_synth_timit(sub)
    _add_train(sub)
    _add_decode(sub)
    _add_transcribe(sub)
    from .assignments.cli import add_parser as _add_assignment  # build/check/grade (issue 16)

    _add_assignment(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and args.command != "train":   # train takes free-form --key=value overrides
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        args.overrides = list(args.overrides) + unknown
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
