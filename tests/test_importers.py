"""Corpus importers on tiny corpora in their published layouts, and the `asr prep` command."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers_data import (
    make_an4,
    make_commonvoice,
    make_folder,
    make_fsdd,
    make_librispeech,
    make_ljspeech,
    make_speechocean762,
    write_audio,
    write_lines,
)

from asr.cli import main
from asr.datadir import read_data_dir
from asr.text import TextNormConfig
from data_prep.common import OUTSIDE_REASON, ImportResult, LayoutError
from data_prep.prep import CORPORA

NORM = TextNormConfig()


def texts(result: ImportResult) -> dict[str, dict[str, str]]:
    """set -> {utt_id: text}"""
    return {name: {u.utt_id: u.text for u in utts} for name, utts in result.sets.items()}


def reasons(result: ImportResult) -> list[tuple[str, str]]:
    """(file name, reason) of each problem, the line number kept."""
    return [(Path(p.path).name, p.reason) for p in result.problems]


def importer(corpus: str):
    return importlib.import_module(f"data_prep.{corpus}").import_corpus


def test_speechocean762(tmp_path):
    root = make_speechocean762(tmp_path / "so")
    result = importer("speechocean762")(root, NORM)
    assert texts(result) == {
        "train": {"0001-000010011": "WE CALL IT BEAR", "0001-000010035": "ZERO THREE FIVE",
                  "0002-000020001": "IT'S A BOOK"},
        "test": {"0009-000090001": "GOOD MORNING"},
    }
    utt = result.sets["train"][0]
    assert utt.speaker == "0001" and utt.audio == str(root / "WAVE/SPEAKER0001/000010011.flac")
    assert reasons(result) == [  # list-file problems, then transcripts, then audio
        ("passwd)", "path outside the corpus dir (pass --allow-outside-paths to accept it)"),
        ("outside.flac)", "path outside the corpus dir (pass --allow-outside-paths to accept it)"),
        ("wav.scp:7 (flac -d -c x.flac |)", "pipe command 'flac -d -c x.flac |' is not "
                                            "supported (convert the audio to files)"),
        ("text:8", "empty transcript after normalisation (0002-000020007)"),
        ("000020003.flac", "no such file"),
    ]
    assert result.problems[0].path == f"{root}/train/wav.scp:5 (../../etc/passwd)"


def test_speechocean762_allow_outside(tmp_path):
    root = make_speechocean762(tmp_path / "so")
    result = importer("speechocean762")(root, NORM, allow_outside=True)
    assert result.sets["train"][-1].audio == str(tmp_path / "outside.flac")
    assert "0002-000020005" in texts(result)["train"]
    assert ("passwd", "no such file") in reasons(result)  # let through, then not found


def test_speechocean762_bad_lines(tmp_path):
    root = make_speechocean762(tmp_path / "so")
    with open(root / "test/text", "ab") as f:
        f.write(b"000090001 AGAIN\n000090002 caf\xe9\n")
    result = importer("speechocean762")(root, NORM)
    assert ("text:3", "not UTF-8") in reasons(result)
    assert any(r.startswith("duplicate id 000090001") for _, r in reasons(result))
    assert texts(result)["test"] == {"0009-000090001": "GOOD MORNING"}


def test_librispeech(tmp_path):
    base = make_librispeech(tmp_path)
    expected = {
        "dev_clean": {"84-121-0000": "NORTHANGER ABBEY NUMBER 0",
                      "84-121-0001": "NORTHANGER ABBEY NUMBER 1"},
        "train_clean_100": {"19-198-0000": "NORTHANGER ABBEY NUMBER 0",
                            "19-198-0001": "NORTHANGER ABBEY NUMBER 1"},
    }
    for src in (base, tmp_path):  # the LibriSpeech/ root, or the dir holding it
        result = importer("librispeech")(src, NORM)
        assert texts(result) == expected
        [(name, reason)] = reasons(result)
        assert name == "19-198-0002.flac" and reason.startswith("unreadable audio (")
    one = importer("librispeech")(base / "dev-clean", NORM)
    assert texts(one) == {"dev_clean": expected["dev_clean"]}
    assert one.sets["dev_clean"][0].speaker == "84"


@pytest.mark.parametrize("release", ["sphere", "raw"])
def test_an4(tmp_path, release):
    result = importer("an4")(make_an4(tmp_path, release), NORM)
    assert texts(result) == {
        "train": {"fash-an251-fash-b": "YES", "mblw-cen1-mblw-b": "ENTER SIX"},
        "test": {"fcaw-an406-fcaw-b": "ERASE C Q"},
    }
    assert reasons(result) == [("an253-fash-b.sph", "no such file")]
    assert result.sets["train"][0].speaker == "fash"
    audio = result.sets["train"][0].audio
    if release == "raw":
        assert audio.startswith("raw:rate=16000,encoding=s16be,channels=1:/")
        assert audio.endswith("/wav/an4_clstk/fash/an251-fash-b.raw")
    else:
        assert audio.endswith("/wav/an4_clstk/fash/an251-fash-b.sph")


def test_an4_releases_give_the_same_data_dirs(tmp_path):
    """asr prep an4 on the sphere and on the raw release: the same files, line for line, apart
    from the audio entries of wav.scp, which differ only in path and format notation."""
    outs = {}
    for release in ("sphere", "raw"):
        src = make_an4(tmp_path / release, release)
        out = tmp_path / f"data_{release}"
        assert main(["prep", "an4", str(src), str(out), "--dev-utts", "1"]) == 0
        outs[release] = out
    sets = sorted(p.name for p in outs["sphere"].iterdir() if p.is_dir())
    assert sets == sorted(p.name for p in outs["raw"].iterdir() if p.is_dir()) and "test" in sets
    for s in sets:
        for name in ("text", "utt2spk", "spk2utt"):
            assert (outs["sphere"] / s / name).read_text() == (outs["raw"] / s / name).read_text()
        sph = (outs["sphere"] / s / "wav.scp").read_text().splitlines()
        raw = (outs["raw"] / s / "wav.scp").read_text().splitlines()
        assert len(sph) == len(raw)
        for a, b in zip(sph, raw):
            utt_a, path_a = a.split(" ", 1)
            utt_b, spec_b = b.split(" ", 1)
            assert utt_a == utt_b
            rel_a = Path(path_a).relative_to(tmp_path / "sphere").with_suffix("")
            assert spec_b == "raw:rate=16000,encoding=s16be,channels=1:" + str(
                tmp_path / "raw" / rel_a.with_suffix(".raw"))


def test_ljspeech(tmp_path):
    make_ljspeech(tmp_path)
    result = importer("ljspeech")(tmp_path, NORM)
    assert texts(result) == {"train": {"LJ001-0001": "PRINTING IN ONE SENSE",
                                       "LJ001-0002": "IN BEING COMPARATIVELY MODERN"}}
    assert {u.speaker for u in result.sets["train"]} == {"LJ"}
    assert reasons(result) == [("metadata.csv:3", "empty transcript after normalisation "
                                                  "(LJ001-0003)")]


def test_commonvoice(tmp_path):
    result = importer("commonvoice")(make_commonvoice(tmp_path), NORM)
    assert texts(result) == {
        "train": {"aaa111-common_voice_en_1": "HELLO SHE SAID",
                  "aaa111-common_voice_en_2": "GOOD NIGHT"},
        "test": {"ccc333-common_voice_en_4": "YES"},
    }
    assert reasons(result) == [
        ("passwd)", "path outside the corpus dir (pass --allow-outside-paths to accept it)"),
        ("train.tsv:5", "empty transcript after normalisation (bbb222-common_voice_en_3)"),
    ]


def test_fsdd(tmp_path):
    result = importer("fsdd")(make_fsdd(tmp_path), TextNormConfig(case="lower"))
    sets = texts(result)
    assert sorted(sets["test"]) == [f"{s}-{d}-{i}" for s in ("george", "jackson") for d in (0, 7)
                                    for i in (3, 4)]
    assert sorted(sets["train"]) == ["george-0-5", "george-0-6", "george-7-5", "george-7-6",
                                     "jackson-0-5", "jackson-0-6", "jackson-7-5"]
    assert sets["train"]["george-7-5"] == "seven" and sets["test"]["jackson-0-3"] == "zero"
    [misnamed, corrupt] = reasons(result)
    assert misnamed == ("notes.wav", "name is not {digit}_{speaker}_{index}")
    assert corrupt[0] == "7_jackson_6.wav" and corrupt[1].startswith("unreadable audio (")


def test_folder_sets(tmp_path):
    result = importer("folder")(make_folder(tmp_path), NORM)
    assert texts(result) == {
        "test": {"carol-001": "BYE"},
        "train": {"alice-001": "HELLO THERE", "alice-alice_002": "OK", "bob-003": "BOB'S TURN"},
    }
    assert {u.utt_id: u.speaker for u in result.sets["train"]} == {
        "alice-001": "alice", "alice-alice_002": "alice", "bob-003": "bob"}
    assert sorted(reasons(result)) == [
        ("004.wav", "no transcript (.txt or .lab) next to it"),
        ("bob-005.txt", "transcript is not UTF-8"),
        ("loose_001.wav", "audio beside the set dirs, not in one"),
    ]


def test_folder_flat_is_train(tmp_path):
    for name, text in (("spk1_a", "one"), ("spk1_b", "two"), ("x-1", "three"), ("solo", "four")):
        write_audio(tmp_path / f"{name}.flac")
        write_lines(tmp_path / f"{name}.txt", [text])
    write_audio(tmp_path / "solo.wav")  # same id as solo.flac
    write_lines(tmp_path / "solo.lab", ["four"])
    result = importer("folder")(tmp_path, NORM)
    assert texts(result) == {"train": {"spk1-a": "ONE", "spk1-b": "TWO", "x-1": "THREE",
                                       "solo-solo": "FOUR"}}
    assert [r for _, r in reasons(result)] == [f"duplicate utterance id solo-solo (first at "
                                               f"{tmp_path / 'solo.txt'})"]


def write_recordings(root: Path, rels: list[str]) -> Path:
    """ROOT/<rel>.wav with a transcript `hello` beside each."""
    for rel in rels:
        write_audio(root / f"{rel}.wav")
        write_lines(root / f"{rel}.txt", ["hello"])
    return root


def test_folder_speaker_is_the_first_dir_below_the_set(tmp_path):
    """Sessions below speakers: the speaker is the first dir, the id the whole path."""
    src = write_recordings(tmp_path, ["train/spk1/sess1/a", "train/spk2/sess1/a",
                                      "train/spk2/sess2/a", "train/spk2/b"])
    result = importer("folder")(src, NORM)
    assert {u.utt_id: u.speaker for u in result.sets["train"]} == {
        "spk1-sess1-a": "spk1", "spk2-b": "spk2", "spk2-sess1-a": "spk2", "spk2-sess2-a": "spk2"}
    assert result.problems == []


@pytest.mark.parametrize("speaker_from, expected", [
    ("dir", {"alice-001": "alice", "alice-alice_002": "alice", "bob-003": "bob"}),
    ("prefix", {"001-alice-001": "001", "alice-alice-002": "alice", "bob-003": "bob"}),
    ("none", {"train-alice-001": "train", "train-alice-alice_002": "train",
              "train-bob-003": "train"}),
])
def test_folder_speaker_from(tmp_path, speaker_from, expected):
    result = importer("folder")(make_folder(tmp_path), NORM, speaker_from=speaker_from)
    assert {u.utt_id: u.speaker for u in result.sets["train"]} == expected


@pytest.mark.parametrize("names, args, status, warning", [
    (["001", "002", "003", "004"], ["--dev-speakers", "2"], 0, "4 speakers for its 4 utterances"),
    (["recording_2023_01", "recording_2023_02"], ["--dev-speakers", "1"], 2,
     "1 speaker for its 2 utterances"),
    (["001", "002", "003", "004"], ["--speaker-from", "none", "--dev-speakers", "1"], 2,
     "1 speaker for its 4 utterances"),
    (["001", "002", "003", "004"], ["--speaker-from", "none", "--dev-utts", "1"], 0, None),
    (["ann_1", "ann_2", "bob_1", "bob_2"], ["--dev-speakers", "1"], 0, None),
])
def test_prep_folder_warns_about_speakers(tmp_path, capsys, names, args, status, warning):
    """A flat folder: the speaker count is printed, and a warning given when --dev-speakers
    would hold out single utterances (one speaker per file) or cannot work (one speaker)."""
    src = write_recordings(tmp_path / "src", names)
    assert main(["prep", "folder", str(src), str(tmp_path / "out"), *args]) == status
    captured = capsys.readouterr()
    if warning is None:
        assert "warning" not in captured.err
    else:
        assert f"asr prep: warning: train has {warning}" in captured.err
        assert "--dev-utts" in captured.err and "--speaker-from" in captured.err


def test_prep_speaker_from_is_for_folders(tmp_path, capsys):
    root = make_speechocean762(tmp_path / "so")
    assert main(["prep", "speechocean762", str(root), str(tmp_path / "out"),
                 "--speaker-from", "dir"]) == 2
    assert "--speaker-from" in capsys.readouterr().err


def make_kaldi_dir(d: Path, audio_root: Path, rel: str) -> None:
    write_audio(audio_root / "wav/a1.wav")
    write_audio(audio_root / "wav/b1.wav")
    write_lines(d / "wav.scp", [f"spkA-1 {rel}wav/a1.wav", f"u2 {rel}wav/b1.wav", "u3 sox x |"])
    write_lines(d / "text", ["spkA-1 Hello", "u2 World", "u3 piped", "u4 orphan"])
    write_lines(d / "utt2spk", ["spkA-1 spkA", "u2 spkB", "u3 spkB"])


def test_kaldi_single_dir(tmp_path):
    make_kaldi_dir(tmp_path / "train", tmp_path / "train", "")
    result = importer("kaldi")(tmp_path / "train", NORM)
    assert texts(result) == {"train": {"spkA-1": "HELLO", "spkB-u2": "WORLD"}}
    assert reasons(result) == [
        ("wav.scp:3 (sox x |)", "pipe command 'sox x |' is not supported (convert the audio "
                                "to files)"),
        ("text:4", "u4 has a transcript but no audio in wav.scp"),
    ]


def test_kaldi_subdirs_and_outside(tmp_path):
    make_kaldi_dir(tmp_path / "data/train", tmp_path / "audio", "../audio/")
    make_kaldi_dir(tmp_path / "data/test", tmp_path / "data", "")
    result = importer("kaldi")(tmp_path / "data", NORM)
    assert sorted(result.sets) == ["test"]  # train's audio lies outside data/
    assert sum(r.startswith("path outside") for _, r in reasons(result)) == 2
    result = importer("kaldi")(tmp_path / "data", NORM, allow_outside=True)
    assert sorted(result.sets) == ["test", "train"]


def test_kaldi_segments_refused(tmp_path):
    make_kaldi_dir(tmp_path / "train", tmp_path / "train", "")
    write_lines(tmp_path / "train/segments", ["spkA-1 rec 0.0 1.0"])
    with pytest.raises(LayoutError, match="segments"):
        importer("kaldi")(tmp_path / "train", NORM)


@pytest.mark.parametrize("corpus", CORPORA)
def test_layout_errors(tmp_path, corpus):
    (tmp_path / "empty").mkdir()
    write_lines(tmp_path / "empty/README", ["nothing here"])
    with pytest.raises(LayoutError, match="empty"):
        importer(corpus)(tmp_path / "empty", NORM)
    with pytest.raises(LayoutError, match="no such directory"):
        importer(corpus)(tmp_path / "missing", NORM)


# ----------------------------------------------------------------------------------------------
# asr prep


def test_prep_writes_sets_json_and_problems(tmp_path, capsys):
    root = make_speechocean762(tmp_path / "so")
    out = tmp_path / "data"
    assert main(["prep", "speechocean762", str(root), str(out), "--dev-speakers", "1"]) == 0
    train, dev, test = (read_data_dir(out / s) for s in ("train", "dev", "test"))
    assert len(train) + len(dev) == 3 and len(test) == 1
    assert len({u.speaker for u in dev}) == 1
    assert not {u.speaker for u in train} & {u.speaker for u in dev}
    record = json.loads((out / "prep.json").read_text())
    assert record["corpus"] == "speechocean762" and record["src"] == str(root)
    assert record["normalization"] == NORM.to_dict() and record["seed"] == 0
    assert record["sets"]["test"] == {"utterances": 1, "speakers": 1}
    assert len(record["problems"]) == 5
    tsv = (out / "problems.tsv").read_text().splitlines()
    assert len(tsv) == 5 and tsv[-1] == f"{root}/WAVE/SPEAKER0002/000020003.flac\tno such file"
    captured = capsys.readouterr()
    assert f"{root}/WAVE/SPEAKER0002/000020003.flac: no such file" in captured.err
    assert "test: 1 utterances, 1 speakers" in captured.out
    assert "4 utterances in 3 sets" in captured.out and "5 skipped" in captured.out


def test_prep_is_deterministic(tmp_path):
    root = make_fsdd(tmp_path / "fsdd")
    for out in ("a", "b"):
        assert main(["prep", "fsdd", str(root), str(tmp_path / out), "--dev-utts", "3",
                     "--seed", "5"]) == 0
    for name in ("train/text", "dev/wav.scp", "test/spk2utt", "prep.json", "problems.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert len(read_data_dir(tmp_path / "a/dev")) == 3


def test_prep_options(tmp_path):
    make_ljspeech(tmp_path / "lj")
    out = tmp_path / "data"
    assert main(["prep", "ljspeech", str(tmp_path / "lj"), str(out), "--case", "lower",
                 "--keep-punct", "--strict"]) == 0  # "..." is a transcript when kept
    assert [u.text for u in read_data_dir(out / "train")] == ["printing, in one sense",
                                                               "in being comparatively modern.",
                                                               "..."]
    record = json.loads((out / "prep.json").read_text())
    assert record["normalization"] == {"case": "lower", "strip_punct": False, "keep_chars": "'"}
    assert main(["prep", "ljspeech", str(tmp_path / "lj"), str(out), "--strict"]) == 1
    assert len(read_data_dir(out / "train")) == 2  # written all the same


def test_prep_dev_pick_first_holds_out_the_first_speakers(tmp_path):
    root = make_speechocean762(tmp_path / "so")
    speakers = {}
    for pick in ("first", "random"):
        out = tmp_path / pick
        assert main(["prep", "speechocean762", str(root), str(out), "--dev-speakers", "1",
                     "--dev-pick", pick, "--seed", "0"]) == 0
        train, dev = read_data_dir(out / "train"), read_data_dir(out / "dev")
        assert json.loads((out / "prep.json").read_text())["dev_pick"] == pick
        speakers[pick] = ({u.speaker for u in train}, {u.speaker for u in dev})
    train, dev = speakers["first"]
    assert len(dev) == 1 and max(dev) < min(train)  # the first speaker in sorted order
    assert speakers["random"] != speakers["first"]  # seed 0 draws the other one


@pytest.mark.parametrize("args, message", [
    (["fsdd", "{tmp}/missing"], "no such directory"),
    (["fsdd", "{tmp}/so"], "not an FSDD corpus"),
    (["speechocean762", "{tmp}/so", "--dev-speakers", "2"], "cannot hold out 2 dev speakers"),
    (["speechocean762", "{tmp}/so", "--dev-utts", "1", "--dev-pick", "first"],
     "give --dev-speakers N with it"),
])
def test_prep_clear_errors(tmp_path, capsys, args, message):
    make_speechocean762(tmp_path / "so")
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["prep", args[0], args[1], str(tmp_path / "out"), *args[2:]]) == 2
    err = capsys.readouterr().err
    assert err.startswith("asr prep: error: ") and message in err and err.count("\n") == 1


def test_prep_help_lists_corpora(capsys):
    with pytest.raises(SystemExit) as e:
        main(["prep", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(c in out for c in CORPORA)


# ----------------------------------------------------------------------------------------------
# A user's own Kaldi dir: absolute paths, as Kaldi recipes write them


def make_absolute_kaldi_dir(tmp_path: Path) -> Path:
    """data/train/ whose wav.scp lists absolute paths of audio kept elsewhere (audio/)."""
    lines = {"wav.scp": [], "text": [], "utt2spk": []}
    for i, name in enumerate(("a", "b", "c")):
        audio = write_audio(tmp_path / f"audio/{name}.wav")
        utt = f"spk{i}-{name}"
        lines["wav.scp"].append(f"{utt} {audio}")
        lines["text"].append(f"{utt} hello {name}")
        lines["utt2spk"].append(f"{utt} spk{i}")
    for name, content in lines.items():
        write_lines(tmp_path / "data/train" / name, content)
    return tmp_path / "data/train"


def test_kaldi_absolute_paths_by_default(tmp_path):
    src = make_absolute_kaldi_dir(tmp_path)
    write_lines(src / "wav.scp", [*(src / "wav.scp").read_text().splitlines(),
                                  "spk0-x ../../audio/a.wav"])
    write_lines(src / "text", [*(src / "text").read_text().splitlines(), "spk0-x relative"])
    write_lines(src / "utt2spk", [*(src / "utt2spk").read_text().splitlines(), "spk0-x spk0"])
    result = importer("kaldi")(src, NORM)
    assert texts(result) == {"train": {"spk0-a": "HELLO A", "spk1-b": "HELLO B",
                                       "spk2-c": "HELLO C"}}
    assert result.sets["train"][0].audio == str(tmp_path / "audio/a.wav")
    # a relative path is taken from SRC: leading out of it is still refused
    [problem] = result.problems
    assert problem.path == f"{src}/wav.scp:4 (../../audio/a.wav)"
    assert problem.reason == OUTSIDE_REASON


def test_prep_kaldi_absolute_paths(tmp_path, capsys):
    src = make_absolute_kaldi_dir(tmp_path)
    assert main(["prep", "kaldi", str(src), str(tmp_path / "out")]) == 0
    assert [u.utt_id for u in read_data_dir(tmp_path / "out/train")] == [
        "spk0-a", "spk1-b", "spk2-c"]
    assert "train: 3 utterances, 3 speakers" in capsys.readouterr().out


def test_prep_help_says_why_kaldi_accepts_absolute_paths(capsys):
    with pytest.raises(SystemExit):
        main(["prep", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "kaldi" in out and "absolute" in out


def test_prep_without_usable_utterances_says_why(tmp_path, capsys):
    """Every utterance refused: the reasons are printed and problems.tsv is written, then exit 2."""
    src = make_absolute_kaldi_dir(tmp_path)
    for name in ("a", "b", "c"):
        (tmp_path / f"audio/{name}.wav").unlink()
    out = tmp_path / "out"
    assert main(["prep", "kaldi", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert "no usable utterances" in err and str(out / "problems.tsv") in err
    assert f"{tmp_path / 'audio/a.wav'}: no such file" in err
    tsv = (out / "problems.tsv").read_text().splitlines()
    assert tsv == [f"{tmp_path / 'audio' / n}.wav\tno such file" for n in ("a", "b", "c")]
    assert not (out / "prep.json").exists()  # prep is not done


# ----------------------------------------------------------------------------------------------
# ids that Kaldi's sort rules accept (utils/validate_data_dir.sh)


def kaldi_sort_ok(data_dir: Path) -> bool:
    """utils/validate_data_dir.sh's check: utt2spk sorted on speaker (LC_ALL=C sort -k2 -C)."""
    return subprocess.run(["sort", "-k2", "-C", str(data_dir / "utt2spk")],
                          env={"LC_ALL": "C"}).returncode == 0


