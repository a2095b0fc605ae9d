"""Kaldi data directories: ``wav.scp`` + ``text`` (+ ``utt2spk``), so users can bring their own corpus.

A Kaldi data directory (https://kaldi-asr.org/doc/data_prep.html) holds one "key value" line per
utterance in each file, sorted by key::

    wav.scp   utt1 /data/audio/utt1.wav                 (a file: WAV, FLAC or NIST SPHERE)
              utt2 sph2pipe -f wav /data/timit/SX13.WAV |   (simple sph2pipe/cat pipes: the file is read directly)
    text      utt1 sil hh iy w aa z sil               (phones, words or characters, space-separated)
    utt2spk   utt1 spk1                               (optional; without it each utterance is its own speaker)

Command pipes other than ``sph2pipe [options] FILE |`` and ``cat FILE |`` are refused with an error
naming the line: run them once and point ``wav.scp`` at the resulting files. ``segments`` files (several
utterances cut from one recording) are not supported either.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DataDirUtterance:
    """One utterance of a Kaldi data directory."""

    id: str
    speaker: str
    wav_path: str
    text: str

    @property
    def tokens(self) -> list[str]:
        """The transcript split on whitespace (phones for a TIMIT-style phone recipe)."""
        return self.text.split()


def _read_table(path: Path, *, allow_empty_value: bool = False) -> dict[str, str]:
    table: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2 and not allow_empty_value:
            raise ValueError(f"{path}:{lineno}: expected 'key value', got {line!r}")
        key = parts[0]
        if key in table:
            raise ValueError(f"{path}:{lineno}: duplicate key {key!r}")
        table[key] = parts[1] if len(parts) == 2 else ""
    return table


def _resolve_wav(value: str, where: str, base: Path) -> str:
    """A wav.scp value to a file path: a plain path, or a simple sph2pipe/cat pipe around one."""
    value = value.strip()
    if value.endswith("|"):
        try:
            argv = shlex.split(value[:-1])
        except ValueError as e:
            raise ValueError(f"{where}: cannot parse the command {value!r}: {e}") from None
        prog = os.path.basename(argv[0]) if argv else ""
        files = [a for a in argv[1:] if not a.startswith("-")]
        if prog == "sph2pipe":
            # options that take a value: -f FMT, -c CHANNEL, -t RANGE, -s RANGE
            skip = set()
            for i, a in enumerate(argv[1:], 1):
                if a in ("-f", "-c", "-t", "-s") and i + 1 < len(argv):
                    skip.add(i + 1)
            files = [a for i, a in enumerate(argv[1:], 1) if not a.startswith("-") and i not in skip]
        if prog not in ("sph2pipe", "cat") or len(files) != 1:
            raise ValueError(f"{where}: command pipes are not supported ({value!r}); only "
                             "'sph2pipe [options] FILE |' and 'cat FILE |' are understood. Convert the audio "
                             "to files first and list their paths")
        value = files[0]
    elif " " in value and not Path(value).exists():
        raise ValueError(f"{where}: expected a file path or a simple pipe ending in '|', got {value!r}")
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise FileNotFoundError(f"{where}: audio file not found: {path}")
    return str(path)


def read_data_dir(path: str | os.PathLike) -> list[DataDirUtterance]:
    """Read a Kaldi data directory into a list of utterances sorted by id.

    Args:
        path: folder with ``wav.scp`` and ``text`` (and optionally ``utt2spk``). Relative audio paths
            in ``wav.scp`` are taken relative to the current directory (Kaldi's convention) and, if not
            found there, relative to the data directory.

    Raises:
        FileNotFoundError naming a missing file; ValueError naming the file and line of a malformed
        entry, or the utterances present in one file but not the other.
    """
    d = Path(path)
    if not d.is_dir():
        raise FileNotFoundError(f"path: no such directory: {d}")
    for name in ("wav.scp", "text"):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d / name}: missing (a Kaldi data directory needs wav.scp and text)")
    if (d / "segments").is_file():
        raise ValueError(f"{d / 'segments'}: segments files are not supported; cut the recordings into "
                         "one file per utterance")
    wav = _read_table(d / "wav.scp")
    text = _read_table(d / "text", allow_empty_value=True)
    spk = _read_table(d / "utt2spk") if (d / "utt2spk").is_file() else {}
    only_wav = sorted(set(wav) - set(text))
    only_text = sorted(set(text) - set(wav))
    if only_wav or only_text:
        raise ValueError(f"{d}: wav.scp and text disagree: {len(only_wav)} ids only in wav.scp "
                         f"(first: {only_wav[:3]}), {len(only_text)} only in text (first: {only_text[:3]})")
    if spk:
        missing = sorted(set(wav) - set(spk))
        if missing:
            raise ValueError(f"{d / 'utt2spk'}: no speaker for {len(missing)} utterances (first: {missing[:3]})")
    out = []
    for utt in sorted(wav):
        where = f"{d / 'wav.scp'} ({utt})"
        try:
            wav_path = _resolve_wav(wav[utt], where, Path.cwd())
        except FileNotFoundError:
            wav_path = _resolve_wav(wav[utt], where, d)
        out.append(DataDirUtterance(id=utt, speaker=spk.get(utt, utt), wav_path=wav_path, text=text[utt]))
    return out
