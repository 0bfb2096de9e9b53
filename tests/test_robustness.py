"""What real users feed the pipeline, end to end through the `asr` command: each case ends in a
clear error or a clean skip (listed with its reason), never a traceback, a hang, NaN weights or
lost work.

Where each case of the robustness issue is shown (this file unless named):

| case | outcome | test |
|---|---|---|
| truncated wav header, zero-length file, directory as a file, wav.scp -> missing file, path outside the corpus, transcript not UTF-8, empty transcript, duplicate utterance id | prep lists file + reason, skips it, keeps the rest; `--strict` exits 1 | test_prep_lists_each_bad_file |
| a 1-sample file, NaN/inf samples | features list file + reason, skip it | test_features_skip_what_cannot_be_decoded |
| 96 kHz 24-bit 6-channel audio | mixed down, resampled, used | test_features_skip_what_cannot_be_decoded, test_transcribe_odd_files |
| 10 minutes of silence | features fine; training skips it (longer than a batch may be); transcribe gives no words, fast | test_training_skips_what_it_cannot_learn_from, test_transcribe_odd_files |
| transcript only of characters outside the vocabulary; too short for its transcript under CTC | training skips it with a count | test_training_skips_what_it_cannot_learn_from |
| 8 kHz audio given to a 16 kHz model; unreadable files among good ones | resampled and decoded, times right; reported, the others done, exit 1 | test_transcribe.py::test_cli_reports_unreadable_files_and_does_the_others |
| duplicate ids / missing file inside a data dir given to `asr features` | exit 2, file and line named | test_a_broken_data_dir_is_one_clear_error |
| SIGKILL during feature extraction | rerun completes, byte-identical | test_featstore.py::test_sigkill_during_write_then_rerun |
| SIGKILL while a checkpoint is written | previous checkpoint intact, --resume works | test_train.py::test_kill_while_writing_a_checkpoint_keeps_the_previous_one |
| full disk (a size-limited file) while writing features / checkpoints | clear error, earlier outputs intact, rerun completes | test_size_limit_while_writing_features, test_size_limit_while_writing_a_checkpoint |
| checkpoint with a pickle payload | refused, payload not run | test_model.py::test_pickle_payload_is_refused_and_does_not_run |
| paths outside the corpus | refused unless --allow-outside-paths | here and test_importers.py |
| arbitrary input to decoders, scorer, normaliser | hypothesis properties hold | test_decoding.py::test_fuzz_invariants, test_scoring.py, test_text.py |
"""  # noqa: E501

import math
import resource
import signal

import numpy as np
import pytest
import soundfile as sf
from helpers_train import ROOT, SR, extract, make_tone_set, run_asr, tiny_train_args, tone_wave

from asr.checkpoint import load_checkpoint
from asr.featstore import FeatureStore

GOOD = ["ABC BAD", "CAB", "DEED ACE", "BEAD DAB", "CEDE", "ACE CAB", "DAB DEED", "BAD CEDE"]


def write_kaldi(set_dir, wav_lines, text_lines, utt2spk_lines):
    set_dir.mkdir(parents=True, exist_ok=True)
    (set_dir / "wav.scp").write_text("".join(f"{line}\n" for line in wav_lines))
    (set_dir / "text").write_bytes(b"".join(line + b"\n" for line in text_lines))
    (set_dir / "utt2spk").write_text("".join(f"{line}\n" for line in utt2spk_lines))


