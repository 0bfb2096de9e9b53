"""The on-disk feature store: features of many utterances in a few memory-mapped shards.

Layout of FEATS/<set>/ (docs/design.md):

    feats.yaml               the FeatureConfig the features were made with
    shard-NNNNN.npy          float32 [sum T, F]: the frames of its utterances, back to back
    shard-NNNNN.problems.tsv per shard: `utt-id<TAB>file<TAB>reason` of its skipped utterances
    shard-NNNNN.index.tsv    per shard: `utt-id<TAB>offset<TAB>num_frames`, written last
    index.tsv                all shards: `utt-id<TAB>shard<TAB>offset<TAB>num_frames`, sorted
    utt2num_frames           `utt-id num_frames` (Kaldi)
    problems.tsv             all skipped utterances, `utt-id<TAB>file<TAB>reason`
    cmvn.npz                 global CMVN statistics of the training set (asr.features.CmvnStats)

Writing is atomic and resumable. Utterances are sorted by id and cut into shards of a fixed count,
so the same data dir always gives the same shards, byte for byte. Every file is written under a
temporary name and renamed into place; a shard's index is written after the shard itself, so a
shard counts as done only when its index is there and names the utterances it should hold. A run
killed at any point leaves done shards, which a rerun keeps, and nothing that reads as valid but
is not. The merged `index.tsv` is written last: the store is complete once it exists.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import yaml

from asr.config import ConfigError
from asr.faults import maybe_kill
from asr.features import CmvnStats, FeatureConfig, load_feature_config

UTTS_PER_SHARD = 200  # utterances per shard: ~10 min of speech, a few tens of MB of fbank
CONFIG_NAME = "feats.yaml"
INDEX_NAME = "index.tsv"
CMVN_NAME = "cmvn.npz"
PROBLEMS_NAME = "problems.tsv"
UTT2NUM_FRAMES_NAME = "utt2num_frames"
TMP_SUFFIX = ".tmp"


class FeatureStoreError(Exception):
    """A feature store that cannot be read or written (incomplete, inconsistent, disk full)."""


@dataclass(frozen=True)
class Problem:
    """An utterance left out of the store, and why."""

    utt_id: str
    path: str
    reason: str

    def line(self) -> str:
        reason = re.sub(r"\s+", " ", self.reason).strip()  # one line, no tabs
        return f"{self.utt_id}\t{self.path}\t{reason}\n"


@dataclass(frozen=True)
class ShardRecord:
    """What one shard holds: (utt_id, offset, num_frames) per stored utterance, and the
    utterances assigned to it that were skipped."""

    shard: int
    entries: tuple[tuple[str, int, int], ...]
    problems: tuple[Problem, ...]

    @property
    def utt_ids(self) -> list[str]:
        """Every utterance assigned to the shard, stored or skipped, sorted."""
        return sorted([e[0] for e in self.entries] + [p.utt_id for p in self.problems])

    @property
    def num_frames(self) -> int:
        return sum(e[2] for e in self.entries)


def shard_path(feats_dir: Path, shard: int, suffix: str = ".npy") -> Path:
    return Path(feats_dir) / f"shard-{shard:05d}{suffix}"


def plan_shards(utt_ids: Sequence[str], utts_per_shard: int = UTTS_PER_SHARD) -> list[list[str]]:
    """Sorted ids cut into consecutive shards of `utts_per_shard` (the last may be shorter)."""
    ids = sorted(utt_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("utterance ids are not unique")
    return [ids[i : i + utts_per_shard] for i in range(0, len(ids), utts_per_shard)]


# ---------------------------------------------------------------------------------------------
# Writing


def _save_npy(f: IO[bytes], array: np.ndarray) -> None:
    """What np.save writes, but the data goes through f.write: np.save's fast path (fwrite)
    reports a full disk as a bare "N requested and M written", without the errno."""
    array = np.ascontiguousarray(array)
    np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
    if array.size:  # (an empty one cannot be cast to bytes, and has none to write)
        f.write(memoryview(array).cast("B"))


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write `path` via `write(file)` into `path.tmp`, fsync and rename it into place. A full disk
    raises FeatureStoreError naming the file, and leaves no temporary file and the old `path`."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):  # full disk, quota, size limit
            raise FeatureStoreError(
                f"{path}: {(e.strerror or os.strerror(e.errno)).lower()} while writing it; the "
                f"files finished before it are intact: make room and rerun the same command "
                f"to resume"
            ) from e
        raise FeatureStoreError(f"{path}: cannot write: {e}") from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def prepare_dir(feats_dir: str | Path, cfg: FeatureConfig, num_shards: int) -> Path:
    """Create (or reopen, for a rerun) a store directory for `num_shards` shards made with `cfg`.

    The merged index is removed, so the store reads as incomplete until `finish` writes it again;
    leftover temporary files and shards beyond `num_shards` (from an earlier, larger data dir)
    are deleted. Raises FeatureStoreError if the directory holds features of another config."""
    feats_dir = Path(feats_dir)
    feats_dir.mkdir(parents=True, exist_ok=True)
    config_path = feats_dir / CONFIG_NAME
    if config_path.exists():
        try:
            old = load_feature_config(config_path)
        except ConfigError as e:
            raise FeatureStoreError(f"{config_path}: unreadable ({e})") from None
        if old != cfg:
            raise FeatureStoreError(
                f"{feats_dir} holds features made with another config ({config_path}: {old}); "
                f"remove the directory or choose another one"
            )
    (feats_dir / INDEX_NAME).unlink(missing_ok=True)
    for path in feats_dir.glob(f"*{TMP_SUFFIX}"):
        path.unlink()
    for path in feats_dir.glob("shard-*"):
        match = re.fullmatch(r"shard-(\d{5})\..*", path.name)
        if match and int(match.group(1)) >= num_shards:
            path.unlink()
    _write_text(config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    return feats_dir


def write_shard(
    feats_dir: str | Path,
    shard: int,
    feats: Sequence[tuple[str, np.ndarray]],
    problems: Sequence[Problem],
    num_features: int,
) -> ShardRecord:
    """Write one shard: its frames, then its problems, then its index (the mark that it is done).

    feats: (utt_id, feats [T, F]) in the shard's (sorted) order."""
    feats_dir = Path(feats_dir)
    entries, offset = [], 0
    for utt_id, f in feats:
        entries.append((utt_id, offset, int(f.shape[0])))
        offset += int(f.shape[0])
    frames = (
        np.concatenate([f for _, f in feats]).astype(np.float32, copy=False)
        if feats else np.zeros((0, num_features), dtype=np.float32)
    )  # [sum T, F]
    atomic_write(shard_path(feats_dir, shard), lambda f: _save_npy(f, frames))
    maybe_kill("featstore.before_shard_index")
    _write_text(shard_path(feats_dir, shard, ".problems.tsv"), "".join(p.line() for p in problems))
    _write_text(
        shard_path(feats_dir, shard, ".index.tsv"),
        "".join(f"{u}\t{o}\t{n}\n" for u, o, n in entries),
    )
    return ShardRecord(shard, tuple(entries), tuple(problems))


