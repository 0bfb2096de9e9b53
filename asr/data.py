"""Training data: utterances from a feature store with their token ids, batches bucketed by length
under a frame budget (split across distributed ranks, speed perturbation included), and padding
collation.

Utterances that cannot be trained on are dropped when the data is loaded, each with a reason that
is counted: missing features, an empty transcript after the vocabulary, or too few output frames
for CTC (T' < U + repeats), which would otherwise turn into an infinite loss.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from asr.ctc import min_ctc_frames
from asr.datadir import Utterance, read_data_dir
from asr.featstore import FeatureStore
from asr.features import CmvnStats
from asr.text import Vocabulary


@dataclass(frozen=True)
class DataConfig:
    max_frames: int | Literal["auto"] = "auto"  # input frames per batch and process, padding
    # included; "auto": training sizes it from the set and the device (asr.auto: 2000-4000 on
    # a CPU, up to 20000 on a GPU)
    max_utts: int = 128  # utterances per batch and process, at most
    sortagrad: bool = True  # first epoch in ascending length order
    length_jitter: float = 0.1  # relative noise on lengths before bucketing, new each epoch
    speed_perturb: tuple[float, ...] = ()  # time-stretch factors, one drawn per utterance and
    # epoch before batching, so batches are packed by the stretched lengths


@dataclass(frozen=True)
class Item:
    utt_id: str
    num_frames: int
    targets: tuple[int, ...]
    text: str


class CTCDataset(torch.utils.data.Dataset):
    """(utt_id, feats [T, F], targets [U]) for each usable utterance of a data dir; indexed by
    position, or by (position, speed factor) as BucketBatchSampler hands them out, which gives
    the features time-stretched by that factor.

    `out_lengths` maps input frame counts to model output frame counts. `speed_factors` are the
    speed-perturbation factors training may apply: at the fastest (fewest frames) an utterance
    must still fit its transcript, and at the slowest (most frames) it must fit `max_frames`,
    the frame budget of a batch (0: no limit), so that no batch breaks the memory bound.
    """

    def __init__(
        self,
        feats_dir: str | Path,
        data_dir: str | Path,
        vocab: Vocabulary,
        out_lengths: Callable[[int], int] | None = None,
        speed_factors: tuple[float, ...] = (),
        max_frames: int = 0,
        speaker_cmn: bool = False,
    ):
        self.store = FeatureStore(feats_dir)
        self.skipped: Counter[str] = Counter()
        self.items: list[Item] = []
        stored = set(self.store.utt_ids)
        fastest, slowest = max(speed_factors, default=1.0), min(speed_factors, default=1.0)
        utts = read_data_dir(data_dir)
        # utt_id -> its speaker's mean raw feature vector [F], for the model's speaker CMN
        self.cmn_means = speaker_means(self.store, utts) if speaker_cmn else None
        for utt in utts:
            if utt.utt_id not in stored:
                self.skipped["no features (bad audio?)"] += 1
                continue
            targets = tuple(vocab.encode(utt.text))
            if not targets:
                self.skipped["empty transcript after the vocabulary"] += 1
                continue
            frames = self.store.num_frames(utt.utt_id)
            if out_lengths is not None and out_lengths(int(frames / fastest)) < min_ctc_frames(
                targets
            ):
                self.skipped["too short for its transcript under CTC"] += 1
                continue
            if max_frames and round(frames / slowest) > max_frames:
                self.skipped["longer than a batch may be (data.max_frames)"] += 1
                continue
            self.items.append(Item(utt.utt_id, frames, targets, utt.text))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, float]):
        index, factor = key if isinstance(key, tuple) else (key, 1.0)
        item = self.items[index]
        feats = torch.from_numpy(np.array(self.store[item.utt_id], dtype=np.float32))
        targets = torch.tensor(item.targets, dtype=torch.long)
        mean = None if self.cmn_means is None else torch.from_numpy(self.cmn_means[item.utt_id])
        return item.utt_id, stretch_time(feats, factor), targets, mean

    @property
    def lengths(self) -> list[int]:
        return [item.num_frames for item in self.items]

    @property
    def audio_seconds(self) -> float:
        shift_s = self.store.config.frame_shift_ms / 1000
        return sum(self.lengths) * shift_s


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of utterances of similar length, each holding at most `max_frames` padded frames
    per process. A global batch is formed for all `world_size` processes together and split
    between them, so every rank sees the same number of batches. Order depends only on
    (seed, epoch); `start_batch` resumes in the middle of an epoch.

    With `speed_factors`, from epoch `speed_from_epoch` on, each utterance is given a factor
    (drawn from (seed, epoch) too) before batching, and batches are packed by the lengths the
    utterances will have once stretched: the budget holds for what the model sees. Each rank's
    share is yielded as [(index, speed factor)], the keys of CTCDataset."""

    def __init__(
        self,
        lengths: list[int],
        cfg: DataConfig,
        seed: int = 0,
        shuffle: bool = True,
        world_size: int = 1,
        rank: int = 0,
        speed_factors: tuple[float, ...] = (),
        speed_from_epoch: int = 0,
    ):
        self.lengths = lengths
        self.speed_factors = tuple(speed_factors)
        self.speed_from_epoch = speed_from_epoch
        self.cfg = cfg
        self.seed = seed
        self.shuffle = shuffle
        self.world_size = world_size
        self.rank = rank
        self.epoch = 0
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def speed_factors_of(self, epoch: int) -> list[float]:
        """The time-stretch factor of each utterance in `epoch` (1.0 for all without speed
        perturbation, or before `speed_from_epoch`): a function of (seed, epoch), the same on
        every rank and after a resume."""
        if not self.speed_factors or epoch < self.speed_from_epoch:
            return [1.0] * len(self.lengths)
        rng = random.Random(f"speed {self.seed} {epoch}")
        return [rng.choice(self.speed_factors) for _ in self.lengths]

    def global_batches(self, epoch: int | None = None) -> list[list[int]]:
        """The batches of `epoch` (default: the current one). Their number changes a little from
        epoch to epoch, as the length jitter and the speed factors regroup utterances."""
        epoch = self.epoch if epoch is None else epoch
        factors = self.speed_factors_of(epoch)
        lengths = [stretched_length(n, f) for n, f in zip(self.lengths, factors)]
        rng = random.Random(self.seed * 100003 + epoch)
        ascending = self.cfg.sortagrad and epoch == 0
        jitter = self.cfg.length_jitter if self.shuffle and not ascending else 0.0
        keys = [n * (1 + rng.uniform(-jitter, jitter)) for n in lengths]
        order = sorted(range(len(lengths)), key=lambda i: (keys[i], i))
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for i in order:
            longest_if_added = max(longest, lengths[i])
            per_rank = -(-(len(batch) + 1) // self.world_size)  # the biggest rank's share
            too_big = (longest_if_added * per_rank > self.cfg.max_frames
                       or per_rank > self.cfg.max_utts)
            if batch and too_big and len(batch) >= self.world_size:
                batches.append(batch)
                batch, longest_if_added = [], lengths[i]
            batch.append(i)
            longest = longest_if_added
        if batch:
            batches.append(batch)
        if len(batches[-1:]) and len(batches[-1]) < self.world_size and len(batches) > 1:
            batches[-2].extend(batches.pop())  # every rank needs at least one utterance
        if self.shuffle and not ascending:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        factors = self.speed_factors_of(self.epoch)
        for batch in self.global_batches()[self.start_batch:]:
            yield [(i, factors[i]) for i in batch[self.rank :: self.world_size]]

    def __len__(self) -> int:
        return len(self.global_batches()) - self.start_batch


def mean_by_speaker(feats_of: Iterable[tuple[Utterance, np.ndarray]]) -> dict[str, np.ndarray]:
    """(utterance, its features [T, F]) pairs -> utt_id -> the mean feature vector (float32
    [F]) over all frames of its speaker's utterances among them (Kaldi's per-speaker CMN
    statistics, from utt2spk)."""
    sums: dict[str, np.ndarray] = {}
    counts: Counter[str] = Counter()
    speaker = {}
    for utt, feats in feats_of:
        x = np.asarray(feats, dtype=np.float64)
        sums[utt.speaker] = sums.get(utt.speaker, 0.0) + x.sum(axis=0)
        counts[utt.speaker] += x.shape[0]
        speaker[utt.utt_id] = utt.speaker
    return {u: (sums[s] / counts[s]).astype(np.float32) for u, s in speaker.items()}


def speaker_means(store: FeatureStore, utts: list[Utterance]) -> dict[str, np.ndarray]:
    """`mean_by_speaker` of the utterances that have features in `store`; an utterance without
    features gets none."""
    return mean_by_speaker((u, store[u.utt_id]) for u in utts if u.utt_id in store)


def centred_std(store: FeatureStore, means: dict[str, np.ndarray]) -> np.ndarray:
    """Per-bin standard deviation (float32 [F], CmvnStats.std's floor) over all frames of the
    utterances in `means` (utt_id -> mean [F]), each minus its mean: the spread that speaker CMN
    leaves, which the model's global normalisation divides by."""
    stats = CmvnStats.zeros(store.config.num_features)
    for utt_id, mean in means.items():
        stats += CmvnStats.from_feats(np.asarray(store[utt_id], dtype=np.float64) - mean)
    return stats.std().astype(np.float32)


def stretched_length(num_frames: int, factor: float) -> int:
    """Frames of an utterance of `num_frames` frames after `stretch_time` by `factor`."""
    return num_frames if factor == 1.0 else max(1, round(num_frames / factor))


def stretch_time(feats: torch.Tensor, factor: float) -> torch.Tensor:
    """Speed perturbation in the feature domain: feats [T, F] -> [stretched_length(T, factor), F]
    by linear interpolation along time. (Waveform speed perturbation also shifts pitch; this does
    not.)"""
    if factor == 1.0:
        return feats
    new_len = stretched_length(feats.size(0), factor)
    x = feats.T.unsqueeze(0)  # (T, F) -> (1, F, T)
    x = torch.nn.functional.interpolate(x, size=new_len, mode="linear", align_corners=True)
    return x.squeeze(0).T  # (1, F, T') -> (T', F)


def collate(samples):
    """[(utt_id, feats [T, F], targets [U], speaker mean [F] or None)] -> dict of utt_ids,
    feats [B, T, F], feat_lens [B], targets [B, U], target_lens [B], cmn_means [B, F] or None
    (samples without the 4th element: None)."""
    utt_ids, feats, targets = zip(*(s[:3] for s in samples))
    means = [s[3] if len(s) > 3 else None for s in samples]
    feat_lens = torch.tensor([f.size(0) for f in feats])
    target_lens = torch.tensor([t.size(0) for t in targets])
    return {
        "utt_ids": list(utt_ids),
        "feats": torch.nn.utils.rnn.pad_sequence(list(feats), batch_first=True),
        "feat_lens": feat_lens,
        "targets": torch.nn.utils.rnn.pad_sequence(list(targets), batch_first=True),
        "target_lens": target_lens,
        "cmn_means": None if any(m is None for m in means) else torch.stack(means),
    }


def make_loader(dataset: CTCDataset, sampler: BucketBatchSampler):
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=0,  # reading memory-mapped features is cheap; keep the cores for compute
        # its own generator: creating an iterator would otherwise draw from the global RNG,
        # and a run resumed mid-epoch would then see different random numbers
        generator=torch.Generator().manual_seed(0),
    )


def describe_skipped(dataset: CTCDataset) -> str:
    """'all N utterances usable' or 'skipped K of N: k1 reason1, k2 reason2'."""
    skipped = dataset.skipped
    total = len(dataset) + sum(skipped.values())
    if not skipped:
        return f"all {total} utterances usable"
    parts = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
    return f"skipped {sum(skipped.values())} of {total}: {parts}"
