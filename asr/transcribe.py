"""The PyTorch side of `asr transcribe`: audio files -> text, with word times and confidences.

A recording that fits in one chunk (`max_chunk_s`) is decoded whole, as `asr decode` decodes a
corpus file, so both give the same words. Longer ones are cut at silences into chunks of at most
`max_chunk_s` (model memory bounded by a batch of chunks, not the recording), and the words
stitched back with the chunk's offset: asr.api.Transcriber does it, for the Python API and both
back ends. Word times come from a CTC forced alignment of the decoded tokens
(`torchaudio.functional.forced_align`, asr.recognize.align_words; its numpy twin on the ONNX
path); a word's confidence is the geometric mean of the posteriors of the frames aligned to its
characters. The command itself (`run`, `add_arguments`), the cutting, the words from an
alignment, the output formats and the --plot picture need no torch and live in
asr/transcript.py, which asr.cli runs for either back end (asr.api.load picks it); their names
are offered here too, as they were before.
"""

from __future__ import annotations

import numpy as np

from asr.api import Transcriber
from asr.decoding import check_lm_arguments, hotword_type, make_decoder  # noqa: F401
from asr.recognize import Recognizer, align_words  # noqa: F401 - also offered here, as before
from asr.transcript import (  # noqa: F401 - also offered here, as they were before
    CUE_MAX_S,
    MAX_CHUNK_S,
    Transcript,
    Word,
    add_arguments,
    find_chunks,
    make_transcript,
    output_names,
    plot_alignment,
    run,
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
