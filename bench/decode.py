"""Decoding speed and WER: our greedy and beam decoders against torchaudio's flashlight
`ctc_decoder` and pyctcdecode, on the same log-probs, same beam, same ARPA LM, same alpha/beta.

    python bench/decode.py --log-probs exp/dev_log_probs.npz --lm exp/lm.arpa --beam 16
    python bench/decode.py --synthetic TEXT --lm lm.arpa --beam 16     # no model needed

--log-probs: an npz as `asr decode --dump-log-probs` writes it: utt_ids, tokens, refs (str
arrays), out_lens int [N], log_probs float32 [N, Tmax, V] (padded). --synthetic builds peaky
CTC-like log-probs from the sentences of a Kaldi `text` file (see `synthetic_log_probs`); train the
LM on other sentences than those.

Units: our alpha multiplies ln p_LM (pyctcdecode's alpha too); flashlight's lm_weight multiplies
log10 p_LM, so it gets alpha * ln 10. beta is a per-word bonus for all three. Times are wall
time per utterance (best of --repeat passes), one process, one thread, after a warm-up
(numba compiles on first use).

Flashlight's lexicon-free decoder looks each *token* up in a KenLM model (a character LM), so it
cannot use a word LM. It appears here without LM; with the word LM flashlight runs its lexicon
decoder (words spelled `W O R D |`, the LM vocabulary as lexicon), which only outputs LM words;
ours with `vocab_only` is the like-for-like counterpart. `--flashlight-python-lm` adds flashlight's
lexicon-free decoder with the word LM as a Python `CTCDecoderLM` (same search as ours; slow
because flashlight calls Python for every token extension): a check on WER, not on speed.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from asr.decoding import (
    BLANK,
    DEFAULT_ALPHA,
    DEFAULT_BEAM,
    DEFAULT_BETA,
    DEFAULT_UNK_SCORE,
    WORD_SEP,
    BeamSearchDecoder,
    BeamSearchOptions,
    GreedyDecoder,
    ids_to_text,
    parse_hotword,
)
from asr.lm import BOS, EOS, UNK, NgramLM
from asr.scoring import score

# ---------------------------------------------------------------------------------------------
# Input


def load_npz(path: Path) -> dict:
    data = np.load(path)
    return {k: data[k] for k in ("utt_ids", "tokens", "refs", "out_lens", "log_probs")}


def synthetic_log_probs(sentences: list[str], seed: int = 0, peak: float = 6.0,
                        noise: float = 1.2, p_confuse: float = 0.12, p_weak: float = 0.03) -> dict:
    """Peaky CTC-like log-probs for `sentences`, in the npz layout.

    Each character (and `|` between words) is one spike of 1-2 frames after 0-5 blank frames;
    logits are N(0, noise) plus `peak` on the frame's target (blank between spikes). A spike
    gets a competing character with probability p_confuse (logit peak + N(-0.5, 1), so it wins
    about a third of the time), or is drowned by blank with probability p_weak: greedy decoding
    then makes character errors that a word LM can repair.
    """
    rng = np.random.default_rng(seed)
    chars = sorted({c for s in sentences for c in s.replace(" ", "")})
    tokens = [BLANK, WORD_SEP] + chars
    token_id = {t: i for i, t in enumerate(tokens)}
    V = len(tokens)
    all_lp, refs = [], []
    for sentence in sentences:
        labels = [token_id[c] for c in WORD_SEP.join(sentence.split())]
        targets = [0] * int(rng.integers(1, 4))
        spikes = []
        for i, y in enumerate(labels):
            n_blank = int(rng.geometric(0.4)) - 1
            if i > 0 and y == labels[i - 1]:
                n_blank = max(n_blank, 1)
            targets += [0] * min(n_blank, 5)
            spikes.append(len(targets))
            targets += [y] * (1 + int(rng.random() < 0.3))
        targets += [0] * int(rng.integers(1, 4))
        T = len(targets)
        logits = rng.normal(0.0, noise, (T, V))
        logits[np.arange(T), targets] += peak
        for t in spikes:
            y = targets[t]
            if rng.random() < p_confuse and y != token_id[WORD_SEP]:
                z = int(rng.integers(2, V - 1))
                z += z >= y
                logits[t, z] += peak + rng.normal(-0.5, 1.0)
            elif rng.random() < p_weak:
                logits[t, 0] += peak + rng.normal(0.5, 1.0)
        all_lp.append(torch.from_numpy(logits).log_softmax(-1).float())
        refs.append(" ".join(sentence.split()))
    padded = torch.nn.utils.rnn.pad_sequence(all_lp, batch_first=True)  # [N, Tmax, V]
    return {
        "utt_ids": np.array([f"syn{i:05d}" for i in range(len(sentences))]),
        "tokens": np.array(tokens), "refs": np.array(refs),
        "out_lens": np.array([lp.shape[0] for lp in all_lp]), "log_probs": padded.numpy(),
    }


# ---------------------------------------------------------------------------------------------
# Peers


def flashlight_decoder(tokens, args, lm_path: Path | None, workdir: Path):
    """torchaudio's flashlight decoder; with an LM the lexicon decoder over the LM vocabulary."""
    from torchaudio.models.decoder import ctc_decoder

    common = dict(tokens=tokens, nbest=1, beam_size=args.beam, beam_size_token=args.token_top_k
                  or None, beam_threshold=args.beam_threshold, blank_token=BLANK,
                  sil_token=WORD_SEP, log_add=True)
    if lm_path is None:
        return ctc_decoder(lexicon=None, lm=None, **common)
    lexicon = workdir / "lexicon.txt"
    token_set = set(tokens)
    with open(lexicon, "w") as f:
        for word in NgramLM.read_arpa(lm_path).vocab:
            if word not in (BOS, EOS, UNK) and set(word) <= token_set:
                f.write(f"{word} {' '.join(word)} {WORD_SEP}\n")
    return ctc_decoder(lexicon=str(lexicon), lm=str(lm_path), lm_weight=args.alpha * math.log(10),
                       word_score=args.beta, unk_score=float("-inf"), **common)


