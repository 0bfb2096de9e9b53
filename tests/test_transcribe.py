"""`asr transcribe` with a model of the tone language (conftest.py): a long recording cut at its
pauses gets word times that land on the true utterance boundaries; formats; unreadable files."""

import json

import numpy as np
import pytest
import soundfile as sf
from helpers_train import SR, run_asr, sentences, tone_wave

from asr.decoding import GreedyDecoder
from asr.recognize import Recognizer
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


def long_recording(n: int, seed: int):
    """n tone utterances with pauses of 0.4-1.5 s between them -> (wave, texts, true speech
    (start, end) of each utterance in seconds)."""
    rng = np.random.default_rng(seed)
    texts = sentences(n, seed)
    pieces, bounds, t = [], [], 0.0
    for i, text in enumerate(texts):
        pause = np.zeros(int(rng.uniform(0.4, 1.5) * SR), np.float32)
        wave = tone_wave(text, seed=1000 + i)  # noise never heard in training
        t += len(pause) / SR
        bounds.append((t + LEAD_S, t + len(wave) / SR - TAIL_S))
        pieces += [pause, wave]
        t += len(wave) / SR
    pieces.append(np.zeros(SR // 2, np.float32))
    return np.concatenate(pieces), texts, bounds


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
    assert result.text == " ".join(texts)
    assert result.duration == pytest.approx(len(wave) / SR, abs=1e-3)
    words = [w for seg in result.segments for w in seg.words]
    assert [w.start for w in words] == sorted(w.start for w in words)
    assert all(w.start < w.end and 0 < w.confidence <= 1 for w in words)
    k = 0
    for text, (start, end) in zip(texts, bounds):
        n = len(text.split())
        first, last = words[k], words[k + n - 1]
        assert abs(first.start - start) < 0.3, (text, first, start)
        assert abs(last.end - end) < 0.3, (text, last, end)
        k += n


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
    slow = tmp_path / "eight_khz_stereo.flac"  # another rate and two channels: resampled, mixed
    wave8k = tone_wave("BEAD", seed=6)[::2]
    sf.write(slow, np.stack([wave8k, wave8k], axis=1), SR // 2)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEtruncated")
    args = ["transcribe", "--checkpoint", tone_model / "last.pt", good, tmp_path / "missing.wav",
            bad, tmp_path, slow]
    proc = run_asr(args, check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"{good}\tCAB DEED", f"{slow}\tBEAD"]
    assert f"{tmp_path / 'missing.wav'}: no such file" in proc.stderr
    assert f"{bad}: unreadable audio" in proc.stderr
    assert f"{tmp_path}: is a directory" in proc.stderr
    assert "3 of 5 file(s) could not be read" in proc.stderr

    out = tmp_path / "out"
    proc = run_asr(["transcribe", "--checkpoint", tone_model / "last.pt", good, "--format",
                    "json", "--out", out, "--plot", tmp_path / "a.png"])
    words = json.loads((out / "good.json").read_text())["words"]
    assert [w["word"] for w in words] == ["CAB", "DEED"]
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
