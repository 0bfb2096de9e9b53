"""`asr decode`, `asr tune-lm` and `asr results` on the tone-language model (conftest.py)."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from helpers_train import SR, extract, make_tone_set, run_asr, sentences, tiny_train_args, tone_wave

from asr import recognize
from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.datadir import Utterance, read_data_dir, write_data_dir
from asr.recognize import Recognizer
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
    assert "| dev | last.pt | greedy |" in table
    assert "| dev | last.pt | beam 8 + lm.arpa (alpha 0.3, beta 0.5) |" in table
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


# ---------------------------------------------------------------------------------------------
# Helpers for the tests below

NOISE = 0.0015  # added to tone waves: the toy model then drops spaces, which a word LM restores


def noisy_tone_set(root: Path, texts: list[str], noise: float = NOISE, seed: int = 100,
                   lower: bool = False) -> Path:
    """A data dir ROOT/data of `texts` as tone waves with extra noise the model never heard;
    with `lower`, its transcripts are in lower case (as `asr prep --case lower` writes them)."""
    audio = root / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    utts = []
    for i, text in enumerate(texts):
        wave = tone_wave(text, seed=seed + i)
        wave += noise * np.random.default_rng(i).standard_normal(len(wave)).astype(np.float32)
        sf.write(audio / f"u{i:02d}.wav", wave, SR, subtype="PCM_16")
        utts.append(Utterance(f"s0-u{i:02d}", "s0", str(audio / f"u{i:02d}.wav"),
                              text.lower() if lower else text))
    return write_data_dir(root / "data", utts)


def checkpoint_with(tone_model: Path, path: Path, **changes) -> Path:
    """A copy of the tone model's checkpoint with keys set (None: removed)."""
    ckpt = load_checkpoint(tone_model / "last.pt")
    for key, value in changes.items():
        if value is None:
            ckpt.pop(key, None)
        else:
            ckpt[key] = value
    save_checkpoint(ckpt, path)
    return path


def tone_lm(tone_model_corpus: Path, path: Path, lower: bool = False) -> Path:
    """A bigram LM of the training transcripts (lower-cased with `lower`)."""
    text = (tone_model_corpus / "data" / "train" / "text").read_text()
    src = path.with_suffix(".txt")
    src.write_text("".join(f"{line.split(' ', 1)[1].lower() if lower else line.split(' ', 1)[1]}"
                           for line in text.splitlines(keepends=True)))
    run_asr(["lm", src, "--plain", "--order", "2", "--out", path])
    return path


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------------------------------------
# Beam + LM against greedy; tune-lm finds what decode confirms


def test_beam_with_lm_beats_greedy_on_noisy_speech(tone_model_corpus, tone_model, tmp_path):
    """With a little more noise than in training the model drops spaces between words; the word
    LM's bonus and its vocabulary put them back, so beam + LM must beat greedy by far."""
    data = noisy_tone_set(tmp_path, sentences(20, 5))
    lm = tone_lm(tone_model_corpus, tmp_path / "lm.arpa")
    ckpt = tone_model / "last.pt"
    run_asr(["decode", "--checkpoint", ckpt, data, "--out", tmp_path / "greedy"])
    run_asr(["decode", "--checkpoint", ckpt, data, "--out", tmp_path / "beam_lm", "--decoder",
             "beam", "--beam", "8", "--lm", lm, "--alpha", "0.5", "--beta", "1.0"])
    greedy, beam_lm = summary(tmp_path / "greedy")["wer"], summary(tmp_path / "beam_lm")["wer"]
    assert greedy > 25  # the set is hard enough for greedy to fail on
    assert beam_lm < greedy - 15, (greedy, beam_lm)


