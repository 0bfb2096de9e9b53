"""`asr transcribe`: audio files -> text, with word times and confidences.

A recording that fits in one chunk (`max_chunk_s`) is decoded whole, as `asr decode` decodes a
corpus file, so both give the same words. Longer ones are cut at silences into chunks of at most
`max_chunk_s`, each decoded alone (memory bounded by the chunk, not the recording), and the
words stitched back with the chunk's offset. Word times come from a CTC forced alignment of the
decoded tokens (`torchaudio.functional.forced_align`); a word's confidence is the geometric mean
of the posteriors of the frames aligned to its characters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from asr.audio import AudioError, load_audio
from asr.checkpoint import CheckpointError
from asr.recognize import Recognizer, check_lm_arguments, make_decoder

MAX_CHUNK_S = 20.0  # longest piece decoded at once
MIN_SILENCE_S = 0.3  # a pause at least this long is a place to cut
ENERGY_FRAME_S = 0.02  # frame of the silence detector
SILENCE_DB = -35.0  # frames this far below the loud frames (95th percentile) count as silence
CUE_MAX_WORDS = 12  # longest subtitle cue in words,
CUE_MAX_S = 6.0  # in seconds;
CUE_MAX_GAP_S = 0.6  # a pause this long between two words starts a new cue


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the file
    end: float
    confidence: float  # 0..1


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Transcript:
    path: str
    duration: float
    text: str
    segments: tuple[Segment, ...]


# ---------------------------------------------------------------------------------------------
# Cutting at silences


def frame_energy_db(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """wave [N] -> energy per ENERGY_FRAME_S frame in dB [N // frame]."""
    frame = max(1, int(ENERGY_FRAME_S * sample_rate))
    n = len(wave) // frame
    frames = wave[: n * frame].reshape(n, frame)  # (N,) -> (n, frame)
    return 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)


