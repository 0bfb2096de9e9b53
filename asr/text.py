"""Transcript normalisation and the character vocabulary (tokens.txt).

tokens.txt holds one token per line: line 1 is `<blank>` (the CTC blank, id 0), line 2 is `|`
(the word separator), then the characters, sorted by code point. The same texts always give the
same file.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.config import from_dict
from asr.datadir import write_text_atomic

BLANK = "<blank>"  # the CTC blank, id 0
WORD_SEP = "|"  # the token between words
CASES = ("upper", "lower", "keep")
# Typographic apostrophes, read as "'" (so "don’t" and "don't" are one word).
APOSTROPHES = {"\u2019": "'", "\u2018": "'", "\u02bc": "'"}
FRACTION_SLASH = "\u2044"  # what NFKC writes between the digits of `½`
FRACTION_SLASHES = ("/", FRACTION_SLASH)  # between two digits: a fraction, kept as `/`


@dataclass(frozen=True)
class TextNormConfig:
    """How transcripts are normalised before they become targets."""

    case: str = "upper"  # "upper" | "lower" | "keep"
    strip_punct: bool = True  # punctuation and symbols become spaces (except keep_chars)
    keep_chars: str = "'"  # punctuation kept inside words, not at their edges, if strip_punct

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ValueError(f"case must be one of {CASES}, got {self.case!r}")
        if any(c.isspace() or c == WORD_SEP for c in self.keep_chars):
            raise ValueError(f"keep_chars may not hold whitespace or {WORD_SEP!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def stored(cls, norm: dict | None, where: str) -> TextNormConfig | None:
        """The normalisation a checkpoint or an exported model records (`text_norm`); None when
        it predates that record. `where` names the file in errors."""
        return None if norm is None else from_dict(cls, norm, f"{where}: text_norm")


def _is_punct(ch: str) -> bool:
    """Unicode punctuation (P*) or symbol (S*)."""
    return unicodedata.category(ch)[0] in "PS"


def _is_space(ch: str) -> bool:
    """Whitespace, control and format characters all separate words."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Zs")


def _map_char(ch: str, cfg: TextNormConfig) -> str:
    if "'" in cfg.keep_chars and ch in APOSTROPHES:
        ch = APOSTROPHES[ch]
    if _is_space(ch) or ch == WORD_SEP:  # `|` is reserved for the word separator
        return " "
    if cfg.strip_punct and _is_punct(ch) and ch not in cfg.keep_chars:
        return " "
    return ch


def _apply_case(text: str, case: str) -> str:
    return text.upper() if case == "upper" else text.lower() if case == "lower" else text


def _split_vulgar_fractions(text: str) -> str:
    """`1½` -> `1 1⁄2 `: a vulgar fraction becomes its own word before NFKC writes it as digits,
    which would otherwise run into the number before it (`11⁄2`)."""
    if text.isascii():
        return text
    return "".join(f" {nfkc} " if FRACTION_SLASH in nfkc and len(nfkc) > 1 else ch
                   for ch, nfkc in ((c, unicodedata.normalize("NFKC", c)) for c in text))


def _map_chars(text: str, cfg: TextNormConfig) -> str:
    """Each character mapped (`_map_char`), except that a slash between digits is kept as `/`."""
    out = []
    for i, ch in enumerate(text):
        if (ch in FRACTION_SLASHES and 0 < i < len(text) - 1 and text[i - 1].isdigit()
                and text[i + 1].isdigit()):
            out.append("/")
        else:
            out.append(_map_char(ch, cfg))
    return "".join(out)


