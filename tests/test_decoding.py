"""CTC decoders: hand-worked greedy cases, beam 1 == greedy, exactness against brute force,
LM fusion, the compiled search against a plain reference (hotwords too), scores that add up,
N-best lists of distinct texts, fuzzed invariants, and agreement with pyctcdecode."""

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from asr.beam_search import _heap_push
from asr.decoding import (
    DEFAULT_ALPHA,
    DEFAULT_BEAM,
    DEFAULT_BETA,
    DEFAULT_UNK_SCORE,
    BeamSearchDecoder,
    BeamSearchOptions,
    GreedyDecoder,
    ids_to_text,
)
from asr.lm import train_ngram

TOKENS = ["<blank>", "|", "a", "b", "c", "d"]
FUZZ_LM = train_ngram(["ab ba", "a b c", "cab dab", "d"] * 3, order=3)
EXACT = dict(token_min_log_prob=-math.inf, beam_threshold=math.inf)  # no pruning but the width


def _one_hot_log_probs(ids, V, p=0.9):
    """[1, T, V]: token ids[t] has probability p at frame t, the rest share 1 - p."""
    probs = np.full((len(ids), V), (1 - p) / (V - 1))
    probs[np.arange(len(ids)), ids] = p
    return np.log(probs)[None].astype(np.float32)


def _random_log_probs(seed, B, T, V, peaky=2.0):
    g = torch.Generator().manual_seed(seed)
    return (peaky * torch.randn(B, T, V, generator=g)).log_softmax(-1)


def _ctc_log_prob(log_probs, ids):
    """Exact log p(ids | x) for one utterance, log_probs [T, V]: -ctc_loss."""
    lp = torch.as_tensor(np.asarray(log_probs), dtype=torch.float64)
    return -F.ctc_loss(lp[:, None], torch.tensor([list(ids)]), torch.tensor([lp.shape[0]]),
                       torch.tensor([len(ids)]), reduction="sum", zero_infinity=False).item()


# ---------------------------------------------------------------------------------------------
# Greedy


def test_greedy_hand_worked():
    # collapse repeats, then drop blanks: [1,2,2,0,0,0,2,1] -> [1,2,2,1]
    log_probs = _one_hot_log_probs([1, 2, 2, 0, 0, 0, 2, 1], 3)
    hyp = GreedyDecoder(["<blank>", "x", "y"])(log_probs, [8])[0][0]
    assert hyp.tokens == (1, 2, 2, 1)
    assert hyp.frames == (0, 1, 6, 7)
    assert hyp.text == "xyyx"
    assert hyp.score == pytest.approx(8 * math.log(0.9), rel=1e-5)


def test_greedy_text_and_padding():
    # "a|b" with a leading and a doubled separator: words come out single-spaced
    ids = [1, 2, 0, 1, 0, 1, 3, 3]
    log_probs = np.concatenate([_one_hot_log_probs(ids, 6), _one_hot_log_probs([4, 4], 6)], 1)
    hyp = GreedyDecoder(TOKENS)(log_probs, [8])[0][0]  # the last two frames are padding
    assert hyp.tokens == (1, 2, 1, 1, 3) and hyp.text == "a b"
    assert ids_to_text([2, 1, 1, 3, 1], TOKENS) == "a b"


def test_greedy_batch_equals_single():
    log_probs = _random_log_probs(0, 3, 20, 6)
    out_lens = torch.tensor([20, 7, 0])
    batch = GreedyDecoder(TOKENS)(log_probs, out_lens)
    for b in range(3):
        n = int(out_lens[b])
        assert GreedyDecoder(TOKENS)(log_probs[b:b + 1, :n], [n]) == [batch[b]]
    assert batch[2][0].tokens == () and batch[2][0].score == 0.0


# ---------------------------------------------------------------------------------------------
# Beam search without LM


