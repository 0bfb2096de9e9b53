"""Corpus importers (one module per corpus) and corpus-level feature extraction."""
