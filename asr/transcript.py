"""Transcripts of long recordings, in numpy alone: cutting at silences, words and times from a CTC
alignment, the output formats, the command line of `asr transcribe` and its loop over the files.
Shared by its PyTorch back end (asr/transcribe.py) and its ONNX Runtime one
(asr/onnx_transcribe.py, which must not import torch).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from asr.audio import AudioError, load_audio
from asr.decoding import add_beam_arguments, check_lm_arguments

MAX_CHUNK_S = 20.0  # longest piece decoded at once
BATCH_AUDIO_SECONDS = 120.0  # audio per forward pass when decoding many files (with padding)
MIN_SILENCE_S = 0.3  # a pause at least this long is a place to cut
ENERGY_FRAME_S = 0.02  # frame of the silence detector
SILENCE_DB = -35.0  # frames this far below the loud frames (95th percentile) count as silence
CUE_MAX_WORDS = 12  # longest subtitle cue in words,
CUE_MAX_S = 6.0  # in seconds;
CUE_MAX_GAP_S = 0.6  # a pause this long between two words starts a new cue
WORD_SEP = "|"  # the token between words (asr.text.WORD_SEP)


@dataclass(frozen=True)
class Word:
    """One recognised word, timed by the CTC forced alignment of its characters."""

    word: str
    start: float  # seconds from the start of the file (its first character's first frame)
    end: float  # seconds, end of its last character's last frame
    confidence: float  # 0..1, geometric mean of its frames' posteriors


@dataclass(frozen=True)
class Segment:
    """The words of one piece decoded at once (the whole file when it fits in one chunk)."""

    start: float  # seconds: its first word's start
    end: float  # seconds: its last word's end
    text: str  # its words, space-separated
    words: tuple[Word, ...]


@dataclass(frozen=True)
class Transcript:
    """The transcript of one recording."""

    path: str  # the file it was read from ("" for a wave passed in memory)
    duration: float  # seconds of audio
    text: str  # all words, space-separated
    segments: tuple[Segment, ...]  # in time order; none when no word was heard

    @property
    def words(self) -> tuple[Word, ...]:
        """All words of all segments, in time order."""
        return tuple(w for seg in self.segments for w in seg.words)


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
# Words from an alignment


def words_from_alignment(labels: np.ndarray, scores: np.ndarray, token_ids: list[int],
                         tokens: list[str], seconds_per_frame: float, offset: float) -> list[Word]:
    """A CTC forced alignment of one chunk -> its words with times and confidences.

    labels [T'] is the token (or blank 0) of each frame, scores [T'] its log-probability,
    token_ids the decoded tokens (no blanks) the alignment was made for. A word spans from the
    first frame of its first character to the last frame of its last character; its confidence
    is the geometric mean of those frames' posteriors."""
    # which target position each non-blank frame belongs to: a new position starts whenever the
    # label changes to a non-blank, or the same label re-appears after a blank
    positions = np.full(len(labels), -1)
    pos, prev = -1, 0
    for t, lab in enumerate(np.asarray(labels).tolist()):
        if lab != 0 and (lab != prev or prev == 0):
            pos += 1
        if lab != 0:
            positions[t] = pos
        prev = lab
    space = tokens.index(WORD_SEP) if WORD_SEP in tokens else -1
    words, current, frames = [], [], []
    for k, tok in enumerate(token_ids):
        if tok == space:
            if current:
                words.append((current, frames))
            current, frames = [], []
            continue
        current.append(tokens[tok])
        frames.extend(np.flatnonzero(positions == k).tolist())
    if current:
        words.append((current, frames))
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for chars, fr in words:
        if not fr:
            continue
        conf = float(np.exp(scores[fr].mean()))
        out.append(Word("".join(chars), round(offset + fr[0] * seconds_per_frame, 3),
                        round(offset + (fr[-1] + 1) * seconds_per_frame, 3), round(conf, 3)))
    return out


def segment_of(words: list[Word]) -> Segment | None:
    """The words of one chunk as a segment (None when there are none)."""
    if not words:
        return None
    return Segment(words[0].start, words[-1].end, " ".join(w.word for w in words), tuple(words))


def make_transcript(path: str, wave: np.ndarray, sample_rate: int,
                    segments: list[Segment]) -> Transcript:
    text = " ".join(s.text for s in segments)
    return Transcript(path, round(len(wave) / sample_rate, 3), text, tuple(segments))


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


def format_transcript(t: Transcript, fmt: str, to_file: bool) -> str:
    """The text `asr transcribe` writes for one file in format `fmt` (text, json, srt): to a
    file of its own, or to stdout (text then starts with the path and a tab)."""
    if fmt == "json":
        return json.dumps(to_json(t), indent=2, ensure_ascii=False)
    if fmt == "srt":
        return to_srt(t)
    return t.text if to_file else f"{t.path}\t{t.text}"


FORMAT_SUFFIX = {"text": ".txt", "json": ".json", "srt": ".srt"}


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


# ---------------------------------------------------------------------------------------------
# Alignment picture


