"""Fixtures shared across test modules: tone-language corpora and one model trained on one."""

from pathlib import Path

import pytest
from helpers_train import extract, make_tone_set, run_asr, sentences, tiny_train_args


def make_tone_corpus(root: Path, n_train: int, n_dev: int) -> Path:
    """ROOT with data/{train,dev} and feats/{train,dev} (CMVN of train)."""
    make_tone_set(root, "train", sentences(n_train, 0))
    make_tone_set(root, "dev", sentences(n_dev, 1))
    extract(root, "train")
    extract(root, "dev", cmvn_from="train")
    return root


@pytest.fixture(scope="session")
def tone_corpus(tmp_path_factory) -> Path:
    """A small corpus (12 training utterances, 4 dev) for training runs of a few steps."""
    return make_tone_corpus(tmp_path_factory.mktemp("tones"), 12, 4)


@pytest.fixture(scope="session")
def tone_model_corpus(tmp_path_factory) -> Path:
    """The corpus `tone_model` is trained on: 40 training utterances, 8 dev."""
    return make_tone_corpus(tmp_path_factory.mktemp("tones40"), 40, 8)


@pytest.fixture(scope="session")
def tone_model(tone_model_corpus, tmp_path_factory) -> Path:
    """An experiment dir (last.pt, best.pt, metrics.csv, ...) whose model reads the tone
    language, also from recordings it was not trained on: 60 epochs of 4 batches (its dev CER
    reaches 0 after about 40)."""
    out = tmp_path_factory.mktemp("tone_model") / "exp"
    run_asr(tiny_train_args(tone_model_corpus, out, "epochs=60", "model.hidden_size=64",
                            "data.max_frames=100000", "data.max_utts=10", "save_every_steps=0"))
    return out
