"""CTC decoders: greedy and prefix beam search with word n-gram shallow fusion.

All decoders share one signature, `decoder(log_probs, out_lens) -> list[list[Hypothesis]]`:
log_probs [B, T, V] (log-softmax output, torch or numpy), out_lens [B]; frames at or beyond
out_lens[b] are never read; N-best lists come best first. Token conventions: id 0 is the blank
`<blank>`, the token `|` separates words, the other tokens are characters.

The beam search (`BeamSearchDecoder`) keeps CTC states: a prefix (a token sequence, blanks and
repeats collapsed) together with how its paths end, in a blank or in its last token. Each state
carries the log probability of all the paths that reach it, so summing a prefix's two states gives
its exact CTC prefix probability; each frame, every state is extended by blank, by a repeat of its
last token and by the frame's candidate tokens, states reached twice are merged by log-add, and
the `beam_width` best (acoustic + LM) states survive. With one state kept this is greedy search.

Word LM (shallow fusion): when a prefix's word ends, on `|` and at the end of the utterance, its
score gains `alpha * ln p(word | history) + beta` (plus `unk_score` for a word outside the LM
vocabulary); `</s>` is scored at the end. Until then a partial word is ranked with a look-ahead,
the best unigram it can still become. Words are looked up through a trie over the LM vocabulary
spelled in tokens, so the LM state of a prefix is two ints (n-gram context, trie node). The
word bonus `beta` is part of the fusion: without an LM, scores are acoustic (+ hotwords).

Hotwords (contextual biasing, with or without an LM): a listed word gains its weight when it
ends, and a partial word that is the first k of a hotword's n tokens gains k/n of the weight in
its look-ahead (pyctcdecode's partial-match rule), so the hotword survives the beam while it is
being spelled; the look-ahead bonus goes when the partial word leaves the hotword. Hotwords join
the LM words in the trie; one outside the LM vocabulary is scored as `<unk>` without `unk_score`
(with `vocab_only`, hotwords are part of the lexicon).

Scores (natural log): `score = acoustic_score + alpha * lm_score + bonus_score`, the acoustic
score the CTC log probability of the paths the beam kept, `lm_score = ln p_LM(words, </s>)`
unweighted, `bonus_score` the rest (beta per word, unk_score per unknown word, hotword weights).
N-best lists hold distinct texts (token sequences that differ only in `|`s are one text).

Imports: this module needs neither torch nor numba (the ONNX Runtime path of `asr transcribe`
and `asr.load("model.onnx")` run it without torch): a torch tensor is read when one is passed,
and the compiled search (asr/beam_search.py, numba) is imported when a `BeamSearchDecoder` is
made. The end of the module turns command-line and API options into a decoder (`make_decoder`),
for every caller: `asr decode`, `asr transcribe` of both back ends, `asr.load`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from asr.text import TextNormConfig, normalize_text

if TYPE_CHECKING:
    from asr.lm import NgramLM

# Defaults the CLIs share with BeamSearchOptions (one place; the recipes' run.sh use the same)
DEFAULT_BEAM = 16  # beam width, in CTC states
DEFAULT_ALPHA = 0.5  # LM weight on ln p_LM
DEFAULT_BETA = 1.0  # word bonus with an LM, natural log per word
DEFAULT_UNK_SCORE = -5.0  # natural log, per word outside the LM vocabulary
DEFAULT_HOTWORD_WEIGHT = 5.0  # natural log, per hotword (`--hotword WORD` without `:weight`)

BLANK_ID = 0
BLANK = "<blank>"
WORD_SEP = "|"
LN10 = math.log(10.0)  # LM scores are log10; acoustic scores natural log
FOREIGN_SHARE_WARN = 0.5  # warn when this share of an LM's words cannot be spelled with the tokens


@dataclass(frozen=True)
class Hypothesis:
    """One decoded hypothesis. Scores are natural log, and add up (see the module doc):
    score == acoustic_score + alpha * lm_score + bonus_score (alpha of the options; greedy search
    and beam search without LM or hotwords: score == acoustic_score)."""

    tokens: tuple[int, ...]  # token ids, blanks and repeats collapsed (may include `|`)
    text: str  # tokens as text: `|` -> space, words separated by single spaces
    score: float  # what the search ranks by
    frames: tuple[int, ...]  # frame at which each token was emitted, increasing
    acoustic_score: float  # CTC log prob of the token sequence (the paths the beam kept)
    lm_score: float = 0.0  # ln p_LM(words, </s>), not weighted; 0 without an LM
    bonus_score: float = 0.0  # beta per word + unk_score per unknown word + hotword weights


@dataclass(frozen=True)
class BeamSearchOptions:
    beam_width: int = DEFAULT_BEAM  # CTC states (prefix, ends in blank or not) kept per frame
    n_best: int = 1  # hypotheses (distinct texts) returned per utterance, best first (at most
    # beam_width; fewer when the beam holds fewer texts)
    token_top_k: int = 0  # at most this many non-blank tokens extend prefixes per frame (0: all)
    token_min_log_prob: float = -10.0  # non-blank tokens below this log prob at a frame are not
    # tried; the frame's most likely token always is (so beam_width=1 is greedy search)
    beam_threshold: float = 30.0  # states scoring this much below the frame's best are dropped
    alpha: float = DEFAULT_ALPHA  # LM weight: alpha * ln p_LM(word | history) when a word ends
    beta: float = DEFAULT_BETA  # with an LM: word bonus, added per word (natural log)
    lm_eos: bool = True  # add alpha * ln p_LM(</s> | history) at the end of the utterance
    unk_score: float = DEFAULT_UNK_SCORE  # with an LM: added to each word outside its vocabulary
    # (natural log, on top of alpha * ln p(<unk>)), and to the look-ahead of partial words that are
    vocab_only: bool = False  # with an LM: spell only words of its vocabulary (a lexicon decoder)
    hotwords: tuple[tuple[str, float], ...] = ()  # (word, weight): the word gains `weight`
    # (natural log) when it ends, its partial spellings a share of it (see the module doc)


def parse_hotword(spec: str) -> tuple[str, float]:
    """`WORD` or `WORD:WEIGHT` (the CLI's --hotword) -> (word, weight); the weight defaults to
    DEFAULT_HOTWORD_WEIGHT. The last `:` splits, so a word may hold one if a weight follows."""
    word, sep, weight = spec.rpartition(":")
    if not sep:
        word, weight = spec, ""
    try:
        value = float(weight) if weight else DEFAULT_HOTWORD_WEIGHT
    except ValueError:
        raise ValueError(f"hotword {spec!r}: weight {weight!r} is not a number") from None
    if not word or not math.isfinite(value) or len(word.split()) != 1 or word != word.strip():
        raise ValueError(f"hotword {spec!r}: expected WORD or WORD:WEIGHT (one word, a finite "
                         "weight)")
    return word, value


# ---------------------------------------------------------------------------------------------
# Shared helpers


def ids_to_text(ids: Sequence[int], tokens: Sequence[str]) -> str:
    """Token ids -> text: `|` becomes a space, runs of spaces collapse, ends are stripped."""
    return " ".join("".join(tokens[i] for i in ids).replace(WORD_SEP, " ").split())


def _as_numpy(log_probs, out_lens) -> tuple[np.ndarray, np.ndarray]:
    """log_probs [B, T, V] float32 C-contiguous, out_lens [B] int64, from torch or numpy."""
    torch = sys.modules.get("torch")  # a tensor can only come from a process that imported it
    if torch is not None and isinstance(log_probs, torch.Tensor):
        log_probs = log_probs.detach().to("cpu", torch.float32).numpy()
    if torch is not None and isinstance(out_lens, torch.Tensor):
        out_lens = out_lens.detach().cpu().numpy()
    log_probs = np.ascontiguousarray(log_probs, dtype=np.float32)
    out_lens = np.asarray(out_lens, dtype=np.int64)
    if log_probs.ndim != 3 or out_lens.shape != log_probs.shape[:1]:
        raise ValueError(f"expected log_probs [B, T, V] and out_lens [B], got "
                         f"{log_probs.shape} and {out_lens.shape}")
    if (out_lens < 0).any() or (out_lens > log_probs.shape[1]).any():
        raise ValueError(f"out_lens {out_lens.tolist()} outside [0, T={log_probs.shape[1]}]")
    return log_probs, out_lens


def _check_tokens(tokens: Sequence[str], log_probs: np.ndarray) -> None:
    if not tokens or tokens[BLANK_ID] != BLANK:
        raise ValueError(f"token 0 must be {BLANK!r}, got {tokens[:1]}")
    if log_probs.shape[2] != len(tokens):
        raise ValueError(f"log_probs has V={log_probs.shape[2]}, tokens has {len(tokens)}")


# ---------------------------------------------------------------------------------------------
# Greedy


class GreedyDecoder:
    """Best path: argmax per frame, repeats collapsed, blanks dropped. Score: the best path's
    log probability."""

    def __init__(self, tokens: Sequence[str]):
        self.tokens = list(tokens)

    def __call__(self, log_probs, out_lens) -> list[list[Hypothesis]]:
        log_probs, out_lens = _as_numpy(log_probs, out_lens)
        _check_tokens(self.tokens, log_probs)
        best = log_probs.argmax(-1)  # [B, T]
        best_lp = np.take_along_axis(log_probs, best[..., None], -1)[..., 0]  # [B, T]
        results = []
        for b, n_frames in enumerate(out_lens.tolist()):
            ids = best[b, :n_frames]
            # a token is emitted where it differs from the previous frame's and is not blank
            emitted = (ids != np.concatenate([[-1], ids[:-1]])) & (ids != BLANK_ID)
            frames = np.flatnonzero(emitted)
            tokens = tuple(ids[frames].tolist())
            score = float(best_lp[b, :n_frames].sum())
            results.append([Hypothesis(tokens, ids_to_text(tokens, self.tokens), score,
                                       tuple(frames.tolist()), acoustic_score=score)])
        return results


# ---------------------------------------------------------------------------------------------
# Beam search


class BeamSearchDecoder:
    """CTC prefix beam search with optional word n-gram shallow fusion and hotwords (see the
    module doc; the search itself is asr/beam_search.py).

    lm: an `NgramLM` or the path of an ARPA file; None decodes on acoustics (and hotwords).
    """

    def __init__(self, tokens: Sequence[str], options: BeamSearchOptions = BeamSearchOptions(),
                 lm: NgramLM | str | Path | None = None):
        from asr import beam_search  # numba: imported when a beam search is made
        from asr.lm import NgramLM

        if options.beam_width < 1 or options.n_best < 1:
            raise ValueError(f"beam_width and n_best must be >= 1: {options}")
        self.tokens = list(tokens)
        self.options = options
        if isinstance(lm, (str, Path)):
            lm = NgramLM.read_arpa(lm)
        self.lm = lm
        self._scorer = beam_search.word_scorer(lm, self.tokens, options)
        self._search = beam_search.prefix_beam_search

    def __call__(self, log_probs, out_lens) -> list[list[Hypothesis]]:
        """log_probs [B, T, V], out_lens [B] -> N-best list per utterance, best first."""
        log_probs, out_lens = _as_numpy(log_probs, out_lens)
        _check_tokens(self.tokens, log_probs)
        return [self._decode_one(log_probs[b], int(n)) for b, n in enumerate(out_lens)]

    def _decode_one(self, log_probs: np.ndarray, n_frames: int) -> list[Hypothesis]:
        """log_probs [T, V] float32, frames [0, n_frames) decoded."""
        o = self.options
        # for an N-best list of texts, every prefix of the final beam (some share a text)
        n_prefixes = 1 if o.n_best == 1 else o.beam_width
        tokens, frames, offsets, scores, acoustic, log10_lm = self._search(
            log_probs, n_frames, o.beam_width, n_prefixes, o.token_top_k, o.token_min_log_prob,
            o.beam_threshold, self._scorer,
        )
        hyps, texts = [], set()
        for k, score in enumerate(scores.tolist()):
            ids = tuple(tokens[offsets[k]:offsets[k + 1]].tolist())
            text = ids_to_text(ids, self.tokens)
            if text in texts:  # a worse spelling of a text already listed (more `|`s)
                continue
            texts.add(text)
            lm_score = LN10 * float(log10_lm[k])
            hyps.append(Hypothesis(
                ids, text, score, tuple(frames[offsets[k]:offsets[k + 1]].tolist()),
                acoustic_score=float(acoustic[k]), lm_score=lm_score,
                bonus_score=score - float(acoustic[k]) - self._scorer.alpha * lm_score,
            ))
        # with vocab_only, a prefix whose last word is no LM word scores -inf: drop those
        # unless nothing else is left
        finite = [h for h in hyps if h.score > -math.inf]
        return (finite or hyps[:1])[:o.n_best]


# ---------------------------------------------------------------------------------------------
# Decoders from command-line and API options (asr decode, asr transcribe, asr.load)


def check_lm_arguments(args) -> str | None:
    """Why the decoder options cannot be used as asked (None: they can): only the beam decoder
    reads an LM, biases hotwords and keeps an N-best list."""
    if args.decoder == "beam":
        return None
    for option, used in (("--lm", getattr(args, "lm", None)),
                         ("--hotword", getattr(args, "hotword", None)),
                         ("--nbest", getattr(args, "nbest", None))):
        if used:
            return f"{option} needs --decoder beam (the greedy decoder cannot use it)"
    return None


def hotword_type(spec: str) -> tuple[str, float]:
    """argparse `type` of --hotword: `WORD` or `WORD:WEIGHT` (parse_hotword), its error message
    shown as argparse's."""
    try:
        return parse_hotword(spec)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_beam_arguments(parser: argparse.ArgumentParser) -> None:
    """--beam, --lm, --alpha, --beta and --hotword, as `asr decode` and `asr transcribe` take
    them (defaults from this module)."""
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM,
                        help="beam width (default %(default)s)")
    parser.add_argument("--lm", help="ARPA word n-gram for shallow fusion (beam only)")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help="LM weight (default %(default)s)")
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA,
                        help="word insertion bonus with an LM (default %(default)s)")
    parser.add_argument("--hotword", type=hotword_type, action="append", default=[],
                        metavar="WORD[:WEIGHT]", help="bias the beam search towards WORD "
                        "(natural-log WEIGHT when it ends; repeatable; beam only)")


