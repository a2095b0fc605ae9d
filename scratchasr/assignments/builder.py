"""``scratchasr assignment build ID --out DIR``: the student handout and the autograder from the solution.

``DIR/student/``: the package with the assignment's regions blanked (markers.py), its kernels replaced by
stubs that run the NumPy twin, only this assignment's spec, public references (``fixtures/``), public
tests, the docs and the handout README.md. ``DIR/autograder/``: the untouched student package (the base
a submission is overlaid on), the solution copy, hidden references recorded from the solution in
float64 with per-item seeds, ``manifest.json``, and Gradescope's ``setup.sh``/``run_autograder``.

The build fails unless the solution copy scores 100 % and the untouched stub 0 % (the grader must not
crash on the stub either).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import textwrap
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from . import markers
from .runner import run_item
from .spec import WRITE_KERNEL, Assignment, get

PKG = Path(__file__).resolve().parents[1]  # the installed scratchasr package
ROOT = PKG.parent  # the repository (docs/, kernels/, tests/)
STUDENT_MARK = "student_copy.json"


class BuildError(RuntimeError):
    pass


def is_student_copy() -> bool:
    return (Path(__file__).resolve().parent / STUDENT_MARK).is_file()


def _kernels_dir() -> Path:
    from .. import kernels

    return Path(kernels.__file__).resolve().parent


def _docs_dir() -> Path:
    return ROOT / "docs"


def public_seeds(a: Assignment) -> Dict[str, int]:
    return {it.name: 1000 + k for k, it in enumerate(a.items)}


def _stub_kernel(aid: str, rel: str, names: Dict[str, str], original: str) -> str:
    if WRITE_KERNEL in names.values():
        return _stub_some_kernels(aid, rel, names, original)
    tags = sorted(set(markers.TAG.findall(original)))
    lines = [f'"""Removed in the student copy of {aid}: each kernel runs its NumPy twin (backend="numpy").',
             "", f"The solution's Numba kernel cited {' '.join('[' + t + ']' for t in tags)}.", '"""', ""]
    lines += _stub_defs(aid, names)
    return "\n".join(lines).rstrip() + "\n"


def _stub_defs(aid: str, names: Dict[str, Optional[str]]) -> list:
    lines = []
    for name, twin in names.items():
        if twin is None:
            lines += [f"def {name}(*args, **kwargs):",
                      f'    """Stub: the kernel is part of {aid}\'s solution; run the NumPy twin."""',
                      f"    raise NotImplementedError(\"{name} is removed in the student copy of {aid}; "
                      f"use backend='numpy'\")", "", "",
                      f"{name}.removed_for_assignment = {aid!r}", "", ""]
            continue
        mod, _, attr = twin.rpartition(".")
        lines += [f"def {name}(*args, **kwargs):",
                  f'    """Stub: runs ``{twin}``."""',
                  f"    from ..{mod} import {attr}",
                  "",
                  f"    return {attr}(*args, **kwargs)",
                  "", "",
                  f"{name}.removed_for_assignment = {aid!r}", "", ""]
    return lines


def _stub_some_kernels(aid: str, rel: str, names: Dict[str, Optional[str]], original: str) -> str:
    """A "write the kernel" file: the kernels marked ``WRITE_KERNEL`` stay (the caller blanks their
    regions); every other kernel named in ``names`` is replaced in place by its stub (it would be a
    solution of another item). Helpers the file defines besides stay as they are."""
    tree = ast.parse(original)
    defs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    lines = original.splitlines()
    regions = [r for r in markers.scan(original, rel) if r.assignment == aid]
    spans = []
    for name, twin in names.items():
        if name not in defs:
            raise BuildError(f"{aid}: {rel} defines no kernel {name!r}")
        if twin == WRITE_KERNEL:
            node = defs[name]
            if not any(node.lineno <= r.first_line <= node.end_lineno for r in regions):
                raise BuildError(f"{aid}: {rel}:{name} is to be written by the student but holds no region "
                                 f"of {aid}")
            continue
        node = defs[name]
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        tags = sorted(set(markers.TAG.findall("\n".join(lines[first - 1:node.end_lineno]))))
        stub = _stub_defs(aid, {name: twin})
        stub[1] = stub[1].replace('"""Stub:', f'"""Stub ({" ".join("[" + t + "]" for t in tags)}):', 1)
        while not stub[-1]:
            stub.pop()
        spans.append((first, node.end_lineno, stub))
    for first, last, stub in sorted(spans, key=lambda s: s[0], reverse=True):
        lines[first - 1:last] = stub
    return "\n".join(lines).rstrip() + "\n"