def make_messy_corpus(root):
    """A Kaldi-layout corpus (relative paths) of good tone utterances and every kind of bad one.
    Returns {utt_id: what is wrong with it} for the bad ones."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    wav, text, spk = [], [], []

    def add(utt, path, transcript: bytes, speaker="s1"):
        wav.append(f"{speaker}-{utt} {path}")
        text.append(f"{speaker}-{utt} ".encode() + transcript)
        spk.append(f"{speaker}-{utt} {speaker}")

    for i, sentence in enumerate(GOOD):
        sf.write(audio / f"good{i}.wav", tone_wave(sentence, seed=i), SR)
        add(f"good{i}", f"audio/good{i}.wav", sentence.encode(), speaker=f"s{i % 2}")
    good = tone_wave("ABC", seed=9)
    (audio / "trunc.wav").write_bytes((audio / "good0.wav").read_bytes()[:30])
    add("trunc", "audio/trunc.wav", b"ABC")
    (audio / "empty.wav").write_bytes(b"")
    add("empty", "audio/empty.wav", b"ABC")
    (audio / "folder.wav").mkdir()
    add("folder", "audio/folder.wav", b"ABC")
    add("missing", "audio/missing.wav", b"ABC")
    add("outside", "../../etc/passwd", b"ABC")
    sf.write(audio / "latin1.wav", good, SR)
    add("latin1", "audio/latin1.wav", "CAFÉ".encode("latin-1"))
    sf.write(audio / "notext.wav", good, SR)
    add("notext", "audio/notext.wav", b"  ,;  ")
    add("good0", "audio/good0.wav", b"ABC BAD", speaker="s0")  # a second line for s0-good0
    # decodable headers, bad samples or lengths: found by later stages
    sf.write(audio / "one_sample.wav", np.array([0.1], np.float32), SR)
    add("one_sample", "audio/one_sample.wav", b"A")
    nan = good.copy()
    nan[100] = np.nan
    sf.write(audio / "nan.wav", nan, SR, subtype="FLOAT")
    add("nan", "audio/nan.wav", b"ABC")
    sf.write(audio / "silence.flac", np.zeros(600 * SR, np.int16), SR)  # ten minutes
    add("silence", "audio/silence.flac", b"ABC")
    sf.write(audio / "hires.wav", hires(tone_wave("DEED", seed=11)), 96000, subtype="PCM_24")
    add("hires", "audio/hires.wav", b"DEED")
    sf.write(audio / "short.wav", tone_wave("A", seed=12), SR)  # 0.4 s, 20 output frames
    add("short", "audio/short.wav", b"ABCDE ABCDE ABCDE ABCDE ABCDE")
    write_kaldi(root / "train", wav, text, spk)

    sf.write(audio / "dev0.wav", tone_wave("CAB DEED", seed=20), SR)
    sf.write(audio / "dev1.wav", tone_wave("ACE", seed=21), SR)
    write_kaldi(root / "dev", ["d-dev0 audio/dev0.wav", "d-dev1 audio/dev1.wav",
                               "d-oov audio/dev1.wav"],
                [b"d-dev0 CAB DEED", b"d-dev1 ACE", "d-oov ÆØ Œ".encode()],
                ["d-dev0 d", "d-dev1 d", "d-oov d"])


def hires(wave16k: np.ndarray) -> np.ndarray:
    """A 16 kHz wave as 96 kHz, 6 channels whose mean is the wave (sample repetition is enough
    for a test)."""
    wave = np.repeat(wave16k, 6)
    return np.stack([wave * g for g in (1.5, 1.2, 1.0, 0.8, 0.5, 1.0)], axis=1)


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """ROOT with corpus/ (make_messy_corpus), the data dirs `asr prep` made of it in data/, and
    what it printed in prep.stdout and prep.stderr."""
    root = tmp_path_factory.mktemp("messy")
    make_messy_corpus(root / "corpus")
    proc = run_asr(["prep", "kaldi", root / "corpus", root / "data"])
    (root / "prep.stdout").write_text(proc.stdout)
    (root / "prep.stderr").write_text(proc.stderr)
    return root


@pytest.fixture(scope="module")
def messy_feats(messy):
    """messy, with features of data/train and data/dev in feats/."""
    extract(messy, "train")
    extract(messy, "dev", cmvn_from="train")
    return messy


def test_prep_lists_each_bad_file_and_keeps_the_rest(messy):
    stdout, stderr = (messy / "prep.stdout").read_text(), (messy / "prep.stderr").read_text()
    problems = (messy / "data" / "problems.tsv").read_text()
    expected = {
        "trunc.wav": "unreadable audio",
        "empty.wav": "empty file (0 bytes)",
        "folder.wav": "is a directory",
        "missing.wav": "no such file",
        "../../etc/passwd": "outside the corpus dir",
        "train/text:14": "not UTF-8",
        "train/text:15": "empty transcript after normalisation",
        "train/wav.scp:16": "duplicate id s0-good0",
    }
    for where, reason in expected.items():
        line = next((x for x in problems.splitlines() if where in x), "")
        assert reason in line, (where, problems)
        assert where in stderr
    train = (messy / "data" / "train" / "wav.scp").read_text()
    kept = [line.split()[0] for line in train.splitlines()]
    assert kept == sorted([f"s{i % 2}-good{i}" for i in range(8)] + [
        "s1-hires", "s1-nan", "s1-one_sample", "s1-short", "s1-silence"])
    assert "train: 13 utterances" in stdout and "11 skipped" in stdout  # 3 lines for s0-good0
    strict = run_asr(["prep", "kaldi", messy / "corpus", messy / "strict", "--strict"],
                     check=False)
    assert strict.returncode == 1 and (messy / "strict" / "train" / "wav.scp").exists()


def test_features_skip_what_cannot_be_decoded(messy_feats):
    messy = messy_feats
    problems = (messy / "feats" / "train" / "problems.tsv").read_text().splitlines()
    reasons = {line.split("\t")[0]: line.split("\t")[2] for line in problems}
    assert set(reasons) == {"s1-nan", "s1-one_sample"}
    assert "NaN or infinite samples" in reasons["s1-nan"]
    assert "shorter than one frame" in reasons["s1-one_sample"]
    store = FeatureStore(messy / "feats" / "train")
    seconds = len(tone_wave("DEED", seed=11)) / SR
    assert abs(store.num_frames("s1-hires") - 100 * seconds) <= 2  # 96 kHz x 6 -> 16 kHz mono
    assert store.num_frames("s1-silence") == 59998  # 10 min at a 10 ms hop, 25 ms window
    assert np.isfinite(store["s1-hires"]).all()


def test_training_skips_what_it_cannot_learn_from(messy_feats):
    messy = messy_feats
    out = messy / "exp"
    proc = run_asr(tiny_train_args(messy, out, "epochs=2", "data.max_utts=8",
                                   "data.max_frames=4000"))
    # train: 13 utterances in the data dir, 2 without features, 1 too short, 1 too long
    assert ("skipped 4 of 13: 1 longer than a batch may be (data.max_frames), 2 no features "
            "(bad audio?), 1 too short for its transcript under CTC") in proc.stdout
    assert "dev: 2 utterances (skipped 1 of 3: 1 empty transcript after the vocabulary)" \
        in proc.stdout
    weights = load_checkpoint(out / "last.pt")["model"]
    assert all(torch_finite(w) for w in weights.values())


def torch_finite(t) -> bool:
    return bool(t.isfinite().all()) if t.is_floating_point() else True


def test_transcribe_odd_files(messy, tone_model):
    audio = messy / "corpus" / "audio"
    files = [audio / "hires.wav", audio / "silence.flac", audio / "one_sample.wav",
             audio / "nan.wav", audio / "good2.wav"]
    proc = run_asr(["transcribe", "--checkpoint", tone_model / "last.pt", *files], check=False)
    assert proc.returncode == 1  # one file failed
    assert proc.stdout.splitlines() == [
        f"{files[0]}\tDEED", f"{files[1]}\t", f"{files[2]}\t", f"{files[4]}\tDEED ACE"]
    assert f"{files[3]}: NaN or infinite samples" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_broken_data_dir_is_one_clear_error(messy, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    good = messy / "corpus" / "audio" / "good0.wav"
    (data / "wav.scp").write_text(f"a {good}\nb {good}\na {good}\n")
    (data / "text").write_text("a X\nb Y\n")
    (data / "utt2spk").write_text("a s\nb s\n")
    (data / "spk2utt").write_text("s a b\n")
    proc = run_asr(["features", data, tmp_path / "f", "--config", ROOT / "conf" / "fbank.yaml"],
                   check=False)
    assert proc.returncode == 2
    assert f"{data / 'wav.scp'}:3: duplicate id 'a'" in proc.stderr
    assert "Traceback" not in proc.stderr


def size_limit(max_bytes: int):
    """A preexec_fn: no file of the child may grow past max_bytes (writes fail with EFBIG, as on
    a full disk, instead of killing it with SIGXFSZ)."""

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return limit


def test_size_limit_while_writing_features(tmp_path):
    # four short utterances, then two long ones: with two per shard, only the last shard is big
    long = " ".join(["ABCDE"] * 6)
    make_tone_set(tmp_path, "train", ["A", "B", "C", "D", long, long[::-1]], speakers=1)
    args = ["features", tmp_path / "data" / "train", tmp_path / "feats", "--config",
            ROOT / "conf" / "fbank.yaml", "--jobs", "1", "--utts-per-shard", "2"]
    proc = run_asr(args, check=False, preexec_fn=size_limit(200_000))
    assert proc.returncode == 2
    assert "shard-00002.npy: file too large while writing it" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "feats").glob("*.tmp"))
    shard0 = (tmp_path / "feats" / "shard-00000.npy").read_bytes()
    proc = run_asr(args)  # without the limit: the finished shards are kept, the rest made
    assert "3 shards, 2 reused" in proc.stderr
    assert (tmp_path / "feats" / "shard-00000.npy").read_bytes() == shard0
    assert len(FeatureStore(tmp_path / "feats").utt_ids) == 6


def test_size_limit_while_writing_a_checkpoint(tone_corpus, tmp_path):
    out = tmp_path / "exp"
    common = ("save_every_steps=0", "data.max_utts=12")
    run_asr(tiny_train_args(tone_corpus, out, "epochs=1", *common))
    model_only, full = (out / "epoch-1.pt").stat().st_size, (out / "last.pt").stat().st_size
    assert model_only < full
    before = (out / "last.pt").read_bytes()
    proc = run_asr(tiny_train_args(tone_corpus, out, "epochs=2", *common) + ["--resume"],
                   check=False, preexec_fn=size_limit((model_only + full) // 2))
    assert proc.returncode == 2, proc.stderr
    assert f"{out / 'last.pt'}: could not write checkpoint: File too large" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "last.pt").read_bytes() == before  # the previous checkpoint, intact
    assert not list(out.glob(".*.tmp"))
    run_asr(tiny_train_args(tone_corpus, out, "epochs=2", *common) + ["--resume"])
    state = load_checkpoint(out / "last.pt")["train_state"]
    assert state["epoch"] == 2 and math.isfinite(state["best_cer"])


@pytest.mark.parametrize("case", ["no data dir", "not an ARPA file", "ARPA not UTF-8",
                                  "no checkpoint", "text instead of a checkpoint",
                                  "unknown config key", "features of another set missing"])
def test_bad_arguments_are_one_line_errors(case, tone_model_corpus, tone_model, tmp_path, capsys):
    from asr.cli import main

    ckpt, dev = tone_model / "last.pt", tone_model_corpus / "data" / "dev"
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\\data\\\nngram 1=x\n" if case == "not an ARPA file" else b"\xff\xfe\x00")
    args, message = {
        "no data dir": (["decode", "--checkpoint", ckpt, tmp_path / "nope", "--out", tmp_path],
                        f"{tmp_path / 'nope'}: not a data dir"),
        "not an ARPA file": (["decode", "--checkpoint", ckpt, dev, "--out", tmp_path,
                              "--decoder", "beam", "--lm", bad], f"{bad}: not an ARPA file"),
        "ARPA not UTF-8": (["transcribe", "--checkpoint", ckpt, "--decoder", "beam", "--lm", bad,
                            bad], f"{bad}: not UTF-8"),
        "no checkpoint": (["transcribe", "--checkpoint", tmp_path / "x.pt", bad],
                          f"{tmp_path / 'x.pt'}: no such checkpoint file"),
        "text instead of a checkpoint": (["decode", "--checkpoint", bad, dev, "--out", tmp_path],
                                         f"{bad}: refused: not a checkpoint"),
        "unknown config key": (["train", "--config", bad.with_suffix(".yaml"), "--train",
                                tone_model_corpus / "data" / "train", "--dev", dev, "--feats-root",
                                tone_model_corpus / "feats", "--out", tmp_path / "exp"],
                               "unknown key(s) ['epoch']"),
        "features of another set missing": (
            ["train", "--train", tone_model_corpus / "data" / "train", "--dev", dev, "--feats-root",
             tmp_path, "--out", tmp_path / "exp"], str(tmp_path / "train")),
    }[case]
    bad.with_suffix(".yaml").write_text("epoch: 3\n")
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