def test_tune_lm_best_is_what_decode_gives(tone_model_corpus, tone_model, tmp_path):
    """On a set noisy enough that the LM's weight and bonus matter, the grid's best point is not
    alpha = beta = 0, and `asr decode` at the best point and at alpha = beta = 0 gives the WERs
    the grid reports for them."""
    data = noisy_tone_set(tmp_path, sentences(20, 5), noise=0.002)
    lm = tone_lm(tone_model_corpus, tmp_path / "lm.arpa")
    ckpt = tone_model / "last.pt"
    out = tmp_path / "grid.json"
    proc = run_asr(["tune-lm", "--checkpoint", ckpt, data, "--lm", lm, "--beam", "4",
                    "--alphas", "0.0", "0.5", "--betas", "0.0", "2.0", "--out", out])
    grid = json.loads(out.read_text())
    assert len(grid["grid"]) == 4
    best = grid["best"]
    no_lm = next(g for g in grid["grid"] if g["alpha"] == 0.0 and g["beta"] == 0.0)
    assert (best["alpha"], best["beta"]) != (0.0, 0.0) and best["wer"] < no_lm["wer"] - 10, grid
    marked = [line for line in proc.stdout.splitlines() if line.endswith("<- best")]
    assert len(marked) == 1 and marked[0].split()[:2] == [f"{best['alpha']:.2f}",
                                                           f"{best['beta']:.2f}"]
    for point, name in ((best, "best"), (no_lm, "no_lm")):
        run_asr(["decode", "--checkpoint", ckpt, data, "--out", tmp_path / name, "--decoder",
                 "beam", "--beam", "4", "--lm", lm, "--alpha", point["alpha"],
                 "--beta", point["beta"]])
        assert summary(tmp_path / name)["wer"] == pytest.approx(point["wer"]), name


# ---------------------------------------------------------------------------------------------
# The text normalisation of prep travels in the checkpoint


def test_training_stores_the_normalisation_of_prep(tmp_path):
    norm = {"case": "upper", "strip_punct": True, "keep_chars": "'"}
    make_tone_set(tmp_path, "train", sentences(4, 0))
    make_tone_set(tmp_path, "dev", sentences(2, 1))
    (tmp_path / "data" / "prep.json").write_text(json.dumps({"normalization": norm}))
    extract(tmp_path, "train")
    extract(tmp_path, "dev", cmvn_from="train")
    run_asr(tiny_train_args(tmp_path, tmp_path / "exp", "epochs=1", "save_every_steps=0"))
    for name in ("last.pt", "best.pt"):
        assert load_checkpoint(tmp_path / "exp" / name)["text_norm"] == norm, name


def test_decode_normalises_references_and_lm_as_the_model_was_trained(
        tone_model_corpus, tone_model, tmp_path):
    """A set prepared with --case lower and an LM of lower-case text, decoded with a model
    trained on upper-case text: the references and the LM's words are normalised as the
    model's training text was, so the score is the same as with upper-case ones."""
    norm = {"case": "upper", "strip_punct": True, "keep_chars": "'"}
    ckpt = checkpoint_with(tone_model, tmp_path / "norm.pt", text_norm=norm)
    texts = sentences(20, 5)
    upper = noisy_tone_set(tmp_path / "upper", texts)
    lower = noisy_tone_set(tmp_path / "lower", texts, lower=True)
    (lower.parent / "prep.json").write_text(json.dumps(
        {"normalization": {**norm, "case": "lower"}}))
    lm_upper = tone_lm(tone_model_corpus, tmp_path / "upper.arpa")
    lm_lower = tone_lm(tone_model_corpus, tmp_path / "lower.arpa", lower=True)
    beam = ["--decoder", "beam", "--beam", "8", "--alpha", "0.5", "--beta", "1.0"]
    run_asr(["decode", "--checkpoint", ckpt, upper, "--out", tmp_path / "up", *beam,
             "--lm", lm_upper])
    proc = run_asr(["decode", "--checkpoint", ckpt, lower, "--out", tmp_path / "low", *beam,
                    "--lm", lm_lower])
    assert summary(tmp_path / "up")["wer"] < 20
    assert summary(tmp_path / "low")["wer"] == summary(tmp_path / "up")["wer"]
    assert read_kaldi_text(tmp_path / "low" / "ref.txt") == read_kaldi_text(upper / "text")
    assert "case lower" in proc.stderr and "case upper" in proc.stderr  # the mismatch is named


