"""Every recipe's run.sh, stages 0 to 6, on a tiny fixture in its corpus's published layout
(helpers_data), with a tiny model: what cannot run here (downloads, corpus sizes) still runs
end to end. The fixtures' audio is lengthened to 2 s so that every transcript fits under CTC."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers_data import (
    make_an4,
    make_commonvoice,
    make_fsdd,
    make_librispeech,
    make_ljspeech,
    make_speechocean762,
    write_raw_bigendian,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_CONFIG = """\
model: {subsample: 2, conv_channels: 2, num_layers: 1, hidden_size: 8, spec_augment: null}
data: {max_frames: 100000}
optim: {warmup_steps: 1}
epochs: 1
save_every_steps: 0
num_threads: 1
"""


def lengthen_audio(root: Path, seconds: float = 2.0) -> None:
    """Rewrite every readable audio file under root as `seconds` of noise, keeping its format,
    subtype and rate (unreadable ones are left: the importers must report them)."""
    rng = np.random.default_rng(0)
    for path in sorted(root.rglob("*")):
        if path.suffix == ".raw":  # headerless 16 kHz big-endian PCM (AN4's raw release)
            write_raw_bigendian(path, 0.1 * rng.standard_normal(int(seconds * 16000)))
            continue
        if path.suffix not in (".wav", ".flac", ".sph", ".mp3") or not path.is_file():
            continue
        try:
            info = sf.info(str(path))
        except Exception:
            continue
        wave = 0.1 * rng.standard_normal(int(seconds * info.samplerate)).astype(np.float32)
        sf.write(path, wave, info.samplerate, format=info.format, subtype=info.subtype)


def librispeech_with_test(root: Path) -> Path:
    base = make_librispeech(root)
    shutil.copytree(base / "dev-clean", base / "test-clean")
    return base


def commonvoice_with_dev(root: Path) -> Path:
    cv = make_commonvoice(root)
    shutil.copy(cv / "test.tsv", cv / "dev.tsv")
    return cv


def fsdd_dir(root: Path) -> Path:
    return make_fsdd(root / "free-spoken-digit-dataset")


def an4_raw(root: Path) -> Path:
    """CMU's raw big-endian release, both halves (train and test)."""
    return make_an4(root, release="raw")


# recipe (or recipe:variant) -> (fixture maker, extra options, sets decoded)
RECIPES = {
    "speechocean762": (make_speechocean762, ["--dev-speakers", "1"], ["dev", "test"]),
    "librispeech": (librispeech_with_test, [], ["dev_clean", "test_clean"]),
    "an4": (make_an4, ["--dev-speakers", "1"], ["dev", "test"]),
    "an4:raw": (an4_raw, ["--dev-speakers", "1"], ["dev", "test"]),
    "ljspeech": (make_ljspeech, ["--dev-utts", "1"], ["dev"]),
    "commonvoice": (commonvoice_with_dev, [], ["dev", "test"]),
    "fsdd": (fsdd_dir, ["--dev-utts", "2"], ["dev", "test"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_runs_every_stage(name, tmp_path):
    make, options, decoded = RECIPES[name]
    corpus = make(tmp_path / "corpus")
    lengthen_audio(tmp_path / "corpus")
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_CONFIG)
    work = tmp_path / "work"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
               OMP_NUM_THREADS="1")
    recipe = name.split(":")[0]
    cmd = ["bash", str(ROOT / "recipes" / recipe / "run.sh"), "--corpus", str(corpus),
           "--work", str(work), "--config", str(config), "--nj", "1", *options]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for stage in range(7):
        assert f"== stage {stage}:" in proc.stdout
    results = (work / "exp" / "RESULTS.md").read_text()
    for s in decoded:  # the tiny config writes no avg.pt: best.pt is the one candidate
        assert f"| {s} | best.pt | greedy |" in results
        assert f"| {s} | best.pt | beam 16 + lm.arpa (alpha " in results
    dev = decoded[0]
    tuned = json.loads((work / "exp" / "tune_lm_best.json").read_text())["best"]
    assert (f"| {dev} | best.pt | beam 16 + lm.arpa (alpha {tuned['alpha']}, beta "
            f"{tuned['beta']}, tuned on {dev}) |") in results
    assert f"Chosen on {dev} " in results
    assert proc.stdout.rstrip().endswith(results.rstrip().splitlines()[-1])  # stage 6 shows it

    # a second run finds every stage done and redoes nothing
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done already" in again.stdout and "epoch 1/1" not in again.stdout


@pytest.mark.parametrize("factors, expected", [
    ("", "--factors 0.9 1.0 1.1"), ("0.9 0.95 1.0 1.05 1.1", "--factors 0.9 0.95 1.0 1.05 1.1")])
def test_lib_speed_perturb_passes_its_factors(tmp_path, factors, expected):
    """recipes/lib.sh speed_perturb SET [FACTOR...]: one --factors argument per factor, Kaldi's
    3-way when none is given (an `asr` stub on PATH records what it is called with)."""
    stub = tmp_path / "bin" / "asr"
    stub.parent.mkdir()
    stub.write_text(f'#!/usr/bin/env bash\nprintf "%s|" "$@" > {tmp_path}/args\n')
    stub.chmod(0o755)
    script = (f'source {ROOT}/recipes/lib.sh; data={tmp_path}/data; '
              f'speed_perturb train {factors}')
    env = dict(os.environ, PATH=f"{stub.parent}:{os.environ['PATH']}")
    proc = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "args").read_text().rstrip("|").split("|")
    assert args[:3] == ["speed-perturb", f"{tmp_path}/data/train", f"{tmp_path}/data/train_sp"]
    assert " ".join(args[3:]) == expected
