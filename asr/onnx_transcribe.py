"""`asr transcribe --checkpoint MODEL.onnx` and `asr.load("MODEL.onnx")`: the same transcripts
from a model that `asr export` wrote, run by ONNX Runtime, with no torch in the process.

audio (asr.audio) -> features in numpy (asr.features_numpy) -> ONNX Runtime (CMVN and the
network) -> the decoders of asr.decoding (greedy, or the beam search with an n-gram LM and
hotwords), as on the PyTorch path -> a CTC forced alignment in numpy (below) -> words, times,
confidences and the output formats of asr.transcript. `OnnxRecognizer` is the twin of
asr.recognize.Recognizer that asr.api.Transcriber runs. Importing torch takes most of the
PyTorch path's time and memory for one file, so nothing here may import it, and greedy decoding
imports no numba either (tests/test_export.py checks).

Python use (asr/api.py):

    model = asr.load("model.onnx", lm="lm.arpa")
    print(model.transcribe("speech.flac").text)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from asr import features_numpy
from asr.decoding import BLANK_ID
from asr.text import TextNormConfig
from asr.transcript import (
    MAX_CHUNK_S,
    Transcript,
    Word,
    run,  # noqa: F401 - `asr transcribe`, as it was offered here before
    words_from_alignment,
)

METADATA_KEY = "asr"  # asr.export.METADATA_KEY (that module imports torch)


class OnnxModelError(RuntimeError):
    """An ONNX file that cannot be run, or was not written by `asr export`."""


# ---------------------------------------------------------------------------------------------
# Alignment in numpy


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
        self.text_norm = TextNormConfig.stored(self.metadata.get("text_norm"), str(path))

    @property
    def sample_rate(self) -> int:
        return int(features_numpy.settings(self.feature_config)["sample_rate"])

    @property
    def window_samples(self) -> int:
        """The shortest audio that gives a feature frame."""
        return int(features_numpy.settings(self.feature_config)["window_samples"])

    def features(self, wave: np.ndarray) -> np.ndarray:
        """wave [N] at `sample_rate` -> the model's input features [T, F] (before CMVN)."""
        return features_numpy.compute_features(wave, self.feature_config)

    def log_probs(self, waves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """waves: B float32 arrays [N_b] at `sample_rate` -> (log_probs [B, T', V],
        out_lens [B])."""
        feats = [self.features(w) for w in waves]
        feat_lens = np.array([len(f) for f in feats], dtype=np.int64)
        batch = np.zeros((len(feats), int(feat_lens.max()), feats[0].shape[1]), np.float32)
        for b, f in enumerate(feats):
            batch[b, : len(f)] = f  # (T_b, F) into the padded (B, T, F)
        log_probs, out_lens = self.session.run(None, {"feats": batch, "feat_lens": feat_lens})
        return log_probs, out_lens

    def align_words(self, log_probs: np.ndarray, token_ids: list[int],
                    offset: float = 0.0) -> list[Word]:
        """log_probs [T', V] of one piece and its decoded tokens -> its words, timed from
        `offset` seconds (as asr.recognize.align_words, with the numpy `forced_align`)."""
        if not token_ids:
            return []
        labels, scores = forced_align(log_probs, token_ids)
        return words_from_alignment(labels, scores, token_ids, self.tokens,
                                    self.seconds_per_output_frame, offset)

    def transcribe(self, wave: np.ndarray, path: str = "",
                   max_chunk_s: float = MAX_CHUNK_S) -> Transcript:
        """wave [N] at `sample_rate` -> its greedy transcript (asr.load gives the other
        decoders)."""
        from asr.api import Transcriber
        from asr.decoding import GreedyDecoder

        transcriber = Transcriber(self, GreedyDecoder(self.tokens), max_chunk_s)
        return transcriber.transcribe_waves([wave], [path])[0]

    def transcribe_file(self, path: str, max_chunk_s: float = MAX_CHUNK_S) -> Transcript:
        from asr.audio import load_audio

        return self.transcribe(load_audio(path, self.sample_rate), path, max_chunk_s)