def test_old_checkpoint_without_normalisation_warns_on_a_foreign_set_and_lm(
        tone_model_corpus, tone_model, tmp_path):
    """No normalisation stored: references and LM are taken as they are, but a set or an LM
    whose characters mostly are not the model's tokens is named on stderr."""
    ckpt = checkpoint_with(tone_model, tmp_path / "old.pt", text_norm=None)
    texts = sentences(4, 5)
    lower = noisy_tone_set(tmp_path / "lower", texts, noise=0.0, lower=True)
    lm_lower = tone_lm(tone_model_corpus, tmp_path / "lower.arpa", lower=True)
    proc = run_asr(["decode", "--checkpoint", ckpt, lower, "--out", tmp_path / "low",
                    "--decoder", "beam", "--lm", lm_lower])
    assert summary(tmp_path / "low")["wer"] == 100.0
    assert "references" in proc.stderr and "not among the model's tokens" in proc.stderr
    assert f"{lm_lower}" in proc.stderr and "outside the model's tokens" in proc.stderr
    upper = noisy_tone_set(tmp_path / "upper", texts, noise=0.0)
    proc = run_asr(["decode", "--checkpoint", ckpt, upper, "--out", tmp_path / "up"])
    assert summary(tmp_path / "up")["wer"] == 0.0 and "warning" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# One bad utterance is skipped, not its batch; batches are streamed


def test_an_utterance_shorter_than_a_frame_is_skipped_alone(tone_model_corpus, tone_model,
                                                            tmp_path):
    texts = ["ABC", "CAB DEED", "BAD", "DEED ACE", "BEAD", "CEDE"]
    data = make_tone_set(tmp_path, "set", texts)
    short = tmp_path / "audio" / "set" / "s1_005.wav"
    sf.write(short, np.zeros(int(0.006 * SR), np.float32), SR)  # 6 ms: no 25 ms frame fits
    proc = run_asr(["decode", "--checkpoint", tone_model / "last.pt", data,
                    "--out", tmp_path / "dec"])
    assert f"skipping s1-set005: {short}" in proc.stderr and "shorter than one" in proc.stderr
    assert list(summary(tmp_path / "dec")["failed"]) == ["s1-set005"]
    hyps = read_kaldi_text(tmp_path / "dec" / "hyp.txt")
    refs = read_kaldi_text(data / "text")
    assert {u: hyps[u] for u in hyps} == {u: t for u, t in refs.items() if u != "s1-set005"}
    lm = tone_lm(tone_model_corpus, tmp_path / "lm.arpa")
    proc = run_asr(["tune-lm", "--checkpoint", tone_model / "last.pt", data, "--lm", lm,
                    "--beam", "4", "--alphas", "0.5", "--betas", "1.0", "--out",
                    tmp_path / "grid.json"])
    assert "skipping s1-set005" in proc.stderr
    assert json.loads((tmp_path / "grid.json").read_text())["best"]["wer"] < 20


def test_decode_loads_audio_batch_by_batch(tone_model, tmp_path, monkeypatch):
    """Waves are read in length order (from the headers) one batch at a time, each batch run
    before the next is read; a wave is never held past its batch."""
    data = make_tone_set(tmp_path, "set", sentences(12, 3))
    recognizer = Recognizer.from_checkpoint(tone_model / "last.pt", "cpu")
    events = []
    real_load, real_forward = recognize.load_audio, recognizer.log_probs

    def load(path, sample_rate):
        wave = real_load(path, sample_rate)
        events.append(("load", len(wave)))
        return wave

    def forward(waves, cmn_means=None):
        events.append(("forward", len(waves)))
        return real_forward(waves, cmn_means)

    monkeypatch.setattr(recognize, "load_audio", load)
    monkeypatch.setattr(recognize, "BATCH_AUDIO_SECONDS", 4.0)  # 2 to 3 utterances a batch
    recognizer.log_probs = forward
    acoustic = recognize.run_acoustic(recognizer, data)
    assert len(acoustic.utt_ids) == 12 and not acoustic.failed
    forwards = [i for i, e in enumerate(events) if e[0] == "forward"]
    assert len(forwards) >= 4
    start = 0
    for i in forwards:  # each forward pass takes the waves read since the last one, no more
        assert i - start == events[i][1] and all(e[0] == "load" for e in events[start:i])
        start = i + 1
    lengths = [e[1] for e in events if e[0] == "load"]
    assert lengths == sorted(lengths)
    for utt_id, log_probs in zip(acoustic.utt_ids, acoustic.log_probs):  # batch == single
        wave = real_load(next(u.audio for u in read_data_dir(data) if u.utt_id == utt_id), SR)
        single, out_lens = real_forward([wave])
        assert torch.allclose(log_probs, single[0, : out_lens[0]], atol=1e-4)


