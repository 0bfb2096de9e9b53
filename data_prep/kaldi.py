"""Import an existing Kaldi data dir (`wav.scp`, `text`, `utt2spk`).

SRC is one data dir (one set, named after the dir) or a dir whose subdirs are data dirs (one set
each). Unlike the importers of published corpora, absolute audio paths in wav.scp are used as they
are, wherever they lead: this is the user's own listing, and Kaldi recipes write absolute paths.
Relative paths are taken from SRC; one that leads outside SRC is refused unless allow_outside
(it is most likely meant from a recipe dir, not from SRC). Pipe entries (`cmd |`) and `segments`
files are not supported. Utterance ids not starting with their speaker id get it as a prefix
(`spk-utt`).
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
    speaker_prefixed,
)

REQUIRED = ("wav.scp", "text", "utt2spk")


def is_data_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED)


def read_table(path: Path, problems: list[Problem]) -> dict[str, tuple[str, str]]:
    """`key<space or tab>value` lines -> {key: (value, "file:line")}; bad lines are problems."""
    table: dict[str, tuple[str, str]] = {}
    for lineno, line in read_lines(path, problems):
        where = f"{path}:{lineno}"
        parts = line.strip().split(maxsplit=1)
        key, value = parts[0], parts[1] if len(parts) > 1 else ""
        if key in table:
            problems.append(Problem(where, f"duplicate id {key} (first at {table[key][1]})"))
            continue
        table[key] = (value, where)
    return table


def data_dir_entries(
    data_dir: Path, set_name: str, src_dir: Path, allow_outside: bool, problems: list[Problem],
    absolute_ok: bool = False,
) -> list[Entry]:
    """A Kaldi data dir -> entries; wav.scp paths relative to src_dir. Absolute paths outside
    src_dir are refused (a published corpus's lists) unless absolute_ok (the user's own)."""
    wav = read_table(data_dir / "wav.scp", problems)
    text = read_table(data_dir / "text", problems)
    utt2spk = read_table(data_dir / "utt2spk", problems)
    entries = []
    for utt, (listed, where) in wav.items():
        audio, reason = resolve_listed(src_dir, listed, allow_outside, absolute_ok=absolute_ok)
        if audio is None:
            problems.append(Problem(f"{where} ({listed})", reason))
        elif utt not in text:
            problems.append(Problem(where, f"{utt} has no transcript in {data_dir / 'text'}"))
        elif not utt2spk.get(utt, ("",))[0]:
            problems.append(Problem(where, f"{utt} has no speaker in {data_dir / 'utt2spk'}"))
        else:
            speaker = utt2spk[utt][0]
            entries.append(Entry(set_name, speaker_prefixed(utt, speaker), speaker, audio,
                                 text[utt][0], text[utt][1]))
    for utt in sorted(set(text) - set(wav)):
        problems.append(Problem(text[utt][1], f"{utt} has a transcript but no audio in wav.scp"))
    return entries


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    src_dir = require_dir(src_dir, "Kaldi data dir")
    if is_data_dir(src_dir):
        dirs = [src_dir]
    else:
        dirs = sorted(d for d in src_dir.iterdir() if d.is_dir() and is_data_dir(d))
    require(bool(dirs), f"{src_dir}: not a Kaldi data dir (no {', '.join(REQUIRED)}, "
                        "here or in a subdir)")
    for d in dirs:
        require(not (d / "segments").exists(),
                f"{d / 'segments'}: segmented recordings are not supported")
    problems: list[Problem] = []
    entries = []
    for d in dirs:
        entries += data_dir_entries(d, d.name, src_dir, allow_outside, problems,
                                    absolute_ok=True)
    return finish(entries, norm, problems)
