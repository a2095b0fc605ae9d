"""Docs and code point at each other through equation tags such as ``[ctc:alpha-rec]``.

A tag is *defined* in ``docs/equations/*.md`` by a line that starts with it in bold:
``**[topic:name]**`` followed by the equation. Code *cites* a tag in a comment or docstring.
Rules checked here (../shared/STYLE.md, "Docs that point at code"):
1. every tag is defined exactly once;
2. every tag cited in code (scratchasr/, kernels/) is defined;
3. every defined tag is cited by at least one line of code;
4. every public op (``*_forward``/``*_backward`` in ops/ and losses/, and the public loss functions)
   cites at least one tag in its own body.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAG = re.compile(r"\[([a-z0-9-]+:[a-z0-9-]+)\]")
DEFINITION = re.compile(r"^\*\*\[([a-z0-9-]+:[a-z0-9-]+)\]\*\*")


def _defined_tags() -> Counter:
    tags: Counter = Counter()
    for md in sorted((ROOT / "docs" / "equations").glob("*.md")):
        for line in md.read_text().splitlines():
            m = DEFINITION.match(line.strip())
            if m:
                tags[m.group(1)] += 1
    return tags


def _code_files():
    yield from sorted((ROOT / "scratchasr").rglob("*.py"))
    yield from sorted((ROOT / "kernels").rglob("*.py"))


def _cited_tags() -> dict:
    cited: dict = {}
    for f in _code_files():
        for lineno, line in enumerate(f.read_text().splitlines(), 1):
            for tag in TAG.findall(line):
                cited.setdefault(tag, f"{f.relative_to(ROOT)}:{lineno}")
    return cited


# Tags that appear in code as examples in docstrings, not as citations.
EXAMPLES = {"topic:name", "ctc:alpha-rec", "lstm:cell"}


def test_every_tag_defined_once():
    dup = {t: n for t, n in _defined_tags().items() if n > 1}
    assert not dup, f"tags defined more than once in docs/equations: {dup}"


def test_every_cited_tag_is_defined():
    defined = _defined_tags()
    missing = {t: where for t, where in _cited_tags().items() if t not in defined and t not in EXAMPLES}
    assert not missing, f"tags cited in code but defined nowhere in docs/equations: {missing}"


def test_every_defined_tag_is_cited_in_code():
    cited = _cited_tags()
    orphans = sorted(t for t in _defined_tags() if t not in cited)
    assert not orphans, f"tags defined in docs/equations but cited by no code line: {orphans}"


def _public_ops():
    for sub in ("ops", "losses"):
        for f in sorted((ROOT / "scratchasr" / sub).rglob("*.py")):
            if f.name.startswith("_") and f.name != "__init__.py":
                continue
            src = f.read_text()
            for node in ast.parse(src).body:
                if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                    if sub == "losses" or node.name.endswith(("_forward", "_backward")):
                        yield f, node, ast.get_source_segment(src, node)


def test_every_public_op_cites_a_tag():
    bare = [f"{f.relative_to(ROOT)}::{node.name}" for f, node, body in _public_ops() if not TAG.search(body)]
    assert not bare, f"public ops citing no equation tag: {bare}"


def test_gradcheck_tags_present():
    # The checker itself is documented with tags (docs/equations/gradcheck.md).
    assert "gradcheck:central" in _defined_tags()