FORCE_NUMPY = """

# Student copy of {aid} (docs/assignments.md): the kernels of the blanked functions are not shipped, so
# every backend resolves to the readable NumPy twin.
_resolve_backend_solution = resolve_backend


def resolve_backend(backend: Optional[str], has_kernel: bool = True, *, name: str = "backend") -> str:
    _resolve_backend_solution(backend, has_kernel, name=name)  # same validation and errors
    return "numpy"
"""


def copy_package(a: Assignment, dest: Path, *, blank: Optional[str]) -> None:
    """Write the package to ``dest`` (``.../scratchasr``), ``blank``'s regions blanked (None: solution)."""
    tags = markers.tag_files(_docs_dir())
    if dest.exists():
        shutil.rmtree(dest)
    found = set()
    sources = [(p, p.relative_to(PKG)) for p in sorted(PKG.rglob("*")) if p.is_file()]
    kdir = _kernels_dir()
    if kdir != PKG / "kernels":
        sources += [(p, Path("kernels") / p.relative_to(kdir)) for p in sorted(kdir.rglob("*"))
                    if p.is_file()]
    spec_dir = Path("assignments") / "specs"
    for src, rel in sources:
        if "__pycache__" in rel.parts or rel.suffix in (".pyc", ".nbi", ".nbc"):
            continue
        if rel.parent == spec_dir and rel.name not in ("__init__.py", f"{a.slug}.py"):
            continue  # other assignments' specs stay with the instructor
        if rel.parts[0] == "assignments" and rel.name == STUDENT_MARK:
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if rel.suffix != ".py":
            shutil.copyfile(src, out)
            continue
        text = src.read_text()
        if any(r.assignment == a.id for r in markers.scan(text, str(rel))):
            found.add(rel.as_posix())
        if blank is not None and rel.as_posix() in a.kernels:
            names = dict(a.kernels[rel.as_posix()])
            text = _stub_kernel(a.id, rel.as_posix(), names, text)
            if WRITE_KERNEL not in names.values():
                out.write_text(text)
                continue
        text = markers.blank_text(text, blank, tags, str(rel))
        if blank is not None and a.force_numpy and rel.as_posix() == "_backend.py":
            text += FORCE_NUMPY.format(aid=a.id)
        out.write_text(text)
    undeclared = sorted(found - set(a.files) - set(a.withheld) - {f"assignments/specs/{a.slug}.py"})
    if undeclared:
        raise BuildError(f"{a.id}: regions in files not listed in Assignment.files: {undeclared}")
    missing = sorted(set(a.files) - found)
    if missing:
        raise BuildError(f"{a.id}: files listed in Assignment.files without a region of {a.id}: {missing}")
    if blank is not None:
        (dest / "assignments" / STUDENT_MARK).write_text(json.dumps({"assignment": a.id}))


def record(a: Assignment, seeds: Dict[str, int], *, public_only: bool) -> Dict[str, np.ndarray]:
    """Reference values of every compared array, computed by the installed solution (float64)."""
    import scratchasr

    refs: Dict[str, np.ndarray] = {}
    for it in a.items:
        run_item(a, it, sub=scratchasr, sol=scratchasr, seed=seeds[it.name], mode="record", refs=refs,
                 public_only=public_only)
    return refs


RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope entry point: grades /autograder/submission, writes /autograder/results/results.json.
set -u
cd /autograder/source
scratchasr assignment grade {aid} /autograder/submission --autograder /autograder/source \\
    --results /autograder/results/results.json
