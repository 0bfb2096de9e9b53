"""Start-up, latency and memory of one 10-s file through the three back ends: the PyTorch
checkpoint, its TorchScript export and its ONNX export (ONNX Runtime, no torch).

    python bench/export.py                       # an untrained model of the default size
    python bench/export.py --checkpoint exp/best.pt --threads 1
    python bench/export.py --lm data/lm/lm.arpa  # beam search + LM (asr.decoding's defaults)

Every measurement runs in a fresh process, as `asr transcribe` does:
- load: from the child's first line to a model ready to run (imports included: torch's are most
  of it), median of --repeats;
- latency: transcribing the 10-s file once loaded (cut at silences, features, model, greedy
  decoding or, with --lm, beam search + LM, forced alignment, words), median of --repeats;
- `asr transcribe`: the whole command on the file, interpreter start-up included;
- peak RSS: the largest resident set of those processes (getrusage of each child).
Times are wall-clock with CPU time (user + system) beside them: on a machine busy with other
work the CPU time is the steadier figure. The file is tone-language audio
(tests/helpers_train.py); `same words` checks each back end's transcript against the PyTorch
one. Without --checkpoint the model is an untrained CTCModel of the default config
(3 x BiLSTM 256, 80 fbank bins): the size a recipe trains, words meaningless but comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILE_SECONDS = 10.0

# Each child prints one JSON line: {"load_s", "latency_s", "text"}. {ckpt}, {wav}, {threads},
# {decoder} and {lm} are filled in; t0 is taken before any import. The decoder (and its LM) is
# made in `load`; numba compiles the beam search once per machine and caches it.
CHILD_PYTORCH = """
import time; t0, c0 = time.perf_counter(), time.process_time()
import json, torch
if {threads}: torch.set_num_threads({threads})
from asr.audio import load_audio
from asr.recognize import Recognizer
from asr.decoding import make_decoder
from asr.transcribe import transcribe_wave
rec = Recognizer.from_checkpoint({ckpt!r}, "cpu")
decoder = make_decoder(rec.tokens, {decoder!r}, lm_path={lm!r}, text_norm=rec.text_norm)
t1, c1 = time.perf_counter(), time.process_time()
result = transcribe_wave(rec, decoder, load_audio({wav!r}, rec.sample_rate))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"load_s": t1 - t0, "latency_s": t2 - t1, "load_cpu_s": c1 - c0,
                  "latency_cpu_s": c2 - c1, "text": result.text}}))
"""

CHILD_TORCHSCRIPT = """
import time; t0, c0 = time.perf_counter(), time.process_time()
import json, torch
if {threads}: torch.set_num_threads({threads})
from asr.audio import load_audio
from asr.decoding import make_decoder
from asr.export import load_torchscript
from asr.features import FeatureConfig
from asr.recognize import Recognizer
from asr.transcribe import transcribe_wave

class Scripted(Recognizer):  # Recognizer's feature and batching code around a scripted model
    def __init__(self, path):
        self.model, self.meta = load_torchscript(path)
        self.tokens = self.meta["tokens"]
        self.feature_config = FeatureConfig.from_dict(self.meta["feature_config"])
        self.device = torch.device("cpu")
        self.text_norm = None
    @property
    def seconds_per_output_frame(self):
        return self.meta["seconds_per_output_frame"]

rec = Scripted({ckpt!r})
decoder = make_decoder(rec.tokens, {decoder!r}, lm_path={lm!r})
t1, c1 = time.perf_counter(), time.process_time()
result = transcribe_wave(rec, decoder, load_audio({wav!r}, rec.sample_rate))
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"load_s": t1 - t0, "latency_s": t2 - t1, "load_cpu_s": c1 - c0,
                  "latency_cpu_s": c2 - c1, "text": result.text}}))
"""

CHILD_ONNX = """
import time; t0, c0 = time.perf_counter(), time.process_time()
import json, sys
from asr.api import Transcriber
from asr.decoding import make_decoder
from asr.onnx_transcribe import OnnxRecognizer
rec = OnnxRecognizer({ckpt!r}, "cpu", threads={threads})
model = Transcriber(rec, make_decoder(rec.tokens, {decoder!r}, lm_path={lm!r},
                                      text_norm=rec.text_norm))
t1, c1 = time.perf_counter(), time.process_time()
result = model.transcribe({wav!r})
t2, c2 = time.perf_counter(), time.process_time()
assert "torch" not in sys.modules
print(json.dumps({{"load_s": t1 - t0, "latency_s": t2 - t1, "load_cpu_s": c1 - c0,
                  "latency_cpu_s": c2 - c1, "text": result.text}}))
