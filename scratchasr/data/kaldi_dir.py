"""Kaldi data directories: ``wav.scp`` + ``text`` (+ ``utt2spk``), so users can bring their own corpus.

A Kaldi data directory (https://kaldi-asr.org/doc/data_prep.html) holds one "key value" line per
utterance in each file, sorted by key::

    wav.scp   utt1 /data/audio/utt1.wav                 (a file: WAV, FLAC or NIST SPHERE)
              utt2 sph2pipe -f wav /data/timit/SX13.WAV |   (simple sph2pipe/cat pipes: file read directly)
    text      utt1 sil hh iy w aa z sil               (phones, words or characters, space-separated)
    utt2spk   utt1 spk1                               (optional; without it each utterance is its own speaker)

Command pipes other than ``sph2pipe [options] FILE |`` and ``cat FILE |`` are refused with an error
naming the line: run them once and point ``wav.scp`` at the resulting files. Of sph2pipe's options,
``-f`` and ``-p`` are accepted (reading the file directly gives the same samples) and ``-c 1`` on a
one-channel file; channel selection on multi-channel files, ``-t``/``-s`` ranges and ``-u`` are refused
(the file is read whole, so honouring them silently would be impossible). ``segments`` files (several
utterances cut from one recording) are not supported either. Every file must be UTF-8: undecodable
bytes are an error naming the file and line, never replaced.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from ._text import read_lines


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


def _read_table(path: Path, *, allow_empty_value: bool = False) -> dict[str, tuple[str, int]]:
    """``{key: (value, line number)}``; the file must be UTF-8 (never silently replaced)."""
    table: dict[str, tuple[str, int]] = {}
    for lineno, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2 and not allow_empty_value:
            raise ValueError(f"{path}:{lineno}: expected 'key value', got {line!r}")
        key = parts[0]
        if key in table:
            raise ValueError(f"{path}:{lineno}: duplicate key {key!r} (first on line {table[key][1]})")
        table[key] = (parts[1] if len(parts) == 2 else "", lineno)
    return table


# sph2pipe [-h hdr] [-t|-s b:e] [-c 1|2] [-p|-u] [-f typ] infile: which options reading the file directly
# reproduces. -f (output container) and -p (16-bit PCM: our reader decodes mu-law to linear too) change
# nothing; -c is a no-op on a one-channel file; the others select or convert samples and are refused.
_SPH2PIPE_VALUE_OPTIONS = ("-f", "-c", "-t", "-s", "-h")


def _channel_count(path: Path) -> int:
    from ..features.audio import _is_sphere, read_sphere_header
    if _is_sphere(str(path)):
        return read_sphere_header(path).channel_count
    import soundfile as sf
    try:
        return int(sf.info(str(path)).channels)
    except Exception as e:  # libsndfile's errors are RuntimeError / LibsndfileError
        raise ValueError(f"{path}: cannot read the audio header: {e}") from None


def _sph2pipe_file(argv: list[str], where: str) -> tuple[str, list[tuple[str, str]]]:
    """The input file of an sph2pipe command and its options; refuses options that would be dropped."""
    files, opts = [], []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in _SPH2PIPE_VALUE_OPTIONS:
            if i + 1 >= len(argv):
                raise ValueError(f"{where}: sph2pipe option {a} needs a value")
            opts.append((a, argv[i + 1]))
            i += 2
            continue
        if a.startswith("-"):
            opts.append((a, ""))
        else:
            files.append(a)
        i += 1
    if len(files) != 1:
        raise ValueError(f"{where}: expected 'sph2pipe [options] FILE |' with one input file, got {files}")
    for opt, value in opts:
        if opt in ("-t", "-s"):
            raise ValueError(f"{where}: sph2pipe {opt} {value} (a time or sample range) is not supported: "
                             "cut that range into its own file and list the file")
        if opt in ("-u", "-h"):
            raise ValueError(f"{where}: sph2pipe option {opt} is not supported (it changes the samples); "
                             "convert the audio to a file first")
        if opt not in ("-f", "-p", "-c"):
            raise ValueError(f"{where}: unknown sph2pipe option {opt}")
    return files[0], opts


def _resolve_wav(value: str, where: str, base: Path) -> str:
    """A wav.scp value to a file path: a plain path, or a simple sph2pipe/cat pipe around one."""
    value = value.strip()
    channel = None
    if value.endswith("|"):
        try:
            argv = shlex.split(value[:-1])
        except ValueError as e:
            raise ValueError(f"{where}: cannot parse the command {value!r}: {e}") from None
        prog = os.path.basename(argv[0]) if argv else ""
        if prog == "sph2pipe":
            value, opts = _sph2pipe_file(argv, where)
            channel = dict(opts).get("-c")
        elif prog == "cat" and len(argv) == 2 and not argv[1].startswith("-"):
            value = argv[1]
        else:
            raise ValueError(f"{where}: command pipes are not supported ({value!r}); only "
                             "'sph2pipe [options] FILE |' and 'cat FILE |' are understood. Convert the audio "
                             "to files first and list their paths")
    elif " " in value and not Path(value).exists():
        raise ValueError(f"{where}: expected a file path or a simple pipe ending in '|', got {value!r}")
    path = Path(value)
    if not path.is_absolute():
        path = base / path
    if not path.is_file():
        raise FileNotFoundError(f"{where}: audio file not found: {path}")
    if channel is not None:
        n = _channel_count(path)
        if channel not in ("1", "2"):
            raise ValueError(f"{where}: sph2pipe -c takes 1 or 2, got {channel!r}")
        if n != 1 or channel != "1":
            raise ValueError(f"{where}: sph2pipe -c {channel} selects one channel of {path} "
                             f"({n} channel(s)); "
                             "channel selection is not supported: extract the channel into its own file "
                             "(`sph2pipe -c N -f wav IN OUT`)")
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
            raise ValueError(f"{d / 'utt2spk'}: no speaker for {len(missing)} utterances "
                             f"(first: {missing[:3]})")
    out = []
    for utt in sorted(wav):
        value, lineno = wav[utt]
        where = f"{d / 'wav.scp'}:{lineno} ({utt})"
        try:
            wav_path = _resolve_wav(value, where, Path.cwd())
        except FileNotFoundError:
            wav_path = _resolve_wav(value, where, d)
        out.append(DataDirUtterance(id=utt, speaker=spk[utt][0] if utt in spk else utt, wav_path=wav_path,
                                    text=text[utt][0]))
    return out
