"""speechocean762 (OpenSLR 101): read English by Mandarin L1 speakers.

Layout as released: `train/` and `test/` (the halves present), each a Kaldi data dir whose
wav.scp paths are relative to the corpus root (`WAVE/SPEAKER0001/000010011.flac`); transcripts are
upper-case prompts. Utterance ids get their speaker as a prefix: `0001-000010011`.
"""

from __future__ import annotations

from pathlib import Path

from asr.text import TextNormConfig
from data_prep.common import ImportResult, Problem, finish, require, require_dir
from data_prep.kaldi import data_dir_entries, is_data_dir

SETS = ("train", "test")


def import_corpus(src_dir: Path, norm: TextNormConfig, allow_outside: bool = False) -> ImportResult:
    src_dir = require_dir(src_dir, "speechocean762")
    present = [s for s in SETS if is_data_dir(src_dir / s)]
    require(bool(present), f"{src_dir}: not a speechocean762 corpus "
                           "(expected train/ or test/ holding wav.scp, text and utt2spk)")
    problems: list[Problem] = []
    entries = []
    for name in present:
        entries += data_dir_entries(src_dir / name, name, src_dir, allow_outside, problems)
    return finish(entries, norm, problems)
