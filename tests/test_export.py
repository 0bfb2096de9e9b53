"""`asr export` and the torch-free ONNX path: exported models give PyTorch's outputs for batches
of different lengths; the numpy features and forced alignment equal their torch twins;
`asr transcribe --checkpoint X.onnx` and `asr.load("X.onnx")` give what the checkpoint gives,
greedy and with beam search + LM + hotwords, without torch; a TorchScript export passed as a
checkpoint is refused in one line."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from helpers_train import ROOT, SR, run_asr, tone_wave

import asr
from asr import features_numpy
from asr.checkpoint import CheckpointError, save_checkpoint
from asr.config import to_dict
from asr.datadir import read_data_dir
from asr.decoding import GreedyDecoder
from asr.export import export, load_torchscript
from asr.features import FeatureConfig, compute_features, compute_features_single
from asr.lm import train_ngram
from asr.model import CTCModel, ModelConfig
from asr.onnx_transcribe import OnnxRecognizer, forced_align

ort = pytest.importorskip("onnxruntime")  # the [onnx] extra; CI installs it with [test]
pytest.importorskip("onnx")

MAX_ABS_DIFF = 1e-4  # exported vs PyTorch log-probs
TOKENS = ["<blank>", "|", "A", "B", "C", "D", "E"]


def random_checkpoint(path, **model_overrides):
    """A checkpoint of an untrained model with non-trivial CMVN statistics."""
    torch.manual_seed(0)
    feature_config = FeatureConfig(num_mel_bins=40)
    cfg = ModelConfig(num_features=feature_config.num_features, hidden_size=32, num_layers=2,
                      conv_channels=4, **{"subsample": 4, **model_overrides})
    model = CTCModel(cfg, len(TOKENS))
    model.cmvn.set_stats(torch.randn(cfg.num_features) - 5, torch.rand(cfg.num_features) + 0.5)
    save_checkpoint({"model": model.state_dict(), "model_config": to_dict(cfg),
                     "vocab_size": len(TOKENS), "tokens": TOKENS,
                     "feature_config": feature_config.to_dict()}, path)
    return model.eval(), feature_config


def ragged_batch(feature_config, lengths_s=(1.3, 0.4, 2.1, 0.03)):
    """Features of tone waves of different lengths: (feats [B, T, F], feat_lens [B])."""
    waves = [tone_wave("ABC DEED BAD", seed=i)[: int(s * SR)] for i, s in enumerate(lengths_s)]
    batch = torch.zeros(len(waves), max(len(w) for w in waves))
    for b, w in enumerate(waves):
        batch[b, : len(w)] = torch.from_numpy(w)
    return compute_features(batch, torch.tensor([len(w) for w in waves]), feature_config)


@pytest.mark.parametrize("overrides", [
    {}, {"subsample": 1, "cell": "gru", "utterance_cmn": True, "speaker_cmn": True,
     "inter_ctc_layer": 1},
    {"subsample": 2, "cell": "rnn", "proj_size": 16, "layer_norm": False},
])
def test_exported_models_equal_pytorch_on_a_ragged_batch(tmp_path, overrides):
    model, feature_config = random_checkpoint(tmp_path / "m.pt", **overrides)
    feats, feat_lens = ragged_batch(feature_config)  # B = 4, unlike the trace's 2
    with torch.no_grad():
        expected, expected_lens = model(feats, feat_lens)
    export(tmp_path / "m.pt", "torchscript", tmp_path / "m.ts")
    scripted, meta = load_torchscript(tmp_path / "m.ts")
    with torch.no_grad():
        got, got_lens = scripted(feats, feat_lens)
    assert torch.equal(got_lens, expected_lens)
    assert (got - expected).abs().max() <= MAX_ABS_DIFF
    assert meta["tokens"] == TOKENS

    export(tmp_path / "m.pt", "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for rows in ([0, 1, 2, 3], [2], [3, 1]):  # other batch sizes and lengths too
        f, n = feats[rows][:, : int(feat_lens[rows].max())], feat_lens[rows]
        lp, lens = session.run(None, {"feats": f.numpy(), "feat_lens": n.numpy()})
        want = expected[rows][:, : lp.shape[1]].numpy()
        np.testing.assert_array_equal(lens, expected_lens[rows].numpy())
        for b, length in enumerate(lens):  # padding frames hold log_softmax of zeros: compare
            assert np.abs(lp[b, :length] - want[b, :length]).max() <= MAX_ABS_DIFF  # valid ones


def test_onnx_model_carries_what_it_needs(tmp_path):
    _, feature_config = random_checkpoint(tmp_path / "m.pt")
    run_asr(["export", "--checkpoint", tmp_path / "m.pt", "--format", "onnx",
             "--out", tmp_path / "m.onnx"])
    recognizer = OnnxRecognizer(tmp_path / "m.onnx")
    assert recognizer.tokens == TOKENS
    assert recognizer.feature_config == feature_config.to_dict()
    assert recognizer.seconds_per_output_frame == pytest.approx(0.04)  # 10 ms x 4


@pytest.mark.parametrize("cfg", [
    FeatureConfig(), FeatureConfig(num_mel_bins=40, deltas=2),
    FeatureConfig(sample_rate=8000, num_mel_bins=23, low_freq=60, high_freq=-200),
    FeatureConfig(kind="mfcc"), FeatureConfig(kind="mfcc", num_ceps=20, deltas=1, top_db=None),
])
def test_numpy_features_equal_torch_features(cfg):
    """Bins within 1e-4 of their frame's peak energy agree to 1e-4 (the rest to float32's
    precision of the torch twin, which works in float32 where this one works in float64)."""
    rng = np.random.default_rng(0)
    waves = [tone_wave("ABC DEED", seed=1), (0.1 * rng.standard_normal(12345)),
             tone_wave("A", seed=2)[: cfg.window_samples]]
    for wave in waves:
        wave = wave.astype(np.float32)
        want = compute_features_single(torch.from_numpy(wave), cfg).numpy()
        got = features_numpy.compute_features(wave, cfg.to_dict())
        assert got.shape == want.shape and got.dtype == np.float32
        if cfg.kind == "fbank":
            base = want[:, : cfg.num_mel_bins]  # log energies
            strong = base > base.max(axis=1, keepdims=True) - np.log(1e4)
            assert np.abs(got[:, : cfg.num_mel_bins] - base)[strong].max() <= 1e-4
            assert np.abs(got - want).max() <= 2e-3
        else:  # dB-scale cepstra of a few hundred: relative agreement
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6 * np.abs(want).max() + 1e-4)


def test_numpy_features_refuse_audio_shorter_than_a_frame():
    with pytest.raises(features_numpy.FeatureError, match="shorter than one frame"):
        features_numpy.compute_features(np.zeros(399, np.float32), {})


@pytest.mark.parametrize("seed", range(6))
def test_numpy_forced_align_equals_torchaudio(seed):
    rng = np.random.default_rng(seed)
    T, V = int(rng.integers(8, 60)), 6
    log_probs = torch.from_numpy(rng.standard_normal((T, V)).astype(np.float32) * 3)
    log_probs = log_probs.log_softmax(-1)
    # the greedy tokens (always alignable) and a sequence with repeats, as transcribe aligns
    greedy = GreedyDecoder(["<blank>", *"abcde"])(log_probs[None], [T])[0][0]  # V = 6
    targets = [list(greedy.tokens), [1, 1, 2, 3, 3][: max(1, T // 4)]]
    for token_ids in targets:
        if not token_ids:
            continue
        labels, scores = forced_align(log_probs.numpy(), token_ids)
        want_labels, want_scores = AF.forced_align(
            log_probs[None], torch.tensor([token_ids], dtype=torch.int32), blank=0)
        np.testing.assert_array_equal(labels, want_labels[0].numpy())
        np.testing.assert_allclose(scores, want_scores[0].numpy(), atol=1e-6)


def test_forced_align_by_hand():
    """Two frames of A then blank then A: the repeat needs the blank between."""
    lp = np.log(np.array([[0.1, 0.9], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]], np.float32))
    labels, _ = forced_align(lp, [1, 1])
    assert labels.tolist() == [1, 1, 0, 1]


# ---------------------------------------------------------------------------------------------
# asr transcribe with the exported model of the tone language


@pytest.fixture(scope="module")
def exported(tone_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    run_asr(["export", "--checkpoint", tone_model / "best.pt", "--format", "onnx",
             "--out", out / "model.onnx"])
    return out / "model.onnx"


def test_onnx_transcribe_writes_what_the_checkpoint_writes(tone_model, exported, tmp_path):
    files = []
    for i, text in enumerate(["ABC DEED", "CAB BAD ACE", "DAB"]):
        files.append(tmp_path / f"f{i}.wav")
        sf.write(files[-1], tone_wave(text, seed=300 + i), SR)
    pt = run_asr(["transcribe", "--checkpoint", tone_model / "best.pt", *files,
                  "--format", "json", "--out", tmp_path / "pt"])
    onnx = run_asr(["transcribe", "--checkpoint", exported, *files, "--format", "json",
                    "--out", tmp_path / "onnx"])
    assert pt.returncode == onnx.returncode == 0
    for f in files:
        want = json.loads((tmp_path / "pt" / f"{f.stem}.json").read_text())
        got = json.loads((tmp_path / "onnx" / f"{f.stem}.json").read_text())
        assert got["text"] == want["text"] and got["text"]
        assert [w["word"] for w in got["words"]] == [w["word"] for w in want["words"]]
        for g, w in zip(got["words"], want["words"]):
            assert g["start"] == pytest.approx(w["start"], abs=0.021)  # within a frame
            assert g["end"] == pytest.approx(w["end"], abs=0.021)
            assert g["confidence"] == pytest.approx(w["confidence"], abs=0.01)
    text_pt = run_asr(["transcribe", "--checkpoint", tone_model / "best.pt", *files]).stdout
    text_onnx = run_asr(["transcribe", "--checkpoint", exported, *files]).stdout
    assert text_onnx == text_pt


def test_onnx_transcribe_imports_no_torch(exported, lm_arpa, tmp_path):
    """Greedy: neither torch nor numba; beam search + LM + hotword + --plot: no torch."""
    wav, png = tmp_path / "a.wav", tmp_path / "a.png"
    sf.write(wav, tone_wave("CAB", seed=5), SR)
    beam = ["--decoder", "beam", "--lm", str(lm_arpa), "--hotword", "CAB", "--plot", str(png)]
    code = ("import sys\nfrom asr.cli import main\n"
            f"status = main(['transcribe', '--checkpoint', {str(exported)!r}, {str(wav)!r}])\n"
            "heavy = sorted(m for m in ('torch', 'torchaudio', 'numba', 'librosa') "
            "if m in sys.modules)\n"
            "print('GREEDY', heavy)\n"
            f"status |= main(['transcribe', '--checkpoint', {str(exported)!r}, {str(wav)!r}, "
            f"*{beam!r}])\n"
            "heavy = sorted(m for m in ('torch', 'torchaudio', 'librosa') if m in sys.modules)\n"
            "print('BEAM', heavy, 'numba' in sys.modules)\nsys.exit(status)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "GREEDY []" in proc.stdout
    assert "BEAM [] True" in proc.stdout  # the beam search (numba) ran, torch was never needed
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_onnx_transcribe_refuses_what_it_cannot_do(exported, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_wave("CAB", seed=5), SR)
    proc = run_asr(["transcribe", "--checkpoint", exported, wav, "--lm", "lm.arpa"],
                   check=False)  # as the checkpoint does: an LM needs the beam decoder
    assert proc.returncode == 2 and "--lm needs --decoder beam" in proc.stderr
    proc = run_asr(["transcribe", "--checkpoint", exported, wav, "--decoder", "beam",
                    "--hotword", "XYZ"], check=False)
    assert proc.returncode == 2 and "'X' is not a token" in proc.stderr
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    proc = run_asr(["transcribe", "--checkpoint", bad, wav], check=False)
    assert proc.returncode == 2 and "bad.onnx" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# The same words from asr.load and asr transcribe, checkpoint or ONNX, greedy or beam + LM


@pytest.fixture(scope="module")
def lm_arpa(tone_model_corpus, tmp_path_factory):
    """A bigram LM of the tone model's training transcripts."""
    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    texts = [u.text for u in read_data_dir(tone_model_corpus / "data" / "train")]
    train_ngram(texts, order=2).write_arpa(path)
    return path


