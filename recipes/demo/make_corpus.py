"""Synthesise the demo corpus: spoken digit strings ("FOUR ONE FIVE FIVE TWO") in espeak-ng voices.

Run through `recipes/demo/make_corpus.sh`, which checks the tools first. Writes
`OUT/<set>/<voice>_<NNNN>.flac` (8 kHz mono 16-bit) with a one-line transcript beside it in
`<voice>_<NNNN>.txt`, for the sets `train` and `test`, and `OUT/utterances.tsv` with the settings
of every utterance. The `folder` importer reads that layout (set = subdirectory, speaker = stem
up to the first `_`).

Everything random is drawn from one seeded generator in a fixed order, so a rerun writes the same
transcripts and, with the same espeak-ng, sox and libsndfile, the same FLAC bytes.

Per utterance: 3-8 digits, spoken in phone-number groups ("four one five, five two") half of the
time; a random speed, pitch and word gap; silence trimmed to a random 0.10-0.20 s either side;
a random level; pink noise at a random signal-to-noise ratio.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

SEED = 2024
SAMPLE_RATE_HZ = 8000  # telephone band, like the phone numbers spoken; keeps the FLACs small
# 16-bit samples on a grid of 2**(16 - 12): quantisation noise (-77 dBFS) stays below the added
# noise of every utterance, and FLAC stores the 4 zero low bits for free (7.5 MB, not 12 MB)
SIGNIFICANT_BITS = 12

DIGIT_WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")

# name (no `_` or `-`: the importer cuts the speaker at `_`) -> espeak-ng voice `language+variant`
TRAIN_VOICES = {
    "usm1": "en-us+m1",  # US English, male 1 (low, older)
    "gbm3": "en+m3",  # British English, male 3
    "scm7": "en-gb-scotland+m7",  # Scottish English, male 7 (dark)
    "cbm4": "en-029+m4",  # Caribbean English, male 4
    "usf2": "en-us+f2",  # US English, female 2
    "gbf4": "en+f4",  # British English, female 4
    "rpf1": "en-gb-x-rp+f1",  # Received Pronunciation, female 1
    "usklatt2": "en-us+klatt2",  # US English through the Klatt formant synthesiser
}
# voices heard only in the test set: variants not in training, and for nyf5 a new accent too
HELDOUT_VOICES = {
    "nyf5": "en-us-nyc+f5",  # New York City English, female 5
    "usdavid": "en-us+david",  # US English, "david": very low pitch
    "gbannie": "en+Annie",  # British English, "Annie": high pitch, short vocal tract
}
TRAIN_UTTS_PER_VOICE = 50  # 8 voices -> 400 train utterances
HELDOUT_UTTS_PER_VOICE = 20  # 3 voices -> 60 test utterances
SEEN_TEST_UTTS_PER_VOICE = 5  # 8 voices -> 40 more test utterances, of training voices

MIN_DIGITS, MAX_DIGITS = 3, 8
GROUPED_FRACTION = 0.5  # spoken as a phone number, with a pause (comma) between groups
GROUP_SIZES = {4: (2, 2), 5: (2, 3), 6: (3, 3), 7: (3, 4), 8: (4, 4)}
SPEED_WPM = (130, 200)  # espeak-ng -s
PITCH = (30, 70)  # espeak-ng -p, 0-99 around the variant's own pitch
WORD_GAP_10MS = (0, 2)  # espeak-ng -g, extra pause between words
TRIM_THRESHOLD = "0.1%"  # sox silence: level below which the ends count as silence
PAD_S = (0.10, 0.20)  # silence kept (as noise) before and after the speech
PEAK_DBFS = (-16.0, -4.0)  # level of the loudest sample
SNR_DB = (15.0, 40.0)  # speech power / noise power, over the speech before padding


@dataclass(frozen=True)
class Utterance:
    """One utterance to synthesise, with every random choice already made."""

    set_name: str
    voice: str  # our name, e.g. "usm1"
    espeak_voice: str  # e.g. "en-us+m1"
    number: int  # per voice, unique across sets
    digits: tuple[int, ...]
    grouped: bool
    speed_wpm: int
    pitch: int
    word_gap: int
    pad_s: tuple[float, float]
    peak_dbfs: float
    snr_db: float
    noise_seed: int

    @property
    def utt_id(self) -> str:
        return f"{self.voice}_{self.number:04d}"

    @property
    def transcript(self) -> str:
        return " ".join(DIGIT_WORDS[d] for d in self.digits)

    @property
    def spoken_text(self) -> str:
        """What espeak-ng reads: lower-case digit words, commas between phone-number groups."""
        words = [DIGIT_WORDS[d].lower() for d in self.digits]
        if not self.grouped:
            return " ".join(words)
        groups, start = [], 0
        for size in GROUP_SIZES[len(words)]:
            groups.append(" ".join(words[start : start + size]))
            start += size
        return ", ".join(groups)


def draw_utterance(
    rng: np.random.Generator, set_name: str, voice: str, espeak_voice: str, number: int
) -> Utterance:
    num_digits = int(rng.integers(MIN_DIGITS, MAX_DIGITS + 1))
    digits = tuple(int(d) for d in rng.integers(0, 10, size=num_digits))
    grouped = num_digits in GROUP_SIZES and bool(rng.random() < GROUPED_FRACTION)
    return Utterance(
        set_name=set_name,
        voice=voice,
        espeak_voice=espeak_voice,
        number=number,
        digits=digits,
        grouped=grouped,
        speed_wpm=int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)),
        pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
        word_gap=int(rng.integers(WORD_GAP_10MS[0], WORD_GAP_10MS[1] + 1)),
        pad_s=(round(float(rng.uniform(*PAD_S)), 3), round(float(rng.uniform(*PAD_S)), 3)),
        peak_dbfs=round(float(rng.uniform(*PEAK_DBFS)), 1),
        snr_db=round(float(rng.uniform(*SNR_DB)), 1),
        noise_seed=int(rng.integers(2**31)),
    )


def plan_corpus(seed: int) -> list[Utterance]:
    """All utterances of both sets, in a fixed order; the only place randomness is drawn."""
    rng = np.random.default_rng(seed)
    plan = []
    for voice, espeak_voice in TRAIN_VOICES.items():
        for number in range(TRAIN_UTTS_PER_VOICE + SEEN_TEST_UTTS_PER_VOICE):
            set_name = "train" if number < TRAIN_UTTS_PER_VOICE else "test"
            plan.append(draw_utterance(rng, set_name, voice, espeak_voice, number))
    for voice, espeak_voice in HELDOUT_VOICES.items():
        for number in range(HELDOUT_UTTS_PER_VOICE):
            plan.append(draw_utterance(rng, "test", voice, espeak_voice, number))
    return plan


def synthesise(utt: Utterance, sample_rate: int) -> np.ndarray:
    """espeak-ng speaks the text; sox resamples and trims the silence at both ends.

    Returns float32 [N] in [-1, 1] at `sample_rate`.
    """
    espeak = ["espeak-ng", "-v", utt.espeak_voice, "-s", str(utt.speed_wpm)]
    espeak += ["-p", str(utt.pitch), "-g", str(utt.word_gap), "--stdout", utt.spoken_text]
    # -D: no dither (noise is added later anyway); output raw float32 mono at sample_rate
    sox = ["sox", "-D", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32"]
    sox += ["-c", "1", "-r", str(sample_rate), "-"]
    # trim the start, reverse, trim the (old) end, reverse back
    trim = ["silence", "1", "0.005", TRIM_THRESHOLD]
    sox += trim + ["reverse"] + trim + ["reverse"]
    wav = subprocess.run(espeak, capture_output=True, check=True).stdout
    raw = subprocess.run(sox, input=wav, capture_output=True, check=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


def pink_noise(rng: np.random.Generator, num_samples: int) -> np.ndarray:
    """Unit-power noise with a 1/f power spectrum (flat below 50 Hz at 8 kHz). [N]"""
    num_bins = num_samples // 2 + 1
    spectrum = rng.standard_normal(num_bins) + 1j * rng.standard_normal(num_bins)
    bins = np.arange(num_bins)  # bin b is b * sample_rate / num_samples Hz
    spectrum /= np.sqrt(np.maximum(bins, max(1, num_samples // 160)))
    noise = np.fft.irfft(spectrum, n=num_samples)
    return noise / np.sqrt(np.mean(noise**2))


def finish(speech: np.ndarray, utt: Utterance, sample_rate: int) -> np.ndarray:
    """Pad with silence, add noise at the utterance's SNR, set the peak level, quantise.

    speech: float [N] -> int16 [N + padding], multiples of 2**(16 - SIGNIFICANT_BITS).
    """
    speech_power = float(np.mean(speech.astype(np.float64) ** 2))
    pads = [round(s * sample_rate) for s in utt.pad_s]
    wave = np.concatenate([np.zeros(pads[0]), speech, np.zeros(pads[1])])
    noise = pink_noise(np.random.default_rng(utt.noise_seed), len(wave))
    wave = wave + noise * np.sqrt(speech_power / 10 ** (utt.snr_db / 10))
    wave *= 10 ** (utt.peak_dbfs / 20) / np.max(np.abs(wave))
    step = 2 ** (16 - SIGNIFICANT_BITS)
    return (np.round(wave * 32768 / step) * step).astype(np.int16)


MANIFEST_COLUMNS = (
    "set utt_id espeak_voice speed_wpm pitch word_gap grouped pad_s peak_dbfs snr_db spoken_text"
)


def manifest_line(utt: Utterance) -> str:
    """One row of utterances.tsv: how the utterance was made."""
    fields = (
        utt.set_name, utt.utt_id, utt.espeak_voice, utt.speed_wpm, utt.pitch, utt.word_gap,
        int(utt.grouped), f"{utt.pad_s[0]:.3f},{utt.pad_s[1]:.3f}", utt.peak_dbfs, utt.snr_db,
        utt.spoken_text,
    )  # fmt: skip
    return "\t".join(str(f) for f in fields)


def write_corpus(out_dir: Path, plan: list[Utterance], sample_rate: int) -> None:
    """Replace OUT/train and OUT/test; write OUT/utterances.tsv (every utterance's settings)."""
    for set_name in ("train", "test"):
        shutil.rmtree(out_dir / set_name, ignore_errors=True)
        (out_dir / set_name).mkdir(parents=True)
    for i, utt in enumerate(plan, 1):
        wave = finish(synthesise(utt, sample_rate), utt, sample_rate)
        stem = out_dir / utt.set_name / utt.utt_id
        sf.write(stem.with_suffix(".flac"), wave, sample_rate, subtype="PCM_16")
        stem.with_suffix(".txt").write_text(utt.transcript + "\n")
        if i % 100 == 0 or i == len(plan):
            print(f"  {i}/{len(plan)} utterances", flush=True)
    rows = [MANIFEST_COLUMNS.replace(" ", "\t")] + [manifest_line(u) for u in plan]
    (out_dir / "utterances.tsv").write_text("\n".join(rows) + "\n")


def check_and_summarise(out_dir: Path, sample_rate: int) -> None:
    """Read every file back; fail on a bad one; print counts, voices, duration and size per set."""
    for set_name in ("train", "test"):
        flacs = sorted((out_dir / set_name).glob("*.flac"))
        durations = []
        for flac in flacs:
            wave, rate = sf.read(flac, dtype="float32")
            durations.append(len(wave) / rate)
            transcript = flac.with_suffix(".txt").read_text().split()
            problem = (
                "not 16-bit" if sf.info(flac).subtype != "PCM_16"
                else "wrong sample rate" if rate != sample_rate
                else "too short or long" if not 0.5 <= durations[-1] <= 6.0
                else "silent" if np.sqrt(np.mean(wave**2)) < 1e-3
                else "bad transcript" if not set(transcript) <= set(DIGIT_WORDS)
                else ""
            )  # fmt: skip
            if problem:
                raise SystemExit(f"{flac}: {problem}")
        voices = sorted({f.stem.split("_")[0] for f in flacs})
        size_mb = sum(f.stat().st_size for f in flacs) / 1e6
        print(
            f"{set_name}: {len(flacs)} utterances, {sum(durations) / 60:.1f} min "
            f"({min(durations):.2f}-{max(durations):.2f} s each), {size_mb:.1f} MB of FLAC, "
            f"voices {' '.join(voices)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="corpus dir; its train/ and test/ are replaced")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE_HZ)
    args = parser.parse_args(argv)

    start = time.monotonic()
    plan = plan_corpus(args.seed)
    print(f"synthesising {len(plan)} utterances into {args.out_dir}")
    write_corpus(args.out_dir, plan, args.sample_rate)
    check_and_summarise(args.out_dir, args.sample_rate)
    print(f"done in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
