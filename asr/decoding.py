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
spelled in tokens, so the LM state of a prefix is two ints (n-gram context, trie node).

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
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from numba import njit

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

BLANK_ID = 0
BLANK = "<blank>"
WORD_SEP = "|"
LN10 = math.log(10.0)  # LM scores are log10; acoustic scores natural log

# the two CTC states of a prefix: its paths end in its last token, or in a blank after it
END_TOKEN, END_BLANK = 0, 1
NO_FRAME = -2  # `in_beam` of a node that has never been in the beam


@dataclass(frozen=True)
class Hypothesis:
    tokens: tuple[int, ...]  # token ids, blanks and repeats collapsed (may include `|`)
    text: str  # tokens as text: `|` -> space, words separated by single spaces
    score: float  # natural log: acoustic log prob (+ LM weight * LM log prob + word bonuses)
    frames: tuple[int, ...]  # frame at which each token was emitted, increasing


@dataclass(frozen=True)
class BeamSearchOptions:
    beam_width: int = 16  # CTC states (prefix, ends in blank or not) kept after each frame
    n_best: int = 1  # hypotheses returned per utterance, best first (at most beam_width)
    token_top_k: int = 0  # at most this many non-blank tokens extend prefixes per frame (0: all)
    token_min_log_prob: float = -10.0  # non-blank tokens below this log prob at a frame are not
    # tried; the frame's most likely token always is (so beam_width=1 is greedy search)
    beam_threshold: float = 30.0  # states scoring this much below the frame's best are dropped
    alpha: float = 0.5  # LM weight: alpha * ln p_LM(word | history) is added when a word ends
    beta: float = 0.0  # word insertion bonus, added per word (natural log; with or without LM)
    lm_eos: bool = True  # add alpha * ln p_LM(</s> | history) at the end of the utterance
    unk_score: float = -5.0  # with an LM: added to each word outside its vocabulary (natural
    # log, on top of alpha * ln p(<unk>)), and to the look-ahead of partial words that are
    vocab_only: bool = False  # with an LM: spell only words of its vocabulary (a lexicon decoder)


# ---------------------------------------------------------------------------------------------
# Shared helpers


def ids_to_text(ids: Sequence[int], tokens: Sequence[str]) -> str:
    """Token ids -> text: `|` becomes a space, runs of spaces collapse, ends are stripped."""
    return " ".join("".join(tokens[i] for i in ids).replace(WORD_SEP, " ").split())


def _as_numpy(log_probs, out_lens) -> tuple[np.ndarray, np.ndarray]:
    """log_probs [B, T, V] float32 C-contiguous, out_lens [B] int64, from torch or numpy."""
    if isinstance(log_probs, torch.Tensor):
        log_probs = log_probs.detach().to("cpu", torch.float32).numpy()
    if isinstance(out_lens, torch.Tensor):
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
            results.append([Hypothesis(
                tokens, ids_to_text(tokens, self.tokens), float(best_lp[b, :n_frames].sum()),
                tuple(frames.tolist()),
            )])
        return results


