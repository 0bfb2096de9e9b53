"""Model cards: what a trained model is, written into every checkpoint (key "card"), beside
best.pt as model.json, and into exported models; `asr info MODEL` prints one.

A card is a plain JSON-able dict:

    model      architecture in words, parameter count, the model config
    tokens     the token list (blank first)
    text_norm  the transcript normalisation the model was trained on (asr prep's)
    features   the feature config
    data       corpus (from DATA/prep.json), and for the train and dev sets: data dir,
               usable utterances, skipped ones, hours
    dev        greedy dev WER and CER (percent) of this checkpoint, at its epoch
    training   epochs, steps, training time, audio-hours seen
    created    date (UTC), commit (`git rev-parse HEAD`, else "unknown"), hardware

`card_of(ckpt)` gives the stored card, or for a checkpoint written before cards existed the same
fields from what it holds (the rest missing). `asr results` takes its model and training lines
from `card_of` too, so RESULTS.md and the card cannot disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CARD_VERSION = 1
PREP_JSON = "prep.json"  # data_prep.prep.PREP_JSON: asr prep's record, beside the data dirs
MODEL_JSON = "model.json"  # the card of best.pt, beside it
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# Facts about this run


def hardware() -> str:
    """CPU model and cores, torch version and GPU (if torch is imported or importable)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    import torch

    text += f", torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def git_commit(repo: Path = REPO) -> str:
    """The commit of the code that ran (`git rev-parse HEAD`; where git cannot be run, as with
    an environment without PATH, read from .git itself), or "unknown" outside a checkout."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                              text=True, timeout=10)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return _read_git_head(repo / ".git") or "unknown"


def _read_git_head(git_dir: Path) -> str | None:
    try:
        head = (git_dir / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None  # detached
        ref = head[5:]
        if (git_dir / ref).is_file():
            return (git_dir / ref).read_text().strip()
        for line in (git_dir / "packed-refs").read_text().splitlines():
            if line.endswith(f" {ref}"):
                return line.split()[0]
    except OSError:
        pass
    return None


def read_prep(data_dir: str | Path) -> dict[str, Any]:
    """DATA/prep.json of the data dir DATA/<set>, or {} if asr prep did not write one."""
    path = Path(data_dir).resolve().parent / PREP_JSON
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def dataset_facts(data_dir: str | Path, dataset) -> dict[str, Any]:
    """One set as training used it (a CTCDataset): dir, usable utterances, skipped, hours."""
    return {
        "dir": str(Path(data_dir).resolve()),
        "utterances": len(dataset),
        "skipped": sum(dataset.skipped.values()),
        "hours": round(dataset.audio_seconds / 3600, 4),
    }


def training_data(train_dir, dev_dir, train_set, dev_set) -> dict[str, Any]:
    """The data part of the card: corpus (from prep.json) and the train and dev sets."""
    prep = read_prep(train_dir)
    return {
        "corpus": prep.get("corpus", "unknown"),
        "source": prep.get("src"),
        "normalization": prep.get("normalization"),
        "train": {"name": Path(train_dir).name, **dataset_facts(train_dir, train_set)},
        "dev": {"name": Path(dev_dir).name, **dataset_facts(dev_dir, dev_set)},
    }


# ---------------------------------------------------------------------------------------------
# The card


def architecture(model_config: dict[str, Any]) -> str:
    """'3 x BiLSTM 256, subsampling x4' (+ projection, LayerNorm, speaker CMN)."""
    mc = model_config
    text = (f"{mc.get('num_layers', '?')} x Bi{str(mc.get('cell', '?')).upper()} "
            f"{mc.get('hidden_size', '?')}, subsampling x{mc.get('subsample', '?')}")
    if mc.get("proj_size"):
        text += f", projection {mc['proj_size']}"
    if mc.get("layer_norm"):
        text += ", LayerNorm"
    if mc.get("speaker_cmn"):
        text += ", speaker CMN"
    return text


def count_parameters(state_dict: dict) -> int:
    """Weights of a state dict, CMVN statistics left out."""
    return int(sum(v.numel() for k, v in state_dict.items() if not k.startswith("cmvn.")))


def build_card(ckpt: dict[str, Any], data: dict[str, Any] | None = None,
               dev: dict[str, Any] | None = None, provenance: bool = True) -> dict[str, Any]:
    """The card of checkpoint dict `ckpt` (model, model_config, tokens, feature_config,
    train_state; text_norm when it has one). `data`: `training_data(...)`; `dev`: the greedy
    evaluation of this checkpoint's weights ({"wer", "cer", "epoch"}, epoch counted from 1);
    `provenance`: date, commit and hardware are this process's (else left empty)."""
    state = ckpt.get("train_state") or {}
    data = data or {}
    return {
        "card_version": CARD_VERSION,
        "model": {
            "architecture": architecture(ckpt["model_config"]),
            "parameters": count_parameters(ckpt["model"]),
            "config": dict(ckpt["model_config"]),
        },
        "tokens": list(ckpt["tokens"]),
        "text_norm": ckpt.get("text_norm") or data.get("normalization"),
        "features": dict(ckpt["feature_config"]),
        "data": data,
        "dev": dict(dev) if dev else {},
        "training": {
            "epochs": state.get("epoch"),
            "steps": state.get("step"),
            "train_seconds": state.get("train_seconds"),
            "audio_hours_seen": (round(state["audio_seconds"] / 3600, 4)
                                 if state.get("audio_seconds") is not None else None),
            "best_dev_cer": state.get("best_cer"),
            "best_epoch": (state["best_epoch"] + 1) if state.get("best_epoch", -1) >= 0 else None,
        },
        "created": {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(),
            "hardware": hardware(),
        } if provenance else {"date": None, "commit": None, "hardware": None},
    }


