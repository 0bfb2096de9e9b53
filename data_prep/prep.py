"""`asr prep CORPUS SRC_DIR OUT_DIR`: import a corpus into Kaldi-style data dirs.

Writes `OUT_DIR/<set>/{wav.scp,text,utt2spk,spk2utt}` for every set of the corpus (plus `dev`,
carved from `train`, with --dev-speakers or --dev-utts), `OUT_DIR/problems.tsv`
(`file<TAB>reason` for each skipped utterance) and, last, `OUT_DIR/prep.json` (importer, source,
normalisation, split, counts, problems). Exit status: 0; 1 with --strict when anything was
skipped; 2 when SRC_DIR is missing or not laid out as the corpus is, or when none of its
utterances is usable (problems.tsv is written all the same, and the first reasons printed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

from asr.datadir import (
    DataDirError,
    Utterance,
    split_by_speaker,
    split_by_utterance,
    write_data_dir,
    write_text_atomic,
)
from asr.text import CASES, TextNormConfig
from data_prep.common import ImportResult, LayoutError, Problem
from data_prep.folder import SPEAKER_FROM

CORPORA = ("speechocean762", "librispeech", "an4", "ljspeech", "commonvoice", "fsdd", "folder",
           "kaldi")
PREP_JSON = "prep.json"
PROBLEMS_TSV = "problems.tsv"
SHOWN_PROBLEMS = 10  # reasons printed when no utterance at all is usable


class PrepError(ValueError):
    """A request that cannot be carried out (reported in one line, exit status 2)."""


def import_corpus(corpus: str, src_dir: Path, norm: TextNormConfig, allow_outside: bool,
                  speaker_from: str | None = None) -> ImportResult:
    """speaker_from: the folder importer's option (None: its default); other corpora name
    their speakers themselves."""
    if corpus not in CORPORA:
        raise PrepError(f"unknown corpus {corpus!r} (one of {', '.join(CORPORA)})")
    options = {}
    if speaker_from is not None:
        if corpus != "folder":
            raise PrepError(f"--speaker-from is for the folder importer ({corpus} corpora name "
                            "their speakers)")
        options["speaker_from"] = speaker_from
    module = importlib.import_module(f"data_prep.{corpus}")
    return module.import_corpus(src_dir, norm, allow_outside, **options)


def speaker_warning(utts: list[Utterance], set_name: str) -> str | None:
    """Why --dev-speakers is a mistake on these utterances (one speaker, or one per utterance)."""
    n_speakers, n_utts = len({u.speaker for u in utts}), len(utts)
    if n_speakers == 1:
        why = "no second speaker to hold out"
    elif n_speakers == n_utts:
        why = "held-out speakers would be single utterances, and their voices are in training too"
    else:
        return None
    return (f"asr prep: warning: {set_name} has {n_speakers} speaker{'s' * (n_speakers > 1)} for "
            f"its {n_utts} utterances ({why}); for a folder of recordings, name where speakers "
            "come from with --speaker-from dir|prefix|none, or hold out utterances with "
            "--dev-utts N")


def carve_dev(
    sets: dict[str, list[Utterance]], dev_speakers: int | None, dev_utts: int | None, seed: int,
    pick: str = "random",
) -> dict[str, list[Utterance]]:
    """Move held-out speakers (or utterances) of `train` into a new set `dev`; `pick` is how
    the speakers are chosen ("random" with `seed`, or "first" in sorted order)."""
    if pick == "first" and not dev_speakers:
        raise PrepError("--dev-pick first picks speakers: give --dev-speakers N with it")
    if not dev_speakers and not dev_utts:
        return sets
    if "train" not in sets:
        raise PrepError(f"no train set to carve dev from (sets: {', '.join(sets) or 'none'})")
    if "dev" in sets:
        raise PrepError("the corpus has a dev set already; drop --dev-speakers/--dev-utts")
    if dev_speakers:
        train, dev = split_by_speaker(sets["train"], dev_speakers, seed, first=pick == "first")
    else:
        train, dev = split_by_utterance(sets["train"], dev_utts, seed)
    return {**sets, "train": train, "dev": dev}


def set_counts(sets: dict[str, list[Utterance]]) -> dict[str, dict[str, int]]:
    return {name: {"utterances": len(utts), "speakers": len({u.speaker for u in utts})}
            for name, utts in sets.items()}


def problems_tsv(problems: list[Problem]) -> str:
    return "".join(f"{p.path}\t{p.reason}\n" for p in problems)


def no_utterances_error(src_dir: Path, out_dir: Path, problems: list[Problem]) -> PrepError:
    """The error for a corpus of which nothing is usable, after writing its problems.tsv."""
    if not problems:
        return PrepError(f"{src_dir}: no utterances found")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / PROBLEMS_TSV, problems_tsv(problems))
    shown = "".join(f"\n  {p.path}: {p.reason}" for p in problems[:SHOWN_PROBLEMS])
    if len(problems) > SHOWN_PROBLEMS:
        shown += f"\n  ... {len(problems) - SHOWN_PROBLEMS} more"
    return PrepError(f"{src_dir}: no usable utterances; all {len(problems)} problems are in "
                     f"{out_dir / PROBLEMS_TSV}, the first:{shown}")


def write_outputs(out_dir: Path, sets: dict[str, list[Utterance]], problems: list[Problem],
                  record: dict) -> None:
    """The data dirs, problems.tsv, and prep.json last (its presence means prep is done)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, utts in sets.items():
        write_data_dir(out_dir / name, utts)
    write_text_atomic(out_dir / PROBLEMS_TSV, problems_tsv(problems))
    record = {**record, "sets": set_counts(sets),
              "problems": [{"path": p.path, "reason": p.reason} for p in problems]}
    write_text_atomic(out_dir / PREP_JSON, json.dumps(record, indent=2, ensure_ascii=False) + "\n")


