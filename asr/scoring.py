"""Edit-distance alignment and WER/CER reports, Kaldi/icefall style.

Texts are compared after splitting on whitespace: WER over words; CER over the characters of the
words joined by single spaces, spaces included (what `jiwer.cer` counts once runs of spaces are
collapsed). Every utterance of either side is accounted for: a reference without hypothesis is
scored as all deletions and flagged, a hypothesis without reference is listed and not scored.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EQUAL, SUB, DEL, INS = "=", "S", "D", "I"  # alignment operations
EMPTY = "*"  # stands for the missing side of an insertion or deletion in reports
N_CONFUSIONS = 20  # most frequent substitutions / deletions / insertions kept in a report

Alignment = list[tuple[str, Hashable | None, Hashable | None]]


# ---------------------------------------------------------------------------------------------
# Alignment


def _distance_matrix(ref_ids: np.ndarray, hyp_ids: np.ndarray) -> np.ndarray:
    """Levenshtein table d [R+1, H+1]: d[i, j] = edits between ref[:i] and hyp[:j].

    Each row is vectorised: without insertions, row i is min(up + 1, diagonal + cost); an
    insertion chain then gives d[i, j] = min_k (row[k] + j - k) = j + cummin(row[k] - k).
    """
    R, H = len(ref_ids), len(hyp_ids)
    d = np.empty((R + 1, H + 1), dtype=np.int64)
    d[0] = np.arange(H + 1)
    cols = np.arange(H + 1)
    for i in range(1, R + 1):
        row = np.empty(H + 1, dtype=np.int64)
        row[0] = i
        row[1:] = np.minimum(d[i - 1, 1:] + 1, d[i - 1, :-1] + (hyp_ids != ref_ids[i - 1]))
        d[i] = cols + np.minimum.accumulate(row - cols)
    return d


def align(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> Alignment:
    """Minimum-edit alignment as (op, ref_item, hyp_item) with op in EQUAL, SUB, DEL (hyp_item
    None), INS (ref_item None). Among equal-cost alignments, tracing back from the end,
    a match or substitution is preferred, then a deletion."""
    vocab: dict[Hashable, int] = {}
    ref_ids = np.array([vocab.setdefault(x, len(vocab)) for x in ref], dtype=np.int64)
    hyp_ids = np.array([vocab.setdefault(x, len(vocab)) for x in hyp], dtype=np.int64)
    d = _distance_matrix(ref_ids, hyp_ids)
    ops: Alignment = []
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref_ids[i - 1] != hyp_ids[j - 1]):
            ops.append((EQUAL if ref_ids[i - 1] == hyp_ids[j - 1] else SUB, ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            ops.append((DEL, ref[i - 1], None))
            i -= 1
        else:
            ops.append((INS, None, hyp[j - 1]))
            j -= 1
    return ops[::-1]


@dataclass(frozen=True)
class ErrorCounts:
    """Edit operations against a reference of `ref_len` items (words or characters)."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    ref_len: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def rate(self) -> float:
        """errors / ref_len in percent (inf when there are errors and no reference)."""
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else float("inf")
        return 100.0 * self.errors / self.ref_len

    def __add__(self, other: ErrorCounts) -> ErrorCounts:
        return ErrorCounts(
            self.substitutions + other.substitutions, self.deletions + other.deletions,
            self.insertions + other.insertions, self.ref_len + other.ref_len,
        )

    @classmethod
    def from_alignment(cls, alignment: Alignment) -> ErrorCounts:
        ops = Counter(op for op, _, _ in alignment)
        return cls(ops[SUB], ops[DEL], ops[INS], ops[EQUAL] + ops[SUB] + ops[DEL])


def _chars(text: str) -> list[str]:
    return list(" ".join(text.split()))


def word_errors(ref: str, hyp: str) -> ErrorCounts:
    return ErrorCounts.from_alignment(align(ref.split(), hyp.split()))


def char_errors(ref: str, hyp: str) -> ErrorCounts:
    """Character errors, spaces between words included (see the module docstring)."""
    return ErrorCounts.from_alignment(align(_chars(ref), _chars(hyp)))


def wer(ref: str, hyp: str) -> float:
    """Word error rate in percent."""
    return word_errors(ref, hyp).rate


def cer(ref: str, hyp: str) -> float:
    """Character error rate in percent."""
    return char_errors(ref, hyp).rate


# ---------------------------------------------------------------------------------------------
# Reports


@dataclass(frozen=True)
class UttScore:
    utt_id: str
    ref: str
    hyp: str
    words: ErrorCounts
    chars: ErrorCounts
    alignment: tuple[tuple[str, str | None, str | None], ...]  # word alignment
    missing_hyp: bool  # no hypothesis: scored against an empty one


@dataclass(frozen=True)
class ScoreReport:
    words: ErrorCounts  # totals over all scored utterances
    chars: ErrorCounts
    sentence_errors: int  # utterances with at least one word error
    utts: tuple[UttScore, ...]  # sorted by utterance id
    substitutions: tuple[tuple[tuple[str, str], int], ...]  # ((ref, hyp), count), most first
    deletions: tuple[tuple[str, int], ...]
    insertions: tuple[tuple[str, int], ...]
    missing_hyps: tuple[str, ...]  # ids with a reference and no hypothesis (all deletions)
    missing_refs: tuple[str, ...]  # ids with a hypothesis and no reference (not scored)

    @property
    def wer(self) -> float:
        return self.words.rate

    @property
    def cer(self) -> float:
        return self.chars.rate


