"""LJ Speech: one speaker reading non-fiction, 13,100 clips.

Layout as released (`LJSpeech-1.1/`): `metadata.csv` with lines `id|raw text|normalized text`
(the normalized text, with numbers spelled out, is used; the raw one when it is empty) and
`wavs/<id>.wav`. One speaker `LJ`, one set `train` (carve dev with `--dev-utts`).
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

SPEAKER = "LJ"


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    src_dir = require_dir(src_dir, "LJ Speech")
    if not (src_dir / "metadata.csv").is_file() and (src_dir / "LJSpeech-1.1").is_dir():
        src_dir = src_dir / "LJSpeech-1.1"
    metadata = src_dir / "metadata.csv"
    require(metadata.is_file(), f"{src_dir}: not an LJ Speech corpus (no metadata.csv)")
    problems: list[Problem] = []
    entries = []
    for lineno, line in read_lines(metadata, problems):
        where = f"{metadata}:{lineno}"
        fields = line.split("|")
        if len(fields) < 2:
            problems.append(Problem(where, "not an `id|raw|normalized` line"))
            continue
        utt_id, raw = fields[0].strip(), fields[1]
        text = fields[2] if len(fields) > 2 and fields[2].strip() else raw
        audio, reason = resolve_listed(src_dir, f"wavs/{utt_id}.wav", allow_outside)
        if audio is None:
            problems.append(Problem(where, reason))
            continue
        entries.append(Entry("train", utt_id, SPEAKER, audio, text, where))
    return finish(entries, norm, problems)
