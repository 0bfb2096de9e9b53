"""The `asr` command. Each subcommand lives in the module of its stage, which defines
`add_arguments(parser)` and `run(args) -> int`; modules are imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "prep": ("data_prep.prep", "import a corpus into Kaldi-style data dirs"),
    "speed-perturb": ("data_prep.perturb", "speed-perturbed copies of a data dir (0.9/1.0/1.1)"),
    "features": ("data_prep.extract", "extract fbank/MFCC features (+ CMVN) for a data dir"),
    "train": ("asr.train", "train a BiLSTM-CTC model"),
    "decode": ("asr.recognize", "decode a data dir with a checkpoint and score it"),
    "transcribe": ("asr.transcript", "transcribe audio files with a checkpoint or ONNX model"),
    "score": ("asr.scoring", "score a hypothesis file against a reference (WER/CER)"),
    "lm": ("asr.lm", "train a word n-gram LM (modified Kneser-Ney) and write ARPA"),
    "tune-lm": ("asr.recognize", "grid-search LM weight and word bonus on a dev set"),
    "pick": ("asr.selection", "choose the checkpoint and LM weights to report, on the dev set"),
    "results": ("asr.results", "write an experiment's RESULTS.md from its measured outputs"),
    "export": ("asr.export", "export a checkpoint's model as TorchScript or ONNX"),
    "info": ("asr.card", "print the model card of a checkpoint or exported model"),
}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr", description="CTC speech recognition: prep, features, train, decode, score."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Only the chosen subcommand's module is imported (torch is slow to import).
    chosen = next((a for a in (argv or []) if a in SUBCOMMANDS), None)
    for name, (_, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if chosen in (None, name):
            module_name = SUBCOMMANDS[name][0]  # transcribe: asr.transcript, no torch until
            module = importlib.import_module(module_name)  # a checkpoint (.pt) is loaded
            adder = getattr(module, f"add_{name.replace('-', '_')}_arguments", None)
            (adder or module.add_arguments)(p)
            p.set_defaults(_module=module_name)
    return parser


# Errors of files the user named, reported in one line (exit status 2) instead of a traceback.
FILE_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_input_error(error: BaseException) -> bool:
    """One of this package's error types (each names the file and the problem), or a file that
    is missing or cannot be opened. Anything else is a bug and keeps its traceback."""
    ours = any(c.__module__.split(".")[0] in ("asr", "data_prep") for c in type(error).__mro__)
    return ours or isinstance(error, FILE_ERRORS)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    runner = getattr(module, f"run_{args.command.replace('-', '_')}", None) or module.run
    try:
        return int(runner(args) or 0)
    except Exception as e:
        if not is_input_error(e):
            raise
        print(f"asr {args.command}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
