"""End-to-end training on the synthetic tone language: overfitting, exact resume after SIGKILL
(one process and two), DDP over two gloo processes matching one process, torchrun on NCCL, a
resume with an edited config, and batches with a non-finite loss."""

import csv
import os
import shutil

import pytest
import torch
from helpers_train import (
    poison_features,
    run_asr,
    tiny_train_args,
    torchrun,
    with_feats_root,
)

from asr.checkpoint import load_checkpoint
from asr.model import CTCModel
from asr.scoring import read_kaldi_text
from asr.train import ModelConfig_from, OptimConfig, lr_lambda, setup_runtime


@pytest.fixture(scope="module")
def corpus(tone_corpus):
    return tone_corpus


def test_overfits_a_few_utterances(tone_model_corpus, tone_model, tmp_path):
    corpus, out = tone_model_corpus, tone_model  # trained once per session (conftest.py)
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.3 * losses[0]
    # decode the training set itself: the transcripts come back
    proc = run_asr(["decode", "--checkpoint", out / "last.pt", corpus / "data" / "train",
                    "--out", tmp_path / "dec"], check=False)
    assert proc.returncode == 0, proc.stderr
    wer = (tmp_path / "dec" / "wer.txt").read_text()
    hyps = read_kaldi_text(tmp_path / "dec" / "hyp.txt")
    refs = read_kaldi_text(corpus / "data" / "train" / "text")
    correct = sum(hyps.get(u, "").strip() == r.strip() for u, r in refs.items())
    assert correct >= len(refs) - 1, wer
    for name in ("config.yaml", "tokens.txt", "curves.png", "best.pt", "last.pt"):
        assert (out / name).exists(), name


def test_lr_schedule_ends_at_the_last_step(corpus, tmp_path):
    # Length jitter regroups the batches each epoch, and sortagrad's sorted first epoch packs
    # them tighter, so epochs differ in length: the schedule counts each one.
    out = tmp_path / "exp"
    proc = run_asr(tiny_train_args(corpus, out, "epochs=4", "save_every_steps=0",
                                   "data.sortagrad=true", "data.length_jitter=0.5",
                                   "data.max_utts=100", "data.max_frames=500",
                                   "optim.final_lr_ratio=0.1"))
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    per_epoch = [b - a for a, b in zip([0] + steps, steps)]
    assert len(set(per_epoch)) > 1, per_epoch  # the case this test is about
    assert f"{steps[-1]} steps in 4 epochs" in proc.stdout, proc.stdout
    # every epoch's lr is where a cosine that ends at the last step puts it
    factor = lr_lambda(OptimConfig(warmup_steps=1, final_lr_ratio=0.1), total_steps=steps[-1])
    for row, step in zip(rows, steps):
        assert float(row["lr"]) == pytest.approx(0.003 * factor(step), rel=1e-6), step
    assert float(rows[-1]["lr"]) == pytest.approx(0.003 * 0.1, rel=1e-6)


def final_weights(path):
    return load_checkpoint(path)["model"]


