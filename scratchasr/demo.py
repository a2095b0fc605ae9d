"""``make demo``: synthesise the small TIMIT-layout corpus, train a BiLSTM-CTC phone recogniser for a
bounded time on the CPU, decode the core-test speakers and print PER with S/D/I.

    python -m scratchasr.demo [--minutes 12] [--data data/synth_small] [--exp exp/demo]

festival and flite are Debian packages; when they are missing and we run as root with apt-get
available they are installed, otherwise the exact command is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

APT_PACKAGES = ["festival", "festvox-kallpc16k", "festvox-kdlpc16k", "festvox-us-slt-hts", "festlex-cmu",
                "festlex-poslex", "flite", "wordnet-base"]


def ensure_synthesisers() -> None:
    if shutil.which("festival") and shutil.which("flite") and Path("/usr/share/wordnet").exists():
        return
    cmd = "apt-get update && apt-get install -y --no-install-recommends " + " ".join(APT_PACKAGES)
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"installing the synthesisers: {cmd}", flush=True)
        subprocess.run(cmd, shell=True, check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    else:
        sys.exit(f"festival/flite/wordnet are missing; install them with:\n  sudo {cmd}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=12.0, help="training time budget (default 12)")
    ap.add_argument("--data", default="data/synth_small")
    ap.add_argument("--exp", default="exp/demo")
    ap.add_argument("--size", default="small", choices=["tiny", "small", "full"])
    args = ap.parse_args(argv)

    from .inference import evaluate
    from .trainer import TrainConfig, train

    data = Path(args.data)
    if not (data / "corpus.json").exists():
        ensure_synthesisers()
        from .data.synth import synth_timit
        t0 = time.perf_counter()
        if data.exists() and not any(data.iterdir()):
            data.rmdir()
        synth_timit(str(data), size=args.size, seed=0)
        print(f"synthesised {data} in {time.perf_counter() - t0:.0f} s", flush=True)
    cfg = TrainConfig.from_overrides(dict(model="ctc_blstm", data_dir=str(data), exp_dir=args.exp,
                                          max_minutes=args.minutes, epochs=100, hidden=256, num_layers=2,
                                          stack=2, dropout=0.2))
    summary = train(cfg, overwrite=True)
    best = Path(args.exp) / "best.npz"
    result = evaluate(str(best), str(data), "core_test", out=str(Path(args.exp) / "decode_core_test"))
    print(f"\ncore test ({result['utterances']} utterances, {result['ref_tokens']} phones): "
          f"PER {100 * result['per']:.2f}%  (S {result['substitutions']}, D {result['deletions']}, "
          f"I {result['insertions']})")
    for uid, ref, hyp in result["examples"]:
        print(f"  {uid}\n    ref: {ref}\n    hyp: {hyp}")
    try:
        from .plots import plot_run
        for p in plot_run(args.exp, best_checkpoint=str(best), data_dir=str(data)):
            print(f"wrote {p}")
    except ImportError as e:  # matplotlib is the optional "plot" extra
        print(f"(no plots: {e})")
    print(f"trained {summary['epochs']} epochs in {summary['minutes']:.1f} min; best dev PER "
          f"{100 * summary['best_dev']:.2f}%; everything is in {args.exp}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
