"""Tiny synthetic audio and corpora in their published layouts, for the data-side tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000

# soundfile (format, subtype) for each suffix the tests write
FORMATS = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".sph": ("NIST", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


def sine(seconds: float = 0.1, sr: int = SR, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    """A sine wave, float32 [N]."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, seconds: float = 0.1, sr: int = SR, freq: float = 440.0) -> Path:
    """A short sine in the format the suffix names; parent dirs are made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt, subtype = FORMATS[path.suffix]
    sf.write(path, sine(seconds, sr, freq), sr, format=fmt, subtype=subtype)
    return path


def write_corrupt(path: Path) -> Path:
    """A file with the right suffix and a garbage header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio at all")
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def make_speechocean762(root: Path) -> Path:
    """train/ (3 good utterances of 2 speakers + bad ones) and test/ (1 utterance).

    Bad: missing audio (000020003), a path out of the corpus (000020004), an absolute path
    (000020005), a pipe (000020006), an empty transcript (000020007).
    """
    good = [("000010011", "0001", "WE CALL IT BEAR"), ("000010035", "0001", "ZERO three, five"),
            ("000020001", "0002", "IT'S A BOOK")]
    wav, text, utt2spk = [], [], []
    for utt, spk, words in good:
        write_audio(root / f"WAVE/SPEAKER{spk}/{utt}.flac")
        wav.append(f"{utt}\tWAVE/SPEAKER{spk}/{utt}.flac")
        text.append(f"{utt}\t{words}")
        utt2spk.append(f"{utt} {spk}")
    outside = write_audio(root.parent / "outside.flac")
    bad = {"000020003": "WAVE/SPEAKER0002/000020003.flac", "000020004": "../../etc/passwd",
           "000020005": str(outside), "000020006": "flac -d -c x.flac |",
           "000020007": "WAVE/SPEAKER0001/000010011.flac"}
    for utt, path in bad.items():
        wav.append(f"{utt}\t{path}")
        text.append(f"{utt}\t{'...' if utt == '000020007' else 'HELLO'}")
        utt2spk.append(f"{utt} 0002")
    write_lines(root / "train/wav.scp", wav)
    write_lines(root / "train/text", text)
    write_lines(root / "train/utt2spk", utt2spk)
    write_lines(root / "train/spk2utt", ["0001 000010011 000010035", "0002 000020001"])
    write_audio(root / "WAVE/SPEAKER0009/000090001.flac")
    write_lines(root / "test/wav.scp", ["000090001 WAVE/SPEAKER0009/000090001.flac"])
    write_lines(root / "test/text", ["000090001 GOOD MORNING"])
    write_lines(root / "test/utt2spk", ["000090001 0009"])
    return root


def make_librispeech(root: Path) -> Path:
    """LibriSpeech/{train-clean-100,dev-clean}; one corrupt flac in train-clean-100."""
    base = root / "LibriSpeech"
    splits = (("train-clean-100", "19", "198", 3), ("dev-clean", "84", "121", 2))
    for split, spk, chapter, n in splits:
        chap = base / split / spk / chapter
        lines = []
        for i in range(n):
            utt = f"{spk}-{chapter}-{i:04d}"
            write_audio(chap / f"{utt}.flac")
            lines.append(f"{utt} NORTHANGER ABBEY NUMBER {i}")
        write_lines(chap / f"{spk}-{chapter}.trans.txt", lines)
    write_corrupt(base / "train-clean-100/19/198/19-198-0002.flac")
    return base