"""

SETUP_SH = """#!/usr/bin/env bash
# Gradescope setup: install the instructor's solution package (it holds the grader).
set -eu
cd /autograder/source/solution
pip3 install numpy numba scipy soundfile tqdm
pip3 install .
"""


def build_autograder(a: Assignment, out: Path, *, seed: Optional[int] = None) -> Path:
    """The grader's folder: base student package, solution copy, hidden references, manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copy_package(a, out / "student" / "scratchasr", blank=a.id)
    copy_package(a, out / "solution" / "scratchasr", blank=None)
    for name in ("pyproject.toml", "setup.cfg", "README.md"):
        if (ROOT / name).is_file():
            shutil.copyfile(ROOT / name, out / "solution" / name)
    if (out / "solution" / "setup.cfg").is_file():  # kernels live inside the copied package
        cfg = (out / "solution" / "setup.cfg").read_text()
        cfg = cfg.replace("package_dir =\n    scratchasr.kernels = kernels\n", "")
        (out / "solution" / "setup.cfg").write_text(cfg)
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    rng = np.random.default_rng(seed)
    seeds = {it.name: int(rng.integers(10_000, 2**31 - 1)) for it in a.items}
    np.savez(out / "hidden.npz", **record(a, seeds, public_only=False))
    manifest = {"assignment": a.id, "title": a.title, "seeds": seeds, "files": list(a.files),
                "items": [{"name": it.name, "points": it.points, "bonus": it.bonus, "tags": list(it.tags),
                           "timeout": it.timeout,
                           "terms": [{"name": t.name, "weight": t.weight, "public": t.public}
                                     for t in it.terms]}
                          for it in a.items]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    (out / "run_autograder").write_text(RUN_AUTOGRADER.format(aid=a.id))
    (out / "setup.sh").write_text(SETUP_SH)
    for f in ("run_autograder", "setup.sh"):
        os.chmod(out / f, 0o755)
    return out


def _public_test(a: Assignment) -> str:
    names = ", ".join(repr(it.name) for it in a.items)
    return textwrap.dedent(f'''\
        """Public checks of {a.id} ({a.title}): the grader's terms with public seeds and references.

        Run ``scratchasr assignment check {a.id}`` for the whole table, or ``python -m pytest tests``.
        """

        from pathlib import Path

        import pytest

        from scratchasr.assignments.grader import item_output, run_items
        from scratchasr.assignments.spec import get

        ROOT = Path(__file__).resolve().parents[1]
        ITEMS = [{names}]


        @pytest.fixture(scope="module")
        def results():
            import json

            a = get("{a.id}")
            seeds = json.loads((ROOT / "fixtures" / "{a.slug}_public.json").read_text())["seeds"]
            out = run_items(a, ROOT / "scratchasr", items=ITEMS, seeds=seeds,
                            refs=ROOT / "fixtures" / "{a.slug}_public.npz", public_only=True, solution=False,
                            isolation="batch")
            return {{r["name"]: r for r in out}}


        @pytest.mark.parametrize("item", ITEMS)
        def test_item(results, item):
            r = results[item]
            assert all(t["passed"] for t in r["terms"] if t["ran"]), "\\n" + item_output(r)
        ''')


def build_student(a: Assignment, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    copy_package(a, out / "scratchasr", blank=a.id)
    fx = out / "fixtures"
    fx.mkdir(exist_ok=True)
    seeds = public_seeds(a)
    np.savez(fx / f"{a.slug}_public.npz", **record(a, seeds, public_only=True))
    (fx / f"{a.slug}_public.json").write_text(json.dumps({"assignment": a.id, "seeds": seeds}, indent=1))
    if a.fixtures is not None:
        a.fixtures(fx)
    tests = out / "tests"
    tests.mkdir(exist_ok=True)
    (tests / f"test_{a.slug}_public.py").write_text(_public_test(a))
    tag_test = ROOT / "tests" / "test_equation_tags.py"
    if tag_test.is_file():
        shutil.copyfile(tag_test, tests / "test_equation_tags.py")
    docs = out / "docs"
    (docs / "equations").mkdir(parents=True, exist_ok=True)
    for md in sorted((_docs_dir() / "equations").glob("*.md")):
        shutil.copyfile(md, docs / "equations" / md.name)
    for name in ["notation.md", "gradcheck.md", *a.docs]:
        src = _docs_dir() / name
        if not src.is_file():  # a walkthrough not written yet: the handout still points at the equations
            continue
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, docs / name)
    for rel in a.extras:
        if not (ROOT / rel).is_file():
            raise BuildError(f"{a.id}: {rel} is listed in Assignment.extras but does not exist")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, out / rel)
    handout = Path(__file__).resolve().parent / "handouts" / a.handout
    shutil.copyfile(handout, out / "README.md")
    (out / "pyproject.toml").write_text(textwrap.dedent("""\
        [build-system]
        requires = ["setuptools>=64", "wheel"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "scratchasr"
        version = "0.1.0"
        requires-python = ">=3.10"
        dependencies = ["numpy>=1.24,<2.6", "numba>=0.58", "scipy>=1.10", "soundfile>=0.12", "tqdm>=4.60",
                        "pytest>=7"]

        [project.scripts]
        scratchasr = "scratchasr.cli:main"

        [tool.setuptools.packages.find]
        include = ["scratchasr*"]

        [tool.setuptools.package-data]
        "*" = ["*.txt", "*.json", "*.md"]
        """))
    return out


def self_check(a: Assignment, out: Path, *, isolation: str = "process") -> dict:
    """Grade the solution copy (must be 100 %) and the untouched stub (must be 0 %, grader alive)."""
    from .grader import format_table, grade

    ag = out / "autograder"
    sol = grade(a.id, ag / "solution", autograder=ag, isolation=isolation)
    stub = grade(a.id, out / "student", autograder=ag, isolation=isolation)
    if not sol.complete:  # bonus items included
        raise BuildError(f"{a.id}: the solution scores {sol.score:g} / {a.points + a.bonus_points:g}, "
                         f"expected 100 %\n" + format_table(sol))
    if stub.score != 0.0:
        raise BuildError(f"{a.id}: the untouched stub scores {stub.score:g} / {a.points:g}, expected 0\n"
                         + format_table(stub))
    crashed = [i["name"] for i in stub.items if any(t["name"] == "run" for t in i["terms"])]
    if crashed:
        raise BuildError(f"{a.id}: the grader crashed on the stub for items {crashed}\n" + format_table(stub))
    return {"solution": sol.score, "stub": stub.score, "max": a.points, "bonus": a.bonus_points}


