"""Text normalisation (examples + properties) and the vocabulary (hand-worked ids)."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.text import TextNormConfig, Vocabulary, VocabularyError, normalize_text

UPPER = TextNormConfig()


@pytest.mark.parametrize("raw, expected", [
    ("hello world", "HELLO WORLD"),
    ("  Don’t   stop-me, now!  ", "DON'T STOP ME NOW"),
    ("\"Quoted,\" she said.\n\tNext line", "QUOTED SHE SAID NEXT LINE"),
    ("ＡＢＣ １２３", "ABC 123"),  # full-width forms (NFKC)
    ("ﬁne", "FINE"),  # ligature (NFKC)
    ("straße", "STRASSE"),
    ("Café", "CAFÉ"),  # decomposed é composes (NFKC)
    ("a|b", "A B"),  # `|` is the word separator token, never text
    ("50% of $3", "50 OF 3"),
    ("...", ""),
    ("", ""),
    ("He said ‘hello’", "HE SAID HELLO"),  # quotes are not part of a word
    ("'Tis the '90s", "TIS THE 90S"),
    ("rock'n'roll isn't 'it'", "ROCK'N'ROLL ISN'T IT"),
    ("the dogs' bowls", "THE DOGS BOWLS"),  # a possessive end goes too: it is not heard
    ("' '' '", ""),
    ("½ price", "1/2 PRICE"),  # a fraction stays one word, as a number does
    ("1½ hours, ¾ done", "1 1/2 HOURS 3/4 DONE"),
    ("1⁄2 and 1/2", "1/2 AND 1/2"),  # fraction slash or ASCII slash between digits
    ("and/or 24/ 7", "AND OR 24 7"),
])
def test_normalize_examples(raw, expected):
    assert normalize_text(raw, UPPER) == expected


def test_normalize_options():
    text = "Hello, World! It’s me|you."
    assert normalize_text(text, TextNormConfig(case="lower")) == "hello world it's me you"
    assert normalize_text(text, TextNormConfig(case="keep")) == "Hello World It's me you"
    assert normalize_text(text, TextNormConfig(strip_punct=False)) == "HELLO, WORLD! IT'S ME YOU."
    assert normalize_text(text, TextNormConfig(keep_chars="")) == "HELLO WORLD IT S ME YOU"
    assert normalize_text("e-mail", TextNormConfig(keep_chars="-'")) == "E-MAIL"


def test_config_checks_and_dict():
    assert UPPER.to_dict() == {"case": "upper", "strip_punct": True, "keep_chars": "'"}
    with pytest.raises(ValueError, match="case"):
        TextNormConfig(case="title")
    with pytest.raises(ValueError, match="keep_chars"):
        TextNormConfig(keep_chars="|")


CONFIGS = st.builds(TextNormConfig, case=st.sampled_from(["upper", "lower", "keep"]),
                    strip_punct=st.booleans(), keep_chars=st.sampled_from(["", "'", "'-"]))


def check_normal_form(text: str, cfg: TextNormConfig) -> None:
    out = normalize_text(text, cfg)
    assert normalize_text(out, cfg) == out  # idempotent
    assert "  " not in out and out == out.strip()
    assert "|" not in out and all(ch == " " or not ch.isspace() for ch in out)
    assert unicodedata.normalize("NFKC", out) == out
    if cfg.strip_punct:
        kept = [ch for ch in out if ch not in cfg.keep_chars and ch != "/"]
        assert all(unicodedata.category(ch)[0] not in "PS" for ch in kept)
        for word in out.split():  # kept characters only inside words
            assert word[0] not in cfg.keep_chars and word[-1] not in cfg.keep_chars, word
            assert all(word[i - 1].isdigit() and word[i + 1].isdigit()
                       for i, ch in enumerate(word) if ch == "/"), word


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), CONFIGS)
def test_normalize_properties(text, cfg):
    check_normal_form(text, cfg)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "1", "2", "'", "\u2019", "\u2018", "-", "/", "½",
                                 "\u2044", " ", ".", '"']), max_size=20).map("".join), CONFIGS)
def test_normalize_properties_on_word_edges(text, cfg):
    """The edge cases (apostrophes, quotes, fractions) drawn often: same properties."""
    check_normal_form(text, cfg)


# ----------------------------------------------------------------------------------------------
# Vocabulary: tokens ["<blank>", "|", "'", "A", "B", "C"] -> ids 0..5

TEXTS = ["AB BA", "C'A", "B"]


def test_build_is_sorted_and_order_free():
    vocab = Vocabulary.build(TEXTS)
    assert vocab.tokens == ["<blank>", "|", "'", "A", "B", "C"] and len(vocab) == 6
    assert Vocabulary.build(reversed(TEXTS)).tokens == vocab.tokens


def test_encode_hand_worked():
    vocab = Vocabulary.build(TEXTS)
    assert vocab.encode("AB BA") == [3, 4, 1, 4, 3]
    assert vocab.encode("  C'A   B ") == [5, 2, 3, 1, 4]  # spaces collapse, ends dropped
    assert vocab.encode("") == []


def test_decode_hand_worked():
    vocab = Vocabulary.build(TEXTS)
    assert vocab.decode([0, 3, 3, 0, 1, 1, 4, 0]) == "AA B"  # blanks dropped, spaces collapsed
    assert vocab.decode([1, 5, 2, 3, 1]) == "C'A"  # ends stripped
    assert vocab.decode(vocab.encode("AB BA C")) == "AB BA C"


def test_oov_skip_counts():
    vocab = Vocabulary.build(TEXTS)
    assert vocab.encode("AXB Z A") == [3, 4, 1, 3]  # X dropped; the word Z vanishes
    assert vocab.encode("ZZ") == []
    assert vocab.oov_counts == Counter({"Z": 3, "X": 1})


def test_oov_error():
    vocab = Vocabulary(Vocabulary.build(TEXTS).tokens, oov="error")
    with pytest.raises(VocabularyError, match="'X'"):
        vocab.encode("AXB")
    with pytest.raises(ValueError, match="oov"):
        Vocabulary(vocab.tokens, oov="ignore")


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.build(TEXTS)
    vocab.save(tmp_path / "tokens.txt")
    assert (tmp_path / "tokens.txt").read_text() == "<blank>\n|\n'\nA\nB\nC\n"
    loaded = Vocabulary.load(tmp_path / "tokens.txt")
    assert loaded.tokens == vocab.tokens and loaded.encode("CAB") == [5, 3, 4]


@pytest.mark.parametrize("tokens, message", [
    (["|", "<blank>", "A"], "token 0"),
    (["<blank>", "A", "B"], "word separator"),
    (["<blank>", "|", "A", "A"], "twice"),
    (["<blank>", "|", "AB"], "one visible character"),
    ([], "token 0"),
])
def test_bad_token_lists(tmp_path, tokens, message):
    with pytest.raises(VocabularyError, match=message):
        Vocabulary(tokens)
    (tmp_path / "tokens.txt").write_text("".join(f"{t}\n" for t in tokens))
    with pytest.raises(VocabularyError, match="tokens.txt"):
        Vocabulary.load(tmp_path / "tokens.txt")
