"""``scratchasr assignment build|check|grade|list``: the instructor's and the student's commands.

    scratchasr assignment build A3 --out course/a3      # student/ + autograder/, self-checked
    scratchasr assignment check A3                      # in a student copy: the public checks
    scratchasr assignment grade A3 SUBMISSION --autograder course/a3/autograder [--results results.json]
"""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("assignment", help="course assignments: build the handout and grader, check, grade",
                       description="Course assignments built from the solution code (docs/assignments.md).")
    s = p.add_subparsers(dest="assignment_command", metavar="ACTION", required=True)
    b = s.add_parser("build", help="write DIR/student (handout) and DIR/autograder; fails unless the "
                                   "solution scores 100 %% and the stub 0")
    b.add_argument("id", metavar="ID", help="assignment id, e.g. A0")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty)")
    b.add_argument("--seed", type=int, default=None, help="seed of the hidden cases (default: random)")
    b.add_argument("--no-self-check", action="store_true", help="skip grading the solution and the stub")
    b.add_argument("--corpus", default=None, metavar="CORPUS_DIR",
                   help="a TIMIT-layout corpus (e.g. from `scratchasr synth-timit DIR --size small`) copied "
                        "into DIR/student/data/ for the final training run: students need no festival/flite")
    b.set_defaults(func=_cmd_build)
    c = s.add_parser("check", help="run the public checks in a student copy (same terms as the grader)")
    c.add_argument("id", metavar="ID")
    c.add_argument("--dir", default=None, metavar="STUDENT_DIR",
                   help="the student copy (default: the current folder, or the installed copy)")
    c.set_defaults(func=_cmd_check)
    g = s.add_parser("grade", help="grade a submission item by item; writes results.json (Gradescope)")
    g.add_argument("id", metavar="ID")
    g.add_argument("submission", metavar="SUBMISSION_DIR",
                   help="a student copy, a package tree, or the edited files side by side")
    g.add_argument("--autograder", default=None, metavar="DIR",
                   help="the autograder folder from build (default: hidden cases recorded now)")
    g.add_argument("--results", default="results.json", metavar="PATH", help="where to write results.json")
    g.add_argument("--isolation", choices=["process", "batch"], default="process",
                   help="process: every item in its own process (default); batch: one process for all")
    g.set_defaults(func=_cmd_grade)
    ls = s.add_parser("list", help="the available assignments and their points")
    ls.set_defaults(func=_cmd_list)


def _fail(e: BaseException) -> int:
    print(f"scratchasr assignment: {e}", file=sys.stderr)
    return 2


def _cmd_build(args) -> int:
    from . import BuildError, build

    try:
        summary = build(args.id, args.out, seed=args.seed, check=not args.no_self_check, corpus=args.corpus)
    except (ValueError, TypeError, OSError, BuildError) as e:
        return _fail(e)
    print(json.dumps(summary))
    if "corpus_warning" in summary:
        print(f"warning: {summary['corpus_warning']}", file=sys.stderr)
    print(f"wrote {args.out}/student (hand out) and {args.out}/autograder (keep private)")
    return 0


def _cmd_check(args) -> int:
    from . import check, format_table, get

    try:
        res = check(args.id, args.dir)
    except (ValueError, TypeError, OSError) as e:
        return _fail(e)
    print(format_table(res))
    if get(args.id).training:
        print(f"\nwhen every item passes, the final run: {get(args.id).training}")
    return 0 if res.score >= res.max_score - 1e-9 else 1  # bonus items are not required


def _cmd_grade(args) -> int:
    from . import format_table, grade

    try:
        res = grade(args.id, args.submission, autograder=args.autograder, results=args.results,
                    isolation=args.isolation)
    except (ValueError, TypeError, OSError) as e:
        return _fail(e)
    print(format_table(res))
    print(f"\nwrote {args.results}")
    return 0


def _cmd_list(args) -> int:
    from . import available, get

    for aid in available():
        a = get(aid)
        bonus = f" + {a.bonus_points:g} bonus" if a.bonus_points else ""
        print(f"{a.id}  {a.title}  ({a.points:g} points{bonus}, {len(a.items)} items)")
    return 0
