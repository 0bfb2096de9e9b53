"""The acoustic model: global CMVN -> SpecAugment (training only) -> convolutional subsampling
-> stacked bidirectional RNN -> linear -> log-softmax over the tokens (blank = 0).

Lengths travel with every padded tensor. Padding is zeroed after each stage that could smear it
into valid frames, and each RNN direction starts at its row's first or last real frame, so an
utterance's output does not change when it is batched with longer ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2  # number of frequency masks per utterance
    freq_width: int = 15  # max bins per frequency mask
    time_masks: int = 4  # max number of time masks per utterance (scaled down for short ones)
    time_width: float = 0.05  # max width of a time mask, as a fraction of the utterance


@dataclass(frozen=True)
class ModelConfig:
    num_features: int = 80  # F, feature bins in
    utterance_cmn: bool = True  # also subtract each utterance's mean feature vector (AN4: dev
    # CER left the CTC plateau sooner with it)
    speaker_cmn: bool = False  # with utterance_cmn: subtract the mean over all of the speaker's
    # utterances in the set instead (Kaldi's per-speaker CMN, utt2spk), and divide by the std of
    # the training features so centred; an utterance of no known speaker (asr transcribe of a
    # file) uses its own mean
    subsample: Literal["auto", 1, 2, 4] = "auto"  # time reduction of the conv front-end; "auto":
    # training picks the largest the transcripts allow (asr.auto.choose_subsample)
    conv_channels: int = 32  # channels of each stride-2 conv layer
    cell: Literal["lstm", "gru", "rnn"] = "lstm"  # "rnn" is a plain tanh RNN
    num_layers: int = 3
    hidden_size: int = 256  # per direction
    proj_size: int = 0  # linear projection between RNN layers (0: none)
    layer_norm: bool = True  # LayerNorm on each RNN layer's output: CTC learns the alignments
    # several times sooner (speechocean762: dev CER 52% after 5 epochs with it, 92% without)
    dropout: float = 0.1  # between layers and before the output layer
    inter_ctc_layer: int = 0  # intermediate CTC (Lee & Watanabe 2021): in training, this RNN
    # layer's output (1-based) also goes through the output layer into a CTC loss (0: none)
    inter_ctc_weight: float = 0.3  # loss = (1 - w) * CTC + w * intermediate CTC
    spec_augment: SpecAugmentConfig | None = field(default_factory=SpecAugmentConfig)

    def __post_init__(self):
        if self.subsample not in ("auto", 1, 2, 4):
            raise ValueError(f"subsample must be 1, 2, 4 or auto, got {self.subsample}")
        if not 0 <= self.inter_ctc_layer < self.num_layers:
            raise ValueError(f"inter_ctc_layer must be 0 (none) or a layer below the last "
                             f"(1..{self.num_layers - 1}), got {self.inter_ctc_layer}")
        if not 0.0 < self.inter_ctc_weight < 1.0:
            raise ValueError(f"inter_ctc_weight must be in (0, 1), got {self.inter_ctc_weight}")
        if self.speaker_cmn and not self.utterance_cmn:
            raise ValueError("speaker_cmn needs utterance_cmn: it changes whose mean is "
                             "subtracted, the utterance's or its speaker's")


def lengths_to_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """lens [B] -> mask [B, max_len], True on valid frames."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


class GlobalCMVN(nn.Module):
    """(feats - mean) / std with statistics of the training set, kept as buffers so that a
    checkpoint carries them; with `utterance_mean`, each utterance's own mean (over its frames,
    after the global normalisation) is then subtracted too, which takes out much of what the
    channel and the speaker's vocal tract add to every frame. `means` [B, F] (raw features),
    where given, is subtracted instead of the utterance's own: its speaker's mean."""

    def __init__(self, num_features: int, utterance_mean: bool = False):
        super().__init__()
        self.utterance_mean = utterance_mean
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))

    def set_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                means: torch.Tensor | None = None) -> torch.Tensor:
        """feats [B, T, F] -> [B, T, F], zero on padding."""
        mask = lengths_to_mask(feat_lens, feats.size(1)).unsqueeze(-1)  # (B, T, 1)
        x = ((feats - self.mean) / self.std).masked_fill(~mask, 0.0)
        if self.utterance_mean:
            if means is None:
                shift = x.sum(dim=1, keepdim=True) / feat_lens.clamp(min=1)[:, None, None]
            else:
                shift = ((means.to(x.dtype) - self.mean) / self.std).unsqueeze(1)  # (B, 1, F)
            x = (x - shift).masked_fill(~mask, 0.0)
        return x


