"""`asr train`: a plain training loop for the BiRNN-CTC model.

CUDA when present (mixed precision there), CPU otherwise; under `torchrun` it trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPU). Every epoch: dev loss and greedy CER/WER,
checkpoints (last, best, per epoch), metrics to CSV and TensorBoard, a PNG of the curves.
`--resume` continues exactly where the last checkpoint left off, mid-epoch included.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from asr import auto
from asr.card import MODEL_JSON, build_card, training_data, write_model_json
from asr.checkpoint import (
    average_checkpoints,
    copy_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from asr.config import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_config,
    save_config,
    to_dict,
)
from asr.ctc import min_ctc_frames
from asr.data import (
    BucketBatchSampler,
    CTCDataset,
    DataConfig,
    centred_std,
    describe_skipped,
    make_loader,
)
from asr.datadir import read_data_dir, write_text_atomic
from asr.decoding import GreedyDecoder
from asr.faults import maybe_kill
from asr.featstore import FeatureStore
from asr.model import CTCModel, ModelConfig, count_parameters, flush_denormals
from asr.scoring import score
from asr.text import TextNormConfig, Vocabulary


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-3  # peak learning rate (AdamW)
    betas: tuple[float, ...] = (0.9, 0.98)
    weight_decay: float = 1e-2
    warmup_steps: int = 300  # linear warm-up from 0 to lr
    final_lr_ratio: float = 0.05  # cosine decay from lr to lr * this at the last step
    grad_clip: float = 5.0  # max global gradient norm


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 20
    seed: int = 1234
    amp: bool = True  # mixed precision (float16 autocast + GradScaler) on CUDA; ignored on CPU
    average_last: int = 0  # also write avg.pt, the mean of the last N epoch checkpoints
    patience: int = 0  # stop after this many epochs without a better dev CER (0: never)
    augment_from_epoch: int = 1  # SpecAugment and speed perturbation from this epoch on: the
    # CTC alignments are learnt several times faster on clean data, augmentation then keeps the
    # model from learning the training speakers by heart
    save_every_steps: int = 100  # mid-epoch checkpoint for --resume (0: at epoch ends only)
    num_threads: int = 0  # torch CPU threads (0: torch's default)
    dev_max_utts: int = 0  # evaluate on the first N dev utterances only (0: all)
    max_bad_steps: int = 20  # batches with a non-finite loss (an fp16 overflow, a broken
    # utterance) skipped in a row before the run stops (0: stop at the first)


@dataclass
class TrainState:
    """What changes while training; saved with every checkpoint."""

    epoch: int = 0
    batch_in_epoch: int = 0  # batches of `epoch` already done
    step: int = 0
    best_cer: float = math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    train_seconds: float = 0.0  # wall time spent in training steps, over all runs
    audio_seconds: float = 0.0  # audio trained on, over all runs
    skipped_steps: int = 0  # batches skipped for a non-finite loss, over all runs
    bad_steps_in_a_row: int = 0  # of those, how many came last


# ---------------------------------------------------------------------------------------------
# Set-up: device, distributed, model


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # the process group's ("nccl", "gloo"); None outside torchrun

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def setup_runtime(device_arg: str) -> Runtime:
    """Pick the device; under torchrun join the process group, even with one process (so that
    one GPU runs every collective that several do): NCCL on GPUs, gloo on the CPU, one GPU per
    local rank."""
    launched = "WORLD_SIZE" in os.environ  # set by torchrun
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if device_arg == "cuda" and not torch.cuda.is_available():
        raise SystemExit("asr train: --device cuda asked for, but no CUDA device is available")
    device = torch.device(device_arg)
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if world_size > 1 and local_rank >= gpus:
            procs = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
            raise SystemExit(
                f"asr train: torchrun started {procs} processes on this machine, but {gpus} CUDA "
                f"device{'s are' if gpus != 1 else ' is'} visible (one process per GPU): start "
                f"--nproc_per_node={gpus}, or train on the CPU with --device cpu")
        device = torch.device("cuda", local_rank if world_size > 1 else (device.index or 0))
        torch.cuda.set_device(device)
    backend = None
    if launched:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            dist.init_process_group(backend, device_id=device)
        else:
            dist.init_process_group(backend)
    return Runtime(device, rank, world_size, local_rank, backend)


def any_rank(flag: bool, rt: Runtime) -> bool:
    """Whether `flag` holds on any rank; every rank gets the same answer. The tensor lives on
    the runtime's device: NCCL takes CUDA tensors only."""
    if not rt.distributed:
        return flag
    votes = torch.tensor(int(flag), device=rt.device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes)