# ---------------------------------------------------------------------------------------------
# Beam search: numba kernel


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

    The trie spells the LM vocabulary in tokens (key = node * V + token -> child node; node 0 is
    the root, the empty partial word; -1 stands for a partial word that no LM word starts with).
    Until a word ends, a prefix is ranked with a look-ahead for its partial word, the best
    alpha * ln p_unigram of the words it can still become (flashlight's "smearing"); the
    look-ahead is replaced by the real n-gram score when the word ends.
    """

    trie_keys: np.ndarray  # int64 [capacity], hash table keys
    trie_vals: np.ndarray  # int32 [capacity], child node
    trie_word: np.ndarray  # int32 [nodes], LM word id ending at the node, or -1
    lookahead: np.ndarray  # float64 [nodes], alpha * ln max p_unigram below the node; 0 at root
    oov_lookahead: float  # look-ahead of a partial word outside the vocabulary
    unk_score: float  # added when a word outside the vocabulary ends (with an LM)
    alpha: float
    beta: float
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
    """The partial word at trie node wn != 0 ends: (score to add, LM state after the word,
    whether the word is allowed at all)."""
    word = ws.trie_word[wn] if wn > 0 else -1
    if word < 0 and ws.vocab_only:
        return 0.0, state, False
    if not ws.use_lm:
        return ws.beta, state, True
    penalty = 0.0
    if word < 0:
        word, penalty = ws.lm.unk, ws.unk_score
    log10_prob, state = tables_score_word(ws.lm, state, word)
    return ws.alpha * LN10 * log10_prob + ws.beta + penalty, state, True


@njit(cache=True)
def _prefix_beam_search(log_probs, n_frames, beam_width, n_best, top_k, min_log_prob,
                        beam_threshold, ws):
    """One utterance, log_probs [T, V] float32, frames [0, n_frames) read; ws a WordScorer.

    Each frame: (1) the states of the beam's prefixes stay (blank, repeat); (2) a prefix in the
    beam that extends another one in the beam by a candidate token gets that path merged in;
    the states so far bound the beam's cutoff from below, so (3) a new prefix is only made
    when its score (known exactly: one parent, one path) could make the beam; (4) pruning.

    Returns (tokens int32 [sum U], frames int32 [sum U], offsets int64 [N + 1], scores [N]) for
    the N <= n_best best prefixes: prefix k is tokens[offsets[k]:offsets[k + 1]].
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
            # upper bounds of the child's lm_rank: look-aheads only shrink down the trie, a
            # word's LM score is <= 0
            bound_char = lm_score[node] + max(_lookahead(ws, wn), ws.oov_lookahead)
            bound_sep = lm_score[node] + (0.0 if wn == 0 else ws.beta + max(0.0, ws.unk_score))
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
                    if c == ws.sep:
                        if wn != 0:
                            gain, state, ok = _end_word(ws, state, wn)
                            if not ok:
                                continue
                            lm_part += gain
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
    n_final = 0
    for i in range(n_beam):
        n_final = _add(beam_state[i] & ~1, beam_lp[i], n_frames, next_lp, stamp, finals,
                       n_final)
    for k in range(n_final):
        node = finals[k] >> 1
        score = next_lp[finals[k]] + lm_score[node]
        wn, state = word_node[node], lm_state[node]
        if wn != 0:
            gain, state, ok = _end_word(ws, state, wn)
            score += gain if ok else -np.inf
        if ws.use_lm and ws.lm_eos:
            score += ws.alpha * LN10 * tables_score_word(ws.lm, state, ws.lm.eos)[0]
        final_scores[k] = score
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
    for k in range(order.shape[0]):
        node = finals[order[k]] >> 1
        out_scores[k] = final_scores[order[k]]
        pos = offsets[k + 1] - 1
        while node > 0:
            out_tokens[pos], out_frames[pos] = token[node], frame[node]
            pos -= 1
            node = parent[node]
    return out_tokens, out_frames, offsets, out_scores


# ---------------------------------------------------------------------------------------------
# Beam search: the decoder


def _word_trie(lm: NgramLM | None, word_ids: dict[str, int], tokens: Sequence[str], alpha: float):
    """(trie hash keys, hash vals, word id per node, look-ahead per node) over the LM words
    spelled in tokens (see WordScorer). Words with a character that is not a token, or with
    `|`, cannot be spelled and are left out."""
    token_id = {tok: i for i, tok in enumerate(tokens)}
    V = len(tokens)
    children: dict[tuple[int, int], int] = {}
    trie_word, best_log10 = [-1], [0.0]
    for word, wid in (word_ids.items() if lm is not None else ()):
        ids = [token_id.get(ch, -1) for ch in word]
        if word in (BOS, EOS, UNK) or -1 in ids or token_id.get(WORD_SEP) in ids:
            continue
        log10_unigram = lm.ngrams[(word,)][0]
        node = 0
        for c in ids:
            node = children.setdefault((node, c), len(trie_word))
            if node == len(trie_word):
                trie_word.append(-1)
                best_log10.append(-np.inf)
            best_log10[node] = max(best_log10[node], log10_unigram)
        trie_word[node] = wid
    keys = np.array([n * V + c for n, c in children], dtype=np.int64)
    vals = np.array(list(children.values()), dtype=np.int32)
    lookahead = alpha * LN10 * np.array(best_log10)
    return (*table_build(keys, vals), np.array(trie_word, dtype=np.int32), lookahead)


class BeamSearchDecoder:
    """CTC prefix beam search with optional word n-gram shallow fusion (see the module doc).

    lm: an `NgramLM` or the path of an ARPA file; None decodes on acoustics alone.
    """

    def __init__(self, tokens: Sequence[str], options: BeamSearchOptions = BeamSearchOptions(),
                 lm: NgramLM | str | Path | None = None):
        if options.beam_width < 1 or options.n_best < 1:
            raise ValueError(f"beam_width and n_best must be >= 1: {options}")
        self.tokens = list(tokens)
        self.options = options
        if isinstance(lm, (str, Path)):
            lm = NgramLM.read_arpa(lm)
        self.lm = lm
        sep = self.tokens.index(WORD_SEP) if WORD_SEP in self.tokens else -1
        if lm is not None and sep < 0:
            raise ValueError(f"an LM needs the word separator {WORD_SEP!r} among the tokens")
        tables, word_ids = (lm or NgramLM(1, {})).tables()
        use_lm = lm is not None
        oov_lookahead = 0.0
        if use_lm:
            unk_unigram = lm.ngrams[(UNK,)][0]
            oov_lookahead = options.alpha * LN10 * unk_unigram + options.unk_score
        self._scorer = WordScorer(
            *_word_trie(lm, word_ids, self.tokens, options.alpha), oov_lookahead,
            options.unk_score, options.alpha, options.beta, use_lm, options.lm_eos,
            options.vocab_only and use_lm, sep, tables,
        )

    def __call__(self, log_probs, out_lens) -> list[list[Hypothesis]]:
        """log_probs [B, T, V], out_lens [B] -> N-best list per utterance, best first."""
        log_probs, out_lens = _as_numpy(log_probs, out_lens)
        _check_tokens(self.tokens, log_probs)
        return [self._decode_one(log_probs[b], int(n)) for b, n in enumerate(out_lens)]

    def _decode_one(self, log_probs: np.ndarray, n_frames: int) -> list[Hypothesis]:
        """log_probs [T, V] float32, frames [0, n_frames) decoded."""
        o = self.options
        tokens, frames, offsets, scores = _prefix_beam_search(
            log_probs, n_frames, o.beam_width, o.n_best, o.token_top_k, o.token_min_log_prob,
            o.beam_threshold, self._scorer,
        )
        hyps = []
        for k, score in enumerate(scores.tolist()):
            ids = tuple(tokens[offsets[k]:offsets[k + 1]].tolist())
            hyps.append(Hypothesis(ids, ids_to_text(ids, self.tokens), score,
                                   tuple(frames[offsets[k]:offsets[k + 1]].tolist())))
        # with vocab_only, a prefix whose last word is no LM word scores -inf: drop those
        # unless nothing else is left
        finite = [h for h in hyps if h.score > -math.inf]
        return finite or hyps[:1]