def spec_augment(
    feats: torch.Tensor, feat_lens: torch.Tensor, cfg: SpecAugmentConfig
) -> torch.Tensor:
    """Frequency and time masking (Park et al. 2019) with the global torch RNG; masks stay inside
    each utterance's length. feats [B, T, F] (normalised, so 0 is the mean) -> [B, T, F].

    Each mask's width is uniform in 0 .. its maximum (freq_width bins; time_width of the row's
    length in frames), its start uniform over the positions where it fits; a row gets at most
    one time mask per 25 frames. All masks of a batch are drawn at once (a loop over rows took
    21 ms of an AN4 step of 30 x 320 frames on 2 cores)."""
    B, T, F_ = feats.shape
    device = feats.device
    lens = feat_lens.to(device)
    freq = torch.zeros(B, F_, dtype=torch.bool, device=device)
    time = torch.zeros(B, T, dtype=torch.bool, device=device)
    if cfg.freq_masks:
        freq = band_masks(torch.full((B,), cfg.freq_width, device=device),
                          torch.full((B,), F_, device=device), cfg.freq_masks,
                          torch.arange(F_, device=device))
    if cfg.time_masks:
        max_width = (lens.double() * cfg.time_width).long()  # int(time_width * n), no sync
        time = band_masks(max_width, lens, cfg.time_masks, torch.arange(T, device=device),
                          count=(lens // 25).clamp(max=cfg.time_masks))
    return feats.masked_fill(freq[:, None, :] | time[:, :, None], 0.0)


def band_masks(
    max_width: torch.Tensor, size: torch.Tensor, n: int, positions: torch.Tensor,
    count: torch.Tensor | None = None,
) -> torch.Tensor:
    """The union of n random bands per row: max_width [B] and size [B] (the row's extent) ->
    [B, len(positions)] bool. Band j of row b has a width uniform in 0 .. max_width[b] and a
    start uniform in 0 .. size[b] - width - 1 (0 where nothing fits); only the first count[b]
    bands of a row are used (all n when count is None)."""
    B, device = len(size), size.device
    u = torch.rand(B, n, 2, dtype=torch.float64, device=device)
    width = (u[..., 0] * (max_width[:, None] + 1)).long().clamp(max=max_width[:, None])
    room = (size[:, None] - width).clamp(min=1)
    start = (u[..., 1] * room).long().clamp(max=room - 1)
    if count is not None:
        width = width * (torch.arange(n, device=device)[None, :] < count[:, None])
    inside = (positions >= start[..., None]) & (positions < (start + width)[..., None])
    return inside.any(dim=1)  # (B, n, P) -> (B, P)


class ConvSubsampling(nn.Module):
    """Stride-2 3x3 conv layers (log2(factor) of them) over (time, frequency), then a linear
    layer to `out_dim`. Output frame t sees input frames 4t-3 .. 4t+3 (factor 4)."""

    def __init__(self, num_features: int, factor: int, channels: int, out_dim: int):
        super().__init__()
        self.num_stages = {1: 0, 2: 1, 4: 2}[factor]
        self.convs = nn.ModuleList()
        in_ch, freq = 1, num_features
        for _ in range(self.num_stages):
            self.convs.append(nn.Conv2d(in_ch, channels, kernel_size=3, stride=2, padding=1))
            in_ch, freq = channels, (freq - 1) // 2 + 1
        self.out = nn.Linear(in_ch * freq, out_dim)

    @staticmethod
    def stage_lengths(lens: torch.Tensor) -> torch.Tensor:
        return (lens - 1) // 2 + 1

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_stages):
            lens = self.stage_lengths(lens)
        return lens

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor):
        """feats [B, T, F] -> (x [B, T', out_dim], out_lens [B])."""
        x = feats.unsqueeze(1)  # (B, T, F) -> (B, 1, T, F)
        lens = feat_lens
        for conv in self.convs:
            x = F.relu(conv(x))
            lens = self.stage_lengths(lens)
            # zero the frames past each length so the next stage sees what it would alone
            x = x * lengths_to_mask(lens, x.size(2))[:, None, :, None]
        B, C, T, F_ = x.shape
        x = x.transpose(1, 2).reshape(B, T, C * F_)  # (B, C, T', F') -> (B, T', C*F')
        return self.out(x), lens


