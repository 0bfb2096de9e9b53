"""Decoder-side levers on one model's dev log-probs: n-gram order, the score of words outside
the LM, and lexicon-only decoding, each with its own alpha x beta grid (best dev WER kept).

    asr decode --checkpoint exp/avg.pt data/dev --out exp/dump --dump-log-probs dev.npz
    for n in 2 3 4; do asr lm data/train/text --order $n --out lm$n.arpa; done
    python bench/lm_levers.py dev.npz lm2.arpa lm3.arpa lm4.arpa

Each row is tuned on the set it is scored on, as `asr tune-lm` is: a comparison of levers on
dev, not a held-out figure. The npz layout is bench/decode.py's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from decode import load_npz  # bench/decode.py

from asr.decoding import DEFAULT_UNK_SCORE
from asr.lm import NgramLM
from asr.recognize import best_point, lm_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log_probs", type=Path, help="npz from asr decode --dump-log-probs")
    parser.add_argument("lms", type=Path, nargs="+", help="ARPA files to compare")
    parser.add_argument("--beam", type=int, default=16)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.4, 0.8, 1.2, 1.6, 2.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--unk-scores", type=float, nargs="+",
                        default=[DEFAULT_UNK_SCORE, -10.0, -2.0])
    args = parser.parse_args()

    data = load_npz(args.log_probs)
    utt_ids, tokens = list(data["utt_ids"]), list(data["tokens"])
    log_probs = [torch.from_numpy(lp[:n]) for lp, n in zip(data["log_probs"], data["out_lens"])]
    refs = dict(zip(utt_ids, data["refs"]))
    print("| LM | words outside the LM | WER % | CER % | alpha | beta |")
    print("|---|---|---:|---:|---:|---:|")
    for path in args.lms:
        lm = NgramLM.read_arpa(path)
        rows = [(f"unk_score {u:g}", dict(unk_score=u)) for u in args.unk_scores]
        rows.append(("none (vocab_only)", dict(vocab_only=True)))
        for label, options in rows:
            b = best_point(lm_grid(tokens, lm, utt_ids, log_probs, refs, args.alphas,
                                   args.betas, beam_width=args.beam, **options))
            print(f"| {path.name} | {label} | {b['wer']:.2f} | {b['cer']:.2f} | {b['alpha']:g} "
                  f"| {b['beta']:g} |", flush=True)


if __name__ == "__main__":
    main()
