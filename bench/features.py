"""Feature extraction throughput (audio seconds per wall second) on a corpus: ours against
librosa, side by side in one run, all on the same cores.

    python bench/features.py /tmp/prep_check/train --limit 1000

Rows:
- ours, `asr features`: the command's own code path (data_prep.extract.extract_set): load
  audio, 80-bin Kaldi fbank, write the shards, index and CMVN statistics (into a scratch dir),
  timed as a user sees it, worker start-up included;
- ours, compute only: load audio + the same fbank, results dropped;
- librosa, compute only: load audio + librosa.feature.melspectrogram (80 mels, 25 ms Hann window
  in a 512-point FFT, 10 ms hop, power) + log, results dropped.
The two compute-only rows are timed after their workers have started and run one file each
(start-up: process spawn, imports, first call; shown apart).
Every row uses --jobs processes with one thread each; audio is read once beforehand so that all
rows find it in the page cache.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread per process, in this one and in the workers

import numpy as np  # noqa: E402
import torch  # noqa: E402

from asr.audio import load_audio  # noqa: E402
from asr.datadir import read_data_dir  # noqa: E402
from asr.features import FeatureConfig, compute_features_single  # noqa: E402
from data_prep.extract import default_jobs, extract_set  # noqa: E402

CFG = FeatureConfig(kind="fbank", num_mel_bins=80, frame_length_ms=25.0, frame_shift_ms=10.0)


def ours_compute(path: str) -> int:
    """Audio file -> its sample count, after computing our fbank of it."""
    torch.set_num_threads(1)
    wave = load_audio(path, CFG.sample_rate)
    with torch.inference_mode():
        compute_features_single(torch.from_numpy(wave), CFG)
    return len(wave)


def librosa_compute(path: str) -> int:
    """Audio file -> its sample count, after computing librosa's log-mel of it."""
    import librosa

    wave = load_audio(path, CFG.sample_rate)
    mel = librosa.feature.melspectrogram(
        y=wave, sr=CFG.sample_rate, n_fft=CFG.n_fft, win_length=CFG.window_samples,
        hop_length=CFG.shift_samples, n_mels=CFG.num_mel_bins, fmin=CFG.low_freq, power=2.0,
    )
    np.log(np.maximum(mel, 1e-10))
    return len(wave)


def time_pool(
    fn: Callable[[str], int], paths: Sequence[str], jobs: int
) -> tuple[float, float, int]:
    """(start-up seconds, wall seconds, total samples) of fn over paths on `jobs` spawned
    processes; the clock starts once each has been warmed up by one call (imports, first-call
    costs), which is the start-up time."""
    start = time.perf_counter()
    with mp.get_context("spawn").Pool(jobs, initializer=fn, initargs=(paths[0],)) as pool:
        pool.map(abs, range(jobs))  # every worker has run its initializer
        ready = time.perf_counter()
        samples = sum(pool.imap_unordered(fn, paths, chunksize=8))
        return ready - start, time.perf_counter() - ready, samples


def time_asr_features(utts: Sequence[tuple[str, str]], jobs: int) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-features-") as scratch:
        start = time.perf_counter()
        extract_set(utts, Path(scratch) / "feats", CFG, num_workers=jobs, progress=False)
        return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", metavar="CORPUS_DATA_DIR")
    parser.add_argument("--limit", type=int, help="first N utterances only")
    parser.add_argument("--jobs", type=int, default=default_jobs(), help="processes (all cores)")
    args = parser.parse_args(argv)

    utts = [(u.utt_id, str(u.audio)) for u in read_data_dir(args.data_dir)][: args.limit]
    paths = [p for _, p in utts]
    for p in paths:  # into the page cache, untimed
        Path(p).read_bytes()

    ours_up, ours_s, samples = time_pool(ours_compute, paths, args.jobs)
    librosa_up, librosa_s, librosa_samples = time_pool(librosa_compute, paths, args.jobs)
    store_s = time_asr_features(utts, args.jobs)
    assert librosa_samples == samples
    audio_s = samples / CFG.sample_rate

    print(f"{args.data_dir}: {len(utts)} utterances, {audio_s / 3600:.2f} h of audio, "
          f"{args.jobs} processes x 1 thread, torch {torch.__version__}")
    print(f"{'method':<40} {'start-up s':>10} {'wall s':>8} {'audio s / wall s':>17}")
    for name, up, seconds in [
        ("ours: asr features (load, fbank, store)", "in wall", store_s),
        ("ours: load + fbank", f"{ours_up:.1f}", ours_s),
        ("librosa: load + log-mel", f"{librosa_up:.1f}", librosa_s),
    ]:
        print(f"{name:<40} {up:>10} {seconds:>8.1f} {audio_s / seconds:>17.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