def step_seed(seed: int, rank: int, step: int) -> int:
    """The seed of the global torch RNG at training step `step` on `rank` (SpecAugment masks,
    dropout): each rank draws its own, and a resumed run, on however many ranks, draws what the
    uninterrupted one did, with no RNG state to carry over."""
    return random.Random(f"step {seed} {rank} {step}").getrandbits(63)


def with_num_features(cfg: TrainConfig, num_features: int) -> TrainConfig:
    """The config with the model's input size taken from the features, so that config.yaml and
    the checkpoints record the model that was built."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, num_features=num_features))


def fit_to_data(cfg: TrainConfig, store: FeatureStore, utts: list, vocab: Vocabulary,
                world_size: int, device: str) -> tuple[TrainConfig, list[str]]:
    """The config with its `auto` values chosen from the training set (asr.auto): the frames
    and CTC labels of each utterance of `utts` that has features in `store`, on `device`
    ("cpu", "cuda"). Also says what it chose, a line each."""
    with_feats = [u for u in utts if u.utt_id in store]
    frames = [store.num_frames(u.utt_id) for u in with_feats]
    labels = [min_ctc_frames(vocab.encode(u.text)) for u in with_feats]
    model, data, said = cfg.model, cfg.data, []
    factors = data.speed_perturb or (1.0,)
    if model.subsample == "auto":
        model = dataclasses.replace(
            model, subsample=auto.choose_subsample(frames, labels, max(factors)))
        ratio = auto.frames_per_label(frames, labels, model.subsample, max(factors))
        said.append(f"subsample {model.subsample}: {ratio:.2f} output frames per CTC label "
                    "at the 1st percentile of the training set")
    if data.max_frames == "auto":
        data = dataclasses.replace(
            data, max_frames=auto.choose_max_frames(frames, world_size, min(factors), device))
        updates = sum(frames) / world_size / data.max_frames
        said.append(f"max_frames {data.max_frames}: about {updates:.0f} updates an epoch")
    return dataclasses.replace(cfg, model=model, data=data), said


def lr_lambda(cfg: OptimConfig, total_steps: int):
    """Linear warm-up, then cosine decay to final_lr_ratio at total_steps."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return cfg.final_lr_ratio + (1 - cfg.final_lr_ratio) * cosine

    return factor


