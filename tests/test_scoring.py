"""Edit-distance alignment and WER/CER reports: hand-worked cases, jiwer agreement, bookkeeping."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.scoring import (
    DEL,
    EQUAL,
    INS,
    SUB,
    ErrorCounts,
    align,
    cer,
    char_errors,
    format_report,
    read_kaldi_text,
    score,
    wer,
    word_errors,
)


def test_align_hand_worked():
    assert align("a b c".split(), "a x c".split()) == [
        (EQUAL, "a", "a"), (SUB, "b", "x"), (EQUAL, "c", "c")]
    assert align("a b c".split(), "a c".split()) == [
        (EQUAL, "a", "a"), (DEL, "b", None), (EQUAL, "c", "c")]
    assert align("a c".split(), "a b c".split()) == [
        (EQUAL, "a", "a"), (INS, None, "b"), (EQUAL, "c", "c")]
    assert align([], ["x", "y"]) == [(INS, None, "x"), (INS, None, "y")]
    assert align(["x"], []) == [(DEL, "x", None)]
    assert align([], []) == []


def test_ties_prefer_substitution():
    # "a b" -> "b c": 2 substitutions, or delete a, keep b, insert c; both cost 2
    assert align(["a", "b"], ["b", "c"]) == [(SUB, "a", "b"), (SUB, "b", "c")]


def test_counts_and_rates():
    # ref 4 words; hyp: 1 sub (b->x), 1 del (d), 1 ins (y)
    counts = word_errors("a b c d", "a x c y")
    assert counts.errors == 2 and counts.ref_len == 4  # x<->b, y<->d: two substitutions
    counts = word_errors("a b c d", "y a x c")
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 1, 1)
    assert counts.rate == pytest.approx(75.0)
    assert wer("a b", "a b") == 0.0
    assert ErrorCounts(1, 0, 0, 0).rate == float("inf")
    assert ErrorCounts().rate == 0.0


def test_cer_counts_spaces():
    # "ab c" vs "abc": the space is deleted, 1 error over 4 characters
    assert char_errors("ab c", "abc") == ErrorCounts(0, 1, 0, 4)
    assert cer("ab  c", "ab c") == 0.0  # runs of spaces collapse


words = st.lists(st.sampled_from(["a", "b", "c", "dd", "e"]), max_size=8).map(" ".join)


@settings(max_examples=200, deadline=None)
@given(ref=words.filter(bool), hyp=words)
def test_agrees_with_jiwer(ref, hyp):
    jiwer = pytest.importorskip("jiwer")
    out = jiwer.process_words(ref, hyp)
    counts = word_errors(ref, hyp)
    # the edit distance is unique; its split into sub/del/ins may differ among equal-cost
    # alignments (jiwer aligns "b a" / "a b" as del + hit + ins, we as two substitutions)
    assert counts.errors == out.substitutions + out.deletions + out.insertions
    assert wer(ref, hyp) == pytest.approx(100 * jiwer.wer(ref, hyp))
    assert cer(ref, hyp) == pytest.approx(100 * jiwer.cer(ref, hyp))


@settings(max_examples=100, deadline=None)
@given(ref=words, hyp=words)
def test_alignment_reconstructs_both_sides(ref, hyp):
    alignment = align(ref.split(), hyp.split())
    assert [r for _, r, _ in alignment if r is not None] == ref.split()
    assert [h for _, _, h in alignment if h is not None] == hyp.split()
    assert all((op == EQUAL) == (r == h) for op, r, h in alignment)


def test_report_counts_missing_utterances():
    refs = {"u1": "a b c", "u2": "d e", "u3": "f"}
    hyps = {"u1": "a x c", "u3": "f g", "u9": "stray"}
    report = score(refs, hyps)
    assert report.missing_hyps == ("u2",)
    assert report.missing_refs == ("u9",)
    # u1: 1 sub; u2: 2 del (no hypothesis); u3: 1 ins
    assert report.words == ErrorCounts(1, 2, 1, 6)
    assert report.sentence_errors == 3
    assert report.substitutions == ((("b", "x"), 1),)
    assert dict(report.deletions) == {"d": 1, "e": 1}
    assert report.insertions == (("g", 1),)
    text = format_report(report)
    assert text.splitlines()[0] == "%WER 66.67 [ 4 / 6, 1 ins, 2 del, 1 sub ]"
    assert "MISSING HYPOTHESES: u2" in text and "MISSING REFERENCES: u9" in text
    assert "u1\t1/3:\ta (b->x) c" in text
    assert "u2\t2/2 [no hypothesis]:\t(d->*) (e->*)" in text


def test_kaldi_text_round_trip_and_cli(tmp_path, capsys):
    from asr.cli import main

    (tmp_path / "ref").write_text("u2 d e\nu1 a b c\nu3\n")
    (tmp_path / "hyp").write_text("u1 a  x c\nu2 d e\nu3 x\n")
    assert read_kaldi_text(tmp_path / "ref") == {"u2": "d e", "u1": "a b c", "u3": ""}
    assert main(["score", str(tmp_path / "ref"), str(tmp_path / "hyp")]) == 0
    assert capsys.readouterr().out.startswith("%WER 40.00 [ 2 / 5, 1 ins, 0 del, 1 sub ]")
    (tmp_path / "dup").write_text("u1 a\nu1 b\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_kaldi_text(tmp_path / "dup")
