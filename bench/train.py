"""Training throughput (audio seconds per wall second) of a model config on a corpus, with length
bucketing and without it (random batches of the same mean size), side by side in one run.

    python bench/train.py --train recipes/speechocean762/data/train \
        --feats recipes/speechocean762/feats/train --config conf/speechocean762.yaml --seconds 120

Each variant runs full training steps (forward, CTC, backward, AdamW) for --seconds of wall time
after --warmup steps; throughput counts real audio (padding excluded).
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from asr.config import load_config
from asr.data import BucketBatchSampler, CTCDataset, make_loader
from asr.datadir import read_data_dir
from asr.model import CTCModel, count_parameters, flush_denormals
from asr.text import Vocabulary
from asr.train import TrainConfig, ctc_loss_sum, with_num_features


class RandomBatchSampler(torch.utils.data.Sampler):
    """Shuffled utterances in batches of a fixed count: no length bucketing."""

    def __init__(self, n: int, batch_size: int, seed: int = 0):
        self.n, self.batch_size, self.seed = n, batch_size, seed

    def __iter__(self):
        order = list(range(self.n))
        random.Random(self.seed).shuffle(order)
        for i in range(0, self.n, self.batch_size):
            yield order[i : i + self.batch_size]

    def __len__(self):
        return -(-self.n // self.batch_size)


def measure(cfg, dataset, sampler, vocab_size, num_features, seconds, warmup, frame_shift_s):
    torch.manual_seed(0)
    model = CTCModel(with_num_features(cfg, num_features).model, vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr)
    model.train()
    audio, frames_padded, frames_real, steps = 0.0, 0, 0, 0
    start = None
    while True:
        for batch in make_loader(dataset, sampler):  # speed factors: the sampler's
            loss_sum, n_tokens = ctc_loss_sum(model, batch, torch.device("cpu"), False)
            optimizer.zero_grad()
            (loss_sum / n_tokens).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            steps += 1
            if steps == warmup:
                start = time.time()
            elif start is not None:
                lens = batch["feat_lens"]
                audio += float(lens.sum()) * frame_shift_s
                frames_real += int(lens.sum())
                frames_padded += int(lens.max()) * len(lens)
                if time.time() - start >= seconds:
                    elapsed = time.time() - start
                    return {"audio_s_per_s": audio / elapsed, "steps": steps - warmup,
                            "padding": 1 - frames_real / frames_padded,
                            "params": count_parameters(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="training data dir")
    parser.add_argument("--feats", required=True, help="its feature dir")
    parser.add_argument("--config", default="conf/speechocean762.yaml")
    parser.add_argument("--seconds", type=float, default=120, help="timed seconds per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config override, as asr train's --set (e.g. model.hidden_size=256)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    flush_denormals()  # as asr train does: denormal floats made fp32 steps here 2x slower
    cfg = load_config(TrainConfig, args.config, args.set)
    vocab = Vocabulary.build(u.text for u in read_data_dir(args.train))
    dataset = CTCDataset(args.feats, args.train, vocab)
    shift = dataset.store.config.frame_shift_ms / 1000
    nf = dataset.store.config.num_features
    bucketed = BucketBatchSampler(dataset.lengths, cfg.data, seed=0,
                                  speed_factors=cfg.data.speed_perturb)
    mean_batch = round(len(dataset) / len(bucketed))
    results = {
        "bucketed": measure(cfg, dataset, bucketed, len(vocab), nf, args.seconds, args.warmup,
                            shift),
        f"random, {mean_batch} utts/batch": measure(
            cfg, dataset, RandomBatchSampler(len(dataset), mean_batch), len(vocab), nf,
            args.seconds, args.warmup, shift),
    }
    print(f"config {args.config} {' '.join(args.set)}, {torch.get_num_threads()} threads, "
          f"{dataset.audio_seconds / 3600:.2f} h of training audio")
    print(f"{'batches':28s} {'audio-s/s':>10s} {'audio-h/h':>10s} {'padding':>8s} {'steps':>6s}")
    for name, r in results.items():
        print(f"{name:28s} {r['audio_s_per_s']:10.1f} {r['audio_s_per_s']:10.1f} "
              f"{100 * r['padding']:7.1f}% {r['steps']:6d}")
    first = next(iter(results.values()))
    print(f"model: {first['params'] / 1e6:.2f} M parameters. An audio-s/s figure is also "
          "audio-hours per hour; one epoch of the set takes "
          f"{dataset.audio_seconds / first['audio_s_per_s'] / 60:.1f} min bucketed.")


if __name__ == "__main__":
    main()