def _most_common(counter: Counter) -> tuple:
    return tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:N_CONFUSIONS])


def score(refs: dict[str, str], hyps: dict[str, str]) -> ScoreReport:
    """Score hypotheses against references, both keyed by utterance id."""
    utts = []
    subs, dels, ins = Counter(), Counter(), Counter()
    for utt_id in sorted(refs):
        ref, hyp = refs[utt_id], hyps.get(utt_id, "")
        alignment = align(ref.split(), hyp.split())
        for op, r, h in alignment:
            if op == SUB:
                subs[(r, h)] += 1
            elif op == DEL:
                dels[r] += 1
            elif op == INS:
                ins[h] += 1
        utts.append(UttScore(
            utt_id, ref, hyp, ErrorCounts.from_alignment(alignment), char_errors(ref, hyp),
            tuple(alignment), utt_id not in hyps,
        ))
    return ScoreReport(
        words=sum((u.words for u in utts), ErrorCounts()),
        chars=sum((u.chars for u in utts), ErrorCounts()),
        sentence_errors=sum(u.words.errors > 0 for u in utts),
        utts=tuple(utts),
        substitutions=_most_common(subs),
        deletions=_most_common(dels),
        insertions=_most_common(ins),
        missing_hyps=tuple(u.utt_id for u in utts if u.missing_hyp),
        missing_refs=tuple(sorted(set(hyps) - set(refs))),
    )


def _summary_line(name: str, counts: ErrorCounts) -> str:
    return (f"%{name} {counts.rate:.2f} [ {counts.errors} / {counts.ref_len}, "
            f"{counts.insertions} ins, {counts.deletions} del, {counts.substitutions} sub ]")


def _aligned_text(alignment: Sequence[tuple[str, str | None, str | None]]) -> str:
    """icefall's `A (B->C) D (*->E)`: correct words bare, errors as (ref->hyp)."""
    return " ".join(
        r if op == EQUAL else f"({r or EMPTY}->{h or EMPTY})" for op, r, h in alignment)


def format_report(report: ScoreReport) -> str:
    """Totals first (Kaldi's `%WER` line), then per-utterance alignments and confusions."""
    n = len(report.utts)
    lines = [
        _summary_line("WER", report.words),
        _summary_line("CER", report.chars),
        f"%SER {100.0 * report.sentence_errors / max(n, 1):.2f} [ {report.sentence_errors} / {n} ]",
        f"Scored {n} utterances; {len(report.missing_hyps)} without hypothesis (counted as "
        f"deletions); {len(report.missing_refs)} hypotheses without reference (not scored)",
    ]
    if report.missing_hyps:
        lines.append("MISSING HYPOTHESES: " + " ".join(report.missing_hyps))
    if report.missing_refs:
        lines.append("MISSING REFERENCES: " + " ".join(report.missing_refs))
    lines += ["", "PER-UTT DETAILS: utt-id errors/words: corr or (ref->hyp)"]
    for u in report.utts:
        flag = " [no hypothesis]" if u.missing_hyp else ""
        lines.append(f"{u.utt_id}\t{u.words.errors}/{u.words.ref_len}{flag}:\t"
                     f"{_aligned_text(u.alignment)}")
    lines += ["", "SUBSTITUTIONS: count ref -> hyp"]
    lines += [f"{c}\t{r} -> {h}" for (r, h), c in report.substitutions]
    lines += ["", "DELETIONS: count ref"]
    lines += [f"{c}\t{r}" for r, c in report.deletions]
    lines += ["", "INSERTIONS: count hyp"]
    lines += [f"{c}\t{h}" for h, c in report.insertions]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Kaldi `text` files and `asr score`


def read_kaldi_text(path: str | Path) -> dict[str, str]:
    """`utt-id text` lines -> {utt-id: text}; the text may be empty. Duplicate ids fail."""
    texts: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            utt_id = fields[0]
            if utt_id in texts:
                raise ValueError(f"{path}:{line_no}: duplicate utterance id {utt_id!r}")
            texts[utt_id] = " ".join(fields[1].split()) if len(fields) > 1 else ""
    return texts


def write_kaldi_text(path: str | Path, texts: dict[str, str]) -> None:
    """Write {utt-id: text} sorted by id, one `utt-id text` line each."""
    with open(path, "w", encoding="utf-8") as f:
        for utt_id in sorted(texts):
            f.write(f"{utt_id} {texts[utt_id]}".rstrip() + "\n")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", type=Path, help="reference Kaldi `text` file (utt-id words...)")
    parser.add_argument("hyp", type=Path, help="hypothesis file in the same format")
    parser.add_argument("--out", type=Path, help="write the full report here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    report = score(read_kaldi_text(args.ref), read_kaldi_text(args.hyp))
    text = format_report(report)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print("\n".join(text.splitlines()[:4]))
    return 0
