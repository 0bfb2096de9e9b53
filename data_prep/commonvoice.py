"""Mozilla Common Voice: crowd-sourced read sentences, MP3.

Layout as released (`cv-corpus-*/<lang>/`): `train.tsv`, `dev.tsv`, `test.tsv` (whichever exist;
tab-separated with a header, columns include `client_id`, `path`, `sentence`) and `clips/<path>`.
The speaker is the client_id; utterance ids are `<client_id>-<clip stem>`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from asr.text import TextNormConfig
from data_prep.common import (
    Entry,
    ImportResult,
    Problem,
    finish,
    no_space,
    require,
    require_dir,
    resolve_listed,
)

SETS = ("train", "dev", "test")
COLUMNS = ("client_id", "path", "sentence")


def read_tsv(path: Path, problems: list[Problem]) -> list[tuple[int, dict[str, str]]]:
    """-> [(line number, row)]; a file not UTF-8 or lacking a column is a problem, no rows."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        problems.append(Problem(str(path), f"not UTF-8 (byte {e.start}); file skipped"))
        return []
    reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        problems.append(Problem(str(path), f"no column {', '.join(missing)}; file skipped"))
        return []
    return [(reader.line_num, row) for row in reader]


def clip_path(src_dir: Path, listed: str, allow_outside: bool) -> tuple[Path | None, str | None]:
    """clips/<path>; early releases list paths without the .mp3 suffix."""
    audio, reason = resolve_listed(src_dir, listed, allow_outside, src_dir / "clips")
    if audio is not None and not audio.exists() and audio.with_name(audio.name + ".mp3").exists():
        audio = audio.with_name(audio.name + ".mp3")
    return audio, reason


def set_entries(
    src_dir: Path, set_name: str, allow_outside: bool, problems: list[Problem]
) -> list[Entry]:
    tsv = src_dir / f"{set_name}.tsv"
    entries = []
    for lineno, row in read_tsv(tsv, problems):
        where = f"{tsv}:{lineno}"
        speaker, listed = no_space(row["client_id"] or ""), (row["path"] or "").strip()
        audio, reason = clip_path(src_dir, listed, allow_outside)
        if audio is None:
            problems.append(Problem(f"{where} ({listed})", reason))
            continue
        utt_id = f"{speaker}-{no_space(Path(listed).stem)}"
        entries.append(Entry(set_name, utt_id, speaker, audio, row["sentence"] or "", where))
    return entries


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    src_dir = require_dir(src_dir, "Common Voice")
    present = [s for s in SETS if (src_dir / f"{s}.tsv").is_file()]
    require(bool(present) and (src_dir / "clips").is_dir(),
            f"{src_dir}: not a Common Voice language dir (expected train.tsv, dev.tsv or "
            "test.tsv and clips/)")
    problems: list[Problem] = []
    entries = []
    for set_name in present:
        entries += set_entries(src_dir, set_name, allow_outside, problems)
    return finish(entries, norm, problems)
