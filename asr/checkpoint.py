"""Checkpoints: plain dicts of tensors and Python values, written atomically, read with
`weights_only=True` so that a file from elsewhere can never run code on load."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from asr.faults import maybe_kill


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or is not one of ours."""


REQUIRED_KEYS = ("model", "model_config", "tokens", "feature_config")


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A file to write `path` through: a temporary file in the same directory, fsynced and
    renamed over `path` when the block ends, removed when it fails. A crash at any moment leaves
    either the old file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            maybe_kill("checkpoint_write")  # crash tests: die with the new file half-made
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CheckpointError(f"{path}: could not write checkpoint: {e.strerror or e}") from e
        raise


class _KeepWriteError:
    """A file wrapper that keeps the OSError a write raised: torch.save turns it into an opaque
    RuntimeError ("enforce fail at inline_container.cc"), losing "No space left on device"."""

    def __init__(self, f: IO[bytes]):
        self.f = f
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(obj: dict[str, Any], path: str | Path) -> None:
    """torch.save `obj` to `path` atomically. Raises CheckpointError (naming the file and the
    reason: disk full, file too large, ...) and leaves the old file when writing fails."""
    with _atomic_file(Path(path)) as f:
        writer = _KeepWriteError(f)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


def copy_checkpoint(src: str | Path, dst: str | Path) -> None:
    """Copy a checkpoint file, atomically."""
    with _atomic_file(Path(dst)) as f, open(src, "rb") as source:
        shutil.copyfileobj(source, f)


def remove_partial_checkpoints(directory: str | Path) -> list[Path]:
    """Delete the temporary files a killed `save_checkpoint` left behind in `directory`."""
    removed = []
    for tmp in Path(directory).glob(".*.pt.*.tmp"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with `weights_only=True`; anything that needs arbitrary unpickling is refused, and
    so is a file that is not the zip archive torch.save writes (a bare pickle is not opened)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: refused: not a checkpoint (torch.save writes a zip "
                              "archive; this file is not one, and is not unpickled)")
    if is_torchscript(path):
        raise CheckpointError(f"{path}: a TorchScript export (asr export --format torchscript), "
                              "not a checkpoint: pass the training checkpoint (.pt) or the "
                              "ONNX export (.onnx)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: the file holds objects that a weights-only load does not allow "
            f"(it may carry code): {_unpickling_detail(e)}"
        ) from None
    except Exception as e:  # a damaged archive: torch raises RuntimeError, KeyError, ...
        raise CheckpointError(f"{path}: not a readable checkpoint: {type(e).__name__}: {e}") \
            from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (missing keys)")
    return ckpt


def is_torchscript(path: str | Path) -> bool:
    """Whether a zip archive is TorchScript (`torch.jit.save`: ARCHIVE/code/... and
    ARCHIVE/constants.pkl), told from its member names alone: nothing in it is unpickled."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:  # damaged: torch.load says how
        return False
    return (any(n.endswith("/constants.pkl") for n in names)
            and any("/code/" in n for n in names))


def _unpickling_detail(error: Exception) -> str:
    """What torch's weights-only unpickler objected to ("GLOBAL builtins.exec"), without the rest
    of its message, which suggests loading the file unsafely."""
    found = re.search(
        r"(?:unsupported|Unsupported global:) (GLOBAL [\w.]+)|Unsupported operand \d+", str(error)
    )
    if found is None:
        return "content outside what a weights-only load allows"
    return found.group(1) or found.group(0)


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
