"""The features of `asr.features.compute_features` for one waveform, in numpy alone: the front end
of the torch-free ONNX path (`asr.onnx_transcribe`), where importing torch would cost more than
the whole transcription.

Same recipes, step for step (see asr/features.py for what each one is): "fbank" is Kaldi's
compute-fbank-feats with dither 0, "mfcc" is librosa's MFCC with centred frames; deltas as
torchaudio's compute_deltas with a window of 5. Settings come as the plain dict a checkpoint
stores (`feature_config`), missing keys taking FeatureConfig's defaults. The spectra are computed
in float64 (the Kaldi filters in float32, as torchaudio makes them) and returned as float32;
asr.features works in float32 throughout, so the two differ by its rounding: under 1e-4 on every
bin within 1e-4 of its frame's peak energy, up to about 1e-3 on bins far below it, where float32
cannot resolve the energy (tests/test_export.py).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

# FeatureConfig's defaults and constants (asr/features.py), repeated: that module imports torch.
DEFAULTS: dict[str, Any] = {
    "kind": "fbank", "sample_rate": 16000, "frame_length_ms": 25.0, "frame_shift_ms": 10.0,
    "num_mel_bins": 80, "low_freq": 20.0, "high_freq": 0.0, "num_ceps": 13, "top_db": 80.0,
    "deltas": 0,
}
PREEMPHASIS = 0.97
POVEY_EXPONENT = 0.85
LOG_FLOOR = float(np.finfo(np.float32).eps)
DB_AMIN = 1e-10
DELTA_WINDOW = 5


class FeatureError(ValueError):
    """Audio that no features can be computed from (shorter than one frame)."""


@functools.lru_cache(maxsize=8)
def _settings(items: tuple) -> dict[str, Any]:
    cfg = {**DEFAULTS, **dict(items)}
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"feature config: unknown keys {sorted(unknown)}")
    if cfg["kind"] not in ("fbank", "mfcc"):
        raise ValueError(f"feature config: kind must be 'fbank' or 'mfcc', got {cfg['kind']!r}")
    sr = cfg["sample_rate"]
    cfg["window_samples"] = int(sr * cfg["frame_length_ms"] / 1000)  # truncated, as Kaldi
    cfg["shift_samples"] = int(sr * cfg["frame_shift_ms"] / 1000)
    cfg["n_fft"] = 1 << (cfg["window_samples"] - 1).bit_length()
    high = cfg["high_freq"]
    cfg["upper_freq"] = high if high > 0 else sr / 2 + high
    return cfg


def settings(feature_config: dict[str, Any]) -> dict[str, Any]:
    """The config with defaults filled in and the derived sizes (window_samples, shift_samples,
    n_fft, upper_freq) added, as FeatureConfig's properties compute them."""
    return _settings(tuple(sorted(feature_config.items())))


# ---------------------------------------------------------------------------------------------
# Windows and filter banks


def _kaldi_mel(f: float) -> float:
    return 1127.0 * math.log(1.0 + f / 700.0)


@functools.lru_cache(maxsize=8)
def kaldi_mel_banks(num_bins: int, n_fft: int, sample_rate: float, low: float,
                    high: float) -> np.ndarray:
    """Kaldi's triangular filters, no VTLN: [n_fft // 2 + 1, num_bins] (the Nyquist row zero).

    In float32, step for step as torchaudio.compliance.kaldi.get_mel_banks: a filter's edge
    weights come from differences of nearby mel values, which float64 would round otherwise
    (by up to 1e-4 in a log energy)."""
    f32 = np.float32
    mel_low, mel_high = _kaldi_mel(low), _kaldi_mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = np.arange(num_bins, dtype=f32)[:, None]  # [M, 1]
    left = f32(mel_low) + b * f32(delta)
    center = f32(mel_low) + (b + f32(1.0)) * f32(delta)
    right = f32(mel_low) + (b + f32(2.0)) * f32(delta)
    freqs = f32(sample_rate / n_fft) * np.arange(n_fft // 2, dtype=f32)
    mel = (f32(1127.0) * np.log(f32(1.0) + freqs / f32(700.0)))[None, :]  # [1, n_fft / 2]
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = np.maximum(f32(0.0), np.minimum(up, down))  # [M, n_fft / 2]
    return np.pad(banks, ((0, 0), (0, 1))).T.astype(np.float64)  # -> [n_fft / 2 + 1, M]


def _slaney_hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    linear = f / (200.0 / 3)
    logstep = math.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, linear)


def _slaney_mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    logstep = math.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))


@functools.lru_cache(maxsize=8)
def slaney_mel_banks(n_freqs: int, low: float, high: float, num_mels: int,
                     sample_rate: int) -> np.ndarray:
    """torchaudio.functional.melscale_fbanks(norm="slaney", mel_scale="slaney"):
    [n_freqs, num_mels]."""
    all_freqs = np.linspace(0, sample_rate // 2, n_freqs)
    f_pts = _slaney_mel_to_hz(np.linspace(_slaney_hz_to_mel(low), _slaney_hz_to_mel(high),
                                          num_mels + 2))
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]  # [n_freqs, num_mels + 2]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    banks = np.maximum(0.0, np.minimum(down, up))
    banks *= 2.0 / (f_pts[2 : num_mels + 2] - f_pts[:num_mels])[None, :]
    return banks


