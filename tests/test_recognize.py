"""`asr decode`, `asr tune-lm` and `asr results` on the tone-language model (conftest.py)."""

import json

from helpers_train import make_tone_set, run_asr

from asr.scoring import read_kaldi_text


def test_decode_greedy_and_beam_with_lm_then_results(tone_model_corpus, tone_model, tmp_path):
    """Both decoders on the dev set, then the results table from what they wrote."""
    dev = tone_model_corpus / "data" / "dev"
    lm = tmp_path / "lm.arpa"
    run_asr(["lm", tone_model_corpus / "data" / "train" / "text", "--order", "2", "--out", lm])
    exp = tmp_path / "exp"
    exp.mkdir()
    for name in ("last.pt", "metrics.csv"):
        (exp / name).write_bytes((tone_model / name).read_bytes())
    greedy = run_asr(["decode", "--checkpoint", exp / "last.pt", dev, "--out",
                      exp / "decode_dev_greedy"])
    beam = run_asr(["decode", "--checkpoint", exp / "last.pt", dev, "--out",
                    exp / "decode_dev_beam_lm", "--decoder", "beam", "--beam", "8", "--lm", lm,
                    "--alpha", "0.3", "--beta", "0.5"])
    for proc, out in ((greedy, "decode_dev_greedy"), (beam, "decode_dev_beam_lm")):
        assert proc.stdout.startswith("%WER ")
        hyps = read_kaldi_text(exp / out / "hyp.txt")
        assert hyps.keys() == read_kaldi_text(dev / "text").keys()
        summary = json.loads((exp / out / "summary.json").read_text())
        assert summary["utterances"] == 8 and summary["failed"] == {}
        assert (exp / out / "wer.txt").read_text().startswith(f"%WER {summary['wer']:.2f}")
    assert json.loads((exp / "decode_dev_beam_lm" / "summary.json").read_text())["lm"] == str(lm)

    run_asr(["results", exp, "--title", "tones"])
    table = (exp / "RESULTS.md").read_text()
    assert table.startswith("# Results: tones")
    assert "| dev | greedy |" in table
    assert "| dev | beam 8 + lm.arpa (alpha 0.3, beta 0.5) |" in table
    assert "M parameters" in table and "| epoch | train loss |" in table and "hardware:" in table


def test_decode_reports_unreadable_audio_and_strict(tone_model, tmp_path):
    data = make_tone_set(tmp_path, "set", ["ABC", "CAB DEED", "BAD"])
    broken = tmp_path / "audio" / "set" / "s1_001.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEbroken")
    args = ["decode", "--checkpoint", tone_model / "last.pt", data, "--out", tmp_path / "dec"]
    proc = run_asr(args)
    assert f"{broken}: unreadable audio" in proc.stderr
    assert "1 utterance(s) skipped" in proc.stderr
    summary = json.loads((tmp_path / "dec" / "summary.json").read_text())
    assert list(summary["failed"]) == ["s1-set001"] and summary["utterances"] == 2
    assert "MISSING HYPOTHESES: s1-set001" in (tmp_path / "dec" / "wer.txt").read_text()
    assert run_asr(args + ["--strict"], check=False).returncode == 1


def test_tune_lm_grid(tone_model_corpus, tone_model, tmp_path):
    lm = tmp_path / "lm.arpa"
    run_asr(["lm", tone_model_corpus / "data" / "train" / "text", "--order", "2", "--out", lm])
    out = tmp_path / "grid.json"
    dev = tone_model_corpus / "data" / "dev"
    proc = run_asr(["tune-lm", "--checkpoint", tone_model / "last.pt", dev, "--lm", lm,
                    "--beam", "4", "--alphas", "0.0", "0.5", "--betas", "0.0", "1.0",
                    "--out", out])
    grid = json.loads(out.read_text())
    assert len(grid["grid"]) == 4
    assert grid["best"] == min(grid["grid"], key=lambda g: (g["wer"], g["cer"]))
    assert "<- best" in proc.stdout