def card_of(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The card a checkpoint carries; for one without, what can be told from its contents
    (no data, dev results or provenance)."""
    if ckpt.get("card"):
        return ckpt["card"]
    card = build_card(ckpt, provenance=False)
    card["note"] = "written before model cards: data, dev results and provenance not recorded"
    return card


def write_model_json(path: str | Path, card: dict[str, Any]) -> None:
    from asr.datadir import write_text_atomic

    write_text_atomic(Path(path), json.dumps(card, indent=2, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------------------------------------
# Reading it back


def _value(x, fmt: str = "{}") -> str:
    return "?" if x is None else fmt.format(x)


def _averaged(dev: dict[str, Any]) -> str:
    n = dev.get("averaged_epochs")
    return f", weights averaged over its last {n} epochs" if n else ""


def _duration(hours: float | None) -> str:
    """'12.34 h', or minutes below an hour."""
    if hours is None:
        return "?"
    return f"{hours:.2f} h" if hours >= 1 else f"{hours * 60:.1f} min"


def format_card(card: dict[str, Any], source: str = "") -> str:
    """The card as a readable block of `key: value` lines."""
    model, data, dev = card.get("model", {}), card.get("data") or {}, card.get("dev") or {}
    training, created = card.get("training") or {}, card.get("created") or {}
    features = card.get("features") or {}
    tokens = card.get("tokens") or []
    lines = [f"model card{f' of {source}' if source else ''}"]

    def add(key: str, value: str) -> None:
        lines.append(f"  {key + ':':<14}{value}")

    params = model.get("parameters")
    add("model", f"{model.get('architecture', '?')}, "
                 f"{_value(params and params / 1e6, '{:.2f}')} M parameters")
    shown = " ".join("␣" if t == "|" else t for t in tokens[:40])
    add("tokens", f"{len(tokens)}: {shown}{' ...' if len(tokens) > 40 else ''}")
    add("text norm", json.dumps(card.get("text_norm")) if card.get("text_norm") else "?")
    add("features", ", ".join(f"{k} {v}" for k, v in features.items()) or "?")
    if data:
        source = f" ({data['source']})" if data.get("source") else ""
        add("corpus", f"{data.get('corpus', '?')}{source}")
        for part in ("train", "dev"):
            s = data.get(part)
            if s:
                add(part, f"{s.get('name')}: {s.get('utterances')} utterances "
                          f"({s.get('skipped', 0)} skipped), {_duration(s.get('hours'))}"
                          f" [{s.get('dir')}]")
    else:
        add("data", "not recorded")
    if dev:
        add("dev (greedy)", f"WER {_value(dev.get('wer'), '{:.2f}')}%, "
                            f"CER {_value(dev.get('cer'), '{:.2f}')}% at epoch {dev.get('epoch')}"
                            + _averaged(dev))
    else:
        add("dev (greedy)", "not recorded")
    minutes = training.get("train_seconds")
    add("training", f"{_value(training.get('epochs'))} epochs, {_value(training.get('steps'))} "
                    f"steps, {_value(minutes and minutes / 60, '{:.1f}')} min, "
                    f"{_duration(training.get('audio_hours_seen'))} of audio seen; best dev "
                    f"CER {_value(training.get('best_dev_cer'), '{:.2f}')}% at epoch "
                    f"{_value(training.get('best_epoch'))}")
    add("date", _value(created.get("date")))
    add("commit", _value(created.get("commit")))
    add("hardware", _value(created.get("hardware")))
    if card.get("note"):
        add("note", card["note"])
    return "\n".join(lines)


def read_card(path: str | Path) -> dict[str, Any]:
    """The card of a checkpoint (.pt), an exported ONNX model (.onnx, read with onnxruntime,
    no torch) or an exported TorchScript model, or a model.json."""
    path = Path(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".onnx":
        from asr.onnx_transcribe import OnnxRecognizer

        meta = OnnxRecognizer(path, "cpu").metadata
        return meta.get("card") or _card_of_metadata(meta)
    from asr.checkpoint import CheckpointError, load_checkpoint

    try:
        return card_of(load_checkpoint(path))
    except CheckpointError:
        from asr.export import load_torchscript

        try:
            _, meta = load_torchscript(path)
        except Exception:  # not TorchScript either: report the checkpoint error
            raise CheckpointError(f"{path}: neither a checkpoint nor an exported model") from None
        return meta.get("card") or _card_of_metadata(meta)


def _card_of_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A card from an exported model's metadata when its checkpoint had none."""
    return {
        "model": {"architecture": architecture(meta.get("model_config", {}))},
        "tokens": meta.get("tokens"), "text_norm": meta.get("text_norm"),
        "features": meta.get("feature_config"),
        "note": "exported from a checkpoint written before model cards",
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL",
                        help="checkpoint (.pt), exported model (.onnx, TorchScript) or model.json")
    parser.add_argument("--json", action="store_true", help="print the card as JSON")


def run(args) -> int:
    card = read_card(args.model)
    if args.json:
        print(json.dumps(card, indent=2, ensure_ascii=False))
    else:
        print(format_card(card, str(args.model)))
    return 0 if card else 1


def results_lines(card: dict[str, Any]) -> list[str]:
    """The "Model and training" part of RESULTS.md (asr.results), from the card."""
    model, data = card.get("model", {}), card.get("data") or {}
    training, dev = card.get("training") or {}, card.get("dev") or {}
    params = model.get("parameters")
    lines = ["## Model and training",
             f"- model: {model.get('architecture', '?')}, "
             f"{_value(params and params / 1e6, '{:.2f}')} M parameters, "
             f"{len(card.get('tokens') or [])} tokens"]
    if data:
        sets = "; ".join(f"{part} `{s['name']}` {s['utterances']} utterances, "
                         f"{_duration(s['hours'])}"
                         for part in ("train", "dev") if (s := data.get(part)))
        lines.append(f"- data: {data.get('corpus', '?')}; {sets}")
    lines.append(f"- trained {_value(training.get('epochs'))} epochs, "
                 f"{_value(training.get('steps'))} steps; best dev CER (greedy, during training) "
                 f"{_value(training.get('best_dev_cer'), '{:.2f}')}% at epoch "
                 f"{_value(training.get('best_epoch'))}")
    if dev:
        lines.append(f"- this checkpoint (epoch {dev.get('epoch')}{_averaged(dev)}): dev WER "
                     f"{dev['wer']:.2f}%, CER {dev['cer']:.2f}% (greedy)")
    seconds, hours = training.get("train_seconds"), training.get("audio_hours_seen")
    if seconds and hours is not None:
        lines.append(f"- training time {seconds / 60:.1f} min in steps ({hours:.1f} audio-hours "
                     f"seen, {hours * 3600 / seconds:.1f} audio-hours per hour)")
    created = card.get("created") or {}
    if created.get("commit"):
        lines.append(f"- code: commit {created['commit']}, trained {created.get('date')}")
    return lines
