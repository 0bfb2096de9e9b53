"""The Python API: a checkpoint loaded once, then recordings in, transcripts out.

    import asr
    model = asr.load("exp/best.pt", lm="data/lm/lm.arpa")
    result = model.transcribe("talk.flac")  # or a float32 wave and its sample rate
    result.text, result.words               # words with start/end seconds and confidence
    results = model.transcribe_batch(["a.wav", "b.wav"])
    model = asr.load("exp/model.onnx", lm="data/lm/lm.arpa")  # the same, without torch

`Transcriber` holds what turns audio into text: the features and the model (a recognizer), the
decoder and its options, and how long recordings are cut (asr/transcript.py). `asr transcribe`
runs it, with either back end: a checkpoint (.pt) runs on PyTorch (asr.recognize.Recognizer),
an `asr export --format onnx` model (.onnx) on ONNX Runtime (asr.onnx_transcribe.OnnxRecognizer,
no torch imported), both with the decoders of asr.decoding; `load` imports the back end it needs.

A recording that fits in one chunk (`max_chunk_s`) is decoded whole, as `asr decode` decodes a
corpus file; a longer one is cut at its pauses into chunks, and the words of each are
shifted by the chunk's offset. The chunks of all recordings of a call are run through the model
together, in length-sorted batches of at most BATCH_AUDIO_SECONDS of padded audio.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from asr.audio import load_audio, resample
from asr.decoding import DEFAULT_ALPHA, DEFAULT_BEAM, DEFAULT_BETA, make_decoder
from asr.transcript import (
    BATCH_AUDIO_SECONDS,
    MAX_CHUNK_S,
    Transcript,
    find_chunks,
    make_transcript,
    segment_of,
)

MIN_PIECE_S = 0.05  # a chunk of a long recording shorter than this is not decoded

Audio = str | Path | np.ndarray  # a file, or a float32 wave [N] (mono) or [N, C]


class Transcriber:
    """Audio -> `Transcript` (text, words with times and confidences), with one model and one
    decoder.

    recognizer: features + acoustic model, asr.recognize.Recognizer (PyTorch) or
    asr.onnx_transcribe.OnnxRecognizer (ONNX Runtime), which both give `log_probs(waves)`,
    `align_words(...)`, `tokens`, `text_norm`, `sample_rate`, `window_samples` and
    `seconds_per_output_frame`; decoder: any decoder of asr.decoding (`(log_probs [B, T', V],
    out_lens [B]) -> hypotheses`); max_chunk_s: the longest piece decoded at once, in
    seconds."""

    def __init__(self, recognizer, decoder, max_chunk_s: float = MAX_CHUNK_S):
        self.recognizer = recognizer
        self.decoder = decoder
        self.max_chunk_s = max_chunk_s

    @property
    def sample_rate(self) -> int:
        """The model's sample rate (Hz); audio of other rates is resampled to it."""
        return self.recognizer.sample_rate

    def transcribe(self, audio: Audio, sample_rate: int | None = None) -> Transcript:
        """One recording: a path (any format and rate), or a wave (float32 [N], or [N, C] whose
        channels are averaged) at `sample_rate` Hz (default: the model's)."""
        return self.transcribe_batch([audio], sample_rate)[0]

    def transcribe_batch(self, audios: Sequence[Audio], sample_rate: int | None = None
                         ) -> list[Transcript]:
        """Several recordings (as `transcribe` takes them), their chunks batched through the
        acoustic model -> one transcript each, in order. An unreadable file raises
        asr.audio.AudioError (a ValueError naming it)."""
        waves, paths = [], []
        for audio in audios:
            if isinstance(audio, (str, Path)):
                waves.append(load_audio(audio, self.sample_rate))
                paths.append(str(audio))
            else:
                waves.append(self.as_wave(audio, sample_rate))
                paths.append("")
        return self.transcribe_waves(waves, paths)

    def as_wave(self, wave: np.ndarray, sample_rate: int | None) -> np.ndarray:
        """wave [N] or [N, C] at `sample_rate` -> mono float32 [N'] at the model's rate."""
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim == 2:
            wave = wave.mean(axis=1)  # (N, C) -> (N,)
        if wave.ndim != 1:
            raise ValueError(f"expected a wave of shape (N,) or (N, C), got {wave.shape}")
        rate = sample_rate or self.sample_rate
        return wave if rate == self.sample_rate else resample(wave, rate, self.sample_rate)

    def transcribe_waves(self, waves: Sequence[np.ndarray], paths: Sequence[str] | None = None
                         ) -> list[Transcript]:
        """Waves (float32 [N_i] at the model's rate) -> their transcripts; `paths` name them."""
        paths = list(paths) if paths is not None else [""] * len(waves)
        sr = self.sample_rate
        pieces = [(i, start, end) for i, wave in enumerate(waves)
                  for start, end in self.pieces(wave)]
        words = {}  # (wave index, start sample) -> the piece's words
        for batch in self.batches(pieces):
            log_probs, out_lens = self.recognizer.log_probs(
                [waves[i][start:end] for i, start, end in batch])  # (B, T', V), (B,)
            hyps = self.decoder(log_probs, out_lens)
            for b, (i, start, _) in enumerate(batch):
                tokens = list(hyps[b][0].tokens) if hyps[b] else []
                words[i, start] = self.recognizer.align_words(
                    log_probs[b, : int(out_lens[b])], tokens, start / sr)  # (T'_b, V)
        transcripts = []
        for i, wave in enumerate(waves):
            segments = [segment_of(words[i, start]) for j, start, _ in pieces
                        if j == i and words[i, start]]
            transcripts.append(make_transcript(paths[i], wave, sr, segments))
        return transcripts

    def pieces(self, wave: np.ndarray) -> list[tuple[int, int]]:
        """(start, end) samples of the pieces of `wave` to decode, in order: the whole wave when
        it fits in one chunk (silence and all, as `asr decode` and training see a corpus file:
        cutting the silence off would change what utterance CMN subtracts), else its chunks cut
        at pauses; none when there is no speech or too little audio for one feature frame."""
        sr, window = self.sample_rate, self.recognizer.window_samples
        chunks = find_chunks(wave, sr, self.max_chunk_s)  # [] when there is no speech at all
        if chunks and len(wave) <= self.max_chunk_s * sr:
            return [(0, len(wave))] if len(wave) >= window else []
        min_samples = max(window, int(MIN_PIECE_S * sr))
        return [(start, end) for start, end in chunks if end - start >= min_samples]

    def batches(self, pieces: list[tuple[int, int, int]]) -> list[list[tuple[int, int, int]]]:
        """Pieces (wave, start, end), sorted by length, in batches of at most
        BATCH_AUDIO_SECONDS of padded audio."""
        budget = BATCH_AUDIO_SECONDS * self.sample_rate
        batches: list[list[tuple[int, int, int]]] = []
        for piece in sorted(pieces, key=lambda p: p[2] - p[1]):  # the newest is the longest
            if batches and (piece[2] - piece[1]) * (len(batches[-1]) + 1) <= budget:
                batches[-1].append(piece)
            else:
                batches.append([piece])
        return batches


