"""Decoder outputs as text files: N-best lists and CTM word times. Pure formatting (lines in,
lines out); the caller writes them, in utterance-id order.

`nbest.txt`, one line per hypothesis, best first within an utterance, K counting from 1:

    UTT-ID-K SCORE ACOUSTIC LM BONUS WORD WORD ...
    utt0007-1 -4.1236 -2.0001 -6.2470 1.0000 the cat sat
    utt0007-2 -5.0102 -3.1540 -5.7124 1.0000 the cat sad

The four numbers are natural-log scores (see `asr.decoding.Hypothesis`), 4 decimals:
SCORE = ACOUSTIC + alpha * LM + BONUS, ACOUSTIC the CTC log probability, LM = ln p_LM(words,
</s>) unweighted (0 without an LM), BONUS the word bonuses (beta per word, unk_score per unknown
word, hotword weights). So the list can be rescored with another LM weight without decoding
again, and `cut -d' ' -f1,6-` turns it into a Kaldi `text` file keyed `UTT-ID-K` (Kaldi's
`nbest-to-linear` keys its outputs the same way). An empty hypothesis has no word fields.

`hyp.ctm`, Kaldi/NIST CTM as sclite reads it (`sclite -h hyp.ctm ctm -r ref.stm stm`), one line
per word, in time order:

    UTT-ID CHANNEL START DURATION WORD CONFIDENCE
    utt0007 1 0.36 0.24 the 0.97

START and DURATION in seconds from the start of the utterance, 2 decimals, rounded so that
START + DURATION is the rounded end time and, given the utterance's duration, kept inside it;
CONFIDENCE in [0, 1], 2 decimals. The words' times come from the forced alignment
(`asr.transcribe.align_words`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import NamedTuple, Protocol

CTM_CHANNEL = "1"  # Kaldi's channel for single-channel audio
NBEST_DECIMALS = 4
CTM_DECIMALS = 2


class TimedWord(Protocol):
    """What a CTM line needs of a word (`asr.transcribe.Word` has it)."""

    word: str
    start: float  # seconds
    end: float
    confidence: float  # 0..1


class NbestEntry(NamedTuple):
    """One parsed line of nbest.txt."""

    utt_id: str
    rank: int  # K, from 1
    score: float
    acoustic_score: float
    lm_score: float
    bonus_score: float
    text: str


def format_nbest(utt_id: str, hyps: Sequence) -> list[str]:
    """N-best hypotheses of one utterance (best first, `asr.decoding.Hypothesis`) -> lines of
    nbest.txt (see the module doc), without newlines."""
    _check_id(utt_id)
    lines = []
    for k, hyp in enumerate(hyps, 1):
        scores = (hyp.score, hyp.acoustic_score, hyp.lm_score, hyp.bonus_score)
        fields = [f"{utt_id}-{k}", *(f"{s:.{NBEST_DECIMALS}f}" for s in scores)]
        lines.append(" ".join(fields + hyp.text.split()))
    return lines


def parse_nbest(lines: Iterable[str]) -> list[NbestEntry]:
    """Lines of nbest.txt -> entries; ValueError naming the line for one that is not."""
    entries = []
    for line_no, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        utt_id, _, rank = fields[0].rpartition("-")
        try:
            if len(fields) < 5 or not utt_id:
                raise ValueError
            entries.append(NbestEntry(utt_id, int(rank), *map(float, fields[1:5]),
                                      " ".join(fields[5:])))
        except ValueError:
            raise ValueError(f"nbest line {line_no}: expected UTT-ID-K SCORE ACOUSTIC LM BONUS "
                             f"WORDS..., got {line.rstrip()!r}") from None
    return entries


def format_ctm(utt_id: str, words: Sequence[TimedWord], duration: float | None = None,
               channel: str = CTM_CHANNEL) -> list[str]:
    """Words of one utterance, in time order -> lines of hyp.ctm (see the module doc), without
    newlines. duration: the utterance's length in seconds; times are kept inside it. Raises
    ValueError for words out of order, a negative length or a word that is not one token."""
    _check_id(utt_id)
    scale = 10 ** CTM_DECIMALS
    limit = math.inf if duration is None else math.floor(duration * scale + 1e-9) / scale
    lines, previous = [], -math.inf
    for w in words:
        if not w.word or len(w.word.split()) != 1:
            raise ValueError(f"{utt_id}: CTM word {w.word!r} is not one token")
        if w.end < w.start or w.start < previous:
            raise ValueError(f"{utt_id}: word {w.word!r} at {w.start}-{w.end} s is out of order "
                             f"(previous word starts at {previous} s)")
        previous = w.start
        start = min(round(max(w.start, 0.0), CTM_DECIMALS), limit)
        end = min(round(w.end, CTM_DECIMALS), limit)
        conf = min(max(w.confidence, 0.0), 1.0)
        lines.append(f"{utt_id} {channel} {start:.{CTM_DECIMALS}f} {end - start:.{CTM_DECIMALS}f} "
                     f"{w.word} {conf:.{CTM_DECIMALS}f}")
    return lines


def _check_id(utt_id: str) -> None:
    if not utt_id or len(utt_id.split()) != 1:
        raise ValueError(f"utterance id {utt_id!r} must be one non-empty token")