@pytest.mark.parametrize("seed", range(8))
def test_beam_one_is_greedy(seed):
    V = 2 + seed % 5
    tokens = TOKENS[:V]
    log_probs = _random_log_probs(seed, 4, 30, V, peaky=1.0 + seed % 3)
    out_lens = torch.tensor([30, 29, 3, 1])
    greedy = GreedyDecoder(tokens)(log_probs, out_lens)
    beam = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=1))(log_probs, out_lens)
    for g, b in zip(greedy, beam):
        assert (b[0].tokens, b[0].frames, b[0].text) == (g[0].tokens, g[0].frames, g[0].text)
        assert b[0].score == pytest.approx(g[0].score, abs=1e-4)


def _brute_force(log_probs):
    """{label sequence: log p} over all V^T alignments of log_probs [T, V]."""
    T, V = log_probs.shape
    total: dict[tuple, float] = {}
    for path in itertools.product(range(V), repeat=T):
        labels = tuple(k for k, _ in itertools.groupby(path) if k != 0)
        p = math.exp(sum(log_probs[t, k] for t, k in enumerate(path)))
        total[labels] = total.get(labels, 0.0) + p
    return {k: math.log(v) for k, v in total.items()}


@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_finds_the_most_probable_labelling(seed):
    T, V = 3 + seed % 3, 3
    log_probs = _random_log_probs(seed, 1, T, V, peaky=1.0)[0].double().numpy()
    exact = _brute_force(log_probs)
    options = BeamSearchOptions(beam_width=256, n_best=len(exact), **EXACT)
    nbest = BeamSearchDecoder(["<blank>", "a", "b"], options)(log_probs[None], [T])[0]
    best = max(exact, key=exact.get)
    assert nbest[0].tokens == best
    assert nbest[0].score == pytest.approx(exact[best], abs=1e-5)
    # every labelling, with its exact probability, in order
    assert len(nbest) == len(exact)
    for hyp in nbest:
        assert hyp.score == pytest.approx(exact[hyp.tokens], abs=1e-5)


def test_beam_scores_bound_ctc_probabilities():
    # a score sums the paths that survived pruning: at most the labelling's CTC probability
    log_probs = _random_log_probs(3, 1, 25, 6)
    for beam in (4, 32):
        options = BeamSearchOptions(beam_width=beam, n_best=5)
        for hyp in BeamSearchDecoder(TOKENS, options)(log_probs, [25])[0]:
            assert hyp.score <= _ctc_log_prob(log_probs[0], hyp.tokens) + 1e-6


def test_heap_keeps_the_largest():
    rng = np.random.default_rng(0)
    for k in (1, 3, 8):
        values = rng.normal(size=40)
        heap, n = np.empty(k), 0
        for v in values:
            n = _heap_push(heap, n, v)
        assert n == k and heap[0] == np.sort(values)[-k]


# ---------------------------------------------------------------------------------------------
# Beam search with an LM


def _cat_or_car(p_t=0.6):
    """Acoustics for "cat" vs "car": the last letter is t with p_t, r with 1 - p_t."""
    tokens = ["<blank>", "|", "a", "c", "r", "t"]
    frames = [{3: 1.0}, {0: 1.0}, {2: 1.0}, {0: 1.0}, {5: p_t, 4: 1 - p_t}, {0: 1.0}]
    probs = np.full((len(frames), len(tokens)), 1e-4)
    for t, dist in enumerate(frames):
        for k, p in dist.items():
            probs[t, k] = p
    return tokens, np.log(probs / probs.sum(-1, keepdims=True))[None].astype(np.float32)


def test_lm_changes_the_result():
    tokens, log_probs = _cat_or_car()
    lm = train_ngram(["car"] * 20 + ["cat"] + ["a car"] * 5, order=2)
    no_lm = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=8))(log_probs, [6])[0][0]
    assert no_lm.text == "cat"
    with_lm = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=8, alpha=1.0), lm)
    assert with_lm(log_probs, [6])[0][0].text == "car"
    weak = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=8, alpha=0.01), lm)
    assert weak(log_probs, [6])[0][0].text == "cat"


