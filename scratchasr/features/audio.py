"""Reading and writing audio: WAV, FLAC and NIST SPHERE (TIMIT's ``.WAV`` files).

``load_audio`` returns float32 samples in [-1, 1] (int16 files are divided by 32768) and the sample
rate. WAV and FLAC go through soundfile (libsndfile); NIST SPHERE is parsed here, by hand, because
the format is tiny and worth seeing once:

    NIST_1A\\n
       1024\\n                     <- header size in bytes (a multiple of 1024)
    sample_rate -i 16000\\n        <- one "name -type value" field per line:
    sample_count -i 46797\\n          -i integer, -r real, -sN string of N characters
    sample_n_bytes -i 2\\n
    sample_byte_format -s2 01\\n   <- "01" little-endian, "10" big-endian, "1" one byte
    ...
    end_head\\n
    (spaces up to the header size, then the raw samples, interleaved if channel_count > 1)

TIMIT's files are 16-bit little-endian PCM, one channel, 16 kHz. Files compressed with
``shorten`` (``sample_coding -s26 pcm,embedded-shorten-v2.00``, as on some LDC discs) are refused
with a clear error: decompress them first with ``sph2pipe``.

``write_sphere`` writes the same layout (used by the synthetic TIMIT-layout corpus).

Reference: NIST SPHERE 2.6 header documentation (``sphere/doc/header.doc``).
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import NamedTuple, Optional

import numpy as np

from .._validate import positive_int

SPHERE_MAGIC = b"NIST_1A"
FLOAT_PEAK_LIMIT = 2.0   # a float file peaking above this is not on the [-1, 1] scale


class SphereHeader(NamedTuple):
    """The fields of a NIST SPHERE header that matter for decoding the samples."""

    header_size: int       # bytes before the first sample (a multiple of 1024)
    sample_rate: int       # Hz
    channel_count: int
    sample_count: int      # samples per channel (may be -1 when absent: derived from file size)
    sample_n_bytes: int    # 1 or 2 (or 4)
    byte_order: str        # "<" little-endian, ">" big-endian, "|" single byte
    sample_coding: str     # "pcm" (default), "ulaw"
    fields: dict           # every field of the header, name -> int / float / str


def _parse_sphere_value(kind: str, raw: str, path: str, name: str):
    if kind == "-i":
        return int(raw)
    if kind == "-r":
        return float(raw)
    if kind.startswith("-s"):
        return raw
    raise ValueError(f"{path}: SPHERE header field {name!r} has unknown type {kind!r}")


def read_sphere_header(path: str | os.PathLike) -> SphereHeader:
    """Parse the ASCII header of a NIST SPHERE file; raises ValueError naming the file if malformed."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(1024)
        if not head.startswith(SPHERE_MAGIC):
            raise ValueError(f"{path}: not a NIST SPHERE file (no 'NIST_1A' magic)")
        lines = head.split(b"\n")
        try:
            header_size = int(lines[1].strip())
        except (IndexError, ValueError):
            raise ValueError(f"{path}: SPHERE header size line is malformed") from None
        if header_size < 1024 or header_size % 1024:
            raise ValueError(f"{path}: SPHERE header size must be a positive multiple of 1024, "
                         f"got {header_size}")
        if header_size > 1024:
            head += f.read(header_size - 1024)
    if len(head) < header_size:
        raise ValueError(f"{path}: file is shorter than its SPHERE header ({header_size} bytes)")
    text = head[:header_size].decode("ascii", errors="replace")
    fields: dict = {}
    ended = False
    for line in text.split("\n")[2:]:
        line = line.strip()
        if not line:
            continue
        if line == "end_head":
            ended = True
            break
        parts = line.split(None, 2)
        if len(parts) < 2:
            raise ValueError(f"{path}: malformed SPHERE header line {line!r}")
        name, kind = parts[0], parts[1]
        raw = parts[2] if len(parts) == 3 else ""
        try:
            fields[name] = _parse_sphere_value(kind, raw, path, name)
        except ValueError as e:
            raise ValueError(f"{path}: bad value in SPHERE header line {line!r}: {e}") from None
    if not ended:
        raise ValueError(f"{path}: SPHERE header has no 'end_head' line")
    if "sample_rate" not in fields:
        raise ValueError(f"{path}: SPHERE header has no sample_rate field")
    for name in ("sample_rate", "channel_count", "sample_count", "sample_n_bytes"):
        if name in fields and not isinstance(fields[name], int):
            raise ValueError(f"{path}: SPHERE field {name} must be an integer (-i), got {fields[name]!r}")
    coding = str(fields.get("sample_coding", "pcm")).lower()
    n_bytes = fields.get("sample_n_bytes", 2 if coding == "pcm" else 1)
    fmt = str(fields.get("sample_byte_format", "01" if n_bytes == 2 else "0123" if n_bytes == 4 else "1"))
    if "shorten" in coding or "wavpack" in coding or "shortpack" in coding:
        raise ValueError(f"{path}: SPHERE sample_coding {coding!r} is compressed; decompress it first "
                         "(e.g. `sph2pipe -f wav`)")
    if coding not in ("pcm", "ulaw", "mu-law"):
        raise ValueError(f"{path}: unsupported SPHERE sample_coding {coding!r} (expected pcm or ulaw)")
    if coding != "pcm" and n_bytes != 1:
        raise ValueError(f"{path}: SPHERE sample_coding {coding!r} needs sample_n_bytes 1, got {n_bytes}")
    if n_bytes not in (1, 2, 4):
        raise ValueError(f"{path}: unsupported SPHERE sample_n_bytes {n_bytes} (expected 1, 2 or 4)")
    # sample_byte_format names the byte significance order: "01" = least significant byte first
    orders = {2: {"01": "<", "10": ">"}, 4: {"0123": "<", "3210": ">"}}.get(n_bytes, {fmt: "|"})
    if fmt not in orders:                             # one-byte samples have no byte order to get wrong
        raise ValueError(f"{path}: SPHERE sample_byte_format {fmt!r} does not fit sample_n_bytes {n_bytes} "
                         f"(expected one of {sorted(orders)})")
    order = orders[fmt]
    sample_rate = fields["sample_rate"]
    if sample_rate <= 0:
        raise ValueError(f"{path}: SPHERE sample_rate must be a positive integer, got {sample_rate}")
    channel_count = fields.get("channel_count", 1)
    if channel_count < 1:
        raise ValueError(f"{path}: SPHERE channel_count must be >= 1, got {channel_count}")
    sample_count = fields.get("sample_count", -1)
    if "sample_count" in fields and sample_count < 0:
        raise ValueError(f"{path}: SPHERE sample_count must be >= 0, got {sample_count}")
    return SphereHeader(header_size=header_size, sample_rate=sample_rate, channel_count=channel_count,
                        sample_count=sample_count, sample_n_bytes=n_bytes,
                        byte_order=order, sample_coding="ulaw" if coding != "pcm" else "pcm", fields=fields)


