"""Your own recordings: audio files with a transcript next to each.

`SRC/<set>/.../name.wav` with `name.txt` (or `name.lab`) holding its transcript; audio may be
wav, flac, ogg, mp3 or sph. Each top-level subdir of SRC that holds audio is a set named after
it (`train/`, `test/`, ...); with no such subdir, the files directly in SRC are one set `train`.

Speaker: the file's parent dir when that is below the set dir (`train/alice/001.wav` -> `alice`),
else the file name's prefix before the first `_` or `-` (`train/alice_001.wav` -> `alice`).
Utterance id: `<speaker>-<name without the speaker prefix>` (`alice-001`).
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.text import TextNormConfig
from data_prep.common import (
    AUDIO_SUFFIXES,
    Entry,
    ImportResult,
    Problem,
    finish,
    no_space,
    read_transcript,
    require,
    require_dir,
)

TRANSCRIPT_SUFFIXES = (".txt", ".lab")
PREFIX_SEP = re.compile(r"[_-]")


def audio_files(directory: Path, recursive: bool) -> list[Path]:
    """Audio files (hidden ones left out), sorted."""
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def speaker_and_id(path: Path, set_dir: Path) -> tuple[str, str]:
    """-> (speaker, utterance id) from where the file lies and its name."""
    stem = no_space(path.stem)
    if path.parent != set_dir:
        speaker, rest = no_space(path.parent.name), stem
    else:
        speaker = PREFIX_SEP.split(stem, maxsplit=1)[0] or stem
        rest = stem[len(speaker) + 1:] or stem
    if rest.startswith(speaker) and rest[len(speaker):len(speaker) + 1] in ("_", "-"):
        rest = rest[len(speaker) + 1:]  # alice/alice_001.wav -> alice-001
    return speaker, f"{speaker}-{rest}"


def find_transcript(audio: Path) -> Path | None:
    for suffix in TRANSCRIPT_SUFFIXES:
        if audio.with_suffix(suffix).is_file():
            return audio.with_suffix(suffix)
    return None


def set_entries(set_name: str, set_dir: Path, files: list[Path], problems: list[Problem]):
    entries = []
    for audio in files:
        transcript = find_transcript(audio)
        if transcript is None:
            problems.append(Problem(str(audio), "no transcript (.txt or .lab) next to it"))
            continue
        text = read_transcript(transcript, problems)
        if text is None:
            continue
        speaker, utt_id = speaker_and_id(audio, set_dir)
        entries.append(Entry(set_name, utt_id, speaker, audio, text, str(transcript)))
    return entries


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    """allow_outside is unused: the audio files are found by listing SRC."""
    src_dir = require_dir(src_dir, "folder of audio + transcript")
    set_dirs = sorted(d for d in src_dir.iterdir()
                      if d.is_dir() and not d.name.startswith(".") and audio_files(d, True))
    problems: list[Problem] = []
    loose = audio_files(src_dir, recursive=False)
    if set_dirs:
        sets = {d.name: (d, audio_files(d, recursive=True)) for d in set_dirs}
        problems += [Problem(str(p), "audio beside the set dirs, not in one") for p in loose]
    else:
        require(bool(loose), f"{src_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in it "
                             "or in its subdirs")
        sets = {"train": (src_dir, loose)}
    entries = []
    for set_name, (set_dir, files) in sets.items():
        entries += set_entries(no_space(set_name), set_dir, files, problems)
    return finish(entries, norm, problems)