def flashlight_python_lm(tokens, lm: NgramLM, args):
    """Lexicon-free flashlight with our word LM as a Python CTCDecoderLM, scoring as ours
    does: a look-ahead per partial word (best unigram it can become; <unk> + unk_score outside
    the vocabulary), replaced by the n-gram score when `|` or the end closes the word."""
    from torchaudio.models.decoder import CTCDecoderLM, CTCDecoderLMState, ctc_decoder

    lm_weight = args.alpha * math.log(10)  # flashlight scales LM scores (log10) by this
    vocab = [w for w in lm.vocab if w not in (BOS, EOS, UNK) and set(w) <= set(tokens)]
    best_start: dict[str, float] = {}
    for w in vocab:
        for i in range(1, len(w) + 1):
            best_start[w[:i]] = max(best_start.get(w[:i], -math.inf), lm.ngrams[(w,)][0])
    vocab_set = set(vocab)
    oov = lm.ngrams[(UNK,)][0] + args.unk_score / lm_weight

    def lookahead(partial: str) -> float:
        return 0.0 if not partial else best_start.get(partial, oov)

    def end_word(lm_state, partial):
        log10_prob, lm_state = lm.score_word(lm_state, partial)
        bonus = args.beta + (0.0 if partial in vocab_set else args.unk_score)
        return log10_prob + bonus / lm_weight - lookahead(partial), lm_state

    class WordLM(CTCDecoderLM):
        """State: (LM state, partial word, score of the token that led here), keyed by the
        flashlight state object as in torchaudio's custom-LM tutorial."""

        def __init__(self):
            super().__init__()
            self.sep = tokens.index(WORD_SEP)
            self.info = {}

        def start(self, start_with_nothing):
            state = CTCDecoderLMState()
            self.info = {state: (lm.begin_state(), "", 0.0)}
            return state

        def score(self, state, idx):
            child = state.child(idx)
            if child not in self.info:
                lm_state, partial, _ = self.info[state]
                if idx != self.sep:
                    grown = partial + tokens[idx]
                    self.info[child] = (lm_state, grown, lookahead(grown) - lookahead(partial))
                elif partial:
                    gain, lm_state = end_word(lm_state, partial)
                    self.info[child] = (lm_state, "", gain)
                else:
                    self.info[child] = (lm_state, "", 0.0)
            return child, self.info[child][2]

        def finish(self, state):
            lm_state, partial, _ = self.info[state]
            total = 0.0
            if partial:
                total, lm_state = end_word(lm_state, partial)
            return state, total + lm.score_word(lm_state, EOS)[0]

    word_lm = WordLM()
    decoder = ctc_decoder(lexicon=None, tokens=tokens, lm=word_lm, nbest=1, beam_size=args.beam,
                          beam_size_token=args.token_top_k or None,
                          beam_threshold=args.beam_threshold, lm_weight=lm_weight,
                          blank_token=BLANK, sil_token=WORD_SEP, log_add=True)
    decoder._keep_lm = word_lm
    return decoder


