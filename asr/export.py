"""`asr export`: a checkpoint's acoustic model as TorchScript or ONNX, for inference elsewhere.

The exported model is `CTCModel` in eval mode, CMVN included: (feats [B, T, F] float32 raw
features, feat_lens [B] int64) -> (log_probs [B, T', V] float32, out_lens [B] int64), for any B
and T. What it takes to use it travels inside the file, as one JSON document (`metadata`): the
tokens, the feature config, the subsampling and output frame shift, the text normalisation and
the model card (asr/card.py). In ONNX it is the model's metadata_props entry
"asr"; in TorchScript the extra file "asr.json" (`torch.jit.load(path, _extra_files=...)`).
Features are computed outside the model (asr/features.py, or its numpy twin
asr/features_numpy.py), as for the checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from asr.card import card_of
from asr.checkpoint import load_checkpoint
from asr.config import from_dict
from asr.model import CTCModel, ModelConfig

METADATA_KEY = "asr"  # ONNX metadata_props key / TorchScript extra file stem
METADATA_VERSION = 1
ONNX_OPSET = 17
INPUT_NAMES = ["feats", "feat_lens"]
OUTPUT_NAMES = ["log_probs", "out_lens"]
DYNAMIC_AXES = {  # every batch size and length
    "feats": {0: "B", 1: "T"}, "feat_lens": {0: "B"},
    "log_probs": {0: "B", 1: "T_out"}, "out_lens": {0: "B"},
}


def load_model(ckpt: dict[str, Any], where: str = "checkpoint") -> CTCModel:
    """The checkpoint's model on the CPU in eval mode."""
    cfg = from_dict(ModelConfig, ckpt["model_config"], f"{where}: model_config")
    model = CTCModel(cfg, len(ckpt["tokens"]))
    model.load_state_dict(ckpt["model"])
    return model.eval()


def metadata(ckpt: dict[str, Any], source: str = "") -> dict[str, Any]:
    """What a runtime needs besides the network: tokens (blank first), feature config,
    time resolution; plus the text normalisation where the checkpoint has it, and the card."""
    feature_config = dict(ckpt["feature_config"])
    subsample = int(ckpt["model_config"].get("subsample", 1))
    frame_shift_ms = float(feature_config.get("frame_shift_ms", 10.0))
    return {
        "version": METADATA_VERSION,
        "source": source,
        "tokens": list(ckpt["tokens"]),
        "feature_config": feature_config,
        "num_features": int(ckpt["model_config"]["num_features"]),
        "subsample": subsample,
        "seconds_per_output_frame": frame_shift_ms / 1000 * subsample,
        "model_config": dict(ckpt["model_config"]),
        "text_norm": ckpt.get("text_norm"),
        "card": card_of(ckpt),
    }


def example_input(num_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of two lengths to trace with: (feats [2, 50, F], feat_lens [2])."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(2, 50, num_features, generator=generator), torch.tensor([50, 31])


def export_torchscript(model: CTCModel, meta: dict[str, Any], out: Path) -> None:
    files = {f"{METADATA_KEY}.json": json.dumps(meta, ensure_ascii=False)}
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.jit.save(torch.jit.script(model), str(out), _extra_files=files)


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """An exported TorchScript model and its metadata."""
    files = {f"{METADATA_KEY}.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=FutureWarning)
        model = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return model.eval(), json.loads(files[f"{METADATA_KEY}.json"])


def export_onnx(model: CTCModel, meta: dict[str, Any], out: Path) -> None:
    """Traced with the TorchScript-based exporter (no onnxscript needed), every batch size and
    length left dynamic; the metadata is added as metadata_props["asr"]."""
    import onnx

    feats, feat_lens = example_input(meta["num_features"])
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        # Quiet: the exporter warns that an RNN traced at batch 2 may fail at other batch sizes
        # (the model passes no initial state, and tests/test_export.py runs other sizes and
        # lengths), that tracing sees Python booleans, and that this exporter is the old one.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (feats, feat_lens), str(tmp), input_names=INPUT_NAMES,
                output_names=OUTPUT_NAMES, dynamic_axes=DYNAMIC_AXES, opset_version=ONNX_OPSET,
                dynamo=False,
            )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(meta, ensure_ascii=False)
        proto.producer_name = "ctc-asr"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(out))
    finally:
        tmp.unlink(missing_ok=True)


def export(checkpoint: str | Path, fmt: str, out: str | Path) -> Path:
    """Write the checkpoint's model as `fmt` ("torchscript" or "onnx") to `out`."""
    ckpt = load_checkpoint(checkpoint)
    model = load_model(ckpt, str(checkpoint))
    meta = metadata(ckpt, Path(checkpoint).name)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "torchscript":
        export_torchscript(model, meta, out)
    elif fmt == "onnx":
        export_onnx(model, meta, out)
    else:
        raise ValueError(f"unknown export format {fmt!r} (torchscript or onnx)")
    return out


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint (best.pt, last.pt)")
    parser.add_argument("--format", choices=["torchscript", "onnx"], required=True)
    parser.add_argument("--out", required=True, help="the file to write (model.pt, model.onnx)")


def run(args) -> int:
    if args.format == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            print("asr export: --format onnx needs the onnx package: "
                  "pip install 'ctc-asr[onnx]'", file=sys.stderr)
            return 2
    out = export(args.checkpoint, args.format, args.out)
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({args.format}, {size_mb:.1f} MB)")
    return 0