def test_lm_score_is_acoustic_plus_weighted_lm():
    tokens, log_probs = _cat_or_car()
    lm = train_ngram(["car"] * 20 + ["cat"], order=2)
    alpha, beta = 0.7, 0.3
    options = BeamSearchOptions(beam_width=16, n_best=2, alpha=alpha, beta=beta, **EXACT)
    for hyp in BeamSearchDecoder(tokens, options, lm)(log_probs, [6])[0]:
        words = hyp.text.split()
        expected = (_ctc_log_prob(log_probs[0], hyp.tokens)
                    + alpha * math.log(10) * lm.sentence_log10(words) + beta * len(words))
        # equal up to the tiny mass of the alignments the beam dropped
        assert expected - 1e-3 < hyp.score <= expected + 1e-9


def test_vocab_only_spells_lm_words():
    tokens, log_probs = _cat_or_car(p_t=0.9)
    lm = train_ngram(["car"] * 2 + ["a"], order=2)
    options = BeamSearchOptions(beam_width=8, alpha=0.1, vocab_only=True)
    assert BeamSearchDecoder(tokens, options, lm)(log_probs, [6])[0][0].text == "car"


def test_lm_needs_a_word_separator():
    with pytest.raises(ValueError, match="separator"):
        BeamSearchDecoder(["<blank>", "a"], BeamSearchOptions(), train_ngram(["a"], 1))


# ---------------------------------------------------------------------------------------------
# The compiled search against a plain reference


