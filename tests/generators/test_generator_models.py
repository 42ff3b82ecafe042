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
from generators.config import GeneratorConfig, TrainConfig, load_json_config, tiny_generator_config  # noqa: E402
from generators.metrics import psnr, ssim  # noqa: E402
from generators.models import GeneratorModels, load_models, save_models  # noqa: E402
from generators.pipeline import LatentDiffusionPipeline  # noqa: E402
from generators.tiling import tile_starts, tiled_apply  # noqa: E402
from generators.train import load_optimizer, save_optimizer  # noqa: E402


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
    assert m == cfg and t == TrainConfig(ae_steps=3)
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
def test_shipped_weights_reconstruct_a_real_photo() -> None:
    from forensics.io import load_image

    photo = sorted((REPO / "examples" / "real").glob("*.jpg"))[0]
    px = load_image(photo).regions[0][:384, :384]
    models = load_models(device="cpu")
    whole = LatentDiffusionPipeline(models, tile_size=512).reconstruct(px)
    tiled = LatentDiffusionPipeline(models).reconstruct(px)  # default 64 px tiles, as trained
    assert tiled.tiles > 1
    assert psnr(px, tiled.image) > 30 and psnr(px, whole.image) > 28
    assert psnr(whole.image, tiled.image) > 30  # no seams: tiles agree with the untiled pass


@pytest.mark.gpu
def test_cuda_sampling_is_deterministic(models: GeneratorModels, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    save_models(models, tmp_path)
    pipe = LatentDiffusionPipeline(load_models(tmp_path, device="cuda"))
    a = pipe.sample(2, size=16, steps=2, generator=_gens(0, 1)).images
    b = pipe.sample(2, size=16, steps=2, generator=_gens(0, 1)).images
    np.testing.assert_array_equal(a, b)