def plot_alignment(recognizer, decoder, wave: np.ndarray, png: Path, title: str = "") -> None:
    """Log-mel spectrogram with the CTC posteriors below it and the emitted characters at the
    frames where the decoder emitted them (first 20 s); `recognizer` of either back end
    (asr.api.Transcriber's), wave [N] at its rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sr = recognizer.sample_rate
    wave = wave[: int(20 * sr)]
    feats = recognizer.features(wave)  # (T, F)
    log_probs, out_lens = recognizer.log_probs([wave])  # (1, T', V), (1,)
    hyp = decoder(log_probs, out_lens)[0][0]
    probs = np.exp(np.asarray(log_probs[0, : int(out_lens[0])], dtype=np.float64))  # (T', V)
    dur = len(wave) / sr
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 2]})
    ax1.imshow(feats.T, origin="lower", aspect="auto", cmap="magma",
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
# Command line of `asr transcribe` (both back ends; asr.cli runs it here)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command line of `asr transcribe`, the same for both back ends (the decoder options
    and their defaults from asr.decoding, which imports no torch)."""
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio files (any format and rate)")
    parser.add_argument("--checkpoint", required=True,
                        help="a checkpoint (.pt) or an exported ONNX model (.onnx, run with "
                        "ONNX Runtime, no torch)")
    parser.add_argument("--format", choices=["text", "json", "srt"], default="text")
    parser.add_argument("--out", help="directory for one output file per input (default: stdout)")
    parser.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    add_beam_arguments(parser)
    parser.add_argument("--max-chunk", type=float, default=MAX_CHUNK_S,
                        help=f"longest piece decoded at once, seconds (default {MAX_CHUNK_S})")
    parser.add_argument("--plot", metavar="PNG", help="save a spectrogram with the alignment of "
                        "the first file (first 20 s)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


class TranscriptWriter:
    """Where `asr transcribe` puts each file's transcript: on stdout, or with `out` in
    OUT/<name><suffix>, the names from `output_names` (said on stderr when some keep their
    directories)."""

    def __init__(self, files: list[str], out: str | None, fmt: str):
        self.out_dir = Path(out) if out else None
        self.fmt = fmt
        self.names = output_names(files)
        if self.out_dir:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            renamed = [f"{f} -> {self.names[f]}" for f in files
                       if self.names[f] != Path(Path(f).stem)]
            if renamed:
                print("asr transcribe: several inputs share a name; their outputs keep their "
                      "directories: " + ", ".join(renamed), file=sys.stderr)

    def write(self, path: str, result: Transcript) -> None:
        text = format_transcript(result, self.fmt, self.out_dir is not None)
        if self.out_dir is None:
            print(text, flush=True)
            return
        name = self.names[path]
        target = self.out_dir / name.parent / (name.name + FORMAT_SUFFIX[self.fmt])
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text + "\n")


def write_transcripts(transcriber, args, plot=None) -> int:
    """`asr transcribe` of args.files with either back end (`transcriber`: asr.api.Transcriber):
    each file read at the model's rate, transcribed and written by a TranscriptWriter; an
    unreadable one is said on stderr and skipped. plot(wave, path) is called with the first file
    when it could be read (--plot). -> the exit status: 1 when a file could not be read."""
    writer = TranscriptWriter(args.files, args.out, args.format)
    failures = 0
    for i, path in enumerate(args.files):
        try:
            wave = load_audio(path, transcriber.sample_rate)
        except AudioError as e:
            print(f"asr transcribe: {e}", file=sys.stderr)
            failures += 1
            continue
        writer.write(path, transcriber.transcribe_waves([wave], [path])[0])
        if plot is not None and i == 0:
            plot(wave, path)
    if failures:
        print(f"asr transcribe: {failures} of {len(args.files)} file(s) could not be read",
              file=sys.stderr)
    return 1 if failures else 0


def run(args) -> int:
    """`asr transcribe` with either back end: asr.api.load picks it by the model file (.onnx:
    ONNX Runtime, no torch imported; else a checkpoint, on PyTorch). A model file that cannot
    be used raises its back end's error (asr.checkpoint.CheckpointError,
    asr.onnx_transcribe.OnnxModelError), which asr.cli reports in one line."""
    from asr.api import load  # asr.api imports this module

    problem = check_lm_arguments(args)
    if problem:
        print(f"asr transcribe: {problem}", file=sys.stderr)
        return 2
    try:
        transcriber = load(args.checkpoint, args.lm, args.decoder, args.beam, args.alpha,
                           args.beta, args.hotword, args.device, args.max_chunk)
    except ValueError as e:  # a hotword the tokens cannot spell
        print(f"asr transcribe: {e}", file=sys.stderr)
        return 2

    def plot(wave: np.ndarray, path: str) -> None:  # --plot
        plot_alignment(transcriber.recognizer, transcriber.decoder, wave, Path(args.plot),
                       Path(path).name)

    return write_transcripts(transcriber, args, plot if args.plot else None)
