"""Features: agreement with Kaldi (torchaudio.compliance.kaldi.fbank) and librosa, batch vs single
consistency, deltas, CMVN statistics, configs.

Tolerances (float32 throughout):
- fbank vs kaldi.fbank (dither 0, Kaldi defaults): |diff| <= 1e-4 in natural-log energy.
  On CPU the two agree to ~1e-6 (|X|^2 is formed as re^2 + im^2, not abs()^2).
- MFCC vs librosa.feature.mfcc (same n_fft/hop/window/mel settings): |diff| <= 2e-3 + 1e-5 * |ref|
  on cepstra of magnitude up to ~600 (a relative error of ~1e-6, float32 rounding in the FFT).
- batch vs alone: |diff| <= 1e-4 + 1e-5 * |alone| (float32 FFT and matrix products of another
  shape round differently; MFCCs sum dB values of magnitude ~100).
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from helpers_data import sine, write_audio, write_raw_bigendian
from torchaudio.compliance import kaldi

from asr.cli import main
from asr.config import ConfigError
from asr.datadir import Utterance, write_data_dir
from asr.features import (
    CmvnStats,
    FeatureConfig,
    FeatureError,
    compute_features,
    compute_features_single,
    load_feature_config,
)

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
FBANK_ATOL = 1e-4
MFCC_ATOL, MFCC_RTOL = 2e-3, 1e-5
BATCH_ATOL, BATCH_RTOL = 1e-4, 1e-5


def synth(num_samples: int, seed: int = 0) -> np.ndarray:
    """A chirp plus noise with a stretch of digital silence: float32 [N] in [-1, 1]."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / SR
    wave = 0.3 * np.sin(2 * np.pi * (200 + 1500 * t) * t) + 0.02 * rng.standard_normal(num_samples)
    wave[num_samples // 3 : num_samples // 3 + 2000] = 0.0
    return wave.astype(np.float32)


def librosa_mfcc(wave: np.ndarray, cfg: FeatureConfig) -> np.ndarray:
    """librosa's MFCC with our frame settings -> [T, C]."""
    mel = librosa.feature.melspectrogram(
        y=wave, sr=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.window_samples,
        hop_length=cfg.shift_samples, window="hann", center=True, pad_mode="constant",
        power=2.0, n_mels=cfg.num_mel_bins, fmin=cfg.low_freq, fmax=cfg.upper_freq,
        htk=False, norm="slaney",
    )
    db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=cfg.top_db)
    return librosa.feature.mfcc(S=db, n_mfcc=cfg.num_ceps, dct_type=2, norm="ortho").T


# ---------------------------------------------------------------------------------------------
# agreement with the reference implementations


@pytest.mark.parametrize("num_samples", [400, 559, 560, 16000, 23456])
@pytest.mark.parametrize(
    "settings",
    [
        dict(num_mel_bins=80),
        dict(num_mel_bins=40, low_freq=64.0, high_freq=-400.0, frame_length_ms=20.0),
    ],
)
def test_fbank_matches_kaldi(num_samples, settings):
    cfg = FeatureConfig(kind="fbank", **settings)
    wave = torch.from_numpy(synth(num_samples))
    ours = compute_features_single(wave, cfg)
    ref = kaldi.fbank(
        wave[None], dither=0.0, num_mel_bins=cfg.num_mel_bins, low_freq=cfg.low_freq,
        high_freq=cfg.high_freq, frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms, sample_frequency=cfg.sample_rate,
    )
    assert ours.shape == ref.shape == (cfg.num_frames(num_samples), cfg.num_mel_bins)
    assert (ours - ref).abs().max() <= FBANK_ATOL


@pytest.mark.filterwarnings("ignore:n_fft=512 is too large")
@pytest.mark.parametrize("num_ceps", [13, 40])
@pytest.mark.parametrize("top_db", [80.0, None])
@pytest.mark.parametrize("num_samples", [400, 16000, 23457])
def test_mfcc_matches_librosa(num_ceps, top_db, num_samples):
    cfg = FeatureConfig(kind="mfcc", num_ceps=num_ceps, top_db=top_db, low_freq=0.0)
    wave = synth(num_samples, seed=1)
    ours = compute_features_single(torch.from_numpy(wave), cfg).numpy()
    ref = librosa_mfcc(wave, cfg)
    assert ours.shape == ref.shape == (cfg.num_frames(num_samples), num_ceps)
    np.testing.assert_allclose(ours, ref, atol=MFCC_ATOL, rtol=MFCC_RTOL)


