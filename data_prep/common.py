"""What the corpus importers share: the result types and the per-utterance checks.

An importer reads a corpus's own layout into `Entry`s (one per utterance it finds) and hands them
to `finish()`, which normalises the transcripts, drops duplicates, checks each audio header and
turns every entry into an `Utterance` or a `Problem`. A bad file is never fatal; a directory that
is not the corpus's layout at all is a `LayoutError`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, audio_info
from asr.datadir import Utterance
from asr.text import TextNormConfig, normalize_text

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".sph")
OUTSIDE_REASON = "path outside the corpus dir (pass --allow-outside-paths to accept it)"
HEADER_THREADS = 8  # audio header reads are I/O bound; libsndfile releases the GIL
MIN_FILES_FOR_PROGRESS = 500  # fewer take about a second: no progress bar


@dataclass(frozen=True)
class Problem:
    path: str  # the file at fault (with `:line` for a line of a list file)
    reason: str


@dataclass(frozen=True)
class ImportResult:
    sets: dict[str, list[Utterance]]  # set name -> utterances sorted by id
    problems: list[Problem]
    renamed_speakers: dict[str, str] = field(default_factory=dict)  # old -> new, see kaldi_ids


class LayoutError(ValueError):
    """The source dir is missing or is not laid out as the corpus is published."""


@dataclass(frozen=True)
class Entry:
    """An utterance as an importer found it, before any check."""

    set_name: str
    utt_id: str
    speaker: str
    audio: Path | str  # a file, or an `asr.audio` spec such as `raw:...:/abs/path`
    text: str  # raw transcript
    where: str  # transcript location for problems: "file" or "file:line"


def require(condition: bool, message: str) -> None:
    """Raise LayoutError(message) unless condition."""
    if not condition:
        raise LayoutError(message)


def require_dir(src_dir: Path, corpus: str) -> Path:
    """src_dir as an absolute path; LayoutError when it is not a directory."""
    require(src_dir.is_dir(), f"{src_dir}: no such directory (expected a {corpus} corpus)")
    return Path(os.path.abspath(src_dir))


def speaker_prefixed(utt_id: str, speaker: str) -> str:
    """Kaldi convention: an utterance id starts with its speaker id (`spk-utt` otherwise)."""
    return utt_id if utt_id.startswith(speaker) else f"{speaker}-{utt_id}"


def no_space(name: str) -> str:
    """Whitespace in a name -> `_`, so it can be a Kaldi id."""
    return "_".join(name.split())


def resolve_listed(
    src_dir: Path, listed: str, allow_outside: bool, base: Path | None = None,
    absolute_ok: bool = False,
) -> tuple[Path | None, str | None]:
    """A path read from a corpus file -> (absolute path, None) or (None, reason).

    Relative paths are taken from `base` (src_dir by default). Paths that resolve (symlinks
    followed) outside src_dir are refused unless allow_outside, or unless absolute_ok and the
    path is listed as an absolute one (the user's own lists, where absolute paths are the norm).
    """
    listed = listed.strip()
    if not listed:
        return None, "empty audio path"
    if listed.endswith("|"):
        return None, f"pipe command {listed!r} is not supported (convert the audio to files)"
    path = Path(os.path.abspath((base or src_dir) / listed))
    if absolute_ok and os.path.isabs(listed):
        return path, None
    if not allow_outside and not path.resolve().is_relative_to(src_dir.resolve()):
        return None, OUTSIDE_REASON
    return path, None


def _speaker_order_ok(entries: Sequence[Entry]) -> bool:
    """Within each set, sorting by utterance id sorts by speaker too (Kaldi's rule)."""
    last: dict[str, tuple[str, str]] = {}  # set -> (utt id, speaker) of the last entry
    for e in sorted(entries, key=lambda e: (e.set_name, e.utt_id, e.speaker)):
        before = last.get(e.set_name)
        if before is not None and e.speaker < before[1]:
            return False
        last[e.set_name] = (e.utt_id, e.speaker)
    return True


def _clashes(name: str, names: set[str]) -> bool:
    """Another name is a prefix of this one followed by a character at or below `-`."""
    return any(name[i] <= "-" and name[:i] in names for i in range(1, len(name)))


def kaldi_safe_speakers(speakers: set[str]) -> dict[str, str]:
    """Speaker -> new id for the speakers that clash (`ab-c` with `ab`, `john's` with `john`):
    their characters at or below `-` become `_` (which sorts above it), with more `_` appended
    if that name is taken. Renamed ids hold no such character, so the passes end."""
    names = {s: s for s in speakers}
    while True:
        current = set(names.values())
        clashing = sorted(s for s, n in names.items() if _clashes(n, current))
        if not clashing:
            return {s: n for s, n in names.items() if n != s}
        for s in clashing:
            new = "".join("_" if c <= "-" else c for c in names[s])
            while new in current:
                new += "_"
            current.add(new)
            names[s] = new


def kaldi_ids(entries: Sequence[Entry]) -> tuple[list[Entry], dict[str, str]]:
    """Entries with ids that Kaldi's sort rules accept -> (entries, renamed speakers).

    utils/validate_data_dir.sh needs utt2spk sorted by utterance id to be sorted by speaker as
    well. Entries that already are come back unchanged. Otherwise the clashing speakers are
    renamed (kaldi_safe_speakers), their utterance ids follow, and if the order is still wrong
    (ids that do not start with `speaker-`), every utterance id gets its `speaker-` prefix:
    then the rule holds whatever the ids.
    """
    if _speaker_order_ok(entries):
        return list(entries), {}
    renamed = kaldi_safe_speakers({e.speaker for e in entries})
    fixed = []
    for e in entries:
        new = renamed.get(e.speaker, e.speaker)
        utt = new + e.utt_id[len(e.speaker):] if e.utt_id.startswith(e.speaker) else e.utt_id
        fixed.append(replace(e, speaker=new, utt_id=speaker_prefixed(utt, new)))
    if not _speaker_order_ok(fixed):
        fixed = [e if e.utt_id.startswith(f"{e.speaker}-") else
                 replace(e, utt_id=f"{e.speaker}-{e.utt_id}") for e in fixed]
    return fixed, renamed


def read_lines(path: Path, problems: list[Problem]) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) of a text file; a line that is not UTF-8 becomes a problem."""
    try:
        data = path.read_bytes()
    except OSError as e:
        problems.append(Problem(str(path), f"cannot read: {e.strerror}"))
        return
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            problems.append(Problem(f"{path}:{lineno}", "not UTF-8"))
            continue
        if line.strip():
            yield lineno, line.lstrip("\ufeff") if lineno == 1 else line


def read_transcript(path: Path, problems: list[Problem]) -> str | None:
    """A whole-file transcript (lines joined by spaces), or None (with a problem)."""
    try:
        return " ".join(path.read_bytes().decode("utf-8").lstrip("\ufeff").split())
    except UnicodeDecodeError:
        problems.append(Problem(str(path), "transcript is not UTF-8"))
    except OSError as e:
        problems.append(Problem(str(path), f"cannot read transcript: {e.strerror}"))
    return None


def audio_problem(path: Path | str) -> str | None:
    """Why a file's audio header is unusable (cheap: the samples are not decoded), or None."""
    try:
        audio_info(path)
    except AudioError as e:
        return e.reason
    return None


def finish(entries: Sequence[Entry], norm: TextNormConfig, problems: list[Problem]) -> ImportResult:
    """Entries -> checked utterances per set; each rejected entry becomes a Problem.

    Ids are first made ones that Kaldi's sort rules accept (kaldi_ids). Checks, in order: id
    and speaker non-empty, transcript non-empty after normalisation, id unique within its set,
    audio header readable.
    """
    entries, renamed = kaldi_ids(entries)
    kept: list[tuple[Entry, str]] = []
    seen: dict[tuple[str, str], Entry] = {}
    for e in entries:
        text = normalize_text(e.text, norm)
        if not e.utt_id or not e.speaker or any(c.isspace() for c in e.utt_id + e.speaker):
            problems.append(Problem(e.where, f"bad utterance or speaker id {e.utt_id!r}"))
        elif not text:
            problems.append(Problem(e.where, f"empty transcript after normalisation ({e.utt_id})"))
        elif (e.set_name, e.utt_id) in seen:
            first = seen[e.set_name, e.utt_id]
            problems.append(Problem(e.where, f"duplicate utterance id {e.utt_id} "
                                             f"(first at {first.where})"))
        else:
            seen[e.set_name, e.utt_id] = e
            kept.append((e, text))
    with ThreadPoolExecutor(HEADER_THREADS) as pool:
        reasons = list(tqdm(pool.map(audio_problem, [e.audio for e, _ in kept]), total=len(kept),
                            desc="audio headers", unit="file", mininterval=1.0, file=sys.stderr,
                            disable=len(kept) < MIN_FILES_FOR_PROGRESS))
    sets: dict[str, list[Utterance]] = {}
    for (e, text), reason in zip(kept, reasons):
        if reason:
            problems.append(Problem(str(e.audio), reason))
            continue
        sets.setdefault(e.set_name, []).append(Utterance(e.utt_id, e.speaker, str(e.audio), text))
    for utts in sets.values():
        utts.sort(key=lambda u: u.utt_id)
    return ImportResult(sets, problems, renamed)
