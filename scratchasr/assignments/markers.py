"""Assignment markers in the solution code and the blanking that turns a solution into a student copy.

Two markers, both plain comments (docs/assignments.md):

* a region: a line ``# BEGIN ASSIGNMENT A<k> points=N``, the solution lines, a line
  ``# END ASSIGNMENT`` (``points=N`` is optional, ``[points=N]`` is accepted too). Building
  assignment ``A3`` replaces the
  region by ONE line at the indentation of its BEGIN marker::

      raise NotImplementedError("A3: implement [ctc:alpha-rec], see docs/equations/ctc.md")

  that keeps every equation tag the region cited, so the tag test still passes on the student copy;
* a line ending with ``# BLANK A3``: the same replacement for that single line (a complete statement).

Building any assignment removes the marker comments of every other assignment and leaves their code
solved, so earlier assignments stay solved.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN ASSIGNMENT (?P<id>A\d+)(?:\s+\[?points=(?P<points>\d+)\]?)?\s*$")
END = re.compile(r"^\s*# END ASSIGNMENT\s*$")
BLANK = re.compile(r"\s*# BLANK (?P<id>A\d+)\s*$")
TAG = re.compile(r"\[([a-z0-9-]+:[a-z0-9-]+)\]")
ANY_MARKER = re.compile(r"# (BEGIN ASSIGNMENT|END ASSIGNMENT|BLANK A)")


class MarkerError(ValueError):
    """A malformed marker: unbalanced, nested, or a BLANK line that is not a statement."""


@dataclass
class Region:
    """One blanked region of a file (a BEGIN/END block or a BLANK line)."""

    assignment: str
    path: str  # file, relative to the package root
    first_line: int  # 1-based line of the BEGIN marker (or the BLANK line)
    last_line: int  # 1-based line of the END marker (or the BLANK line)
    points: Optional[int]
    tags: List[str] = field(default_factory=list)
    kind: str = "region"  # "region" or "line"


def _message(aid: str, tags: Sequence[str], tag_files: Dict[str, str]) -> str:
    if not tags:
        return f"{aid}: implement this part, see the handout README.md"
    docs = []
    for t in tags:
        doc = tag_files.get(t)
        if doc and doc not in docs:
            docs.append(doc)
    where = f", see {', '.join(docs)}" if docs else ""
    return f"{aid}: implement {' '.join('[' + t + ']' for t in tags)}{where}"


def _unique(seq):
    out = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out


def scan(text: str, path: str = "<string>") -> List[Region]:
    """Every marked region of ``text``; raises MarkerError on unbalanced or nested markers."""
    regions: List[Region] = []
    open_region: Optional[Region] = None
    for n, line in enumerate(text.splitlines(), 1):
        m = BEGIN.match(line)
        if m:
            if open_region is not None:
                raise MarkerError(f"{path}:{n}: BEGIN ASSIGNMENT inside the open region of line "
                                  f"{open_region.first_line}")
            pts = m.group("points")
            open_region = Region(m.group("id"), path, n, n, int(pts) if pts else None)
            continue
        if END.match(line):
            if open_region is None:
                raise MarkerError(f"{path}:{n}: END ASSIGNMENT without a BEGIN")
            open_region.last_line = n
            open_region.tags = _unique(open_region.tags)
            regions.append(open_region)
            open_region = None
            continue
        if line.strip().startswith(("# BEGIN ASSIGNMENT", "# END ASSIGNMENT")):
            raise MarkerError(f"{path}:{n}: malformed marker {line.strip()!r} "
                              f"(expected '# BEGIN ASSIGNMENT A<k> [points=N]' or '# END ASSIGNMENT')")
        b = BLANK.search(line)
        if b:
            if open_region is not None:
                raise MarkerError(f"{path}:{n}: BLANK line inside the region of line "
                                  f"{open_region.first_line}")
            regions.append(Region(b.group("id"), path, n, n, None, _unique(TAG.findall(line)), "line"))
            continue
        if open_region is not None:
            open_region.tags.extend(TAG.findall(line))
    if open_region is not None:
        raise MarkerError(f"{path}:{open_region.first_line}: BEGIN ASSIGNMENT without an END")
    return regions


def blank_text(text: str, aid: Optional[str], tag_files: Dict[str, str], path: str = "<string>") -> str:
    """``text`` with the regions of assignment ``aid`` blanked and every marker comment removed.

    ``aid=None`` blanks nothing (the solution copy). ``tag_files`` maps a tag to the docs file that
    defines it (for the message). The result is checked to be valid Python.
    """
    regions = scan(text, path)
    if not regions and not ANY_MARKER.search(text):
        return text
    lines = text.splitlines(keepends=True)
    out: List[str] = []
    by_first = {r.first_line: r for r in regions}
    n = 1
    while n <= len(lines):
        r = by_first.get(n)
        line = lines[n - 1]
        if r is None:
            out.append(line)
            n += 1
            continue
        if r.kind == "line":
            indent = line[:len(line) - len(line.lstrip())]
            if r.assignment == aid:
                out.append(f"{indent}raise NotImplementedError({_message(aid, r.tags, tag_files)!r})\n")
            else:
                out.append(BLANK.sub("", line.rstrip("\n")) + "\n")
            n += 1
            continue
        indent = BEGIN.match(line.rstrip("\n")).group("indent")
        if r.assignment == aid:
            out.append(f"{indent}raise NotImplementedError({_message(aid, r.tags, tag_files)!r})\n")
        else:
            out.extend(lines[r.first_line:r.last_line - 1])  # the solved body, markers dropped
        n = r.last_line + 1
    result = "".join(out)
    try:
        compile(result, path, "exec")
    except SyntaxError as e:
        raise MarkerError(f"{path}: blanking {aid} gives invalid Python at line {e.lineno}: {e.msg} "
                          f"(a BLANK line must be one complete statement)") from e
    return result


def tag_files(docs_root: Path) -> Dict[str, str]:
    """Map every tag defined in ``docs_root/equations/*.md`` to ``docs/equations/<file>.md``."""
    out: Dict[str, str] = {}
    definition = re.compile(r"^\*\*\[([a-z0-9-]+:[a-z0-9-]+)\]\*\*")
    for md in sorted((docs_root / "equations").glob("*.md")):
        for line in md.read_text().splitlines():
            m = definition.match(line.strip())
            if m:
                out.setdefault(m.group(1), f"docs/equations/{md.name}")
    return out
