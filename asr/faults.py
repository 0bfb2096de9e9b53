"""Fault injection for crash tests: `ASR_FAULT=<point>:<n>` makes the process SIGKILL itself the
n-th time it passes `point`. Unset (always, outside tests), `maybe_kill` does nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter

_passes: Counter[str] = Counter()


def maybe_kill(point: str) -> None:
    spec = os.environ.get("ASR_FAULT")
    if not spec:
        return
    name, _, n = spec.partition(":")
    if name != point:
        return
    _passes[point] += 1
    if _passes[point] == int(n or 1):
        os.kill(os.getpid(), signal.SIGKILL)