def prep(args: argparse.Namespace) -> tuple[dict[str, list[Utterance]], ImportResult]:
    """Import, split and write; -> (sets written, the import's result)."""
    src_dir, out_dir = Path(args.src_dir), Path(args.out_dir)
    if not src_dir.is_dir():
        raise PrepError(f"{src_dir}: no such directory")
    norm = TextNormConfig(case=args.case, strip_punct=not args.keep_punct)
    result = import_corpus(args.corpus, src_dir, norm, args.allow_outside_paths,
                           args.speaker_from)
    sets = {name: utts for name, utts in result.sets.items() if utts}
    if not sets:
        raise no_utterances_error(src_dir, out_dir, result.problems)
    if args.dev_speakers and "train" in sets:
        warning = speaker_warning(sets["train"], "train")
        if warning:
            print(warning, file=sys.stderr)
    sets = carve_dev(sets, args.dev_speakers, args.dev_utts, args.seed, args.dev_pick)
    record = {
        "corpus": args.corpus,
        "src": os.path.abspath(src_dir),
        "normalization": norm.to_dict(),
        "dev_speakers": args.dev_speakers,
        "dev_utts": args.dev_utts,
        "dev_pick": args.dev_pick,
        "seed": args.seed,
        "allow_outside_paths": args.allow_outside_paths,
        "speaker_from": (args.speaker_from or "dir") if args.corpus == "folder" else None,
        "renamed_speakers": result.renamed_speakers,
    }
    write_outputs(out_dir, sets, result.problems, record)
    return sets, result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", metavar="CORPUS", choices=CORPORA,
                        help=f"corpus layout, one of: {', '.join(CORPORA)}")
    parser.add_argument("src_dir", metavar="SRC_DIR", help="the corpus as published (read only)")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="where the data dirs go (OUT_DIR/<set>)")
    split = parser.add_mutually_exclusive_group()
    split.add_argument("--dev-speakers", type=int, metavar="N",
                       help="carve a speaker-disjoint dev set of N speakers from train")
    split.add_argument("--dev-utts", type=int, metavar="N",
                       help="carve a dev set of N utterances from train (one-speaker corpora)")
    parser.add_argument("--dev-pick", choices=("random", "first"), default="random",
                        help="which speakers --dev-speakers holds out: drawn with --seed "
                             "(random, the default) or the first N in sorted order (first: "
                             "`--dev-speakers 8 --dev-pick first` on AN4 is ESPnet's train_dev, "
                             "so dev figures compare with its published ones)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev split (default 0)")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any utterance had to be skipped (outputs still written)")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="accept audio paths in corpus files that lead outside SRC_DIR "
                             "(refused by default, so that a downloaded corpus's lists cannot "
                             "point anywhere; kaldi, being your own data dir, takes absolute "
                             "paths as they are without this, since Kaldi recipes write them)")
    parser.add_argument("--speaker-from", choices=SPEAKER_FROM, default=None,
                        help="folder only: the speaker of a file is the first dir below its set "
                             "dir (dir, the default; a file directly in the set dir takes its "
                             "name's prefix), the name up to its first _ or - (prefix), or one "
                             "speaker for the whole set (none)")
    parser.add_argument("--case", choices=CASES, default="upper",
                        help="transcript case (default upper)")
    parser.add_argument("--keep-punct", action="store_true",
                        help="keep punctuation in transcripts (default: it becomes spaces)")


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        sets, result = prep(args)
    except (PrepError, LayoutError, DataDirError, OSError) as e:
        print(f"asr prep: error: {e}", file=sys.stderr)
        return 2
    problems = result.problems
    for p in problems:
        print(f"{p.path}: {p.reason}", file=sys.stderr)
    seconds = time.perf_counter() - start
    if result.renamed_speakers:
        print(f"renamed {len(result.renamed_speakers)} speakers so that Kaldi sorts their ids "
              "by speaker too (utils/validate_data_dir.sh): " + ", ".join(
                  f"{old} -> {new}" for old, new in sorted(result.renamed_speakers.items())))
    for name, counts in set_counts(sets).items():
        print(f"{name}: {counts['utterances']} utterances, {counts['speakers']} speakers")
    print(f"asr prep {args.corpus}: {sum(len(u) for u in sets.values())} utterances in "
          f"{len(sets)} sets -> {args.out_dir} in {seconds:.1f} s; {len(problems)} skipped"
          + (f", see {Path(args.out_dir) / PROBLEMS_TSV}" if problems else ""))
    return 1 if args.strict and problems else 0