def config_changes(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """[(dotted key, old value, new value)] where two configs (as `to_dict` gives them) differ."""
    changes = []
    for key, a in old.items():
        b = new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_changes(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append((f"{prefix}{key}", a, b))
    return changes


def resume_config(stored: dict, args, where: str) -> TrainConfig:
    """The config of a resumed run: the one `where` (last.pt) was trained with, --set applied.
    A --config that says otherwise is refused, listing what differs, unless
    --accept-config-changes, when its values are taken."""
    resumed = from_dict(TrainConfig, apply_overrides(stored, args.set or []), where)
    if args.config is None:
        return resumed
    requested = with_num_features(load_config(TrainConfig, args.config, args.set or []),
                                  resumed.model.num_features)
    changes = config_changes(to_dict(resumed), to_dict(requested))
    if not changes:
        return resumed
    listing = "".join(f"\n  {key}: {json.dumps(a)} -> {json.dumps(b)}" for key, a, b in changes)
    if not args.accept_config_changes:
        raise ConfigError(
            f"--resume: {args.config} differs from the config {where} was trained with:{listing}"
            f"\nadd --accept-config-changes to train on with the values of {args.config}, give "
            f"them with --set, or undo the edit")
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"--resume: training on with the values of {args.config}:{listing}")
    return requested


# ---------------------------------------------------------------------------------------------
# One step, one evaluation


def cmn_means_on(batch: dict, device: torch.device) -> torch.Tensor | None:
    """The batch's speaker means [B, F] on `device` (None without speaker CMN)."""
    means = batch.get("cmn_means")
    return None if means is None else means.to(device)


def ctc_loss_sum(model, batch, device, amp: bool):
    """Sum of per-utterance CTC losses of a batch, and its target token count."""
    feats = batch["feats"].to(device, non_blocking=True)
    feat_lens = batch["feat_lens"].to(device)
    with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
        log_probs, out_lens = model(feats, feat_lens, cmn_means_on(batch, device))
    targets, target_lens = batch["targets"].to(device), batch["target_lens"].to(device)

    def ctc(lp: torch.Tensor) -> torch.Tensor:
        return F.ctc_loss(lp.float().transpose(0, 1),  # (B, T', V) -> (T', B, V)
                          targets, out_lens, target_lens, blank=0, reduction="sum",
                          zero_infinity=False)

    loss = ctc(log_probs)
    inner = getattr(model, "module", model)  # under DistributedDataParallel
    if inner.training and inner.inter_log_probs is not None:  # intermediate CTC
        w = inner.cfg.inter_ctc_weight
        loss = (1.0 - w) * loss + w * ctc(inner.inter_log_probs)
        inner.inter_log_probs = None
    return loss, int(batch["target_lens"].sum())


@torch.no_grad()
def evaluate(model, loader, device, tokens: list[str], amp: bool) -> dict[str, float]:
    """Dev loss per token and greedy CER/WER (percent)."""
    model.eval()
    decoder = GreedyDecoder(tokens)
    total_loss, total_tokens = 0.0, 0
    refs, hyps = {}, {}
    texts = {item.utt_id: item.text for item in loader.dataset.items}
    for batch in loader:
        feats = batch["feats"].to(device)
        feat_lens = batch["feat_lens"].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
            log_probs, out_lens = model(feats, feat_lens, cmn_means_on(batch, device))
        loss = F.ctc_loss(
            log_probs.float().transpose(0, 1),  # (B, T', V) -> (T', B, V)
            batch["targets"].to(device),
            out_lens,
            batch["target_lens"].to(device),
            blank=0,
            reduction="sum",
        )
        total_loss += float(loss)
        total_tokens += int(batch["target_lens"].sum())
        for utt_id, nbest in zip(batch["utt_ids"], decoder(log_probs.cpu(), out_lens.cpu())):
            refs[utt_id] = texts[utt_id]
            hyps[utt_id] = nbest[0].text
    report = score(refs, hyps)
    model.train()
    return {"loss": total_loss / max(1, total_tokens), "cer": report.cer, "wer": report.wer}


# ---------------------------------------------------------------------------------------------
# Checkpoints


def prep_text_norm(data_dir: str | Path) -> dict | None:
    """The transcript normalisation `asr prep` recorded for a data dir (its prep.json, in the
    dir or, as prep writes it, in the dir above), as a TextNormConfig dict; None when no
    prep.json says."""
    for path in (Path(data_dir) / "prep.json", Path(data_dir).parent / "prep.json"):
        if path.is_file():
            norm = json.loads(path.read_text(encoding="utf-8")).get("normalization")
            return None if norm is None else TextNormConfig(**norm).to_dict()
    return None


def checkpoint_dict(model, cfg, tokens, feature_config, optimizer, scheduler, scaler, state,
                    text_norm: dict | None = None):
    """Everything a checkpoint holds; `text_norm` is how the training transcripts were
    normalised (None: not known), which decoding applies to references and LM words."""
    module = model.module if hasattr(model, "module") else model
    # no RNG state: each step's randomness comes from step_seed
    return {
        "model": module.state_dict(),
        "model_config": to_dict(module.cfg),
        "vocab_size": module.vocab_size,
        "tokens": list(tokens),
        "feature_config": feature_config,
        "text_norm": text_norm,
        "train_config": to_dict(cfg),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "train_state": dataclasses.asdict(state),
    }


def model_only(ckpt: dict) -> dict:
    """The part of a checkpoint needed to transcribe: weights, configs, tokens."""
    keep = ("model", "model_config", "vocab_size", "tokens", "feature_config", "text_norm",
            "train_config", "card")
    return {k: ckpt[k] for k in keep}


# ---------------------------------------------------------------------------------------------
# Metrics


PLOT_EVERY_S = 60.0  # redraw curves.png at most this often (and after the last epoch)
METRIC_FIELDS = [
    "epoch", "step", "lr", "train_loss", "dev_loss", "dev_cer", "dev_wer",
    "epoch_seconds", "audio_hours_per_hour",
]


def append_metrics(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, "") for k in METRIC_FIELDS})


