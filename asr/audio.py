"""Audio loading: any file -> mono float32 wave at one sample rate.

wav/flac/ogg/mp3/NIST sphere are read with soundfile (libsndfile); anything it cannot read goes
to librosa (audioread) as a fallback. Integer samples (16/24/32 bit) are scaled to [-1, 1]; float
samples are kept as stored. Channels are averaged and the rate is converted with soxr.
Every failure is an `AudioError` whose message names the file and the reason.

Headerless PCM (CMU's `an4_raw.bigendian`, telephone `.raw` dumps) has no header to say how to
read it, so its format travels with the path, in the one notation every stage reads (`wav.scp`,
`asr transcribe`, `asr decode`):

    raw:rate=16000,encoding=s16be,channels=1:/abs/path/an251-fash-b.raw

`raw:` then comma-separated `key=value` options (no colon among them), then `:` and the path.
Keys: `rate` (Hz, required), `encoding` (`s16le`, `s16be`, `s24le`, `s24be`, `s32le`, `s32be`,
`u8`, `f32le`, `f32be`, `f64le`, `f64be`; required), `channels` (default 1).

Speed perturbation (Ko et al. 2015, Kaldi's `perturb_data_dir_speed.sh`) is the same kind of entry:

    speed:0.9:/abs/path/x.flac        speed:1.1:raw:rate=16000,...:/abs/path/x.raw

plays the audio 0.9 (1.1) times as fast: tempo and pitch change together, as with `sox speed`.
Nothing is run: these stand in for Kaldi's piped `sph2pipe ... |` and `sox ... speed 0.9 |`
commands, which we refuse.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000  # Hz, the rate every wave is resampled to unless told otherwise
RAW_PREFIX = "raw:"  # an audio spec that starts with this is headerless PCM (see above)
SPEED_PREFIX = "speed:"  # speed:FACTOR:SPEC plays SPEC FACTOR times as fast
SPEED_RANGE = (0.5, 2.0)  # factors accepted in a speed: spec
# encoding name -> (soundfile subtype, soundfile endian)
RAW_ENCODINGS = {
    "u8": ("PCM_U8", "FILE"),
    "s16le": ("PCM_16", "LITTLE"), "s16be": ("PCM_16", "BIG"),
    "s24le": ("PCM_24", "LITTLE"), "s24be": ("PCM_24", "BIG"),
    "s32le": ("PCM_32", "LITTLE"), "s32be": ("PCM_32", "BIG"),
    "f32le": ("FLOAT", "LITTLE"), "f32be": ("FLOAT", "BIG"),
    "f64le": ("DOUBLE", "LITTLE"), "f64be": ("DOUBLE", "BIG"),
}


class AudioError(ValueError):
    """A file that cannot be used as audio; the message is `<path>: <reason>`."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says."""

    sample_rate: int  # Hz
    channels: int
    frames: int  # samples per channel

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


class AudioSpecError(ValueError):
    """A `raw:...:path` audio spec that cannot be parsed; the message says why."""


