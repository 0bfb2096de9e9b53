"""Kaldi-style data dirs: `wav.scp`, `text`, `utt2spk`, `spk2utt`, all sorted by utterance id.

    wav.scp   utt-id<space>absolute-audio-path (or `raw:OPTIONS:/abs/path` for headerless
              PCM, the notation of `asr.audio`; piped commands are refused)
    text      utt-id<space>transcript
    utt2spk   utt-id<space>speaker
    spk2utt   speaker<space>utt-id utt-id ...

Sorting is plain code-point (= UTF-8 byte, `LC_ALL=C sort`) order. As Kaldi's
`utils/validate_data_dir.sh` requires, sorting by utterance id must sort by speaker too. It does
when the utterance ids of a speaker start with its id and `-` (`spk-utt`) and no speaker id is
another's followed by a character that sorts at or below `-` (`ab` and `ab-c`, `john` and
`john's` interleave). Data dirs are validated as they are written and again as they are read;
every inconsistency is a DataDirError naming the file and line. Whether the audio can be decoded
is not checked here (feature extraction reports that).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from asr.audio import AudioSpecError, parse_audio_spec

FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


@dataclass(frozen=True)
class Utterance:
    utt_id: str  # unique, no whitespace; by Kaldi convention starts with the speaker id
    speaker: str  # no whitespace
    audio: str  # absolute path of the audio file, or a `raw:...:/abs/path` spec (asr.audio)
    text: str  # normalised transcript


class DataDirError(ValueError):
    pass


def _has_space(s: str) -> bool:
    return any(c.isspace() for c in s)


def check_utterances(utts: Iterable[Utterance]) -> list[Utterance]:
    """Validate utterances for a data dir and return them sorted by id.

    Raises DataDirError for an empty or whitespace-holding id or speaker, a duplicate id, an audio
    path that is missing, relative or not single-line, a transcript with a line break, or ids that
    sort in another order than their speakers (see the module docstring).
    """
    by_id: dict[str, Utterance] = {}
    for u in utts:
        where = f"utterance {u.utt_id!r}"
        if not u.utt_id or _has_space(u.utt_id):
            raise DataDirError(f"{where}: utterance ids must be non-empty and without whitespace")
        if not u.speaker or _has_space(u.speaker):
            raise DataDirError(f"{where}: speaker {u.speaker!r} is empty or holds whitespace")
        if u.utt_id in by_id:
            raise DataDirError(f"{where}: duplicate utterance id")
        if not u.audio or u.audio != u.audio.strip() or "\n" in u.audio or "\r" in u.audio:
            raise DataDirError(f"{where}: bad audio path {u.audio!r}")
        try:
            path, _ = parse_audio_spec(u.audio)
        except AudioSpecError as e:
            raise DataDirError(f"{where}: {e}") from None
        if not os.path.isabs(path):
            raise DataDirError(f"{where}: audio path {u.audio!r} is not absolute")
        if u.text != u.text.strip() or "\n" in u.text or "\r" in u.text:
            raise DataDirError(f"{where}: transcript has a line break or a space at an end")
        by_id[u.utt_id] = u
    ordered = [by_id[k] for k in sorted(by_id)]
    _check_speaker_order(ordered)
    return ordered


def _check_speaker_order(utts: Sequence[Utterance]) -> None:
    """Utterances sorted by id must be sorted by speaker too (Kaldi's `sort -k2 -C utt2spk`)."""
    for lineno, (a, b) in enumerate(zip(utts, utts[1:]), 2):
        if b.speaker < a.speaker:
            raise DataDirError(
                f"utt2spk:{lineno}: {b.utt_id!r} of speaker {b.speaker!r} follows {a.utt_id!r} "
                f"of speaker {a.speaker!r}: sorted by utterance, utt2spk is not sorted by "
                "speaker, which Kaldi requires (utterance ids must start with their speaker id "
                "and '-', and no speaker id be another's followed by a character at or below '-')")


def _spk2utt(utts: Sequence[Utterance]) -> dict[str, list[str]]:
    spk2utt: dict[str, list[str]] = {}
    for u in utts:  # sorted by id, so each speaker's list is sorted too
        spk2utt.setdefault(u.speaker, []).append(u.utt_id)
    return {s: spk2utt[s] for s in sorted(spk2utt)}


def write_text_atomic(path: Path, text: str) -> None:
    """Write a UTF-8 text file through a hidden temporary file, fsync and rename: readers see the
    old file or the whole new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_data_dir(out_dir: str | Path, utts: Iterable[Utterance]) -> Path:
    """Write a data dir (each file via a temp file + rename), then read it back to check it.

    Every audio file must exist. Returns out_dir.
    """
    out_dir = Path(out_dir)
    utts = check_utterances(utts)
    if not utts:
        raise DataDirError(f"{out_dir}: no utterances to write")
    for u in utts:
        if not os.path.isfile(parse_audio_spec(u.audio)[0]):
            raise DataDirError(f"utterance {u.utt_id!r}: audio file {u.audio} does not exist")
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {
        "wav.scp": "".join(f"{u.utt_id} {u.audio}\n" for u in utts),
        "text": "".join(f"{u.utt_id} {u.text}\n" if u.text else f"{u.utt_id}\n" for u in utts),
        "utt2spk": "".join(f"{u.utt_id} {u.speaker}\n" for u in utts),
        "spk2utt": "".join(f"{s} {' '.join(ids)}\n" for s, ids in _spk2utt(utts).items()),
    }
    for name in FILES:
        write_text_atomic(out_dir / name, contents[name])
    if read_data_dir(out_dir) != utts:
        raise DataDirError(f"{out_dir}: data dir reads back differently from what was written")
    return out_dir


def _read_table(path: Path, allow_empty_value: bool = False) -> dict[str, str]:
    """`key<whitespace>value` lines -> {key: value}; DataDirError names file and line."""
    if not path.is_file():
        raise DataDirError(f"{path}: missing")
    table: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as e:
        raise DataDirError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None
    if lines[-1] == "":
        lines.pop()
    for lineno, line in enumerate(lines, 1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            raise DataDirError(f"{path}:{lineno}: empty line")
        key, value = parts[0], (parts[1] if len(parts) > 1 else "")
        if not value and not allow_empty_value:
            raise DataDirError(f"{path}:{lineno}: no value after {key!r}")
        if key in table:
            raise DataDirError(f"{path}:{lineno}: duplicate id {key!r}")
        table[key] = value
    return table


def _check_same_ids(data_dir: Path, name: str, table: dict[str, str], wav: dict[str, str]) -> None:
    """Every id of wav.scp in `name` and the other way round."""
    missing = [u for u in wav if u not in table]
    if missing:
        raise DataDirError(f"{data_dir / name}: no entry for {missing[0]!r} of wav.scp "
                           f"({len(missing)} ids missing)")
    for lineno, utt in enumerate(table, 1):
        if utt not in wav:
            raise DataDirError(f"{data_dir / name}:{lineno}: {utt!r} is not in wav.scp")


def _check_spk2utt(data_dir: Path, utt2spk: dict[str, str]) -> None:
    path = data_dir / "spk2utt"
    if not path.exists():
        raise DataDirError(f"{path}: missing")
    spk2utt = _read_table(path)
    seen: set[str] = set()
    for lineno, (spk, ids) in enumerate(spk2utt.items(), 1):
        for utt in ids.split():
            if utt2spk.get(utt) != spk:
                raise DataDirError(f"{path}:{lineno}: {utt!r} is not an utterance of {spk!r} "
                                   "in utt2spk")
            if utt in seen:
                raise DataDirError(f"{path}:{lineno}: {utt!r} listed twice")
            seen.add(utt)
    if len(seen) != len(utt2spk):
        missing = sorted(set(utt2spk) - seen)[0]
        raise DataDirError(f"{path}: {missing!r} (utt2spk) is not listed")


def read_data_dir(data_dir: str | Path) -> list[Utterance]:
    """Read and validate a data dir -> utterances sorted by id.

    Raises DataDirError (naming the file and line) for a missing file, a duplicate id, an id
    missing from one of the files, a relative or piped audio path, or spk2utt disagreeing with
    utt2spk.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataDirError(f"{data_dir}: not a data dir (no such directory)")
    wav = _read_table(data_dir / "wav.scp")
    for lineno, audio in enumerate(wav.values(), 1):
        where = f"{data_dir / 'wav.scp'}:{lineno}"
        if audio.endswith("|"):
            raise DataDirError(f"{where}: pipe commands are not supported ({audio!r})")
        try:
            path, _ = parse_audio_spec(audio)
        except AudioSpecError as e:
            raise DataDirError(f"{where}: {e}") from None
        if not os.path.isabs(path):
            raise DataDirError(f"{where}: audio path {audio!r} is not absolute "
                               "(`asr prep kaldi` imports data dirs with relative paths)")
    text = _read_table(data_dir / "text", allow_empty_value=True)
    utt2spk = _read_table(data_dir / "utt2spk")
    _check_same_ids(data_dir, "text", text, wav)
    _check_same_ids(data_dir, "utt2spk", utt2spk, wav)
    _check_spk2utt(data_dir, utt2spk)
    utts = [Utterance(u, utt2spk[u], wav[u], text[u]) for u in wav]
    try:
        return check_utterances(utts)
    except DataDirError as e:
        raise DataDirError(f"{data_dir}: {e}") from None


def split_by_speaker(
    utts: Sequence[Utterance], n_dev_speakers: int, seed: int = 0, first: bool = False
) -> tuple[list[Utterance], list[Utterance]]:
    """Hold out `n_dev_speakers` speakers, drawn with `seed` (or, with `first`, the first ones in
    sorted order) -> (train, dev), speaker-disjoint.

    The same utterances and seed always give the same split, whatever their order. `first` is
    how ESPnet carves AN4's train_dev (`subset_data_dir.sh --first data/train 100`: its first
    100 utterances in id order are the first 8 speakers' whole sets).
    """
    speakers = sorted({u.speaker for u in utts})
    if not 1 <= n_dev_speakers < len(speakers):
        raise DataDirError(f"cannot hold out {n_dev_speakers} dev speakers from {len(speakers)} "
                           "(at least one must stay for training)")
    if first:
        dev_speakers = set(speakers[:n_dev_speakers])
    else:
        dev_speakers = set(random.Random(seed).sample(speakers, n_dev_speakers))
    ordered = sorted(utts, key=lambda u: u.utt_id)
    train = [u for u in ordered if u.speaker not in dev_speakers]
    dev = [u for u in ordered if u.speaker in dev_speakers]
    return train, dev


def split_by_utterance(
    utts: Sequence[Utterance], n_dev: int, seed: int = 0
) -> tuple[list[Utterance], list[Utterance]]:
    """Hold out `n_dev` utterances drawn with `seed` -> (train, dev); for one-speaker corpora."""
    if not 1 <= n_dev < len(utts):
        raise DataDirError(f"cannot hold out {n_dev} dev utterances from {len(utts)} "
                           "(at least one must stay for training)")
    ordered = sorted(utts, key=lambda u: u.utt_id)
    dev_ids = {u.utt_id for u in random.Random(seed).sample(ordered, n_dev)}
    train = [u for u in ordered if u.utt_id not in dev_ids]
    dev = [u for u in ordered if u.utt_id in dev_ids]
    return train, dev