def _reference_search(log_probs, tokens, o, lm):
    """The same search written plainly: a dict of CTC states, LM scores recomputed from each
    prefix's text, no bounds or early exits. log_probs [T, V]; returns [(tokens, score,
    acoustic score, ln p_LM)], distinct texts."""
    ln10 = math.log(10)
    hot = dict(o.hotwords)
    vocab = {w for w in (lm.vocab if lm else []) if w not in ("<s>", "</s>", "<unk>")
             and set(w) <= set(tokens)}
    unk_uni = lm.ngrams[("<unk>",)][0] if lm else 0.0

    def unigram(word):  # alpha ln p_unigram of a lexicon word (an LM word or a hotword)
        if lm is None:
            return 0.0
        return o.alpha * ln10 * (lm.ngrams[(word,)][0] if word in vocab else unk_uni)

    def word_gain(state, word):  # (gain, log10 p_LM, state, allowed) when `word` ends
        if word not in vocab and word not in hot and o.vocab_only and lm is not None:
            return 0.0, 0.0, state, False
        if lm is None:
            return hot.get(word, 0.0), 0.0, state, True
        log10_prob, state = lm.score_word(state, word)
        extra = 0.0 if word in vocab or word in hot else o.unk_score
        gain = o.alpha * ln10 * log10_prob + o.beta + extra + hot.get(word, 0.0)
        return gain, log10_prob, state, True

    def lm_info(prefix):  # (lm score of full words, look-ahead, state, partial word, log10 LM)
        text = "".join(tokens[k] for k in prefix)
        *full, partial = text.split("|")
        state, score, log10_lm = (lm.begin_state() if lm else None), 0.0, 0.0
        for word in full:
            if word:
                gain, log10_prob, state, ok = word_gain(state, word)
                if not ok:
                    return None
                score += gain
                log10_lm += log10_prob
        if not partial:
            return score, 0.0, state, partial, log10_lm
        # the best the partial word can become: a lexicon word (a hotword's share of its
        # weight: the part spelled so far), or without an LM any word (0)
        starts = [unigram(w) + hot.get(w, 0.0) * len(partial) / len(w)
                  for w in vocab | set(hot) if w.startswith(partial)]
        if lm is None:
            return score, max(starts + [0.0]), state, partial, log10_lm
        if not starts and o.vocab_only:
            return None
        look = max(starts) if starts else o.alpha * ln10 * unk_uni + o.unk_score
        return score, look, state, partial, log10_lm

    states = {((), 1): 0.0}  # (prefix, ends in blank) -> log prob
    for lp in np.asarray(log_probs, dtype=np.float64):
        best_c = 1 + int(np.argmax(lp[1:]))
        cands = [c for c in range(1, len(lp)) if lp[c] >= o.token_min_log_prob]
        if o.token_top_k:
            cands = sorted(cands, key=lambda c: -lp[c])[:o.token_top_k]
        if lp[best_c] >= lp[0] and best_c not in cands:
            cands.append(best_c)
        new: dict = {}

        def add(key, value, new=new):
            new[key] = np.logaddexp(new[key], value) if key in new else value

        for (prefix, blank_end), value in states.items():
            last = prefix[-1] if prefix else -1
            add((prefix, 1), value + lp[0])
            if not blank_end:
                add((prefix, 0), value + lp[last])
            for c in cands:
                if c == last and not blank_end:
                    continue
                if lm_info(prefix + (c,)) is not None:
                    add((prefix + (c,), 0), value + lp[c])
        rank = {k: v + sum(lm_info(k[0])[:2]) for k, v in new.items()}
        ordered = sorted(rank.values(), reverse=True)
        cutoff = max(ordered[0] - o.beam_threshold, ordered[min(o.beam_width, len(ordered)) - 1])
        states = {k: v for k, v in new.items() if rank[k] >= cutoff}
    finals: dict = {}
    for (prefix, _), value in states.items():
        finals[prefix] = np.logaddexp(finals[prefix], value) if prefix in finals else value
    results = []
    for prefix, value in finals.items():
        score, _, state, partial, log10_lm = lm_info(prefix)
        if partial:
            gain, log10_prob, state, ok = word_gain(state, partial)
            score += gain if ok else -math.inf
            log10_lm += log10_prob
        if lm is not None and o.lm_eos:
            log10_prob = lm.score_word(state, "</s>")[0]
            score += o.alpha * ln10 * log10_prob
            log10_lm += log10_prob
        results.append((prefix, value + score, value, ln10 * log10_lm))
    results.sort(key=lambda r: -r[1])
    by_text = {}  # the best prefix of each text
    for r in results:
        by_text.setdefault(ids_to_text(r[0], tokens), r)
    results = list(by_text.values())
    return ([r for r in results if r[1] > -math.inf] or results[:1])[:o.n_best]


@pytest.mark.parametrize("seed", range(16))
def test_compiled_search_equals_reference(seed):
    rng = np.random.default_rng(seed)
    V, T = 3 + seed % 4, 8 + seed
    tokens = TOKENS[:V]
    lm = FUZZ_LM if seed % 2 else None
    options = BeamSearchOptions(
        beam_width=int(rng.integers(1, 10)), n_best=3, token_top_k=int(rng.integers(0, 3)),
        token_min_log_prob=float(rng.choice([-math.inf, -4.0, -2.0])),
        beam_threshold=float(rng.choice([math.inf, 6.0])), alpha=1.2, beta=0.4,
        vocab_only=bool(seed % 4 == 3),
    )
    log_probs = _random_log_probs(seed, 1, T, V, peaky=1.5)[0].numpy()
    ours = BeamSearchDecoder(tokens, options, lm)(log_probs[None], [T])[0]
    expected = _reference_search(log_probs, tokens, options, lm)
    if expected[0][1] == -math.inf:  # no prefix ends in an LM word (vocab_only): any will do
        assert [h.score for h in ours] == [-math.inf]
        return
    assert [h.tokens for h in ours] == [r[0] for r in expected]
    assert [h.score for h in ours] == pytest.approx([r[1] for r in expected], abs=1e-4)
    assert [h.acoustic_score for h in ours] == pytest.approx([r[2] for r in expected], abs=1e-4)
    assert [h.lm_score for h in ours] == pytest.approx([r[3] for r in expected], abs=1e-4)