def pyctcdecode_decoder(tokens, lm_path: Path | None, args):
    from pyctcdecode import build_ctcdecoder

    labels = ["" if t == BLANK else " " if t == WORD_SEP else t for t in tokens]
    return build_ctcdecoder(labels, kenlm_model_path=str(lm_path) if lm_path else None,
                            alpha=args.alpha, beta=args.beta, unk_score_offset=args.unk_score)


# ---------------------------------------------------------------------------------------------
# Runs


def run_ours(decoder, log_probs, out_lens) -> list[str]:
    return [nbest[0].text if nbest else "" for nbest in decoder(log_probs, out_lens)]


def run_flashlight(decoder, tokens, log_probs, out_lens, close_word: bool) -> list[str]:
    emissions = torch.from_numpy(log_probs)
    if close_word:  # one frame where `|` is certain, so the lexicon decoder ends the last word
        B, T, V = emissions.shape
        sep = torch.full((B, T + 1, V), -30.0)
        sep[:, :T] = emissions
        sep[torch.arange(B), torch.from_numpy(out_lens), :] = -30.0
        sep[torch.arange(B), torch.from_numpy(out_lens), tokens.index(WORD_SEP)] = 0.0
        emissions, out_lens = sep, out_lens + 1
    results = decoder(emissions.contiguous(), torch.from_numpy(out_lens).int())
    if close_word:
        return [" ".join(r[0].words) if r else "" for r in results]
    return [ids_to_text(r[0].tokens.tolist(), tokens) if r else "" for r in results]


def run_pyctcdecode(decoder, log_probs, out_lens, args) -> list[str]:
    return [" ".join(decoder.decode(log_probs[b, :n], beam_width=args.beam,
                                    beam_prune_logp=-args.beam_threshold,
                                    token_min_logp=args.token_min_log_prob).split())
            for b, n in enumerate(out_lens)]


