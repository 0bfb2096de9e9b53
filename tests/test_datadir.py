"""Kaldi data dirs: exact files, round trip, validation errors, deterministic splits."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest
from helpers_data import write_audio, write_lines

from asr.datadir import (
    FILES,
    DataDirError,
    Utterance,
    read_data_dir,
    split_by_speaker,
    split_by_utterance,
    write_data_dir,
)


@pytest.fixture
def utts(tmp_path):
    audio = write_audio(tmp_path / "a.wav")
    # out of order on purpose; "B" < "_" < "a" in byte order
    return [Utterance("a-2", "a", str(audio), "HELLO WORLD"),
            Utterance("_x-1", "_x", str(audio), "YES"),
            Utterance("B-1", "B", str(audio), "NO"),
            Utterance("a-1", "a", str(audio), "IT'S")]


def test_files_are_exact_and_sorted_by_bytes(tmp_path, utts):
    out = write_data_dir(tmp_path / "data", utts)
    a = utts[0].audio
    assert (out / "wav.scp").read_text() == f"B-1 {a}\n_x-1 {a}\na-1 {a}\na-2 {a}\n"
    assert (out / "text").read_text() == "B-1 NO\n_x-1 YES\na-1 IT'S\na-2 HELLO WORLD\n"
    assert (out / "utt2spk").read_text() == "B-1 B\n_x-1 _x\na-1 a\na-2 a\n"
    assert (out / "spk2utt").read_text() == "B B-1\n_x _x-1\na a-1 a-2\n"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temp files left


def test_round_trip(tmp_path, utts):
    write_data_dir(tmp_path / "data", utts)
    assert read_data_dir(tmp_path / "data") == sorted(utts, key=lambda u: u.utt_id)


def test_empty_transcript_round_trips(tmp_path, utts):
    utts[0] = Utterance("a-2", "a", utts[0].audio, "")
    write_data_dir(tmp_path / "data", utts)
    assert [u.text for u in read_data_dir(tmp_path / "data")] == ["NO", "YES", "IT'S", ""]


@pytest.mark.parametrize("change, message", [
    (dict(utt_id="a-1"), "duplicate utterance id"),
    (dict(utt_id="a 3"), "without whitespace"),
    (dict(utt_id=""), "non-empty"),
    (dict(speaker="a b"), "speaker"),
    (dict(audio="rel/a.wav"), "not absolute"),
    (dict(audio="/no/such/file.wav"), "does not exist"),
    (dict(text="two\nlines"), "line break"),
])
def test_write_refuses_bad_utterances(tmp_path, utts, change, message):
    bad = Utterance(**{**utts[0].__dict__, **change})
    with pytest.raises(DataDirError, match=message):
        write_data_dir(tmp_path / "data", [bad, *utts[1:]])
    assert not (tmp_path / "data" / "wav.scp").exists()


def kaldi_accepts_utt2spk_order(data_dir) -> bool:
    """What utils/validate_data_dir.sh runs: utt2spk sorted on speaker (LC_ALL=C sort -k2 -C)."""
    return subprocess.run(["sort", "-k2", "-C", str(data_dir / "utt2spk")],
                          env={"LC_ALL": "C"}).returncode == 0


@pytest.mark.skipif(shutil.which("sort") is None, reason="needs sort(1)")
def test_written_dirs_pass_kaldis_speaker_sort_check(tmp_path, utts):
    assert kaldi_accepts_utt2spk_order(write_data_dir(tmp_path / "data", utts))


@pytest.mark.parametrize("speakers", [("ab", "ab-c"), ("john", "john's"), ("s1", "s1-2")])
def test_write_refuses_speakers_kaldi_sorts_apart(tmp_path, utts, speakers):
    """`ab-c-1` < `ab-x` by id, but speaker `ab-c` > `ab`: Kaldi's validate_data_dir.sh says
    "utt2spk is not in sorted order when sorted first on speaker-id"."""
    audio = utts[0].audio
    short, long = speakers
    bad = [Utterance(f"{short}-x", short, audio, "A"), Utterance(f"{long}-1", long, audio, "B")]
    with pytest.raises(DataDirError, match="sorted by speaker"):
        write_data_dir(tmp_path / "data", bad)
    safe = long.replace("-", "_").replace("'", "_")  # `_` sorts above `-`
    ok = [Utterance(f"{short}-x", short, audio, "A"), Utterance(f"{safe}-1", safe, audio, "B")]
    data = write_data_dir(tmp_path / "ok", ok)
    if shutil.which("sort"):
        assert kaldi_accepts_utt2spk_order(data)


def test_read_refuses_speakers_kaldi_sorts_apart(tmp_path, utts):
    data = write_data_dir(tmp_path / "data", utts)
    a = utts[0].audio
    write_lines(data / "wav.scp", [f"ab-c-1 {a}", f"ab-x {a}"])
    write_lines(data / "text", ["ab-c-1 A", "ab-x B"])
    write_lines(data / "utt2spk", ["ab-c-1 ab-c", "ab-x ab"])
    write_lines(data / "spk2utt", ["ab ab-x", "ab-c ab-c-1"])
    if shutil.which("sort"):
        assert not kaldi_accepts_utt2spk_order(data)  # the case is real
    with pytest.raises(DataDirError, match=r"utt2spk.*'ab-x' of speaker 'ab'.*sorted by speaker"):
        read_data_dir(data)


def test_write_refuses_nothing(tmp_path):
    with pytest.raises(DataDirError, match="no utterances"):
        write_data_dir(tmp_path / "data", [])


def _break(data, name, lines):
    write_lines(data / name, lines)


@pytest.mark.parametrize("name, lines, message", [
    ("text", ["B-1 NO", "_x-1 YES", "a-1 IT'S"], r"text: no entry for 'a-2'"),
    ("utt2spk", ["B-1 B", "_x-1 _x", "a-1 a", "a-2 a", "c-1 c"], r"utt2spk:5: 'c-1' is not in wav"),
    ("utt2spk", ["B-1 B", "B-1 B"], r"utt2spk:2: duplicate id 'B-1'"),
    ("utt2spk", ["B-1 B", "_x-1", "a-1 a", "a-2 a"], r"utt2spk:2: no value"),
    ("wav.scp", ["B-1 sox x.wav -t wav - |"], r"wav.scp:1: pipe commands"),
    ("wav.scp", ["B-1 rel/x.wav"], r"wav.scp:1: audio path 'rel/x.wav' is not absolute"),
    ("spk2utt", ["B B-1", "_x _x-1", "a a-1"], r"spk2utt: 'a-2' \(utt2spk\) is not listed"),
    ("spk2utt", ["B B-1 a-1", "_x _x-1", "a a-1 a-2"], r"spk2utt:1: 'a-1' is not an utterance of"),
    ("text", ["", "B-1 NO"], r"text:1: empty line"),
])
def test_read_errors_name_file_and_line(tmp_path, utts, name, lines, message):
    data = write_data_dir(tmp_path / "data", utts)
    _break(data, name, lines)
    with pytest.raises(DataDirError, match=message):
        read_data_dir(data)


def test_read_missing_file_and_dir(tmp_path, utts):
    data = write_data_dir(tmp_path / "data", utts)
    (data / "utt2spk").unlink()
    with pytest.raises(DataDirError, match="utt2spk: missing"):
        read_data_dir(data)
    with pytest.raises(DataDirError, match="no such directory"):
        read_data_dir(tmp_path / "nothing")


def test_read_not_utf8(tmp_path, utts):
    data = write_data_dir(tmp_path / "data", utts)
    (data / "text").write_bytes(b"B-1 caf\xe9\n")
    with pytest.raises(DataDirError, match="text: not UTF-8"):
        read_data_dir(data)


# ----------------------------------------------------------------------------------------------
# splits


def many(n_speakers=10, per_speaker=3):
    return [Utterance(f"s{s:02d}-{i}", f"s{s:02d}", f"/a/s{s}-{i}.wav", "X")
            for s in range(n_speakers) for i in range(per_speaker)]


def test_split_by_speaker_disjoint_complete_deterministic():
    utts = many()
    train, dev = split_by_speaker(utts, 3, seed=7)
    assert len({u.speaker for u in dev}) == 3
    assert not {u.speaker for u in train} & {u.speaker for u in dev}
    assert sorted(train + dev, key=lambda u: u.utt_id) == utts
    shuffled = utts[:]
    random.Random(1).shuffle(shuffled)
    assert split_by_speaker(shuffled, 3, seed=7) == (train, dev)  # input order does not matter
    others = {tuple(u.speaker for u in split_by_speaker(utts, 3, seed=s)[1]) for s in range(10)}
    assert len(others) > 1  # the seed matters


def test_split_by_speaker_first_takes_the_first_speakers_whatever_the_seed_and_order():
    """ESPnet's AN4 train_dev: the first speakers in sorted order, not a draw."""
    utts = many()
    shuffled = utts[:]
    random.Random(1).shuffle(shuffled)
    for seed, given in [(0, utts), (7, shuffled)]:
        train, dev = split_by_speaker(given, 3, seed=seed, first=True)
        assert sorted({u.speaker for u in dev}) == ["s00", "s01", "s02"]
        assert dev == utts[:9] and train == utts[9:]