def _ulaw_to_linear(u: np.ndarray) -> np.ndarray:
    """G.711 mu-law bytes to int16-scale linear samples (float64)."""
    u = ~u.astype(np.uint8)
    sign = (u & 0x80) != 0
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    mag = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    lin = (mag - 0x84).astype(np.float64)
    return np.where(sign, -lin, lin)


def read_sphere(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a NIST SPHERE file: ``(samples (N, C) float32 in [-1, 1], sample_rate)``.

    The data must hold exactly ``sample_count * channel_count`` samples when ``sample_count`` is in
    the header (fewer: truncated file; more: a wrong header), a whole number of samples and frames
    otherwise. When the header records ``sample_min``/``sample_max`` (TIMIT does), the decoded PCM
    must reach exactly those values: a file whose values only match after swapping bytes has a wrong
    ``sample_byte_format`` and is refused; any other disagreement is a warning.
    """
    path = os.fspath(path)
    h = read_sphere_header(path)
    raw = np.fromfile(path, dtype=np.uint8, offset=h.header_size)
    C = h.channel_count
    nb = h.sample_n_bytes if h.sample_coding == "pcm" else 1
    if raw.size % nb:
        raise ValueError(f"{path}: {raw.size} data bytes are not a whole number of {nb}-byte samples "
                         "(truncated?)")
    n_values = raw.size // nb
    if h.sample_count >= 0:
        want = h.sample_count * C
        if n_values < want:
            raise ValueError(f"{path}: SPHERE header promises {h.sample_count} samples x {C} channels, "
                             f"file holds only {n_values} values (truncated?)")
        if n_values > want:
            raise ValueError(f"{path}: SPHERE header says sample_count {h.sample_count} x {C} channels = "
                             f"{want} values, but the file holds {n_values}: the header is wrong or data "
                             "was appended; fix the header rather than have the extra samples dropped")
    elif n_values % C:
        raise ValueError(f"{path}: {n_values} samples are not a whole number of {C}-channel frames")
    if h.sample_coding == "ulaw":
        x = _ulaw_to_linear(raw) / 32768.0
    else:
        dtype = np.dtype(f"{h.byte_order}i{nb}") if nb > 1 else np.dtype(np.int8)
        ints = raw.view(dtype)
        _check_sample_range(path, h, ints)
        x = ints.astype(np.float64) / float(2 ** (8 * nb - 1))
    return x.reshape(-1, C).astype(np.float32), h.sample_rate


def _check_sample_range(path: str, h: SphereHeader, ints: np.ndarray) -> None:
    """Compare the decoded PCM's extremes with the header's ``sample_min``/``sample_max`` if present."""
    lo, hi = h.fields.get("sample_min"), h.fields.get("sample_max")
    if not (isinstance(lo, int) and isinstance(hi, int)) or ints.size == 0:
        return
    got = (int(ints.min()), int(ints.max()))
    if got == (lo, hi):
        return
    if ints.dtype.itemsize > 1:
        swapped = ints.byteswap()
        if (int(swapped.min()), int(swapped.max())) == (lo, hi):
            fmt = h.fields.get("sample_byte_format", "(absent)")
            raise ValueError(f"{path}: SPHERE sample_byte_format {fmt} gives samples in [{got[0]}, {got[1]}] "
                             f"but the header records sample_min {lo}, sample_max {hi}, which is what the "
                             "other byte order gives: the header's byte order is wrong")
    import warnings
    warnings.warn(f"{path}: SPHERE samples lie in [{got[0]}, {got[1]}] but the header records sample_min "
                  f"{lo}, sample_max {hi}", stacklevel=3)


def write_sphere(path: str | os.PathLike, samples_int16: np.ndarray, sample_rate: int,
                 extra_header: Optional[dict] = None) -> None:
    """Write a TIMIT-style NIST SPHERE file: 1024-byte header, 16-bit little-endian PCM.

    Args:
        path: output file (TIMIT names it ``*.WAV`` although it is not RIFF).
        samples_int16: ``(N,)`` mono or ``(N, C)`` interleaved samples, dtype int16 (other integer
            dtypes are accepted if every value fits in int16; floats are refused, scale them yourself).
        sample_rate: Hz, a positive integer.
        extra_header: optional fields added to the header, e.g. ``{"database_id": "TIMIT",
            "utterance_id": "dab0_sa1"}``; ints are written as ``-i``, floats as ``-r``, strings as ``-sN``.

    The header holds, in TIMIT's order, ``database_id``/``database_version``/``utterance_id`` when
    given in ``extra_header``, then ``channel_count, sample_count, sample_rate, sample_min, sample_max,
    sample_n_bytes, sample_byte_format (01), sample_sig_bits``, then the remaining extra fields.
    """
    x = np.asarray(samples_int16)
    if not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"samples_int16: expected an integer array (int16), got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise ValueError(f"samples_int16: expected shape (N,) or (N, C), got {x.shape}")
    if x.size and (x.min() < -32768 or x.max() > 32767):
        raise ValueError(f"samples_int16: values must fit in int16, got range [{x.min()}, {x.max()}]")
    sample_rate = positive_int("sample_rate", sample_rate)
    x2 = x.reshape(x.shape[0], -1).astype("<i2")
    N, C = x2.shape
    extra = dict(extra_header or {})
    for key in extra:
        if not isinstance(key, str) or not key or any(ch.isspace() for ch in key):
            raise ValueError("extra_header: field names must be non-empty strings without spaces, "
                             f"got {key!r}")

    def field(name, value):
        if isinstance(value, bool):
            raise TypeError(f"extra_header[{name!r}]: bool is not a SPHERE type; use int or str")
        if isinstance(value, (int, np.integer)):
            return f"{name} -i {int(value)}"
        if isinstance(value, (float, np.floating)):
            return f"{name} -r {float(value)!r}"
        s = str(value)
        if "\n" in s:
            raise ValueError(f"extra_header[{name!r}]: string values may not contain newlines")
        return f"{name} -s{len(s)} {s}"

    first = ("database_id", "database_version", "utterance_id")            # TIMIT puts these first
    lines = [field(k, extra.pop(k)) for k in first if k in extra]
    lines += [field("channel_count", C), field("sample_count", N), field("sample_rate", sample_rate),
              field("sample_min", int(x2.min()) if x2.size else 0),
              field("sample_max", int(x2.max()) if x2.size else 0),
              field("sample_n_bytes", 2), "sample_byte_format -s2 01", field("sample_sig_bits", 16)]
    lines += [field(k, v) for k, v in extra.items()]
    body = "\n".join(lines) + "\nend_head\n"
    size = 1024
    while len("NIST_1A\n   1024\n") + len(body) > size:
        size += 1024
    head = f"NIST_1A\n{size:7d}\n" + body
    head = head.encode("ascii")
    head += b" " * (size - len(head))
    with open(path, "wb") as f:
        f.write(head)
        f.write(x2.tobytes())


def _is_sphere(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(7) == SPHERE_MAGIC


def load_audio(path: str | os.PathLike, *, sample_rate: Optional[int] = None,
               mono: bool = False) -> tuple[np.ndarray, int]:
    """Read an audio file: ``(waveform float32, sample_rate)``.

    Args:
        path: a WAV or FLAC file (read with soundfile) or a NIST SPHERE file (detected by its
            ``NIST_1A`` magic, whatever the extension; parsed by :func:`read_sphere`).
        sample_rate: resample to this rate (Hz) with scipy's polyphase filter
            (``scipy.signal.resample_poly``); ``None`` keeps the file's rate.
        mono: average the channels into one. Without it a multi-channel file is returned as
            ``(C, N)`` (librosa's layout) and the feature functions will refuse it.

    Returns:
        ``(N,)`` for a one-channel file (or with ``mono=True``), else ``(C, N)``; float32. Integer
        files are scaled by ``1 / 2**(bits-1)`` so int16 lands in [-1, 1); float files are returned
        as stored, but must be finite and on that scale: a peak above ``FLOAT_PEAK_LIMIT`` (int16-scale
        values saved as float) is refused, one in (1, 2] warned about. The second element is the (new)
        sample rate; other rates are converted by :func:`resample`.

    Raises:
        FileNotFoundError if the file does not exist, ValueError (naming the file) if it cannot be
        decoded or its header disagrees with its data (see :func:`read_sphere`).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_audio: no such file: {path}")
    if sample_rate is not None:
        sample_rate = positive_int("sample_rate", sample_rate)
    if _is_sphere(path):
        x, sr = read_sphere(path)                      # (N, C)
    else:
        import soundfile as sf
        try:
            info = sf.info(path)
            x, sr = sf.read(path, dtype="float32", always_2d=True)   # (N, C)
        except Exception as e:  # libsndfile's errors are RuntimeError / LibsndfileError
            raise ValueError(f"load_audio: cannot decode {path}: {e}") from None
        if info.subtype in ("FLOAT", "DOUBLE"):
            _check_float_samples(path, x)
    if x.shape[0] == 0:
        raise ValueError(f"load_audio: {path} contains no samples")
    y = x.T                                             # (C, N)
    if mono:
        y = y.mean(axis=0, keepdims=True, dtype=np.float64)
    if sample_rate is not None and sample_rate != sr:
        y = resample(y, int(sr), sample_rate)
        sr = sample_rate
    y = np.ascontiguousarray(y, dtype=np.float32)
    if y.shape[0] == 1:
        y = y[0]
    return y, int(sr)


def _check_float_samples(path: str, x: np.ndarray) -> None:
    """A float file must hold finite samples on the [-1, 1] scale (a little overshoot is tolerated)."""
    if not np.all(np.isfinite(x)):
        raise ValueError(f"load_audio: {path} holds NaN or infinite samples")
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > FLOAT_PEAK_LIMIT:
        raise ValueError(f"load_audio: {path} is a float file with samples up to {peak:g}, far outside "
                         "[-1, 1]: it looks like int16-scale values stored as float; divide them by 32768 "
                         "(or write the file as PCM_16)")
    if peak > 1.0:
        import warnings
        warnings.warn(f"load_audio: {path} is a float file with samples up to {peak:g} (outside [-1, 1]; "
                      "clipped when written to integer formats)", stacklevel=3)


def _sample_rate(name: str, value) -> int:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        value = int(value)
    return positive_int(name, value)


def resample(y: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` from ``orig_sr`` to ``target_sr`` Hz with scipy's polyphase filter.

    ``scipy.signal.resample_poly(y, up, down)`` with ``up / down = target_sr / orig_sr`` in lowest
    terms (16000 -> 8000 is 1/2, 44100 -> 16000 is 160/441): upsample by ``up``, low-pass with a
    Kaiser-windowed FIR, keep every ``down``-th sample. Output length ``ceil(N * up / down)``.

    Args:
        y: ``(N,)`` or ``(C, N)`` float samples (time on the last axis, as :func:`load_audio` returns).
        orig_sr, target_sr: positive integer rates in Hz (integral floats such as 16000.0 accepted).

    Returns:
        The resampled signal in ``y``'s float dtype (computed in float64); a copy if the rates agree.
    """
    y = np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
        raise TypeError(f"y: expected float samples (float32 or float64), got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise ValueError(f"y: expected shape (N,) or (C, N), got {y.shape}")
    orig_sr = _sample_rate("orig_sr", orig_sr)
    target_sr = _sample_rate("target_sr", target_sr)
    if orig_sr == target_sr:
        return y.copy()
    if y.shape[-1] == 0:
        raise ValueError("y: no samples to resample")
    from scipy.signal import resample_poly
    ratio = Fraction(target_sr, orig_sr)                # reduced: 8000/16000 = 1/2
    out = resample_poly(y.astype(np.float64), ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(y.dtype)
