"""`asr transcribe` with a model of the tone language (conftest.py): a long recording cut at its
pauses gets word times that land on the true utterance boundaries; formats; unreadable files."""

import json

import numpy as np
import pytest
import soundfile as sf
import soxr
from helpers_train import SR, run_asr, sentences, tone_wave

from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.datadir import Utterance, write_data_dir
from asr.decoding import GreedyDecoder
from asr.recognize import Recognizer
from asr.scoring import read_kaldi_text, wer
from asr.transcribe import (
    CUE_MAX_S,
    Word,
    find_chunks,
    subtitle_cues,
    to_json,
    to_srt,
    transcribe_wave,
)

LEAD_S, TAIL_S = 0.1, 0.14  # silence tone_wave puts before the first and after the last tone
NOISE_FLOOR = 0.003  # the noise tone_wave adds
SPACE_S = 0.12  # the space tone and the gap after it


def long_recording(n: int, seed: int):
    """n tone utterances with pauses of 0.4-1.5 s between them (at the utterances' noise floor)
    -> (wave, texts, true (start, end) of each utterance's first and last letter in seconds).

    In the tone language a word ends only with the space tone (a pause alone is no boundary),
    so every utterance but the last ends with one: the recording reads as one text."""
    rng = np.random.default_rng(seed)
    texts = sentences(n, seed)
    pieces, bounds, t = [], [], 0.0
    for i, text in enumerate(texts):
        pause = NOISE_FLOOR * rng.standard_normal(int(rng.uniform(0.4, 1.5) * SR))
        last = i == n - 1
        wave = tone_wave(text if last else text + " ", seed=1000 + i)  # noise never trained on
        t += len(pause) / SR
        bounds.append((t + LEAD_S, t + len(wave) / SR - TAIL_S - (0 if last else SPACE_S)))
        pieces += [pause, wave]
        t += len(wave) / SR
    pieces.append(NOISE_FLOOR * rng.standard_normal(SR // 2))
    return np.concatenate(pieces).astype(np.float32), texts, bounds


@pytest.fixture(scope="module")
def recognizer(tone_model):
    return Recognizer.from_checkpoint(tone_model / "last.pt", device="cpu")


def test_long_recording_word_times_land_on_utterance_boundaries(recognizer):
    wave, texts, bounds = long_recording(12, seed=7)  # about 30 s
    max_chunk_s = 6.0  # several utterances per chunk, several chunks
    chunks = find_chunks(wave, SR, max_chunk_s)
    assert len(chunks) > 2 and all((e - s) / SR <= max_chunk_s for s, e in chunks)

    result = transcribe_wave(recognizer, GreedyDecoder(recognizer.tokens), wave, "long.wav",
                             max_chunk_s)
    assert wer(" ".join(texts), result.text) <= 10  # the tiny model may miss a space
    assert result.duration == pytest.approx(len(wave) / SR, abs=1e-3)
    words = [w for seg in result.segments for w in seg.words]
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert all(w.start < w.end and 0 < w.confidence <= 1 for w in words)
    for start, end in bounds:  # each utterance begins and ends with a word, to within 0.3 s
        assert min(abs(w.start - start) for w in words) < 0.3, start
        assert min(abs(w.end - end) for w in words) < 0.3, end
    for w in words:  # and no word is placed in a pause
        assert any(s - 0.3 < w.start and w.end < e + 0.3 for s, e in bounds), w


def test_silence_and_too_short_give_no_words(recognizer):
    decoder = GreedyDecoder(recognizer.tokens)
    assert find_chunks(np.zeros(10 * SR, np.float32), SR) == []
    assert transcribe_wave(recognizer, decoder, np.zeros(10 * SR, np.float32)).text == ""
    assert transcribe_wave(recognizer, decoder, np.zeros(1, np.float32)).segments == ()


def test_a_chunk_without_pauses_is_cut_at_its_quietest_point():
    rng = np.random.default_rng(0)
    wave = (0.3 * rng.standard_normal(25 * SR)).astype(np.float32)
    wave[int(9.5 * SR) : int(9.52 * SR)] *= 0.01  # one quiet instant, shorter than a pause
    chunks = find_chunks(wave, SR, max_chunk_s=10.0)
    assert chunks[0][0] == 0 and chunks[-1][1] == len(wave)
    assert all(b[0] == a[1] for a, b in zip(chunks, chunks[1:]))  # nothing lost between cuts
    assert all((e - s) / SR <= 10.0 for s, e in chunks)
    assert abs(chunks[0][1] / SR - 9.5) < 0.05


def test_srt_and_json(recognizer):
    wave, texts, bounds = long_recording(4, seed=3)
    result = transcribe_wave(recognizer, GreedyDecoder(recognizer.tokens), wave, "x.wav")
    cues = [block.splitlines() for block in to_srt(result).strip().split("\n\n")]
    assert [c[0] for c in cues] == [str(i) for i in range(1, len(cues) + 1)]
    assert " ".join(c[2] for c in cues) == " ".join(texts)
    assert len(cues) == len(texts)  # pauses of 0.4-1.5 s between utterances start new cues
    times = [t for c in cues for t in c[1].split(" --> ")]
    assert times == sorted(times) and times[0].startswith("00:00:0")
    first_start = srt_seconds(times[0])
    assert abs(first_start - bounds[0][0]) < 0.3
    d = to_json(result)
    assert [w["word"] for w in d["words"]] == " ".join(texts).split()
    assert set(d["words"][0]) == {"word", "start", "end", "confidence"}


def srt_seconds(stamp: str) -> float:
    hms, ms = stamp.split(",")
    h, m, s = map(int, hms.split(":"))
    return 3600 * h + 60 * m + s + int(ms) / 1000


def test_subtitle_cues_break_at_pauses_and_length():
    words = [Word(f"W{i}", i * 0.3, i * 0.3 + 0.2, 1.0) for i in range(30)]
    words[15:] = [Word(w.word, w.start + 2, w.end + 2, 1.0) for w in words[15:]]
    cues = subtitle_cues(words)
    assert [len(c) for c in cues] == [12, 3, 12, 3]
    assert all(c[-1].end - c[0].start <= CUE_MAX_S for c in cues)


def test_cli_reports_unreadable_files_and_does_the_others(tone_model, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone_wave("CAB DEED", seed=5), SR)
    stereo = tmp_path / "stereo_44k.flac"  # another rate and two channels: resampled, mixed
    wave = soxr.resample(tone_wave("BEAD", seed=6), SR, 44100)
    sf.write(stereo, np.stack([1.2 * wave, 0.8 * wave], axis=1), 44100)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEtruncated")
    args = ["transcribe", "--checkpoint", tone_model / "last.pt", good, tmp_path / "missing.wav",
            bad, tmp_path, stereo]
    proc = run_asr(args, check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{good}\tCAB DEED", f"{stereo}\tBEAD"]
    assert f"{tmp_path / 'missing.wav'}: no such file" in proc.stderr
    assert f"{bad}: unreadable audio" in proc.stderr
    assert f"{tmp_path}: is a directory" in proc.stderr
    assert "3 of 5 file(s) could not be read" in proc.stderr

    # 8 kHz audio to a 16 kHz model: resampled and decoded (the toy model, trained on noise up
    # to 8 kHz, cannot read speech with nothing above 4 kHz, so only the times are checked)
    narrow = tmp_path / "narrow.wav"
    sf.write(narrow, soxr.resample(tone_wave("ABC", seed=7), SR, 8000), 8000)
    out = tmp_path / "out"
    run_asr(["transcribe", "--checkpoint", tone_model / "last.pt", good, narrow, "--format",
             "json", "--out", out, "--plot", tmp_path / "a.png"])
    words = json.loads((out / "good.json").read_text())["words"]
    assert [w["word"] for w in words] == ["CAB", "DEED"]
    assert json.loads((out / "narrow.json").read_text())["duration"] == pytest.approx(
        sf.info(str(narrow)).duration, abs=0.01)
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_refuses_an_lm_without_the_beam_decoder(tone_model, tmp_path, capsys):
    from asr.cli import main

    wav = tmp_path / "x.wav"
    sf.write(wav, tone_wave("ABC", seed=1), SR)
    lm = tmp_path / "lm.arpa"
    lm.write_text("\\data\\\nngram 1=1\n\n\\1-grams:\n-1.0\tABC\n\n\\end\\\n")
    assert main(["transcribe", "--checkpoint", str(tone_model / "last.pt"), str(wav),
                 "--lm", str(lm)]) == 2
    assert "--lm needs --decoder beam" in capsys.readouterr().err


def test_cli_out_keeps_files_of_the_same_name_apart(tone_model, tmp_path, capsys):
    """a/x.wav and b/x.wav go to OUT/a/x.txt and OUT/b/x.txt; a name used once stays flat."""
    from asr.cli import main

    files = {"a/x.wav": "ABC", "b/x.wav": "CAB DEED", "c/y.wav": "BAD"}
    for i, (rel, text) in enumerate(files.items()):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(tmp_path / rel, tone_wave(text, seed=20 + i), SR)
    out = tmp_path / "out"
    assert main(["transcribe", "--checkpoint", str(tone_model / "last.pt"),
                 *(str(tmp_path / rel) for rel in files), "--out", str(out)]) == 0
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.txt"))
    assert written == ["a/x.txt", "b/x.txt", "y.txt"]
    assert [(out / name).read_text() for name in written] == [f"{t}\n" for t in files.values()]
    assert "a/x.wav" in capsys.readouterr().err  # the renaming is said


def test_transcribe_gives_the_words_decode_gives_on_a_corpus_file(tone_model, tmp_path):
    """Corpus files with 3 s of silence around the speech, a model that subtracts each
    utterance's mean feature: `asr transcribe` decodes a recording that fits in one chunk whole,
    as `asr decode` does, so both give the same words (trimming the silence changes the mean)."""
    ckpt = load_checkpoint(tone_model / "last.pt")
    ckpt["model_config"] = {**ckpt["model_config"], "utterance_cmn": True}
    save_checkpoint(ckpt, tmp_path / "cmn.pt")
    utts = []
    for i, text in enumerate(sentences(6, 9)):
        path = tmp_path / "audio" / f"u{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, tone_wave(text, seed=i, lead_s=3.0, tail_s=3.0), SR, subtype="PCM_16")
        utts.append(Utterance(f"s0-u{i}", "s0", str(path), text))
    data = write_data_dir(tmp_path / "data", utts)
    run_asr(["decode", "--checkpoint", tmp_path / "cmn.pt", data, "--out", tmp_path / "dec"])
    decoded = read_kaldi_text(tmp_path / "dec" / "hyp.txt")
    proc = run_asr(["transcribe", "--checkpoint", tmp_path / "cmn.pt",
                    *(u.audio for u in utts)])
    transcribed = dict(line.split("\t") for line in proc.stdout.splitlines())
    assert {u.audio: decoded[u.utt_id] for u in utts} == transcribed


def test_cli_hotwords_need_the_beam_decoder_and_a_word(tone_model, tmp_path):
    """--hotword WORD[:WEIGHT] (repeatable) with the beam decoder transcribes as before on clean
    speech; with greedy it is refused, and a malformed one is an argparse error (exit 2)."""
    wav = tmp_path / "x.wav"
    sf.write(wav, tone_wave("CAB DEED", seed=3), SR)
    args = ["transcribe", "--checkpoint", tone_model / "last.pt", wav]
    proc = run_asr(args + ["--decoder", "beam", "--hotword", "CAB", "--hotword", "DEED:2"])
    assert proc.stdout == f"{wav}\tCAB DEED\n"
    proc = run_asr(args + ["--hotword", "CAB"], check=False)
    assert proc.returncode == 2 and "--hotword needs --decoder beam" in proc.stderr
    proc = run_asr(args + ["--decoder", "beam", "--hotword", "CAB:x"], check=False)
    assert proc.returncode == 2 and "argument --hotword: hotword 'CAB:x'" in proc.stderr