def _read_problems(path: Path) -> list[Problem]:
    problems = []
    for line in path.read_text().splitlines():
        utt_id, file, reason = line.split("\t", 2)
        problems.append(Problem(utt_id, file, reason))
    return problems


def read_done_shard(
    feats_dir: str | Path, shard: int, utt_ids: Sequence[str], num_features: int
) -> ShardRecord | None:
    """The record of a shard finished by an earlier run for exactly these utterances, or None
    if it must be (re)made: no index, another set of utterances, or a shard file that does not
    hold the frames its index describes."""
    feats_dir = Path(feats_dir)
    index_path = shard_path(feats_dir, shard, ".index.tsv")
    problems_path = shard_path(feats_dir, shard, ".problems.tsv")
    if not index_path.exists() or not problems_path.exists():
        return None
    try:
        entries = []
        for line in index_path.read_text().splitlines():
            utt_id, offset, num_frames = line.split("\t")
            entries.append((utt_id, int(offset), int(num_frames)))
        record = ShardRecord(shard, tuple(entries), tuple(_read_problems(problems_path)))
        frames = np.load(shard_path(feats_dir, shard), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if record.utt_ids != sorted(utt_ids):
        return None
    if frames.dtype != np.float32 or frames.shape != (record.num_frames, num_features):
        return None
    return record


def load_shard(feats_dir: str | Path, shard: int) -> np.ndarray:
    """shard -> float32 [sum T, F], memory-mapped read-only."""
    return np.load(shard_path(Path(feats_dir), shard), mmap_mode="r", allow_pickle=False)


def finish(
    feats_dir: str | Path, records: Sequence[ShardRecord], cmvn: CmvnStats | Path
) -> None:
    """Write the merged files: problems.tsv, utt2num_frames, cmvn.npz (from these statistics,
    or a copy of a stats file), and index.tsv last, which marks the store complete."""
    feats_dir = Path(feats_dir)
    records = sorted(records, key=lambda r: r.shard)
    rows = [(u, r.shard, o, n) for r in records for u, o, n in r.entries]
    _write_text(feats_dir / PROBLEMS_NAME, "".join(p.line() for r in records for p in r.problems))
    _write_text(feats_dir / UTT2NUM_FRAMES_NAME, "".join(f"{u} {n}\n" for u, _, _, n in rows))
    if isinstance(cmvn, CmvnStats):
        cmvn.save(feats_dir / CMVN_NAME)
    else:
        atomic_write(feats_dir / CMVN_NAME, lambda f: f.write(Path(cmvn).read_bytes()))
    _write_text(feats_dir / INDEX_NAME, "".join(f"{u}\t{s}\t{o}\t{n}\n" for u, s, o, n in rows))


# ---------------------------------------------------------------------------------------------
# Reading


class FeatureStore:
    """A finished feature store, read-only. `store[utt_id]` is that utterance's float32 [T, F]
    frames, a view into its memory-mapped shard: nothing else is read from disk."""

    def __init__(self, feats_dir: str | Path):
        self.dir = Path(feats_dir)
        index_path = self.dir / INDEX_NAME
        if not index_path.exists():
            raise FeatureStoreError(
                f"{self.dir}: incomplete feature store (no {INDEX_NAME}); "
                f"run `asr features` for it, or rerun it to finish"
            )
        try:
            self.config = load_feature_config(self.dir / CONFIG_NAME)
        except ConfigError as e:
            raise FeatureStoreError(f"{self.dir}: {e}") from None
        self._index: dict[str, tuple[int, int, int]] = {}
        for line in index_path.read_text().splitlines():
            utt_id, shard, offset, num_frames = line.split("\t")
            self._index[utt_id] = (int(shard), int(offset), int(num_frames))
        missing = sorted(
            {s for s, _, _ in self._index.values() if not shard_path(self.dir, s).exists()}
        )
        if missing:
            raise FeatureStoreError(
                f"{self.dir}: incomplete feature store, missing "
                f"{', '.join(shard_path(self.dir, s).name for s in missing)}"
            )
        self._shards: dict[int, np.ndarray] = {}

    @property
    def utt_ids(self) -> list[str]:
        """Stored utterances, sorted."""
        return list(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self._index

    def num_frames(self, utt_id: str) -> int:
        return self._index[utt_id][2]

    def _shard(self, shard: int) -> np.ndarray:
        if shard not in self._shards:
            path = shard_path(self.dir, shard)
            try:
                frames = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as e:
                raise FeatureStoreError(f"{path}: unreadable shard ({e})") from None
            if frames.ndim != 2 or frames.shape[1] != self.config.num_features:
                raise FeatureStoreError(
                    f"{path}: shape {frames.shape}, expected [frames, {self.config.num_features}]"
                )
            self._shards[shard] = frames
        return self._shards[shard]

    def __getitem__(self, utt_id: str) -> np.ndarray:
        """utt_id -> feats [T, F] float32 (a read-only memory-mapped view)."""
        shard, offset, num_frames = self._index[utt_id]
        frames = self._shard(shard)
        if offset + num_frames > frames.shape[0]:
            raise FeatureStoreError(
                f"{shard_path(self.dir, shard)}: holds {frames.shape[0]} frames, but the index "
                f"puts {utt_id} at {offset}..{offset + num_frames}"
            )
        return frames[offset : offset + num_frames]

    def cmvn(self) -> tuple[np.ndarray, np.ndarray]:
        """Global (mean [F], std [F]), float32, of the training set these features go with."""
        path = self.dir / CMVN_NAME
        if not path.exists():
            raise FeatureStoreError(f"{path}: missing; rerun `asr features`")
        stats = CmvnStats.load(path)
        if stats.sum.shape != (self.config.num_features,):
            raise FeatureStoreError(
                f"{path}: statistics of {stats.sum.shape[0]} bins, features have "
                f"{self.config.num_features}"
            )
        return stats.mean.astype(np.float32), stats.std().astype(np.float32)

    def problems(self) -> list[Problem]:
        """Utterances that were skipped when the store was written."""
        path = self.dir / PROBLEMS_NAME
        return _read_problems(path) if path.exists() else []
