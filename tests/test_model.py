"""Model properties: padding invariance, output lengths, every cell type, checkpoints."""

import pickle

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.checkpoint import CheckpointError, average_checkpoints, load_checkpoint, save_checkpoint
from asr.config import ConfigError, from_dict, load_config, to_dict
from asr.model import (
    RNN_CELLS,
    BiRNNLayer,
    CTCModel,
    Dropout,
    GlobalCMVN,
    ModelConfig,
    SpecAugmentConfig,
    reverse_padded,
    spec_augment,
)


def small_config(**kw) -> ModelConfig:
    base = dict(num_features=20, subsample=4, conv_channels=4, num_layers=2, hidden_size=8,
                dropout=0.0, spec_augment=None)
    base.update(kw)
    return ModelConfig(**base)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("subsample", [1, 2, 4])
def test_output_does_not_change_when_batched_with_longer(cell, subsample):
    torch.manual_seed(0)
    model = CTCModel(small_config(cell=cell, subsample=subsample, proj_size=6), vocab_size=7)
    model.cmvn.set_stats(torch.randn(20), torch.rand(20) + 0.5)
    model.eval()
    short = torch.randn(1, 37, 20)
    long = torch.randn(1, 90, 20)
    alone, alone_lens = model(short, torch.tensor([37]))
    batch = torch.zeros(2, 90, 20)
    batch[0, :37] = short[0]
    batch[0, 37:] = 123.0  # garbage in the padding must not leak into the valid frames
    batch[1] = long[0]
    together, lens = model(batch, torch.tensor([37, 90]))
    assert lens[0] == alone_lens[0] == model.output_lengths(torch.tensor([37]))[0]
    n = int(lens[0])
    torch.testing.assert_close(together[0, :n], alone[0, :n], atol=1e-5, rtol=1e-5)


def test_output_lengths_match_the_tensor():
    model = CTCModel(small_config(), vocab_size=5).eval()
    for T in (1, 2, 3, 4, 5, 8, 33):
        log_probs, out_lens = model(torch.randn(1, T, 20), torch.tensor([T]))
        assert log_probs.shape[1] == int(out_lens[0]) == (((T - 1) // 2 + 1) - 1) // 2 + 1
        assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, log_probs.shape[1]))


def test_spec_augment_masks_stay_inside_lengths():
    # Time masks only, on ones: a masked frame is a zero row. No frame past a length may be
    # masked, every row long enough gets masks, and none is wider than time_width of its row.
    torch.manual_seed(1)
    feats = torch.ones(3, 200, 40)
    lens = torch.tensor([200, 120, 60])
    cfg = SpecAugmentConfig(freq_masks=0, time_masks=3, time_width=0.2)
    for _ in range(20):
        out = spec_augment(feats, lens, cfg)
        assert out.shape == feats.shape and ((out == 0) | (out == 1)).all()
        masked = (out == 0).all(dim=-1)  # (B, T): frames zeroed in every bin
        assert ((out == 0).any(dim=-1) == masked).all()  # whole frames only
        for b, n in enumerate(lens.tolist()):
            assert not masked[b, n:].any(), f"row {b} masked past its length {n}"
            assert masked[b, :n].sum() <= cfg.time_masks * int(cfg.time_width * n)
    assert masked.any(dim=1).all()  # (the last draw) every row got a mask


def test_spec_augment_frequency_masks_cover_whole_bands():
    torch.manual_seed(2)
    feats = torch.ones(2, 50, 40)
    out = spec_augment(feats, torch.tensor([50, 30]),
                       SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=0))
    masked = (out[:, :30] == 0).all(dim=1)  # (B, F): bins zeroed in every valid frame
    assert ((out[:, :30] == 0).any(dim=1) == masked).all()  # a band is masked in every frame
    assert masked.any(dim=1).all() and (masked.sum(dim=1) <= 20).all()


def test_config_rejects_unknown_keys_and_bad_types(tmp_path):
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(ModelConfig, {"hiden_size": 3})
    with pytest.raises(ConfigError, match="hidden_size"):
        from_dict(ModelConfig, {"hidden_size": "big"})
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(ModelConfig, {"cell": "transformer"})
    cfg_file = tmp_path / "m.yaml"
    cfg_file.write_text("hidden_size: 64\nspec_augment:\n  freq_masks: 1\n")
    cfg = load_config(ModelConfig, cfg_file, ["num_layers=2", "spec_augment.time_width=0.1"])
    assert (cfg.hidden_size, cfg.num_layers, cfg.spec_augment.freq_masks) == (64, 2, 1)
    assert cfg.spec_augment.time_width == 0.1
    assert from_dict(ModelConfig, to_dict(cfg)) == cfg