def test_resume_after_sigkill_reaches_the_same_weights(corpus, tmp_path):
    # 6 batches per epoch; a checkpoint every 4 steps; killed after step 5, i.e. mid-epoch
    common = ("epochs=3", "save_every_steps=4", "data.max_utts=2", "model.dropout=0.2",
              "model.spec_augment={freq_masks: 1, freq_width: 4, time_masks: 1, time_width: 0.1}",
              "data.speed_perturb=[0.9, 1.0, 1.1]")
    straight = tmp_path / "straight"
    run_asr(tiny_train_args(corpus, straight, *common))

    crashed = tmp_path / "crashed"
    env = dict(os.environ, ASR_FAULT="train_step:5")
    proc = run_asr(tiny_train_args(corpus, crashed, *common), env=env, check=False)
    assert proc.returncode == -9, proc.stderr
    state = load_checkpoint(crashed / "last.pt")["train_state"]
    assert state["step"] == 4 and state["batch_in_epoch"] == 4  # saved mid-epoch
    run_asr(tiny_train_args(corpus, crashed, *common) + ["--resume"])

    a, b = final_weights(straight / "last.pt"), final_weights(crashed / "last.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_kill_while_writing_a_checkpoint_keeps_the_previous_one(corpus, tmp_path):
    out = tmp_path / "exp"
    common = ("epochs=2", "save_every_steps=2")
    env = dict(os.environ, ASR_FAULT="checkpoint_write:2")  # the 2nd save dies half-written
    proc = run_asr(tiny_train_args(corpus, out, *common), env=env, check=False)
    assert proc.returncode == -9
    ckpt = load_checkpoint(out / "last.pt")  # the first save, intact
    assert ckpt["train_state"]["step"] == 2
    run_asr(tiny_train_args(corpus, out, *common) + ["--resume"])
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2
    assert not list(out.glob("*.tmp"))


def gradients(path) -> dict[str, torch.Tensor]:
    """The (clipped) gradient of the first AdamW step, by parameter name: after one step the
    first moment holds (1 - beta1) * gradient."""
    ckpt = load_checkpoint(path)
    beta1 = ckpt["train_config"]["optim"]["betas"][0]
    model = CTCModel(ModelConfig_from(ckpt), ckpt["vocab_size"])
    names = [name for name, _ in model.named_parameters()]
    state = ckpt["optimizer"]["state"]
    return {name: state[i]["exp_avg"] / (1 - beta1) for i, name in enumerate(names)}


def test_two_gloo_processes_match_one_process(corpus, tmp_path):
    # One global batch holding every training utterance, no randomness: one optimiser step.
    # What DDP is responsible for is the averaged gradient, so that is what is compared: the
    # weights after one AdamW step are not, as AdamW moves each weight by about +-lr whatever
    # the size of its gradient, and float noise flips the sign of the tiny ones.
    common = ("epochs=1", "save_every_steps=0", "data.max_frames=100000", "data.max_utts=100",
              "data.length_jitter=0.0")
    single = tmp_path / "single"
    run_asr(tiny_train_args(corpus, single, *common))
    ddp = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # both ranks get half of the global batch
    run_asr(tiny_train_args(corpus, ddp, *common, "data.max_frames=50000", "data.max_utts=50"),
            env=env, prefix=torchrun(2))
    assert load_checkpoint(single / "last.pt")["train_state"]["step"] == 1
    assert load_checkpoint(ddp / "last.pt")["train_state"]["step"] == 1
    a, b = gradients(single / "last.pt"), gradients(ddp / "last.pt")
    scale = max(float(g.abs().max()) for g in a.values())
    for k in a:
        assert a[k].abs().max() > 0, k  # every parameter took part
        torch.testing.assert_close(b[k], a[k], rtol=1e-4, atol=1e-6 * scale, msg=k)


@pytest.mark.parametrize("backend", ["gloo", "nccl"])
def test_torchrun_one_process_trains_through_epoch_ends(backend, corpus, tmp_path):
    # Under torchrun the process group is used even with one process, so one GPU runs every
    # collective that four do; NCCL takes tensors on the GPU only.
    if backend == "nccl" and not torch.cuda.is_available():
        pytest.skip("NCCL needs a CUDA device; none here")
    device = "cuda" if backend == "nccl" else "cpu"
    out = tmp_path / "exp"
    proc = run_asr(tiny_train_args(corpus, out, "epochs=2", "patience=1", "save_every_steps=2")
                   + ["--device", device], prefix=torchrun(1))
    assert f"process group {backend}" in proc.stdout, proc.stdout
    assert (out / "done.json").exists()


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch):
    # torchrun --nproc_per_node=2 on a machine with one GPU: rank 1 has no GPU of its own, and
    # torch.cuda.set_device would fail with "invalid device ordinal" (seen on an H200 machine)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1",
                        "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit, match=r"2 processes on this machine, but 1 CUDA device is "
                                         r"visible.*--nproc_per_node=1.*--device cpu"):
        setup_runtime("auto")


def test_two_gloo_processes_resume_exactly(corpus, tmp_path):
    # Each rank draws its own SpecAugment masks, dropout and speed factors; a resumed run must
    # draw on each rank what that rank would have drawn.
    common = ("epochs=2", "save_every_steps=2", "data.max_utts=2", "model.dropout=0.2",
              "model.spec_augment={freq_masks: 1, freq_width: 4, time_masks: 1, time_width: 0.1}",
              "data.speed_perturb=[0.9, 1.0, 1.1]")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight = tmp_path / "straight"
    run_asr(tiny_train_args(corpus, straight, *common), env=env, prefix=torchrun(2))
    crashed = tmp_path / "crashed"
    proc = run_asr(tiny_train_args(corpus, crashed, *common), prefix=torchrun(2), check=False,
                   env=dict(env, ASR_FAULT="train_step:3"))
    assert proc.returncode != 0
    assert load_checkpoint(crashed / "last.pt")["train_state"]["step"] == 2
    run_asr(tiny_train_args(corpus, crashed, *common) + ["--resume"], env=env,
            prefix=torchrun(2))
    a, b = final_weights(straight / "last.pt"), final_weights(crashed / "last.pt")
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=0, atol=1e-6, msg=k)


