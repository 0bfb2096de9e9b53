"""`asr features DATA_SET_DIR FEATS_DIR --config conf/fbank.yaml`: features of a data dir into a
feature store (asr.featstore), shard by shard on all cores.

Shards that an earlier run finished are kept (checked in this process). Each worker process
makes one shard at a time with one torch thread: load each utterance's audio, compute its
features alone (so they never depend on what else is in a batch), write the shard. A set of fewer
than MIN_UTTS_FOR_WORKERS utterances to do is done in this process unless --jobs is given:
starting a worker (importing torch) would take longer than the work.
Audio that cannot be read or is shorter than one frame is reported (problems.tsv, stderr) and
skipped. Without --cmvn the set is a training set and its global CMVN statistics are computed
from the stored frames; with --cmvn STATS (dev/test sets) those statistics are copied in.
Features are stored raw: the model applies CMVN when it reads them.
Audio recorded below the config's sample rate (8 kHz audio, a 16 kHz config) is counted from the
headers first and warned about: upsampled, it holds nothing in the upper mel bins.

Rerunning the same command after an interruption keeps the finished shards and makes the rest;
the result is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr import featstore
from asr.audio import AudioError, audio_info, load_audio
from asr.config import ConfigError
from asr.datadir import read_data_dir
from asr.featstore import FeatureStoreError, Problem, ShardRecord
from asr.features import (
    STD_FLOOR,
    CmvnStats,
    FeatureConfig,
    FeatureError,
    compute_features_single,
    load_feature_config,
)

MIN_UTTS_FOR_WORKERS = 1000  # ~2.5 s of work in one process: less than starting workers costs
HEADER_THREADS = 8  # audio header reads are I/O bound
MIN_FILES_FOR_PROGRESS = 500  # fewer headers take about a second: no progress bar


@dataclass(frozen=True)
class ShardJob:
    feats_dir: str
    shard: int
    utts: tuple[tuple[str, str], ...]  # (utt_id, audio path), sorted by id
    cfg: FeatureConfig


@dataclass(frozen=True)
class ShardDone:
    record: ShardRecord
    stats: CmvnStats  # of the frames stored in the shard
    reused: bool  # finished by an earlier run


@dataclass(frozen=True)
class Summary:
    num_utts: int  # in the data dir
    num_frames: int  # stored
    made_frames: int  # stored by this run (not in reused shards)
    problems: tuple[Problem, ...]
    shards: int
    reused_shards: int
    seconds: float  # wall time

    @property
    def num_stored(self) -> int:
        return self.num_utts - len(self.problems)


def default_jobs() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def utterance_features(path: str, cfg: FeatureConfig) -> np.ndarray:
    """Audio file -> feats [T, F] float32. Raises AudioError or FeatureError."""
    wave = load_audio(path, cfg.sample_rate)
    return compute_features_single(torch.from_numpy(wave), cfg).numpy()


def shard_done(job: ShardJob, record: ShardRecord, reused: bool) -> ShardDone:
    # Statistics always from the stored frames: a reused shard gives the same sums.
    stats = CmvnStats.from_feats(featstore.load_shard(job.feats_dir, job.shard))
    return ShardDone(record, stats, reused)


def extract_shard(job: ShardJob) -> ShardDone:
    """Make one shard: features of its utterances, the failures as problems."""
    feats, problems = [], []
    with torch_threads(1), torch.inference_mode():
        for utt_id, path in job.utts:
            try:
                feats.append((utt_id, utterance_features(path, job.cfg)))
            except (AudioError, FeatureError) as e:
                problems.append(Problem(utt_id, path, str(e)))
    record = featstore.write_shard(job.feats_dir, job.shard, feats, problems, job.cfg.num_features)
    return shard_done(job, record, reused=False)


def reuse_shard(job: ShardJob) -> ShardDone | None:
    """The shard as an earlier run finished it, or None if it must be made."""
    ids = [u for u, _ in job.utts]
    record = featstore.read_done_shard(job.feats_dir, job.shard, ids, job.cfg.num_features)
    return None if record is None else shard_done(job, record, reused=True)


def choose_workers(requested: int | None, jobs: Sequence[ShardJob]) -> int:
    """Worker processes for these shards: as requested, else all cores, except that a small
    amount of work is done in this process (a worker takes ~2 s to start: it imports torch)."""
    if requested is None and sum(len(j.utts) for j in jobs) < MIN_UTTS_FOR_WORKERS:
        return 1
    return max(1, min(requested or default_jobs(), len(jobs)))


def _run_jobs(jobs: Sequence[ShardJob], num_workers: int) -> Iterator[ShardDone]:
    """ShardDone per job, in completion order; one worker means this process."""
    if num_workers <= 1:
        yield from map(extract_shard, jobs)
        return
    # spawn, not fork: a forked torch (OpenMP pools, CUDA) can hang
    with mp.get_context("spawn").Pool(num_workers) as pool:
        yield from pool.imap_unordered(extract_shard, jobs)


def extract_set(
    utts: Sequence[tuple[str, str]],
    feats_dir: str | Path,
    cfg: FeatureConfig,
    num_workers: int | None = None,
    cmvn_from: str | Path | None = None,
    utts_per_shard: int = featstore.UTTS_PER_SHARD,
    progress: bool = True,
) -> Summary:
    """Features of (utt_id, audio path) pairs into the store `feats_dir`.

    num_workers: processes (None: all cores, or this one for a small set).
    cmvn_from: a cmvn.npz to copy in; None computes the statistics of this set.
    Raises FeatureStoreError (disk full, a store of another config, no frames for CMVN)."""
    start = time.perf_counter()
    if cmvn_from is not None:
        _check_cmvn_file(Path(cmvn_from), cfg)
    paths = dict(utts)
    shards = featstore.plan_shards(list(paths), utts_per_shard)
    feats_dir = featstore.prepare_dir(feats_dir, cfg, len(shards))
    jobs = [
        ShardJob(str(feats_dir), k, tuple((u, paths[u]) for u in ids), cfg)
        for k, ids in enumerate(shards)
    ]
    done: list[ShardDone] = []
    with tqdm(total=len(paths), desc="features", unit="utt", disable=not progress,
              file=sys.stderr, mininterval=1.0) as bar:
        todo = []
        for job in jobs:
            reused = reuse_shard(job)
            if reused is None:
                todo.append(job)
            else:
                done.append(reused)
                _report(reused, bar)
        for made in _run_jobs(todo, choose_workers(num_workers, todo)):
            done.append(made)
            _report(made, bar)
    done.sort(key=lambda d: d.record.shard)
    if cmvn_from is None:
        stats = sum((d.stats for d in done), CmvnStats.zeros(cfg.num_features))
        if stats.count == 0:
            raise FeatureStoreError(f"{feats_dir}: no frames stored, no CMVN statistics")
        featstore.finish(feats_dir, [d.record for d in done], stats)
    else:
        featstore.finish(feats_dir, [d.record for d in done], Path(cmvn_from))
    return Summary(
        num_utts=len(paths),
        num_frames=sum(d.record.num_frames for d in done),
        made_frames=sum(d.record.num_frames for d in done if not d.reused),
        problems=tuple(p for d in done for p in d.record.problems),
        shards=len(done),
        reused_shards=sum(d.reused for d in done),
        seconds=time.perf_counter() - start,
    )


def _report(done: ShardDone, bar: tqdm) -> None:
    for p in done.record.problems:
        bar.write(f"skipping {p.utt_id} ({p.path}): {p.reason}", file=sys.stderr)
    bar.update(len(done.record.utt_ids))


def _check_cmvn_file(path: Path, cfg: FeatureConfig) -> None:
    try:
        stats = CmvnStats.load(path)
    except (OSError, ValueError) as e:
        raise FeatureStoreError(str(e)) from None
    if stats.sum.shape != (cfg.num_features,):
        raise FeatureStoreError(
            f"{path}: CMVN statistics of {stats.sum.shape[0]} bins, but {cfg.num_features} "
            f"features per frame"
        )


def format_summary(summary: Summary, feats_dir: Path, cfg: FeatureConfig) -> str:
    shift_s = cfg.frame_shift_ms / 1000
    hours = summary.num_frames * shift_s / 3600
    speed = summary.made_frames * shift_s / max(summary.seconds, 1e-9)
    text = (
        f"asr features: {summary.num_stored} of {summary.num_utts} utterances -> {feats_dir} "
        f"({summary.num_frames} frames, {hours:.2f} h, {summary.shards} shards"
        f"{f', {summary.reused_shards} reused' if summary.reused_shards else ''}) "
        f"in {summary.seconds:.1f} s"
        f"{f' ({speed:.0f}x real time)' if summary.made_frames else ''}"
    )
    if summary.problems:
        text += f"; {len(summary.problems)} skipped, see {feats_dir / featstore.PROBLEMS_NAME}"
    return text


def native_rate(path: str) -> int | None:
    """The sample rate an audio file's header gives, or None (extraction reports the file)."""
    try:
        return audio_info(path).sample_rate
    except AudioError:
        return None


