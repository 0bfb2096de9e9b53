"""Audio loading: any file -> mono float32 wave at one sample rate.

wav/flac/ogg/mp3/NIST sphere are read with soundfile (libsndfile); anything it cannot read goes
to librosa (audioread) as a fallback. Integer samples (16/24/32 bit) are scaled to [-1, 1]; float
samples are kept as stored. Channels are averaged and the rate is converted with soxr.
Every failure is an `AudioError` whose message names the file and the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000  # Hz, the rate every wave is resampled to unless told otherwise


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
    """Header of an audio file (rate, channels, length), without decoding the samples.

    Raises AudioError for a missing, empty or unreadable file, or one that holds no samples.
    """
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
        result = AudioInfo(int(info.samplerate), int(info.channels), int(info.frames))
    except Exception as e:  # libsndfile cannot parse it: ask the slower fallback reader
        result = _fallback_info(path, _sf_reason(e))
    if result.sample_rate <= 0 or result.channels <= 0:
        raise AudioError(path, f"bad header ({result.sample_rate} Hz, {result.channels} channels)")
    if result.frames <= 0:
        raise AudioError(path, "no samples")
    return result


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


def _read(path: Path) -> tuple[np.ndarray, int]:
    """-> (samples [N, C] float32, integer formats scaled to [-1, 1], rate)."""
    try:
        wave, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        return _fallback_read(path, _sf_reason(e))
    return wave, int(rate)


def resample(wave: np.ndarray, orig_rate: int, new_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr, high quality). wave: [N] float32 -> [N * new/orig]."""
    if orig_rate == new_rate:
        return wave
    import soxr  # comes with librosa

    return soxr.resample(wave, orig_rate, new_rate, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read an audio file as a mono float32 wave at `sample_rate`.

    Returns: wave, shape = (N,), float32, integer formats scaled to [-1, 1].
    Raises AudioError (naming the file) for a missing/empty/unreadable file, one with no samples,
    or one holding NaN/inf samples.
    """
    path = Path(path)
    _check_file(path)
    wave, rate = _read(path)  # [N, C]
    if wave.shape[0] == 0 or wave.shape[1] == 0:
        raise AudioError(path, "no samples")
    if rate <= 0:
        raise AudioError(path, f"bad sample rate {rate}")
    if not np.isfinite(wave).all():
        raise AudioError(path, "NaN or infinite samples")
    mono = wave.mean(axis=1, dtype=np.float32) if wave.shape[1] > 1 else wave[:, 0]  # [N, C] -> [N]
    return np.ascontiguousarray(resample(mono, rate, sample_rate), dtype=np.float32)
