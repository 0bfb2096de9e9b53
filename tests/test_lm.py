"""Modified Kneser-Ney n-gram LM: a hand-computed bigram model, normalisation, ARPA round trip,
agreement with KenLM and between the Python and compiled scorers."""

import math
import random

import pytest

from asr.lm import BOS, EOS, UNK, LMState, NgramLM, tables_score_word, train_ngram

# Padded: <s> b </s> | <s> c b a b </s> | <s> b b </s> | <s> b </s> | <s> a a </s> | <s> a </s>
HAND_CORPUS = ["b", "c b a b", "b b", "b", "a a", "a"]


def _discounts(n1, n2, n3, n4):
    """Chen & Goodman: Y = n1/(n1+2n2), D1 = 1-2Y n2/n1, D2 = 2-3Y n3/n2, D3+ = 3-4Y n4/n3."""
    y = n1 / (n1 + 2 * n2)
    return {1: 1 - 2 * y * n2 / n1, 2: 2 - 3 * y * n3 / n2, 3: 3 - 4 * y * n4 / n3}


def _interpolate(counts, discounts, lower):
    """p(w|h) = (c - D(c)) / S + gamma * lower(w), gamma = sum_w D(c(w)) / S, for the counts
    c(w) of one context; returns (p for the seen words, gamma)."""
    total = sum(counts.values())
    gamma = sum(discounts[min(c, 3)] for c in counts.values()) / total
    probs = {w: (c - discounts[min(c, 3)]) / total + gamma * lower(w) for w, c in counts.items()}
    return probs, gamma


def test_bigram_by_hand():
    # Bigram counts (highest order: raw counts), read off the padded corpus:
    bigrams = {
        BOS: {"b": 3, "c": 1, "a": 2},
        "b": {EOS: 4, "a": 1, "b": 1},
        "c": {"b": 1},
        "a": {"b": 1, "a": 1, EOS: 2},
    }
    # count-of-counts: n1 = 6 (<s> c, b a, b b, c b, a b, a a), n2 = 2 (<s> a, a </s>),
    # n3 = 1 (<s> b), n4 = 1 (b </s>)
    d2 = _discounts(6, 2, 1, 1)
    assert d2 == pytest.approx({1: 0.6, 2: 1.1, 3: 0.6})
    # Unigram continuation counts N1+(. w): distinct words before w
    # b: <s> c a b -> 4; a: <s> b a -> 3; c: <s> -> 1; </s>: b a -> 2; <unk>: 0
    unigrams = {"b": 4, "a": 3, "c": 1, EOS: 2}
    d1 = _discounts(1, 1, 1, 1)
    assert d1 == pytest.approx({1: 1 / 3, 2: 1.0, 3: 5 / 3})
    vocab_size = 5  # a b c </s> <unk>; <s> is never predicted
    p1, gamma0 = _interpolate(unigrams, d1, lambda w: 1 / vocab_size)
    p1[UNK] = gamma0 / vocab_size
    assert p1["b"] == pytest.approx(49 / 150)  # (4 - 5/3)/10 + (7/15)/5
    assert sum(p1.values()) == pytest.approx(1.0)

    lm = train_ngram(HAND_CORPUS, order=2)
    for w, p in p1.items():
        assert 10 ** lm.ngrams[(w,)][0] == pytest.approx(p), w
    for h, counts in bigrams.items():
        p2, gamma = _interpolate(counts, d2, p1.get)
        for w, p in p2.items():
            assert 10 ** lm.ngrams[(h, w)][0] == pytest.approx(p), (h, w)
        assert 10 ** lm.ngrams[(h,)][1] == pytest.approx(gamma), h
        # an unseen bigram backs off: gamma(h) p(w)
        unseen = next(w for w in p1 if w not in counts)
        assert 10 ** lm.score_word(LMState((h,)), unseen)[0] == (
            pytest.approx(gamma * p1[unseen]))
    assert lm.counts() == {1: 6, 2: 10}  # a b c </s> <unk> <s>


def _random_corpus(seed, n=60):
    rng = random.Random(seed)
    words = ["the", "cat", "dog", "sat", "on", "a", "mat", "ran", "big"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 7))) for _ in range(n)]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_context_sums_to_one(order):
    lm = train_ngram(_random_corpus(order), order)
    predicted = [w for w in lm.vocab if w != BOS]
    contexts = [()] + [g for g in lm.ngrams if len(g) < order and g[-1] != EOS]
    for context in contexts:
        state = LMState(context)
        total = sum(10 ** lm.score_word(state, w)[0] for w in predicted)
        assert total == pytest.approx(1.0, abs=1e-9), context


def test_arpa_round_trip(tmp_path):
    lm = train_ngram(_random_corpus(7), order=3)
    lm.write_arpa(tmp_path / "lm.arpa")
    back = NgramLM.read_arpa(tmp_path / "lm.arpa")
    assert back.order == 3 and back.ngrams.keys() == lm.ngrams.keys()
    for g, (p, b) in lm.ngrams.items():
        assert back.ngrams[g] == pytest.approx((p, b), abs=1e-6)


def test_unknown_words_score_as_unk():
    lm = train_ngram(_random_corpus(3), order=3)
    state = lm.begin_state()
    assert lm.score_word(state, "zebra")[0] == lm.score_word(state, UNK)[0]