def check_corpus(corpus) -> dict:
    """What ``ship_corpus`` would ship: a TIMIT-layout corpus folder (``scratchasr synth-timit``'s output,
    or any tree ``scratchasr train --data_dir`` reads as TIMIT) -> {path, utterances, synthetic, about}."""
    from ..data.corpus import is_kaldi_dir, read_split

    root = Path(corpus)
    if not root.is_dir():
        raise ValueError(f"corpus: {str(root)!r} is not a directory")
    if is_kaldi_dir(root) or any(is_kaldi_dir(root / s) for s in ("train", "dev")):
        raise ValueError(f"corpus: {str(root)!r} is a Kaldi data dir, whose wav.scp names audio outside it; "
                         f"ship a TIMIT-layout corpus (scratchasr synth-timit OUT_DIR --size small)")
    counts = {}
    for split in ("train", "dev", "core_test"):
        try:
            counts[split] = len(read_split(root, split))
        except (ValueError, OSError) as e:
            if split == "train":
                raise ValueError(f"corpus: {str(root)!r} is not a TIMIT-layout corpus: {e}") from e
            counts[split] = 0
    if not counts["train"]:
        raise ValueError(f"corpus: {str(root)!r} holds no training utterances "
                         f"(expected TRAIN/DR*/<speaker>/*.WAV)")
    info = json.loads((root / "corpus.json").read_text()) if (root / "corpus.json").is_file() else {}
    synthetic = info.get("generator") == "scratchasr synth-timit"
    if synthetic:
        about = (f"synthetic speech in TIMIT's layout, `scratchasr synth-timit --size {info.get('size')} "
                 f"--seed {info.get('seed')}`, {info.get('hours', 0):.2f} h")
    else:
        about = "a TIMIT-layout corpus"
    return {"path": root.resolve(), "utterances": counts, "synthetic": synthetic, "about": about}


def ship_corpus(a: Assignment, student: Path, corpus) -> dict:
    """Copy ``corpus`` to ``student/data/<its name>`` and add a README section with the final run's command
    on it, so the student needs neither festival nor flite. Returns what the build reports."""
    c = check_corpus(corpus)
    student = Path(student)
    dest = student / "data" / c["path"].name
    if dest.exists():
        raise ValueError(f"corpus: {dest} exists already")
    shutil.copytree(c["path"], dest, ignore=shutil.ignore_patterns("__pycache__", "feats"))
    rel = dest.relative_to(student).as_posix()
    n = c["utterances"]
    split_text = f"{n['train']} train / {n['dev']} dev / {n['core_test']} core-test utterances"
    command = a.training.replace("DATA", rel) if a.training else f"scratchasr train ... --data_dir={rel}"
    section = textwrap.dedent(f"""

        ## The corpus shipped with this copy
        `{rel}/` ({c["about"]}; {split_text}) is the corpus for the final run: wherever a command above
        says `DATA`, use `{rel}`. You need neither festival nor flite. The final run, from this folder:
        ```
        OMP_NUM_THREADS=1 {command}
        ```
        """)
    with open(student / "README.md", "a") as f:
        f.write(section)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    out = {"corpus": rel, "corpus_utterances": n, "corpus_megabytes": round(size / 2**20, 1)}
    if not c["synthetic"]:
        out["corpus_warning"] = ("not a synth-timit corpus: make sure its licence lets you hand it out "
                                 "(LDC's TIMIT does not)")
    return out


def build(aid: str, out, *, seed: Optional[int] = None, check: bool = True,
          isolation: str = "process", corpus=None) -> dict:
    """Build ``out/student`` and ``out/autograder`` for ``aid``; run the self-check unless ``check=False``;
    ``corpus``: a TIMIT-layout corpus folder copied into ``out/student/data/`` for the final run."""
    if is_student_copy():
        raise BuildError("build: this installation is a student copy; build from the solution repository")
    a = get(aid)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"out: {str(out)!r} exists and is not empty")
    if corpus is not None:
        check_corpus(corpus)  # fail before minutes of building
    build_autograder(a, out / "autograder", seed=seed)
    build_student(a, out / "student")
    summary = {"assignment": a.id, "out": str(out)}
    if check:
        summary.update(self_check(a, out, isolation=isolation))
    if corpus is not None:  # after the self-check, which grades out/student
        summary.update(ship_corpus(a, out / "student", corpus))
    return summary
