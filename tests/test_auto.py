"""The settings a config leaves to the training data (asr.auto): subsampling from frames per
CTC label, the batch budget from the set's size, and asr train writing what it chose."""

import yaml
from helpers_train import run_asr, tiny_train_args

from asr import auto


def test_subsampling_is_the_largest_the_densest_utterances_allow():
    labels = [10] * 100
    # 100 frames for 10 labels: x4 leaves 25 output frames, 2.5 per label
    assert auto.choose_subsample([100] * 100, labels) == 4
    # 40 frames: x4 leaves 10 (1.0 per label, too few), x2 leaves 20
    assert auto.choose_subsample([40] * 100, labels) == 2
    # 15 frames: only full rate fits
    assert auto.choose_subsample([15] * 100, labels) == 1


def test_subsampling_looks_at_the_first_percentile_and_the_fastest_speed():
    labels = [10] * 100
    # two dense utterances of a hundred decide it: they are the 1st percentile
    assert auto.choose_subsample([100] * 98 + [40, 40], labels) == 2
    assert auto.choose_subsample([100] * 99 + [40], labels) == 4
    # 50 frames: 13 output frames at x4 (1.3 per label), 11 at speed 1.1 (45 frames; 1.2 ok),
    # 10 at speed 1.25 (40 frames; too few)
    assert auto.choose_subsample([50] * 100, labels, fastest=1.1) == 4
    assert auto.choose_subsample([50] * 100, labels, fastest=1.25) == 2


def test_subsampled_frames_match_the_model():
    import torch

    from asr.model import ConvSubsampling

    lens = torch.arange(1, 200)
    for factor in (1, 2, 4):
        conv = ConvSubsampling(80, factor, 4, 8) if factor > 1 else None
        want = conv.output_lengths(lens) if conv else lens
        assert auto.subsampled_frames(lens.numpy(), factor).tolist() == want.tolist()


def test_batch_budget_gives_160_updates_an_epoch_within_the_devices_range():
    frames = [300] * 2000  # 600k frames: 3750 a batch for 160 updates, rounded to 4000
    assert auto.choose_max_frames(frames) == 4000
    assert auto.choose_max_frames(frames, world_size=2) == 2000  # per process
    assert auto.choose_max_frames(frames, world_size=4) == 2000  # the floor
    assert auto.choose_max_frames([300] * 20) == 2000  # a tiny set: the floor
    big = [1000] * 100000
    assert auto.choose_max_frames(big) == 4000  # on a CPU, small batches are free updates
    assert auto.choose_max_frames(big, device="cuda") == 20000
    assert auto.choose_max_frames([1000] * 1000, device="cuda") == 6000
    # the longest utterance, slowed down, always fits a batch
    assert auto.choose_max_frames([300] * 20 + [2500]) == 2500
    assert auto.choose_max_frames([300] * 20 + [2500], slowest=0.9) == 2778
    assert auto.choose_max_frames([300] * 20 + [50000]) == 20000  # but not past a GPU's


def test_train_writes_what_auto_chose(tone_corpus, tmp_path):
    out = tmp_path / "exp"
    proc = run_asr(tiny_train_args(tone_corpus, out, "epochs=1", "model.subsample=auto",
                                   "data.max_frames=auto"))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model"]["subsample"] in (1, 2, 4)
    assert isinstance(cfg["data"]["max_frames"], int) and cfg["data"]["max_frames"] >= 2000
    assert f"auto: subsample {cfg['model']['subsample']}:" in proc.stdout
    assert f"auto: max_frames {cfg['data']['max_frames']}:" in proc.stdout
