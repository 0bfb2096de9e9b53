"""Free Spoken Digit Dataset: single spoken digits, 8 kHz.

Layout as released: `recordings/{digit}_{speaker}_{index}.wav` (FLAC accepted too). The text is
the digit's English word (ZERO ... NINE, cased by the normalisation). Conventional split: index
0-4 of every digit and speaker is `test`, the rest `train`. Utterance ids: `george-3-12`.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.text import TextNormConfig
from data_prep.common import Entry, ImportResult, Problem, finish, require, require_dir

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[^_\s]+)_(?P<index>\d+)$")
SUFFIXES = (".wav", ".flac")
TEST_INDICES = range(5)


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    """allow_outside is unused: the audio files are found by listing recordings/."""
    src_dir = require_dir(src_dir, "FSDD")
    recordings = src_dir / "recordings"
    require(recordings.is_dir(), f"{src_dir}: not an FSDD corpus (no recordings/ dir)")
    files = sorted(p for p in recordings.iterdir() if p.suffix.lower() in SUFFIXES)
    require(bool(files), f"{recordings}: no .wav or .flac recordings")
    problems: list[Problem] = []
    entries = []
    for path in files:
        m = NAME.match(path.stem)
        if m is None:
            problems.append(Problem(str(path), "name is not {digit}_{speaker}_{index}"))
            continue
        digit, speaker, index = int(m["digit"]), m["speaker"], int(m["index"])
        set_name = "test" if index in TEST_INDICES else "train"
        utt_id = f"{speaker}-{digit}-{index}"
        entries.append(Entry(set_name, utt_id, speaker, path, DIGIT_WORDS[digit], str(path)))
    return finish(entries, norm, problems)
