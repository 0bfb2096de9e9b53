"""Feature store and `asr features`: round trip, lazy per-utterance loading, resuming after a kill,
a full disk, and the command end to end with a corrupt file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr import featstore
from asr.cli import main as asr_main
from asr.featstore import FeatureStore, FeatureStoreError
from asr.features import (
    CmvnStats,
    FeatureConfig,
    compute_features_single,
    load_feature_config,
)
from data_prep.extract import extract_set

SR = 16000
ROOT = Path(__file__).resolve().parents[1]
CFG = FeatureConfig(kind="fbank", num_mel_bins=23)  # small F keeps the files tiny


def tone(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    wave = 0.3 * np.sin(2 * np.pi * (300 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    return wave.astype(np.float32)


def make_data_dir(root: Path, num_utts: int, corrupt: tuple[int, ...] = (),
                  too_short: tuple[int, ...] = ()) -> tuple[Path, list[tuple[str, str]]]:
    """A data dir by hand (wav.scp, text, utt2spk, spk2utt); returns it and (utt_id, path)."""
    audio, data = root / "audio", root / "data"
    audio.mkdir(parents=True)
    data.mkdir(parents=True)
    utts = []
    for i in range(num_utts):
        utt_id, path = f"spk{i % 2}-utt{i:03d}", audio / f"utt{i:03d}.wav"
        if i in corrupt:
            path.write_bytes(b"RIFF\x00\x00not really a wave file")
        else:
            seconds = 0.005 if i in too_short else 0.3 + 0.1 * (i % 4)
            sf.write(path, tone(seconds, seed=i), SR, subtype="PCM_16")
        utts.append((utt_id, str(path)))
    utts.sort()
    (data / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in utts))
    (data / "text").write_text("".join(f"{u} HELLO\n" for u, _ in utts))
    (data / "utt2spk").write_text("".join(f"{u} {u[:4]}\n" for u, _ in utts))
    spk2utt = {s: [u for u, _ in utts if u.startswith(s)] for s in ("spk0", "spk1")}
    (data / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in spk2utt.items()))
    return data, utts


def snapshot(feats_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(feats_dir.iterdir())}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Five utterances, three shards of two; and the store of an uninterrupted run."""
    root = tmp_path_factory.mktemp("corpus")
    data, utts = make_data_dir(root, 5)
    extract_set(utts, root / "reference", CFG, num_workers=1, utts_per_shard=2, progress=False)
    return utts, root / "reference"


def write(utts, feats_dir, **kwargs):
    return extract_set(utts, feats_dir, CFG, num_workers=1, utts_per_shard=2, progress=False,
                       **kwargs)


# ---------------------------------------------------------------------------------------------