def normalize_text(text: str, cfg: TextNormConfig = TextNormConfig()) -> str:
    """Unicode NFKC, case, punctuation -> space, whitespace collapsed and stripped.

    With strip_punct, the characters of keep_chars are kept only inside words: at a word's
    edge they are dropped, so quotes (`'hello'`, `‘hello’`) are not part of the word. The
    possessive `dogs'` becomes `DOGS` too: the apostrophe is not heard, and keeping it would
    make a second word type that no recording can tell from the first. A fraction stays one
    word, as a number does (numbers are not spelled out): `½` and `1/2` -> `1/2`.

    >>> normalize_text("  Don’t   stop-me, ‘now’!  ")
    "DON'T STOP ME NOW"
    """
    text = unicodedata.normalize("NFKC", _split_vulgar_fractions(text))
    text = unicodedata.normalize("NFKC", _apply_case(text, cfg.case))
    words = _map_chars(text, cfg).split()
    if cfg.strip_punct:
        words = [w.strip(cfg.keep_chars) for w in words]
    return " ".join(w for w in words if w)


class VocabularyError(ValueError):
    pass


class Vocabulary:
    """Character tokens <-> ids for CTC: blank is id 0, `|` separates words.

    `oov` decides what encode() does with a character outside the vocabulary: "skip" drops it
    (and counts it in `oov_counts`), "error" raises VocabularyError.
    """

    BLANK = BLANK
    SPACE = WORD_SEP

    def __init__(self, tokens: Sequence[str], oov: str = "skip"):
        tokens = list(tokens)
        _check_tokens(tokens)
        if oov not in ("skip", "error"):
            raise ValueError(f"oov must be 'skip' or 'error', got {oov!r}")
        self.tokens: list[str] = tokens
        self.oov = oov
        self.oov_counts: Counter[str] = Counter()
        self._ids = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], oov: str = "skip") -> Vocabulary:
        """All characters of (normalised) texts, sorted, after `<blank>` and `|`."""
        chars: set[str] = set()
        for text in texts:
            chars.update(text)
        chars = {c for c in chars if not c.isspace()} - {cls.SPACE}
        return cls([cls.BLANK, cls.SPACE, *sorted(chars)], oov=oov)

    @classmethod
    def load(cls, path: str | Path, oov: str = "skip") -> Vocabulary:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        try:
            return cls(lines, oov=oov)
        except VocabularyError as e:
            raise VocabularyError(f"{path}: {e}") from None

    def save(self, path: str | Path) -> None:
        """Write tokens.txt atomically (temp file + rename)."""
        write_text_atomic(Path(path), "".join(f"{t}\n" for t in self.tokens))

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, oov={self.oov!r})"

    def encode(self, text: str) -> list[int]:
        """Text -> token ids [U]; words are joined by `|` (spaces collapse, ends are dropped)."""
        ids: list[int] = []
        for word in text.split():
            word_ids = [i for i in (self._char_id(ch) for ch in word) if i is not None]
            if word_ids:
                if ids:
                    ids.append(self._ids[self.SPACE])
                ids.extend(word_ids)
        return ids

    def _char_id(self, ch: str) -> int | None:
        i = self._ids.get(ch)
        if i is None or i == 0:  # "<blank>" is never a character
            if self.oov == "error":
                raise VocabularyError(f"character {ch!r} (U+{ord(ch):04X}) not in the vocabulary")
            self.oov_counts[ch] += 1
            return None
        return i

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text: blanks dropped, `|` -> space, spaces collapsed and stripped."""
        chars = []
        for i in ids:
            i = int(i)
            if i == 0:
                continue
            token = self.tokens[i]
            chars.append(" " if token == self.SPACE else token)
        return " ".join("".join(chars).split())


def _check_tokens(tokens: list[str]) -> None:
    if not tokens or tokens[0] != Vocabulary.BLANK:
        raise VocabularyError(f"token 0 must be {Vocabulary.BLANK!r}, got {tokens[:1]}")
    if Vocabulary.SPACE not in tokens:
        raise VocabularyError(f"no word separator {Vocabulary.SPACE!r} among the tokens")
    seen = set()
    for i, t in enumerate(tokens):
        if t in seen:
            raise VocabularyError(f"token {t!r} (line {i + 1}) appears twice")
        seen.add(t)
        if i > 0 and (len(t) != 1 or t.isspace()):
            raise VocabularyError(f"token {t!r} (line {i + 1}) is not one visible character")