def find_chunks(wave: np.ndarray, sample_rate: int, max_chunk_s: float = MAX_CHUNK_S):
    """Split points for `wave`: a list of (start_sample, end_sample) covering speech, cut in the
    middle of pauses of at least MIN_SILENCE_S, each at most `max_chunk_s` long (a chunk with no
    pause in it is cut at its quietest frame). Leading and trailing silence is dropped."""
    frame = max(1, int(ENERGY_FRAME_S * sample_rate))
    energy = frame_energy_db(wave, sample_rate)
    if len(energy) == 0:
        return [(0, len(wave))] if len(wave) else []
    loud = np.percentile(energy, 95)
    speech = energy > max(loud + SILENCE_DB, -100.0)
    if not speech.any():
        return []
    min_pause = int(MIN_SILENCE_S / ENERGY_FRAME_S)
    # speech regions, merged across pauses shorter than min_pause
    regions = []
    idx = np.flatnonzero(speech)
    start = prev = idx[0]
    for i in idx[1:]:
        if i - prev > min_pause:
            regions.append((start, prev + 1))
            start = i
        prev = i
    regions.append((start, prev + 1))
    # pad each region into its pauses (half a pause each side, at most 0.2 s)
    pad = int(0.2 / ENERGY_FRAME_S)
    chunks = []
    max_frames = int(max_chunk_s / ENERGY_FRAME_S)
    for k, (s, e) in enumerate(regions):
        left = regions[k - 1][1] if k else 0
        right = regions[k + 1][0] if k + 1 < len(regions) else len(energy)
        s = max(s - pad, (left + s) // 2)
        e = min(e + pad, (e + right + 1) // 2)
        chunks.extend(split_long(s, e, energy, max_frames))
    # join neighbours while they fit, so short phrases are decoded with their context
    merged = [chunks[0]]
    for s, e in chunks[1:]:
        if e - merged[-1][0] <= max_frames and s - merged[-1][1] <= min_pause:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return [(s * frame, min(len(wave), e * frame)) for s, e in merged]


def split_long(s: int, e: int, energy: np.ndarray, max_frames: int):
    """Cut [s, e) at its quietest frames until every piece is at most max_frames long."""
    if e - s <= max_frames:
        return [(s, e)]
    lo, hi = s + max_frames // 4, s + max_frames
    cut = lo + int(np.argmin(energy[lo:hi]))
    return [(s, cut)] + split_long(cut, e, energy, max_frames)


# ---------------------------------------------------------------------------------------------
# Words and times from one chunk


def align_words(log_probs: torch.Tensor, token_ids: list[int], tokens: list[str],
                seconds_per_frame: float, offset: float) -> list[Word]:
    """log_probs [T', V] of one chunk, the decoded token ids (no blanks) -> words with times.

    The forced alignment assigns every frame to a token or blank; a word spans from the first
    frame of its first character to the last frame of its last character."""
    if not token_ids:
        return []
    targets = torch.tensor([token_ids], dtype=torch.int32)
    labels, scores = AF.forced_align(log_probs[None].float(), targets, blank=0)
    labels, scores = labels[0], scores[0]
    # which target position each non-blank frame belongs to: a new position starts whenever the
    # label changes to a non-blank, or the same label re-appears after a blank
    positions = torch.full_like(labels, -1)
    pos, prev = -1, 0
    for t, lab in enumerate(labels.tolist()):
        if lab != 0 and (lab != prev or prev == 0):
            pos += 1
        if lab != 0:
            positions[t] = pos
        prev = lab
    space = tokens.index("|") if "|" in tokens else -1
    words, current, frames = [], [], []
    for k, tok in enumerate(token_ids):
        if tok == space:
            if current:
                words.append((current, frames))
            current, frames = [], []
            continue
        current.append(tokens[tok])
        frames.extend(torch.nonzero(positions == k).flatten().tolist())
    if current:
        words.append((current, frames))
    out = []
    for chars, fr in words:
        if not fr:
            continue
        conf = float(scores[fr].mean().exp())
        out.append(Word("".join(chars), round(offset + fr[0] * seconds_per_frame, 3),
                        round(offset + (fr[-1] + 1) * seconds_per_frame, 3), round(conf, 3)))
    return out


def transcribe_wave(recognizer: Recognizer, decoder, wave: np.ndarray, path: str = "",
                    max_chunk_s: float = MAX_CHUNK_S) -> Transcript:
    sr = recognizer.sample_rate
    segments = []
    chunks = find_chunks(wave, sr, max_chunk_s)  # [] when there is no speech at all
    min_samples = max(recognizer.feature_config.window_samples, int(0.05 * sr))
    if chunks and len(wave) <= max_chunk_s * sr:
        # fits in one piece: decoded whole, silence and all, as `asr decode` and training see
        # a corpus file (cutting the silence off would change what utterance CMN subtracts)
        chunks, min_samples = [(0, len(wave))], recognizer.feature_config.window_samples
    for start, end in chunks:
        piece = wave[start:end]
        if len(piece) < min_samples:
            continue
        log_probs, out_lens = recognizer.log_probs([piece])
        hyp = decoder(log_probs, out_lens)[0][0]
        words = align_words(log_probs[0, : out_lens[0]], list(hyp.tokens), recognizer.tokens,
                            recognizer.seconds_per_output_frame, start / sr)
        if words:
            segments.append(Segment(words[0].start, words[-1].end,
                                    " ".join(w.word for w in words), tuple(words)))
    text = " ".join(s.text for s in segments)
    return Transcript(path, round(len(wave) / sr, 3), text, tuple(segments))


# ---------------------------------------------------------------------------------------------
# Output formats


def srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def subtitle_cues(words: list[Word]) -> list[list[Word]]:
    """Words -> subtitle cues: a new cue after a pause of CUE_MAX_GAP_S, or when the cue would
    pass CUE_MAX_WORDS words or CUE_MAX_S seconds."""
    cues: list[list[Word]] = []
    for w in words:
        cue = cues[-1] if cues else None
        if (cue is None or w.start - cue[-1].end > CUE_MAX_GAP_S or len(cue) >= CUE_MAX_WORDS
                or w.end - cue[0].start > CUE_MAX_S):
            cues.append([w])
        else:
            cue.append(w)
    return cues


def to_srt(t: Transcript) -> str:
    """SubRip: one cue per phrase, timed by its first and last word."""
    words = [w for seg in t.segments for w in seg.words]
    blocks = []
    for i, cue in enumerate(subtitle_cues(words), 1):
        text = " ".join(w.word for w in cue)
        blocks.append(f"{i}\n{srt_time(cue[0].start)} --> {srt_time(cue[-1].end)}\n{text}\n")
    return "\n".join(blocks)


def to_json(t: Transcript) -> dict:
    d = asdict(t)
    d["words"] = [w for seg in d["segments"] for w in seg["words"]]
    return d


def plot_alignment(recognizer: Recognizer, decoder, wave: np.ndarray, png: Path,
                   title: str = "") -> None:
    """Log-mel spectrogram with the CTC posteriors below it and the emitted characters at the
    frames where the decoder emitted them (first 20 s)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from asr.features import compute_features

    sr = recognizer.sample_rate
    wave = wave[: int(20 * sr)]
    w = torch.from_numpy(wave)[None]
    feats, _ = compute_features(w, torch.tensor([len(wave)]), recognizer.feature_config)
    log_probs, out_lens = recognizer.log_probs([wave])
    hyp = decoder(log_probs, out_lens)[0][0]
    probs = log_probs[0, : out_lens[0]].exp().numpy()
    dur = len(wave) / sr
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    ax1.imshow(feats[0].T.numpy(), origin="lower", aspect="auto", cmap="magma",
               extent=(0, dur, 0, feats.shape[-1]))
    ax1.set(ylabel="mel bin", title=title or "log-mel filterbank and CTC emissions")
    step = recognizer.seconds_per_output_frame
    times = (np.arange(probs.shape[0]) + 0.5) * step
    ax2.plot(times, probs[:, 0], color="0.7", lw=1, label="blank")
    ax2.plot(times, probs[:, 1:].max(axis=1), color="tab:blue", lw=1, label="best non-blank")
    for tok, fr in zip(hyp.tokens, hyp.frames):
        ch = recognizer.tokens[tok]
        x = (fr + 0.5) * step
        ax1.axvline(x, color="white", lw=0.5, alpha=0.5)
        ax1.text(x, feats.shape[-1] * 0.92, "␣" if ch == "|" else ch, color="white",
                 ha="center", fontsize=9, fontweight="bold")
    ax2.set(xlabel="time (s)", ylabel="posterior", ylim=(0, 1.05))
    ax2.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (any format and rate)")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--format", choices=["text", "json", "srt"], default="text")
    parser.add_argument("--out", help="directory for one output file per input (default: stdout)")
    parser.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--beam", type=int, default=16)
    parser.add_argument("--lm", help="ARPA LM for the beam decoder")
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--beta", type=float, default=1.0)
    parser.add_argument("--max-chunk", type=float, default=MAX_CHUNK_S,
                        help=f"longest piece decoded at once, seconds (default {MAX_CHUNK_S})")
    parser.add_argument("--plot", metavar="PNG", help="save a spectrogram with the alignment of "
                        "the first file (first 20 s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def output_names(files: list[str]) -> dict[str, Path]:
    """Where each input's output goes inside --out, without its suffix: its stem, or, for
    stems that several inputs share (a/x.wav, b/x.wav), its path from the inputs' common
    directory (a/x, b/x), with the audio suffix kept where even that is shared (x.wav, x.flac)."""
    resolved = {f: Path(f).resolve() for f in files}
    common = Path(os.path.commonpath([str(p.parent) for p in resolved.values()])) if files else None
    names: dict[str, Path] = {}
    for f, path in resolved.items():
        same_stem = [p for p in resolved.values() if p.stem == path.stem and p != path]
        if not same_stem:
            names[f] = Path(path.stem)
            continue
        rel = path.relative_to(common)
        clash = any(p.relative_to(common).with_suffix("") == rel.with_suffix("") for p in same_stem)
        names[f] = rel if clash else rel.with_suffix("")
    return names


def run(args) -> int:
    problem = check_lm_arguments(args)
    if problem:
        print(f"asr transcribe: {problem}", file=sys.stderr)
        return 2
    try:
        recognizer = Recognizer.from_checkpoint(args.checkpoint, args.device)
    except CheckpointError as e:
        print(f"asr transcribe: {e}", file=sys.stderr)
        return 2
    decoder = make_decoder(recognizer.tokens, args.decoder, args.beam, args.lm, args.alpha,
                           args.beta, recognizer.text_norm)
    out_dir = Path(args.out) if args.out else None
    names = output_names(args.files)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        renamed = [f"{f} -> {names[f]}" for f in args.files if names[f] != Path(Path(f).stem)]
        if renamed:
            print("asr transcribe: several inputs share a name; their outputs keep their "
                  "directories: " + ", ".join(renamed), file=sys.stderr)
    failures = 0
    for i, path in enumerate(args.files):
        try:
            wave = load_audio(path, recognizer.sample_rate)
        except AudioError as e:
            print(f"asr transcribe: {e}", file=sys.stderr)
            failures += 1
            continue
        result = transcribe_wave(recognizer, decoder, wave, path, args.max_chunk)
        if args.format == "json":
            text = json.dumps(to_json(result), indent=2, ensure_ascii=False)
        elif args.format == "srt":
            text = to_srt(result)
        else:
            text = result.text if out_dir else f"{path}\t{result.text}"
        if out_dir:
            suffix = {"text": ".txt", "json": ".json", "srt": ".srt"}[args.format]
            target = out_dir / names[path].parent / (names[path].name + suffix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text + "\n")
        else:
            print(text, flush=True)
        if args.plot and i == 0:
            plot_alignment(recognizer, decoder, wave, Path(args.plot), Path(path).name)
    if failures:
        print(f"asr transcribe: {failures} of {len(args.files)} file(s) could not be read",
              file=sys.stderr)
    return 1 if failures else 0
