"""The compiled prefix beam search behind `asr.decoding.BeamSearchDecoder` (numba).

What the search computes (CTC states, LM fusion, look-ahead, hotwords, scores) is told in
asr/decoding.py, which makes decoders and imports this module only when a beam search is made:
numba takes seconds to import, and greedy decoding (the ONNX Runtime path's default) needs none
of it.

Speed: the whole search for one utterance is one numba function over flat arrays (prefix tree,
hash tables for children, the trie and the n-gram tables; no Python objects per hypothesis).
Each frame, the states that stay put are scored first; they bound the beam's cutoff from below
(a min-heap of the beam_width best scores seen), and a new prefix has a single parent, so its
score is exact before it exists: prefixes are expanded best first, tokens most likely first
(selected on demand), a prefix's token loop stops at the first token that cannot make the beam,
and a prefix is only created when it does. The result is the same as scoring every extension
(tests/test_decoding.py checks it against a plain reference search).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from asr.decoding import LN10, WORD_SEP, BeamSearchOptions
from asr.lm import (
    BOS,
    EOS,
    UNK,
    NgramLM,
    NgramTables,
    table_build,
    table_find,
    table_insert,
    tables_score_word,
)

# the two CTC states of a prefix: its paths end in its last token, or in a blank after it
END_TOKEN, END_BLANK = 0, 1
NO_FRAME = -2  # `in_beam` of a node that has never been in the beam


@njit(cache=True)
def _grown(a, size, fill):
    out = np.full(size, fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def _frame_candidates(lp, top_k, min_log_prob, cands):
    """Fill cands with the non-blank tokens to try at this frame (lp [V]); return how many."""
    V = lp.shape[0]
    n = 0
    if V < 2:
        return 0
    best = 1
    for c in range(1, V):
        if lp[c] > lp[best]:
            best = c
        if lp[c] >= min_log_prob:
            cands[n] = c
            n += 1
    if top_k > 0 and n > top_k:
        order = np.argsort(-lp[cands[:n]])
        kept = cands[:n][order[:top_k]].copy()
        cands[:top_k] = kept
        n = top_k
    if lp[best] >= lp[0]:  # the frame's argmax must be tried
        for i in range(n):
            if cands[i] == best:
                return n
        cands[n] = best
        n += 1
    return n


@njit(cache=True)
def _heap_push(heap, n, value):
    """Keep the len(heap) largest values seen in a min-heap of n entries; returns n."""
    if n < heap.shape[0]:
        i = n
        n += 1
    elif value > heap[0]:
        i = 0  # replace the smallest, sift down
        while True:
            child = 2 * i + 1
            if child >= n:
                break
            if child + 1 < n and heap[child + 1] < heap[child]:
                child += 1
            if heap[child] >= value:
                break
            heap[i] = heap[child]
            i = child
        heap[i] = value
        return n
    else:
        return n
    while i > 0 and heap[(i - 1) >> 1] > value:  # sift up
        heap[i] = heap[(i - 1) >> 1]
        i = (i - 1) >> 1
    heap[i] = value
    return n


@njit(cache=True, inline="always")
def _logaddexp(a, b):
    if a < b:
        a, b = b, a
    if b == -np.inf:
        return a
    return a + math.log1p(math.exp(b - a))


@njit(cache=True, inline="always")
def _add(idx, value, t, next_lp, stamp, touched, n_touched):
    """next_lp[idx] log-add= value, starting afresh at each frame t; returns n_touched."""
    if stamp[idx] != t:
        stamp[idx] = t
        next_lp[idx] = value
        touched[n_touched] = idx
        return n_touched + 1
    next_lp[idx] = _logaddexp(next_lp[idx], value)
    return n_touched


class WordScorer(NamedTuple):
    """Everything the search needs to score words, as arrays and numbers for numba.

    The trie spells the lexicon, the LM vocabulary and the hotwords, in tokens (key = node * V +
    token -> child node; node 0 is the root, the empty partial word; -1 stands for a partial
    word that no lexicon word starts with). Until a word ends, a prefix is ranked with a
    look-ahead for its partial word, the best alpha * ln p_unigram (+ hotword share) of the
    words it can still become (flashlight's "smearing"); the look-ahead is replaced by the real
    n-gram score (+ hotword weight) when the word ends.
    """

    trie_keys: np.ndarray  # int64 [capacity], hash table keys
    trie_vals: np.ndarray  # int32 [capacity], child node
    trie_word: np.ndarray  # int32 [nodes], LM word id ending at the node, or -1
    trie_hot: np.ndarray  # bool [nodes], a hotword ends at the node
    trie_bonus: np.ndarray  # float64 [nodes], the weight of the hotword ending there, else 0
    lookahead: np.ndarray  # float64 [nodes], see above; 0 at the root
    child_bound: np.ndarray  # float64 [nodes], >= the look-ahead of any token appended
    oov_lookahead: float  # look-ahead of a partial word outside the lexicon
    unk_score: float  # added when a word outside the vocabulary ends (with an LM; else 0)
    alpha: float
    beta: float  # with an LM; 0 without
    use_lm: bool
    lm_eos: bool
    vocab_only: bool
    sep: int  # token id of `|`, -1 if none
    lm: NgramTables


@njit(cache=True, inline="always")
def _partial_node(ws, wn, c, V):
    """Trie node after appending token c to the partial word at node wn."""
    if wn < 0:
        return -1
    return table_find(ws.trie_keys, ws.trie_vals, wn * V + c)


@njit(cache=True, inline="always")
def _lookahead(ws, wn):
    return ws.lookahead[wn] if wn >= 0 else ws.oov_lookahead


@njit(cache=True, inline="always")
def _end_word(ws, state, wn):
    """The partial word at trie node wn != 0 ends: (score to add, its log10 p_LM, LM state
    after the word, whether the word is allowed at all)."""
    word, hot, bonus = -1, False, 0.0
    if wn > 0:
        word, hot, bonus = ws.trie_word[wn], ws.trie_hot[wn], ws.trie_bonus[wn]
    if word < 0 and not hot and ws.vocab_only:
        return 0.0, 0.0, state, False
    if not ws.use_lm:
        return bonus, 0.0, state, True
    penalty = 0.0
    if word < 0:
        word, penalty = ws.lm.unk, (0.0 if hot else ws.unk_score)
    log10_prob, state = tables_score_word(ws.lm, state, word)
    return ws.alpha * LN10 * log10_prob + ws.beta + penalty + bonus, log10_prob, state, True


@njit(cache=True)
def prefix_beam_search(log_probs, n_frames, beam_width, n_best, top_k, min_log_prob,
                        beam_threshold, ws):
    """One utterance, log_probs [T, V] float32, frames [0, n_frames) read; ws a WordScorer.

    Each frame: (1) the states of the beam's prefixes stay (blank, repeat); (2) a prefix in the
    beam that extends another one in the beam by a candidate token gets that path merged in;
    the states so far bound the beam's cutoff from below, so (3) a new prefix is only made
    when its score (known exactly: one parent, one path) could make the beam; (4) pruning.

    Returns (tokens int32 [sum U], frames int32 [sum U], offsets int64 [N + 1], scores [N],
    acoustic scores [N], LM log10 probs [N]) for the N <= n_best best prefixes: prefix k is
    tokens[offsets[k]:offsets[k + 1]].
    """
    V = log_probs.shape[1]
    # Prefix tree: node 0 is the empty prefix; children are found through a hash table
    # (node * V + token -> child), rebuilt twice as large when half full.
    cap = 1024
    parent = np.empty(cap, np.int32)
    token = np.empty(cap, np.int32)
    frame = np.empty(cap, np.int32)
    child_keys = np.full(4 * cap, -1, np.int64)
    child_vals = np.empty(4 * cap, np.int32)
    lm_state = np.zeros(cap, np.int32)  # n-gram context after the prefix's last full word
    word_node = np.zeros(cap, np.int32)  # trie node of the current partial word
    lm_score = np.zeros(cap, np.float64)  # LM + word bonus of the prefix's full words
    lm_log10 = np.zeros(cap, np.float64)  # their log10 p_LM alone
    lm_rank = np.zeros(cap, np.float64)  # lm_score + look-ahead of the partial word
    in_beam = np.full(cap, NO_FRAME, np.int32)  # last frame the node was in the beam
    node_rank = np.empty(cap, np.float64)  # scratch: score of a beam node, to sort by
    cur_lp = np.full(2 * cap, -np.inf)  # per state (node * 2 + END_*) of a beam node
    next_lp = np.empty(2 * cap, np.float64)  # per state, at the frame being decoded
    stamp = np.full(2 * cap, -1, np.int32)  # frame next_lp[state] was last written
    parent[0], token[0], frame[0] = -1, -1, -1
    lm_state[0] = ws.lm.bos_state if ws.use_lm else 0
    n_nodes = 1

    beam_state = np.empty(beam_width, np.int64)  # the kept states, node * 2 + END_*
    beam_lp = np.empty(beam_width, np.float64)  # their acoustic log probs
    beam_nodes = np.empty(beam_width, np.int64)  # their distinct nodes
    beam_state[0], beam_lp[0], beam_nodes[0] = END_BLANK, 0.0, 0
    cur_lp[END_BLANK] = 0.0
    in_beam[0] = -1
    n_beam = n_beam_nodes = 1
    touched = np.empty(beam_width * (V + 2), np.int64)
    scores = np.empty(beam_width * (V + 2), np.float64)
    heap = np.empty(beam_width, np.float64)
    cands = np.empty(V + 1, np.int32)
    is_cand = np.zeros(V, np.bool_)

    for t in range(n_frames):
        lp = log_probs[t]
        n_cands = _frame_candidates(lp, top_k, min_log_prob, cands)
        for j in range(n_cands):
            is_cand[cands[j]] = True
        if n_nodes + n_beam_nodes * n_cands > cap:
            new_cap = max(2 * cap, n_nodes + n_beam_nodes * n_cands)
            parent = _grown(parent, new_cap, 0)
            token = _grown(token, new_cap, 0)
            frame = _grown(frame, new_cap, 0)
            lm_state = _grown(lm_state, new_cap, 0)
            word_node = _grown(word_node, new_cap, 0)
            lm_score = _grown(lm_score, new_cap, 0.0)
            lm_log10 = _grown(lm_log10, new_cap, 0.0)
            lm_rank = _grown(lm_rank, new_cap, 0.0)
            in_beam = _grown(in_beam, new_cap, NO_FRAME)
            node_rank = _grown(node_rank, new_cap, 0.0)
            cur_lp = _grown(cur_lp, 2 * new_cap, -np.inf)
            next_lp = _grown(next_lp, 2 * new_cap, 0.0)
            stamp = _grown(stamp, 2 * new_cap, -1)
            cap = new_cap
        if 2 * (n_nodes + n_beam_nodes * n_cands) > child_keys.shape[0]:
            child_keys, child_vals = table_build(
                parent[1:n_nodes].astype(np.int64) * V + token[1:n_nodes],
                np.arange(1, n_nodes, dtype=np.int32), 4 * cap)

        # (1) stay: blank after either state, repeat of the last token after the token state
        n_touched = 0
        for i in range(n_beam_nodes):
            node = beam_nodes[i]
            pb, pnb = cur_lp[2 * node + END_BLANK], cur_lp[2 * node + END_TOKEN]
            n_touched = _add(2 * node + END_BLANK, _logaddexp(pb, pnb) + lp[0], t, next_lp,
                             stamp, touched, n_touched)
            if pnb > -np.inf:
                n_touched = _add(2 * node + END_TOKEN, pnb + lp[token[node]], t, next_lp,
                                 stamp, touched, n_touched)
        # (2) one beam prefix extended into another: merge that path into the child's state
        for i in range(n_beam_nodes):
            node = beam_nodes[i]
            p, c = parent[node], token[node]
            if p >= 0 and in_beam[p] == t - 1 and is_cand[c]:
                pb, pnb = cur_lp[2 * p + END_BLANK], cur_lp[2 * p + END_TOKEN]
                value = (pb if c == token[p] else _logaddexp(pb, pnb)) + lp[c]
                if value > -np.inf:
                    n_touched = _add(2 * node + END_TOKEN, value, t, next_lp, stamp, touched,
                                     n_touched)
        # the beam's cutoff: the beam_width-th best score (a min-heap of the best) or
        # beam_threshold below the best; it only rises from here
        best, n_heap = -np.inf, 0
        for k in range(n_touched):
            score = next_lp[touched[k]] + lm_rank[touched[k] >> 1]
            best = max(best, score)
            n_heap = _heap_push(heap, n_heap, score)
        cutoff = max(best - beam_threshold, heap[0] if n_heap == beam_width else -np.inf)

        # (3) new prefixes: a beam prefix + a candidate token, made only if it can make the
        # beam. Best prefixes and most likely tokens first, so the cutoff rises early and the
        # token loop can stop at the first token that cannot make it.
        for i in range(n_beam_nodes):
            node = beam_nodes[i]
            node_rank[i] = -(_logaddexp(cur_lp[2 * node], cur_lp[2 * node + 1]) + lm_rank[node])
        order = np.argsort(node_rank[:n_beam_nodes])  # best prefixes first
        beam_nodes[:n_beam_nodes] = beam_nodes[:n_beam_nodes][order]
        n_sorted = 0  # cands[:n_sorted] are the most likely, in order (selection on demand)
        for i in range(n_beam_nodes):
            node = beam_nodes[i]
            pb, pnb = cur_lp[2 * node + END_BLANK], cur_lp[2 * node + END_TOKEN]
            total = _logaddexp(pb, pnb)
            last, wn = token[node], word_node[node]
            # upper bounds of the child's lm_rank (a word's LM score is <= 0)
            bound_char = lm_score[node] + (ws.child_bound[wn] if wn >= 0 else ws.oov_lookahead)
            bound_sep = lm_score[node]
            if wn != 0:
                bound_sep += ws.beta + max(0.0, ws.unk_score) + (ws.trie_bonus[wn] if wn > 0
                                                                 else 0.0)
            bound = max(bound_char, bound_sep)
            for j in range(n_cands):
                if j == n_sorted:
                    top = j
                    for q in range(j + 1, n_cands):
                        if lp[cands[q]] > lp[cands[top]]:
                            top = q
                    cands[j], cands[top] = cands[top], cands[j]
                    n_sorted += 1
                c = cands[j]
                if total + lp[c] + bound < cutoff:
                    break
                value = (pb if c == last else total) + lp[c]
                if value == -np.inf or value + (bound_sep if c == ws.sep else bound_char) < cutoff:
                    continue
                child = table_find(child_keys, child_vals, node * V + c)
                if child < 0:  # a new prefix: carry the LM forward, make it if it is kept
                    child_wn, state, lm_part = wn, lm_state[node], lm_score[node]
                    log10_part = lm_log10[node]
                    if c == ws.sep:
                        if wn != 0:
                            gain, log10_prob, state, ok = _end_word(ws, state, wn)
                            if not ok:
                                continue
                            lm_part += gain
                            log10_part += log10_prob
                        child_wn = 0
                    else:
                        child_wn = _partial_node(ws, wn, c, V)
                        if child_wn < 0 and ws.vocab_only:
                            continue
                    rank = lm_part + _lookahead(ws, child_wn)
                    if value + rank < cutoff:
                        continue
                    child = n_nodes
                    n_nodes += 1
                    parent[child], token[child] = node, c
                    table_insert(child_keys, child_vals, node * V + c, child)
                    word_node[child], lm_state[child], lm_score[child] = child_wn, state, lm_part
                    lm_log10[child] = log10_part
                    lm_rank[child] = rank
                    in_beam[child] = NO_FRAME
                elif in_beam[child] == t - 1:
                    continue  # merged in (2)
                score = value + lm_rank[child]
                if score < cutoff:
                    continue
                if in_beam[child] == NO_FRAME:
                    frame[child] = t  # the token's frame: when the prefix first makes the beam
                n_touched = _add(2 * child + END_TOKEN, value, t, next_lp, stamp, touched,
                                 n_touched)
                best = max(best, score)
                n_heap = _heap_push(heap, n_heap, score)
                cutoff = max(best - beam_threshold, heap[0] if n_heap == beam_width else -np.inf)

        # (4) keep the states at or above the cutoff (at most beam_width: ties)
        for k in range(n_touched):
            scores[k] = next_lp[touched[k]] + lm_rank[touched[k] >> 1]
        n_beam = n_beam_nodes = 0
        for k in range(n_touched):
            if scores[k] >= cutoff and n_beam < beam_width:
                state_id = touched[k]
                node = state_id >> 1
                beam_state[n_beam], beam_lp[n_beam] = state_id, next_lp[state_id]
                n_beam += 1
                if in_beam[node] != t:
                    in_beam[node] = t
                    beam_nodes[n_beam_nodes] = node
                    n_beam_nodes += 1
                    cur_lp[2 * node], cur_lp[2 * node + 1] = -np.inf, -np.inf
        for k in range(n_beam):
            cur_lp[beam_state[k]] = beam_lp[k]
        for j in range(n_cands):
            is_cand[cands[j]] = False

    # -- end of utterance: merge each prefix's two states, end its last word, score </s>
    finals = np.empty(n_beam, np.int64)
    final_scores = np.empty(n_beam, np.float64)
    final_log10 = np.empty(n_beam, np.float64)
    n_final = 0
    for i in range(n_beam):
        n_final = _add(beam_state[i] & ~1, beam_lp[i], n_frames, next_lp, stamp, finals,
                       n_final)
    for k in range(n_final):
        node = finals[k] >> 1
        score, log10_lm = lm_score[node], lm_log10[node]
        wn, state = word_node[node], lm_state[node]
        if wn != 0:
            gain, log10_prob, state, ok = _end_word(ws, state, wn)
            score += gain if ok else -np.inf
            log10_lm += log10_prob
        if ws.use_lm and ws.lm_eos:
            log10_prob = tables_score_word(ws.lm, state, ws.lm.eos)[0]
            score += ws.alpha * LN10 * log10_prob
            log10_lm += log10_prob
        final_scores[k] = next_lp[finals[k]] + score
        final_log10[k] = log10_lm
    order = np.argsort(-final_scores[:n_final])[:n_best]

    offsets = np.zeros(order.shape[0] + 1, np.int64)
    for k in range(order.shape[0]):
        length, node = 0, finals[order[k]] >> 1
        while node > 0:
            length += 1
            node = parent[node]
        offsets[k + 1] = offsets[k] + length
    out_tokens = np.empty(offsets[-1], np.int32)
    out_frames = np.empty(offsets[-1], np.int32)
    out_scores = np.empty(order.shape[0], np.float64)
    out_acoustic = np.empty(order.shape[0], np.float64)
    out_log10 = np.empty(order.shape[0], np.float64)
    for k in range(order.shape[0]):
        node = finals[order[k]] >> 1
        out_scores[k] = final_scores[order[k]]
        out_acoustic[k] = next_lp[finals[order[k]]]
        out_log10[k] = final_log10[order[k]]
        pos = offsets[k + 1] - 1
        while node > 0:
            out_tokens[pos], out_frames[pos] = token[node], frame[node]
            pos -= 1
            node = parent[node]
    return out_tokens, out_frames, offsets, out_scores, out_acoustic, out_log10


# ---------------------------------------------------------------------------------------------
# Beam search: the decoder


def _word_trie(lm: NgramLM | None, word_ids: dict[str, int], tokens: Sequence[str],
               options: BeamSearchOptions) -> tuple:
    """The WordScorer's trie arrays (trie_keys .. child_bound) over the lexicon: the LM words
    spelled in tokens (words with a character that is not a token, or with `|`, cannot be
    spelled and are left out) and the hotwords (which must be spellable: ValueError)."""
    token_id = {tok: i for i, tok in enumerate(tokens)}
    V = len(tokens)
    hotwords = dict(options.hotwords)
    lexicon: dict[str, tuple[list[int], float]] = {}  # word -> (token ids, alpha ln p_unigram)
    for word in (word_ids if lm is not None else ()):
        ids = [token_id.get(ch, -1) for ch in word]
        if word in (BOS, EOS, UNK) or -1 in ids or token_id.get(WORD_SEP) in ids:
            continue
        lexicon[word] = ids, options.alpha * LN10 * lm.ngrams[(word,)][0]
    for word in hotwords:
        bad = [ch for ch in word if ch not in token_id]
        if bad or not word or WORD_SEP in word:
            raise ValueError(f"hotword {word!r}: " + (f"{bad[0]!r} is not a token" if bad else
                             f"holds the word separator {WORD_SEP!r}" if word else "empty"))
        if word not in lexicon:  # outside the LM vocabulary: scored as <unk>
            unk = options.alpha * LN10 * lm.ngrams[(UNK,)][0] if lm is not None else 0.0
            lexicon[word] = [token_id[ch] for ch in word], unk
    children: dict[tuple[int, int], int] = {}
    trie_word, trie_hot, trie_bonus, lookahead = [-1], [False], [0.0], [0.0]
    for word, (ids, unigram) in lexicon.items():
        weight = hotwords.get(word, 0.0)
        node = 0
        for depth, c in enumerate(ids, 1):
            node = children.setdefault((node, c), len(trie_word))
            if node == len(trie_word):
                trie_word.append(-1)
                trie_hot.append(False)
                trie_bonus.append(0.0)
                lookahead.append(-np.inf)
            # the first `depth` of len(ids) tokens of a hotword: that share of its weight
            lookahead[node] = max(lookahead[node], unigram + weight * depth / len(ids))
        trie_word[node] = word_ids.get(word, -1) if lm is not None else -1
        if word in hotwords:
            trie_hot[node], trie_bonus[node] = True, weight
    lookahead = np.array(lookahead)
    if lm is None:  # any spelling is allowed and scores 0: the look-ahead is at least that
        lookahead = np.maximum(lookahead, 0.0)
    oov = _oov_lookahead(lm, options)
    child_bound = np.full(len(trie_word), -np.inf if options.vocab_only and lm is not None else oov)
    for (node, _), child in children.items():
        child_bound[node] = max(child_bound[node], lookahead[child])
    keys = np.array([n * V + c for n, c in children], dtype=np.int64)
    vals = np.array(list(children.values()), dtype=np.int32)
    return (*table_build(keys, vals), np.array(trie_word, dtype=np.int32),
            np.array(trie_hot, dtype=np.bool_), np.array(trie_bonus), lookahead, child_bound)


def _oov_lookahead(lm: NgramLM | None, options: BeamSearchOptions) -> float:
    """Look-ahead of a partial word that no lexicon word starts with."""
    if lm is None:
        return 0.0
    return options.alpha * LN10 * lm.ngrams[(UNK,)][0] + options.unk_score


def word_scorer(lm: NgramLM | None, tokens: Sequence[str], options: BeamSearchOptions
                ) -> WordScorer:
    """The search's view of the LM (None: acoustics and hotwords alone), the lexicon and the
    hotwords, for `tokens` (ValueError for an LM without `|` among them, or a hotword they
    cannot spell)."""
    sep = tokens.index(WORD_SEP) if WORD_SEP in tokens else -1
    if lm is not None and sep < 0:
        raise ValueError(f"an LM needs the word separator {WORD_SEP!r} among the tokens")
    tables, word_ids = (lm or NgramLM(1, {})).tables()
    use_lm = lm is not None
    return WordScorer(
        *_word_trie(lm, word_ids, tokens, options), _oov_lookahead(lm, options),
        options.unk_score if use_lm else 0.0, options.alpha if use_lm else 0.0,
        options.beta if use_lm else 0.0, use_lm, options.lm_eos,
        options.vocab_only and use_lm, sep, tables,
    )
