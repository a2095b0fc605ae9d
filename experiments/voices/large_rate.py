"""Extrapolate the generation time and disk size of ``synth-timit --size large`` from a slice of its plan.

    python experiments/voices/large_rate.py OUT_DIR [--voices all] [--every 100] [--jobs 2]

Plans the large corpus exactly as ``scratchasr synth-timit OUT_DIR --size large --voices ...`` would (same
seed, speakers, sentences), synthesises every N-th worker batch of that plan (a slice with the plan's mix
of engines and voices, batched as in a full run) through the same workers, and prints the measured rate
(utterances/s, audio seconds per wall second), the CPU time it took (this process and every child:
workers, festival, flite, espeak-ng), the disk bytes per hour of audio, and what they give for the whole
plan. It is an extrapolation: the slice's per-utterance cost times the plan's utterance count, at this
run's machine load; the CPU time is the load-independent part (wall = CPU / jobs on idle cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

from scratchasr.data import synth


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished children (workers, synthesisers)."""
    return sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", type=Path, help="scratch folder for the slice (must be new or empty)")
    ap.add_argument("--voices", default="all", help="as synth-timit's --voices (default: all)")
    ap.add_argument("--every", type=int, default=100, help="synthesise every N-th worker batch of the plan")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the slice's files")
    args = ap.parse_args(argv)
    if args.out_dir.exists() and any(args.out_dir.iterdir()):
        raise SystemExit(f"out_dir: {args.out_dir} is not empty")
    voices = synth.resolve_voices(args.voices.split(","), synth.available_voices())
    plan_speakers, plan, _ = synth.plan_corpus(synth.wordnet_sentences(), voices, size="large",
                                               seed=args.seed)
    # whole worker batches (a festival process per 16 utterances, an espeak-ng process per 64), every
    # N-th of the plan's batch list: each voice and engine in proportion, start-up costs as in a full run
    piece = [j for _, js in synth._batches(plan, 16)[::args.every] for j in js]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    t0, cpu0 = time.perf_counter(), _cpu_seconds()
    results = synth._run_all(args.out_dir, piece, args.jobs, True, f"large slice 1/{args.every}")
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    ok = [r for r in results if r["ok"]]
    audio_s = sum(r["seconds"] for r in ok)
    size = sum(f.stat().st_size for f in args.out_dir.rglob("*") if f.is_file())
    engines: dict = {}
    for r in results:
        e = engines.setdefault(r["engine"], [0, 0])
        e[0] += 1
        e[1] += r["ok"]
    n = len(plan)
    print(f"plan: {n} utterances, {len(plan_speakers)} speakers, {len(voices)} voices; slice: {len(piece)} "
          f"utterances (every {args.every}th batch), {len(ok)} valid; engines (planned, valid): {engines}")
    print(f"slice: {wall:.1f} s wall with {args.jobs} workers, {len(piece) / wall:.2f} utt/s, "
          f"{audio_s / 3600:.3f} h of audio ({audio_s / max(len(ok), 1):.2f} s/utt), "
          f"{size / 1e6:.1f} MB on disk ({size / max(audio_s, 1e-9) * 3600 / 1e6:.0f} MB per hour of audio)")
    hours = audio_s / max(len(ok), 1) * n / 3600
    print(f"CPU: {cpu:.1f} s (user + system, this process and its children), {cpu / len(piece):.3f} s per "
          f"utterance, {cpu / max(audio_s, 1e-9) * 3600 / 60:.1f} CPU-min per hour of audio; whole plan: "
          f"{cpu / len(piece) * n / 60:.0f} CPU-min")
    print(f"EXTRAPOLATED to the whole plan: {n / (len(piece) / wall) / 60:.0f} min wall, "
          f"{hours:.1f} h of audio, {size / max(audio_s, 1e-9) * hours * 3600 / 1e9:.1f} GB "
          f"(load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    if not args.keep:
        shutil.rmtree(args.out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