@pytest.mark.parametrize("n", [0, 10, 11])
def test_split_by_speaker_needs_enough_speakers(n):
    with pytest.raises(DataDirError, match=f"cannot hold out {n} dev speakers from 10"):
        split_by_speaker(many(), n, seed=0)


def test_split_by_utterance():
    utts = many(1, 20)
    train, dev = split_by_utterance(utts, 5, seed=3)
    assert len(dev) == 5 and len(train) == 15
    assert sorted(train + dev, key=lambda u: u.utt_id) == sorted(utts, key=lambda u: u.utt_id)
    assert split_by_utterance(utts[::-1], 5, seed=3) == (train, dev)
    with pytest.raises(DataDirError, match="cannot hold out 20 dev utterances"):
        split_by_utterance(utts, 20, seed=0)


def test_speed_perturb_writes_a_three_way_data_dir(tmp_path):
    """asr speed-perturb: each utterance at 0.9, 1.0 and 1.1, ids and speakers prefixed
    Kaldi's way, audio entries read through the speed: spec."""
    from helpers_data import write_audio

    from asr.audio import audio_info
    from asr.cli import main
    from asr.datadir import Utterance, write_data_dir

    utts = [Utterance(f"spk{i}-u{i}", f"spk{i}", str(write_audio(tmp_path / f"{i}.wav", 1.0)),
                      f"WORD {i}") for i in range(2)]
    write_data_dir(tmp_path / "train", utts)
    assert main(["speed-perturb", str(tmp_path / "train"), str(tmp_path / "train_sp")]) == 0
    got = read_data_dir(tmp_path / "train_sp")
    assert sorted(u.utt_id for u in got) == sorted(
        f"{p}spk{i}-u{i}" for p in ("", "sp0.9-", "sp1.1-") for i in range(2))
    by_id = {u.utt_id: u for u in got}
    assert by_id["sp0.9-spk1-u1"].speaker == "sp0.9-spk1"
    assert by_id["sp0.9-spk1-u1"].text == "WORD 1"
    assert by_id["spk0-u0"].audio == utts[0].audio
    assert audio_info(by_id["sp1.1-spk0-u0"].audio).frames == round(16000 / 1.1)
    assert main(["speed-perturb", str(tmp_path / "train"), str(tmp_path / "x"),
                 "--factors", "3"]) == 2
