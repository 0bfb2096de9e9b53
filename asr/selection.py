"""`asr pick EXP --set dev`: which checkpoint, and which LM weights, a recipe reports.

The protocol every recipe follows (recipes/lib.sh, `evaluate`): each candidate checkpoint
(`best.pt`, the epoch with the best greedy dev CER, and `avg.pt`, the mean of the last epochs,
when training wrote it) is decoded on the dev set greedily and with beam search + LM, the LM
weight and word bonus tuned on that same dev set by `asr tune-lm`. The pick is the candidate
with the lowest dev WER with the LM (then greedy dev WER, then CER); only it decodes the test
sets. Nothing here reads a test set: test figures never choose anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def dev_summaries(exp: Path, dev_set: str) -> dict[str, dict[str, dict]]:
    """checkpoint path -> {"greedy": summary, "beam": summary} of the decodes of `dev_set`."""
    found: dict[str, dict[str, dict]] = {}
    for path in sorted(exp.glob("decode_*/summary.json")):
        s = json.loads(path.read_text())
        if s.get("set") != dev_set or "checkpoint" not in s:
            continue
        kind = "beam" if s.get("lm") else "greedy" if s["decoder"] == "greedy" else None
        if kind:
            found.setdefault(s["checkpoint"], {})[kind] = s
    return found


def pick(exp: Path, dev_set: str) -> dict:
    """The chosen checkpoint with its tuned alpha/beta and the dev figures behind the choice."""
    found = dev_summaries(exp, dev_set)
    if not found:
        raise FileNotFoundError(f"{exp}: no decode of set {dev_set!r} with a checkpoint recorded "
                                "(decode_*/summary.json)")

    def key(item):
        runs = item[1]
        beam, greedy = runs.get("beam"), runs.get("greedy")
        return (beam["wer"] if beam else float("inf"), greedy["wer"] if greedy else float("inf"),
                beam["cer"] if beam else float("inf"))

    checkpoint, runs = min(found.items(), key=key)
    beam, greedy = runs.get("beam"), runs.get("greedy")
    return {
        "checkpoint": checkpoint,
        "alpha": beam["alpha"] if beam else None,
        "beta": beam["beta"] if beam else None,
        "chosen_on": dev_set,
        "dev_wer_lm": beam["wer"] if beam else None,
        "dev_wer_greedy": greedy["wer"] if greedy else None,
        "candidates": {c: {k: r["wer"] for k, r in v.items()} for c, v in found.items()},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exp", metavar="EXP")
    parser.add_argument("--set", default="dev", help="the dev set the choice is made on")
    parser.add_argument("--out", help="write the choice as JSON here (default EXP/chosen.json)")


def run(args) -> int:
    exp = Path(args.exp)
    choice = pick(exp, args.set)
    out = Path(args.out) if args.out else exp / "chosen.json"
    out.write_text(json.dumps(choice, indent=2) + "\n")
    for c, runs in sorted(choice["candidates"].items()):
        figures = ", ".join(f"{k} {v:.2f}" for k, v in sorted(runs.items()))
        print(f"{Path(c).name}: dev WER {figures}", file=sys.stderr)
    print(f"{Path(choice['checkpoint']).name} chosen on {args.set} -> {out}", file=sys.stderr)
    print(choice["checkpoint"], choice["alpha"], choice["beta"])
    return 0
