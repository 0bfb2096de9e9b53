"""End-to-end training on the synthetic tone language: overfitting, exact resume after SIGKILL,
and DDP over two gloo processes matching one process."""

import csv
import os
import sys

import pytest
import torch
from helpers_train import run_asr, tiny_train_args

from asr.checkpoint import load_checkpoint
from asr.scoring import read_kaldi_text
from asr.train import OptimConfig, lr_lambda


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


def test_two_gloo_processes_match_one_process(corpus, tmp_path):
    # one global batch holding every training utterance, no randomness: one optimiser step
    common = ("epochs=1", "save_every_steps=0", "data.max_frames=100000", "data.max_utts=100",
              "data.length_jitter=0.0")
    single = tmp_path / "single"
    run_asr(tiny_train_args(corpus, single, *common))
    ddp = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "asr.cli"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # both ranks get half of the global batch
    run_asr(tiny_train_args(corpus, ddp, *common, "data.max_frames=50000", "data.max_utts=50"),
            env=env, prefix=torchrun)
    a, b = final_weights(single / "last.pt"), final_weights(ddp / "last.pt")
    assert load_checkpoint(single / "last.pt")["train_state"]["step"] == 1
    assert load_checkpoint(ddp / "last.pt")["train_state"]["step"] == 1
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
