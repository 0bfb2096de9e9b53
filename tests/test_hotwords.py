"""Contextual biasing: a hotword the acoustics (or the LM) get wrong is recovered, its partial
spellings are kept in a narrow beam, and a hotword that is not spoken changes nothing; the same
words as pyctcdecode's `hotwords=` at the same weights."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.decoding import (
    DEFAULT_HOTWORD_WEIGHT,
    BeamSearchDecoder,
    BeamSearchOptions,
    GreedyDecoder,
    parse_hotword,
)
from asr.lm import train_ngram

TOKENS = ["<blank>", "|", *"abegilnoqstuwz"]


def _spoken(sentence, confusions=None):
    """log_probs [1, T, V] for `sentence`: each character (and `|` between words) a frame where
    it has probability 0.9, then a blank frame. confusions {char index: (other char, p)}: that
    character gets only p and the other character 0.9 - p."""
    confusions = confusions or {}
    V = len(TOKENS)
    frames = []
    for i, ch in enumerate("|".join(sentence.split())):
        probs = np.full(V, 0.1 / (V - 1))
        if i in confusions:
            other, p = confusions[i]
            probs[TOKENS.index(ch)], probs[TOKENS.index(other)] = p, 0.9 - p
        else:
            probs[TOKENS.index(ch)] = 0.9
        blank = np.full(V, 0.1 / (V - 1))
        blank[0] = 0.9
        frames += [probs / probs.sum(), blank / blank.sum()]
    return np.log(np.array(frames))[None].astype(np.float32)


# "go to zeta now" with the z of zeta heard as s (p 0.35 against 0.55): "go to seta now"
ZETA = 6  # index of z in "go|to|zeta|now"
SETA = _spoken("go to zeta now", {ZETA: ("s", 0.35)})


def _decode(log_probs, lm=None, **options):
    decoder = BeamSearchDecoder(TOKENS, BeamSearchOptions(**options), lm)
    return decoder(log_probs, [log_probs.shape[1]])[0][0]


def test_hotword_recovers_an_under_recognised_word():
    assert _decode(SETA).text == "go to seta now"
    hyp = _decode(SETA, hotwords=(("zeta", 2.0),))
    assert hyp.text == "go to zeta now"
    assert hyp.bonus_score == pytest.approx(2.0)  # the weight, once, for the one hotword
    # a weight below the acoustic margin (ln 0.55/0.35 = 0.45) is not enough
    assert _decode(SETA, hotwords=(("zeta", 0.3),)).text == "go to seta now"


def test_unrelated_hotword_changes_nothing():
    # (the scores may move a little: the hotword's partial spellings change which alignments
    # the beam keeps; and a hotword one deleted letter away, "sea", would win at weight 5)
    for beam_width in (4, 16):
        plain = _decode(SETA, beam_width=beam_width)
        for word in ("quiz", "big", "tan", "bagel", "w"):
            hyp = _decode(SETA, beam_width=beam_width, hotwords=((word, DEFAULT_HOTWORD_WEIGHT),))
            assert hyp.text == plain.text == "go to seta now"
            assert hyp.bonus_score == 0.0
    # with the hotword recovered, the other words stay as they were
    hyp = _decode(SETA, hotwords=(("zeta", 2.0), ("quiz", 5.0), ("tan", 5.0)))
    assert hyp.text == "go to zeta now"


def test_hotword_partial_spellings_survive_a_narrow_beam():
    # with one state kept, the search is greedy until the word ends; the z survives only
    # because its partial word gets a share of the weight (here 1/4 of 4 = 1 > 0.45)
    assert GreedyDecoder(TOKENS)(SETA, [SETA.shape[1]])[0][0].text == "go to seta now"
    assert _decode(SETA, beam_width=1, hotwords=(("zeta", 4.0),)).text == "go to zeta now"


def test_hotword_against_the_lm():
    # the LM knows "beta" and not "zeta"; the acoustics slightly prefer zeta: the LM wins,
    # until zeta is a hotword (scored as <unk>, without unk_score, plus its weight)
    lm = train_ngram(["go to beta now", "go to beta", "beta now", "go now", "to go"] * 3, 3)
    heard = _spoken("go to zeta now", {ZETA: ("b", 0.5)})
    assert _decode(heard).text == "go to zeta now"
    assert _decode(heard, lm).text == "go to beta now"
    hyp = _decode(heard, lm, hotwords=(("zeta", 8.0),))
    assert hyp.text == "go to zeta now"
    assert hyp.score == pytest.approx(hyp.acoustic_score + 0.5 * hyp.lm_score + hyp.bonus_score)
    assert hyp.bonus_score == pytest.approx(8.0 + 4 * 1.0)  # the weight + beta per word
    # with vocab_only, a hotword is part of the lexicon
    assert _decode(heard, lm, vocab_only=True).text == "go to beta now"
    assert _decode(heard, lm, vocab_only=True, hotwords=(("zeta", 8.0),)).text == "go to zeta now"


def test_negative_weight_suppresses_a_word():
    heard = _spoken("go to zeta now", {ZETA: ("s", 0.55)})
    assert _decode(heard).text == "go to zeta now"
    assert _decode(heard, hotwords=(("zeta", -2.0),)).text == "go to seta now"


def test_parse_hotword():
    assert parse_hotword("zeta") == ("zeta", DEFAULT_HOTWORD_WEIGHT)
    assert parse_hotword("zeta:2.5") == ("zeta", 2.5)
    assert parse_hotword("zeta:-1") == ("zeta", -1.0)
    for bad in ("", ":3", "zeta:x", "two words:1", "zeta:inf", f"zeta:{math.nan}"):
        with pytest.raises(ValueError, match="hotword"):
            parse_hotword(bad)


def test_unspellable_hotword_fails_loudly():
    with pytest.raises(ValueError, match="'Z' is not a token"):
        BeamSearchDecoder(TOKENS, BeamSearchOptions(hotwords=(("Zeta", 3.0),)))
    with pytest.raises(ValueError, match="separator"):
        BeamSearchDecoder(TOKENS, BeamSearchOptions(hotwords=(("ze|ta", 3.0),)))


def test_hotwords_agree_with_pyctcdecode():
    """pyctcdecode's hotwords are the same bias on the same scale: natural log, added once per
    occurrence of the word, k/n of it to the first k of its n characters (its default weight,
    10, is twice ours). On SETA, each decoder with its own token pruning, both recover "zeta"
    from the same weight on (above the acoustic margin ln 0.55/0.35 = 0.45), neither below it,
    and an unrelated hotword changes neither at either default weight. A hotword one letter
    away from what was heard ("sea") wins in both when both try the tokens that spell it
    (token_min_logp -10, ours; pyctcdecode's default of -5 drops them here)."""
    pyctcdecode = pytest.importorskip("pyctcdecode")
    from pyctcdecode.constants import DEFAULT_HOTWORD_WEIGHT as THEIR_DEFAULT
    from pyctcdecode.constants import DEFAULT_MIN_TOKEN_LOGP as THEIR_MIN_LOGP

    theirs = pyctcdecode.build_ctcdecoder(["", " ", *TOKENS[2:]])  # blank "", words " ", no LM
    ours_min_logp = BeamSearchOptions().token_min_log_prob

    def both(word=None, weight=0.0, min_logp=None):
        """(pyctcdecode's text, ours) with hotword `word` at `weight`, beam 16."""
        hotwords = [word] if word else None
        return (theirs.decode(SETA[0], beam_width=16, hotwords=hotwords, hotword_weight=weight,
                              token_min_logp=THEIR_MIN_LOGP if min_logp is None else min_logp),
                _decode(SETA, beam_width=16, hotwords=((word, weight),) if word else (),
                        token_min_log_prob=ours_min_logp if min_logp is None else min_logp).text)

    heard, meant = ("go to seta now",) * 2, ("go to zeta now",) * 2
    assert both() == heard
    assert both("zeta", 0.4) == heard
    for weight in (0.5, 2.0, DEFAULT_HOTWORD_WEIGHT, THEIR_DEFAULT):
        assert both("zeta", weight) == meant
    for word in ("quiz", "big", "tan", "bagel"):
        for weight in (DEFAULT_HOTWORD_WEIGHT, THEIR_DEFAULT):
            assert both(word, weight) == heard
    for weight in (DEFAULT_HOTWORD_WEIGHT, THEIR_DEFAULT):
        assert both("sea", weight, min_logp=ours_min_logp) == ("go to sea now",) * 2
        assert both("sea", weight)[0] == "go to seta now"  # pyctcdecode's pruning hides it


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**16), T=st.integers(0, 20), beam=st.integers(1, 8),
       n_best=st.integers(1, 4), use_lm=st.booleans(), n_hot=st.integers(1, 3))
