"""Reading small text files line by line, refusing bytes that are not UTF-8 (with the line named)."""

from __future__ import annotations

import os
from pathlib import Path


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file (a UTF-8 BOM is skipped); ValueError naming the file, line and byte.

    Undecodable bytes are never replaced: a transcript silently turned into U+FFFD characters would
    train and score on labels nobody wrote.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        start = raw.startswith(b"\xef\xbb\xbf") * 3
        lineno = raw.count(b"\n", 0, e.start + start) + 1
        line_start = raw.rfind(b"\n", 0, e.start + start) + 1
        raise ValueError(f"{path}:{lineno}: not UTF-8 text (byte 0x{raw[e.start + start]:02x} at column "
                         f"{e.start + start - line_start + 1}); convert the file, e.g. "
                         "`iconv -f latin1 -t utf-8`") from None
    return text.splitlines()
