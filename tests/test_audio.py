"""load_audio / audio_info: formats, scaling, channels, resampling, and every error case."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers_data import SR, sine, write_audio, write_corrupt

from asr import audio
from asr.audio import AudioError, audio_info, load_audio


def dominant_freq(wave: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * sr / len(wave))


@pytest.mark.parametrize("subtype, tol", [("PCM_16", 1e-4), ("PCM_24", 1e-6), ("PCM_32", 1e-8),
                                          ("FLOAT", 0.0), ("DOUBLE", 1e-7)])
def test_wav_sample_formats_scale_to_unit_range(tmp_path, subtype, tol):
    wave = sine(0.05, amp=0.9)
    sf.write(tmp_path / "x.wav", wave, SR, subtype=subtype)
    out = load_audio(tmp_path / "x.wav")
    assert out.dtype == np.float32 and out.shape == wave.shape
    np.testing.assert_allclose(out, wave, atol=tol)


def test_int16_full_scale_is_one(tmp_path):
    sf.write(tmp_path / "x.wav", np.array([32767, -32768, 16384], dtype=np.int16), SR)
    np.testing.assert_allclose(load_audio(tmp_path / "x.wav"), [32767 / 32768, -1.0, 0.5])


@pytest.mark.parametrize("suffix", [".flac", ".sph", ".ogg", ".mp3"])
def test_other_containers(tmp_path, suffix):
    path = write_audio(tmp_path / f"x{suffix}", seconds=0.5, freq=1000)
    out = load_audio(path)
    assert out.dtype == np.float32 and out.ndim == 1
    assert abs(len(out) - SR // 2) <= (1200 if suffix == ".mp3" else 0)
    assert dominant_freq(out, SR) == pytest.approx(1000, abs=5)


def test_channels_are_averaged(tmp_path):
    left = sine(0.05)
    sf.write(tmp_path / "st.wav", np.stack([left, 0.5 * left, np.zeros_like(left)], axis=1), SR,
             subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "st.wav"), 0.5 * left, atol=1e-7)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampled_length_and_frequency(tmp_path, rate):
    sf.write(tmp_path / "x.wav", sine(1.0, sr=rate, freq=440), rate, subtype="PCM_16")
    out = load_audio(tmp_path / "x.wav")
    assert len(out) == SR  # 1 s at 16 kHz
    assert dominant_freq(out, SR) == pytest.approx(440, abs=2)
    assert np.abs(out[2000:-2000]).max() == pytest.approx(0.5, abs=0.01)


def test_other_target_rate(tmp_path):
    write_audio(tmp_path / "x.wav", seconds=1.0, sr=16000, freq=300)
    out = load_audio(tmp_path / "x.wav", sample_rate=8000)
    assert len(out) == 8000 and dominant_freq(out, 8000) == pytest.approx(300, abs=2)


def test_fallback_reader_when_soundfile_fails(tmp_path, monkeypatch):
    path = write_audio(tmp_path / "x.wav", seconds=0.1)

    def refuse(*args, **kwargs):
        raise sf.LibsndfileError(0, "pretend")

    monkeypatch.setattr(audio.sf, "read", refuse)
    np.testing.assert_allclose(load_audio(path), sine(0.1), atol=1e-4)


def _nan_wav(path):
    wave = sine(0.01)
    wave[5] = np.nan
    sf.write(path, wave, SR, subtype="FLOAT")


def _inf_wav(path):
    wave = sine(0.01)
    wave[3] = -np.inf
    sf.write(path, wave, SR, subtype="FLOAT")


def _truncated_header(path):
    write_audio(path)
    path.write_bytes(path.read_bytes()[:20])


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (write_corrupt, "unreadable audio"),
    (_truncated_header, "unreadable audio"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), SR), "no samples"),
    (_nan_wav, "NaN or infinite"),
    (_inf_wav, "NaN or infinite"),
])
def test_errors_name_the_file_and_reason(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as e:
        load_audio(path)
    assert str(e.value).startswith(f"{path}: ") and e.value.path == str(path)
    assert isinstance(e.value, ValueError)


def test_audio_info_reads_the_header(tmp_path):
    sf.write(tmp_path / "x.flac", np.zeros((4000, 2), np.float32), 8000)
    info = audio_info(tmp_path / "x.flac")
    assert (info.sample_rate, info.channels, info.frames) == (8000, 2, 4000)
    assert info.duration == pytest.approx(0.5)


@pytest.mark.parametrize("make, reason", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (write_corrupt, "unreadable audio"),
    (_truncated_header, "unreadable audio"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), SR), "no samples"),
])
def test_audio_info_errors(tmp_path, make, reason):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=reason) as e:
        audio_info(path)
    assert str(e.value).startswith(f"{path}: ")