def test_checkpoint_round_trip_and_average(tmp_path):
    model = CTCModel(small_config(), vocab_size=5)
    paths = []
    for i in range(2):
        for p in model.parameters():
            torch.nn.init.constant_(p, float(i))
        ckpt = {"model": model.state_dict(), "model_config": to_dict(model.cfg), "tokens": ["a"],
                "feature_config": {}}
        paths.append(tmp_path / f"{i}.pt")
        save_checkpoint(ckpt, paths[-1])
    assert load_checkpoint(paths[0])["tokens"] == ["a"]
    avg = average_checkpoints(paths)
    assert torch.allclose(avg["output.weight"], torch.full_like(avg["output.weight"], 0.5))
    assert not list(tmp_path.glob("*.tmp"))


class Payload:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_payload_is_refused_and_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"model": Payload(), "model_config": {}, "tokens": [], "feature_config": {}},
                    f)
    with pytest.raises(CheckpointError, match="refused: not a checkpoint"):
        load_checkpoint(evil)  # a bare pickle: never unpickled
    zipped = tmp_path / "zipped.pt"
    torch.save({"model": Payload(), "model_config": {}, "tokens": [], "feature_config": {}},
               zipped)  # the payload inside torch.save's zip archive: unpickled weights-only
    with pytest.raises(CheckpointError, match="refused: the file holds objects") as e:
        load_checkpoint(zipped)
    assert "GLOBAL" in str(e.value) and "weights_only` set to `False`" not in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_reverse_padded_reverses_within_lengths():
    x = torch.arange(10.0).view(2, 5, 1)  # rows [0..4], [5..9]
    out = reverse_padded(x, torch.tensor([5, 3]))
    assert out[:, :, 0].tolist() == [[4, 3, 2, 1, 0], [7, 6, 5, 8, 9]]
    torch.testing.assert_close(reverse_padded(out, torch.tensor([5, 3])), x)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_bi_layer_equals_a_packed_bidirectional_rnn(cell):
    """The padded two-call layer computes exactly what torch's packed bidirectional RNN does."""
    torch.manual_seed(0)
    layer = BiRNNLayer(cell, 6, 5)
    reference = RNN_CELLS[cell](6, 5, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for name, p in layer.fwd.named_parameters():
            getattr(reference, name).copy_(p)
        for name, p in layer.bwd.named_parameters():
            getattr(reference, f"{name}_reverse").copy_(p)
    x = torch.randn(3, 9, 6)
    lens = torch.tensor([9, 4, 7])
    packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(reference(packed)[0], batch_first=True, total_length=9)
    out = layer(x, lens)
    for b, n in enumerate(lens.tolist()):
        torch.testing.assert_close(out[b, :n], expected[b, :n], atol=1e-6, rtol=1e-5)


def test_dropout_zeroes_a_share_p_and_keeps_the_mean():
    x = torch.ones(200, 500)
    drop = Dropout(0.2)
    torch.manual_seed(0)
    y = drop(x)
    zeroed = (y == 0).float().mean().item()
    assert abs(zeroed - 0.2) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.8))
    assert abs(y.mean().item() - 1.0) < 0.02
    torch.manual_seed(0)
    assert torch.equal(drop(x), y)  # the seed decides the mask
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="dropout 1.0"):
        Dropout(1.0)


def test_dropout_mask_is_even_over_positions_and_quantises_p_to_16_bits():
    # Four 16-bit draws share one 64-bit word: each of the four lanes, and an odd-sized tensor's
    # tail, must drop its share p like the rest.
    x = torch.ones(7, 13, 11)  # 1001 values: not a multiple of 4
    drop = Dropout(0.3)
    torch.manual_seed(3)
    dropped = torch.stack([drop(x) == 0 for _ in range(400)]).float().mean(dim=0).flatten()
    for lane in range(4):
        assert abs(dropped[lane::4].mean().item() - 0.3) < 0.01, lane
    assert abs(dropped[-40:].mean().item() - 0.3) < 0.04
    assert (dropped > 0.15).all() and (dropped < 0.45).all()
    assert drop.scale == 65536 / (65536 - round(0.3 * 65536))
    torch.manual_seed(3)
    assert not (Dropout(1e-9)(x) == 0).any()  # rounds to no drop at all


def test_spec_augment_time_masks_follow_the_row_length():
    # Rows under 25 frames get no time mask; a row's masks are at most time_width of its own
    # length wide and cover whole frames.
    torch.manual_seed(4)
    feats = torch.ones(3, 400, 8)
    lens = torch.tensor([400, 100, 24])
    cfg = SpecAugmentConfig(freq_masks=0, time_masks=2, time_width=0.1)
    widths = {0: set(), 1: set()}
    for _ in range(50):
        masked = (spec_augment(feats, lens, cfg) == 0).all(dim=-1)  # (B, T)
        assert not masked[2].any()
        for b in (0, 1):
            assert masked[b].sum() <= 2 * int(0.1 * lens[b])
            widths[b].add(int(masked[b].sum()))
    assert max(widths[0]) > 40 and max(widths[1]) <= 20 and max(widths[1]) > 10