# ---------------------------------------------------------------------------------------------
# N-best lists, word times (CTM) and hotwords from `asr decode`


def read_ctm(path: Path) -> dict[str, list[tuple[float, float, str, float]]]:
    """hyp.ctm -> {utt_id: [(start, duration, word, confidence), ...]} in file order."""
    words: dict[str, list] = {}
    for line in path.read_text().splitlines():
        utt_id, channel, start, duration, word, conf = line.split()
        assert channel == "1"
        words.setdefault(utt_id, []).append((float(start), float(duration), word, float(conf)))
    return words


def test_decode_writes_nbest_lists_and_word_times(tone_model_corpus, tone_model, tmp_path):
    """--nbest 3: nbest.txt holds 3 distinct hypotheses per utterance, best first, the first
    the one in hyp.txt; hyp.ctm spells hyp.txt's words, in time order, inside each utterance."""
    from asr.outputs import parse_nbest

    dev = tone_model_corpus / "data" / "dev"
    out = tmp_path / "beam"
    run_asr(["decode", "--checkpoint", tone_model / "last.pt", dev, "--out", out,
             "--decoder", "beam", "--nbest", "3"])
    hyps = read_kaldi_text(out / "hyp.txt")
    entries = parse_nbest((out / "nbest.txt").read_text().splitlines())
    by_utt: dict[str, list] = {}
    for e in entries:
        by_utt.setdefault(e.utt_id, []).append(e)
    assert list(by_utt) == sorted(hyps) and len(hyps) == 8
    for utt_id, nbest in by_utt.items():
        assert [e.rank for e in nbest] == [1, 2, 3], utt_id
        assert len({e.text for e in nbest}) == 3, nbest
        assert [e.score for e in nbest] == sorted((e.score for e in nbest), reverse=True)
        assert nbest[0].text == hyps[utt_id]
    assert summary(out)["n_best"] == 3 and summary(out)["hotwords"] == []

    durations = {u.utt_id: sf.info(u.audio).duration for u in read_data_dir(dev)}
    for name in ("beam", "greedy"):  # a greedy decode writes hyp.ctm too
        if name == "greedy":
            out = tmp_path / "greedy"
            run_asr(["decode", "--checkpoint", tone_model / "last.pt", dev, "--out", out])
            hyps = read_kaldi_text(out / "hyp.txt")
            assert not (out / "nbest.txt").exists()
        ctm = read_ctm(out / "hyp.ctm")
        assert {u: " ".join(w[2] for w in words) for u, words in ctm.items()} == {
            u: t for u, t in hyps.items() if t}
        for utt_id, words in ctm.items():
            starts = [w[0] for w in words]
            assert starts == sorted(starts) and starts[0] >= 0, words
            assert all(w[1] > 0 and w[0] + w[1] <= durations[utt_id] + 1e-9 for w in words)
            for (s, d, _, _), (s2, _, _, _) in zip(words, words[1:]):
                assert s + d <= s2 + 1e-9, words  # a word ends before the next starts
            assert all(0 <= w[3] <= 1 for w in words)


def test_nbest_and_hotwords_need_the_beam_decoder(tone_model_corpus, tone_model, tmp_path):
    dev = tone_model_corpus / "data" / "dev"
    args = ["decode", "--checkpoint", tone_model / "last.pt", dev, "--out", tmp_path / "d"]
    for extra, option in ((["--nbest", "5"], "--nbest"), (["--hotword", "CAB"], "--hotword")):
        proc = run_asr(args + extra, check=False)
        assert proc.returncode == 2 and f"{option} needs --decoder beam" in proc.stderr, extra
    for bad in ("CAB:heavy", "CAB DEED", ":2"):  # not WORD[:WEIGHT]: refused by argparse
        proc = run_asr(args + ["--decoder", "beam", "--hotword", bad], check=False)
        assert proc.returncode == 2 and "argument --hotword: hotword" in proc.stderr, bad
    proc = run_asr(args + ["--decoder", "beam", "--nbest", "0"], check=False)
    assert proc.returncode == 2 and "argument --nbest" in proc.stderr
    proc = run_asr(args + ["--decoder", "beam", "--hotword", "XYZ"], check=False)
    assert proc.returncode == 2 and "hotword 'XYZ'" in proc.stderr  # cannot be spelled


