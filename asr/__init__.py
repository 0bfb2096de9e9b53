"""A small CTC speech recognition toolkit. See docs/design.md for the module map.

`asr.load(checkpoint, ...)` gives a `Transcriber` (asr/api.py); it is imported on first use, so
that `import asr` stays cheap (no torch).
"""

__version__ = "0.1.0"
__all__ = ["Transcriber", "load"]


def __getattr__(name: str):
    if name in __all__:
        from asr import api

        return getattr(api, name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
