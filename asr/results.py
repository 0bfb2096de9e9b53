"""`asr results EXP`: the results table of an experiment, written as EXP/RESULTS.md from what the
recipe measured (decode summaries, training metrics, the checkpoint) — never typed by hand."""

from __future__ import annotations

import argparse
import csv
import json
from datetime import datetime, timezone
from pathlib import Path

from asr.card import card_of, hardware, results_lines
from asr.checkpoint import load_checkpoint


def tuned_label(exp: Path, checkpoint: str, alpha: float, beta: float) -> str:
    """', tuned on dev' when `asr tune-lm` chose these weights for this checkpoint, else ''."""
    tune = exp / f"tune_lm_{Path(checkpoint).stem}.json"
    if not checkpoint or not tune.exists():
        return ""
    best = json.loads(tune.read_text())["best"]
    if (best["alpha"], best["beta"]) != (alpha, beta):
        return ""
    chosen = exp / "chosen.json"
    dev = json.loads(chosen.read_text())["chosen_on"] if chosen.exists() else "dev"
    return f", tuned on {dev}"


def decode_rows(exp: Path) -> list[dict]:
    rows = []
    for summary in sorted(exp.glob("decode_*/summary.json")):
        s = json.loads(summary.read_text())
        label = "greedy" if s["decoder"] == "greedy" else f"beam {s['beam']}"
        checkpoint = s.get("checkpoint", "")
        if s.get("lm"):
            label += (f" + {Path(s['lm']).name} (alpha {s['alpha']}, beta {s['beta']}"
                      f"{tuned_label(exp, checkpoint, s['alpha'], s['beta'])})")
        rtf = (s["acoustic_seconds"] + s["decode_seconds"]) / max(1e-9, s["audio_seconds"])
        rows.append({"set": s["set"], "model": Path(checkpoint).name if checkpoint else "",
                     "decoder": label, "wer": s["wer"], "cer": s["cer"],
                     "utts": s["utterances"], "failed": len(s.get("failed", {})), "rtf": rtf})
    return rows


def write_results(exp: Path, title: str) -> Path:
    lines = [f"# Results: {title}", ""]
    rows = decode_rows(exp)
    if rows:
        lines += ["| set | model | decoder | WER % | CER % | utterances | real-time factor |",
                  "|---|---|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['set']} | {r['model']} | {r['decoder']} | {r['wer']:.2f} | "
                         f"{r['cer']:.2f} | {r['utts']} | {r['rtf']:.3f} |")
        lines.append("")
    chosen = exp / "chosen.json"
    if chosen.exists():
        c = json.loads(chosen.read_text())
        lines += [f"Chosen on {c['chosen_on']} (lowest {c['chosen_on']} WER with the LM): "
                  f"{Path(c['checkpoint']).name}, LM weight {c['alpha']} and word bonus "
                  f"{c['beta']} from `asr tune-lm` on {c['chosen_on']}; only it decodes the "
                  "other sets. No figure of a test set chose anything.", ""]
    ckpt_path = exp / "last.pt"
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        lines += results_lines(card_of(ckpt))  # the card's figures, as `asr info` shows
    metrics = exp / "metrics.csv"
    if metrics.exists():
        with metrics.open() as f:
            rows_m = list(csv.DictReader(f))
        total = sum(float(r["epoch_seconds"]) for r in rows_m)
        lines.append(f"- wall time of the epochs, dev evaluation included: {total / 60:.1f} min")
        lines += ["", "| epoch | train loss | dev loss | dev CER % | dev WER % |",
                  "|---:|---:|---:|---:|---:|"]
        for r in rows_m:
            lines.append(f"| {int(r['epoch']) + 1} | {float(r['train_loss']):.3f} | "
                         f"{float(r['dev_loss']):.3f} | {float(r['dev_cer']):.2f} | "
                         f"{float(r['dev_wer']):.2f} |")
    lines += ["", f"- hardware: {hardware()}",
              f"- written {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `asr results`", ""]
    out = exp / "RESULTS.md"
    out.write_text("\n".join(lines))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("exp", metavar="EXP", help="experiment dir (decode_*/summary.json, ...)")
    parser.add_argument("--title", default="", help="heading of the table")


def run(args) -> int:
    exp = Path(args.exp)
    out = write_results(exp, args.title or exp.name)
    print(f"wrote {out}")
    return 0