RNN_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Dropout(nn.Module):
    """nn.Dropout, with its CPU mask drawn as 16 random bits a value, four to each 64-bit draw of
    the generator: the CPU `bernoulli_` behind nn.Dropout, and `torch.rand_like`, draw one number
    at a time. p is rounded to a multiple of 1/65536 (0.2 -> 0.199997) and the kept values are
    scaled by the exact inverse of the kept share, so the mean is kept. One mask for 30 x 90 x 384
    values on 2 cores: 5.0 ms, against 16.7 ms with `rand_like` and 11% of an AN4 training step
    with `bernoulli_` (torch.profiler). On other devices, F.dropout."""

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout {p}: expected 0 <= p < 1")
        self.p = p
        dropped = min(round(p * 65536), 65535)  # of the 65536 values of a 16-bit draw
        self.threshold = dropped - 32768  # an int16 draw below it drops its value
        self.scale = 65536 / (65536 - dropped)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        return self.drop_on_cpu(x)

    @torch.jit.unused
    def drop_on_cpu(self, x):  # no annotations: the scripter reads them as text
        """Left out of a scripted model, which is for inference, where this never runs."""
        return (x * self.scale).masked_fill_(random_int16(x.shape) < self.threshold, 0.0)


def random_int16(shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform int16 values of `shape` from the global CPU generator, 64 bits a draw."""
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(2**63), None)  # all 64 bits
    return words.view(torch.int16)[:n].view(shape)


def reverse_padded(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """x [B, T, D] -> [B, T, D] with the first lens[b] frames of each row in reverse order and
    the padding left where it is. Applying it twice gives x back."""
    T = x.size(1)
    frames = torch.arange(T, device=x.device)[None, :]  # (1, T)
    source = lens.to(x.device)[:, None] - 1 - frames  # (B, T): frame read for each position
    source = torch.where(source >= 0, source, frames)  # padding reads itself
    return x.gather(1, source.unsqueeze(-1).expand_as(x))


class BiRNNLayer(nn.Module):
    """One bidirectional recurrent layer on padded input, exact under padding.

    The forward cell reads each row left to right, so padding at the end cannot reach the valid
    frames. The backward cell reads each row reversed within its own length (padding stays at the
    end), so it too starts at the row's last real frame. This gives what a packed sequence gives,
    without packing: on the CPU, backpropagation through a PackedSequence spends most of its time
    zero-filling a gradient buffer per time step (quadratic in length). Measured on 2 cores, one
    640 -> 2x320 LSTM layer, 64 utterances of 55-75 frames, forward + backward: 0.91 s packed,
    0.55 s as two padded calls (which use oneDNN's fused LSTM kernel).
    """

    def __init__(self, cell: str, in_dim: int, hidden_size: int):
        super().__init__()
        rnn = RNN_CELLS[cell]
        extra = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.fwd = rnn(in_dim, hidden_size, batch_first=True, **extra)
        self.bwd = rnn(in_dim, hidden_size, batch_first=True, **extra)
        if cell == "lstm":  # forget gates start open (Jozefowicz et al. 2015)
            for lstm in (self.fwd, self.bwd):
                with torch.no_grad():
                    lstm.bias_ih_l0[hidden_size : 2 * hidden_size].fill_(1.0)
                    lstm.bias_hh_l0[hidden_size : 2 * hidden_size].fill_(0.0)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """x [B, T, D], lens [B] -> [B, T, 2 * hidden_size] (forward; backward). Frames past
        `lens` hold whatever the forward cell made of the padding: mask them."""
        left_to_right, _ = self.fwd(x)
        right_to_left, _ = self.bwd(reverse_padded(x, lens))
        return torch.cat([left_to_right, reverse_padded(right_to_left, lens)], dim=-1)


class RNNEncoder(nn.Module):
    """A stack of bidirectional RNN layers, each followed by LayerNorm (optional), dropout and
    an optional linear projection."""

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.projections = nn.ModuleList()
        dim = in_dim
        for i in range(cfg.num_layers):
            self.layers.append(BiRNNLayer(cfg.cell, dim, cfg.hidden_size))
            dim = 2 * cfg.hidden_size
            self.norms.append(nn.LayerNorm(dim) if cfg.layer_norm else nn.Identity())
            last = i == cfg.num_layers - 1
            if cfg.proj_size and not last:
                self.projections.append(nn.Linear(dim, cfg.proj_size))
                dim = cfg.proj_size
            else:
                self.projections.append(nn.Identity())
        self.dropout = Dropout(cfg.dropout)
        self.out_dim = dim

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """x [B, T, D] -> [B, T, out_dim]; frames past `lens` are zero."""
        return self.forward_tapped(x, lens, 0)[0]

    def forward_tapped(self, x: torch.Tensor, lens: torch.Tensor, tap: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """forward, and the normalised output of RNN layer `tap` (1-based, before dropout and
        projection; tap 0: x itself): x [B, T, D] -> ([B, T, out_dim], [B, T, 2 * hidden_size])."""
        mask = lengths_to_mask(lens.to(x.device), x.size(1)).unsqueeze(-1)  # (B, T, 1)
        tapped = x
        for i, (layer, norm, proj) in enumerate(zip(self.layers, self.norms, self.projections)):
            x = norm(layer(x, lens))
            if i + 1 == tap:
                tapped = x * mask
            x = proj(self.dropout(x)) * mask  # zero the padding again
        return x, tapped


class CTCModel(nn.Module):
    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        if cfg.subsample == "auto":
            raise ValueError("subsample auto is chosen by asr train from the training data; "
                             "a model is built with 1, 2 or 4")
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.cmvn = GlobalCMVN(cfg.num_features, cfg.utterance_cmn)
        self.augment = True  # SpecAugment in training mode; the training loop may hold it off
        # in training with cfg.inter_ctc_layer: forward leaves the intermediate log-probs here
        # for the loss (inside forward, so DistributedDataParallel sees their graph)
        self.inter_log_probs: torch.Tensor | None = None
        self.inter_ctc_layer = cfg.inter_ctc_layer  # an int the scripted forward can read
        rnn_in = 2 * cfg.hidden_size if cfg.subsample > 1 else cfg.num_features
        self.subsampling = (
            ConvSubsampling(cfg.num_features, cfg.subsample, cfg.conv_channels, rnn_in)
            if cfg.subsample > 1
            else None
        )
        self.encoder = RNNEncoder(rnn_in, cfg)
        self.dropout = Dropout(cfg.dropout)
        self.output = nn.Linear(self.encoder.out_dim, vocab_size)

    def output_lengths(self, feat_lens: torch.Tensor) -> torch.Tensor:
        """feat_lens [B] -> out_lens [B] after subsampling."""
        return self.subsampling.output_lengths(feat_lens) if self.subsampling else feat_lens

    @torch.jit.unused
    def augment_features(self, x, feat_lens):  # no annotations: the scripter reads them as text
        """SpecAugment with the config's settings: x [B, T, F] normalised -> [B, T, F]. Left out
        of a scripted model (torch.jit.script cannot read the config dataclass; an exported
        model is for inference, where this never runs)."""
        if self.cfg.spec_augment is None:
            return x
        return spec_augment(x, feat_lens, self.cfg.spec_augment)

    def forward(self, feats: torch.Tensor, feat_lens: torch.Tensor,
                cmn_means: torch.Tensor | None = None):
        """feats [B, T, F] (raw features), feat_lens [B], with cfg.speaker_cmn the speakers'
        mean raw features [B, F] (None: each utterance's own) ->
        (log_probs [B, T', V] float32, out_lens [B])."""
        x = self.cmvn(feats, feat_lens, cmn_means)
        if self.training and self.augment:
            x = self.augment_features(x, feat_lens)
        lens = feat_lens
        if self.subsampling is not None:
            x, lens = self.subsampling(x, lens)
        if self.training and self.inter_ctc_layer > 0:
            x = self.tap_intermediate(x, lens)
        else:
            x = self.encoder(x, lens)
        logits = self.output(self.dropout(x))
        return logits.float().log_softmax(dim=-1), lens

    @torch.jit.unused
    def tap_intermediate(self, x, lens):
        """The encoder, leaving the intermediate CTC log-probs in self.inter_log_probs (the
        output layer is shared: Lee & Watanabe 2021; the tap is 2 x hidden_size wide, as the
        last layer's output, whatever proj_size)."""
        x, tapped = self.encoder.forward_tapped(x, lens, self.inter_ctc_layer)
        self.inter_log_probs = self.output(self.dropout(tapped)).float().log_softmax(dim=-1)
        return x


def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU: they can make recurrent steps ten times slower.

    numpy reads the float limits lazily and warns when it first does so with denormals off, so
    they are read here, before the switch."""
    for dtype in (np.float16, np.float32, np.float64):
        np.finfo(dtype)
    torch.set_flush_denormal(True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