def plot_curves(csv_path: Path, png_path: Path) -> None:
    """Training/dev loss and dev CER/WER per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [float(r["train_loss"]) for r in rows], "o-", label="train")
    ax1.plot(epochs, [float(r["dev_loss"]) for r in rows], "o-", label="dev")
    ax1.set(xlabel="epoch", ylabel="CTC loss per token", title="Loss")
    ax1.legend()
    ax2.plot(epochs, [float(r["dev_cer"]) for r in rows], "o-", label="dev CER")
    ax2.plot(epochs, [float(r["dev_wer"]) for r in rows], "o-", label="dev WER")
    ax2.set(xlabel="epoch", ylabel="%", title="Greedy error rates")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = png_path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, png_path)


class TensorBoardLog:
    """A thin wrapper: no-op where tensorboard is missing or on non-main ranks."""

    def __init__(self, log_dir: Path, enabled: bool):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(log_dir))
            except ImportError:
                print("tensorboard is not installed: metrics go to metrics.csv only")

    def scalars(self, values: dict[str, float], step: int) -> None:
        if self.writer:
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


# ---------------------------------------------------------------------------------------------
# The loop: `start_run` builds a Run, `train_one_epoch` and `end_epoch` advance it


@dataclass
class Run:
    """What one training run holds, on every rank."""

    exp: Path
    cfg: TrainConfig
    rt: Runtime
    amp: bool  # float16 autocast + GradScaler (CUDA only)
    vocab: Vocabulary
    model: torch.nn.Module  # the DDP wrapper when distributed; `core` is the CTCModel
    train_set: CTCDataset
    dev_set: CTCDataset
    train_sampler: BucketBatchSampler
    dev_loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    steps_per_epoch: list[int]
    frame_shift_ms: float
    feature_config: dict
    text_norm: dict | None
    data_facts: dict  # for the model card
    state: TrainState = field(default_factory=TrainState)
    last_dev: dict = field(default_factory=dict)  # the latest dev evaluation, for the card

    @property
    def core(self) -> CTCModel:
        return self.model.module if self.rt.distributed else self.model

    def save(self, name: str, full: bool = True) -> dict | None:
        """Write checkpoint `name` (rank 0; the others do nothing); -> its model card."""
        if not self.rt.is_main:
            return None
        ckpt = checkpoint_dict(self.model, self.cfg, self.vocab.tokens, self.feature_config,
                               self.optimizer, self.scheduler, self.scaler, self.state,
                               self.text_norm)
        ckpt["card"] = build_card(ckpt, self.data_facts, self.last_dev)
        save_checkpoint(ckpt if full else model_only(ckpt), self.exp / name)
        return ckpt["card"]


@dataclass
class EpochStats:
    loss: float = 0.0  # summed over the batches that were not skipped, as are the tokens
    tokens: int = 0
    audio_seconds: float = 0.0  # of all processes
    skipped: int = 0  # batches skipped for a non-finite loss
    seconds: float = 0.0  # wall time of the epoch


def resume_checkpoint(exp: Path, rt: Runtime) -> dict | None:
    """--resume: OUT/last.pt, once what a run killed while saving left is gone; None when there
    is no last.pt yet (a new run)."""
    if rt.is_main:
        for tmp in remove_partial_checkpoints(exp) if exp.is_dir() else []:
            print(f"removed {tmp}, left by a run killed while saving")
    last = exp / "last.pt"
    if last.exists():
        return load_checkpoint(last, map_location="cpu")
    if rt.is_main:
        print(f"--resume: {last} does not exist yet, starting afresh")
    return None


def build_datasets(args, cfg: TrainConfig, model: CTCModel, vocab: Vocabulary
                   ) -> tuple[CTCDataset, CTCDataset]:
    """The training and dev sets; an error that names the data dir when one has nothing usable."""

    def out_len(n: int) -> int:
        return int(model.output_lengths(torch.tensor([n]))[0])

    speaker_cmn = cfg.model.speaker_cmn
    train_set = CTCDataset(args.train_feats, args.train, vocab, out_len,
                           cfg.data.speed_perturb, cfg.data.max_frames, speaker_cmn)
    dev_set = CTCDataset(args.dev_feats, args.dev, vocab, out_len, speaker_cmn=speaker_cmn)
    if cfg.dev_max_utts:
        dev_set.items = dev_set.items[: cfg.dev_max_utts]
    for name, dataset, data_dir in (("training", train_set, args.train),
                                    ("dev", dev_set, args.dev)):
        if len(dataset) == 0:
            raise SystemExit(f"asr train: no usable {name} utterances in {data_dir} "
                             f"({describe_skipped(dataset)})")
    return train_set, dev_set


def start_run(args, rt: Runtime) -> Run:
    """Config, data, model and optimiser of a new run, or of the run OUT/last.pt resumes (its
    own config, --set applied; weights, optimiser, schedule and position restored)."""
    exp = Path(args.out)
    resume_ckpt = resume_checkpoint(exp, rt) if args.resume else None
    if resume_ckpt is not None:
        cfg = resume_config(resume_ckpt["train_config"], args, f"{exp}/last.pt")
    else:
        cfg = load_config(TrainConfig, args.config, args.set or [])
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    flush_denormals()
    torch.manual_seed(cfg.seed + rt.rank)

    train_store = FeatureStore(args.train_feats)
    if resume_ckpt is not None:  # its config has the numbers `auto` chose
        vocab = Vocabulary(resume_ckpt["tokens"])
    else:
        train_utts = read_data_dir(args.train)
        vocab = Vocabulary.build(u.text for u in train_utts)
        cfg, said = fit_to_data(cfg, train_store, train_utts, vocab, rt.world_size,
                                rt.device.type)
        for line in said if rt.is_main else []:
            print(f"auto: {line}")
    cfg = with_num_features(cfg, train_store.config.num_features)
    model = CTCModel(cfg.model, len(vocab))
    train_set, dev_set = build_datasets(args, cfg, model, vocab)
    mean, std = train_store.cmvn()
    if train_set.cmn_means is not None:  # speaker CMN: the spread within speakers
        std = centred_std(train_set.store, train_set.cmn_means)
    model.cmvn.set_stats(torch.as_tensor(mean), torch.as_tensor(std))
    train_sampler = BucketBatchSampler(
        train_set.lengths, cfg.data, cfg.seed, True, rt.world_size, rt.rank,
        cfg.data.speed_perturb, cfg.augment_from_epoch,
    )
    dev_loader = make_loader(dev_set, BucketBatchSampler(dev_set.lengths, cfg.data, 0, False))

    model.to(rt.device)
    if rt.distributed:
        ddp_kwargs = {"device_ids": [rt.device.index]} if rt.device.type == "cuda" else {}
        model = torch.nn.parallel.DistributedDataParallel(model, **ddp_kwargs)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=cfg.optim.lr, betas=tuple(cfg.optim.betas),
        weight_decay=cfg.optim.weight_decay,
    )
    steps_per_epoch = [len(train_sampler.global_batches(e)) for e in range(cfg.epochs)]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.optim, sum(steps_per_epoch)))
    amp = cfg.amp and rt.device.type == "cuda"
    run = Run(
        exp, cfg, rt, amp, vocab, model, train_set, dev_set, train_sampler, dev_loader,
        optimizer, scheduler, torch.amp.GradScaler(rt.device.type, enabled=amp),
        steps_per_epoch, train_store.config.frame_shift_ms, train_store.config.to_dict(),
        prep_text_norm(args.train), training_data(args.train, args.dev, train_set, dev_set),
    )
    if resume_ckpt is not None:
        run.core.load_state_dict(resume_ckpt["model"])
        run.optimizer.load_state_dict(resume_ckpt["optimizer"])
        run.scheduler.load_state_dict(resume_ckpt["scheduler"])
        run.scaler.load_state_dict(resume_ckpt["scaler"])
        run.state = TrainState(**resume_ckpt["train_state"])
        if rt.is_main:
            print(f"resumed from {exp / 'last.pt'}: epoch {run.state.epoch + 1}, "
                  f"batch {run.state.batch_in_epoch}, step {run.state.step}")
    return run


def announce(run: Run) -> None:
    """Rank 0, before the first step: config.yaml and tokens.txt, and what is about to train."""
    run.exp.mkdir(parents=True, exist_ok=True)
    save_config(run.cfg, run.exp / "config.yaml")
    run.vocab.save(run.exp / "tokens.txt")
    rt = run.rt
    group = f", process group {rt.backend}" if rt.distributed else ""
    print(f"device {rt.device} (x{rt.world_size}{group}), amp {run.amp}; "
          f"model {count_parameters(run.model) / 1e6:.2f}M parameters")
    print(f"train: {len(run.train_set)} utterances, {run.train_set.audio_seconds / 3600:.2f} h "
          f"({describe_skipped(run.train_set)}); {sum(run.steps_per_epoch)} steps in "
          f"{run.cfg.epochs} epochs")
    print(f"dev: {len(run.dev_set)} utterances ({describe_skipped(run.dev_set)})")


def train_step(run: Run, batch: dict) -> tuple[float, int, bool]:
    """One update on `batch`; -> (its summed loss, its tokens, whether it was skipped). A batch
    with a non-finite loss on any rank is skipped on every rank (or DDP's gradient all-reduce
    would wait forever); more than max_bad_steps of them in a row end the run."""
    cfg, rt, state = run.cfg, run.rt, run.state
    torch.manual_seed(step_seed(cfg.seed, rt.rank, state.step))
    loss_sum, n_tokens = ctc_loss_sum(run.model, batch, rt.device, run.amp)
    loss_value = float(loss_sum.detach())
    if not math.isfinite(loss_value):
        print(f"step {state.step}: non-finite loss on utterances {batch['utt_ids']}",
              flush=True)
    skipped = any_rank(not math.isfinite(loss_value), rt)
    if skipped:
        state.skipped_steps += 1
        state.bad_steps_in_a_row += 1
        if state.bad_steps_in_a_row > cfg.max_bad_steps:
            raise SystemExit(
                f"asr train: non-finite loss in {state.bad_steps_in_a_row} batches in a row "
                f"(max_bad_steps {cfg.max_bad_steps}) at step {state.step}; "
                f"{run.exp / 'last.pt'} holds the last checkpoint")
    else:
        state.bad_steps_in_a_row = 0
        # normalise by the global token count so DDP's gradient mean equals the single-process
        # gradient over the same global batch
        norm = torch.tensor(float(n_tokens), device=rt.device)
        if rt.distributed:
            dist.all_reduce(norm)
        loss = loss_sum * rt.world_size / norm
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.optim.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    run.scheduler.step()  # a skipped batch still counts: the schedule ends at the last one
    state.step += 1
    state.batch_in_epoch += 1
    return loss_value, n_tokens, skipped


def train_one_epoch(run: Run) -> EpochStats:
    """The rest of epoch `run.state.epoch` (all of it, unless resumed mid-epoch); last.pt every
    save_every_steps steps."""
    cfg, rt, state = run.cfg, run.rt, run.state
    epoch = state.epoch
    run.train_sampler.set_epoch(epoch, start_batch=state.batch_in_epoch)
    run.core.augment = epoch >= cfg.augment_from_epoch
    loader = make_loader(run.train_set, run.train_sampler)  # speed factors: the sampler's
    stats, start = EpochStats(), time.time()
    bar = tqdm(
        loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not rt.is_main,
        initial=state.batch_in_epoch, total=run.steps_per_epoch[epoch], dynamic_ncols=True,
        file=sys.stdout, mininterval=5.0,
    )
    for batch in bar:
        t0 = time.time()
        loss_value, n_tokens, skipped = train_step(run, batch)
        if skipped:
            stats.skipped += 1
        else:
            stats.loss += loss_value
            stats.tokens += n_tokens
        audio = float(batch["feat_lens"].sum()) * run.frame_shift_ms / 1000
        state.train_seconds += time.time() - t0
        state.audio_seconds += audio * rt.world_size
        stats.audio_seconds += audio * rt.world_size
        # refresh=False: the bar redraws at its own interval, not once a step into a log file
        bar.set_postfix(loss=f"{loss_value / max(1, n_tokens):.3f}",
                        lr=f"{run.scheduler.get_last_lr()[0]:.2e}", refresh=False)
        if cfg.save_every_steps and state.step % cfg.save_every_steps == 0:
            run.save("last.pt")
        maybe_kill("train_step")
    bar.close()
    state.epoch += 1
    state.batch_in_epoch = 0
    stats.seconds = time.time() - start
    return stats


def end_epoch(run: Run, stats: EpochStats, log: TensorBoardLog) -> None:
    """Rank 0, after an epoch: dev loss and greedy CER/WER, metrics.csv and TensorBoard, the
    epoch's line; checkpoints epoch-N.pt (the last average_last kept), best.pt, last.pt."""
    cfg, state, exp = run.cfg, run.state, run.exp
    epoch = state.epoch - 1
    dev = evaluate(run.core, run.dev_loader, run.rt.device, run.vocab.tokens, run.amp)
    run.last_dev.update(wer=dev["wer"], cer=dev["cer"], epoch=epoch + 1, decoder="greedy")
    row = {
        "epoch": epoch, "step": state.step, "lr": run.scheduler.get_last_lr()[0],
        "train_loss": stats.loss / max(1, stats.tokens), "dev_loss": dev["loss"],
        "dev_cer": dev["cer"], "dev_wer": dev["wer"], "epoch_seconds": stats.seconds,
        "audio_hours_per_hour": stats.audio_seconds / max(1e-9, stats.seconds),
    }
    append_metrics(exp / "metrics.csv", row)
    log.scalars({"train/loss": row["train_loss"], "dev/loss": dev["loss"],
                 "dev/cer": dev["cer"], "dev/wer": dev["wer"], "lr": row["lr"]}, state.step)
    skipped = (f"; skipped {stats.skipped} batch{'es' if stats.skipped > 1 else ''} with a "
               "non-finite loss" if stats.skipped else "")
    print(f"epoch {epoch + 1}: train loss {row['train_loss']:.3f}, dev loss "
          f"{dev['loss']:.3f}, dev CER {dev['cer']:.2f}%, WER {dev['wer']:.2f}%, "
          f"{stats.seconds:.0f} s, {row['audio_hours_per_hour']:.1f} audio-h/h{skipped}",
          flush=True)
    improved = dev["cer"] < state.best_cer
    if improved:
        state.best_cer, state.best_epoch = dev["cer"], epoch
        state.epochs_without_improvement = 0
    else:
        state.epochs_without_improvement += 1
    epoch_card = run.save(f"epoch-{epoch + 1}.pt", full=False)
    if improved:
        copy_checkpoint(exp / f"epoch-{epoch + 1}.pt", exp / "best.pt")
        write_model_json(exp / MODEL_JSON, epoch_card)  # the card of best.pt
    run.save("last.pt")
    keep = max(cfg.average_last, 1)  # epoch checkpoints kept, for averaging
    stale = exp / f"epoch-{epoch + 1 - keep}.pt"
    if epoch + 1 - keep >= 1 and stale.exists():
        stale.unlink()