def write_raw_bigendian(path: Path, wave: np.ndarray) -> Path:
    """Headerless 16-bit signed big-endian PCM, as CMU's an4_raw.bigendian release holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = np.clip(np.round(wave * 32768), -32768, 32767).astype(">i2")
    path.write_bytes(pcm.tobytes())
    return path


def make_an4(root: Path, release: str = "sphere") -> Path:
    """an4/ with 2 train utterances (one missing its audio) and 1 test without <s> marks, in
    CMU's sphere release (`.sph`) or its raw big-endian one (`.raw`)."""
    an4 = root / "an4"
    write_lines(an4 / "etc/an4_train.transcription", [
        "<s> YES </s> (an251-fash-b)",
        "<s> GO </s> (an253-fash-b)",
        "<s> ENTER SIX </s> (cen1-mblw-b)",
    ])
    write_lines(an4 / "etc/an4_test.transcription", ["ERASE C Q (an406-fcaw-b)"])
    for rel in ("an4_clstk/fash/an251-fash-b", "an4_clstk/mblw/cen1-mblw-b",
                "an4test_clstk/fcaw/an406-fcaw-b"):
        if release == "raw":
            write_raw_bigendian(an4 / f"wav/{rel}.raw", sine(0.1))
        else:
            write_audio(an4 / f"wav/{rel}.sph")
    return an4


def make_ljspeech(root: Path) -> Path:
    """LJSpeech-1.1/ with 3 clips: normalized text, raw fallback, and one with no text."""
    lj = root / "LJSpeech-1.1"
    write_lines(lj / "metadata.csv", [
        "LJ001-0001|Printing, in 1 sense|Printing, in one sense",
        "LJ001-0002|in being comparatively modern.|",
        "LJ001-0003|...|...",
    ])
    for i in (1, 2, 3):
        write_audio(lj / f"wavs/LJ001-000{i}.wav")
    return lj


def make_commonvoice(root: Path) -> Path:
    """en/ with train.tsv (2 good rows, one escaping path, one empty sentence) and test.tsv."""
    cv = root / "en"
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent"
    write_lines(cv / "train.tsv", [
        header,
        "aaa111\tcommon_voice_en_1.mp3\t\"Hello,\" she said.\t2\t0\t\t\t",
        "aaa111\tcommon_voice_en_2.mp3\tGood night\t2\t0\t\t\t",
        "bbb222\t../../../etc/passwd\tSneaky\t2\t0\t\t\t",
        "bbb222\tcommon_voice_en_3.mp3\t\t2\t0\t\t\t",
    ])
    write_lines(cv / "test.tsv", [header, "ccc333\tcommon_voice_en_4.mp3\tYes.\t2\t0\t\t\t"])
    for i in range(1, 5):
        write_audio(cv / f"clips/common_voice_en_{i}.mp3")
    return cv


def make_fsdd(root: Path) -> Path:
    """recordings/ of 2 speakers, indices 3..6 of digits 0 and 7; one corrupt, one misnamed."""
    rec = root / "recordings"
    for spk in ("george", "jackson"):
        for digit in (0, 7):
            for index in (3, 4, 5, 6):
                write_audio(rec / f"{digit}_{spk}_{index}.wav", sr=8000)
    write_corrupt(rec / "7_jackson_6.wav")
    write_audio(rec / "notes.wav", sr=8000)
    return root


def make_folder(root: Path) -> Path:
    """train/ (speaker dirs and speaker-prefixed names) and test/; some bad files."""
    corpus = root / "mine"
    write_lines(corpus / "README.md", ["not audio"])
    for path, text in (("train/alice/001.wav", "hello there"), ("train/alice/alice_002.flac", "OK"),
                       ("train/bob-003.ogg", "bob's turn"), ("test/carol_001.wav", "bye")):
        write_audio(corpus / path)
        suffix = ".lab" if path.endswith(".ogg") else ".txt"
        write_lines((corpus / path).with_suffix(suffix), [text])
    write_audio(corpus / "train/alice/004.wav")  # no transcript
    write_audio(corpus / "train/bob-005.wav")
    (corpus / "train/bob-005.txt").write_bytes(b"caf\xe9\n")  # Latin-1, not UTF-8
    write_audio(corpus / "loose_001.wav")  # beside the set dirs
    write_lines(corpus / "loose_001.txt", ["lost"])
    return corpus
