"""nbest.txt and hyp.ctm: the N-best list reads back as it was decoded (N distinct texts, best
first, scores that add up), CTM times are inside the audio, monotone, and sclite's six fields."""

from typing import NamedTuple

import numpy as np
import pytest
import torch

from asr.decoding import BeamSearchDecoder, BeamSearchOptions
from asr.lm import train_ngram
from asr.outputs import format_ctm, format_nbest, parse_nbest

TOKENS = ["<blank>", "|", "a", "b", "c", "d"]
LM = train_ngram(["ab ba", "a b c", "cab dab", "d"] * 3, order=3)
SECONDS_PER_FRAME = 0.04


class W(NamedTuple):
    word: str
    start: float
    end: float
    confidence: float


def _log_probs(seed, T=30):
    g = torch.Generator().manual_seed(seed)
    return (1.5 * torch.randn(1, T, len(TOKENS), generator=g)).log_softmax(-1)


def _words_from_frames(hyp, seconds_per_frame):
    """Word times from the frames the decoder emitted each token at (first character's frame
    to one past the last's) and a made-up confidence: enough to test the formatting."""
    words, chars, frames = [], [], []
    for tok, frame in list(zip(hyp.tokens, hyp.frames)) + [(1, None)]:
        if tok == 1:
            if chars:
                words.append(W("".join(chars), frames[0] * seconds_per_frame,
                               (frames[-1] + 1) * seconds_per_frame, 0.5))
            chars, frames = [], []
        else:
            chars.append(TOKENS[tok])
            frames.append(frame)
    return words


# ---------------------------------------------------------------------------------------------
# N-best


@pytest.mark.parametrize("use_lm", [False, True])
def test_nbest_reads_back_best_first_distinct_and_adding_up(use_lm):
    alpha = 0.8
    options = BeamSearchOptions(beam_width=16, n_best=5, alpha=alpha, beta=0.5,
                                hotwords=(("dab", 2.0),))
    decoder = BeamSearchDecoder(TOKENS, options, LM if use_lm else None)
    for seed in range(4):
        hyps = decoder(_log_probs(seed), [30])[0]
        lines = format_nbest(f"spk1-utt{seed}", hyps)
        entries = parse_nbest(lines)
        assert len(entries) == len(hyps) == 5
        assert [e.utt_id for e in entries] == [f"spk1-utt{seed}"] * 5
        assert [e.rank for e in entries] == [1, 2, 3, 4, 5]
        assert [e.text for e in entries] == [h.text for h in hyps]
        assert len({e.text for e in entries}) == 5  # N distinct hypotheses
        scores = [e.score for e in entries]
        assert scores == sorted(scores, reverse=True)  # best first
        for e, h in zip(entries, hyps):
            assert e.score == pytest.approx(e.acoustic_score + alpha * e.lm_score
                                            + e.bonus_score, abs=2e-4)
            assert e.acoustic_score == pytest.approx(h.acoustic_score, abs=1e-4)
            assert (e.lm_score == 0.0) == (not use_lm)


def test_nbest_hand_worked_lines():
    class H(NamedTuple):
        text: str
        score: float
        acoustic_score: float
        lm_score: float
        bonus_score: float

    hyps = [H("the cat", -4.12356, -2.0001, -6.247, 1.0), H("", -9, -9, 0, 0)]
    lines = format_nbest("utt7", hyps)
    assert lines == ["utt7-1 -4.1236 -2.0001 -6.2470 1.0000 the cat",
                     "utt7-2 -9.0000 -9.0000 0.0000 0.0000"]
    assert parse_nbest(lines)[1].text == ""
    with pytest.raises(ValueError, match="nbest line 1"):
        parse_nbest(["utt7 -1 -2 the cat"])
    with pytest.raises(ValueError, match="one non-empty token"):
        format_nbest("utt 7", [])


# ---------------------------------------------------------------------------------------------
# CTM


def _check_ctm(lines, utt_id, words, duration):
    previous_end = 0.0
    for line, w in zip(lines, words, strict=True):
        utt, channel, start, dur, word, conf = line.split()
        start, dur, conf = float(start), float(dur), float(conf)
        assert (utt, channel, word) == (utt_id, "1", w.word)
        assert all(len(x.split(".")[1]) == 2 for x in line.split()[2:4] + [line.split()[5]])
        assert 0.0 <= start and dur >= 0.0 and start + dur <= duration + 1e-9  # inside
        assert start >= previous_end - 1e-9  # monotone, no overlap
        assert 0.0 <= conf <= 1.0
        previous_end = start + dur


@pytest.mark.parametrize("seed", range(6))
def test_ctm_of_decoded_words_is_inside_the_audio_and_monotone(seed):
    T = 20 + 7 * seed
    decoder = BeamSearchDecoder(TOKENS, BeamSearchOptions(beam_width=8), LM if seed % 2 else None)
    hyp = decoder(_log_probs(seed, T), [T])[0][0]
    duration = T * SECONDS_PER_FRAME - 0.013  # the last output frame reaches past the audio
    words = _words_from_frames(hyp, SECONDS_PER_FRAME)
    lines = format_ctm(f"utt{seed}", words, duration)
    assert [line.split()[4] for line in lines] == hyp.text.split()
    _check_ctm(lines, f"utt{seed}", words, duration)


def test_ctm_of_forced_alignment():
    transcribe = pytest.importorskip("asr.transcribe")
    align_words = getattr(transcribe, "align_words", None)
    if align_words is None:
        pytest.skip("asr.transcribe.align_words has moved")
    T = 40
    log_probs = _log_probs(3, T)
    hyp = BeamSearchDecoder(TOKENS, BeamSearchOptions(beam_width=8))(log_probs, [T])[0][0]
    words = align_words(log_probs[0], list(hyp.tokens), TOKENS, SECONDS_PER_FRAME, 0.0)
    duration = T * SECONDS_PER_FRAME
    lines = format_ctm("u1", words, duration)
    assert " ".join(line.split()[4] for line in lines) == hyp.text
    _check_ctm(lines, "u1", words, duration)


def test_ctm_hand_worked():
    words = [W("the", 0.004, 0.2449, 0.971), W("cat", 0.245, 0.61, 1.2),
             W("sat", 0.62, 0.999, -0.1)]
    assert format_ctm("utt7", words, duration=0.987) == [
        "utt7 1 0.00 0.24 the 0.97",
        "utt7 1 0.24 0.37 cat 1.00",  # rounded start: start + duration is the rounded end
        "utt7 1 0.62 0.36 sat 0.00",  # clipped to the audio, floored to 0.98
    ]
    assert format_ctm("utt7", []) == []
    with pytest.raises(ValueError, match="out of order"):
        format_ctm("utt7", [W("b", 0.5, 0.6, 1.0), W("a", 0.1, 0.2, 1.0)])
    with pytest.raises(ValueError, match="out of order"):
        format_ctm("utt7", [W("a", 0.5, 0.4, 1.0)])
    with pytest.raises(ValueError, match="one token"):
        format_ctm("utt7", [W("a b", 0.1, 0.2, 1.0)])


def test_ctm_fuzzed_times_stay_inside():
    rng = np.random.default_rng(0)
    for _ in range(200):
        duration = float(rng.uniform(0.05, 5.0))
        edges = np.sort(rng.uniform(0, duration * 1.02, 2 * int(rng.integers(1, 8))))
        words = [W("w", float(a), float(b), float(rng.uniform())) for a, b in edges.reshape(-1, 2)]
        _check_ctm(format_ctm("u", words, duration), "u", words, duration)