def test_mfcc_equals_librosa_mfcc_defaults_path():
    """Our mfcc settings are librosa.feature.mfcc's own defaults apart from the frame sizes."""
    cfg = FeatureConfig(kind="mfcc", num_ceps=20, num_mel_bins=40, low_freq=0.0)
    wave = synth(12000, seed=2)
    ref = librosa.feature.mfcc(y=wave, sr=SR, n_mfcc=20, n_fft=512, win_length=400,
                               hop_length=160, n_mels=40).T
    ours = compute_features_single(torch.from_numpy(wave), cfg).numpy()
    np.testing.assert_allclose(ours, ref, atol=MFCC_ATOL, rtol=MFCC_RTOL)


# ---------------------------------------------------------------------------------------------
# batch vs single


def padded_batch(waves: list[np.ndarray], fill: float) -> tuple[torch.Tensor, torch.Tensor]:
    """B waves -> (waves [B, N] padded with `fill`, wave_lens [B])."""
    lens = torch.tensor([len(w) for w in waves])
    batch = torch.full((len(waves), int(lens.max())), fill)
    for b, w in enumerate(waves):
        batch[b, : len(w)] = torch.from_numpy(w)
    return batch, lens


@pytest.mark.parametrize(
    "cfg",
    [
        FeatureConfig(kind="fbank"),
        FeatureConfig(kind="fbank", deltas=2),
        FeatureConfig(kind="mfcc", num_ceps=40),
        FeatureConfig(kind="mfcc", num_ceps=13, deltas=1, top_db=60.0),
    ],
    ids=["fbank", "fbank+dd", "mfcc40", "mfcc13+d"],
)
def test_batch_equals_single(cfg):
    waves = [synth(n, seed=n) for n in (400, 5000, 16000, 8123)]
    batch, lens = padded_batch(waves, fill=0.7)  # garbage padding must not leak in
    feats, feat_lens = compute_features(batch, lens, cfg)
    assert feats.shape == (4, int(feat_lens.max()), cfg.num_features)
    for b, w in enumerate(waves):
        alone = compute_features_single(torch.from_numpy(w), cfg)
        assert int(feat_lens[b]) == alone.size(0) == cfg.num_frames(len(w))
        torch.testing.assert_close(feats[b, : feat_lens[b]], alone, atol=BATCH_ATOL,
                                   rtol=BATCH_RTOL)
        assert feats[b, feat_lens[b] :].abs().sum() == 0  # zero on padding


def test_deltas_shape_and_values():
    wave = torch.from_numpy(synth(9000))
    base = compute_features_single(wave, FeatureConfig(kind="fbank", num_mel_bins=40))
    for order in (1, 2):
        cfg = FeatureConfig(kind="fbank", num_mel_bins=40, deltas=order)
        feats = compute_features_single(wave, cfg)
        assert feats.shape == (base.size(0), 40 * (1 + order)) == (base.size(0), cfg.num_features)
        torch.testing.assert_close(feats[:, :40], base)
        delta = AF.compute_deltas(base.T).T  # (T, F) -> (F, T), time last, and back
        torch.testing.assert_close(feats[:, 40:80], delta)
        if order == 2:
            torch.testing.assert_close(feats[:, 80:], AF.compute_deltas(delta.T).T)


def test_shorter_than_one_frame_is_an_error():
    cfg = FeatureConfig()
    with pytest.raises(FeatureError, match="399 samples.*shorter than one frame \\(400 samples"):
        compute_features_single(torch.zeros(399), cfg)
    batch, lens = padded_batch([synth(1000), synth(100)], fill=0.0)
    with pytest.raises(FeatureError, match="100 samples"):
        compute_features(batch, lens, cfg)
    assert cfg.num_frames(399) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_gpu_matches_cpu(kind):
    cfg = FeatureConfig(kind=kind, deltas=1)
    batch, lens = padded_batch([synth(n, seed=n) for n in (800, 20000, 12345)], fill=0.0)
    cpu, cpu_lens = compute_features(batch, lens, cfg)
    gpu, gpu_lens = compute_features(batch.cuda(), lens.cuda(), cfg)
    assert gpu.device.type == "cuda"
    assert torch.equal(cpu_lens, gpu_lens.cpu())
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-2, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# CMVN statistics