"""


def run_measured(cmd: list[str], env: dict) -> tuple[str, float, float, float]:
    """Run `cmd` -> (its stdout, wall seconds, CPU seconds, its peak RSS in MB). A small
    wrapper process runs it, so that RUSAGE_CHILDREN holds that one command alone."""
    wrapper = ("import os, sys, time, json, subprocess\n"
               "t = time.perf_counter()\n"
               "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE,"
               " stderr=subprocess.PIPE)\n"
               "out, err = p.communicate()\n"
               "wall = time.perf_counter() - t\n"
               "import resource\n"
               "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "peak, cpu = use.ru_maxrss / 1024, use.ru_utime + use.ru_stime\n"
               "sys.stderr.write(err.decode())\n"
               "print(json.dumps({'out': out.decode(), 'wall': wall, 'cpu': cpu,"
               " 'peak_mb': peak, 'rc': p.returncode}))\n")
    proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    if report["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed:\n{proc.stderr[-3000:]}")
    return report["out"], report["wall"], report["cpu"], report["peak_mb"]


def make_inputs(work: Path, checkpoint: str | None) -> tuple[Path, Path]:
    """-> (checkpoint, 10-s wav) in `work`."""
    sys.path.insert(0, str(ROOT / "tests"))
    import numpy as np
    import soundfile as sf
    from helpers_train import SR, sentences, tone_wave

    pieces, n = [], 0
    while sum(len(p) for p in pieces) < FILE_SECONDS * SR:
        pieces.append(tone_wave(sentences(1, n)[0] + " ", seed=n, lead_s=0.3, tail_s=0.3))
        n += 1
    wave = np.concatenate(pieces)[: int(FILE_SECONDS * SR)]
    wav = work / "ten_seconds.wav"
    sf.write(wav, wave, SR, subtype="PCM_16")
    if checkpoint:
        return Path(checkpoint), wav
    import torch

    from asr.checkpoint import save_checkpoint
    from asr.config import to_dict
    from asr.features import FeatureConfig
    from asr.model import CTCModel, ModelConfig

    torch.manual_seed(0)
    tokens = ["<blank>", "|", *"ABCDE"]
    cfg = ModelConfig(subsample=4)
    model = CTCModel(cfg, len(tokens))
    ckpt = work / "untrained.pt"
    save_checkpoint({"model": model.state_dict(), "model_config": to_dict(cfg),
                     "vocab_size": len(tokens), "tokens": tokens,
                     "feature_config": FeatureConfig().to_dict()}, ckpt)
    return ckpt, wav


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="a trained checkpoint (default: an untrained model "
                        "of the default config)")
    parser.add_argument("--threads", type=int, default=0,
                        help="threads for torch and ONNX Runtime (0: their defaults)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lm", help="an ARPA LM: decode by beam search with it (default: "
                        "greedy)")
    args = parser.parse_args()
    decoder, lm = ("beam", str(Path(args.lm).resolve())) if args.lm else ("greedy", None)
    decoding = ["--decoder", "beam", "--lm", lm] if lm else []
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    python = sys.executable
    asr = [python, "-m", "asr.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ckpt, wav = make_inputs(work, args.checkpoint)
        ts, onnx = work / "model.ts", work / "model.onnx"
        for fmt, out in (("torchscript", ts), ("onnx", onnx)):
            subprocess.run([*asr, "export", "--checkpoint", str(ckpt), "--format", fmt,
                            "--out", str(out)], cwd=ROOT, env=env, check=True,
                           capture_output=True)
        backends = [("PyTorch checkpoint", CHILD_PYTORCH, ckpt),
                    ("TorchScript", CHILD_TORCHSCRIPT, ts),
                    ("ONNX Runtime (no torch)", CHILD_ONNX, onnx)]
        rows, reference = [], None
        for name, child, model in backends:
            code = child.format(ckpt=str(model), wav=str(wav), threads=args.threads,
                                decoder=decoder, lm=lm)
            runs, peaks = [], []
            for _ in range(args.repeats):
                out, _, _, peak = run_measured([python, "-c", code], env)
                runs.append(json.loads(out.strip().splitlines()[-1]))
                peaks.append(peak)
            row = {"name": name, "peak": max(peaks), "same": runs[-1]["text"] == (
                reference := runs[-1]["text"] if reference is None else reference)}
            for key in ("load_s", "latency_s", "load_cpu_s", "latency_cpu_s"):
                row[key] = statistics.median(r[key] for r in runs)
            if name != "TorchScript":  # the command a user runs
                cli = [run_measured([*asr, "transcribe", "--checkpoint", str(model), str(wav),
                                     *decoding], env) for _ in range(args.repeats)]
                row["cli"] = (statistics.median(c[1] for c in cli),
                              statistics.median(c[2] for c in cli), max(c[3] for c in cli))
            rows.append(row)
    model_name = args.checkpoint or "untrained model of the default config"
    print(f"One {FILE_SECONDS:.0f}-s file, {model_name}, threads {args.threads or 'default'}, "
          f"{f'beam search + {args.lm}' if lm else 'greedy'}, median of {args.repeats} fresh "
          "processes; wall time (CPU time)\n")
    print("| back end | load (imports + model) | latency, 10-s file | peak RSS | "
          "`asr transcribe` | its peak RSS | same words |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cli = r.get("cli")
        cli_time = f"{cli[0]:.2f} s ({cli[1]:.2f} s)" if cli else "-"
        cli_peak = f"{cli[2]:.0f} MB" if cli else "-"
        print(f"| {r['name']} | {r['load_s']:.2f} s ({r['load_cpu_s']:.2f} s) | "
              f"{r['latency_s']:.3f} s ({r['latency_cpu_s']:.3f} s) | {r['peak']:.0f} MB | "
              f"{cli_time} | {cli_peak} | {'yes' if r['same'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
