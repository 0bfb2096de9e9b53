"""Word n-gram language model: interpolated modified Kneser-Ney training, ARPA files, scoring.

Training follows Chen & Goodman (1998) as KenLM's `lmplz` does it. For order k < n the counts
are continuation counts, a(x) = N1+(. x) (how many distinct words precede x), except for n-grams
that begin with `<s>`, which nothing can precede: those keep their raw counts, as do all n-grams
of the highest order. Per order, three discounts come from the count-of-counts n1..n4 of a:

    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3

and, with D(c) the discount for a count c (D1, D2 or D3+), context h and its suffix h':

    p(w | h) = (a(hw) - D(a(hw))) / S(h) + gamma(h) p(w | h'),   S(h) = sum_x a(hx)
    gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / S(h)

where Nk(h.) counts the words x with a(hx) = k (3 or more for N3+). Unigrams interpolate with
the uniform distribution over the vocabulary (`<unk>` and `</s>` included, `<s>` never
predicted). An unseen hw gets exactly gamma(h) p(w | h'), so the ARPA file stores p(w | h) for
the seen n-grams and log10 gamma(h) as the back-off weight of h: the back-off form is exact.

Scoring (`score_word`) backs off from the longest known context, as KenLM does. The decoder uses
the same LM through `NgramTables`, flat arrays and a hash table that numba-compiled code can read.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit

BOS = "<s>"
EOS = "</s>"
UNK = "<unk>"
LOG10_ZERO = -99.0  # ARPA's log10 of "never": the probability written for <s>
MISSING_UNK_LOG10 = -100.0  # <unk> probability when an ARPA file has none (KenLM does the same)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # D1, D2, D3+ when count-of-counts are too few (lmplz too)

NGram = tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Model and scoring


class ArpaError(ValueError):
    """A file that is not a readable ARPA language model."""


@dataclass(frozen=True)
class LMState:
    """What the LM remembers of the history: its longest suffix that the model knows as an
    n-gram, oldest word first, at most order - 1 words."""

    context: NGram = ()


class NgramLM:
    """A back-off n-gram model: log10 probabilities and back-off weights of the listed n-grams.

    `ngrams[(w1, ..., wk)] = (log10 p(wk | w1..wk-1), log10 backoff(w1..wk))`.
    """

    def __init__(self, order: int, ngrams: dict[NGram, tuple[float, float]]):
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        self.order = order
        self.ngrams = dict(ngrams)
        if (UNK,) not in self.ngrams:
            self.ngrams[(UNK,)] = (MISSING_UNK_LOG10, 0.0)
        self.vocab: list[str] = sorted(g[0] for g in self.ngrams if len(g) == 1)
        self._vocab_set = frozenset(self.vocab)

    def __repr__(self) -> str:
        return f"NgramLM(order={self.order}, " + ", ".join(
            f"{k}-grams={n}" for k, n in self.counts().items()) + ")"

    def counts(self) -> dict[int, int]:
        """Number of listed n-grams per order."""
        per_order = Counter(len(g) for g in self.ngrams)
        return {k: per_order.get(k, 0) for k in range(1, self.order + 1)}

    def begin_state(self, bos: bool = True) -> LMState:
        """State at the start of a sentence: after `<s>`, or with no context at all."""
        return LMState((BOS,) if bos else ())

    def _known_suffix(self, words: NGram) -> NGram:
        """Longest suffix of `words` (at most order - 1 long) that is a listed n-gram."""
        words = words[len(words) - (self.order - 1):] if self.order > 1 else ()
        while words and words not in self.ngrams:
            words = words[1:]
        return words

    def score_word(self, state: LMState, word: str) -> tuple[float, LMState]:
        """log10 p(word | state) with back-off, and the state after `word`. Words outside the
        vocabulary score as `<unk>`."""
        if word not in self._vocab_set:
            word = UNK
        context, log10_backoff = state.context, 0.0
        while (context + (word,)) not in self.ngrams:
            log10_backoff += self.ngrams.get(context, (0.0, 0.0))[1]
            context = context[1:]
        log10_prob = self.ngrams[context + (word,)][0]
        return log10_backoff + log10_prob, LMState(self._known_suffix(context + (word,)))

    def sentence_log10(self, words: Sequence[str], bos: bool = True, eos: bool = True) -> float:
        """log10 probability of a sentence (a list of words), like `kenlm.Model.score`."""
        state, total = self.begin_state(bos), 0.0
        for word in list(words) + ([EOS] if eos else []):
            log10_prob, state = self.score_word(state, word)
            total += log10_prob
        return total

    # -- words as the acoustic model spells them ----------------------------------------------

    def map_words(self, fn: Callable[[str], str]) -> NgramLM:
        """The same model over `fn(word)` (say, the model's text normalisation); `<s>`, `</s>`
        and `<unk>` stay. When several n-grams map to one, the most probable is kept (on a tie,
        the one `fn` leaves as it is), so the model stays exact for words that map one-to-one. A
        word that `fn` empties or splits in two is kept as it was."""

        def one(word: str) -> str:
            if word in (BOS, EOS, UNK):
                return word
            new = fn(word)
            return new if new and len(new.split()) == 1 else word

        mapped: dict[NGram, tuple[float, float]] = {}
        for ngram, entry in self.ngrams.items():
            key = tuple(one(w) for w in ngram)
            old = mapped.get(key)
            if old is None or entry[0] > old[0] or (entry[0] == old[0] and key == ngram):
                mapped[key] = entry
        return NgramLM(self.order, mapped)

    def words_outside(self, chars: Iterable[str]) -> list[str]:
        """The words (not `<s>`, `</s>`, `<unk>`) that hold a character outside `chars`."""
        allowed = set(chars)
        return [w for w in self.vocab if w not in (BOS, EOS, UNK) and not set(w) <= allowed]

    # -- ARPA ---------------------------------------------------------------------------------

    def write_arpa(self, path: str | Path) -> None:
        """Write the model as an ARPA file (log10 probabilities and back-off weights)."""
        counts = self.counts()
        with open(path, "w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            for k in range(1, self.order + 1):
                f.write(f"ngram {k}={counts[k]}\n")
            for k in range(1, self.order + 1):
                f.write(f"\n\\{k}-grams:\n")
                for ngram in sorted(g for g in self.ngrams if len(g) == k):
                    log10_prob, log10_backoff = self.ngrams[ngram]
                    line = f"{log10_prob:.7g}\t{' '.join(ngram)}"
                    if k < self.order and log10_backoff != 0.0:
                        line += f"\t{log10_backoff:.7g}"
                    f.write(line + "\n")
            f.write("\n\\end\\\n")

    @classmethod
    def read_arpa(cls, path: str | Path) -> NgramLM:
        """Read an ARPA file (ours, KenLM's or SRILM's). Raises ArpaError naming the file (and
        line) for what is not ARPA."""
        try:
            return cls._read_arpa(path)
        except ArpaError:
            raise
        except UnicodeDecodeError as e:
            raise ArpaError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
        except ValueError as e:  # a number that is not one
            raise ArpaError(f"{path}: not an ARPA file ({e})") from None

    @classmethod
    def _read_arpa(cls, path: str | Path) -> NgramLM:
        ngrams: dict[NGram, tuple[float, float]] = {}
        declared: dict[int, int] = {}
        section = 0  # 0: \data\ header, k: inside \k-grams:
        with open(path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                if line == "\\end\\":
                    break
                if line.startswith("\\"):
                    section = 0 if line == "\\data\\" else int(line[1:].split("-")[0])
                    continue
                if section == 0:
                    if line.startswith("ngram "):
                        k, n = line[len("ngram "):].split("=")
                        declared[int(k)] = int(n)
                    continue
                fields = line.split()
                if len(fields) not in (section + 1, section + 2):
                    raise ArpaError(f"{path}:{line_no}: malformed {section}-gram line: {line!r}")
                log10_backoff = float(fields[section + 1]) if len(fields) == section + 2 else 0.0
                ngrams[tuple(fields[1:section + 1])] = (float(fields[0]), log10_backoff)
        if not declared:
            raise ArpaError(f"{path}: no \\data\\ section, not an ARPA file")
        lm = cls(max(declared), ngrams)
        found = Counter(len(g) for g in ngrams)
        for k, n in declared.items():
            if found.get(k, 0) != n:
                raise ArpaError(f"{path}: header says {n} {k}-grams, file has {found.get(k, 0)}")
        return lm

    # -- flat tables for compiled code ---------------------------------------------------------

    def tables(self) -> tuple[NgramTables, dict[str, int]]:
        """The model as `NgramTables` and the word -> id map the tables use."""
        return build_tables(self)


# ---------------------------------------------------------------------------------------------
# Training


def _discounts(count_of_counts: Counter) -> tuple[float, float, float]:
    """D1, D2, D3+ from the number of n-grams seen once..four times (Chen & Goodman eq. 26).
    Falls back to FALLBACK_DISCOUNTS when a count-of-count is zero or a discount leaves [0, k]."""
    n1, n2, n3, n4 = (count_of_counts.get(k, 0) for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 <= dk <= k for k, dk in zip((1, 2, 3), d)):
        return FALLBACK_DISCOUNTS
    return d


def _adjusted_counts(sentences: Iterable[str], order: int) -> list[Counter]:
    """counts[k - 1][ngram] for k = 1..order: raw counts at the highest order and for n-grams
    that begin with <s>, continuation counts N1+(. x) below."""
    raw: list[Counter] = [Counter() for _ in range(order)]
    for sentence in sentences:
        words = [BOS] + sentence.split() + [EOS]
        for k in range(1, order + 1):
            for i in range(len(words) - k + 1):
                raw[k - 1][tuple(words[i:i + k])] += 1
    adjusted = [Counter() for _ in range(order)]
    adjusted[order - 1] = raw[order - 1]
    for k in range(order - 1, 0, -1):
        for ngram in raw[k]:  # every (k+1)-gram type adds one left extension to its suffix
            adjusted[k - 1][ngram[1:]] += 1
        for ngram, count in raw[k - 1].items():
            if ngram[0] == BOS:
                adjusted[k - 1][ngram] = count
    del adjusted[0][(BOS,)]  # <s> is never predicted
    return adjusted


def train_ngram(sentences: Iterable[str], order: int = 3, vocab: Iterable[str] = ()) -> NgramLM:
    """Interpolated modified Kneser-Ney n-gram LM from whitespace-tokenised sentences.

    Words of `vocab` that the sentences lack join the vocabulary with a count of zero, as `<unk>`
    does (SRILM's `ngram-count -vocab`): each gets the uniform share of the unigram interpolation,
    so a decoder knows them as words (no out-of-vocabulary penalty) at a small probability."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts = _adjusted_counts(sentences, order)
    if not counts[0]:
        raise ValueError("no words to train on")
    for word in (UNK, EOS, *vocab):
        if word == BOS:
            continue
        counts[0].setdefault((word,), 0)
    discounts = [_discounts(Counter(c for c in cnt.values() if c > 0)) for cnt in counts]

    def discount(k: int, c: int) -> float:
        return 0.0 if c == 0 else discounts[k - 1][min(c, 3) - 1]

    # per context: S(h) and the gamma numerator sum_x D(a(hx))
    totals = [defaultdict(float) for _ in range(order)]
    mass = [defaultdict(float) for _ in range(order)]
    for k in range(1, order + 1):
        for ngram, c in counts[k - 1].items():
            totals[k - 1][ngram[:-1]] += c
            mass[k - 1][ngram[:-1]] += discount(k, c)

    def gamma(k: int, context: NGram) -> float:
        return mass[k - 1][context] / totals[k - 1][context]

    probs: list[dict[NGram, float]] = [{} for _ in range(order)]
    uniform = 1.0 / len(counts[0])
    for ngram, c in counts[0].items():
        probs[0][ngram] = (c - discount(1, c)) / totals[0][()] + gamma(1, ()) * uniform
    for k in range(2, order + 1):
        for ngram, c in counts[k - 1].items():
            context = ngram[:-1]
            lower = probs[k - 2][ngram[1:]]  # suffixes of listed n-grams are listed
            probs[k - 1][ngram] = (c - discount(k, c)) / totals[k - 1][context] + gamma(
                k, context) * lower

    ngrams: dict[NGram, tuple[float, float]] = {(BOS,): (LOG10_ZERO, 0.0)}
    for k in range(1, order + 1):
        for ngram, p in probs[k - 1].items():
            ngrams[ngram] = (math.log10(p), 0.0)
    for k in range(2, order + 1):  # back-off weight of each context of order k - 1
        for context in totals[k - 1]:
            ngrams[context] = (ngrams[context][0], math.log10(gamma(k, context)))
    return NgramLM(order, ngrams)


# ---------------------------------------------------------------------------------------------
# Flat tables: an open-addressing hash (parent entry, word) -> entry that numba code can read


class NgramTables(NamedTuple):
    """The LM as arrays. Entry 0 is the empty context; entry e > 0 is one listed n-gram.

    keys/vals: hash table, key = parent_entry * n_words + word_id, -1 marks an empty slot.
    State = the entry of the longest known context, so the decoder's LM state is one int.
    """

    keys: np.ndarray  # int64 [capacity]
    vals: np.ndarray  # int32 [capacity], entry id
    log10_prob: np.ndarray  # float64 [E]
    log10_backoff: np.ndarray  # float64 [E]
    suffix: np.ndarray  # int32 [E], entry of the n-gram without its first word (0 for unigrams)
    order: np.ndarray  # int32 [E], words in the entry (0 for the empty context)
    max_order: int
    n_words: int
    unk: int  # word id of <unk>
    bos_state: int  # entry of (<s>,)
    eos: int  # word id of </s>


@njit(cache=True, inline="always")
def _slot(key, mask):
    return ((key * 0x9E3779B1) ^ (key >> 17)) & mask


@njit(cache=True)
def table_find(keys, vals, key):
    """Value stored under `key`, or -1."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while keys[i] != -1:
        if keys[i] == key:
            return vals[i]
        i = (i + 1) & mask
    return -1


@njit(cache=True)
def table_insert(keys, vals, key, value):
    """Store `key -> value` (overwriting); the table must have a free slot."""
    mask = keys.shape[0] - 1
    i = _slot(key, mask)
    while keys[i] != -1 and keys[i] != key:
        i = (i + 1) & mask
    keys[i] = key
    vals[i] = value


@njit(cache=True)
def table_build(key_list, val_list, min_capacity=16):
    """Hash table (keys, vals) holding `key_list[i] -> val_list[i]`, at most half full; the
    capacity is a power of two >= min_capacity."""
    capacity = 16
    while capacity < max(2 * key_list.shape[0], min_capacity):
        capacity *= 2
    keys = np.full(capacity, -1, dtype=np.int64)
    vals = np.full(capacity, -1, dtype=np.int32)
    for n in range(key_list.shape[0]):
        table_insert(keys, vals, key_list[n], val_list[n])
    return keys, vals


@njit(cache=True)
def tables_score_word(t, state, word):
    """Compiled `NgramLM.score_word`: (log10 p(word | state), new state) for entry `state`."""
    context = state
    log10_backoff = 0.0
    while True:
        entry = table_find(t.keys, t.vals, context * t.n_words + word)
        if entry >= 0:
            new_state = entry if t.order[entry] < t.max_order else t.suffix[entry]
            return log10_backoff + t.log10_prob[entry], new_state
        if context == 0:  # not a unigram (callers map unknown words to <unk> first)
            word = t.unk
            continue
        log10_backoff += t.log10_backoff[context]
        context = t.suffix[context]


def build_tables(lm: NgramLM) -> tuple[NgramTables, dict[str, int]]:
    """See `NgramLM.tables`."""
    word_ids = {w: i for i, w in enumerate(lm.vocab)}
    n_words = len(word_ids)
    ngrams = sorted(lm.ngrams, key=len)  # parents before children
    entry_of: dict[NGram, int] = {(): 0}
    for e, ngram in enumerate(ngrams, 1):
        entry_of[ngram] = e
    n_entries = len(ngrams) + 1
    log10_prob = np.zeros(n_entries)
    log10_backoff = np.zeros(n_entries)
    suffix = np.zeros(n_entries, dtype=np.int32)
    order = np.zeros(n_entries, dtype=np.int32)
    key_list = np.empty(len(ngrams), dtype=np.int64)
    for e, ngram in enumerate(ngrams, 1):
        log10_prob[e], log10_backoff[e] = lm.ngrams[ngram]
        order[e] = len(ngram)
        tail = ngram[1:]
        while tail not in entry_of:
            tail = tail[1:]
        suffix[e] = entry_of[tail]
        parent = entry_of.get(ngram[:-1])
        if parent is None:
            raise ValueError(f"ARPA file lacks the prefix of {' '.join(ngram)!r}")
        key_list[e - 1] = parent * n_words + word_ids[ngram[-1]]
    keys, vals = table_build(key_list, np.arange(1, n_entries, dtype=np.int32))
    tables = NgramTables(
        keys, vals, log10_prob, log10_backoff, suffix, order, lm.order, n_words,
        word_ids[UNK], entry_of.get((BOS,), 0), word_ids.get(EOS, word_ids[UNK]),
    )
    return tables, word_ids


# ---------------------------------------------------------------------------------------------
# `asr lm`


def read_vocab(path: str | Path) -> list[str]:
    """The words of a word list or pronunciation dictionary: the first field of each line.
    CMU's marks of pronunciation variants (`A(2)`) are dropped, and `;;;` comment lines skipped."""
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if fields and not fields[0].startswith(";;;"):
                words.append(re.sub(r"\(\d+\)$", "", fields[0]))
    return list(dict.fromkeys(words))


def read_sentences(path: str | Path, plain: bool = False) -> list[str]:
    """Sentences of a Kaldi `text` file (`utt-id words...`, the id dropped) or, with `plain`,
    of a file with one sentence per line. Empty sentences are skipped."""
    sentences = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            words = fields if plain else fields[1:]
            if words:
                sentences.append(" ".join(words))
    return sentences


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", type=Path, help="Kaldi `text` file (utt-id words...), or plain "
                        "text with --plain")
    parser.add_argument("--order", type=int, default=3, help="n-gram order (default 3)")
    parser.add_argument("--out", type=Path, required=True, help="ARPA file to write")
    parser.add_argument("--plain", action="store_true",
                        help="TEXT has one sentence per line, no utterance ids")
    parser.add_argument("--vocab", type=Path, help="also know these words, with a count of zero: "
                        "a word list or pronunciation dictionary (first field of each line; "
                        "CMU's `WORD(2)` variants count once), e.g. AN4's etc/an4.dic")


def run(args: argparse.Namespace) -> int:
    sentences = read_sentences(args.text, args.plain)
    if not sentences:
        print(f"asr lm: no sentences in {args.text}", file=sys.stderr)
        return 1
    vocab = []
    if args.vocab is not None:
        try:
            vocab = read_vocab(args.vocab)
        except (OSError, UnicodeDecodeError) as e:
            print(f"asr lm: cannot read --vocab {args.vocab}: {e}", file=sys.stderr)
            return 1
    lm = train_ngram(sentences, args.order, vocab)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    lm.write_arpa(args.out)
    counts = ", ".join(f"{n} {k}-grams" for k, n in lm.counts().items())
    unseen = len(set(lm.vocab) - {w for s in sentences for w in s.split()} - {BOS, EOS, UNK})
    extra = f"; {unseen} words of {args.vocab} not in the text" if args.vocab else ""
    print(f"asr lm: {len(sentences)} sentences -> {args.out} ({counts}{extra})")
    return 0