def test_load_onnx_gives_what_load_checkpoint_gives(tone_model, exported, lm_arpa):
    """asr.load of the .onnx export: the checkpoint's Transcriber on ONNX Runtime, with the same
    decoders and options, and the same words, greedy and with beam search + LM + hotword; a
    recording longer than a chunk too."""
    texts = ["ABC DEED", "CAB BAD ACE", "DAB"]
    waves = [tone_wave(t, seed=400 + i) for i, t in enumerate(texts)]
    waves.append(np.concatenate([np.concatenate([w, np.zeros(SR // 2, np.float32)])
                                 for w in waves]))  # about 6 s: cut into chunks
    for options in ({}, {"lm": lm_arpa, "hotwords": ["CAB:2"]}):
        pt = asr.load(tone_model / "best.pt", device="cpu", max_chunk_s=4.0, **options)
        onnx = asr.load(exported, device="cpu", max_chunk_s=4.0, **options)
        assert isinstance(onnx.recognizer, OnnxRecognizer) and type(onnx) is type(pt)
        assert onnx.sample_rate == pt.sample_rate == SR
        assert type(onnx.decoder) is type(pt.decoder)
        assert getattr(onnx.decoder, "options", None) == getattr(pt.decoder, "options", None)
        got, want = onnx.transcribe_batch(waves, SR), pt.transcribe_batch(waves, SR)
        assert [t.text for t in got] == [t.text for t in want] and all(t.text for t in want)
        assert len(got[-1].segments) > 1
        for g, w in zip(got[-1].words, want[-1].words):
            assert g.word == w.word and g.start == pytest.approx(w.start, abs=0.021)
    assert onnx.decoder.lm is not None and onnx.decoder.options.hotwords == (("CAB", 2.0),)


def test_onnx_transcribe_beam_lm_hotword_writes_what_the_checkpoint_writes(
        tone_model, exported, lm_arpa, tmp_path):
    files = []
    for i, text in enumerate(["ABC DEED", "CAB BAD ACE", "DAB"]):
        files.append(tmp_path / f"f{i}.wav")
        sf.write(files[-1], tone_wave(text, seed=500 + i), SR)
    beam = ["--decoder", "beam", "--beam", "8", "--lm", lm_arpa, "--hotword", "DEED:1.5"]
    text_pt = run_asr(["transcribe", "--checkpoint", tone_model / "best.pt", *files, *beam])
    text_onnx = run_asr(["transcribe", "--checkpoint", exported, *files, *beam])
    assert text_onnx.stdout == text_pt.stdout
    assert [line.split("\t")[1] != "" for line in text_pt.stdout.splitlines()] == [True] * 3


def test_torchscript_passed_as_a_checkpoint_is_refused_in_one_line(tmp_path):
    """A TorchScript export is not unpickled: `asr transcribe` names it and says what to pass."""
    random_checkpoint(tmp_path / "m.pt")
    export(tmp_path / "m.pt", "torchscript", tmp_path / "m.ts.pt")
    wav = tmp_path / "a.wav"
    sf.write(wav, tone_wave("CAB", seed=5), SR)
    proc = run_asr(["transcribe", "--checkpoint", tmp_path / "m.ts.pt", wav], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("asr transcribe:")]
    assert len(errors) == 1
    assert all(s in errors[0] for s in (str(tmp_path / "m.ts.pt"), "TorchScript",
                                        "training checkpoint (.pt)", "(.onnx)"))
    with pytest.raises(CheckpointError, match="TorchScript"):
        asr.load(tmp_path / "m.ts.pt")