def count_below_rate(paths: Sequence[str], rate: int) -> tuple[int, int | None]:
    """-> (files recorded below `rate` Hz, the lowest rate among them), from the headers."""
    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        rates = list(tqdm(pool.map(native_rate, paths), total=len(paths), desc="audio headers",
                          unit="file", mininterval=1.0, file=sys.stderr,
                          disable=len(paths) < MIN_FILES_FOR_PROGRESS))
    low = [r for r in rates if r is not None and r < rate]
    return len(low), min(low, default=None)


def rate_warning(num_low: int, num_files: int, lowest: int | None, cfg: FeatureConfig) -> str:
    """What goes wrong when audio is upsampled to the config's rate, and what to do."""
    return (
        f"asr features: warning: {num_low} of {num_files} audio files are recorded below the "
        f"config's {cfg.sample_rate} Hz (the lowest at {lowest} Hz). Upsampled, they hold "
        f"nothing above {lowest // 2} Hz: the mel bins up there stay at the log floor, and "
        "their tiny CMVN standard deviation (floored at "
        f"{STD_FLOOR:g}) then multiplies any real energy there by about {1 / STD_FLOOR:.0f} at "
        f"inference. Use a config at the corpus's rate (sample_rate: {lowest}), like "
        "conf/fbank_8k.yaml for 8 kHz audio."
    )