def measure(name: str, fn: Callable[[np.ndarray, np.ndarray], list[str]], data: dict,
            batch: int, repeat: int) -> tuple[str, float, float, float]:
    """(name, ms per utterance: best of `repeat` passes, WER %, CER %); decodes `batch`
    utterances per call. Passes after one that took over 20 s are skipped."""
    log_probs, out_lens = data["log_probs"], data["out_lens"]
    fn(log_probs[:2], out_lens[:2])  # warm-up: numba compilation, LM loading caches
    best = math.inf
    for _ in range(repeat):
        texts = []
        start = time.perf_counter()
        for i in range(0, len(out_lens), batch):
            texts += fn(log_probs[i:i + batch], out_lens[i:i + batch])
        best = min(best, time.perf_counter() - start)
        if best > 20:
            break
    ids = [str(u) for u in data["utt_ids"]]
    report = score(dict(zip(ids, (str(r) for r in data["refs"]))), dict(zip(ids, texts)))
    return name, 1000 * best / len(out_lens), report.wer, report.cer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--log-probs", type=Path, help="npz of log-probs (see the module doc)")
    src.add_argument("--synthetic", type=Path, help="Kaldi text file to synthesise from")
    parser.add_argument("--n-utts", type=int, default=500, help="utterances used (default 500)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lm", type=Path, help="ARPA word LM (same file for all decoders)")
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM)
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="LM weight on ln p")
    parser.add_argument("--beta", type=float, default=DEFAULT_BETA, help="word bonus (with LM)")
    parser.add_argument("--unk-score", type=float, default=DEFAULT_UNK_SCORE,
                        help="added per out-of-vocabulary word (pyctcdecode: unk_score_offset)")
    parser.add_argument("--n-best", type=int, default=1,
                        help="hypotheses per utterance our beam decoders return (default 1)")
    parser.add_argument("--hotword", type=parse_hotword, action="append", default=[],
                        metavar="WORD[:WEIGHT]", help="boost WORD in our beam decoders (repeat)")
    parser.add_argument("--token-top-k", type=int, default=0, help="0: all tokens")
    parser.add_argument("--token-min-log-prob", type=float, default=-10.0)
    parser.add_argument("--beam-threshold", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=16, help="utterances per decoder call")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes, best kept")
    parser.add_argument("--no-peers", action="store_true", help="only our decoders")
    parser.add_argument("--skip", nargs="*", default=[],
                        help="skip decoders whose name contains one of these words")
    parser.add_argument("--flashlight-python-lm", action="store_true",
                        help="add lexicon-free flashlight with our word LM in Python (slow)")
    parser.add_argument("--save", type=Path, help="write the (synthetic) input as npz")
    args = parser.parse_args()

    if args.synthetic:
        sentences = [" ".join(line.split()[1:]) for line in open(args.synthetic)]
        data = synthetic_log_probs([s for s in sentences if s][: args.n_utts], args.seed)
    else:
        data = load_npz(args.log_probs)
        data = {k: v[: args.n_utts] for k, v in data.items() if k != "tokens"} | {
            "tokens": data["tokens"]}
    if args.save:
        np.savez_compressed(args.save, **data)
    tokens = [str(t) for t in data["tokens"]]
    data["log_probs"] = np.ascontiguousarray(data["log_probs"], dtype=np.float32)
    data["out_lens"] = data["out_lens"].astype(np.int64)
    N, T, V = data["log_probs"].shape
    print(f"{N} utterances, {data['out_lens'].mean():.0f} frames on average, V={V}, "
          f"beam {args.beam}, alpha {args.alpha}, beta {args.beta}, token top-k "
          f"{args.token_top_k or 'all'}, token min log prob {args.token_min_log_prob}, "
          f"beam threshold {args.beam_threshold}")

    lm = NgramLM.read_arpa(args.lm) if args.lm else None
    options = BeamSearchOptions(
        beam_width=args.beam, n_best=args.n_best, hotwords=tuple(args.hotword),
        token_top_k=args.token_top_k,
        token_min_log_prob=args.token_min_log_prob, beam_threshold=args.beam_threshold,
        alpha=args.alpha, beta=args.beta, unk_score=args.unk_score,
    )
    no_lm = BeamSearchOptions(beam_width=args.beam, n_best=args.n_best,
                              hotwords=tuple(args.hotword),
                              token_top_k=args.token_top_k,
                              token_min_log_prob=args.token_min_log_prob,
                              beam_threshold=args.beam_threshold)
    greedy, beam = GreedyDecoder(tokens), BeamSearchDecoder(tokens, no_lm)
    runs = [
        ("ours greedy", lambda lp, n: run_ours(greedy, lp, n)),
        ("ours beam, no LM", lambda lp, n: run_ours(beam, lp, n)),
    ]
    if lm is not None:
        d_lm = BeamSearchDecoder(tokens, options, lm)
        d_vocab = BeamSearchDecoder(tokens, BeamSearchOptions(**{
            **options.__dict__, "vocab_only": True}), lm)
        runs += [("ours beam + LM", lambda lp, n: run_ours(d_lm, lp, n)),
                 ("ours beam + LM, vocab_only", lambda lp, n: run_ours(d_vocab, lp, n))]
    if not args.no_peers:
        workdir = Path(tempfile.mkdtemp())
        fl = flashlight_decoder(tokens, args, None, workdir)
        runs.append(("flashlight lexicon-free, no LM",
                     lambda lp, n: run_flashlight(fl, tokens, lp, n, False)))
        if lm is not None:
            fl_lex = flashlight_decoder(tokens, args, args.lm, workdir)
            runs.append(("flashlight lexicon + KenLM",
                         lambda lp, n: run_flashlight(fl_lex, tokens, lp, n, True)))
            if args.flashlight_python_lm:
                fl_py = flashlight_python_lm(tokens, lm, args)
                runs.append(("flashlight lexicon-free + LM (Python)",
                             lambda lp, n: run_flashlight(fl_py, tokens, lp, n, False)))
        pc = pyctcdecode_decoder(tokens, None, args)
        runs.append(("pyctcdecode, no LM", lambda lp, n: run_pyctcdecode(pc, lp, n, args)))
        if lm is not None:
            pc_lm = pyctcdecode_decoder(tokens, args.lm, args)
            runs.append(("pyctcdecode + KenLM",
                         lambda lp, n: run_pyctcdecode(pc_lm, lp, n, args)))

    print(f"{'decoder':<40} {'ms/utt':>8} {'WER %':>7} {'CER %':>7}")
    for name, fn in runs:
        if any(word in name for word in args.skip):
            continue
        name, ms, wer, cer = measure(name, fn, data, args.batch, args.repeat)
        print(f"{name:<40} {ms:8.2f} {wer:7.2f} {cer:7.2f}", flush=True)


if __name__ == "__main__":
    main()