def test_round_trip(corpus):
    utts, ref = corpus
    store = FeatureStore(ref)
    assert store.config == CFG
    assert store.utt_ids == [u for u, _ in utts] and len(store) == 5
    frames = []
    for utt_id, path in utts:
        wave, _ = sf.read(path, dtype="float32")
        expected = compute_features_single(torch.from_numpy(wave), CFG).numpy()
        got = store[utt_id]
        assert got.dtype == np.float32 and got.shape == (store.num_frames(utt_id), 23)
        np.testing.assert_array_equal(got, expected)
        frames.append(expected)
    every = np.concatenate(frames).astype(np.float64)
    mean, std = store.cmvn()
    np.testing.assert_allclose(mean, every.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std, np.maximum(every.std(axis=0), 1e-3), rtol=1e-5)
    index = (ref / "index.tsv").read_text().splitlines()
    assert index[0] == f"{utts[0][0]}\t0\t0\t{store.num_frames(utts[0][0])}"
    assert index[2].split("\t")[1:3] == ["1", "0"]  # third utterance opens shard 1
    assert (ref / "utt2num_frames").read_text().splitlines()[1] == (
        f"{utts[1][0]} {store.num_frames(utts[1][0])}")
    assert (ref / "problems.tsv").read_text() == ""
    assert sorted(p.name for p in ref.glob("shard-*.npy")) == [
        "shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]


def test_one_utterance_loads_without_other_shards(corpus, tmp_path):
    utts, ref = corpus
    for name, data in snapshot(ref).items():
        (tmp_path / name).write_bytes(data)
    expected = FeatureStore(ref)[utts[0][0]].copy()
    for shard in (1, 2):  # other shards unreadable: the first utterance does not care
        featstore.shard_path(tmp_path, shard).write_bytes(b"garbage")
    store = FeatureStore(tmp_path)
    np.testing.assert_array_equal(store[utts[0][0]], expected)
    assert isinstance(store[utts[0][0]], np.memmap)
    with pytest.raises(FeatureStoreError, match="shard-00001.npy: unreadable"):
        store[utts[2][0]]


def test_incomplete_store_is_an_error(corpus, tmp_path):
    _, ref = corpus
    for name, data in snapshot(ref).items():
        (tmp_path / name).write_bytes(data)
    featstore.shard_path(tmp_path, 1).unlink()
    with pytest.raises(FeatureStoreError, match="incomplete feature store, missing shard-00001"):
        FeatureStore(tmp_path)
    (tmp_path / "index.tsv").unlink()
    with pytest.raises(FeatureStoreError, match="incomplete feature store \\(no index.tsv\\)"):
        FeatureStore(tmp_path)


def test_interrupted_write_is_redone_byte_identical(corpus, tmp_path):
    utts, ref = corpus
    out = tmp_path / "feats"
    write(utts, out)
    # What a kill leaves: shard 1 renamed into place but not its index, shard 2 half written
    # under its temporary name, and no merged index.
    featstore.shard_path(out, 1, ".index.tsv").unlink()
    shard2 = featstore.shard_path(out, 2)
    shard2.with_name(shard2.name + ".tmp").write_bytes(shard2.read_bytes()[:100])
    shard2.unlink()
    featstore.shard_path(out, 2, ".index.tsv").unlink()
    (out / "index.tsv").unlink()
    with pytest.raises(FeatureStoreError, match="incomplete"):
        FeatureStore(out)
    shard0_mtime = featstore.shard_path(out, 0).stat().st_mtime_ns

    summary = write(utts, out)
    assert (summary.shards, summary.reused_shards) == (3, 1)
    assert featstore.shard_path(out, 0).stat().st_mtime_ns == shard0_mtime  # kept, not redone
    assert snapshot(out) == snapshot(ref)


def test_sigkill_during_write_then_rerun(corpus, tmp_path):
    """A real SIGKILL between a shard and its index (asr.faults), then the same command again."""
    utts, ref = corpus
    data, _ = make_data_dir(tmp_path, 5)  # same ids and audio as the reference corpus
    out, config = tmp_path / "feats", tmp_path / "feats.yaml"
    config.write_text("kind: fbank\nnum_mel_bins: 23\n")
    args = ["features", str(data), str(out), "--config", str(config), "--jobs", "1",
            "--utts-per-shard", "2"]
    env = {**os.environ, "ASR_FAULT": "featstore.before_shard_index:2"}
    proc = subprocess.run([sys.executable, "-m", "asr.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert featstore.shard_path(out, 1).exists()
    assert not featstore.shard_path(out, 1, ".index.tsv").exists()
    with pytest.raises(FeatureStoreError, match="incomplete"):
        FeatureStore(out)

    assert asr_main(args) == 0
    reference = {k: v for k, v in snapshot(ref).items() if k != "problems.tsv"}
    rerun = snapshot(out)
    assert rerun.pop("problems.tsv") == b""
    assert rerun == reference  # audio paths differ, features and indexes do not


def test_full_disk_is_a_clear_error_and_earlier_shards_survive(corpus, tmp_path, monkeypatch):
    utts, ref = corpus
    out = tmp_path / "feats"
    real_save, calls = featstore._save_npy, []

    def save_until_disk_full(f, array):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(f, array)

    monkeypatch.setattr(featstore, "_save_npy", save_until_disk_full)
    with pytest.raises(FeatureStoreError, match="shard-00002.npy: no space left on device"):
        write(utts, out)
    assert not list(out.glob("*.tmp"))
    for shard in (0, 1):
        ids = [u for u, _ in utts][2 * shard : 2 * shard + 2]
        assert featstore.read_done_shard(out, shard, ids, 23) is not None
        name = featstore.shard_path(out, shard).name
        assert (out / name).read_bytes() == (ref / name).read_bytes()
    assert not featstore.shard_path(out, 2).exists()

    monkeypatch.setattr(featstore, "_save_npy", real_save)
    assert write(utts, out).reused_shards == 2
    assert snapshot(out) == snapshot(ref)


def test_rerun_with_another_config_is_refused(corpus, tmp_path):
    utts, ref = corpus
    with pytest.raises(FeatureStoreError, match="another config"):
        extract_set(utts, ref, FeatureConfig(num_mel_bins=40), num_workers=1, progress=False)


def test_asr_features_end_to_end(tmp_path, capsys, corpus):
    """One corrupt and one too-short file reported and skipped; --strict; a dev set gets the
    training set's CMVN copied in."""
    data, utts = make_data_dir(tmp_path, 6, corrupt=(1,), too_short=(4,))
    out = tmp_path / "feats" / "train"
    args = ["features", str(data), str(out), "--config", str(ROOT / "conf" / "fbank.yaml"),
            "--utts-per-shard", "2"]
    assert asr_main(args) == 0
    err = capsys.readouterr().err
    assert "skipping spk1-utt001" in err and "utt001.wav" in err
    assert "skipping spk0-utt004" in err and "shorter than one frame" in err
    assert "4 of 6 utterances" in err and "2 skipped" in err
    problems = (out / "problems.tsv").read_text().splitlines()
    paths = dict(utts)
    assert [line.split("\t")[:2] for line in problems] == [
        ["spk0-utt004", paths["spk0-utt004"]], ["spk1-utt001", paths["spk1-utt001"]]]
    store = FeatureStore(out)
    assert store.utt_ids == ["spk0-utt000", "spk0-utt002", "spk1-utt003", "spk1-utt005"]
    assert store.config.num_features == 80

    assert asr_main([*args, "--strict"]) == 1  # all shards reused, the problems still count
    assert "3 shards, 3 reused" in capsys.readouterr().err

    dev = tmp_path / "feats" / "dev"
    assert asr_main(["features", str(data), str(dev), "--config",
                     str(ROOT / "conf" / "fbank.yaml"), "--cmvn", str(out / "cmvn.npz")]) == 0
    assert (dev / "cmvn.npz").read_bytes() == (out / "cmvn.npz").read_bytes()
    np.testing.assert_array_equal(FeatureStore(dev).cmvn()[0], store.cmvn()[0])


@pytest.mark.slow  # starts two worker processes, each importing torch
def test_worker_processes_write_the_same_bytes(tmp_path, capsys):
    data, utts = make_data_dir(tmp_path, 6, corrupt=(1,))
    out = tmp_path / "feats"
    assert asr_main(["features", str(data), str(out), "--config", str(ROOT / "conf" / "fbank.yaml"),
                     "--utts-per-shard", "2", "--jobs", "2"]) == 0
    assert "skipping spk1-utt001" in capsys.readouterr().err
    reference = tmp_path / "reference"  # one process, this one
    extract_set(utts, reference, load_feature_config(ROOT / "conf" / "fbank.yaml"),
                num_workers=1, utts_per_shard=2, progress=False)
    assert snapshot(out) == snapshot(reference)


def test_asr_features_bad_inputs(tmp_path, capsys, corpus):
    data, _ = make_data_dir(tmp_path, 2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: fbank\nnum_mel_bin: 80\n")
    assert asr_main(["features", str(data), str(tmp_path / "f"), "--config", str(bad)]) == 2
    assert "unknown key(s) ['num_mel_bin']" in capsys.readouterr().err
    mfcc_cmvn = tmp_path / "cmvn.npz"
    CmvnStats.from_feats(np.ones((3, 40))).save(mfcc_cmvn)
    assert asr_main(["features", str(data), str(tmp_path / "f"), "--config",
                     str(ROOT / "conf" / "fbank.yaml"), "--cmvn", str(mfcc_cmvn)]) == 2
    assert "statistics of 40 bins, but 80 features" in capsys.readouterr().err
