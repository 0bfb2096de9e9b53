"""Fixtures shared across test modules: a tone-language corpus and one model trained on it."""

from pathlib import Path

import pytest
from helpers_train import extract, make_tone_set, run_asr, sentences, tiny_train_args


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> Path:
    """ROOT with data/{train,dev} (12 and 4 utterances) and feats/{train,dev}."""
    root = tmp_path_factory.mktemp("tones")
    make_tone_set(root, "train", sentences(12, 0))
    make_tone_set(root, "dev", sentences(4, 1))
    extract(root, "train")
    extract(root, "dev", cmvn_from="train")
    return root


@pytest.fixture(scope="session")
def tone_model(tone_corpus, tmp_path_factory) -> Path:
    """An experiment dir whose model reads the tone language (last.pt, best.pt, metrics.csv).
    One full batch per epoch: about 100 steps leave the CTC blank plateau, 150 overfit."""
    out = tmp_path_factory.mktemp("tone_model") / "exp"
    run_asr(tiny_train_args(tone_corpus, out, "epochs=150", "model.hidden_size=64",
                            "data.max_frames=100000", "data.max_utts=100", "save_every_steps=0"))
    return out
