"""LibriSpeech (OpenSLR 12): read audiobooks.

SRC is the `LibriSpeech/` root (its split dirs, e.g. `train-clean-100/`, become sets
`train_clean_100`, ...), one split dir, or a dir holding `LibriSpeech/`. Each split holds
`SPK/CHAPTER/SPK-CHAPTER.trans.txt` (lines `SPK-CHAPTER-NNNN TEXT`) next to
`SPK-CHAPTER-NNNN.flac`. Utterance ids are LibriSpeech's own (they start with the speaker).
"""

from __future__ import annotations

from pathlib import Path

from asr.text import TextNormConfig
from data_prep.common import (
    Entry,
    ImportResult,
    Problem,
    finish,
    read_lines,
    require,
    require_dir,
    resolve_listed,
)

TRANS_GLOB = "*/*/*.trans.txt"  # below a split dir


def is_split(path: Path) -> bool:
    return any(path.glob(TRANS_GLOB))


def find_splits(src_dir: Path) -> list[Path]:
    if (src_dir / "LibriSpeech").is_dir():
        src_dir = src_dir / "LibriSpeech"
    if is_split(src_dir):
        return [src_dir]
    return sorted(d for d in src_dir.iterdir() if d.is_dir() and is_split(d))


def split_entries(
    src_dir: Path, split: Path, allow_outside: bool, problems: list[Problem]
) -> list[Entry]:
    set_name = split.name.replace("-", "_")
    entries = []
    for trans in sorted(split.glob(TRANS_GLOB)):
        for lineno, line in read_lines(trans, problems):
            utt_id, _, text = line.strip().partition(" ")
            where = f"{trans}:{lineno}"
            speaker = utt_id.split("-")[0]
            audio, reason = resolve_listed(src_dir, f"{utt_id}.flac", allow_outside, trans.parent)
            if audio is None:
                problems.append(Problem(where, reason))
                continue
            entries.append(Entry(set_name, utt_id, speaker, audio, text, where))
    return entries


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    src_dir = require_dir(src_dir, "LibriSpeech")
    splits = find_splits(src_dir)
    require(bool(splits), f"{src_dir}: not a LibriSpeech dir (no SPK/CHAPTER/*.trans.txt in it "
                          "or in its split dirs)")
    problems: list[Problem] = []
    entries = []
    for split in splits:
        entries += split_entries(src_dir, split, allow_outside, problems)
    return finish(entries, norm, problems)