def train(args) -> int:
    rt = setup_runtime(args.device)
    run = start_run(args, rt)
    cfg, exp = run.cfg, run.exp
    log = TensorBoardLog(exp / "tensorboard", rt.is_main)
    if rt.is_main:
        announce(run)
    run.model.train()
    last_plot = 0.0
    while run.state.epoch < cfg.epochs:
        stats = train_one_epoch(run)
        if rt.is_main:  # only rank 0 evaluates; everyone waits
            end_epoch(run, stats, log)
            if time.time() - last_plot > PLOT_EVERY_S or run.state.epoch == cfg.epochs:
                plot_curves(exp / "metrics.csv", exp / "curves.png")
                last_plot = time.time()
        # rank 0 decides (only it evaluates); the others learn it here
        patience_out = cfg.patience > 0 and run.state.epochs_without_improvement >= cfg.patience
        if any_rank(rt.is_main and patience_out, rt):
            if rt.is_main:
                print(f"early stop: no better dev CER for {cfg.patience} epochs")
                plot_curves(exp / "metrics.csv", exp / "curves.png")
            break

    if rt.is_main:
        finish(exp, cfg, run.state, run.dev_loader, run.vocab, rt)
    log.close()
    if rt.distributed:
        dist.barrier()
        dist.destroy_process_group()
    return 0


