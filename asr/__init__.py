"""A small CTC speech recognition toolkit. See docs/design.md for the module map."""

__version__ = "0.1.0"