@pytest.mark.parametrize("seed", range(16, 28))
def test_compiled_search_equals_reference_with_hotwords(seed):
    rng = np.random.default_rng(seed)
    V, T = 3 + seed % 4, 8 + seed % 10
    tokens = TOKENS[:V]
    letters = tokens[2:]
    hotwords = tuple(("".join(rng.choice(letters, int(rng.integers(1, 4)))),
                      float(rng.choice([-2.0, 1.5, 4.0]))) for _ in range(2))
    options = BeamSearchOptions(
        beam_width=int(rng.integers(1, 10)), n_best=3, token_top_k=int(rng.integers(0, 3)),
        beam_threshold=float(rng.choice([math.inf, 6.0])), alpha=1.2, beta=0.4,
        vocab_only=bool(seed % 4 == 3), hotwords=hotwords,
    )
    lm = FUZZ_LM if seed % 2 else None
    log_probs = _random_log_probs(seed, 1, T, V, peaky=1.5)[0].numpy()
    ours = BeamSearchDecoder(tokens, options, lm)(log_probs[None], [T])[0]
    expected = _reference_search(log_probs, tokens, options, lm)
    if expected[0][1] == -math.inf:
        assert [h.score for h in ours] == [-math.inf]
        return
    assert [h.tokens for h in ours] == [r[0] for r in expected]
    assert [h.score for h in ours] == pytest.approx([r[1] for r in expected], abs=1e-4)
    assert [h.lm_score for h in ours] == pytest.approx([r[3] for r in expected], abs=1e-4)


# ---------------------------------------------------------------------------------------------
# Scores apart, N-best lists of texts


def test_defaults_in_one_place():
    o = BeamSearchOptions()
    assert (o.beam_width, o.alpha, o.beta, o.unk_score) == (
        DEFAULT_BEAM, DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_UNK_SCORE)


@pytest.mark.parametrize("use_lm", [False, True])
def test_scores_add_up(use_lm):
    # score = acoustic + alpha * lm + bonus, with each part what it says: the acoustic part the
    # CTC probability, the LM part the sentence's ln p_LM, the bonus beta
    # per word (+ unk_score per unknown word) + the hotword weights
    tokens, log_probs = _cat_or_car()
    lm = train_ngram(["car"] * 20 + ["cat", "a car"], order=2) if use_lm else None
    alpha, beta, unk = 0.7, 0.3, -2.0
    options = BeamSearchOptions(beam_width=64, n_best=4, alpha=alpha, beta=beta, unk_score=unk,
                                hotwords=(("cat", 1.5),), **EXACT)
    nbest = BeamSearchDecoder(tokens, options, lm)(log_probs, [6])[0]
    assert len(nbest) == 4
    for hyp in nbest:
        words = hyp.text.split()
        assert hyp.score == pytest.approx(
            hyp.acoustic_score + alpha * hyp.lm_score + hyp.bonus_score, abs=1e-9)
        ctc = _ctc_log_prob(log_probs[0], hyp.tokens)  # up to the paths the beam dropped
        assert ctc - 1e-3 < hyp.acoustic_score <= ctc + 1e-9
        hot = 1.5 * words.count("cat")
        if lm is None:
            assert hyp.lm_score == 0.0 and hyp.bonus_score == pytest.approx(hot)
        else:
            assert hyp.lm_score == pytest.approx(math.log(10) * lm.sentence_log10(words))
            n_unk = sum(w not in lm.vocab and w != "cat" for w in words)
            assert hyp.bonus_score == pytest.approx(beta * len(words) + unk * n_unk + hot)


def test_greedy_and_no_lm_scores_are_acoustic():
    log_probs = _random_log_probs(1, 2, 15, 6)
    for decoder in (GreedyDecoder(TOKENS), BeamSearchDecoder(TOKENS, BeamSearchOptions(n_best=3))):
        for nbest in decoder(log_probs, [15, 9]):
            for hyp in nbest:
                assert (hyp.score, hyp.lm_score, hyp.bonus_score) == (hyp.acoustic_score, 0, 0)