@pytest.mark.skipif(shutil.which("sort") is None, reason="needs sort(1)")
def test_prep_folder_speakers_that_kaldi_would_sort_apart(tmp_path, capsys):
    """Speaker dirs `ab`, `ab-c`, `john`, `john's`: the ids `ab-c-1` < `ab-x` and `john's-1` <
    `john-1` sort against their speakers; the longer speakers are renamed."""
    for rel in ("ab/x", "ab-c/1", "john/1", "john's/1", "zed-1/y"):
        write_audio(tmp_path / f"src/train/{rel}.wav")
        write_lines(tmp_path / f"src/train/{rel}.txt", ["hello"])
    out = tmp_path / "out"
    assert main(["prep", "folder", str(tmp_path / "src"), str(out)]) == 0
    utts = read_data_dir(out / "train")
    assert {u.utt_id: u.speaker for u in utts} == {
        "ab-x": "ab", "ab_c-1": "ab_c", "john-1": "john", "john_s-1": "john_s",
        "zed-1-y": "zed-1"}  # zed-1 has no rival: kept
    assert kaldi_sort_ok(out / "train")
    renamed = {"ab-c": "ab_c", "john's": "john_s"}
    assert json.loads((out / "prep.json").read_text())["renamed_speakers"] == renamed
    assert "renamed 2 speakers" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("sort") is None, reason="needs sort(1)")