def test_decode_hotwords_are_normalised_and_recorded(tone_model, tmp_path):
    """Hotwords are normalised as the training transcripts were (here: upper case) and
    summary.json records them with their weights."""
    norm = {"case": "upper", "strip_punct": True, "keep_chars": "'"}
    ckpt = checkpoint_with(tone_model, tmp_path / "norm.pt", text_norm=norm)
    data = noisy_tone_set(tmp_path, sentences(4, 5), noise=0.0)
    out = tmp_path / "hot"
    run_asr(["decode", "--checkpoint", ckpt, data, "--out", out, "--decoder", "beam",
             "--hotword", "cab", "--hotword", "Deed:2.5"])
    assert summary(out)["hotwords"] == [["CAB", 5.0], ["DEED", 2.5]]
    assert summary(out)["n_best"] is None and summary(out)["wer"] == 0.0


def test_cli_beam_defaults_are_the_decoders():
    """One place for the defaults: asr decode and asr transcribe take asr.decoding's."""
    from asr.cli import build_parser
    from asr.decoding import DEFAULT_ALPHA, DEFAULT_BEAM, DEFAULT_BETA

    for argv in (["decode", "d", "--checkpoint", "c.pt", "--out", "o"],
                 ["transcribe", "x.wav", "--checkpoint", "c.pt"]):
        args = build_parser(argv).parse_args(argv)
        assert (args.beam, args.alpha, args.beta) == (DEFAULT_BEAM, DEFAULT_ALPHA, DEFAULT_BETA)
    argv = ["tune-lm", "d", "--checkpoint", "c.pt", "--lm", "lm.arpa"]
    assert build_parser(argv).parse_args(argv).beam == DEFAULT_BEAM


def test_speaker_cmn_model_trains_and_decodes_with_its_speakers_means(tone_corpus, tmp_path):
    """A speaker-CMN model: training and decoding subtract the same speaker means, decoding's
    computed from the audio (a first pass) as training's were from the feature store."""
    from asr.data import speaker_means
    from asr.featstore import FeatureStore

    out = tmp_path / "exp"
    run_asr(tiny_train_args(tone_corpus, out, "epochs=1", "model.utterance_cmn=true",
                            "model.speaker_cmn=true", "save_every_steps=0"))
    recognizer = Recognizer.from_checkpoint(out / "last.pt", "cpu")
    assert recognizer.speaker_cmn
    dev = tone_corpus / "data" / "dev"
    utts = read_data_dir(dev)
    from_audio = recognize.speaker_feature_means(recognizer, utts, {})
    from_store = speaker_means(FeatureStore(tone_corpus / "feats" / "dev"), utts)
    assert from_audio.keys() == from_store.keys() == {u.utt_id for u in utts}
    for u in utts:
        np.testing.assert_allclose(from_audio[u.utt_id], from_store[u.utt_id], rtol=1e-4,
                                   atol=1e-4)
    acoustic = recognize.run_acoustic(recognizer, dev)
    for utt_id, lp in zip(acoustic.utt_ids, acoustic.log_probs):
        wave = recognize.load_audio(next(u.audio for u in utts if u.utt_id == utt_id), SR)
        with_mean, n = recognizer.log_probs([wave], [from_audio[utt_id]])
        own_mean, _ = recognizer.log_probs([wave])
        assert torch.allclose(lp, with_mean[0, : int(n[0])], atol=1e-4)
        assert not torch.allclose(lp, own_mean[0, : int(n[0])], atol=1e-4)
        assert not with_mean.requires_grad  # inference builds no graph
    run_asr(["decode", "--checkpoint", out / "last.pt", dev, "--out", tmp_path / "decode"])
    assert read_kaldi_text(tmp_path / "decode" / "hyp.txt").keys() == {u.utt_id for u in utts}
