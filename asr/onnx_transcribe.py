"""`asr transcribe --checkpoint MODEL.onnx`: the same transcripts from a model that `asr export`
wrote, run by ONNX Runtime, with no torch in the process.

audio (asr.audio) -> features in numpy (asr.features_numpy) -> ONNX Runtime (CMVN and the
network) -> greedy decoding and a CTC forced alignment in numpy (below) -> words, times,
confidences and the output formats of asr.transcript. Importing torch takes most of the
PyTorch path's time and memory for one file, so nothing here may import it (tests/test_export.py
checks). The beam search and LM (numba, asr.decoding) are not offered here.

Python use:

    recognizer = OnnxRecognizer("model.onnx")
    print(recognizer.transcribe_file("speech.flac").text)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from asr import features_numpy
from asr.audio import AudioError, load_audio
from asr.transcript import (
    MAX_CHUNK_S,
    Transcript,
    TranscriptWriter,
    add_arguments,  # noqa: F401 - the command line of asr transcribe
    find_chunks,
    make_transcript,
    segment_of,
    words_from_alignment,
)

BLANK_ID = 0
METADATA_KEY = "asr"  # asr.export.METADATA_KEY (that module imports torch)
MIN_PIECE_S = 0.05  # chunks shorter than this are skipped, as in asr.transcribe


class OnnxModelError(RuntimeError):
    """An ONNX file that cannot be run, or was not written by `asr export`."""


# ---------------------------------------------------------------------------------------------
# Decoding and alignment in numpy


def greedy_tokens(log_probs: np.ndarray) -> list[int]:
    """log_probs [T', V] -> the best path's tokens: argmax per frame, repeats collapsed, blanks
    dropped (asr.decoding.GreedyDecoder)."""
    ids = log_probs.argmax(-1)
    emitted = (ids != np.concatenate([[-1], ids[:-1]])) & (ids != BLANK_ID)
    return ids[emitted].tolist()


def forced_align(log_probs: np.ndarray, token_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Viterbi CTC alignment of `token_ids` to log_probs [T', V] -> (labels [T'], the token or
    blank of each frame; scores [T'], its log-probability), as
    torchaudio.functional.forced_align gives (float32 sums, ties kept on the same state).

    The states are the targets with blanks around and between them (S = 2U + 1); a state is
    entered from itself, from the one before, or from two before when that skips a blank
    between two different tokens."""
    lp = np.asarray(log_probs, dtype=np.float32)
    T = lp.shape[0]
    S = 2 * len(token_ids) + 1
    ext = np.zeros(S, dtype=np.int64)
    ext[1::2] = token_ids
    can_skip = np.zeros(S, dtype=bool)
    can_skip[3::2] = ext[3::2] != ext[1:-2:2]
    neg_inf = np.float32(-np.inf)
    alpha = np.full(S, neg_inf, dtype=np.float32)
    alpha[0] = lp[0, BLANK_ID]
    if S > 1:
        alpha[1] = lp[0, ext[1]]
    back = np.zeros((T, S), dtype=np.int8)  # 0: stay, 1: from s - 1, 2: from s - 2
    for t in range(1, T):
        stay = alpha
        step = np.concatenate([[neg_inf], alpha[:-1]])
        skip = np.where(can_skip, np.concatenate([[neg_inf, neg_inf], alpha[:-2]]), neg_inf)
        choice = np.where((skip > step) & (skip > stay), 2, np.where(step > stay, 1, 0))
        best = np.choose(choice, [stay, step, skip])
        back[t] = choice
        alpha = (best + lp[t, ext]).astype(np.float32)
    state = S - 1 if S == 1 or alpha[S - 1] > alpha[S - 2] else S - 2
    path = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = state
        state -= back[t, state]
    labels = ext[path]
    return labels, lp[np.arange(T), labels]


# ---------------------------------------------------------------------------------------------
# The model


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise OnnxModelError("--device cuda: this onnxruntime has no CUDA provider "
                                 f"(it has {', '.join(available)})")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRecognizer:
    """An exported model with its tokens and feature settings, ready to turn audio into
    log-probabilities and transcripts."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0):
        """`threads`: ONNX Runtime's intra-op threads (0: its default, one per core)."""
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise OnnxModelError(f"{path}: no such model file")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=_providers(device))
        except OnnxModelError:
            raise
        except Exception as e:  # onnxruntime's own exception types (InvalidProtobuf, Fail, ...)
            raise OnnxModelError(f"{path}: not a model ONNX Runtime can run: {e}") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise OnnxModelError(f"{path}: no {METADATA_KEY!r} metadata; export the model with "
                                 "`asr export --format onnx`")
        self.metadata: dict[str, Any] = json.loads(meta)
        self.tokens: list[str] = self.metadata["tokens"]
        self.feature_config: dict[str, Any] = self.metadata["feature_config"]
        self.seconds_per_output_frame: float = self.metadata["seconds_per_output_frame"]

    @property
    def sample_rate(self) -> int:
        return int(features_numpy.settings(self.feature_config)["sample_rate"])

    def log_probs(self, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """waves: B float32 arrays [N_b] at `sample_rate` -> (log_probs [B, T', V],
        out_lens [B])."""
        feats = [features_numpy.compute_features(w, self.feature_config) for w in waves]
        feat_lens = np.array([len(f) for f in feats], dtype=np.int64)
        batch = np.zeros((len(feats), int(feat_lens.max()), feats[0].shape[1]), np.float32)
        for b, f in enumerate(feats):
            batch[b, : len(f)] = f  # (T_b, F) into the padded (B, T, F)
        log_probs, out_lens = self.session.run(None, {"feats": batch, "feat_lens": feat_lens})
        return log_probs, out_lens

    def transcribe(self, wave: np.ndarray, path: str = "",
                   max_chunk_s: float = MAX_CHUNK_S) -> Transcript:
        """wave [N] at `sample_rate` -> its transcript, as asr.transcribe.transcribe_wave with
        the greedy decoder: a wave that fits in one chunk decoded whole, a longer one cut at
        silences, each chunk decoded and aligned alone."""
        sr = self.sample_rate
        window = features_numpy.settings(self.feature_config)["window_samples"]
        segments = []
        chunks = find_chunks(wave, sr, max_chunk_s)  # [] when there is no speech at all
        min_samples = max(window, int(MIN_PIECE_S * sr))
        if chunks and len(wave) <= max_chunk_s * sr:  # one piece: decoded whole, as asr decode
            chunks, min_samples = [(0, len(wave))], window
        for start, end in chunks:
            piece = wave[start:end]
            if len(piece) < min_samples:
                continue
            log_probs, out_lens = self.log_probs([piece])
            frames = log_probs[0, : int(out_lens[0])]  # (T', V) of this chunk
            token_ids = greedy_tokens(frames)
            if not token_ids:
                continue
            labels, scores = forced_align(frames, token_ids)
            words = words_from_alignment(labels, scores, token_ids, self.tokens,
                                         self.seconds_per_output_frame, start / sr)
            if words:
                segments.append(segment_of(words))
        return make_transcript(path, wave, sr, segments)

    def transcribe_file(self, path: str, max_chunk_s: float = MAX_CHUNK_S) -> Transcript:
        return self.transcribe(load_audio(path, self.sample_rate), path, max_chunk_s)


# ---------------------------------------------------------------------------------------------
# Command line (asr.cli sends `asr transcribe --checkpoint X.onnx` here)


def refuse(args) -> str | None:
    """Why these arguments need the PyTorch back end, if they do."""
    if args.decoder != "greedy" or args.lm:
        return "the ONNX back end decodes greedily; --decoder beam and --lm need a checkpoint (.pt)"
    if args.plot:
        return "--plot needs a checkpoint (.pt)"
    return None


def run(args) -> int:
    reason = refuse(args)
    if reason:
        print(f"asr transcribe: {reason}", file=sys.stderr)
        return 2
    try:
        recognizer = OnnxRecognizer(args.checkpoint, args.device)
    except OnnxModelError as e:
        print(f"asr transcribe: {e}", file=sys.stderr)
        return 2
    writer = TranscriptWriter(args.files, args.out, args.format)
    failures = 0
    for path in args.files:
        try:
            result = recognizer.transcribe_file(path, args.max_chunk)
        except AudioError as e:
            print(f"asr transcribe: {e}", file=sys.stderr)
            failures += 1
            continue
        writer.write(path, result)
    if failures:
        print(f"asr transcribe: {failures} of {len(args.files)} file(s) could not be read",
              file=sys.stderr)
    return 1 if failures else 0
