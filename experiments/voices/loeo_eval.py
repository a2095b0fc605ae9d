"""Leave-one-engine-out: PER of checkpoints on their training engines' voices and on a held-out engine's.

    .venv/bin/python experiments/voices/loeo_eval.py RUNS.json [--out results.json]

RUNS.json is a list of runs, each ``{"name": ..., "checkpoint": PATH, "held_out": ENGINE,
"seen": [DATA_DIR, SPLIT], "unseen": [DATA_DIR, SPLIT], "pocketsphinx": {"seen": PER, "unseen": PER}}``
(the pocketsphinx numbers, optional, come from ``pocketsphinx_phones.py`` on the same two splits). Every
PER is ``scratchasr.inference.evaluate``'s: greedy, 39 phones, sclite counts, ``sil`` at both ends included,
exactly as ``scratchasr decode`` prints it. Prints a Markdown table with the unseen/seen ratio (the
issue's goal is at most 2) and writes every number (with S/D/I counts) to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from scratchasr.inference import evaluate


def _sha1(path: str) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:8]


def _score(ckpt: str, data: str, split: str) -> dict:
    r = evaluate(ckpt, data, split, progress=False)
    return dict(per=round(100.0 * r["per"], 2), S=r["substitutions"], D=r["deletions"], I=r["insertions"],
                ref=r["ref_tokens"], utts=r["utterances"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="JSON list of runs (see the module docstring)")
    ap.add_argument("--out", default=None, help="write every number here (JSON)")
    a = ap.parse_args(argv)
    runs = json.loads(Path(a.runs).read_text())
    rows, out = [], []
    for run in runs:
        if not isinstance(run, dict) or not {"name", "checkpoint", "held_out", "seen", "unseen"} <= set(run):
            raise ValueError(f"runs: each run needs name, checkpoint, held_out, seen, unseen; got {run!r}")
        seen = _score(run["checkpoint"], *run["seen"])
        unseen = _score(run["checkpoint"], *run["unseen"])
        ratio = unseen["per"] / max(seen["per"], 1e-9)
        ps = run.get("pocketsphinx") or {}
        sha1 = _sha1(run["checkpoint"])
        out.append(dict(run, sha1=sha1, seen_score=seen, unseen_score=unseen, ratio=round(ratio, 2)))
        peer = f"{ps['seen']:.2f} / {ps['unseen']:.2f}" if ps else "-"
        rows.append(f"| {run['name']} (`{sha1}`) | {run['held_out']} | {seen['per']:.2f} "
                    f"({seen['utts']} utts) | **{unseen['per']:.2f}** (S {unseen['S']} D {unseen['D']} "
                    f"I {unseen['I']} of {unseen['ref']}) | {ratio:.1f}x | {peer} |")
        print(rows[-1], flush=True)
    print("\n| model | held-out engine | seen voices PER | unseen engine PER | unseen / seen | "
          "pocketsphinx seen / unseen |\n|---|---|---|---|---|---|")
    print("\n".join(rows))
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