@dataclass(frozen=True)
class RawFormat:
    """How to read a headerless PCM file."""

    rate: int  # Hz
    encoding: str  # a key of RAW_ENCODINGS, e.g. "s16be"
    channels: int = 1

    def __post_init__(self):
        if self.encoding not in RAW_ENCODINGS:
            raise AudioSpecError(f"unknown raw encoding {self.encoding!r} "
                                 f"(one of {', '.join(RAW_ENCODINGS)})")
        if self.rate <= 0 or self.channels <= 0:
            raise AudioSpecError(f"raw rate and channels must be positive ({self})")

    @property
    def bytes_per_frame(self) -> int:
        width = {"PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
        return width[RAW_ENCODINGS[self.encoding][0]] * self.channels

    def spec(self, path: str | Path) -> str:
        """The wav.scp notation for `path` read with this format."""
        options = f"rate={self.rate},encoding={self.encoding},channels={self.channels}"
        return f"{RAW_PREFIX}{options}:{path}"


def split_speed(spec: str | Path) -> tuple[float, str]:
    """`speed:0.9:SPEC` -> (0.9, SPEC); anything else -> (1.0, spec)."""
    text = str(spec)
    if not text.startswith(SPEED_PREFIX):
        return 1.0, text
    factor, sep, inner = text[len(SPEED_PREFIX):].partition(":")
    try:
        value = float(factor)
    except ValueError:
        value = math.nan
    if not sep or not inner or not SPEED_RANGE[0] <= value <= SPEED_RANGE[1]:
        raise AudioSpecError(f"{text!r}: expected speed:FACTOR:SPEC with FACTOR in "
                             f"[{SPEED_RANGE[0]}, {SPEED_RANGE[1]}]")
    return value, inner


def speed_spec(spec: str | Path, factor: float) -> str:
    """The entry that plays `spec` `factor` times as fast (the spec itself for 1.0)."""
    return str(spec) if factor == 1.0 else f"{SPEED_PREFIX}{factor:g}:{spec}"


def _split_spec(spec: str | Path) -> tuple[Path, RawFormat | None, float]:
    """A wav.scp audio entry -> (path, RawFormat for headerless PCM or None, speed factor).

    Raises AudioSpecError for a `raw:` or `speed:` entry with unknown, missing or malformed
    options.
    """
    speed, text = split_speed(spec)
    if not text.startswith(RAW_PREFIX):
        return Path(text), None, speed
    options, sep, path = text[len(RAW_PREFIX):].partition(":")
    if not sep or not path:
        raise AudioSpecError(f"{text!r}: expected raw:KEY=VALUE,...:PATH")
    values: dict[str, str] = {}
    for item in options.split(","):
        key, eq, value = item.partition("=")
        if not eq or key not in ("rate", "encoding", "channels") or key in values:
            raise AudioSpecError(f"{text!r}: bad option {item!r} (keys: rate, encoding, channels)")
        values[key] = value
    if "rate" not in values or "encoding" not in values:
        raise AudioSpecError(f"{text!r}: raw audio needs rate= and encoding=")
    try:
        fmt = RawFormat(int(values["rate"]), values["encoding"], int(values.get("channels", 1)))
    except ValueError as e:
        raise AudioSpecError(f"{text!r}: {e}") from None
    return Path(path), fmt, speed


def parse_audio_spec(spec: str | Path) -> tuple[Path, RawFormat | None]:
    """A wav.scp audio entry -> (path, RawFormat for headerless PCM, else None); a `speed:`
    prefix is looked through (see `split_speed`).

    Raises AudioSpecError for a `raw:` or `speed:` entry with unknown, missing or malformed
    options.
    """
    path, raw, _ = _split_spec(spec)
    return path, raw


def audio_path(spec: str | Path) -> Path:
    """The file behind an audio spec (the spec itself for an ordinary path)."""
    return parse_audio_spec(spec)[0]


def _parse(spec: str | Path) -> tuple[Path, RawFormat | None, float]:
    """_split_spec, with its error as an AudioError naming the entry."""
    try:
        return _split_spec(spec)
    except AudioSpecError as e:
        raise AudioError(spec, str(e).split(": ", 1)[-1]) from None


def _raw_frames(path: Path, fmt: RawFormat) -> int:
    size = path.stat().st_size
    if size % fmt.bytes_per_frame:
        raise AudioError(path, f"{size} bytes is not a whole number of {fmt.encoding} "
                               f"frames of {fmt.channels} channel(s): not this raw format?")
    return size // fmt.bytes_per_frame


def _check_file(path: Path) -> None:
    """Raise AudioError for a path that is not a non-empty regular file."""
    if not path.exists():
        raise AudioError(path, "no such file")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty file (0 bytes)")


def _sf_reason(e: Exception) -> str:
    """A one-line reason from a soundfile/libsndfile error."""
    text = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    # soundfile repeats the path: "Error opening '<path>': Format not recognised."
    return text.split("': ", 1)[-1] if text.startswith("Error opening") else text


def audio_info(path: str | Path) -> AudioInfo:
    """Header of an audio file or `raw:` spec (rate, channels, length), without decoding the
    samples.

    Raises AudioError for a missing, empty or unreadable file, or one that holds no samples.
    """
    path, raw, speed = _parse(path)
    _check_file(path)
    if raw is not None:
        result = AudioInfo(raw.rate, raw.channels, _raw_frames(path, raw))
    else:
        try:
            info = sf.info(str(path))
            result = AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))
        except Exception as e:  # libsndfile cannot parse it: ask the slower fallback reader
            result = _fallback_info(path, _sf_reason(e))
    if result.sample_rate <= 0 or result.channels <= 0:
        raise AudioError(path, f"bad header ({result.sample_rate} Hz, {result.channels} channels)")
    if result.frames <= 0:
        raise AudioError(path, "no samples")
    # played `speed` times as fast: 1/speed as many samples at the same rate
    return AudioInfo(result.sample_rate, result.channels, round(result.frames / speed))


