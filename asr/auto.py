"""What a config may leave to the training data: `subsample: auto` and `max_frames: auto`.

A corpus nobody tuned for gets settings sized from its own training set, so that its config
states only what it wants different. The rules come from AN4 (recipes/an4/README.md), where the
fixed values of the time (x4 subsampling of spelled letters, 12000-frame batches on 0.7 h)
kept the model on the CTC plateau for 20 epochs:

- subsampling: the largest factor (4, 2, 1) that leaves at least MIN_FRAMES_PER_LABEL output
  frames per CTC label at the 1st percentile of the training set, at the fastest speed
  perturbation. CTC needs one frame per label (two between repeats); too few and the rare fast,
  dense utterance cannot be aligned at all.
- batch budget: frames per batch and process for at least UPDATES_PER_EPOCH updates an epoch,
  in whole thousands, at least MIN_FRAMES and at most a ceiling for the device: on a CPU a step
  costs the same per frame whatever the batch (speechocean762: 4000-frame batches as fast per
  frame as 8000, and twice the updates), so small batches are free updates; a GPU needs large
  ones to be busy. Never less than the longest utterance at the slowest speed (it would be
  skipped).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MIN_FRAMES_PER_LABEL = 1.2
UPDATES_PER_EPOCH = 160  # AN4: 19 updates an epoch stayed on the plateau, 170 left it by epoch 3
MIN_FRAMES = 2000
MAX_FRAMES = {"cpu": 4000, "cuda": 20000}
SUBSAMPLE_FACTORS = (4, 2, 1)  # of asr.model.ConvSubsampling, tried largest first


def subsampled_frames(frames: np.ndarray, factor: int) -> np.ndarray:
    """Output frame counts of asr.model.ConvSubsampling: ceil(T / 2) per stride-2 stage."""
    for _ in range(int(math.log2(factor))):
        frames = (frames - 1) // 2 + 1
    return frames


def frames_per_label(frames: Sequence[int], labels: Sequence[int], factor: int,
                     fastest: float = 1.0, percentile: float = 1.0) -> float:
    """Output frames per CTC label (asr.ctc.min_ctc_frames) at `percentile` over utterances,
    with `factor` subsampling and the input time-compressed by `fastest` (speed perturbation)."""
    t = np.asarray(frames, dtype=np.int64) / fastest
    out = subsampled_frames(np.floor(t).astype(np.int64), factor)
    return float(np.percentile(out / np.maximum(np.asarray(labels), 1), percentile))


def choose_subsample(frames: Sequence[int], labels: Sequence[int], fastest: float = 1.0) -> int:
    """The largest factor with MIN_FRAMES_PER_LABEL at the 1st percentile (1 if none has)."""
    for factor in SUBSAMPLE_FACTORS:
        if frames_per_label(frames, labels, factor, fastest) >= MIN_FRAMES_PER_LABEL:
            return factor
    return 1


def choose_max_frames(frames: Sequence[int], world_size: int = 1, slowest: float = 1.0,
                      device: str = "cpu") -> int:
    """Frames per batch and process: at least UPDATES_PER_EPOCH updates an epoch, within
    MIN_FRAMES and the device's MAX_FRAMES, and room for the longest utterance."""
    high = MAX_FRAMES.get(device, MAX_FRAMES["cuda"])
    per_update = sum(frames) / world_size / UPDATES_PER_EPOCH
    budget = min(high, max(MIN_FRAMES, 1000 * round(per_update / 1000)))
    longest = math.ceil(max(frames) / slowest)
    return max(budget, min(longest, MAX_FRAMES["cuda"]))