@functools.lru_cache(maxsize=8)
def dct_matrix(num_ceps: int, num_mels: int) -> np.ndarray:
    """Orthonormal DCT-II, [num_mels, num_ceps] (torchaudio.functional.create_dct)."""
    n = np.arange(num_mels, dtype=np.float64)
    k = np.arange(num_ceps, dtype=np.float64)[:, None]
    dct = np.cos(math.pi / num_mels * (n + 0.5) * k)  # [C, M]
    dct[0] *= 1.0 / math.sqrt(2.0)
    return (dct * math.sqrt(2.0 / num_mels)).T


def _window(cfg: dict[str, Any]) -> np.ndarray:
    L, n_fft = cfg["window_samples"], cfg["n_fft"]
    if cfg["kind"] == "fbank":  # symmetric Hann to the power 0.85
        return (0.5 - 0.5 * np.cos(2 * math.pi * np.arange(L) / (L - 1))) ** POVEY_EXPONENT
    hann = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(L) / L)  # periodic, centred in n_fft
    left = (n_fft - L) // 2
    return np.pad(hann, (left, n_fft - L - left))


# ---------------------------------------------------------------------------------------------
# One waveform -> features


def _frames(wave: np.ndarray, length: int, shift: int) -> np.ndarray:
    """wave [N] -> [T, length], the frames that fit entirely (a strided view)."""
    count = 1 + (len(wave) - length) // shift
    return np.lib.stride_tricks.as_strided(
        wave, (count, length), (wave.strides[0] * shift, wave.strides[0]), writeable=False
    )


def _power(frames: np.ndarray, n_fft: int) -> np.ndarray:
    spectrum = np.fft.rfft(frames, n=n_fft)  # [T, n_fft / 2 + 1]
    return spectrum.real**2 + spectrum.imag**2


def fbank(wave: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """wave [N] float64 -> log-mel [T, num_mel_bins] (Kaldi, snip_edges, dither 0)."""
    frames = _frames(wave, cfg["window_samples"], cfg["shift_samples"])
    frames = frames - frames.mean(axis=-1, keepdims=True)  # DC offset
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=-1)  # x[-1] := x[0]
    frames = (frames - PREEMPHASIS * previous) * _window(cfg)
    banks = kaldi_mel_banks(cfg["num_mel_bins"], cfg["n_fft"], float(cfg["sample_rate"]),
                            float(cfg["low_freq"]), float(cfg["upper_freq"]))
    return np.log(np.maximum(_power(frames, cfg["n_fft"]) @ banks, LOG_FLOOR))


def mfcc(wave: np.ndarray, cfg: dict[str, Any]) -> np.ndarray:
    """wave [N] float64 -> MFCC [T, num_ceps] (librosa, centred frames)."""
    half = cfg["n_fft"] // 2
    padded = np.pad(wave, (half, half))  # [N + n_fft]
    frames = _frames(padded, cfg["n_fft"], cfg["shift_samples"]) * _window(cfg)
    banks = slaney_mel_banks(half + 1, float(cfg["low_freq"]), float(cfg["upper_freq"]),
                             cfg["num_mel_bins"], cfg["sample_rate"])
    db = 10.0 * np.log10(np.maximum(_power(frames, cfg["n_fft"]) @ banks, DB_AMIN))
    if cfg["top_db"] is not None:
        db = np.maximum(db, db.max() - cfg["top_db"])
    return db @ dct_matrix(cfg["num_ceps"], cfg["num_mel_bins"])


def deltas(feats: np.ndarray) -> np.ndarray:
    """feats [T, F] -> their deltas [T, F]: a regression over +-2 frames, the edge frames
    repeated (torchaudio.functional.compute_deltas with win_length 5)."""
    n = (DELTA_WINDOW - 1) // 2
    denom = n * (n + 1) * (2 * n + 1) / 3
    padded = np.pad(feats, ((n, n), (0, 0)), mode="edge")  # [T + 2n, F]
    T = feats.shape[0]
    out = sum(k * padded[n + k : n + k + T] for k in range(-n, n + 1))
    return out / denom


def compute_features(wave: np.ndarray, feature_config: dict[str, Any]) -> np.ndarray:
    """wave [N] float in [-1, 1] at the config's sample rate -> feats [T, F] float32, what
    `asr.features.compute_features_single` gives. Raises FeatureError below one frame."""
    cfg = settings(feature_config)
    wave = np.ascontiguousarray(wave, dtype=np.float64)
    if len(wave) < cfg["window_samples"]:
        raise FeatureError(
            f"waveform of {len(wave)} samples ({len(wave) / cfg['sample_rate'] * 1000:.1f} ms) "
            f"is shorter than one frame ({cfg['window_samples']} samples)"
        )
    feats = fbank(wave, cfg) if cfg["kind"] == "fbank" else mfcc(wave, cfg)
    outputs = [feats]
    for _ in range(cfg["deltas"]):
        outputs.append(deltas(outputs[-1]))
    return np.concatenate(outputs, axis=-1).astype(np.float32)