def finish(exp: Path, cfg: TrainConfig, state: TrainState, dev_loader, vocab, rt) -> None:
    """Checkpoint averaging on request, and a one-line summary."""
    if cfg.average_last > 1:
        last_epoch = state.epoch
        paths = [exp / f"epoch-{e}.pt" for e in range(last_epoch - cfg.average_last + 1,
                                                      last_epoch + 1)]
        paths = [p for p in paths if p.exists()]
        if len(paths) > 1:
            ckpt = load_checkpoint(paths[-1])
            ckpt["model"] = average_checkpoints(paths)
            model = CTCModel(ModelConfig_from(ckpt), ckpt["vocab_size"]).to(rt.device)
            model.load_state_dict(ckpt["model"])
            dev = evaluate(model, dev_loader, rt.device, vocab.tokens, False)
            if ckpt.get("card"):  # avg.pt's card: its own dev figures, not the last epoch's
                ckpt["card"]["dev"] = {"wer": dev["wer"], "cer": dev["cer"], "epoch": last_epoch,
                                       "decoder": "greedy", "averaged_epochs": len(paths)}
            save_checkpoint(ckpt, exp / "avg.pt")
            print(f"avg of {len(paths)} epochs: dev CER {dev['cer']:.2f}%, WER {dev['wer']:.2f}%")
    speed = state.audio_seconds / max(1e-9, state.train_seconds)
    # The marker recipes test for: best.pt exists from the first epoch on, this only at the end.
    done = {"epochs": state.epoch, "best_epoch": state.best_epoch + 1,
            "best_dev_cer": state.best_cer, "audio_seconds": state.audio_seconds,
            "train_seconds": state.train_seconds}
    write_text_atomic(exp / "done.json", json.dumps(done, indent=1) + "\n")
    print(f"done: best dev CER {state.best_cer:.2f}% at epoch {state.best_epoch + 1}; "
          f"{state.audio_seconds / 3600:.2f} audio-h in {state.train_seconds / 60:.1f} min of "
          f"training steps ({speed:.1f} audio-h/h)")