def test_cmvn_stats_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    parts = [(rng.standard_normal((n, 6)) * [1, 2, 3, 4, 5, 0] + 10).astype(np.float32)
             for n in (7, 30, 1)]
    stats = CmvnStats.zeros(6)
    for p in parts:
        stats = stats + CmvnStats.from_feats(p)
    every = np.concatenate(parts).astype(np.float64)
    assert stats.count == 38
    np.testing.assert_allclose(stats.mean, every.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.std()[:5], every.std(axis=0)[:5], rtol=1e-9)
    assert stats.std()[5] == pytest.approx(1e-3)  # a constant bin: floored
    assert stats.std(floor=0.5)[5] == 0.5

    stats.save(tmp_path / "cmvn.npz")
    loaded = CmvnStats.load(tmp_path / "cmvn.npz")
    np.testing.assert_array_equal(loaded.sum, stats.sum)
    np.testing.assert_array_equal(loaded.sum_sq, stats.sum_sq)
    assert loaded.count == stats.count
    with np.load(tmp_path / "cmvn.npz", allow_pickle=False) as z:
        assert z["mean"].dtype == z["std"].dtype == np.float32
    assert [p.name for p in tmp_path.iterdir()] == ["cmvn.npz"]  # no temp file left


def test_cmvn_load_refuses_pickles(tmp_path):
    np.savez(tmp_path / "evil.npz", sum=np.array([object()]), sum_sq=np.zeros(1), count=1)
    with pytest.raises(ValueError, match="not a CMVN statistics file"):
        CmvnStats.load(tmp_path / "evil.npz")


# ---------------------------------------------------------------------------------------------
# config


def test_config_round_trip_and_num_features():
    cfg = FeatureConfig(kind="mfcc", num_ceps=20, deltas=2)
    assert FeatureConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.num_features == 60
    assert FeatureConfig().num_features == 80
    assert (FeatureConfig().window_samples, FeatureConfig().shift_samples) == (400, 160)
    assert FeatureConfig().n_fft == 512


def test_fbank_config_ignores_mfcc_fields():
    """num_ceps is an MFCC field: a 10-bin fbank is valid, whatever num_ceps says."""
    cfg = FeatureConfig(kind="fbank", num_mel_bins=10)
    assert cfg.num_features == 10
    assert FeatureConfig(kind="fbank", num_mel_bins=40, num_ceps=50).num_features == 40


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_mel_bin": 80}, "unknown key"),
        ({"kind": "plp"}, "not one of"),
        ({"kind": "mfcc", "num_ceps": 50}, "13..40"),
        ({"kind": "mfcc", "num_mel_bins": 10}, "num_ceps"),  # 13 cepstra of 10 bins
        ({"deltas": 3}, "deltas"),
        ({"num_mel_bins": "80"}, "expected int"),
    ],
)
def test_config_rejects_bad_values(values, message):
    with pytest.raises(ConfigError, match=message):
        FeatureConfig.from_dict(values)


@pytest.mark.parametrize("name, kind, dim", [("fbank", "fbank", 80), ("mfcc", "mfcc", 40)])
def test_shipped_configs(name, kind, dim):
    cfg = load_feature_config(ROOT / "conf" / f"{name}.yaml")
    assert (cfg.kind, cfg.num_features, cfg.frame_length_ms, cfg.frame_shift_ms) == (
        kind, dim, 25.0, 10.0)


def test_config_file_with_unknown_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("kind: fbank\nnum_bins: 80\n")
    with pytest.raises(ConfigError, match=f"{path}.*unknown key.*num_bins"):
        load_feature_config(path)


# ---------------------------------------------------------------------------------------------
# asr features: a corpus recorded below the config's sample rate


def make_low_rate_set(tmp_path: Path) -> Path:
    """A data dir of 3 utterances: 8 kHz wav, 8 kHz headerless (raw: spec), 16 kHz flac."""
    narrow = write_audio(tmp_path / "audio/a.wav", seconds=0.5, sr=8000)
    raw = write_raw_bigendian(tmp_path / "audio/b.raw", sine(0.5, sr=8000))
    wide = write_audio(tmp_path / "audio/c.flac", seconds=0.5, sr=16000)
    return write_data_dir(tmp_path / "data", [
        Utterance("s-a", "s", str(narrow), "A"),
        Utterance("s-b", "s", f"raw:rate=8000,encoding=s16be,channels=1:{raw}", "B"),
        Utterance("s-c", "s", str(wide), "C"),
    ])


@pytest.mark.parametrize("config, warned", [("fbank", True), ("fbank_8k", False)])
def test_features_warn_when_audio_is_below_the_config_rate(tmp_path, capsys, config, warned):
    """8 kHz audio with a 16 kHz config: nothing above 4 kHz, so the upper mel bins sit at the
    floor, and CMVN's std floor would blow up real energy there at inference."""
    data = make_low_rate_set(tmp_path)
    assert main(["features", str(data), str(tmp_path / "feats"), "--config",
                 str(ROOT / "conf" / f"{config}.yaml"), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    if warned:
        assert "warning: 2 of 3 audio files are recorded below the config's 16000 Hz" in err
        assert "8000 Hz" in err and "fbank_8k.yaml" in err
    else:
        assert "warning" not in err
