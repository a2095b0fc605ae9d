"""What every tests/assignments/test_assign_<slug>.py shares.

A module sets ``AID`` and ``SEED`` (the build), ``BUGS`` (one ``planted.Bug`` per graded item) and, if some
bugs are too slow for the default suite, ``SLOW_BUGS`` (their item names: those run only with -m slow).

* ``built``: the module's assignment built once into a temporary folder (``isolation="batch"``), with
  the build's self-check; ``built.out`` is the folder, ``built.summary`` what ``build`` returned;
* a test argument named ``bug`` is parametrised over the module's ``BUGS`` (ids: the item names).
"""

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from scratchasr.assignments import build

# These tests check what the builds and graders compute, not how fast: item time limits are wall-clock
# and the suite runs beside other work (a planted-bug or student-copy check once failed under load).
os.environ.setdefault("SCRATCHASR_GRADE_TIMEOUT_SCALE", "10")


class Built(NamedTuple):
    out: Path
    summary: dict

    @property
    def autograder(self) -> Path:
        return self.out / "autograder"

    @property
    def student(self) -> Path:
        return self.out / "student" / "scratchasr"


@pytest.fixture(scope="module")
def built(request, tmp_path_factory):
    aid = request.module.AID
    out = tmp_path_factory.mktemp(aid.lower()) / "build"
    return Built(out, build(aid, out, seed=request.module.SEED, isolation="batch"))


def pytest_generate_tests(metafunc):
    if "bug" in metafunc.fixturenames:
        bugs = metafunc.module.BUGS
        slow = set(getattr(metafunc.module, "SLOW_BUGS", ()))
        metafunc.parametrize("bug", [pytest.param(b, marks=pytest.mark.slow) if b.item in slow else b
                                     for b in bugs], ids=[b.item for b in bugs])
