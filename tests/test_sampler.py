"""The bucketing sampler: frame budget (speed perturbation included), determinism, distributed
split, resume position."""

import random

import numpy as np
import torch

from asr.data import (
    BucketBatchSampler,
    CTCDataset,
    DataConfig,
    collate,
    make_loader,
    speaker_means,
    stretch_time,
    stretched_length,
)
from asr.datadir import read_data_dir
from asr.text import Vocabulary


def indices(sampler) -> list[list[int]]:
    """The batches of a sampler's epoch, as utterance indices (without the speed factors)."""
    return [[i for i, _ in batch] for batch in sampler]


def lengths(n=300, seed=0):
    rng = random.Random(seed)
    return [rng.randint(50, 1500) for _ in range(n)]


def test_every_utterance_once_and_under_budget():
    lens = lengths()
    cfg = DataConfig(max_frames=6000, max_utts=32)
    sampler = BucketBatchSampler(lens, cfg, seed=3)
    batches = indices(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(lens)))
    for b in batches:
        assert max(lens[i] for i in b) * len(b) <= cfg.max_frames or len(b) == 1
        assert len(b) <= cfg.max_utts


def test_order_depends_on_seed_and_epoch_only():
    lens = lengths()
    cfg = DataConfig(max_frames=6000)
    a, b = BucketBatchSampler(lens, cfg, seed=3), BucketBatchSampler(lens, cfg, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert indices(a) == indices(b)
    b.set_epoch(3)
    assert indices(a) != indices(b)


def test_sortagrad_first_epoch_ascending():
    lens = lengths()
    sampler = BucketBatchSampler(lens, DataConfig(max_frames=6000, sortagrad=True), seed=1)
    firsts = [max(lens[i] for i in b) for b in indices(sampler)]
    assert firsts == sorted(firsts)


def test_ranks_split_each_global_batch():
    lens = lengths()
    cfg = DataConfig(max_frames=3000)
    ranks = [BucketBatchSampler(lens, cfg, seed=5, world_size=2, rank=r) for r in (0, 1)]
    whole = BucketBatchSampler(lens, cfg, seed=5, world_size=2, rank=0).global_batches()
    parts = [indices(s) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for g, p0, p1 in zip(whole, *parts):
        assert sorted(p0 + p1) == sorted(g) and p0 and p1
        assert max(lens[i] for i in p0) * len(p0) <= cfg.max_frames or len(p0) == 1


def test_resume_mid_epoch_continues_the_same_sequence():
    lens = lengths()
    cfg = DataConfig(max_frames=6000)
    full = BucketBatchSampler(lens, cfg, seed=9)
    full.set_epoch(1)
    resumed = BucketBatchSampler(lens, cfg, seed=9)
    resumed.set_epoch(1, start_batch=4)
    assert list(resumed) == list(full)[4:]
    assert len(resumed) == len(full) - 4


def test_collate_pads_and_keeps_lengths():
    samples = [("a", torch.ones(5, 3), torch.tensor([1, 2])),
               ("b", torch.ones(2, 3), torch.tensor([3]))]
    batch = collate(samples)
    assert batch["feats"].shape == (2, 5, 3)
    assert batch["feat_lens"].tolist() == [5, 2]
    assert batch["targets"].tolist() == [[1, 2], [3, 0]]
    assert batch["target_lens"].tolist() == [2, 1]
    assert (batch["feats"][1, 2:] == 0).all()


def test_stretch_time_changes_length_by_factor():
    feats = torch.arange(100.0).repeat(4, 1).T  # [100, 4], a ramp
    fast = stretch_time(feats, 1.25)
    assert fast.shape == (80, 4)
    assert fast[0, 0] == 0 and fast[-1, 0] == 99  # the ends stay, the ramp is resampled


def test_speed_perturbed_batches_stay_under_budget(tone_corpus):
    # The factors are drawn before batching, and batches packed by the stretched lengths: what
    # the loader hands out, padding included, fits max_frames.
    factors = (0.9, 1.0, 1.1)
    data = tone_corpus / "data" / "train"
    vocab = Vocabulary.build(u.text for u in read_data_dir(data))
    dataset = CTCDataset(tone_corpus / "feats" / "train", data, vocab, None, factors, 600)
    cfg = DataConfig(max_frames=600, max_utts=100, speed_perturb=factors)
    seen = set()
    for epoch in range(10):
        sampler = BucketBatchSampler(dataset.lengths, cfg, seed=epoch, speed_factors=factors)
        for batch in make_loader(dataset, sampler):
            assert batch["feats"].shape[0] * batch["feats"].shape[1] <= cfg.max_frames
            seen.update(f / n for f, n in zip(batch["feat_lens"].tolist(), dataset.lengths))
    assert len(seen) > 1  # (some utterances were stretched)


def test_speed_factors_depend_on_seed_and_epoch_and_from_epoch():
    lens = lengths()
    cfg = DataConfig(max_frames=6000)
    sampler = BucketBatchSampler(lens, cfg, seed=3, speed_factors=(0.9, 1.1), speed_from_epoch=1)
    assert set(sampler.speed_factors_of(0)) == {1.0}  # before speed_from_epoch: none
    assert set(sampler.speed_factors_of(1)) == {0.9, 1.1}
    assert sampler.speed_factors_of(1) == sampler.speed_factors_of(1)
    assert sampler.speed_factors_of(1) != sampler.speed_factors_of(2)
    sampler.set_epoch(2)
    picks = sampler.speed_factors_of(2)
    for batch in sampler:
        assert all(picks[i] == f for i, f in batch)
        longest = max(stretched_length(lens[i], f) for i, f in batch)
        assert longest * len(batch) <= cfg.max_frames or len(batch) == 1


def test_speaker_cmn_gives_each_utterance_its_speakers_mean_over_all_their_frames(tone_corpus):
    data = tone_corpus / "data" / "train"
    utts = read_data_dir(data)
    vocab = Vocabulary.build(u.text for u in utts)
    dataset = CTCDataset(tone_corpus / "feats" / "train", data, vocab, speaker_cmn=True)
    by_speaker = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, []).append(np.asarray(dataset.store[u.utt_id]))
    assert len(by_speaker) == 2
    expected = {s: np.concatenate(x).mean(axis=0) for s, x in by_speaker.items()}  # frame-weighted
    speaker = {u.utt_id: u.speaker for u in utts}
    for i, item in enumerate(dataset.items):
        np.testing.assert_allclose(dataset[i][3].numpy(), expected[speaker[item.utt_id]],
                                   rtol=1e-5, atol=1e-5)
    assert not np.allclose(*expected.values())
    batch = collate([dataset[0], dataset[1]])
    assert torch.equal(batch["cmn_means"], torch.stack([dataset[0][3], dataset[1][3]]))
    plain = CTCDataset(tone_corpus / "feats" / "train", data, vocab)
    assert plain[0][3] is None and collate([plain[0], plain[1]])["cmn_means"] is None
    assert speaker_means(dataset.store, utts).keys() == {u.utt_id for u in utts}