def load(checkpoint: str | Path, lm: str | Path | None = None, decoder: str | None = None,
         beam: int = DEFAULT_BEAM, alpha: float = DEFAULT_ALPHA, beta: float = DEFAULT_BETA,
         hotwords: Iterable[str | tuple[str, float]] = (), device: str = "auto",
         max_chunk_s: float = MAX_CHUNK_S) -> Transcriber:
    """A checkpoint (.pt, run on PyTorch) or an exported ONNX model (.onnx, run on ONNX Runtime
    without importing torch) ready to transcribe.

    lm: an ARPA word n-gram for shallow fusion; decoder: "greedy" or "beam" (default: "beam"
    with an LM or hotwords, else "greedy"); beam, alpha, beta: beam width, LM weight and word
    bonus (asr.decoding's defaults); hotwords: words to bias the beam search towards, each
    `WORD`, `WORD:WEIGHT` or (word, weight), normalised as the training transcripts were;
    device: "auto" (CUDA when there is one), "cpu" or "cuda". ValueError for an LM or hotwords
    with the greedy decoder; asr.checkpoint.CheckpointError for a file that is not a checkpoint
    (a TorchScript export among them), asr.onnx_transcribe.OnnxModelError for an .onnx file
    that is not an export.
    """
    hotwords = tuple(hotwords)
    if Path(checkpoint).suffix.lower() == ".onnx":
        from asr.onnx_transcribe import OnnxRecognizer

        recognizer = OnnxRecognizer(checkpoint, device)
    else:
        from asr.recognize import Recognizer

        recognizer = Recognizer.from_checkpoint(checkpoint, device)
    kind = decoder or ("beam" if lm or hotwords else "greedy")
    return Transcriber(recognizer, make_decoder(recognizer.tokens, kind, beam,
                                                str(lm) if lm else None, alpha, beta,
                                                recognizer.text_norm, hotwords), max_chunk_s)
