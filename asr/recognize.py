"""From a checkpoint to text: `Recognizer` runs audio -> features -> model -> decoder.

`asr decode` scores a data dir (hyp.txt, wer.txt); `asr tune-lm` grid-searches the LM weight and
word bonus on a dev set, computing the acoustic log-probs once.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr.audio import AudioError, load_audio
from asr.checkpoint import CheckpointError, load_checkpoint
from asr.config import from_dict
from asr.datadir import read_data_dir
from asr.decoding import BeamSearchDecoder, BeamSearchOptions, GreedyDecoder
from asr.features import FeatureConfig, compute_features
from asr.model import CTCModel, ModelConfig, flush_denormals
from asr.scoring import format_report, score

BATCH_AUDIO_SECONDS = 120.0  # audio per forward pass when decoding many files


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Recognizer:
    """A trained model with its feature settings and tokens, ready to turn audio into
    log-probabilities."""

    def __init__(self, model: CTCModel, tokens: list[str], feature_config: FeatureConfig,
                 device: torch.device):
        flush_denormals()
        self.model = model.to(device).eval()
        self.tokens = tokens
        self.feature_config = feature_config
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> Recognizer:
        ckpt = load_checkpoint(path)
        model_cfg = from_dict(ModelConfig, ckpt["model_config"], f"{path}: model_config")
        model = CTCModel(model_cfg, len(ckpt["tokens"]))
        model.load_state_dict(ckpt["model"])
        feature_config = FeatureConfig.from_dict(ckpt["feature_config"])
        return cls(model, ckpt["tokens"], feature_config, pick_device(device))

    @property
    def sample_rate(self) -> int:
        return self.feature_config.sample_rate

    @property
    def seconds_per_output_frame(self) -> float:
        """Time between two model output frames (feature hop times subsampling)."""
        return self.feature_config.frame_shift_ms / 1000 * self.model.cfg.subsample

    @torch.no_grad()
    def log_probs(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """waves: B float32 arrays [N_b] at `sample_rate` ->
        (log_probs [B, T', V] on the CPU, out_lens [B])."""
        wave_lens = torch.tensor([len(w) for w in waves])
        batch = torch.zeros(len(waves), int(wave_lens.max()))
        for b, w in enumerate(waves):
            batch[b, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
        feats, feat_lens = compute_features(
            batch.to(self.device), wave_lens.to(self.device), self.feature_config
        )
        log_probs, out_lens = self.model(feats, feat_lens)
        return log_probs.cpu(), out_lens.cpu()


def make_decoder(tokens, kind: str, beam: int = 16, lm_path: str | None = None,
                 alpha: float = 0.5, beta: float = 1.0):
    if kind == "greedy":
        return GreedyDecoder(tokens)
    lm = None
    if lm_path:
        from asr.lm import NgramLM

        lm = NgramLM.read_arpa(lm_path)
    options = BeamSearchOptions(beam_width=beam, alpha=alpha if lm else 0.0,
                                beta=beta if lm else 0.0)
    return BeamSearchDecoder(tokens, options, lm=lm)


@dataclass
class AcousticOutput:
    """Per-utterance log-probs of a data set, kept so that several decoders can reuse them."""

    utt_ids: list[str]
    refs: dict[str, str]
    log_probs: list[torch.Tensor]  # each [T'_i, V]
    failed: dict[str, str]  # utt_id -> why its audio could not be used
    seconds: float  # wall time of the forward passes
    audio_seconds: float


def run_acoustic(recognizer: Recognizer, data_dir: str | Path) -> AcousticOutput:
    """Load every utterance of a data dir and compute its log-probs, in length-sorted batches.
    Unreadable audio is reported and skipped."""
    utts = read_data_dir(data_dir)
    waves, failed = {}, {}
    for utt in utts:
        try:
            waves[utt.utt_id] = load_audio(utt.audio, recognizer.sample_rate)
        except AudioError as e:
            failed[utt.utt_id] = str(e)
            print(f"skipping {utt.utt_id}: {e}", file=sys.stderr)
    order = sorted(waves, key=lambda u: len(waves[u]))
    outputs: dict[str, torch.Tensor] = {}
    budget = BATCH_AUDIO_SECONDS * recognizer.sample_rate
    start = time.time()
    batch: list[str] = []
    with tqdm(total=len(order), desc="acoustic model", unit="utt", mininterval=2.0) as bar:
        for i, utt_id in enumerate(order):
            batch.append(utt_id)
            last = i == len(order) - 1
            if last or len(waves[order[i + 1]]) * (len(batch) + 1) > budget:
                try:
                    log_probs, out_lens = recognizer.log_probs([waves[u] for u in batch])
                except ValueError as e:  # e.g. audio shorter than one feature frame
                    for u in batch:
                        failed[u] = str(e)
                else:
                    for b, u in enumerate(batch):
                        outputs[u] = log_probs[b, : out_lens[b]]
                bar.update(len(batch))
                batch = []
    seconds = time.time() - start
    audio_seconds = sum(len(w) for w in waves.values()) / recognizer.sample_rate
    kept = [u.utt_id for u in utts if u.utt_id in outputs]
    return AcousticOutput(kept, {u.utt_id: u.text for u in utts},
                          [outputs[u] for u in kept], failed, seconds, audio_seconds)


def decode_all(decoder, acoustic: AcousticOutput, batch_size: int = 32) -> dict[str, str]:
    hyps = {}
    for start in range(0, len(acoustic.utt_ids), batch_size):
        ids = acoustic.utt_ids[start : start + batch_size]
        chunk = acoustic.log_probs[start : start + batch_size]
        out_lens = torch.tensor([lp.size(0) for lp in chunk])
        padded = torch.nn.utils.rnn.pad_sequence(chunk, batch_first=True)
        for utt_id, nbest in zip(ids, decoder(padded, out_lens)):
            hyps[utt_id] = nbest[0].text if nbest else ""
    return hyps


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


# ---------------------------------------------------------------------------------------------
# asr decode


def add_decode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", metavar="DATA_SET_DIR")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True, help="writes OUT/hyp.txt and OUT/wer.txt")
    parser.add_argument("--decoder", choices=["greedy", "beam"], default="greedy")
    parser.add_argument("--beam", type=int, default=16, help="beam width (default 16)")
    parser.add_argument("--lm", help="ARPA word n-gram for shallow fusion (beam only)")
    parser.add_argument("--alpha", type=float, default=0.5, help="LM weight")
    parser.add_argument("--beta", type=float, default=1.0, help="word insertion bonus")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 if any utterance's audio could not be used")
    parser.add_argument("--dump-log-probs", metavar="FILE.npz",
                        help="also save the log-probs (input of bench/decode.py)")


def run_decode(args) -> int:
    try:
        recognizer = Recognizer.from_checkpoint(args.checkpoint, args.device)
    except CheckpointError as e:
        print(f"asr decode: {e}", file=sys.stderr)
        return 2
    if args.lm and args.decoder != "beam":
        print("asr decode: --lm needs --decoder beam", file=sys.stderr)
        return 2
    decoder = make_decoder(recognizer.tokens, args.decoder, args.beam, args.lm, args.alpha,
                           args.beta)  # first: a bad LM file fails before the long part
    acoustic = run_acoustic(recognizer, args.data_dir)
    if args.dump_log_probs:
        dump_log_probs(acoustic, recognizer.tokens, args.dump_log_probs)
    start = time.time()
    hyps = decode_all(decoder, acoustic)
    decode_seconds = time.time() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_kaldi_text(out / "hyp.txt", hyps)
    write_kaldi_text(out / "ref.txt", acoustic.refs)
    report = score(acoustic.refs, hyps)
    text = format_report(report)
    (out / "wer.txt").write_text(text)
    summary = {
        "set": Path(args.data_dir).name, "data_dir": str(Path(args.data_dir).resolve()),
        "wer": report.wer, "cer": report.cer, "utterances": len(hyps),  # percent
        "failed": acoustic.failed, "decoder": args.decoder, "beam": args.beam,
        "lm": args.lm, "alpha": args.alpha, "beta": args.beta,
        "acoustic_seconds": acoustic.seconds, "decode_seconds": decode_seconds,
        "audio_seconds": acoustic.audio_seconds,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(text.split("\n\n")[0])
    print(f"wrote {out / 'hyp.txt'} and {out / 'wer.txt'}")
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
    parser.add_argument("--beam", type=int, default=16)
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.2, 0.4, 0.6, 0.8, 1.0])
    parser.add_argument("--betas", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0])
    parser.add_argument("--out", help="write the grid and the best values as JSON here")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])


def run_tune_lm(args) -> int:
    recognizer = Recognizer.from_checkpoint(args.checkpoint, args.device)
    from asr.lm import NgramLM

    lm = NgramLM.read_arpa(args.lm)
    acoustic = run_acoustic(recognizer, args.data_dir)
    grid = []
    for alpha, beta in tqdm(list(itertools.product(args.alphas, args.betas)), desc="grid"):
        options = BeamSearchOptions(beam_width=args.beam, alpha=alpha, beta=beta)
        hyps = decode_all(BeamSearchDecoder(recognizer.tokens, options, lm=lm), acoustic)
        report = score(acoustic.refs, hyps)
        grid.append({"alpha": alpha, "beta": beta, "wer": report.wer, "cer": report.cer})
    best = min(grid, key=lambda g: (g["wer"], g["cer"]))
    print("alpha  beta    WER%    CER%")
    for g in grid:
        mark = "  <- best" if g is best else ""
        print(f"{g['alpha']:5.2f} {g['beta']:5.2f} {g['wer']:7.2f} {g['cer']:7.2f}{mark}")
    if args.out:
        Path(args.out).write_text(json.dumps({"best": best, "grid": grid}, indent=2))
    return 0