def normalize_hotwords(hotwords, text_norm: TextNormConfig | None
                       ) -> tuple[tuple[str, float], ...]:
    """Hotwords, each `WORD`, `WORD:WEIGHT` or (word, weight) -> (word, weight) pairs, the words
    normalised as the training transcripts were (ValueError for one that is not a word)."""
    pairs = []
    for hotword in hotwords:
        word, weight = parse_hotword(hotword) if isinstance(hotword, str) else hotword
        pairs.append((word if text_norm is None else normalize_text(word, text_norm),
                      float(weight)))
    return tuple(pairs)


def load_lm(path: str | Path, tokens: list[str], text_norm: TextNormConfig | None = None):
    """An ARPA LM with its words normalised as the training transcripts were; a warning on
    stderr when most of its words still hold characters outside the tokens (such words can
    never be spelled: the LM was built from text normalised another way)."""
    from asr.lm import NgramLM

    lm = NgramLM.read_arpa(path)
    if text_norm is not None:
        lm = lm.map_words(lambda w: normalize_text(w, text_norm))
    n_words = sum(w not in ("<s>", "</s>", "<unk>") for w in lm.vocab)
    outside = lm.words_outside(t for t in tokens[1:] if t != WORD_SEP)
    if n_words and len(outside) >= FOREIGN_SHARE_WARN * n_words:
        print(f"warning: {path}: {len(outside)} of the LM's {n_words} words hold characters "
              f"outside the model's tokens (e.g. {', '.join(outside[:3])}); was it built from "
              "text normalised otherwise than the training transcripts?", file=sys.stderr)
    return lm


def make_decoder(tokens, kind: str, beam: int = DEFAULT_BEAM, lm_path: str | None = None,
                 alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
                 text_norm: TextNormConfig | None = None, hotwords=(), n_best: int = 1):
    """The decoder `kind` ("greedy" or "beam"); hotwords as `normalize_hotwords` takes them.
    ValueError for what the greedy decoder cannot do (an LM, hotwords, n_best > 1) and for a
    hotword the tokens cannot spell."""
    hotwords = normalize_hotwords(hotwords, text_norm)
    if kind == "greedy":
        if lm_path or hotwords or n_best > 1:
            raise ValueError("an LM, hotwords and N-best lists need the beam decoder (the "
                             "greedy decoder cannot use them)")
        return GreedyDecoder(tokens)
    if kind != "beam":
        raise ValueError(f"decoder {kind!r}: expected 'greedy' or 'beam'")
    lm = load_lm(lm_path, tokens, text_norm) if lm_path else None
    options = BeamSearchOptions(beam_width=beam, n_best=n_best, alpha=alpha if lm else 0.0,
                                beta=beta if lm else 0.0, hotwords=hotwords)
    return BeamSearchDecoder(tokens, options, lm=lm)