def test_nbest_texts_distinct_best_first():
    # "a|b" and "a||b" (or "|a|b") are one text: the N-best list holds N different texts
    log_probs = _random_log_probs(7, 1, 14, 4, peaky=1.0)
    tokens = TOKENS[:4]
    for lm in (None, FUZZ_LM):
        decoder = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=32, n_best=6), lm)
        nbest = decoder(log_probs, [14])[0]
        texts = [h.text for h in nbest]
        assert len(nbest) == 6 and len(set(texts)) == 6
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        one = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=32, n_best=1), lm)
        assert one(log_probs, [14])[0] == nbest[:1]


# ---------------------------------------------------------------------------------------------
# Fuzzed invariants


@settings(max_examples=60, deadline=None)
@given(
    B=st.integers(1, 3), T=st.integers(0, 25), V=st.integers(2, 6), seed=st.integers(0, 2**16),
    beam=st.integers(1, 12), n_best=st.integers(1, 4), use_lm=st.booleans(),
    peaky=st.floats(0.1, 5.0), top_k=st.integers(0, 3), vocab_only=st.booleans(),
)
def test_fuzz_invariants(B, T, V, seed, beam, n_best, use_lm, peaky, top_k, vocab_only):
    tokens = TOKENS[:V]
    use_lm = use_lm and V >= 3
    rng = np.random.default_rng(seed)
    log_probs = _random_log_probs(seed, B, T, V, peaky)
    out_lens = rng.integers(0, T + 1, size=B)
    options = BeamSearchOptions(beam_width=beam, n_best=n_best, token_top_k=top_k,
                                alpha=0.8, beta=0.5, vocab_only=vocab_only)
    decoder = BeamSearchDecoder(tokens, options, FUZZ_LM if use_lm else None)
    results = decoder(log_probs, out_lens)
    assert len(results) == B
    padded = log_probs.clone()
    for b, nbest in enumerate(results):
        assert 1 <= len(nbest) <= n_best
        scores = [h.score for h in nbest]
        assert scores == sorted(scores, reverse=True)
        assert len({h.tokens for h in nbest}) == len(nbest)
        for h in nbest:
            assert all(0 < k < V for k in h.tokens)
            assert len(h.frames) == len(h.tokens)
            assert all(a < b for a, b in zip(h.frames, h.frames[1:]))
            assert all(0 <= f < out_lens[b] for f in h.frames)
            assert h.text == ids_to_text(h.tokens, tokens)
        padded[b, out_lens[b]:] = torch.randn(T - out_lens[b], V)  # garbage is never read
    assert decoder(padded.numpy(), out_lens) == results


# ---------------------------------------------------------------------------------------------
# Against pyctcdecode


def test_agrees_with_pyctcdecode_without_lm():
    pyctcdecode = pytest.importorskip("pyctcdecode")
    tokens = ["<blank>", "a", "b", "c"]
    theirs = pyctcdecode.build_ctcdecoder(["", "a", "b", "c"])
    ours = BeamSearchDecoder(tokens, BeamSearchOptions(beam_width=64, **EXACT))
    same = 0
    for seed in range(20):
        log_probs = _random_log_probs(seed, 1, 12, 4, peaky=1.5)[0]
        text = theirs.decode(log_probs.numpy(), beam_width=64, beam_prune_logp=-1000,
                             token_min_logp=-1000)
        hyp = ours(log_probs[None], [12])[0][0]
        their_ids = [tokens.index(ch) for ch in text]
        # ours is at least as probable under the exact CTC objective, and usually the same
        assert _ctc_log_prob(log_probs, hyp.tokens) >= _ctc_log_prob(log_probs, their_ids) - 1e-6
        same += hyp.text == text
    assert same >= 18