def test_intermediate_ctc_adds_a_loss_of_a_lower_layer_and_changes_nothing_else():
    import torch.nn.functional as F

    from asr.train import ctc_loss_sum

    torch.manual_seed(0)
    tapped = CTCModel(small_config(inter_ctc_layer=1, inter_ctc_weight=0.4), vocab_size=7)
    plain = CTCModel(small_config(), vocab_size=7)
    plain.load_state_dict(tapped.state_dict())  # same weights: inter CTC has none of its own
    feats, feat_lens = torch.randn(3, 40, 20), torch.tensor([40, 33, 17])
    batch = {"feats": feats, "feat_lens": feat_lens, "targets": torch.tensor([[1, 2, 3], [4, 5, 0],
             [6, 0, 0]]), "target_lens": torch.tensor([3, 2, 1])}
    tapped.train(), plain.train()
    loss, n_tokens = ctc_loss_sum(tapped, batch, torch.device("cpu"), amp=False)
    assert tapped.inter_log_probs is None  # read by the loss and let go
    final, _ = ctc_loss_sum(plain, batch, torch.device("cpu"), amp=False)

    log_probs, out_lens = tapped(feats, feat_lens)  # the final output is the plain model's
    assert torch.allclose(log_probs, plain(feats, feat_lens)[0], atol=1e-6)
    # the intermediate one: layer 1's output through the shared output layer
    x, lens = tapped.subsampling(tapped.cmvn(feats, feat_lens), feat_lens)
    layer1 = tapped.encoder.norms[0](tapped.encoder.layers[0](x, lens))
    mask = (torch.arange(x.size(1))[None, :] < lens[:, None]).unsqueeze(-1)
    inter = tapped.output(layer1 * mask).log_softmax(-1)
    assert torch.allclose(inter, tapped.inter_log_probs, atol=1e-6)
    inter_loss = F.ctc_loss(inter.transpose(0, 1), batch["targets"], out_lens,
                            batch["target_lens"], reduction="sum")
    assert torch.allclose(loss, 0.6 * final + 0.4 * inter_loss, rtol=1e-5)
    assert n_tokens == 6

    tapped.inter_log_probs = None
    tapped.eval()  # inference: no intermediate output
    tapped(feats, feat_lens)
    assert tapped.inter_log_probs is None
    with pytest.raises(ValueError, match="inter_ctc_layer"):
        small_config(inter_ctc_layer=2)  # the last of 2 layers is the model's own output


def test_intermediate_ctc_works_with_projections_between_layers():
    """The tapped output is taken before the layer's projection, so it is 2 x hidden_size wide,
    as the output layer's input (the last layer has no projection) whatever proj_size is."""
    torch.manual_seed(0)
    model = CTCModel(small_config(num_layers=3, proj_size=5, inter_ctc_layer=1), vocab_size=7)
    model.train()
    log_probs, _ = model(torch.randn(2, 40, 20), torch.tensor([40, 30]))
    assert model.inter_log_probs is not None
    assert model.inter_log_probs.shape == log_probs.shape


def test_speaker_cmn_subtracts_the_given_means_and_falls_back_to_each_utterances_own():
    torch.manual_seed(0)
    cmvn = GlobalCMVN(6, utterance_mean=True)
    cmvn.set_stats(torch.randn(6), torch.rand(6) + 0.5)
    feats, lens = torch.randn(2, 10, 6) + 3.0, torch.tensor([10, 6])
    own = torch.stack([feats[b, : int(n)].mean(dim=0) for b, n in enumerate(lens)])  # (B, F)
    assert torch.allclose(cmvn(feats, lens, own), cmvn(feats, lens), atol=1e-5)
    means = torch.randn(2, 6)  # a speaker's mean raw features, one row per utterance
    out = cmvn(feats, lens, means)
    expected = (feats - means[:, None, :]) / cmvn.std
    assert torch.allclose(out[0], expected[0], atol=1e-5)
    assert torch.allclose(out[1, :6], expected[1, :6], atol=1e-5)
    assert (out[1, 6:] == 0).all()  # padding stays zero
    assert not torch.allclose(out, cmvn(feats, lens), atol=1e-3)
    with pytest.raises(ValueError, match="speaker_cmn needs utterance_cmn"):
        small_config(speaker_cmn=True, utterance_cmn=False)