def test_resume_refuses_an_edited_config_unless_told(corpus, tmp_path):
    out = tmp_path / "exp"
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 1\npatience: 0\n")
    args = tiny_train_args(corpus, out, "save_every_steps=0") + ["--config", config, "--resume"]
    run_asr(args)  # no last.pt yet: starts afresh
    proc = run_asr(args)  # the same config: resumes without a word about it
    assert "differ" not in proc.stdout + proc.stderr
    config.write_text("epochs: 2\npatience: 3\n")  # edited
    proc = run_asr(args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "epochs: 1 -> 2" in proc.stderr and "patience: 0 -> 3" in proc.stderr, proc.stderr
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 1  # nothing trained
    # the same values given with --set: what the user asks for is what the run holds
    proc = run_asr(args + ["--set", "epochs=2", "--set", "patience=3"], check=False)
    assert proc.returncode == 0, proc.stderr
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 2
    config.write_text("epochs: 3\npatience: 3\n")
    proc = run_asr(args + ["--accept-config-changes"])
    assert "epochs: 2 -> 3" in proc.stdout
    assert load_checkpoint(out / "last.pt")["train_state"]["epoch"] == 3


def copy_features(corpus, tmp_path):
    """A copy of the corpus' feature dirs, to be damaged."""
    root = tmp_path / "feats"
    shutil.copytree(corpus / "feats", root)
    return root


def test_non_finite_loss_skips_the_batch_on_every_rank(corpus, tmp_path):
    # One utterance with NaN frames: its batch is skipped (by both ranks, or DDP would hang in
    # the gradient all-reduce), the run goes on.
    feats = copy_features(corpus, tmp_path)
    bad = sorted(read_kaldi_text(corpus / "data" / "train" / "text"))[0]
    poison_features(feats / "train", [bad])
    out = tmp_path / "exp"
    args = tiny_train_args(corpus, out, "epochs=2", "max_bad_steps=2", "save_every_steps=0",
                           "data.max_utts=2")
    proc = run_asr(with_feats_root(args, feats), prefix=torchrun(2),
                   env=dict(os.environ, OMP_NUM_THREADS="1"), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "skipped 1 batch" in proc.stdout, proc.stdout
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["train_state"]["skipped_steps"] == 2  # one per epoch
    assert all(torch.isfinite(w).all() for w in ckpt["model"].values())


def test_non_finite_losses_in_a_row_end_the_run(corpus, tmp_path):
    feats = copy_features(corpus, tmp_path)
    poison_features(feats / "train", list(read_kaldi_text(corpus / "data" / "train" / "text")))
    out = tmp_path / "exp"
    args = tiny_train_args(corpus, out, "epochs=2", "max_bad_steps=2", "save_every_steps=0")
    proc = run_asr(with_feats_root(args, feats), check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "non-finite loss in 3 batches in a row" in proc.stderr, proc.stderr


def test_a_log_gets_a_progress_line_every_few_seconds_not_every_step(corpus, tmp_path):
    # stdout is a pipe here, as in `asr train ... > train.log`: the bar is redrawn at its
    # interval (5 s), so a run of 12 quick steps draws it at its start and end only
    out = tmp_path / "exp"
    proc = run_asr(tiny_train_args(corpus, out, "epochs=1", "save_every_steps=0",
                                   "data.max_utts=1"))
    with open(out / "metrics.csv") as f:
        steps = int(next(csv.DictReader(f))["step"])
    draws = proc.stdout.count("epoch 1/1:")
    assert steps == 12 and draws <= 4, (steps, draws, proc.stdout)


def test_speaker_cmn_divides_by_the_spread_left_after_the_speaker_means(tone_corpus, tmp_path):
    """With speaker CMN the model sees features minus their speaker's mean, so its global
    normalisation divides by the standard deviation of those, not of the raw features (which
    also holds the differences between speakers)."""
    import numpy as np

    from asr.datadir import read_data_dir
    from asr.featstore import FeatureStore

    out = tmp_path / "exp"
    run_asr(tiny_train_args(tone_corpus, out, "epochs=1", "model.utterance_cmn=true",
                            "model.speaker_cmn=true", "save_every_steps=0"))
    store = FeatureStore(tone_corpus / "feats" / "train")
    by_speaker: dict[str, list] = {}
    for u in read_data_dir(tone_corpus / "data" / "train"):
        by_speaker.setdefault(u.speaker, []).append(np.asarray(store[u.utt_id], np.float64))
    centred = np.concatenate([x - np.concatenate(xs).mean(axis=0)
                              for xs in by_speaker.values() for x in xs])
    std = load_checkpoint(out / "last.pt")["model"]["cmvn.std"].numpy()
    np.testing.assert_allclose(std, centred.std(axis=0), rtol=1e-4)
    assert not np.allclose(std, store.cmvn()[1], rtol=1e-2)  # the raw spread is another