def test_kaldi_dir_with_speakers_kaldi_sorts_apart(tmp_path):
    """A user's dir that Kaldi itself refuses is repaired; one it accepts is kept as it is."""
    audio = write_audio(tmp_path / "a.wav")
    src = tmp_path / "data/train"
    ids = {"ab-c-1": "ab-c", "ab-x": "ab", "fcjf0_si1": "fcjf0", "fcjf0_si2": "fcjf0"}
    write_lines(src / "wav.scp", [f"{u} {audio}" for u in ids])
    write_lines(src / "text", [f"{u} yes" for u in ids])
    write_lines(src / "utt2spk", [f"{u} {s}" for u, s in ids.items()])
    assert not kaldi_sort_ok(src)
    result = importer("kaldi")(src, NORM)
    assert {u.utt_id: u.speaker for u in result.sets["train"]} == {
        "ab-x": "ab", "ab_c-1": "ab_c", "fcjf0_si1": "fcjf0", "fcjf0_si2": "fcjf0"}
    assert result.renamed_speakers == {"ab-c": "ab_c"}
    del ids["ab-c-1"]
    for name, lines in (("wav.scp", [f"{u} {audio}" for u in ids]),
                        ("text", [f"{u} yes" for u in ids]),
                        ("utt2spk", [f"{u} {s}" for u, s in ids.items()])):
        write_lines(src / name, lines)
    result = importer("kaldi")(src, NORM)
    assert [u.utt_id for u in result.sets["train"]] == list(ids) and not result.renamed_speakers
