"""Checkpoints: plain dicts of tensors and Python values, written atomically, read with
`weights_only=True` so that a file from elsewhere can never run code on load."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from asr.faults import maybe_kill


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or is not one of ours."""


REQUIRED_KEYS = ("model", "model_config", "tokens", "feature_config")


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`: a crash
    at any moment leaves either the old file or the new one, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            maybe_kill("checkpoint_write")  # crash tests: die with the new file half-made
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"{path}: could not write checkpoint: {e.strerror or e}") from e
        raise


def remove_partial_checkpoints(directory: str | Path) -> list[Path]:
    """Delete the temporary files a killed `save_checkpoint` left behind in `directory`."""
    removed = []
    for tmp in Path(directory).glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`; anything that needs arbitrary unpickling is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise CheckpointError(
            f"{path}: refused: the file holds objects that a weights-only load does not allow "
            f"(it may carry code). Detail: {first}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (missing keys)")
    return ckpt


def average_checkpoints(paths: list[str | Path]) -> dict[str, torch.Tensor]:
    """Element-wise mean of the model weights of several checkpoints (float tensors only;
    integer buffers are taken from the last)."""
    if not paths:
        raise ValueError("no checkpoints to average")
    states = [load_checkpoint(p)["model"] for p in paths]
    avg = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            avg[key] = sum(s[key].double() for s in states).div(len(states)).to(value.dtype)
        else:
            avg[key] = value
    return avg
