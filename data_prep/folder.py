"""Your own recordings: audio files with a transcript next to each.

`SRC/<set>/.../name.wav` with `name.txt` (or `name.lab`) holding its transcript; audio may be
wav, flac, ogg, mp3 or sph. Each top-level subdir of SRC that holds audio is a set named after
it (`train/`, `test/`, ...); with no such subdir, the files directly in SRC are one set `train`.

Speaker (`asr prep folder --speaker-from`):
- dir (default): the first dir below the set dir, however deep the file lies
  (`train/alice/session1/001.wav` -> `alice`); a file directly in the set dir has no such dir, and
  takes its name's prefix instead (as with prefix).
- prefix: the file name up to its first `_` or `-` (`alice_001.wav` -> `alice`; a name without
  either is its own speaker).
- none: one speaker for the whole set, named after it (`train`): no speaker is known.
Utterance id: the speaker, `-`, then the file's path below the set dir, dirs joined by `-` and the
suffix dropped (`alice-session1-001`), so two files never share an id. With prefix, the name's
`<speaker>_` or `<speaker>-` becomes the id's `<speaker>-` (`alice_001.wav` -> `alice-001`).
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
SPEAKER_FROM = ("dir", "prefix", "none")  # where the speaker comes from (module docstring)


def audio_files(directory: Path, recursive: bool) -> list[Path]:
    """Audio files (hidden ones left out), sorted."""
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(directory).parts))


def name_prefix(name: str) -> tuple[str, str]:
    """`alice_001` -> (`alice`, `001`); a name without `_` or `-` is both (`solo`, `solo`)."""
    speaker = PREFIX_SEP.split(name, maxsplit=1)[0] or name
    return speaker, name[len(speaker) + 1:] or name


def speaker_and_id(path: Path, set_dir: Path, set_name: str,
                   speaker_from: str = "dir") -> tuple[str, str]:
    """-> (speaker, utterance id) from where the file lies below its set dir and its name."""
    parts = [no_space(p) for p in path.relative_to(set_dir).with_suffix("").parts]
    if speaker_from == "none":
        return set_name, "-".join([set_name, *parts])
    if speaker_from == "dir" and len(parts) > 1:
        return parts[0], "-".join(parts)
    speaker, rest = name_prefix(parts[-1])
    return speaker, "-".join([speaker, *parts[:-1], rest])


def find_transcript(audio: Path) -> Path | None:
    for suffix in TRANSCRIPT_SUFFIXES:
        if audio.with_suffix(suffix).is_file():
            return audio.with_suffix(suffix)
    return None


def set_entries(set_name: str, set_dir: Path, files: list[Path], problems: list[Problem],
                speaker_from: str) -> list[Entry]:
    entries = []
    for audio in files:
        transcript = find_transcript(audio)
        if transcript is None:
            problems.append(Problem(str(audio), "no transcript (.txt or .lab) next to it"))
            continue
        text = read_transcript(transcript, problems)
        if text is None:
            continue
        speaker, utt_id = speaker_and_id(audio, set_dir, set_name, speaker_from)
        entries.append(Entry(set_name, utt_id, speaker, audio, text, str(transcript)))
    return entries


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False,
                  speaker_from: str = "dir") -> ImportResult:
    """allow_outside is unused: the audio files are found by listing SRC. speaker_from: one of
    SPEAKER_FROM (module docstring)."""
    if speaker_from not in SPEAKER_FROM:
        raise ValueError(f"speaker_from must be one of {SPEAKER_FROM}, got {speaker_from!r}")
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
        entries += set_entries(no_space(set_name), set_dir, files, problems, speaker_from)
    return finish(entries, norm, problems)
