"""`asr speed-perturb IN OUT`: a data dir with speed-perturbed copies of every utterance.

Kaldi's `utils/data/perturb_data_dir_speed_3way.sh`: each utterance is listed once per factor,
0.9/1.0/1.1 by default; a copy at factor f plays the audio f times as fast (tempo and pitch
together, as `sox speed` does), through the `speed:F:SPEC` entry of `asr.audio`, so features,
decoding and transcription all read it the same way and nothing is written but the data dir.
Copies get ids `sp0.9-<utt>` with speakers `sp0.9-<speaker>` (factor 1.0 keeps the original
ids), so an utterance id still starts with its speaker's and speakers stay apart by factor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asr.audio import SPEED_RANGE, speed_spec
from asr.datadir import Utterance, read_data_dir, write_data_dir

DEFAULT_FACTORS = (0.9, 1.0, 1.1)


def perturbed(utts: list[Utterance], factors: tuple[float, ...]) -> list[Utterance]:
    """Every utterance once per factor (the 1.0 copy keeps its ids and audio entry)."""
    out = []
    for factor in factors:
        prefix = "" if factor == 1.0 else f"sp{factor:g}-"
        out += [Utterance(prefix + u.utt_id, prefix + u.speaker, speed_spec(u.audio, factor),
                          u.text) for u in utts]
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("in_dir", metavar="IN_DATA_DIR")
    parser.add_argument("out_dir", metavar="OUT_DATA_DIR")
    parser.add_argument("--factors", type=float, nargs="+", default=list(DEFAULT_FACTORS),
                        help="speed factors (default 0.9 1.0 1.1)")


def run(args) -> int:
    factors = tuple(dict.fromkeys(args.factors))  # in the given order, without repeats
    bad = [f for f in factors if not SPEED_RANGE[0] <= f <= SPEED_RANGE[1]]
    if bad:
        print(f"asr speed-perturb: factors must lie in [{SPEED_RANGE[0]}, {SPEED_RANGE[1]}], "
              f"got {bad}", file=sys.stderr)
        return 2
    utts = read_data_dir(args.in_dir)
    write_data_dir(args.out_dir, perturbed(utts, factors))
    print(f"asr speed-perturb: {len(utts)} utterances x {len(factors)} factors "
          f"({' '.join(f'{f:g}' for f in factors)}) -> {Path(args.out_dir)}")
    return 0