def test_same_scores_as_kenlm(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    lm = train_ngram(_random_corpus(11, n=200), order=3)
    lm.write_arpa(tmp_path / "lm.arpa")
    ours = NgramLM.read_arpa(tmp_path / "lm.arpa")
    theirs = kenlm.Model(str(tmp_path / "lm.arpa"))
    for sentence in _random_corpus(12, n=50) + ["zebra cat sat", "the the the"]:
        for bos, eos in [(True, True), (False, False), (True, False)]:
            expected = theirs.score(sentence, bos=bos, eos=eos)
            assert ours.sentence_log10(sentence.split(), bos, eos) == pytest.approx(
                expected, abs=1e-4), sentence


def test_compiled_scorer_matches_python():
    lm = train_ngram(_random_corpus(5, n=100), order=3)
    tables, word_ids = lm.tables()
    for sentence in _random_corpus(6, n=40) + ["zebra the cat"]:
        py_state, state, py_total, total = lm.begin_state(), tables.bos_state, 0.0, 0.0
        for w in sentence.split() + [EOS]:
            log10_prob, py_state = lm.score_word(py_state, w)
            py_total += log10_prob
            log10_prob, state = tables_score_word(tables, state, word_ids.get(w, tables.unk))
            total += log10_prob
        assert math.isclose(total, py_total, abs_tol=1e-9)


def test_cli_kaldi_and_plain_text(tmp_path):
    from asr.cli import main

    (tmp_path / "text").write_text("u1 b\nu2 c b a b\nu3 b b\nu4 b\nu5 a a\nu6 a\n")
    (tmp_path / "plain").write_text("\n".join(HAND_CORPUS) + "\n")
    assert main(["lm", str(tmp_path / "text"), "--order", "2",
                 "--out", str(tmp_path / "a.arpa")]) == 0
    assert main(["lm", str(tmp_path / "plain"), "--plain", "--order", "2",
                 "--out", str(tmp_path / "b.arpa")]) == 0
    a = (tmp_path / "a.arpa").read_text()
    assert a == (tmp_path / "b.arpa").read_text()
    assert a.startswith("\\data\\\nngram 1=6\nngram 2=10\n")
    assert NgramLM.read_arpa(tmp_path / "a.arpa").ngrams.keys() == train_ngram(
        HAND_CORPUS, 2).ngrams.keys()


def test_words_mapped_to_another_case_keep_their_scores():
    corpus = _random_corpus(21)
    lower = train_ngram(corpus, order=3)
    upper = lower.map_words(str.upper)
    assert {BOS, EOS, UNK} <= set(upper.vocab) and "CAT" in upper.vocab
    assert upper.counts() == lower.counts()
    for sentence in _random_corpus(22, n=20) + ["zebra cat"]:
        assert upper.sentence_log10(sentence.upper().split()) == pytest.approx(
            lower.sentence_log10(sentence.split()), abs=1e-9)


def test_words_that_map_to_one_keep_the_most_probable_entry():
    lm = train_ngram(["the cat"] * 3 + ["The cat"], order=2)
    mapped = lm.map_words(str.lower)
    assert mapped.ngrams[("the",)] == lm.ngrams[("the",)]
    assert mapped.ngrams[(BOS, "the")] == lm.ngrams[(BOS, "the")]
    assert "The" not in mapped.vocab


def test_share_of_words_outside_a_character_set():
    lm = train_ngram(["ab ba", "abc", "xa"], order=1)
    assert lm.words_outside("ab") == ["abc", "xa"]  # special tokens do not count
    assert lm.words_outside("abcx") == []


def test_vocab_words_join_with_the_share_of_unk():
    # d and e are not in the text: each gets the uniform share gamma(()) / |V| that <unk> gets,
    # with |V| = 7 now (a b c d e </s> <unk>), and every context still sums to one
    lm = train_ngram(HAND_CORPUS, order=2, vocab=["d", "b", "e", BOS])
    plain = train_ngram(HAND_CORPUS, order=2)
    assert set(lm.vocab) == set(plain.vocab) | {"d", "e"}
    assert lm.counts() == {1: 8, 2: 10}
    gamma0 = 7 / 15  # D1 + D2 + D3+ over the continuation counts' sum, as in the hand bigram
    for w in ("d", "e", UNK):
        assert 10 ** lm.ngrams[(w,)][0] == pytest.approx(gamma0 / 7), w
    assert 10 ** lm.ngrams[("b",)][0] == pytest.approx((4 - 5 / 3) / 10 + gamma0 / 7)
    state = lm.begin_state()
    assert lm.score_word(state, "d")[0] == lm.score_word(state, UNK)[0]
    predicted = [w for w in lm.vocab if w != BOS]
    for context in [(), (BOS,), ("a",), ("b",), ("c",)]:
        total = sum(10 ** lm.score_word(LMState(context), w)[0] for w in predicted)
        assert total == pytest.approx(1.0, abs=1e-9), context


def test_cli_vocab_from_a_pronunciation_dictionary(tmp_path):
    from asr.cli import main

    (tmp_path / "text").write_text("u1 B\nu2 C B A B\nu3 B B\n")
    (tmp_path / "an4.dic").write_text(";;; a comment\nA\tAH\nA(2)\tEY\nZEBRA\tZ IY B R AH\n\n"
                                      "NOVEMBER(2)\tN OW V EH M B ER\n")
    assert main(["lm", str(tmp_path / "text"), "--order", "2", "--vocab",
                 str(tmp_path / "an4.dic"), "--out", str(tmp_path / "lm.arpa")]) == 0
    lm = NgramLM.read_arpa(tmp_path / "lm.arpa")
    assert set(lm.vocab) == {"A", "B", "C", "ZEBRA", "NOVEMBER", BOS, EOS, UNK}
    assert main(["lm", str(tmp_path / "text"), "--vocab", str(tmp_path / "missing.dic"),
                 "--out", str(tmp_path / "x.arpa")]) == 1
    assert not (tmp_path / "x.arpa").exists()
