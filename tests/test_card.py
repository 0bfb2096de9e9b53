"""Model cards: training writes one into every checkpoint and beside best.pt (model.json); it
records what the model was trained on and how well it did; `asr info` prints it for checkpoints
(old ones without a card too) and exported models; RESULTS.md shows the card's figures."""

import csv
import json

import pytest
from helpers_train import run_asr, tiny_train_args

from asr.card import card_of, format_card, read_prep, results_lines, training_data
from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.datadir import read_data_dir


def test_training_writes_the_card_into_checkpoints_and_model_json(tone_model,
                                                                   tone_model_corpus):
    best = load_checkpoint(tone_model / "best.pt")
    card = best["card"]
    assert json.loads((tone_model / "model.json").read_text()) == card
    assert card["tokens"] == best["tokens"] and card["features"] == best["feature_config"]
    assert card["model"]["config"] == best["model_config"]
    assert card["model"]["parameters"] == sum(
        v.numel() for k, v in best["model"].items() if not k.startswith("cmvn."))
    train = card["data"]["train"]
    assert train["name"] == "train"
    assert train["utterances"] + train["skipped"] == len(
        read_data_dir(tone_model_corpus / "data" / "train"))
    assert 0 < train["hours"] < 1 and card["data"]["dev"]["utterances"] == 8
    # the dev figures are those of the epoch best.pt is, as metrics.csv has them
    with (tone_model / "metrics.csv").open() as f:
        rows = {int(r["epoch"]) + 1: r for r in csv.DictReader(f)}
    row = rows[card["dev"]["epoch"]]
    assert card["dev"]["wer"] == pytest.approx(float(row["dev_wer"]))
    assert card["dev"]["cer"] == pytest.approx(float(row["dev_cer"]))
    assert card["dev"]["cer"] == pytest.approx(card["training"]["best_dev_cer"])
    created = card["created"]
    commit = run_asr_git()
    assert created["commit"] == commit and created["date"].endswith("UTC")
    assert "cores" in created["hardware"]
    last = load_checkpoint(tone_model / "last.pt")["card"]  # last.pt: the last epoch's
    assert last["dev"]["epoch"] == last["training"]["epochs"] == 60


def run_asr_git() -> str:
    import subprocess

    from asr.card import REPO

    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else "unknown"


def test_training_data_reads_prep_json(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "prep.json").write_text(json.dumps({
        "corpus": "an4", "src": "/corpora/an4",
        "normalization": {"case": "upper", "strip_punct": True}}))

    class Set:  # what training_data reads of a CTCDataset
        def __init__(self, n, seconds):
            self.n, self.audio_seconds, self.skipped = n, seconds, {"too short": 1}

        def __len__(self):
            return self.n

    data = training_data(tmp_path / "train", tmp_path / "dev", Set(10, 3600.0), Set(2, 36.0))
    assert data["corpus"] == "an4" and data["source"] == "/corpora/an4"
    assert data["normalization"] == {"case": "upper", "strip_punct": True}
    assert data["train"] == {"name": "train", "dir": str((tmp_path / "train").resolve()),
                             "utterances": 10, "skipped": 1, "hours": 1.0}
    assert read_prep(tmp_path / "nowhere" / "train") == {}


def test_asr_info_prints_the_card(tone_model, tmp_path):
    out = run_asr(["info", tone_model / "best.pt"]).stdout
    card = load_checkpoint(tone_model / "best.pt")["card"]
    assert out.startswith("model card of ")
    for needle in ("1 x BiLSTM 64, subsampling x2", "tokens:", "train:", "dev (greedy):",
                   f"WER {card['dev']['wer']:.2f}%", "commit:", "hardware:", "features:"):
        assert needle in out, needle
    as_json = json.loads(run_asr(["info", tone_model / "best.pt", "--json"]).stdout)
    assert as_json == card
    assert run_asr(["info", tone_model / "model.json"]).stdout.splitlines()[1:] == \
        out.splitlines()[1:]
    pytest.importorskip("onnxruntime")
    run_asr(["export", "--checkpoint", tone_model / "best.pt", "--format", "onnx",
             "--out", tmp_path / "m.onnx"])
    run_asr(["export", "--checkpoint", tone_model / "best.pt", "--format", "torchscript",
             "--out", tmp_path / "m.ts"])
    for exported in ("m.onnx", "m.ts"):
        shown = run_asr(["info", tmp_path / exported]).stdout
        assert shown.splitlines()[1:] == out.splitlines()[1:], exported


def test_asr_info_of_a_checkpoint_written_before_cards(tone_model, tmp_path):
    ckpt = load_checkpoint(tone_model / "best.pt")
    del ckpt["card"]
    save_checkpoint(ckpt, tmp_path / "old.pt")
    out = run_asr(["info", tmp_path / "old.pt"]).stdout
    assert "1 x BiLSTM 64" in out and "tokens:" in out
    assert "data:         not recorded" in out and "written before model cards" in out
    assert card_of(ckpt)["created"]["commit"] is None


def test_results_take_their_figures_from_the_card(tone_model):
    run_asr(["results", tone_model, "--title", "tones"])
    table = (tone_model / "RESULTS.md").read_text()
    card = card_of(load_checkpoint(tone_model / "last.pt"))
    for line in results_lines(card):
        assert line in table
    assert f"hardware: {card['created']['hardware']}" in table
    assert format_card(card)  # and the same card prints


def test_averaged_checkpoint_carries_its_own_dev_figures(tone_corpus, tmp_path):
    out = tmp_path / "exp"
    proc = run_asr(tiny_train_args(tone_corpus, out, "epochs=2", "average_last=2",
                                   "save_every_steps=0"))
    dev = load_checkpoint(out / "avg.pt")["card"]["dev"]
    assert dev["averaged_epochs"] == 2 and dev["epoch"] == 2
    assert f"avg of 2 epochs: dev CER {dev['cer']:.2f}%, WER {dev['wer']:.2f}%" in proc.stdout
    assert "averaged over its last 2 epochs" in run_asr(["info", out / "avg.pt"]).stdout
