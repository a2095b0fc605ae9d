"""PER per utterance-length bucket for several recognisers on one split: the lecture's bottleneck claim.

    python experiments/timit/attention/length_analysis.py DATA --split core_test --out DIR \
        --model seq2seq=exp/seq2seq/best.npz --model las=exp/las/best.npz \
        --model mocha=exp/mocha/best.npz --model ctc=exp/ctc_blstm/best.npz [--beam 1] [--buckets 4]

Utterances are grouped by input duration (seconds of audio) into ``--buckets`` groups of equal size
(quantiles of the split's durations); each model's hypotheses are scored (sclite counts, the
checkpoint's scoring rule, 39-phone folding for TIMIT phones) per bucket. Writes DIR/length_per.png
(PER against bucket, one line per model), DIR/length_per.md (the table with S/D/I and utterance
counts) and DIR/hyp_<name>.text (Kaldi ``text`` format; reused when present, so re-plotting does not
re-decode; ``--redecode`` forces it). Model-specific decoding options can be given per model as
``--opt las:ctc_weight=0.3`` (passed to ``model.decode``; ``--opt NAME:beam=4`` sets that model's beam).
One checkpoint may appear under two names with different options (``las=X --model las_ctc=X``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from scratchasr.data.batch import bucket_batches, make_batch
from scratchasr.data.corpus import read_split, scoring_tokens
from scratchasr.inference import load
from scratchasr.metrics import error_rate


def _decode(model, feats, *, beam, options, batch_size=16):
    options = dict(options)
    beam = int(options.pop("beam", beam))  # a per-model beam: --opt NAME:beam=4
    hyps = [None] * len(feats)
    for idx in bucket_batches([f.shape[0] for f in feats], batch_size, None):
        b = make_batch([feats[i] for i in idx], [[] for _ in idx])
        out = model.decode(b, method="greedy" if beam <= 1 else "beam", beam_size=beam, **options)
        for i, h in zip(idx, out):
            hyps[i] = list(h)
    return hyps


def _value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(v.lower(), v)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("--split", default="core_test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", action="append", required=True, help="NAME=CHECKPOINT (repeatable)")
    ap.add_argument("--opt", action="append", default=[], help="NAME:key=value decode option (repeatable)")
    ap.add_argument("--beam", type=int, default=1)
    ap.add_argument("--buckets", type=int, default=4)
    ap.add_argument("--redecode", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [m.split("=", 1) for m in args.model]
    if any(len(s) != 2 for s in specs):
        ap.error("--model: expected NAME=CHECKPOINT")
    options = {name: {} for name, _ in specs}
    for o in args.opt:
        name, _, kv = o.partition(":")
        k, _, v = kv.partition("=")
        if name not in options or not k or not v:
            ap.error(f"--opt: expected NAME:key=value with NAME one of {list(options)}, got {o!r}")
        options[name][k] = _value(v)

    per_model, durations, refs_by_model = {}, None, {}
    for name, ckpt in specs:
        model, frontend = load(ckpt)
        utts = read_split(args.data, args.split, model.units)
        hyp_file = out / f"hyp_{name}.text"
        feats = None
        if durations is None or not hyp_file.exists() or args.redecode:
            feats = [frontend.from_file(u.wav_path) for u in utts]
            durations = np.array([f.shape[0] / 100.0 for f in feats])  # 10 ms frames
        if hyp_file.exists() and not args.redecode:
            table = dict((line.split(" ", 1) + [""])[:2] for line in hyp_file.read_text().splitlines())
            hyps = [table[u.id].split() for u in utts]
            print(f"{name}: hypotheses read from {hyp_file}", file=sys.stderr)
        else:
            t0 = time.time()
            ids = _decode(model, feats, beam=args.beam, options=options[name])
            hyps = [model.vocabulary.decode(h) for h in ids]
            hyp_file.write_text("".join(f"{u.id} {' '.join(h)}\n" for u, h in zip(utts, hyps)))
            print(f"{name}: decoded {len(utts)} utterances in {time.time() - t0:.0f} s", file=sys.stderr)
        refs = [scoring_tokens(u.tokens, model.scoring) for u in utts]
        per_model[name] = [scoring_tokens(h, model.scoring) for h in hyps]
        refs_by_model[name] = (refs, [u.id for u in utts])

    names = [n for n, _ in specs]
    ids0 = refs_by_model[names[0]][1]
    if any(refs_by_model[n][1] != ids0 for n in names):
        raise SystemExit("the models read different utterance lists (units differ?)")
    refs = refs_by_model[names[0]][0]
    edges = np.quantile(durations, np.linspace(0, 1, args.buckets + 1))
    which = np.clip(np.searchsorted(edges, durations, side="right") - 1, 0, args.buckets - 1)
    rows, curves = [], {n: [] for n in names}
    labels = []
    for k in range(args.buckets):
        sel = np.nonzero(which == k)[0]
        lab = f"{edges[k]:.1f}-{edges[k + 1]:.1f} s"
        labels.append(lab)
        n_ref = sum(len(refs[i]) for i in sel)
        cells = []
        for n in names:
            er = error_rate([refs[i] for i in sel], [per_model[n][i] for i in sel])
            curves[n].append(100 * er.rate)
            cells.append(f"{100 * er.rate:.2f} ({er.substitutions}/{er.deletions}/{er.insertions})")
        rows.append(f"| {lab} | {len(sel)} | {n_ref} | " + " | ".join(cells) + " |")
    total = []
    for n in names:
        er = error_rate(refs, per_model[n])
        total.append(f"{100 * er.rate:.2f} ({er.substitutions}/{er.deletions}/{er.insertions})")
    head = "| duration | utts | ref phones | " + " | ".join(f"{n} PER % (S/D/I)" for n in names) + " |"
    table = "\n".join([head, "|" + "---|" * (3 + len(names))] + rows +
                      [f"| all | {len(refs)} | {sum(map(len, refs))} | " + " | ".join(total) + " |"])
    (out / "length_per.md").write_text(table + "\n")
    (out / "length_per.json").write_text(json.dumps(dict(edges=edges.tolist(), labels=labels, per=curves,
                                                         split=args.split, beam=args.beam,
                                                         models=dict(specs), options=options), indent=1))
    print(table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    fig, ax = plt.subplots(figsize=(7, 4))
    x = np.arange(args.buckets)
    for n in names:
        ax.plot(x, curves[n], marker="o", label=n)
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    ax.set_xlabel(f"utterance duration ({args.split}, {args.buckets} equal-count buckets)")
    ax.set_yscale("log")  # PERs from a few % to above 100 % on one plot
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("PER (%, log scale)")
    ax.set_title("PER against input length")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "length_per.png", dpi=120)
    print(f"wrote {out / 'length_per.png'}, {out / 'length_per.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