# ---------------------------------------------------------------------------------------------
# asr features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DATA_SET_DIR", help="Kaldi-style data dir")
    parser.add_argument("feats_dir", metavar="FEATS_DIR", help="feature store to write")
    parser.add_argument("--config", required=True, help="feature config YAML (conf/fbank.yaml)")
    parser.add_argument("--cmvn", metavar="STATS",
                        help="cmvn.npz of the training set to copy in (dev/test sets); "
                             "without it, this set's own statistics are computed")
    parser.add_argument("--jobs", type=int, default=None,
                        help=f"worker processes (default: all cores, {default_jobs()} here; "
                             f"none for fewer than {MIN_UTTS_FOR_WORKERS} utterances)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any utterance had to be skipped")
    parser.add_argument("--utts-per-shard", type=int, default=featstore.UTTS_PER_SHARD,
                        help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    feats_dir = Path(args.feats_dir)
    try:
        cfg = load_feature_config(args.config)
        utts = [(u.utt_id, str(u.audio)) for u in read_data_dir(args.data_dir)]
        if not utts:
            raise ValueError(f"{args.data_dir}: no utterances")
        num_low, lowest = count_below_rate([path for _, path in utts], cfg.sample_rate)
        if num_low:
            print(rate_warning(num_low, len(utts), lowest, cfg), file=sys.stderr)
        summary = extract_set(utts, feats_dir, cfg, args.jobs, args.cmvn, args.utts_per_shard)
    except (ConfigError, FeatureStoreError, ValueError, OSError) as e:
        print(f"asr features: {e}", file=sys.stderr)
        return 2
    print(format_summary(summary, feats_dir, cfg), file=sys.stderr)
    return 1 if args.strict and summary.problems else 0