def test_fuzz_hotword_scores(seed, T, beam, n_best, use_lm, n_hot):
    # N distinct texts best first, scores that add up; without an LM the bonus is exactly the
    # weights of the hotwords in the text
    rng = np.random.default_rng(seed)
    tokens = ["<blank>", "|", "a", "b", "c"]
    hot = {"".join(rng.choice(list("abc"), int(rng.integers(1, 4)))): float(rng.normal(0, 3))
           for _ in range(n_hot)}
    lm = train_ngram(["ab ba", "a b c", "cab"] * 2, order=2) if use_lm else None
    options = BeamSearchOptions(beam_width=beam, n_best=n_best, hotwords=tuple(hot.items()))
    log_probs = np.log(rng.dirichlet(np.full(len(tokens), 0.3), size=(1, T))).astype(np.float32)
    nbest = BeamSearchDecoder(tokens, options, lm)(np.maximum(log_probs, -30), [T])[0]
    assert 1 <= len(nbest) <= n_best and len({h.text for h in nbest}) == len(nbest)
    assert [h.score for h in nbest] == sorted((h.score for h in nbest), reverse=True)
    for h in nbest:
        alpha = options.alpha if use_lm else 0.0
        assert h.score == pytest.approx(h.acoustic_score + alpha * h.lm_score + h.bonus_score)
        if not use_lm:
            assert h.bonus_score == pytest.approx(sum(hot.get(w, 0.0) for w in h.text.split()))
