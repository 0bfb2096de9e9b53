"""The Python API (asr/api.py) on the tone-language model (conftest.py): the README's example as
it is written, batch against single, waves against files, and `import asr` without torch."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers_train import ROOT, SR, run_asr, tone_wave

import asr
from asr.datadir import read_data_dir
from asr.decoding import DEFAULT_BEAM
from asr.transcript import Transcript, Word


def readme_example() -> str:
    """The ```python block that follows "## Python" in README.md."""
    readme = (ROOT / "README.md").read_text()
    assert "\n## Python\n" in readme, "README.md has no ## Python section"
    section = readme[readme.index("\n## Python\n"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no ```python block after ## Python"
    return match.group(1)


@pytest.fixture(scope="module")
def dev_utts(tone_model_corpus):
    return read_data_dir(tone_model_corpus / "data" / "dev")


@pytest.fixture(scope="module")
def workdir(tone_model_corpus, tone_model, dev_utts, tmp_path_factory) -> Path:
    """A directory with exp/best.pt, data/lm/lm.arpa, a.wav, b.wav and talk.flac (dev set
    recordings 0, 1 and 2), as the README example names them."""
    root = tmp_path_factory.mktemp("api")
    (root / "exp").mkdir()
    shutil.copy(tone_model / "best.pt", root / "exp" / "best.pt")
    (root / "data" / "lm").mkdir(parents=True)
    run_asr(["lm", tone_model_corpus / "data" / "train" / "text", "--order", "2", "--out",
             root / "data" / "lm" / "lm.arpa"])
    shutil.copy(dev_utts[0].audio, root / "a.wav")
    shutil.copy(dev_utts[1].audio, root / "b.wav")
    wave, rate = sf.read(dev_utts[2].audio, dtype="float32")
    sf.write(root / "talk.flac", wave, rate)
    return root


def test_the_readme_example_runs_as_written(workdir, dev_utts, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)
    result, same, results = namespace["result"], namespace["same"], namespace["results"]
    assert isinstance(result, Transcript) and result.path == "talk.flac"
    assert result.text == dev_utts[2].text == " ".join(w.word for w in result.words)
    duration = sf.info(str(workdir / "talk.flac")).duration
    assert result.duration == pytest.approx(duration, abs=1e-3)
    assert all(isinstance(w, Word) and 0 <= w.start < w.end <= duration + 1e-3
               and 0 < w.confidence <= 1 for w in result.words)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert same.text == result.text and same.path == ""
    assert [r.text for r in results] == [dev_utts[0].text, dev_utts[1].text]
    assert [r.path for r in results] == ["a.wav", "b.wav"]
    assert capsys.readouterr().out.startswith(result.text + "\n")


def test_batch_gives_what_one_at_a_time_gives(workdir, dev_utts):
    """transcribe_batch == transcribe of each, for files and waves, greedy and beam + LM; a long
    recording (cut into chunks) and a silent one in the same batch."""
    waves = [tone_wave(u.text, seed=50 + i) for i, u in enumerate(dev_utts)]
    long = np.concatenate([np.concatenate([w, np.zeros(SR // 2, np.float32)]) for w in waves])
    silent = np.zeros(SR, np.float32)
    for model in (asr.load(workdir / "exp" / "best.pt", device="cpu", max_chunk_s=4.0),
                  asr.load(workdir / "exp" / "best.pt", lm=workdir / "data" / "lm" / "lm.arpa",
                           device="cpu", max_chunk_s=4.0)):
        batch = model.transcribe_batch([*waves, long, silent], SR)
        single = [model.transcribe(w, SR) for w in [*waves, long, silent]]
        assert batch == single
        assert [t.text for t in batch[:-2]] == [u.text for u in dev_utts]
        assert len(batch[-2].segments) > 1 and batch[-2].text == " ".join(
            u.text for u in dev_utts)
        assert batch[-1].text == "" and batch[-1].words == ()
        files = model.transcribe_batch([u.audio for u in dev_utts])
        assert [t.text for t in files] == [u.text for u in dev_utts]


def test_load_options(workdir):
    ckpt, lm = workdir / "exp" / "best.pt", workdir / "data" / "lm" / "lm.arpa"
    with pytest.raises(ValueError, match="beam decoder"):
        asr.load(ckpt, lm=lm, decoder="greedy")
    with pytest.raises(ValueError, match="beam decoder"):
        asr.load(ckpt, decoder="greedy", hotwords=["CAB"])
    model = asr.load(ckpt, hotwords=["CAB:2", ("DEED", 1.0)], device="cpu")  # beam implied
    assert model.decoder.options.hotwords == (("CAB", 2.0), ("DEED", 1.0))
    assert model.decoder.options.beam_width == DEFAULT_BEAM
    wave = tone_wave("CAB DEED", seed=4)
    stereo = model.transcribe(np.stack([wave, wave], axis=1), SR)  # (N, C): channels averaged
    assert stereo.text == "CAB DEED"


def test_import_asr_is_cheap():
    """`import asr` imports no torch; `asr.load` brings asr.api in on first use."""
    code = ("import sys, asr; assert 'torch' not in sys.modules; asr.load; "
            "assert 'asr.api' in sys.modules; print(asr.Transcriber.__name__)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Transcriber\n"
