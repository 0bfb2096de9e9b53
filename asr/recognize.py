"""From a checkpoint to text: `Recognizer` runs audio -> features -> model -> decoder.

`asr decode` scores a data dir (hyp.txt, wer.txt; hyp.ctm, the best hypothesis's words timed by
a CTC forced alignment; with --nbest, nbest.txt: formats in asr/outputs.py); `asr tune-lm`
grid-searches the LM weight and word bonus on a dev set, computing the acoustic log-probs once.

A data set is read batch by batch, in the order of the durations its audio headers give: each
batch of waves is loaded, run through the model and dropped before the next is read, so memory
is bounded by the batch, not the set. References and the LM's words are normalised as the model's
training transcripts were (`text_norm`, recorded by `asr prep` and stored in the checkpoint).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from asr.audio import AudioError, audio_info, load_audio
from asr.checkpoint import CheckpointError, load_checkpoint
from asr.config import from_dict
from asr.data import mean_by_speaker
from asr.datadir import Utterance, read_data_dir
from asr.decoding import (  # noqa: F401 - the decoder options, also offered here as before
    DEFAULT_BEAM,
    FOREIGN_SHARE_WARN,
    BeamSearchDecoder,
    BeamSearchOptions,
    Hypothesis,
    add_beam_arguments,
    check_lm_arguments,
    hotword_type,
    load_lm,
    make_decoder,
    normalize_hotwords,
)
from asr.features import FeatureConfig, compute_features
from asr.model import CTCModel, ModelConfig, flush_denormals
from asr.outputs import format_ctm, format_nbest
from asr.scoring import format_report, score
from asr.text import TextNormConfig, normalize_text
from asr.transcript import BATCH_AUDIO_SECONDS, Word, words_from_alignment


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Recognizer:
    """A trained model with its feature settings and tokens, ready to turn audio into
    log-probabilities."""

    def __init__(self, model: CTCModel, tokens: list[str], feature_config: FeatureConfig,
                 device: torch.device, text_norm: TextNormConfig | None = None):
        flush_denormals()
        self.model = model.to(device).eval()
        self.tokens = tokens
        self.feature_config = feature_config
        self.device = device
        self.text_norm = text_norm  # how the training transcripts were normalised; None: unknown

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> Recognizer:
        ckpt = load_checkpoint(path)
        model_cfg = from_dict(ModelConfig, ckpt["model_config"], f"{path}: model_config")
        model = CTCModel(model_cfg, len(ckpt["tokens"]))
        model.load_state_dict(ckpt["model"])
        feature_config = FeatureConfig.from_dict(ckpt["feature_config"])
        text_norm = TextNormConfig.stored(ckpt.get("text_norm"), str(path))
        return cls(model, ckpt["tokens"], feature_config, pick_device(device), text_norm)

    def normalize(self, text: str) -> str:
        """`text` normalised as the training transcripts were (as it is when that is unknown)."""
        return text if self.text_norm is None else normalize_text(text, self.text_norm)

    @property
    def sample_rate(self) -> int:
        return self.feature_config.sample_rate

    @property
    def seconds_per_output_frame(self) -> float:
        """Time between two model output frames (feature hop times subsampling)."""
        return self.feature_config.frame_shift_ms / 1000 * self.model.cfg.subsample

    @property
    def window_samples(self) -> int:
        """The shortest audio that gives a feature frame."""
        return self.feature_config.window_samples

    def align_words(self, log_probs: torch.Tensor, token_ids: list[int],
                    offset: float = 0.0) -> list[Word]:
        """log_probs [T', V] of one piece and its decoded tokens -> its words, timed from
        `offset` seconds (`align_words` below)."""
        return align_words(log_probs, token_ids, self.tokens, self.seconds_per_output_frame,
                           offset)

    @torch.no_grad()
    def features(self, wave: np.ndarray) -> np.ndarray:
        """wave [N] at `sample_rate` -> the model's input features [T, F] (before CMVN)."""
        w = torch.from_numpy(np.asarray(wave, dtype=np.float32))[None]  # (N,) -> (1, N)
        feats, _ = compute_features(w, torch.tensor([w.shape[1]]), self.feature_config)
        return feats[0].numpy()

    @property
    def speaker_cmn(self) -> bool:
        """Whether the model subtracts its speakers' mean features (`log_probs`'s `cmn_means`)."""
        return self.model.cfg.speaker_cmn

    @torch.no_grad()
    def log_probs(self, waves: list[np.ndarray], cmn_means: list[np.ndarray] | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """waves: B float32 arrays [N_b] at `sample_rate`, and with a speaker-CMN model their
        speakers' mean features [F] each (None: each wave's own) ->
        (log_probs [B, T', V] on the CPU, out_lens [B])."""
        wave_lens = torch.tensor([len(w) for w in waves])
        batch = torch.zeros(len(waves), int(wave_lens.max()))
        for b, w in enumerate(waves):
            batch[b, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
        feats, feat_lens = compute_features(
            batch.to(self.device), wave_lens.to(self.device), self.feature_config
        )
        means = None
        if cmn_means is not None and self.speaker_cmn:
            means = torch.from_numpy(np.stack(cmn_means)).to(self.device)
        log_probs, out_lens = self.model(feats, feat_lens, means)
        return log_probs.cpu(), out_lens.cpu()


def positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return n


def align_words(log_probs: torch.Tensor, token_ids: list[int], tokens: list[str],
                seconds_per_frame: float, offset: float = 0.0) -> list[Word]:
    """log_probs [T', V] of one utterance or chunk, the decoded token ids (no blanks) -> words
    with times (seconds, from `offset`) and confidences.

    The forced alignment (`torchaudio.functional.forced_align`) assigns every frame to a token
    or blank; a word spans from the first frame of its first character to the last frame of its
    last character (asr.transcript.words_from_alignment)."""
    if not token_ids:
        return []
    targets = torch.tensor([token_ids], dtype=torch.int32)  # (1, U)
    labels, scores = AF.forced_align(log_probs[None].float(), targets, blank=0)  # (1, T') each
    return words_from_alignment(labels[0].numpy(), scores[0].numpy(), token_ids, tokens,
                                seconds_per_frame, offset)


def check_references(refs: dict[str, str], tokens: list[str], where: str) -> None:
    """Warn on stderr when most characters of the references are not among the tokens: a set
    prepared with another normalisation (`asr prep --case`) than the training set."""
    chars = [c for text in refs.values() for c in text if not c.isspace()]
    known = set(tokens[1:])
    foreign = [c for c in chars if c not in known]
    if chars and len(foreign) >= FOREIGN_SHARE_WARN * len(chars):
        examples = " ".join(sorted(set(foreign))[:5])
        print(f"warning: {where}: {100 * len(foreign) / len(chars):.0f}% of the references' "
              f"characters are not among the model's tokens ({examples} ...): was the set "
              "prepared with another normalisation (asr prep --case) than the training set?",
              file=sys.stderr)


def check_set_normalisation(recognizer: Recognizer, data_dir: str | Path) -> None:
    """Say on stderr when the set's prep.json normalised its text otherwise than the training
    set's was: the references are then normalised as the training transcripts were."""
    from asr.train import prep_text_norm

    if recognizer.text_norm is None:
        return
    theirs, ours = prep_text_norm(data_dir), recognizer.text_norm.to_dict()
    if theirs is None or theirs == ours:
        return
    differ = [k for k in ours if theirs.get(k) != ours[k]]
    print(f"note: {data_dir} was prepared with " + ", ".join(f"{k} {theirs.get(k)}" for k in differ)
          + ", the model's training set with " + ", ".join(f"{k} {ours[k]}" for k in differ)
          + ": references are normalised as the training transcripts were", file=sys.stderr)


@dataclass
class AcousticOutput:
    """Per-utterance log-probs of a data set, kept so that several decoders can reuse them."""

    utt_ids: list[str]
    refs: dict[str, str]
    log_probs: list[torch.Tensor]  # each [T'_i, V]
    failed: dict[str, str]  # utt_id -> why its audio could not be used
    seconds: float  # wall time of the forward passes
    audio_seconds: float
    durations: dict[str, float] = field(default_factory=dict)  # utt_id -> seconds of audio


def read_references(recognizer: Recognizer, data_dir: str | Path) -> tuple[list[Utterance],
                                                                          dict[str, str]]:
    """The utterances of a data dir and their references, normalised as the training
    transcripts were; the normalisation notes and warnings go to stderr."""
    utts = read_data_dir(data_dir)
    check_set_normalisation(recognizer, data_dir)
    refs = {u.utt_id: recognizer.normalize(u.text) for u in utts}
    check_references(refs, recognizer.tokens, str(data_dir))
    return utts, refs


def skip(failed: dict[str, str], utt_id: str, reason: str) -> None:
    """Record and report an utterance that cannot be used (on a line of its own, above the
    progress bar)."""
    failed[utt_id] = reason
    tqdm.write(f"skipping {utt_id}: {reason}", file=sys.stderr)


def length_sorted_batches(utts: list[Utterance], sample_rate: int,
                          failed: dict[str, str]) -> list[list[Utterance]]:
    """`utts` sorted by duration (from the audio headers, nothing decoded) and grouped into
    batches of at most BATCH_AUDIO_SECONDS of padded audio. An unreadable header is skipped."""
    samples = {}
    for utt in utts:
        try:
            info = audio_info(utt.audio)
        except AudioError as e:
            skip(failed, utt.utt_id, str(e))
            continue
        samples[utt.utt_id] = info.frames * sample_rate / info.sample_rate  # at the model's rate
    order = sorted((u for u in utts if u.utt_id in samples), key=lambda u: samples[u.utt_id])
    budget = BATCH_AUDIO_SECONDS * sample_rate
    batches: list[list[Utterance]] = []
    for utt in order:  # ascending: the new one is the longest, so it sets the padded size
        if batches and samples[utt.utt_id] * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(utt)
        else:
            batches.append([utt])
    return batches


def acoustic_batches(recognizer: Recognizer, utts: list[Utterance], failed: dict[str, str]
                     ) -> Iterator[tuple[list[str], list[torch.Tensor], list[float]]]:
    """Log-probs of `utts` in length-sorted batches, each batch's waves loaded just before its
    forward pass and dropped after it: yields (utt_ids, log_probs [T'_i, V] each, each one's
    seconds of audio). An utterance whose audio cannot be read, or is shorter than one feature
    frame, is reported on stderr, recorded in `failed` and skipped alone; the rest of its batch
    is kept."""
    sr = recognizer.sample_rate
    cfg = recognizer.feature_config
    batches = length_sorted_batches(utts, sr, failed)
    means = speaker_feature_means(recognizer, utts, failed) if recognizer.speaker_cmn else None
    with tqdm(total=sum(map(len, batches)), desc="acoustic model", unit="utt",
              mininterval=2.0) as bar:
        for batch in batches:
            ids, waves = [], []
            for utt in batch:
                try:
                    wave = load_audio(utt.audio, sr)
                except AudioError as e:
                    skip(failed, utt.utt_id, str(e))
                    continue
                if len(wave) < cfg.window_samples:
                    skip(failed, utt.utt_id, f"{utt.audio}: {1000 * len(wave) / sr:.1f} ms of "
                         f"audio, shorter than one feature frame ({cfg.frame_length_ms:g} ms)")
                    continue
                ids.append(utt.utt_id)
                waves.append(wave)
            if waves:
                seconds = {u: len(w) / sr for u, w in zip(ids, waves)}
                ids, log_probs = forward_each_usable(recognizer, ids, waves, failed, means)
                yield ids, log_probs, [seconds[u] for u in ids]
            bar.update(len(batch))


def speaker_feature_means(recognizer: Recognizer, utts: list[Utterance], failed: dict[str, str]
                          ) -> dict[str, np.ndarray]:
    """utt_id -> the mean feature vector [F] over all frames of its speaker's usable utterances
    (a first pass over the audio, for a speaker-CMN model: asr.data.speaker_means from the
    audio). Audio that cannot be read is left to the pass that reports it."""
    def feats_of():
        for utt in tqdm(utts, desc="speaker means", unit="utt", mininterval=2.0):
            if utt.utt_id in failed:
                continue
            try:
                feats = recognizer.features(load_audio(utt.audio, recognizer.sample_rate))
            except (AudioError, ValueError):
                continue
            if feats.shape[0]:
                yield utt, feats

    return mean_by_speaker(feats_of())


def forward_each_usable(recognizer: Recognizer, ids: list[str], waves: list[np.ndarray],
                        failed: dict[str, str], means: dict[str, np.ndarray] | None = None
                        ) -> tuple[list[str], list[torch.Tensor]]:
    """The batch's log-probs (with `means`, each utterance's speaker mean); should the batch
    fail, each utterance alone, so that one that cannot be used fails by itself."""
    def means_of(utt_ids):
        return None if means is None else [means[u] for u in utt_ids]

    try:
        log_probs, out_lens = recognizer.log_probs(waves, means_of(ids))
    except ValueError:  # one of them cannot be used (the checks before missed why): find it
        pass
    else:
        return ids, [log_probs[b, : out_lens[b]] for b in range(len(ids))]
    kept_ids, kept = [], []
    for utt_id, wave in zip(ids, waves):
        try:
            log_probs, out_lens = recognizer.log_probs([wave], means_of([utt_id]))
        except ValueError as e:
            skip(failed, utt_id, str(e))
        else:
            kept_ids.append(utt_id)
            kept.append(log_probs[0, : out_lens[0]])
    return kept_ids, kept


def run_acoustic(recognizer: Recognizer, data_dir: str | Path) -> AcousticOutput:
    """Log-probs of every usable utterance of a data dir, all kept (for `tune-lm`, which decodes
    them many times; T' x V floats each, a tenth or less of the waves' size). Unusable audio is
    reported and skipped."""
    utts, refs = read_references(recognizer, data_dir)
    failed: dict[str, str] = {}
    outputs: dict[str, torch.Tensor] = {}
    durations: dict[str, float] = {}
    start = time.time()
    for ids, log_probs, seconds in acoustic_batches(recognizer, utts, failed):
        outputs.update(zip(ids, log_probs))
        durations.update(zip(ids, seconds))
    kept = [u.utt_id for u in utts if u.utt_id in outputs]
    return AcousticOutput(kept, refs, [outputs[u] for u in kept], failed, time.time() - start,
                          sum(durations.values()), durations)


def decode_nbest(decoder, utt_ids: list[str], log_probs: list[torch.Tensor],
                 batch_size: int = 32) -> dict[str, list[Hypothesis]]:
    """utt_ids and their log_probs ([T'_i, V] each) -> {utt_id: hypotheses, best first}."""
    hyps = {}
    for start in range(0, len(utt_ids), batch_size):
        ids = utt_ids[start : start + batch_size]
        chunk = log_probs[start : start + batch_size]
        out_lens = torch.tensor([lp.size(0) for lp in chunk])
        padded = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True)  # (B, T', V)
        hyps.update(zip(ids, decoder(padded, out_lens)))
    return hyps


def decode_all(decoder, utt_ids: list[str], log_probs: list[torch.Tensor],
               batch_size: int = 32) -> dict[str, str]:
    """utt_ids and their log_probs ([T'_i, V] each) -> {utt_id: best text}."""
    nbest = decode_nbest(decoder, utt_ids, log_probs, batch_size)
    return {u: hyps[0].text if hyps else "" for u, hyps in nbest.items()}


@dataclass
class DecodeOutput:
    """What `asr decode` writes of each utterance, in Kaldi-style lines."""

    hyps: dict[str, str] = field(default_factory=dict)  # utt_id -> best text
    nbest: dict[str, list[str]] = field(default_factory=dict)  # utt_id -> nbest.txt lines
    ctm: dict[str, list[str]] = field(default_factory=dict)  # utt_id -> hyp.ctm lines

    def add(self, recognizer: Recognizer, decoder, utt_ids: list[str],
            log_probs: list[torch.Tensor], durations: list[float]) -> None:
        """Decode utterances (log_probs [T'_i, V] each, durations in seconds) and keep their
        best texts, N-best lines and the CTM lines of the best one's aligned words."""
        step = recognizer.seconds_per_output_frame
        nbest = decode_nbest(decoder, utt_ids, log_probs)
        for utt_id, lp, duration in zip(utt_ids, log_probs, durations):
            hyps = nbest[utt_id]
            best = hyps[0] if hyps else None
            self.hyps[utt_id] = best.text if best else ""
            self.nbest[utt_id] = format_nbest(utt_id, hyps)
            words = align_words(lp, list(best.tokens), recognizer.tokens, step) if best else []
            self.ctm[utt_id] = format_ctm(utt_id, words, duration)

    def write(self, out: Path, nbest: bool) -> None:
        """OUT/hyp.txt and OUT/hyp.ctm (and OUT/nbest.txt with `nbest`), in utterance order."""
        write_kaldi_text(out / "hyp.txt", self.hyps)
        write_lines(out / "hyp.ctm", self.ctm)
        if nbest:
            write_lines(out / "nbest.txt", self.nbest)


def dump_log_probs(acoustic: AcousticOutput, tokens: list[str], path: str | Path) -> None:
    """The input format of bench/decode.py."""
    out_lens = np.array([lp.size(0) for lp in acoustic.log_probs])
    padded = torch.nn.utils.rnn.pad_sequence(acoustic.log_probs, batch_first=True).numpy()
    np.savez_compressed(
        path, utt_ids=np.array(acoustic.utt_ids), tokens=np.array(tokens),
        refs=np.array([acoustic.refs[u] for u in acoustic.utt_ids]), out_lens=out_lens,
        log_probs=padded.astype(np.float32),
    )


def write_kaldi_text(path: Path, texts: dict[str, str]) -> None:
    path.write_text("".join(f"{u} {t}\n".rstrip(" \n") + "\n" for u, t in sorted(texts.items())))


def write_lines(path: Path, lines: dict[str, list[str]]) -> None:
    """Each utterance's lines, in utterance-id order."""
    path.write_text("".join(f"{line}\n" for _, ls in sorted(lines.items()) for line in ls))


# ---------------------------------------------------------------------------------------------
# asr decode


def stream_decode(recognizer: Recognizer, decoder, data_dir: str | Path
                  ) -> tuple[AcousticOutput, DecodeOutput, float]:
    """Decode a data dir batch by batch, keeping only what is written -> (AcousticOutput
    without log-probs, the decoded lines, decoder seconds)."""
    utts, refs = read_references(recognizer, data_dir)
    failed: dict[str, str] = {}
    decoded = DecodeOutput()
    durations: dict[str, float] = {}
    acoustic_seconds = decode_seconds = 0.0
    batches = acoustic_batches(recognizer, utts, failed)
    while True:
        start = time.time()
        batch = next(batches, None)
        acoustic_seconds += time.time() - start
        if batch is None:
            break
        ids, log_probs, seconds = batch
        durations.update(zip(ids, seconds))
        start = time.time()
        decoded.add(recognizer, decoder, ids, log_probs, seconds)
        decode_seconds += time.time() - start
    kept = [u.utt_id for u in utts if u.utt_id in decoded.hyps]
    return (AcousticOutput(kept, refs, [], failed, acoustic_seconds, sum(durations.values()),
                           durations), decoded, decode_seconds)


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DATA_SET_DIR")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True, help="writes OUT/hyp.txt, OUT/hyp.ctm (word "
                        "times of the best hypothesis) and OUT/wer.txt")
    parser.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    add_beam_arguments(parser)
    parser.add_argument("--nbest", type=positive_int, metavar="N",
                        help="also write the N best hypotheses of each utterance to "
                        "OUT/nbest.txt (beam only)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any utterance's audio could not be used")
    parser.add_argument("--dump-log-probs", metavar="FILE.npz",
                        help="also save the log-probs (input of bench/decode.py)")


def hotwords_of(decoder) -> tuple[tuple[str, float], ...]:
    """The (normalised) hotwords a decoder biases towards."""
    return decoder.options.hotwords if isinstance(decoder, BeamSearchDecoder) else ()


def run_decode(args) -> int:
    try:
        recognizer = Recognizer.from_checkpoint(args.checkpoint, args.device)
    except CheckpointError as e:
        print(f"asr decode: {e}", file=sys.stderr)
        return 2
    problem = check_lm_arguments(args)
    if problem:
        print(f"asr decode: {problem}", file=sys.stderr)
        return 2
    try:  # first: a bad LM or hotword fails at once
        decoder = make_decoder(recognizer.tokens, args.decoder, args.beam, args.lm, args.alpha,
                               args.beta, recognizer.text_norm, args.hotword, args.nbest or 1)
    except ValueError as e:
        print(f"asr decode: {e}", file=sys.stderr)
        return 2
    if args.dump_log_probs:  # the dump needs every utterance's log-probs at once
        acoustic = run_acoustic(recognizer, args.data_dir)
        dump_log_probs(acoustic, recognizer.tokens, args.dump_log_probs)
        start = time.time()
        decoded = DecodeOutput()
        decoded.add(recognizer, decoder, acoustic.utt_ids, acoustic.log_probs,
                    [acoustic.durations[u] for u in acoustic.utt_ids])
        decode_seconds = time.time() - start
    else:  # each batch decoded as it comes: memory bounded by the batch, not the set
        acoustic, decoded, decode_seconds = stream_decode(recognizer, decoder, args.data_dir)
    hyps = decoded.hyps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    decoded.write(out, nbest=bool(args.nbest))
    write_kaldi_text(out / "ref.txt", acoustic.refs)
    report = score(acoustic.refs, hyps)
    text = format_report(report)
    (out / "wer.txt").write_text(text)
    summary = {
        "set": Path(args.data_dir).name, "data_dir": str(Path(args.data_dir).resolve()),
        "checkpoint": str(Path(args.checkpoint).resolve()),
        "wer": report.wer, "cer": report.cer, "utterances": len(hyps),  # percent
        "failed": acoustic.failed, "decoder": args.decoder, "beam": args.beam,
        "lm": args.lm, "alpha": args.alpha, "beta": args.beta, "n_best": args.nbest,
        "hotwords": [list(h) for h in hotwords_of(decoder)],
        "acoustic_seconds": acoustic.seconds, "decode_seconds": decode_seconds,
        "audio_seconds": acoustic.audio_seconds,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(text.split("\n\n")[0])
    written = ["hyp.txt", "hyp.ctm"] + (["nbest.txt"] if args.nbest else []) + ["wer.txt"]
    print(f"wrote {', '.join(str(out / name) for name in written)}")
    if acoustic.failed:
        print(f"asr decode: {len(acoustic.failed)} utterance(s) skipped (listed above and in "
              f"{out / 'summary.json'}); they count as deletions in the score", file=sys.stderr)
    return 1 if args.strict and acoustic.failed else 0


# ---------------------------------------------------------------------------------------------
# asr tune-lm


def add_tune_lm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DEV_SET")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--lm", required=True)
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--out", help="write the grid and the best values as JSON here")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def lm_grid(tokens: list[str], lm, utt_ids: list[str], log_probs: list[torch.Tensor],
            refs: dict[str, str], alphas, betas, **options) -> list[dict]:
    """WER and CER of beam search + `lm` at each alpha x beta point (what `asr tune-lm`
    searches); `options`: the other BeamSearchOptions fields."""
    grid = []
    for alpha, beta in tqdm(list(itertools.product(alphas, betas)), desc="grid"):
        decoder = BeamSearchDecoder(tokens, BeamSearchOptions(alpha=alpha, beta=beta, **options),
                                    lm=lm)
        report = score(refs, decode_all(decoder, utt_ids, log_probs))
        grid.append({"alpha": alpha, "beta": beta, "wer": report.wer, "cer": report.cer})
    return grid


def best_point(grid: list[dict]) -> dict:
    """The grid point with the lowest WER, the lower CER among equals."""
    return min(grid, key=lambda g: (g["wer"], g["cer"]))


def run_tune_lm(args) -> int:
    recognizer = Recognizer.from_checkpoint(args.checkpoint, args.device)
    lm = load_lm(args.lm, recognizer.tokens, recognizer.text_norm)
    acoustic = run_acoustic(recognizer, args.data_dir)
    grid = lm_grid(recognizer.tokens, lm, acoustic.utt_ids, acoustic.log_probs, acoustic.refs,
                   args.alphas, args.betas, beam_width=args.beam)
    best = best_point(grid)
    print("alpha  beta    WER%    CER%")
    for g in grid:
        mark = "  <- best" if g is best else ""
        print(f"{g['alpha']:5.2f} {g['beta']:5.2f} {g['wer']:7.2f} {g['cer']:7.2f}{mark}")
    if args.out:
        Path(args.out).write_text(json.dumps({"best": best, "grid": grid, "failed":
                                              acoustic.failed}, indent=2))
    if acoustic.failed:
        print(f"asr tune-lm: {len(acoustic.failed)} utterance(s) skipped (listed above); they "
              "count as deletions at every point of the grid", file=sys.stderr)
    return 0
