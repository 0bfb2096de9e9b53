"""asr pick and the RESULTS table: the checkpoint and LM weights are chosen on dev alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.cli import main
from asr.results import write_results
from asr.selection import pick


def summary(exp: Path, set_name: str, ckpt: str, kind: str, wer: float, cer: float = 1.0,
            alpha: float = 0.5, beta: float = 1.0) -> None:
    out = exp / f"decode_{set_name}_{ckpt}_{kind}"
    out.mkdir(parents=True)
    beam = kind == "beam_lm"
    out.joinpath("summary.json").write_text(json.dumps({
        "set": set_name, "checkpoint": str(exp / f"{ckpt}.pt"), "wer": wer, "cer": cer,
        "utterances": 10, "failed": {}, "decoder": "beam" if beam else "greedy", "beam": 16,
        "lm": "/x/lm.arpa" if beam else None, "alpha": alpha, "beta": beta,
        "acoustic_seconds": 1.0, "decode_seconds": 1.0, "audio_seconds": 100.0}))


def test_pick_takes_the_lowest_dev_wer_with_the_lm_and_ignores_test(tmp_path):
    summary(tmp_path, "dev", "best", "greedy", 20.0)
    summary(tmp_path, "dev", "best", "beam_lm", 12.0, alpha=0.6, beta=2.0)
    summary(tmp_path, "dev", "avg", "greedy", 21.0)
    summary(tmp_path, "dev", "avg", "beam_lm", 11.5, alpha=0.4, beta=1.0)
    summary(tmp_path, "test", "best", "beam_lm", 1.0)  # a test figure must not choose
    choice = pick(tmp_path, "dev")
    assert Path(choice["checkpoint"]).name == "avg.pt"
    assert (choice["alpha"], choice["beta"]) == (0.4, 1.0)
    assert choice["candidates"][str(tmp_path / "best.pt")] == {"greedy": 20.0, "beam": 12.0}


def test_pick_breaks_ties_on_greedy_wer(tmp_path):
    for ckpt, greedy in (("best", 20.0), ("avg", 19.0)):
        summary(tmp_path, "dev", ckpt, "greedy", greedy)
        summary(tmp_path, "dev", ckpt, "beam_lm", 12.0)
    assert Path(pick(tmp_path, "dev")["checkpoint"]).name == "avg.pt"


def test_pick_cli_prints_checkpoint_and_weights(tmp_path, capsys):
    summary(tmp_path, "dev", "best", "beam_lm", 12.0, alpha=0.8, beta=3.0)
    assert main(["pick", str(tmp_path), "--set", "dev"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "best.pt"), "0.8", "3.0"]
    assert json.loads((tmp_path / "chosen.json").read_text())["chosen_on"] == "dev"


def test_pick_without_dev_decodes_is_an_error(tmp_path):
    summary(tmp_path, "test", "best", "greedy", 1.0)
    with pytest.raises(FileNotFoundError, match="no decode of set 'dev'"):
        pick(tmp_path, "dev")


def test_results_say_which_checkpoint_and_where_the_weights_came_from(tmp_path):
    summary(tmp_path, "dev", "best", "greedy", 20.0)
    summary(tmp_path, "dev", "best", "beam_lm", 12.0, alpha=0.6, beta=2.0)
    summary(tmp_path, "test", "best", "beam_lm", 9.0, alpha=0.6, beta=2.0)
    (tmp_path / "tune_lm_best.json").write_text(json.dumps({"best": {"alpha": 0.6, "beta": 2.0}}))
    assert main(["pick", str(tmp_path)]) == 0
    table = write_results(tmp_path, "t").read_text()
    assert "| dev | best.pt | greedy | 20.00 |" in table
    row = "| test | best.pt | beam 16 + lm.arpa (alpha 0.6, beta 2.0, tuned on dev) | 9.00 |"
    assert row in table
    assert "Chosen on dev (lowest dev WER with the LM): best.pt" in table