def ModelConfig_from(ckpt: dict) -> ModelConfig:  # noqa: N802 - reads like a constructor
    return from_dict(ModelConfig, ckpt["model_config"], "checkpoint model_config")


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (values only); defaults if omitted")
    parser.add_argument("--train", required=True, help="training data dir (wav.scp, text, ...)")
    parser.add_argument("--dev", required=True, help="dev data dir")
    parser.add_argument("--train-feats", help="feature dir of the training set "
                        "(default: FEATS_ROOT/<name of --train>)")
    parser.add_argument("--dev-feats", help="feature dir of the dev set")
    parser.add_argument("--feats-root", default="feats",
                        help="where feature dirs are looked up by set name (default: feats)")
    parser.add_argument("--out", required=True, help="experiment dir")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.lr=1e-3 (repeatable)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--resume", action="store_true",
                        help="continue from OUT/last.pt (model, optimizer, position) with the "
                             "config it holds, --set applied; a --config that differs from it is "
                             "refused (exit 2) with what differs. Without OUT/last.pt: a new run")
    parser.add_argument("--accept-config-changes", action="store_true",
                        help="with --resume: train on with the values of --config where they "
                             "differ from OUT/last.pt's (the model's shape cannot change)")


def run(args) -> int:
    args.train_feats = args.train_feats or str(Path(args.feats_root) / Path(args.train).name)
    args.dev_feats = args.dev_feats or str(Path(args.feats_root) / Path(args.dev).name)
    return train(args)  # bad input (config, data, checkpoint, disk) is reported by asr.cli