def _fallback_info(path: Path, sf_reason: str) -> AudioInfo:
    """Header via librosa/audioread, for what libsndfile cannot open."""
    wave, rate = _fallback_read(path, sf_reason)
    return AudioInfo(rate, wave.shape[1], wave.shape[0])


def _fallback_read(path: Path, sf_reason: str) -> tuple[np.ndarray, int]:
    """Read with librosa (audioread backends) -> (samples [N, C] float32, rate)."""
    import librosa  # only here: most files never need it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wave, rate = librosa.load(str(path), sr=None, mono=False, dtype=np.float32)
    except Exception as e:
        raise AudioError(path, f"unreadable audio ({sf_reason})") from e
    wave = np.atleast_2d(wave).T  # librosa gives [C, N] or [N] -> [N, C]
    return wave, int(rate)


def _read(path: Path, raw: RawFormat | None = None) -> tuple[np.ndarray, int]:
    """-> (samples [N, C] float32, integer formats scaled to [-1, 1], rate)."""
    if raw is not None:
        _raw_frames(path, raw)
        subtype, endian = RAW_ENCODINGS[raw.encoding]
        try:
            wave, rate = sf.read(str(path), dtype="float32", always_2d=True, format="RAW",
                                 samplerate=raw.rate, channels=raw.channels, subtype=subtype,
                                 endian=endian)
        except Exception as e:
            raise AudioError(path, f"unreadable raw audio ({_sf_reason(e)})") from e
        return wave, int(rate)
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        return _fallback_read(path, _sf_reason(e))
    return wave, int(rate)


def resample(wave: np.ndarray, orig_rate: float, new_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality). wave: [N] float32 -> [N * new/orig]."""
    if orig_rate == new_rate:
        return wave
    import soxr  # comes with librosa

    return soxr.resample(wave, orig_rate, new_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file (or a `raw:` spec of headerless PCM) as a mono float32 wave at
    `sample_rate`.

    Returns: wave, shape = (N,), float32, integer formats scaled to [-1, 1].
    Raises AudioError (naming the file) for a missing/empty/unreadable file, one with no samples,
    or one holding NaN/inf samples.
    """
    path, raw, speed = _parse(path)
    _check_file(path)
    wave, rate = _read(path, raw)  # [N, C]
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise AudioError(path, "no samples")
    if rate <= 0:
        raise AudioError(path, f"bad sample rate {rate}")
    if not np.isfinite(wave).all():
        raise AudioError(path, "NaN or infinite samples")
    mono = wave.mean(axis=1, dtype=np.float32) if wave.shape[1] > 1 else wave[:, 0]  # [N, C] -> [N]
    # played `speed` times as fast: the samples taken as if recorded at rate * speed
    return np.ascontiguousarray(resample(mono, rate * speed, sample_rate), dtype=np.float32)
