"""`asr transcribe`: audio files -> text, with word times and confidences.

A recording that fits in one chunk (`max_chunk_s`) is decoded whole, as `asr decode` decodes a
corpus file, so both give the same words. Longer ones are cut at silences into chunks of at most
`max_chunk_s` (model memory bounded by a batch of chunks, not the recording), and the words
stitched back with the chunk's offset: asr.api.Transcriber does it, for the Python API too. Word
times come from a CTC forced alignment of the decoded tokens
(`torchaudio.functional.forced_align`, asr.recognize.align_words); a word's confidence is the
geometric mean of the posteriors of the frames aligned to its characters. What needs no torch
(cutting, words from an alignment, output formats, the command line) is in asr/transcript.py,
shared with the ONNX Runtime back end (asr/onnx_transcribe.py) that `asr transcribe --checkpoint
MODEL.onnx` runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from asr import transcript
from asr.api import Transcriber
from asr.audio import AudioError, load_audio
from asr.checkpoint import CheckpointError
from asr.decoding import DEFAULT_ALPHA, DEFAULT_BEAM, DEFAULT_BETA
from asr.recognize import (  # noqa: F401 - align_words also offered here, as it was before
    Recognizer,
    align_words,
    check_lm_arguments,
    hotword_type,
    make_decoder,
)
from asr.transcript import (  # noqa: F401 - also offered here, as they were before
    CUE_MAX_S,
    MAX_CHUNK_S,
    Transcript,
    Word,
    find_chunks,
    make_transcript,
    output_names,
    segment_of,
    subtitle_cues,
    to_json,
    to_srt,
    words_from_alignment,
)


def transcribe_wave(recognizer: Recognizer, decoder, wave: np.ndarray, path: str = "",
                    max_chunk_s: float = MAX_CHUNK_S) -> Transcript:
    """wave [N] at the model's rate -> its transcript (asr.api.Transcriber)."""
    return Transcriber(recognizer, decoder, max_chunk_s).transcribe_waves([wave], [path])[0]


# ---------------------------------------------------------------------------------------------
# Alignment picture


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


def add_arguments(parser) -> None:
    """asr/transcript.py's command line, with asr.decoding's beam defaults and --hotword."""
    transcript.add_arguments(parser, DEFAULT_BEAM, DEFAULT_ALPHA, DEFAULT_BETA)
    parser.add_argument("--hotword", type=hotword_type, action="append", default=[],
                        metavar="WORD[:WEIGHT]", help="bias the beam search towards WORD "
                        "(natural-log WEIGHT when it ends; repeatable; beam only)")


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
    try:
        decoder = make_decoder(recognizer.tokens, args.decoder, args.beam, args.lm, args.alpha,
                               args.beta, recognizer.text_norm, args.hotword)
    except ValueError as e:  # a hotword the tokens cannot spell
        print(f"asr transcribe: {e}", file=sys.stderr)
        return 2
    transcriber = Transcriber(recognizer, decoder, args.max_chunk)
    writer = transcript.TranscriptWriter(args.files, args.out, args.format)
    failures = 0
    for i, path in enumerate(args.files):
        try:
            wave = load_audio(path, recognizer.sample_rate)
        except AudioError as e:
            print(f"asr transcribe: {e}", file=sys.stderr)
            failures += 1
            continue
        writer.write(path, transcriber.transcribe_waves([wave], [path])[0])
        if args.plot and i == 0:
            plot_alignment(recognizer, decoder, wave, Path(args.plot), Path(path).name)
    if failures:
        print(f"asr transcribe: {failures} of {len(args.files)} file(s) could not be read",
              file=sys.stderr)
    return 1 if failures else 0
