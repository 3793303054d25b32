"""VQ-VAE: the EMA codebook against a hand computation, dead-code restarts, encode/decode
shapes and rate, both levels, training through the trainer, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch

from tunesmith.audio.features import multi_resolution_stft_loss
from tunesmith.errors import ConfigError
from tunesmith.models import registry
from tunesmith.models.vq_vae import VQVAE, EMACodebook, VQVAEConfig


def test_ema_update_matches_a_hand_computation():
    book = EMACodebook(size=3, dim=2, decay=0.5, restart_threshold=0.0, eps=0.0)
    book.initialised.fill_(True)
    book.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]))
    book.embed_sum.copy_(book.embedding * 2)  # N_k = 2 for every code
    book.cluster_size.fill_(2.0)
    z = torch.tensor([[1.0, 1.0], [9.0, 1.0], [11.0, -1.0], [0.5, 0.0]])
    codes = book.codes(z)
    assert codes.tolist() == [0, 1, 1, 0]
    book.update(z, codes)
    # N = 0.5·2 + 0.5·n: code 0 and 1 got 2 rows each, code 2 none
    assert torch.allclose(book.cluster_size, torch.tensor([2.0, 2.0, 1.0]))
    # m = 0.5·m + 0.5·Σz
    m0 = 0.5 * torch.tensor([0.0, 0.0]) + 0.5 * torch.tensor([1.5, 1.0])
    m1 = 0.5 * torch.tensor([20.0, 0.0]) + 0.5 * torch.tensor([20.0, 0.0])
    m2 = 0.5 * torch.tensor([0.0, 20.0])
    assert torch.allclose(book.embed_sum, torch.stack([m0, m1, m2]))
    # e = m / N (eps = 0: the Laplace smoothing leaves N as it is)
    assert torch.allclose(book.embedding, torch.stack([m0 / 2, m1 / 2, m2 / 1]))


def test_a_dead_code_is_restarted_on_an_encoder_output():
    torch.manual_seed(0)
    book = EMACodebook(size=4, dim=2, decay=0.5, restart_threshold=0.6, eps=0.0)
    book.initialised.fill_(True)
    far = torch.tensor([100.0, 100.0])
    book.embedding.copy_(torch.stack([torch.zeros(2), torch.ones(2), -torch.ones(2), far]))
    book.embed_sum.copy_(book.embedding)
    book.cluster_size.fill_(1.0)
    z = torch.randn(64, 2) * 0.3  # nothing near code 3
    n_dead = book.update(z, book.codes(z))  # N_3 = 0.5 < 0.6: dead
    assert n_dead >= 1
    assert not torch.allclose(book.embedding[3], far)
    # it now sits on one of the batch's rows, with a count of 1
    assert (book.embedding[3] - z).abs().sum(1).min() < 1e-6
    assert book.cluster_size[3] == 1.0
    # a live code is not touched by the restart
    live = book.cluster_size >= 0.6
    assert live[:3].any()


def test_a_code_unused_over_the_window_is_restarted_and_a_used_one_is_not():
    torch.manual_seed(0)
    book = EMACodebook(size=3, dim=2, decay=0.99, restart_threshold=0.0, eps=0.0,
                       usage_window=3)
    book.initialised.fill_(True)
    far = torch.tensor([100.0, 100.0])
    book.embedding.copy_(torch.stack([torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0]), far]))
    book.embed_sum.copy_(book.embedding * 5)
    book.cluster_size.fill_(5.0)  # far above any count threshold
    z = torch.cat([torch.randn(16, 2) * 0.1 + torch.tensor([1.0, 0.0]),
                   torch.randn(16, 2) * 0.1 - torch.tensor([1.0, 0.0])])
    assert book.update(z, book.codes(z)) == 0  # the window is not over yet
    assert book.update(z, book.codes(z)) == 0
    assert torch.allclose(book.embedding[2], far * 5 * 0.99**2 / book.cluster_size[2])
    assert book.update(z, book.codes(z)) == 1  # code 2: no row in 3 updates
    assert (book.embedding[2] - z).abs().sum(1).min() < 1e-6
    assert int(book.window_steps) == 0 and book.recent_usage.sum() == 0  # a new window


def test_kmeans_init_from_the_first_batches_finds_the_clusters():
    torch.manual_seed(0)
    centres = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    book = EMACodebook(size=4, dim=2, decay=0.99, restart_threshold=0.0, normalise=True,
                       init_rows=200, usage_window=0)

    def batch():
        rows = centres[torch.randint(0, 4, (64,))]
        return rows + torch.randn(64, 2) * 0.05

    for _ in range(3):  # 192 rows gathered: still the random first-batch codes
        book.update(batch(), book.codes(batch()))
    assert int(book.init_count) == 192
    book.update(batch(), book.codes(batch()))  # 200 rows: k-means
    assert int(book.init_count) == 200
    assert torch.allclose(book.embedding.norm(dim=1), torch.ones(4), atol=1e-5)
    # each centre has its own code, close to it
    similarity = centres @ book.embedding.t()  # (4 centres, 4 codes)
    assert sorted(similarity.argmax(1).tolist()) == [0, 1, 2, 3]
    assert (similarity.max(1).values > 0.99).all()


@pytest.mark.parametrize("top", [[], [4]])
def test_encode_decode_keeps_shape_and_rate(top):
    torch.manual_seed(0)
    model = VQVAE(VQVAEConfig(strides=[4, 2], top_strides=top, channels=8, code_dim=4,
                         codebook_size=16, sample_rate=8000)).eval()
    audio = torch.rand(2, 1000) - 0.5  # not a multiple of the hop: padded, then cut
    codes = model.encode(audio)
    assert len(codes) == 1 + bool(top)
    assert codes[0].shape == (2, -(-1000 // model.frame) * model.frame // 8)
    if top:
        assert codes[1].shape == (2, codes[0].shape[1] // 4)
    decoded = model.decode(codes, 1000)
    assert decoded.shape == audio.shape and decoded.abs().max() <= 1
    assert model.config.sample_rate == 8000
    expected_bits = 4 * (8000 / 8 + (8000 / 32 if top else 0))
    assert model.config.bitrate == pytest.approx(expected_bits)
    assert model.generate(3, 500).shape == (3, 500)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="strides"):
        VQVAEConfig(strides=[1])
    with pytest.raises(ConfigError, match="ema_decay"):
        VQVAEConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="usage_window"):
        VQVAEConfig(usage_window=-1)
    assert "vq-vae" in registry.audio_family_names()


def test_trains_reconstructs_better_and_checkpoints(tmp_path):
    from tunesmith.data.audio import prepare_audio
    from tunesmith.training.audio import train_audio
    from tunesmith.training.checkpoint import load_checkpoint

    t = np.arange(4096) / 8000
    for i in range(6):
        soundfile.write(tmp_path / f"{i}.wav", 0.5 * np.sin(2 * np.pi * (150 + 60 * i) * t), 8000)
    data = prepare_audio(f"folder:{tmp_path}", 8000, progress=False, report=False)
    options = {"strides": [4, 2], "channels": 16, "code_dim": 8, "codebook_size": 16,
               "lookup_dim": 4}
    run = train_audio("vq-vae", data, options, tmp_path / "run", window=1024, batch_size=4,
                      max_steps=40, epochs=None, threads=1, lr=3e-3, progress_bar=False,
                      loggers=False, early_stopping_patience=0)
    model, _meta = load_checkpoint(run)
    assert isinstance(model, VQVAE) and model.config.sample_rate == 8000
    audio = torch.tensor(data.audio(0)[:2048])[None]
    codes = model.encode(audio)
    again, _ = load_checkpoint(run)
    assert torch.equal(again.encode(audio)[0], codes[0])
    fresh = VQVAE(model.config).eval()
    # 40 steps on sines learn their spectra first (the waveform's phase comes later)
    error = multi_resolution_stft_loss(model.decode(codes, 2048), audio)
    assert error < 0.8 * multi_resolution_stft_loss(fresh.reconstruct(audio), audio)


def test_a_checkpoint_saved_before_the_factorised_lookup_loads_as_it_was(tmp_path):
    """config.json without lookup_dim / kmeans_init_rows / usage_window (saved before they
    existed) rebuilds the old codebook: codes looked up in the code space itself."""
    import json

    from tunesmith.training.checkpoint import load_checkpoint, save_checkpoint

    old = VQVAEConfig(strides=[4, 2], channels=8, code_dim=4, codebook_size=8, lookup_dim=0,
                      kmeans_init_rows=0, usage_window=0)
    model = VQVAE(old).eval()
    folder = save_checkpoint(tmp_path / "old", model, model_name="vq-vae")
    config_path = folder / "config.json"
    meta = json.loads(config_path.read_text())
    for name in ("lookup_dim", "kmeans_init_rows", "usage_window"):
        del meta["model_config"][name]
    config_path.write_text(json.dumps(meta))
    loaded, _ = load_checkpoint(folder)
    assert loaded.config.lookup_dim == 0 and loaded.config.usage_window == 0
    audio = torch.randn(1, 256) * 0.1
    assert torch.equal(loaded.encode(audio)[0], model.encode(audio)[0])
    assert VQVAEConfig().lookup_dim == 16  # new models still get the new default
