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


# ---------------------------------------------------------------------------------------------
# Headerless PCM: the `raw:` spec


RAW_BE = "raw:rate=16000,encoding=s16be,channels=1:"


def test_raw_big_endian_loads_back_the_signal(tmp_path):
    """A known signal written as big-endian 16-bit PCM loads back equal through the spec, and
    read little-endian (what CMU's README claims) the same bytes are noise."""
    from helpers_data import write_raw_bigendian

    wave = sine(0.25, freq=440.0, amp=0.05)
    path = write_raw_bigendian(tmp_path / "x.raw", wave)
    out = load_audio(RAW_BE + str(path))
    assert out.dtype == np.float32 and out.shape == wave.shape
    np.testing.assert_allclose(out, wave, atol=1 / 32768 + 1e-7)
    assert dominant_freq(out, SR) == pytest.approx(440, abs=5)
    wrong = load_audio(str(RAW_BE + str(path)).replace("s16be", "s16le"))
    assert abs(np.corrcoef(wrong, wave)[0, 1]) < 0.5  # byte-swapped: not the signal
    assert np.abs(wrong).mean() > 5 * np.abs(wave).mean()  # and loud broadband noise
    info = audio_info(RAW_BE + str(path))
    assert (info.sample_rate, info.channels, info.frames) == (SR, 1, len(wave))


def test_raw_rate_is_converted(tmp_path):
    from helpers_data import write_raw_bigendian

    path = write_raw_bigendian(tmp_path / "x.raw", sine(0.5, sr=8000, freq=500.0))
    out = load_audio(f"raw:rate=8000,encoding=s16be:{path}", 16000)
    assert len(out) == 8000 and dominant_freq(out, 16000) == pytest.approx(500, abs=5)


def test_raw_spec_round_trip_and_colons_in_paths(tmp_path):
    path = tmp_path / "a:b" / "x.raw"
    spec = audio.RawFormat(16000, "s16be").spec(path)
    assert audio.parse_audio_spec(spec) == (path, audio.RawFormat(16000, "s16be", 1))
    assert audio.parse_audio_spec("/plain/x.wav") == (audio.Path("/plain/x.wav"), None)


@pytest.mark.parametrize("spec, reason", [
    ("raw:rate=16000:/x.raw", "needs rate= and encoding="),
    ("raw:rate=16000,encoding=s13be:/x.raw", "unknown raw encoding"),
    ("raw:rate=16000,encoding=s16be,bits=16:/x.raw", "bad option"),
    ("raw:rate=sixteen,encoding=s16be:/x.raw", "invalid literal"),
    ("raw:rate=16000,encoding=s16be", "expected raw:KEY=VALUE"),
])
def test_bad_raw_specs_say_why(spec, reason):
    with pytest.raises(AudioError, match=reason):
        load_audio(spec)
    with pytest.raises(audio.AudioSpecError, match=reason):
        audio.parse_audio_spec(spec)


def test_raw_file_of_odd_size_is_refused(tmp_path):
    path = tmp_path / "x.raw"
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(AudioError, match="not a whole number of s16be frames") as e:
        audio_info(RAW_BE + str(path))
    assert str(path) in str(e.value)


# ---------------------------------------------------------------------------------------------
# Speed perturbation: the `speed:` spec


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_spec_changes_tempo_and_pitch(tmp_path, factor):
    """speed:F plays the audio F times as fast, as sox's `speed` does: N / F samples, and a
    tone's frequency times F. It composes with the raw: spec."""
    from helpers_data import write_raw_bigendian

    wave = sine(1.0, freq=1000.0, amp=0.3)
    sf.write(tmp_path / "x.wav", wave, SR)
    raw = write_raw_bigendian(tmp_path / "x.raw", wave)
    for inner in (str(tmp_path / "x.wav"), RAW_BE + str(raw)):
        spec = audio.speed_spec(inner, factor)
        assert spec == f"speed:{factor:g}:{inner}"
        out = load_audio(spec)
        assert abs(len(out) - round(SR / factor)) <= 1
        assert dominant_freq(out, SR) == pytest.approx(1000 * factor, abs=3)
        assert audio_info(spec).frames == round(SR / factor)
        assert audio.parse_audio_spec(spec)[0] == audio.audio_path(inner)
    assert audio.speed_spec("/x.wav", 1.0) == "/x.wav"


@pytest.mark.parametrize("spec", ["speed:fast:/x.wav", "speed:3:/x.wav", "speed:0.9"])
def test_bad_speed_specs_say_why(spec):
    with pytest.raises(AudioError, match="expected speed:FACTOR:SPEC"):
        load_audio(spec)
