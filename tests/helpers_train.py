"""A synthetic 'tone language' for training tests: each character is a short tone of its own
pitch, so a tiny model can learn to read it in seconds."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.datadir import Utterance, write_data_dir

SR = 16000
ALPHABET = "ABCDE "
WORDS = ["ABC", "BAD", "CAB", "DEED", "ACE", "BEAD", "DAB", "CEDE"]
ROOT = Path(__file__).resolve().parents[1]


def tone_wave(text: str, seed: int = 0, lead_s: float = 0.1, tail_s: float = 0.1) -> np.ndarray:
    """`text` as tones (each character its own pitch, a gap after each), with `lead_s` and
    `tail_s` of silence around and a little noise throughout."""
    rng = np.random.default_rng(seed)
    pieces = [np.zeros(int(lead_s * SR))]
    for ch in text:
        k = ALPHABET.index(ch)
        dur = 0.08 if ch == " " else 0.12
        t = np.arange(int(dur * SR)) / SR
        freq = 200 if ch == " " else 400 + 300 * k
        pieces.append(0.3 * np.sin(2 * np.pi * freq * t))
        pieces.append(np.zeros(int(0.04 * SR)))  # a gap, so repeated letters stay apart
    pieces.append(np.zeros(int(tail_s * SR)))
    wave = np.concatenate(pieces)
    return (wave + 0.003 * rng.standard_normal(len(wave))).astype(np.float32)


def sentences(n: int, seed: int) -> list[str]:
    """n random sentences of 1-3 WORDS."""
    rng = random.Random(seed)
    return [" ".join(rng.sample(WORDS, rng.randint(1, 3))) for _ in range(n)]


def make_tone_set(root: Path, name: str, texts: list[str], speakers: int = 2) -> Path:
    """A data dir ROOT/data/NAME of `texts` as tone waves, with 0.1-0.5 s of silence around
    each (as recordings vary)."""
    audio_dir = root / "audio" / name
    audio_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(texts))
    utts = []
    for i, text in enumerate(texts):
        spk = f"s{i % speakers}"
        path = audio_dir / f"{spk}_{i:03d}.wav"
        lead_s, tail_s = rng.uniform(0.1, 0.5, size=2)
        sf.write(path, tone_wave(text, seed=i, lead_s=lead_s, tail_s=tail_s), SR,
                 subtype="PCM_16")
        utts.append(Utterance(f"{spk}-{name}{i:03d}", spk, str(path), text))
    write_data_dir(root / "data" / name, utts)
    return root / "data" / name


def extract(root: Path, name: str, cmvn_from: str | None = None) -> Path:
    cmd = ["features", str(root / "data" / name), str(root / "feats" / name),
           "--config", str(ROOT / "conf" / "fbank.yaml"), "--jobs", "1"]
    if cmvn_from:
        cmd += ["--cmvn", str(root / "feats" / cmvn_from / "cmvn.npz")]
    run_asr(cmd)
    return root / "feats" / name


def run_asr(args: list[str], env: dict | None = None, check: bool = True, prefix=(),
            preexec_fn=None):
    """Run the `asr` command in a fresh process (as a user would); `preexec_fn` runs in the child
    before it starts (resource limits)."""
    cmd = [*prefix] if prefix else [sys.executable, "-m", "asr.cli"]
    proc = subprocess.run(cmd + [str(a) for a in args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=preexec_fn)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"asr {args[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def tiny_train_args(root: Path, out: Path, *overrides: str) -> list[str]:
    base = [
        "model.subsample=2", "model.conv_channels=4", "model.num_layers=1",
        "model.hidden_size=32", "model.dropout=0.0", "model.spec_augment=null",
        # LayerNorm scales the toy's near-silent frames up to the size of its tones; without it
        # the toy model also reads recordings it was not trained on
        "model.layer_norm=false",
        "optim.lr=0.003", "optim.warmup_steps=1", "optim.final_lr_ratio=1.0",
        "data.max_frames=1200", "data.max_utts=4", "num_threads=1",
        # the toy's settings from before the defaults changed (asr.auto, utterance CMN, ...)
        "model.utterance_cmn=false", "data.sortagrad=false", "augment_from_epoch=0",
    ]
    # on the CPU wherever the tests run: the toy's outcome (and the gloo tests' ranks, one GPU
    # each under --device auto) must not depend on whether the machine has a GPU; GPU tests
    # append their own --device
    args = ["train", "--train", root / "data" / "train", "--dev", root / "data" / "dev",
            "--feats-root", root / "feats", "--out", out, "--device", "cpu"]
    for o in base + list(overrides):
        args += ["--set", o]
    return args


def torchrun(nproc: int) -> list[str]:
    """The command prefix that starts `asr` under torchrun with `nproc` processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={nproc}", "-m", "asr.cli"]


def with_feats_root(args: list, feats_root: Path) -> list:
    """Training args (tiny_train_args) reading their features from `feats_root` instead."""
    args = list(args)
    args[args.index("--feats-root") + 1] = feats_root
    return args


def poison_features(feats_dir: Path, utt_ids: list[str]) -> None:
    """Overwrite the stored frames of `utt_ids` with NaN, in place (a broken utterance, or what an
    fp16 overflow makes of a batch)."""
    for line in (feats_dir / "index.tsv").read_text().splitlines():
        utt_id, shard, offset, num_frames = line.split("\t")
        if utt_id in utt_ids:
            frames = np.load(feats_dir / f"shard-{int(shard):05d}.npy", mmap_mode="r+")
            frames[int(offset) : int(offset) + int(num_frames)] = np.nan
            frames.flush()
