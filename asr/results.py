"""`asr results EXP`: the results table of an experiment, written as EXP/RESULTS.md from what the
recipe measured (decode summaries, training metrics, the checkpoint) — never typed by hand."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from asr.checkpoint import load_checkpoint


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def decode_rows(exp: Path) -> list[dict]:
    rows = []
    for summary in sorted(exp.glob("decode_*/summary.json")):
        s = json.loads(summary.read_text())
        label = "greedy" if s["decoder"] == "greedy" else f"beam {s['beam']}"
        if s.get("lm"):
            label += f" + {Path(s['lm']).name} (alpha {s['alpha']}, beta {s['beta']})"
        rtf = (s["acoustic_seconds"] + s["decode_seconds"]) / max(1e-9, s["audio_seconds"])
        rows.append({"set": s["set"], "decoder": label, "wer": s["wer"],
                     "cer": s["cer"], "utts": s["utterances"],
                     "failed": len(s.get("failed", {})), "rtf": rtf})
    return rows


def write_results(exp: Path, title: str) -> Path:
    lines = [f"# Results: {title}", ""]
    rows = decode_rows(exp)
    if rows:
        lines += ["| set | decoder | WER % | CER % | utterances | real-time factor |",
                  "|---|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r['set']} | {r['decoder']} | {r['wer']:.2f} | {r['cer']:.2f} | "
                         f"{r['utts']} | {r['rtf']:.3f} |")
        lines.append("")
    ckpt_path = exp / "last.pt"
    if ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        params = sum(v.numel() for k, v in ckpt["model"].items() if not k.startswith("cmvn."))
        st = ckpt.get("train_state", {})
        mc = ckpt["model_config"]
        lines += [
            "## Model and training",
            f"- model: {mc['num_layers']} x Bi{mc['cell'].upper()} {mc['hidden_size']}, "
            f"subsampling x{mc['subsample']}, {params / 1e6:.2f} M parameters, "
            f"{len(ckpt['tokens'])} tokens",
            f"- trained {st.get('epoch', '?')} epochs, {st.get('step', '?')} steps; "
            f"best dev CER (greedy, during training) {st.get('best_cer', float('nan')):.2f}% "
            f"at epoch {st.get('best_epoch', -1) + 1}",
        ]
        if st.get("train_seconds"):
            speed = st["audio_seconds"] / st["train_seconds"]
            lines.append(f"- training time {st['train_seconds'] / 60:.1f} min in steps "
                         f"({st['audio_seconds'] / 3600:.1f} audio-hours seen, "
                         f"{speed:.1f} audio-hours per hour)")
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
