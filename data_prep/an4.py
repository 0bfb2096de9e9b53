"""AN4 (CMU census database): alphanumeric utterances, in either of CMU's two releases.

Layout as released (`an4/`): `etc/an4_train.transcription` and `etc/an4_test.transcription`,
lines `<s> TEXT </s> (uttid)` (the test file may lack the `<s> </s>` marks); audio
`wav/an4_clstk/<spk>/<uttid>.EXT` (train) and `wav/an4test_clstk/<spk>/<uttid>.EXT` (test), where
EXT is `.sph` (NIST sphere, `an4_sphere.tar.gz`) or `.raw` (`an4_raw.bigendian.tar.gz`: headerless
16 kHz 16-bit signed PCM, big-endian, whatever that release's README says). Each utterance takes
the file that is on disk; `.raw` files get the `raw:` spec of `asr.audio` in wav.scp.
The speaker is the uttid's middle field (`an251-fash-b` -> `fash`); utterance ids are
`fash-an251-fash-b`.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.audio import RawFormat
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

SETS = {"train": ("an4_train.transcription", "an4_clstk"),
        "test": ("an4_test.transcription", "an4test_clstk")}
LINE = re.compile(r"^(?P<text>.*)\((?P<utt>[^()\s]+)\)\s*$")
MARKS = re.compile(r"</?s>")
RAW_FORMAT = RawFormat(rate=16000, encoding="s16be", channels=1)  # an4_raw.bigendian


def parse_line(line: str) -> tuple[str, str] | None:
    """`<s> TEXT </s> (uttid)` -> (uttid, TEXT), or None."""
    m = LINE.match(line.strip())
    if m is None:
        return None
    return m["utt"], " ".join(MARKS.sub(" ", m["text"]).split())


def set_entries(
    src_dir: Path, set_name: str, trans: Path, wav_dir: Path, allow_outside: bool,
    problems: list[Problem],
) -> list[Entry]:
    entries = []
    for lineno, line in read_lines(trans, problems):
        where = f"{trans}:{lineno}"
        parsed = parse_line(line)
        if parsed is None:
            problems.append(Problem(where, "not a `<s> TEXT </s> (uttid)` line"))
            continue
        utt, text = parsed
        fields = utt.split("-")
        if len(fields) < 2 or not fields[1]:
            problems.append(Problem(where, f"utterance id {utt!r} has no speaker field"))
            continue
        speaker = fields[1]
        audio, reason = resolve_listed(src_dir, f"{speaker}/{utt}.sph", allow_outside, wav_dir)
        if audio is None:
            problems.append(Problem(where, reason))
            continue
        raw = audio.with_suffix(".raw")
        spec = RAW_FORMAT.spec(raw) if not audio.exists() and raw.exists() else audio
        entries.append(Entry(set_name, f"{speaker}-{utt}", speaker, spec, text, where))
    return entries


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    src_dir = require_dir(src_dir, "AN4")
    present = {s: v for s, v in SETS.items() if (src_dir / "etc" / v[0]).is_file()}
    require(bool(present), f"{src_dir}: not an AN4 corpus (no etc/an4_train.transcription "
                           "or etc/an4_test.transcription)")
    problems: list[Problem] = []
    entries = []
    for set_name, (trans_name, wav_name) in present.items():
        entries += set_entries(src_dir, set_name, src_dir / "etc" / trans_name,
                               src_dir / "wav" / wav_name, allow_outside, problems)
    return finish(entries, norm, problems)
